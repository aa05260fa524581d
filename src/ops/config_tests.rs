use super::*;
use crate::ops::env::MapEnv;

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn defaults_are_the_development_posture() {
    let c = ProjectConfig::default();
    assert_eq!(c.gate.profile, Profile::Standard);
    assert_eq!(c.gate.key_mode, KeyMode::Dev);
    assert_eq!(c.mcp_serve.auth_mode, AuthMode::Off);
    assert!(is_loopback_host(
        &split_host_port(&c.mcp_serve.listen).unwrap().0
    ));
    assert!(!c.retention.any_caps());
    assert!(!c.metrics.enabled);
}

#[test]
fn precedence_flag_over_env_over_file_over_default() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "gate:\n  profile: oss-prod\n  policy: file.yaml\nretention:\n  trace_ttl: 168h\nmcp_serve:\n  max_request_bytes: 2048\n",
    );
    let env = MapEnv::from([
        ("GAIT_GATE_POLICY", "env.yaml"),
        ("GAIT_MCP_SERVE_MAX_REQUEST_BYTES", "4096"),
        ("GAIT_RETENTION_TRACE_MAX_COUNT", "50"),
    ]);
    let flags = vec![(
        "mcp_serve.max_request_bytes".to_string(),
        "8192".to_string(),
    )];
    let l = load(&ConfigLocation::Explicit(p.clone()), &env, &flags).unwrap();
    assert_eq!(l.path.as_deref(), Some(p.as_path()));
    assert_eq!(l.config.gate.profile, Profile::OssProd);
    assert_eq!(l.sources["gate.profile"], Source::File);
    assert_eq!(l.config.gate.policy, "env.yaml");
    assert_eq!(l.sources["gate.policy"], Source::Env);
    assert_eq!(l.config.mcp_serve.max_request_bytes, 8192);
    assert_eq!(l.sources["mcp_serve.max_request_bytes"], Source::Flag);
    assert_eq!(l.config.retention.trace.max_count, Some(50));
    assert_eq!(l.sources["retention.trace.max_count"], Source::Env);
    assert_eq!(
        l.config.retention.trace_ttl,
        Some(Duration::from_secs(168 * 3600))
    );
    assert_eq!(l.sources["retention.trace_ttl"], Source::File);
    assert_eq!(l.sources["gate.key_mode"], Source::Default);
    assert_eq!(l.config.gate.key_mode, KeyMode::Dev);
}

#[test]
fn go_telemetry_env_aliases_apply() {
    let env = MapEnv::from([("GAIT_OPERATIONAL_LOG", "./ops.jsonl")]);
    let l = load(&ConfigLocation::None, &env, &[]).unwrap();
    assert_eq!(
        l.config.telemetry.operational_log.as_deref(),
        Some("./ops.jsonl")
    );
    assert_eq!(l.sources["telemetry.operational_log"], Source::Env);
}

#[test]
fn unknown_key_is_an_error_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gate:\n  profile: standard\n  polcy: x.yaml\n");
    let err = load(&ConfigLocation::Explicit(p), &MapEnv::new(), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("polcy"), "{msg}");
    assert!(msg.contains('3'), "line number missing: {msg}");
    let p2 = write(dir.path(), "gates:\n  profile: standard\n");
    let msg = load(&ConfigLocation::Explicit(p2), &MapEnv::new(), &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("gates"), "{msg}");
}

#[test]
fn bad_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("retention:\n  trace_ttl: 7d\n", "7d"),
        ("retention:\n  trace_ttl: -1h\n", ">= 0"),
        ("mcp_serve:\n  auth_mode: bearer\n", "bearer"),
        ("gate:\n  profile: prod\n", "prod"),
        (
            "gate:\n  profile: standard\n  profile: oss-prod\n",
            "profile",
        ),
        ("mcp_serve:\n  max_request_bytes: -5\n", "line 2"),
    ] {
        let p = write(dir.path(), text);
        let err = load(&ConfigLocation::Explicit(p), &MapEnv::new(), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err}");
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
}

#[test]
fn env_and_flag_errors_name_their_source() {
    let env = MapEnv::from([("GAIT_RETENTION_SWEEP_INTERVAL", "soon")]);
    let err = load(&ConfigLocation::None, &env, &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Env { var, .. } if var == "GAIT_RETENTION_SWEEP_INTERVAL"),
        "{err}"
    );
    let env = MapEnv::from([("GAIT_MCP_SERVE_ENABLED", "maybe")]);
    assert!(load(&ConfigLocation::None, &env, &[]).is_err());
    let err = load(
        &ConfigLocation::None,
        &MapEnv::new(),
        &[("gate.nope".into(), "x".into())],
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Flag { .. }));
}

#[test]
fn missing_default_file_is_fine_missing_explicit_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let loc = ConfigLocation::resolve(None, &MapEnv::new(), dir.path());
    assert!(matches!(loc, ConfigLocation::Default(_)));
    let l = load(&loc, &MapEnv::new(), &[]).unwrap();
    assert!(l.path.is_none());
    assert!(l.sources.values().all(|s| *s == Source::Default));
    let loc = ConfigLocation::resolve(
        Some(&dir.path().join("nope.yaml")),
        &MapEnv::new(),
        dir.path(),
    );
    assert!(matches!(
        load(&loc, &MapEnv::new(), &[]),
        Err(ConfigError::Missing(_))
    ));
    let env = MapEnv::from([("GAIT_CONFIG", "/x/y.yaml")]);
    assert_eq!(
        ConfigLocation::resolve(None, &env, dir.path()),
        ConfigLocation::Explicit("/x/y.yaml".into())
    );
}

