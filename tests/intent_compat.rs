//! Compatibility tests for intents: the gate.md §4.6 golden digests, every intent fixture under
//! /work/shared/compat, and JSON-schema validation of the intents gait writes.

use gait::Profile;
use gait::intent::{self, Adapter, IntentRequest};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const COMPAT: &str = "/work/shared/compat";

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn schema() -> jsonschema::Validator {
    let schema = read_json(&Path::new(COMPAT).join("schemas/gate/intent_request.schema.json"));
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate: {errors:?}\n{value}"
    );
}

/// core/gate/testdata/intent_equivalent_{a,b}.json (Go fixtures, reproduced as data).
fn equivalent_a() -> Value {
    json!({
      "schema_id": "gait.gate.intent_request", "schema_version": "1.0.0",
      "created_at": "2026-02-05T00:00:00Z", "producer_version": "0.0.0-dev",
      "tool_name": "tool.write",
      "args": {"path": " /tmp/out.txt ", "payload": {"tags": ["alpha", "beta"], "x": 1}},
      "targets": [
        {"kind": "path", "value": " /tmp/out.txt ", "operation": "write"},
        {"kind": "host", "value": "api.internal"}
      ],
      "arg_provenance": [
        {"arg_path": "args.payload", "source": "tool_output", "source_ref": "trace_2"},
        {"arg_path": "args.path", "source": "user"}
      ],
      "context": {"identity": "alice", "workspace": "/repo/work", "risk_class": "HIGH", "session_id": "s1"}
    })
}

fn equivalent_b() -> Value {
    json!({
      "schema_id": "gait.gate.intent_request", "schema_version": "1.0.0",
      "created_at": "2026-02-05T12:00:00Z", "producer_version": "0.1.0",
      "tool_name": "  tool.write  ",
      "args": {"payload": {"x": 1, "tags": ["alpha", "beta"]}, "path": "/tmp/out.txt"},
      "targets": [
        {"kind": "host", "value": " api.internal "},
        {"kind": "path", "value": "/tmp/out.txt", "operation": "WRITE"},
        {"kind": "path", "value": "/tmp/out.txt", "operation": "write"}
      ],
      "arg_provenance": [
        {"arg_path": "args.path", "source": " user "},
        {"arg_path": "args.payload", "source": "TOOL_OUTPUT", "source_ref": "trace_2"}
      ],
      "context": {"identity": " alice ", "workspace": "/repo/work", "risk_class": " high ", "session_id": "s1"}
    })
}

#[test]
fn equivalent_intents_match_golden_digests() {
    const INTENT: &str = "2bae77d908ce5435fba6a8a4417be8718571f5d68bd89c67d548e791cc3771ca";
    const ARGS: &str = "28ff2d9b90ec9335c60f2efeaeecd0720ae18fa2774dd93b5560d02a9315ffc3";
    for fixture in [equivalent_a(), equivalent_b()] {
        let req: IntentRequest = serde_json::from_value(fixture).unwrap();
        let n = intent::normalize(&req).unwrap();
        assert_eq!(n.intent_digest(), INTENT);
        assert_eq!(n.args_digest(), ARGS);
        assert_eq!(intent::intent_digest(&req).unwrap(), INTENT);
        assert_eq!(intent::args_digest_of(&req.args).unwrap(), ARGS);
        assert_eq!(n.targets().len(), 2);
    }
    // A real difference changes the digest.
    let mut other = equivalent_a();
    other["args"]["payload"]["x"] = json!(2);
    let req: IntentRequest = serde_json::from_value(other).unwrap();
    assert_ne!(intent::normalize(&req).unwrap().intent_digest(), INTENT);
}

#[test]
fn openai_example_end_to_end() {
    let call = intent::adapters::decode_call_slice(
        Adapter::OpenAi,
        br#"{"type":"function","function":{"name":"tool.search","arguments":"{\"query\":\"gait\"}"}}"#,
    )
    .unwrap();
    let (req, _) = intent::intent_from_call(&call, Profile::Standard).unwrap();
    let n = intent::normalize(&req).unwrap();
    assert_eq!(
        n.intent_digest(),
        "3619e812b9e7192ccd9f84fb51fc067284b1b015f5a8ac37b3748f77302f8841"
    );
    assert_eq!(
        n.args_digest(),
        "84bffb47539dfd5b66817c332232a11a021c082d68e191a264915d7a5156cfa5"
    );
    assert_eq!(
        intent::default_run_id(n.intent_digest()),
        "run_mcp_3619e812b9e7"
    );
    assert_valid(
        &schema(),
        &serde_json::to_value(n.request()).unwrap(),
        "openai intent",
    );
}

fn intent_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("intent"))
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(COMPAT).join("policies"), &mut out);
    out.sort();
    out
}

