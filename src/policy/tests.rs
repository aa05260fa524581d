//! Unit tests for loading, validation, digest and evaluation.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::trust::{self, RequiredFrom, ServerRef, SnapshotState, TrustSnapshot};
use super::*;
use crate::intent::IntentRequest;

fn policy(src: &str) -> Policy {
    match Policy::from_yaml_str(src) {
        Ok(p) => p,
        Err(e) => panic!("policy should load: {e}\n{src}"),
    }
}

fn err(src: &str) -> PolicyError {
    match Policy::from_yaml_str(src) {
        Ok(_) => panic!("policy should fail:\n{src}"),
        Err(e) => e,
    }
}

fn intent(v: serde_json::Value) -> IntentRequest {
    serde_json::from_value(v).expect("intent json")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
        .single()
        .expect("time")
}

fn eval(p: &Policy, i: &IntentRequest) -> Evaluation {
    p.evaluate_request(i, &EvalOptions::at(now()))
}

fn write_intent(risk: &str) -> IntentRequest {
    intent(json!({
        "tool_name": "tool.write",
        "args": {"path": "/tmp/x"},
        "targets": [{"kind": "path", "value": "/tmp/x", "operation": "write", "endpoint_class": "fs.write"}],
        "arg_provenance": [{"arg_path": "$.path", "source": "user"}],
        "context": {"identity": "alice", "workspace": "/repo", "risk_class": risk, "phase": "apply"}
    }))
}

// === loading ===

#[test]
fn golden_digest_default_allow() {
    let p = policy("default_verdict: allow\n");
    assert_eq!(
        p.digest(),
        "65819d9cf07c7619aa8aaf2bd4e8d6f8e3f86b139b49a68c535fd14d77a5009f"
    );
    assert_eq!(p.schema_id(), "gait.gate.policy");
    assert_eq!(p.schema_version(), "1.0.0");
    assert_eq!(p.default_verdict(), Verdict::Allow);
    // Aliases fold in: default_action gives the same digest.
    assert_eq!(policy("default_action: ALLOW\n").digest(), p.digest());
}

#[test]
fn empty_policy_defaults_to_require_approval() {
    let p = policy("");
    assert_eq!(p.default_verdict(), Verdict::RequireApproval);
    for empty in ["# only a comment\n", "---\n", "null\n", "~\n"] {
        assert_eq!(policy(empty).digest(), p.digest(), "{empty:?}");
    }
    assert!(matches!(err("[1, 2]\n"), PolicyError::Parse(_)));
    assert!(matches!(err("just a string\n"), PolicyError::Parse(_)));
    let e = eval(&p, &write_intent("low"));
    assert_eq!(e.verdict, Verdict::RequireApproval);
    assert_eq!(e.reason_codes, vec!["default_require_approval"]);
    assert_eq!(e.min_approvals, 1);
}

