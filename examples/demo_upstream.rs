//! Demo MCP upstream for release validation, chaos runs and benchmarks.
//!
//! Serves an MCP Streamable-HTTP endpoint at `/mcp` built with the `rmcp` SDK (the real thing, not
//! a mock), plus `/stats` (per-tool call counters as JSON) and `/healthz`. Invariant: every tool
//! invocation that reaches this process is counted *before* the tool runs, so a test can prove that
//! gait did or did not forward a call by reading `/stats`.
//!
//! ```text
//! cargo run --example demo_upstream -- --listen 127.0.0.1:0 --port-file /tmp/up.port
//!     [--stateless] [--json-response] [--any-host] [--mode rmcp|fast] [--name tools-a]
//! ```
//! `--mode fast` answers every JSON-RPC POST with a canned result without the SDK (the "physical
//! limit" upstream of the benchmarks). Tools: `echo`, `add`, `sleep_ms`, `hang`, `progress`,
//! `die_mid_stream`, `delete_file`, `write_file`, `plan_deploy` (the last three only pretend).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmcp::{
    Peer, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{ProgressNotificationParam, RequestMetaObject, ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use tower::Service;

type Body = BoxBody<Bytes, Infallible>;

/// Per-tool invocation counters, shared by every session of this process.
fn counters() -> &'static Mutex<BTreeMap<String, u64>> {
    static C: OnceLock<Mutex<BTreeMap<String, u64>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn count(tool: &str) {
    if let Ok(mut map) = counters().lock() {
        *map.entry(tool.to_string()).or_insert(0) += 1;
    }
}

fn stats_json(name: &str) -> String {
    let map = counters().lock().map(|m| m.clone()).unwrap_or_default();
    let total: u64 = map.values().sum();
    serde_json::json!({"name": name, "total": total, "tools": map}).to_string()
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// text to echo back
    text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SleepArgs {
    ms: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct ProgressArgs {
    steps: u32,
    interval_ms: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct PathArgs {
    path: String,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct DeployArgs {
    env: String,
}

#[derive(Debug, Clone)]
struct DemoTools {
    #[allow(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl DemoTools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Echo the text back")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        count("echo");
        text
    }

    #[tool(description = "Add two integers")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        count("add");
        a.saturating_add(b).to_string()
    }

    #[tool(description = "Sleep for ms milliseconds, then answer")]
    async fn sleep_ms(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        count("sleep_ms");
        tokio::time::sleep(Duration::from_millis(ms.min(600_000))).await;
        format!("slept {ms} ms")
    }

    #[tool(description = "Never answer (until the process stops)")]
    async fn hang(&self) -> String {
        count("hang");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "woke up".to_string()
    }

    #[tool(description = "Send `steps` progress notifications on the response stream, then answer")]
    async fn progress(
        &self,
        Parameters(ProgressArgs { steps, interval_ms }): Parameters<ProgressArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> String {
        count("progress");
        let steps = steps.min(10_000);
        if let Some(token) = meta.get_progress_token() {
            for step in 0..steps {
                let _ = peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(step))
                            .with_total(f64::from(steps))
                            .with_message(format!("step {step}")),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(interval_ms.min(60_000))).await;
            }
        }
        format!("done {steps} steps")
    }

    #[tool(description = "Send one progress notification, then kill this whole process")]
    async fn die_mid_stream(&self, meta: RequestMetaObject, peer: Peer<RoleServer>) -> String {
        count("die_mid_stream");
        if let Some(token) = meta.get_progress_token() {
            let _ = peer
                .notify_progress(ProgressNotificationParam::new(token, 0.0).with_total(2.0))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        eprintln!("demo_upstream: die_mid_stream called, exiting");
        std::process::exit(3);
    }

    #[tool(description = "Pretend to delete a file (never touches the disk)")]
    fn delete_file(&self, Parameters(args): Parameters<PathArgs>) -> String {
        count("delete_file");
        format!("pretended to delete {}", args.path)
    }

    #[tool(description = "Pretend to write a file (never touches the disk)")]
    fn write_file(&self, Parameters(args): Parameters<PathArgs>) -> String {
        count("write_file");
        let n = args.content.map(|c| c.len()).unwrap_or(0);
        format!("pretended to write {n} bytes to {}", args.path)
    }

    #[tool(description = "Pretend to deploy")]
    fn plan_deploy(&self, Parameters(DeployArgs { env }): Parameters<DeployArgs>) -> String {
        count("plan_deploy");
        format!("pretended to deploy to {env}")
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("gait demo upstream: test tools with call counters at /stats")
    }
}

#[derive(Debug)]
struct Opts {
    listen: String,
    port_file: Option<String>,
    stateless: bool,
    json_response: bool,
    fast: bool,
    any_host: bool,
    name: String,
}

fn parse_opts() -> Result<Opts, String> {
    let mut opts = Opts {
        listen: "127.0.0.1:0".to_string(),
        port_file: None,
        stateless: false,
        json_response: false,
        fast: false,
        any_host: false,
        name: "demo-upstream".to_string(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--listen" => opts.listen = value("--listen")?,
            "--port-file" => opts.port_file = Some(value("--port-file")?),
            "--name" => opts.name = value("--name")?,
            "--stateless" => opts.stateless = true,
            "--json-response" => opts.json_response = true,
            "--any-host" => opts.any_host = true,
            "--mode" => match value("--mode")?.as_str() {
                "rmcp" => opts.fast = false,
                "fast" => opts.fast = true,
                other => return Err(format!("unknown --mode {other} (rmcp|fast)")),
            },
            "-h" | "--help" => {
                return Err("usage: demo_upstream [--listen ADDR] [--port-file F] \
                            [--stateless] [--json-response] [--any-host] [--mode rmcp|fast] [--name N]"
                    .to_string());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(opts)
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// The `--mode fast` handler: canned JSON-RPC answers, no SDK, no sessions kept.
async fn fast_mcp(req: Request<Incoming>) -> Response<Body> {
    let session = req.headers().get("mcp-session-id").cloned();
    let Ok(collected) = req.into_body().collect().await else {
        return full(StatusCode::BAD_REQUEST, "text/plain", "bad body");
    };
    let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&collected.to_bytes()) else {
        return full(
            StatusCode::BAD_REQUEST,
            "application/json",
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
        );
    };
    let Some(id) = msg.get("id").cloned() else {
        return full(StatusCode::ACCEPTED, "text/plain", "");
    };
    let method = msg.get("method").and_then(|m| m.as_str()).unwrap_or("");
    let result = match method {
        "initialize" => serde_json::json!({
            "protocolVersion": msg.pointer("/params/protocolVersion").cloned()
                .unwrap_or(serde_json::json!("2025-06-18")),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "demo-upstream-fast", "version": "0.1.0"}
        }),
        "tools/list" => serde_json::json!({"tools": [{
            "name": "echo", "description": "Echo the text back",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}
        }]}),
        "tools/call" => {
            count(
                msg.pointer("/params/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?"),
            );
            serde_json::json!({"content": [{"type": "text", "text": "ok"}], "isError": false})
        }
        _ => serde_json::json!({}),
    };
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    let mut resp = full(StatusCode::OK, "application/json", body);
    let sid = session.unwrap_or(http::HeaderValue::from_static("fast-session-0001"));
    resp.headers_mut().insert("mcp-session-id", sid);
    resp
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("demo_upstream: {e}");
            return std::process::ExitCode::from(6);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo_upstream: bind {}: {e}", opts.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let addr: SocketAddr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo_upstream: local_addr: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    if let Some(path) = &opts.port_file {
        let tmp = format!("{path}.tmp");
        if std::fs::write(&tmp, format!("{}\n", addr.port()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .is_err()
        {
            eprintln!("demo_upstream: cannot write port file {path}");
            return std::process::ExitCode::from(1);
        }
    }
    println!("demo_upstream {} listening on http://{addr}/mcp", opts.name);

    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!opts.stateless)
        .with_json_response(opts.json_response);
    if opts.any_host {
        // Containers: the proxy in front of us forwards `Host: tools-a:8080`, not a loopback name.
        config = config.disable_allowed_hosts();
    }
    let mcp: StreamableHttpService<DemoTools, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(DemoTools::new()), Default::default(), config);
    let name: Arc<str> = Arc::from(opts.name.as_str());
    let fast = opts.fast;

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("demo_upstream: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mcp = mcp.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut mcp = mcp.clone();
                let name = name.clone();
                async move {
                    let path = req.uri().path().to_string();
                    let resp = match path.as_str() {
                        "/healthz" => full(StatusCode::OK, "application/json", r#"{"ok":true}"#),
                        "/stats" => full(StatusCode::OK, "application/json", stats_json(&name)),
                        "/mcp" | "/mcp/" if fast => fast_mcp(req).await,
                        "/mcp" | "/mcp/" => match mcp.call(req).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        },
                        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found"),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
