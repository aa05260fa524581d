use super::*;
use crate::intent::normalize;
use serde_json::json;

fn intent(adapter: Adapter, payload: Value) -> (crate::intent::NormalizedIntent, Vec<String>) {
    let call = decode_call(adapter, &payload).expect("decodes");
    let (req, warnings) = intent_from_call(&call, Profile::Standard).expect("intent");
    (normalize(&req).expect("normalizes"), warnings)
}

#[test]
fn adapter_names() {
    for (s, a) in [
        ("", Adapter::Mcp),
        ("mcp", Adapter::Mcp),
        (" OpenAI ", Adapter::OpenAi),
        ("anthropic", Adapter::Anthropic),
        ("langchain", Adapter::Langchain),
        ("claude_code", Adapter::ClaudeCode),
        ("claude-code", Adapter::ClaudeCode),
        ("claudecode", Adapter::ClaudeCode),
    ] {
        assert_eq!(s.parse::<Adapter>().unwrap(), a, "{s}");
    }
    assert_eq!(
        "gemini".parse::<Adapter>().unwrap_err().to_string(),
        "unsupported adapter: gemini"
    );
    assert_eq!(Adapter::ClaudeCode.to_string(), "claude_code");
}

#[test]
fn openai_golden_digests() {
    let (n, warnings) = intent(
        Adapter::OpenAi,
        json!({"type":"function","function":{"name":"tool.search","arguments":"{\"query\":\"gait\"}"}}),
    );
    assert_eq!(n.tool_name(), "tool.search");
    assert_eq!(
        n.intent_digest(),
        "3619e812b9e7192ccd9f84fb51fc067284b1b015f5a8ac37b3748f77302f8841"
    );
    assert_eq!(
        n.args_digest(),
        "84bffb47539dfd5b66817c332232a11a021c082d68e191a264915d7a5156cfa5"
    );
    assert_eq!(
        crate::intent::default_run_id(n.intent_digest()),
        "run_mcp_3619e812b9e7"
    );
    assert_eq!(warnings, vec![FALLBACK_CONTEXT_WARNING.to_string()]);
    assert_eq!(
        String::from_utf8(crate::intent::intent_preimage(n.request()).unwrap()).unwrap(),
        r#"{"args":{"query":"gait"},"context":{"identity":"mcp-proxy","phase":"apply","risk_class":"high","workspace":"."},"targets":[],"tool_name":"tool.search"}"#
    );
    assert_eq!(
        n.request().created_at.to_go_string(),
        "1980-01-01T00:00:00Z"
    );
    assert_eq!(n.request().producer_version, "0.0.0-dev");
}

#[test]
fn openai_argument_forms() {
    let same = [
        json!({"function":{"name":"tool.search","arguments":{"query":"gait"}}}),
        json!({"function":{"name":"tool.search","arguments":" {\"query\": \"gait\"} "}}),
    ];
    for p in same {
        let call = decode_call(Adapter::OpenAi, &p).unwrap();
        assert_eq!(Value::Object(call.args), json!({"query":"gait"}));
    }
    for p in [
        json!({"function":{"name":"t","arguments":null}}),
        json!({"function":{"name":"t","arguments":""}}),
        json!({"function":{"name":"t","arguments":"null"}}),
        json!({"function":{"name":"t"}}),
    ] {
        let call = decode_call(Adapter::OpenAi, &p).unwrap();
        assert!(call.args.is_empty(), "{p}");
    }
    for p in [
        json!({"function":{"name":"t","arguments":"[1]"}}),
        json!({"function":{"name":"t","arguments":"{bad"}}),
        json!({"function":{"name":"t","arguments":[1]}}),
        json!({"function":{"name":"t","arguments":7}}),
    ] {
        let e = decode_call(Adapter::OpenAi, &p).unwrap_err();
        assert!(
            e.to_string().starts_with("decode openai arguments: "),
            "{e}"
        );
    }
    for p in [
        json!([1]),
        json!({"function": "x"}),
        json!({"function": {"name": 3}}),
    ] {
        let e = decode_call(Adapter::OpenAi, &p).unwrap_err();
        assert!(e.to_string().starts_with("parse openai tool call: "), "{e}");
    }
    // No name → the intent step fails.
    let call = decode_call(Adapter::OpenAi, &json!({})).unwrap();
    assert_eq!(
        intent_from_call(&call, Profile::Standard)
            .unwrap_err()
            .to_string(),
        "tool call name is required"
    );
}

