//! The inline gate: parses MCP JSON-RPC POST bodies and evaluate-API requests, decides every
//! `tools/call` with the current policy, and filters `tools/list` responses.
//!
//! The decisions travel inward as a [`GateOutcome`] request extension; the verdict layer turns
//! non-allow decisions into JSON-RPC errors and the trace layer records them. Invariant: this
//! layer never contacts the upstream itself and never touches the filesystem on the proxy
//! path (evaluate-API artifact-path confinement is the one opt-in exception, done with async
//! I/O); every `tools/call` of a batch is decided.

use super::decide::{DecideError, DecideRequest, Decision, GateHandle};
use super::error::{BoxResponse, ResBody, json_response, reject};
use super::evaluate::{ArtifactPolicy, EvalRequest};
use super::jsonrpc::{self, Messages};
use super::route::{EvalFormat, Route};
use super::{auth::Identity, sse};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// One decided `tools/call`.
#[derive(Debug, Clone)]
pub struct CallDecision {
    pub id: Value,
    pub name: String,
    pub result: Result<Decision, DecideError>,
}

/// Gate result for an MCP POST.
#[derive(Debug, Clone, Default)]
pub struct McpOutcome {
    pub batch: bool,
    /// Ids of every request element, in order (for batch denials and upstream errors).
    pub request_ids: Vec<Value>,
    pub calls: Vec<CallDecision>,
    /// The body contains an `initialize` request (the inbound session header is dropped).
    pub initialize: bool,
}

impl McpOutcome {
    /// True when some call is not plainly allowed (non-allow verdict or evaluation error).
    pub fn denied(&self) -> bool {
        self.calls
            .iter()
            .any(|c| !matches!(&c.result, Ok(d) if d.verdict == crate::verdict::Verdict::Allow))
    }
}

/// Gate result for an evaluate-API request.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    pub format: EvalFormat,
    pub decision: Decision,
    /// Client-chosen (and confined) trace path.
    pub trace_path: Option<PathBuf>,
    pub warnings: Vec<String>,
    /// The session the decision is journaled in (request `session_id`, else the call's).
    pub session_id: Option<String>,
    /// Client-chosen (and confined) session journal.
    pub session_journal: Option<PathBuf>,
    /// Checkpoint every this many events (0: never).
    pub checkpoint_interval: i64,
}

/// The request extension carrying decisions inward.
#[derive(Debug, Clone)]
pub enum GateOutcome {
    Mcp(McpOutcome),
    Eval(Box<EvalOutcome>),
}

/// Everything the gate needs besides the policy.
#[derive(Debug)]
pub struct GateSettings {
    pub gate: GateHandle,
    pub upstream_names: Vec<String>,
    pub workspace: Option<String>,
    pub risk_class: Option<String>,
    pub default_adapter: String,
    pub artifacts: ArtifactPolicy,
    /// Largest `tools/list` JSON response the filter will buffer.
    pub max_filter_bytes: usize,
    /// Metrics and rate limits (absent in unit tests that build the stack without ops).
    pub ops: Option<super::OpsHooks>,
}

#[derive(Debug, Clone)]
pub struct GateLayer {
    settings: Arc<GateSettings>,
}

