//! End-to-end: the built `gait mcp serve` with `--config` (the shipped dev and oss-prod
//! configs start a working server with its admin `/metrics` listener) and its config errors.

use base64::Engine as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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

/// A temp project holding the shipped configs and policies.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config/policies")).unwrap();
    for f in [
        "dev.yaml",
        "oss-prod.yaml",
        "policies/dev.yaml",
        "policies/oss-prod.yaml",
    ] {
        std::fs::copy(
            Path::new(ROOT).join("config").join(f),
            dir.path().join("config").join(f),
        )
        .unwrap();
    }
    dir
}

/// Start `gait mcp serve` with `args`, read its startup line, scrape `/metrics`, then SIGTERM
/// it and expect exit 0.
fn serve_and_scrape(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = gait(dir);
    cmd.args(["mcp", "serve", "--json", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", "http://127.0.0.1:9/mcp"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = match serde_json::from_str(line.trim()) {
        Ok(v) => v,
        Err(e) => {
            let _ = child.kill();
            panic!("startup line {line:?}: {e}");
        }
    };
    let admin = v["admin_listen"].as_str().map(str::to_string);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = rt.block_on(async {
        let url = format!("http://{}/metrics", admin.clone().unwrap_or_default());
        reqwest::get(url).await.ok()?.text().await.ok()
    });
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            panic!("gait mcp serve did not stop on SIGTERM");
        }
    };
    assert_eq!(status.code(), Some(0), "{v}");
    let body = body.expect("admin listener serves /metrics");
    assert!(
        body.contains("gait_http_body_limit_rejections_total 0"),
        "{body}"
    );
    v
}

#[test]
fn dev_config_starts_a_working_server_with_metrics() {
    let dir = project();
    let v = serve_and_scrape(dir.path(), &["--config", "config/dev.yaml"], &[]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["config"], "config/dev.yaml");
    assert_eq!(v["profile"], "standard");
    assert_eq!(v["policy"], "config/policies/dev.yaml");
}

#[test]
fn oss_prod_config_starts_with_key_and_token() {
    let dir = project();
    let key = key_b64();
    let v = serve_and_scrape(
        dir.path(),
        &["--config", "config/oss-prod.yaml"],
        &[("GAIT_PRIVATE_KEY", &key), ("GAIT_MCP_TOKEN", "t0ken")],
    );
    assert_eq!(v["profile"], "oss-prod");
    assert_eq!(v["auth_mode"], "token");
    assert_eq!(v["http_verdict_status"], "strict");
}

#[test]
fn missing_explicit_config_and_negative_retention_exit_6() {
    let dir = project();
    let out = gait(dir.path())
        .args(["mcp", "serve", "--json", "--config", "nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let out = gait(dir.path())
        .args(["mcp", "serve", "--json", "--config", "config/dev.yaml"])
        .args(["--trace-max-age", "-1h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("parse --trace-max-age: duration must be >= 0"),
        "{s}"
    );
    let out = gait(dir.path())
        .args(["mcp", "serve", "--json", "--config", "config/dev.yaml"])
        .args(["--session-max-count", "-2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("retention max-count values must be >= 0")
    );
}
