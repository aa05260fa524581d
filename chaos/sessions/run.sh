#!/usr/bin/env bash
# Run every session chaos scenario; print PASS/FAIL per scenario and "N passed, N failed".
# CHAOS_KILLS (default 20 per kill scenario, 3 scenarios = 60 kills): lower it for a quick CI form,
# e.g. CHAOS_KILLS=4 chaos/sessions/run.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [[ -z "${GAIT_BIN:-}" ]]; then
  (cd "$root" && cargo build --quiet --bin gait) || { echo "build failed"; exit 1; }
  export GAIT_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/gait"
fi
passed=0; failed=0
for s in kill_append kill_checkpoint kill_compact truncate_midline dead_pid_lock enospc; do
  out=$(SCENARIO=$s timeout "${CHAOS_SCENARIO_TIMEOUT:-600}" bash "$here/$s.sh" 2>&1)
  rc=$?
  line=$(echo "$out" | grep -E '^(PASS|FAIL) ' | tail -1)
  if [[ $rc -eq 0 && $line == PASS* ]]; then
    passed=$((passed + 1)); echo "$line"
  else
    failed=$((failed + 1)); echo "${line:-FAIL $s: exit $rc}"; echo "$out" | tail -5 | sed 's/^/    /'
  fi
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
