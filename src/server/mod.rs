//! `gait mcp serve`: the MCP reverse proxy and the evaluate API, one hyper server with one tower
//! stack.
//!
//! # Stack (outermost first; assembled in [`stack`])
//! 1. [`route`]: classify the path once (`Route` extension); wrong method → 405.
//!    [`metrics`] (when ops are wired): count every response, auth / body-limit rejections,
//!    upstream latency, SSE streams and MCP sessions.
//! 2. [`auth`]: bearer tokens (constant time) → `Identity`; 401 otherwise. Health is public.
//! 3. [`headers`]: Origin/Host (DNS rebinding, 403) and Content-Type (415), before any body read.
//! 4. [`limit`]: buffer the body up to `max_request_bytes` (413 otherwise; also without
//!    Content-Length) into `Request<Bytes>`.
//! 5. [`gate`]: decide every `tools/call` / evaluate request (`GateOutcome`); filter `tools/list`;
//!    after an allow, count policy `rate_limit`s and the per-token limit (`rate_limit_exceeded`).
//! 6. [`record`]: enqueue one signed TraceRecord per decision to the [`writer`] thread.
//!    [`journal`]: append every decided `tools/call` of an MCP session to its journal (durable
//!    before forwarding; 503 + `Retry-After` when the journal is contended).
//! 7. [`verdict`]: non-allow → JSON-RPC error with the request id (upstream never contacted);
//!    compat/strict status mapping; `X-Gait-Verdict`.
//! 8. [`router`]: health / readiness / evaluate rendering / [`forward`] to the upstream.
//!
//! Every rejection is built by [`error::reject`] and returned as `Ok(Response)`; the stack's
//! error type is `Infallible`.
//!
//! # Wire contracts
//! - **Denial** of a `tools/call` (any non-allow verdict): a JSON-RPC error with the request's
//!   `id`, `error.code = -32001`, and `error.data = {verdict, reason_codes, violations, trace_id,
//!   policy_digest, tool_name}`; header `X-Gait-Verdict: <verdict>`. HTTP 200 in `compat` mode;
//!   403 (block) / 409 (require_approval, dry_run) in `strict` mode. A payload the gate cannot
//!   evaluate gives `-32602` with `data.verdict = "error"` (HTTP 200 compat / 400 strict). In a
//!   2025-03-26 batch with any denied call nothing is forwarded and every request element gets an
//!   error (`data.verdict = "batch_rejected"` for the others).
//! - **Transport rejections** (401/403/404/405/408/413/415/503): `{"ok":false,"error","error_code"}`.
//!   Upstream failures on MCP routes: JSON-RPC error with the request id, 502 (`-32002`) or 504
//!   (`-32003`).
//! - **Trace write failed** (fail-closed recording: `--profile oss-prod` or
//!   `trace_fail_closed`): an allowed call whose trace could not be written and fsynced is not
//!   forwarded; JSON-RPC error `-32603`, `data = {verdict: "error", reason_codes:
//!   ["trace_write_failed"], …}`, HTTP 503 strict / 200 compat ([`record`]). A trace queue that
//!   stays full for the bounded wait gives 503 `trace_writer_unavailable` (counted).
//! - **Upstream dies mid-body**: an SSE response ends with a final `data:` event carrying a
//!   JSON-RPC error (`-32002`, "upstream stream ended before a response") for the pending
//!   request id, then a clean end of stream; a JSON body can only be ended early (headers are
//!   already sent, the client sees a truncated body rather than a reset) ([`sse::end_cleanly`]).
//! - **Silent connections**: the first bytes must arrive within `timeouts.header_read`
//!   ([`deadline`]); hyper's HTTP/1 header-read deadline then also closes idle keep-alive
//!   connections between requests.
//! - **Tokens** (`--auth-mode token --auth-token-env VAR`): `VAR` holds
//!   `identity=token[,identity2=token2…]`, or one bare token whose identity is `token`. The
//!   identity becomes `context.identity` of every call, and an `Mcp-Session-Id` is bound to the
//!   identity that first used it.
//!
//! # Invariants
//! - The request path never does blocking file I/O: the policy is compiled once and swapped
//!   atomically on reload ([`decide::GateHandle`]); traces go through a bounded queue.
//! - Shutdown (the `shutdown` future of [`serve_with`]) stops accepting, lets in-flight requests
//!   finish until the drain deadline, then cuts what is left (long SSE streams) and flushes the
//!   trace writer before returning.

