//! The ops wiring of `gait mcp serve`, end to end through the live proxy in front of a real
//! rmcp upstream: exact `/metrics` counters scraped from the admin listener, policy and
//! per-token rate limits (compat and strict), and the per-session journal.

mod support_proxy;

use gait::ops::config::ProjectConfig;
use gait::ops::env::MapEnv;
use gait::ops::runtime::OpsRuntime;
use gait::server::config::{ServeConfig, VerdictStatusMode};
use gait::server::journal::Journals;
use gait::server::{OpsHooks, Runtime, default_loader, serve_with};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support_proxy::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const VERSION: &str = "2025-06-18";

const RATE_POLICY: &str = "schema_id: gait.gate.policy
schema_version: 1.0.0
default_verdict: allow
rules:
  - name: limited-echo
    priority: 10
    effect: allow
    match:
      tool_names: [echo]
    rate_limit:
      requests: 2
      window: minute
      scope: tool
";

struct Running {
    url: String,
    admin: Option<std::net::SocketAddr>,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), gait::server::ServeError>>,
    ops: OpsRuntime,
    calls: Calls,
    _up_stop: CancellationToken,
    dir: tempfile::TempDir,
}

impl Running {
    async fn shutdown(self) -> tempfile::TempDir {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("gait stops")
            .unwrap()
            .unwrap();
        self.ops.shutdown().await;
        self.dir
    }
}

/// Upstream + gait with ops (metrics on 127.0.0.1:0) and session journals wired in.
async fn start(
    policy: Option<&str>,
    tweak: impl FnOnce(&mut ServeConfig),
    project: impl FnOnce(&mut ProjectConfig),
) -> Running {
    start_full(policy, tweak, project, false).await
}

/// [`start`], with the journals written behind the request when `behind` (the standard
/// posture of `gait mcp serve`).
async fn start_full(
    policy: Option<&str>,
    tweak: impl FnOnce(&mut ServeConfig),
    project: impl FnOnce(&mut ProjectConfig),
    behind: bool,
) -> Running {
    let (up, calls, up_stop) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    if let Some(p) = policy {
        std::fs::write(cfg.policy.as_ref().unwrap(), p).unwrap();
    }
    tweak(&mut cfg);
    let mut pc = ProjectConfig::default();
    pc.metrics.enabled = true;
    pc.metrics.listen = "127.0.0.1:0".into();
    project(&mut pc);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.listen = listener.local_addr().unwrap();
    let policy = gait::policy::Policy::load(cfg.policy.as_ref().unwrap()).unwrap();
    let (tools, reasons) = gait::ops::telemetry::labels_for_policy(&policy);
    let cancel = CancellationToken::new();
    let ops = OpsRuntime::start(&pc, &cfg, &MapEnv::new(), tools, reasons, &cancel)
        .await
        .unwrap();
    let mut rt = Runtime::from_config(&cfg, |_| None, default_loader(&cfg).unwrap()).unwrap();
    rt.ops = Some(OpsHooks {
        telemetry: ops.telemetry.clone(),
        rate_limiter: ops.rate_limiter.clone(),
    });
    rt.journals = Some(Arc::new(
        Journals::new(cfg.session_dir.clone(), 16, Duration::from_secs(300))
            .written_behind(behind)
            .observed_by(ops.telemetry.clone()),
    ));
    let url = format!("http://{}/mcp", cfg.listen);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(serve_with(
        listener,
        cfg,
        rt,
        stop.clone().cancelled_owned(),
    ));
    Running {
        url,
        admin: ops.admin_addr,
        stop,
        handle,
        ops,
        calls,
        _up_stop: up_stop,
        dir,
    }
}

fn call(id: i64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"message": "hi"}}})
}

/// One tools/call in the session; returns (status, retry-after, JSON-RPC message).
async fn tool_call(
    client: &reqwest::Client,
    url: &str,
    sid: Option<&str>,
    id: i64,
    tool: &str,
) -> (u16, Option<String>, Value) {
    let res = session_post(client, url, sid, VERSION, &call(id, tool))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.bytes().await.unwrap();
    (status, retry, rpc_body(&ct, &body))
}

