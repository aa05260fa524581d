//! Telemetry: Prometheus metrics (this file), the admin `/metrics` listener ([`admin`]) and
//! the operational/adoption JSONL event logs ([`events`]).
//!
//! Every metric gait exports is declared once in [`METRICS`] (name, kind, help, labels) and
//! recorded only through [`Telemetry`]'s methods, so names, label keys and histogram buckets
//! live in one place. Label values are bounded: tools and reasons outside the policy's known
//! set are reported as `_other`; every other label comes from a closed enum.
//!
//! The recorder is a local `PrometheusRecorder` owned by [`Telemetry`] (no global install is
//! needed: the server holds an `Arc<Telemetry>`; tests build their own). Invariant: recording
//! never blocks and never fails a request.

pub mod admin;
pub mod events;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Metric handles already registered, by label value. Registering a labelled series through
/// the recorder builds its key (label allocations) and looks it up in the registry on every
/// call; a request records four such series, so the handles are kept here and only cloned
/// (an `Arc`). Grows with the label values seen, which are bounded like the series themselves.
struct ByLabel<V>(parking_lot::RwLock<HashMap<String, V>>);

impl<V: Clone> Default for ByLabel<V> {
    fn default() -> Self {
        ByLabel(parking_lot::RwLock::new(HashMap::new()))
    }
}

impl<V: Clone> ByLabel<V> {
    fn get(&self, label: &str, register: impl FnOnce() -> V) -> V {
        if let Some(v) = self.0.read().get(label) {
            return v.clone();
        }
        let v = register();
        self.0.write().entry(label.to_string()).or_insert(v).clone()
    }
}

/// One [`ByLabel`] per verdict, indexed by `verdict as usize`.
type ByVerdict = [ByLabel<Counter>; crate::Verdict::ALL.len()];

/// Kind of a declared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One declared metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

pub const HTTP_REQUESTS: &str = "gait_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "gait_http_request_duration_seconds";
pub const GATE_DECISIONS: &str = "gait_gate_decisions_total";
pub const TOOL_CALLS: &str = "gait_mcp_tool_calls_total";
pub const UPSTREAM_DURATION: &str = "gait_upstream_request_duration_seconds";
pub const BODY_LIMIT_REJECTIONS: &str = "gait_http_body_limit_rejections_total";
pub const AUTH_REJECTIONS: &str = "gait_http_auth_rejections_total";
pub const RATE_LIMITED: &str = "gait_ratelimit_rejections_total";
pub const MCP_SESSIONS_ACTIVE: &str = "gait_mcp_sessions_active";
pub const SSE_STREAMS_ACTIVE: &str = "gait_mcp_sse_streams_active";
pub const WRITER_QUEUE_DEPTH: &str = "gait_writer_queue_depth";
pub const JOURNAL_FSYNC_DURATION: &str = "gait_journal_fsync_duration_seconds";
pub const JOURNAL_BEHIND_FAILURES: &str = "gait_journal_behind_failures_total";
pub const TRACE_WRITES: &str = "gait_trace_writes_total";
pub const RETENTION_REMOVED: &str = "gait_retention_removed_files_total";
pub const POLICY_RELOADS: &str = "gait_policy_reloads_total";
pub const TELEMETRY_DROPPED: &str = "gait_telemetry_events_dropped_total";

