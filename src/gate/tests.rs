//! Unit tests of the gate pipeline with real policies, real payloads and real signatures.

use super::*;
use serde_json::json;

const COMPAT: &str = "/work/shared/compat";

fn engine_with(yaml: &str, cfg: EngineConfig) -> Engine {
    let policy = Policy::from_yaml_str(yaml).expect("policy");
    Engine::new(Arc::new(policy), cfg).expect("engine")
}

fn engine(yaml: &str) -> Engine {
    engine_with(yaml, EngineConfig::default())
}

fn openai_search() -> Value {
    json!({"type":"function","function":{"name":"tool.search","arguments":"{\"query\":\"gait\"}"}})
}

#[test]
fn golden_openai_allow_decision() {
    // gate.md §4.6 derived values.
    let e = engine("default_verdict: allow\n");
    let d = e
        .evaluate_call(Adapter::OpenAi, &openai_search(), &CallOptions::default())
        .unwrap();
    let o = &d.output;
    assert!(o.ok && !o.executed);
    assert_eq!(o.adapter, "openai");
    assert_eq!(o.verdict, Verdict::Allow);
    assert_eq!(o.reason_codes, ["default_allow"]);
    assert_eq!(
        o.policy_digest,
        "65819d9cf07c7619aa8aaf2bd4e8d6f8e3f86b139b49a68c535fd14d77a5009f"
    );
    assert_eq!(
        o.intent_digest,
        "3619e812b9e7192ccd9f84fb51fc067284b1b015f5a8ac37b3748f77302f8841"
    );
    assert_eq!(o.trace_id, "c4c9323f1b04440d3b862edb");
    assert_eq!(o.run_id, "run_mcp_3619e812b9e7");
    assert_eq!(o.phase, "apply");
    assert_eq!(o.policy_id, "gait.gate.policy");
    assert_eq!(o.policy_version, "1.0.0");
    assert_eq!(o.warnings[0], DEV_KEY_WARNING);
    assert!(o.warnings[1].starts_with("standard profile applied fallback intent context"));
    assert_eq!(o.exit_code(), 0);

    let t = &d.trace;
    assert_eq!(
        t.args_digest,
        "84bffb47539dfd5b66817c332232a11a021c082d68e191a264915d7a5156cfa5"
    );
    assert_eq!(t.created_at.to_go_string(), "1980-01-01T00:00:00Z");
    assert_eq!(t.trace_id, o.trace_id);
    assert_eq!(
        t.event_id,
        trace::event_id(&t.trace_id, &t.observed_at.to_go_string())
    );
    assert!(t.matched_rule_ids.is_empty());
    let v = serde_json::to_value(t).unwrap();
    trace::verify_value(&v, &e.signer().verifying_key()).unwrap();

    // Output key order is Go's struct order (serve writes it unsorted).
    let text = serde_json::to_string(o).unwrap();
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(pos("ok") < pos("executed") && pos("executed") < pos("adapter"));
    assert!(pos("verdict") < pos("reason_codes") && pos("trace_id") < pos("warnings"));
    assert!(pos("warnings") < pos("relationship"));

    // Exports: created_at is the decision's 1980 time.
    let x = d.export();
    assert!(
        x.log_line()
            .starts_with("{\"created_at\":\"1980-01-01T00:00:00Z\"")
    );
    assert!(
        x.otel_line()
            .contains("\"time_unix_nano\":315532800000000000")
    );
}

#[test]
fn unsigned_mode_skips_the_signature_and_dev_warning() {
    let e = engine("default_verdict: allow\n");
    let d = e
        .evaluate_call(
            Adapter::OpenAi,
            &openai_search(),
            &CallOptions {
                sign: false,
                ..CallOptions::default()
            },
        )
        .unwrap();
    assert!(d.trace.signature.is_none());
    assert!(!d.output.warnings.iter().any(|w| w == DEV_KEY_WARNING));
}