#[test]
fn every_policy_example_intent_normalises_and_validates() {
    let files = intent_files();
    assert!(
        files.len() >= 20,
        "expected the compat intents, found {}",
        files.len()
    );
    let validator = schema();
    for path in files {
        let raw = read_json(&path);
        assert_valid(&validator, &raw, &path.display().to_string());
        let req: IntentRequest =
            serde_json::from_value(raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let n = intent::normalize(&req).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(n.intent_digest().len(), 64);
        assert_eq!(n.context().phase, "apply");
        assert!(
            n.targets()
                .iter()
                .all(|t| !t.endpoint_class.is_empty() && !t.discovery_method.is_empty())
        );
        // What gait writes validates too.
        let written = serde_json::to_value(n.request()).unwrap();
        assert_valid(
            &validator,
            &written,
            &format!("normalised {}", path.display()),
        );
        // Normalisation is idempotent.
        let again = intent::normalize(n.request()).unwrap();
        assert_eq!(
            again.intent_digest(),
            n.intent_digest(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn specific_example_expectations() {
    let load = |rel: &str| -> IntentRequest {
        serde_json::from_value(read_json(
            &Path::new(COMPAT).join("policies/examples").join(rel),
        ))
        .unwrap()
    };
    let n = intent::normalize(&load("intents/intent_delete.json")).unwrap();
    assert_eq!(n.targets()[0].endpoint_class, "fs.delete");
    assert!(n.targets()[0].destructive);
    let n = intent::normalize(&load("intents/intent_read.json")).unwrap();
    assert_eq!(n.targets()[0].endpoint_class, "fs.read");
    let n = intent::normalize(&load("trust_graduation/script_write_intent.json")).unwrap();
    assert_eq!(n.tool_name(), "script");
    assert_eq!(n.targets()[0].endpoint_class, "fs.write");
    assert!(n.script_hash().is_some());
    let n = intent::normalize(&load("sandbox/intent_proc_exec_valid.json")).unwrap();
    assert!(n.has_destructive_target());
    assert_eq!(
        n.context().sandbox.as_ref().unwrap().read_only_roots,
        vec!["/repo", "/usr/share"]
    );
    // "invalid" here means the delegation token does not verify: the intent itself is fine.
    assert!(intent::normalize(&load("intents/intent_delegated_egress_invalid.json")).is_ok());
}

#[test]
fn gate_intent_request_fixtures() {
    let validator = schema();
    let dir = Path::new(COMPAT).join("testdata");
    for name in [
        "gate_intent_request_valid.json",
        "gate_intent_request_endpoint_valid.json",
        "gate_intent_request_enterprise_context_valid.json",
        "gate_intent_request_relationship_valid.json",
        "gate_intent_request_skill_valid.json",
    ] {
        let raw = read_json(&dir.join(name));
        assert_valid(&validator, &raw, name);
        let req: IntentRequest = serde_json::from_value(raw).unwrap();
        let n = intent::normalize(&req).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = serde_json::to_value(n.request()).unwrap();
        assert_valid(&validator, &written, &format!("normalised {name}"));
    }
    let relationship = read_json(&dir.join("gate_intent_request_relationship_valid.json"));
    let req: IntentRequest = serde_json::from_value(relationship.clone()).unwrap();
    let n = intent::normalize(&req).unwrap();
    assert_eq!(
        n.request().relationship.as_ref(),
        relationship.get("relationship")
    );

    // Each invalid fixture: schema-invalid, plus what gait's reader/normaliser does with it.
    let invalid = |name: &str| {
        let raw = read_json(&dir.join(name));
        assert!(!validator.is_valid(&raw), "{name} should be schema-invalid");
        raw
    };
    // args_digest "bad": schema-only; normalisation ignores and recomputes it (as Go does).
    let req: IntentRequest =
        serde_json::from_value(invalid("gate_intent_request_invalid.json")).unwrap();
    let n = intent::normalize(&req).unwrap();
    assert_ne!(n.request().args_digest, "bad");
    assert_eq!(n.request().args_digest.len(), 64);
    // endpoint_class "fs.invalid": normalisation error.
    let req: IntentRequest =
        serde_json::from_value(invalid("gate_intent_request_endpoint_invalid.json")).unwrap();
    assert_eq!(
        intent::normalize(&req).unwrap_err().to_string(),
        "unsupported endpoint class: fs.invalid"
    );
    // skill digest "bad": normalisation error.
    let req: IntentRequest =
        serde_json::from_value(invalid("gate_intent_request_skill_invalid.json")).unwrap();
    assert_eq!(
        intent::normalize(&req).unwrap_err().to_string(),
        "invalid skill provenance digest: bad"
    );
    // credential_scopes containing 42: a decode (type) error, like Go's json.Unmarshal.
    let raw = invalid("gate_intent_request_enterprise_context_invalid.json");
    assert!(serde_json::from_value::<IntentRequest>(raw).is_err());
}

#[test]
fn adapter_intents_validate_against_schema() {
    let validator = schema();
    let payloads = [
        (
            Adapter::Mcp,
            json!({"name":"tool.read","args":{"resource":"issues"},
            "targets":[{"kind":"host","value":"api.github.com","operation":"read","discovery_method":"webmcp"}],
            "server":{"server_id":"github","server_name":"GitHub MCP"},
            "context":{"identity":"agent","workspace":"/repo","risk_class":"high","session_id":"sess-1"}}),
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
        (
            Adapter::Mcp,
            json!({"name":"t","delegation":{"requester_identity":"b","chain":[{"delegator_identity":"a","delegate_identity":"b"}]},
            "script":{"steps":[{"name":"tool.write","args":{"p":1},"targets":[{"kind":"path","value":"/o"}]}]}}),
        ),
    ];
    for (adapter, payload) in payloads {
        let call = intent::decode_call(adapter, &payload).unwrap();
        let (req, _) = intent::intent_from_call(&call, Profile::Standard).unwrap();
        let n = intent::normalize(&req).unwrap();
        assert_valid(
            &validator,
            &serde_json::to_value(n.request()).unwrap(),
            adapter.as_str(),
        );
    }
}
