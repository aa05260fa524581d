//! End-to-end: the built `gait` binary running `doctor` and `config show` in temp dirs.

use base64::Engine as _;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn gait(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gait"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("GAIT_") {
            c.env_remove(k);
        }
    }
    c
}

fn key_b64() -> String {
    let k = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let mut raw = k.to_bytes().to_vec();
    raw.extend_from_slice(k.verifying_key().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// A temp project holding the shipped oss-prod config and its policy.
fn prod_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".gait")).unwrap();
    std::fs::create_dir_all(dir.path().join("config/policies")).unwrap();
    std::fs::create_dir_all(dir.path().join("gait-out")).unwrap();
    std::fs::copy(
        Path::new(ROOT).join("config/oss-prod.yaml"),
        dir.path().join(".gait/config.yaml"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(ROOT).join("config/policies/oss-prod.yaml"),
        dir.path().join("config/policies/oss-prod.yaml"),
    )
    .unwrap();
    dir
}

fn json(out: &std::process::Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.lines().count(), 1, "one line of JSON expected: {s}");
    serde_json::from_str(s.trim()).unwrap()
}

#[test]
fn doctor_production_ok_on_shipped_oss_prod_config_with_key_and_token() {
    let dir = prod_project();
    let out = gait(dir.path())
        .args(["doctor", "--production-readiness", "--json"])
        .env("GAIT_PRIVATE_KEY", key_b64())
        .env("GAIT_MCP_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["status"], "pass");
    assert_eq!(v["schema_id"], "gait.doctor.result");
    assert_eq!(v["correlation_id"].as_str().unwrap().len(), 24);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("s3cret-token"));
}

#[test]
fn doctor_production_names_each_violation_and_exits_2() {
    let dir = prod_project();
    let cfg = std::fs::read_to_string(dir.path().join(".gait/config.yaml"))
        .unwrap()
        .replace("auth_mode: token", "auth_mode: off")
        .replace("http_verdict_status: strict", "http_verdict_status: compat")
        .replace("profile: oss-prod", "profile: standard");
    std::fs::write(dir.path().join(".gait/config.yaml"), cfg).unwrap();
    let out = gait(dir.path())
        .args(["doctor", "--production-readiness", "--json"])
        .env("GAIT_PRIVATE_KEY", key_b64())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    let all = v["checks"].to_string();
    for needle in [
        "gate.profile must be oss-prod for production readiness",
        "mcp_serve.auth_mode must be token in production",
        "mcp_serve.http_verdict_status must be strict in production",
    ] {
        assert!(all.contains(needle), "{needle}");
    }
    assert!(
        v.get("error_code").is_none(),
        "doctor failures carry no error envelope"
    );
}

#[test]
fn doctor_in_empty_dir_default_mode_exits_0_production_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = gait(dir.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["onboarding_mode"], "installed_binary");
    assert_eq!(v["ok"], true);
    let out = gait(dir.path())
        .args(["doctor", "--production-readiness"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("- production_readiness_config: fail (missing .gait/config.yaml)"),
        "{text}"
    );
    let out = gait(dir.path())
        .args(["doctor", "--bogus", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(json(&out)["error_code"], "invalid_input");
}

#[test]
fn config_show_reports_sources_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".gait")).unwrap();
    std::fs::write(
        dir.path().join(".gait/config.yaml"),
        "gate:\n  profile: oss-prod\nmcp_serve:\n  auth_token_env: MY_TOKEN\n  upstreams:\n    - name: a\n      url: http://user:hunter2@127.0.0.1:1/mcp\n",
    )
    .unwrap();
    let out = gait(dir.path())
        .args([
            "config",
            "show",
            "--json",
            "--set",
            "mcp_serve.max_request_bytes=2048",
        ])
        .env("GAIT_RETENTION_TRACE_TTL", "24h")
        .env("MY_TOKEN", "super-secret-value")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["sources"]["gate.profile"], "file");
    assert_eq!(v["sources"]["retention.trace_ttl"], "env");
    assert_eq!(v["sources"]["mcp_serve.max_request_bytes"], "flag");
    assert_eq!(v["sources"]["gate.key_mode"], "default");
    assert_eq!(v["config"]["retention"]["trace_ttl"], "24h0m0s");
    assert_eq!(v["env_refs"]["mcp_serve.auth_token_env"]["status"], "set");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        !s.contains("super-secret-value") && !s.contains("hunter2"),
        "{s}"
    );

    std::fs::write(
        dir.path().join(".gait/config.yaml"),
        "gate:\n  profle: oss-prod\n",
    )
    .unwrap();
    let out = gait(dir.path())
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let v = json(&out);
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("profle") && err.contains("line 2"), "{err}");
    let out = gait(dir.path())
        .args(["config", "show", "--config", "missing.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
}

#[test]
fn operational_and_adoption_logs_record_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let ops = dir.path().join("telemetry/operational.jsonl");
    let adoption = dir.path().join("telemetry/adoption.jsonl");
    let run = |args: &[&str]| {
        gait(dir.path())
            .args(args)
            .env("GAIT_OPERATIONAL_LOG", &ops)
            .env("GAIT_ADOPTION_LOG", &adoption)
            .output()
            .unwrap()
    };
    let ok = run(&["version", "--json"]);
    assert_eq!(ok.status.code(), Some(0));
    // the command's own output is unchanged by telemetry
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let bad = run(&["gate", "eval", "--json"]);
    assert_eq!(bad.status.code(), Some(6));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&ops)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["command"].as_str().unwrap().to_string(),
                l["phase"].as_str().unwrap().to_string(),
                l["exit_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("version".into(), "start".into(), 0),
            ("version".into(), "end".into(), 0),
            ("gate eval".into(), "start".into(), 0),
            ("gate eval".into(), "end".into(), 6),
        ]
    );
    assert_eq!(lines[3]["error_category"], "invalid_input");
    assert_eq!(lines[0]["correlation_id"], lines[1]["correlation_id"]);
    assert_ne!(lines[0]["correlation_id"], lines[2]["correlation_id"]);
    let adopt = std::fs::read_to_string(&adoption).unwrap();
    assert_eq!(adopt.lines().count(), 2);
}
