//! The background trace writer: one dedicated thread that owns every trace file and exporter
//! handle, fed by a bounded queue.
//!
//! Invariant: the request path never does file I/O for traces; it only enqueues. The writer
//! drains whatever is queued as one batch (group commit: exporter files are flushed once per
//! batch), writes each trace atomically (temp file + rename, mode 0600, parent dirs 0750), and
//! exits after the queue is closed and empty, so a graceful shutdown loses nothing that was
//! enqueued.

use super::decide::RecordBody;
use serde_json::{Value, json};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Exporter line fields of one decision (gate.md §7.1).
#[derive(Debug, Clone, Default)]
pub struct ExportFields {
    pub run_id: String,
    pub session_id: Option<String>,
    pub trace_id: String,
    pub trace_path: Option<String>,
    pub tool_name: String,
    pub verdict: String,
    pub reason_codes: Vec<String>,
    pub policy_digest: String,
    pub intent_digest: String,
}

/// One unit of work.
#[derive(Debug, Clone)]
pub struct TraceJob {
    /// Where to write `record` (pretty JSON + newline).
    pub path: Option<PathBuf>,
    pub record: Option<Arc<dyn RecordBody>>,
    pub export: Option<ExportFields>,
}

/// Acknowledgement of one durable trace write (`Err` carries the I/O error text).
type Ack = oneshot::Sender<Result<(), String>>;

enum Msg {
    /// A job; with an ack, the trace is fsynced before the ack is sent.
    Job(Box<TraceJob>, Option<Ack>),
    Flush(oneshot::Sender<()>),
}

/// Counters of the writer (read by metrics and tests).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Trace files written.
    pub written: AtomicU64,
    /// Trace writes that failed (I/O or serialization).
    pub failed: AtomicU64,
    /// Jobs refused because the queue stayed full for the whole bounded wait.
    pub queue_timeouts: AtomicU64,
}

/// Why a job was not accepted or not written.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("trace writer stopped")]
    Closed,
    #[error("trace queue full for {0:?}")]
    QueueTimeout(Duration),
    #[error("trace write failed: {0}")]
    Write(String),
}

/// How long a request waits for queue capacity before it is refused.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Exporter destinations.
#[derive(Debug, Clone, Default)]
pub struct WriterConfig {
    pub export_log_out: Option<PathBuf>,
    pub export_otel_out: Option<PathBuf>,
}

/// Handle to the writer thread (cheap to clone).
#[derive(Debug, Clone)]
pub struct TraceWriter {
    tx: mpsc::Sender<Msg>,
    stats: Arc<WriterStats>,
    wait: Duration,
}

/// Join handle of the writer thread.
#[derive(Debug)]
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Wait (off the async runtime) until the thread has drained and exited. All
    /// [`TraceWriter`] clones must have been dropped first.
    pub async fn join(self) {
        let _ = tokio::task::spawn_blocking(move || self.0.join()).await;
    }
}

impl TraceWriter {
    /// Start the writer thread with a queue of `capacity` jobs.
    pub fn spawn(
        cfg: WriterConfig,
        capacity: usize,
    ) -> std::io::Result<(TraceWriter, WriterThread)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(WriterStats::default());
        let st = stats.clone();
        let handle = std::thread::Builder::new()
            .name("gait-trace-writer".into())
            .spawn(move || run(cfg, rx, &st))?;
        Ok((
            TraceWriter {
                tx,
                stats,
                wait: DEFAULT_QUEUE_WAIT,
            },
            WriterThread(handle),
        ))
    }

    /// The same writer with another bounded queue wait.
    pub fn with_queue_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    async fn send(&self, m: Msg) -> Result<(), SubmitError> {
        match self.tx.try_send(m) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(m)) => {
                match self.tx.send_timeout(m, self.wait).await {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                        self.stats.queue_timeouts.fetch_add(1, Ordering::Relaxed);
                        Err(SubmitError::QueueTimeout(self.wait))
                    }
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(SubmitError::Closed),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Enqueue a job; waits (bounded) only if the queue is full (backpressure, no I/O).
    pub async fn submit(&self, job: TraceJob) -> Result<(), SubmitError> {
        self.send(Msg::Job(Box::new(job), None)).await
    }

    /// Enqueue a job and wait until its trace is written and fsynced (fail-closed recording).
    /// The writer groups the directory fsyncs of one batch, so concurrent callers share them.
    pub async fn submit_durable(&self, job: TraceJob) -> Result<(), SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Job(Box::new(job), Some(tx))).await?;
        rx.await
            .map_err(|_| SubmitError::Closed)?
            .map_err(SubmitError::Write)
    }

    /// Jobs waiting in the queue (the writer never drops: a full queue applies backpressure).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Wait until everything enqueued before this call is on disk.
    pub async fn flush(&self) -> Result<(), SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| SubmitError::Closed)?;
        rx.await.map_err(|_| SubmitError::Closed)
    }
}