#[test]
fn digest_is_order_and_alias_insensitive() {
    let a = policy(
        "rules:\n  - {name: b, priority: 2, effect: block, match: {tool_names: [X, y]}}\n  - {name: a, priority: 1, action: allow, match: {tool_name: z}}\n",
    );
    let b = policy(
        "rules:\n  - {name: a, priority: 1, effect: allow, match: {tool_names: [Z]}}\n  - {name: b, priority: 2, effect: block, match: {tool_names: [y, x, x]}}\n",
    );
    assert_eq!(a.digest(), b.digest());
    let c = policy("rules:\n  - {name: a, priority: 1, effect: block, match: {tool_names: [z]}}\n");
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn mcp_trust_max_age_is_digested_as_go_duration() {
    let a = policy("mcp_trust: {snapshot: s.json, max_age: 24h}\n");
    let b = policy("mcp_trust: {snapshot: s.json, max_age: 1440m}\n");
    assert_eq!(a.digest(), b.digest());
    let payload = digest::payload(
        &compile::compile(raw_of("mcp_trust: {snapshot: s.json, max_age: 24h}\n"))
            .expect("compile"),
    );
    assert_eq!(payload["MCPTrust"]["MaxAge"], json!("24h0m0s"));
    assert_eq!(
        payload["MCPTrust"]["RequiredRiskClasses"],
        json!(["critical", "high"])
    );
    assert_eq!(payload["MCPTrust"]["Action"], json!("block"));
    assert_eq!(
        a.mcp_trust().expect("t").most_severe_required_class(),
        "critical"
    );
    let low = policy("mcp_trust: {snapshot: s, required_risk_classes: [low, medium]}\n");
    assert_eq!(
        low.mcp_trust().expect("t").most_severe_required_class(),
        "medium"
    );
}

fn raw_of(src: &str) -> raw::RawPolicy {
    serde_saphyr::from_str(src).expect("raw")
}

#[test]
fn unknown_key_names_key_and_line() {
    let e =
        err("default_verdict: allow\nrules:\n  - name: r\n    effect: allow\n    bogus_key: 1\n");
    let msg = e.to_string();
    assert!(matches!(e, PolicyError::Parse(_)), "{msg}");
    assert!(msg.starts_with("parse policy yaml: "), "{msg}");
    assert!(msg.contains("bogus_key"), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert_eq!(
        msg,
        "parse policy yaml: unknown field `bogus_key` at line 5, column 5"
    );
    // Unknown key inside match and at top level too.
    let msg =
        err("rules:\n  - name: r\n    effect: allow\n    match:\n      tool: x\n").to_string();
    assert!(msg.contains("tool") && msg.contains("line 5"), "{msg}");
    let msg = err("default_verdict: allow\nfoo: 1\n").to_string();
    assert!(msg.contains("foo") && msg.contains("line 2"), "{msg}");
}

#[test]
fn duplicate_key_is_an_error() {
    let e = err("default_verdict: allow\ndefault_verdict: block\n");
    let msg = e.to_string();
    assert!(matches!(e, PolicyError::Parse(_)), "{msg}");
    assert!(msg.contains("duplicate"), "{msg}");
    assert!(msg.contains("default_verdict"), "{msg}");
    assert!(!msg.contains("DuplicateKeyPolicy"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    let msg = err("rules:\n  - name: a\n    name: b\n    effect: allow\n").to_string();
    assert!(msg.contains("duplicate") && msg.contains("line 3"), "{msg}");
}

#[test]
fn legacy_keys_are_rejected_with_migration() {
    let e = err("name: my-policy\nversion: 1\nboundaries: []\n");
    assert_eq!(
        e.to_string(),
        "legacy policy proposal fields are not supported [version, name, boundaries]: \
         version->schema_id|schema_version (set schema_id=gait.gate.policy and schema_version=1.0.0); \
         name->remove the top-level policy name; rule names remain under rules[].name when needed; \
         boundaries->rules|mcp_trust"
    );
    match e {
        PolicyError::Legacy { keys, migration } => {
            assert_eq!(keys, vec!["version", "name", "boundaries"]);
            assert_eq!(migration.len(), 3);
            assert_eq!(migration[2], "boundaries->rules|mcp_trust");
        }
        other => panic!("expected Legacy, got {other:?}"),
    }
    let all = err("defaults: {}\ntrust_sources: []\nunknown_server: block\n");
    let msg = all.to_string();
    assert!(
        msg.contains("[defaults, trust_sources, unknown_server]"),
        "{msg}"
    );
    assert!(msg.contains("trust_sources->mcp_trust.snapshot (render external trust data to a local snapshot before evaluation)"), "{msg}");
    assert!(
        msg.contains("unknown_server->mcp_trust.action (enforce unknown servers"),
        "{msg}"
    );
    assert!(
        msg.contains("defaults->default_verdict|fail_closed"),
        "{msg}"
    );
}

#[test]
fn validation_errors() {
    let cases: &[(&str, &str)] = &[
        ("schema_id: other\n", "unsupported policy schema_id: other"),
        (
            "schema_version: 2.0.0\n",
            "unsupported policy schema_version: 2.0.0",
        ),
        ("default_verdict: deny\n", "invalid default_verdict: deny"),
        (
            "default_verdict: allow\ndefault_action: block\n",
            "default_action must match default_verdict when both are set",
        ),
        ("rules:\n  - {effect: allow}\n", "rule name is required"),
        ("rules:\n  - {name: '  '}\n", "rule name is required"),
        ("rules:\n  - {name: r1}\n", "rule effect is required for r1"),
        (
            "rules:\n  - {name: r1, effect: x}\n",
            "invalid rule effect \"x\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, action: block}\n",
            "rule action must match effect for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, match: {endpoint_class: [fs.nope]}}\n",
            "unsupported match endpoint_class \"fs.nope\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, match: {endpoint_classes: [bad]}}\n",
            "unsupported match endpoint_class \"bad\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, match: {discovery_method: [carrier_pigeon]}}\n",
            "unsupported match discovery_method \"carrier_pigeon\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, rate_limit: {requests: 1, window: day}}\n",
            "unsupported rate_limit.window \"day\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, rate_limit: {requests: 1, scope: world}}\n",
            "unsupported rate_limit.scope \"world\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, rate_limit: {requests: -1}}\n",
            "rate_limit.requests must be >= 0 for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, destructive_budget: {window: hour}}\n",
            "destructive_budget.requests must be >= 1 for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, destructive_budget: {requests: 2, scope: x}}\n",
            "unsupported destructive_budget.scope \"x\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, freeze_window: {effect: block}}\n",
            "freeze_window.timezone is required for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, freeze_window: {timezone: UTC, effect: allow}}\n",
            "unsupported freeze_window.effect \"allow\" for r1",
        ),
        (
            "mcp_trust: {action: block}\n",
            "mcp_trust.snapshot is required when mcp_trust is configured",
        ),
        (
            "mcp_trust: {snapshot: s.json, min_score: 1.5}\n",
            "mcp_trust.min_score must be between 0 and 1",
        ),
        (
            "mcp_trust: {snapshot: s.json, max_age: forever}\n",
            "parse mcp_trust.max_age",
        ),
        (
            "mcp_trust: {snapshot: s.json, action: allow}\n",
            "unsupported mcp_trust.action \"allow\"",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, endpoint: {egress_classes: [fs.read]}}\n",
            "endpoint.egress_class must be network class for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, endpoint: {egress_classes: [net.ftp]}}\n",
            "unsupported endpoint.egress_class \"net.ftp\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, endpoint: {enabled: true, action: allow}}\n",
            "unsupported endpoint.action \"allow\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, endpoint: {destructive_action: dry_run}}\n",
            "unsupported endpoint.destructive_action \"dry_run\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, dataflow: {enabled: true, action: allow}}\n",
            "unsupported dataflow.action \"allow\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, required_agent_manifest_digest: abc}\n",
            "required_agent_manifest_digest must be sha256 hex for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, min_approvals: -1}\n",
            "min_approvals must be >= 0 for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, match: {max_delegation_depth: -1}}\n",
            "max_delegation_depth must be >= 0 for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, required_context_evidence_mode: best_effort}\n",
            "required_context_evidence_mode must be required for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, allowed_credential_sources: [magic]}\n",
            "unsupported allowed_credential_sources \"magic\" for r1",
        ),
        (
            "rules:\n  - {name: r1, effect: allow, sandbox: {allowed_network_modes: [wide]}}\n",
            "unsupported sandbox.allowed_network_modes \"wide\" for r1",
        ),
        (
            "fail_closed: {enabled: true, required_fields: [everything]}\n",
            "unsupported fail_closed required_field: everything",
        ),
        (
            "fail_closed: {enabled: true, required_high_risk_fields: [shoe_size]}\n",
            "unsupported fail_closed required_high_risk_field: shoe_size",
        ),
        (
            "scripts: {max_steps: -1}\n",
            "scripts.max_steps must be >= 0",
        ),
    ];
    for (src, want) in cases {
        let e = err(src);
        assert!(matches!(e, PolicyError::Invalid(_)), "{src}: {e:?}");
        assert!(
            e.to_string().starts_with(want),
            "{src}: got {e}, want {want}"
        );
    }
}

#[test]
fn normalisation_lowercases_and_sorts() {
    let p = policy(
        "rules:\n  - name: ' r '\n    effect: ' ALLOW '\n    min_approvals: 2\n    reason_codes: [z, a, a, ' ']\n    match: {tool_name: Tool.B, tool_names: [tool.a, TOOL.A], identities: [' Bob ', Bob], endpoint_class: [FS.READ]}\n",
    );
    let r = &p.rules()[0];
    assert_eq!(r.name, "r");
    assert_eq!(r.effect, Verdict::Allow);
    assert_eq!(r.matcher.tool_names, vec!["tool.a", "tool.b"]);
    assert_eq!(r.matcher.identities, vec!["Bob"]);
    assert_eq!(r.matcher.endpoint_classes, vec!["fs.read"]);
    assert_eq!(r.reason_codes, vec!["a", "z"]);
    assert!(
        r.require_distinct_approvers,
        "min_approvals > 1 forces distinct approvers"
    );
    assert_eq!(
        p.tool_names().iter().cloned().collect::<Vec<_>>(),
        vec!["tool.a", "tool.b"]
    );
}

#[test]
fn load_rejects_big_and_non_utf8_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, b"default_verdict: \xff\n").expect("write");
    assert!(matches!(
        Policy::load(&bad),
        Err(PolicyError::NotUtf8 { .. })
    ));
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; (MAX_POLICY_BYTES + 1) as usize]).expect("write");
    assert!(matches!(
        Policy::load(&big),
        Err(PolicyError::TooLarge { .. })
    ));
    let missing = dir.path().join("missing.yaml");
    let e = Policy::load(&missing).expect_err("missing");
    assert!(e.to_string().starts_with("read policy: "), "{e}");
    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "default_verdict: block\n").expect("write");
    assert_eq!(
        Policy::load(&ok).expect("load").default_verdict(),
        Verdict::Block
    );
}

#[test]
fn oss_prod_rejects_default_allow() {
    let p = policy("default_verdict: allow\n");
    assert!(p.check_profile(Profile::Standard).is_ok());
    assert_eq!(
        p.check_profile(Profile::OssProd)
            .expect_err("reject")
            .to_string(),
        "oss-prod profile rejects policy default_verdict=allow; use default_verdict: block or require_approval"
    );
    assert!(
        policy("default_verdict: block\n")
            .check_profile(Profile::OssProd)
            .is_ok()
    );
}

// === evaluation ===

#[test]
fn first_matching_tier_only_and_most_restrictive_within() {
    let p = policy(
        "default_verdict: block\nrules:\n  - {name: b-allow, priority: 5, effect: allow, match: {tool_names: [tool.write]}, reason_codes: [ok_b]}\n  - {name: a-approve, priority: 5, effect: require_approval, match: {risk_classes: [high]}, reason_codes: [ra]}\n  - {name: later-block, priority: 9, effect: block, match: {tool_names: [tool.write]}}\n",
    );
    let e = eval(&p, &write_intent("high"));
    assert_eq!(e.verdict, Verdict::RequireApproval);
    assert_eq!(
        e.reason_codes,
        vec!["ra"],
        "only contributing rules' reasons"
    );
    assert_eq!(e.matched_rule.as_deref(), Some("a-approve,b-allow"));
    assert_eq!(e.matched_rule_names, vec!["a-approve", "b-allow"]);
    assert_eq!(e.min_approvals, 1);
    // Low risk: only b-allow matches in tier 5; the priority-9 block is never consulted.
    let e = eval(&p, &write_intent("low"));
    assert_eq!(e.verdict, Verdict::Allow);
    assert_eq!(e.reason_codes, vec!["ok_b"]);
    assert_eq!(e.min_approvals, 0);
}

