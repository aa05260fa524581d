//! Chaos regressions of the proxy: traces under load, fail-closed trace writes, an upstream that
//! dies mid-stream, and silent connections holding every connection slot.

mod support_proxy;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support_proxy::*;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;
type UpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxErr>;

fn call(id: i64, name: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}})
}

/// A raw hyper HTTP/1 upstream on 127.0.0.1:0: every POST bumps `hits` and is answered by
/// `respond(id)`.
async fn raw_upstream(
    respond: impl Fn(Value) -> http::Response<UpBody> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let respond = Arc::new(respond);
    let h = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let respond = respond.clone();
            let hits = h.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let respond = respond.clone();
                        let hits = hits.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            hits.fetch_add(1, Ordering::SeqCst);
                            let id = serde_json::from_slice::<Value>(&body)
                                .ok()
                                .and_then(|v| v.get("id").cloned())
                                .unwrap_or(Value::Null);
                            Ok::<_, hyper::Error>(respond(id))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/mcp"), hits, task)
}

fn json_ok(id: Value) -> http::Response<UpBody> {
    let body = json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":"ok"}]}});
    http::Response::builder()
        .header("content-type", "application/json")
        .body(
            http_body_util::Full::new(Bytes::from(body.to_string()))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .unwrap()
}

/// One frame, then the body errors: hyper aborts the connection mid-body.
fn broken(ct: &'static str, first: &'static [u8]) -> http::Response<UpBody> {
    let frames = futures_util::stream::iter(vec![
        Ok(Frame::data(Bytes::from_static(first))),
        Err::<Frame<Bytes>, BoxErr>("upstream killed".into()),
    ])
    .then(|f| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        f
    });
    http::Response::builder()
        .header("content-type", ct)
        .body(StreamBody::new(frames).boxed_unsync())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_call_under_load_has_its_trace() {
    const N: usize = 2000;
    let (up, hits, up_task) = raw_upstream(json_ok).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    cfg.trace_queue = 16; // a small queue: backpressure must hold the callers, not drop
    let gait = start_gait(dir, cfg, &[]).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..N {
        let (http, url, sem) = (http.clone(), url.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let res = rpc_post(
                &http,
                &url,
                &call(i as i64, "echo", json!({"message": "x"})),
            )
            .send()
            .await
            .unwrap();
            let status = res.status().as_u16();
            let v: Value = res.json().await.unwrap();
            (status, v)
        }));
    }
    let mut answered = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["result"]["content"][0]["text"], "ok", "{v}");
        answered += 1;
    }
    assert_eq!(answered, N);
    assert_eq!(hits.load(Ordering::SeqCst), N);
    let dir = gait.shutdown().await;
    let files = trace_files(dir.path());
    assert_eq!(files.len(), N, "one trace file per answered call");
    for f in &files {
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        assert_eq!(v["verdict"], "allow", "{}", f.display());
    }
    up_task.abort();
}

/// A trace dir that cannot be created: one of its path components is a regular file.
fn unwritable_trace_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    blocker.join("traces")
}