struct Sinks {
    log: Option<BufWriter<File>>,
    otel: Option<BufWriter<File>>,
}

fn open_append(p: &Path) -> std::io::Result<BufWriter<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(p)?;
    Ok(BufWriter::new(f))
}

fn run(cfg: WriterConfig, mut rx: mpsc::Receiver<Msg>, stats: &WriterStats) {
    let mut sinks = Sinks {
        log: cfg.export_log_out.as_deref().and_then(|p| {
            open_append(p)
                .map_err(|e| tracing::error!(path = %p.display(), error = %e, "Cannot open log exporter."))
                .ok()
        }),
        otel: cfg.export_otel_out.as_deref().and_then(|p| {
            open_append(p)
                .map_err(|e| tracing::error!(path = %p.display(), error = %e, "Cannot open otel exporter."))
                .ok()
        }),
    };
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut acks = Vec::new();
        let mut durable: Vec<(Ack, Result<(), String>)> = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for m in batch.drain(..) {
            match m {
                Msg::Job(job, ack) => {
                    let r = write_job(&mut sinks, &job, ack.is_some());
                    match &r {
                        Ok(true) => {
                            stats.written.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(_) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if let Some(ack) = ack {
                        if let (Ok(true), Some(d)) =
                            (&r, job.path.as_deref().and_then(Path::parent))
                            && !dirs.iter().any(|x| x == d)
                        {
                            dirs.push(d.to_path_buf());
                        }
                        durable.push((ack, r.map(|_| ()).map_err(|e| e.to_string())));
                    }
                }
                Msg::Flush(ack) => acks.push(ack),
            }
        }
        for s in [&mut sinks.log, &mut sinks.otel].into_iter().flatten() {
            if let Err(e) = s.flush() {
                tracing::error!(error = %e, "Exporter flush failed.");
            }
        }
        // one fsync per directory per batch makes the renames of the whole batch durable
        let dir_err = dirs.iter().find_map(|d| {
            File::open(d)
                .and_then(|f| f.sync_all())
                .err()
                .map(|e| format!("fsync {}: {e}", d.display()))
        });
        for (ack, r) in durable {
            let r = match (r, &dir_err) {
                (Ok(()), Some(e)) => Err(e.clone()),
                (r, _) => r,
            };
            let _ = ack.send(r);
        }
        for a in acks {
            let _ = a.send(());
        }
    }
    let failed = stats.failed.load(Ordering::Relaxed);
    let timeouts = stats.queue_timeouts.load(Ordering::Relaxed);
    if failed > 0 || timeouts > 0 {
        tracing::error!(
            written = stats.written.load(Ordering::Relaxed),
            failed,
            queue_timeouts = timeouts,
            "Trace writer stopped with failures."
        );
    }
}

/// Write one job; `Ok(true)` when a trace file was written, `Err` when that write failed
/// (exporter lines are best effort). `sync`: fsync the file before the rename.
fn write_job(sinks: &mut Sinks, job: &TraceJob, sync: bool) -> std::io::Result<bool> {
    let mut out = Ok(false);
    if let (Some(path), Some(record)) = (&job.path, &job.record) {
        out = record
            .to_pretty_json()
            .map_err(std::io::Error::other)
            .and_then(|b| write_file(path, b, sync))
            .map(|()| true);
        if let Err(e) = &out {
            tracing::error!(path = %path.display(), error = %e, "Trace write failed.");
        }
    }
    if let Some(x) = &job.export {
        if let Some(s) = &mut sinks.log {
            let _ = writeln!(s, "{}", log_line(x));
        }
        if let Some(s) = &mut sinks.otel {
            let _ = writeln!(s, "{}", otel_line(x));
        }
    }
    out
}

/// `buf` + trailing newline, temp file + rename, 0600; parent dirs created 0750.
pub fn write_atomic(path: &Path, buf: Vec<u8>) -> std::io::Result<()> {
    write_file(path, buf, false)
}

fn write_file(path: &Path, mut buf: Vec<u8>, sync: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
    }
    buf.push(b'\n');
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&buf)?;
        if sync {
            f.sync_data()?;
        }
    }
    std::fs::rename(&tmp, path)
}