#[test]
fn lower_priority_number_wins_and_fallback_reason_is_sanitized() {
    let p = policy(
        "default_verdict: allow\nrules:\n  - {name: Block External Host-1, priority: -3, effect: block, match: {tool_names: [tool.write]}}\n  - {name: allow, priority: 0, effect: allow}\n",
    );
    let e = eval(&p, &write_intent("low"));
    assert_eq!(e.verdict, Verdict::Block);
    assert_eq!(e.reason_codes, vec!["matched_rule_block_external_host_1"]);
    assert_eq!(e.violations, Vec::<String>::new());
}

#[test]
fn default_verdict_reason_and_no_escalation() {
    let p = policy("default_verdict: allow\n");
    let mut i = write_intent("high");
    i.targets[0].destructive = true;
    let e = eval(&p, &i);
    assert_eq!(
        e.verdict,
        Verdict::Allow,
        "default verdict is not escalated"
    );
    assert_eq!(e.reason_codes, vec!["default_allow"]);
    assert_eq!(e.matched_rule, None);
}

#[test]
fn destructive_escalation_by_phase() {
    let p = policy("rules:\n  - {name: allow-all, effect: allow}\n");
    let mut i = write_intent("low");
    i.targets[0].destructive = true;
    let e = eval(&p, &i);
    assert_eq!(e.verdict, Verdict::RequireApproval);
    assert!(
        e.reason_codes
            .contains(&"destructive_apply_requires_approval".to_string())
    );
    assert_eq!(e.min_approvals, 1);
    i.context.phase = "plan".into();
    let e = eval(&p, &i);
    assert_eq!(e.verdict, Verdict::DryRun);
    assert_eq!(
        e.reason_codes,
        vec!["matched_rule_allow_all", "plan_phase_non_destructive"]
    );
    // A block rule stays block.
    let p = policy("rules:\n  - {name: no, effect: block}\n");
    assert_eq!(eval(&p, &i).verdict, Verdict::Block);
}

#[test]
fn dataflow_replaces_the_rule_effect() {
    let p = policy(
        "rules:\n  - name: egress\n    effect: block\n    dataflow: {enabled: true, action: require_approval}\n",
    );
    let tainted = intent(json!({
        "tool_name": "tool.post",
        "targets": [{"kind": "host", "value": "api.example", "endpoint_class": "net.http", "endpoint_domain": "api.example"}],
        "arg_provenance": [{"arg_path": "$.body", "source": "external"}],
        "context": {"identity": "a", "workspace": "/w", "risk_class": "low", "phase": "apply"}
    }));
    let e = eval(&p, &tainted);
    assert_eq!(e.verdict, Verdict::RequireApproval, "replaced, not merged");
    assert_eq!(
        e.reason_codes,
        vec!["dataflow_tainted_destination", "matched_rule_egress"]
    );
    assert_eq!(e.violations, vec!["tainted_dataflow"]);
    assert!(e.dataflow_triggered);
    let mut clean = tainted.clone();
    clean.arg_provenance[0].source = "user".into();
    assert_eq!(eval(&p, &clean).verdict, Verdict::Block);
    // Path targets do not count as default egress destinations.
    let mut path = tainted.clone();
    path.targets[0].kind = "path".into();
    assert_eq!(eval(&p, &path).verdict, Verdict::Block);
}

#[test]
fn endpoint_overlay_escalates() {
    let p = policy(
        "default_verdict: allow\nrules:\n  - name: ep\n    effect: allow\n    endpoint: {path_allowlist: [/tmp/ok/**], egress_classes: [net.http], action: require_approval}\n",
    );
    let mut i = write_intent("low");
    let e = eval(&p, &i);
    assert_eq!(e.verdict, Verdict::RequireApproval);
    assert_eq!(
        e.reason_codes,
        vec![
            "endpoint_constraint_violation",
            "endpoint_path_not_allowlisted",
            "matched_rule_ep"
        ]
    );
    i.targets[0].value = "/tmp/ok/file".into();
    assert_eq!(eval(&p, &i).verdict, Verdict::Allow);
    i.targets.push(crate::intent::Target {
        kind: "host".into(),
        value: "x".into(),
        endpoint_class: "net.dns".into(),
        ..Default::default()
    });
    let e = eval(&p, &i);
    assert!(
        e.reason_codes
            .contains(&"endpoint_egress_class_not_allowed".to_string())
    );
}

#[test]
fn fail_closed_reasons() {
    let p = policy(
        "default_verdict: allow\nfail_closed:\n  enabled: true\n  required_fields: [targets, arg_provenance, delegation]\n  required_high_risk_fields: [run_id, credential_ttl_seconds]\n",
    );
    let i = intent(json!({
        "tool_name": "tool.x",
        "context": {"identity": "a", "workspace": "/w", "risk_class": "high"}
    }));
    let e = eval(&p, &i);
    assert_eq!(e.verdict, Verdict::Block);
    assert!(e.fail_closed);
    assert_eq!(
        e.reason_codes,
        vec![
            "fail_closed_missing_arg_provenance",
            "fail_closed_missing_credential_ttl_seconds",
            "fail_closed_missing_delegation",
            "fail_closed_missing_run_id",
            "fail_closed_missing_targets",
        ]
    );
    assert_eq!(
        e.violations,
        vec![
            "missing_arg_provenance",
            "missing_credential_ttl_seconds",
            "missing_delegation",
            "missing_run_id",
            "missing_targets",
        ]
    );
    // Not applicable for low risk.
    let mut low = i.clone();
    low.context.risk_class = "low".into();
    assert_eq!(eval(&p, &low).verdict, Verdict::Allow);
    // Unknown endpoint class is always checked when fail_closed applies.
    let p = policy("default_verdict: allow\nfail_closed: {enabled: true}\n");
    let mut w = write_intent("critical");
    w.targets[0].endpoint_class = "other".into();
    let e = eval(&p, &w);
    assert_eq!(e.reason_codes, vec!["fail_closed_endpoint_class_unknown"]);
    assert_eq!(e.violations, vec!["endpoint_class_unknown"]);
    // Intent normalisation failure.
    let e = fail_closed_intent_invalid(&p, " HIGH ").expect("applies");
    assert_eq!(
        (e.verdict, e.reason_codes.clone()),
        (
            Verdict::Block,
            vec!["fail_closed_intent_invalid".to_string()]
        )
    );
    assert_eq!(e.violations, vec!["intent_not_evaluable"]);
    assert!(fail_closed_intent_invalid(&p, "low").is_none());
}

const FREEZE: &str = "default_verdict: block\nrules:\n  - name: allow-prod-deploy\n    priority: 10\n    effect: allow\n    match: {tool_names: [tool.deploy]}\n    freeze_window:\n      timezone: America/Toronto\n      effect: require_approval\n      environments: [prod]\n      windows:\n        - {name: incident, start: \"2026-03-10T09:00:00\", end: \"2026-03-10T12:00:00\"}\n";

fn deploy_intent(env: &str) -> IntentRequest {
    intent(json!({
        "tool_name": "tool.deploy",
        "targets": [{"kind": "host", "value": "deploy.internal", "operation": "deploy", "endpoint_class": "net.http"}],
        "context": {"identity": "bot", "workspace": "/w", "risk_class": "high", "environment": env, "phase": "apply"}
    }))
}

