#!/usr/bin/env python3
"""Tiny MCP Streamable-HTTP client and test helpers for gait's release scripts.

Standard library only (http.client, socket), loopback only. Used by
scripts/test_hardening_acceptance.sh, chaos/proxy/*.sh, scripts/soak_proxy.sh and the benchmarks.

Library use:  sys.path.insert(0, "scripts/lib"); import mcp_client as mc
CLI use:      python3 scripts/lib/mcp_client.py call URL TOOL '{"text":"hi"}' [--token T]
              python3 scripts/lib/mcp_client.py free-port
              python3 scripts/lib/mcp_client.py wait-http URL [SECONDS]
"""

import http.client
import json
import os
import socket
import sys
import time
import urllib.parse

PROTOCOL_VERSION = "2025-06-18"
ACCEPT = "application/json, text/event-stream"


def free_port():
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _split(url):
    u = urllib.parse.urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing non-loopback url {url}")
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.elapsed = elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def messages(self):
        """JSON-RPC messages in the body: one JSON object, or every SSE `data:` frame."""
        ctype = self.headers.get("content-type", "")
        if "text/event-stream" in ctype:
            out = []
            for frame in self.text.replace("\r\n", "\n").split("\n\n"):
                data = [ln[5:].lstrip() for ln in frame.split("\n") if ln.startswith("data:")]
                if data and "".join(data).strip():
                    try:
                        out.append(json.loads("\n".join(data)))
                    except ValueError:
                        out.append({"_unparsable": "\n".join(data)})
            return out
        if not self.body.strip():
            return []
        try:
            v = json.loads(self.body)
        except ValueError:
            return [{"_unparsable": self.text[:200]}]
        return v if isinstance(v, list) else [v]

    def reply(self, rid):
        """The response (result or error) for request id `rid`, or None."""
        for m in self.messages():
            if isinstance(m, dict) and m.get("id") == rid and ("result" in m or "error" in m):
                return m
        return None

    def __repr__(self):
        return f"<Resp {self.status} {self.headers.get('content-type','')} {self.text[:300]!r}>"


def request(url, method="GET", body=None, headers=None, timeout=10.0, conn=None):
    """One HTTP request. `body` may be bytes, str or a JSON-able object."""
    host, port, path = _split(url)
    if body is not None and not isinstance(body, (bytes, bytearray)):
        body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    own = conn is None
    c = conn or http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.monotonic()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, r.getheaders(), data, time.monotonic() - t0)
    finally:
        if own:
            c.close()


class Session:
    """An MCP client session over Streamable HTTP (initialize → initialized → calls)."""

    def __init__(self, url, token=None, timeout=10.0, keepalive=True, extra_headers=None):
        self.url = url
        self.token = token
        self.timeout = timeout
        self.session_id = None
        self.next_id = 1
        self.extra = dict(extra_headers or {})
        host, port, _ = _split(url)
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout) if keepalive else None

    def headers(self):
        h = {"Content-Type": "application/json", "Accept": ACCEPT}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
            h["MCP-Protocol-Version"] = PROTOCOL_VERSION
        h.update(self.extra)
        return h

    def post(self, msg, timeout=None):
        try:
            r = request(self.url, "POST", msg, self.headers(), timeout or self.timeout, self.conn)
        except (http.client.HTTPException, OSError):
            if self.conn is not None:  # stale keep-alive connection: retry once on a new one
                self.conn.close()
                host, port, _ = _split(self.url)
                self.conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            raise
        return r

    def rpc(self, method, params=None, timeout=None):
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        r = self.post(msg, timeout)
        return rid, r

    def initialize(self):
        rid, r = self.rpc("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "gait-release-tests", "version": "0.1.0"},
        })
        if r.status != 200 or r.reply(rid) is None or "result" not in r.reply(rid):
            raise RuntimeError(f"initialize failed: {r!r}")
        self.session_id = r.headers.get("mcp-session-id")
        n = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if n.status not in (200, 202):
            raise RuntimeError(f"notifications/initialized failed: {n!r}")
        return r

    def call(self, tool, args=None, progress=False, timeout=None):
        params = {"name": tool, "arguments": args or {}}
        if progress:
            params["_meta"] = {"progressToken": f"p{self.next_id}"}
        return self.rpc("tools/call", params, timeout)

    def close(self):
        if self.conn is not None:
            self.conn.close()


def call_result_ok(resp, rid):
    """True if `resp` carries a successful (non-isError) result for request `rid`."""
    m = resp.reply(rid)
    return bool(m and "result" in m and not m["result"].get("isError"))


def is_jsonrpc_error(resp, rid, allow_null_id=False):
    """True if `resp` carries a JSON-RPC error for `rid` (or an id-less error if allowed)."""
    m = resp.reply(rid)
    if m and "error" in m:
        return True
    if allow_null_id:
        for msg in resp.messages():
            if isinstance(msg, dict) and "error" in msg and msg.get("id") is None:
                return True
    return False


def wait_http(url, seconds=20.0, want=200):
    """Poll `url` until it answers `want`; returns True/False."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if request(url, timeout=1.0).status == want:
                return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    return False


def proc_stats(pid):
    """RSS (KiB), open fds and threads of a process, from /proc."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_kib": rss, "fds": fds, "threads": threads}


def metrics(url, timeout=3.0):
    """Parse a Prometheus text exposition into {series: value} (series = name{labels})."""
    r = request(url, timeout=timeout)
    if r.status != 200:
        raise RuntimeError(f"metrics {url}: HTTP {r.status}")
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
        except ValueError:
            continue
    return out


def _main(argv):
    if not argv:
        print(__doc__)
        return 6
    cmd = argv[0]
    if cmd == "free-port":
        print(free_port())
        return 0
    if cmd == "wait-http":
        return 0 if wait_http(argv[1], float(argv[2]) if len(argv) > 2 else 20.0) else 1
    if cmd == "call":
        url, tool = argv[1], argv[2]
        args = json.loads(argv[3]) if len(argv) > 3 and not argv[3].startswith("--") else {}
        token = argv[argv.index("--token") + 1] if "--token" in argv else None
        s = Session(url, token=token)
        s.initialize()
        rid, r = s.call(tool, args)
        print(json.dumps({"status": r.status, "reply": r.reply(rid)}))
        return 0 if call_result_ok(r, rid) else 1
    print(f"unknown command {cmd}", file=sys.stderr)
    return 6


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
