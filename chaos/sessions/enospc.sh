#!/usr/bin/env bash
# Fill a 2 MiB tmpfs: appends and checkpoints fail with the documented I/O error (exit 1,
# "No space left on device"), nothing acknowledged is lost, the journal stays parseable, and
# everything works again once space is freed. Needs root (mount); skipped otherwise.
source "$(dirname "$0")/lib.sh"
MNT="$WORK/mnt"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=2m tmpfs "$MNT" 2>/dev/null; then
  skip "cannot mount tmpfs here (needs root)"
fi
cleanup() { umount "$MNT" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
J="$MNT/e.journal.jsonl"
"$GAIT_BIN" run session start --journal "$J" --session-id sess_chaos --run-id run_chaos >/dev/null
"$GAIT_BIN" run session stress --journal "$J" --session-id sess_chaos --run-id run_chaos \
  --count 20 --ack-log "$WORK/ack_0.log" || fail "initial appends failed"
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true
"$GAIT_BIN" run session stress --journal "$J" --session-id sess_chaos --run-id run_chaos \
  --count 30 --ack-log "$WORK/ack_1.log" 2>"$WORK/full_err.log" && rc=0 || rc=$?
[[ $rc -eq 1 ]] || fail "appends on a full disk: exit $rc want 1"
grep -q 'No space left on device' "$WORK/full_err.log" || fail "error text: $(head -2 "$WORK/full_err.log")"
out=$("$GAIT_BIN" run session checkpoint --journal "$J" --out "$MNT/cp.zip" --json) && rc=0 || rc=$?
[[ $rc -ne 0 ]] && { echo "$out" | grep -q 'No space left on device' || fail "checkpoint error: $out"; }
rm -f "$MNT/filler"
summary=$(recover_and_audit "$J")
"$GAIT_BIN" run session stress --journal "$J" --session-id sess_chaos --run-id run_chaos \
  --count 10 --ack-log "$WORK/ack_2.log" || fail "appends after freeing space failed"
"$GAIT_BIN" run session checkpoint --journal "$J" --out "$MNT/cp2.zip" >/dev/null || fail "checkpoint after freeing space"
summary=$(recover_and_audit "$J" --chain "$MNT/e.journal_chain.json")
pass "full-disk error: $(grep -m1 -o "error: .*" "$WORK/full_err.log"); $summary"
