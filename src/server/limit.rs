//! Request body limit: buffers the body up to `max_request_bytes` and hands the inner stack a
//! `Request<Bytes>`.
//!
//! Invariant: a body over the limit is answered with 413 before anything is forwarded, whether
//! or not it declares a `Content-Length` (the declared length is checked first, then the
//! stream is counted while it is read); a body that stalls past the read deadline gets 408.

use super::error::{BoxError, BoxResponse, ResBody, reject};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    max: u64,
    read_timeout: Duration,
}

impl BodyLimitLayer {
    pub fn new(max: u64, read_timeout: Duration) -> Self {
        BodyLimitLayer { max, read_timeout }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            max: self.max,
            read_timeout: self.read_timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    max: u64,
    read_timeout: Duration,
}

fn too_large() -> Response<ResBody> {
    reject(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "request body exceeds max-request-bytes",
    )
}

impl<S, B> Service<Request<B>> for BodyLimit<S>
where
    S: Service<Request<Bytes>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = BoxResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max;
        let read_timeout = self.read_timeout;
        Box::pin(async move {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                return Ok(too_large());
            }
            let (parts, body) = req.into_parts();
            let limit = usize::try_from(max).unwrap_or(usize::MAX);
            let collected =
                tokio::time::timeout(read_timeout, Limited::new(body, limit).collect()).await;
            let bytes = match collected {
                Err(_) => {
                    return Ok(reject(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        "timed out reading request body",
                    ));
                }
                Ok(Err(e)) if e.is::<LengthLimitError>() => return Ok(too_large()),
                Ok(Err(e)) => {
                    return Ok(reject(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("read request body: {e}"),
                    ));
                }
                Ok(Ok(c)) => c.to_bytes(),
            };
            inner.call(Request::from_parts(parts, bytes)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::error::full;
    use http_body_util::{Full, StreamBody};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{ServiceBuilder, ServiceExt};

    fn svc<B>(
        max: u64,
        hits: Arc<AtomicUsize>,
    ) -> impl Service<Request<B>, Response = Response<ResBody>, Error = Infallible>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        ServiceBuilder::new()
            .layer(BodyLimitLayer::new(max, Duration::from_secs(5)))
            .service_fn(move |req: Request<Bytes>| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(full(req.into_body())))
                }
            })
    }

    #[tokio::test]
    async fn declared_length_over_limit_is_413() {
        let hits = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .header(header::CONTENT_LENGTH, "11")
            .body(Full::new(Bytes::from_static(b"hello world")))
            .unwrap();
        let res = svc(10, hits.clone()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn streamed_body_without_length_is_counted() {
        let hits = Arc::new(AtomicUsize::new(0));
        let chunks = (0..8)
            .map(|_| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"abcd"))));
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let res = svc(30, hits.clone())
            .oneshot(Request::new(body))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        let chunks = (0..7)
            .map(|_| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"abcd"))));
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let res = svc(28, hits.clone())
            .oneshot(Request::new(body))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let got = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 28);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
