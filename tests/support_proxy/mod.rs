//! Shared helpers for the proxy integration tests: a real rmcp upstream MCP server on
//! 127.0.0.1:0 whose tools count their calls, and gait started in-process in front of it.
#![allow(dead_code)]

use gait::server::config::{ServeConfig, UpstreamConfig};
use gait::server::{Runtime, default_loader, serve_with};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Policy used by most tests: `delete_all` blocked, `write_file` needs approval,
/// `secret_tool` blocked (and therefore hidden from tools/list), everything else allowed.
pub const POLICY: &str = "schema_id: gait.gate.policy
schema_version: 1.0.0
default_verdict: allow
rules:
  - name: block-delete
    priority: 10
    effect: block
    match:
      tool_names: [delete_all, secret_tool]
    reason_codes: [destructive_tool_blocked]
  - name: approve-write
    priority: 20
    effect: require_approval
    match:
      tool_names: [write_file]
";

/// Per-tool call counters of the upstream, and the gate of the `progress` tool: with
/// `{"gated": true}` it waits for one permit of `release` after each progress notification.
#[derive(Clone, Debug)]
pub struct Calls(
    pub Arc<Mutex<BTreeMap<String, usize>>>,
    pub Arc<tokio::sync::Semaphore>,
);

impl Default for Calls {
    fn default() -> Self {
        Calls(Arc::default(), Arc::new(tokio::sync::Semaphore::new(0)))
    }
}

impl Calls {
    pub fn get(&self, tool: &str) -> usize {
        self.0.lock().unwrap().get(tool).copied().unwrap_or(0)
    }
    /// Let the gated `progress` tool take one more step.
    pub fn release(&self) {
        self.1.add_permits(1);
    }
    fn hit(&self, tool: &str) {
        *self.0.lock().unwrap().entry(tool.to_string()).or_default() += 1;
    }
}

#[derive(Clone)]
pub struct Upstream {
    pub calls: Calls,
}

fn schema() -> Arc<serde_json::Map<String, serde_json::Value>> {
    Arc::new(
        serde_json::json!({"type": "object", "properties": {"message": {"type": "string"}}})
            .as_object()
            .unwrap()
            .clone(),
    )
}

pub const TOOLS: [&str; 5] = [
    "echo",
    "delete_all",
    "write_file",
    "progress",
    "secret_tool",
];

impl ServerHandler for Upstream {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            TOOLS
                .iter()
                .map(|n| Tool::new(*n, format!("test tool {n}"), schema()))
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        self.calls.hit(&name);
        if name == "progress" {
            let token = context
                .meta
                .get_progress_token()
                .ok_or_else(|| ErrorData::invalid_params("progress token required", None))?;
            for step in 0..5 {
                let _ = context
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), step as f64).with_total(5.0),
                    )
                    .await;
                let gated = request
                    .arguments
                    .as_ref()
                    .and_then(|a| a.get("gated"))
                    .and_then(|g| g.as_bool())
                    .unwrap_or(false);
                if gated {
                    let permit =
                        tokio::time::timeout(Duration::from_secs(10), self.calls.1.acquire())
                            .await
                            .map_err(|_| {
                                ErrorData::internal_error("progress gate timed out", None)
                            })?;
                    if let Ok(p) = permit {
                        p.forget();
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            }
        }
        let msg = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("{name}:{msg}"))]).into())
    }
}

/// Start the rmcp upstream; returns its `/mcp` URL, its counters and a stop token.
pub async fn start_upstream() -> (String, Calls, CancellationToken) {
    start_upstream_with(StreamableHttpServerConfig::default()).await
}

pub async fn start_upstream_with(
    cfg: StreamableHttpServerConfig,
) -> (String, Calls, CancellationToken) {
    let calls = Calls::default();
    let stop = CancellationToken::new();
    let up = Upstream {
        calls: calls.clone(),
    };
    let service: StreamableHttpService<Upstream, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(up.clone()),
        Arc::new(LocalSessionManager::default()),
        cfg.with_cancellation_token(stop.child_token()),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(v) => v, Err(_) => continue },
                () = token.cancelled() => break,
            };
            let svc = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/mcp"), calls, stop)
}

/// A running gait.
pub struct Gait {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    pub handle: JoinHandle<Result<(), gait::server::ServeError>>,
    pub dir: tempfile::TempDir,
    pub policy: PathBuf,
}

impl Gait {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub async fn shutdown(self) -> tempfile::TempDir {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("gait did not stop")
            .unwrap()
            .unwrap();
        self.dir
    }
}

