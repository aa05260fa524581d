use super::*;
use crate::ops::env::MapEnv;
use base64::Engine as _;

const GOOD: &str = "gate:\n  policy: policy.yaml\n  profile: oss-prod\n  key_mode: prod\n  private_key_env: GAIT_PRIVATE_KEY\nmcp_serve:\n  enabled: true\n  listen: 127.0.0.1:8787\n  auth_mode: token\n  auth_token_env: GAIT_MCP_TOKEN\n  max_request_bytes: 1048576\n  http_verdict_status: strict\n  allow_client_artifact_paths: false\nretention:\n  trace_ttl: 168h\n  session_ttl: 336h\n  export_ttl: 168h\n";

fn key_b64() -> String {
    let k = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let mut raw = k.to_bytes().to_vec();
    raw.extend_from_slice(k.verifying_key().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn good_env() -> MapEnv {
    MapEnv::from([("GAIT_MCP_TOKEN", "s3cret")]).with("GAIT_PRIVATE_KEY", &key_b64())
}

fn setup(config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(c) = config {
        std::fs::create_dir_all(dir.path().join(".gait")).unwrap();
        std::fs::write(dir.path().join(".gait/config.yaml"), c).unwrap();
    }
    std::fs::write(
        dir.path().join("policy.yaml"),
        "schema_id: gait.gate.policy\nschema_version: 1.0.0\ndefault_verdict: block\nrules: []\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("gait-out")).unwrap();
    dir
}

fn prod(dir: &Path) -> DoctorOptions {
    DoctorOptions {
        workdir: dir.to_path_buf(),
        output_dir: "./gait-out".into(),
        production_readiness: true,
        ..Default::default()
    }
}

fn check<'a>(r: &'a DoctorResult, name: &str) -> &'a Check {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

#[test]
fn good_production_config_passes_with_go_order() {
    let dir = setup(Some(GOOD));
    let r = run(&prod(dir.path()), &good_env());
    assert!(r.ok, "{:#?}", r.checks);
    assert_eq!(r.status, Status::Pass, "{:#?}", r.checks);
    assert_eq!(r.exit_code(), 0);
    let names: Vec<&str> = r.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        &names[..13],
        [
            "workdir",
            "output_dir",
            "job_runtime_durability",
            "temp_dir",
            "key_source_ambiguity",
            "key_permissions",
            "key_config",
            "production_readiness_config",
            "production_profile",
            "production_key_mode",
            "production_retention",
            "production_service_boundary",
            "production_context_strictness",
        ]
    );
    assert_eq!(r.onboarding_mode, "installed_binary");
    assert!(r.binary_path.is_none());
    assert_eq!(
        r.summary,
        "doctor: onboarding_mode=installed_binary status=pass failed=0 warned=0 non_fixable=false"
    );
}

#[test]
fn missing_config_fails_production_with_exit_2() {
    let dir = setup(None);
    let r = run(&prod(dir.path()), &MapEnv::new());
    assert!(!r.ok);
    assert_eq!(r.exit_code(), 2);
    let c = check(&r, "production_readiness_config");
    assert_eq!(c.message, "missing .gait/config.yaml");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(check(&r, "production_profile").status, Status::Fail);
    assert_eq!(check(&r, "production_key_mode").status, Status::Fail);
    assert_eq!(check(&r, "production_retention").status, Status::Fail);
    assert_eq!(
        check(&r, "production_service_boundary").message,
        "mcp_serve not configured"
    );
    assert!(r.fix_commands.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn parse_error_collapses_production_section() {
    let dir = setup(Some("gate:\n  profile: oss-prod\n  bogus: 1\n"));
    let r = run(&prod(dir.path()), &good_env());
    let prod_checks: Vec<&Check> = r
        .checks
        .iter()
        .filter(|c| c.scope == Scope::ProductionReadiness)
        .collect();
    assert_eq!(prod_checks.len(), 1);
    assert!(
        prod_checks[0]
            .message
            .starts_with("failed to parse .gait/config.yaml: ")
    );
    assert!(prod_checks[0].message.contains("bogus"));
    assert_eq!(r.exit_code(), 2);
}

#[test]
fn every_boundary_violation_is_reported() {
    let bad = GOOD
        .replace("127.0.0.1:8787", "0.0.0.0:8787")
        .replace("auth_mode: token", "auth_mode: off")
        .replace("max_request_bytes: 1048576", "max_request_bytes: 0")
        .replace("http_verdict_status: strict", "http_verdict_status: compat")
        .replace(
            "allow_client_artifact_paths: false",
            "allow_client_artifact_paths: true",
        );
    let dir = setup(Some(&bad));
    let r = run(&prod(dir.path()), &good_env());
    let m = &check(&r, "production_service_boundary").message;
    for needle in [
        "non-loopback mcp_serve.listen requires mcp_serve.auth_mode=token",
        "mcp_serve.auth_mode must be token in production",
        "mcp_serve.allow_client_artifact_paths must be false in production",
        "mcp_serve.max_request_bytes must be >0 and <=4194304",
        "mcp_serve.http_verdict_status must be strict in production",
    ] {
        assert!(m.contains(needle), "{needle} missing from {m}");
    }
    assert!(!r.ok);
}

#[test]
fn public_listen_with_token_passes_boundary() {
    let dir = setup(Some(&GOOD.replace("127.0.0.1:8787", "0.0.0.0:8787")));
    let r = run(&prod(dir.path()), &good_env());
    assert_eq!(
        check(&r, "production_service_boundary").status,
        Status::Pass
    );
    assert_eq!(check(&r, "production_tls").status, Status::Warn);
    let dir = setup(Some(
        &GOOD.replace("listen: 127.0.0.1:8787", "listen: bad-listen"),
    ));
    let r = run(&prod(dir.path()), &good_env());
    assert!(
        check(&r, "production_service_boundary")
            .message
            .contains("invalid mcp_serve.listen")
    );
}

#[test]
fn token_without_env_name_fails() {
    let dir = setup(Some(
        &GOOD.replace("  auth_token_env: GAIT_MCP_TOKEN\n", ""),
    ));
    let r = run(&prod(dir.path()), &good_env());
    assert!(
        check(&r, "production_service_boundary")
            .message
            .contains("mcp_serve.auth_mode=token requires mcp_serve.auth_token_env")
    );
}

#[test]
fn retention_ttls_required_and_positive() {
    let dir = setup(Some(&GOOD.replace("  export_ttl: 168h\n", "")));
    let r = run(&prod(dir.path()), &good_env());
    assert_eq!(
        check(&r, "production_retention").message,
        "retention.trace_ttl, retention.session_ttl, and retention.export_ttl are required"
    );
    let dir = setup(Some(&format!(
        "{}  trace:\n    max_count: 0\n",
        GOOD.replace("trace_ttl: 168h", "trace_ttl: 0s")
    )));
    let r = run(&prod(dir.path()), &good_env());
    let m = &check(&r, "production_retention").message;
    assert!(m.contains("retention.trace_ttl must be > 0"), "{m}");
    assert!(m.contains("retention.trace.max_count must be > 0"), "{m}");
    let dir = setup(Some(&GOOD.replace("trace_ttl: 168h", "trace_ttl: bad")));
    let r = run(&prod(dir.path()), &good_env());
    assert!(
        check(&r, "production_readiness_config")
            .message
            .contains("bad")
    );
}

#[test]
fn profile_key_mode_and_context() {
    let dir = setup(Some(
        &GOOD
            .replace("profile: oss-prod", "profile: standard")
            .replace("  policy: policy.yaml\n", ""),
    ));
    let r = run(&prod(dir.path()), &good_env());
    assert_eq!(
        check(&r, "production_profile").message,
        "gate.profile must be oss-prod for production readiness"
    );
    let m = &check(&r, "production_context_strictness").message;
    assert!(m.contains("strict context enforcement requires gate.profile=oss-prod"));
    assert!(m.contains("gate.policy must be set for strict context enforcement"));
    assert_eq!(
        check(&r, "production_policy").message,
        "gate.policy is not set"
    );
    let dir = setup(Some(&GOOD.replace("key_mode: prod", "key_mode: dev")));
    let r = run(&prod(dir.path()), &good_env());
    assert_eq!(
        check(&r, "production_key_mode").message,
        "gate.key_mode must be prod for production readiness"
    );
}

#[test]
fn policy_checks() {
    let dir = setup(Some(GOOD));
    std::fs::write(
        dir.path().join("policy.yaml"),
        "schema_id: gait.gate.policy\nschema_version: 1.0.0\ndefault_verdict: allow\n",
    )
    .unwrap();
    let r = run(&prod(dir.path()), &good_env());
    let m = &check(&r, "production_policy").message;
    assert!(m.contains("default_verdict=allow"), "{m}");
    std::fs::write(dir.path().join("policy.yaml"), "rules: [\n").unwrap();
    let r = run(&prod(dir.path()), &good_env());
    assert!(
        check(&r, "production_policy")
            .message
            .starts_with("policy file does not parse")
    );
    std::fs::remove_file(dir.path().join("policy.yaml")).unwrap();
    let r = run(&prod(dir.path()), &good_env());
    assert!(
        check(&r, "production_policy")
            .message
            .starts_with("policy file not readable")
    );
}

#[test]
fn env_vars_must_be_non_empty() {
    let dir = setup(Some(GOOD));
    let env = MapEnv::from([("GAIT_MCP_TOKEN", " ")]).with("GAIT_PRIVATE_KEY", &key_b64());
    let r = run(&prod(dir.path()), &env);
    let c = check(&r, "production_env_vars");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.message
            .contains("GAIT_MCP_TOKEN named by mcp_serve.auth_token_env is empty")
    );
    assert!(!c.message.contains("s3cret"));
}

#[test]
fn key_config_prod_requires_loadable_key() {
    let dir = setup(Some(GOOD));
    let env = MapEnv::from([
        ("GAIT_MCP_TOKEN", "s3cret"),
        ("GAIT_PRIVATE_KEY", "not-base64!"),
    ]);
    let r = run(&prod(dir.path()), &env);
    let c = check(&r, "key_config");
    assert_eq!(c.status, Status::Fail);
    assert!(c.message.starts_with("invalid prod signing key config: "));
    assert!(!r.non_fixable, "prod mode without a key stays fixable");
    let mut o = prod(dir.path());
    o.key_mode = Some("dev".into());
    let r = run(&o, &good_env());
    assert_eq!(
        check(&r, "key_config").message,
        "dev key mode is configured"
    );
    o.key_mode = Some("hsm".into());
    let r = run(&o, &good_env());
    assert_eq!(check(&r, "key_config").message, "unsupported key mode: hsm");
    o.key_mode = Some("dev".into());
    o.private_key_env = Some("X".into());
    let r = run(&o, &good_env());
    assert_eq!(check(&r, "key_config").status, Status::Warn);
}

#[test]
fn key_source_ambiguity_and_permissions() {
    let dir = setup(Some(GOOD));
    let key = dir.path().join("k.key");
    std::fs::write(&key, key_b64()).unwrap();
    let mut o = prod(dir.path());
    o.key_mode = Some("prod".into());
    o.private_key = Some(key.clone());
    o.private_key_env = Some("GAIT_PRIVATE_KEY".into());
    let r = run(&o, &good_env());
    assert_eq!(
        check(&r, "key_source_ambiguity").message,
        "private key path and env are both set"
    );
    o.private_key_env = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
        let r = run(&o, &good_env());
        let c = check(&r, "key_permissions");
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.message
                .starts_with("key file is writable by group/others")
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let r = run(&o, &good_env());
    assert_eq!(check(&r, "key_permissions").status, Status::Pass);
    assert_eq!(
        check(&r, "key_config").message,
        "prod key configuration is valid"
    );
    o.private_key = Some(dir.path().join("missing.key"));
    let r = run(&o, &good_env());
    assert!(
        check(&r, "key_permissions")
            .message
            .starts_with("key file not accessible")
    );
}

#[test]
fn workdir_output_dir_and_jobs() {
    let dir = setup(None);
    let mut o = prod(dir.path());
    o.production_readiness = false;
    o.output_dir = "missing-out".into();
    let r = run(&o, &MapEnv::new());
    let c = check(&r, "output_dir");
    assert_eq!(c.status, Status::Warn);
    assert_eq!(c.fix_command.as_deref(), Some("mkdir -p 'missing-out'"));
    assert!(r.ok, "default mode warn stays ok");
    assert_eq!(r.exit_code(), 0);
    assert!(r.binary_version.is_some());
    let names: Vec<&str> = r.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "workdir",
            "output_dir",
            "job_runtime_durability",
            "temp_dir",
            "registry_cache",
            "gate_rate_limit_lock",
            "onboarding_binary",
            "key_source_ambiguity",
            "key_permissions",
            "key_config"
        ]
    );
    std::fs::write(dir.path().join("file"), "x").unwrap();
    o.workdir = dir.path().join("file");
    let r = run(&o, &MapEnv::new());
    assert_eq!(check(&r, "workdir").message, "workdir is not a directory");
    o.workdir = dir.path().join("nope");
    let r = run(&o, &MapEnv::new());
    assert!(
        check(&r, "workdir")
            .message
            .starts_with("workdir not accessible")
    );
    assert!(r.ok, "default mode fail still exits 0");

    o.workdir = dir.path().to_path_buf();
    o.output_dir = "./gait-out".into();
    let job = dir.path().join("gait-out/jobs/job_1");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(job.join("events.jsonl"), "{}\n").unwrap();
    std::fs::write(job.join("pending_mutation.json"), "{}").unwrap();
    let r = run(&o, &MapEnv::new());
    assert_eq!(
        check(&r, "job_runtime_durability").message,
        "durable job state divergence detected: job_1:missing_state_with_events,job_1:pending_mutation"
    );
}

