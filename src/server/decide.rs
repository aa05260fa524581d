//! The narrow interface between the server and the gate engine, plus the hot-swappable handle.
//!
//! The server only needs two things from a policy: a decision for one adapter payload
//! ([`Decide::decide`]) and whether a tool could ever be allowed ([`Decide::could_allow_tool`],
//! for `tools/list` filtering). [`GateHandle`] holds the current decider behind an `ArcSwap`, so
//! a reload is one atomic pointer swap and the request path never re-reads the policy file.
//!
//! Invariant: `decide` is pure CPU work (no file I/O); traces are returned, not written.

use crate::verdict::Verdict;
use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A trace record the writer thread can serialize (pretty JSON), so the request path never
/// serializes it and typed records keep their own key order.
pub trait RecordBody: Send + Sync + std::fmt::Debug + 'static {
    /// The signed record as JSON: pretty (2-space indent, the trace-file format) or compact
    /// (one line of a trace segment).
    fn to_json(&self, pretty: bool) -> serde_json::Result<Vec<u8>>;

    /// The trace-file format (pretty JSON).
    fn to_pretty_json(&self) -> serde_json::Result<Vec<u8>> {
        self.to_json(true)
    }

    /// A copy recording `verdict` instead (the gate's rate-limit block after an allow);
    /// `None` when this record type cannot be changed.
    fn with_verdict(&self, _verdict: Verdict) -> Option<Arc<dyn RecordBody>> {
        None
    }
}

impl RecordBody for Value {
    fn to_json(&self, pretty: bool) -> serde_json::Result<Vec<u8>> {
        if pretty {
            serde_json::to_vec_pretty(self)
        } else {
            serde_json::to_vec(self)
        }
    }
}

/// One decision request.
#[derive(Debug, Clone, Copy)]
pub struct DecideRequest<'a> {
    /// Payload adapter: `mcp`, `openai`, `anthropic`, `langchain`, `claude_code`.
    pub adapter: &'a str,
    /// The raw adapter payload (for `mcp`: `{name, args, context, server, …}`).
    pub payload: &'a Value,
    /// Explicit run id (evaluate API `run_id`), if any.
    pub run_id: Option<&'a str>,
    /// Whether [`Decision::output`] is wanted (the evaluate API renders it; the proxy path
    /// does not, so it is not built there).
    pub output: bool,
}

/// The outcome of one decision.
#[derive(Debug, Clone)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason_codes: Vec<String>,
    pub violations: Vec<String>,
    pub trace_id: String,
    pub policy_digest: String,
    pub intent_digest: String,
    pub tool_name: String,
    pub run_id: String,
    pub session_id: Option<String>,
    /// The `mcpProxyOutput` fields (ok, executed, adapter, verdict, …) without `trace_path`
    /// and `exit_code`, which the server adds. Empty unless [`DecideRequest::output`] was set.
    pub output: Map<String, Value>,
    /// The signed TraceRecord to write, if the engine produced one.
    pub trace: Option<Arc<dyn RecordBody>>,
    /// The most restrictive `rate_limit` of the matched rules (enforced by the gate layer
    /// after an allow).
    pub rate_limit: Option<crate::ops::ratelimit::RateSpec>,
    /// Set when the gate layer refused the call for a rate limit: seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

/// A decision failure (bad payload, secret in args, oss-prod rejection, …): HTTP 400 on the
/// evaluate API, a JSON-RPC error on the proxy path.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DecideError(pub String);

/// A compiled policy that can decide tool calls.
pub trait Decide: Send + Sync + 'static {
    fn decide(&self, req: &DecideRequest<'_>) -> Result<Decision, DecideError>;
    /// False only when every call of this tool is certainly blocked (same contract as
    /// `policy::Policy::could_allow_tool`); used to filter `tools/list`.
    fn could_allow_tool(&self, name: &str) -> bool;
    fn policy_digest(&self) -> &str;
}

/// Builds a decider from the policy file (called at startup and on every reload).
pub type Loader = Arc<dyn Fn(&Path) -> Result<Box<dyn Decide>, String> + Send + Sync>;

/// The current decider and how to reload it.
#[derive(Clone)]
pub struct GateHandle {
    current: Arc<ArcSwap<Box<dyn Decide>>>,
    loader: Loader,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for GateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateHandle")
            .field("path", &self.path)
            .field("policy_digest", &self.current.load().policy_digest())
            .finish()
    }
}

impl GateHandle {
    /// Load the policy once; the error is the loader's message.
    pub fn load(path: &Path, loader: Loader) -> Result<Self, String> {
        let first = loader(path)?;
        Ok(GateHandle {
            current: Arc::new(ArcSwap::from_pointee(first)),
            loader,
            path: Some(path.to_path_buf()),
        })
    }

    /// A fixed decider (tests); `reload` is a no-op.
    pub fn fixed(d: Box<dyn Decide>) -> Self {
        let loader: Loader = Arc::new(|_p: &Path| Err("fixed decider".to_string()));
        GateHandle {
            current: Arc::new(ArcSwap::from_pointee(d)),
            loader,
            path: None,
        }
    }

    /// The current decider (cheap; no refcount traffic on the fast path).
    pub fn current(&self) -> arc_swap::Guard<Arc<Box<dyn Decide>>> {
        self.current.load()
    }

    /// Swap a new decider in directly.
    pub fn swap(&self, d: Box<dyn Decide>) {
        self.current.store(Arc::new(d));
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-read the policy; on error the old policy stays and the error is returned.
    pub fn reload(&self) -> Result<String, String> {
        let Some(path) = &self.path else {
            return Err("no policy path".into());
        };
        let next = (self.loader)(path)?;
        let digest = next.policy_digest().to_string();
        self.current.store(Arc::new(next));
        Ok(digest)
    }
}
