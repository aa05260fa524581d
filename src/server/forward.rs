//! The upstream forwarder: a pooled hyper-util client (http and https via hyper-rustls).
//!
//! Invariants: the caller's `Authorization` never reaches the upstream (configured upstream
//! credentials are injected instead); `Host` is rewritten to the upstream authority; hop-by-hop
//! headers are dropped both ways; SSE responses stream frame by frame with
//! `X-Accel-Buffering: no` and idle keep-alive comments, with no total timeout (only the
//! response *head* has a deadline); upstream failures become JSON-RPC errors carrying the
//! request id (502, or 504 on timeout). With token auth, an `Mcp-Session-Id` is bound to the
//! identity that first used it, and is unknown (404) to every other identity.

use super::error::{ResBody, json_response};
use super::gate::GateOutcome;
use super::jsonrpc;
use super::route::Route;
use super::sse;
use super::tls;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;

/// One resolved upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    /// `scheme://authority`.
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Path (and query) of the upstream endpoint.
    pub path: String,
    /// `Authorization` value to inject.
    pub auth: Option<HeaderValue>,
}

impl Upstream {
    pub fn new(name: &str, url: &url::Url, auth: Option<String>) -> Result<Self, String> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e| format!("upstream {name}: {e}"))?;
        let scheme = uri.scheme().cloned().ok_or("upstream url has no scheme")?;
        let authority = uri.authority().cloned().ok_or("upstream url has no host")?;
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let auth = match auth {
            Some(a) => Some(
                HeaderValue::from_str(&a)
                    .map_err(|_| format!("upstream {name}: invalid credential value"))?,
            ),
            None => None,
        };
        Ok(Upstream {
            name: name.to_string(),
            scheme,
            authority,
            path,
            auth,
        })
    }
}

/// Forwarder timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ForwardTimeouts {
    pub head: Duration,
    pub connect: Duration,
    pub sse_keep_alive: Duration,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Most sessions remembered for identity binding; beyond that new sessions are not bound
/// (logged once per overflow) rather than evicting live bindings.
const MAX_BOUND_SESSIONS: usize = 100_000;

/// `(upstream, session id)` → identity.
#[derive(Debug, Default)]
pub struct SessionBindings {
    map: parking_lot::Mutex<std::collections::HashMap<(usize, String), Arc<str>>>,
}

impl SessionBindings {
    /// True if `identity` may use `sid`; binds an unbound id to it.
    fn admit(&self, up: usize, sid: &str, identity: &Arc<str>) -> bool {
        let mut m = self.map.lock();
        match m.get(&(up, sid.to_string())) {
            Some(owner) => owner == identity,
            None => {
                if m.len() < MAX_BOUND_SESSIONS {
                    m.insert((up, sid.to_string()), identity.clone());
                }
                true
            }
        }
    }

    fn bind(&self, up: usize, sid: &str, identity: &Arc<str>) {
        let mut m = self.map.lock();
        if m.len() < MAX_BOUND_SESSIONS {
            m.insert((up, sid.to_string()), identity.clone());
        } else {
            tracing::warn!("Session binding table full; new session not bound to its identity.");
        }
    }

    fn forget(&self, up: usize, sid: &str) {
        self.map.lock().remove(&(up, sid.to_string()));
    }
}

/// The innermost service for MCP routes.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: HttpClient,
    upstreams: Arc<[Upstream]>,
    timeouts: ForwardTimeouts,
    sessions: Arc<SessionBindings>,
}

impl Forwarder {
    pub fn new(
        upstreams: Vec<Upstream>,
        tls: rustls::ClientConfig,
        timeouts: ForwardTimeouts,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeouts.connect));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        Forwarder {
            client,
            upstreams: upstreams.into(),
            timeouts,
            sessions: Arc::default(),
        }
    }

    /// A forwarder trusting only the web roots.
    pub fn try_default(
        upstreams: Vec<Upstream>,
        timeouts: ForwardTimeouts,
    ) -> Result<Self, tls::TlsError> {
        Ok(Self::new(upstreams, tls::client_config(None)?, timeouts))
    }
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
    h.remove("proxy-connection");
}

fn upstream_error(status: StatusCode, id: Value, code: i64, msg: String) -> Response<ResBody> {
    json_response(status, &jsonrpc::error(&id, code, &msg, None))
}