#[test]
fn tls_upstreams_and_metrics() {
    let cfg = format!(
        "{GOOD}tls:\n  cert_file: missing-cert.pem\n  key_file: key.pem\nmetrics:\n  enabled: true\n  listen: 0.0.0.0:9464\n"
    )
    .replace(
        "  allow_client_artifact_paths: false\n",
        "  allow_client_artifact_paths: false\n  upstreams:\n    - name: a\n      url: ftp://127.0.0.1/x\n    - name: a\n      url: http://127.0.0.1:1/mcp\n",
    );
    let dir = setup(Some(&cfg));
    std::fs::write(dir.path().join("key.pem"), "k").unwrap();
    let r = run(&prod(dir.path()), &good_env());
    let t = &check(&r, "production_tls").message;
    assert!(
        t.contains("tls.cert_file not readable: missing-cert.pem"),
        "{t}"
    );
    assert!(!t.contains("tls.key_file"), "{t}");
    let u = &check(&r, "production_upstreams").message;
    assert!(
        u.contains("http:// or https://") && u.contains("duplicate upstream name"),
        "{u}"
    );
    let m = &check(&r, "production_metrics").message;
    assert!(
        m.contains("metrics.listen 0.0.0.0:9464 is not loopback"),
        "{m}"
    );
    let ok_cfg = format!(
        "{GOOD}metrics:\n  enabled: true\n  listen: 0.0.0.0:9464\n  auth_token_env: GAIT_MCP_TOKEN\n"
    );
    let dir = setup(Some(&ok_cfg));
    let r = run(&prod(dir.path()), &good_env());
    assert_eq!(check(&r, "production_metrics").status, Status::Pass);
    assert_eq!(check(&r, "production_upstreams").status, Status::Pass);
    assert_eq!(check(&r, "production_tls").status, Status::Pass);
}

