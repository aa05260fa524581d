#!/usr/bin/env bash
# Acceptance check of gait's /metrics against real Prometheus tooling.
#
# Usage: scripts/check_prometheus.sh http://127.0.0.1:9464 [bearer-token]
#
# 1. installs Debian's `prometheus` package if promtool/prometheus are missing (apt-get);
# 2. scrapes <admin-url>/metrics from a running gait admin listener and runs
#    `promtool check metrics` on it;
# 3. starts Prometheus on loopback with a 1s scrape interval against that listener and
#    queries its HTTP API until gait series (`{__name__=~"gait_.+"}`) are present.
# Bounded in time: every wait has a deadline (TIMEOUT_SECS, default 60). Exit 0 = pass.
set -euo pipefail

ADMIN_URL="${1:?usage: $0 <gait-admin-url> [bearer-token]}"
TOKEN="${2:-}"
TIMEOUT_SECS="${TIMEOUT_SECS:-60}"
PROM_PORT="${PROM_PORT:-19090}"
ADMIN_URL="${ADMIN_URL%/}"

log() { printf 'check_prometheus: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  log "installing prometheus (apt-get)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  timeout 300 $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -y -qq --no-install-recommends prometheus \
    || die "apt-get install prometheus failed"
  # Debian starts the packaged service; we run our own instance on another port.
  $SUDO systemctl stop prometheus >/dev/null 2>&1 || true
fi

WORK="$(mktemp -d)"
PROM_PID=""
cleanup() {
  if [ -n "$PROM_PID" ]; then kill "$PROM_PID" 2>/dev/null || true; wait "$PROM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

AUTH=()
if [ -n "$TOKEN" ]; then AUTH=(-H "Authorization: Bearer $TOKEN"); fi

log "scraping $ADMIN_URL/metrics"
curl -fsS --max-time 10 "${AUTH[@]}" "$ADMIN_URL/metrics" -o "$WORK/scrape.txt" \
  || die "cannot scrape $ADMIN_URL/metrics"
grep -q '^# TYPE gait_' "$WORK/scrape.txt" || die "no gait_ metric families in the scrape"
# promtool lints naming and exits non-zero on parse errors or lint problems.
promtool check metrics <"$WORK/scrape.txt" || die "promtool check metrics reported problems"
log "promtool check metrics: ok ($(grep -c '^gait_' "$WORK/scrape.txt") gait samples)"

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
promtool check config "$WORK/prometheus.yml" >/dev/null || die "generated prometheus.yml is invalid"

log "starting prometheus on 127.0.0.1:$PROM_PORT"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!

deadline=$(( $(date +%s) + TIMEOUT_SECS ))
series=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$PROM_PID" 2>/dev/null; then
    tail -20 "$WORK/prometheus.log" >&2 || true
    die "prometheus exited"
  fi
  resp="$(curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
    --data-urlencode 'query=count({__name__=~"gait_.+",job="gait"})' 2>/dev/null || true)"
  series="$(printf '%s' "$resp" | sed -n 's/.*"value":\[[^,]*,"\([0-9]*\)"\].*/\1/p')"
  up="$(curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
    --data-urlencode 'query=up{job="gait"}' 2>/dev/null | sed -n 's/.*"value":\[[^,]*,"\([0-9]*\)"\].*/\1/p' || true)"
  if [ "${up:-0}" = "1" ] && [ "${series:-0}" -gt 0 ]; then
    log "PASS: prometheus scraped $series gait series (up=1)"
    exit 0
  fi
  sleep 1
done
tail -20 "$WORK/prometheus.log" >&2 || true
die "no gait series scraped within ${TIMEOUT_SECS}s (up=${up:-?} series=${series:-0})"
