//! Transport behaviour of the proxy, driven with raw HTTP against gait in front of a real
//! rmcp upstream: SSE streaming, sessions, status mapping, auth, limits, header checks,
//! batches, 2026-07-28 header mirroring, upstream failures.

mod support_proxy;

use futures_util::StreamExt;
use gait::server::config::{AuthMode, VerdictStatusMode};
use serde_json::{Value, json};
use std::time::Duration;
use support_proxy::*;

const V: &str = "2025-11-25";

fn call(id: i64, name: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}})
}

async fn body_of(res: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = res.bytes().await.unwrap();
    (status, headers, rpc_body(&ct, &bytes))
}

#[tokio::test]
async fn sse_progress_is_streamed_unbuffered_and_in_order() {
    let (gait, calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let sid = init_session(&http, &url, V).await;
    let mut req = call(7, "progress", json!({"gated": true}));
    req["params"]["_meta"] = json!({"progressToken": "tok-1"});
    let res = session_post(&http, &url, sid.as_deref(), V, &req)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    assert_eq!(res.headers()["x-gait-verdict"], "allow");
    // The tool only takes its next step after we saw the previous notification, so this can
    // only finish if every frame is forwarded as soon as it arrives.
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let mut progress = Vec::new();
    let mut done = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a progress frame was held back (buffered) by the proxy")
            .expect("stream ended early")
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(pos) = buf.find("\n\n") {
            let ev: String = buf.drain(..pos + 2).collect();
            let data: String = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            if v["method"] == "notifications/progress" {
                progress.push(v["params"]["progress"].as_f64().unwrap());
                calls.release();
            } else if v["id"] == 7 {
                assert_eq!(v["result"]["content"][0]["text"], "progress:");
                done = true;
            }
        }
    }
    assert_eq!(progress, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn delete_ends_the_session() {
    let (gait, _calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let sid = init_session(&http, &url, V)
        .await
        .expect("upstream mints a session");
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let res = session_post(&http, &url, Some(&sid), V, &list)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .delete(&url)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", V)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "DELETE forwarded: {}",
        res.status()
    );
    let res = session_post(&http, &url, Some(&sid), V, &list)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "terminated session is unknown upstream");
    gait.shutdown().await;
    up_stop.cancel();
}

async fn verdict_statuses(mode: VerdictStatusMode) -> Vec<(u16, String)> {
    let (gait, calls, up_stop) = setup(|c| c.http_verdict_status = mode).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let sid = init_session(&http, &url, V).await;
    let mut out = Vec::new();
    for (i, tool) in ["echo", "delete_all", "write_file"].iter().enumerate() {
        let res = session_post(
            &http,
            &url,
            sid.as_deref(),
            V,
            &call(i as i64 + 10, tool, json!({})),
        )
        .send()
        .await
        .unwrap();
        let (status, headers, body) = body_of(res).await;
        assert_eq!(body["id"], i as i64 + 10, "the JSON-RPC id is preserved");
        if *tool != "echo" {
            assert_eq!(
                body["error"]["data"]["verdict"],
                headers["x-gait-verdict"].to_str().unwrap()
            );
            assert!(body["error"]["data"]["policy_digest"].is_string());
        }
        out.push((
            status,
            headers["x-gait-verdict"].to_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        (
            calls.get("echo"),
            calls.get("delete_all"),
            calls.get("write_file")
        ),
        (1, 0, 0)
    );
    gait.shutdown().await;
    up_stop.cancel();
    out
}

#[tokio::test]
async fn compat_answers_200_strict_maps_verdicts() {
    assert_eq!(
        verdict_statuses(VerdictStatusMode::Compat).await,
        vec![
            (200, "allow".into()),
            (200, "block".into()),
            (200, "require_approval".into())
        ]
    );
    assert_eq!(
        verdict_statuses(VerdictStatusMode::Strict).await,
        vec![
            (200, "allow".into()),
            (403, "block".into()),
            (409, "require_approval".into())
        ]
    );
}

#[tokio::test]
async fn token_auth_binds_identity_and_health_is_public() {
    let (up, calls, up_stop) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    // alice's calls are blocked by identity; bob's are not
    let policy = POLICY.replace(
        "rules:\n",
        "rules:\n  - name: block-alice\n    priority: 5\n    effect: block\n    match:\n      identities: [alice]\n",
    );
    std::fs::write(cfg.policy.as_ref().unwrap(), policy).unwrap();
    cfg.auth_mode = AuthMode::Token;
    cfg.auth_token_env = Some("GAIT_TEST_TOKENS".into());
    let gait = start_gait(dir, cfg, &[("GAIT_TEST_TOKENS", "alice=tok-a,bob=tok-b")]).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":V,"capabilities":{},"clientInfo":{"name":"t","version":"0"}}});
    let res = rpc_post(&http, &url, &init).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "missing bearer authorization");
    let res = rpc_post(&http, &url, &init)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "invalid bearer authorization");
    for p in ["/healthz", "/readyz"] {
        let res = http.get(gait.url(p)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{p} needs no auth");
    }
    // evaluate API is protected too
    let res = http
        .post(gait.url("/v1/evaluate"))
        .json(&json!({"call": {"name": "echo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // with a valid token the call goes through, and the identity is bound to the decision
    let res = rpc_post(&http, &url, &init)
        .bearer_auth("tok-b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sid = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let _ = res.bytes().await;
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let mut req = rpc_post(&http, &url, &note)
        .bearer_auth("tok-b")
        .header("mcp-protocol-version", V);
    if let Some(s) = &sid {
        req = req.header("mcp-session-id", s);
    }
    assert_eq!(req.send().await.unwrap().status(), 202);
    let mut req = rpc_post(&http, &url, &call(3, "echo", json!({"message":"x"})))
        .bearer_auth("tok-b")
        .header("mcp-protocol-version", V);
    if let Some(s) = &sid {
        req = req.header("mcp-session-id", s);
    }
    let (status, _, body) = body_of(req.send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["content"][0]["text"], "echo:x");
    assert_eq!(calls.get("echo"), 1);
    // the same call with alice's token is blocked by the identity rule
    let mut req = rpc_post(&http, &url, &call(4, "echo", json!({"message":"x"})))
        .bearer_auth("tok-a")
        .header("mcp-protocol-version", V);
    if let Some(s) = &sid {
        req = req.header("mcp-session-id", s);
    }
    let (status, _, body) = body_of(req.send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["error"]["data"]["verdict"], "block");
    assert_eq!(
        body["error"]["data"]["reason_codes"],
        json!(["matched_rule_block_alice"])
    );
    assert_eq!(calls.get("echo"), 1);
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn body_limit_413_with_and_without_content_length() {
    let (gait, calls, up_stop) = setup(|c| c.max_request_bytes = 512).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let big = call(1, "echo", json!({"message": "x".repeat(2048)}));
    let res = rpc_post(&http, &url, &big).send().await.unwrap();
    assert_eq!(res.status(), 413);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], "payload_too_large");
    // chunked (no Content-Length)
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..16).map(|_| Ok(vec![b' '; 100])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(calls.get("echo"), 0);
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn content_type_origin_and_host_checks() {
    let (gait, _calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let res = http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let res = rpc_post(&http, &url, &list)
        .header("origin", "http://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error_code"], "origin_not_allowed");
    let res = rpc_post(&http, &url, &list)
        .header("host", "evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "DNS-rebinding Host is refused on loopback"
    );
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":V,"capabilities":{},"clientInfo":{"name":"t","version":"0"}}});
    let res = rpc_post(&http, &url, &init)
        .header("origin", format!("http://localhost:{}", gait.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a loopback origin is fine");
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn batch_2025_03_26_evaluates_every_call() {
    let (gait, calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let v = "2025-03-26";
    let sid = init_session(&http, &url, v).await;
    let batch = json!([call(1, "echo", json!({})), call(2, "delete_all", json!({}))]);
    let res = session_post(&http, &url, sid.as_deref(), v, &batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-gait-verdict"], "block");
    let body: Value = res.json().await.unwrap();
    let arr = body.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[1]["error"]["data"]["verdict"], "block");
    assert_eq!(arr[0]["error"]["data"]["verdict"], "batch_rejected");
    assert_eq!((calls.get("echo"), calls.get("delete_all")), (0, 0));
    // batches are refused for later versions
    let res = session_post(&http, &url, sid.as_deref(), V, &batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn stateless_2026_header_mismatch_is_400() {
    let (gait, calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let url = gait.url("/mcp");
    let v = "2026-07-28";
    let body = call(1, "delete_all", json!({}));
    let res = rpc_post(&http, &url, &body)
        .header("mcp-protocol-version", v)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], -32020);
    let res = rpc_post(&http, &url, &body)
        .header("mcp-protocol-version", v)
        .header("mcp-method", "tools/list")
        .header("mcp-name", "delete_all")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = rpc_post(&http, &url, &body)
        .header("mcp-protocol-version", "1999-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], -32022);
    assert_eq!(calls.get("delete_all"), 0);
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504_with_request_id() {
    // a port with nothing listening
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config(dir.path(), &format!("http://{dead_addr}/mcp"));
    let gait = start_gait(dir, cfg, &[]).await;
    let http = reqwest::Client::new();
    let res = rpc_post(&http, &gait.url("/mcp"), &call(41, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["id"], 41);
    assert_eq!(b["jsonrpc"], "2.0");
    gait.shutdown().await;

    // an upstream that accepts and never answers
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &format!("http://{silent_addr}/mcp"));
    cfg.timeouts.upstream = Duration::from_millis(300);
    let gait = start_gait(dir, cfg, &[]).await;
    let res = rpc_post(&http, &gait.url("/mcp"), &call(42, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["id"], 42);
    gait.shutdown().await;
    hold.abort();
}

#[tokio::test]
async fn unknown_path_and_wrong_method() {
    let (gait, _calls, up_stop) = setup(|_| {}).await;
    let http = reqwest::Client::new();
    let res = http.get(gait.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = http.put(gait.url("/mcp")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let res = http.post(gait.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    gait.shutdown().await;
    up_stop.cancel();
}

#[tokio::test]
async fn tools_list_json_response_is_filtered() {
    // A minimal upstream that answers tools/list with plain JSON (no SSE).
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    let tools: Vec<Value> = TOOLS
                        .iter()
                        .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                        .collect();
                    let body = json!({"jsonrpc":"2.0","id":2,"result":{"tools": tools}});
                    let mut res =
                        hyper::Response::new(Full::new(bytes::Bytes::from(body.to_string())));
                    res.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, std::convert::Infallible>(res)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config(dir.path(), &format!("http://{up_addr}/mcp"));
    let gait = start_gait(dir, cfg, &[]).await;
    let http = reqwest::Client::new();
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let res = rpc_post(&http, &gait.url("/mcp"), &list)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-length").is_none_or(|l| l != "0"));
    let v: Value = res.json().await.unwrap();
    let mut names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["echo", "progress", "write_file"]);
    gait.shutdown().await;
    server.abort();
}