#[test]
fn json_shape_omits_empty_fields() {
    let dir = setup(Some(GOOD));
    let r = run(&prod(dir.path()), &good_env());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["schema_id"], "gait.doctor.result");
    assert_eq!(v["schema_version"], "1.0.0");
    assert!(v.get("fix_commands").is_none());
    assert!(v.get("non_fixable").is_none());
    assert!(v.get("binary_path").is_none());
    assert!(v.get("production").is_none());
    assert!(v["checks"][0].get("fix_command").is_none());
    assert_eq!(v["checks"][0]["scope"], "universal");
}

#[test]
fn default_mode_checks_both_ways() {
    let dir = setup(None);
    let home = tempfile::tempdir().unwrap();
    let mut o = prod(dir.path());
    o.production_readiness = false;
    let env = MapEnv::from([("HOME", home.path().to_str().unwrap())]);
    let r = run(&o, &env);
    assert_eq!(check(&r, "registry_cache").status, Status::Warn);
    assert_eq!(check(&r, "temp_dir").status, Status::Pass);
    assert_eq!(check(&r, "gate_rate_limit_lock").status, Status::Pass);
    assert_eq!(check(&r, "onboarding_binary").status, Status::Pass);
    std::fs::create_dir_all(home.path().join(".gait/registry")).unwrap();
    let lock = dir.path().join("gait-out/gate_rate_limits.json.lock");
    let f = std::fs::File::create(&lock).unwrap();
    f.set_modified(SystemTime::now() - std::time::Duration::from_secs(60))
        .unwrap();
    let env = env.with("TMPDIR", dir.path().join("no-such-tmp").to_str().unwrap());
    let r = run(&o, &env);
    assert_eq!(check(&r, "registry_cache").status, Status::Pass);
    let l = check(&r, "gate_rate_limit_lock");
    assert_eq!(l.status, Status::Warn);
    assert!(l.message.starts_with("stale gate rate limit lock detected"));
    let t = check(&r, "temp_dir");
    assert_eq!(t.status, Status::Fail);
    assert!(t.message.starts_with("temporary directory is not writable"));
    assert!(r.ok, "default mode: fail still ok");
    assert_eq!(r.status, Status::Fail);
    o.public_key = Some("a".into());
    o.public_key_env = Some("B".into());
    let r = run(&o, &env);
    assert_eq!(
        check(&r, "key_source_ambiguity").message,
        "public key path and env are both set"
    );
}

#[test]
fn prod_public_key_must_match() {
    let dir = setup(Some(GOOD));
    let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]);
    let pub_b64 =
        base64::engine::general_purpose::STANDARD.encode(other.verifying_key().as_bytes());
    let mut o = prod(dir.path());
    o.key_mode = Some("prod".into());
    o.private_key_env = Some("GAIT_PRIVATE_KEY".into());
    o.public_key_env = Some("PUB".into());
    let r = run(&o, &good_env().with("PUB", &pub_b64));
    let c = check(&r, "key_config");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.message,
        "invalid verify key config: public key does not match private key"
    );
    let own = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let own_b64 = base64::engine::general_purpose::STANDARD.encode(own.verifying_key().as_bytes());
    let r = run(&o, &good_env().with("PUB", &own_b64));
    assert_eq!(check(&r, "key_config").status, Status::Pass);
}