#[test]
fn anthropic_and_langchain() {
    let (n, _) = intent(
        Adapter::Anthropic,
        json!({"type":"tool_use","name":"tool.fetch","input":{"url":"https://example.local"}}),
    );
    assert_eq!(n.tool_name(), "tool.fetch");
    assert_eq!(n.args()["url"], "https://example.local");
    assert!(n.targets().is_empty());
    assert!(decode_call(Adapter::Anthropic, &json!({"name":"t","input":"{}"})).is_err());

    let (a, _) = intent(
        Adapter::Langchain,
        json!({"tool":"tool.search","tool_input":{"query":"gait"}}),
    );
    let (b, _) = intent(
        Adapter::Langchain,
        json!({"tool":"tool.search","tool_input":"{\"query\":\"gait\"}"}),
    );
    assert_eq!(a.intent_digest(), b.intent_digest());
    // Same tool + args + default context as the OpenAI example → same digest.
    assert_eq!(
        a.intent_digest(),
        "3619e812b9e7192ccd9f84fb51fc067284b1b015f5a8ac37b3748f77302f8841"
    );
    let e = decode_call(Adapter::Langchain, &json!({"tool":"t","tool_input":5})).unwrap_err();
    assert!(e.to_string().starts_with("decode langchain tool_input: "));
}

#[test]
fn claude_code_bash_hook() {
    let (n, warnings) = intent(
        Adapter::ClaudeCode,
        json!({"session_id":"sess-claude-1","tool_name":"Bash","tool_input":{"command":"npm test"},"hook_event_name":"PreToolUse"}),
    );
    assert_eq!(n.tool_name(), "tool.exec");
    assert_eq!(
        Value::Object(n.args().clone()),
        json!({"command":"npm test"})
    );
    assert_eq!(n.context().session_id, "sess-claude-1");
    assert_eq!(
        Value::Object(n.context().auth_context.clone()),
        json!({"hook_event_name":"PreToolUse","adapter":"claude_code"})
    );
    assert_eq!(
        serde_json::to_value(n.targets()).unwrap(),
        json!([{"kind":"other","value":"npm test","operation":"execute","endpoint_class":"proc.exec","destructive":true,"discovery_method":"unknown"}])
    );
    assert!(n.has_destructive_target());
    // identity and workspace still defaulted → warning.
    assert_eq!(warnings.len(), 1);
}

