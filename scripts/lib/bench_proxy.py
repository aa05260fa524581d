#!/usr/bin/env python3
"""Side-by-side proxy load run: direct upstream vs nginx vs gait, same upstream, same run.

    python3 scripts/lib/bench_proxy.py --out results.json [--quick] [--upstream fast|rmcp]

All processes on 127.0.0.1 with ephemeral ports; wrk (with a Lua script for the POST body) drives
an allowed `tools/call`. Reports throughput at --connections and latency at 1 connection for each
path, the ratios to direct, and gait's RSS with 1,000 open MCP sessions (each on its own idle
keep-alive connection). nginx runs as a plain reverse proxy (keepalive upstream pool, no
buffering) from a generated config in a temp dir, `daemon off`, nothing outside the temp dir.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as hz  # noqa: E402
import mcp_client as mc  # noqa: E402

LUA = r'''
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local sid = os.getenv("WRK_SESSION")
if sid and sid ~= "" then
  wrk.headers["Mcp-Session-Id"] = sid
  wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
end
local tok = os.getenv("WRK_TOKEN")
if tok and tok ~= "" then wrk.headers["Authorization"] = "Bearer " .. tok end
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,' ..
    '"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
'''

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream mcp_upstream {{
        server 127.0.0.1:{up_port};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mcp_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""

BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "hello"}}})


def start_nginx(h, up_port):
    exe = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
    tmp = h.dir("nginx")
    os.chmod(tmp, 0o777)  # workers drop to an unprivileged user when started as root
    port = mc.free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(workers=os.cpu_count() or 2, tmp=tmp, up_port=up_port, port=port))
    p = h._spawn("nginx", [exe, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")])
    p.port = port
    if not mc.wait_http(f"http://127.0.0.1:{port}/healthz", 10):
        raise RuntimeError(f"nginx did not start: {p.log(500)}")
    return p


def start_bare(h, up):
    """examples/bare_proxy (hyper pass-through, nothing else) in front of `up`, or None."""
    exe = os.environ.get("BARE_PROXY_BIN") or os.path.join(hz.target_dir(), "release", "examples", "bare_proxy")
    if not os.access(exe, os.X_OK):
        h.info(f"no bare_proxy binary at {exe}: the bare hyper row is skipped")
        return None
    pf = os.path.join(h.dir("ports"), "bare.port")
    p = h._spawn("bare", [exe, "--listen", "127.0.0.1:0", "--upstream", f"http://127.0.0.1:{up.port}", "--port-file", pf])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not os.path.exists(pf):
        time.sleep(0.05)
    with open(pf) as f:
        p.port = int(f.read().strip())
    return p


def fs_probe(d, n=1000):
    """CPU µs to create one trace-sized file the way gait does (O_TMPFILE + linkat, else temp
    file + rename) in `d` (gait's trace dir), median and p90 of `n`. On ext4 without a journal, inode allocation skips
    inodes deleted in the last minutes, so right after mass deletions (a test suite's temp
    dirs, retention) this climbs from tens of µs to about a millisecond: the trace-file rows
    then measure the file system, and this number says so."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    probe = os.path.join(d, ".fs-probe")
    os.makedirs(probe, exist_ok=True)
    data = b"x" * 2400
    times = []
    try:
        for i in range(n):
            dst = os.path.join(probe, f"p{i}.json")
            t = time.process_time()
            try:
                fd = os.open(probe, os.O_WRONLY | os.O_TMPFILE, 0o600)
                os.write(fd, data)
                ok = libc.linkat(-100, f"/proc/self/fd/{fd}".encode(), -100, dst.encode(), 0x400) == 0
                os.close(fd)
            except (OSError, AttributeError):
                ok = False
            if not ok:
                tmp = dst + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, dst)
            times.append(time.process_time() - t)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    times.sort()
    return {"files": n, "median_us": round(times[n // 2] * 1e6, 1), "p90_us": round(times[n * 9 // 10] * 1e6, 1)}


def drain(admin_port, limit_s=60.0):
    """Wait (bounded) until a gait's trace queue is empty, so a run does not start behind the
    previous run's backlog (the writer never drops: a full queue holds requests back). Reads
    `gait_writer_queue_depth{writer="trace"}` (sampled once a second) until it is 0 twice in a
    row; returns the seconds waited, or None when the admin endpoint cannot be read."""
    t0 = time.monotonic()
    zeros = 0
    while time.monotonic() - t0 < limit_s:
        try:
            depth = mc.metrics(f"http://127.0.0.1:{admin_port}/metrics", timeout=5)[
                'gait_writer_queue_depth{writer="trace"}']
        except Exception:  # noqa: BLE001 - unreadable or no such series: the wait is skipped
            return None
        zeros = zeros + 1 if depth == 0 else 0
        if zeros >= 2:
            break
        time.sleep(0.5)
    return round(time.monotonic() - t0, 1)


def session_for(url, token=None):
    """Initialize through `url` (so each path gets the session id it would really use)."""
    s = mc.Session(url, token=token)
    s.initialize()
    rid, r = s.call("echo", {"text": "warm"})
    if not mc.call_result_ok(r, rid):
        raise RuntimeError(f"warm-up call through {url} failed: {r!r}")
    s.close()
    return s.session_id or ""


def wrk(h, url, conns, seconds, session, token=None, threads=1):
    lua = os.path.join(h.root, "post.lua")
    if not os.path.exists(lua):
        with open(lua, "w") as f:
            f.write(LUA)
    env = dict(os.environ, WRK_BODY=BODY, WRK_SESSION=session or "", WRK_TOKEN=token or "")
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "5s",
           "-s", lua, url]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"WRKJSON (\{.*\})", r.stdout)
    if not m:
        raise RuntimeError(f"wrk gave no result: {r.stdout[-500:]} {r.stderr[-300:]}")
    res = json.loads(m.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    errs = sum(res[k] for k in res if k.startswith("err_"))
    res["error_rate"] = errs / max(1, res["requests"])
    return res


def rss_with_sessions(h, gait_args, n, cwd, env):
    """RSS of a fresh gait holding `n` initialized MCP sessions on `n` open connections."""
    g = h.start_gait("gait-mem", gait_args, cwd=cwd, env=env)
    base = mc.proc_stats(g.pid)
    conns = []
    failures = 0
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": mc.PROTOCOL_VERSION, "capabilities": {},
                                  "clientInfo": {"name": "bench", "version": "0"}}}).encode()
    req = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(init)) + init
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
            s.sendall(req)
            data = s.recv(65536)
            if not data.startswith(b"HTTP/1.1 200"):
                failures += 1
            conns.append(s)
        except OSError:
            failures += 1
    time.sleep(1.0)
    held = mc.proc_stats(g.pid)
    for s in conns:
        s.close()
    h.stop(g)
    return {"sessions": n, "failures": failures, "rss_kib_idle": base["rss_kib"],
            "rss_kib": held["rss_kib"], "fds": held["fds"], "threads": held["threads"]}


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--upstream", default=os.environ.get("BENCH_UPSTREAM", "fast"), choices=("fast", "rmcp"))
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--no-gait", action="store_true", help="direct and nginx only (harness self-test)")
    a = ap.parse_args(argv)
    seconds = a.seconds or (3 if a.quick else 8)
    h = hz.Harness("bench-proxy")
    up_args = ["--mode", "fast"] if a.upstream == "fast" else ["--stateless", "--json-response"]
    up = h.start_upstream("upstream", up_args)
    ngx = start_nginx(h, up.port)
    wd = h.dir("gait")
    h.write(os.path.join(wd, ".gait", "config.yaml"),
            "retention:\n  sweep_interval: 2s\n  trace:\n    max_count: 20000\n")
    traces = h.dir("gait", "traces")
    gait_args = ["--policy", h.write(os.path.join(h.root, "policy.yaml"), hz.STD_POLICY),
                 "--upstream", up.url(), "--trace-dir", traces,
                 "--session-dir", h.dir("gait", "sessions")]
    paths = {"direct": up.url("/mcp"), "nginx": f"http://127.0.0.1:{ngx.port}/mcp"}
    bare = start_bare(h, up)
    if bare is not None:
        # reported, not budgeted: what any hyper reverse proxy costs on this machine
        paths["bare"] = f"http://127.0.0.1:{bare.port}/mcp"
    g = gs = None
    admin = {}  # path -> admin port of the gait serving it
    if not a.no_gait:
        admin["gait"] = mc.free_port()
        g = h.start_gait("gait", [*gait_args, "--admin-listen", f"127.0.0.1:{admin['gait']}"], cwd=wd)
        paths["gait"] = g.url("/mcp")
        # reported, not budgeted: the same with --trace-sink segments (one append per writer
        # batch instead of one trace file per decision), inside an MCP session like `gait`
        wds = h.dir("gait-seg")
        h.write(os.path.join(wds, ".gait", "config.yaml"),
                "retention:\n  sweep_interval: 2s\n  trace:\n    max_count: 200\n")
        admin["gait_segments"] = mc.free_port()
        gs = h.start_gait("gait-seg", [
            "--policy", gait_args[1], "--upstream", up.url(), "--trace-dir", h.dir("gait-seg", "traces"),
            "--session-dir", h.dir("gait-seg", "sessions"), "--trace-sink", "segments",
            "--admin-listen", f"127.0.0.1:{admin['gait_segments']}"], cwd=wds)
        paths["gait_segments"] = gs.url("/mcp")
    sessions = {k: session_for(u) for k, u in paths.items()}
    if g is not None:
        # Reported, not budgeted: the same gait without an MCP session, i.e. no session journal
        # (no fsync wait per call), the configuration scripts/bench_proxy.sh measures.
        paths["gait_nosession"] = paths["gait"]
        sessions["gait_nosession"] = ""
        admin["gait_nosession"] = admin["gait"]
    res = {"upstream": a.upstream, "seconds": seconds, "connections": a.connections,
           "cpus": os.cpu_count(), "paths": {}, "fs_probe": {"before": fs_probe(traces)}}
    for k, u in paths.items():  # short warm-up so pools and caches are filled
        wrk(h, u, 4, 1, sessions[k])
    res["drain_waits_s"] = {}
    for k, u in paths.items():
        # Every run starts with an empty trace queue: gait and gait_nosession are one process,
        # and a run that outpaced the trace writer leaves a backlog the next run would wait on.
        waits = []
        if k in admin:
            waits.append(drain(admin[k]))
        one = wrk(h, u, 1, seconds, sessions[k])
        if k in admin:
            waits.append(drain(admin[k]))
        many = wrk(h, u, a.connections, seconds, sessions[k])
        res["paths"][k] = {"c1": one, f"c{a.connections}": many}
        if waits:
            res["drain_waits_s"][k] = waits
        h.info(f"{k:6s} c1 {one['rps']:9.0f} req/s p50 {one['lat_p50_us']} us p99 {one['lat_p99_us']} us | "
               f"c{a.connections} {many['rps']:9.0f} req/s p99 {many['lat_p99_us']} us err {many['error_rate']:.4f}")
    res["fs_probe"]["after"] = fs_probe(traces)
    h.stop(ngx)
    if bare is not None:
        h.stop(bare)
    if gs is not None:
        h.stop(gs)
    if a.no_gait:
        print(json.dumps(res["paths"], indent=1))
        return 0
    res["gait_process"] = mc.proc_stats(g.pid)
    h.stop(g)
    res["memory"] = rss_with_sessions(h, gait_args, 200 if a.quick else a.sessions, wd, None)
    d = res["paths"]["direct"]
    ck = f"c{a.connections}"
    res["derived"] = {
        "gait_ratio": res["paths"]["gait"][ck]["rps"] / d[ck]["rps"],
        "nginx_ratio": res["paths"]["nginx"][ck]["rps"] / d[ck]["rps"],
        "gait_added_p50_us_c1": res["paths"]["gait"]["c1"]["lat_p50_us"] - d["c1"]["lat_p50_us"],
        "gait_added_p99_us_c1": res["paths"]["gait"]["c1"]["lat_p99_us"] - d["c1"]["lat_p99_us"],
        "nginx_added_p50_us_c1": res["paths"]["nginx"]["c1"]["lat_p50_us"] - d["c1"]["lat_p50_us"],
        "nginx_added_p99_us_c1": res["paths"]["nginx"]["c1"]["lat_p99_us"] - d["c1"]["lat_p99_us"],
        "gait_nosession_ratio": res["paths"]["gait_nosession"][ck]["rps"] / d[ck]["rps"],
        "gait_nosession_added_p50_us_c1":
            res["paths"]["gait_nosession"]["c1"]["lat_p50_us"] - d["c1"]["lat_p50_us"],
        "gait_nosession_added_p99_us_c1":
            res["paths"]["gait_nosession"]["c1"]["lat_p99_us"] - d["c1"]["lat_p99_us"],
    }
    for k in ("bare", "gait_segments"):
        if k in res["paths"]:
            pk = res["paths"][k]
            res["derived"][f"{k}_ratio"] = pk[ck]["rps"] / d[ck]["rps"]
            res["derived"][f"{k}_added_p50_us_c1"] = pk["c1"]["lat_p50_us"] - d["c1"]["lat_p50_us"]
            res["derived"][f"{k}_added_p99_us_c1"] = pk["c1"]["lat_p99_us"] - d["c1"]["lat_p99_us"]
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    print(table(res))
    h.cleanup()
    return 0


