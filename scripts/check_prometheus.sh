#!/usr/bin/env bash
# Acceptance check of gait's /metrics against real Prometheus tooling.
#
# Usage: scripts/check_prometheus.sh                          (self-contained, what CI runs)
#        scripts/check_prometheus.sh http://127.0.0.1:9464 [bearer-token]
#
# Without an URL it starts, on 127.0.0.1 with ephemeral ports, the demo MCP upstream and
# `gait mcp serve` with deploy/compose/policy.yaml and an admin listener protected by a metrics
# token (the compose posture), and drives one allowed and one blocked tools/call through it.
# With an URL it checks an already running gait admin listener.
# Then:
# 1. installs Debian's `prometheus` package if promtool/prometheus are missing (apt-get);
# 2. scrapes <admin-url>/metrics and runs `promtool check metrics` on it;
# 3. starts Prometheus on loopback with a 1s scrape interval against that listener and
#    queries its HTTP API until gait series (`{__name__=~"gait_.+"}`) are present (and, in the
#    self-contained mode, the decisions of the driven calls).
# Prints one PASS/FAIL line per check and `N passed, N failed`; exit 0 = every check passed.
# Bounded in time: every wait has a deadline (TIMEOUT_SECS, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${1:-}"
TOKEN="${2:-}"
TIMEOUT_SECS="${TIMEOUT_SECS:-60}"
PASSED=0
FAILED=0

log() { printf 'check_prometheus: %s\n' "$*" >&2; }
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]; exit $?; }
die() { fail "$1" "$2"; finish; }
free_port() { python3 scripts/lib/mcp_client.py free-port; }

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  log "installing prometheus (apt-get)"
  [ "$(id -u)" -eq 0 ] || die prometheus_installed "promtool/prometheus missing and not root (apt-get install prometheus)"
  timeout 300 apt-get update -qq || die prometheus_installed "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends prometheus \
    || die prometheus_installed "apt-get install prometheus failed"
  # Debian may start the packaged service; we run our own instance on an ephemeral port.
  systemctl stop prometheus >/dev/null 2>&1 || true
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

wait_http() { python3 scripts/lib/mcp_client.py wait-http "$1" "${2:-20}"; }

SELF=0
if [ -z "$ADMIN_URL" ]; then
  SELF=1
  # shellcheck source=scripts/lib/build.sh
  source scripts/lib/build.sh
  build_release_bins >/dev/null || die build "release binaries missing (GAIT_BIN=$GAIT_BIN)"
  UP_PORT=$(free_port); GAIT_PORT=$(free_port); ADMIN_PORT=$(free_port)
  TOKEN="check-prometheus-metrics-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  mkdir -p "$WORK/gait/.gait"
  cp deploy/compose/policy.yaml "$WORK/policy.yaml"
  cat >"$WORK/gait/.gait/config.yaml" <<EOF
metrics:
  enabled: true
  listen: 127.0.0.1:$ADMIN_PORT
  auth_token_env: GAIT_METRICS_TOKEN
EOF
  "$UPSTREAM_BIN" --listen "127.0.0.1:$UP_PORT" --name tools-a >"$WORK/upstream.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$UP_PORT/healthz" 20 || die upstream_starts "$(tail -5 "$WORK/upstream.log")"
  (cd "$WORK/gait" && GAIT_METRICS_TOKEN="$TOKEN" exec "$GAIT_BIN" mcp serve \
      --listen "127.0.0.1:$GAIT_PORT" --policy "$WORK/policy.yaml" \
      --upstream "http://127.0.0.1:$UP_PORT/mcp" --config "$WORK/gait/.gait/config.yaml" \
      --trace-dir "$WORK/traces" --session-dir "$WORK/sessions" >"$WORK/gait.log" 2>&1) &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$GAIT_PORT/healthz" 20 || die gait_starts "$(tail -5 "$WORK/gait.log")"
  wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" 10 >/dev/null 2>&1 || true
  pass gait_starts
  if python3 scripts/lib/mcp_client.py call "http://127.0.0.1:$GAIT_PORT/mcp" echo '{"text":"prom"}' >/dev/null; then
    pass allowed_call_through_gait
  else
    fail allowed_call_through_gait "echo was not answered"
  fi
  if ! python3 scripts/lib/mcp_client.py call "http://127.0.0.1:$GAIT_PORT/mcp" delete_file '{"path":"/"}' >/dev/null; then
    pass blocked_call_through_gait
  else
    fail blocked_call_through_gait "delete_file was allowed"
  fi
  ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$ADMIN_URL/metrics" || true)
  if [ "$code" = "401" ]; then pass metrics_requires_token; else fail metrics_requires_token "HTTP $code without token"; fi
