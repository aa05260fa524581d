#!/usr/bin/env bash
# kill -9 writers that checkpoint every 3 appends; the chain must verify after each recovery
# (a checkpoint is only in the chain once its zip and journal line are durable).
source "$(dirname "$0")/lib.sh"
KILLS=${CHAOS_KILLS:-20}
J="$WORK/chaos.journal.jsonl"
mkdir -p "$WORK/zips"
"$GAIT_BIN" run session start --journal "$J" --session-id sess_chaos --run-id run_chaos >/dev/null
n=$(kill_loop "$KILLS" "$J" --checkpoint-every 3)
"$GAIT_BIN" run session append --journal "$J" --tool final --verdict allow >/dev/null
"$GAIT_BIN" run session checkpoint --journal "$J" --out "$WORK/zips/final.zip" >/dev/null \
  || fail "final checkpoint failed"
summary=$(recover_and_audit "$J" --chain "$WORK/chaos.journal_chain.json")
pass "kills=$n $summary"