/// `--export-log-out` line.
pub fn log_line(x: &ExportFields) -> String {
    let mut m = serde_json::Map::new();
    m.insert("created_at".into(), "1980-01-01T00:00:00Z".into());
    m.insert("producer_version".into(), crate::VERSION.into());
    m.insert("run_id".into(), x.run_id.clone().into());
    if let Some(s) = &x.session_id {
        m.insert("session_id".into(), s.clone().into());
    }
    m.insert("trace_id".into(), x.trace_id.clone().into());
    if let Some(p) = &x.trace_path {
        m.insert("trace_path".into(), p.clone().into());
    }
    m.insert("tool_name".into(), x.tool_name.clone().into());
    m.insert("verdict".into(), x.verdict.clone().into());
    if !x.reason_codes.is_empty() {
        m.insert("reason_codes".into(), json!(x.reason_codes));
    }
    m.insert("policy_digest".into(), x.policy_digest.clone().into());
    m.insert("intent_digest".into(), x.intent_digest.clone().into());
    Value::Object(m).to_string()
}

/// `--export-otel-out` line.
pub fn otel_line(x: &ExportFields) -> String {
    json!({
        "attributes": {
            "gait.decision_latency_ms": 0,
            "gait.delegation_depth": 0,
            "gait.delegation_ref": "",
            "gait.intent_digest": x.intent_digest,
            "gait.policy_digest": x.policy_digest,
            "gait.reason_codes": x.reason_codes,
            "gait.run_id": x.run_id,
            "gait.session_id": x.session_id.clone().unwrap_or_default(),
            "gait.tool_name": x.tool_name,
            "gait.trace_path": x.trace_path.clone().unwrap_or_default(),
            "gait.verdict": x.verdict,
        },
        "body": "gait.mcp.proxy.decision",
        "severity_text": "INFO",
        "time_unix_nano": 315_532_800_000_000_000_i64,
        "trace_id": x.trace_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_traces_and_exports_then_drains_on_close() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = WriterConfig {
            export_log_out: Some(tmp.path().join("x/log.jsonl")),
            export_otel_out: Some(tmp.path().join("otel.jsonl")),
        };
        let (w, thread) = TraceWriter::spawn(cfg, 2).unwrap();
        for i in 0..10 {
            w.submit(TraceJob {
                path: Some(tmp.path().join(format!("t/trace_{i}.json"))),
                record: Some(Arc::new(json!({"n": i}))),
                export: Some(ExportFields {
                    trace_id: format!("id{i}"),
                    verdict: "allow".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
        }
        w.flush().await.unwrap();
        let log = std::fs::read_to_string(tmp.path().join("x/log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 10);
        drop(w);
        thread.join().await;
        for i in 0..10 {
            let p = tmp.path().join(format!("t/trace_{i}.json"));
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(v["n"], i);
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let otel = std::fs::read_to_string(tmp.path().join("otel.jsonl")).unwrap();
        let first: Value = serde_json::from_str(otel.lines().next().unwrap()).unwrap();
        assert_eq!(first["attributes"]["gait.verdict"], "allow");
        assert_eq!(first["attributes"]["gait.reason_codes"], json!([]));
    }

    #[tokio::test]
    async fn durable_submit_acks_success_and_failure_and_counts() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        let (w, thread) = TraceWriter::spawn(WriterConfig::default(), 4).unwrap();
        let job = |p: PathBuf| TraceJob {
            path: Some(p),
            record: Some(Arc::new(json!({"n": 1}))),
            export: None,
        };
        w.submit_durable(job(tmp.path().join("ok/t.json")))
            .await
            .unwrap();
        assert!(tmp.path().join("ok/t.json").is_file());
        let e = w
            .submit_durable(job(tmp.path().join("file/t.json")))
            .await
            .unwrap_err();
        assert!(matches!(e, SubmitError::Write(_)), "{e}");
        // asynchronous submits report nothing but are counted
        w.submit(job(tmp.path().join("file/u.json"))).await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(w.stats().written.load(Ordering::Relaxed), 1);
        assert_eq!(w.stats().failed.load(Ordering::Relaxed), 2);
        drop(w);
        thread.join().await;
    }

    #[tokio::test]
    async fn full_queue_wait_is_bounded_and_counted() {
        // a writer whose thread is gone keeps the queue full: capacity 1, receiver alive
        let (tx, _rx) = mpsc::channel(1);
        let w = TraceWriter {
            tx,
            stats: Arc::default(),
            wait: Duration::from_millis(20),
        };
        let job = || TraceJob {
            path: None,
            record: None,
            export: None,
        };
        w.submit(job()).await.unwrap();
        let e = w.submit(job()).await.unwrap_err();
        assert!(matches!(e, SubmitError::QueueTimeout(_)), "{e}");
        assert_eq!(w.stats().queue_timeouts.load(Ordering::Relaxed), 1);
    }
}
