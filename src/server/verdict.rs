//! Verdict-to-response mapping.
//!
//! For MCP POSTs with a non-allow decision this layer answers itself (the upstream is never
//! contacted) with a JSON-RPC error that carries the original `id` and a stable `error.data`
//! (`verdict`, `reason_codes`, `violations`, `trace_id`, `policy_digest`, `tool_name`). For the
//! evaluate API it maps the status. Every gated response gets `X-Gait-Verdict`.
//!
//! Status mapping: `compat` → 200 always; `strict` → block 403, require_approval/dry_run 409,
//! evaluation error 400, allow 200.

use super::config::VerdictStatusMode;
use super::error::{ResBody, json_response};
use super::gate::{CallDecision, GateOutcome, McpOutcome};
use super::jsonrpc;
use crate::verdict::Verdict;
use futures_util::future::{BoxFuture, Either};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use tower::{Layer, Service};

pub const VERDICT_HEADER: &str = "x-gait-verdict";

#[derive(Debug, Clone, Copy)]
pub struct VerdictLayer {
    mode: VerdictStatusMode,
}

impl VerdictLayer {
    pub fn new(mode: VerdictStatusMode) -> Self {
        VerdictLayer { mode }
    }
}

impl<S> Layer<S> for VerdictLayer {
    type Service = VerdictMap<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerdictMap {
            inner,
            mode: self.mode,
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerdictMap<S> {
    inner: S,
    mode: VerdictStatusMode,
}

/// HTTP status of a verdict under `mode`.
pub fn status_for(mode: VerdictStatusMode, v: Verdict) -> StatusCode {
    match (mode, v) {
        (VerdictStatusMode::Compat, _) | (_, Verdict::Allow) => StatusCode::OK,
        (VerdictStatusMode::Strict, Verdict::Block) => StatusCode::FORBIDDEN,
        (VerdictStatusMode::Strict, Verdict::RequireApproval | Verdict::DryRun) => {
            StatusCode::CONFLICT
        }
    }
}

type Fut<F> = Either<Ready<Result<Response<ResBody>, Infallible>>, BoxFuture<'static, F>>;

impl<S, B> Service<Request<B>> for VerdictMap<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = Fut<Result<Response<ResBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mode = self.mode;
        match req.extensions().get::<GateOutcome>() {
            Some(GateOutcome::Mcp(o)) if o.denied() => Either::Left(ready(Ok(deny(mode, o)))),
            Some(GateOutcome::Mcp(o)) if !o.calls.is_empty() => {
                let fut = self.inner.call(req);
                Either::Right(Box::pin(async move {
                    let mut res = fut.await?;
                    res.headers_mut()
                        .insert(VERDICT_HEADER, HeaderValue::from_static("allow"));
                    Ok(res)
                }))
            }
            Some(GateOutcome::Eval(o)) => {
                let v = o.decision.verdict;
                let retry_after = o.decision.retry_after;
                let fut = self.inner.call(req);
                Either::Right(Box::pin(async move {
                    let mut res = fut.await?;
                    if res.status() == StatusCode::OK {
                        match retry_after {
                            // a rate-limit refusal: 429 + Retry-After in strict mode
                            Some(secs)
                                if mode == VerdictStatusMode::Strict && v == Verdict::Block =>
                            {
                                *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                                res.headers_mut().insert(
                                    http::header::RETRY_AFTER,
                                    HeaderValue::from(secs.max(1)),
                                );
                            }
                            _ => *res.status_mut() = status_for(mode, v),
                        }
                    }
                    res.headers_mut()
                        .insert(VERDICT_HEADER, HeaderValue::from_static(v.as_str()));
                    Ok(res)
                }))
            }
            _ => {
                let fut = self.inner.call(req);
                Either::Right(Box::pin(fut))
            }
        }
    }
}

/// The JSON-RPC error for one decided call.
pub fn call_error(c: &CallDecision) -> Value {
    match &c.result {
        Ok(d) => jsonrpc::error(
            &c.id,
            jsonrpc::POLICY_DENIED,
            &format!(
                "gait: tool call {:?} not allowed ({})",
                d.tool_name, d.verdict
            ),
            Some(json!({
                "verdict": d.verdict.as_str(),
                "reason_codes": d.reason_codes,
                "violations": d.violations,
                "trace_id": d.trace_id,
                "policy_digest": d.policy_digest,
                "tool_name": d.tool_name,
            })),
        ),
        Err(e) => jsonrpc::error(
            &c.id,
            jsonrpc::INVALID_PARAMS,
            &format!("gait: tool call {:?} could not be evaluated: {e}", c.name),
            Some(json!({"verdict": "error", "reason_codes": ["gate_evaluation_error"]})),
        ),
    }
}

