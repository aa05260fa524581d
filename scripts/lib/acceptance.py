#!/usr/bin/env python3
"""Hardening-contract acceptance checks against a live `gait mcp serve` (see
/work/shared/spec/hardening-contract.md and ops.md §5–§6). Driven by
scripts/test_hardening_acceptance.sh; one line per check, non-zero exit on any failure.

Servers started (all 127.0.0.1, ephemeral ports):
  upstream  demo_upstream (rmcp Streamable HTTP) with per-tool call counters at /stats
  prod      production posture: oss-prod, prod keys, token auth, strict statuses, 8 KiB bodies
  compat    development posture: auth off on loopback, compat statuses
  paths     like compat but --allow-client-artifact-paths
  retain    trace retention max_count=3 with a 1 s sweep (from .gait/config.yaml in its cwd)
"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as hz  # noqa: E402
import mcp_client as mc  # noqa: E402

H = hz.Harness("acceptance")
TOKEN = "release-test-token-0123456789abcdef"


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


JSON_HDRS = {"Content-Type": "application/json", "Accept": mc.ACCEPT}


def init_msg(rid=1):
    return {"jsonrpc": "2.0", "id": rid, "method": "initialize",
            "params": {"protocolVersion": mc.PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": "acceptance", "version": "0"}}}


def eval_body(tool, args=None, **extra):
    # The native mcp adapter with a full context: the strict server runs the oss-prod profile,
    # which requires context.identity, workspace and session_id (gate.md §2 "Profile oss-prod").
    body = {"adapter": "mcp", "run_id": "run_acceptance",
            "call": {"name": tool, "args": args or {},
                     "context": {"identity": "acceptance", "workspace": "/srv",
                                 "risk_class": "high", "session_id": "acceptance-1"}}}
    body.update(extra)
    return body


def startup_refusals(policy, upstream_url, env):
    """Startup must refuse unsafe postures with exit 6 before binding anything useful."""
    # (name, extra args, env, words one of which the refusal must mention: a clap "unexpected
    # argument" error from an unimplemented command must not pass for a refusal)
    cases = [
        ("refuse_nonloopback_listen_without_token",
         ["--listen", f"0.0.0.0:{mc.free_port()}"], {}, ("loopback", "token")),
        ("refuse_token_mode_without_token_env_value",
         ["--listen", f"127.0.0.1:{mc.free_port()}", "--auth-mode", "token",
          "--auth-token-env", "GAIT_RELEASE_UNSET_TOKEN_VAR"], {}, ("GAIT_RELEASE_UNSET_TOKEN_VAR", "empty", "not set")),
        ("refuse_zero_max_request_bytes",
         ["--listen", f"127.0.0.1:{mc.free_port()}", "--max-request-bytes", "0"], {},
         ("max-request-bytes", "max_request_bytes")),
    ]
    for name, extra, more_env, words in cases:
        e = dict(env)
        e.update(more_env)
        e.pop("GAIT_RELEASE_UNSET_TOKEN_VAR", None)
        os.environ.pop("GAIT_RELEASE_UNSET_TOKEN_VAR", None)
        argv = [hz.gait_bin(), "mcp", "serve", "--policy", policy, "--upstream", upstream_url,
                "--json", *extra]
        try:
            r = subprocess.run(argv, cwd=H.root, env={**os.environ, **e}, capture_output=True,
                               text=True, timeout=10)
            out = (r.stdout + r.stderr).strip().replace("\n", " ")[:300]
            said = any(w.lower() in out.lower() for w in words) and "unexpected argument" not in out
            H.check(name, r.returncode == 6 and said,
                    f"exit {r.returncode} (want 6, message naming one of {list(words)}): {out}")
        except subprocess.TimeoutExpired:
            H.check(name, False, "gait started and kept running instead of refusing (killed)")


def http_checks(prod, upstream):
    mcp = prod.url("/mcp")
    ev = prod.url("/v1/evaluate")

    r = mc.request(prod.url("/healthz"))
    H.check("healthz_unauthenticated_200", r.status == 200, f"HTTP {r.status} {r.text[:100]}")
    r = mc.request(prod.url("/readyz"))
    H.check("readyz_200", r.status == 200, f"HTTP {r.status} {r.text[:100]}")

    r = mc.request(mcp, "POST", init_msg(), JSON_HDRS)
    H.check("mcp_missing_token_401", r.status == 401, f"HTTP {r.status} {r.text[:100]}")
    r = mc.request(mcp, "POST", init_msg(), {**JSON_HDRS, **auth("wrong-token")})
    H.check("mcp_wrong_token_401", r.status == 401, f"HTTP {r.status} {r.text[:100]}")
    r = mc.request(ev, "POST", eval_body("echo", {"text": "x"}), JSON_HDRS)
    H.check("evaluate_missing_token_401", r.status == 401, f"HTTP {r.status} {r.text[:100]}")

    big = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": "x" * 16384}}}
    r = mc.request(mcp, "POST", big, {**JSON_HDRS, **auth()})
    H.check("mcp_body_over_max_request_bytes_413", r.status == 413, f"HTTP {r.status} {r.text[:100]}")
    r = mc.request(ev, "POST", eval_body("echo", {"text": "x" * 16384}),
                   {"Content-Type": "application/json", **auth()})
    H.check("evaluate_body_over_max_request_bytes_413", r.status == 413,
            f"HTTP {r.status} {r.text[:100]}")
    before = upstream.tool_count("echo")

    s = mc.Session(mcp, token=TOKEN)
    s.initialize()
    rid, r = s.call("echo", {"text": "hello"})
    H.check("strict_allow_200_forwarded", r.status == 200 and mc.call_result_ok(r, rid)
            and upstream.tool_count("echo") == before + 1, f"HTTP {r.status} {r!r}")

    for tool, args, want, name in (
            ("delete_file", {"path": "/etc/passwd"}, 403, "strict_block_403_jsonrpc_error"),
            ("write_file", {"path": "/tmp/x", "content": "y"}, 409, "strict_require_approval_409"),
            ("plan_deploy", {"env": "prod"}, 409, "strict_dry_run_409")):
        rid, r = s.call(tool, args)
        H.check(name, r.status == want and mc.is_jsonrpc_error(r, rid),
                f"HTTP {r.status} (want {want} + JSON-RPC error with id {rid}): {r!r}")
    forwarded = {t: upstream.tool_count(t) for t in ("delete_file", "write_file", "plan_deploy")}
    H.check("non_allow_verdicts_not_forwarded", sum(forwarded.values()) == 0,
            f"upstream executed {forwarded}")
    rid, r = s.call("echo", {"text": "after denial"})
    H.check("session_survives_denials", r.status == 200 and mc.call_result_ok(r, rid), repr(r))
    s.close()

    h = {"Content-Type": "application/json", **auth()}
    r = mc.request(ev, "POST", eval_body("echo", {"text": "x"}), h)
    H.check("evaluate_allow_200", r.status == 200 and '"allow"' in r.text, f"HTTP {r.status} {r.text[:200]}")
    r = mc.request(ev, "POST", eval_body("delete_file", {"path": "/x"}), h)
    H.check("evaluate_strict_block_403", r.status == 403, f"HTTP {r.status} {r.text[:200]}")
    r = mc.request(ev, "POST", eval_body("write_file", {"path": "/x"}), h)
    H.check("evaluate_strict_require_approval_409", r.status == 409, f"HTTP {r.status} {r.text[:200]}")
    r = mc.request(ev, "GET", None, auth())
    H.check("evaluate_wrong_method_405", r.status == 405, f"HTTP {r.status} {r.text[:200]}")
    r = mc.request(ev, "POST", eval_body("echo"), {"Content-Type": "text/plain", **auth()})
    H.check("evaluate_wrong_content_type_415", r.status == 415, f"HTTP {r.status} {r.text[:200]}")
    r = mc.request(ev, "POST", eval_body("echo", {"text": "x"}, x_unknown_field=1), h)
    H.check("evaluate_rejects_unknown_top_level_field_400", r.status == 400,
            f"HTTP {r.status} {r.text[:200]}")
    r = mc.request(ev, "POST", json.dumps(eval_body("echo")) + "{}", h)
    H.check("evaluate_rejects_trailing_data_400", r.status == 400, f"HTTP {r.status} {r.text[:200]}")
    for field in ("trace_path", "runpack_out", "pack_out", "session_journal"):
        r = mc.request(ev, "POST", eval_body("echo", {"text": "x"}, **{field: os.path.join(H.root, "x.json")}), h)
        H.check(f"client_artifact_path_{field}_rejected_400", r.status == 400,
                f"HTTP {r.status} {r.text[:200]}")


def trace_checks(trace_dir, keys):
    deadline = time.monotonic() + 10
    files = []
    while time.monotonic() < deadline:
        files = hz.traces_in(trace_dir)
        if len(files) >= 4:
            break
        time.sleep(0.2)
    if not H.check("traces_written", len(files) >= 4, f"{len(files)} trace files in {trace_dir}"):
        return
    records = []
    for f in files:
        try:
            records.append((f, json.load(open(f))))
        except ValueError as e:
            H.check("trace_files_parse", False, f"{f}: {e}")
            return
    H.check("trace_files_parse", True)
    missing = [os.path.basename(f) for f, r in records
               if not r.get("event_id") or not r.get("observed_at") or r.get("schema_id") != "gait.gate.trace"]
    H.check("trace_record_has_event_id_and_observed_at", not missing, f"missing in {missing[:3]}")
    ids = [r.get("event_id") for _, r in records]
    H.check("trace_event_ids_unique", len(set(ids)) == len(ids), f"{len(ids)} ids, {len(set(ids))} distinct")
    verdicts = {r.get("verdict") for _, r in records}
    H.check("traces_cover_block_and_allow", {"allow", "block"} <= verdicts, f"verdicts {sorted(map(str, verdicts))}")

    path, rec = records[-1]
    r = H.run_gait(["trace", "verify", path, "--public-key", keys["public_path"], "--json"])
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {}
    H.check("trace_verify_signed_record", r.returncode == 0 and out.get("signature_status") == "verified",
            f"exit {r.returncode}: {(r.stdout + r.stderr)[:300]}")

    tampered = dict(rec)
    tampered["verdict"] = "allow" if rec.get("verdict") != "allow" else "block"
    tp = H.write(os.path.join(H.dir("forged"), "trace_tampered.json"), json.dumps(tampered, indent=2))
    r = H.run_gait(["trace", "verify", tp, "--public-key", keys["public_path"], "--json"])
    H.check("trace_verify_detects_tampering_exit_2", r.returncode == 2,
            f"exit {r.returncode}: {(r.stdout + r.stderr)[:300]}")

    future = dict(rec)
    future["x_future_additive_field"] = {"added_in": "v9.9", "n": 1}
    future = hz.sign_record(future, keys["private_b64"])
    fp = H.write(os.path.join(H.dir("forged"), "trace_future.json"), json.dumps(future, indent=2))
    r = H.run_gait(["trace", "verify", fp, "--public-key", keys["public_path"], "--json"])
    H.check("trace_verify_ignores_unknown_fields", r.returncode == 0,
            f"exit {r.returncode} for a correctly signed record with an extra field: {(r.stdout + r.stderr)[:300]}")
    resigned = hz.sign_record(rec, keys["private_b64"])
    H.check("trace_signature_recomputable", resigned["signature"]["signed_digest"]
            == rec.get("signature", {}).get("signed_digest"),
            "python JCS digest differs from gait's signed_digest (canonicalisation mismatch)")


def compat_checks(compat, upstream):
    s = mc.Session(compat.url("/mcp"))
    s.initialize()
    before = upstream.tool_count("delete_file")
    rid, r = s.call("delete_file", {"path": "/etc/passwd"})
    H.check("compat_block_200_jsonrpc_error", r.status == 200 and mc.is_jsonrpc_error(r, rid), repr(r))
    rid, r = s.call("write_file", {"path": "/tmp/x"})
    H.check("compat_require_approval_200_jsonrpc_error", r.status == 200 and mc.is_jsonrpc_error(r, rid), repr(r))
    H.check("compat_block_not_forwarded", upstream.tool_count("delete_file") == before,
            f"delete_file count {before} -> {upstream.tool_count('delete_file')}")
    rid, r = s.call("echo", {"text": "still here"})
    H.check("compat_session_survives_denial", r.status == 200 and mc.call_result_ok(r, rid), repr(r))
    s.close()
    r = mc.request(compat.url("/v1/evaluate"), "POST", eval_body("delete_file", {"path": "/x"}),
                   {"Content-Type": "application/json"})
    H.check("evaluate_compat_block_200", r.status == 200 and '"block"' in r.text, f"HTTP {r.status} {r.text[:200]}")
    r = mc.request(compat.url("/v1/evaluate"), "POST",
                   eval_body("echo", {"text": "x"}, trace_path=os.path.join(H.root, "t.json")),
                   {"Content-Type": "application/json"})
    H.check("client_artifact_path_rejected_by_default_400", r.status == 400, f"HTTP {r.status} {r.text[:200]}")


def paths_check(paths, trace_dir):
    target = os.path.join(trace_dir, "trace_client_named.json")
    r = mc.request(paths.url("/v1/evaluate"), "POST", eval_body("echo", {"text": "x"}, trace_path=target),
                   {"Content-Type": "application/json"})
    H.check("client_artifact_path_allowed_with_flag", r.status == 200, f"HTTP {r.status} {r.text[:200]}")


def retention_check(retain, trace_dir):
    s = mc.Session(retain.url("/mcp"))
    s.initialize()
    for i in range(10):
        s.call("echo", {"text": f"r{i}"})
    s.close()
    deadline = time.monotonic() + 15
    n = len(hz.traces_in(trace_dir))
    peak = n
    while time.monotonic() < deadline:
        n = len(hz.traces_in(trace_dir))
        peak = max(peak, n)
        if n <= 3:
            break
        time.sleep(0.25)
    H.check("retention_trace_max_count_enforced", 0 < n <= 3,
            f"{n} trace files remain (peak {peak}) with retention.trace.max_count=3 after 15 s")


def doctor_checks(env):
    for cfg, want_ok, name in (("oss-prod.yaml", True, "doctor_oss_prod_config_ok_true"),
                               ("dev.yaml", False, "doctor_dev_config_ok_false")):
        src = os.path.join(hz.REPO_ROOT, "config", cfg)
        if not os.path.exists(src):
            H.check(name, False, f"config/{cfg} missing in repo")
            continue
        wd = H.dir("doctor", cfg.replace(".yaml", ""))
        os.makedirs(os.path.join(wd, ".gait"), exist_ok=True)
        os.makedirs(os.path.join(wd, "gait-out"), exist_ok=True)
        shutil.copy(src, os.path.join(wd, ".gait", "config.yaml"))
        # copy whatever the config points at (policy files) so relative paths resolve
        shutil.copytree(os.path.join(hz.REPO_ROOT, "config"), os.path.join(wd, "config"), dirs_exist_ok=True)
        r = H.run_gait(["doctor", "--production-readiness", "--json"], cwd=wd, env=env)
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            H.check(name, False, f"exit {r.returncode}, no JSON: {(r.stdout + r.stderr)[:300]}")
            continue
        bad = [f"{c.get('name')}={c.get('status')}" for c in out.get("checks", []) if c.get("status") != "pass"]
        if want_ok:
            H.check(name, out.get("ok") is True and r.returncode == 0,
                    f"exit {r.returncode} ok={out.get('ok')} status={out.get('status')} non-pass: {bad}")
        else:
            H.check(name, out.get("ok") is False and r.returncode == 2,
                    f"exit {r.returncode} (want 2) ok={out.get('ok')} non-pass: {bad}")


def main():
    policy = H.write(os.path.join(H.root, "policy.yaml"), hz.STD_POLICY)
    env, keys = hz.std_env(H, token=TOKEN)
    try:
        upstream = H.start_upstream("upstream")
    except Exception as e:  # noqa: BLE001
        H.check("demo_upstream_starts", False, e)
        return H.finish()
    H.check("demo_upstream_starts", True)

    startup_refusals(policy, upstream.url(), env)

    prod_traces = H.dir("prod", "traces")
    prod = None
    try:
        prod = H.start_gait("prod", [
            "--policy", policy, "--upstream", upstream.url(),
            "--profile", "oss-prod", "--workspace", "/srv/acceptance",
            "--auth-mode", "token", "--auth-token-env", "GAIT_MCP_TOKEN",
            "--max-request-bytes", "8192", "--http-verdict-status", "strict",
            "--trace-dir", prod_traces, "--session-dir", H.dir("prod", "sessions"),
            "--key-mode", "prod", "--private-key-env", "GAIT_PRIVATE_KEY", "--json",
        ], cwd=H.dir("prod"), env=env)
        H.check("prod_posture_server_starts", True)
    except Exception as e:  # noqa: BLE001
        H.check("prod_posture_server_starts", False, e)
    if prod:
        hz.guarded(H, "prod_http_checks")(http_checks)(prod, upstream)
        hz.guarded(H, "trace_checks")(trace_checks)(prod_traces, keys)

    try:
        compat = H.start_gait("compat", [
            "--policy", policy, "--upstream", upstream.url(),
            "--trace-dir", H.dir("compat", "traces"), "--session-dir", H.dir("compat", "sessions"),
        ], cwd=H.dir("compat"))
        hz.guarded(H, "compat_checks")(compat_checks)(compat, upstream)
    except Exception as e:  # noqa: BLE001
        H.check("compat_server_starts", False, e)

    try:
        pt = H.dir("paths", "traces")
        paths = H.start_gait("paths", [
            "--policy", policy, "--upstream", upstream.url(), "--allow-client-artifact-paths",
            "--trace-dir", pt, "--session-dir", H.dir("paths", "sessions"),
        ], cwd=H.dir("paths"))
        hz.guarded(H, "client_artifact_path_allowed_with_flag")(paths_check)(paths, pt)
    except Exception as e:  # noqa: BLE001
        H.check("client_artifact_path_allowed_with_flag", False, e)

    try:
        rd = H.dir("retain")
        rt = H.dir("retain", "traces")
        H.write(os.path.join(rd, ".gait", "config.yaml"),
                "retention:\n  sweep_interval: 1s\n  trace:\n    max_count: 3\n")
        extra = ["--trace-max-count", "3"] if hz.has_serve_flag("--trace-max-count") else []
        retain = H.start_gait("retain", [
            "--policy", policy, "--upstream", upstream.url(), "--trace-dir", rt,
            "--session-dir", H.dir("retain", "sessions"), *extra,
        ], cwd=rd)
        hz.guarded(H, "retention_trace_max_count_enforced")(retention_check)(retain, rt)
    except Exception as e:  # noqa: BLE001
        H.check("retention_trace_max_count_enforced", False, e)

    hz.guarded(H, "doctor_checks")(doctor_checks)(env)

    if prod:
        r = mc.request(prod.url("/healthz"))
        H.check("prod_server_still_healthy_at_end", prod.alive() and r.status == 200, f"HTTP {r.status}")
    return H.finish()


if __name__ == "__main__":
    sys.exit(main())
