#!/usr/bin/env python3
"""Per-request cost of the gait proxy hot path, measured in ways a shared, noisy machine cannot
distort much: instructions (callgrind Ir) and CPU time (user + sys from /proc) per request.

    python3 perf/proxy_cost.py [--n 2000] [--session] [--callgrind] [--direct | --bare]
                               [--method call|ping] [--out FILE] [--gait-arg=ARG ...]

Starts the demo upstream (`--mode fast`) and gait (`--policy`, `--trace-dir`, like
scripts/lib/bench_proxy.py) on 127.0.0.1, sends N allowed `tools/call` POSTs over one
keep-alive connection (python, so the client costs nothing in gait's numbers), then stops gait
with SIGTERM so every queued trace is written before the counters are read.

- `--callgrind`: gait runs under `valgrind --tool=callgrind` (all threads); the run is done
  twice (N requests and 0 requests) and Ir/request = (Ir(N) - Ir(0)) / N, which removes startup
  and shutdown. Kernel work (syscalls) is not in Ir; see the CPU numbers for that.
- default: CPU time of the gait process (utime, stime from /proc/<pid>/stat, all threads)
  per request, also as a difference to an N=0 run.
- `--direct`: the same client against the upstream directly (upstream CPU per request).
- `--bare`: examples/bare_proxy (a hyper pass-through, nothing else) instead of gait, the floor
  any proxy pays ($BARE_PROXY_BIN, default profiling/examples/bare_proxy).
- `--method ping`: a JSON-RPC `ping` (forwarded, not gated) instead of the allowed `tools/call`,
  so the difference of the two is the gate's share of the request path.

Binaries: $GAIT_BIN (default $CARGO_TARGET_DIR/profiling/gait), $UPSTREAM_BIN (default
$CARGO_TARGET_DIR/release/examples/demo_upstream, else profiling/examples/demo_upstream).
"""

import argparse
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TD = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")

sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
from harness import STD_POLICY as POLICY  # noqa: E402  (the policy every harness uses)

