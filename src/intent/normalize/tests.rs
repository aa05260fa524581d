use super::*;
use serde_json::json;

fn req(v: serde_json::Value) -> IntentRequest {
    serde_json::from_value(v).expect("fixture decodes")
}

fn base(targets: serde_json::Value) -> IntentRequest {
    req(json!({
        "tool_name": "tool.write", "args": {"path": "/tmp/x"},
        "targets": targets,
        "context": {"identity": "u", "workspace": "/w", "risk_class": "high"}
    }))
}

#[test]
fn equivalent_intents_have_the_golden_digests() {
    // gate.md §4.6 intent_equivalent_{a,b}: preimage targets host api.internal + path write.
    let a = req(json!({
        "schema_id": "gait.gate.intent_request", "schema_version": "1.0.0",
        "created_at": "2026-02-05T00:00:00Z", "producer_version": "0.0.0-dev",
        "tool_name": "tool.write", "args": {"path": "/tmp/out.txt"},
        "targets": [{"kind": "host", "value": "api.internal"}, {"kind": "path", "value": "/tmp/out.txt", "operation": "write"}],
        "context": {"identity": "u", "workspace": "/w", "risk_class": "high"}
    }));
    let n = normalize(&a).unwrap();
    let targets = serde_json::to_value(n.targets()).unwrap();
    assert_eq!(
        targets,
        json!([
            {"discovery_method":"unknown","endpoint_class":"net.http","endpoint_domain":"api.internal","kind":"host","value":"api.internal"},
            {"discovery_method":"unknown","endpoint_class":"fs.write","kind":"path","operation":"write","value":"/tmp/out.txt"}
        ])
    );
    assert_eq!(n.context().phase, "apply");
}

#[test]
fn endpoint_class_inference_table() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("path", "read", "tool.x", "fs.read"),
        ("path", "stat", "tool.x", "fs.read"),
        ("path", "download", "tool.x", "fs.read"),
        ("path", "append", "tool.x", "fs.write"),
        ("path", "rename", "tool.x", "fs.write"),
        ("path", "truncate", "tool.x", "fs.delete"),
        ("path", "unlink", "tool.x", "fs.delete"),
        ("path", "", "tool.search_files", "fs.read"),
        ("path", "", "fs/tool.save", "fs.write"),
        ("path", "", "tool.rm", "fs.delete"),
        ("path", "", "tool.x", "other"),
        ("path", "", "read/tool.x", "other"),
        ("host", "", "tool.x", "net.http"),
        ("url", "lookup", "tool.x", "net.dns"),
        ("host", "resolve", "tool.x", "net.dns"),
        ("other", "shell", "tool.x", "proc.exec"),
        ("other", "", "tool.runner", "proc.exec"),
        ("other", "", "tool.x", "other"),
        ("repo", "exec", "tool.exec", "other"),
        ("bucket", "write", "tool.write", "other"),
    ];
    for (kind, op, tool, want) in cases {
        assert_eq!(
            infer_endpoint_class(kind, op, tool),
            *want,
            "{kind} {op} {tool}"
        );
    }
}

#[test]
fn endpoint_domain_inference() {
    assert_eq!(
        infer_endpoint_domain("host", " HTTPS://Api.Example.com:443/x "),
        "https"
    );
    assert_eq!(
        infer_endpoint_domain("host", "https://Api.Example.com:443/x"),
        "api.example.com"
    );
    assert_eq!(infer_endpoint_domain("host", "http://https://a.b"), "a.b");
    assert_eq!(
        infer_endpoint_domain("host", "db.internal:5432"),
        "db.internal"
    );
    assert_eq!(
        infer_endpoint_domain("url", "https://User@Example.COM:8080/p?q#f"),
        "example.com"
    );
    assert_eq!(infer_endpoint_domain("url", "https://[::1]:80/"), "::1");
    assert_eq!(infer_endpoint_domain("url", "example.com/path"), "");
    assert_eq!(infer_endpoint_domain("url", "https://bad host/"), "");
    assert_eq!(infer_endpoint_domain("url", "https://h:port/"), "");
    assert_eq!(infer_endpoint_domain("url", "mailto:x@y"), "");
    assert_eq!(
        infer_endpoint_domain("url", "//cdn.example/x"),
        "cdn.example"
    );
    assert_eq!(infer_endpoint_domain("path", "/etc"), "");
}

