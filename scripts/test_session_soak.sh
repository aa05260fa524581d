#!/usr/bin/env bash
# Session soak: SOAK_PROCS separate OS processes x SOAK_APPENDS appends to ONE journal, plus one
# process running SOAK_TASKS concurrent tasks through the group-commit JournalWriter
# (SOAK_TASK_APPENDS appends in total), all at the same time. Then: exactly N events,
# sequences 1..N, every acknowledged sequence present once, state index == journal, and the
# chain of a final checkpoint verifies. Prints one summary line; exits non-zero on any loss,
# duplicate or error.
#
# Quick CI form: SOAK_PROCS=4 SOAK_APPENDS=50 SOAK_TASK_APPENDS=256 scripts/test_session_soak.sh
set -euo pipefail

PROCS=${SOAK_PROCS:-8}
APPENDS=${SOAK_APPENDS:-500}
TASKS=${SOAK_TASKS:-64}
TASK_APPENDS=${SOAK_TASK_APPENDS:-1280}
LIMIT=${SOAK_TIMEOUT:-300}
export GAIT_SESSION_LOCK_PROFILE=${GAIT_SESSION_LOCK_PROFILE:-swarm}
export GAIT_SESSION_LOCK_TIMEOUT=${GAIT_SESSION_LOCK_TIMEOUT:-10s}

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${GAIT_BIN:-}" ]]; then
  (cd "$root" && cargo build --quiet --bin gait)
  GAIT_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/gait"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
J="$work/soak.journal.jsonl"
"$GAIT_BIN" run session start --journal "$J" --session-id sess_soak --run-id run_soak >/dev/null

t0=$(date +%s.%N)
pids=()
for i in $(seq 1 "$PROCS"); do
  timeout "$LIMIT" "$GAIT_BIN" run session stress --journal "$J" --session-id sess_soak \
    --run-id run_soak --count "$APPENDS" --ack-log "$work/ack_$i.log" 2>"$work/err_$i.log" &
  pids+=($!)
done
if (( TASKS > 0 && TASK_APPENDS > 0 )); then
  timeout "$LIMIT" "$GAIT_BIN" run session stress --journal "$J" --session-id sess_soak \
    --run-id run_soak --count "$TASK_APPENDS" --tasks "$TASKS" --ack-log "$work/ack_tasks.log" \
    2>"$work/err_tasks.log" &
  pids+=($!)
else
  TASK_APPENDS=0
fi
failed=0
for p in "${pids[@]}"; do
  if ! wait "$p"; then failed=$((failed + 1)); fi
done
t1=$(date +%s.%N)

N=$((PROCS * APPENDS + TASK_APPENDS))
"$GAIT_BIN" run session checkpoint --journal "$J" --out "$work/final_cp.zip" >/dev/null
audit=$("$GAIT_BIN" run session audit --journal "$J" --ack-log "$work"/ack_*.log \
  --expect "$N" --chain "$work/soak.journal_chain.json") && audit_rc=0 || audit_rc=$?
acked=$(cat "$work"/ack_*.log | wc -l)
elapsed=$(echo "$t1 - $t0" | bc -l)
rate=$(echo "$N / $elapsed" | bc -l)
if (( failed == 0 && audit_rc == 0 && acked == N )); then
  printf 'session soak: PASS events=%d procs=%dx%d tasks=%dx(%d total) acked=%d elapsed=%.2fs rate=%.0f/s\n' \
    "$N" "$PROCS" "$APPENDS" "$TASKS" "$TASK_APPENDS" "$acked" "$elapsed" "$rate"
  exit 0
fi
printf 'session soak: FAIL events_expected=%d acked=%d failed_writers=%d audit=%s\n' \
  "$N" "$acked" "$failed" "$audit"
cat "$work"/err_*.log | sort | uniq -c | head -20 >&2
exit 1
