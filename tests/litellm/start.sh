#!/usr/bin/env bash
# Run the LiteLLM test proxy on 127.0.0.1:PORT in the foreground.
#
#   tests/litellm/start.sh PORT
#
# Installs the pinned proxy first when needed (install.sh, cached venv), then
# *execs* the proxy, so the PID of this script is the PID of the proxy: start
# it in the background, poll GET /health/liveliness, stop it with SIGTERM.
#
# Env:
#   MODELAPI_LITELLM_VENV        venv dir (default ~/.cache/modelapi/litellm-1.108.7)
#   MODELAPI_LITELLM_MASTER_KEY  key clients must send (default sk-modelapi-test-master)
#   MODELAPI_LITELLM_LOG         LiteLLM log level (default ERROR; DEBUG/INFO for more)
set -euo pipefail

die() { echo "litellm-start: ERROR: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 PORT"
PORT="$1"
[[ "$PORT" =~ ^[0-9]+$ ]] && (( PORT >= 1 && PORT <= 65535 )) || die "PORT must be 1..65535, got '$PORT'"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG="$HERE/config.yaml"
[[ -f "$CONFIG" ]] || die "config not found: $CONFIG"
[[ -f "$HERE/custom_auth.py" ]] || die "auth hook not found: $HERE/custom_auth.py"

VENV="$("$HERE/install.sh")" || die "install failed (see messages above)"
[[ -x "$VENV/bin/litellm" ]] || die "no litellm executable in $VENV"

# Offline and quiet: never fetch the remote model cost map, no telemetry,
# no database, no colour codes in logs.
export LITELLM_LOCAL_MODEL_COST_MAP=True
export LITELLM_TELEMETRY=False
export LITELLM_LOG="${MODELAPI_LITELLM_LOG:-ERROR}"
export LITELLM_MASTER_KEY="${MODELAPI_LITELLM_MASTER_KEY:-sk-modelapi-test-master}"
export PYTHONUNBUFFERED=1
export NO_COLOR=1
unset DATABASE_URL LITELLM_DATABASE_URL DIRECT_URL REDIS_HOST REDIS_URL 2>/dev/null || true

cd "$HERE"
exec "$VENV/bin/litellm" --config "$CONFIG" --host 127.0.0.1 --port "$PORT"