#[test]
fn block_rule_exits_3_and_records_violations() {
    let e = engine(
        "default_verdict: allow\nrules:\n  - name: no-delete\n    priority: 1\n    effect: block\n    match: {tool_names: [tool.delete]}\n    reason_codes: [destructive_blocked]\n    violations: [destructive_action]\n",
    );
    let call = json!({"name":"tool.delete","args":{"path":"/tmp/x"},
        "context":{"identity":"alice","workspace":"/repo","risk_class":"high","session_id":"s1"}});
    let d = e
        .evaluate_call(Adapter::Mcp, &call, &CallOptions::default())
        .unwrap();
    assert_eq!(d.output.verdict, Verdict::Block);
    assert_eq!(d.output.exit_code(), 3);
    assert_eq!(d.output.reason_codes, ["destructive_blocked"]);
    assert_eq!(d.trace.violations, ["destructive_action"]);
    assert_eq!(d.output.session_id, "s1");
    // No fallback-context warning when identity, workspace and session id are present.
    assert_eq!(d.output.warnings, [DEV_KEY_WARNING]);
    let rel = d.trace.relationship.as_ref().unwrap();
    assert_eq!(rel.parent_ref, Some(trace::EntityRef::new("session", "s1")));
}

fn job_call(job: &str) -> Value {
    json!({"name":"tool.write","args":{"path":"/tmp/out.txt"},
        "targets":[{"kind":"path","value":"/tmp/out.txt","operation":"write"}],
        "context":{"identity":"alice","workspace":"/repo","risk_class":"high","session_id":"s1","job_id":job}})
}

#[test]
fn emergency_stop_preempts_and_missing_state_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(jobs.join("job_stop")).unwrap();
    std::fs::write(
        jobs.join("job_stop/state.json"),
        r#"{"schema_id":"gait.job.runtime","job_id":"job_stop","status":"emergency_stopped"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(jobs.join("job_run")).unwrap();
    std::fs::write(
        jobs.join("job_run/state.json"),
        r#"{"job_id":"job_run","status":"running"}"#,
    )
    .unwrap();
    let e = engine_with(
        "default_verdict: allow\n",
        EngineConfig {
            job_root: Some(jobs.clone()),
            ..EngineConfig::default()
        },
    );
    let opts = CallOptions::default();
    let stopped = e
        .evaluate_call(Adapter::Mcp, &job_call("job_stop"), &opts)
        .unwrap();
    assert_eq!(stopped.output.verdict, Verdict::Block);
    assert!(
        stopped
            .output
            .reason_codes
            .contains(&"emergency_stop_preempted".to_string())
    );
    assert_eq!(stopped.output.violations, ["emergency_stop_active"]);
    assert_eq!(stopped.output.job_id, "job_stop");

    let running = e
        .evaluate_call(Adapter::Mcp, &job_call("job_run"), &opts)
        .unwrap();
    assert_eq!(running.output.verdict, Verdict::Allow);

    for missing in ["job_missing", "../jobs/job_stop", ".."] {
        let d = e
            .evaluate_call(Adapter::Mcp, &job_call(missing), &opts)
            .unwrap();
        assert_eq!(d.output.verdict, Verdict::Block, "{missing}");
        assert!(
            d.output
                .reason_codes
                .contains(&"emergency_stop_state_unavailable".to_string())
        );
        assert!(
            d.output
                .warnings
                .iter()
                .any(|w| w.starts_with("job_status_unavailable="))
        );
    }
}

#[test]
fn unreadable_kill_switch_blocks_high_risk() {
    let e = engine_with(
        "default_verdict: allow\n",
        EngineConfig {
            kill_switch_state: Some(PathBuf::from("/nonexistent/kill_switch.json")),
            ..EngineConfig::default()
        },
    );
    let d = e
        .evaluate_call(Adapter::OpenAi, &openai_search(), &CallOptions::default())
        .unwrap();
    assert_eq!(d.output.verdict, Verdict::Block);
    assert_eq!(d.output.reason_codes, ["kill_switch_state_unavailable"]);
}