#[test]
fn claude_code_name_map_and_targets() {
    for (raw, want) in [
        ("Read", "tool.read"),
        ("grep", "tool.read"),
        ("Glob", "tool.read"),
        ("WebFetch", "tool.read"),
        ("web_search", "tool.read"),
        ("Write", "tool.write"),
        ("Edit", "tool.write"),
        ("Notebook-Edit", "tool.write"),
        ("bash", "tool.exec"),
        ("Task", "tool.delegate"),
        ("Custom Action", "tool.custom_action"),
        ("my-tool", "tool.my_tool"),
        ("MCP.Server.Tool", "mcp.server.tool"),
        ("  ", ""),
    ] {
        assert_eq!(normalize_claude_code_tool_name(raw), want, "{raw}");
    }
    let (n, _) = intent(
        Adapter::ClaudeCode,
        json!({"tool_name":"Read","tool_input":{"file_path":" /repo/a.rs ","url":"https://Docs.Example/x"}}),
    );
    let t: Vec<(&str, &str, &str, &str)> = n
        .targets()
        .iter()
        .map(|t| {
            (
                t.kind.as_str(),
                t.value.as_str(),
                t.endpoint_class.as_str(),
                t.endpoint_domain.as_str(),
            )
        })
        .collect();
    assert_eq!(
        t,
        vec![
            ("path", "/repo/a.rs", "fs.read", ""),
            ("url", "https://Docs.Example/x", "net.http", "docs.example")
        ]
    );
    let (n, _) = intent(
        Adapter::ClaudeCode,
        json!({"name":"Write","input":{"path":"/tmp/o"}}),
    );
    assert_eq!(n.tool_name(), "tool.write");
    assert_eq!(n.targets()[0].endpoint_class, "fs.write");
    let (n, _) = intent(
        Adapter::ClaudeCode,
        json!({"tool_name":"Task","tool_input":{"prompt":"review"}}),
    );
    assert_eq!(
        (
            n.targets()[0].operation.as_str(),
            n.targets()[0].endpoint_class.as_str()
        ),
        ("delegate", "other")
    );
    let (n, _) = intent(
        Adapter::ClaudeCode,
        json!({"tool_name":"Custom Action","tool_input":"{\"x\":1}"}),
    );
    assert_eq!(n.tool_name(), "tool.custom_action");
    assert!(n.targets().is_empty());
    assert_eq!(
        decode_call(Adapter::ClaudeCode, &json!({"tool_input":{}}))
            .unwrap_err()
            .to_string(),
        "claude code tool call name is required"
    );
    // tool_input null falls back to input.
    let call = decode_call(
        Adapter::ClaudeCode,
        &json!({"tool_name":"Bash","tool_input":null,"input":{"cmd":"ls"}}),
    )
    .unwrap();
    assert_eq!(call.targets[0].value, "ls");
}

#[test]
fn mcp_native_call_with_hints_and_annotations() {
    let payload = json!({
        "name": " Tool.Read ", "args": {"resource": "issues"},
        "targets": [
            {"kind":"host","value":"api.github.com","operation":"read","discovery_method":"webmcp"},
            {"kind":"path","value":"/a","readOnlyHint":true,"discoveryMethod":"manual"},
            {"kind":"path","value":"/b","read_only_hint":true,"annotations":{"readOnlyHint":"false","destructiveHint":"TRUE","discoveryMethod":"a2a"}},
            {"kind":"path","value":"/c","idempotentHint":true,"openWorldHint":true,"annotations":{"idempotent_hint":"maybe"}}
        ],
        "server": {"server_id":"github","server_name":"GitHub MCP"},
        "context": {"identity":"agent","workspace":"/repo","risk_class":"High","session_id":"sess-1","run_id":"r1","phase":"plan"},
        "unknown_key": {"ignored": true}
    });
    let call = decode_call(Adapter::Mcp, &payload).unwrap();
    assert_eq!(call.raw_risk_class(), "High");
    assert_eq!(call.server().unwrap().server_id, "github");
    let (req, warnings) = intent_from_call(&call, Profile::Standard).unwrap();
    assert!(warnings.is_empty());
    assert!(req.context.run_id.is_empty(), "run_id is not copied");
    let n = normalize(&req).unwrap();
    assert_eq!(n.tool_name(), "tool.read");
    assert_eq!(n.risk_class(), "high");
    assert_eq!(n.phase(), "plan");
    let t = |v: &str| n.targets().iter().find(|t| t.value == v).unwrap().clone();
    assert_eq!(t("api.github.com").discovery_method, "webmcp");
    assert_eq!(t("api.github.com").endpoint_domain, "api.github.com");
    let a = t("/a");
    assert!(a.read_only_hint && a.discovery_method == "manual");
    let b = t("/b");
    assert!(
        !b.read_only_hint && b.destructive_hint && b.destructive && b.discovery_method == "a2a"
    );
    let c = t("/c");
    assert!(c.idempotent_hint && c.open_world_hint);
}

