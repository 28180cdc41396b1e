#!/usr/bin/env bash
# What 1,000 limited client keys cost: one build of gemgate measured against
# itself, with the same 1,000 client keys declared in config.toml, once
# without limits and once each with requests per minute and per day, tokens
# per minute and a token budget (all too high to refuse anything: the cost
# measured is the checking and counting). Every request picks one of the
# 1,000 keys at random. Goal: the limited run keeps >= 0.95 of the plain
# one's throughput (under 5% for the limit check).
#
# Usage: bash bench/proxy/clients.sh [BINARY]   (ROUNDS=5 DURATION=4s)
#
# CLUSTER=redis://127.0.0.1:6379: instead, the limited keys alone (old)
# against the limited keys in a cluster (new), whose limits are checked and
# counted in that Redis by one script per request (issue 16's goal: the
# cluster costs under 10%).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/gemgate}
[ -x "$BIN" ] || cargo build --release --quiet --bin gemgate
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$WORK" <<'PY'
import hashlib, sys
work = sys.argv[1]
keys = [f"bench-client-{n:04d}-0123456789" for n in range(1000)]
open(f"{work}/keys.txt", "w").write("\n".join(keys) + "\n")
def config(limited):
    out = []
    for n, key in enumerate(keys):
        out.append("[[clients.keys]]")
        out.append(f'name = "client-{n:04d}"')
        out.append(f'key_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"')
        if limited:
            out += ["rpm = 100000000", "rpd = 1000000000", "tpm = 1000000000000",
                    "budget_tokens = 1000000000000000", 'budget_period = "day"']
    return "\n".join(out) + "\n"
open(f"{work}/plain.toml", "w").write(config(False))
open(f"{work}/limited.toml", "w").write(config(True))
open(f"{work}/cluster.toml", "w").write(
    config(True) + f'[cluster]\nredis_url = "{__import__("os").environ.get("CLUSTER", "")}"\n'
    + f'namespace = "gemgate-bench-{__import__("os").getpid()}"\n')
open(f"{work}/clients.lua", "w").write(f'''
local keys = {{}}
for line in io.lines("{work}/keys.txt") do keys[#keys + 1] = line end
local body = '{{"contents":[{{"role":"user","parts":[{{"text":"hello there, benchmark"}}]}}]}}'
request = function()
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json", ["x-goog-api-key"] = keys[math.random(#keys)]}}, body)
end
''')
PY
if [ -n "${CLUSTER:-}" ]; then
  echo "old = 1,000 limited client keys, one process; new = the same in a cluster (limits counted in Redis)"
  OLD_CONFIG="$WORK/limited.toml" NEW_CONFIG="$WORK/cluster.toml" LUA="$WORK/clients.lua" bash bench/proxy/ab.sh "$BIN" "$BIN"
  exit
fi
echo "old = 1,000 client keys without limits, new = the same keys each with RPM, RPD, TPM and a budget"
OLD_CONFIG="$WORK/plain.toml" NEW_CONFIG="$WORK/limited.toml" LUA="$WORK/clients.lua" bash bench/proxy/ab.sh "$BIN" "$BIN"
