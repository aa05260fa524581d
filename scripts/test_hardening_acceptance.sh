#!/usr/bin/env bash
# make test-hardening-acceptance: every line of the hardening contract against a live
# `gait mcp serve` in front of a real rmcp upstream (examples/demo_upstream.rs).
# Loopback only, ephemeral ports, bounded (whole run ≤ ACCEPTANCE_TIMEOUT s, default 300),
# every started process is killed on exit. Prints PASS/FAIL per check and `N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh
build_release_bins
exec timeout --signal=TERM --kill-after=10 "${ACCEPTANCE_TIMEOUT:-300}" \
    python3 scripts/lib/acceptance.py