/// The one declaration of every gait metric.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: HTTP_REQUESTS,
        kind: Kind::Counter,
        help: "HTTP requests served, by endpoint and status class.",
        labels: &["endpoint", "status"],
    },
    MetricDef {
        name: HTTP_REQUEST_DURATION,
        kind: Kind::Histogram,
        help: "HTTP request latency in seconds, by endpoint.",
        labels: &["endpoint"],
    },
    MetricDef {
        name: GATE_DECISIONS,
        kind: Kind::Counter,
        help: "Gate decisions, by verdict and first reason code.",
        labels: &["verdict", "reason"],
    },
    MetricDef {
        name: TOOL_CALLS,
        kind: Kind::Counter,
        help: "MCP tools/call requests, by tool (policy tools, else _other) and verdict.",
        labels: &["tool", "verdict"],
    },
    MetricDef {
        name: UPSTREAM_DURATION,
        kind: Kind::Histogram,
        help: "Upstream MCP server response-head latency in seconds.",
        labels: &["upstream"],
    },
    MetricDef {
        name: BODY_LIMIT_REJECTIONS,
        kind: Kind::Counter,
        help: "Requests rejected for exceeding max_request_bytes.",
        labels: &[],
    },
    MetricDef {
        name: AUTH_REJECTIONS,
        kind: Kind::Counter,
        help: "Requests rejected by bearer authentication, by reason.",
        labels: &["reason"],
    },
    MetricDef {
        name: RATE_LIMITED,
        kind: Kind::Counter,
        help: "Calls refused by a rate limit, by scope.",
        labels: &["scope"],
    },
    MetricDef {
        name: MCP_SESSIONS_ACTIVE,
        kind: Kind::Gauge,
        help: "MCP sessions currently open through the proxy.",
        labels: &[],
    },
    MetricDef {
        name: SSE_STREAMS_ACTIVE,
        kind: Kind::Gauge,
        help: "SSE streams currently relayed.",
        labels: &[],
    },
    MetricDef {
        name: WRITER_QUEUE_DEPTH,
        kind: Kind::Gauge,
        help: "Records waiting in a background writer queue.",
        labels: &["writer"],
    },
    MetricDef {
        name: JOURNAL_FSYNC_DURATION,
        kind: Kind::Histogram,
        help: "Session journal write + fdatasync latency per batch, in seconds.",
        labels: &[],
    },
    MetricDef {
        name: JOURNAL_BEHIND_FAILURES,
        kind: Kind::Counter,
        help: "Session journal appends written behind the request that failed after the call was answered.",
        labels: &[],
    },
    MetricDef {
        name: TRACE_WRITES,
        kind: Kind::Counter,
        help: "Trace records by outcome: written, failed (I/O or serialization), queue_timeout (refused after the bounded queue wait).",
        labels: &["result"],
    },
    MetricDef {
        name: RETENTION_REMOVED,
        kind: Kind::Counter,
        help: "Files removed by retention sweeps, by class.",
        labels: &["class"],
    },
    MetricDef {
        name: POLICY_RELOADS,
        kind: Kind::Counter,
        help: "Policy reload attempts, by result.",
        labels: &["result"],
    },
    MetricDef {
        name: TELEMETRY_DROPPED,
        kind: Kind::Counter,
        help: "Telemetry events dropped because the queue was full or the writer gone.",
        labels: &["stream"],
    },
];

/// Latency buckets (seconds) for request and upstream histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// fsync buckets (seconds).
pub const FSYNC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The `result` label values of [`TRACE_WRITES`].
pub const TRACE_WRITE_RESULTS: [&str; 3] = ["written", "failed", "queue_timeout"];

/// Label value used for anything outside a bounded set.
pub const OTHER: &str = "_other";

/// A bounded set of label values (policy tool names, reason codes).
#[derive(Debug, Clone, Default)]
pub struct ToolLabels {
    known: HashSet<String>,
}

impl ToolLabels {
    /// Build from the names a policy mentions.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ToolLabels {
            known: names.into_iter().map(Into::into).collect(),
        }
    }

    /// The label for `name`: itself when known, else `_other`.
    pub fn label<'a>(&'a self, name: &'a str) -> &'a str {
        if self.known.contains(name) {
            name
        } else {
            OTHER
        }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

/// Label sets for a policy: its tool names, and the reason codes its rules can emit
/// (configured codes plus each rule's fallback). Engine-generated reasons render as `_other`.
pub fn labels_for_policy(policy: &crate::policy::Policy) -> (ToolLabels, ToolLabels) {
    let tools = ToolLabels::new(policy.tool_names().iter().cloned());
    let reasons = ToolLabels::new(policy.rules().iter().flat_map(|r| {
        r.reason_codes
            .iter()
            .cloned()
            .chain(std::iter::once(r.fallback_reason.clone()))
    }));
    (tools, reasons)
}

/// Auth rejection reasons (bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReject {
    Missing,
    Invalid,
}

