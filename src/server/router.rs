//! The innermost service: dispatches a classified request to its endpoint (health, readiness,
//! evaluate-API rendering, or the upstream forwarder).
//!
//! Invariant: decisions were already made and recorded by outer layers; this service only
//! renders or forwards.

use super::decide::GateHandle;
use super::error::{BoxResponse, ResBody, json_response, not_found, reject};
use super::evaluate;
use super::forward::Forwarder;
use super::gate::GateOutcome;
use super::record::TracePath;
use super::route::Route;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::json;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::Service;

#[derive(Debug, Clone)]
pub struct Endpoints {
    forwarder: Forwarder,
    gate: GateHandle,
}

impl Endpoints {
    pub fn new(forwarder: Forwarder, gate: GateHandle) -> Self {
        Endpoints { forwarder, gate }
    }
}

impl Service<Request<Bytes>> for Endpoints {
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<Response<ResBody>, Infallible>>,
        BoxResponse,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        use futures_util::future::Either;
        let route = req
            .extensions()
            .get::<Route>()
            .copied()
            .unwrap_or(Route::NotFound);
        let res = match route {
            Route::Mcp(_) => return Either::Right(self.forwarder.call(req)),
            Route::Health => json_response(
                StatusCode::OK,
                &json!({"ok": true, "service": "gait.mcp.serve"}),
            ),
            Route::Ready => json_response(
                StatusCode::OK,
                &json!({
                    "ok": true,
                    "ready": true,
                    "service": "gait.mcp.serve",
                    "policy_digest": self.gate.current().policy_digest(),
                }),
            ),
            Route::Evaluate(format) => match req.extensions().get::<GateOutcome>() {
                Some(GateOutcome::Eval(o)) => {
                    let path = req.extensions().get::<TracePath>().map(|p| p.0.as_path());
                    evaluate::render(format, &evaluate::response_object(o, path))
                }
                _ => reject(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "evaluate request reached the endpoint without a decision",
                ),
            },
            Route::NotFound => not_found(),
        };
        Either::Left(std::future::ready(Ok(res)))
    }
}