#[test]
fn freeze_window_in_and_out() {
    let p = policy(FREEZE);
    let i = deploy_intent("prod");
    // 2026-03-10 09:00 America/Toronto (EDT, UTC-4) = 13:00Z.
    let inside = Utc
        .with_ymd_and_hms(2026, 3, 10, 14, 0, 0)
        .single()
        .expect("t");
    let e = p.evaluate_request(&i, &EvalOptions::at(inside));
    assert_eq!(e.verdict, Verdict::RequireApproval);
    assert!(
        e.reason_codes
            .contains(&"freeze_window_active_require_approval".to_string())
    );
    let d = e.freeze_window.expect("decision");
    assert_eq!(d.status, "active");
    assert_eq!(d.window_start.to_go_string(), "2026-03-10T13:00:00Z");
    assert_eq!(d.window_end.to_go_string(), "2026-03-10T16:00:00Z");
    let before = Utc
        .with_ymd_and_hms(2026, 3, 10, 12, 59, 59)
        .single()
        .expect("t");
    let e = p.evaluate_request(&i, &EvalOptions::at(before));
    assert_eq!(e.verdict, Verdict::Allow);
    assert_eq!(e.freeze_window.expect("decision").status, "inactive");
    let end = Utc
        .with_ymd_and_hms(2026, 3, 10, 16, 0, 0)
        .single()
        .expect("t");
    assert_eq!(
        p.evaluate_request(&i, &EvalOptions::at(end)).verdict,
        Verdict::Allow,
        "end is exclusive"
    );
    // Other environments are not frozen.
    assert_eq!(
        p.evaluate_request(&deploy_intent("dev"), &EvalOptions::at(inside))
            .verdict,
        Verdict::Allow
    );
    // Unknown time zone blocks.
    let bad = policy(&FREEZE.replace("America/Toronto", "Mars/Olympus"));
    let e = bad.evaluate_request(&i, &EvalOptions::at(before));
    assert_eq!(e.verdict, Verdict::Block);
    assert!(
        e.reason_codes
            .contains(&"freeze_window_invalid_timezone".to_string())
    );
}

