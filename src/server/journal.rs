//! Session journals of the proxy path: every decided `tools/call` that carries an
//! `Mcp-Session-Id` is appended to `<session-dir>/<base>.journal.jsonl` (sessions.md §7 naming)
//! through a [`JournalWriter`] handle per session, all served by one shared [`JournalPool`]
//! (a fixed number of writer threads, `GAIT_SESSION_WRITER_THREADS`, default 1).
//!
//! Durability follows the trace recording posture. With fail-closed recording (`oss-prod`
//! or `trace_fail_closed`) the append is awaited before the request goes on (the writer's
//! group commit makes it durable), so a call the upstream sees is already journaled. Otherwise
//! (the standard posture, like its traces) the append is enqueued in order and written behind
//! the request: only queue space is awaited, so a `kill -9` can lose the appends still queued
//! (milliseconds' worth), never tear the journal, and a failure while writing is logged by
//! the writer pool. Either way a full writer queue (or, when awaited, lock contention)
//! refuses the request (503 + `Retry-After`). The run id of a proxied session is
//! stable, `run_mcp_<first 12 hex of sha256(session id)>`, so all its calls share one journal
//! (Go derives it per intent, which splits every distinct call into its own journal).
//!
//! Invariant: the journal writer threads are the pool's, whatever the number of sessions; at
//! most `max_open` writer handles are kept (the least recently used one is dropped first, and
//! handles idle longer than `idle` are dropped whenever a new one is opened), the pool closes
//! journals beyond `max_open` or idle for `idle` on its own, and a session's journal is closed
//! when its MCP session is deleted (`DELETE` with `Mcp-Session-Id`) or the server shuts down
//! (everything enqueued is written first).
//!
//! Only sessions the upstream issued are journaled: the layer remembers every `Mcp-Session-Id`
//! an upstream response carried (a bounded set); a `tools/call` with an id that is neither in
//! it nor has a journal on disk (a session from before a restart) is answered 404 with a
//! JSON-RPC error, as an MCP server answers an unknown session, and is not forwarded. So a
//! client cannot make gait create journals for ids it invents.

use super::decide::Decision;
use super::error::{BoxResponse, ResBody, json_response, reject};
use super::gate::{EvalOutcome, GateOutcome};
use super::jsonrpc;
use super::record::{CallTracePaths, TracePath};
use crate::session::{
    AppendInput, CheckpointOptions, JournalPool, JournalWriter, JournalWriterConfig, Options,
    PoolConfig, PoolStats, ProcessEnv, SessionError, naming,
};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tower::{Layer, Service};

/// JSON-RPC error code of a refused journal append (retry later).
pub const SESSION_UNAVAILABLE: i64 = -32004;

/// JSON-RPC error code of a call on a session no upstream issued (the MCP SDKs' "Session not
/// found").
pub const SESSION_UNKNOWN: i64 = -32001;

/// Most issued session ids remembered; beyond, the oldest is forgotten (its journal on disk,
/// if it made calls, still admits it).
const MAX_ISSUED: usize = 65_536;

/// Session ids the upstreams issued, oldest first (bounded).
#[derive(Debug, Default)]
struct Issued {
    set: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Issued {
    fn insert(&mut self, sid: &str, cap: usize) {
        if self.set.contains(sid) {
            return;
        }
        while self.order.len() >= cap.max(1) {
            match self.order.pop_front() {
                Some(old) => self.set.remove(&old),
                None => break,
            };
        }
        self.set.insert(sid.to_string());
        self.order.push_back(sid.to_string());
    }
}

/// An evaluate-API journal writer's key: (journal, session id, run id).
type EvalKey = (PathBuf, String, String);

/// The open journal writers of one server.
#[derive(Debug)]
pub struct Journals {
    dir: PathBuf,
    max_open: usize,
    idle: Duration,
    options: Options,
    /// `Err`: the pool's threads could not be started (every append is refused with it).
    pool: Result<JournalPool, String>,
    writers: Mutex<HashMap<String, (JournalWriter, Instant)>>,
    /// Writers of evaluate-API journals, by (journal, session id, run id).
    eval_writers: Mutex<HashMap<EvalKey, (JournalWriter, Instant)>>,
    issued: parking_lot::Mutex<Issued>,
    max_issued: usize,
    /// Appends are written behind the request (see the module docs).
    behind: bool,
}

impl Journals {
    /// Journals under `dir`, written by a new pool ([`PoolConfig::from_env`] threads) that
    /// keeps at most `max_open` journals open and closes those idle for `idle`.
    pub fn new(dir: PathBuf, max_open: usize, idle: Duration) -> Self {
        let cfg = PoolConfig {
            max_open: max_open.max(1),
            idle,
            ..PoolConfig::from_env(&ProcessEnv)
        };
        Self::with_pool(dir, max_open, idle, JournalPool::new(cfg))
    }