pub mod auth;
pub mod config;
pub mod deadline;
pub mod decide;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod forward;
pub mod gate;
pub mod headers;
pub mod journal;
pub mod jsonrpc;
pub mod limit;
pub mod metrics;
pub mod record;
pub mod route;
pub mod router;
pub mod shim;
pub mod sse;
pub mod tls;
pub mod verdict;
pub mod writer;

use config::ServeConfig;
use decide::{Decide, GateHandle, Loader};
use error::ResBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// The assembled service.
pub type Stack = BoxCloneSyncService<http::Request<Incoming>, http::Response<ResBody>, Infallible>;

/// Startup / runtime failures of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("load policy: {0}")]
    Policy(String),
    #[error("{0}")]
    Upstream(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// gait exit code: invalid configuration and policy errors are 6, the rest 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Config(_)
            | ServeError::Policy(_)
            | ServeError::Upstream(_)
            | ServeError::Tls(_) => crate::exit::INVALID_INPUT,
            ServeError::Io(_) => crate::exit::INTERNAL,
        }
    }
}

/// The policy loader `gait mcp serve` uses: the gate engine ([`engine::loader`]).
pub fn default_loader(cfg: &ServeConfig) -> Result<Loader, ServeError> {
    engine::loader(cfg)
}

/// The stand-in loader ([`shim::ShimEngine`]): a small policy subset, no Go-compatible
/// digests. Kept for unit tests of the server that must not depend on the engine.
pub fn shim_loader() -> Loader {
    Arc::new(|p: &Path| shim::ShimEngine::load(p).map(|e| Box::new(e) as Box<dyn Decide>))
}

/// The ops handles the request path uses (from [`crate::ops::runtime::OpsRuntime`]).
#[derive(Debug, Clone)]
pub struct OpsHooks {
    pub telemetry: Arc<crate::ops::telemetry::Telemetry>,
    pub rate_limiter: Arc<crate::ops::ratelimit::RateLimiter>,
}

/// Resolved runtime dependencies (what needs env vars or files), built before binding.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub gate: GateHandle,
    /// `(identity, token)` pairs; empty = auth off.
    pub tokens: Vec<(String, String)>,
    /// Injected `Authorization` per upstream, in config order.
    pub upstream_auth: Vec<Option<String>>,
    /// Notified to reload the policy now (SIGHUP).
    pub reload: Arc<Notify>,
    /// Metrics and rate limits; `None` = the stack runs without them.
    pub ops: Option<OpsHooks>,
    /// Session journals of the proxy path; `None` = nothing is journaled.
    pub journals: Option<Arc<journal::Journals>>,
}

impl Runtime {
    /// Validate `cfg`, resolve env vars through `lookup`, load the policy with `loader`.
    pub fn from_config(
        cfg: &ServeConfig,
        lookup: impl Fn(&str) -> Option<String>,
        loader: Loader,
    ) -> Result<Self, ServeError> {
        cfg.validate()?;
        let tokens = cfg.resolve_tokens(&lookup)?;
        let upstream_auth = cfg.resolve_upstream_auth(&lookup)?;
        let path = cfg
            .policy
            .as_deref()
            .ok_or(config::ConfigError::MissingPolicy)?;
        let gate = GateHandle::load(path, loader).map_err(ServeError::Policy)?;
        Ok(Runtime {
            gate,
            tokens,
            upstream_auth,
            reload: Arc::new(Notify::new()),
            ops: None,
            journals: None,
        })
    }
}

