#!/usr/bin/env bash
# A lock left by a dead process is taken over at once; an empty lock is honoured until
# stale_after (documented contention error, exit 1, state_contention) and then taken over.
source "$(dirname "$0")/lib.sh"
J="$WORK/l.journal.jsonl"
"$GAIT_BIN" run session start --journal "$J" --session-id s --run-id r >/dev/null
true & dead=$!; wait "$dead"
printf '{"created_at":"%s","pid":%d,"schema_id":"gait.runpack.session_lock","schema_version":"1.0.0"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$dead" > "$J.lock"
t0=$(date +%s%N)
"$GAIT_BIN" run session append --journal "$J" --tool t --verdict allow >/dev/null || fail "append with dead-pid lock failed"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
(( ms < 1500 )) || fail "dead-pid lock took ${ms}ms (should be immediate)"
[[ ! -e "$J.lock" ]] || fail "lock not released"
: > "$J.lock"
out=$(GAIT_SESSION_LOCK_TIMEOUT=300ms "$GAIT_BIN" run session append --journal "$J" --tool t --verdict allow --json) && rc=0 || rc=$?
[[ $rc -eq 1 ]] || fail "empty fresh lock: exit $rc want 1 ($out)"
echo "$out" | grep -q '"error":"session state contention: lock timeout (path=' || fail "message: $out"
echo "$out" | grep -q '"error_category":"state_contention"' || fail "category: $out"
echo "$out" | grep -q '"retryable":true' || fail "retryable: $out"
sleep 1.2
GAIT_SESSION_LOCK_STALE_AFTER=1s "$GAIT_BIN" run session append --journal "$J" --tool t --verdict allow >/dev/null \
  || fail "empty lock older than stale_after was not taken over"
"$GAIT_BIN" run session audit --journal "$J" --expect 2 >/dev/null || fail "audit"
pass "dead pid taken over in ${ms}ms; empty lock: contention then takeover after stale_after"