#[tokio::test]
async fn fail_closed_trace_write_failure_is_not_forwarded() {
    let (up, hits, up_task) = raw_upstream(json_ok).await;
    let http = reqwest::Client::new();

    // fail-closed (strict status mode): 503 with a JSON-RPC error, the tool never runs
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    cfg.trace_dir = unwritable_trace_dir(dir.path());
    cfg.trace_fail_closed = true;
    cfg.http_verdict_status = gait::server::config::VerdictStatusMode::Strict;
    let gait = start_gait(dir, cfg, &[]).await;
    let res = rpc_post(&http, &gait.url("/mcp"), &call(5, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-gait-verdict"], "error");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["id"], 5, "{v}");
    assert_eq!(v["error"]["data"]["verdict"], "error", "{v}");
    assert_eq!(
        v["error"]["data"]["reason_codes"],
        json!(["trace_write_failed"])
    );
    // a denial is still answered as a denial (nothing to forward anyway)
    let res = rpc_post(&http, &gait.url("/mcp"), &call(6, "delete_all", json!({})))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["data"]["verdict"], "block", "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the upstream was contacted");
    gait.shutdown().await;

    // compat status mode: the same JSON-RPC error with HTTP 200
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    cfg.trace_dir = unwritable_trace_dir(dir.path());
    cfg.trace_fail_closed = true;
    let gait = start_gait(dir, cfg, &[]).await;
    let res = rpc_post(&http, &gait.url("/mcp"), &call(7, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["data"]["reason_codes"][0], "trace_write_failed");
    // the evaluate API: a 503 transport rejection
    let res = http
        .post(gait.url("/v1/evaluate"))
        .json(&json!({"adapter": "mcp", "call": {"name": "echo", "args": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], "trace_write_failed", "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the upstream was contacted");
    gait.shutdown().await;

    // standard recording: asynchronous, the call goes through (the failure is only counted)
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    cfg.trace_dir = unwritable_trace_dir(dir.path());
    let gait = start_gait(dir, cfg, &[]).await;
    let res = rpc_post(&http, &gait.url("/mcp"), &call(8, "echo", json!({})))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "ok", "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    gait.shutdown().await;
    up_task.abort();
}

#[tokio::test]
async fn fail_closed_writes_durably_before_forwarding() {
    let (up, hits, up_task) = raw_upstream(json_ok).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    cfg.trace_fail_closed = true;
    let gait = start_gait(dir, cfg, &[]).await;
    let http = reqwest::Client::new();
    for i in 0..3 {
        let res = rpc_post(&http, &gait.url("/mcp"), &call(i, "echo", json!({})))
            .send()
            .await
            .unwrap();
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["result"]["content"][0]["text"], "ok", "{v}");
        // acknowledged before forwarding: the file exists while gait is still running
        assert_eq!(trace_files(gait.dir.path()).len(), i as usize + 1);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    gait.shutdown().await;
    up_task.abort();
}

#[tokio::test]
async fn upstream_dying_mid_stream_ends_with_a_jsonrpc_error_event() {
    const PROGRESS: &[u8] =
        b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n";
    let (up, hits, up_task) = raw_upstream(|_| broken("text/event-stream", PROGRESS)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config(dir.path(), &up);
    let gait = start_gait(dir, cfg, &[]).await;
    let http = reqwest::Client::new();
    let res = rpc_post(&http, &gait.url("/mcp"), &call(9, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // the whole body arrives and ends cleanly (a torn stream would be an error here)
    let body = res.bytes().await.expect("a clean end of stream");
    let text = std::str::from_utf8(&body).unwrap();
    assert!(
        text.starts_with(std::str::from_utf8(PROGRESS).unwrap()),
        "{text}"
    );
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let v: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["id"], 9, "{v}");
    assert_eq!(v["error"]["code"], -32002);
    assert_eq!(
        v["error"]["message"],
        "upstream stream ended before a response"
    );
    assert!(text.ends_with("\n\n"), "{text:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    gait.shutdown().await;
    up_task.abort();

    // a JSON body broken mid-way: headers are sent, so the body can only end early, cleanly
    let (up, _hits, up_task) = raw_upstream(|_| broken("application/json", b"{\"jsonrpc\":")).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config(dir.path(), &up);
    let gait = start_gait(dir, cfg, &[]).await;
    let res = rpc_post(&http, &gait.url("/mcp"), &call(10, "echo", json!({})))
        .send()
        .await
        .unwrap();
    let body = res
        .bytes()
        .await
        .expect("a clean end of the truncated body");
    assert_eq!(&body[..], b"{\"jsonrpc\":");
    gait.shutdown().await;
    up_task.abort();
}

#[tokio::test]
async fn silent_connections_are_closed_and_do_not_starve_real_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, hits, up_task) = raw_upstream(json_ok).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    cfg.max_connections = 4;
    cfg.timeouts.header_read = Duration::from_secs(1);
    let gait = start_gait(dir, cfg, &[]).await;
    // fill every slot with connections that never send a byte (one sends a preface byte)
    let mut silent = Vec::new();
    for i in 0..4 {
        let mut s = tokio::net::TcpStream::connect(gait.addr).await.unwrap();
        if i == 0 {
            s.write_all(b"P").await.unwrap();
        }
        silent.push(s);
    }
    let http = reqwest::Client::new();
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        rpc_post(&http, &gait.url("/mcp"), &call(1, "echo", json!({}))).send(),
    )
    .await
    .expect("a real request starved behind silent connections")
    .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "ok", "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // the silent connections were closed by gait
    for mut s in silent {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("silent connection still open")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    // an idle HTTP/1 keep-alive connection is closed too (hyper's header read deadline runs
    // while waiting for the next request head)
    let mut s = tokio::net::TcpStream::connect(gait.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "idle keep-alive connection never closed");
    assert!(
        got.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    gait.shutdown().await;
    up_task.abort();
}

/// The built `gait mcp serve` with its stderr on a full device (`/dev/full`: every write fails
/// with ENOSPC, as a log file on a full disk does): a log line that cannot be written must not
/// take down the thread that logged it. The trace writer logs exactly when trace writes fail,
/// so it must survive that and write traces again once the trace dir is usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_stderr_does_not_kill_the_trace_writer() {
    use tokio::io::AsyncBufReadExt;
    let (up, hits, up_task) = raw_upstream(json_ok).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let traces = unwritable_trace_dir(dir.path());
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gait"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GAIT_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .current_dir(dir.path())
        .args(["mcp", "serve", "--json", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--policy")
        .arg(&policy)
        .args(["--upstream", &up])
        .arg("--trace-dir")
        .arg(&traces)
        .arg("--session-dir")
        .arg(dir.path().join("sessions"))
        .stdout(std::process::Stdio::piped())
        .stderr(full)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line)).await;
    assert!(matches!(read, Ok(Ok(n)) if n > 0), "no startup line");
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    let url = format!("http://{}/mcp", v["listen"].as_str().unwrap());
    let admin: std::net::SocketAddr = v["admin_listen"].as_str().unwrap().parse().unwrap();
    let http = reqwest::Client::new();

    // the trace write fails (the writer logs it to the full stderr); standard recording
    // still forwards the call
    let res = rpc_post(&http, &url, &call(1, "echo", json!({})))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "ok", "{v}");
    // the write happens behind the answer: wait until the writer has tried (and counted the
    // failure) before the trace dir is made usable, or the first trace could land after it
    let failed = |m: &Series| value(m, "gait_trace_writes_total", &[("result", "failed")]);
    let m = scrape_until(admin, |m| failed(m) >= 1.0).await;
    assert_eq!(failed(&m), 1.0, "the failed trace write was not counted");

    // the trace dir becomes usable: the next call is answered and its trace written
    std::fs::remove_file(traces.parent().unwrap()).unwrap();
    let res = rpc_post(&http, &url, &call(2, "echo", json!({})))
        .send()
        .await
        .expect("gait dropped the request after a failed log write");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "ok", "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // a graceful stop flushes the writer: the second call's trace is on disk
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("gait did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let files: Vec<_> = std::fs::read_dir(&traces)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    let written: Vec<_> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(written.len(), 1, "trace files after recovery: {files:?}");
    up_task.abort();
}
