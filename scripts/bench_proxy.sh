#!/usr/bin/env bash
# Throughput / added-latency benchmark of the gait MCP proxy on loopback.
#
# Runs wrk against a minimal hyper upstream directly and through `gait mcp serve` (policy
# evaluation + signed traces on, allowed tools/call), in one run, and prints the throughput
# ratio and the added p50/p99 latency at 1 connection. Results: perf/proxy_last.json.
#
# Env: DURATION (seconds per run, default 5), CONNS (concurrent connections, default 32),
#      THREADS (wrk threads, default 2), SKIP_BUILD=1 to reuse existing release binaries,
#      GAIT_BIN (default $CARGO_TARGET_DIR/release/gait), UPSTREAM_BIN (a demo_upstream binary,
#      run with `--mode fast`, instead of scripts/bench_upstream).
# Targets (reported, not enforced): through-gait >= 0.40x direct; added latency at
# 1 connection <= 100 us p50 / <= 300 us p99.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-5}"
CONNS="${CONNS:-32}"
THREADS="${THREADS:-2}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${GAIT_BIN:-$TARGET_DIR/release/gait}"
UP_TARGET="$TARGET_DIR/bench_upstream"
UP_BIN="$UP_TARGET/release/bench_upstream"

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found; installing the apt package"
  (apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null; }) \
    || { echo "cannot install wrk" >&2; exit 1; }
fi
if [ "${SKIP_BUILD:-0}" != "1" ]; then
  timeout 1800 cargo build --release --bin gait
  (cd scripts/bench_upstream && CARGO_TARGET_DIR="$UP_TARGET" timeout 1200 cargo build --release)
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open" >&2; return 1
}

UP_PORT="$(free_port)"
GAIT_PORT="$(free_port)"
if [ -n "${UPSTREAM_BIN:-}" ]; then
  "$UPSTREAM_BIN" --listen "127.0.0.1:$UP_PORT" --mode fast >/dev/null 2>&1 &
else
  "$UP_BIN" "127.0.0.1:$UP_PORT" >/dev/null &
fi
PIDS+=($!)
wait_port "$UP_PORT"

cat >"$WORK/policy.yaml" <<'YAML'
schema_id: gait.gate.policy
schema_version: 1.0.0
default_verdict: block
rules:
  - name: allow-echo
    priority: 10
    effect: allow
    match:
      tool_names: [echo]
YAML
GAIT_LOG=warn "$BIN" mcp serve --policy "$WORK/policy.yaml" --listen "127.0.0.1:$GAIT_PORT" \
  --upstream "http://127.0.0.1:$UP_PORT/mcp" --trace-dir "$WORK/traces" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$GAIT_PORT"

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
LUA

# sanity: the gated call is allowed and forwarded
curl -s -X POST "http://127.0.0.1:$GAIT_PORT/mcp" -H 'Content-Type: application/json' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}' \
  | grep -q '"result"' || { echo "sanity call through gait failed" >&2; exit 1; }

run_wrk() { # url conns threads -> "rps p50_us p99_us"
  local out
  out="$(timeout $((DURATION + 30)) wrk -t"$3" -c"$2" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1")"
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def us(v, unit):
    return float(v) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
lat = dict((p, us(v, u)) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", out, re.M))
errs = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
print(rps, lat["50"], lat["99"], errs.group(1) if errs else 0)
PY
}

echo "warming up"
timeout 20 wrk -t1 -c4 -d1s -s "$WORK/post.lua" "http://127.0.0.1:$GAIT_PORT/mcp" >/dev/null
echo "direct, 1 conn";   read -r D1 D1P50 D1P99 D1E <<<"$(run_wrk "http://127.0.0.1:$UP_PORT/mcp" 1 1)"
echo "gait,   1 conn";   read -r G1 G1P50 G1P99 G1E <<<"$(run_wrk "http://127.0.0.1:$GAIT_PORT/mcp" 1 1)"
echo "direct, $CONNS conns"; read -r DN DNP50 DNP99 DNE <<<"$(run_wrk "http://127.0.0.1:$UP_PORT/mcp" "$CONNS" "$THREADS")"
echo "gait,   $CONNS conns"; read -r GN GNP50 GNP99 GNE <<<"$(run_wrk "http://127.0.0.1:$GAIT_PORT/mcp" "$CONNS" "$THREADS")"
TRACES="$(find "$WORK/traces" -name 'trace_*.json' 2>/dev/null | wc -l)"

mkdir -p perf
python3 - "$D1" "$D1P50" "$D1P99" "$G1" "$G1P50" "$G1P99" "$DN" "$DNP50" "$DNP99" "$GN" "$GNP50" "$GNP99" \
  "$CONNS" "$DURATION" "$TRACES" "$G1E" "$GNE" <<'PY'
import json, sys, datetime, os
a = sys.argv[1:]
f = [float(x) for x in a[:12]]
d1, d1p50, d1p99, g1, g1p50, g1p99, dn, dnp50, dnp99, gn, gnp50, gnp99 = f
res = {
    "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "host_cpus": os.cpu_count(),
    "loadavg_1m": os.getloadavg()[0],
    "duration_s": int(a[13]),
    "connections": int(a[12]),
    "one_conn": {"direct_rps": d1, "gait_rps": g1, "direct_p50_us": d1p50, "direct_p99_us": d1p99,
                 "gait_p50_us": g1p50, "gait_p99_us": g1p99,
                 "added_p50_us": round(g1p50 - d1p50, 1), "added_p99_us": round(g1p99 - d1p99, 1)},
    "many_conns": {"direct_rps": dn, "gait_rps": gn, "ratio": round(gn / dn, 3) if dn else None,
                   "direct_p50_us": dnp50, "direct_p99_us": dnp99, "gait_p50_us": gnp50, "gait_p99_us": gnp99},
    "gait_non_2xx": int(a[15]) + int(a[16]),
    "traces_written": int(a[14]),
    "targets": {"ratio_min": 0.40, "added_p50_us_max": 100, "added_p99_us_max": 300},
}
res["meets"] = {
    "ratio": res["many_conns"]["ratio"] is not None and res["many_conns"]["ratio"] >= 0.40,
    "added_p50": res["one_conn"]["added_p50_us"] <= 100,
    "added_p99": res["one_conn"]["added_p99_us"] <= 300,
}
open("perf/proxy_last.json", "w").write(json.dumps(res, indent=2) + "\n")
m, o = res["many_conns"], res["one_conn"]
print(f"throughput ({res['connections']} conns): direct {m['direct_rps']:.0f} req/s, gait {m['gait_rps']:.0f} req/s, ratio {m['ratio']}")
print(f"1 conn: direct p50 {o['direct_p50_us']:.0f}us p99 {o['direct_p99_us']:.0f}us; gait p50 {o['gait_p50_us']:.0f}us p99 {o['gait_p99_us']:.0f}us")
print(f"added latency at 1 conn: p50 {o['added_p50_us']}us, p99 {o['added_p99_us']}us; traces written {res['traces_written']}; non-2xx {res['gait_non_2xx']}")
print("results: perf/proxy_last.json")
PY
