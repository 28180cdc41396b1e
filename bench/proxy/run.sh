#!/usr/bin/env bash
# gemgate's proxy hop against an nginx reverse-proxy hop, measured in one run.
#
# A fast upstream (nginx returning a fixed generateContent reply) is hit three
# ways with wrk: directly, through nginx as a plain reverse proxy, and through
# gemgate (the default release build, as the Docker image has it; 10 keys,
# then 10,000 keys), and the bare poem + reqwest relay that is the fixed
# stack's own floor. Both reply framings are measured: with Content-Length
# (gemgate's complete-reply path) and chunked, as Google sends replies
# (gemgate's streaming relay). Reported as ratios, since the machines are
# noisy: throughput at concurrency 64 (goal: gemgate >= 0.9 of the stack
# floor), the OpenAI route against the native one (goal >= 0.85), median
# latency added over direct at concurrency 1 (goal < 0.2 ms), gemgate with
# 10,000 keys against 10 keys (goal: flat), and RSS.
#
# Usage: bash bench/proxy/run.sh            (DURATION=5s ROUNDS=3 by default)
#        GEMGATE=path/to/gemgate bash bench/proxy/run.sh   (another build of gemgate)
# Needs wrk and nginx (apt-get install wrk nginx-light); installs them if root.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d)
UP=18100 NGX=18101 GG=18102 FLOOR=18103 UPC=18104 GGC=18105 FLOORC=18106
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null; [ -f "$WORK/ngx.pid" ] && kill "$(cat "$WORK/ngx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
cargo build --release --quiet --bin gemgate --example stack_floor

REPLY='{"candidates":[{"content":{"parts":[{"text":"Hello from the benchmark upstream. This reply is about the size of a short real answer from Gemini, with usage metadata at the end."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":30,"totalTokenCount":38},"modelVersion":"gemini-2.5-flash","responseId":"bench"}'