/// The metric registry of one gait process.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    tools: arc_swap::ArcSwap<ToolLabels>,
    reasons: arc_swap::ArcSwap<ToolLabels>,
    body_limit: Counter,
    behind_failures: Counter,
    sessions: Gauge,
    sse: Gauge,
    fsync: Histogram,
    /// `gait_http_requests_total` by status class (1xx..5xx), then endpoint.
    http_requests: [ByLabel<Counter>; 5],
    http_duration: ByLabel<Histogram>,
    decisions: ByVerdict,
    tool_calls: ByVerdict,
    upstream_duration: ByLabel<Histogram>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(ToolLabels::default(), ToolLabels::default())
    }
}

impl Telemetry {
    /// Build the recorder with every metric described and its buckets set.
    pub fn new(tools: ToolLabels, reasons: ToolLabels) -> Self {
        let mut b = PrometheusBuilder::new();
        for m in METRICS.iter().filter(|m| m.kind == Kind::Histogram) {
            let buckets = if m.name == JOURNAL_FSYNC_DURATION {
                FSYNC_BUCKETS
            } else {
                LATENCY_BUCKETS
            };
            // Buckets are non-empty constants, the only error case of this call.
            b = match b.set_buckets_for_metric(Matcher::Full(m.name.into()), buckets) {
                Ok(next) => next,
                Err(_) => PrometheusBuilder::new(),
            };
        }
        let recorder = b.build_recorder();
        let handle = recorder.handle();
        let (body_limit, behind_failures, sessions, sse, fsync) =
            metrics::with_local_recorder(&recorder, || {
                for m in METRICS {
                    match m.kind {
                        Kind::Counter => metrics::describe_counter!(m.name, m.help),
                        Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
                        Kind::Histogram => {
                            metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help)
                        }
                    }
                }
                (
                    metrics::counter!(BODY_LIMIT_REJECTIONS),
                    metrics::counter!(JOURNAL_BEHIND_FAILURES),
                    metrics::gauge!(MCP_SESSIONS_ACTIVE),
                    metrics::gauge!(SSE_STREAMS_ACTIVE),
                    metrics::histogram!(JOURNAL_FSYNC_DURATION),
                )
            });
        // Render zero-valued series so the closed-enum families show up from the first scrape.
        body_limit.increment(0);
        behind_failures.increment(0);
        sessions.set(0.0);
        sse.set(0.0);
        metrics::with_local_recorder(&recorder, || {
            for s in ["operational", "adoption"] {
                metrics::counter!(TELEMETRY_DROPPED, "stream" => s).increment(0);
            }
            for r in ["ok", "error"] {
                metrics::counter!(POLICY_RELOADS, "result" => r).increment(0);
            }
            for r in ["missing", "invalid"] {
                metrics::counter!(AUTH_REJECTIONS, "reason" => r).increment(0);
            }
            for r in TRACE_WRITE_RESULTS {
                metrics::counter!(TRACE_WRITES, "result" => r).increment(0);
            }
            for c in ["trace", "runpack", "pack", "session"] {
                metrics::counter!(RETENTION_REMOVED, "class" => c).increment(0);
            }
        });
        Telemetry {
            recorder,
            handle,
            tools: arc_swap::ArcSwap::from_pointee(tools),
            reasons: arc_swap::ArcSwap::from_pointee(reasons),
            body_limit,
            behind_failures,
            sessions,
            sse,
            fsync,
            http_requests: Default::default(),
            http_duration: ByLabel::default(),
            decisions: Default::default(),
            tool_calls: Default::default(),
            upstream_duration: ByLabel::default(),
        }
    }

    /// Replace the bounded tool / reason sets (after a policy reload).
    pub fn set_labels(&self, tools: ToolLabels, reasons: ToolLabels) {
        self.tools.store(std::sync::Arc::new(tools));
        self.reasons.store(std::sync::Arc::new(reasons));
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    pub fn http_request(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        let c = self.http_requests[class].get(endpoint, || {
            let status = ["1xx", "2xx", "3xx", "4xx", "5xx"][class];
            self.with(
                || metrics::counter!(HTTP_REQUESTS, "endpoint" => endpoint, "status" => status),
            )
        });
        c.increment(1);
        let duration = self.http_duration.get(endpoint, || {
            self.with(|| metrics::histogram!(HTTP_REQUEST_DURATION, "endpoint" => endpoint))
        });
        duration.record(elapsed.as_secs_f64());
    }

    /// One gate decision; `reason` is bounded to the policy's reason codes.
    pub fn decision(&self, verdict: crate::Verdict, reason: Option<&str>) {
        let reasons = self.reasons.load();
        let reason = reason.map(|r| reasons.label(r)).unwrap_or("none");
        let c = self.decisions[verdict as usize].get(reason, || {
            let reason = reason.to_string();
            self.with(|| {
                metrics::counter!(GATE_DECISIONS, "verdict" => verdict.as_str(), "reason" => reason)
            })
        });
        c.increment(1);
    }

    /// One `tools/call`; `tool` is bounded to the policy's tools.
    pub fn tool_call(&self, tool: &str, verdict: crate::Verdict) {
        let tools = self.tools.load();
        let tool = tools.label(tool);
        let c = self.tool_calls[verdict as usize].get(tool, || {
            let tool = tool.to_string();
            self.with(
                || metrics::counter!(TOOL_CALLS, "tool" => tool, "verdict" => verdict.as_str()),
            )
        });
        c.increment(1);
    }

    /// Upstream latency; `upstream` is a configured upstream name (bounded by config).
    pub fn upstream_latency(&self, upstream: &str, elapsed: Duration) {
        let h = self.upstream_duration.get(upstream, || {
            let upstream = upstream.to_string();
            self.with(|| metrics::histogram!(UPSTREAM_DURATION, "upstream" => upstream))
        });
        h.record(elapsed.as_secs_f64());
    }

    pub fn body_limit_rejected(&self) {
        self.body_limit.increment(1);
    }

    pub fn auth_rejected(&self, reason: AuthReject) {
        let r = match reason {
            AuthReject::Missing => "missing",
            AuthReject::Invalid => "invalid",
        };
        self.with(|| metrics::counter!(AUTH_REJECTIONS, "reason" => r).increment(1));
    }

    pub fn rate_limited(&self, scope: super::ratelimit::Scope) {
        self.with(|| metrics::counter!(RATE_LIMITED, "scope" => scope.as_str()).increment(1));
    }

    pub fn mcp_sessions(&self, delta: f64) {
        self.sessions.increment(delta);
    }

    pub fn sse_streams(&self, delta: f64) {
        self.sse.increment(delta);
    }

    /// `writer` is one of a fixed set (`trace`, `journal`, `telemetry`).
    pub fn queue_depth(&self, writer: &'static str, depth: usize) {
        self.with(|| metrics::gauge!(WRITER_QUEUE_DEPTH, "writer" => writer).set(depth as f64));
    }

    /// The trace writer's cumulative counts, in [`TRACE_WRITE_RESULTS`] order (sampled off
    /// the request path: the writer threads only bump atomics).
    pub fn trace_writes(&self, totals: [u64; 3]) {
        self.with(|| {
            for (r, n) in TRACE_WRITE_RESULTS.into_iter().zip(totals) {
                metrics::counter!(TRACE_WRITES, "result" => r).absolute(n);
            }
        });
    }

    pub fn journal_fsync(&self, elapsed: Duration) {
        self.fsync.record(elapsed.as_secs_f64());
    }

    pub fn journal_behind_failed(&self) {
        self.behind_failures.increment(1);
    }

    pub fn retention_removed(&self, class: &'static str, n: u64) {
        self.with(|| metrics::counter!(RETENTION_REMOVED, "class" => class).increment(n));
    }

    pub fn policy_reload(&self, ok: bool) {
        let r = if ok { "ok" } else { "error" };
        self.with(|| metrics::counter!(POLICY_RELOADS, "result" => r).increment(1));
    }

    pub fn telemetry_dropped(&self, stream: &'static str, n: u64) {
        self.with(|| metrics::counter!(TELEMETRY_DROPPED, "stream" => stream).increment(n));
    }
}

/// The session journal pool reports its fsync latencies and failed write-behind appends here.
impl crate::session::pool::PoolObserver for Telemetry {
    fn fsync(&self, elapsed: Duration) {
        self.journal_fsync(elapsed);
    }

    fn behind_failed(&self) {
        self.journal_behind_failed();
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
