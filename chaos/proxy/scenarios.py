#!/usr/bin/env python3
"""Chaos scenarios for `gait mcp serve` on real sockets and real processes (loopback only).

    python3 chaos/proxy/scenarios.py NAME      (NAME: see SCENARIOS at the bottom)

Each scenario starts its own demo upstream(s) and gait, injects one kind of fault, prints one
line per check (`PASS name` / `FAIL name: why`) and `N passed, N failed`, and exits non-zero on
any failure. CHAOS_QUICK=1 shrinks counts and durations for CI. Every wait is bounded; every
process started is killed on exit (scripts/lib/harness.py).

Full / unwritable trace dir: a 512 KiB tmpfs mounted on the trace dir (filled; remounted ro)
when `mount` works (root with CAP_SYS_ADMIN), only on a temp dir of this run. Otherwise, or with
CHAOS_NO_MOUNT=1, "full" is RLIMIT_FSIZE=0 set on the running gait with SIGXFSZ ignored (every
file write then fails with EFBIG, as on a full disk; gait's own log file included) and
"unwritable" is a trace dir path that is a regular file. Nothing touches the host's filesystems.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lib"))
import harness as hz  # noqa: E402
import mcp_client as mc  # noqa: E402

Q = hz.quick()


def base_dirs(h, name):
    wd = h.dir(name)
    return wd, h.dir(name, "traces"), h.dir(name, "sessions")


def write_project_config(wd, metrics_port=None, extra=""):
    """`.gait/config.yaml` in gait's cwd: admin listener for /metrics (+ extra YAML)."""
    body = ""
    if metrics_port:
        body += f"metrics:\n  enabled: true\n  listen: 127.0.0.1:{metrics_port}\n"
    body += extra
    if body:
        os.makedirs(os.path.join(wd, ".gait"), exist_ok=True)
        with open(os.path.join(wd, ".gait", "config.yaml"), "w") as f:
            f.write(body)


def gait_args(policy, upstream_url, traces, sessions, *more):
    return ["--policy", policy, "--upstream", upstream_url, "--trace-dir", traces,
            "--session-dir", sessions, *more]


def try_metrics(port):
    if not port:
        return None
    try:
        return mc.metrics(f"http://127.0.0.1:{port}/metrics")
    except Exception:  # noqa: BLE001 - metrics are optional here; callers report absence
        return None


def gauge_sum(m, words):
    """Sum of series whose name contains any of `words` (e.g. in-flight gauges)."""
    if not m:
        return None
    hits = {k: v for k, v in m.items() if any(w in k.split("{")[0] for w in words)}
    return (sum(hits.values()), sorted(hits)) if hits else None


def tcp_conns(pid, local_port=None, remote_port=None):
    """Established/closing TCP sockets held by `pid` with that local or remote port (/proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return 0
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[9] not in inodes or f[3] == "0A":  # 0A = LISTEN
                continue
            lport, rport = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
            if (local_port is not None and lport == local_port) or (remote_port is not None and rport == remote_port):
                n += 1
    return n


def thread_names(pid):
    """{comm: count} of a process's threads (to say which threads grew)."""
    out = {}
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                name = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            except OSError:
                continue
            out[name] = out.get(name, 0) + 1
    except OSError:
        pass
    return out


def healthy(h, gait, name="gait_still_healthy"):
    ok = gait.alive()
    status = None
    try:
        status = mc.request(gait.url("/healthz"), timeout=3).status
    except Exception as e:  # noqa: BLE001
        status = repr(e)
    return h.check(name, ok and status == 200, f"alive={ok} /healthz={status} {gait.log(300) if not ok else ''}")


def valid_call_works(h, gait, name="valid_call_after_fault", token=None, retries=20):
    last = None
    for _ in range(retries):
        try:
            s = mc.Session(gait.url("/mcp"), token=token)
            s.initialize()
            rid, r = s.call("echo", {"text": "ok?"})
            s.close()
            if r.status == 200 and mc.call_result_ok(r, rid):
                return h.check(name, True)
            last = repr(r)
        except Exception as e:  # noqa: BLE001
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.25)
    return h.check(name, False, last)


# ---------------------------------------------------------------------------------------------
def upstream_dies_mid_stream(h):
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    up = h.start_upstream("upstream")
    port = up.port
    wd, traces, sessions = base_dirs(h, "gait")
    g = h.start_gait("gait", gait_args(policy, up.url(), traces, sessions,
                                       "--upstream-timeout-secs", "5"), cwd=wd)

    # (a) the tool itself kills the upstream process after one progress event
    s = mc.Session(g.url("/mcp"), timeout=20)
    s.initialize()
    t0 = time.monotonic()
    try:
        rid, r = s.call("die_mid_stream", {}, progress=True, timeout=20)
        dt = time.monotonic() - t0
        h.check("upstream_exit_mid_stream_gives_jsonrpc_error", mc.is_jsonrpc_error(r, rid) and dt < 15,
                f"after {dt:.1f}s HTTP {r.status}: {r!r}")
    except Exception as e:  # noqa: BLE001
        h.check("upstream_exit_mid_stream_gives_jsonrpc_error", False,
                f"client saw {type(e).__name__}: {e} (a torn stream, not a JSON-RPC error)")
    up.popen.wait(timeout=10)
    healthy(h, g, "gait_healthy_after_upstream_exit")

    # (b) SIGKILL the upstream from outside while it streams progress events
    up = h.start_upstream("upstream2", port=port)
    s = mc.Session(g.url("/mcp"), timeout=20)
    s.initialize()
    result = {}

    def stream():
        try:
            result["rid"], result["r"] = s.call("progress", {"steps": 200, "interval_ms": 50},
                                                progress=True, timeout=20)
        except Exception as e:  # noqa: BLE001
            result["exc"] = e

    th = threading.Thread(target=stream)
    th.start()
    time.sleep(0.8)
    os.kill(up.pid, signal.SIGKILL)
    th.join(timeout=25)
    if th.is_alive():
        h.check("upstream_sigkill_mid_stream_gives_jsonrpc_error", False, "client still waiting after 25 s")
    elif "exc" in result:
        h.check("upstream_sigkill_mid_stream_gives_jsonrpc_error", False,
                f"client saw {type(result['exc']).__name__}: {result['exc']}")
    else:
        r = result["r"]
        msgs = r.messages()
        progress = sum(1 for m in msgs if m.get("method") == "notifications/progress")
        h.check("upstream_sigkill_mid_stream_gives_jsonrpc_error",
                mc.is_jsonrpc_error(r, result["rid"]),
                f"HTTP {r.status}, {progress} progress events, then no JSON-RPC error: {r.text[-300:]!r}")
        h.check("progress_events_streamed_before_kill", progress >= 2,
                f"only {progress} progress events reached the client (buffered stream?)")
    healthy(h, g, "gait_healthy_after_upstream_sigkill")

    # (c) upstream down: a call is a clean JSON-RPC error, not a hang or a torn connection
    try:
        s2 = mc.Session(g.url("/mcp"), timeout=15)
        rid, r = s2.rpc("initialize", {"protocolVersion": mc.PROTOCOL_VERSION, "capabilities": {},
                                       "clientInfo": {"name": "chaos", "version": "0"}})
        h.check("upstream_down_gives_jsonrpc_error", r.status in (502, 503, 504, 200)
                and mc.is_jsonrpc_error(r, rid, allow_null_id=True), repr(r))
    except Exception as e:  # noqa: BLE001
        h.check("upstream_down_gives_jsonrpc_error", False, f"{type(e).__name__}: {e}")

    h.start_upstream("upstream3", port=port)
    valid_call_works(h, g, "gait_recovers_when_upstream_returns")


