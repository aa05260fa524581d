//! `gait gate eval` end to end: the built binary against the compatibility examples.

mod support;

use serde_json::Value;
use support::{assert_invalid_envelope, compat, gait, schema_errors, schema_validator, write};

fn example(rel: &str) -> String {
    compat()
        .join("policies/examples")
        .join(rel)
        .display()
        .to_string()
}

#[test]
fn endpoint_block_example_exits_3_and_writes_a_verifiable_trace() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(gait(d, &["keys", "init", "--prefix", "g"]).code, 0);
    let run = gait(
        d,
        &[
            "gate",
            "eval",
            "--policy",
            &example("endpoint/block_denied_endpoints.yaml"),
            "--intent",
            &example("endpoint/fixtures/intent_block.json"),
            "--key-mode",
            "prod",
            "--private-key",
            "g_private.key",
            "--json",
        ],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let v = run.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["verdict"], "block");
    assert_eq!(
        v["reason_codes"],
        serde_json::json!([
            "endpoint_path_denied",
            "endpoint_policy_violation",
            "matched_rule_endpoint_deny"
        ])
    );
    assert_eq!(v["matched_rule"], "endpoint-deny");
    assert_eq!(v["profile"], "standard");
    let trace_id = v["trace_id"].as_str().unwrap();
    assert_eq!(v["trace_path"], format!("trace_{trace_id}.json"));
    let trace_text = std::fs::read_to_string(d.join(format!("trace_{trace_id}.json"))).unwrap();
    let trace: Value = serde_json::from_str(&trace_text).unwrap();
    assert_eq!(schema_errors(&schema_validator("trace_record"), &trace), "");
    assert_eq!(trace["correlation_id"], v["correlation_id"]);
    assert!(trace["latency_ms"].as_f64().unwrap() > 0.0);
    let verify = gait(
        d,
        &[
            "trace",
            "verify",
            &format!("trace_{trace_id}.json"),
            "--private-key",
            "g_private.key",
        ],
    );
    assert_eq!(verify.code, 0, "{verify:?}");
}

#[test]
fn allow_and_kill_switch_examples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let allow = gait(
        d,
        &[
            "gate",
            "eval",
            "--policy",
            &example("endpoint/allow_safe_endpoints.yaml"),
            "--intent",
            &example("endpoint/fixtures/intent_allow.json"),
            "--trace-out",
            "t/allow.json",
            "--json",
        ],
    );
    assert_eq!(allow.code, 0, "{allow:?}");
    assert_eq!(allow.json()["verdict"], "allow");
    assert!(d.join("t/allow.json").exists());

    let killed = gait(
        d,
        &[
            "gate",
            "eval",
            "--policy",
            &example("kill_switch/allow_exec.yaml"),
            "--intent",
            &example("kill_switch/intent_exec.json"),
            "--kill-switch-state",
            &example("kill_switch/kill_switch_state_identity.json"),
            "--evaluation-time",
            "2026-03-01T00:00:00Z",
            "--json",
        ],
    );
    assert_eq!(killed.code, 3, "{killed:?}");
    let v = killed.json();
    assert!(
        v["reason_codes"].to_string().contains("kill_switch_active"),
        "{v}"
    );
    assert_eq!(v["kill_switch"]["status"], "active");
}

#[test]
fn gate_eval_bad_input_exits_6() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "policy.yaml", "default_verdict: allow\n");
    write(d, "notjson.json", "{nope");
    write(d, "wrongtype.json", r#"{"tool_name": 5}"#);
    let block = std::fs::read_to_string(example("endpoint/fixtures/intent_block.json")).unwrap();
    write(
        d,
        "wrong_schema.json",
        &block.replace("gait.gate.intent_request", "gait.other"),
    );
    write(
        d,
        "secret.json",
        &block.replace(
            "\"/etc/hosts\"\n",
            "\"/etc/hosts\", \"password\": \"hunter2hunter2hunter2x9\"\n",
        ),
    );
    write(
        d,
        "bad_digest.json",
        &block.replace("\"tool_name\"", "\"args_digest\": \"bad\", \"tool_name\""),
    );
    let intent = example("endpoint/fixtures/intent_block.json");
    let cases: Vec<Vec<&str>> = vec![
        vec!["--policy", "policy.yaml"],
        vec!["--intent", &intent],
        vec!["--policy", "missing.yaml", "--intent", &intent],
        vec!["--policy", "policy.yaml", "--intent", "missing.json"],
        vec!["--policy", "policy.yaml", "--intent", "notjson.json"],
        vec!["--policy", "policy.yaml", "--intent", "wrongtype.json"],
        vec!["--policy", "policy.yaml", "--intent", "wrong_schema.json"],
        vec!["--policy", "policy.yaml", "--intent", "secret.json"],
        vec!["--policy", "policy.yaml", "--intent", "bad_digest.json"],
        vec![
            "--policy",
            "policy.yaml",
            "--intent",
            &intent,
            "--evaluation-time",
            "yesterday",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--intent",
            &intent,
            "--profile",
            "oss-prod",
        ],
        vec![
            "--policy",
            "policy.yaml",
            "--intent",
            &intent,
            "--trace-out",
            "a/../../x.json",
        ],
    ];
    for case in cases {
        let mut args = vec!["gate", "eval"];
        args.extend(case.iter().copied());
        args.push("--json");
        let run = gait(d, &args);
        assert!(!run.stderr.contains("panicked"), "{case:?}");
        assert!(
            !run.stdout.contains("hunter2"),
            "secret echoed: {}",
            run.stdout
        );
        assert_invalid_envelope(&run);
    }
    let run = gait(d, &["gate", "eval", "--policy", "policy.yaml", "--json"]);
    assert_eq!(
        run.json()["error"],
        "both --policy and --intent are required"
    );
}