#[test]
fn profile_and_key_rules() {
    let policy = Arc::new(Policy::from_yaml_str("default_verdict: block\n").unwrap());
    let err = Engine::new(
        policy.clone(),
        EngineConfig {
            profile: Profile::OssProd,
            ..EngineConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "oss-prod profile requires --key-mode prod");
    assert_eq!(err.category(), Category::InvalidInput);

    let signer = Signer::generate();
    let allow = Arc::new(Policy::from_yaml_str("default_verdict: allow\n").unwrap());
    let err = Engine::with_signer(
        allow,
        EngineConfig {
            profile: Profile::OssProd,
            ..EngineConfig::default()
        },
        signer.clone(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("oss-prod profile rejects policy default_verdict=allow")
    );

    // oss-prod requires identity, workspace and session_id in the call.
    let e = Engine::with_signer(
        policy,
        EngineConfig {
            profile: Profile::OssProd,
            ..EngineConfig::default()
        },
        signer,
    )
    .unwrap();
    let err = e
        .evaluate_call(Adapter::OpenAi, &openai_search(), &CallOptions::default())
        .unwrap_err();
    assert_eq!(err.category(), Category::InvalidInput);
}

#[test]
fn bad_payloads_are_input_errors() {
    let e = engine("default_verdict: allow\n");
    let opts = CallOptions::default();
    let secret = json!({"name":"tool.call","args":{"api_key":"sk-abcdefghijklmnop1234"}});
    let err = e.evaluate_call(Adapter::Mcp, &secret, &opts).unwrap_err();
    assert_eq!(err.category(), Category::InvalidInput);
    assert!(!err.to_string().contains("sk-abcdef"), "{err}");
    for bad in [&b"{"[..], b"[1,2]", b"\xff\xfe", b"null"] {
        let err = e.evaluate_call_slice(Adapter::Mcp, bad, &opts).unwrap_err();
        assert_eq!(err.category(), Category::InvalidInput, "{err}");
    }
    let deep = "[".repeat(50_000);
    assert!(
        e.evaluate_call_slice(Adapter::OpenAi, deep.as_bytes(), &opts)
            .is_err()
    );
    let env = json!({"name":"tool.x","context":{"context_envelope_path":"/tmp/env.json"}});
    assert!(e.evaluate_call(Adapter::Mcp, &env, &opts).is_err());
    assert!("weird".parse::<Adapter>().is_err());
}

#[test]
fn run_id_precedence() {
    let e = engine("default_verdict: allow\n");
    let call = json!({"name":"tool.search","context":{"run_id":"ctx_run"}});
    let d = e
        .evaluate_call(Adapter::Mcp, &call, &CallOptions::default())
        .unwrap();
    assert_eq!(d.output.run_id, "ctx_run");
    assert!(
        d.trace.run_id.is_empty(),
        "context.run_id is not copied into the intent"
    );
    let d = e
        .evaluate_call(
            Adapter::Mcp,
            &call,
            &CallOptions {
                run_id: Some("flag_run".into()),
                ..CallOptions::default()
            },
        )
        .unwrap();
    assert_eq!(d.output.run_id, "flag_run");
}

fn compat_intent(rel: &str) -> IntentRequest {
    let text = std::fs::read_to_string(format!("{COMPAT}/{rel}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn gate_eval_endpoint_block_matches_the_documented_result() {
    let policy = Policy::load(Path::new(&format!(
        "{COMPAT}/policies/examples/endpoint/block_denied_endpoints.yaml"
    )))
    .unwrap();
    let e = Engine::new(Arc::new(policy), EngineConfig::default()).unwrap();
    let d = e
        .evaluate_intent(
            &compat_intent("policies/examples/endpoint/fixtures/intent_block.json"),
            &IntentOptions::default(),
        )
        .unwrap();
    // gate.md §5.1 example.
    assert_eq!(d.result.verdict, Verdict::Block);
    assert_eq!(
        d.result.reason_codes,
        [
            "endpoint_path_denied",
            "endpoint_policy_violation",
            "matched_rule_endpoint_deny"
        ]
    );
    assert_eq!(
        d.result.violations,
        ["endpoint_path_denied", "endpoint_policy_violation"]
    );
    assert_eq!(d.result.created_at.to_go_string(), "2026-02-09T00:00:00Z");
    assert_eq!(d.output.matched_rule, "endpoint-deny");
    assert!(d.trace.latency_ms > 0.0);
    trace::verify_value(
        &serde_json::to_value(&d.trace).unwrap(),
        &e.signer().verifying_key(),
    )
    .unwrap();
}

#[test]
fn gate_eval_require_approval_reports_the_missing_token() {
    let e = engine("default_verdict: require_approval\n");
    let d = e
        .evaluate_intent(
            &compat_intent("policies/examples/endpoint/fixtures/intent_block.json"),
            &IntentOptions::default(),
        )
        .unwrap();
    assert_eq!(d.output.verdict, Verdict::RequireApproval);
    assert!(
        d.output
            .reason_codes
            .contains(&"approval_token_missing".to_string())
    );
    assert_eq!(d.output.required_approvals, 1);
}

#[test]
fn gate_eval_intent_errors() {
    let e = engine("default_verdict: allow\n");
    let mut bad = compat_intent("policies/examples/endpoint/fixtures/intent_block.json");
    bad.tool_name = String::new();
    let err = e
        .evaluate_intent(&bad, &IntentOptions::default())
        .unwrap_err();
    assert_eq!(err.category(), Category::InvalidInput);

    // With fail_closed applying to the raw risk class, an invalid intent blocks instead.
    let fc = engine("default_verdict: allow\nfail_closed: {enabled: true, risk_classes: [high]}\n");
    let d = fc.evaluate_intent(&bad, &IntentOptions::default()).unwrap();
    assert_eq!(d.output.verdict, Verdict::Block);
    assert!(
        d.output
            .reason_codes
            .contains(&"fail_closed_intent_invalid".to_string())
    );
}

/// Property-based fuzzing of the policy loader, the adapters and the whole pipeline (the
/// stable-toolchain counterpart of the `fuzz/` cargo-fuzz targets). Case counts are fixed.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "name",
        "args",
        "targets",
        "target",
        "context",
        "kind",
        "value",
        "operation",
        "identity",
        "workspace",
        "risk_class",
        "session_id",
        "job_id",
        "phase",
        "function",
        "arguments",
        "type",
        "input",
        "tool",
        "tool_input",
        "tool_name",
        "server",
        "server_id",
        "script",
        "steps",
        "delegation",
        "chain",
        "requester_identity",
        "annotations",
        "auth_mode",
        "oauth_evidence",
        "auth_context",
        "created_at",
        "arg_provenance",
        "source",
        "arg_path",
        "endpoint_class",
        "destructive_hint",
        "readOnlyHint",
        "hook_event_name",
        "command",
        "path",
        "url",
        "api_key",
        "token",
    ];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(KEYS).prop_map(str::to_string),
            1 => "[a-zA-Z_]{0,6}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "(tool\\.[a-z]{1,6}|[a-z./:_ -]{0,12}|sk-[a-z0-9]{20}|high|low|apply|plan|path|host|url|mcp)"
                .prop_map(Value::String),
            "\\PC{0,10}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..7)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Mostly call-shaped objects (so decoding gets past the first check), some anything.
    fn payload() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => (json_value(), "(tool\\.[a-z]{1,5}|Bash|Read|Write|[a-z ]{0,6})").prop_map(|(v, name)| {
                let mut obj = match v {
                    Value::Object(m) => m,
                    other => [("args".to_string(), other)].into_iter().collect(),
                };
                obj.entry("name").or_insert_with(|| Value::String(name.clone()));
                obj.entry("tool_name").or_insert_with(|| Value::String(name.clone()));
                obj.entry("tool").or_insert_with(|| Value::String(name));
                Value::Object(obj)
            }),
            1 => json_value(),
        ]
    }

    const ADAPTERS: [Adapter; 5] = [
        Adapter::Mcp,
        Adapter::OpenAi,
        Adapter::Anthropic,
        Adapter::Langchain,
        Adapter::ClaudeCode,
    ];

    const BASE_POLICY: &str = "schema_id: gait.gate.policy\nschema_version: 1.0.0\ndefault_verdict: block\nfail_closed: {enabled: true, risk_classes: [critical], required_fields: [targets, arg_provenance]}\nrules:\n  - {name: block-delete, priority: 10, effect: block, match: {tool_names: [tool.delete]}, reason_codes: [destructive_tool_blocked]}\n  - name: guard\n    priority: 18\n    effect: require_approval\n    match: {risk_classes: [high, critical], tool_annotations: {destructiveHint: true}}\n    endpoint: {enabled: true, path_denylist: [/etc/**], destructive_action: require_approval}\n    destructive_budget: {requests: 3, window: hour, scope: identity}\n  - {name: allow-read, priority: 30, effect: allow, match: {tool_names: [tool.read], risk_classes: [low]}}\nmcp_trust: {snapshot: ./none.json, max_age: 24h}\n";

    fn mutated_policy() -> impl Strategy<Value = String> {
        let edit = (
            0usize..BASE_POLICY.len(),
            0usize..12,
            "(\\PC|[:\\[\\]{}\\-,\\n #&*!|>'\"]){0,6}",
        );
        proptest::collection::vec(edit, 0..6).prop_map(|edits| {
            let mut s = BASE_POLICY.to_string();
            for (pos, del, ins) in edits {
                let mut at = pos.min(s.len());
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + del).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.replace_range(at..end, &ins);
            }
            s
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn policy_loader_never_panics(text in prop_oneof![mutated_policy(), "\\PC{0,200}"]) {
            if let Ok(p) = Policy::from_yaml_str(&text) {
                prop_assert_eq!(p.digest().len(), 64);
            }
        }

        #[test]
        fn adapters_and_pipeline_never_panic(v in payload(), pick in 0usize..5) {
            let e = pipeline_engine();
            let opts = CallOptions { sign: false, ..CallOptions::default() };
            let adapter = ADAPTERS[pick];
            // Errors are fine; panics and malformed decisions are not.
            if let Ok(d) = e.evaluate_call(adapter, &v, &opts) {
                prop_assert_eq!(d.output.trace_id.len(), 24);
                prop_assert_eq!(d.trace.event_id.len(), 24);
                let back = trace::TraceRecord::from_value(serde_json::to_value(&d.trace).unwrap());
                prop_assert!(back.is_ok(), "reader rejects a written trace: {:?}", back);
            }
            let bytes = serde_json::to_vec(&v).unwrap();
            let _ = e.evaluate_call_slice(adapter, &bytes, &opts);
        }

        #[test]
        fn arbitrary_bytes_are_rejected_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256), pick in 0usize..5) {
            let e = pipeline_engine();
            let opts = CallOptions { sign: false, ..CallOptions::default() };
            if let Err(err) = e.evaluate_call_slice(ADAPTERS[pick], &bytes, &opts) {
                prop_assert_eq!(err.category(), Category::InvalidInput);
                prop_assert!(!err.to_string().contains('\n'));
            }
        }
    }

    fn pipeline_engine() -> &'static Engine {
        static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
        ENGINE.get_or_init(|| {
            engine("default_verdict: block\nrules:\n  - {name: allow-read, priority: 1, effect: allow, match: {tool_names: [tool.read]}}\n  - {name: approve-exec, priority: 2, effect: require_approval, match: {target_kinds: [other]}, endpoint: {enabled: true, path_denylist: [/etc/**]}}\n")
        })
    }
}