# ---------------------------------------------------------------------------------------------
def upstream_hangs(h):
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    # JSON responses: a hanging tool sends no response head at all, so gait's deadline applies.
    up = h.start_upstream("upstream", ["--stateless", "--json-response"])
    wd, traces, sessions = base_dirs(h, "gait")
    mport = mc.free_port()
    write_project_config(wd, mport)
    g = h.start_gait("gait", gait_args(policy, up.url(), traces, sessions,
                                       "--upstream-timeout-secs", "2"), cwd=wd)
    valid_call_works(h, g, "baseline_call_works")
    time.sleep(0.5)
    base = mc.proc_stats(g.pid)
    m0 = try_metrics(mport)
    infl0 = gauge_sum(m0, ("inflight", "in_flight", "active_requests", "open_requests"))

    n = 10 if Q else 40
    results = []

    def one(i):
        s = mc.Session(g.url("/mcp"), timeout=15)
        try:
            s.initialize()
            t0 = time.monotonic()
            rid, r = s.call("hang", {}, timeout=15)
            return (r.status, mc.is_jsonrpc_error(r, rid), time.monotonic() - t0, None)
        except Exception as e:  # noqa: BLE001
            return (None, False, None, f"{type(e).__name__}: {e}")
        finally:
            s.close()

    with ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(one, range(n)))
    bad = [r for r in results if not (r[0] == 504 and r[1])]
    h.check("hanging_upstream_gives_504_jsonrpc_error", not bad,
            f"{len(bad)}/{n} not 504+JSON-RPC error, e.g. {bad[:2]}")
    slow = [r for r in results if r[2] is not None and r[2] > 8]
    h.check("upstream_timeout_is_bounded", not slow, f"{len(slow)} calls took > 8 s with a 2 s timeout")

    # leak check: fds and threads return to baseline once the timed-out calls are gone
    deadline = time.monotonic() + 10
    now = mc.proc_stats(g.pid)
    while time.monotonic() < deadline:
        now = mc.proc_stats(g.pid)
        if now["fds"] <= base["fds"] + 4:
            break
        time.sleep(0.5)
    h.check("no_fd_leak_after_timeouts", now["fds"] <= base["fds"] + 4,
            f"fds {base['fds']} -> {now['fds']}")
    h.check("no_thread_growth_after_timeouts", now["threads"] <= base["threads"] + 2,
            f"threads {base['threads']} -> {now['threads']}")
    m1 = try_metrics(mport)
    infl1 = gauge_sum(m1, ("inflight", "in_flight", "active_requests", "open_requests"))
    if infl0 is None or infl1 is None:
        h.info(f"no in-flight gauge on /metrics (127.0.0.1:{mport}); fd/thread counts used instead")
    else:
        h.check("inflight_gauge_back_to_baseline", infl1[0] <= infl0[0],
                f"{infl1[1]}: {infl0[0]} -> {infl1[0]}")
    healthy(h, g)
    valid_call_works(h, g)

    # (b) SSE upstream: the response head arrives, then the tool hangs. By design gait puts no
    # total timeout on a stream (keep-alive comments keep it open); a client that gives up and
    # disconnects must release everything gait holds for it (upstream connection, task).
    # Stateless: no Mcp-Session-Id, so no session journal writer (one blocking thread per open
    # session by design, bounded by the journal pool) muddies the thread count.
    up2 = h.start_upstream("upstream-sse", ["--stateless"])
    wd2, traces2, sessions2 = base_dirs(h, "gait-sse")
    g2 = h.start_gait("gait-sse", gait_args(policy, up2.url(), traces2, sessions2,
                                            "--upstream-timeout-secs", "2"), cwd=wd2)
    valid_call_works(h, g2, "sse_baseline_call_works")
    time.sleep(0.5)
    base2 = mc.proc_stats(g2.pid)

    def give_up(i):
        s = mc.Session(g2.url("/mcp"), timeout=15)
        try:
            s.initialize()
            s.conn.sock.settimeout(3)  # < gait's 15 s keep-alive interval: the read times out
            s.call("hang", {}, progress=True, timeout=3)
            return "answered"
        except Exception as e:  # noqa: BLE001 - the expected outcome: our read timed out
            return type(e).__name__
        finally:
            s.close()

    with ThreadPoolExecutor(max_workers=n) as ex:
        outcomes = list(ex.map(give_up, range(n)))
    h.check("sse_hang_stream_stays_open_until_client_leaves",
            all(o in ("TimeoutError", "timeout") for o in outcomes), f"client outcomes {outcomes[:4]}")
    reached = up2.tool_count("hang")
    deadline = time.monotonic() + 25  # gait notices a gone client at its next keep-alive (15 s)
    now2 = mc.proc_stats(g2.pid)
    while time.monotonic() < deadline:
        now2 = mc.proc_stats(g2.pid)
        if now2["fds"] <= base2["fds"] + 4:
            break
        time.sleep(0.5)
    h.check("sse_hang_released_after_client_disconnect", reached == n and now2["fds"] <= base2["fds"] + 4,
            f"{reached}/{n} hangs reached the upstream; gait fds {base2['fds']} -> {now2['fds']} "
            "25 s after the clients left")
    # tokio's blocking pool (journal fsyncs) keeps idle threads for 10 s before they exit
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and now2["threads"] > base2["threads"] + 2:
        time.sleep(0.5)
        now2 = mc.proc_stats(g2.pid)
    h.check("sse_hang_no_thread_growth", now2["threads"] <= base2["threads"] + 2,
            f"threads {base2['threads']} -> {now2['threads']}: {thread_names(g2.pid)}")
    valid_call_works(h, g2, "sse_valid_call_after_fault")


