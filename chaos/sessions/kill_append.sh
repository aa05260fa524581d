#!/usr/bin/env bash
# kill -9 writers at random points while they append; after every kill the journal recovers,
# no acknowledged sequence is lost, sequences stay contiguous.
source "$(dirname "$0")/lib.sh"
KILLS=${CHAOS_KILLS:-20}
J="$WORK/chaos.journal.jsonl"
mkdir -p "$WORK/zips"
"$GAIT_BIN" run session start --journal "$J" --session-id sess_chaos --run-id run_chaos >/dev/null
n=$(kill_loop "$KILLS" "$J")
summary=$(recover_and_audit "$J")
if grep -v -e 'stress append error' -e '^$' "$WORK/stress_err.log" 2>/dev/null | grep -q .; then
  fail "unexpected writer output: $(head -3 "$WORK/stress_err.log")"
fi
pass "kills=$n $summary"
