#!/usr/bin/env bash
# Time to first chunk and chunks per second of one greedy streamed request to
# llama-server, through modelapi (Rust and C), curl and the openai package.
#
#   tests/llamacpp/bench.sh [--reps N] [--max-tokens N] [--url URL]
#
# Without --url it starts its own llama-server (tests/llamacpp/start.sh, on a
# free loopback port) and stops it by PID when done. Each client is a
# process making one request on a new connection; the clients take turns,
# --reps times (default 7), after one warm-up round. Each one times the
# request from just before it is sent:
#   modelapi Rust  tests/llamacpp/bench-rs (release, LTO): next_chunk()
#   modelapi C     tests/llamacpp/bench_client.c on target/release/libmodelapi.a:
#                  modelapi_stream_next()
#   curl -N        curl's own --trace-time: from "Trying" to each "<= Recv data"
#                  that holds content (counted in the SSE it carries)
#   openai         openai==3.57.0 in ~/.cache/modelapi/bench-openai-3.57.0:
#                  the sync client's stream iterator
# ttfc = time to the first non-empty content chunk; chunks/s = (chunks - 1) /
# (time from the first content chunk to the last). The table gives medians,
# and each client's median over curl's.
#
# The request: greedy (temperature 0, seed 42), cache_prompt false (the whole
# prompt evaluated every time), --max-tokens tokens (default 128).
set -euo pipefail

REPS=7
MAX_TOKENS=128
URL=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift 2 ;;
        --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
        --url) URL="$2"; shift 2 ;;
        *) echo "usage: $0 [--reps N] [--max-tokens N] [--url URL]" >&2; exit 2 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODEL="smollm2-135m-instruct"
OPENAI_VERSION="3.57.0"
VENV="$HOME/.cache/modelapi/bench-openai-${OPENAI_VERSION}"
OUT="$ROOT/target/llamacpp-bench"
mkdir -p "$OUT"
log() { echo "bench: $*" >&2; }

# --- the clients ---
log "building modelapi (release) and the C client"
(cd "$ROOT" && cargo build --release --lib --quiet)
cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -I"$ROOT/include" "$HERE/bench_client.c" \
    "$ROOT/target/release/libmodelapi.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -pthread \
    -o "$OUT/bench_client"
log "building the Rust client (release)"
cargo build --release --quiet --manifest-path "$HERE/bench-rs/Cargo.toml" --target-dir "$OUT/rs"
if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    log "installing openai==$OPENAI_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "openai==$OPENAI_VERSION" >&2
fi

# --- the server ---
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
if [[ -z "$URL" ]]; then
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    bash "$HERE/start.sh" "$PORT" >"$OUT/llama-server.log" 2>&1 &
    SERVER_PID=$!
    URL="http://127.0.0.1:$PORT"
    for _ in $(seq 600); do
        curl -sf "$URL/health" >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/llama-server.log" >&2; exit 1; }
        sleep 0.5
    done
    curl -sf "$URL/health" >/dev/null || { log "llama-server did not start"; exit 1; }
fi

REQUEST="$(python3 -c '
import json, sys
print(json.dumps({"messages": [{"role": "user", "content": "Write a long story about a dragon."}],
                  "temperature": 0, "seed": 42, "max_tokens": int(sys.argv[1]),
                  "cache_prompt": False}))' "$MAX_TOKENS")"

# curl: its own timestamps, parsed from --trace-ascii.
curl_once() {
    local trace="$OUT/curl.trace"
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["model"]=sys.argv[2]; r["stream"]=True; print(json.dumps(r))' \
        "$REQUEST" "$MODEL" >"$OUT/curl.body"
    curl -sN --trace-ascii "$trace" --trace-time -o /dev/null "$URL/v1/chat/completions" \
        -H 'Content-Type: application/json' --data-binary @"$OUT/curl.body"
    python3 - "$trace" <<'EOF'
import json, re, sys
from datetime import datetime

def at(stamp):
    t = datetime.strptime(stamp, "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6

start, blocks, current = None, [], None
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.match(r"(\d\d:\d\d:\d\d\.\d+) (.*)", line)
    if m:
        what = m.group(2)
        if start is None and what.startswith("== Info:   Trying"):
            start = at(m.group(1))
        current = [at(m.group(1)), ""] if what.startswith("<= Recv data") else None
        if current:
            blocks.append(current)
    elif current is not None and re.match(r"[0-9a-f]{4}: ", line):
        current[1] += line[6:].rstrip("\n")
first = last = None
chunks = size = 0
for t, text in blocks:
    for m in re.finditer(r'"delta":\{"content":"((?:[^"\\]|\\.)+)"', text):
        chunks += 1
        size += len(json.loads('"' + m.group(1) + '"').encode())
        first = t if first is None else first
        last = t
print(json.dumps({"ttfc_ms": (first - start) * 1000, "chunks": chunks,
                  "span_s": last - first, "bytes": size}))
EOF
}

run_client() {
    case "$1" in
        rust) "$OUT/rs/release/llamacpp-bench-rs" "$URL" "$MODEL" "$REQUEST" ;;
        c) "$OUT/bench_client" "$URL" "$MODEL" "$REQUEST" ;;
        curl) curl_once ;;
        openai) "$VENV/bin/python" "$HERE/bench_openai.py" "$URL" "$MODEL" "$REQUEST" ;;
    esac
}

CLIENTS=(curl rust c openai)
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
log "warm-up round, then $REPS rounds of ${CLIENTS[*]} ($MAX_TOKENS tokens each)"
for client in "${CLIENTS[@]}"; do run_client "$client" >/dev/null; done
for rep in $(seq "$REPS"); do
    for client in "${CLIENTS[@]}"; do
        line="$(run_client "$client")"
        echo "{\"client\": \"$client\", \"rep\": $rep, \"result\": $line}" >>"$RESULTS"
    done
done

python3 - "$RESULTS" "$MAX_TOKENS" "$REPS" "$(nproc)" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = {"rust": "modelapi (Rust, `next_chunk`)", "c": "modelapi (C, `modelapi_stream_next`)",
         "curl": "curl -N", "openai": "openai 3.57.0 (Python, sync)"}
stats = {}
for client in ["curl", "rust", "c", "openai"]:
    rs = [r["result"] for r in rows if r["client"] == client]
    ttfc = statistics.median(r["ttfc_ms"] for r in rs)
    rate = statistics.median((r["chunks"] - 1) / r["span_s"] for r in rs)
    chunks = sorted({r["chunks"] for r in rs})
    stats[client] = (ttfc, rate, chunks, min(r["ttfc_ms"] for r in rs), max(r["ttfc_ms"] for r in rs))
base_ttfc, base_rate = stats["curl"][0], stats["curl"][1]
print(f"llama-server (SmolLM2-135M-Instruct Q4_1, 1 thread, 1 slot), one greedy streamed request of "
      f"{sys.argv[2]} tokens, cache_prompt false; median of {sys.argv[3]} runs each, interleaved; "
      f"{sys.argv[4]} cores.\n")
print("| client | time to first chunk (median, min–max) | vs curl | chunks/s (median) | vs curl | content chunks |")
print("|---|---|---|---|---|---|")
for client, (ttfc, rate, chunks, lo, hi) in stats.items():
    print(f"| {names[client]} | {ttfc:.1f} ms ({lo:.1f}–{hi:.1f}) | {100 * ttfc / base_ttfc:.1f} % "
          f"| {rate:.1f} | {100 * rate / base_rate:.1f} % | {', '.join(map(str, chunks))} |")
EOF
