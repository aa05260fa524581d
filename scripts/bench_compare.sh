#!/usr/bin/env bash
# Side-by-side proxy load run: direct upstream vs nginx vs gait (same upstream, same run), plus
# gait's RSS with 1,000 open MCP sessions. Prints a markdown table; JSON to $BENCH_OUT.
#   BENCH_QUICK=1          3 s runs, 200 sessions
#   BENCH_UPSTREAM=rmcp    use the rmcp demo upstream (stateless, JSON) instead of the canned one
# Budgets are checked by scripts/check_budgets.py (make bench-budgets), not here.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh
build_release_bins
out=${BENCH_OUT:-$CARGO_TARGET_DIR/bench-budgets/proxy.json}
mkdir -p "$(dirname "$out")"
args=(--out "$out")
[ "${BENCH_QUICK:-0}" = "1" ] && args+=(--quick)
exec timeout --signal=TERM --kill-after=10 "${BENCH_TIMEOUT:-600}" python3 scripts/lib/bench_proxy.py "${args[@]}"
