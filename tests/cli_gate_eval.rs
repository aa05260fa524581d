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

const LIMITED_POLICY: &str = "schema_id: gait.gate.policy
schema_version: 1.0.0
default_verdict: block
rules:
  - name: allow-read
    priority: 1
    effect: allow
    match:
      tool_names: [tool.read]
    rate_limit: {requests: 2, window: hour, scope: tool_identity}
  - name: allow-delete
    priority: 2
    effect: allow
    match:
      tool_names: [tool.delete]
    destructive_budget: {requests: 1, window: hour, scope: identity}
";

const DELETE_INTENT: &str = r#"{"schema_id":"gait.gate.intent_request","schema_version":"1.0.0",
"created_at":"2026-02-06T00:00:00Z","producer_version":"t","tool_name":"tool.delete",
"args":{"path":"/tmp/out.txt"},
"targets":[{"kind":"path","value":"/tmp/out.txt","operation":"delete","destructive":true}],
"context":{"identity":"alice","workspace":"/tmp/w","risk_class":"low"}}"#;

#[test]
fn rate_limit_state_counts_across_processes_and_blocks_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "policy.yaml", LIMITED_POLICY);
    let intent = example("intents/intent_read.json");
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "gate",
            "eval",
            "--policy",
            "policy.yaml",
            "--intent",
            &intent,
            "--json",
        ];
        args.extend_from_slice(extra);
        gait(d, &args)
    };
    let state = d.join(".gait-out/gate_rate_limits.json");
    let mut used = Vec::new();
    for _ in 0..2 {
        let r = eval(&[]);
        assert_eq!(r.code, 0, "{r:?}");
        let v = r.json();
        assert_eq!(v["verdict"], "allow");
        assert_eq!(v["rate_limit_scope"], "tool_identity");
        used.push((
            v["rate_limit_used"].clone(),
            v["rate_limit_remaining"].clone(),
        ));
    }
    assert_eq!(
        used,
        vec![(1.into(), 1.into()), (2.into(), 0.into())],
        "counted in the default state file"
    );
    // simulate reports the refusal but consumes nothing and exits 0
    let sim = eval(&["--simulate"]);
    assert_eq!(sim.code, 0, "{sim:?}");
    let v = sim.json();
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["simulated_verdict"], "block");
    assert_eq!(v["would_have_blocked"], true);
    assert_eq!(v["simulate_mode"], true);
    let reasons = v["reason_codes"].as_array().unwrap();
    assert!(reasons.contains(&"simulated_block".into()), "{v}");
    assert!(
        reasons.contains(&"simulate_mode_non_enforcing".into()),
        "{v}"
    );
    let before = std::fs::read(&state).unwrap();
    let third = eval(&[]);
    assert_eq!(third.code, 3, "{third:?}");
    let v = third.json();
    assert_eq!(v["verdict"], "block");
    assert_eq!(
        v["reason_codes"],
        serde_json::json!(["matched_rule_allow_read", "rate_limit_exceeded"])
    );
    assert_eq!(v["violations"], serde_json::json!(["rate_limit_exceeded"]));
    assert_eq!(v["rate_limit_used"], 2);
    // a refused call does not increment the counter
    assert_eq!(std::fs::read(&state).unwrap(), before);
    let doc: Value = serde_json::from_slice(&before).unwrap();
    assert_eq!(doc["schema_id"], "gait.gate.rate_limit_state");
    assert_eq!(doc["counters"][0]["count"], 2);
    assert!(
        doc["counters"][0]["key"]
            .as_str()
            .unwrap()
            .ends_with("|tool.read|example-user")
    );
    // another state file starts from zero
    let other = eval(&["--rate-limit-state", "other/state.json"]);
    assert_eq!(other.code, 0, "{other:?}");
    // a corrupt state file is bad input, not a silent reset
    write(d, "bad.json", "not json");
    let bad = eval(&["--rate-limit-state", "bad.json"]);
    assert_eq!(bad.code, 6, "{bad:?}");
    assert_eq!(
        std::fs::read_to_string(d.join("bad.json")).unwrap(),
        "not json"
    );
}

#[test]
fn destructive_budget_counts_destructive_calls_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "policy.yaml", LIMITED_POLICY);
    write(d, "delete.json", DELETE_INTENT);
    let run = || {
        gait(
            d,
            &[
                "gate",
                "eval",
                "--policy",
                "policy.yaml",
                "--intent",
                "delete.json",
                "--json",
            ],
        )
    };
    // a destructive apply needs approval; the budget counts it all the same
    let first = run();
    assert_eq!(first.code, 4, "{first:?}");
    assert_eq!(first.json()["destructive_budget_used"], 1);
    let second = run();
    assert_eq!(second.code, 3, "{second:?}");
    let v = second.json();
    assert!(
        v["reason_codes"]
            .as_array()
            .unwrap()
            .contains(&"destructive_budget_exceeded".into()),
        "{v}"
    );
    assert_eq!(v["verdict"], "block");
    assert!(
        v["destructive_budget_key"]
            .as_str()
            .unwrap()
            .starts_with("hour|identity|")
    );
}

#[test]
fn gate_section_of_the_config_supplies_defaults_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "policy.yaml", LIMITED_POLICY);
    write(
        d,
        ".gait/config.yaml",
        "gate:\n  policy: policy.yaml\n  rate_limit_state: state/limits.json\n",
    );
    let intent = example("intents/intent_read.json");
    let r = gait(d, &["gate", "eval", "--intent", &intent, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(d.join("state/limits.json").exists());
    let flag = gait(
        d,
        &[
            "gate",
            "eval",
            "--intent",
            &intent,
            "--rate-limit-state",
            "f.json",
            "--json",
        ],
    );
    assert_eq!(flag.code, 0, "{flag:?}");
    assert!(d.join("f.json").exists());
    let none = gait(
        d,
        &["gate", "eval", "--intent", &intent, "--no-config", "--json"],
    );
    assert_invalid_envelope(&none);
    assert!(
        none.stdout
            .contains("both --policy and --intent are required")
    );
    let prod = gait(
        d,
        &[
            "gate",
            "eval",
            "--intent",
            &intent,
            "--profile",
            "oss-prod",
            "--simulate",
            "--json",
        ],
    );
    assert_eq!(prod.code, 6, "{prod:?}");
}
