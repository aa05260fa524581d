#!/usr/bin/env python3
"""Proxy soak: mixed allowed / blocked / streaming MCP traffic through gait for SOAK_SECONDS.

RSS, open fds and threads of the gait process (from /proc) and, when the admin listener answers,
gait's gauges from /metrics are sampled every SOAK_SAMPLE_SECONDS. After a warm-up (the first
quarter of the run, at least one sample) the last samples must not have grown past the warm-up
peak by more than a small tolerance, no response may be a 5xx (no faults are injected), and the
blocked tool must never reach the upstream.
"""

import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as hz  # noqa: E402
import mcp_client as mc  # noqa: E402

H = hz.Harness("soak")
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE_SECONDS", "10"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "4"))
PAUSE = float(os.environ.get("SOAK_PAUSE_MS", "2")) / 1000
TOKEN = "soak-token-0123456789abcdef"


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}
        self.statuses = {}
        self.errors = {}

    def add(self, kind, status=None, err=None):
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if err:
                self.errors[err] = self.errors.get(err, 0) + 1


def worker(i, url, stop, tally):
    rng = random.Random(i)
    while not stop.is_set():
        s = mc.Session(url, token=TOKEN, timeout=15)
        try:
            s.initialize()
            tally.add("initialize", 200)
            for _ in range(rng.randrange(20, 80)):
                if stop.is_set():
                    break
                x = rng.random()
                if x < 0.55:
                    rid, r = s.call("echo", {"text": "soak" * rng.randrange(1, 50)})
                    kind = "allowed"
                elif x < 0.75:
                    rid, r = s.call("delete_file", {"path": f"/tmp/{rng.random()}"})
                    kind = "blocked"
                elif x < 0.90:
                    rid, r = s.call("progress", {"steps": rng.randrange(2, 8), "interval_ms": 10}, progress=True)
                    kind = "sse_stream"
                else:
                    rid, r = s.call("add", {"a": rng.randrange(100), "b": 1})
                    kind = "allowed"
                tally.add(kind, r.status, None if r.reply(rid) else "no_jsonrpc_reply")
                time.sleep(PAUSE)
            if rng.random() < 0.3 and s.session_id:  # a server->client GET stream, held briefly
                try:
                    hdrs = {k: v for k, v in s.headers().items() if k != "Content-Type"}
                    hdrs["Accept"] = "text/event-stream"
                    host, port, path = mc._split(url)
                    import http.client
                    c = http.client.HTTPConnection(host, port, timeout=2)
                    c.request("GET", path, headers=hdrs)
                    resp = c.getresponse()
                    tally.add("get_stream", resp.status)
                    try:
                        resp.read(1)
                    except Exception:  # noqa: BLE001 - idle stream: a read timeout is expected
                        pass
                    c.close()
                except OSError as e:
                    tally.add("get_stream", err=type(e).__name__)
            r = mc.request(url, "DELETE", None, {k: v for k, v in s.headers().items() if k != "Content-Type"})
            tally.add("delete_session", r.status)
        except Exception as e:  # noqa: BLE001 - counted; the soak goes on
            tally.add("exception", err=f"{type(e).__name__}: {str(e)[:80]}")
            time.sleep(0.1)
        finally:
            s.close()