/// Build the tower stack (see the module docs for the order and why).
pub fn stack(
    cfg: &ServeConfig,
    rt: &Runtime,
    writer: writer::TraceWriter,
) -> Result<Stack, ServeError> {
    let names: Vec<String> = cfg.upstreams.iter().map(|u| u.name.clone()).collect();
    let mut ups = Vec::new();
    for (u, auth) in cfg.upstreams.iter().zip(rt.upstream_auth.iter()) {
        ups.push(
            forward::Upstream::new(&u.name, &u.url, auth.clone()).map_err(ServeError::Upstream)?,
        );
    }
    let forwarder = forward::Forwarder::new(
        ups,
        tls::client_config(cfg.upstream_ca.as_deref())?,
        forward::ForwardTimeouts {
            head: cfg.timeouts.upstream,
            connect: cfg.timeouts.upstream_connect,
            sse_keep_alive: cfg.timeouts.sse_keep_alive,
        },
    );
    let settings = Arc::new(gate::GateSettings {
        gate: rt.gate.clone(),
        upstream_names: names.clone(),
        workspace: cfg.workspace.clone(),
        risk_class: cfg.risk_class.clone(),
        default_adapter: cfg.adapter.clone(),
        artifacts: evaluate::ArtifactPolicy {
            allow_client_paths: cfg.allow_client_artifact_paths,
            trace_dir: cfg.trace_dir.clone(),
            runpack_dir: cfg.runpack_dir.clone(),
            pack_dir: cfg.pack_dir.clone(),
            session_dir: cfg.session_dir.clone(),
            envelope_dir: cfg
                .context_envelope
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf),
        },
        max_filter_bytes: 16 * 1024 * 1024,
        ops: rt.ops.clone(),
    });
    let metrics = rt
        .ops
        .as_ref()
        .map(|o| metrics::MetricsLayer::new(o.telemetry.clone(), names.clone()));
    let svc = ServiceBuilder::new()
        // classify once; Go checks the method before anything else
        .layer(route::RouteLayer::new(route::Routes::new(names)))
        // count every response (rejections included), edge facts, SSE streams
        .option_layer(metrics)
        // authenticate before looking at anything the caller controls
        .layer(auth::AuthLayer::new(auth::Tokens::new(rt.tokens.clone())))
        // header-only checks, before paying for the body
        .layer(headers::HeaderCheckLayer::new(headers::HeaderPolicy::new(
            &cfg.allowed_origins,
            cfg.listen.ip().is_loopback(),
        )))
        // bounded buffering; the upstream never sees an oversized body
        .layer(limit::BodyLimitLayer::new(
            cfg.max_request_bytes,
            Duration::from_secs(30),
        ))
        // decide every tools/call and evaluate request
        .layer(gate::GateLayer::new(settings))
        // record every decision (also denials that never reach the upstream)
        .layer(
            record::TraceLayer::new(
                writer,
                cfg.trace_dir.clone(),
                cfg.export_log_out.is_some() || cfg.export_otel_out.is_some(),
            )
            .fail_closed(
                cfg.trace_fail_closed()
                    .then_some(match cfg.http_verdict_status {
                        config::VerdictStatusMode::Strict => http::StatusCode::SERVICE_UNAVAILABLE,
                        config::VerdictStatusMode::Compat => http::StatusCode::OK,
                    }),
            )
            .segments(
                (cfg.trace_sink == config::TraceSink::Segments)
                    .then_some(cfg.trace_segment_records),
            ),
        )
        // journal every decided call of an MCP session before it goes on (durable first)
        .layer(
            journal::JournalLayer::new(rt.journals.clone())
                .with_runpack_dir(cfg.runpack_dir.clone()),
        )
        // answer denials; map statuses
        .layer(verdict::VerdictLayer::new(cfg.http_verdict_status))
        .service(router::Endpoints::new(forwarder, rt.gate.clone()));
    Ok(BoxCloneSyncService::new(svc))
}

