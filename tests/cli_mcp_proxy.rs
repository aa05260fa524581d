//! `gait mcp proxy` end to end: the built binary, temp dirs, real files.

mod support;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use support::{assert_invalid_envelope, gait, gait_with, schema_errors, schema_validator, write};

const OPENAI_CALL: &str =
    r#"{"type":"function","function":{"name":"tool.search","arguments":"{\"query\":\"gait\"}"}}"#;

fn mcp_call(name: &str, extra_ctx: &str) -> String {
    format!(
        r#"{{"name":"{name}","args":{{"path":"/tmp/out.txt"}},"targets":[{{"kind":"path","value":"/tmp/out.txt","operation":"write"}}],"context":{{"identity":"alice","workspace":"/repo","risk_class":"high","session_id":"sess-1"{extra_ctx}}}}}"#
    )
}

#[test]
fn openai_allow_golden_output_and_trace_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.yaml", "default_verdict: allow\n");
    write(dir.path(), "call.json", OPENAI_CALL);
    let run = gait(
        dir.path(),
        &[
            "mcp",
            "proxy",
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--adapter",
            "openai",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let v = run.json();
    // One line, keys sorted (re-serializing the sorted map gives the same text).
    assert_eq!(run.stdout.trim_end(), serde_json::to_string(&v).unwrap());
    assert_eq!(v["ok"], true);
    assert_eq!(v["executed"], false);
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["reason_codes"], serde_json::json!(["default_allow"]));
    assert_eq!(v["trace_id"], "c4c9323f1b04440d3b862edb");
    assert_eq!(v["run_id"], "run_mcp_3619e812b9e7");
    assert_eq!(v["adapter"], "openai");
    assert_eq!(v["correlation_id"].as_str().unwrap().len(), 24);
    assert!(v.get("error_code").is_none());
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(
        warnings[0],
        "dev mode: ephemeral keypair generated; signatures will not verify across machines"
    );

    let trace_path = dir.path().join(v["trace_path"].as_str().unwrap());
    let name = trace_path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("trace__") && name.ends_with(".json"),
        "{name}"
    );
    assert_eq!(
        std::fs::metadata(&trace_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&trace_path).unwrap();
    assert!(text.starts_with("{\n  \"schema_id\": \"gait.gate.trace\",\n  \"schema_version\""));
    assert!(text.ends_with("}\n"));
    let trace: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema_errors(&schema_validator("trace_record"), &trace), "");
    // Go struct order: signature is the last key, observed_at right after created_at.
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  \""))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        &keys[..4],
        ["schema_id", "schema_version", "created_at", "observed_at"]
    );
    assert_eq!(*keys.last().unwrap(), "signature");
}

#[test]
fn positional_args_stdin_and_verdict_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "policy.yaml",
        "default_verdict: allow\nrules:\n  - {name: block-delete, priority: 1, effect: block, match: {tool_names: [tool.delete]}}\n  - {name: approve-write, priority: 2, effect: require_approval, match: {tool_names: [tool.write]}}\n  - {name: dry-deploy, priority: 3, effect: dry_run, match: {tool_names: [tool.deploy]}}\n",
    );
    write(dir.path(), "call.json", &mcp_call("tool.read", ""));
    let pos = gait(
        dir.path(),
        &["mcp", "proxy", "policy.yaml", "call.json", "--json"],
    );
    assert_eq!(pos.code, 0, "{pos:?}");

    for (tool, code, verdict) in [
        ("tool.delete", 3, "block"),
        ("tool.write", 4, "require_approval"),
        ("tool.deploy", 0, "dry_run"),
    ] {
        let call = mcp_call(tool, "");
        let run = gait_with(
            dir.path(),
            &[
                "mcp",
                "proxy",
                "--policy",
                "policy.yaml",
                "--call",
                "-",
                "--json",
            ],
            Some(call.as_bytes()),
            &[],
        );
        assert_eq!(run.code, code, "{tool}: {run:?}");
        let v = run.json();
        assert_eq!(v["ok"], true, "a decision is ok even when it blocks");
        assert_eq!(v["verdict"], verdict);
        assert_eq!(v["session_id"], "sess-1");
    }
}

