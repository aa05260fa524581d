#!/usr/bin/env bash
# Run deploy/compose/docker-compose.yml on loopback without a container engine: the same
# commands and the same mounted config files, started as local processes (gait, two rmcp tool
# servers from examples/demo_upstream.rs, /usr/bin/prometheus), then checked end to end.
# Bounded (COMPOSE_LOCAL_TIMEOUT, default 180 s); every process is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh
build_release_bins
command -v "${PROMETHEUS_BIN:-prometheus}" >/dev/null || { echo "FAIL prometheus: not installed (apt-get install prometheus)"; echo "0 passed, 1 failed"; exit 1; }
exec timeout --signal=TERM --kill-after=10 "${COMPOSE_LOCAL_TIMEOUT:-180}" python3 scripts/lib/compose_local.py