#[tokio::test]
async fn metrics_count_exactly_and_session_journal_has_every_call() {
    let g = start(None, |c| c.max_request_bytes = 4096, |_| {}).await;
    let client = reqwest::Client::new();
    let sid = init_session(&client, &g.url, VERSION).await;
    let sid = sid.expect("the rmcp upstream mints a session id");
    for i in 1..=3 {
        let (status, _, v) = tool_call(&client, &g.url, Some(&sid), i, "echo").await;
        assert_eq!(status, 200);
        assert!(v.get("result").is_some(), "{v}");
    }
    let (status, _, v) = tool_call(&client, &g.url, Some(&sid), 4, "delete_all").await;
    assert_eq!(status, 200);
    assert_eq!(v["error"]["data"]["verdict"], "block", "{v}");
    let big = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                     "params": {"name": "echo", "arguments": {"message": "x".repeat(5000)}}});
    let res = session_post(&client, &g.url, Some(&sid), VERSION, &big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(g.calls.get("echo"), 3);
    assert_eq!(g.calls.get("delete_all"), 0);

    let m = scrape(g.admin.unwrap()).await;
    let tc = "gait_mcp_tool_calls_total";
    // `echo` is not named by the policy: bounded to `_other`.
    assert_eq!(value(&m, tc, &[("tool", "echo")]), 0.0);
    assert_eq!(
        value(&m, tc, &[("tool", "_other"), ("verdict", "allow")]),
        3.0
    );
    assert_eq!(
        value(&m, tc, &[("tool", "delete_all"), ("verdict", "block")]),
        1.0
    );
    assert_eq!(value(&m, tc, &[]), 4.0);
    let gd = "gait_gate_decisions_total";
    assert_eq!(value(&m, gd, &[("verdict", "allow")]), 3.0);
    assert_eq!(
        value(
            &m,
            gd,
            &[("verdict", "block"), ("reason", "destructive_tool_blocked")]
        ),
        1.0
    );
    assert_eq!(value(&m, "gait_http_body_limit_rejections_total", &[]), 1.0);
    // initialize, the initialized notification (202), 3 allowed + 1 denied call.
    let hr = "gait_http_requests_total";
    assert_eq!(
        value(&m, hr, &[("endpoint", "mcp"), ("status", "2xx")]),
        6.0
    );
    assert_eq!(
        value(&m, hr, &[("endpoint", "mcp"), ("status", "4xx")]),
        1.0
    );
    // Forwarded: initialize, the notification and the 3 allowed calls.
    assert_eq!(
        value(
            &m,
            "gait_upstream_request_duration_seconds_count",
            &[("upstream", "default")]
        ),
        5.0
    );
    assert_eq!(value(&m, "gait_mcp_sessions_active", &[]), 1.0);
    assert_eq!(value(&m, "gait_ratelimit_rejections_total", &[]), 0.0);
    assert_eq!(
        value(
            &m,
            "gait_http_auth_rejections_total",
            &[("reason", "missing")]
        ),
        0.0
    );
    // One trace per decided call, written behind the answers (sampled once a second).
    let tw = "gait_trace_writes_total";
    let m = scrape_until(g.admin.unwrap(), |m| {
        value(m, tw, &[("result", "written")]) >= 4.0
    })
    .await;
    assert_eq!(value(&m, tw, &[("result", "written")]), 4.0);
    assert_eq!(value(&m, tw, &[("result", "failed")]), 0.0);
    assert_eq!(value(&m, tw, &[("result", "queue_timeout")]), 0.0);

    let dir = g.shutdown().await;
    // The journal: one event per decided call, sequences 1..=4, in call order.
    let journal = gait::session::naming::journal_path(&dir.path().join("sessions"), &sid);
    let (model, repair) = gait::session::read_journal(&journal).unwrap();
    assert!(repair.is_none());
    assert_eq!(model.header.session_id, sid);
    assert_eq!(model.header.run_id, Journals::run_id(&sid));
    let seqs: Vec<i64> = model.events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let verdicts: Vec<&str> = model.events.iter().map(|e| e.verdict.as_str()).collect();
    assert_eq!(verdicts, vec!["allow", "allow", "allow", "block"]);
    for e in &model.events {
        assert!(
            Path::new(&e.trace_path).exists(),
            "trace_path of event {} names a written trace: {:?}",
            e.sequence,
            e.trace_path
        );
    }
    // Chain semantics: a checkpoint over the journal verifies.
    let cp = gait::session::checkpoint(
        &journal,
        &dir.path().join("cp.zip"),
        &gait::session::CheckpointOptions::default(),
    )
    .unwrap();
    assert_eq!(cp.checkpoint.sequence_end, 4);
    let chain = gait::session::default_chain_path(&journal);
    let v = gait::session::verify_chain(
        &chain,
        &gait::session::ChainVerifyOptions {
            require_signature: false,
            public_key: None,
        },
    )
    .unwrap();
    assert_eq!(v.checkpoints_checked, 1);
    assert!(
        v.linkage_errors.is_empty() && v.checkpoint_errors.is_empty(),
        "{v:?}"
    );
}

