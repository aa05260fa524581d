#!/usr/bin/env bash
# Truncate the journal in the middle of its last line (a torn write): the next operation
# truncates the fragment with a warning and a count, and appending continues with the next
# sequence. A corrupt line in the middle is a documented hard error (exit 6).
source "$(dirname "$0")/lib.sh"
J="$WORK/t.journal.jsonl"
"$GAIT_BIN" run session start --journal "$J" --session-id s --run-id r >/dev/null
for i in 1 2 3 4 5; do "$GAIT_BIN" run session append --journal "$J" --tool "t$i" --verdict allow >/dev/null; done
size=$(stat -c %s "$J")
last_len=$(tail -n 1 "$J" | wc -c)
cut=$((size - $(rand_between 2 $((last_len - 1)))))
truncate -s "$cut" "$J"
out=$("$GAIT_BIN" run session status --journal "$J" --json) || fail "status after truncation: $out"
echo "$out" | grep -q '"warnings":\["session_journal_repaired=' || fail "no repair warning: $out"
echo "$out" | grep -q 'dropped_lines=1' || fail "no dropped count: $out"
echo "$out" | grep -q '"last_sequence":4' || fail "want last_sequence 4: $out"
seq=$("$GAIT_BIN" run session append --journal "$J" --tool t6 --verdict allow --json | sed -E 's/.*"sequence":([0-9]+).*/\1/')
[[ $seq -eq 5 ]] || fail "append after repair got sequence $seq want 5"
"$GAIT_BIN" run session audit --journal "$J" --expect 5 >/dev/null || fail "audit after repair"
# Corrupt a middle line: documented parse error, exit 6, the file is left alone for a human.
sed -i '2s/.*/{"record_type":"ev/' "$J"
rm -f "$J.state.json"
out=$("$GAIT_BIN" run session status --journal "$J" --json) && rc=0 || rc=$?
[[ $rc -eq 6 ]] || fail "corrupt middle line exit $rc want 6"
echo "$out" | grep -q '"error":"session journal parse line 2: ' || fail "error text: $out"
pass "cut=$cut/$size repaired; middle corruption reported as 'session journal parse line 2'"
