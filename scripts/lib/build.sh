# shellcheck shell=bash
# Shared by the release scripts: locate the repo and target dir, build the release binaries once.
#   source scripts/lib/build.sh; build_release_bins
# GAIT_SKIP_BUILD=1 skips the build (binaries must already exist).
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
export GAIT_BIN=${GAIT_BIN:-$CARGO_TARGET_DIR/release/gait}
export UPSTREAM_BIN=${UPSTREAM_BIN:-$CARGO_TARGET_DIR/release/examples/demo_upstream}
export BARE_PROXY_BIN=${BARE_PROXY_BIN:-$CARGO_TARGET_DIR/release/examples/bare_proxy}

build_release_bins() {
    if [ "${GAIT_SKIP_BUILD:-0}" != "1" ]; then
        echo "# building release binaries (gait, examples/demo_upstream, examples/bare_proxy) into $CARGO_TARGET_DIR" >&2
        (cd "$REPO_ROOT" && cargo build --release --quiet --bin gait --example demo_upstream --example bare_proxy) || {
            echo "FAIL build: cargo build --release failed"
            echo "0 passed, 1 failed"
            return 1
        }
    fi
    for b in "$GAIT_BIN" "$UPSTREAM_BIN"; do
        if [ ! -x "$b" ]; then
            echo "FAIL build: missing binary $b"
            echo "0 passed, 1 failed"
            return 1
        fi
    done
}
