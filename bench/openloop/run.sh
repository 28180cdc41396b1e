#!/usr/bin/env bash
# Open-loop latency against the in-tree fake of Google with a slow upstream
# (20 ms before each reply, sent chunked as Google's front ends do): direct to
# the fake, gemgate's native route, its OpenAI route and the native SSE
# stream, at fixed rates. Prints p50/p99 latency (from when each request was
# due), the achieved rate, and gemgate's CPU per request (from /proc).
#
# Usage: bash bench/openloop/run.sh        (RATES="1000 2000 4000 6000" SECS=8 CONNECTIONS=256)
#        GEMGATE=path/to/gemgate bash bench/openloop/run.sh   (another build, e.g. before a change)
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${RATES:-"1000 2000 4000 6000"}
SECS=${SECS:-8}
CONNECTIONS=${CONNECTIONS:-256}
DELAY=${DELAY:-20}
FAKE_PORT=18200 GG_PORT=18202
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cargo build --release --quiet --bin gemgate --example fake_upstream --example openloop
GEMGATE=$(realpath "${GEMGATE:-./target/release/gemgate}")
LOAD=./target/release/examples/openloop

./target/release/examples/fake_upstream --port "$FAKE_PORT" > "$WORK/fake.log" 2>&1 &
mkdir -p "$WORK/keys"
for n in 1 2 3 4 5 6 7 8; do
  python3 -c "import sys; h='AIzaslow$DELAY-'; print(h + '$n'.rjust(39 - len(h), '0'))"
done > "$WORK/keys/bench.txt"
DIRECT_KEY=$(head -1 "$WORK/keys/bench.txt")
CLIENT=bench-client-key-0123456789
GEMGATE_SERVER__LISTEN=127.0.0.1:$GG_PORT GEMGATE_UPSTREAM__BASE_URL=http://127.0.0.1:$FAKE_PORT \
GEMGATE_AUTH__CLIENT_KEYS=$CLIENT GEMGATE_KEYS__DIR="$WORK/keys" GEMGATE_STORE__DATA_DIR="$WORK/data" \
GEMGATE_SCAN__INTERVAL_SECS=0 RUST_LOG=warn \
  bash -c 'cd "$1" && exec "$2"' _ "$WORK" "$GEMGATE" > "$WORK/gg.log" 2>&1 &  # no config.toml: defaults
GG_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$GG_PORT/healthz" && break; sleep 0.1; done
kill -0 "$GG_PID" 2>/dev/null || { echo "gemgate did not start:" >&2; cat "$WORK/gg.log" >&2; exit 1; }
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$FAKE_PORT/" && break; sleep 0.1; done

NATIVE_BODY='{"contents":[{"role":"user","parts":[{"text":"hello there, benchmark"}]}]}'
OPENAI_BODY='{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hello there, benchmark"}]}'
MODEL_PATH=/v1beta/models/gemini-2.5-flash
cpu_ticks() { awk '{print $14 + $15}' "/proc/$GG_PID/stat"; }
TICK=$(getconf CLK_TCK)

# target NAME URL BODY HEADER
measure() {
  local name=$1 url=$2 body=$3 header=$4
  for rate in $RATES; do
    local before after line
    before=$(cpu_ticks)
    line=$("$LOAD" --url "$url" --rate "$rate" --secs "$SECS" --connections "$CONNECTIONS" --header "$header" --body "$body")
    after=$(cpu_ticks)
    read -r offered achieved p50 p99 errors <<<"$line"
    local cpu_us
    cpu_us=$(python3 -c "print(f'{($after - $before) / $TICK * 1e6 / max(1, $achieved * $SECS):.0f}')")
    printf '| %-15s | %6s | %8s | %8s | %8s | %6s | %s |\n' "$name" "$offered" "$achieved" "$p50" "$p99" "$errors" \
      "$([ "$name" = direct ] && echo - || echo "$cpu_us")"
  done
}
echo "open loop, ${DELAY} ms upstream (chunked), ${CONNECTIONS} connections, ${SECS} s per rate"
echo "| target          | offered | achieved | p50 ms | p99 ms | errors | gemgate CPU µs/req |"
echo "|---|---|---|---|---|---|---|"
measure direct "http://127.0.0.1:$FAKE_PORT$MODEL_PATH:generateContent" "$NATIVE_BODY" "x-goog-api-key: $DIRECT_KEY"
measure native "http://127.0.0.1:$GG_PORT$MODEL_PATH:generateContent" "$NATIVE_BODY" "x-goog-api-key: $CLIENT"
measure openai "http://127.0.0.1:$GG_PORT/v1/chat/completions" "$OPENAI_BODY" "authorization: Bearer $CLIENT"
measure native-sse "http://127.0.0.1:$GG_PORT$MODEL_PATH:streamGenerateContent?alt=sse" "$NATIVE_BODY" "x-goog-api-key: $CLIENT"
