#!/usr/bin/env bash
# Install the pinned LiteLLM proxy into a cached virtualenv (idempotent).
#
#   tests/litellm/install.sh            # prints the venv path on stdout when done
#
# Venv location: ${MODELAPI_LITELLM_VENV:-$HOME/.cache/modelapi/litellm-1.108.7}
# A marker file (.modelapi-install-ok) is written only after a fully successful
# install; a venv without it (e.g. an interrupted install) is wiped and redone.
# All progress/diagnostics go to stderr, so `venv=$(install.sh)` works.
set -euo pipefail

LITELLM_VERSION="1.108.7"
VENV="${MODELAPI_LITELLM_VENV:-$HOME/.cache/modelapi/litellm-${LITELLM_VERSION}}"
MARKER="$VENV/.modelapi-install-ok"
EXPECTED_MARKER="litellm[proxy]==${LITELLM_VERSION}"
PYTHON="${MODELAPI_LITELLM_PYTHON:-python3}"

log() { echo "litellm-install: $*" >&2; }
die() { echo "litellm-install: ERROR: $*" >&2; exit 1; }

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$EXPECTED_MARKER" && -x "$VENV/bin/litellm" ]]; then
    echo "$VENV"
    exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; need Python >= 3.9 with the venv module"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || die "'$PYTHON' is $("$PYTHON" -V 2>&1); LiteLLM ${LITELLM_VERSION} needs Python >= 3.9"

# Serialise concurrent installs (e.g. parallel test binaries) on one lock.
mkdir -p "$(dirname "$VENV")"
LOCK="${VENV}.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK"
    if ! flock -n 9; then
        log "another install is running; waiting for lock $LOCK"
        flock 9
    fi
    # Another process may have finished the install while we waited.
    if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$EXPECTED_MARKER" && -x "$VENV/bin/litellm" ]]; then
        echo "$VENV"
        exit 0
    fi
fi

if [[ -e "$VENV" ]]; then
    log "removing incomplete install at $VENV (no success marker)"
    rm -rf "$VENV"
fi

log "creating virtualenv $VENV"
"$PYTHON" -m venv "$VENV" \
    || die "'$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)"

log "installing ${EXPECTED_MARKER} (about 40 s, ~750 MB)"
start=$(date +%s)
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "${EXPECTED_MARKER}" >&2; then
    rm -rf "$VENV"
    die "pip install '${EXPECTED_MARKER}' failed (is PyPI reachable?); removed $VENV"
fi

LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False "$VENV/bin/litellm" --version >/dev/null 2>&1 || {
    rm -rf "$VENV"
    die "installed, but '$VENV/bin/litellm --version' does not run; removed $VENV"
}

echo "$EXPECTED_MARKER" >"$MARKER"
log "installed in $(( $(date +%s) - start )) s at $VENV"
echo "$VENV"