def main():
    policy = H.write(os.path.join(H.root, "policy.yaml"), hz.STD_POLICY)
    env, _keys = hz.std_env(H, token=TOKEN)
    up = H.start_upstream("upstream")
    wd = H.dir("gait")
    mport = mc.free_port()
    H.write(os.path.join(wd, ".gait", "config.yaml"),
            f"metrics:\n  enabled: true\n  listen: 127.0.0.1:{mport}\n"
            "retention:\n  sweep_interval: 5s\n  trace:\n    max_count: 2000\n  session:\n    max_count: 2000\n")
    g = H.start_gait("gait", ["--policy", policy, "--upstream", up.url(), "--auth-mode", "token",
                              "--auth-token-env", "GAIT_MCP_TOKEN", "--key-mode", "prod",
                              "--private-key-env", "GAIT_PRIVATE_KEY", "--trace-dir", H.dir("gait", "traces"),
                              "--session-dir", H.dir("gait", "sessions")], cwd=wd, env=env)
    H.info(f"soak {SECONDS}s, {WORKERS} workers, sampling every {SAMPLE}s; gait pid {g.pid}")
    tally = Tally()
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(i, g.url("/mcp"), stop, tally)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    samples = []
    t0 = time.monotonic()
    gauges_seen = set()
    while time.monotonic() - t0 < SECONDS and g.alive():
        time.sleep(min(SAMPLE, max(0.1, SECONDS - (time.monotonic() - t0))))
        try:
            st = mc.proc_stats(g.pid)
        except OSError:
            break
        st["t"] = round(time.monotonic() - t0, 1)
        try:
            m = mc.metrics(f"http://127.0.0.1:{mport}/metrics")
            for k, v in m.items():
                name = k.split("{")[0]
                if any(w in name for w in ("active", "inflight", "in_flight", "open", "tasks", "sessions", "queue")) \
                        and not name.endswith(("_total", "_count", "_sum", "_bucket", "_created")):
                    st[k] = v
                    gauges_seen.add(k)
        except Exception:  # noqa: BLE001 - metrics are optional; /proc is the reference
            pass
        samples.append(st)
        with tally.lock:
            done = sum(tally.calls.values())
        H.info(f"t={st['t']:>6}s rss={st['rss_kib'] / 1024:.1f}MiB fds={st['fds']} threads={st['threads']} calls={done}")
    stop.set()
    for t in threads:
        t.join(timeout=30)

    H.check("gait_alive_through_soak", g.alive(), g.log(400))
    H.info(f"calls {tally.calls}; statuses {tally.statuses}; errors {dict(list(tally.errors.items())[:5])}")
    five = {s: n for s, n in tally.statuses.items() if isinstance(s, int) and s >= 500}
    H.check("zero_5xx", not five, f"5xx responses: {five}")
    H.check("no_client_exceptions", not tally.errors, f"{sum(tally.errors.values())} errors: {dict(list(tally.errors.items())[:4])}")
    H.check("traffic_mix_exercised", all(tally.calls.get(k, 0) > 0 for k in ("allowed", "blocked", "sse_stream")),
            f"{tally.calls}")
    H.check("blocked_tool_never_executed", up.tool_count("delete_file") == 0,
            f"upstream executed delete_file {up.tool_count('delete_file')} times")
    if len(samples) < 3:
        H.check("enough_samples", False, f"{len(samples)} samples; run longer than 3 x SOAK_SAMPLE_SECONDS")
        return H.finish()
    warm_n = max(1, len(samples) // 4)
    warm, tail = samples[:warm_n], samples[-min(3, len(samples) - warm_n):]

    def peak(key):
        return max(s.get(key, 0) for s in warm)

    def final(key):
        return statistics.median(s.get(key, 0) for s in tail)

    rss_lim = peak("rss_kib") * 1.10 + 2048
    H.check("rss_flat", final("rss_kib") <= rss_lim,
            f"RSS warm-up peak {peak('rss_kib')} KiB, final {final('rss_kib')} KiB (limit {rss_lim:.0f})")
    H.check("fds_flat", final("fds") <= peak("fds") + 8, f"fds warm-up peak {peak('fds')}, final {final('fds')}")
    H.check("threads_flat", final("threads") <= peak("threads") + 2,
            f"threads warm-up peak {peak('threads')}, final {final('threads')}")
    for k in sorted(gauges_seen):
        H.check(f"gauge_flat[{k}]", final(k) <= peak(k) * 1.10 + 8, f"warm-up peak {peak(k)}, final {final(k)}")
    if not gauges_seen:
        H.info("no gait gauges on /metrics: task count checked through /proc threads only")
    return H.finish()


if __name__ == "__main__":
    sys.exit(main())