cat > "$WORK/up.conf" <<CONF
worker_processes 1;
pid $WORK/up.pid;
error_log $WORK/up.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP;
    location / { default_type "application/json; charset=UTF-8"; return 200 '$REPLY'; }
  }
  # The same reply sent chunked, as Google's front ends send it (ssi drops the length).
  server {
    listen 127.0.0.1:$UPC;
    location / { default_type "application/json"; ssi on; ssi_types application/json; return 200 '$REPLY'; }
  }
}
CONF
cat > "$WORK/ngx.conf" <<CONF
worker_processes auto;
pid $WORK/ngx.pid;
error_log $WORK/ngx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream google { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass http://google;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
CONF
nginx -c "$WORK/up.conf" -p "$WORK"
nginx -c "$WORK/ngx.conf" -p "$WORK"
# The fixed stack's own floor: poem in, reqwest out, nothing else.
FLOOR_BIN=${FLOOR_BIN:-./target/release/examples/stack_floor}
"$FLOOR_BIN" "127.0.0.1:$FLOOR" "http://127.0.0.1:$UP" &
"$FLOOR_BIN" "127.0.0.1:$FLOORC" "http://127.0.0.1:$UPC" &

cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"contents":[{"role":"user","parts":[{"text":"hello there, benchmark"}]}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-goog-api-key"] = "bench-client-key-0123456789"
LUA
cat > "$WORK/openai.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hello there, benchmark"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-client-key-0123456789"
LUA
PATH_=/v1beta/models/gemini-2.5-flash:generateContent

GEMGATE=$(realpath "${GEMGATE:-./target/release/gemgate}")
start_gemgate() { # $1 = number of keys, [$2 = upstream port, $3 = listen port, $4 = pid variable]
  local up=${2:-$UP} port=${3:-$GG} dir="$WORK/gg-${3:-$GG}"
  rm -rf "$dir" && mkdir -p "$dir/keys"
  python3 - "$1" > "$dir/keys/bench.txt" <<'PY'
import sys
for n in range(int(sys.argv[1])):
    head = "AIzaok-"
    print(head + str(n).rjust(39 - len(head), "0"))
PY
  GEMGATE_SERVER__LISTEN=127.0.0.1:$port GEMGATE_UPSTREAM__BASE_URL=http://127.0.0.1:$up \
  GEMGATE_AUTH__CLIENT_KEYS=bench-client-key-0123456789 GEMGATE_KEYS__DIR="$dir/keys" \
  GEMGATE_STORE__DATA_DIR="$dir/data" GEMGATE_SCAN__INTERVAL_SECS=0 RUST_LOG=warn \
    bash -c 'cd "$1" && exec "$2"' _ "$dir" "$GEMGATE" > "$dir.log" 2>&1 &  # no config.toml: defaults
  eval "${4:-GG_PID}=$!"
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
}
stop_gemgate() { kill "$GG_PID"; wait "$GG_PID" 2>/dev/null || true; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# run PORT CONNECTIONS THREADS [SCRIPT URL_PATH] -> "req_per_sec p50_ms"
run() {
  wrk -t"$3" -c"$2" -d"$DURATION" --latency -s "$WORK/${4:-post}.lua" "http://127.0.0.1:$1${5:-$PATH_}" > "$WORK/wrk.out"
  local rps p50
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p50=$(awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$WORK/wrk.out")
  local errors; errors=$(awk '/Non-2xx/ {print $5}' "$WORK/wrk.out"); [ -z "$errors" ] || echo "  warning: $errors non-2xx answers on port $1" >&2
  echo "$rps $p50"
}

start_gemgate 10
start_gemgate 10 "$UPC" "$GGC" GGC_PID
sleep 1
RSS_IDLE=$(rss_mb "$GG_PID")
curl -s -o /dev/null -H "x-goog-api-key: bench-client-key-0123456789" -d '{"contents":[{"parts":[{"text":"warm"}]}]}' "http://127.0.0.1:$GG$PATH_"

# Interleaved rounds, median of each: the machine's noise hits all alike.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
D64s=() N64s=() G64s=() D1s=() N1s=() G1s=() O64s=() F64s=() DC64s=() FC64s=() GC64s=()
for _ in $(seq "$ROUNDS"); do
  read -r r _ <<<"$(run $UP 64 2)"; D64s+=("$r")
  read -r r _ <<<"$(run $NGX 64 2)"; N64s+=("$r")
  read -r r _ <<<"$(run $FLOOR 64 2)"; F64s+=("$r")
  read -r r _ <<<"$(run $GG 64 2)"; G64s+=("$r")
  read -r r _ <<<"$(run $GG 64 2 openai /v1/chat/completions)"; O64s+=("$r")
  read -r r _ <<<"$(run $UPC 64 2)"; DC64s+=("$r")
  read -r r _ <<<"$(run $FLOORC 64 2)"; FC64s+=("$r")
  read -r r _ <<<"$(run $GGC 64 2)"; GC64s+=("$r")
  read -r _ l <<<"$(run $UP 1 1)"; D1s+=("$l")
  read -r _ l <<<"$(run $NGX 1 1)"; N1s+=("$l")
  read -r _ l <<<"$(run $GG 1 1)"; G1s+=("$l")
done
D64=$(median "${D64s[@]}") N64=$(median "${N64s[@]}") G64=$(median "${G64s[@]}") O64=$(median "${O64s[@]}") F64=$(median "${F64s[@]}")
D1=$(median "${D1s[@]}") N1=$(median "${N1s[@]}") G1=$(median "${G1s[@]}")
DC64=$(median "${DC64s[@]}") FC64=$(median "${FC64s[@]}") GC64=$(median "${GC64s[@]}")
RSS_LOADED=$(rss_mb "$GG_PID")
stop_gemgate
kill "$GGC_PID"; wait "$GGC_PID" 2>/dev/null || true

# The same gemgate with 10,000 keys, alternated with a 10-key gemgate run.
G10s=() G10Ks=()
for _ in $(seq "$ROUNDS"); do
  start_gemgate 10; sleep 1
  read -r r _ <<<"$(run $GG 64 2)"; G10s+=("$r")
  stop_gemgate
  start_gemgate 10000; sleep 2
  RSS_10K=$(rss_mb "$GG_PID")
  read -r r _ <<<"$(run $GG 64 2)"; G10Ks+=("$r")
  RSS_10K_LOADED=$(rss_mb "$GG_PID")
  stop_gemgate
done
G64_10=$(median "${G10s[@]}") G64_10K=$(median "${G10Ks[@]}")

python3 - "$D64" "$N64" "$G64" "$D1" "$N1" "$G1" "$G64_10" "$G64_10K" "$RSS_IDLE" "$RSS_LOADED" "$RSS_10K" "$RSS_10K_LOADED" "$ROUNDS" "$O64" "$F64" "$DC64" "$FC64" "$GC64" <<'PY'
import sys
d64, n64, g64, d1, n1, g1, g64_10, g64k, rss_idle, rss_loaded, rss10k, rss10k_loaded, rounds, o64, f64, dc64, fc64, gc64 = map(float, sys.argv[1:])
print(f"\ngemgate proxy benchmark (one run, same machine, same upstream; median of {rounds:.0f} interleaved rounds)")
print(f"  throughput c=64  direct {d64:>9.0f} req/s   nginx {n64:>9.0f} req/s   gemgate {g64:>9.0f} req/s")
print(f"  gemgate / nginx throughput at c=64:        {g64 / n64:6.2f}   (for scale)")
print(f"  stack floor (bare poem + reqwest relay) / nginx: {f64 / n64:6.2f}   ({f64:.0f} req/s: what the fixed stack allows)")
print(f"  gemgate / stack floor:                     {g64 / f64:6.2f}   (what gemgate's own work costs; goal >= 0.9)")
print(f"  chunked replies (as Google sends them): direct {dc64:.0f}, stack floor {fc64:.0f}, gemgate {gc64:.0f} req/s")
print(f"  gemgate / stack floor, chunked replies:    {gc64 / fc64:6.2f}   (goal >= 0.9)")
print(f"  OpenAI route / native route at c=64:       {o64 / g64:6.2f}   ({o64:.0f} req/s; goal >= 0.85)")
print(f"  median latency c=1  direct {d1:.3f} ms   nginx {n1:.3f} ms   gemgate {g1:.3f} ms")
print(f"  median latency added over direct, c=1:     nginx {n1 - d1:+.3f} ms   gemgate {g1 - d1:+.3f} ms   (goal < 0.2 ms)")
print(f"  gemgate 10,000 keys / 10 keys throughput:  {g64k / g64_10:6.2f}   ({g64k:.0f} vs {g64_10:.0f} req/s; goal: flat, ~1.0)")
print(f"  gemgate RSS: idle {rss_idle:.1f} MB (goal < 25), after load {rss_loaded:.1f} MB; "
      f"10,000 keys idle {rss10k:.1f} MB, after load {rss10k_loaded:.1f} MB")
PY