    /// Report the pool's fsync latencies and failed write-behind appends to `o`.
    pub fn observed_by(self, o: Arc<dyn crate::session::pool::PoolObserver>) -> Self {
        if let Ok(p) = &self.pool {
            p.observe(o);
        }
        self
    }

    /// Journals under `dir` written by `pool`.
    pub fn with_pool(
        dir: PathBuf,
        max_open: usize,
        idle: Duration,
        pool: Result<JournalPool, SessionError>,
    ) -> Self {
        if let Err(e) = &pool {
            tracing::error!(error = %e, "Session journal writer pool did not start.");
        }
        Journals {
            dir,
            max_open: max_open.max(1),
            idle,
            options: Options::default(),
            pool: pool.map_err(|e| e.to_string()),
            writers: Mutex::new(HashMap::new()),
            eval_writers: Mutex::new(HashMap::new()),
            issued: parking_lot::Mutex::default(),
            max_issued: MAX_ISSUED,
            behind: false,
        }
    }

    /// Write the layer's appends behind the request (the standard posture) instead of
    /// awaiting their durable commit.
    pub fn written_behind(mut self, behind: bool) -> Self {
        self.behind = behind;
        self
    }

    /// Remember at most `n` issued session ids (tests).
    pub fn with_max_issued(mut self, n: usize) -> Self {
        self.max_issued = n.max(1);
        self
    }

    /// Remember a session id an upstream issued.
    pub fn note_issued(&self, session_id: &str) {
        self.issued.lock().insert(session_id, self.max_issued);
    }

    /// True if `session_id` may be journaled: an upstream issued it while this server ran, or
    /// it already has a journal on disk (a session from before a restart; it is remembered).
    pub async fn is_known(&self, session_id: &str) -> bool {
        if self.issued.lock().set.contains(session_id) {
            return true;
        }
        let primary = naming::journal_path(&self.dir, session_id);
        let alt = naming::journal_path_for_run(&self.dir, session_id, &Self::run_id(session_id));
        for p in [primary, alt] {
            if tokio::fs::try_exists(&p).await.unwrap_or(false) {
                self.note_issued(session_id);
                return true;
            }
        }
        false
    }

    fn pool(&self) -> Result<&JournalPool, SessionError> {
        self.pool
            .as_ref()
            .map_err(|e| SessionError::Unavailable(format!("session writer pool: {e}")))
    }

    /// Counters of the writer pool (`None` if it did not start).
    pub fn pool_stats(&self) -> Option<PoolStats> {
        self.pool.as_ref().ok().map(JournalPool::stats)
    }

    /// Drop the writer of `session_id` (its journal is closed once its appends are written).
    pub async fn close(&self, session_id: &str) -> bool {
        self.writers.lock().await.remove(session_id).is_some()
    }

    /// Graceful shutdown: drop every writer, write everything enqueued, close every journal
    /// and stop the pool's threads.
    pub async fn shutdown(&self) {
        self.writers.lock().await.clear();
        if let Ok(p) = &self.pool {
            p.shutdown().await;
        }
    }

