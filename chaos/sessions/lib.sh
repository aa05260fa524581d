#!/usr/bin/env bash
# Shared helpers for the session chaos scenarios (sourced, not run).
# GAIT_BIN: the gait binary (built once by run.sh if unset).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z "${GAIT_BIN:-}" ]]; then
  (cd "$root" && cargo build --quiet --bin gait)
  GAIT_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/gait"
fi
export GAIT_BIN
export GAIT_SESSION_LOCK_TIMEOUT=${GAIT_SESSION_LOCK_TIMEOUT:-3s}

SCENARIO=${SCENARIO:-$(basename "$0" .sh)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

pass() { echo "PASS $SCENARIO: $*"; exit 0; }
fail() { echo "FAIL $SCENARIO: $*"; exit 1; }
skip() { echo "PASS $SCENARIO: SKIPPED ($*)"; exit 0; }

# random integer in [lo, hi]
rand_between() { echo $(( $1 + RANDOM % ($2 - $1 + 1) )); }

# sleep a random number of milliseconds in [lo, hi]
sleep_ms() { sleep "$(printf '0.%03d' "$(rand_between "$1" "$2")")"; }

# recover J (the first op repairs) and audit it against every ack log; fail with the reason.
recover_and_audit() {
  local j=$1; shift
  local out rc
  out=$("$GAIT_BIN" run session status --journal "$j" --json 2>&1) && rc=0 || rc=$?
  [[ $rc -eq 0 ]] || fail "status after crash exited $rc: $out"
  out=$("$GAIT_BIN" run session audit --journal "$j" --ack-log "$WORK"/ack_*.log "$@" 2>&1) \
    && rc=0 || rc=$?
  [[ $rc -eq 0 ]] || fail "audit: $out"
  echo "$out"
}

# Run a stress writer in the background, kill -9 it after a random delay; repeat $1 times.
# Remaining args go to `stress`. Prints the number of kills delivered while running.
kill_loop() {
  local kills=$1; shift
  local j=$1; shift
  local delivered=0 i pid
  for i in $(seq 1 "$kills"); do
    "$GAIT_BIN" run session stress --journal "$j" --session-id sess_chaos --run-id run_chaos \
      --count 100000 --ack-log "$WORK/ack_$i.log" --out-dir "$WORK/zips" "$@" \
      2>>"$WORK/stress_err.log" &
    pid=$!
    sleep_ms 30 250
    if kill -9 "$pid" 2>/dev/null; then delivered=$((delivered + 1)); fi
    wait "$pid" 2>/dev/null || true
    recover_and_audit "$j" >/dev/null
  done
  echo "$delivered"
}
