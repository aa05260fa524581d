#!/usr/bin/env python3
"""CPU per request of each gait thread under a wrk load, to see which thread is the bottleneck.

    python3 perf/thread_cost.py [--connections 32] [--seconds 8] [--session] [--method call|ping]
                                [--bare] [--perf FILE] [--gait-arg=ARG ...] [--gait-env K=V ...]

Starts the demo upstream (`--mode fast`) and gait (the harness policy, a trace dir, a session
dir, an admin listener) on 127.0.0.1, runs wrk (scripts/lib/bench_proxy.py's Lua script) for
`--seconds` at `--connections`, and prints, from /proc/<pid>/task/*/stat before and after the
run, each thread name's user + sys CPU per request and its share of one core, the upstream's
CPU per request, and the trace queue depth sampled twice a second. A thread at ~100% of a
core with a full trace queue is the bottleneck; a spread of tens of percent is not.

- `--bare`: examples/bare_proxy instead of gait (the floor any hyper proxy pays).
- `--method ping`: a forwarded JSON-RPC `ping` (not gated, no trace) instead of the allowed call.
- `--perf FILE`: also `perf record -e cpu-clock -g` gait for the run (inflates every number).
- `--gait-env K=V`: set in gait's environment only (not the upstream's), e.g.
  `TOKIO_WORKER_THREADS=1`, or a switch of a throwaway build being compared.

Binaries as in the harness: $GAIT_BIN, $UPSTREAM_BIN, $BARE_PROXY_BIN, else $CARGO_TARGET_DIR
(or target/) release builds. Loopback only; every wait is bounded.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
import bench_proxy as bp  # noqa: E402
import harness as hz  # noqa: E402
import mcp_client as mc  # noqa: E402

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})


def threads(pid):
    """{tid: (name, utime, stime)} in clock ticks."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = s[s.index("(") + 1:s.rindex(")")]
        f = s[s.rindex(")") + 2:].split()
        out[t] = (name, int(f[11]), int(f[12]))
    return out


def per_name(before, after):
    """{thread name: [utime, stime]} summed over the threads of that name, as differences."""
    agg = {}
    for t, (name, u, s) in after.items():
        _, u0, s0 = before.get(t, (name, 0, 0))
        x = agg.setdefault(name, [0, 0])
        x[0] += u - u0
        x[1] += s - s0
    return agg


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--session", action="store_true", help="initialize first and send Mcp-Session-Id")
    ap.add_argument("--method", choices=("call", "ping"), default="call")
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--perf", help="perf record output file")
    ap.add_argument("--gait-arg", action="append", default=[],
                    help="extra `mcp serve` argument (repeatable), e.g. --gait-arg=--trace-sink --gait-arg=segments")
    ap.add_argument("--gait-env", action="append", default=[],
                    help="KEY=VALUE in gait's environment only (repeatable), e.g. TOKIO_WORKER_THREADS=1")
    a = ap.parse_args(argv)
    if a.method == "ping":
        bp.BODY = PING
    h = hz.Harness("thread-cost")
    try:
        up = h.start_upstream("upstream", ["--mode", "fast"])
        admin = None
        if a.bare:
            g = bp.start_bare(h, up)
            if g is None:
                print("no bare_proxy binary", file=sys.stderr)
                return 2
            url = f"http://127.0.0.1:{g.port}/mcp"
        else:
            wd = h.dir("gait")
            h.write(os.path.join(wd, ".gait", "config.yaml"),
                    "retention:\n  sweep_interval: 2s\n  trace:\n    max_count: 20000\n")
            admin = mc.free_port()
            g = h.start_gait("gait", [
                "--policy", h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY),
                "--upstream", up.url(), "--trace-dir", h.dir("gait", "traces"),
                "--session-dir", h.dir("gait", "sessions"),
                "--admin-listen", f"127.0.0.1:{admin}", *a.gait_arg], cwd=wd,
                env=dict(kv.split("=", 1) for kv in a.gait_env))
            url = g.url("/mcp")
        sid = bp.session_for(url) if a.session else ""
        bp.wrk(h, url, 4, 1, sid)  # warm-up
        if admin:
            bp.drain(admin)
        depths, stop = [], threading.Event()

        def sample():
            while admin and not stop.is_set():
                try:
                    depths.append(mc.metrics(f"http://127.0.0.1:{admin}/metrics", timeout=2).get(
                        'gait_writer_queue_depth{writer="trace"}'))
                except Exception:  # noqa: BLE001 - a missed sample is only a missing number
                    pass
                stop.wait(0.5)

        g0, u0 = threads(g.pid), threads(up.pid)
        sampler = threading.Thread(target=sample)
        sampler.start()
        rec = None
        if a.perf:
            rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p", str(g.pid),
                                    "-o", a.perf, "--", "sleep", str(a.seconds)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = bp.wrk(h, url, a.connections, a.seconds, sid)
        if rec:
            rec.wait(timeout=a.seconds + 60)
        stop.set()
        sampler.join(timeout=10)
        g1, u1 = threads(g.pid), threads(up.pid)
        n = max(1, r["requests"])
        tick = os.sysconf("SC_CLK_TCK")
        us = 1e6 / tick / n
        print(f"{'bare' if a.bare else 'gait'} {a.method} c{a.connections}: {r['rps']:.0f} req/s, "
              f"p50 {r['lat_p50_us']} us, p99 {r['lat_p99_us']} us, {n} requests")
        rows = sorted(per_name(g0, g1).items(), key=lambda kv: -sum(kv[1]))
        for name, (u, s) in rows:
            if u + s:
                print(f"  {name:18s} {(u + s) * us:7.1f} us/req (user {u * us:6.1f}, sys {s * us:6.1f})"
                      f"  {(u + s) * 100 / tick / a.seconds:5.1f}% of a core")
        up_ticks = sum(u + s for u, s in per_name(u0, u1).values())
        print(f"  {'upstream':18s} {up_ticks * us:7.1f} us/req"
              f"  {up_ticks * 100 / tick / a.seconds:5.1f}% of a core")
        if depths:
            print(f"  trace queue depth samples: {depths}")
        return 0
    finally:
        h.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
