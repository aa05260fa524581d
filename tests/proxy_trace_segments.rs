//! `mcp serve --trace-sink segments` over real sockets, with a real rmcp upstream and client
//! traffic: every decision (allowed and blocked) becomes one signed line of a rotating trace
//! segment, no per-decision trace file is created, the session journal names the segment,
//! and the built `gait trace verify` checks every line, locates a tampered one and tolerates
//! a torn last line.

mod support;
mod support_proxy;

use gait::server::config::{KeyMode, TraceSink};
use gait::server::journal::Journals;
use gait::server::{Runtime, default_loader, serve_with};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support_proxy::*;
use tokio_util::sync::CancellationToken;

const VERSION: &str = "2025-06-18";

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    v.sort();
    v
}

fn verify(cwd: &Path, seg: &Path, key: &str) -> support::Run {
    support::gait_with(
        cwd,
        &[
            "trace",
            "verify",
            "--json",
            "--public-key-env",
            "SEG_PUB",
            seg.to_str().unwrap(),
        ],
        None,
        &[("SEG_PUB", key)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_become_signed_segment_lines_that_trace_verify_checks() {
    let signer = gait::trace::Signer::generate();
    let (up, calls, _up_stop) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    cfg.trace_sink = TraceSink::Segments;
    cfg.trace_segment_records = 4;
    cfg.key_mode = KeyMode::Prod;
    let key_file = dir.path().join("trace.key");
    std::fs::write(&key_file, signer.private_key_base64()).unwrap();
    cfg.private_key = Some(key_file);
    // as `gait mcp serve` runs it: with session journals
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let mut rt = Runtime::from_config(&cfg, |_| None, default_loader(&cfg).unwrap()).unwrap();
    rt.journals = Some(Arc::new(Journals::new(
        cfg.session_dir.clone(),
        64,
        Duration::from_secs(300),
    )));
    let stop = CancellationToken::new();
    let handle = tokio::spawn(serve_with(
        listener,
        cfg,
        rt,
        stop.clone().cancelled_owned(),
    ));
    let client = reqwest::Client::new();
    let sid = init_session(&client, &url, VERSION)
        .await
        .expect("the rmcp upstream mints a session id");
    // 6 allowed calls and 1 blocked one: 7 decisions, 4 per segment → 2 segments
    for i in 0..7 {
        let tool = if i == 3 { "delete_all" } else { "echo" };
        let call = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                          "params": {"name": tool, "arguments": {"message": format!("m{i}")}}});
        let res = session_post(&client, &url, Some(&sid), VERSION, &call)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let _ = res.bytes().await.unwrap();
    }
    assert_eq!(calls.get("echo"), 6);
    assert_eq!(
        calls.get("delete_all"),
        0,
        "the blocked call never reached the upstream"
    );
    stop.cancel(); // drains and fsyncs the writer
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("gait did not stop")
        .unwrap()
        .unwrap();
    let cwd = dir.path();

    assert!(
        trace_files(cwd).is_empty(),
        "no per-decision trace file in segments mode"
    );
    let segs = segments(cwd);
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert!(segs[0].to_string_lossy().ends_with("_000000.jsonl"));
    assert!(segs[1].to_string_lossy().ends_with("_000001.jsonl"));
    let public = signer.public_key_base64();
    let (mut records, mut allow, mut block) = (0, 0, 0);
    for s in &segs {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(s).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let run = verify(cwd, s, &public);
        assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
        let v = run.json();
        assert_eq!(v["ok"], true);
        assert_eq!(v["format"], "segment");
        assert_eq!(v["failed"], 0);
        assert_eq!(v["torn_tail_bytes"], 0);
        records += v["records"].as_u64().unwrap();
        allow += v["verdicts"]["allow"].as_u64().unwrap_or(0);
        block += v["verdicts"]["block"].as_u64().unwrap_or(0);
    }
    assert_eq!((records, allow, block), (7, 6, 1));

    // the session journal names the segment each decision went to
    let mut journal_text = String::new();
    for e in walk(&cwd.join("sessions")) {
        if e.to_string_lossy().ends_with(".jsonl") {
            journal_text.push_str(&std::fs::read_to_string(&e).unwrap());
        }
    }
    assert_eq!(
        journal_text.matches("trace_seg_").count(),
        7,
        "{journal_text}"
    );

    // a tampered line fails verification (exit 2) and is located
    let text = std::fs::read_to_string(&segs[0]).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines
        .iter()
        .position(|l| l.contains("\"verdict\":\"block\""))
        .expect("the blocked decision is in the first segment");
    lines[n] = lines[n].replace("\"verdict\":\"block\"", "\"verdict\":\"allow\"");
    std::fs::write(&segs[0], lines.join("\n") + "\n").unwrap();
    let run = verify(cwd, &segs[0], &public);
    assert_eq!(run.code, 2, "{} {}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["first_failure"]["line"], n as u64 + 1);

    // a crash mid-append leaves a torn last line: reported, not failed
    let mut torn = std::fs::read(&segs[1]).unwrap();
    let half: &[u8] = b"{\"schema_id\":\"gait.gate.tra";
    torn.extend_from_slice(half);
    std::fs::write(&segs[1], &torn).unwrap();
    let run = verify(cwd, &segs[1], &public);
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert_eq!(run.json()["torn_tail_bytes"], half.len() as u64);

    // another key: every line fails
    let other = gait::trace::Signer::generate().public_key_base64();
    let run = verify(cwd, &segs[1], &other);
    assert_eq!(run.code, 2, "{} {}", run.stdout, run.stderr);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