#[test]
fn kill_switch_blocks_matching_entries() {
    let p = policy("default_verdict: allow\nrules:\n  - {name: allow-write, effect: allow}\n");
    let state = KillSwitchState::from_json_slice(
        br#"{"schema_id":"gait.gate.kill_switch_state","schema_version":"1.0.0","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","producer_version":"x","entries":[
            {"entry_id":"e1","enabled":true,"identity":"alice","tool_name":"TOOL.WRITE","created_at":"2026-01-01T00:00:00Z"},
            {"entry_id":"e2","enabled":false,"identity":"alice","created_at":"2026-01-01T00:00:00Z"},
            {"entry_id":"e3","enabled":true,"path_prefixes":["/tmp/"],"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-02-01T00:00:00Z"}]}"#,
    )
    .expect("state");
    let mut opts = EvalOptions::at(now());
    opts.kill_switch = KillSwitchInput::Loaded(Arc::new(state));
    let e = p.evaluate_request(&write_intent("low"), &opts);
    assert_eq!(e.verdict, Verdict::Block);
    assert_eq!(
        e.reason_codes,
        vec![
            "kill_switch_active",
            "kill_switch_identity_active",
            "kill_switch_tool_name_active",
            "matched_rule_allow_write"
        ]
    );
    assert_eq!(e.violations, vec!["kill_switch_active"]);
    let d = e.kill_switch.expect("decision");
    assert_eq!(
        d.matched_entry_ids,
        vec!["e1"],
        "disabled and expired entries are skipped"
    );
    assert_eq!(d.reason_code, "kill_switch_identity_active");
    let mut bob = write_intent("low");
    bob.context.identity = "bob".into();
    let e = p.evaluate_request(&bob, &opts);
    assert_eq!(e.verdict, Verdict::Allow);
    assert_eq!(e.kill_switch.expect("decision").status, "inactive");
    // Unavailable state blocks high risk, not low risk in the standard profile.
    opts.kill_switch = KillSwitchInput::Unavailable("gone".into());
    assert_eq!(
        p.evaluate_request(&write_intent("low"), &opts).verdict,
        Verdict::Allow
    );
    let e = p.evaluate_request(&write_intent("high"), &opts);
    assert_eq!(
        (e.verdict, e.reason_codes),
        (
            Verdict::Block,
            vec!["kill_switch_state_unavailable".to_string()]
        )
    );
    opts.profile = Profile::OssProd;
    assert_eq!(
        p.evaluate_request(&write_intent("low"), &opts).verdict,
        Verdict::Block
    );
    // Invalid state files are rejected.
    assert!(KillSwitchState::from_json_slice(br#"{"schema_id":"nope","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#).is_err());
    assert!(KillSwitchState::from_json_slice(br#"{"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","entries":[{"enabled":true,"created_at":"2026-01-01T00:00:00Z"}]}"#).is_err());
}

#[test]
fn sandbox_and_credentials_and_agent_overlays_block() {
    let p = policy(
        "default_verdict: allow\nrules:\n  - name: guarded\n    effect: allow\n    require_jit_credential: true\n    require_declared_agent: true\n",
    );
    let e = eval(&p, &write_intent("low"));
    assert_eq!(e.verdict, Verdict::Block);
    for r in [
        "agent_unknown",
        "credential_evidence_missing",
        "credential_source_unknown",
        "credential_access_type_unknown",
    ] {
        assert!(
            e.reason_codes.contains(&r.to_string()),
            "{r} in {:?}",
            e.reason_codes
        );
    }
    let p = policy(
        "default_verdict: allow\nrules:\n  - {name: sb, effect: allow, sandbox: {enabled: true}}\n",
    );
    let e = eval(&p, &write_intent("low"));
    assert_eq!(e.verdict, Verdict::Block);
    assert_eq!(e.sandbox.expect("decision").status, "missing");
    let p = policy(
        "default_verdict: allow\nrules:\n  - {name: ctx, effect: allow, require_context_evidence: true}\n",
    );
    let e = eval(&p, &write_intent("low"));
    assert_eq!(
        e.reason_codes,
        vec![
            "context_evidence_missing",
            "context_evidence_mode_mismatch",
            "context_set_digest_missing",
            "matched_rule_ctx"
        ]
    );
}

#[test]
fn scripts_aggregate_steps() {
    let p = policy(
        "default_verdict: block\nscripts: {require_approval_above: 1, block_mixed_risk: false}\nrules:\n  - {name: w, effect: allow, match: {tool_names: [tool.write]}}\n  - {name: r, effect: allow, match: {tool_names: [tool.read]}}\n",
    );
    let i = intent(json!({
        "tool_name": "script",
        "context": {"identity": "a", "workspace": "/w", "risk_class": "low", "phase": "apply"},
        "script": {"steps": [
            {"tool_name": "tool.read", "args": {}, "targets": [{"kind": "path", "value": "/a", "endpoint_class": "fs.read"}]},
            {"tool_name": "tool.write", "args": {}, "targets": [{"kind": "path", "value": "/b", "endpoint_class": "fs.write"}]}
        ]}
    }));
    let e = eval(&p, &i);
    assert_eq!(e.verdict, Verdict::RequireApproval);
    assert!(
        e.reason_codes
            .contains(&"script_step_threshold_approval".to_string())
    );
    let s = e.script.expect("script");
    assert_eq!(s.step_count, 2);
    assert_eq!(s.composite_risk_class, "medium");
    assert_eq!(s.step_verdicts[1].matched_rule, "w");
    assert_eq!(e.matched_rule.as_deref(), Some("r,w"));
    let p = policy("default_verdict: allow\nscripts: {max_steps: 1, block_mixed_risk: true}\n");
    let e = eval(&p, &i);
    assert_eq!(e.verdict, Verdict::Block);
    assert_eq!(
        e.violations,
        vec!["script_max_steps_exceeded", "script_mixed_risk"]
    );
}

#[test]
fn could_allow_tool_is_conservative() {
    let p = policy(
        "default_verdict: allow\nrules:\n  - {name: no-delete, priority: 1, effect: block, match: {tool_names: [tool.delete]}}\n  - {name: maybe, priority: 2, effect: block, match: {tool_names: [tool.exec], risk_classes: [high]}}\n  - {name: df, priority: 1, effect: block, match: {tool_names: [tool.post]}, dataflow: {enabled: true}}\n",
    );
    assert!(!p.could_allow_tool("tool.delete"));
    assert_eq!(p.tool_label("Tool.Delete"), "tool.delete");
    assert_eq!(p.tool_label("tool.unlisted"), "_other");
    assert!(!p.could_allow_tool("TOOL.DELETE "));
    assert!(p.could_allow_tool("tool.exec"), "conditional block");
    assert!(
        p.could_allow_tool("tool.post"),
        "dataflow may replace block"
    );
    assert!(p.could_allow_tool("tool.read"), "default allow");
    let p = policy(
        "default_verdict: block\nrules:\n  - {name: a, priority: 1, effect: allow, match: {tool_names: [tool.read]}}\n  - {name: b, priority: 1, effect: block, match: {tool_names: [tool.write]}}\n  - {name: c, priority: 1, effect: allow, match: {tool_names: [tool.write], risk_classes: [low]}}\n",
    );
    assert!(p.could_allow_tool("tool.read"));
    assert!(
        !p.could_allow_tool("tool.write"),
        "unconditional block in the same tier wins"
    );
    assert!(
        !p.could_allow_tool("tool.other"),
        "default block and no rule"
    );
    let p = policy(
        "default_verdict: block\nrules:\n  - {name: a, priority: 1, effect: allow, match: {tool_names: [tool.write], risk_classes: [low]}}\n  - {name: b, priority: 2, effect: block, match: {tool_names: [tool.write]}}\n",
    );
    assert!(
        p.could_allow_tool("tool.write"),
        "an earlier conditional allow may match first"
    );
}

// === mcp_trust ===

fn trust_policy(extra: &str) -> McpTrustPolicy {
    policy(&format!(
        "default_verdict: allow\nmcp_trust:\n  snapshot: snap.json\n  required_risk_classes: [high]\n  min_score: 0.8\n{extra}"
    ))
    .mcp_trust()
    .cloned()
    .expect("trust")
}

fn snapshot(entries: serde_json::Value) -> SnapshotState {
    let bytes = serde_json::to_vec(
        &json!({"schema_id":"gait.mcp.trust_snapshot","schema_version":"1.0.0","entries": entries}),
    )
    .expect("json");
    match TrustSnapshot::from_json_slice("snap.json", &bytes) {
        Ok(s) => SnapshotState::Loaded(Arc::new(s)),
        Err(e) => SnapshotState::Invalid(e),
    }
}

fn gh() -> ServerRef {
    ServerRef {
        server_id: "GitHub".into(),
        ..Default::default()
    }
}

#[test]
fn mcp_trust_statuses() {
    let t = trust_policy("  max_age: 720h\n  publisher_allowlist: [acme]\n");
    let good = json!({"server_id":"github","publisher":"acme","status":"trusted","updated_at":"2026-03-01T00:00:00Z","score":0.95,"evidence_path":"ev.json"});
    let decide =
        |snap: &SnapshotState, server: Option<&ServerRef>, raw: &str, from: RequiredFrom| {
            trust::decide(&t, snap, server, raw, "high", from, now())
        };
    let d = decide(
        &snapshot(json!([good])),
        Some(&gh()),
        "",
        RequiredFrom::Defaulted,
    );
    assert_eq!(
        (d.status.as_str(), d.reason_codes.clone()),
        ("trusted", vec!["mcp_trust_verified".to_string()])
    );
    assert!(d.required && !d.enforced);
    assert_eq!(d.decision_source, "ev.json");
    assert_eq!(d.max_age_seconds, 720 * 3600);

    let d = decide(
        &snapshot(json!([])),
        Some(&gh()),
        "",
        RequiredFrom::Defaulted,
    );
    assert_eq!(
        (d.status.as_str(), d.reason_codes[0].as_str()),
        ("unknown", "mcp_trust_server_unknown")
    );
    assert!(
        d.required && d.enforced,
        "defaulted risk class high is required"
    );
    let go = decide(&snapshot(json!([])), Some(&gh()), "", RequiredFrom::RawGo);
    assert!(
        !go.required && !go.enforced,
        "Go: no raw risk class, never enforced"
    );

    let mut stale = good.clone();
    stale["updated_at"] = json!("2025-01-01T00:00:00Z");
    let d = decide(
        &snapshot(json!([stale])),
        Some(&gh()),
        "high",
        RequiredFrom::RawGo,
    );
    assert_eq!(
        (d.status.as_str(), d.reason_codes.clone()),
        ("stale", vec!["mcp_trust_stale".to_string()])
    );
    assert!(d.enforced);

    let mut low = good.clone();
    low["score"] = json!(0.5);
    let d = decide(
        &snapshot(json!([low])),
        Some(&gh()),
        "high",
        RequiredFrom::Defaulted,
    );
    assert_eq!(d.status, "below_threshold");

    let mut untrusted = good.clone();
    untrusted["status"] = json!("blocked");
    untrusted["publisher"] = json!("evil");
    let d = decide(
        &snapshot(json!([untrusted])),
        Some(&gh()),
        "high",
        RequiredFrom::Defaulted,
    );
    assert_eq!(d.status, "untrusted");
    assert_eq!(
        d.reason_codes,
        vec![
            "mcp_trust_publisher_untrusted",
            "mcp_trust_status_untrusted"
        ]
    );

    let d = decide(
        &snapshot(json!([good])),
        None,
        "high",
        RequiredFrom::Defaulted,
    );
    assert_eq!(
        (d.status.as_str(), d.reason_codes[0].as_str()),
        ("missing", "mcp_trust_identifier_missing")
    );
    let d = decide(
        &SnapshotState::Unavailable("x".into()),
        Some(&gh()),
        "high",
        RequiredFrom::Defaulted,
    );
    assert_eq!(
        (d.status.as_str(), d.reason_codes[0].as_str()),
        ("missing", "mcp_trust_snapshot_unavailable")
    );
    let dup = snapshot(json!([good, {"server_id":"GITHUB"}]));
    assert!(
        matches!(dup, SnapshotState::Invalid(_)),
        "duplicate key makes the snapshot invalid"
    );
    let d = decide(&dup, Some(&gh()), "high", RequiredFrom::Defaulted);
    assert_eq!(
        (d.status.as_str(), d.reason_codes[0].as_str()),
        ("invalid", "mcp_trust_snapshot_invalid")
    );
    assert!(TrustSnapshot::from_json_slice("s", br#"{"schema_id":"other","entries":[]}"#).is_err());

    let t_reg = trust_policy("  require_registry: true\n");
    let reg_bad = json!({"server_id":"github","status":"trusted","score":0.9,"registry_verification":{"signature_verified":true,"publisher_allowed":true,"pin_present":true,"pin_verified":false}});
    let d = trust::decide(
        &t_reg,
        &snapshot(json!([reg_bad])),
        Some(&gh()),
        "high",
        "high",
        RequiredFrom::Defaulted,
        now(),
    );
    assert_eq!(
        (d.status.as_str(), d.reason_codes[0].as_str()),
        ("invalid", "mcp_trust_registry_unverified")
    );
    let reg_ok = json!({"server_id":"github","status":"trusted","score":0.9,"registry_verification":{"signature_verified":true,"publisher_allowed":true}});
    let d = trust::decide(
        &t_reg,
        &snapshot(json!([reg_ok])),
        Some(&gh()),
        "high",
        "high",
        RequiredFrom::Defaulted,
        now(),
    );
    assert_eq!(d.status, "trusted");
    assert!(d.registry_verified);
}

#[test]
fn mcp_trust_apply_merges_and_enforces() {
    let p = policy("default_verdict: allow\n");
    let t = trust_policy("");
    let d = trust::decide(
        &t,
        &snapshot(json!([])),
        Some(&gh()),
        "high",
        "high",
        RequiredFrom::Defaulted,
        now(),
    );
    let mut e = eval(&p, &write_intent("high"));
    trust::apply(&mut e, &d, t.action);
    assert_eq!(e.verdict, Verdict::Block);
    assert_eq!(
        e.reason_codes,
        vec!["default_allow", "mcp_trust_server_unknown"]
    );
    assert_eq!(e.violations, vec!["mcp_trust_policy"]);
    // dry_run is kept, as in Go.
    let dry = policy("default_verdict: dry_run\n");
    let mut e = eval(&dry, &write_intent("high"));
    trust::apply(&mut e, &d, t.action);
    assert_eq!(e.verdict, Verdict::DryRun);
    // Verified decisions still add their reason code.
    let ok = trust::decide(
        &t,
        &snapshot(json!([{"server_id":"github","score":0.9}])),
        Some(&gh()),
        "high",
        "high",
        RequiredFrom::Defaulted,
        now(),
    );
    let mut e = eval(&p, &write_intent("high"));
    trust::apply(&mut e, &ok, t.action);
    assert_eq!(
        (e.verdict, e.reason_codes),
        (
            Verdict::Allow,
            vec![
                "default_allow".to_string(),
                "mcp_trust_verified".to_string()
            ]
        )
    );
}

#[test]
fn snapshot_cache_reloads_on_change_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snap.json");
    let cache = trust::SnapshotCache::new(&path, std::time::Duration::ZERO);
    assert!(matches!(cache.get(), SnapshotState::Unavailable(_)));
    std::fs::write(&path, br#"{"entries":[{"server_id":"a"}]}"#).expect("write");
    let SnapshotState::Loaded(first) = cache.get() else {
        panic!("loaded")
    };
    assert_eq!(first.len(), 1);
    let SnapshotState::Loaded(again) = cache.get() else {
        panic!("loaded")
    };
    assert!(Arc::ptr_eq(&first, &again), "unchanged file is not re-read");
    std::fs::write(
        &path,
        br#"{"entries":[{"server_id":"a"},{"server_id":"bb"}]}"#,
    )
    .expect("write");
    let SnapshotState::Loaded(changed) = cache.get() else {
        panic!("loaded")
    };
    assert_eq!(changed.len(), 2, "a different length forces a reload");
}

// === robustness ===

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = Policy::from_yaml_str(&s);
    }

    #[test]
    fn yamlish_text_never_panics(
        lines in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("rules:".to_string()),
                proptest::strategy::Just("  - name: r".to_string()),
                proptest::strategy::Just("    effect: block".to_string()),
                proptest::strategy::Just("    match: {tool_names: [a, b]}".to_string()),
                proptest::strategy::Just("default_verdict: allow".to_string()),
                proptest::strategy::Just("mcp_trust: {snapshot: x, max_age: 1h}".to_string()),
                proptest::strategy::Just("fail_closed: {enabled: true}".to_string()),
                "[a-z_]{1,12}: [a-z0-9\\[\\]{}:, -]{0,20}",
                " {0,6}- [a-z]{0,8}",
            ],
            0..12,
        )
    ) {
        let src = lines.join("\n");
        if let Ok(p) = Policy::from_yaml_str(&src) {
            let _ = p.evaluate_request(&write_intent("high"), &EvalOptions::at(now()));
            let _ = p.could_allow_tool("a");
        }
    }
}

/// Rough evaluation cost; run with `cargo test --lib eval_speed_report -- --ignored --nocapture`.
/// Prints only; never asserts on time.
#[test]
#[ignore = "manual measurement"]
fn eval_speed_report() {
    let src = std::fs::read_to_string("/work/shared/compat/policies/examples/base_high_risk.yaml")
        .expect("policy");
    let p = policy(&src);
    let cases = [
        write_intent("high"),
        write_intent("low"),
        deploy_intent("prod"),
    ];
    let opts = EvalOptions::at(now());
    let n = 20_000usize;
    let start = std::time::Instant::now();
    let mut blocks = 0usize;
    for k in 0..n {
        let e = p.evaluate_request(&cases[k % cases.len()], &opts);
        blocks += usize::from(e.verdict == Verdict::Block);
    }
    let per = start.elapsed() / n as u32;
    println!("evaluate_request: {per:?} per call over {n} calls ({blocks} blocks)");
    let start = std::time::Instant::now();
    for _ in 0..200 {
        let _ = policy(&src);
    }
    println!(
        "from_yaml_str(base_high_risk): {:?} per load",
        start.elapsed() / 200
    );
}

#[test]
fn compiled_types_are_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<Evaluation>();
    assert_send_sync::<KillSwitchState>();
    assert_send_sync::<trust::SnapshotCache>();
}