# ---------------------------------------------------------------------------------------------
def _closed_within(sock, seconds, drip=None):
    """Wait until the peer closes `sock` (EOF/reset) or `seconds` pass; optionally drip bytes."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        try:
            if drip:
                sock.sendall(drip)
            data = sock.recv(4096)
            if not data:
                return time.monotonic() - t0
            if data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400"):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def slowloris_and_half_open(h):
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    up = h.start_upstream("upstream")
    wd, traces, sessions = base_dirs(h, "gait")
    cap = 64
    g = h.start_gait("gait", gait_args(policy, up.url(), traces, sessions,
                                       "--max-connections", str(cap)), cwd=wd)
    valid_call_works(h, g, "baseline_call_works")
    base = mc.proc_stats(g.pid)
    n = 10 if Q else 30

    def connect():
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        return s

    results = {"slowloris": [], "silent": [], "slow_body": []}

    def slowloris(_):
        s = connect()
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        return _closed_within(s, 15, drip=b"X")  # one header byte per 0.5 s, never finishing

    def silent(_):
        s = connect()
        return _closed_within(s, 15)

    def slow_body(_):
        s = connect()
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"")
        return _closed_within(s, 40)

    legit = {}

    def legit_probe():
        time.sleep(1.0)
        t0 = time.monotonic()
        try:
            r = mc.request(g.url("/healthz"), timeout=14)
            legit["status"], legit["dt"] = r.status, time.monotonic() - t0
        except Exception as e:  # noqa: BLE001
            legit["err"] = f"{type(e).__name__}: {e}"

    peak = {"fds": 0}

    def sampler(stop):
        while not stop.is_set():
            try:
                peak["fds"] = max(peak["fds"], mc.proc_stats(g.pid)["fds"])
            except OSError:
                pass
            time.sleep(0.2)

    stop = threading.Event()
    st = threading.Thread(target=sampler, args=(stop,))
    st.start()
    lp = threading.Thread(target=legit_probe)
    with ThreadPoolExecutor(max_workers=3 * n + 4) as ex:
        futs = {k: [ex.submit(fn, i) for i in range(n)]
                for k, fn in (("slowloris", slowloris), ("silent", silent), ("slow_body", slow_body))}
        lp.start()
        for k, fs in futs.items():
            results[k] = [f.result() for f in fs]
    lp.join(timeout=20)
    stop.set()
    st.join()

    for k, limit in (("slowloris", 15), ("silent", 15), ("slow_body", 40)):
        open_ = sum(1 for r in results[k] if r is None)
        worst = max([r for r in results[k] if r is not None] or [0])
        h.check(f"{k}_connections_closed_by_server", open_ == 0,
                f"{open_}/{n} still open after {limit} s (slowest closed at {worst:.1f}s)")
    h.check("legit_request_served_during_attack", legit.get("status") == 200,
            f"{legit}")

    # connection cap: many idle connections must not raise gait's fd count past the cap
    flood = []
    try:
        for _ in range(cap + 100):
            flood.append(connect())
    except OSError as e:
        h.info(f"flood stopped at {len(flood)} connections: {e}")
    time.sleep(1.5)
    during = mc.proc_stats(g.pid)["fds"]
    peak["fds"] = max(peak["fds"], during)
    h.check("connection_cap_bounds_open_fds", during <= base["fds"] + cap + 16,
            f"gait fds {base['fds']} -> {during} with {len(flood)} idle connections, cap {cap}")
    t0 = time.monotonic()
    try:
        r = mc.request(g.url("/healthz"), timeout=15)
        h.check("served_while_connection_cap_reached", r.status == 200,
                f"HTTP {r.status} after {time.monotonic() - t0:.1f}s")
    except Exception as e:  # noqa: BLE001
        h.check("served_while_connection_cap_reached", False, f"{type(e).__name__}: {e} after {time.monotonic() - t0:.1f}s")
    for s in flood:
        s.close()
    deadline = time.monotonic() + 10
    now = mc.proc_stats(g.pid)
    while time.monotonic() < deadline and now["fds"] > base["fds"] + 4:
        time.sleep(0.5)
        now = mc.proc_stats(g.pid)
    h.check("fds_back_to_baseline", now["fds"] <= base["fds"] + 4, f"{base['fds']} -> {now['fds']} (peak {peak['fds']})")
    healthy(h, g)
    valid_call_works(h, g)


# ---------------------------------------------------------------------------------------------
def malformed_payloads(rng, port):
    """One malformed HTTP request (bytes) per call: fuzzed JSON-RPC, bad UTF-8, huge headers…"""
    hdr = (b"Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
           b"Accept: application/json, text/event-stream\r\n") % port

    def post(body, extra=b"", path=b"/mcp"):
        return (b"POST " + path + b" HTTP/1.1\r\n" + hdr + extra
                + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)

    kind = rng.randrange(16)
    if kind == 0:
        return "random_bytes_body", post(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
    if kind == 1:
        return "bad_utf8_in_json", post(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\xff\xfe\xc3","arguments":{"t":"\xed\xa0\x80"}}}')
    if kind == 2:
        depth = rng.choice([200, 5000, 50000])
        return "deep_nesting", post(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + b"[" * depth + b"]" * depth + b"}")
    if kind == 3:
        v = rng.choice([b"{}", b"[]", b"null", b"1", b'"x"', b"[1,2,3]", b'{"id":{},"method":5}',
                        b'{"jsonrpc":"1.0","id":1,"method":"tools/call"}',
                        b'{"jsonrpc":"2.0","id":[1],"method":"tools/call","params":"x"}',
                        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}',
                        b'{"jsonrpc":"2.0","id":1e999999,"method":"tools/call","params":{"name":"echo"}}',
                        b'[' + b','.join([b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/"}}}'] * 50) + b']'])
        return "jsonrpc_wrong_shape", post(v)
    if kind == 4:
        return "huge_header", (b"POST /mcp HTTP/1.1\r\n" + hdr + b"X-Big: " + b"a" * rng.choice([20000, 70000, 200000])
                               + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    if kind == 5:
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(rng.choice([150, 1000, 5000])))
        return "many_headers", b"POST /mcp HTTP/1.1\r\n" + hdr + many + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    if kind == 6 and rng.random() < 0.1:
        return "empty_lines_prefix", b"\r\n\r\n\r\n"  # a valid (ignored) prefix of a request: incomplete
    if kind == 6:
        return "garbage_request_line", rng.choice([b"GARBAGE\r\n\r\n", b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n",
                                                   b"GET / HTTP/9.9\r\n\r\n", b"POST /mcp HTTP/1.1\r\n\r\n",
                                                   b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"])
    if kind == 7:
        return "bad_chunked", (b"POST /mcp HTTP/1.1\r\n" + hdr + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                               + rng.choice([b"zz\r\nabc\r\n0\r\n\r\n", b"ffffffffffffffff\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"]))
    if kind == 8:
        return "smuggling_cl_te", (b"POST /mcp HTTP/1.1\r\n" + hdr + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
                                   b"Connection: close\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
    if kind == 9:
        return "short_body", (b"POST /mcp HTTP/1.1\r\n" + hdr + b"Content-Length: 500\r\nConnection: close\r\n\r\n{\"jsonrpc\":")
    if kind == 10:
        return "bad_header_bytes", (b"POST /mcp HTTP/1.1\r\n" + hdr + b"X-Bad: \xff\xfe\x00x\r\nMcp-Session-Id: \x7f\x80\r\n"
                                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    if kind == 11:
        return "bad_path", rng.choice([b"GET /mcp/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                       b"GET /%00%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                       b"GET http://evil.example/mcp HTTP/1.1\r\nHost: evil\r\nConnection: close\r\n\r\n",
                                       b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
    if kind == 12:
        return "wrong_method", rng.choice([b"PUT", b"PATCH", b"TRACE", b"OPTIONS", b"CONNECT", b"DELETE"]) + \
            b" /mcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    if kind == 13:
        return "bad_session_id", post(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}',
                                      extra=b"Mcp-Session-Id: " + bytes(rng.choice(b"abc\t !~") for _ in range(40)) + b"\r\n")
    if kind == 14:
        return "bad_content_type", post(b'{"jsonrpc":"2.0","id":1,"method":"ping"}').replace(b"application/json\r\n", rng.choice([b"text/plain\r\n", b"application/json; charset=\xff\r\n", b"multipart/form-data\r\n"]), 1)
    return "evaluate_fuzz", post(rng.choice([b'{"call":null}', b'{"call":{"type":"function"}}', b'{"call":{"function":{"name":"\xff"}}}',
                                            b'{"call":' + b'{"a":' * 3000 + b'1' + b'}' * 3000 + b'}']), path=b"/v1/evaluate")


TRUNCATED_KINDS = ("short_body", "bad_chunked", "empty_lines_prefix")


def send_raw(port, payload, timeout=5.0, half_close=False):
    """Send one raw request; return the status code, 'closed' or 'timeout'.

    `half_close` shuts down our write side after sending, for payloads whose body is truncated:
    the server then knows the body will never complete (a slow body is the slowloris scenario's
    business). Other payloads keep the write side open, because hyper closes a half-closed
    connection without answering and that would hide the status the test is checking."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            try:
                s.sendall(payload)
                if half_close:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # server may close early on huge input; read what it said
            s.settimeout(timeout)
            data = b""
            try:
                while len(data) < 16 and b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                return "timeout"
            except OSError:
                return "closed"
            if data.startswith(b"HTTP/1.") and len(data) >= 12:
                try:
                    return int(data[9:12])
                except ValueError:
                    return "garbled"
            return "closed"
    except OSError:
        return "connect_error"


