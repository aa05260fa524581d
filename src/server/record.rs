//! The trace recorder layer: one TraceRecord per decision, handed to the background writer.
//!
//! Invariant: every decision the gate made for this request (allowed or not, proxy or
//! evaluate API) is accepted by the writer (bounded wait for queue capacity; a refusal is
//! counted and answered 503) before the request goes further inward, so a denial that never
//! reaches the upstream is still recorded; nothing here touches the filesystem.
//!
//! **Fail-closed recording** (`--profile oss-prod` or `trace_fail_closed`): an allowed
//! `tools/call` (or allowed evaluate decision) goes inward only after the writer acknowledged
//! its trace as written and fsynced. If that write fails the call is not forwarded: every
//! request id gets a JSON-RPC error `-32603` with `data = {verdict: "error", reason_codes:
//! ["trace_write_failed"], trace_id, tool_name}` (HTTP 503 in strict status mode, 200 in compat
//! mode so MCP clients read the JSON-RPC error), header `X-Gait-Verdict: error`. On the
//! evaluate API the answer is a 503 transport rejection with `error_code = trace_write_failed`.
//!
//! Trace file names are unique per process: the timestamp in the name is strictly increasing
//! (bumped by 1 ns on a tie), so two decisions of the same run never share a file.

use super::decide::Decision;
use super::error::{BoxResponse, ResBody, reject};
use super::gate::GateOutcome;
use super::writer::{ExportFields, SubmitError, TraceJob, TraceWriter};
use crate::verdict::Verdict;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
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
    fail_closed: Option<StatusCode>,
    segments: Option<Arc<Segments>>,
}

/// Names the trace segment of each proxy-path decision (`--trace-sink segments`): decision
/// `n` of this process goes to segment `n / per`, `<dir>/trace_seg_<process start, UTC
/// 20060102T150405.000000000>_p<pid>_<segment, 6 digits>.jsonl`. Chosen on the request path,
/// so the journal and exporters name the file the writer really appends to.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    stamp: String,
    per: u64,
    seq: std::sync::atomic::AtomicU64,
    current: parking_lot::Mutex<(u64, PathBuf)>,
}

impl Segments {
    pub fn new(dir: PathBuf, per: u64) -> Segments {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9f").to_string();
        let per = per.max(1);
        let first = Self::name(&dir, &stamp, 0);
        Segments {
            dir,
            stamp,
            per,
            seq: Default::default(),
            current: parking_lot::Mutex::new((0, first)),
        }
    }

    fn name(dir: &Path, stamp: &str, n: u64) -> PathBuf {
        dir.join(format!(
            "trace_seg_{stamp}_p{}_{n:06}.jsonl",
            std::process::id()
        ))
    }

    /// The segment of the next decision.
    pub fn next(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) / self.per;
        let mut cur = self.current.lock();
        if cur.0 != n {
            *cur = (n, Self::name(&self.dir, &self.stamp, n));
        }
        cur.1.clone()
    }
}

impl TraceLayer {
    /// `exports`: whether exporter lines are wanted (a JSONL exporter is configured).
    pub fn new(writer: TraceWriter, dir: PathBuf, exports: bool) -> Self {
        TraceLayer {
            writer,
            dir: dir.into(),
            exports,
            fail_closed: None,
            segments: None,
        }
    }

    /// Proxy-path decisions go to trace segments (evaluate-API decisions keep their files).
    pub fn segments(mut self, per: Option<u64>) -> Self {
        self.segments = per.map(|n| Arc::new(Segments::new(self.dir.to_path_buf(), n)));
        self
    }