/// Run the server on `listener` until `shutdown` resolves, loading the policy with the default
/// loader and resolving env vars from the process environment.
pub async fn serve(
    listener: TcpListener,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let rt = Runtime::from_config(&cfg, |k| std::env::var(k).ok(), default_loader(&cfg)?)?;
    serve_with(listener, cfg, rt, shutdown).await
}

/// Run the server with already-resolved dependencies (tests inject tokens and deciders here).
pub async fn serve_with(
    listener: TcpListener,
    cfg: ServeConfig,
    rt: Runtime,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    // A gait killed mid-write leaves its temp file behind; nothing else would ever remove it.
    let orphans = writer::remove_orphan_temps(&cfg.trace_dir);
    if orphans > 0 {
        tracing::warn!(dir = %cfg.trace_dir.display(), removed = orphans, "Removed trace temp files left by a killed writer.");
    }
    let (writer, writer_thread) = writer::TraceWriter::spawn(
        writer::WriterConfig {
            export_log_out: cfg.export_log_out.clone(),
            export_otel_out: cfg.export_otel_out.clone(),
            segments: cfg.trace_sink == config::TraceSink::Segments,
            linger: None,
        },
        cfg.trace_queue,
    )?;
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            &t.cert, &t.key,
        )?)),
        None => None,
    };
    let svc = stack(&cfg, &rt, writer.clone())?;
    let stop = CancellationToken::new();
    let force = CancellationToken::new();
    let tracker = TaskTracker::new();
    let telemetry = rt.ops.as_ref().map(|o| o.telemetry.clone());
    // The baseline stamp is taken before the listener accepts anything: taken inside the task,
    // a loaded machine could schedule it after an early policy edit, which would then never be
    // seen as a change.
    let baseline = rt
        .gate
        .path()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(policy_stamp);
    tracker.spawn(reload_task(
        baseline,
        rt.gate.clone(),
        rt.reload.clone(),
        cfg.timeouts.policy_poll,
        stop.clone(),
        telemetry.clone(),
    ));
    if let Some(t) = telemetry {
        tracker.spawn(writer_stats_task(writer.clone(), t, stop.clone()));
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let conns = Arc::new(Semaphore::new(cfg.max_connections));
    let protocols = Arc::new(Protocols::new(&cfg, tls, SharedStack(Arc::new(svc))));
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            p = conns.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(v) => {
                backoff = Duration::from_millis(5);
                v
            }
            Err(e) => {
                tracing::warn!(error = %e, "Accept failed.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(serve_connection(
            stream,
            peer,
            protocols.clone(),
            graceful.watcher(),
            force.clone(),
            permit,
        ));
    }
    drop(listener);
    stop.cancel();
    tracing::info!("Draining connections.");
    if tokio::time::timeout(cfg.timeouts.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Drain deadline passed; closing remaining connections.");
        force.cancel();
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    drop(protocols);
    drop(writer);
    writer_thread.join().await;
    Ok(())
}

/// What every connection of one server shares: the builders, the TLS acceptor, the stack.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// TLS connections that negotiated no ALPN protocol sniff it inside the TLS stream.
    auto: auto::Builder<TokioExecutor>,
    /// `timeouts.header_read`: first bytes (and the TLS handshake) must arrive by then.
    first_bytes: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
    svc: SharedStack,
}

impl Protocols {
    fn new(cfg: &ServeConfig, tls: Option<tokio_rustls::TlsAcceptor>, svc: SharedStack) -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.timeouts.header_read)
            .keep_alive(true);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(cfg.timeouts.idle / 2)
            .keep_alive_timeout(Duration::from_secs(20));
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.timeouts.header_read)
            .keep_alive(true);
        auto.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(cfg.timeouts.idle / 2)
            .keep_alive_timeout(Duration::from_secs(20));
        Protocols {
            http1,
            http2,
            auto,
            first_bytes: cfg.timeouts.header_read,
            tls,
            svc,
        }
    }
}

