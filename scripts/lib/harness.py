#!/usr/bin/env python3
"""Process harness for gait's release checks: start/stop gait and upstreams, record PASS/FAIL.

Invariants: every process it starts is tracked by pid and killed (TERM, then KILL) on exit,
signal or exception; every mount it makes is unmounted; everything listens on 127.0.0.1 with
ephemeral ports; every wait is bounded. Output is one line per check (`PASS name` /
`FAIL name: why`) and a final `N passed, N failed` line.
"""

import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcp_client as mc  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO_ROOT, "target")


def gait_bin():
    return os.environ.get("GAIT_BIN") or os.path.join(target_dir(), "release", "gait")


def upstream_bin():
    return os.environ.get("UPSTREAM_BIN") or os.path.join(
        target_dir(), "release", "examples", "demo_upstream")


def quick():
    return os.environ.get("CHAOS_QUICK", "0") not in ("", "0")


_SERVE_HELP = None


def serve_help():
    """`gait mcp serve --help` text (cached), to adapt to flags that may or may not exist yet."""
    global _SERVE_HELP
    if _SERVE_HELP is None:
        try:
            r = subprocess.run([gait_bin(), "mcp", "serve", "--help"], capture_output=True, text=True, timeout=10)
            _SERVE_HELP = r.stdout + r.stderr
        except (OSError, subprocess.TimeoutExpired):
            _SERVE_HELP = ""
    return _SERVE_HELP


def has_serve_flag(flag):
    return re.search(rf"(^|\s){re.escape(flag)}([\s=,]|$)", serve_help(), re.M) is not None


# ---------------------------------------------------------------------------------------------
# keys, canonical JSON, signing (mirrors gate.md §5.3 so tests can forge "future" records)

def gen_keypair(directory, prefix="gait"):
    """Write `<prefix>_private.key` (base64 seed‖pub) and `<prefix>_public.key`; return paths+b64."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization as ser
    sk = Ed25519PrivateKey.generate()
    seed = sk.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    pub = sk.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    priv_b64 = base64.b64encode(seed + pub).decode()
    pub_b64 = base64.b64encode(pub).decode()
    priv_path = os.path.join(directory, f"{prefix}_private.key")
    pub_path = os.path.join(directory, f"{prefix}_public.key")
    for path, content in ((priv_path, priv_b64), (pub_path, pub_b64)):
        with open(path, "w") as f:
            f.write(content + "\n")
        os.chmod(path, 0o600)
    return {"private_path": priv_path, "public_path": pub_path,
            "private_b64": priv_b64, "public_b64": pub_b64}


def _jcs_num(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError("non-finite number")
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    r = repr(v)
    if "e" in r:
        mant, exp = r.split("e")
        r = f"{mant}e{'+' if not exp.startswith('-') else ''}{int(exp)}"
    return r


def jcs(v):
    """RFC 8785 canonical JSON (enough for trace records: strings, ints, simple floats)."""
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float)):
        return _jcs_num(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(v[k]) for k in keys) + "}"
    raise TypeError(type(v))


def sign_record(record, private_b64):
    """Return a copy of `record` re-signed like gait does (Ed25519 over sha256(JCS(record−sig)))."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    raw = base64.b64decode(private_b64)
    sk = Ed25519PrivateKey.from_private_bytes(raw[:32])
    body = {k: v for k, v in record.items() if k != "signature"}
    digest = hashlib.sha256(jcs(body).encode()).digest()
    out = dict(body)
    out["signature"] = {
        "alg": "ed25519",
        "key_id": hashlib.sha256(raw[32:64]).hexdigest(),
        "sig": base64.b64encode(sk.sign(digest)).decode(),
        "signed_digest": digest.hex(),
    }
    return out


# ---------------------------------------------------------------------------------------------