#[test]
fn legacy_target_and_script_calls() {
    for (raw, kind) in [
        ("https://x.example/a", "url"),
        ("/etc/hosts", "path"),
        ("db.internal", "host"),
    ] {
        let call = decode_call(Adapter::Mcp, &json!({"name":"t","target":raw})).unwrap();
        let (req, _) = intent_from_call(&call, Profile::Standard).unwrap();
        assert_eq!(req.targets[0].kind, kind, "{raw}");
    }
    // Explicit targets win over the legacy string.
    let call = decode_call(
        Adapter::Mcp,
        &json!({"name":"t","target":"/x","targets":[{"kind":"host","value":"h"}]}),
    )
    .unwrap();
    let (req, _) = intent_from_call(&call, Profile::Standard).unwrap();
    assert_eq!(req.targets.len(), 1);
    assert_eq!(req.targets[0].kind, "host");

    let call = decode_call(Adapter::Mcp, &json!({"args":{"a":1},"script":{"steps":[
        {"name":"tool.write","args":{"path":"/o"},"targets":[{"kind":"path","value":"/o","operation":"write"}]},
        {"name":"tool.read"}
    ]}})).unwrap();
    let (req, _) = intent_from_call(&call, Profile::Standard).unwrap();
    assert_eq!(req.tool_name, "script");
    assert!(req.args.is_empty());
    let n = normalize(&req).unwrap();
    assert_eq!(n.script_steps().len(), 2);
    assert_eq!(n.targets()[0].value, "/o");
    let call = decode_call(Adapter::Mcp, &json!({"script":{"steps":[{"name":" "}]}})).unwrap();
    assert_eq!(
        intent_from_call(&call, Profile::Standard)
            .unwrap_err()
            .to_string(),
        "script.steps[0].name is required"
    );
}

#[test]
fn mcp_type_errors_and_nulls() {
    assert!(decode_call(Adapter::Mcp, &json!({"name": 5})).is_err());
    assert!(decode_call(Adapter::Mcp, &json!({"name": "t", "args": "x"})).is_err());
    assert!(
        decode_call(
            Adapter::Mcp,
            &json!({"name": "t", "created_at": "yesterday"})
        )
        .is_err()
    );
    assert!(decode_call(Adapter::Mcp, &json!("str")).is_err());
    let call = decode_call(
        Adapter::Mcp,
        &json!({"name": "t", "args": null, "context": null, "targets": null}),
    )
    .unwrap();
    assert!(call.args.is_empty());
    let e = decode_call_slice(Adapter::Mcp, b"{not json").unwrap_err();
    assert!(e.to_string().starts_with("parse mcp tool call: "));
    let call = decode_call(
        Adapter::Mcp,
        &json!({"name":"t","created_at":"2026-03-01T10:00:00+01:00"}),
    )
    .unwrap();
    let (req, _) = intent_from_call(&call, Profile::Standard).unwrap();
    assert_eq!(req.created_at.to_go_string(), "2026-03-01T09:00:00Z");
}

#[test]
fn context_copy_and_auth_merge() {
    let call = decode_call(Adapter::Mcp, &json!({"name":"t","context":{
        "identity":" a ","workspace":"w","session_id":"s","request_id":" q ","job_id":"j",
        "auth_mode":" token ","auth_context":{"provider":"oidc"},"credential_scopes":["b","a"],
        "environment_fingerprint":" fp "},
        "delegation":{"requester_identity":"b","token_refs":["t"],"chain":[{"delegator_identity":"a","delegate_identity":"b"}]}})).unwrap();
    let (req, warnings) = intent_from_call(&call, Profile::Standard).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(req.context.identity, "a");
    assert_eq!(req.context.risk_class, "high");
    assert_eq!(req.context.request_id, "q");
    assert_eq!(req.context.environment_fingerprint, "fp");
    assert_eq!(
        Value::Object(req.context.auth_context.clone()),
        json!({"provider":"oidc","auth_mode":"token"})
    );
    let n = normalize(&req).unwrap();
    assert_eq!(n.context().credential_scopes, vec!["a", "b"]);
    let d = serde_json::to_value(n.delegation().unwrap()).unwrap();
    assert_eq!(d["chain"][0]["issued_at"], "0001-01-01T00:00:00Z");
}

