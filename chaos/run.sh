#!/usr/bin/env bash
# make test-chaos: every chaos/proxy/NN_*.sh scenario, then chaos/sessions/run.sh if present.
# Real sockets and processes on 127.0.0.1 only; each scenario is bounded in time.
#   CHAOS_QUICK=1      shorter counts and durations (CI)
#   CHAOS_ONLY=regex   run only matching proxy scenarios
# Prints each scenario's PASS/FAIL lines, then `N passed, N failed` over scenarios; exit 1 on any
# failure (a missing chaos/sessions/run.sh is reported, not silently passed).
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/build.sh
source scripts/lib/build.sh
build_release_bins || exit 1
export CHAOS_BUILT=1
if [ "${CHAOS_QUICK:-0}" != "0" ]; then
    export CHAOS_KILLS=${CHAOS_KILLS:-4}  # chaos/sessions quick form
fi

passed=0
failed=0
failed_names=()
run_one() {
    local name=$1 script=$2 t0 rc
    t0=$(date +%s)
    echo "== chaos $name"
    bash "$script"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "== PASS $name ($(( $(date +%s) - t0 ))s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "== FAIL $name: exit $rc ($(( $(date +%s) - t0 ))s)"
    fi
}

for script in chaos/proxy/[0-9][0-9]_*.sh; do
    name="proxy/$(basename "$script" .sh)"
    if [ -n "${CHAOS_ONLY:-}" ] && ! [[ "$name" =~ $CHAOS_ONLY ]]; then
        continue
    fi
    run_one "$name" "$script"
done

if [ -z "${CHAOS_ONLY:-}" ]; then
    if [ -f chaos/sessions/run.sh ]; then
        run_one "sessions" chaos/sessions/run.sh
    else
        failed=$((failed + 1))
        failed_names+=("sessions")
        echo "== FAIL sessions: chaos/sessions/run.sh is missing (owned by the sessions engineer)"
    fi
fi

echo "chaos scenarios: ${failed_names[*]:-none} failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