def table(res):
    ck = f"c{res['connections']}"
    d = res["paths"]["direct"]
    lines = [f"| path | req/s @{res['connections']} conns | ratio to direct | p50 @1 conn (µs) | p99 @1 conn (µs) "
             f"| added p50 / p99 @1 conn (µs) | p99 @{res['connections']} conns (µs) | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for k in ("direct", "nginx", "bare", "gait", "gait_nosession", "gait_segments"):
        if k not in res["paths"]:
            continue
        p = res["paths"][k]
        add = "—" if k == "direct" else (f"{p['c1']['lat_p50_us'] - d['c1']['lat_p50_us']} / "
                                         f"{p['c1']['lat_p99_us'] - d['c1']['lat_p99_us']}")
        lines.append(f"| {k} | {p[ck]['rps']:.0f} | {p[ck]['rps'] / d[ck]['rps']:.2f} | {p['c1']['lat_p50_us']} "
                     f"| {p['c1']['lat_p99_us']} | {add} | {p[ck]['lat_p99_us']} | {p[ck]['error_rate']:.4f} |")
    m = res.get("memory", {})
    lines.append(f"\ngait RSS: {m.get('rss_kib_idle', 0) / 1024:.1f} MiB idle, {m.get('rss_kib', 0) / 1024:.1f} MiB with "
                 f"{m.get('sessions')} open sessions ({m.get('failures')} failed to open); upstream={res['upstream']}, "
                 f"{res['seconds']} s per run, {res['cpus']} CPUs shared by wrk, proxy and upstream")
    if res.get("drain_waits_s"):
        lines.append("waits for gait's trace queue to drain before the c1 and the c" + str(res["connections"]) +
                     " run (s): " + ", ".join(f"{k} {v}" for k, v in res["drain_waits_s"].items()))
    fp = res.get("fs_probe", {})
    if fp:
        lines.append("trace-file creation in the trace dir's file system (O_TMPFILE + linkat, CPU per file, median): "
                     f"{fp.get('before', {}).get('median_us')} µs before the runs, "
                     f"{fp.get('after', {}).get('median_us')} µs after (tens of µs is a healthy file system; "
                     "hundreds mean inode allocation is skipping recently deleted inodes, ext4 without a journal)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