#[tokio::test]
async fn journal_fsyncs_are_timed_and_a_failed_write_behind_append_is_counted() {
    let g = start_full(None, |_| {}, |_| {}, true).await;
    let admin = g.admin.unwrap();
    let client = reqwest::Client::new();
    let sid = init_session(&client, &g.url, VERSION).await;
    let sid = sid.expect("the rmcp upstream mints a session id");
    let (status, _, v) = tool_call(&client, &g.url, Some(&sid), 1, "echo").await;
    assert_eq!(status, 200);
    assert!(v.get("result").is_some(), "{v}");
    let fsyncs = "gait_journal_fsync_duration_seconds_count";
    let failures = "gait_journal_behind_failures_total";
    let m = scrape_until(admin, |m| value(m, fsyncs, &[]) >= 1.0).await;
    assert!(
        value(&m, fsyncs, &[]) >= 1.0,
        "the written-behind append was timed"
    );
    assert_eq!(value(&m, failures, &[]), 0.0);
    let journal = gait::session::naming::journal_path(&g.dir.path().join("sessions"), &sid);
    let (model, _) = gait::session::read_journal(&journal).unwrap();
    assert_eq!(model.events.len(), 1);

    // The journal path turns into a directory: the next append cannot be written. The call
    // was answered before its append was written; the failure is counted, not lost silently.
    std::fs::remove_file(&journal).unwrap();
    std::fs::create_dir(&journal).unwrap();
    let (status, _, v) = tool_call(&client, &g.url, Some(&sid), 2, "echo").await;
    assert_eq!(status, 200);
    assert!(v.get("result").is_some(), "{v}");
    assert_eq!(g.calls.get("echo"), 2);
    let m = scrape_until(admin, |m| value(m, failures, &[]) >= 1.0).await;
    assert_eq!(value(&m, failures, &[]), 1.0);
    g.shutdown().await;
}

async fn evaluate(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let res = client.post(url).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// POST `body` to the evaluate API; asserts HTTP 200 and the warning naming `journal` at
/// `seq`; returns the response.
async fn evaluate_journaled(
    client: &reqwest::Client,
    url: &str,
    body: Value,
    journal: &Path,
    seq: i64,
) -> Value {
    let (status, v) = evaluate(client, url, body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        warning(&v, "session_journal="),
        Some(format!("session_journal={} sequence={seq}", journal.display()).as_str()),
        "{v}"
    );
    v
}

fn warning<'a>(v: &'a Value, prefix: &str) -> Option<&'a str> {
    v["warnings"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|w| w.starts_with(prefix))
}