fn deny(mode: VerdictStatusMode, o: &McpOutcome) -> Response<ResBody> {
    // The most restrictive outcome decides the status and the header; an evaluation error
    // counts as block for the header and 400 in strict mode.
    let mut worst = Verdict::Allow;
    let mut error = false;
    for c in &o.calls {
        match &c.result {
            Ok(d) => worst = worst.max(d.verdict),
            Err(_) => error = true,
        }
    }
    let retry_after = o
        .calls
        .iter()
        .filter_map(|c| c.result.as_ref().ok().and_then(|d| d.retry_after))
        .max();
    let status = if error && mode == VerdictStatusMode::Strict {
        StatusCode::BAD_REQUEST
    } else if retry_after.is_some() && mode == VerdictStatusMode::Strict && worst == Verdict::Block
    {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        status_for(mode, if error { Verdict::Block } else { worst })
    };
    let header = if error && worst == Verdict::Allow {
        "error"
    } else {
        worst.as_str()
    };
    let body = if o.batch {
        let mut out = Vec::new();
        for id in &o.request_ids {
            match o.calls.iter().find(|c| &c.id == id) {
                Some(c) if !matches!(&c.result, Ok(d) if d.verdict == Verdict::Allow) => {
                    out.push(call_error(c))
                }
                _ => out.push(jsonrpc::error(
                    id,
                    jsonrpc::POLICY_DENIED,
                    "gait: batch not forwarded because another tools/call in it was not allowed",
                    Some(json!({"verdict": "batch_rejected"})),
                )),
            }
        }
        Value::Array(out)
    } else {
        o.calls.first().map(call_error).unwrap_or(Value::Null)
    };
    let mut res = json_response(status, &body);
    res.headers_mut()
        .insert(VERDICT_HEADER, HeaderValue::from_static(header));
    if status == StatusCode::TOO_MANY_REQUESTS
        && let Some(secs) = retry_after
    {
        res.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::decide::Decision;
    use crate::server::error::empty;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{ServiceBuilder, ServiceExt};

    fn decision(v: Verdict) -> Decision {
        Decision {
            verdict: v,
            reason_codes: vec![format!("default_{v}")],
            violations: vec![],
            trace_id: "t".repeat(24),
            policy_digest: "p".repeat(64),
            intent_digest: "i".repeat(64),
            tool_name: "tool.x".into(),
            run_id: "run".into(),
            session_id: None,
            output: Default::default(),
            rate_limit: None,
            retry_after: None,
            trace: None,
        }
    }

    fn outcome(v: Verdict) -> GateOutcome {
        GateOutcome::Mcp(McpOutcome {
            initialize: false,
            batch: false,
            request_ids: vec![json!(9)],
            calls: vec![CallDecision {
                id: json!(9),
                name: "tool.x".into(),
                result: Ok(decision(v)),
            }],
        })
    }

    async fn run(
        mode: VerdictStatusMode,
        o: GateOutcome,
        hits: Arc<AtomicUsize>,
    ) -> Response<ResBody> {
        let mut req = Request::new(());
        req.extensions_mut().insert(o);
        ServiceBuilder::new()
            .layer(VerdictLayer::new(mode))
            .service_fn(move |_r: Request<()>| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(empty()))
                }
            })
            .oneshot(req)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn statuses_per_mode() {
        let cases = [
            (VerdictStatusMode::Compat, Verdict::Block, 200),
            (VerdictStatusMode::Strict, Verdict::Block, 403),
            (VerdictStatusMode::Strict, Verdict::RequireApproval, 409),
            (VerdictStatusMode::Strict, Verdict::DryRun, 409),
            (VerdictStatusMode::Compat, Verdict::DryRun, 200),
        ];
        for (mode, v, status) in cases {
            let hits = Arc::new(AtomicUsize::new(0));
            let res = run(mode, outcome(v), hits.clone()).await;
            assert_eq!(res.status().as_u16(), status, "{mode:?} {v}");
            assert_eq!(res.headers()[VERDICT_HEADER], v.as_str());
            assert_eq!(hits.load(Ordering::SeqCst), 0);
            let body: Value =
                serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes())
                    .unwrap();
            assert_eq!(body["id"], 9);
            assert_eq!(body["error"]["code"], jsonrpc::POLICY_DENIED);
            assert_eq!(body["error"]["data"]["verdict"], v.as_str());
            assert_eq!(body["error"]["data"]["trace_id"], "t".repeat(24));
        }
    }

    #[tokio::test]
    async fn allow_reaches_inner_with_header() {
        let hits = Arc::new(AtomicUsize::new(0));
        let res = run(
            VerdictStatusMode::Strict,
            outcome(Verdict::Allow),
            hits.clone(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[VERDICT_HEADER], "allow");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn batch_denial_answers_every_request() {
        let o = GateOutcome::Mcp(McpOutcome {
            initialize: false,
            batch: true,
            request_ids: vec![json!(1), json!(2), json!(3)],
            calls: vec![
                CallDecision {
                    id: json!(1),
                    name: "a".into(),
                    result: Ok(decision(Verdict::Allow)),
                },
                CallDecision {
                    id: json!(2),
                    name: "b".into(),
                    result: Ok(decision(Verdict::Block)),
                },
            ],
        });
        let hits = Arc::new(AtomicUsize::new(0));
        let res = run(VerdictStatusMode::Compat, o, hits.clone()).await;
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        let body: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let arr = body.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[0]["error"]["data"]["verdict"], "batch_rejected");
        assert_eq!(arr[1]["error"]["data"]["verdict"], "block");
        assert_eq!(arr[2]["id"], 3);
    }
}