/// The one tower stack behind every connection. hyper's `Service::call` takes `&self`, so each
/// request clones the stack for its own use (as `TowerToHyperService` does); holding a clone per
/// connection as well would only keep memory for every idle keep-alive connection.
#[derive(Clone)]
struct SharedStack(Arc<Stack>);

impl hyper::service::Service<http::Request<Incoming>> for SharedStack {
    type Response = http::Response<ResBody>;
    type Error = Infallible;
    type Future = tower::util::Oneshot<Stack, http::Request<Incoming>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        tower::ServiceExt::oneshot(Stack::clone(&self.0), req)
    }
}

/// Serve one accepted connection until it closes, graceful shutdown finishes it or `force` cuts
/// it; the connection slot (`permit`) is held until then.
///
/// This future is what every (mostly idle) keep-alive connection holds, so its size matters:
/// the inner future is built inside it (not captured, which would reserve its size twice), the
/// HTTP/2 and TLS paths are boxed, and the plain HTTP/1 path holds only hyper's connection.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Protocols>,
    watcher: hyper_util::server::graceful::Watcher,
    force: CancellationToken,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _permit = permit;
    tokio::select! {
        () = serve_stream(stream, peer, &shared, watcher) => {}
        () = force.cancelled() => {}
    }
}

async fn serve_stream(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    p: &Protocols,
    watcher: hyper_util::server::graceful::Watcher,
) {
    if let Some(acc) = &p.tls {
        return Box::pin(serve_tls(stream, peer, acc.clone(), p, watcher)).await;
    }
    match deadline::sniff(&stream, p.first_bytes).await {
        Ok(Some(deadline::Proto::Http1)) => {
            let conn = p
                .http1
                .serve_connection(TokioIo::new(stream), p.svc.clone());
            let _ = watcher.watch(conn).await;
        }
        Ok(Some(deadline::Proto::Http2)) => {
            let conn = p
                .http2
                .serve_connection(TokioIo::new(stream), p.svc.clone());
            let _ = Box::pin(watcher.watch(conn)).await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(client.addr = %peer, error = %e, "Connection closed before a request.");
        }
    }
}

async fn serve_tls(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acc: tokio_rustls::TlsAcceptor,
    p: &Protocols,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let s = match tokio::time::timeout(p.first_bytes, acc.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(client.addr = %peer, error = %e, "TLS handshake failed.");
            return;
        }
        Err(_) => return,
    };
    // ALPN decided the protocol: hyper's own builder (an 8 KiB read buffer, like plain
    // connections); the auto builder only for a client that negotiated nothing.
    match s.get_ref().1.alpn_protocol() {
        Some(b"h2") => {
            let conn = p.http2.serve_connection(TokioIo::new(s), p.svc.clone());
            let _ = watcher.watch(conn).await;
        }
        Some(b"http/1.1") => {
            let conn = p.http1.serve_connection(TokioIo::new(s), p.svc.clone());
            let _ = watcher.watch(conn).await;
        }
        _ => {
            // the auto builder's protocol sniffing has no deadline of its own
            let s = deadline::FirstBytes::new(s, p.first_bytes);
            let conn = p.auto.serve_connection(TokioIo::new(s), p.svc.clone());
            let _ = watcher.watch(conn).await;
        }
    }
}

/// Poll the policy file (mtime + len) and reload on change or on `now`; a bad policy keeps the
/// old one and is logged.
fn policy_stamp(m: std::fs::Metadata) -> (Option<std::time::SystemTime>, u64) {
    (m.modified().ok(), m.len())
}