    /// Lock settings and producer version of the writers (`Options::from_env` in the server).
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    fn config(&self, journal: PathBuf, session_id: &str, run_id: &str) -> JournalWriterConfig {
        let mut c = JournalWriterConfig::new(journal, session_id, run_id);
        c.options = self.options.clone();
        c
    }

    /// Stable run id of a proxied session.
    pub fn run_id(session_id: &str) -> String {
        let h = crate::canon::sha256_hex(session_id.as_bytes());
        naming::run_id_from_intent_digest(&h)
    }

    /// Number of open writers.
    pub async fn open_count(&self) -> usize {
        self.writers.lock().await.len()
    }

    async fn writer(&self, session_id: &str) -> Result<JournalWriter, SessionError> {
        {
            let mut map = self.writers.lock().await;
            if let Some((w, used)) = map.get_mut(session_id) {
                *used = Instant::now();
                return Ok(w.clone());
            }
        }
        // Open without holding the map (start may wait for the journal lock); a concurrent
        // open of the same session is harmless (start is idempotent) and the loser is dropped.
        let run_id = Self::run_id(session_id);
        let primary = naming::journal_path(&self.dir, session_id);
        let pool = self.pool()?;
        let opened =
            match JournalWriter::open_in(pool, self.config(primary, session_id, &run_id)).await {
                Err(e) if naming::is_identity_conflict(&e) => {
                    let alt = naming::journal_path_for_run(&self.dir, session_id, &run_id);
                    JournalWriter::open_in(pool, self.config(alt, session_id, &run_id)).await?
                }
                other => other?,
            };
        let mut map = self.writers.lock().await;
        Ok(self.keep(&mut map, session_id.to_string(), opened))
    }