def malformed_flood(h):
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    up = h.start_upstream("upstream")
    wd, traces, sessions = base_dirs(h, "gait")
    g = h.start_gait("gait", gait_args(policy, up.url(), traces, sessions), cwd=wd)
    valid_call_works(h, g, "baseline_call_works")
    total = 2000 if Q else 10000
    warm = total // 5
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "6")))
    payloads = [malformed_payloads(rng, g.port) for _ in range(total)]
    statuses = {}
    by_kind_5xx = {}
    by_kind_timeout = {}
    lock = threading.Lock()

    def run(batch):
        for kind, p in batch:
            st = send_raw(g.port, p, half_close=kind in TRUNCATED_KINDS)
            with lock:
                statuses[st] = statuses.get(st, 0) + 1
                if isinstance(st, int) and st >= 500:
                    by_kind_5xx[kind] = by_kind_5xx.get(kind, 0) + 1
                if st == "timeout":
                    by_kind_timeout[kind] = by_kind_timeout.get(kind, 0) + 1

    workers = 8
    # warm-up with the same concurrency as the flood, so allocator arenas and the upstream
    # connection pool reach their working size before the baseline sample
    first = payloads[:warm]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(run, [first[i::workers] for i in range(workers)]))
    time.sleep(0.5)
    rss_warm = mc.proc_stats(g.pid)
    t0 = time.monotonic()
    rest = payloads[warm:]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(run, [rest[i::workers] for i in range(workers)]))
    dt = time.monotonic() - t0
    time.sleep(1.0)
    after = mc.proc_stats(g.pid)
    h.info(f"{total} malformed requests in {dt:.1f}s; outcomes {dict(sorted(statuses.items(), key=str))}")
    h.check("process_survives_malformed_flood", g.alive(), g.log(400))
    h.check("no_5xx_for_malformed_input", not by_kind_5xx, f"5xx by payload kind: {by_kind_5xx}")
    h.check("no_timeouts_for_malformed_input", statuses.get("timeout", 0) == 0,
            f"{statuses.get('timeout', 0)} requests got neither an answer nor a close within 5 s: {by_kind_timeout}")
    limit = rss_warm["rss_kib"] * 1.25 + 4096
    h.check("rss_flat_after_flood", after["rss_kib"] <= limit,
            f"RSS {rss_warm['rss_kib']} KiB after warm-up -> {after['rss_kib']} KiB (limit {int(limit)})")
    # fds: client connections must all be gone; pooled idle upstream connections (bounded by
    # the flood's concurrency, kept for reuse) are not a leak
    clients = tcp_conns(g.pid, local_port=g.port)
    upstream = tcp_conns(g.pid, remote_port=up.port)
    h.info(f"after the flood: fds {after['fds']}, {clients} client connections, {upstream} pooled upstream connections")
    h.check("fds_flat_after_flood", after["fds"] <= rss_warm["fds"] + 4 + upstream and clients == 0
            and upstream <= workers + 2,
            f"fds {rss_warm['fds']} -> {after['fds']}; {clients} client connections still open, "
            f"{upstream} pooled upstream connections (at most {workers + 2} expected)")
    forwarded = up.stats().get("tools", {}).get("delete_file", 0)
    h.check("malformed_batches_never_execute_blocked_tool", forwarded == 0,
            f"upstream executed delete_file {forwarded} times")
    healthy(h, g)
    valid_call_works(h, g)