    /// Fail-closed recording: allowed decisions wait for a durable trace; a failed write is
    /// answered with `status` (503 strict / 200 compat) and never forwarded.
    pub fn fail_closed(mut self, status: Option<StatusCode>) -> Self {
        self.fail_closed = status;
        self
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
            fail_closed: self.fail_closed,
            segments: self.segments.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TraceRecorder<S> {
    inner: S,
    writer: TraceWriter,
    dir: Arc<Path>,
    exports: bool,
    fail_closed: Option<StatusCode>,
    segments: Option<Arc<Segments>>,
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
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    let nanos = loop {
        let next = now.max(prev.saturating_add(1));
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(p) => prev = p,
        }
    };
    // `%Y%m%dT%H%M%S%.9f`, written directly (chrono's `format` re-parses its pattern per call)
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_nanos(nanos);
    dir.join(format!(
        "trace_{}_{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}.json",
        normalize_run_id(run_id),
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() % 1_000_000_000
    ))
}

/// The job for one decision; the signed record is moved out of the decision (nothing inward
/// needs it), so no deep copy is made on the request path.
fn job(d: &mut Decision, path: PathBuf, segment: bool, exports: bool) -> TraceJob {
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
        segment,
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
        let fail_closed = self.fail_closed;
        let segments = self.segments.clone();
        Box::pin(async move {
            // (job, allowed: must be durable before going inward in fail-closed mode)
            let mut jobs = Vec::new();
            let mut eval_path = None;
            let mut ids = Vec::new();
            let mut batch = false;
            let mut call_paths = None;
            match req.extensions_mut().get_mut::<GateOutcome>() {
                Some(GateOutcome::Mcp(o)) => {
                    ids = o.request_ids.clone();
                    batch = o.batch;
                    let mut paths = Vec::with_capacity(o.calls.len());
                    for c in &mut o.calls {
                        if let Ok(d) = &mut c.result {
                            let path = match &segments {
                                Some(s) => s.next(),
                                None => trace_file(&dir, &d.run_id),
                            };
                            paths.push(Some(path.clone()));
                            let allowed = d.verdict == Verdict::Allow;
                            let info = (d.trace_id.clone(), d.tool_name.clone());
                            let seg = segments.is_some();
                            jobs.push((job(d, path, seg, exports), allowed, info));
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
                    let allowed = o.decision.verdict == Verdict::Allow;
                    let info = (o.decision.trace_id.clone(), o.decision.tool_name.clone());
                    jobs.push((
                        job(&mut o.decision, path.clone(), false, exports),
                        allowed,
                        info,
                    ));
                    eval_path = Some(path);
                }
                None => {}
            }
            for (j, allowed, (trace_id, tool)) in jobs {
                let r = match fail_closed {
                    Some(_) if allowed => writer.submit_durable(j).await,
                    // the evaluate API answers with this trace's path: no linger for it
                    _ if eval_path.is_some() => writer.submit_prompt(j).await,
                    _ => writer.submit(j).await,
                };
                match (r, fail_closed) {
                    (Ok(()), _) => {}
                    (Err(SubmitError::Write(e)), Some(status)) => {
                        tracing::error!(error = %e, %trace_id, "Trace write failed; call not forwarded (fail-closed).");
                        if eval_path.is_some() {
                            return Ok(reject(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "trace_write_failed",
                                format!("trace write failed: {e}"),
                            ));
                        }
                        return Ok(trace_failed(status, batch, &ids, &trace_id, &tool, &e));
                    }
                    (Err(SubmitError::Write(_)), None) => {}
                    (Err(e), _) => {
                        tracing::error!(error = %e, %trace_id, "Trace not accepted by the writer.");
                        return Ok(reject(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "trace_writer_unavailable",
                            e.to_string(),
                        ));
                    }
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

/// The fail-closed answer when a trace could not be written (see the module docs).
fn trace_failed(
    status: StatusCode,
    batch: bool,
    ids: &[Value],
    trace_id: &str,
    tool: &str,
    err: &str,
) -> Response<ResBody> {
    let data = json!({
        "verdict": "error",
        "reason_codes": ["trace_write_failed"],
        "trace_id": trace_id,
        "tool_name": tool,
        "detail": err,
    });
    let one = |id: &Value| {
        super::jsonrpc::error(
            id,
            super::jsonrpc::INTERNAL_ERROR,
            "gait: trace write failed; call not forwarded",
            Some(data.clone()),
        )
    };
    let body = match ids {
        many if batch => Value::Array(many.iter().map(one).collect()),
        [id, ..] => one(id),
        [] => one(&Value::Null),
    };
    let mut res = super::error::json_response(status, &body);
    res.headers_mut()
        .insert("x-gait-verdict", http::HeaderValue::from_static("error"));
    res
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
        // the same rendering as chrono's `%Y%m%dT%H%M%S%.9f` of the moment in the name
        let ts = &name["trace_run_abc_".len()..name.len() - 5];
        let parsed = chrono::NaiveDateTime::parse_from_str(ts, "%Y%m%dT%H%M%S%.9f").unwrap();
        assert_eq!(parsed.format("%Y%m%dT%H%M%S%.9f").to_string(), ts);
    }

    #[test]
    fn trace_file_names_never_repeat() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..2000)
                        .map(|_| trace_file(Path::new("/t"), "same"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            for p in t.join().unwrap() {
                assert!(all.insert(p.clone()), "{}", p.display());
            }
        }
        assert_eq!(all.len(), 8000);
    }
}