#[test]
fn digest_payload_shape_follows_go_field_names() {
    let payload = |src: &str| digest::payload(&compile::compile(raw_of(src)).expect("compile"));
    let p = payload("default_verdict: block\nrules:\n  - {name: r, effect: allow}\n");
    assert_eq!(
        p,
        json!({
            "SchemaID": "gait.gate.policy",
            "SchemaVersion": "1.0.0",
            "DefaultVerdict": "block",
            "FailClosed": {"Enabled": false, "RiskClasses": [], "RequiredFields": []},
            "Rules": [{
                "Name": "r", "Priority": 0, "Effect": "allow",
                "Match": {"ToolNames": [], "RiskClasses": [], "TargetKinds": [], "TargetValues": [],
                          "ProvenanceSources": [], "Identities": [], "WorkspacePrefixes": []},
                "ReasonCodes": [], "Violations": []
            }]
        })
    );
    let p = payload(
        "fail_closed: {enabled: true, required_high_risk_fields: [run_id]}\nscripts: {max_steps: 3}\nrules:\n  - name: r\n    effect: allow\n    min_approvals: 2\n    sandbox: {allowed_user_modes: [root]}\n    endpoint: {path_denylist: [/etc/**]}\n    match: {endpoint_class: [fs.read], tool_annotations: {readOnlyHint: true}}\n",
    );
    assert_eq!(p["FailClosed"]["RiskClasses"], json!(["critical", "high"]));
    assert_eq!(p["FailClosed"]["RequiredHighRiskFields"], json!(["run_id"]));
    assert_eq!(
        p["Scripts"],
        json!({"MaxSteps": 3, "RequireApprovalAbove": 0, "BlockMixedRisk": false})
    );
    let r = &p["Rules"][0];
    assert_eq!(r["MinApprovals"], json!(2));
    assert_eq!(r["RequireDistinctApprovers"], json!(true));
    assert_eq!(r["Match"]["EndpointClasses"], json!(["fs.read"]));
    assert_eq!(r["Match"]["ToolAnnotations"], json!({"ReadOnlyHint": true}));
    assert_eq!(
        r["Sandbox"]["AllowedWritablePathPrefixes"],
        serde_json::Value::Null
    );
    assert_eq!(r["Sandbox"]["AllowedUserModes"], json!(["root"]));
    assert_eq!(r["Endpoint"]["Action"], json!("block"));
    assert_eq!(r["Endpoint"]["DestructiveAction"], json!(""));
    assert_eq!(
        r["Endpoint"]["ReasonCode"],
        json!("endpoint_constraint_violation")
    );
    assert!(r.get("Dataflow").is_none() && r.get("RateLimit").is_none());
}

/// Mirrors Go's `TestPolicyDigestLegacyCompatibility`: a core-only policy digests to the same
/// value as the v1.0 payload with the seven match keys.
#[test]
fn policy_digest_legacy_compatibility() {
    let p = policy(
        "default_verdict: block\nfail_closed:\n  enabled: true\n  risk_classes: [high]\n  required_fields: [targets]\nrules:\n  - name: allow-tool\n    priority: 1\n    effect: allow\n    match:\n      tool_names: [tool.write]\n      risk_classes: [high]\n      target_kinds: [host]\n      target_values: [api.external.com]\n      provenance_sources: [external]\n      identities: [alice]\n      workspace_prefixes: [/repo]\n    reason_codes: [allow_tool]\n    violations: [none]\n",
    );
    let legacy = json!({
        "SchemaID": "gait.gate.policy",
        "SchemaVersion": "1.0.0",
        "DefaultVerdict": "block",
        "FailClosed": {"Enabled": true, "RiskClasses": ["high"], "RequiredFields": ["targets"]},
        "Rules": [{
            "Name": "allow-tool", "Priority": 1, "Effect": "allow",
            "Match": {
                "ToolNames": ["tool.write"], "RiskClasses": ["high"], "TargetKinds": ["host"],
                "TargetValues": ["api.external.com"], "ProvenanceSources": ["external"],
                "Identities": ["alice"], "WorkspacePrefixes": ["/repo"]
            },
            "ReasonCodes": ["allow_tool"], "Violations": ["none"]
        }]
    });
    assert_eq!(p.digest(), crate::canon::digest(&legacy));
}

