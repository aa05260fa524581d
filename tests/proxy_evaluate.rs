//! The evaluate API (`/v1/evaluate`, `/sse`, `/stream`), hot reload, and process-level rules
//! (non-loopback refusal, startup line, SIGTERM drain) of `gait mcp serve`.

mod support_proxy;

use gait::server::config::VerdictStatusMode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support_proxy::*;

fn openai(name: &str) -> Value {
    json!({"type":"function","function":{"name":name,"arguments":"{\"query\":\"gait\"}"}})
}

#[tokio::test]
async fn evaluate_json_sse_stream_and_statuses() {
    let (gait, calls, up_stop) = setup(|c| {
        c.http_verdict_status = VerdictStatusMode::Strict;
        let base = c.trace_dir.parent().unwrap().to_path_buf();
        c.export_log_out = Some(base.join("decisions.jsonl"));
        c.export_otel_out = Some(base.join("otel.jsonl"));
    })
    .await;
    let http = reqwest::Client::new();
    // allow, JSON
    let res = http
        .post(gait.url("/v1/evaluate"))
        .json(&json!({"adapter":"openai","run_id":"run_case","call": openai("tool.search")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["executed"], false);
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["tool_name"], "tool.search");
    assert_eq!(v["run_id"], "run_case");
    let trace_path = v["trace_path"].as_str().unwrap().to_string();
    assert!(trace_path.contains("trace_run_case_"), "{trace_path}");
    // block → 403 in strict, exit_code 3, same body shape
    let res = http
        .post(gait.url("/v1/evaluate"))
        .json(&json!({"call": {"name": "delete_all", "args": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["exit_code"].as_i64()),
        (Some("block"), Some(3))
    );
    // require_approval → 409, exit 4; SSE format
    let res = http
        .post(gait.url("/v1/evaluate/sse"))
        .json(&json!({"call": {"name": "write_file"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    let data = text
        .strip_prefix("event: evaluate\ndata: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("bad SSE body {text:?}"));
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["exit_code"], 4);
    // NDJSON stream
    let res = http
        .post(gait.url("/v1/evaluate/stream"))
        .json(&json!({"call": {"name": "echo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    assert_eq!(text.matches('\n').count(), 1);
    // the evaluate API never calls the upstream
    assert_eq!(calls.get("echo") + calls.get("delete_all"), 0);
    let dir = gait.shutdown().await;
    up_stop.cancel();
    assert!(std::path::Path::new(&trace_path).exists());
    assert_eq!(trace_files(dir.path()).len(), 4);
    let log = std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap();
    let verdicts: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["verdict"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        verdicts,
        vec!["allow", "block", "require_approval", "allow"]
    );
    let otel = std::fs::read_to_string(dir.path().join("otel.jsonl")).unwrap();
    assert_eq!(otel.lines().count(), 4);
}

#[tokio::test]
async fn evaluate_request_errors() {
    let (gait, _calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let url = gait.url("/v1/evaluate");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (http.get(&url), 405, "expected POST"),
        (
            http.post(&url)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "content-type must be application/json",
        ),
        (
            http.post(&url).json(&json!({"call": {}})),
            400,
            "request.call is required",
        ),
        (
            http.post(&url)
                .json(&json!({"call": {"name":"x"}, "bogus": 1})),
            400,
            "decode request:",
        ),
        (
            http.post(&url)
                .json(&json!({"call": {"name":"x"}, "trace_path": "t.json"})),
            400,
            "request.trace_path is not allowed by server configuration",
        ),
        (
            http.post(&url)
                .json(&json!({"call": {"name":"x"}, "session_journal": "s.jsonl"})),
            400,
            "request.session_journal is not allowed by server configuration",
        ),
        (
            http.post(&url)
                .json(&json!({"call": {"name":"x","context":{"context_envelope_path":"e.json"}}})),
            400,
            "request.call.context.context_envelope_path is not allowed",
        ),
        (
            http.post(&url)
                .json(&json!({"adapter":"bogus","call": {"name":"x"}})),
            400,
            "unsupported adapter: bogus",
        ),
    ];
    for (req, status, msg) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{msg}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().unwrap().starts_with(msg), "{v}");
    }
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn client_trace_path_confined_when_allowed() {
    let (gait, _calls, up_stop) = setup(|c| c.allow_client_artifact_paths = true).await;
    let http = reqwest::Client::new();
    let url = gait.url("/v1/evaluate");
    let res = http
        .post(&url)
        .json(&json!({"call": {"name":"echo"}, "trace_path": "mine/t.json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let p = v["trace_path"].as_str().unwrap().to_string();
    assert!(p.ends_with("traces/mine/t.json"), "{p}");
    for bad in ["../escape.json", "/tmp/escape.json"] {
        let res = http
            .post(&url)
            .json(&json!({"call": {"name":"echo"}, "trace_path": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let _dir = gait.shutdown().await;
    up_stop.cancel();
    assert!(std::path::Path::new(&p).exists());
}

#[tokio::test]
async fn policy_hot_reload_and_bad_policy_keeps_old() {
    let (gait, _calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let url = gait.url("/v1/evaluate");
    let verdict = |name: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let v: Value = http
                .post(&url)
                .json(&json!({"call": {"name": name}}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["verdict"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(verdict("echo").await, "allow");
    std::fs::write(
        &gait.policy,
        POLICY.replace(
            "tool_names: [delete_all, secret_tool]",
            "tool_names: [delete_all, secret_tool, echo]",
        ),
    )
    .unwrap();
    let mut reloaded = false;
    // Liveness bound, not a performance threshold: the reload poll runs every second, and a
    // loaded 2-core CI box can delay it by several seconds.
    for _ in 0..300 {
        if verdict("echo").await == "block" {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "policy change was not picked up");
    // a broken policy keeps the previous one
    std::fs::write(&gait.policy, "rules: [ {effect: allow").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(verdict("echo").await, "block");
    assert_eq!(verdict("tool.other").await, "allow");
    gait.shutdown().await;
    up_stop.cancel();
}

fn gait_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gait"))
}

#[test]
fn non_loopback_without_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = gait_bin()
        .args(["mcp", "serve", "--policy"])
        .arg(&policy)
        .args(["--listen", "0.0.0.0:0", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("non-loopback"), "{v}");
    // token mode with an empty env var is refused too
    let out = gait_bin()
        .args(["mcp", "serve", "--policy"])
        .arg(&policy)
        .args([
            "--listen",
            "0.0.0.0:0",
            "--auth-mode",
            "token",
            "--auth-token-env",
            "GAIT_TEST_UNSET_TOKEN_VAR",
        ])
        .env_remove("GAIT_TEST_UNSET_TOKEN_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
}

#[test]
fn binary_startup_line_and_sigterm_drain() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut child = gait_bin()
        .args(["mcp", "serve", "--policy"])
        .arg(&policy)
        .args(["--listen", "127.0.0.1:0", "--json", "--trace-dir"])
        .arg(dir.path().join("traces"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    for k in [
        "adapter",
        "correlation_id",
        "listen",
        "ok",
        "policy",
        "profile",
    ] {
        assert!(v.get(k).is_some(), "startup line lacks {k}: {line}");
    }
    assert_eq!(v["ok"], true);
    let listen = v["listen"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let v: Value = reqwest::Client::new()
            .post(format!("http://{listen}/v1/evaluate"))
            .json(&json!({"call": {"name": "delete_all"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["verdict"], "block");
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("gait did not exit on SIGTERM");
    });
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        trace_files(dir.path()).len(),
        1,
        "trace flushed before exit"
    );
}