#[tokio::test]
async fn evaluate_api_journals_named_sessions_and_checkpoints() {
    let g = start_full(
        None,
        |c| {
            c.allow_client_artifact_paths = true;
            c.runpack_dir = Some(c.trace_dir.parent().unwrap().join("runpacks"));
        },
        |_| {},
        true,
    )
    .await;
    let client = reqwest::Client::new();
    let url = g.url.replace("/mcp", "/v1/evaluate");
    let sessions = g.dir.path().join("sessions");
    let runpacks = g.dir.path().join("runpacks");
    let call = |sid: Option<&str>| {
        let mut c = json!({"name": "echo", "args": {"message": "hi"}});
        if let Some(s) = sid {
            c["context"] = json!({"session_id": s});
        }
        c
    };

    // Request session id, stable run id, a checkpoint every 2 events.
    let mut traces = Vec::new();
    for seq in 1..=2 {
        let body = json!({"session_id": "s 1", "run_id": "run_a", "checkpoint_interval": 2,
                          "call": call(None)});
        let journal = sessions.join("s_1.journal.jsonl");
        let v = evaluate_journaled(&client, &url, body, &journal, seq).await;
        assert_eq!(v["session_id"], "s 1");
        traces.push(v["trace_path"].as_str().unwrap().to_string());
        if seq == 2 {
            let zip = runpacks.join("s_1_cp_000002.zip");
            let w = warning(&v, "session_checkpoint=").expect("checkpoint warning");
            assert!(
                w.starts_with(&format!("session_checkpoint={} chain=", zip.display())),
                "{w}"
            );
            assert!(zip.exists());
        } else {
            assert_eq!(warning(&v, "session_checkpoint="), None, "{v}");
        }
    }
    let (model, _) = gait::session::read_journal(&sessions.join("s_1.journal.jsonl")).unwrap();
    assert_eq!(model.header.session_id, "s 1");
    assert_eq!(model.header.run_id, "run_a");
    let paths: Vec<&str> = model.events.iter().map(|e| e.trace_path.as_str()).collect();
    assert_eq!(paths, traces.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(model.events.iter().all(|e| !e.policy_id.is_empty()));

    // Another run of the same session: Go's retry journal `<base>_<run>.journal.jsonl`.
    let body = json!({"session_id": "s 1", "run_id": "run_b", "call": call(None)});
    let alt = sessions.join("s_1_run_b.journal.jsonl");
    evaluate_journaled(&client, &url, body, &alt, 1).await;

    // The call's own context.session_id, and a client-named journal.
    let body =
        json!({"run_id": "run_c", "call": call(Some("ctx")), "session_journal": "mine.jsonl"});
    let mine = sessions.join("mine.jsonl");
    evaluate_journaled(&client, &url, body, &mine, 1).await;
    assert_eq!(
        gait::session::read_journal(&mine)
            .unwrap()
            .0
            .header
            .session_id,
        "ctx"
    );

    // No session: nothing journaled.
    let (status, v) = evaluate(&client, &url, json!({"call": call(None)})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(warning(&v, "session_journal="), None, "{v}");

    // A journal that cannot be written: HTTP 400 with the evaluate error shape.
    std::fs::create_dir_all(sessions.join("broken.journal.jsonl")).unwrap();
    let body = json!({"session_id": "broken", "run_id": "run_x", "call": call(None)});
    let (status, v) = evaluate(&client, &url, body).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    g.shutdown().await;
}

#[tokio::test]
async fn policy_rate_limit_blocks_in_compat_mode() {
    let g = start(Some(RATE_POLICY), |_| {}, |_| {}).await;
    let client = reqwest::Client::new();
    let sid = init_session(&client, &g.url, VERSION).await;
    for i in 1..=2 {
        let (status, _, v) = tool_call(&client, &g.url, sid.as_deref(), i, "echo").await;
        assert_eq!(status, 200);
        assert!(v.get("result").is_some(), "{v}");
    }
    let (status, retry, v) = tool_call(&client, &g.url, sid.as_deref(), 3, "echo").await;
    assert_eq!(status, 200, "compat: HTTP 200 for a denial");
    assert_eq!(retry, None);
    assert_eq!(v["id"], 3);
    assert_eq!(v["error"]["code"], -32001);
    assert_eq!(v["error"]["data"]["verdict"], "block");
    assert_eq!(
        v["error"]["data"]["reason_codes"],
        json!(["rate_limit_exceeded"])
    );
    assert_eq!(
        g.calls.get("echo"),
        2,
        "the refused call never reached the upstream"
    );
    let m = scrape(g.admin.unwrap()).await;
    assert_eq!(
        value(&m, "gait_ratelimit_rejections_total", &[("scope", "tool")]),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "gait_mcp_tool_calls_total",
            &[("tool", "echo"), ("verdict", "block")]
        ),
        1.0
    );
    let dir = g.shutdown().await;
    let mut verdicts: Vec<String> = trace_files(dir.path())
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            v["verdict"].as_str().unwrap().to_string()
        })
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        vec!["allow", "allow", "block"],
        "the signed trace says block"
    );
}