/// Base config for a gait in front of `upstream` with `POLICY` in a temp dir.
pub fn base_config(dir: &Path, upstream: &str) -> ServeConfig {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        policy: Some(policy),
        trace_dir: dir.join("traces"),
        session_dir: dir.join("sessions"),
        ..ServeConfig::default()
    };
    if !upstream.is_empty() {
        cfg.upstreams = vec![UpstreamConfig::parse(upstream).unwrap()];
    }
    cfg.timeouts.policy_poll = Duration::from_millis(100);
    cfg.timeouts.drain = Duration::from_secs(2);
    cfg
}

/// Start gait with `cfg` (listen address is replaced by an ephemeral port) and env `env`.
pub async fn start_gait(
    dir: tempfile::TempDir,
    mut cfg: ServeConfig,
    env: &[(&str, &str)],
) -> Gait {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    cfg.listen = addr;
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let loader = default_loader(&cfg).unwrap();
    let rt = Runtime::from_config(&cfg, |k| env.get(k).cloned(), loader).unwrap();
    let stop = CancellationToken::new();
    let policy = cfg.policy.clone().unwrap();
    let handle = tokio::spawn(serve_with(
        listener,
        cfg,
        rt,
        stop.clone().cancelled_owned(),
    ));
    Gait {
        addr,
        stop,
        handle,
        dir,
        policy,
    }
}

/// Upstream + gait with the default config plus `tweak`.
pub async fn setup(tweak: impl FnOnce(&mut ServeConfig)) -> (Gait, Calls, CancellationToken) {
    let (up, calls, up_stop) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(dir.path(), &up);
    tweak(&mut cfg);
    (start_gait(dir, cfg, &[]).await, calls, up_stop)
}

/// A JSON-RPC POST as an MCP client would send it.
pub fn rpc_post(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
}

/// Count the trace files written so far.
pub fn trace_files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir.join("traces")) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Initialize an MCP session with raw HTTP; returns the session id (if the upstream minted one).
pub async fn init_session(client: &reqwest::Client, url: &str, version: &str) -> Option<String> {
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "gait-test", "version": "0"}}
    });
    let res = rpc_post(client, url, &init).send().await.unwrap();
    assert_eq!(res.status(), 200, "initialize through gait");
    let sid = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let _ = res.bytes().await.unwrap();
    let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let mut req = rpc_post(client, url, &note).header("mcp-protocol-version", version);
    if let Some(s) = &sid {
        req = req.header("mcp-session-id", s);
    }
    let res = req.send().await.unwrap();
    assert_eq!(
        res.status(),
        202,
        "initialized notification passes through as 202"
    );
    sid
}

/// A session-bound POST.
pub fn session_post(
    client: &reqwest::Client,
    url: &str,
    sid: Option<&str>,
    version: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    let mut req = rpc_post(client, url, body).header("mcp-protocol-version", version);
    if let Some(s) = sid {
        req = req.header("mcp-session-id", s);
    }
    req
}

/// The JSON-RPC message of a response body that is either JSON or a short SSE stream.
pub fn rpc_body(content_type: &str, body: &[u8]) -> serde_json::Value {
    if content_type.starts_with("text/event-stream") {
        let text = std::str::from_utf8(body).unwrap();
        for ev in text.split("\n\n") {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            if data.is_empty() {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&data.join("\n"))
                && (v.get("result").is_some() || v.get("error").is_some())
            {
                return v;
            }
        }
        panic!("no JSON-RPC response in SSE body: {text}");
    }
    serde_json::from_slice(body).unwrap()
}

/// Prometheus text → (name, labels) → value.
pub type Series = Vec<(String, BTreeMap<String, String>, f64)>;

pub fn parse_metrics(text: &str) -> Series {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (metric, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap();
        let (name, labels) = match metric.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').unwrap();
                let mut m = BTreeMap::new();
                for kv in inner.split("\",").filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap();
                    m.insert(k.to_string(), v.trim_matches('"').to_string());
                }
                (n.to_string(), m)
            }
            None => (metric.to_string(), BTreeMap::new()),
        };
        out.push((name, labels, value));
    }
    out
}

/// Sum of the series of `name` whose labels include `want`.
pub fn value(s: &Series, name: &str, want: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

pub async fn scrape(admin: std::net::SocketAddr) -> Series {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_metrics(&text)
}

/// Poll `/metrics` until `f` holds (bounded: 10 s).
pub async fn scrape_until(admin: std::net::SocketAddr, f: impl Fn(&Series) -> bool) -> Series {
    for _ in 0..400 {
        let m = scrape(admin).await;
        if f(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    scrape(admin).await
}