#[test]
fn prod_key_traces_verify_and_run_id_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        gait(
            dir.path(),
            &["keys", "init", "--out-dir", "keys", "--prefix", "t"]
        )
        .code,
        0
    );
    write(dir.path(), "policy.yaml", "default_verdict: block\n");
    write(dir.path(), "call.json", &mcp_call("tool.read", ""));
    let run = gait(
        dir.path(),
        &[
            "mcp",
            "proxy",
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--profile",
            "oss-prod",
            "--key-mode",
            "prod",
            "--private-key",
            "keys/t_private.key",
            "--run-id",
            "demo",
            "--json",
        ],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let v = run.json();
    assert_eq!(v["run_id"], "demo");
    assert!(!v["warnings"].to_string().contains("dev mode"));
    let trace_path = v["trace_path"].as_str().unwrap().to_string();
    assert!(trace_path.starts_with("trace_demo_"), "{trace_path}");
    let verify = gait(
        dir.path(),
        &[
            "trace",
            "verify",
            &trace_path,
            "--public-key",
            "keys/t_public.key",
            "--json",
        ],
    );
    assert_eq!(verify.code, 0, "{verify:?}");
    assert_eq!(verify.json()["signature_status"], "verified");

    // Tamper with the written trace: exit 2.
    let p = dir.path().join(&trace_path);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"block\"", "\"allow\"");
    std::fs::write(&p, text).unwrap();
    let verify = gait(
        dir.path(),
        &[
            "trace",
            "verify",
            &trace_path,
            "--public-key",
            "keys/t_public.key",
        ],
    );
    assert_eq!(verify.code, 2, "{verify:?}");
}