# ---------------------------------------------------------------------------------------------
def trace_dir_unwritable_or_full(h):
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    env, keys = hz.std_env(h)
    up = h.start_upstream("upstream")
    wd = h.dir("gait")
    traces = os.path.join(wd, "traces")
    mounted = True
    try:
        if os.environ.get("CHAOS_NO_MOUNT", "0") not in ("", "0"):
            raise RuntimeError("CHAOS_NO_MOUNT is set")
        h.mount_tmpfs(traces, "512k")
    except RuntimeError as e:
        mounted = False
        os.makedirs(traces, exist_ok=True)
        h.info(f"no tmpfs ({e}): 'full' is injected as RLIMIT_FSIZE=0 on gait (every file write "
               "fails with EFBIG, SIGXFSZ ignored); 'unwritable' as 'path is not a directory'")
    prod = ("--profile", "oss-prod", "--workspace", "/srv/chaos", "--auth-mode", "token",
            "--auth-token-env", "GAIT_MCP_TOKEN", "--key-mode", "prod",
            "--private-key-env", "GAIT_PRIVATE_KEY")
    tok = env["GAIT_MCP_TOKEN"]
    real_bin = hz.gait_bin()
    if not mounted:
        # SIG_IGN survives exec: with SIGXFSZ ignored a write over RLIMIT_FSIZE fails (EFBIG)
        # instead of killing gait, the way a write to a full disk fails (ENOSPC).
        wrapper = h.write(os.path.join(h.root, "gait-ignore-xfsz.sh"),
                          f"#!/bin/sh\ntrap '' XFSZ\nexec '{real_bin}' \"$@\"\n")
        os.chmod(wrapper, 0o755)
        os.environ["GAIT_BIN"] = wrapper
    try:
        g = h.start_gait("gait", gait_args(policy, up.url(), traces, h.dir("gait", "sessions"), *prod),
                         cwd=wd, env=env)
    finally:
        os.environ["GAIT_BIN"] = real_bin
    valid_call_works(h, g, "baseline_call_works_in_oss_prod", token=tok)
    time.sleep(0.5)
    h.check("baseline_trace_written", len(hz.traces_in(traces)) >= 1, f"{hz.traces_in(traces)}")

    def fault_check(label):
        before = up.tool_count("echo")
        errs = 0
        trace_errs = 0
        detail = []
        for i in range(5):
            try:
                s = mc.Session(g.url("/mcp"), timeout=10, token=tok)
                s.initialize()
                rid, r = s.call("echo", {"text": f"{label}{i}"})
                s.close()
                if mc.is_jsonrpc_error(r, rid) or r.status >= 400:
                    errs += 1
                    data = ((r.reply(rid) or {}).get("error") or {}).get("data") or {}
                    if "trace_write_failed" in (data.get("reason_codes") or []):
                        trace_errs += 1
                    else:
                        detail.append(f"HTTP {r.status} {r.text[:160]}")
                else:
                    detail.append(f"HTTP {r.status} success")
            except Exception as e:  # noqa: BLE001 - initialize may itself be refused: still not forwarded
                errs += 1
                detail.append(f"{type(e).__name__}")
        after = up.tool_count("echo")
        h.check(f"{label}_fail_closed_not_forwarded", after == before,
                f"upstream echo count {before} -> {after} while trace dir is {label}")
        h.check(f"{label}_client_gets_error", errs == 5, f"{errs}/5 calls errored: {detail[:3]}")
        h.check(f"{label}_error_says_trace_write_failed", trace_errs == 5,
                f"{trace_errs}/5 errors carry reason_codes [trace_write_failed]: {detail[:2]}")
        healthy(h, g, f"gait_alive_while_{label}")

    def recovered(label):
        valid_call_works(h, g, f"recovers_after_{label}", token=tok, retries=40)

    if mounted:
        h.remount(traces, "ro")
        fault_check("trace_dir_readonly")
        h.remount(traces, "rw")
        recovered("trace_dir_readonly")
        filler = os.path.join(traces, "zz_filler.bin")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        fault_check("trace_dir_full")
        os.unlink(filler)
        recovered("trace_dir_full")
    else:
        import resource
        soft, hard = resource.prlimit(g.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(g.pid, resource.RLIMIT_FSIZE, (0, hard))
        try:
            fault_check("trace_writes_fail_efbig")
        finally:
            resource.prlimit(g.pid, resource.RLIMIT_FSIZE, (soft, hard))
        recovered("trace_writes_fail_efbig")
    moved = traces + ".moved"
    if mounted:
        h.stop(g)  # a mount point cannot be renamed: restart gait on a plain directory
        traces = h.dir("gait", "traces2")
        g = h.start_gait("gait2", gait_args(policy, up.url(), traces, h.dir("gait", "sessions2"), *prod),
                         cwd=wd, env=env)
        moved = traces + ".moved"
    os.rename(traces, moved)
    with open(traces, "w") as f:
        f.write("not a directory\n")
    fault_check("trace_dir_not_a_directory")
    os.unlink(traces)
    os.rename(moved, traces)
    recovered("trace_dir_not_a_directory")


class Load:
    """`n` threads calling through `url` (each in its own MCP session, reconnecting after any
    error, e.g. while gait is killed) until `stop()`. Every fifth call of a thread is a blocked
    `delete_file` when `mixed`; `answered()` counts allowed `echo` calls answered, `sent_at`
    holds their send times."""

    def __init__(self, url, token, n, mixed=False):
        self.lock = threading.Lock()
        self.sent_at = []
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._worker, args=(url, token, i, mixed)) for i in range(n)]
        for t in self.threads:
            t.start()

    def _worker(self, url, token, i, mixed):
        while not self._stop.is_set():
            try:
                s = mc.Session(url, timeout=5, token=token)
                s.initialize()
                j = 0
                while not self._stop.is_set():
                    tool, a = (("delete_file", {"path": f"/w{i}"}) if mixed and j % 5 == 4
                               else ("echo", {"text": f"w{i}-{j}"}))
                    sent = time.monotonic()
                    rid, r = s.call(tool, a)
                    if tool == "echo" and mc.call_result_ok(r, rid):
                        with self.lock:  # an allowed call forwarded and answered
                            self.sent_at.append(sent)
                    j += 1
            except Exception:  # noqa: BLE001 - expected once gait is killed
                time.sleep(0.05)

    def answered(self):
        with self.lock:
            return len(self.sent_at)

    def stop(self, timeout=15):
        self._stop.set()
        for t in self.threads:
            t.join(timeout=timeout)