#[test]
fn destructive_detection() {
    let n = normalize(&base(json!([
        {"kind": "path", "value": "/a", "operation": "delete"},
        {"kind": "other", "value": "ls", "operation": "spawn"},
        {"kind": "path", "value": "/b", "operation": "read", "destructive_hint": true},
        {"kind": "path", "value": "/c", "operation": "read", "destructive": true},
        {"kind": "path", "value": "/d", "operation": "read"},
        {"kind": "other", "value": "x", "endpoint_class": "proc.exec"}
    ])))
    .unwrap();
    let d: Vec<(&str, bool)> = n
        .targets()
        .iter()
        .map(|t| (t.value.as_str(), t.destructive))
        .collect();
    assert_eq!(
        d,
        vec![
            ("ls", true),
            ("x", true),
            ("/a", true),
            ("/b", true),
            ("/c", true),
            ("/d", false)
        ]
    );
    assert!(n.has_destructive_target());
    let n = normalize(&base(
        json!([{"kind": "path", "value": "/d", "operation": "read"}]),
    ))
    .unwrap();
    assert!(!n.has_destructive_target());
}

#[test]
fn discovery_method_default_and_normalisation() {
    let n = normalize(&base(json!([
        {"kind": "host", "value": "a", "discovery_method": " Dynamic-MCP "},
        {"kind": "host", "value": "b"},
        {"kind": "host", "value": "c", "discovery_method": "static mcp"}
    ])))
    .unwrap();
    let m: Vec<&str> = n
        .targets()
        .iter()
        .map(|t| t.discovery_method.as_str())
        .collect();
    assert_eq!(m, vec!["dynamic_mcp", "unknown", "static_mcp"]);
    let e = normalize(&base(
        json!([{"kind": "host", "value": "a", "discovery_method": "carrier pigeon"}]),
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported discovery method: carrier_pigeon"
    );
}

#[test]
fn targets_are_deduped_and_sorted() {
    let n = normalize(&base(json!([
        {"kind": "path", "value": "/b", "operation": "write"},
        {"kind": "PATH", "value": " /b ", "operation": "WRITE"},
        {"kind": "host", "value": "z.example"},
        {"kind": "path", "value": "/a", "operation": "write"},
        {"kind": "path", "value": "/a", "operation": "write", "read_only_hint": true}
    ])))
    .unwrap();
    let got: Vec<(&str, &str, bool)> = n
        .targets()
        .iter()
        .map(|t| (t.kind.as_str(), t.value.as_str(), t.read_only_hint))
        .collect();
    assert_eq!(
        got,
        vec![
            ("host", "z.example", false),
            ("path", "/a", false),
            ("path", "/a", true),
            ("path", "/b", false)
        ]
    );
}

#[test]
fn target_validation_errors() {
    for (t, msg) in [
        (
            json!({"kind": "", "value": "x"}),
            "targets require kind and value",
        ),
        (
            json!({"kind": "path", "value": "  "}),
            "targets require kind and value",
        ),
        (
            json!({"kind": "disk", "value": "x"}),
            "unsupported target kind: disk",
        ),
        (
            json!({"kind": "path", "value": "x", "endpoint_class": "fs.invalid"}),
            "unsupported endpoint class: fs.invalid",
        ),
    ] {
        assert_eq!(normalize(&base(json!([t]))).unwrap_err().to_string(), msg);
    }
}

#[test]
fn raw_secrets_are_rejected_without_echoing_them() {
    let secrets = [
        ("github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("aws_access_key", "AKIAABCDEFGHIJKLMNOP"),
        ("api_key", "abc123def456ghi789jk"),
        ("Password", "sk-short"),
        ("client-secret", "Zm9vYmFyYmF6cXV4MTIz"),
        ("apiKey", "abcdefgh12345678"),
    ];
    for (key, value) in secrets {
        let mut r = base(json!([]));
        r.args.insert("nested".into(), json!({ key: value }));
        let err = normalize(&r).unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            format!(
                "args.nested.{key} must not contain raw credential material; use credential references or digests instead"
            )
        );
        assert!(!text.contains(value), "secret echoed: {text}");
    }
    // In an array, and in auth_context.
    let mut r = base(json!([]));
    r.args.insert(
        "items".into(),
        json!([{"token": "ghp_xxxxxxxxxxxxxxxxxxxx"}]),
    );
    assert!(
        normalize(&r)
            .unwrap_err()
            .to_string()
            .starts_with("args.items[0].token must not")
    );
    let mut r = base(json!([]));
    r.context
        .auth_context
        .insert("session_token".into(), json!("abcdef0123456789abcdef"));
    assert!(
        normalize(&r)
            .unwrap_err()
            .to_string()
            .starts_with("context.auth_context.session_token must not")
    );
}

#[test]
fn references_and_digests_are_accepted() {
    let ok = [
        ("token", "env:GITHUB_TOKEN"),
        ("api_key", "ref:vault/key"),
        ("secret", "sha256:abcdef0123456789abcdef"),
        ("password", "stub:x"),
        ("credential", "cmd:get-cred"),
        (
            "token",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("token", "short1"),
        ("token", "a long phrase with spaces 12345"),
        ("token", "onlyletterswithoutdigits"),
        ("token_ref", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("secret_name", "AKIAABCDEFGHIJKLMNOP"),
        ("credential_scopes", "AKIAABCDEFGHIJKLMNOP"),
        ("path", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ];
    for (key, value) in ok {
        let mut r = base(json!([]));
        r.args.insert(key.into(), json!(value));
        assert!(normalize(&r).is_ok(), "{key}={value}");
    }
    // Non-string values under credential keys are not secrets.
    let mut r = base(json!([]));
    r.args.insert("token".into(), json!(12345678901234567u64));
    assert!(normalize(&r).is_ok());
}

#[test]
fn key_patterns() {
    for k in [
        "token",
        "MY_SECRET",
        "api-key",
        "apikey",
        "api_key",
        "x_access_key",
        "accesskey",
        "db_password",
        "Credentials",
    ] {
        assert!(key_suggests_credential_material(k), "{k}");
    }
    for k in [
        "path",
        "api",
        "access",
        "apiary",
        "token_id",
        "secret_hash",
        "credential_ttl_seconds",
        "key",
        "",
        "api__key",
    ] {
        assert!(!key_suggests_credential_material(k), "{k}");
    }
}

#[test]
fn args_are_trimmed_recursively_and_empty_keys_fail() {
    let mut r = base(json!([]));
    r.args = serde_json::from_value(json!({" a ": " x ", "b": [" y ", {"c ": " z"}], "n": 1.5}))
        .unwrap();
    let n = normalize(&r).unwrap();
    assert_eq!(
        serde_json::Value::Object(n.args().clone()),
        json!({"a": "x", "b": ["y", {"c": "z"}], "n": 1.5})
    );
    let mut r = base(json!([]));
    r.args.insert("  ".into(), json!(1));
    assert_eq!(
        normalize(&r).unwrap_err().to_string(),
        "normalize args: args contains empty key"
    );
}

#[test]
fn context_rules() {
    let r = req(json!({
        "tool_name": " Tool.Write ", "args": {},
        "targets": [],
        "context": {"identity": " u ", "workspace": "C:\\work\\repo", "risk_class": " HIGH ",
                    "phase": "PLAN", "credential_scopes": ["b", " a ", "b", ""], "context_refs": ["z", "y"],
                    "auth_context": {}, "sandbox": {}, "credential_source": "GitHub_OIDC"}
    }));
    let n = normalize(&r).unwrap();
    assert_eq!(n.tool_name(), "tool.write");
    assert_eq!(n.risk_class(), "high");
    assert_eq!(n.phase(), "plan");
    assert_eq!(n.identity(), "u");
    assert_eq!(n.workspace(), "C:/work/repo");
    assert_eq!(n.context().credential_scopes, vec!["a", "b"]);
    assert_eq!(n.context().context_refs, vec!["y", "z"]);
    assert_eq!(n.context().credential_source, "github_oidc");
    assert!(n.context().sandbox.is_none());
    let v = serde_json::to_value(n.context()).unwrap();
    assert!(v.get("auth_context").is_none());

    for (ctx, msg) in [
        (
            json!({"workspace": "w", "risk_class": "h"}),
            "context.identity is required",
        ),
        (
            json!({"identity": "i", "risk_class": "h"}),
            "context.workspace is required",
        ),
        (
            json!({"identity": "i", "workspace": "w"}),
            "context.risk_class is required",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "phase": "deploy"}),
            "context.phase must be plan or apply",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "credential_source": "magic"}),
            "context.credential_source is unsupported: magic",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "credential_access_type": "forever"}),
            "context.credential_access_type is unsupported: forever",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "context_set_digest": "abc"}),
            "context.context_set_digest must be sha256 hex",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "context_evidence_mode": "maybe"}),
            "context.context_evidence_mode must be best_effort or required",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "credential_ttl_seconds": -1}),
            "context.credential_ttl_seconds must be >= 0",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "sandbox": {"evidence_ref": "ghp_abcdefghijklmnop1234"}}),
            "context.sandbox.evidence_ref must not contain secret-like sandbox material; use sandbox evidence refs or digests instead",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "sandbox": {"writable_paths": ["AWS_SECRET=abc"]}}),
            "context.sandbox.writable_paths[0] must not contain raw environment variable assignments",
        ),
        (
            json!({"identity": "i", "workspace": "w", "risk_class": "h", "sandbox": {"network_mode": "open"}}),
            "context.sandbox.network_mode is unsupported: open",
        ),
    ] {
        let r = req(json!({"tool_name": "t", "args": {}, "targets": [], "context": ctx}));
        assert_eq!(normalize(&r).unwrap_err().to_string(), msg);
    }
}