class Proc:
    def __init__(self, name, popen, log_path, port=None):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path
        self.port = port

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path="/mcp"):
        return self.base + path

    def alive(self):
        return self.popen.poll() is None

    def log(self, tail=2000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-tail:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stats(self):
        return mc.request(self.base + "/stats", timeout=3).json()

    def tool_count(self, tool):
        return int(self.stats().get("tools", {}).get(tool, 0))


class Harness:
    def __init__(self, suite):
        self.suite = suite
        self.passed = 0
        self.failed = 0
        self.procs = []
        self.mounts = []
        self.root = tempfile.mkdtemp(prefix=f"gait-{suite}-")
        self.keep = os.environ.get("KEEP_TMP", "0") not in ("", "0")
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    # -- results -------------------------------------------------------------------------------
    def check(self, name, ok, why=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            self.failed += 1
            why = " ".join(str(why).split())[:600]
            print(f"FAIL {name}: {why or 'check failed'}", flush=True)
        return ok

    def info(self, msg):
        print(f"# {msg}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        self.cleanup()
        return 0 if self.failed == 0 and self.passed > 0 else 1

    # -- files ---------------------------------------------------------------------------------
    def dir(self, *parts):
        d = os.path.join(self.root, *parts)
        os.makedirs(d, exist_ok=True)
        return d

    def write(self, path, content):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
        return path

    def mount_tmpfs(self, path, size="256k"):
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mount tmpfs failed: {r.stderr.strip()}")
        self.mounts.append(path)

    def remount(self, path, opt):
        r = subprocess.run(["mount", "-o", f"remount,{opt}", path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"remount {opt} failed: {r.stderr.strip()}")

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, name, argv, cwd=None, env=None):
        log_path = os.path.join(self.dir("logs"), f"{name}.log")
        logf = open(log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        proc = Proc(name, p, log_path)
        self.procs.append(proc)
        return proc

    def start_upstream(self, name="upstream", args=(), port=None):
        exe = upstream_bin()
        if not os.access(exe, os.X_OK):
            raise RuntimeError(f"demo upstream binary missing: {exe} (cargo build --release --example demo_upstream)")
        port_file = os.path.join(self.dir("ports"), f"{name}.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        listen = f"127.0.0.1:{port or 0}"
        proc = self._spawn(name, [exe, "--listen", listen, "--port-file", port_file, "--name", name,
                                  *args])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                proc.port = int(open(port_file).read().strip())
                if mc.wait_http(proc.base + "/healthz", 5):
                    return proc
            if not proc.alive():
                break
            time.sleep(0.05)
        raise RuntimeError(f"upstream {name} did not start: {proc.log()}")

    def start_gait(self, name, args, cwd=None, env=None, port=None, wait=20.0):
        """Start `gait mcp serve --listen 127.0.0.1:PORT ARGS`; wait for /healthz."""
        exe = gait_bin()
        if not os.access(exe, os.X_OK):
            raise RuntimeError(f"gait binary missing: {exe}")
        port = port or mc.free_port()
        project = os.path.join(cwd or self.root, ".gait", "config.yaml")
        if os.path.exists(project) and has_serve_flag("--config") and "--config" not in args:
            args = [*args, "--config", project]  # the cwd default is also where gait looks
        proc = self._spawn(name, [exe, "mcp", "serve", "--listen", f"127.0.0.1:{port}", *args],
                           cwd=cwd or self.root, env=env)
        proc.port = port
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"gait {name} exited with {proc.popen.returncode}: {proc.log(800)}")
            try:
                if mc.request(proc.base + "/healthz", timeout=1).status == 200:
                    return proc
            except OSError:
                pass
            except Exception:  # noqa: BLE001 - any HTTP oddity: keep polling until the deadline
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gait {name} not healthy after {wait}s: {proc.log(800)}")

    def run_gait(self, args, cwd=None, env=None, timeout=30, stdin=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run([gait_bin(), *args], cwd=cwd or self.root, env=full_env,
                              capture_output=True, text=True, timeout=timeout, input=stdin)

    def stop(self, proc, sig=signal.SIGTERM, wait=10.0):
        if proc.alive():
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
        return proc.popen.returncode

    def cleanup(self):
        for proc in reversed(self.procs):
            try:
                if proc.alive():
                    os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.popen.wait(timeout=5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        self.procs = []
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        self.mounts = []
        if not self.keep and os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)

    def _on_signal(self, signum, _frame):
        print(f"# {self.suite}: signal {signum}, cleaning up", flush=True)
        self.cleanup()
        sys.exit(128 + signum)


def guarded(h, name):
    """Decorator: run a check function; any exception is a FAIL for `name`."""
    def wrap(fn):
        def inner(*a, **kw):
            try:
                return fn(*a, **kw)
            except Exception as e:  # noqa: BLE001 - a crashed check is a failed check
                h.check(name, False, f"{type(e).__name__}: {e}")
                return None
        return inner
    return wrap


def traces_in(directory):
    """Trace files (`*trace*.json`) in a directory, newest last."""
    if not os.path.isdir(directory):
        return []
    out = []
    for root, _dirs, files in os.walk(directory):
        for f in files:
            if f.endswith(".json") and "trace" in f.lower():
                out.append(os.path.join(root, f))
    return sorted(out, key=lambda p: (os.path.getmtime(p), p))


STD_POLICY = """\
schema_id: gait.gate.policy
schema_version: 1.0.0
default_verdict: block
rules:
  - name: block-delete
    priority: 5
    effect: block
    match: {tool_names: [delete_file]}
    reason_codes: [destructive_tool_blocked]
  - name: approve-write
    priority: 6
    effect: require_approval
    match: {tool_names: [write_file]}
  - name: dry-run-deploy
    priority: 7
    effect: dry_run
    match: {tool_names: [plan_deploy]}
  - name: allow-demo-tools
    priority: 20
    effect: allow
    match: {tool_names: [echo, add, sleep_ms, hang, progress, die_mid_stream]}
"""


def std_env(h, keys=None, token="release-test-token-0123456789abcdef"):
    """Env for a production-posture gait: token, signing key."""
    keys = keys or gen_keypair(h.dir("keys"))
    env = {"GAIT_MCP_TOKEN": token, "GAIT_PRIVATE_KEY": keys["private_b64"]}
    return env, keys
