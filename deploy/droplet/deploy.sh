#!/usr/bin/env bash
# Deploy the pulser-ops worker image on this Droplet (run as root; the deploy workflow copies
# this directory over SSH and runs it, and it installs itself as /opt/pulser-ops/deploy.sh).
#
#   deploy.sh <image>     pull it, install/update the unit, restart with the drain grace,
#                         wait for /readyz; put the previous image back if it stays unhealthy
#   deploy.sh rollback    go back to the image that ran before the current one
#
# Roll back by hand, one command: ssh root@<droplet> /opt/pulser-ops/deploy.sh rollback
#
# Needs docker, systemd and curl, and /etc/pulser-ops/worker.env (see the unit file).
# Not run on a Droplet by the test suite (no systemd or Docker there):
# tests/ship/test_deploy_scripts.py runs it against recording stand-ins for docker,
# systemctl and the health check.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ETC=${PULSER_OPS_ETC:-/etc/pulser-ops}
UNIT_DIR=${PULSER_OPS_UNIT_DIR:-/etc/systemd/system}
INSTALL_DIR=${PULSER_OPS_INSTALL_DIR:-/opt/pulser-ops}
HEALTH_URL=${PULSER_OPS_HEALTH_URL:-http://127.0.0.1:8081/readyz}
HEALTH_SECONDS=${PULSER_OPS_HEALTH_SECONDS:-120}
UNIT=pulser-ops-worker.service

die() { printf 'deploy/droplet: %s\n' "$*" >&2; exit 2; }
say() { printf 'deploy/droplet: %s\n' "$*"; }

current() { sed -n 's/^PULSER_OPS_IMAGE=//p' "$ETC/image.env" 2>/dev/null || true; }

check_image() {
  [[ $1 =~ ^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?(/[a-z0-9._-]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$ ]] \
    || die "not an image reference: '$1'"
}

install_files() {
  install -d -m 755 "$UNIT_DIR" "$INSTALL_DIR"
  install -m 644 "$HERE/$UNIT" "$UNIT_DIR/$UNIT"
  if [[ $HERE != "$INSTALL_DIR" ]]; then
    install -m 755 "$HERE/deploy.sh" "$INSTALL_DIR/deploy.sh"
    install -m 644 "$HERE/$UNIT" "$INSTALL_DIR/$UNIT"
  fi
  systemctl daemon-reload
}

# Point the unit at an image and restart it: `systemctl restart` stops the old container
# with `docker stop --time 75` (the worker drains) before the new one starts.
switch_to() {
  docker pull --quiet "$1" >/dev/null
  printf 'PULSER_OPS_IMAGE=%s\n' "$1" >"$ETC/image.env.tmp"
  mv "$ETC/image.env.tmp" "$ETC/image.env"
  systemctl enable "$UNIT" >/dev/null 2>&1 || true
  systemctl restart "$UNIT"
}

healthy() {
  local deadline=$((SECONDS + HEALTH_SECONDS))
  until curl --fail --silent --max-time 5 "$HEALTH_URL" >/dev/null; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 3
  done
}

deploy() {
  local image=$1 previous
  check_image "$image"
  [[ -f $ETC/worker.env ]] || die "missing $ETC/worker.env: the worker's secrets and settings (docs/DEPLOYMENT.md)"
  install_files
  previous=$(current)
  say "${previous:-(nothing)} -> $image"
  switch_to "$image"
  if healthy; then
    if [[ -n $previous && $previous != "$image" ]]; then
      printf '%s\n' "$previous" >"$ETC/image.previous"
    fi
    say "$image is ready ($HEALTH_URL)"
    return 0
  fi
  say "$image did not become ready within ${HEALTH_SECONDS}s" >&2
  journalctl --unit "$UNIT" --lines 30 --no-pager >&2 2>/dev/null || true
  if [[ -n $previous && $previous != "$image" ]]; then
    say "rolling back to $previous" >&2
    switch_to "$previous"
    if healthy; then say "rolled back to $previous" >&2; else say "$previous is not ready either" >&2; fi
  fi
  return 1
}

case "${1:-}" in
  rollback)
    [[ -s $ETC/image.previous ]] || die "no previous image recorded in $ETC/image.previous"
    deploy "$(cat "$ETC/image.previous")"
    ;;
  "" | -h | --help) sed -n '2,10p' "$0" ;;
  *) [[ $# -eq 1 ]] || die "usage: deploy.sh <image> | rollback"; deploy "$1" ;;
esac
