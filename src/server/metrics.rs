//! The metrics layer: one `gait_http_requests_total` per response head, plus the transport
//! facts only visible at the edge (auth and body-limit rejections, SSE streams, MCP sessions,
//! upstream latency).
//!
//! Sits right inside [`super::route`] so every request, rejected or not, is counted once.
//! Invariant: no allocation per request beyond the telemetry label lookups; the SSE gauge is
//! decremented exactly once, when the streamed body is dropped.

use super::error::ResBody;
use super::route::Route;
use crate::ops::telemetry::{AuthReject, Telemetry};
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

#[derive(Debug, Clone)]
pub struct MetricsLayer {
    telemetry: Arc<Telemetry>,
    upstream_names: Arc<[String]>,
}

impl MetricsLayer {
    pub fn new(telemetry: Arc<Telemetry>, upstream_names: Vec<String>) -> Self {
        MetricsLayer {
            telemetry,
            upstream_names: upstream_names.into(),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Metrics {
            inner,
            telemetry: self.telemetry.clone(),
            upstream_names: self.upstream_names.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
    upstream_names: Arc<[String]>,
}

fn endpoint(route: Option<Route>) -> &'static str {
    match route {
        Some(Route::Health) => "health",
        Some(Route::Ready) => "ready",
        Some(Route::Evaluate(_)) => "evaluate",
        Some(Route::Mcp(_)) => "mcp",
        Some(Route::NotFound) | None => "not_found",
    }
}

/// Decrements the SSE gauge when the stream body is dropped.
struct SseGuard(Arc<Telemetry>);

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.sse_streams(-1.0);
    }
}

impl<S, B> Service<Request<B>> for Metrics<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<ResBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let route = req.extensions().get::<Route>().copied();
        let had_auth = req.headers().contains_key(header::AUTHORIZATION);
        let had_session = req.headers().contains_key("mcp-session-id");
        let method = req.method().clone();
        let t = self.telemetry.clone();
        let names = self.upstream_names.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let status = res.status();
            t.http_request(endpoint(route), status.as_u16(), start.elapsed());
            match status {
                StatusCode::UNAUTHORIZED => t.auth_rejected(if had_auth {
                    AuthReject::Invalid
                } else {
                    AuthReject::Missing
                }),
                StatusCode::PAYLOAD_TOO_LARGE => t.body_limit_rejected(),
                _ => {}
            }
            let Some(Route::Mcp(idx)) = route else {
                return Ok(res);
            };
            let verdict = res
                .headers()
                .get(super::verdict::VERDICT_HEADER)
                .and_then(|v| v.to_str().ok());
            // Forwarded: no denial header and not one of the edge rejections.
            let forwarded = matches!(verdict, None | Some("allow"))
                && !matches!(status.as_u16(), 400 | 401 | 403 | 405 | 408 | 413 | 415);
            if forwarded {
                let name = names.get(idx).map(String::as_str).unwrap_or("default");
                t.upstream_latency(name, start.elapsed());
            }
            if status.is_success() {
                if method == Method::POST
                    && !had_session
                    && res.headers().contains_key("mcp-session-id")
                {
                    t.mcp_sessions(1.0);
                } else if method == Method::DELETE && had_session {
                    t.mcp_sessions(-1.0);
                }
            }
            let sse = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/event-stream"));
            if !sse {
                return Ok(res);
            }
            t.sse_streams(1.0);
            let guard = SseGuard(t);
            let (parts, body) = res.into_parts();
            let body = body
                .map_frame(move |f| {
                    let _ = &guard;
                    f
                })
                .boxed_unsync();
            Ok(Response::from_parts(parts, body))
        })
    }
}
