//! Session journals of `mcp serve` over real sockets: many MCP sessions share the journal
//! writer pool's threads (no thread per session), every decided call is journaled, and
//! deleting an MCP session closes its journal; a session id the upstream never issued gets a
//! 404 and no journal.
//!
//! One test in its own binary, so no other test's threads disturb the count.

mod support_proxy;
mod support_threads;

use gait::server::journal::Journals;
use gait::server::{Runtime, default_loader, serve_with};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support_proxy::*;
use support_threads::{named, threads};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const VERSION: &str = "2025-06-18";

/// One session: initialize, one allowed tools/call (journaled), optionally DELETE.
async fn session(client: &reqwest::Client, url: &str, i: i64, delete: bool) -> String {
    let sid = init_session(client, url, VERSION)
        .await
        .expect("the rmcp upstream mints a session id");
    let call = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": "hi"}}});
    let res = session_post(client, url, Some(&sid), VERSION, &call)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.bytes().await.unwrap();
    if delete {
        let res = client
            .delete(url)
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", VERSION)
            .send()
            .await
            .unwrap();
        assert!(res.status().as_u16() < 500, "{}", res.status());
    }
    sid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_share_the_writer_pool_threads_and_delete_closes_journals() {
    let (up, calls, _up_stop) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config(dir.path(), &up);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let mut rt = Runtime::from_config(&cfg, |_| None, default_loader(&cfg).unwrap()).unwrap();
    let journals = Arc::new(Journals::new(
        cfg.session_dir.clone(),
        64,
        Duration::from_secs(300),
    ));
    rt.journals = Some(journals.clone());
    let sessions_dir = cfg.session_dir.clone();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(serve_with(
        listener,
        cfg,
        rt,
        stop.clone().cancelled_owned(),
    ));
    let client = reqwest::Client::new();
    // An invented (well-formed) session id: 404 + JSON-RPC "session not found", nothing
    // forwarded, no journal created.
    let calls_before = calls.get("echo");
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": "hi"}}});
    let res = session_post(&client, &url, Some("invented-session-0001"), VERSION, &call)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32001);
    assert_eq!(body["error"]["data"]["reason_code"], "session_unknown");
    assert_eq!(
        calls.get("echo"),
        calls_before,
        "the invented session's call was forwarded"
    );
    let journals_on_disk = || {
        std::fs::read_dir(&sessions_dir)
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(journals_on_disk(), 0, "an invented session made files");
    for i in 0..5 {
        session(&client, &url, i, true).await;
    }
    let before = threads();
    let mut kept = Vec::new();
    for i in 0..200 {
        let sid = session(&client, &url, 100 + i, i % 2 == 0).await;
        if i % 2 == 1 {
            kept.push(sid);
        }
    }
    let after = threads();
    // The old design added one thread per open session (here: 64+).
    assert!(
        after <= before + 4,
        "threads grew from {before} to {after} over 200 sessions"
    );
    assert_eq!(named("gait-journal"), 1);
    let stats = journals.pool_stats().unwrap();
    assert!(stats.open <= 64, "{stats:?}");
    assert!(journals.open_count().await <= 64);
    // Deleting the remaining sessions closes their journals.
    for sid in &kept {
        let res = client
            .delete(&url)
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", VERSION)
            .send()
            .await
            .unwrap();
        assert!(res.status().as_u16() < 500);
    }
    assert_eq!(journals.open_count().await, 0);
    let mut closed = false;
    for _ in 0..2000 {
        let s = journals.pool_stats().unwrap();
        if s.open == 0 && s.journals == 0 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(closed, "{:?}", journals.pool_stats());
    // Every session's journal holds exactly its one call; nothing is left locked.
    for sid in &kept {
        let j = gait::session::naming::journal_path(&sessions_dir, sid);
        let (m, torn) = gait::session::read_journal(&j).unwrap();
        assert!(torn.is_none());
        assert_eq!(m.events.len(), 1, "{}", j.display());
        assert!(!gait::session::SessionPaths::new(&j).lock.exists());
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("gait stops")
        .unwrap()
        .unwrap();
    journals.shutdown().await;
    assert_eq!(named("gait-journal"), 0);
}
