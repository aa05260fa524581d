//! The admin listener: `GET /metrics` (Prometheus text exposition) and `GET /healthz`.
//!
//! Mounted by the server on its own listener (default `127.0.0.1:9464`, never the proxy
//! port). An optional bearer token is compared in constant time; without a token the
//! listener must be loopback (`doctor` enforces that in production).

use super::{AuthReject, Telemetry};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Prometheus text exposition content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn text(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    r
}

/// Handle one admin request (any body type; the body is never read).
pub fn handle<B>(
    req: &Request<B>,
    telemetry: &Telemetry,
    token: Option<&str>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return text(StatusCode::NOT_FOUND, "text/plain", "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/healthz" {
        return text(StatusCode::OK, "application/json", r#"{"ok":true}"#);
    }
    if let Some(expected) = token {
        let got = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let reject = match got {
            None => Some(AuthReject::Missing),
            Some(g) => {
                use subtle::ConstantTimeEq as _;
                let eq: bool = g.as_bytes().ct_eq(expected.as_bytes()).into();
                (!eq).then_some(AuthReject::Invalid)
            }
        };
        if let Some(r) = reject {
            telemetry.auth_rejected(r);
            let mut resp = text(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n");
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    }
    text(StatusCode::OK, CONTENT_TYPE, telemetry.render())
}

/// Serve the admin endpoints on `listener` until `cancel` fires.
pub fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    token: Option<String>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let token: Option<Arc<str>> = token.map(Into::into);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let t = Arc::clone(&telemetry);
            let tok = token.clone();
            let c = cancel.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let r = handle(&req, &t, tok.as_deref());
                    async move { Ok::<_, Infallible>(r) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = hyper::server::conn::http1::Builder::new()
                    .header_read_timeout(std::time::Duration::from_secs(5))
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(io, svc);
                tokio::select! {
                    _ = conn => {}
                    () = c.cancelled() => {}
                }
            });
        }
    })
}