def kill9(g):
    os.kill(g.pid, signal.SIGKILL)
    g.popen.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
def _segment_lines(traces):
    """(records, torn tails) of every trace segment in `traces`: complete lines only."""
    records, torn = [], 0
    for f in sorted(os.listdir(traces)):
        if not f.endswith(".jsonl"):
            continue
        with open(os.path.join(traces, f), "rb") as fh:
            data = fh.read()
        body, _, tail = data.rpartition(b"\n")
        torn += bool(tail)
        for line in body.split(b"\n") if body else []:
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"_corrupt": line[:80].decode("utf-8", "replace")})
    return records, torn


def _verify_segments(h, label, traces, keys):
    bad, n = [], 0
    for f in sorted(os.listdir(traces)):
        if not f.endswith(".jsonl"):
            continue
        n += 1
        r = h.run_gait(["trace", "verify", os.path.join(traces, f), "--public-key", keys["public_path"],
                        "--json"], timeout=60)
        if r.returncode != 0:
            bad.append(f"{f} exit {r.returncode} {(r.stdout + r.stderr)[:160]}")
    h.check(f"{label}_every_segment_verifies", n > 0 and not bad, f"{len(bad)}/{n} segments fail: {bad[:2]}")


def trace_segments_full_and_kill9(h):
    """`--trace-sink segments` in the production posture (fail-closed recording).

    Full trace dir (512 KiB tmpfs, filled): every call is refused with trace_write_failed and
    never forwarded; the failed appends are cut back, so the segment holds only whole lines and
    the allow records equal the calls the upstream ran. kill -9 under load: every allowed call
    answered before the kill has its signed line on disk, and every segment still verifies (a
    torn last line, if the kill hit a write, is reported and tolerated)."""
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    env, keys = hz.std_env(h)
    tok = env["GAIT_MCP_TOKEN"]
    up = h.start_upstream("upstream")
    wd = h.dir("gait")
    traces = os.path.join(wd, "traces")
    try:
        if os.environ.get("CHAOS_NO_MOUNT", "0") not in ("", "0"):
            raise RuntimeError("CHAOS_NO_MOUNT is set")
        h.mount_tmpfs(traces, "512k")
        mounted = True
    except RuntimeError as e:
        mounted = False
        os.makedirs(traces, exist_ok=True)
        h.info(f"no tmpfs ({e}): the full-disk half is skipped; the kill -9 half runs")
    prod = ("--profile", "oss-prod", "--workspace", "/srv/chaos", "--auth-mode", "token",
            "--auth-token-env", "GAIT_MCP_TOKEN", "--key-mode", "prod",
            "--private-key-env", "GAIT_PRIVATE_KEY", "--trace-sink", "segments",
            "--trace-segment-records", "50")
    args = gait_args(policy, up.url(), traces, h.dir("gait", "sessions"), *prod)
    g = h.start_gait("gait", args, cwd=wd, env=env)
    for i in range(3):
        valid_call_works(h, g, f"segments_baseline_call_{i}", token=tok)
    if mounted:
        filler = os.path.join(traces, "zz_filler.bin")
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        before = up.tool_count("echo")
        refused = 0
        for i in range(5):
            try:
                s = mc.Session(g.url("/mcp"), timeout=10, token=tok)
                s.initialize()
                rid, r = s.call("echo", {"text": f"full{i}"})
                s.close()
                data = ((r.reply(rid) or {}).get("error") or {}).get("data") or {}
                refused += "trace_write_failed" in (data.get("reason_codes") or [])
            except Exception:  # noqa: BLE001 - a refused initialize is also not forwarded
                pass
        # the segment's last page may still hold a line or two: such a call is recorded and
        # forwarded; every other one must be refused (checked against the records below)
        forwarded = up.tool_count("echo") - before
        h.check("segments_full_refused_or_recorded", refused + forwarded == 5 and refused >= 3,
                f"{refused}/5 refused with trace_write_failed, {forwarded} forwarded on a full trace dir")
        healthy(h, g, "segments_gait_alive_while_full")
        os.unlink(filler)
        valid_call_works(h, g, "segments_recovers_after_full", token=tok, retries=40)
        records, torn = _segment_lines(traces)
        corrupt = [r for r in records if "_corrupt" in r]
        allow = sum(1 for r in records if r.get("verdict") == "allow")
        h.check("segments_whole_lines_after_full", not corrupt and torn == 0,
                f"{len(corrupt)} corrupt lines, {torn} torn tails: {corrupt[:2]}")
        h.check("segments_allow_records_equal_forwarded_calls", allow == up.tool_count("echo"),
                f"{allow} allow records, upstream ran echo {up.tool_count('echo')} times")
        _verify_segments(h, "segments_after_full", traces, keys)
        # the kill -9 half needs room: a fresh plain directory
        h.stop(g)
        traces = h.dir("gait", "traces2")
        args = gait_args(policy, up.url(), traces, h.dir("gait", "sessions2"), *prod)
        g = h.start_gait("gait-kill9", args, cwd=wd, env=env)
        for i in range(3):
            valid_call_works(h, g, f"segments_kill9_baseline_call_{i}", token=tok)
    # kill -9 under load
    load = Load(g.url("/mcp"), tok, 6)
    time.sleep(2.0 if Q else 4.0)
    kill9(g)
    acked_at_kill = load.answered()
    load.stop()
    records, torn = _segment_lines(traces)
    corrupt = [r for r in records if "_corrupt" in r]
    allow = sum(1 for r in records if r.get("verdict") == "allow")
    h.info(f"segments: kill -9 after {acked_at_kill} answered calls; {allow} allow records, "
           f"{torn} torn tail(s), {len(records)} lines")
    h.check("segments_answered_calls_recorded_at_kill9", allow >= acked_at_kill + 3,
            f"{acked_at_kill} answered under load (+3 baseline), {allow} allow records on disk")
    h.check("segments_no_corrupt_complete_line_after_kill9", not corrupt, f"{corrupt[:2]}")
    _verify_segments(h, "segments_after_kill9", traces, keys)
    g2 = h.start_gait("gait-restarted", args, cwd=wd, env=env)
    valid_call_works(h, g2, "segments_restart_after_kill9", token=tok)
    h.stop(g2)
    _verify_segments(h, "segments_after_restart", traces, keys)