async fn reload_task(
    mut last: Option<(Option<std::time::SystemTime>, u64)>,
    gate: GateHandle,
    now: Arc<Notify>,
    poll: Duration,
    stop: CancellationToken,
    telemetry: Option<Arc<crate::ops::telemetry::Telemetry>>,
) {
    let Some(path) = gate.path().map(Path::to_path_buf) else {
        return;
    };
    let poll = if poll.is_zero() {
        Duration::from_secs(3600)
    } else {
        poll
    };
    loop {
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(poll) => false,
            () = now.notified() => true,
        };
        let cur = tokio::fs::metadata(&path).await.ok().map(policy_stamp);
        if !forced && cur == last {
            continue;
        }
        last = cur;
        let g = gate.clone();
        let labels = telemetry.clone();
        let res = tokio::task::spawn_blocking(move || {
            let r = g.reload();
            // Refresh the bounded metric labels from the new policy (one more parse, off the
            // request path).
            if let (Ok(_), Some(t), Some(p)) = (&r, &labels, g.path())
                && let Ok(policy) = crate::policy::Policy::load(p)
            {
                let (tools, reasons) = crate::ops::telemetry::labels_for_policy(&policy);
                t.set_labels(tools, reasons);
            }
            r
        })
        .await;
        if let Some(t) = &telemetry {
            t.policy_reload(matches!(res, Ok(Ok(_))));
        }
        match res {
            Ok(Ok(digest)) => tracing::info!(policy = %path.display(), %digest, "Policy reloaded."),
            Ok(Err(e)) => {
                tracing::warn!(policy = %path.display(), error = %e, "Policy reload failed; keeping the previous policy.")
            }
            Err(e) => tracing::warn!(error = %e, "Policy reload task failed."),
        }
    }
}