    /// Cache `opened` under `key` (an equal writer cached meanwhile wins), dropping writers
    /// idle longer than `idle` and, beyond `max_open`, the least recently used.
    fn keep<K: std::hash::Hash + Eq + Clone>(
        &self,
        map: &mut HashMap<K, (JournalWriter, Instant)>,
        key: K,
        opened: JournalWriter,
    ) -> JournalWriter {
        let now = Instant::now();
        if let Some((w, used)) = map.get_mut(&key) {
            *used = now;
            return w.clone();
        }
        let idle = self.idle;
        map.retain(|_, (_, used)| now.duration_since(*used) < idle);
        while map.len() >= self.max_open {
            let oldest = map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(key, (opened.clone(), now));
        opened
    }

    /// Append an evaluate-API decision to its session journal and wait until it is durable
    /// (sessions.md §7): `client_path` (already confined) or `<session-dir>/<base>.journal.jsonl`,
    /// started with `run_id`; when that journal belongs to another session or run and the path
    /// was not the client's, `<base>_<run>.journal.jsonl`. Returns the journal and the sequence.
    pub async fn append_eval(
        &self,
        session_id: &str,
        run_id: &str,
        client_path: Option<PathBuf>,
        input: AppendInput,
    ) -> Result<(PathBuf, i64), SessionError> {
        let client_given = client_path.is_some();
        let primary = client_path.unwrap_or_else(|| naming::journal_path(&self.dir, session_id));
        let key = |p: &PathBuf| (p.clone(), session_id.to_string(), run_id.to_string());
        let cached = self
            .eval_writers
            .lock()
            .await
            .get_mut(&key(&primary))
            .map(|(w, used)| {
                *used = Instant::now();
                w.clone()
            });
        let (path, w) = match cached {
            Some(w) => (w.journal_path().to_path_buf(), w),
            None => {
                let pool = self.pool()?;
                let open =
                    |p: PathBuf| JournalWriter::open_in(pool, self.config(p, session_id, run_id));
                let (path, opened) = match open(primary.clone()).await {
                    Err(e) if !client_given && naming::is_identity_conflict(&e) => {
                        let alt = naming::journal_path_for_run(&self.dir, session_id, run_id);
                        (alt.clone(), open(alt).await?)
                    }
                    other => (primary.clone(), other?),
                };
                let mut map = self.eval_writers.lock().await;
                let w = self.keep(&mut map, key(&path), opened);
                if path != primary {
                    // the next request names the primary journal again: skip its conflict
                    self.keep(&mut map, key(&primary), w.clone());
                }
                (path, w)
            }
        };
        let appended = w.append(input).await?;
        Ok((path, appended.sequence))
    }

    /// The journal event of an evaluate-API decision: the MCP fields plus the policy's id,
    /// version and matched rules from the decision output.
    pub fn eval_input(d: &Decision, trace_path: String) -> AppendInput {
        let text = |k: &str| {
            d.output
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let matched_rule_ids = d
            .output
            .get("matched_rule_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        AppendInput {
            policy_id: text("policy_id"),
            policy_version: text("policy_version"),
            matched_rule_ids,
            ..Self::input(d, trace_path)
        }
    }

    /// Append one decided call; resolves once it is durable, with its sequence.
    pub async fn append(
        &self,
        session_id: &str,
        d: &Decision,
        trace_path: String,
    ) -> Result<i64, SessionError> {
        let w = self.writer(session_id).await?;
        let appended = w.append(Self::input(d, trace_path)).await?;
        Ok(appended.sequence)
    }

    /// Append one decided call the layer's way: awaited until durable, or, written behind,
    /// only until it is queued.
    pub async fn append_decided(
        &self,
        session_id: &str,
        d: &Decision,
        trace_path: String,
    ) -> Result<(), SessionError> {
        if !self.behind {
            return self.append(session_id, d, trace_path).await.map(|_| ());
        }
        let w = self.writer(session_id).await?;
        w.append_behind(Self::input(d, trace_path)).await
    }

    fn input(d: &Decision, trace_path: String) -> AppendInput {
        AppendInput {
            tool_name: d.tool_name.clone(),
            intent_digest: d.intent_digest.clone(),
            policy_digest: d.policy_digest.clone(),
            trace_id: d.trace_id.clone(),
            trace_path,
            verdict: d.verdict.as_str().to_string(),
            reason_codes: d.reason_codes.clone(),
            violations: d.violations.clone(),
            ..AppendInput::default()
        }
    }
}

/// Appends every decided `tools/call` of a session-bound MCP POST before it goes inward, and
/// an evaluate-API decision that names a session (with its checkpoint when one is due).
#[derive(Debug, Clone)]
pub struct JournalLayer {
    journals: Option<Arc<Journals>>,
    runpack_dir: Option<Arc<PathBuf>>,
}

impl JournalLayer {
    pub fn new(journals: Option<Arc<Journals>>) -> Self {
        JournalLayer {
            journals,
            runpack_dir: None,
        }
    }

    /// Where evaluate-API checkpoints (`checkpoint_interval`) are written; none without it.
    pub fn with_runpack_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.runpack_dir = dir.map(Arc::new);
        self
    }
}

impl<S> Layer<S> for JournalLayer {
    type Service = JournalAppend<S>;
    fn layer(&self, inner: S) -> Self::Service {
        JournalAppend {
            inner,
            journals: self.journals.clone(),
            runpack_dir: self.runpack_dir.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JournalAppend<S> {
    inner: S,
    journals: Option<Arc<Journals>>,
    runpack_dir: Option<Arc<PathBuf>>,
}

/// Journal an evaluate-API decision that names a session (sessions.md §7); the warnings for
/// the response, or the 400 every session error gives.
async fn journal_eval(
    j: &Journals,
    runpack_dir: Option<&Path>,
    o: &EvalOutcome,
    trace_path: String,
) -> Result<Vec<String>, Response<ResBody>> {
    let Some(sid) = o.session_id.as_deref() else {
        return Ok(Vec::new());
    };
    let bad = |e: &dyn std::fmt::Display| {
        tracing::warn!(session_id = %sid, error = %e, "Evaluate session journal failed.");
        reject(
            StatusCode::BAD_REQUEST,
            "session_journal_failed",
            e.to_string(),
        )
    };
    let d = &o.decision;
    let input = Journals::eval_input(d, trace_path);
    let (path, seq) = j
        .append_eval(sid, &d.run_id, o.session_journal.clone(), input)
        .await
        .map_err(|e| bad(&e))?;
    let mut warnings = vec![format!("session_journal={} sequence={seq}", path.display())];
    let interval = o.checkpoint_interval;
    if interval > 0
        && seq % interval == 0
        && let Some(dir) = runpack_dir
    {
        let zip = naming::checkpoint_zip_path(dir, sid, seq);
        let copts = CheckpointOptions {
            base: j.options.clone(),
            ..CheckpointOptions::default()
        };
        let (journal, out) = (path.clone(), zip.clone());
        let done =
            tokio::task::spawn_blocking(move || crate::session::checkpoint(&journal, &out, &copts))
                .await
                .map_err(|e| bad(&e))?
                .map_err(|e| bad(&e))?;
        warnings.push(format!(
            "session_checkpoint={} chain={}",
            zip.display(),
            done.chain_path.display()
        ));
    }
    Ok(warnings)
}

/// The refusal for a failed append: the session error's status (503 + `Retry-After` for lock
/// contention or a full writer queue) with a JSON-RPC error for the first call's id.
fn refuse(id: &Value, e: &SessionError) -> Response<ResBody> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = jsonrpc::error(
        id,
        SESSION_UNAVAILABLE,
        &format!("gait: session journal append failed: {e}"),
        Some(json!({"reason_code": e.reason_code(), "retryable": e.retryable()})),
    );
    let mut res = json_response(status, &body);
    if let Some(r) = e.retry_after() {
        res.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(r.as_secs().max(1)),
        );
    }
    res
}

/// The answer to a session-bound call on a session no upstream issued: 404, as an MCP server
/// answers an unknown session (the client starts a new one), with a JSON-RPC error.
fn unknown_session(id: &Value) -> Response<ResBody> {
    let body = jsonrpc::error(
        id,
        SESSION_UNKNOWN,
        "gait: unknown MCP session (not issued by the upstream); initialize a new session",
        Some(json!({"reason_code": "session_unknown", "retryable": false})),
    );
    json_response(StatusCode::NOT_FOUND, &body)
}

impl<S, B> Service<Request<B>> for JournalAppend<S>
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let journals = self.journals.clone();
        let runpack_dir = self.runpack_dir.clone();
        Box::pin(async move {
            let mut req = req;
            let eval = match req.extensions().get::<GateOutcome>() {
                Some(GateOutcome::Eval(o)) if o.session_id.is_some() => Some((
                    o.clone(),
                    req.extensions()
                        .get::<TracePath>()
                        .map(|p| p.0.display().to_string())
                        .unwrap_or_default(),
                )),
                _ => None,
            };
            if let (Some(j), Some((o, trace_path))) = (&journals, eval) {
                let dir = runpack_dir.as_deref().map(PathBuf::as_path);
                match journal_eval(j, dir, &o, trace_path).await {
                    Ok(w) => {
                        if let Some(GateOutcome::Eval(o)) =
                            req.extensions_mut().get_mut::<GateOutcome>()
                        {
                            o.warnings.extend(w);
                        }
                    }
                    Err(res) => return Ok(res),
                }
            }
            let session = req
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let delete = req.method() == http::Method::DELETE;
            if delete && let (Some(j), Some(sid)) = (&journals, session) {
                // The client ends its MCP session: its journal needs no writer any more.
                let (j, sid) = (j.clone(), sid.to_string());
                let res = inner.call(req).await;
                j.close(&sid).await;
                return res;
            }
            if let (Some(j), Some(sid), Some(GateOutcome::Mcp(o))) =
                (&journals, session, req.extensions().get::<GateOutcome>())
                && !o.initialize
                && o.calls.iter().any(|c| c.result.is_ok())
            {
                if !j.is_known(sid).await {
                    let id = o.calls.first().map(|c| c.id.clone()).unwrap_or(Value::Null);
                    return Ok(unknown_session(&id));
                }
                let paths = req.extensions().get::<CallTracePaths>();
                for (i, c) in o.calls.iter().enumerate() {
                    let Ok(d) = &c.result else { continue };
                    let trace_path = paths
                        .and_then(|p| p.0.get(i).cloned().flatten())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    if let Err(e) = j.append_decided(sid, d, trace_path).await {
                        tracing::warn!(session_id = %sid, error = %e, "Session journal append failed.");
                        return Ok(refuse(&c.id, &e));
                    }
                }
            }
            let res = inner.call(req).await;
            if let (Some(j), Ok(r)) = (&journals, &res)
                && let Some(sid) = r
                    .headers()
                    .get("mcp-session-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            {
                j.note_issued(sid);
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_stable_and_normalized() {
        let a = Journals::run_id("sess-1");
        assert_eq!(a, Journals::run_id("sess-1"));
        assert_ne!(a, Journals::run_id("sess-2"));
        assert!(
            a.starts_with("run_mcp_") && a.len() == "run_mcp_".len() + 12,
            "{a}"
        );
    }

    fn decision() -> Decision {
        Decision {
            verdict: crate::verdict::Verdict::Allow,
            reason_codes: vec![],
            violations: vec![],
            trace_id: "t".repeat(24),
            policy_digest: "a".repeat(64),
            intent_digest: "b".repeat(64),
            tool_name: "echo".into(),
            run_id: String::new(),
            session_id: None,
            output: Default::default(),
            trace: None,
            rate_limit: None,
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn bounded_writers_drop_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journals::new(dir.path().to_path_buf(), 2, Duration::from_secs(3600));
        let d = decision();
        for s in ["s1", "s2", "s3"] {
            assert_eq!(j.append(s, &d, String::new()).await.unwrap(), 1);
        }
        assert_eq!(j.open_count().await, 2);
        // s1 was dropped; reopening continues its journal.
        assert_eq!(j.append("s1", &d, String::new()).await.unwrap(), 2);
        assert_eq!(j.open_count().await, 2);
    }

    #[tokio::test]
    async fn only_issued_or_on_disk_sessions_are_known_and_the_set_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journals::new(dir.path().to_path_buf(), 4, Duration::from_secs(3600))
            .with_max_issued(2);
        assert!(!j.is_known("invented").await);
        // asking creates nothing on disk
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        j.note_issued("a");
        j.note_issued("b");
        assert!(j.is_known("a").await && j.is_known("b").await);
        j.note_issued("c"); // forgets "a", the oldest
        assert!(!j.is_known("a").await);
        assert!(j.is_known("c").await);
        // a session from before a restart: its journal is on disk
        std::fs::write(naming::journal_path(dir.path(), "old"), "").unwrap();
        assert!(j.is_known("old").await);
        let alt = naming::journal_path_for_run(dir.path(), "old2", &Journals::run_id("old2"));
        std::fs::write(alt, "").unwrap();
        assert!(j.is_known("old2").await);
    }

    #[tokio::test]
    async fn written_behind_appends_keep_their_order_and_are_all_written_by_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journals::new(dir.path().to_path_buf(), 4, Duration::from_secs(3600))
            .written_behind(true);
        let mut d = decision();
        for i in 0..50 {
            d.trace_id = format!("{i:024}");
            j.append_decided("sb", &d, format!("p{i}")).await.unwrap();
        }
        // a durable append queued after them is written after them
        d.trace_id = format!("{:024}", 50);
        assert_eq!(j.append("sb", &d, "p50".into()).await.unwrap(), 51);
        for i in 51..60 {
            d.trace_id = format!("{i:024}");
            j.append_decided("sb", &d, format!("p{i}")).await.unwrap();
        }
        j.shutdown().await;
        let text = std::fs::read_to_string(naming::journal_path(dir.path(), "sb")).unwrap();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v.get("event").cloned())
            .collect();
        assert_eq!(events.len(), 60, "{text}");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence"], i as i64 + 1);
            assert_eq!(e["trace_id"], format!("{i:024}"));
        }
    }
}
