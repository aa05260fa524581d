#!/usr/bin/env bash
# chaos/proxy: trace_segments_full_and_kill9 (implemented in scenarios.py).
# Loopback only; bounded by CHAOS_SCENARIO_TIMEOUT (default 240 s); CHAOS_QUICK=1 for CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh
[ "${CHAOS_BUILT:-0}" = "1" ] || build_release_bins
exec timeout --signal=TERM --kill-after=10 "${CHAOS_SCENARIO_TIMEOUT:-240}" \
    python3 chaos/proxy/scenarios.py trace_segments_full_and_kill9
