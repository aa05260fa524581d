//! The one place rejections and JSON responses are built.
//!
//! Invariant: every transport-level rejection (400/401/403/404/405/413/415/502/503/504 on the
//! non-JSON-RPC paths) has the same body shape, `{"ok":false,"error":<message>,"error_code":<code>}`,
//! and is returned as `Ok(Response)`: the stack's error type is `Infallible`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::Value;

/// Boxed error type carried by streaming bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body type of the whole stack.
pub type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxed response future used by the layers that need an async step.
pub type BoxResponse = futures_util::future::BoxFuture<
    'static,
    Result<http::Response<ResBody>, std::convert::Infallible>,
>;

/// A complete (non-streaming) body.
pub fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ResBody {
    full(Bytes::new())
}

/// `status` with a JSON body (`serde_json` rendering, trailing newline).
pub fn json_response(status: StatusCode, value: &Value) -> Response<ResBody> {
    let mut buf = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    buf.push(b'\n');
    let mut res = Response::new(full(buf));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The rejection helper: `{"ok":false,"error":message,"error_code":code}` with `status`.
/// A 401 also carries `WWW-Authenticate: Bearer realm="gait"`.
pub fn reject(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response<ResBody> {
    let body = serde_json::json!({"ok": false, "error": message.into(), "error_code": code});
    let mut res = json_response(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gait\""),
        );
    }
    res
}

/// Go mux's plain 404 for unknown paths.
pub fn not_found() -> Response<ResBody> {
    let mut res = Response::new(full("404 page not found\n"));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reject_shape_is_uniform() {
        for (status, code) in [
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ] {
            let res = reject(status, code, "nope");
            assert_eq!(res.status(), status);
            assert_eq!(
                res.headers().contains_key(header::WWW_AUTHENTICATE),
                status == StatusCode::UNAUTHORIZED
            );
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"ok":false,"error":"nope","error_code":code})
            );
        }
    }
}