impl GateLayer {
    pub fn new(settings: Arc<GateSettings>) -> Self {
        GateLayer { settings }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            settings: self.settings.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Gate<S> {
    inner: S,
    settings: Arc<GateSettings>,
}

fn rpc_reject(status: StatusCode, id: &Value, code: i64, msg: &str) -> Response<ResBody> {
    json_response(status, &jsonrpc::error(id, code, msg, None))
}

impl<S> Service<Request<Bytes>> for Gate<S>
where
    S: Service<Request<Bytes>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = BoxResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = self.settings.clone();
        Box::pin(async move {
            match req.extensions().get::<Route>().copied() {
                Some(Route::Mcp(idx)) if req.method() == Method::POST => {
                    let (outcome, filter_id) = match gate_mcp(&settings, idx, &req) {
                        Ok(v) => v,
                        Err(res) => return Ok(res),
                    };
                    req.extensions_mut().insert(GateOutcome::Mcp(outcome));
                    let res = inner.call(req).await?;
                    match filter_id {
                        Some(id) => Ok(filter_tools_list(&settings, id, res).await),
                        None => Ok(res),
                    }
                }
                Some(Route::Evaluate(format)) => match gate_eval(&settings, format, &req).await {
                    Ok(outcome) => {
                        req.extensions_mut()
                            .insert(GateOutcome::Eval(Box::new(outcome)));
                        inner.call(req).await
                    }
                    Err(res) => Ok(res),
                },
                _ => inner.call(req).await,
            }
        })
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Decide an MCP POST. Returns the outcome and, for a `tools/list` request, its id.
#[allow(clippy::result_large_err)]
fn gate_mcp(
    settings: &GateSettings,
    upstream: usize,
    req: &Request<Bytes>,
) -> Result<(McpOutcome, Option<Value>), Response<ResBody>> {
    let headers = req.headers();
    let version = header_str(headers, "mcp-protocol-version").unwrap_or(jsonrpc::DEFAULT_VERSION);
    if !jsonrpc::SUPPORTED_VERSIONS.contains(&version) {
        let data = json!({"supported": jsonrpc::SUPPORTED_VERSIONS, "requested": version});
        return Err(json_response(
            StatusCode::BAD_REQUEST,
            &jsonrpc::error(
                &Value::Null,
                jsonrpc::UNSUPPORTED_VERSION,
                "unsupported MCP-Protocol-Version",
                Some(data),
            ),
        ));
    }
    let msgs = Messages::parse(req.body()).map_err(|e| {
        rpc_reject(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            jsonrpc::PARSE_ERROR,
            &e,
        )
    })?;
    if msgs.batch && version != "2025-03-26" {
        return Err(rpc_reject(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            jsonrpc::INVALID_REQUEST,
            "JSON-RPC batches are only allowed with protocol version 2025-03-26",
        ));
    }
    if version == jsonrpc::STATELESS_VERSION {
        for m in &msgs.items {
            check_mirrored_headers(headers, m)?;
        }
    }
    let identity = req.extensions().get::<Identity>().map(|i| i.0.clone());
    let session_id = header_str(headers, "mcp-session-id").filter(|s| !s.is_empty());
    let server_id = settings
        .upstream_names
        .get(upstream)
        .map(String::as_str)
        .unwrap_or("default");
    let mut outcome = McpOutcome {
        batch: msgs.batch,
        request_ids: msgs.request_ids(),
        calls: Vec::new(),
        initialize: msgs
            .items
            .iter()
            .any(|m| jsonrpc::method(m) == Some("initialize")),
    };
    let mut filter_id = None;
    let decider = settings.gate.current();
    for m in &msgs.items {
        match jsonrpc::method(m) {
            Some("tools/call") => {
                let params = m.get("params");
                let name = params
                    .and_then(|p| p.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let mut ctx = Map::new();
                if let Some(id) = &identity {
                    ctx.insert("identity".into(), Value::String(id.to_string()));
                }
                if let Some(s) = session_id {
                    ctx.insert("session_id".into(), s.into());
                }
                if let Some(w) = &settings.workspace {
                    ctx.insert("workspace".into(), w.clone().into());
                }
                if let Some(r) = &settings.risk_class {
                    ctx.insert("risk_class".into(), r.clone().into());
                }
                let args = match params.and_then(|p| p.get("arguments")) {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(a) => a.clone(),
                };
                let mut payload = Map::new();
                payload.insert("name".into(), Value::String(name.clone()));
                payload.insert("args".into(), args);
                payload.insert("context".into(), Value::Object(ctx));
                let mut server = Map::new();
                server.insert("server_id".into(), Value::String(server_id.to_string()));
                payload.insert("server".into(), Value::Object(server));
                let payload = Value::Object(payload);
                let mut result = decider.decide(&DecideRequest {
                    adapter: "mcp",
                    payload: &payload,
                    run_id: None,
                    output: false,
                });
                if let (Some(ops), Ok(d)) = (&settings.ops, &mut result) {
                    enforce_rate_limits(ops, identity.as_deref().unwrap_or(""), &name, d);
                    let reason = d.reason_codes.first().map(String::as_str);
                    ops.telemetry.decision(d.verdict, reason);
                    ops.telemetry.tool_call(&name, d.verdict);
                }
                outcome.calls.push(CallDecision {
                    id: jsonrpc::id_of(m),
                    name,
                    result,
                });
            }
            Some("tools/list") if !msgs.batch => filter_id = Some(jsonrpc::id_of(m)),
            _ => {}
        }
    }
    Ok((outcome, filter_id))
}

/// After an allow: the global per-token limit, then the matched rules' `rate_limit`. A refused
/// call becomes `block` / `rate_limit_exceeded` with a `Retry-After` hint; its signed trace
/// record says `block` too (rules and digests stay the engine's).
fn enforce_rate_limits(ops: &super::OpsHooks, identity: &str, tool: &str, d: &mut Decision) {
    use crate::verdict::Verdict;
    if d.verdict != Verdict::Allow {
        return;
    }
    let limiter = &ops.rate_limiter;
    let refused = limiter.check_token(identity).err().or_else(|| {
        d.rate_limit
            .as_ref()
            .and_then(|spec| limiter.check(identity, tool, spec).err())
    });
    let Some(r) = refused else { return };
    ops.telemetry.rate_limited(r.scope);
    d.verdict = Verdict::Block;
    d.reason_codes = vec!["rate_limit_exceeded".to_string()];
    d.retry_after = Some(r.retry_after_secs());
    if let Some(t) = d
        .trace
        .as_ref()
        .and_then(|t| t.with_verdict(Verdict::Block))
    {
        d.trace = Some(t);
    }
    d.output.insert("verdict".into(), "block".into());
    d.output
        .insert("reason_codes".into(), json!(["rate_limit_exceeded"]));
}

#[allow(clippy::result_large_err)]
fn check_mirrored_headers(headers: &HeaderMap, m: &Value) -> Result<(), Response<ResBody>> {
    let Some(method) = jsonrpc::method(m) else {
        return Ok(());
    };
    let id = jsonrpc::id_of(m);
    let mismatch = |what: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &jsonrpc::error(
                &id,
                jsonrpc::HEADER_MISMATCH,
                &format!("{what} header does not match the request body"),
                None,
            ),
        )
    };
    if let Some(h) = header_str(headers, "mcp-method")
        && h != method
    {
        return Err(mismatch("Mcp-Method"));
    }
    if let Some(h) = header_str(headers, "mcp-name") {
        let body_name = jsonrpc::mirrored_name(m);
        if body_name
            .map(|b| decode_header_value(h) != b)
            .unwrap_or(true)
        {
            return Err(mismatch("Mcp-Name"));
        }
    } else if jsonrpc::mirrored_name(m).is_some() && header_str(headers, "mcp-method").is_some() {
        return Err(mismatch("Mcp-Name"));
    }
    Ok(())
}

/// Decode `=?base64?…?=` header values (2026-07-28 non-ASCII encoding).
fn decode_header_value(h: &str) -> String {
    use base64::Engine as _;
    if let Some(inner) = h
        .strip_prefix("=?base64?")
        .and_then(|s| s.strip_suffix("?="))
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(inner)
        && let Ok(s) = String::from_utf8(bytes)
    {
        return s;
    }
    h.to_string()
}

async fn gate_eval(
    settings: &GateSettings,
    format: EvalFormat,
    req: &Request<Bytes>,
) -> Result<EvalOutcome, Response<ResBody>> {
    let bad = |msg: String| reject(StatusCode::BAD_REQUEST, "bad_request", msg);
    let parsed = EvalRequest::parse(req.body()).map_err(bad)?;
    let checked = settings.artifacts.check(&parsed).await.map_err(bad)?;
    let adapter = parsed
        .adapter
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(&settings.default_adapter)
        .to_ascii_lowercase();
    let call = parsed.call.clone().unwrap_or(Value::Null);
    let decider = settings.gate.current();
    let mut decision = decider
        .decide(&DecideRequest {
            adapter: &adapter,
            payload: &call,
            run_id: parsed.run_id.as_deref(),
            output: true,
        })
        .map_err(|e| bad(e.0))?;
    // The same limits as the MCP path: the per-token limit and the policy's `rate_limit`.
    if let Some(ops) = &settings.ops {
        let identity = req.extensions().get::<Identity>().map(|i| i.0.clone());
        let tool = decision.tool_name.clone();
        enforce_rate_limits(ops, identity.as_deref().unwrap_or(""), &tool, &mut decision);
        let reason = decision.reason_codes.first().map(String::as_str);
        ops.telemetry.decision(decision.verdict, reason);
        ops.telemetry.tool_call(&tool, decision.verdict);
    }
    // The session the decision is journaled in is the one the response names.
    let session_id = parsed.session();
    if let Some(s) = &session_id
        && decision.session_id.as_ref() != Some(s)
    {
        decision.session_id = Some(s.clone());
        decision
            .output
            .insert("session_id".into(), s.clone().into());
    }
    Ok(EvalOutcome {
        format,
        decision,
        trace_path: checked.trace_path,
        warnings: checked.warnings,
        session_id,
        session_journal: checked.session_journal,
        checkpoint_interval: parsed.checkpoint_interval.unwrap_or(0).max(0),
    })
}

/// Filter a `tools/list` response (JSON or SSE) to tools the policy could allow.
async fn filter_tools_list(
    settings: &Arc<GateSettings>,
    id: Value,
    res: Response<ResBody>,
) -> Response<ResBody> {
    if !res.status().is_success() {
        return res;
    }
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let gate = settings.gate.clone();
    if ct.starts_with("text/event-stream") {
        let (mut parts, body) = res.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = sse::map_events(body, move |data: &str| {
            let mut v: Value = serde_json::from_str(data).ok()?;
            if v.get("id") != Some(&id) {
                return None;
            }
            filter_tools_value(&gate, &mut v).then(|| v.to_string())
        });
        return Response::from_parts(parts, body);
    }
    if !ct.starts_with("application/json") {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match collect_bounded(body, settings.max_filter_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return reject(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("read upstream tools/list: {e}"),
            );
        }
    };
    let mut v: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => {
            return Response::from_parts(parts, super::error::full(bytes));
        }
    };
    if filter_tools_value(&gate, &mut v) {
        parts.headers.remove(header::CONTENT_LENGTH);
        let out = serde_json::to_vec(&v).unwrap_or_default();
        return Response::from_parts(parts, super::error::full(out));
    }
    Response::from_parts(parts, super::error::full(bytes))
}

/// Collect a response body, refusing more than `max` bytes.
async fn collect_bounded(mut body: ResBody, max: usize) -> Result<Bytes, String> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(d) = frame.into_data() {
            if buf.len() + d.len() > max {
                return Err("response too large to filter".into());
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(buf.freeze())
}

/// Remove tools the policy can never allow from `result.tools`; true if it changed anything.
pub fn filter_tools_value(gate: &GateHandle, v: &mut Value) -> bool {
    let Some(tools) = v
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let decider = gate.current();
    let before = tools.len();
    tools.retain(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| decider.could_allow_tool(n))
    });
    tools.len() != before
}
