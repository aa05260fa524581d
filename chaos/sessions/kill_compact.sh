#!/usr/bin/env bash
# kill -9 writers that checkpoint every 4 and compact every 6 appends; after recovery nothing
# acknowledged is lost (present, or covered by a checkpoint), last_sequence never goes back,
# and the chain verifies.
source "$(dirname "$0")/lib.sh"
KILLS=${CHAOS_KILLS:-20}
J="$WORK/chaos.journal.jsonl"
mkdir -p "$WORK/zips"
"$GAIT_BIN" run session start --journal "$J" --session-id sess_chaos --run-id run_chaos >/dev/null
n=$(kill_loop "$KILLS" "$J" --checkpoint-every 4 --compact-every 6)
"$GAIT_BIN" run session append --journal "$J" --tool final --verdict allow >/dev/null
"$GAIT_BIN" run session checkpoint --journal "$J" --out "$WORK/zips/final.zip" >/dev/null \
  || fail "final checkpoint failed"
"$GAIT_BIN" run session compact --journal "$J" >/dev/null || fail "final compaction failed"
last=$("$GAIT_BIN" run session status --journal "$J" --json | sed -E 's/.*"last_sequence":([0-9]+).*/\1/')
next=$("$GAIT_BIN" run session append --journal "$J" --tool after --verdict allow --json \
  | sed -E 's/.*"sequence":([0-9]+).*/\1/')
[[ $next -eq $((last + 1)) ]] || fail "append after full compaction got $next want $((last + 1))"
summary=$(recover_and_audit "$J" --chain "$WORK/chaos.journal_chain.json")
pass "kills=$n $summary"