#[test]
fn exports_append_exact_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.yaml", "default_verdict: allow\n");
    write(dir.path(), "call.json", OPENAI_CALL);
    for _ in 0..2 {
        let run = gait(
            dir.path(),
            &[
                "mcp",
                "proxy",
                "--policy",
                "policy.yaml",
                "--call",
                "call.json",
                "--adapter",
                "openai",
                "--trace-out",
                "out/trace.json",
                "--export-log-out",
                "out/log.jsonl",
                "--export-otel-out",
                "out/otel.jsonl",
                "--json",
            ],
        );
        assert_eq!(run.code, 0, "{run:?}");
        let v = run.json();
        assert_eq!(v["log_export"], "out/log.jsonl");
        assert_eq!(v["otel_export"], "out/otel.jsonl");
        assert_eq!(v["trace_path"], "out/trace.json");
    }
    let log = std::fs::read_to_string(dir.path().join("out/log.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2);
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    let mut keys: Vec<&str> = lines[0]
        .trim_matches(|c| c == '{' || c == '}')
        .split(",\"")
        .map(|kv| kv.trim_start_matches('"').split('"').next().unwrap())
        .collect();
    // decision_latency_ms is omitted when it rounds to 0 ms; when present it comes last.
    if keys.last() == Some(&"decision_latency_ms") {
        keys.pop();
    }
    assert_eq!(
        keys,
        [
            "created_at",
            "producer_version",
            "run_id",
            "trace_id",
            "trace_path",
            "tool_name",
            "verdict",
            "reason_codes",
            "policy_digest",
            "intent_digest"
        ]
    );
    assert_eq!(first["created_at"], "1980-01-01T00:00:00Z");
    assert_eq!(first["trace_path"], "out/trace.json");
    let otel = std::fs::read_to_string(dir.path().join("out/otel.jsonl")).unwrap();
    assert_eq!(otel.lines().count(), 2);
    let o: Value = serde_json::from_str(otel.lines().next().unwrap()).unwrap();
    assert_eq!(o["time_unix_nano"], 315532800000000000i64);
    assert_eq!(o["body"], "gait.mcp.proxy.decision");
    assert_eq!(o["attributes"].as_object().unwrap().len(), 11);
    assert_eq!(o["attributes"]["gait.session_id"], "");
    for f in ["out/log.jsonl", "out/otel.jsonl"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

#[test]
fn emergency_stop_via_job_root_blocks() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.yaml", "default_verdict: allow\n");
    write(
        dir.path(),
        "jobs/job_mcp_stop/state.json",
        r#"{"schema_id":"gait.job.runtime","schema_version":"1.0.0","job_id":"job_mcp_stop","status":"emergency_stopped","stop_reason":"emergency_stopped"}"#,
    );
    write(
        dir.path(),
        "call.json",
        &mcp_call("tool.write", r#","job_id":"job_mcp_stop""#),
    );
    let run = gait(
        dir.path(),
        &[
            "mcp",
            "proxy",
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--job-root",
            "jobs",
            "--json",
        ],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let v = run.json();
    assert!(
        v["reason_codes"]
            .to_string()
            .contains("emergency_stop_preempted")
    );
    assert_eq!(v["job_id"], "job_mcp_stop");
}

#[test]
fn bad_input_exits_6_with_one_line_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "policy.yaml", "default_verdict: allow\n");
    write(d, "bad.yaml", "default_verdict: [unclosed\n");
    write(
        d,
        "wrong_schema.yaml",
        "schema_id: gait.other\ndefault_verdict: allow\n",
    );
    write(
        d,
        "legacy.yaml",
        "version: 1\nname: old\ndefault_verdict: allow\n",
    );
    write(d, "unknown_key.yaml", "default_verdict: allow\nbogus: 1\n");
    write(d, "call.json", OPENAI_CALL);
    write(
        d,
        "secret.json",
        r#"{"name":"tool.call","args":{"api_key":"sk-abcdefghijklmnopqrstuvwx"}}"#,
    );
    write(
        d,
        "deep.json",
        &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    );
    write(d, "nameless.json", r#"{"args":{}}"#);
    std::fs::write(d.join("binary.json"), [0x7bu8, 0xff, 0xfe, 0x7d]).unwrap();
    std::fs::write(d.join("huge.json"), vec![b' '; 5 * 1024 * 1024]).unwrap();
    std::fs::write(d.join("huge.yaml"), vec![b'#'; 5 * 1024 * 1024]).unwrap();
    std::fs::write(d.join("binary.yaml"), [b'a', b':', b' ', 0xff, 0xfe, b'\n']).unwrap();
    write(
        d,
        "envpath.json",
        r#"{"name":"tool.x","context":{"context_envelope_path":"/tmp/e.json"}}"#,
    );

    let cases: Vec<Vec<&str>> = vec![
        vec!["--policy", "missing.yaml", "--call", "call.json"],
        vec!["--policy", "bad.yaml", "--call", "call.json"],
        vec!["--policy", "wrong_schema.yaml", "--call", "call.json"],
        vec!["--policy", "unknown_key.yaml", "--call", "call.json"],
        vec!["--policy", "huge.yaml", "--call", "call.json"],
        vec!["--policy", "binary.yaml", "--call", "call.json"],
        vec!["--policy", "d", "--call", "call.json"],
        vec!["--policy", "policy.yaml", "--call", "missing.json"],
        vec!["--policy", "policy.yaml", "--call", "secret.json"],
        vec!["--policy", "policy.yaml", "--call", "deep.json"],
        vec!["--policy", "policy.yaml", "--call", "binary.json"],
        vec!["--policy", "policy.yaml", "--call", "huge.json"],
        vec!["--policy", "policy.yaml", "--call", "nameless.json"],
        vec!["--policy", "policy.yaml", "--call", "envpath.json"],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--adapter",
            "grpc",
        ],
        vec!["--policy", "policy.yaml"],
        vec!["--call", "call.json"],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--trace-out",
            "../escape.json",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--key-mode",
            "prod",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--key-mode",
            "dev",
            "--private-key",
            "k",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--key-mode",
            "prod",
            "--private-key",
            "k",
            "--private-key-env",
            "K",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--key-mode",
            "weird",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--profile",
            "weird",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--profile",
            "oss-prod",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--call",
            "call.json",
            "--no-such-flag",
        ],
    ];
    std::fs::create_dir(d.join("d")).unwrap();
    for case in cases {
        let mut args = vec!["mcp", "proxy"];
        args.extend(case.iter().copied());
        args.push("--json");
        let run = gait(d, &args);
        assert!(!run.stderr.contains("panicked"), "{case:?}: {run:?}");
        assert_invalid_envelope(&run);
        let msg = run.json()["error"].as_str().unwrap().to_string();
        assert!(!msg.contains('\n'), "{case:?}");
        assert!(!msg.contains("sk-abcdef"), "secret echoed: {msg}");
    }
    // Legacy policies carry the migration array.
    let run = gait(
        d,
        &[
            "mcp",
            "proxy",
            "--policy",
            "legacy.yaml",
            "--call",
            "call.json",
            "--json",
        ],
    );
    assert_invalid_envelope(&run);
    let v = run.json();
    assert!(
        v["migration"].as_array().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("legacy policy proposal fields are not supported")
    );
    // Nothing escaped the temp dir.
    assert!(!d.parent().unwrap().join("escape.json").exists());
    // Text mode: one line on stderr.
    let run = gait(
        d,
        &[
            "mcp",
            "proxy",
            "--policy",
            "missing.yaml",
            "--call",
            "call.json",
        ],
    );
    assert_eq!(run.code, 6);
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
}

#[test]
fn oss_prod_requires_context_and_accepts_full_context() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(gait(d, &["keys", "init", "--prefix", "p"]).code, 0);
    write(d, "policy.yaml", "default_verdict: require_approval\n");
    write(
        d,
        "partial.json",
        r#"{"name":"tool.search","args":{"q":"x"},"context":{"identity":"alice","workspace":"/repo"}}"#,
    );
    write(d, "full.json", &mcp_call("tool.search", ""));
    let base = [
        "mcp",
        "proxy",
        "--policy",
        "policy.yaml",
        "--profile",
        "oss-prod",
        "--key-mode",
        "prod",
        "--private-key",
        "p_private.key",
        "--json",
        "--call",
    ];
    let mut partial = base.to_vec();
    partial.push("partial.json");
    assert_invalid_envelope(&gait(d, &partial));
    let mut full = base.to_vec();
    full.push("full.json");
    let run = gait(d, &full);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.json().get("warnings").is_none(), "{}", run.stdout);
}