impl Service<Request<Bytes>> for Forwarder {
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = super::error::BoxResponse;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

impl Forwarder {
    async fn forward(&self, req: Request<Bytes>) -> Response<ResBody> {
        let Some(Route::Mcp(idx)) = req.extensions().get::<Route>().copied() else {
            return super::error::not_found();
        };
        let Some(up) = self.upstreams.get(idx) else {
            return super::error::not_found();
        };
        let (id, initialize) = match req.extensions().get::<GateOutcome>() {
            Some(GateOutcome::Mcp(o)) => (
                o.request_ids.first().cloned().unwrap_or(Value::Null),
                o.initialize,
            ),
            _ => (Value::Null, false),
        };
        let identity = req
            .extensions()
            .get::<super::auth::Identity>()
            .map(|i| i.0.clone());
        let sid = req
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if let (Some(who), Some(s)) = (&identity, &sid)
            && !initialize
            && !self.sessions.admit(idx, s, who)
        {
            return upstream_error(
                StatusCode::NOT_FOUND,
                id,
                jsonrpc::INVALID_REQUEST,
                "gait: session not found".into(),
            );
        }
        let is_delete = req.method() == http::Method::DELETE;
        let (parts, body) = req.into_parts();
        let path_and_query = match parts.uri.query() {
            Some(q) if up.path.contains('?') => format!("{}&{q}", up.path),
            Some(q) => format!("{}?{q}", up.path),
            None => up.path.clone(),
        };
        let uri = match Uri::builder()
            .scheme(up.scheme.clone())
            .authority(up.authority.clone())
            .path_and_query(path_and_query)
            .build()
        {
            Ok(u) => u,
            Err(e) => {
                return upstream_error(
                    StatusCode::BAD_GATEWAY,
                    id,
                    jsonrpc::UPSTREAM_ERROR,
                    format!("gait: bad upstream uri: {e}"),
                );
            }
        };
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::AUTHORIZATION);
        headers.remove(header::CONTENT_LENGTH);
        if initialize {
            headers.remove("mcp-session-id");
        }
        if let Ok(host) = HeaderValue::from_str(up.authority.as_str()) {
            headers.insert(header::HOST, host);
        }
        if let Some(a) = &up.auth {
            headers.insert(header::AUTHORIZATION, a.clone());
        }
        let mut out = Request::new(Full::new(body));
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = headers;
        let res = match tokio::time::timeout(self.timeouts.head, self.client.request(out)).await {
            Err(_) => {
                return upstream_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    id,
                    jsonrpc::UPSTREAM_TIMEOUT,
                    format!("gait: upstream {} timed out", up.name),
                );
            }
            Ok(Err(e)) => {
                tracing::debug!(upstream = %up.name, error = %e, "Upstream request failed.");
                return upstream_error(
                    StatusCode::BAD_GATEWAY,
                    id,
                    jsonrpc::UPSTREAM_ERROR,
                    format!("gait: upstream {} unavailable", up.name),
                );
            }
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(who) = &identity {
            if let Some(minted) = parts
                .headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                self.sessions.bind(idx, minted, who);
            }
            if is_delete
                && parts.status.is_success()
                && let Some(s) = &sid
            {
                self.sessions.forget(idx, s);
            }
        }
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        let body: ResBody = body.map_err(Into::into).boxed_unsync();
        // An upstream that dies mid-body must not tear the client's response (headers are
        // already sent): SSE ends with a JSON-RPC error event for the pending request id;
        // a JSON body can only be ended early (the client sees a truncated body, not a reset).
        parts.headers.remove(header::CONTENT_LENGTH);
        let last = (is_sse && !id.is_null()).then(|| {
            sse::event(&jsonrpc::error(
                &id,
                jsonrpc::UPSTREAM_ERROR,
                "upstream stream ended before a response",
                None,
            ))
        });
        let body = sse::end_cleanly(body, last, is_sse);
        if is_sse {
            parts
                .headers
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
            parts
                .headers
                .entry(header::CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-cache"));
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = sse::keep_alive(body, self.timeouts.sse_keep_alive);
            return Response::from_parts(parts, body);
        }
        Response::from_parts(parts, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("mcp-session-id", HeaderValue::from_static("abc"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("mcp-session-id"));
    }

    #[test]
    fn upstream_parse() {
        let u = Upstream::new(
            "a",
            &url::Url::parse("http://127.0.0.1:9/mcp?x=1").unwrap(),
            Some("Bearer t".into()),
        )
        .unwrap();
        assert_eq!(u.authority.as_str(), "127.0.0.1:9");
        assert_eq!(u.path, "/mcp?x=1");
        assert!(u.auth.is_some());
    }
}