fi
ADMIN_URL="${ADMIN_URL%/}"
PROM_PORT="${PROM_PORT:-$(free_port)}"

AUTH=()
if [ -n "$TOKEN" ]; then AUTH=(-H "Authorization: Bearer $TOKEN"); fi

log "scraping $ADMIN_URL/metrics"
curl -fsS --max-time 10 "${AUTH[@]}" "$ADMIN_URL/metrics" -o "$WORK/scrape.txt" \
  || die metrics_scrape "cannot scrape $ADMIN_URL/metrics"
if grep -q '^# TYPE gait_' "$WORK/scrape.txt"; then pass metrics_scrape; else fail metrics_scrape "no gait_ metric families"; fi
# promtool lints naming and exits non-zero on parse errors or lint problems.
if out=$(promtool check metrics <"$WORK/scrape.txt" 2>&1); then
  pass "promtool_check_metrics ($(grep -c '^gait_' "$WORK/scrape.txt") gait samples)"
else
  fail promtool_check_metrics "$(echo "$out" | head -5 | tr '\n' ' ')"
fi

HOSTPORT="${ADMIN_URL#*://}"
HOSTPORT="${HOSTPORT%%/*}"
SCHEME="${ADMIN_URL%%://*}"
{
  echo "global:"
  echo "  scrape_interval: 1s"
  echo "  scrape_timeout: 1s"
  echo "scrape_configs:"
  echo "  - job_name: gait"
  echo "    scheme: $SCHEME"
  echo "    metrics_path: /metrics"
  if [ -n "$TOKEN" ]; then
    echo "    authorization:"
    echo "      type: Bearer"
    echo "      credentials_file: $WORK/token"
  fi
  echo "    static_configs:"
  echo "      - targets: ['$HOSTPORT']"
} >"$WORK/prometheus.yml"
if [ -n "$TOKEN" ]; then printf '%s' "$TOKEN" >"$WORK/token"; chmod 600 "$WORK/token"; fi
promtool check config "$WORK/prometheus.yml" >/dev/null 2>&1 || die promtool_check_config "generated prometheus.yml is invalid"

log "starting prometheus on 127.0.0.1:$PROM_PORT"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM_PID=$!

query() {
  curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" 2>/dev/null \
    | sed -n 's/.*"value":\[[^,]*,"\([0-9.]*\)"\].*/\1/p' || true
}

deadline=$(( $(date +%s) + TIMEOUT_SECS ))
series=0
up=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$PROM_PID" 2>/dev/null; then
    die prometheus_runs "prometheus exited: $(tail -5 "$WORK/prometheus.log" | tr '\n' ' ')"
  fi
  series="$(query 'count({__name__=~"gait_.+",job="gait"})')"
  up="$(query 'up{job="gait"}')"
  if [ "${up:-0}" = "1" ] && [ "${series:-0}" -gt 0 ]; then
    break
  fi
  sleep 1
done
if [ "${up:-0}" = "1" ] && [ "${series:-0}" -gt 0 ]; then
  pass "prometheus_scrapes_gait ($series gait series, up=1)"
else
  fail prometheus_scrapes_gait "no gait series within ${TIMEOUT_SECS}s (up=${up:-?} series=${series:-0}): $(tail -3 "$WORK/prometheus.log" | tr '\n' ' ')"
fi
if [ "$SELF" = 1 ]; then
  allow="$(query 'sum(gait_mcp_tool_calls_total{job="gait",tool="echo",verdict="allow"})')"
  block="$(query 'sum(gait_mcp_tool_calls_total{job="gait",tool="delete_file",verdict="block"})')"
  if [ "${allow:-0}" = "1" ] && [ "${block:-0}" = "1" ]; then
    pass prometheus_sees_the_driven_decisions
  else
    fail prometheus_sees_the_driven_decisions "echo/allow=${allow:-none} delete_file/block=${block:-none} (want 1 and 1)"
  fi
fi
finish