#[test]
fn sandbox_paths_are_cleaned_deduped_sorted() {
    let r = req(
        json!({"tool_name": "t", "args": {}, "targets": [], "context": {
        "identity": "i", "workspace": "w", "risk_class": "h",
        "sandbox": {"writable_paths": ["/tmp/a/../b/", "/tmp/b", ".", "", "x//y/./z"], "evidence_ref": "sandbox:receipt:v1"}}}),
    );
    let n = normalize(&r).unwrap();
    let sb = n.context().sandbox.as_ref().unwrap();
    assert_eq!(sb.writable_paths, vec!["/tmp/b", "x/y/z"]);
}

#[test]
fn arg_provenance_rules() {
    let mut r = base(json!([]));
    r.arg_provenance = serde_json::from_value(json!([
        {"arg_path": "$.b", "source": "USER"},
        {"arg_path": " $.a ", "source": "external", "integrity_digest": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        {"arg_path": "$.b", "source": "user"}
    ])).unwrap();
    let n = normalize(&r).unwrap();
    let got: Vec<(&str, &str)> = n
        .arg_provenance()
        .iter()
        .map(|p| (p.arg_path.as_str(), p.source.as_str()))
        .collect();
    assert_eq!(got, vec![("$.a", "external"), ("$.b", "user")]);
    assert_eq!(n.arg_provenance()[0].integrity_digest, "a".repeat(64));
    for (p, msg) in [
        (
            json!({"arg_path": "", "source": "user"}),
            "arg provenance requires arg_path and source",
        ),
        (
            json!({"arg_path": "$.a", "source": "llm"}),
            "unsupported provenance source: llm",
        ),
        (
            json!({"arg_path": "$.a", "source": "user", "integrity_digest": "xyz"}),
            "invalid provenance integrity_digest: xyz",
        ),
    ] {
        let mut r = base(json!([]));
        r.arg_provenance = vec![serde_json::from_value(p).unwrap()];
        assert_eq!(normalize(&r).unwrap_err().to_string(), msg);
    }
}

#[test]
fn delegation_chain_rules() {
    let mk = |d: serde_json::Value| {
        let mut r = base(json!([]));
        r.delegation = Some(serde_json::from_value(d).unwrap());
        normalize(&r)
    };
    let n = mk(json!({"requester_identity": "c", "scope_class": "WRITE", "token_refs": ["t2", "t1", "t1"],
        "chain": [{"delegator_identity": "a", "delegate_identity": "b"}, {"delegator_identity": "b", "delegate_identity": "c", "issued_at": "2026-01-01T02:00:00+02:00"}]}))
    .unwrap();
    let d = serde_json::to_value(n.delegation().unwrap()).unwrap();
    assert_eq!(d["scope_class"], "write");
    assert_eq!(d["token_refs"], json!(["t1", "t2"]));
    assert_eq!(d["issued_at"], "0001-01-01T00:00:00Z");
    assert_eq!(d["chain"][1]["issued_at"], "2026-01-01T00:00:00Z");
    for (d, msg) in [
        (
            json!({"requester_identity": " "}),
            "delegation.requester_identity is required",
        ),
        (
            json!({"requester_identity": "c", "chain": [{"delegator_identity": "a", "delegate_identity": "b"}, {"delegator_identity": "x", "delegate_identity": "c"}]}),
            "delegation.chain[1] delegator_identity must match delegation.chain[0].delegate_identity",
        ),
        (
            json!({"requester_identity": "c", "chain": [{"delegator_identity": "a", "delegate_identity": "b"}]}),
            "delegation.chain last delegate_identity must match delegation.requester_identity",
        ),
        (
            json!({"requester_identity": "c", "chain": [{"delegator_identity": "a", "delegate_identity": ""}]}),
            "delegation.chain[0] requires delegator_identity and delegate_identity",
        ),
        (
            json!({"requester_identity": "c", "issued_at": "2026-01-02T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"}),
            "delegation.expires_at must be after issued_at",
        ),
        (
            json!({"requester_identity": "c", "chain": [{"delegator_identity": "a", "delegate_identity": "c", "issued_at": "2026-01-02T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z"}]}),
            "delegation.chain[0] expires_at must be after issued_at",
        ),
    ] {
        assert_eq!(mk(d).unwrap_err().to_string(), msg);
    }
}

#[test]
fn skill_provenance_rules() {
    let mut r = base(json!([]));
    r.skill_provenance = Some(serde_json::from_value(json!({"skill_name": "s", "source": " Registry ", "publisher": "Acme", "digest": "A".repeat(64)})).unwrap());
    let n = normalize(&r).unwrap();
    let s = n.skill_provenance().unwrap();
    assert_eq!(
        (s.source.as_str(), s.publisher.as_str()),
        ("registry", "Acme")
    );
    assert_eq!(s.digest, "a".repeat(64));
    r.skill_provenance = Some(
        serde_json::from_value(json!({"skill_name": "s", "source": "r", "publisher": ""})).unwrap(),
    );
    assert_eq!(
        normalize(&r).unwrap_err().to_string(),
        "skill provenance requires skill_name, source, and publisher"
    );
    r.skill_provenance = Some(
        serde_json::from_value(
            json!({"skill_name": "s", "source": "r", "publisher": "p", "digest": "bad"}),
        )
        .unwrap(),
    );
    assert_eq!(
        normalize(&r).unwrap_err().to_string(),
        "invalid skill provenance digest: bad"
    );
}

#[test]
fn script_steps_union_targets_and_hash() {
    let r = req(json!({
        "tool_name": "anything", "args": {"ignored": true}, "targets": [],
        "context": {"identity": "i", "workspace": "w", "risk_class": "low"},
        "script": {"steps": [
            {"tool_name": " Tool.Write ", "args": {"path": " /tmp/out.txt "}, "targets": [{"kind": "path", "value": "/tmp/out.txt"}],
             "arg_provenance": [{"arg_path": "$.path", "source": "user"}]},
            {"tool_name": "tool.read", "args": {}, "targets": [{"kind": "path", "value": "/tmp/in.txt"}]}
        ]}
    }));
    let n = normalize(&r).unwrap();
    assert_eq!(n.tool_name(), "script");
    assert!(n.is_script());
    let classes: Vec<(&str, &str)> = n
        .targets()
        .iter()
        .map(|t| (t.value.as_str(), t.endpoint_class.as_str()))
        .collect();
    // Step targets are classified with their own step's tool name, before the union.
    assert_eq!(
        classes,
        vec![("/tmp/in.txt", "fs.read"), ("/tmp/out.txt", "fs.write")]
    );
    assert_eq!(n.arg_provenance().len(), 1);
    assert_eq!(n.script_steps()[0].tool_name, "tool.write");
    assert_eq!(n.script_steps()[0].args["path"], "/tmp/out.txt");
    let hash = n.script_hash().unwrap();
    let expected =
        crate::canon::digest(&serde_json::to_value(n.request().script.as_ref().unwrap()).unwrap());
    assert_eq!(hash, expected);
    assert_eq!(n.request().script_hash, hash);
    // The hash is part of the intent digest preimage.
    let pre: serde_json::Value =
        serde_json::from_slice(&crate::intent::intent_preimage(n.request()).unwrap()).unwrap();
    assert_eq!(pre["script_hash"], hash);
    assert_eq!(
        crate::canon::sha256_hex(&crate::intent::intent_preimage(n.request()).unwrap()),
        n.intent_digest()
    );

    let too_many: Vec<serde_json::Value> = (0..65)
        .map(|i| json!({"tool_name": format!("t{i}"), "args": {}}))
        .collect();
    let r = req(
        json!({"tool_name": "x", "args": {}, "targets": [], "context": {"identity": "i", "workspace": "w", "risk_class": "low"}, "script": {"steps": too_many}}),
    );
    assert_eq!(
        normalize(&r).unwrap_err().to_string(),
        "script.steps exceeds max supported steps (64)"
    );
    let r = req(
        json!({"tool_name": "x", "args": {}, "targets": [], "context": {"identity": "i", "workspace": "w", "risk_class": "low"}, "script": {"steps": []}}),
    );
    assert_eq!(
        normalize(&r).unwrap_err().to_string(),
        "script.steps must not be empty"
    );
    let r = req(
        json!({"tool_name": "x", "args": {}, "targets": [], "context": {"identity": "i", "workspace": "w", "risk_class": "low"}, "script": {"steps": [{"tool_name": "t", "args": {}, "targets": [{"kind": "nope", "value": "v"}]}]}}),
    );
    assert_eq!(
        normalize(&r).unwrap_err().to_string(),
        "normalize script.steps[0].targets: unsupported target kind: nope"
    );
}

#[test]
fn digest_ignores_envelope_fields_and_input_digests() {
    let a = base(json!([{"kind": "path", "value": "/a"}]));
    let mut b = a.clone();
    b.schema_id = "other".into();
    b.created_at = GoTime::parse("2030-01-01T00:00:00Z").unwrap();
    b.producer_version = "9".into();
    b.args_digest = "f".repeat(64);
    b.intent_digest = "e".repeat(64);
    b.relationship = Some(json!({"parent_ref": {"kind": "session", "id": "s"}}));
    let (na, nb) = (normalize(&a).unwrap(), normalize(&b).unwrap());
    assert_eq!(na.intent_digest(), nb.intent_digest());
    assert_eq!(nb.request().intent_digest, nb.intent_digest());
    assert_eq!(nb.request().schema_id, "other");
    let mut c = a.clone();
    c.context.session_id = "s1".into();
    assert_ne!(normalize(&c).unwrap().intent_digest(), na.intent_digest());
    assert_eq!(na.request().schema_id, "gait.gate.intent_request");
}

#[test]
fn strip_claims() {
    let mut r = base(json!([]));
    r.context.context_set_digest = "a".repeat(64);
    r.context.context_evidence_mode = "required".into();
    r.context.context_refs = vec!["x".into()];
    r.context
        .auth_context
        .insert("context_age_seconds".into(), json!(5));
    r.context
        .auth_context
        .insert("provider".into(), json!("oidc"));
    strip_unverified_context_claims(&mut r);
    let n = normalize(&r).unwrap();
    assert!(n.context().context_set_digest.is_empty() && n.context().context_refs.is_empty());
    assert_eq!(
        serde_json::Value::Object(n.context().auth_context.clone()),
        json!({"provider": "oidc"})
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut v = json!("leaf");
    for _ in 0..600 {
        v = json!([v]);
    }
    let mut r = base(json!([]));
    r.args.insert("deep".into(), v);
    assert_eq!(
        normalize(&r).unwrap_err().to_string(),
        "normalize args: args exceeds maximum nesting depth"
    );
}

#[test]
fn go_clean_matches_go() {
    for (i, o) in [
        ("", "."),
        ("/", "/"),
        ("a/b/../..", "."),
        ("../a", "../a"),
        ("/../a", "/a"),
        ("a//b/", "a/b"),
        ("/a/./b/../c", "/a/c"),
    ] {
        assert_eq!(go_clean_path(i), o, "{i}");
    }
}

#[test]
fn script_step_intents() {
    let r = req(json!({
        "tool_name": "script", "args": {}, "targets": [],
        "context": {"identity": "i", "workspace": "w", "risk_class": "low", "session_id": "s"},
        "script": {"steps": [
            {"tool_name": "tool.write", "args": {"path": "/o"}, "targets": [{"kind": "path", "value": "/o"}]},
            {"tool_name": "tool.read", "args": {"q": 1}}
        ]}
    }));
    let n = normalize(&r).unwrap();
    let steps = n.step_intents().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].tool_name(), "tool.write");
    assert_eq!(steps[0].targets()[0].endpoint_class, "fs.write");
    assert!(!steps[0].is_script() && steps[0].script_hash().is_none());
    assert_eq!(steps[1].targets().len(), 0);
    assert_eq!(steps[1].context().session_id, "s");
    assert_ne!(steps[0].intent_digest(), n.intent_digest());
    assert!(n.step_request(2).is_none());
    assert!(steps[0].step_intents().unwrap().is_empty());
}

