//! Bearer-token authentication (`--auth-mode token`).
//!
//! Invariant: tokens are compared in constant time over their sha256 digests (so neither the
//! content nor the length of a configured token leaks through timing), every configured token
//! is compared on every request (no early exit), and a successful match inserts the token's
//! [`Identity`] extension, which the gate binds to every call. `/healthz` and `/readyz` are
//! public.

use super::error::{ResBody, reject};
use super::route::Route;
use futures_util::future::Either;
use http::{Request, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

/// The authenticated caller (the identity named for the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(pub Arc<str>);

/// The configured tokens; empty means auth is off.
#[derive(Clone)]
pub struct Tokens {
    entries: Arc<[(Identity, [u8; 32])]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl Tokens {
    /// `(identity, token)` pairs; an empty list disables authentication.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let entries = pairs
            .into_iter()
            .map(|(id, tok)| (Identity(id.into()), digest(tok.as_bytes())))
            .collect::<Vec<_>>();
        Tokens {
            entries: entries.into(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Constant-time lookup of a presented token.
    pub fn identify(&self, presented: &[u8]) -> Option<Identity> {
        let d = digest(presented);
        let mut found: Option<&Identity> = None;
        for (id, tok) in self.entries.iter() {
            let eq: bool = tok.ct_eq(&d).into();
            if eq && found.is_none() {
                found = Some(id);
            }
        }
        found.cloned()
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Layer enforcing bearer tokens.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    tokens: Tokens,
}

impl AuthLayer {
    pub fn new(tokens: Tokens) -> Self {
        AuthLayer { tokens }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Tokens,
}

impl<S> Auth<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = Infallible>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ResBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let public = req
            .extensions()
            .get::<Route>()
            .is_some_and(|r| r.is_public());
        if !self.tokens.is_enabled() || public {
            return Either::Right(self.inner.call(req));
        }
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer(v.as_bytes()));
        let Some(presented) = presented else {
            return Either::Left(ready(Ok(reject(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing bearer authorization",
            ))));
        };
        match self.tokens.identify(presented) {
            Some(id) => {
                req.extensions_mut().insert(id);
                Either::Right(self.inner.call(req))
            }
            None => Either::Left(ready(Ok(reject(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid bearer authorization",
            )))),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(v: &[u8]) -> Option<&[u8]> {
    if v.len() < 7 || !v[..7].eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let tok = v[7..].trim_ascii();
    (!tok.is_empty()).then_some(tok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::error::empty;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{ServiceBuilder, ServiceExt};

    fn svc(
        tokens: Tokens,
        hits: Arc<AtomicUsize>,
    ) -> impl Service<Request<()>, Response = Response<ResBody>, Error = Infallible> {
        ServiceBuilder::new()
            .layer(AuthLayer::new(tokens))
            .service_fn(move |req: Request<()>| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let id = req.extensions().get::<Identity>().map(|i| i.0.to_string());
                    let mut res = Response::new(empty());
                    if let Some(id) = id {
                        res.headers_mut().insert("x-id", id.parse().unwrap());
                    }
                    Ok::<_, Infallible>(res)
                }
            })
    }

    fn tokens() -> Tokens {
        Tokens::new(vec![
            ("alice".into(), "t-alice".into()),
            ("bob".into(), "t-bob".into()),
        ])
    }

    #[tokio::test]
    async fn missing_and_invalid_are_401_and_never_reach_inner() {
        let hits = Arc::new(AtomicUsize::new(0));
        let res = svc(tokens(), hits.clone())
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            res.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let req = Request::builder()
            .header(header::AUTHORIZATION, "Bearer t-carol")
            .body(())
            .unwrap();
        let res = svc(tokens(), hits.clone()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let req = Request::builder()
            .header(header::AUTHORIZATION, "Basic t-bob")
            .body(())
            .unwrap();
        let res = svc(tokens(), hits.clone()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn valid_token_binds_identity() {
        let hits = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .header(header::AUTHORIZATION, "bearer t-bob")
            .body(())
            .unwrap();
        let res = svc(tokens(), hits.clone()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-id"], "bob");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn health_is_public_and_off_mode_passes() {
        let hits = Arc::new(AtomicUsize::new(0));
        let mut req = Request::new(());
        req.extensions_mut().insert(Route::Health);
        let res = svc(tokens(), hits.clone()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = svc(Tokens::new(vec![]), hits.clone())
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
