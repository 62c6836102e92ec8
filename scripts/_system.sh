# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo: what they need from the system. On Debian and
# Ubuntu, as root, missing packages are installed with apt; without root, or on another
# system, the scripts stop with one message that lists what to install. Expects log().

# Python 3.11 or newer as `python3`, with its venv module (Debian splits it out).
require_python() {
  local script=$1
  if ! command -v python3 >/dev/null 2>&1; then
    log "$script needs Python 3.11 or newer as python3, and there is no python3 on PATH"
    exit 1
  fi
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    log "$script needs Python 3.11 or newer; python3 ($(command -v python3)) is $(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)"
    log "install a newer Python and put it first on PATH as python3, then run $script again"
    exit 1
  fi
}

python_has_venv() { python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }

is_debian() { command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; }

deb_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# require_debian_packages SCRIPT PACKAGE... : installs the missing ones as root, or explains.
# Not Debian: the caller's elsewhere_ready() decides, and elsewhere_needs() says what to get.
require_debian_packages() {
  local script=$1 pkg
  shift
  local -a missing=()
  if ! is_debian; then
    if elsewhere_ready; then
      return 0
    fi
    log "$script installs what it needs with apt on Debian and Ubuntu; this system has no apt."
    log "Install these with your system's package manager, then run $script again:"
    elsewhere_needs | sed 's/^/      - /' >&2
    exit 1
  fi
  for pkg in "$@"; do
    deb_installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]}"
    log "install them (this needs root), then run $script again:"
    printf '      sudo apt-get install %s\n' "${missing[*]}" >&2
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
