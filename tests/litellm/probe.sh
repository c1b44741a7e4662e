#!/usr/bin/env bash
# Print the raw wire behaviour of a running test proxy (the source of NOTES.md).
#
#   tests/litellm/start.sh 40123 >/tmp/litellm.log 2>&1 &
#   tests/litellm/probe.sh 40123
#
# Bodies are shown with `cat -A` where the exact bytes matter: "$" marks a
# "\n", "^M" a "\r", "M-..." a non-ASCII byte.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 PORT" >&2; exit 2; }
U="http://127.0.0.1:$1"
KEY="${MODELAPI_LITELLM_MASTER_KEY:-sk-modelapi-test-master}"
AUTH="Authorization: Bearer $KEY"
CT="Content-Type: application/json"
MSG='"messages":[{"role":"user","content":"hi"}]'

curl -sf -o /dev/null "$U/health/liveliness" || { echo "no proxy answering on $U" >&2; exit 1; }

section() { printf '\n===== %s\n' "$*"; }
post() { curl -sS -i "$@" "$U/v1/chat/completions" -H "$AUTH" -H "$CT"; echo; }

section "(a) non-stream, body mock_response, test-model"
post -d '{"model":"test-model",'"$MSG"',"mock_response":"héllo wörld ✓"}'

section "(b) stream, raw bytes incl. HTTP chunk framing (curl --raw)"
curl -N -sS --raw -i "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
    -d '{"model":"test-model",'"$MSG"',"mock_response":"héllo wörld ✓","stream":true}' | cat -A

section "(c) stream + stream_options.include_usage"
curl -N -sS "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
    -d '{"model":"test-model",'"$MSG"',"mock_response":"héllo wörld ✓","stream":true,"stream_options":{"include_usage":true}}' | cat -A

section "(d) mock-model, no mock_response in body"
post -d '{"model":"mock-model",'"$MSG"'}'

section "(e) wrong key"
curl -sS -i "$U/v1/chat/completions" -H "Authorization: Bearer sk-wrong" -H "$CT" -d '{"model":"mock-model",'"$MSG"'}'; echo
section "(e) no Authorization header"
curl -sS -i "$U/v1/chat/completions" -H "$CT" -d '{"model":"mock-model",'"$MSG"'}'; echo

for m in ratelimit-model error-model; do
    for s in false true; do
        section "(f) $m stream=$s"
        post -d '{"model":"'"$m"'","stream":'"$s"','"$MSG"'}'
    done
done

section "(h) /chat/completions (no /v1)"
curl -sS -o /dev/null -w 'HTTP %{http_code}\n' "$U/chat/completions" -H "$AUTH" -H "$CT" \
    -d '{"model":"test-model",'"$MSG"',"mock_response":"x"}'

section "keep-alive: two requests on one connection"
curl -sS -v -o /dev/null -o /dev/null "$U/v1/chat/completions" "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
    -d '{"model":"test-model",'"$MSG"',"mock_response":"x"}' 2>&1 | grep -Ei 're-using|left intact|^< HTTP|closing'

# ---- Tool calls and reasoning in streams (NOTES.md, section of that name) ----
CONV='"_compression_interception_converted_stream":true'
TC='"mock_tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]'

for m in mock-tools-model mock-reasoning-model; do
    section "(t) $m non-stream"
    post -d '{"model":"'"$m"'",'"$MSG"'}'
    section "(t) $m stream (no converted-stream key) -> 500"
    post -d '{"model":"'"$m"'","stream":true,'"$MSG"'}'
    section "(t) $m stream + $CONV"
    curl -N -sS "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
        -d '{"model":"'"$m"'","stream":true,'"$CONV"','"$MSG"'}'
    section "(t) $m stream + $CONV + include_usage"
    curl -N -sS "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
        -d '{"model":"'"$m"'","stream":true,"stream_options":{"include_usage":true},'"$CONV"','"$MSG"'}'
done

section "(t) mock-tools-model, stream:false + $CONV -> SSE anyway"
curl -N -sS -i "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
    -d '{"model":"mock-tools-model","stream":false,'"$CONV"','"$MSG"'}' | grep -E '^(HTTP|content-type|data:)'

section "(t) body mock_tool_calls + stream:true -> tool calls dropped, text only"
curl -N -sS "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
    -d '{"model":"test-model","stream":true,"mock_response":"ok",'"$TC"','"$MSG"'}'

section "(t) body dict mock_response with reasoning_content, stream + $CONV"
curl -N -sS "$U/v1/chat/completions" -H "$AUTH" -H "$CT" \
    -d '{"model":"test-model","stream":true,'"$CONV"','"$MSG"',"mock_response":{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"The answer is 4.","reasoning_content":"2+2 is 4."}}]}}'

section "(t) the other converted-stream keys are stripped by the proxy -> 500"
for k in _websearch_interception_converted_stream _headroom_interception_converted_stream _code_interpreter_interception_converted_stream; do
    curl -sS "$U/v1/chat/completions" -H "$AUTH" -H "$CT" -d '{"model":"mock-tools-model","stream":true,"'"$k"'":true,'"$MSG"'}'; echo
done
