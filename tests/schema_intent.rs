//! IntentRequest and GateResult schema conformance: every intent fixture is read or rejected
//! as the schema says, the normalised intents gait produces (from fixtures and from every
//! adapter) validate, and the GateResult of `gate eval` validates.

mod support;

use gait::gate::{Engine, EngineConfig, IntentOptions};
use gait::intent::IntentRequest;
use gait::intent::adapters::Adapter;
use gait::policy::Policy;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{compat, schema_errors, schema_validator};

/// How gait reads an intent file: decode, then normalise (`gate eval`'s path).
fn gait_reads(value: &Value) -> Result<IntentRequest, String> {
    let req: IntentRequest = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    gait::gate::check_intent_request(&req).map_err(|e| e.to_string())?;
    let norm = gait::intent::normalize(&req).map_err(|e| e.to_string())?;
    Ok(norm.request().clone())
}

#[test]
fn intent_fixtures_read_or_rejected() {
    let v = schema_validator("intent_request");
    let dir = compat().join("testdata");
    let mut seen = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gate_intent_request_") && n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        seen += 1;
        let value: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(&name)).unwrap()).unwrap();
        let read = gait_reads(&value);
        if name.ends_with("_invalid.json") {
            assert!(!v.is_valid(&value), "{name} should be schema-invalid");
            assert!(read.is_err(), "{name} should be rejected by gait");
        } else {
            assert_eq!(schema_errors(&v, &value), "", "{name}");
            let normalized = read.unwrap_or_else(|e| panic!("{name}: {e}"));
            let written = serde_json::to_value(&normalized).unwrap();
            assert_eq!(schema_errors(&v, &written), "", "{name} normalized");
        }
    }
    assert!(seen >= 9, "fixtures seen: {seen}");
}

#[test]
fn example_intents_normalize_to_valid_requests() {
    let v = schema_validator("intent_request");
    let root = compat().join("policies/examples");
    let mut files = Vec::new();
    for sub in [
        "intents",
        "endpoint/fixtures",
        "credentials",
        "sandbox",
        "kill_switch",
    ] {
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("intent")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10);
    let mut ok = 0;
    for p in files {
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        if let Ok(norm) = gait_reads(&value) {
            ok += 1;
            let written = serde_json::to_value(&norm).unwrap();
            assert_eq!(schema_errors(&v, &written), "", "{}", p.display());
        }
    }
    assert!(ok >= 8, "normalized {ok}");
}

#[test]
fn adapter_intents_and_gate_results_validate() {
    let intent_schema = schema_validator("intent_request");
    let payloads = [
        (
            Adapter::Mcp,
            json!({"name":"tool.read","args":{"resource":"issues"},
                "targets":[{"kind":"host","value":"api.github.com","operation":"read","discovery_method":"webmcp"}],
                "server":{"server_id":"github"},
                "context":{"identity":"agent","workspace":"/repo","risk_class":"high","session_id":"sess-1"}}),
        ),
        (
            Adapter::OpenAi,
            json!({"type":"function","function":{"name":"tool.search","arguments":"{\"query\":\"gait\"}"}}),
        ),
        (
            Adapter::Anthropic,
            json!({"type":"tool_use","name":"tool.fetch","input":{"url":"https://example.local"}}),
        ),
        (
            Adapter::Langchain,
            json!({"tool":"tool.search","tool_input":{"query":"gait"}}),
        ),
        (
            Adapter::ClaudeCode,
            json!({"session_id":"sess-claude-1","tool_name":"Bash","tool_input":{"command":"npm test"},"hook_event_name":"PreToolUse"}),
        ),
    ];
    for (adapter, payload) in payloads {
        let call = gait::intent::decode_call(adapter, &payload).unwrap();
        let (req, _) = gait::intent::intent_from_call(&call, gait::Profile::Standard).unwrap();
        let norm = gait::intent::normalize(&req).unwrap();
        let written = serde_json::to_value(norm.request()).unwrap();
        assert_eq!(schema_errors(&intent_schema, &written), "", "{adapter}");
    }

    let result_schema = schema_validator("gate_result");
    let policy =
        Policy::load(&compat().join("policies/examples/endpoint/block_denied_endpoints.yaml"))
            .unwrap();
    let e = Engine::new(Arc::new(policy), EngineConfig::default()).unwrap();
    for fixture in [
        "intent_block.json",
        "intent_allow.json",
        "intent_destructive.json",
    ] {
        let text = std::fs::read_to_string(
            compat()
                .join("policies/examples/endpoint/fixtures")
                .join(fixture),
        )
        .unwrap();
        let req: IntentRequest = serde_json::from_str(&text).unwrap();
        let d = e.evaluate_intent(&req, &IntentOptions::default()).unwrap();
        let written = serde_json::to_value(&d.result).unwrap();
        assert_eq!(schema_errors(&result_schema, &written), "", "{fixture}");
        assert!(written["reason_codes"].is_array() && written["violations"].is_array());
    }
    // The valid GateResult fixture validates; the invalid one does not.
    for (name, valid) in [
        ("gate_result_valid.json", true),
        ("gate_result_invalid.json", false),
    ] {
        let value: Value = serde_json::from_str(
            &std::fs::read_to_string(compat().join("testdata").join(name)).unwrap(),
        )
        .unwrap();
        assert_eq!(result_schema.is_valid(&value), valid, "{name}");
    }
}