#[test]
fn intent_files_parse_with_last_duplicate_key_winning() {
    let r =
        IntentRequest::from_json_slice(br#"{"tool_name":"a","tool_name":"b","args":{}}"#).unwrap();
    assert_eq!(r.tool_name, "b");
    let e = IntentRequest::from_json_slice(b"{\"args\": 5}")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("parse intent request: ") && !e.contains('\n'),
        "{e}"
    );
    assert!(IntentRequest::from_json_slice(b"not json").is_err());
}

mod fast_digest {
    //! The direct JCS digest path (`digest::digests_of_parts`, `jcs`) against the original
    //! `serde_json::Value` path (`canon::digest_of`) over random intents.
    use super::super::{digest, normalize_parts};
    use super::*;
    use crate::canon;
    use proptest::prelude::*;
    use serde_json::Value;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,10}".prop_map(Value::from),
            " ?[a\"\\\\\u{1}\u{e000}\u{10000}]{0,5} ?".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((" ?[a-c_\u{e000}\u{10000}é]{1,4}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_target() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["path", "url", "host", "bucket", "other", "PATH "]),
            "[a-z/.:]{1,12}",
            prop::sample::select(vec!["", "read", "write", "delete", "exec"]),
            prop::sample::select(vec!["", "pii", "secret"]),
            any::<(bool, bool, bool)>(),
        )
            .prop_map(|(kind, value, op, sens, (d, ro, ow))| {
                json!({"kind": kind, "value": value, "operation": op, "sensitivity": sens,
                       "destructive": d, "read_only_hint": ro, "open_world_hint": ow})
            })
    }

    fn arb_request() -> impl Strategy<Value = Value> {
        (
            " ?[a-z.]{1,10} ?",
            prop::collection::btree_map("[a-z_]{1,6}", arb_json(), 0..5),
            prop::collection::vec(arb_target(), 0..4),
            prop::collection::vec(
                (
                    "[a-z.]{1,6}",
                    prop::sample::select(vec!["user", "tool_output", "external", "system"]),
                ),
                0..3,
            ),
            (
                "[a-z0-9-]{1,8}",
                prop::sample::select(vec!["low", "High", "critical"]),
                prop::sample::select(vec!["", "plan", "apply"]),
                prop::collection::vec("[a-z:]{0,6}", 0..3),
                any::<i32>(),
                prop::option::of(prop::collection::btree_map("[a-z_.]{1,8}", arb_json(), 0..3)),
            ),
            any::<(bool, bool, bool)>(),
        )
            .prop_map(
                |(tool, args, targets, prov, (ident, risk, phase, scopes, ttl, auth), flags)| {
                    let (with_deleg, with_skill, with_script) = flags;
                    let args: serde_json::Map<String, Value> = args.into_iter().collect();
                    let prov: Vec<Value> = prov
                        .into_iter()
                        .map(|(p, s)| json!({"arg_path": p, "source": s}))
                        .collect();
                    let mut ctx = json!({"identity": ident, "workspace": "/w\\x",
                        "risk_class": risk, "phase": phase, "session_id": "s1",
                        "credential_scopes": scopes, "credential_ttl_seconds": ttl.unsigned_abs(),
                        "credential_source": "env"});
                    if let Some(a) = auth {
                        ctx["auth_context"] = Value::Object(a.into_iter().collect());
                    }
                    let mut v = json!({"tool_name": tool, "args": args, "targets": targets,
                        "arg_provenance": prov, "context": ctx});
                    if with_deleg {
                        v["delegation"] = json!({"requester_identity": "b", "scope_class": "Write",
                            "token_refs": ["r2", "r1"],
                            "chain": [{"delegator_identity": "a", "delegate_identity": "b",
                                       "issued_at": "2026-01-01T00:00:00+02:00"}]});
                    }
                    if with_skill {
                        v["skill_provenance"] = json!({"skill_name": "s", "source": "registry",
                            "publisher": "acme"});
                    }
                    if with_script {
                        v["script"] = json!({"steps": [
                            {"tool_name": "tool.b", "args": v["args"].clone(), "targets": v["targets"].clone()},
                            {"tool_name": "tool.a", "args": {"k": [1, 2.5]}}]});
                    }
                    v
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn fast_digests_match_value_path(v in arb_request()) {
            let Ok(r) = serde_json::from_value::<IntentRequest>(v) else {
                return Ok(());
            };
            let Ok(parts) = normalize_parts(&r) else {
                return Ok(());
            };
            let (args_fast, intent_fast) = digest::digests_of_parts(&parts).unwrap();
            prop_assert_eq!(args_fast, canon::digest_of(&parts.args).unwrap());
            prop_assert_eq!(intent_fast, digest::intent_digest_of_parts(&parts).unwrap());
            if let Some(s) = &parts.script {
                prop_assert_eq!(
                    digest::script_hash_of(s).unwrap(),
                    canon::digest_of(s).unwrap()
                );
            }
            let n = normalize(&r).unwrap();
            let pre = digest::intent_preimage(n.request()).unwrap();
            prop_assert_eq!(&pre, &canon::to_vec(&preimage_value(n.request())));
            prop_assert_eq!(canon::sha256_hex(&pre), n.intent_digest());
        }
    }

    /// The preimage as a `Value` built from the request's JSON (reference for `intent_preimage`).
    fn preimage_value(r: &IntentRequest) -> Value {
        let mut v = serde_json::to_value(r).unwrap();
        let obj = v.as_object_mut().unwrap();
        for k in [
            "schema_id",
            "schema_version",
            "created_at",
            "producer_version",
            "args_digest",
            "intent_digest",
            "relationship",
        ] {
            obj.remove(k);
        }
        if obj.get("script_hash").and_then(Value::as_str) == Some("") {
            obj.remove("script_hash");
        }
        if obj
            .get("arg_provenance")
            .and_then(Value::as_array)
            .is_some_and(|a| a.is_empty())
        {
            obj.remove("arg_provenance");
        }
        v
    }

    #[test]
    fn golden_digests_through_fast_path() {
        // gate.md §4.6 OpenAI-derived intent.
        let r = req(
            json!({"tool_name": "tool.search", "args": {"query": "gait"},
            "context": {"identity": "mcp-proxy", "workspace": ".", "risk_class": "high"}}),
        );
        let n = normalize(&r).unwrap();
        assert_eq!(
            n.intent_digest(),
            "3619e812b9e7192ccd9f84fb51fc067284b1b015f5a8ac37b3748f77302f8841"
        );
        assert_eq!(
            n.args_digest(),
            "84bffb47539dfd5b66817c332232a11a021c082d68e191a264915d7a5156cfa5"
        );
    }
}
