#!/usr/bin/env bash
# Two builds of gemgate measured against each other in one run, interleaved
# (the machines are noisy: only an interleaved ratio says "no regression").
# Both run with default settings in front of the same nginx upstream, once
# with Content-Length replies and once chunked, at concurrency 64.
#
# Usage: bash bench/proxy/ab.sh OLD_BINARY NEW_BINARY   (ROUNDS=5 DURATION=4s)
# OLD_CONFIG / NEW_CONFIG: a config.toml for either side (the same binary may
# then be measured against itself under two configs); LUA: a wrk script to
# use instead of the default one-key request (bench/proxy/clients.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$(realpath "$1") NEW=$(realpath "$2")
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4s}
WORK=$(mktemp -d)
UP=18150 UPC=18151
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null && command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null; }
REPLY='{"candidates":[{"content":{"parts":[{"text":"Hello from the benchmark upstream. This reply is about the size of a short real answer from Gemini, with usage metadata at the end."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":30,"totalTokenCount":38},"modelVersion":"gemini-2.5-flash","responseId":"bench"}'
cat > "$WORK/up.conf" <<CONF
worker_processes 1;
pid $WORK/up.pid;
error_log $WORK/up.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type "application/json; charset=UTF-8"; return 200 '$REPLY'; } }
  server { listen 127.0.0.1:$UPC; location / { default_type "application/json"; ssi on; ssi_types application/json; return 200 '$REPLY'; } }
}
CONF
nginx -c "$WORK/up.conf" -p "$WORK"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"contents":[{"role":"user","parts":[{"text":"hello there, benchmark"}]}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-goog-api-key"] = "bench-client-key-0123456789"
LUA
[ -n "${LUA:-}" ] && cp "$LUA" "$WORK/post.lua"
start() { # NAME BINARY PORT UPSTREAM CONFIG
  local dir="$WORK/$1"; mkdir -p "$dir/keys"
  [ -n "${5:-}" ] && cp "$5" "$dir/config.toml"
  for n in $(seq 10); do python3 -c "h='AIzaok-'; print(h + '$n'.rjust(39 - len(h), '0'))"; done > "$dir/keys/k.txt"
  GEMGATE_SERVER__LISTEN=127.0.0.1:$3 GEMGATE_UPSTREAM__BASE_URL=http://127.0.0.1:$4 \
  GEMGATE_AUTH__CLIENT_KEYS=bench-client-key-0123456789 GEMGATE_SCAN__INTERVAL_SECS=0 RUST_LOG=warn \
    bash -c 'cd "$1" && exec "$2"' _ "$dir" "$2" > "$dir.log" 2>&1 &
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$3/healthz" && break; sleep 0.1; done
}
start old "$OLD" 18152 $UP "${OLD_CONFIG:-}"; start new "$NEW" 18153 $UP "${NEW_CONFIG:-}"
start oldc "$OLD" 18154 $UPC "${OLD_CONFIG:-}"; start newc "$NEW" 18155 $UPC "${NEW_CONFIG:-}"
rps() { wrk -t2 -c64 -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$1/v1beta/models/gemini-2.5-flash:generateContent" | awk '/Requests\/sec/ {print $2}'; }
O=() N=() OC=() NC=()
for _ in $(seq "$ROUNDS"); do
  O+=("$(rps 18152)"); N+=("$(rps 18153)"); OC+=("$(rps 18154)"); NC+=("$(rps 18155)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
python3 - "$(median "${O[@]}")" "$(median "${N[@]}")" "$(median "${OC[@]}")" "$(median "${NC[@]}")" "$ROUNDS" <<'PY'
import sys
o, n, oc, nc, rounds = map(float, sys.argv[1:])
print(f"A/B at c=64, median of {rounds:.0f} interleaved rounds")
print(f"  Content-Length replies: old {o:.0f}  new {n:.0f} req/s   new/old {n / o:.3f}")
print(f"  chunked replies:        old {oc:.0f}  new {nc:.0f} req/s   new/old {nc / oc:.3f}")
PY