// === reference model for tier semantics ===

#[derive(Debug, Clone)]
struct ModelRule {
    name: String,
    priority: i64,
    effect: Verdict,
    tools: Vec<&'static str>,
    risks: Vec<&'static str>,
    reason: bool,
}

fn model_rule() -> impl proptest::strategy::Strategy<Value = ModelRule> {
    use proptest::prelude::*;
    (
        "[a-e]{1,3}",
        -1i64..3,
        proptest::sample::select(Verdict::ALL.to_vec()),
        proptest::sample::subsequence(vec!["tool.a", "tool.b"], 0..=2),
        proptest::sample::subsequence(vec!["low", "high"], 0..=2),
        any::<bool>(),
    )
        .prop_map(|(name, priority, effect, tools, risks, reason)| ModelRule {
            name,
            priority,
            effect,
            tools,
            risks,
            reason,
        })
}

fn model_yaml(default: Verdict, rules: &[ModelRule]) -> String {
    let mut y = format!("default_verdict: {}\nrules:\n", default.as_str());
    for (i, r) in rules.iter().enumerate() {
        let name = format!("{}-{i}", r.name);
        y.push_str(&format!(
            "  - name: {name}\n    priority: {}\n    effect: {}\n    match: {{tool_names: [{}], risk_classes: [{}]}}\n",
            r.priority,
            r.effect.as_str(),
            r.tools.join(", "),
            r.risks.join(", ")
        ));
        if r.reason {
            y.push_str(&format!("    reason_codes: [why_{i}]\n"));
        }
    }
    y
}

