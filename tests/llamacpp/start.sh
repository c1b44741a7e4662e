#!/usr/bin/env bash
# Run llama.cpp's llama-server with the test model on 127.0.0.1:PORT, in the
# foreground.
#
#   tests/llamacpp/start.sh PORT
#
# Installs the pinned server and model first when needed (install.sh, cached),
# then *execs* llama-server, so the PID of this script is the PID of the
# server: start it in the background, poll GET /health until it answers 200,
# stop it with SIGTERM.
#
# The server: one slot (-np 1, so a request waits for the one before it), one
# thread for generation and prompt processing (the other core is the
# client's), a 4096-token context, no Web UI. The model is served as
# "smollm2-135m-instruct" (any model name in a request is accepted).
#
# Env:
#   MODELAPI_LLAMACPP_HOME        the cache (default ~/.cache/modelapi/llamacpp-11434)
#   MODELAPI_LLAMACPP_THREADS     threads (default 1)
#   MODELAPI_LLAMACPP_EXTRA_ARGS  more llama-server arguments, split on spaces
set -euo pipefail

die() { echo "llamacpp-start: ERROR: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 PORT"
PORT="$1"
[[ "$PORT" =~ ^[0-9]+$ ]] && (( PORT >= 1 && PORT <= 65535 )) || die "PORT must be 1..65535, got '$PORT'"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$(bash "$HERE/install.sh")" || die "install failed (see messages above)"
SERVER="$CACHE/bin/llama-server"
MODEL="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -x "$SERVER" ]] || die "no llama-server in $CACHE/bin"
[[ -f "$MODEL" ]] || die "no model at $MODEL"
THREADS="${MODELAPI_LLAMACPP_THREADS:-1}"

# shellcheck disable=SC2086 # EXTRA_ARGS is split on purpose
exec "$SERVER" -m "$MODEL" --alias smollm2-135m-instruct \
    --host 127.0.0.1 --port "$PORT" \
    -c 4096 -np 1 --threads "$THREADS" --threads-batch "$THREADS" \
    --no-webui --log-colors off \
    ${MODELAPI_LLAMACPP_EXTRA_ARGS:-}
