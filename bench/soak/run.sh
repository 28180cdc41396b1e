#!/usr/bin/env bash
# A soak: gemgate at 70% of its measured peak for MINUTES minutes (default
# 10), open loop, against the in-tree fake of Google; each minute prints the
# achieved rate, p50/p99 latency, gemgate's RSS and the store's size, and the
# end prints the drift (last minute against the first). Goal (issue 16):
# throughput and RSS flat within 10%, the store growing by rollups and
# sampled rows rather than one row per request.
#
# Usage: bash bench/soak/run.sh     (MINUTES=10 SHARE=0.7 SAMPLE=0.01 CONNECTIONS=256)
#        GEMGATE=path/to/gemgate bash bench/soak/run.sh
# SAMPLE is store.log_sample_successes (1: every request's row is kept).
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${MINUTES:-10}
SHARE=${SHARE:-0.7}
SAMPLE=${SAMPLE:-0.01}
CONNECTIONS=${CONNECTIONS:-256}
FAKE_PORT=18210 GG_PORT=18212
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin gemgate --example fake_upstream --example openloop
GEMGATE=$(realpath "${GEMGATE:-./target/release/gemgate}")
LOAD=./target/release/examples/openloop

./target/release/examples/fake_upstream --port "$FAKE_PORT" > "$WORK/fake.log" 2>&1 &
mkdir -p "$WORK/keys"
for n in 1 2 3 4 5 6 7 8; do python3 -c "h='AIzaok-'; print(h + '$n'.rjust(39 - len(h), '0'))"; done > "$WORK/keys/soak.txt"
CLIENT=bench-client-key-0123456789
GEMGATE_SERVER__LISTEN=127.0.0.1:$GG_PORT GEMGATE_UPSTREAM__BASE_URL=http://127.0.0.1:$FAKE_PORT \
GEMGATE_AUTH__CLIENT_KEYS=$CLIENT GEMGATE_KEYS__DIR="$WORK/keys" GEMGATE_STORE__DATA_DIR="$WORK/data" \
GEMGATE_STORE__LOG_SAMPLE_SUCCESSES=$SAMPLE GEMGATE_SCAN__INTERVAL_SECS=0 RUST_LOG=warn \
  bash -c 'cd "$1" && exec "$2"' _ "$WORK" "$GEMGATE" > "$WORK/gg.log" 2>&1 &
GG_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$GG_PORT/healthz" && break; sleep 0.1; done
kill -0 "$GG_PID" 2>/dev/null || { echo "gemgate did not start:" >&2; cat "$WORK/gg.log" >&2; exit 1; }

URL=http://127.0.0.1:$GG_PORT/v1beta/models/gemini-2.5-flash:generateContent
BODY='{"contents":[{"role":"user","parts":[{"text":"hello there, benchmark"}]}]}'
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-goog-api-key"] = "$CLIENT"
LUA
PEAK=$(wrk -t2 -c64 -d10s -s "$WORK/post.lua" "$URL" | awk '/Requests\/sec/ {print int($2)}')
RATE=$(python3 -c "print(int($PEAK * $SHARE))")
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$GG_PID/status"; }
store_mb() { du -cm "$WORK"/data/gemgate.db* 2>/dev/null | awk 'END {print $1}'; }
echo "peak (wrk, c=64, 10 s): $PEAK req/s; soak at $RATE req/s ($SHARE), success rows sampled at $SAMPLE"
echo "| minute | achieved req/s | p50 ms | p99 ms | errors | RSS MB | store MB |"
echo "|---|---|---|---|---|---|---|"
: > "$WORK/minutes"
for minute in $(seq "$MINUTES"); do
  read -r _ achieved p50 p99 errors <<<"$("$LOAD" --url "$URL" --rate "$RATE" --secs 60 \
    --connections "$CONNECTIONS" --header "x-goog-api-key: $CLIENT" --body "$BODY")"
  rss=$(rss_mb); store=$(store_mb)
  echo "| $minute | $achieved | $p50 | $p99 | $errors | $rss | $store |"
  echo "$achieved $rss" >> "$WORK/minutes"
done
python3 - "$WORK/minutes" <<'PY'
import sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
(rate0, rss0), (rate1, rss1) = rows[0], rows[-1]
print(f"drift, last minute / first: throughput {rate1 / rate0:.3f}, RSS {rss1 / rss0:.3f}")
PY