BODIES = {
    "call": json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": "hello"}}}).encode(),
    # not gated: what the proxy stack costs around the gate
    "ping": json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode(),
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, secs=60.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Conn:
    """One keep-alive HTTP/1.1 connection with just enough parsing for these responses."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def post(self, body, session=None):
        h = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n")
        if session:
            h += b"Mcp-Session-Id: " + session.encode() + b"\r\n"
        h += b"Content-Length: %d\r\n\r\n" % len(body)
        self.s.sendall(h + body)
        return self.read()

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise ConnectionError("closed")
        self.buf += d

    def read(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
        else:
            body = b""
        return status, hdrs, body


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]), int(parts[12])  # utime, stime (clock ticks, all threads)


def ctx_switches(pid):
    """Voluntary + involuntary context switches of every live thread of `pid` (each is a
    sleep/wake of a thread, the cost a hand-off between threads pays)."""
    total = 0
    for st in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(st) as f:
                for line in f:
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def read_ir(path):
    total = 0
    with open(path) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                total = int(m.group(1))
    return total


def run_once(a, n, work):
    up_port, port = free_port(), free_port()
    up_bin = os.environ.get("UPSTREAM_BIN") or next(
        (p for p in (os.path.join(TD, "release/examples/demo_upstream"),
                     os.path.join(TD, "profiling/examples/demo_upstream")) if os.path.exists(p)), None)
    gait_bin = os.environ.get("GAIT_BIN") or os.path.join(TD, "profiling", "gait")
    bare_bin = os.environ.get("BARE_PROXY_BIN") or os.path.join(TD, "profiling", "examples", "bare_proxy")
    payload = BODIES[a.method]
    up_argv = [up_bin, "--listen", f"127.0.0.1:{up_port}", "--mode", "fast"]
    up_cg = None
    if a.direct and a.callgrind:
        up_cg = os.path.join(work, f"callgrind.up.{n}")
        up_argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={up_cg}"] + up_argv
    up = subprocess.Popen(up_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [up]
    try:
        if not wait_port(up_port, 120):
            raise RuntimeError("upstream did not start")
        pol = os.path.join(work, "policy.yaml")
        with open(pol, "w") as f:
            f.write(POLICY)
        traces = os.path.join(work, f"traces_{n}")
        sessions = os.path.join(work, f"sessions_{n}")
        target_port = up_port
        g = None
        cg_out = None
        if not a.direct:
            argv = [gait_bin, "mcp", "serve", "--policy", pol, "--listen", f"127.0.0.1:{port}",
                    "--upstream", f"http://127.0.0.1:{up_port}/mcp", "--trace-dir", traces,
                    "--session-dir", sessions, *a.gait_arg]
            if a.bare:
                argv = [bare_bin, "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{up_port}"]
            if a.callgrind:
                cg_out = os.path.join(work, f"callgrind.out.{n}")
                argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg_out}",
                        "--dump-instr=no"] + argv
            env = dict(os.environ, GAIT_LOG="warn")
            g = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(work, f"gait_{n}.log"), "w"))
            procs.append(g)
            if not wait_port(port, 120):
                raise RuntimeError("gait did not start")
            target_port = port
        c = Conn(target_port)
        sid = None
        if a.session:
            init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                          "clientInfo": {"name": "cost", "version": "0"}}}).encode()
            st, h, _ = c.post(init)
            sid = h.get("mcp-session-id")
        # warm-up (pool, allocator, lazy statics) is part of the N=0 run as well
        for _ in range(20):
            st, _, body = c.post(payload, sid)
            assert st == 200 and b'"result"' in body, (st, body[:300])
        pid = (g or up).pid
        u0, s0 = cpu_ticks(pid)
        x0 = ctx_switches(pid)
        t0 = time.monotonic()
        for _ in range(n):
            st, _, body = c.post(payload, sid)
            if st != 200 or b'"result"' not in body:
                raise RuntimeError(f"call failed: {st} {body[:300]!r}")
        wall = time.monotonic() - t0
        c.s.close()
        time.sleep(0.3)  # let the writer drain before the counters are read
        u1, s1 = cpu_ticks(pid)
        res = {"n": n, "wall_s": wall, "utime_ticks": u1 - u0, "stime_ticks": s1 - s0,
               "ctx_switches": ctx_switches(pid) - x0}
        if up_cg:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=600)
            res["ir"] = read_ir(up_cg)
        if g is not None:
            g.send_signal(signal.SIGTERM)
            g.wait(timeout=600)
            res["traces"] = len(glob.glob(os.path.join(traces, "trace_*.json")))
            if cg_out:
                res["ir"] = read_ir(cg_out)
                res["callgrind_file"] = cg_out
        return res
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--session", action="store_true", help="initialize first and send Mcp-Session-Id")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--direct", action="store_true")
    ap.add_argument("--bare", action="store_true", help="examples/bare_proxy instead of gait")
    ap.add_argument("--method", choices=sorted(BODIES), default="call")
    ap.add_argument("--keep", help="keep the work dir here (callgrind files)")
    ap.add_argument("--gait-arg", action="append", default=[],
                    help="extra `mcp serve` argument (repeatable), e.g. --gait-arg=--trace-sink --gait-arg=segments")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    work = a.keep or tempfile.mkdtemp(prefix="gait-cost-")
    os.makedirs(work, exist_ok=True)
    hz = os.sysconf("SC_CLK_TCK")
    base = run_once(a, 0, work)
    full = run_once(a, a.n, work)
    out = {"n": a.n, "session": a.session, "callgrind": a.callgrind, "direct": a.direct,
           "bare": a.bare, "method": a.method,
           "loadavg_1m": os.getloadavg()[0], "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cpu_user_us_per_req": (full["utime_ticks"] - base["utime_ticks"]) * 1e6 / hz / a.n,
           "cpu_sys_us_per_req": (full["stime_ticks"] - base["stime_ticks"]) * 1e6 / hz / a.n,
           "wall_us_per_req": full["wall_s"] * 1e6 / a.n, "traces": full.get("traces"),
           "ctx_switches_per_req": (full["ctx_switches"] - base["ctx_switches"]) / a.n}
    if a.callgrind:
        out["ir_per_req"] = (full["ir"] - base["ir"]) / a.n
        out["ir_total"] = full["ir"]
        out["ir_startup"] = base["ir"]
        out["callgrind_file"] = full.get("callgrind_file")
    print(json.dumps(out, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