#[test]
fn shipped_configs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["config/dev.yaml", "config/oss-prod.yaml"] {
        let l = load(&ConfigLocation::Explicit(root.join(f)), &MapEnv::new(), &[]).unwrap();
        assert!(l.path.is_some(), "{f}");
    }
    let prod = load(
        &ConfigLocation::Explicit(root.join("config/oss-prod.yaml")),
        &MapEnv::new(),
        &[],
    )
    .unwrap()
    .config;
    assert_eq!(prod.gate.profile, Profile::OssProd);
    assert_eq!(prod.gate.key_mode, KeyMode::Prod);
    assert_eq!(prod.mcp_serve.auth_mode, AuthMode::Token);
    assert_eq!(prod.mcp_serve.http_verdict_status, VerdictStatus::Strict);
    assert!(!prod.mcp_serve.allow_client_artifact_paths);
    assert!(prod.retention.any_caps());
}

#[test]
fn redaction_hides_url_secrets() {
    assert_eq!(
        redact_url("https://user:pw@h.example/mcp?key=abc"),
        "https://user:REDACTED@h.example/mcp?REDACTED"
    );
    let mut c = ProjectConfig::default();
    c.gate.credential_ref = "secret-ref".into();
    c.mcp_serve.upstreams.push(UpstreamEntry {
        name: "a".into(),
        url: "http://u:pw@127.0.0.1:1/mcp".into(),
        auth_env: None,
    });
    let s = redacted_json(&c).to_string();
    assert!(!s.contains("secret-ref") && !s.contains(":pw@"), "{s}");
}

#[test]
fn apply_serve_layers_file_values_only() {
    use crate::server::config::{AuthMode as SAuth, ServeConfig};
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "gate:\n  policy: p.yaml\nmcp_serve:\n  listen: localhost:9999\n  auth_mode: token\n  auth_token_env: TOK\n  upstreams:\n    - name: a\n      url: http://127.0.0.1:1/mcp\ntls:\n  cert_file: c.pem\n  key_file: k.pem\n",
    );
    let l = load(&ConfigLocation::Explicit(p), &MapEnv::new(), &[]).unwrap();
    let mut sc = ServeConfig {
        max_request_bytes: 77,
        ..ServeConfig::default()
    };
    l.config.apply_serve(&mut sc, &l.sources).unwrap();
    assert_eq!(sc.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(sc.auth_mode, SAuth::Token);
    assert_eq!(
        sc.max_request_bytes, 77,
        "default-sourced keys must not override"
    );
    assert_eq!(sc.upstreams.len(), 1);
    assert_eq!(sc.policy.as_deref(), Some(Path::new("p.yaml")));
    assert!(sc.tls.is_some());
}

#[test]
fn host_port_split_like_go() {
    assert_eq!(
        split_host_port("[::1]:80").unwrap(),
        ("::1".into(), "80".into())
    );
    assert_eq!(
        split_host_port(":8787").unwrap(),
        ("".into(), "8787".into())
    );
    assert!(split_host_port("bad-listen").is_err());
    assert!(is_loopback_host("localhost") && is_loopback_host("::1"));
    assert!(!is_loopback_host("0.0.0.0") && !is_loopback_host("example.internal"));
}

#[test]
fn mcp_serve_layering_file_env_flag() {
    use clap::Parser;
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: crate::cli::mcp_serve::McpServeArgs,
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".gait")).unwrap();
    std::fs::write(
        dir.path().join(".gait/config.yaml"),
        "gate:\n  policy: file.yaml\nmcp_serve:\n  max_request_bytes: 1000\n  listen: 127.0.0.1:7001\n  http_verdict_status: strict\n",
    )
    .unwrap();
    let env = MapEnv::from([("GAIT_MCP_SERVE_MAX_REQUEST_BYTES", "2000")]);
    let args = T::try_parse_from(["t", "--listen", "127.0.0.1:7002"])
        .unwrap()
        .a;
    let (cfg, loaded) = layered_serve_config(&args, &env, dir.path()).unwrap();
    assert_eq!(cfg.policy.as_deref(), Some(Path::new("file.yaml")));
    assert_eq!(cfg.max_request_bytes, 2000);
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:7002");
    assert_eq!(
        cfg.http_verdict_status,
        crate::server::config::VerdictStatusMode::Strict
    );
    assert_eq!(loaded.sources["gate.policy"], Source::File);
    assert_eq!(loaded.sources["mcp_serve.max_request_bytes"], Source::Env);
    assert_eq!(loaded.sources["mcp_serve.listen"], Source::Flag);
    assert!(cfg.validate().is_ok());
}

#[test]
fn go_leniency_trims_lowercases_and_accepts_null_strings() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "gate:\n  policy:\n  profile: OSS-Prod\n  key_mode: ' Prod '\nmcp_serve:\n  auth_mode: TOKEN\n  http_verdict_status: Strict\n  auth_token_env: ' T '\n",
    );
    let c = load(&ConfigLocation::Explicit(p), &MapEnv::new(), &[])
        .unwrap()
        .config;
    assert_eq!(c.gate.policy, "");
    assert_eq!(c.gate.profile, Profile::OssProd);
    assert_eq!(c.gate.key_mode, KeyMode::Prod);
    assert_eq!(c.mcp_serve.auth_mode, AuthMode::Token);
    assert_eq!(c.mcp_serve.http_verdict_status, VerdictStatus::Strict);
    assert_eq!(c.mcp_serve.auth_token_env, "T");
    let empty = write(dir.path(), "");
    assert_eq!(
        load(&ConfigLocation::Explicit(empty), &MapEnv::new(), &[])
            .unwrap()
            .config,
        ProjectConfig::default()
    );
}
