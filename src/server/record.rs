//! The trace recorder layer: one TraceRecord per decision, handed to the background writer.
//!
//! Invariant: every decision the gate made for this request (allowed or not, proxy or
//! evaluate API) is enqueued before the request goes further inward, so a denial that never
//! reaches the upstream is still recorded; nothing here touches the filesystem.

use super::decide::Decision;
use super::error::{BoxResponse, ResBody, reject};
use super::gate::GateOutcome;
use super::writer::{ExportFields, TraceJob, TraceWriter};
use http::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The trace path chosen for an evaluate-API decision (read by the evaluate renderer).
#[derive(Debug, Clone)]
pub struct TracePath(pub PathBuf);

#[derive(Debug, Clone)]
pub struct TraceLayer {
    writer: TraceWriter,
    dir: Arc<Path>,
    exports: bool,
}

impl TraceLayer {
    /// `exports`: whether exporter lines are wanted (a JSONL exporter is configured).
    pub fn new(writer: TraceWriter, dir: PathBuf, exports: bool) -> Self {
        TraceLayer {
            writer,
            dir: dir.into(),
            exports,
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceRecorder<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceRecorder {
            inner,
            writer: self.writer.clone(),
            dir: self.dir.clone(),
            exports: self.exports,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TraceRecorder<S> {
    inner: S,
    writer: TraceWriter,
    dir: Arc<Path>,
    exports: bool,
}

/// Go's `normalizeRunID`: `[^A-Za-z0-9_-]+` → `_`, trim `_`, prefix `run_` unless present.
pub fn normalize_run_id(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 4);
    let mut in_bad = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
            in_bad = false;
        } else if !in_bad {
            out.push('_');
            in_bad = true;
        }
    }
    let t = out.trim_matches('_');
    if t.starts_with("run_") {
        t.to_string()
    } else {
        format!("run_{t}")
    }
}

/// Trace paths of the decided `tools/call`s of an MCP request, aligned with
/// `McpOutcome::calls` (`None` for a call that could not be evaluated).
#[derive(Debug, Clone)]
pub struct CallTracePaths(pub Vec<Option<PathBuf>>);

/// `<dir>/trace_<normalized run id>_<UTC 20060102T150405.000000000>.json`.
pub fn trace_file(dir: &Path, run_id: &str) -> PathBuf {
    let ts = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9f");
    dir.join(format!("trace_{}_{ts}.json", normalize_run_id(run_id)))
}

/// The job for one decision; the signed record is moved out of the decision (nothing inward
/// needs it), so no deep copy is made on the request path.
fn job(d: &mut Decision, path: PathBuf, exports: bool) -> TraceJob {
    TraceJob {
        export: exports.then(|| ExportFields {
            run_id: d.run_id.clone(),
            session_id: d.session_id.clone(),
            trace_id: d.trace_id.clone(),
            trace_path: Some(path.display().to_string()),
            tool_name: d.tool_name.clone(),
            verdict: d.verdict.as_str().to_string(),
            reason_codes: d.reason_codes.clone(),
            policy_digest: d.policy_digest.clone(),
            intent_digest: d.intent_digest.clone(),
        }),
        record: d.trace.take(),
        path: Some(path),
    }
}

impl<S, B> Service<Request<B>> for TraceRecorder<S>
where
    S: Service<Request<B>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = BoxResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let writer = self.writer.clone();
        let dir = self.dir.clone();
        let exports = self.exports;
        Box::pin(async move {
            let mut jobs = Vec::new();
            let mut eval_path = None;
            let mut call_paths = None;
            match req.extensions_mut().get_mut::<GateOutcome>() {
                Some(GateOutcome::Mcp(o)) => {
                    let mut paths = Vec::with_capacity(o.calls.len());
                    for c in &mut o.calls {
                        if let Ok(d) = &mut c.result {
                            let path = trace_file(&dir, &d.run_id);
                            paths.push(Some(path.clone()));
                            jobs.push(job(d, path, exports));
                        } else {
                            paths.push(None);
                        }
                    }
                    if !paths.is_empty() {
                        call_paths = Some(CallTracePaths(paths));
                    }
                }
                Some(GateOutcome::Eval(o)) => {
                    let path = o
                        .trace_path
                        .clone()
                        .unwrap_or_else(|| trace_file(&dir, &o.decision.run_id));
                    jobs.push(job(&mut o.decision, path.clone(), exports));
                    eval_path = Some(path);
                }
                None => {}
            }
            for j in jobs {
                if writer.submit(j).await.is_err() {
                    return Ok(reject(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "trace_writer_unavailable",
                        "trace writer is shutting down",
                    ));
                }
            }
            if let Some(p) = eval_path {
                req.extensions_mut().insert(TracePath(p));
            }
            if let Some(p) = call_paths {
                req.extensions_mut().insert(p);
            }
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_normalization() {
        assert_eq!(
            normalize_run_id("run_mcp_server_case"),
            "run_mcp_server_case"
        );
        assert_eq!(normalize_run_id("my run/../x"), "run_my_run_x");
        assert_eq!(normalize_run_id(""), "run_");
        let p = trace_file(Path::new("/t"), "abc");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("trace_run_abc_") && name.ends_with(".json"),
            "{name}"
        );
        assert_eq!(name.len(), "trace_run_abc_".len() + 25 + 5, "{name}");
    }
}