#[test]
fn oss_prod_requires_context() {
    let full = json!({"name":"t","context":{"identity":"a","workspace":"w","session_id":"s"}});
    let call = decode_call(Adapter::Mcp, &full).unwrap();
    let (_, warnings) = intent_from_call(&call, Profile::OssProd).unwrap();
    assert!(warnings.is_empty());
    for (missing, ctx) in [
        ("identity", json!({"workspace":"w","session_id":"s"})),
        ("workspace", json!({"identity":"a","session_id":"s"})),
        ("session_id", json!({"identity":"a","workspace":"w"})),
    ] {
        let call = decode_call(Adapter::Mcp, &json!({"name":"t","context":ctx})).unwrap();
        assert_eq!(
            intent_from_call(&call, Profile::OssProd)
                .unwrap_err()
                .to_string(),
            format!("context.{missing} is required in strict profile")
        );
        // Standard profile: defaults + warning.
        let (_, w) = intent_from_call(&call, Profile::Standard).unwrap();
        assert_eq!(w, vec![FALLBACK_CONTEXT_WARNING.to_string()]);
    }
    // Non-MCP adapters can never satisfy oss-prod.
    let call = decode_call(Adapter::OpenAi, &json!({"function":{"name":"t"}})).unwrap();
    assert!(intent_from_call(&call, Profile::OssProd).is_err());
}

#[test]
fn oauth_evidence_checks() {
    let ctx = |extra: Value| {
        let mut c = json!({"identity":"a","workspace":"w","session_id":"s"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        decode_call(Adapter::Mcp, &json!({"name":"t","context":c})).unwrap()
    };
    let bad_mode = ctx(json!({"auth_mode":"saml"}));
    for p in [Profile::Standard, Profile::OssProd] {
        assert_eq!(
            intent_from_call(&bad_mode, p).unwrap_err().to_string(),
            "context.auth_mode must be one of off|none|token|oauth|oauth_dcr"
        );
    }
    let oauth_no_ev = ctx(json!({"auth_mode":"oauth"}));
    assert!(intent_from_call(&oauth_no_ev, Profile::Standard).is_ok());
    assert_eq!(
        intent_from_call(&oauth_no_ev, Profile::OssProd)
            .unwrap_err()
            .to_string(),
        "oss-prod with OAuth auth mode requires context.oauth_evidence"
    );
    let partial = ctx(
        json!({"oauth_evidence":{"issuer":"https://idp","audience":[" "],"auth_time":"2026-01-01T00:00:00Z"}}),
    );
    assert_eq!(
        intent_from_call(&partial, Profile::OssProd)
            .unwrap_err()
            .to_string(),
        "missing OAuth evidence fields: audience, subject, client_id, token_type, scopes, redirect_uri, evidence_ref"
    );
    let full_ev = json!({"issuer":"https://idp","audience":["api"],"subject":"u","client_id":"c","token_type":"bearer",
        "scopes":["read"],"redirect_uri":"https://app/cb","evidence_ref":"ref:oauth/1","auth_time":"2026-01-01T00:00:00Z"});
    let ok = ctx(json!({"auth_mode":"oauth","oauth_evidence":full_ev.clone()}));
    let (req, _) = intent_from_call(&ok, Profile::OssProd).unwrap();
    assert_eq!(req.context.auth_context["oauth_evidence"]["client_id"], "c");
    assert_eq!(req.context.auth_context["auth_mode"], "oauth");
    let dcr = ctx(json!({"auth_mode":"oauth_dcr","oauth_evidence":full_ev.clone()}));
    assert_eq!(
        intent_from_call(&dcr, Profile::OssProd)
            .unwrap_err()
            .to_string(),
        "missing OAuth evidence fields: dcr_client_id, token_binding"
    );
    let mut bad_time = full_ev.clone();
    bad_time["auth_time"] = json!("yesterday");
    let c = ctx(json!({"auth_mode":"oauth","oauth_evidence":bad_time}));
    assert_eq!(
        intent_from_call(&c, Profile::OssProd)
            .unwrap_err()
            .to_string(),
        "context.oauth_evidence.auth_time must be RFC3339"
    );
    // oauth_mode inside auth_context, evidence inside auth_context.
    let c = ctx(json!({"auth_context":{"oauth_mode":"OAuth","oauth_evidence":full_ev}}));
    assert!(intent_from_call(&c, Profile::OssProd).is_ok());
}