#[tokio::test]
async fn per_token_limit_is_429_with_retry_after_in_strict_mode() {
    let g = start(
        None,
        |c| c.http_verdict_status = VerdictStatusMode::Strict,
        |p| p.rate_limits.per_token_requests = Some(2),
    )
    .await;
    let client = reqwest::Client::new();
    let sid = init_session(&client, &g.url, VERSION).await;
    for i in 1..=2 {
        let (status, _, _) = tool_call(&client, &g.url, sid.as_deref(), i, "echo").await;
        assert_eq!(status, 200);
    }
    let (status, retry, v) = tool_call(&client, &g.url, sid.as_deref(), 3, "echo").await;
    assert_eq!(status, 429);
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    assert_eq!(
        v["error"]["data"]["reason_codes"],
        json!(["rate_limit_exceeded"])
    );
    assert_eq!(g.calls.get("echo"), 2);
    // A policy denial is counted before the limit: still 403, not 429.
    let (status, _, _) = tool_call(&client, &g.url, sid.as_deref(), 4, "delete_all").await;
    assert_eq!(status, 403);
    let m = scrape(g.admin.unwrap()).await;
    assert_eq!(
        value(&m, "gait_ratelimit_rejections_total", &[("scope", "token")]),
        1.0
    );
    g.shutdown().await;
}

#[tokio::test]
async fn contended_journal_refuses_with_503_and_retry_after_and_reload_is_counted() {
    let g = start(None, |_| {}, |_| {}).await;
    let client = reqwest::Client::new();
    let sid = init_session(&client, &g.url, VERSION)
        .await
        .expect("session id");
    let (status, _, _) = tool_call(&client, &g.url, Some(&sid), 1, "echo").await;
    assert_eq!(status, 200);
    // Another process holds the journal's lock for longer than the lock timeout.
    let journal = gait::session::naming::journal_path(&g.dir.path().join("sessions"), &sid);
    let paths = gait::session::SessionPaths::new(&journal);
    let held = tokio::task::spawn_blocking(move || {
        gait::session::lock::SessionLock::acquire(&paths, &gait::session::LockConfig::default())
            .unwrap()
    })
    .await
    .unwrap();
    let (status, retry, v) = tool_call(&client, &g.url, Some(&sid), 2, "echo").await;
    assert_eq!(status, 503, "{v}");
    assert!(retry.expect("Retry-After").parse::<u64>().unwrap() >= 1);
    assert_eq!(v["id"], 2);
    assert_eq!(v["error"]["code"], -32004);
    assert_eq!(
        g.calls.get("echo"),
        1,
        "a call that is not journaled is not forwarded"
    );
    drop(held);
    let (status, _, _) = tool_call(&client, &g.url, Some(&sid), 3, "echo").await;
    assert_eq!(status, 200);
    // A policy edit is picked up by the poller and counted.
    let policy = g.dir.path().join("policy.yaml");
    std::fs::write(&policy, format!("{POLICY}# edited\n")).unwrap();
    let mut reloaded = 0.0;
    for _ in 0..100 {
        let m = scrape(g.admin.unwrap()).await;
        reloaded = value(&m, "gait_policy_reloads_total", &[("result", "ok")]);
        if reloaded >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reloaded, 1.0);
    let dir = g.shutdown().await;
    let (model, _) = gait::session::read_journal(&journal).unwrap();
    let seqs: Vec<i64> = model.events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, vec![1, 2], "the refused call left no event");
    drop(dir);
}

#[tokio::test]
async fn evaluate_api_applies_the_same_rate_limits() {
    let g = start(
        Some(RATE_POLICY),
        |c| c.http_verdict_status = VerdictStatusMode::Strict,
        |_| {},
    )
    .await;
    let client = reqwest::Client::new();
    let url = g.url.replace("/mcp", "/v1/evaluate");
    let eval = || {
        client
            .post(&url)
            .json(&json!({"call": {"name": "echo", "args": {"message": "hi"}}}))
            .send()
    };
    for _ in 0..2 {
        let res = eval().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["verdict"], "allow", "{v}");
    }
    let res = eval().await.unwrap();
    assert_eq!(res.status().as_u16(), 429, "strict: rate limit is 429");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["verdict"], "block");
    assert_eq!(v["reason_codes"], json!(["rate_limit_exceeded"]));
    assert_eq!(v["exit_code"], 3);
    let m = scrape(g.admin.unwrap()).await;
    assert_eq!(
        value(&m, "gait_ratelimit_rejections_total", &[("scope", "tool")]),
        1.0
    );
    assert_eq!(
        g.calls.get("echo"),
        0,
        "the evaluate API never calls the tool"
    );
    g.shutdown().await;
}
