//! Request classification: which endpoint a request is for, decided once per request.
//!
//! The [`RouteLayer`] is the outermost layer. It inserts a [`Route`] extension that every
//! inner layer reads, and answers wrong methods on the fixed endpoints with 405 (the Go
//! server checks the method before anything else).

use super::error::{ResBody, reject};
use http::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Which evaluate endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalFormat {
    Json,
    Sse,
    Stream,
}

/// The endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    Evaluate(EvalFormat),
    /// MCP proxy route to the upstream with this index.
    Mcp(usize),
    NotFound,
}

impl Route {
    /// True for endpoints that need no authentication.
    pub fn is_public(self) -> bool {
        matches!(self, Route::Health | Route::Ready)
    }
}

/// Route table: upstream names in config order.
#[derive(Debug, Clone)]
pub struct Routes {
    names: Arc<[String]>,
}

impl Routes {
    pub fn new(names: Vec<String>) -> Self {
        Routes {
            names: names.into(),
        }
    }

    /// Classify a path.
    pub fn classify(&self, path: &str) -> Route {
        match path {
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            "/v1/evaluate" => Route::Evaluate(EvalFormat::Json),
            "/v1/evaluate/sse" => Route::Evaluate(EvalFormat::Sse),
            "/v1/evaluate/stream" => Route::Evaluate(EvalFormat::Stream),
            "/mcp" | "/mcp/" if self.names.len() == 1 => Route::Mcp(0),
            _ => match path.strip_prefix("/mcp/") {
                Some(rest) => {
                    let name = rest.trim_end_matches('/');
                    self.names
                        .iter()
                        .position(|n| n == name)
                        .map_or(Route::NotFound, Route::Mcp)
                }
                None => Route::NotFound,
            },
        }
    }
}

/// Layer inserting the [`Route`] extension.
#[derive(Debug, Clone)]
pub struct RouteLayer {
    routes: Routes,
}

impl RouteLayer {
    pub fn new(routes: Routes) -> Self {
        RouteLayer { routes }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = RouteService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteService {
            inner,
            routes: self.routes.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteService<S> {
    inner: S,
    routes: Routes,
}

impl<S, B> Service<Request<B>> for RouteService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<Response<ResBody>, Infallible>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        use futures_util::future::Either;
        let route = self.routes.classify(req.uri().path());
        let method = req.method();
        let wrong = match route {
            Route::Health | Route::Ready if method != Method::GET => Some("expected GET"),
            Route::Evaluate(_) if method != Method::POST => Some("expected POST"),
            Route::Mcp(_)
                if method != Method::POST && method != Method::GET && method != Method::DELETE =>
            {
                Some("expected POST, GET or DELETE")
            }
            _ => None,
        };
        if let Some(msg) = wrong {
            return Either::Left(std::future::ready(Ok(reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                msg,
            ))));
        }
        req.extensions_mut().insert(route);
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_paths() {
        let one = Routes::new(vec!["default".into()]);
        assert_eq!(one.classify("/mcp"), Route::Mcp(0));
        assert_eq!(one.classify("/mcp/default"), Route::Mcp(0));
        assert_eq!(one.classify("/healthz"), Route::Health);
        assert_eq!(
            one.classify("/v1/evaluate/sse"),
            Route::Evaluate(EvalFormat::Sse)
        );
        assert_eq!(one.classify("/nope"), Route::NotFound);
        let two = Routes::new(vec!["a".into(), "b".into()]);
        assert_eq!(two.classify("/mcp"), Route::NotFound);
        assert_eq!(two.classify("/mcp/b"), Route::Mcp(1));
        assert_eq!(two.classify("/mcp/c"), Route::NotFound);
    }
}
