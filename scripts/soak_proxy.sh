#!/usr/bin/env bash
# Proxy soak: mixed allowed/blocked tools/call and SSE streams through gait for SOAK_SECONDS
# (default 600 = 10 minutes; SOAK_SECONDS=60 for a quick form). RSS, open fds and threads of
# gait (/proc) and gait's gauges (/metrics, when served) are sampled every SOAK_SAMPLE_SECONDS
# (default 10) and must not grow after warm-up; zero 5xx. Loopback only; bounded; cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh
build_release_bins
secs=${SOAK_SECONDS:-600}
exec timeout --signal=TERM --kill-after=10 $((secs + 120)) python3 scripts/lib/soak.py