fn model_eval(
    default: Verdict,
    rules: &[ModelRule],
    tool: &str,
    risk: &str,
) -> (Verdict, Vec<String>, Option<String>) {
    let mut named: Vec<(String, usize, &ModelRule)> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("{}-{i}", r.name), i, r))
        .collect();
    named.sort_by(|a, b| a.2.priority.cmp(&b.2.priority).then_with(|| a.0.cmp(&b.0)));
    let matches = |r: &ModelRule| {
        (r.tools.is_empty() || r.tools.contains(&tool))
            && (r.risks.is_empty() || r.risks.contains(&risk))
    };
    let Some(first) = named.iter().find(|(_, _, r)| matches(r)) else {
        return (default, vec![format!("default_{}", default.as_str())], None);
    };
    let tier: Vec<_> = named
        .iter()
        .filter(|(_, _, r)| r.priority == first.2.priority && matches(r))
        .collect();
    let verdict = tier
        .iter()
        .map(|(_, _, r)| r.effect)
        .max()
        .unwrap_or(Verdict::Allow);
    let mut reasons: Vec<String> = tier
        .iter()
        .filter(|(_, _, r)| r.effect == verdict)
        .map(|(n, i, r)| {
            if r.reason {
                format!("why_{i}")
            } else {
                format!("matched_rule_{}", n.replace('-', "_"))
            }
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    let mut names: Vec<String> = tier.iter().map(|(n, _, _)| n.clone()).collect();
    names.sort();
    (verdict, reasons, Some(names.join(",")))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

    #[test]
    fn tier_semantics_match_reference_model(
        default in proptest::sample::select(Verdict::ALL.to_vec()),
        rules in proptest::collection::vec(model_rule(), 0..7),
        tool in proptest::sample::select(vec!["tool.a", "tool.b", "tool.c"]),
        risk in proptest::sample::select(vec!["low", "high"]),
    ) {
        let p = policy(&model_yaml(default, &rules));
        let mut i = write_intent(risk);
        i.tool_name = tool.to_string();
        let e = eval(&p, &i);
        let (verdict, reasons, matched) = model_eval(default, &rules, tool, risk);
        proptest::prop_assert_eq!(e.verdict, verdict);
        proptest::prop_assert_eq!(e.reason_codes, reasons);
        proptest::prop_assert_eq!(e.matched_rule, matched);
        proptest::prop_assert_eq!(
            e.min_approvals > 0,
            verdict == Verdict::RequireApproval
        );
        if !p.could_allow_tool(tool) {
            proptest::prop_assert_eq!(e.verdict, Verdict::Block, "hidden tool must always block");
        }
    }
}

/// Ports of Go's freeze_window_test.go cases (DST boundary, invalid window range).
#[test]
fn freeze_window_go_cases() {
    let base = |windows: &str| {
        format!(
            "default_verdict: block\nrules:\n  - name: allow-prod-deploy\n    priority: 10\n    effect: allow\n    match:\n      tool_names: [tool.deploy]\n    freeze_window:\n      timezone: America/Toronto\n      effect: block\n      environments: [prod]\n      risk_classes: [high]\n      windows:\n{windows}"
        )
    };
    let dst = policy(&base(
        "        - name: dst-window\n          start: \"2026-03-08T01:00:00\"\n          end: \"2026-03-08T04:00:00\"\n",
    ));
    let at = Utc
        .with_ymd_and_hms(2026, 3, 8, 7, 30, 0)
        .single()
        .expect("t");
    let e = dst.evaluate_request(&deploy_intent("prod"), &EvalOptions::at(at));
    assert_eq!(e.verdict, Verdict::Block);
    assert_eq!(e.freeze_window.expect("decision").window_name, "dst-window");

    let invalid = policy(&base(
        "        - name: invalid-range\n          start: \"not-a-window\"\n          end: \"2026-03-10T12:00:00\"\n",
    ));
    let at = Utc
        .with_ymd_and_hms(2026, 3, 10, 14, 30, 0)
        .single()
        .expect("t");
    let e = invalid.evaluate_request(&deploy_intent("prod"), &EvalOptions::at(at));
    assert_eq!(e.verdict, Verdict::Block);
    assert!(
        e.reason_codes
            .contains(&"freeze_window_invalid_window".to_string())
    );
    let d = e.freeze_window.expect("decision");
    assert_eq!(
        (d.status.as_str(), d.window_name.as_str()),
        ("invalid", "invalid-range")
    );
    // Inactive later the same day keeps the rule's allow.
    let later = Utc
        .with_ymd_and_hms(2026, 3, 10, 18, 30, 0)
        .single()
        .expect("t");
    let ok = policy(&base(
        "        - name: release-freeze\n          start: \"2026-03-10T09:00:00\"\n          end: \"2026-03-10T12:00:00\"\n",
    ));
    let e = ok.evaluate_request(&deploy_intent("prod"), &EvalOptions::at(later));
    assert_eq!(e.verdict, Verdict::Allow);
    assert_eq!(e.freeze_window.expect("decision").status, "inactive");
}

/// Port of Go's TestEvaluatePolicySandboxConstraints table.
#[test]
fn sandbox_go_cases() {
    let p = policy(
        "default_verdict: block\nrules:\n  - name: allow-sandboxed-exec\n    priority: 10\n    effect: allow\n    sandbox:\n      allowed_network_modes: [disabled, egress_allowlist]\n      allowed_writable_path_prefixes: [/tmp/work, /var/tmp/cache]\n      required_read_only_roots: [/repo, /usr/share]\n      allowed_env_exposure_modes: [none, allowlist]\n      max_timeout_seconds: 60\n      allowed_filesystem_isolations: [workspace, container]\n      allowed_user_modes: [unprivileged]\n    match:\n      endpoint_classes: [proc.exec]\n      risk_classes: [high]\n",
    );
    let base = intent(json!({
        "tool_name": "tool.exec",
        "targets": [{"kind": "path", "value": "/tmp/work/run.sh", "operation": "execute", "endpoint_class": "proc.exec", "destructive": true}],
        "context": {"identity": "a", "workspace": "/w", "risk_class": "high", "phase": "apply",
            "sandbox": {"network_mode": "egress_allowlist", "writable_paths": ["/tmp/work/tmp"], "read_only_roots": ["/repo", "/usr/share"],
                "env_exposure_mode": "allowlist", "timeout_seconds": 30, "filesystem_isolation": "container", "user_mode": "unprivileged",
                "evidence_ref": "sandbox:receipt:v1", "evidence_digest": "a".repeat(64)}}
    }));
    type Mutate = fn(&mut crate::intent::Sandbox);
    let cases: &[(&str, Option<Mutate>, Verdict, &str, &str)] = &[
        ("valid", Some(|_| {}), Verdict::Allow, "", "valid"),
        (
            "missing",
            None,
            Verdict::Block,
            "sandbox_metadata_missing",
            "missing",
        ),
        (
            "full_network",
            Some(|s| s.network_mode = "full".into()),
            Verdict::Block,
            "sandbox_network_mode_disallowed",
            "disallowed",
        ),
        (
            "writable",
            Some(|s| s.writable_paths = vec!["/etc".into()]),
            Verdict::Block,
            "sandbox_writable_path_disallowed",
            "disallowed",
        ),
        (
            "env",
            Some(|s| s.env_exposure_mode = "full".into()),
            Verdict::Block,
            "sandbox_env_exposure_mode_disallowed",
            "disallowed",
        ),
        (
            "timeout",
            Some(|s| s.timeout_seconds = 120),
            Verdict::Block,
            "sandbox_timeout_exceeded",
            "disallowed",
        ),
    ];
    for (name, mutate, verdict, reason, status) in cases {
        let mut i = base.clone();
        match mutate {
            Some(m) => m(i.context.sandbox.as_mut().expect("sandbox")),
            None => i.context.sandbox = None,
        }
        let e = eval(&p, &i);
        assert_eq!(e.verdict, *verdict, "{name}: {e:?}");
        if !reason.is_empty() {
            assert!(
                e.reason_codes.contains(&reason.to_string()),
                "{name}: {e:?}"
            );
        }
        let d = e.sandbox.expect("decision");
        assert_eq!(d.status, *status, "{name}");
        if *status == "valid" {
            assert_eq!(d.evidence_digest, "a".repeat(64));
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

    /// Arbitrary (already-normalised-shaped) intents never panic any rich policy, and the
    /// output lists stay sorted and deduplicated.
    #[test]
    fn arbitrary_intents_never_panic(
        tool in "[a-z.]{0,12}",
        kind in proptest::sample::select(vec!["path", "url", "host", "other", ""]),
        value in "\\PC{0,40}",
        domain in "[a-z.*?\\[\\]-]{0,20}",
        class in proptest::sample::select(vec!["fs.read", "fs.write", "fs.delete", "proc.exec", "net.http", "net.dns", "other", ""]),
        destructive in proptest::bool::ANY,
        source in proptest::sample::select(vec!["user", "external", "tool_output", "system"]),
        risk in proptest::sample::select(vec!["low", "high", "critical", ""]),
        phase in proptest::sample::select(vec!["plan", "apply", "", "other"]),
        env in "[a-z]{0,5}",
    ) {
        let rich = policy(
            "default_verdict: allow\nfail_closed: {enabled: true, risk_classes: [critical], required_fields: [targets, endpoint_class]}\nrules:\n  - name: ep\n    priority: 1\n    effect: allow\n    endpoint: {path_allowlist: ['/tmp/**', '/a/*/[bc]?'], path_denylist: ['/etc/**'], domain_allowlist: ['*.ok', 'a?b.[x-z]'], domain_denylist: [bad.example], egress_classes: [net.http], destructive_action: require_approval}\n    dataflow: {enabled: true, action: block}\n    freeze_window: {timezone: Europe/Paris, environments: [prod], windows: [{start: '2026-01-01T00:00:00', end: '2027-01-01T00:00:00'}]}\n    sandbox: {allowed_network_modes: [disabled]}\n    require_declared_agent: true\n    block_standing_credentials: true\n    max_context_age_seconds: 10\n",
        );
        let i = intent(json!({
            "tool_name": tool,
            "targets": [{"kind": kind, "value": value, "endpoint_class": class, "endpoint_domain": domain, "destructive": destructive}],
            "arg_provenance": [{"arg_path": "$.x", "source": source}],
            "context": {"identity": "a", "workspace": value, "risk_class": risk, "phase": phase, "environment": env}
        }));
        let e = eval(&rich, &i);
        let mut r = e.reason_codes.clone();
        r.sort();
        r.dedup();
        proptest::prop_assert_eq!(&r, &e.reason_codes);
        proptest::prop_assert!(!e.reason_codes.is_empty());
        proptest::prop_assert_eq!(e.min_approvals > 0, e.verdict == Verdict::RequireApproval);
    }
}

#[test]
fn snapshot_cache_does_not_touch_the_file_within_the_recheck_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snap.json");
    std::fs::write(&path, br#"{"entries":[{"server_id":"a"}]}"#).expect("write");
    let cache = trust::SnapshotCache::new(&path, std::time::Duration::from_secs(3600));
    let SnapshotState::Loaded(first) = cache.get() else {
        panic!("loaded")
    };
    // Even a deleted file is not noticed until the interval elapses: no I/O per call.
    std::fs::remove_file(&path).expect("remove");
    let SnapshotState::Loaded(again) = cache.get() else {
        panic!("still cached")
    };
    assert!(Arc::ptr_eq(&first, &again));
    let p = policy("mcp_trust: {snapshot: /nonexistent/snap.json}\n");
    let c = trust::SnapshotCache::for_policy(&p, std::time::Duration::ZERO).expect("enabled");
    assert!(matches!(c.get(), SnapshotState::Unavailable(_)));
    assert!(trust::SnapshotCache::for_policy(&policy(""), std::time::Duration::ZERO).is_none());
}

#[test]
fn tool_index_first_match_equals_linear_scan() {
    // Rules with and without tool_names, duplicate names, shared names across priorities.
    let mut src = String::from(
        "schema_id: gait.gate.policy\nschema_version: 1.0.0\ndefault_verdict: block\nrules:\n",
    );
    let tools = ["tool.read", "tool.write", "tool.delete", "tool.x"];
    for i in 0..24usize {
        let sel = match i % 4 {
            0 => format!("tool_names: [{}, {}]", tools[i % 4], tools[(i / 4) % 4]),
            1 => "risk_classes: [high]".to_string(),
            2 => format!(
                "tool_names: [{}]\n      risk_classes: [low]",
                tools[(i / 3) % 4]
            ),
            _ => "target_kinds: [path]".to_string(),
        };
        src.push_str(&format!(
            "  - name: r{i}\n    priority: {}\n    effect: allow\n    match:\n      {sel}\n",
            i % 7
        ));
    }
    let p = policy(&src);
    for tool in tools.iter().chain(["tool.none"].iter()) {
        for risk in ["low", "high"] {
            for targets in [json!([]), json!([{"kind": "path", "value": "/a"}])] {
                let req = intent(json!({"tool_name": tool, "args": {}, "targets": targets,
                    "context": {"identity": "i", "workspace": "/w", "risk_class": risk}}));
                let n = crate::intent::normalize(&req).expect("normalize");
                let v = eval::View::of(n.request());
                let linear = p
                    .rules()
                    .iter()
                    .position(|r| eval::rule_matches(&r.matcher, &v));
                assert_eq!(eval::first_match(&p, &v), linear, "{tool} {risk}");
            }
        }
    }
}
