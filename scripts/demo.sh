#!/usr/bin/env bash
# make demo: the main job on a fresh machine.
#
# Builds gait and the demo MCP upstream (examples/demo_upstream.rs, a real rmcp server), starts
# the upstream on a free loopback port, starts `gait mcp serve` in front of it with
# config/policies/demo.yaml (dev posture: loopback, no auth, dev signing keys), then plays an MCP
# client session with curl: initialize, tools/list (filtered by policy), an allowed call, a
# blocked call and a call that needs approval, printing gait's verdicts. Then it keeps serving on
# http://127.0.0.1:${GAIT_DEMO_PORT:-8787}/mcp until Ctrl-C.
#   DEMO_ONESHOT=1   exit after the scripted session (CI uses this; non-zero exit on any surprise)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${GAIT_DEMO_PORT:-8787}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

echo "== building gait and the demo upstream (cargo build)"
cargo build -q --bin gait --example demo_upstream
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
GAIT="$TARGET_DIR/debug/gait"
UPSTREAM="$TARGET_DIR/debug/examples/demo_upstream"

"$UPSTREAM" --listen 127.0.0.1:0 --port-file "$WORK/up.port" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/up.port" ] && break; sleep 0.1; done
UP_PORT=$(cat "$WORK/up.port")
echo "== demo upstream (rmcp) on 127.0.0.1:$UP_PORT"

"$GAIT" mcp serve --policy config/policies/demo.yaml \
  --upstream "http://127.0.0.1:$UP_PORT/mcp" --listen "127.0.0.1:$PORT" \
  --trace-dir "$WORK/traces" --session-dir "$WORK/sessions" --json >"$WORK/gait.out" 2>"$WORK/gait.log" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "== gait: $(head -n1 "$WORK/gait.out")"

URL="http://127.0.0.1:$PORT/mcp"
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
rpc() { # rpc <body> -> prints the JSON-RPC message (SSE data or JSON body)
  curl -sS -D "$WORK/h" "${H[@]}" ${SID:+-H "Mcp-Session-Id: $SID"} -H 'MCP-Protocol-Version: 2025-06-18' \
    --data "$1" "$URL" | sed -n 's/^data: //p;/^{/p' | tail -n1
}
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"gait-demo","version":"1"}}}'
rpc "$INIT" >/dev/null
SID=$(grep -i '^mcp-session-id:' "$WORK/h" | tr -d '\r' | awk '{print $2}')
rpc '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null || true
fail=0
show() { # show <label> <json> <expect-substring>
  printf '%-34s %s\n' "$1" "$(echo "$2" | cut -c1-160)"
  case "$2" in *"$3"*) ;; *) echo "   unexpected: wanted $3"; fail=1 ;; esac
}
LIST=$(rpc '{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
show "tools/list (filtered):" "$(echo "$LIST" | python3 -c 'import json,sys;print("tools: "+", ".join(sorted(t["name"] for t in json.load(sys.stdin)["result"]["tools"])))')" 'echo'
case "$LIST" in *'"delete_file"'*) echo "   tools/list still shows delete_file"; fail=1 ;; esac
show "tools/call echo (allow):" "$(rpc '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}')" 'hello'
show "tools/call delete_file (block):" "$(rpc '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/etc/passwd"}}}')" '"block"'
show "tools/call write_file (approval):" "$(rpc '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/tmp/x","content":"y"}}}')" '"require_approval"'
echo "== upstream saw: $(curl -fsS "http://127.0.0.1:$UP_PORT/stats")"
echo "== signed traces written: $(find "$WORK/traces" -name '*.json' | wc -l) in $WORK/traces"
if grep -q '"delete_file":[1-9]' <(curl -fsS "http://127.0.0.1:$UP_PORT/stats"); then echo "   blocked call reached the upstream!"; fail=1; fi
if [ "${DEMO_ONESHOT:-0}" = 1 ]; then
  [ $fail = 0 ] && echo "demo: ok" || echo "demo: FAILED"
  exit $fail
fi
echo "== serving on $URL (policy config/policies/demo.yaml); Ctrl-C to stop"
wait "${PIDS[1]}"
