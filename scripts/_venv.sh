# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo: the project venv with an editable install,
# reinstalled only when pyproject.toml changed. Expects ROOT and log() from the caller.
VENV=$ROOT/.venv
PY_STAMP=$VENV/.pulser-ops-pyproject.sha256
py_sum=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python ]]; then
  log "python3 -m venv .venv"
  python3 -m venv "$VENV"
fi
if [[ "$(cat "$PY_STAMP" 2>/dev/null)" != "$py_sum" ]] \
  || ! "$VENV/bin/python" -c 'import pulser_ops.db' 2>/dev/null; then
  log "pip install -e '.[dev]'"
  # (the filter drops pip's per-package noise about unreachable local index dirs)
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 \
    | { grep -v "^WARNING: Location '" || true; }; then
    log "pip install failed"
    exit 1
  fi
  echo "$py_sum" >"$PY_STAMP"
fi

