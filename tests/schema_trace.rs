//! TraceRecord schema conformance: what gait writes validates against
//! `schemas/gate/trace_record.schema.json`, every valid trace fixture is read and every invalid
//! one rejected (by the schema and by gait's reader alike).

mod support;

use gait::intent::{GoTime, SkillProvenance};
use gait::trace::{
    DelegationRef, KillSwitchDecision, McpTrustDecision, Relationship, RelationshipInput, Signer,
    StepVerdict, TraceRecord,
};
use serde_json::Value;
use support::{compat, schema_errors, schema_validator};

fn full_record() -> TraceRecord {
    let policy_digest = "d".repeat(64);
    let trace_id = gait::trace::trace_id(&policy_digest, &"e".repeat(64), "require_approval");
    let mut r = TraceRecord {
        schema_id: "gait.gate.trace".into(),
        schema_version: "1.0.0".into(),
        created_at: GoTime::epoch_1980(),
        producer_version: gait::VERSION.into(),
        trace_id: trace_id.clone(),
        correlation_id: "0".repeat(24),
        tool_name: "tool.write".into(),
        args_digest: "f".repeat(64),
        intent_digest: "e".repeat(64),
        policy_digest: policy_digest.clone(),
        run_id: "run_demo".into(),
        policy_id: "gait.gate.policy".into(),
        policy_version: "1.0.0".into(),
        matched_rule_ids: vec!["rule-a".into()],
        verdict: "require_approval".into(),
        script: true,
        step_count: 1,
        step_verdicts: vec![StepVerdict {
            index: 0,
            tool_name: "tool.write".into(),
            verdict: "require_approval".into(),
            matched_rule: "rule-a".into(),
            ..Default::default()
        }],
        violations: vec!["destructive_operation".into()],
        latency_ms: 0.25,
        delegation_ref: Some(DelegationRef {
            requester_identity: "agent".into(),
            delegation_depth: 1,
            chain_digest: "a".repeat(64),
            ..Default::default()
        }),
        kill_switch: Some(KillSwitchDecision {
            status: "inactive".into(),
            ..Default::default()
        }),
        mcp_trust: Some(McpTrustDecision {
            server_id: "github".into(),
            status: "trusted".into(),
            score: 0.95,
            reason_codes: vec!["mcp_trust_verified".into()],
            ..Default::default()
        }),
        skill_provenance: Some(SkillProvenance {
            skill_name: "s".into(),
            source: "registry".into(),
            publisher: "acme".into(),
            ..Default::default()
        }),
        ..TraceRecord::default()
    };
    r.relationship = Some(Relationship::for_decision(&RelationshipInput {
        session_id: "sess-1",
        identity: "agent",
        tool_name: "tool.write",
        trace_id: &trace_id,
        policy_id: "gait.gate.policy",
        policy_version: "1.0.0",
        policy_digest: &policy_digest,
        matched_rule_ids: &["rule-a".to_string()],
        delegation_hops: &[("agent".to_string(), "helper".to_string())],
        delegation_requester: "agent",
    }));
    r.stamp_observed(chrono::Utc::now());
    Signer::generate().sign_record(&mut r).unwrap();
    r
}

#[test]
fn records_gait_writes_validate() {
    let v = schema_validator("trace_record");
    let rec = full_record();
    let value = serde_json::to_value(&rec).unwrap();
    assert_eq!(schema_errors(&v, &value), "");
    // Minimal record (no optional objects) validates too.
    let mut min = TraceRecord {
        relationship: None,
        mcp_trust: None,
        kill_switch: None,
        delegation_ref: None,
        skill_provenance: None,
        step_verdicts: vec![],
        ..rec
    };
    Signer::generate().sign_record(&mut min).unwrap();
    assert_eq!(schema_errors(&v, &serde_json::to_value(&min).unwrap()), "");
}

fn fixtures(prefix: &str) -> Vec<(String, Value)> {
    let dir = compat().join("testdata");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".json")
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (name, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn trace_fixtures_read_or_rejected() {
    let v = schema_validator("trace_record");
    let all = fixtures("gate_trace_record_");
    assert!(all.len() >= 6, "fixtures: {}", all.len());
    for (name, value) in all {
        let schema_ok = v.is_valid(&value);
        let gait_ok = TraceRecord::from_value(value.clone());
        if name.ends_with("_valid.json") && !name.ends_with("_invalid.json") {
            assert!(schema_ok, "{name}: {}", schema_errors(&v, &value));
            let rec = gait_ok.unwrap_or_else(|e| panic!("{name}: {e}"));
            // Round trip: what gait re-serializes still validates.
            let back = serde_json::to_value(&rec).unwrap();
            assert_eq!(schema_errors(&v, &back), "", "{name} re-serialized");
        } else {
            assert!(!schema_ok, "{name} should be schema-invalid");
            assert!(gait_ok.is_err(), "{name} should be rejected by gait");
        }
    }
    // The authorization bundle example trace is a Go-written trace: it reads.
    let example = compat().join("policies/examples/authorization_bundle/trace.json");
    let bytes = std::fs::read(example).unwrap();
    let rec = TraceRecord::parse(&bytes);
    // Its digests are placeholders ("aaa…"), which are valid hex.
    assert!(rec.is_ok(), "{rec:?}");
}