# ---------------------------------------------------------------------------------------------
def kill9_under_load(h):
    """kill -9 of gait under load, then restart on the same dirs, in both postures.

    Standard profile: traces are written behind the request (bounded queue, async writer), so a
    kill -9 may lose the traces still queued; what must hold is that nothing on disk is torn.
    oss-prod (fail-closed): an allowed call is forwarded only after its trace is durable, so
    every call answered to a client must also have its signed trace on disk after the kill."""
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    env, keys = hz.std_env(h)
    up = h.start_upstream("upstream")
    tok = env["GAIT_MCP_TOKEN"]
    prod = ("--profile", "oss-prod", "--workspace", "/srv/chaos", "--auth-mode", "token",
            "--auth-token-env", "GAIT_MCP_TOKEN")
    for posture, more, token in (("standard", (), None), ("oss_prod", prod, tok)):
        _kill9_once(h, posture, policy, env, keys, up, more, token)


def _kill9_once(h, posture, policy, env, keys, up, more, token):
    wd, traces, sessions = base_dirs(h, f"gait-{posture}")
    args = gait_args(policy, up.url(), traces, sessions, "--key-mode", "prod",
                     "--private-key-env", "GAIT_PRIVATE_KEY", *more)
    g = h.start_gait(f"gait-{posture}", args, cwd=wd, env=env)
    port = g.port
    load = Load(g.url("/mcp"), token, 8, mixed=True)
    time.sleep(2.0 if Q else 5.0)
    kill9(g)
    acked_at_kill = load.answered()
    time.sleep(0.3)
    files_at_kill = hz.traces_in(traces)
    allow_at_kill = 0
    for f in files_at_kill:
        try:
            allow_at_kill += json.load(open(f)).get("verdict") == "allow"
        except ValueError:
            pass
    h.info(f"{posture}: kill -9 after {acked_at_kill} answered allowed calls; "
           f"{allow_at_kill} allow traces on disk at the kill")
    if posture == "oss_prod":
        h.check(f"{posture}_answered_calls_traced_at_kill", allow_at_kill >= acked_at_kill,
                f"{acked_at_kill} allowed calls answered before the kill, {allow_at_kill} allow traces on disk")
    elif allow_at_kill < acked_at_kill:
        h.info(f"{posture}: {acked_at_kill - allow_at_kill} queued traces lost to kill -9 "
               "(expected: standard profile writes traces behind the request)")
    try:
        g2 = h.start_gait(f"gait-{posture}-restarted", args, cwd=wd, env=env, port=port)
        h.check(f"{posture}_restart_after_kill9", True)
    except RuntimeError as e:
        load.stop(timeout=10)
        h.check(f"{posture}_restart_after_kill9", False, e)
        return
    restarted_at = time.monotonic()  # requests sent from now on can only reach the new gait
    before_restart_load = load.answered()
    time.sleep(1.5 if Q else 3.0)
    load.stop()
    total_acked = load.answered()
    h.check(f"{posture}_serves_after_restart", total_acked > before_restart_load,
            f"{total_acked - before_restart_load} calls answered after the restart")
    h.stop(g2)  # graceful: flush writers
    files = hz.traces_in(traces)
    bad, records = [], []
    for f in files:
        try:
            records.append(json.load(open(f)))
        except ValueError as e:
            bad.append(f"{os.path.basename(f)}: {e}")
    h.check(f"{posture}_every_trace_file_parses", not bad and files, f"{len(bad)}/{len(files)} corrupt: {bad[:3]}")
    # every file parses (above); `gait trace verify` (one process per file) on an even sample
    sample = files[:: max(1, len(files) // (100 if Q else 400))]
    unverified = []
    for f in sample:
        r = h.run_gait(["trace", "verify", f, "--public-key", keys["public_path"], "--json"], timeout=20)
        if r.returncode != 0:
            unverified.append(f"{os.path.basename(f)} exit {r.returncode} {(r.stdout + r.stderr)[:120]}")
    h.check(f"{posture}_every_trace_file_verifies", not unverified and sample,
            f"{len(unverified)}/{len(sample)} fail verify: {unverified[:2]}")
    ids = [r.get("event_id") for r in records]
    h.check(f"{posture}_event_ids_unique_across_restart", len(ids) == len(set(ids)) and all(ids),
            f"{len(ids)} ids, {len(set(ids))} distinct")
    allow_traces = sum(1 for r in records if r.get("verdict") == "allow")
    acked_after = sum(1 for t in load.sent_at if t >= restarted_at)
    h.check(f"{posture}_answered_calls_after_restart_traced", allow_traces - allow_at_kill >= acked_after,
            f"{acked_after} allowed calls sent to the restarted gait and answered, "
            f"{allow_traces - allow_at_kill} allow traces written by it (flushed by a graceful stop)")
    stray = [f for f in os.listdir(traces) if not (f.endswith(".json") and "trace" in f)]
    if stray:
        h.info(f"{posture}: {len(stray)} non-trace files left in the trace dir (temp files of "
               f"writes cut by the kill; never read as traces): {stray[:3]}")
    torn, journals = [], 0
    for root, _d, fs in os.walk(sessions):
        for f in fs:
            if not f.endswith(".jsonl"):
                continue
            journals += 1
            lines = open(os.path.join(root, f), "rb").read().split(b"\n")
            for k, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except ValueError:
                    if k != len(lines) - 1 or lines[-1] == b"":
                        torn.append(f"{f}:{k + 1}")
    h.check(f"{posture}_session_journals_have_no_corrupt_inner_lines", journals > 0 and not torn,
            f"{journals} journals; corrupt lines {torn[:5]}")
    unreadable = []
    for root, _d, fs in os.walk(sessions):
        for f in sorted(fs)[:50]:
            if not f.endswith(".jsonl"):
                continue
            r = h.run_gait(["run", "session", "status", "--journal", os.path.join(root, f), "--json"],
                           timeout=20)
            if r.returncode != 0:
                unreadable.append(f"{f} exit {r.returncode} {(r.stdout + r.stderr)[:160]}")
    h.check(f"{posture}_session_journals_recover_after_kill9", not unreadable,
            f"{len(unreadable)} journals fail `gait run session status`: {unreadable[:2]}")


# ---------------------------------------------------------------------------------------------
def trace_uniqueness(h):
    policy = h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY)
    up = h.start_upstream("upstream")
    wd, traces, sessions = base_dirs(h, "gait")
    g = h.start_gait("gait", gait_args(policy, up.url(), traces, sessions), cwd=wd)
    threads, per = (8, 20) if Q else (16, 50)
    answered = {"n": 0}
    lock = threading.Lock()

    def worker(_):
        s = mc.Session(g.url("/mcp"), timeout=10)
        s.initialize()
        for _ in range(per):
            rid, r = s.call("echo", {"text": "identical"})
            if mc.call_result_ok(r, rid):
                with lock:
                    answered["n"] += 1
        s.close()

    with ThreadPoolExecutor(max_workers=threads) as ex:
        list(ex.map(worker, range(threads)))
    n = threads * per
    h.check("all_concurrent_calls_answered", answered["n"] == n, f"{answered['n']}/{n}")
    deadline = time.monotonic() + 10
    files = hz.traces_in(traces)
    while time.monotonic() < deadline and len(files) < n:
        time.sleep(0.2)
        files = hz.traces_in(traces)
    recs = []
    for f in files:
        try:
            recs.append(json.load(open(f)))
        except ValueError:
            pass
    ids = [r.get("event_id") for r in recs]
    h.check("one_trace_file_per_call", len(files) == n, f"{len(files)} trace files for {n} identical calls")
    h.check("event_ids_unique", len(ids) == len(set(ids)) and all(ids), f"{len(ids)} ids, {len(set(ids))} distinct")
    names = [os.path.basename(f) for f in files]
    h.check("trace_file_names_unique", len(names) == len(set(names)), "duplicate file names")


SCENARIOS = {
    "upstream_dies_mid_stream": upstream_dies_mid_stream,
    "upstream_hangs": upstream_hangs,
    "slowloris_and_half_open": slowloris_and_half_open,
    "malformed_flood": malformed_flood,
    "trace_dir_unwritable_or_full": trace_dir_unwritable_or_full,
    "trace_segments_full_and_kill9": trace_segments_full_and_kill9,
    "kill9_under_load": kill9_under_load,
    "trace_uniqueness": trace_uniqueness,
}


def main(argv):
    if len(argv) != 1 or argv[0] not in SCENARIOS:
        print(f"usage: scenarios.py {{{'|'.join(SCENARIOS)}}}", file=sys.stderr)
        return 6
    h = hz.Harness(f"chaos-{argv[0]}")
    print(f"# chaos/proxy {argv[0]} (quick={Q})", flush=True)
    try:
        SCENARIOS[argv[0]](h)
    except Exception as e:  # noqa: BLE001 - a crashed scenario is a failed scenario
        h.check(f"{argv[0]}_ran", False, f"{type(e).__name__}: {e}")
    return h.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