/// Sample the trace writer's queue depth and write counts once a second (off the request path).
async fn writer_stats_task(
    writer: writer::TraceWriter,
    telemetry: Arc<crate::ops::telemetry::Telemetry>,
    stop: CancellationToken,
) {
    loop {
        telemetry.queue_depth("trace", writer.queue_depth());
        let s = writer.stats();
        telemetry.trace_writes([
            s.written.load(std::sync::atomic::Ordering::Relaxed),
            s.failed.load(std::sync::atomic::Ordering::Relaxed),
            s.queue_timeouts.load(std::sync::atomic::Ordering::Relaxed),
        ]);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Entry point of `gait mcp serve` (blocks until shutdown); returns the exit code.
pub fn run_cli(
    cfg: ServeConfig,
    project: crate::ops::config::LoadedConfig,
    correlation_id: &str,
) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GAIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk, a closed pipe) is dropped:
        // the fallback `eprintln!` would panic the logging thread, and the trace writer thread
        // logs exactly when the disk is full (a dead writer refuses every later call).
        .log_internal_errors(false)
        .try_init();
    let fail = |msg: String, code: u8| {
        let cat = if code == crate::exit::INVALID_INPUT {
            crate::exit::Category::InvalidInput
        } else {
            crate::exit::Category::Internal
        };
        if cfg.json {
            let v = crate::exit::error_envelope(&msg, cat, correlation_id);
            println!("{v}");
        } else {
            eprintln!("error: {msg}");
        }
        code
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("start runtime: {e}"), crate::exit::INTERNAL),
    };
    rt.block_on(async {
        let mut runtime = match default_loader(&cfg)
            .and_then(|l| Runtime::from_config(&cfg, |k| std::env::var(k).ok(), l))
        {
            Ok(r) => r,
            Err(e) => return fail(e.to_string(), e.exit_code()),
        };
        // Bounded metric labels from the policy (read once more at startup, off the hot path).
        let (tools, reasons) = cfg
            .policy
            .as_deref()
            .and_then(|p| crate::policy::Policy::load(p).ok())
            .map(|p| crate::ops::telemetry::labels_for_policy(&p))
            .unwrap_or_default();
        let cancel = CancellationToken::new();
        let ops = match crate::ops::runtime::OpsRuntime::start(
            &project.config,
            &cfg,
            &crate::ops::env::ProcessEnv,
            tools,
            reasons,
            &cancel,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => {
                let code = if matches!(e, crate::ops::runtime::OpsError::Bind(..)) {
                    crate::exit::INTERNAL
                } else {
                    crate::exit::INVALID_INPUT
                };
                return fail(e.to_string(), code);
            }
        };
        let started = std::time::Instant::now();
        ops.record_lifecycle(correlation_id, None, 0);
        runtime.journals = Some(Arc::new(
            journal::Journals::new(cfg.session_dir.clone(), 256, Duration::from_secs(300))
                .with_options(crate::session::Options::from_env(&crate::session::ProcessEnv))
                .written_behind(!cfg.trace_fail_closed())
                .observed_by(ops.telemetry.clone()),
        ));
        runtime.ops = Some(OpsHooks {
            telemetry: ops.telemetry.clone(),
            rate_limiter: ops.rate_limiter.clone(),
        });
        let listener = match TcpListener::bind(cfg.listen).await {
            Ok(l) => l,
            Err(e) => return fail(format!("listen {}: {e}", cfg.listen), crate::exit::INTERNAL),
        };
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        if cfg.json {
            let line = serde_json::json!({
                "adapter": cfg.adapter,
                "correlation_id": correlation_id,
                "listen": local,
                "ok": true,
                "policy": cfg.policy.as_deref().map(|p| p.display().to_string()),
                "profile": cfg.profile.as_str(),
                "auth_mode": cfg.auth_mode.as_str(),
                "http_verdict_status": cfg.http_verdict_status.as_str(),
                "policy_digest": runtime.gate.current().policy_digest(),
                "tls": cfg.tls.is_some(),
                "config": project.path.as_deref().map(|p| p.display().to_string()),
                "admin_listen": ops.admin_addr.map(|a| a.to_string()),
                "upstreams": cfg.upstreams.iter().map(|u| serde_json::json!({"name": u.name, "url": u.url.as_str()})).collect::<Vec<_>>(),
            });
            println!("{line}");
        } else {
            tracing::info!(listen = %local, "gait mcp serve listening.");
        }
        let signals = spawn_signals(cancel.clone(), runtime.reload.clone());
        let journals = runtime.journals.clone();
        let res = serve_with(listener, cfg.clone(), runtime, cancel.clone().cancelled_owned()).await;
        signals.abort();
        cancel.cancel();
        // Write every enqueued journal append and close the journals (state flushed).
        if let Some(j) = journals {
            j.shutdown().await;
        }
        let code = res.as_ref().map_or_else(|e| e.exit_code(), |()| crate::exit::OK);
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        ops.record_lifecycle(correlation_id, Some(code), elapsed);
        ops.shutdown().await;
        match res {
            Ok(()) => crate::exit::OK,
            Err(e) => fail(e.to_string(), e.exit_code()),
        }
    })
}

fn spawn_signals(cancel: CancellationToken, reload: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("Cannot install signal handlers.");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload.notify_one(),
            }
        }
        tracing::info!("Shutdown signal received.");
        cancel.cancel();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trivial_stack() -> Stack {
        BoxCloneSyncService::new(tower::service_fn(|_r: http::Request<Incoming>| async {
            Ok::<_, Infallible>(http::Response::new(error::empty()))
        }))
    }

    /// The state every idle keep-alive connection holds (the spawned future) stays small: the
    /// TLS and HTTP/2 paths are boxed and the stack is shared, not cloned per connection.
    #[tokio::test]
    async fn per_connection_future_stays_small() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = l.accept().await.unwrap();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(1));
        let shared = Protocols::new(
            &ServeConfig::default(),
            None,
            SharedStack(Arc::new(trivial_stack())),
        );
        let fut = serve_connection(
            stream,
            peer,
            Arc::new(shared),
            graceful.watcher(),
            CancellationToken::new(),
            slots.try_acquire_owned().unwrap(),
        );
        let size = std::mem::size_of_val(&fut);
        eprintln!("per-connection future: {size} bytes");
        assert!(size <= 1536, "per-connection future is {size} bytes");
    }
}
