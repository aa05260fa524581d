//! Header-only request validation: `Origin` / `Host` (DNS-rebinding defence) and `Content-Type`.
//!
//! Runs before the body is read. Invariant: a present `Origin` that is neither a loopback
//! origin nor configured is rejected with 403; when gait listens on loopback, a `Host` that is
//! not a loopback name is rejected with 403; a POST whose `Content-Type` is present and not
//! `application/json` is rejected with 415. Requests without `Origin` (non-browser clients) and
//! POSTs without `Content-Type` pass. On MCP routes a non-empty `Mcp-Session-Id` with a byte
//! outside visible ASCII (0x21–0x7E, the MCP transport rule for session ids) is rejected with
//! 400, so such an id is never journaled nor forwarded.

use super::error::{ResBody, reject};
use super::route::Route;
use futures_util::future::Either;
use http::{Method, Request, Response, StatusCode, header};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// What the layer accepts.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    /// Extra allowed origins (exact, lowercased, no trailing slash).
    pub allowed_origins: Arc<[String]>,
    /// Enforce loopback `Host` names (true when listening on a loopback address).
    pub loopback_host_only: bool,
}

impl HeaderPolicy {
    pub fn new(allowed_origins: &[String], loopback_host_only: bool) -> Self {
        let allowed = allowed_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect::<Vec<_>>();
        HeaderPolicy {
            allowed_origins: allowed.into(),
            loopback_host_only,
        }
    }

    fn origin_ok(&self, origin: &str) -> bool {
        let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.allowed_origins.contains(&o) {
            return true;
        }
        let Some(rest) = o
            .strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
        else {
            return false;
        };
        is_loopback_authority(rest)
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with an optional port.
fn is_loopback_authority(auth: &str) -> bool {
    let host = if let Some(rest) = auth.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => {
                return h == "::1" && port_ok(tail);
            }
            _ => return false,
        }
    } else {
        match auth.split_once(':') {
            Some((h, p)) => {
                if !port_ok(&format!(":{p}")) {
                    return false;
                }
                h
            }
            None => auth,
        }
    };
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1"
}

fn port_ok(tail: &str) -> bool {
    match tail.strip_prefix(':') {
        None => tail.is_empty(),
        Some(p) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[derive(Debug, Clone)]
pub struct HeaderCheckLayer {
    policy: HeaderPolicy,
}

impl HeaderCheckLayer {
    pub fn new(policy: HeaderPolicy) -> Self {
        HeaderCheckLayer { policy }
    }
}

impl<S> Layer<S> for HeaderCheckLayer {
    type Service = HeaderCheck<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HeaderCheck {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HeaderCheck<S> {
    inner: S,
    policy: HeaderPolicy,
}

impl<S, B> Service<Request<B>> for HeaderCheck<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = Infallible>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ResBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match check(&self.policy, &req) {
            Some(res) => Either::Left(ready(Ok(res))),
            None => Either::Right(self.inner.call(req)),
        }
    }
}

fn check<B>(policy: &HeaderPolicy, req: &Request<B>) -> Option<Response<ResBody>> {
    let route = req.extensions().get::<Route>().copied();
    if route.is_some_and(Route::is_public) {
        return None;
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| policy.origin_ok(o));
        if !ok {
            return Some(reject(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "origin not allowed",
            ));
        }
    }
    if policy.loopback_host_only {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        if let Some(h) = host
            && !is_loopback_authority(h)
        {
            return Some(reject(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                "host not allowed",
            ));
        }
    }
    if matches!(route, Some(Route::Mcp(_)))
        && let Some(sid) = req.headers().get("mcp-session-id")
        && !sid.is_empty()
        && !sid.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return Some(reject(
            StatusCode::BAD_REQUEST,
            "invalid_session_id",
            "Mcp-Session-Id must be visible ASCII (0x21-0x7E)",
        ));
    }
    if req.method() == Method::POST
        && let Some(ct) = req.headers().get(header::CONTENT_TYPE)
    {
        let Ok(ct) = ct.to_str() else {
            return Some(reject(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "invalid content-type header",
            ));
        };
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Some(reject(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "content-type must be application/json",
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::error::empty;
    use tower::{ServiceBuilder, ServiceExt};

    async fn status(policy: HeaderPolicy, req: Request<()>) -> StatusCode {
        ServiceBuilder::new()
            .layer(HeaderCheckLayer::new(policy))
            .service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(empty())) })
            .oneshot(req)
            .await
            .unwrap()
            .status()
    }

    fn req(pairs: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(Method::POST).uri("/mcp");
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[tokio::test]
    async fn origin_rules() {
        let p = HeaderPolicy::new(&["https://app.example".into()], true);
        assert_eq!(status(p.clone(), req(&[])).await, StatusCode::OK);
        assert_eq!(
            status(p.clone(), req(&[("origin", "http://localhost:3000")])).await,
            StatusCode::OK
        );
        assert_eq!(
            status(p.clone(), req(&[("origin", "https://app.example/")])).await,
            StatusCode::OK
        );
        assert_eq!(
            status(p.clone(), req(&[("origin", "http://evil.example.com")])).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(p.clone(), req(&[("origin", "http://localhost.evil.com")])).await,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn host_rules() {
        let p = HeaderPolicy::new(&[], true);
        assert_eq!(
            status(p.clone(), req(&[("host", "127.0.0.1:8787")])).await,
            StatusCode::OK
        );
        assert_eq!(
            status(p.clone(), req(&[("host", "[::1]:1")])).await,
            StatusCode::OK
        );
        assert_eq!(
            status(p.clone(), req(&[("host", "evil.example.com")])).await,
            StatusCode::FORBIDDEN
        );
        let open = HeaderPolicy::new(&[], false);
        assert_eq!(
            status(open, req(&[("host", "gait.internal")])).await,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn session_id_must_be_visible_ascii_on_mcp_routes() {
        let p = HeaderPolicy::new(&[], false);
        let with_sid = |route: Route, sid: &[u8]| {
            let mut r = req(&[]);
            r.headers_mut().insert(
                "mcp-session-id",
                http::HeaderValue::from_bytes(sid).unwrap(),
            );
            r.extensions_mut().insert(route);
            r
        };
        let ok = with_sid(Route::Mcp(0), b"0c5e-Az~!");
        assert_eq!(status(p.clone(), ok).await, StatusCode::OK);
        for bad in [&b"ab c"[..], b"ab\tc", b"ab\xffc"] {
            let r = with_sid(Route::Mcp(0), bad);
            assert_eq!(
                status(p.clone(), r).await,
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
        // an empty id is "no session"; other routes ignore the header
        assert_eq!(
            status(p.clone(), with_sid(Route::Mcp(0), b"")).await,
            StatusCode::OK
        );
        assert_eq!(
            status(p, with_sid(Route::NotFound, b"a b")).await,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn content_type_rules() {
        let p = HeaderPolicy::new(&[], false);
        assert_eq!(
            status(
                p.clone(),
                req(&[("content-type", "application/json; charset=utf-8")])
            )
            .await,
            StatusCode::OK
        );
        assert_eq!(
            status(p.clone(), req(&[("content-type", "text/plain")])).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let get = Request::builder()
            .method(Method::GET)
            .header("content-type", "text/plain")
            .body(())
            .unwrap();
        assert_eq!(status(p, get).await, StatusCode::OK);
    }
}
