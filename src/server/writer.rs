//! The background trace writer: dedicated threads (shards, one by default,
//! `GAIT_TRACE_WRITER_THREADS`) that sign, serialize and write trace files, each fed by its own
//! bounded queue; jobs are spread round-robin.
//!
//! Invariant: the request path never does file I/O for traces; it only enqueues. Each shard
//! drains whatever is queued as one batch (group commit: exporter files are flushed once per
//! batch, under one lock shared by the shards), writes each trace atomically (an `O_TMPFILE`
//! linked in, else temp file + rename; mode 0600, parent dirs 0750), and exits after its queue is closed and empty, so a
//! graceful shutdown loses nothing that was enqueued. One trace costs an Ed25519 signature
//! (aws-lc), a serialization and ~4 file-system syscalls; the file creation dominates and
//! serializes on the directory lock, hence one shard by default. With
//! `--export-log-out`/`--export-otel-out` configured, [`TraceWriter::spawn`] always uses one
//! shard, so exporter lines stay in decision order (several shards could interleave them).

use super::decide::RecordBody;
use serde_json::{Value, json};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Where to write `record`: a trace file (pretty JSON + newline), or, with `segment`, the
    /// trace segment to append one compact line to.
    pub path: Option<PathBuf>,
    /// `path` is a trace segment (`--trace-sink segments`): append, don't create a file.
    pub segment: bool,
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

/// How long a writer that just finished a batch waits for the next one before it parks.
/// Jobs enqueued meanwhile wait with it and are taken as one batch; a durable job, an
/// evaluate-API trace and a flush cut the wait short ([`TraceWriter::submit_durable`],
/// [`TraceWriter::submit_prompt`], [`TraceWriter::flush`]). Longer lingers were measured
/// and not kept (session 9, `--trace-sink segments`, 250 µs / 1 ms / 2 ms alternating, 3 runs
/// each): at one connection they cut the writer's CPU per call from 37–45 µs to 25.5–27 /
/// 24–29 µs, and at 4 connections from 21–23 to 18.3–18.8 / 17.3–19.6 µs with p50 306–332 →
/// 282–287 / 266–304 µs. But the p99 at 4 connections went from 1.7–2.1 ms to 2.2–3.2 /
/// 2.4–3.2 ms: on a 2-core box the bigger batches run as longer bursts beside the request path.
/// [`ENV_TRACE_WRITER_LINGER_US`] lets an operator make that trade.
const LINGER: Duration = Duration::from_micros(250);

/// Overrides the writer linger (250 µs by default) in microseconds, 0..=20000.
pub const ENV_TRACE_WRITER_LINGER_US: &str = "GAIT_TRACE_WRITER_LINGER_US";

/// [`ENV_TRACE_WRITER_LINGER_US`] when set to a number in 0..=20000, else 250 µs.
pub fn default_linger() -> Duration {
    linger_from(std::env::var(ENV_TRACE_WRITER_LINGER_US).ok().as_deref())
}

fn linger_from(env: Option<&str>) -> Duration {
    crate::ops::env::parse_bounded(env, 0..=20_000u64).map_or(LINGER, Duration::from_micros)
}

/// Exporter destinations.
#[derive(Debug, Clone, Default)]
pub struct WriterConfig {
    pub export_log_out: Option<PathBuf>,
    pub export_otel_out: Option<PathBuf>,
    /// Segment jobs will be sent (`--trace-sink segments`): use one writer thread.
    pub segments: bool,
    /// How long a writer lingers after a batch (`None`: [`default_linger`]).
    pub linger: Option<Duration>,
}

/// One writer thread's queue, and the thread itself (to cut its linger short).
#[derive(Debug)]
struct Shard {
    tx: mpsc::Sender<Msg>,
    thread: std::thread::Thread,
}

/// Handle to the writer threads (cheap to clone).
#[derive(Debug, Clone)]
pub struct TraceWriter {
    shards: Arc<[Shard]>,
    next: Arc<AtomicUsize>,
    stats: Arc<WriterStats>,
    wait: Duration,
}

/// Join handles of the writer threads.
#[derive(Debug)]
pub struct WriterThread(Vec<std::thread::JoinHandle<()>>, Arc<WriterStats>);

impl WriterThread {
    /// Wait (off the async runtime) until every thread has drained and exited. All
    /// [`TraceWriter`] clones must have been dropped first.
    pub async fn join(self) {
        let WriterThread(handles, stats) = self;
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
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
}

/// Overrides the number of trace writer threads (a number in 1..=16).
pub const ENV_TRACE_WRITER_THREADS: &str = "GAIT_TRACE_WRITER_THREADS";

/// Default number of writer threads: [`ENV_TRACE_WRITER_THREADS`] when set to a number in
/// 1..=16, else 1. Measured on ext4: trace files of one directory serialize on the directory's
/// lock, so a second thread mostly spins on it (2 threads: ~3x fewer traces/s than 1, and the
/// spinning takes CPU from the proxy); signing is cheap enough (aws-lc, ~10 µs) for one thread.
pub fn default_threads() -> usize {
    threads_from(std::env::var(ENV_TRACE_WRITER_THREADS).ok().as_deref())
}

fn threads_from(env: Option<&str>) -> usize {
    crate::ops::env::parse_bounded(env, 1..=16usize).unwrap_or(1)
}

impl TraceWriter {
    /// Start [`default_threads`] writer threads (one when exporters are configured) sharing a
    /// queue budget of `capacity` jobs.
    pub fn spawn(
        cfg: WriterConfig,
        capacity: usize,
    ) -> std::io::Result<(TraceWriter, WriterThread)> {
        // Exporter logs keep decision order only with one shard: shards would interleave them.
        // Segments: one appender per file, so a failed write can be cut back to a line end.
        let threads =
            if cfg.export_log_out.is_some() || cfg.export_otel_out.is_some() || cfg.segments {
                1
            } else {
                default_threads()
            };
        Self::spawn_threads(cfg, capacity, threads)
    }

    /// Start `threads` writer threads; each gets `capacity / threads` (at least 1) queue slots.
    pub fn spawn_threads(
        cfg: WriterConfig,
        capacity: usize,
        threads: usize,
    ) -> std::io::Result<(TraceWriter, WriterThread)> {
        let threads = threads.max(1);
        let per = capacity.div_ceil(threads).max(1);
        let linger = cfg.linger.unwrap_or_else(default_linger);
        let stats = Arc::new(WriterStats::default());
        let sinks = Arc::new(parking_lot::Mutex::new(Sinks::open(&cfg)));
        let mut txs = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::channel(per);
            let st = stats.clone();
            let sk = sinks.clone();
            let handle = std::thread::Builder::new()
                .name(format!("gait-trace-writer-{i}"))
                .spawn(move || run(i, rx, &st, &sk, linger));
            match handle {
                Ok(h) => {
                    txs.push(Shard {
                        tx,
                        thread: h.thread().clone(),
                    });
                    handles.push(h);
                }
                Err(e) => {
                    // closing the senders lets the threads already started exit
                    drop(txs);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        let stats_out = stats.clone();
        Ok((
            TraceWriter {
                shards: txs.into(),
                next: Arc::default(),
                stats,
                wait: DEFAULT_QUEUE_WAIT,
            },
            WriterThread(handles, stats_out),
        ))
    }

    fn shard(&self) -> &Shard {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        &self.shards[i]
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

    /// Enqueue `m`; `wake`: cut the writer's linger short (someone waits for this job).
    async fn send(&self, m: Msg, wake: bool) -> Result<(), SubmitError> {
        let shard = self.shard();
        let tx = &shard.tx;
        let r = match tx.try_send(m) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(m)) => match tx.send_timeout(m, self.wait).await {
                Ok(()) => Ok(()),
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    self.stats.queue_timeouts.fetch_add(1, Ordering::Relaxed);
                    Err(SubmitError::QueueTimeout(self.wait))
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(SubmitError::Closed),
            },
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        };
        if wake && r.is_ok() {
            shard.thread.unpark();
        }
        r
    }

    /// Enqueue a job; waits (bounded) only if the queue is full (backpressure, no I/O). A
    /// lingering writer takes it with the next batch, at most one linger later.
    pub async fn submit(&self, job: TraceJob) -> Result<(), SubmitError> {
        self.send(Msg::Job(Box::new(job), None), false).await
    }

    /// [`submit`](Self::submit), and wake a lingering writer now: for a trace whose path the
    /// caller is about to hand to a client (the evaluate API's `trace_path`).
    pub async fn submit_prompt(&self, job: TraceJob) -> Result<(), SubmitError> {
        self.send(Msg::Job(Box::new(job), None), true).await
    }

    /// Enqueue a job and wait until its trace is written and fsynced (fail-closed recording).
    /// The writer groups the directory fsyncs of one batch, so concurrent callers share them.
    pub async fn submit_durable(&self, job: TraceJob) -> Result<(), SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Job(Box::new(job), Some(tx)), true).await?;
        rx.await
            .map_err(|_| SubmitError::Closed)?
            .map_err(SubmitError::Write)
    }

    /// Jobs waiting in the queue (the writer never drops: a full queue applies backpressure).
    pub fn queue_depth(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.tx.max_capacity() - s.tx.capacity())
            .sum()
    }

    /// Wait until everything enqueued before this call is on disk (on every shard).
    pub async fn flush(&self) -> Result<(), SubmitError> {
        let mut acks = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            shard
                .tx
                .send(Msg::Flush(tx))
                .await
                .map_err(|_| SubmitError::Closed)?;
            shard.thread.unpark();
            acks.push(rx);
        }
        for rx in acks {
            rx.await.map_err(|_| SubmitError::Closed)?;
        }
        Ok(())
    }
}

struct Sinks {
    log: Option<BufWriter<File>>,
    otel: Option<BufWriter<File>>,
}

impl Sinks {
    fn open(cfg: &WriterConfig) -> Sinks {
        Sinks {
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
        }
    }

    fn is_empty(&self) -> bool {
        self.log.is_none() && self.otel.is_none()
    }
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

/// Directories this shard created or found; `write_file` skips `mkdir` for them (a directory
/// removed behind our back is recreated on the `NotFound` that follows).
#[derive(Default)]
struct DirCache(std::collections::HashSet<PathBuf>);

impl DirCache {
    const MAX: usize = 1024;

    fn ensure(&mut self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if dir.as_os_str().is_empty() || self.0.contains(dir) {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(dir.to_path_buf());
        Ok(())
    }
}

/// Most messages one batch takes off the queue.
const MAX_BATCH: usize = 256;

/// Most trace files written behind (no ack, not a segment line) one batch takes off the queue.
/// Each costs a file creation and gains nothing from its batch. Taken 256 at a time, an
/// overloaded writer (a slow disk) freed 256 queue slots at once and then kept callers waiting
/// on a full queue for the rest of the batch, 100–300 ms at one connection. 16 at a time,
/// the waits are as long as 16 files. Throughput is the same. Segment lines (one `write` per
/// batch) and durable jobs (one `fdatasync` per batch) keep the large batch.
const MAX_BEHIND_FILES: usize = 16;

/// Take `first` and whatever else is queued into `batch`, up to the caps above.
fn gather(first: Msg, rx: &mut mpsc::Receiver<Msg>, batch: &mut Vec<Msg>) {
    let behind_file = |m: &Msg| matches!(m, Msg::Job(j, None) if !j.segment);
    let mut files = usize::from(behind_file(&first));
    batch.push(first);
    while batch.len() < MAX_BATCH && files < MAX_BEHIND_FILES {
        match rx.try_recv() {
            Ok(m) => {
                files += usize::from(behind_file(&m));
                batch.push(m);
            }
            Err(_) => break,
        }
    }
}

fn run(
    shard: usize,
    mut rx: mpsc::Receiver<Msg>,
    stats: &WriterStats,
    sinks: &parking_lot::Mutex<Sinks>,
    linger: Duration,
) {
    let exports = !sinks.lock().is_empty();
    let mut made = DirCache::default();
    let mut batch = Vec::with_capacity(64);
    let (mut log_buf, mut otel_buf) = (String::new(), String::new());
    let mut busy = false;
    let mut seg: Option<Segment> = None;
    let mut lines = SegmentLines::default();
    loop {
        // Under load the thread lingers instead of parking: a parked receiver makes every
        // request's enqueue pay a futex wake and a context switch; a lingering one is only
        // woken for a job someone waits for, else it finds the next batch waiting. Idle (a
        // linger found nothing), it parks on the queue.
        let first = match rx.try_recv() {
            Ok(m) => m,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if busy => {
                busy = false;
                std::thread::park_timeout(linger);
                continue;
            }
            Err(mpsc::error::TryRecvError::Empty) => match rx.blocking_recv() {
                Some(m) => m,
                None => break,
            },
        };
        busy = true;
        gather(first, &mut rx, &mut batch);
        let mut acks = Vec::new();
        let mut durable: Vec<(Ack, Result<(), String>)> = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for m in batch.drain(..) {
            match m {
                Msg::Job(job, ack) if job.segment => {
                    if exports && let Some(x) = &job.export {
                        push_export_lines(x, &mut log_buf, &mut otel_buf);
                    }
                    if let Some(path) = &job.path
                        && lines.path.as_ref().is_some_and(|p| p != path)
                    {
                        lines.append_to(&mut seg, &mut made, stats);
                    }
                    lines.push(&job, ack, stats);
                }
                Msg::Job(job, ack) => {
                    let r = write_trace(&mut made, shard, &job, ack.is_some());
                    if exports && let Some(x) = &job.export {
                        push_export_lines(x, &mut log_buf, &mut otel_buf);
                    }
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
        lines.append_to(&mut seg, &mut made, stats);
        if exports && !(log_buf.is_empty() && otel_buf.is_empty()) {
            // exporter lines are best effort; one lock and one flush per batch
            let mut s = sinks.lock();
            let Sinks { log, otel } = &mut *s;
            for (sink, buf) in [(log, &log_buf), (otel, &otel_buf)] {
                if let Some(w) = sink
                    && let Err(e) = w.write_all(buf.as_bytes()).and_then(|()| w.flush())
                {
                    tracing::error!(error = %e, "Exporter write failed.");
                }
            }
            drop(s);
            log_buf.clear();
            otel_buf.clear();
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
    if let Some(s) = seg
        && let Err(e) = s.file.sync_data()
    {
        tracing::error!(path = %s.path.display(), error = %e, "Trace segment fsync at shutdown failed.");
    }
}

/// One decision's exporter lines, added to the batch's buffers.
fn push_export_lines(x: &ExportFields, log_buf: &mut String, otel_buf: &mut String) {
    log_buf.push_str(&log_line(x));
    log_buf.push('\n');
    otel_buf.push_str(&otel_line(x));
    otel_buf.push('\n');
}

/// The trace segment a writer thread appends to (opened on first use, replaced when the
/// request path names the next one).
struct Segment {
    path: PathBuf,
    file: File,
}

/// The compact lines of one batch bound for one segment, and who waits for them.
#[derive(Default)]
struct SegmentLines {
    path: Option<PathBuf>,
    buf: Vec<u8>,
    count: u64,
    acks: Vec<Ack>,
}

impl SegmentLines {
    /// Sign and serialize one job into the batch (a record that cannot be serialized fails
    /// alone: its ack gets the error, the rest of the batch goes on).
    fn push(&mut self, job: &TraceJob, ack: Option<Ack>, stats: &WriterStats) {
        let (Some(path), Some(record)) = (&job.path, &job.record) else {
            if let Some(a) = ack {
                let _ = a.send(Ok(()));
            }
            return;
        };
        match record.to_json(false) {
            Ok(line) => {
                self.path.get_or_insert_with(|| path.clone());
                self.buf.extend_from_slice(&line);
                self.buf.push(b'\n');
                self.count += 1;
                self.acks.extend(ack);
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(path = %path.display(), error = %e, "Trace serialization failed.");
                if let Some(a) = ack {
                    let _ = a.send(Err(e.to_string()));
                }
            }
        }
    }

    /// Append the batch with one `write` (and one `fdatasync` when someone waits for
    /// durability); on any failure the segment is cut back to its previous length, so it
    /// only ever holds whole lines, and every waiter gets the error.
    fn append_to(&mut self, seg: &mut Option<Segment>, made: &mut DirCache, stats: &WriterStats) {
        let Some(path) = self.path.take() else {
            return;
        };
        let buf = std::mem::take(&mut self.buf);
        let count = std::mem::take(&mut self.count);
        let acks = std::mem::take(&mut self.acks);
        let r = append_segment(seg, made, &path, &buf, !acks.is_empty());
        match &r {
            Ok(()) => stats.written.fetch_add(count, Ordering::Relaxed),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, lines = count, "Trace segment append failed.");
                stats.failed.fetch_add(count, Ordering::Relaxed)
            }
        };
        let r = r.map_err(|e| e.to_string());
        for a in acks {
            let _ = a.send(r.clone());
        }
        // keep the allocation for the next batch
        self.buf = buf;
        self.buf.clear();
    }
}

/// Open (0600, parent dirs 0750, directory fsynced when the file is new) `path` for appending,
/// unless it is already the open segment; the previous segment is fdatasynced and closed.
fn open_segment<'a>(
    seg: &'a mut Option<Segment>,
    made: &mut DirCache,
    path: &Path,
) -> std::io::Result<&'a mut Segment> {
    use std::os::unix::fs::OpenOptionsExt;
    if seg.as_ref().is_some_and(|s| s.path == path)
        && let Some(s) = seg
    {
        return Ok(s);
    }
    if let Some(old) = seg.take()
        && let Err(e) = old.file.sync_data()
    {
        tracing::error!(path = %old.path.display(), error = %e, "Trace segment fsync at rotation failed.");
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    made.ensure(dir)?;
    let open = |new: bool| {
        let mut o = OpenOptions::new();
        o.append(true).mode(0o600);
        if new {
            o.create_new(true);
        }
        o.open(path)
    };
    let file = match open(true) {
        Ok(f) => {
            File::open(dir)?.sync_all()?;
            f
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open(false)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // the directory went away after it was cached: create it again, once
            made.0.remove(dir);
            made.ensure(dir)?;
            let f = open(true)?;
            File::open(dir)?.sync_all()?;
            f
        }
        Err(e) => return Err(e),
    };
    Ok(seg.insert(Segment {
        path: path.to_path_buf(),
        file,
    }))
}

fn append_segment(
    seg: &mut Option<Segment>,
    made: &mut DirCache,
    path: &Path,
    buf: &[u8],
    sync: bool,
) -> std::io::Result<()> {
    let s = open_segment(seg, made, path)?;
    let before = s.file.metadata()?.len();
    let r = (&s.file)
        .write_all(buf)
        .and_then(|()| if sync { s.file.sync_data() } else { Ok(()) });
    if r.is_err() {
        // a short write (full disk) must not leave a torn line for the next batch to extend
        if let Err(e) = s.file.set_len(before) {
            tracing::error!(path = %s.path.display(), error = %e, "Cannot cut a failed trace segment append back; reopening.");
            *seg = None;
        }
    }
    r
}

/// Sign, serialize and write the job's trace; `Ok(true)` when a trace file was written.
/// `sync`: fsync the file before the rename.
fn write_trace(
    made: &mut DirCache,
    shard: usize,
    job: &TraceJob,
    sync: bool,
) -> std::io::Result<bool> {
    let (Some(path), Some(record)) = (&job.path, &job.record) else {
        return Ok(false);
    };
    let out = record
        .to_pretty_json()
        .map_err(std::io::Error::other)
        .and_then(|b| write_file(made, shard, path, b, sync))
        .map(|()| true);
    if let Err(e) = &out {
        tracing::error!(path = %path.display(), error = %e, "Trace write failed.");
    }
    out
}

/// `buf` + trailing newline, temp file + rename, 0600; parent dirs created 0750.
pub fn write_atomic(path: &Path, buf: Vec<u8>) -> std::io::Result<()> {
    write_file(&mut DirCache::default(), 0, path, buf, false)
}

fn write_file(
    made: &mut DirCache,
    shard: usize,
    path: &Path,
    mut buf: Vec<u8>,
    sync: bool,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    made.ensure(dir)?;
    buf.push(b'\n');
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    match write_then_link(dir, path, &buf, sync) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // per shard: two shards writing the same (client-chosen) path never share a temp file
    let tmp = dir.join(format!(".{name}.tmp{}.{shard}", std::process::id()));
    match write_then_rename(&tmp, path, &buf, sync) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // the directory went away after it was cached: create it again, once
            made.0.remove(dir);
            made.ensure(dir)?;
            write_then_rename(&tmp, path, &buf, sync)
        }
        r => r,
    }
}

/// Remove the temp files a killed gait left in `dir` (`.<name>.tmp<pid>.<shard>` whose pid no
/// longer runs); returns how many. Temp files of live processes are never touched.
pub fn remove_orphan_temps(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(temp_pid) else {
            continue;
        };
        if crate::session::lock::pid_is_dead(pid)
            && e.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The pid in a writer temp name `.<name>.tmp<pid>.<shard>`.
fn temp_pid(name: &str) -> Option<i64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (_, rest) = name.strip_prefix('.')?.rsplit_once(".tmp")?;
    let (pid, shard) = rest.split_once('.')?;
    (digits(pid) && digits(shard)).then(|| pid.parse().ok())?
}

/// Write `buf` to an unnamed file in `dir` (`O_TMPFILE`) and link it in as `path`: the file
/// appears complete or not at all, one directory entry is added (temp + rename touches the
/// directory three times, which dominated the writer's cost on ext4), and a killed writer
/// leaves nothing behind. `Ok(false)`: not possible here (a file system without `O_TMPFILE`,
/// no `/proc`, or `path` already exists); the caller falls back to temp file + rename.
fn write_then_link(dir: &Path, path: &Path, buf: &[u8], sync: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .write(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits())
        .open(dir);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => return Ok(false),
    };
    f.write_all(buf)?;
    if sync {
        f.sync_data()?;
    }
    let fd_path = format!("/proc/self/fd/{}", f.as_raw_fd());
    Ok(nix::unistd::linkat(
        None,
        Path::new(&fd_path),
        None,
        path,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .is_ok())
}

fn write_then_rename(tmp: &Path, path: &Path, buf: &[u8], sync: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)?;
        f.write_all(buf)?;
        if sync {
            f.sync_data()?;
        }
    }
    std::fs::rename(tmp, path)
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

    fn job(segment: bool) -> Box<TraceJob> {
        Box::new(TraceJob {
            path: Some(PathBuf::from("/nonexistent/trace.json")),
            segment,
            record: None,
            export: None,
        })
    }

    #[test]
    fn a_batch_takes_few_behind_files_but_many_segment_lines_and_durable_jobs() {
        let (tx, mut rx) = mpsc::channel(1024);
        let gathered = |rx: &mut mpsc::Receiver<Msg>| {
            let mut batch = Vec::new();
            let first = rx.try_recv().unwrap();
            gather(first, rx, &mut batch);
            batch.len()
        };
        // 40 trace files written behind: 16 per batch, in order, none lost
        for _ in 0..40 {
            tx.try_send(Msg::Job(job(false), None)).unwrap();
        }
        assert_eq!(
            (gathered(&mut rx), gathered(&mut rx), gathered(&mut rx)),
            (16, 16, 8)
        );
        // segment lines and durable files: up to the large cap
        for i in 0..300 {
            let m = if i % 2 == 0 {
                Msg::Job(job(true), None)
            } else {
                Msg::Job(job(false), Some(oneshot::channel().0))
            };
            tx.try_send(m).unwrap();
        }
        assert_eq!((gathered(&mut rx), gathered(&mut rx)), (MAX_BATCH, 44));
        // a flush does not count as a file; files after it stop the batch at the cap
        tx.try_send(Msg::Flush(oneshot::channel().0)).unwrap();
        for _ in 0..20 {
            tx.try_send(Msg::Job(job(false), None)).unwrap();
        }
        assert_eq!((gathered(&mut rx), gathered(&mut rx)), (17, 4));
    }

    #[test]
    fn linked_tmpfile_writes_whole_files_and_existing_paths_are_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t/trace_a.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        // on a file system with O_TMPFILE (ext4, tmpfs) the link path is taken
        assert!(write_then_link(p.parent().unwrap(), &p, b"one\n", false).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"one\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // an existing path cannot be linked over: the caller falls back to rename
        assert!(!write_then_link(p.parent().unwrap(), &p, b"two\n", false).unwrap());
        write_atomic(&p, b"two".to_vec()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
        // nothing else is left in the directory (no temp files)
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("trace_a.json")]);
        // a missing directory is NotFound, so write_file recreates it
        let gone = tmp.path().join("gone");
        let e = write_then_link(&gone, &gone.join("x.json"), b"x", false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        write_atomic(&gone.join("x.json"), b"x".to_vec()).unwrap();
        assert_eq!(std::fs::read(gone.join("x.json")).unwrap(), b"x\n");
    }

    #[test]
    fn writer_linger_env_is_bounded() {
        assert_eq!(linger_from(None), LINGER);
        assert_eq!(linger_from(Some("0")), Duration::ZERO);
        assert_eq!(linger_from(Some(" 2000 ")), Duration::from_millis(2));
        assert_eq!(linger_from(Some("20000")), Duration::from_millis(20));
        for bad in ["20001", "-1", "1ms", ""] {
            assert_eq!(linger_from(Some(bad)), LINGER, "{bad:?}");
        }
    }

    #[test]
    fn writer_thread_count_env_is_bounded() {
        let auto = threads_from(None);
        assert_eq!(auto, 1);
        assert_eq!(threads_from(Some("1")), 1);
        assert_eq!(threads_from(Some(" 8 ")), 8);
        for bad in ["0", "17", "-1", "two", ""] {
            assert_eq!(threads_from(Some(bad)), auto, "{bad:?}");
        }
    }

    #[test]
    fn orphan_temps_of_dead_writers_are_removed_and_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        for n in [
            format!(".trace_a.json.tmp{dead}.0"),
            format!(".trace_b.json.tmp{dead}.3"),
            format!(".trace_c.json.tmp{me}.0"),
            "trace_d.json".to_string(),
            format!(".trace_e.json.tmp{dead}"),
            ".gait-tmp-xyz".to_string(),
        ] {
            std::fs::write(d.path().join(n), b"{}").unwrap();
        }
        assert_eq!(remove_orphan_temps(d.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                ".gait-tmp-xyz".to_string(),
                format!(".trace_c.json.tmp{me}.0"),
                format!(".trace_e.json.tmp{dead}"),
                "trace_d.json".to_string(),
            ]
        );
        assert_eq!(remove_orphan_temps(&d.path().join("missing")), 0);
    }

    #[tokio::test]
    async fn writes_traces_and_exports_then_drains_on_close() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = WriterConfig {
            export_log_out: Some(tmp.path().join("x/log.jsonl")),
            export_otel_out: Some(tmp.path().join("otel.jsonl")),
            segments: false,
            linger: None,
        };
        let (w, thread) = TraceWriter::spawn(cfg, 2).unwrap();
        for i in 0..10 {
            w.submit(TraceJob {
                path: Some(tmp.path().join(format!("t/trace_{i}.json"))),
                segment: false,
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
            segment: false,
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
    async fn shards_write_every_trace_and_flush_waits_for_all() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log.jsonl");
        let cfg = WriterConfig {
            export_log_out: Some(log.clone()),
            export_otel_out: None,
            segments: false,
            linger: None,
        };
        let (w, thread) = TraceWriter::spawn_threads(cfg, 8, 3).unwrap();
        assert_eq!(w.shards.len(), 3);
        let job = |p: PathBuf, n: usize| TraceJob {
            path: Some(p),
            segment: false,
            record: Some(Arc::new(json!({"n": n, "pad": "x".repeat(4096)}))),
            export: Some(ExportFields {
                trace_id: format!("id{n}"),
                ..Default::default()
            }),
        };
        for i in 0..60 {
            w.submit(job(tmp.path().join(format!("t/trace_{i}.json")), i))
                .await
                .unwrap();
        }
        // the same (client-chosen) path from every shard: the last rename wins, never a mix
        for i in 0..9 {
            w.submit(job(tmp.path().join("t/same.json"), i))
                .await
                .unwrap();
        }
        w.flush().await.unwrap();
        assert_eq!(w.stats().written.load(Ordering::Relaxed), 69);
        for i in 0..60 {
            let p = tmp.path().join(format!("t/trace_{i}.json"));
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(v["n"], i);
        }
        let v: Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("t/same.json")).unwrap())
                .unwrap();
        assert!(v["n"].as_u64().unwrap() < 9);
        let lines = std::fs::read_to_string(&log).unwrap();
        assert_eq!(lines.lines().count(), 69);
        for l in lines.lines() {
            let _: Value = serde_json::from_str(l).unwrap();
        }
        // a trace directory removed behind the writer's back is created again
        std::fs::remove_dir_all(tmp.path().join("t")).unwrap();
        for i in 0..3 {
            w.submit(job(tmp.path().join(format!("t/again_{i}.json")), i))
                .await
                .unwrap();
        }
        w.flush().await.unwrap();
        for i in 0..3 {
            assert!(tmp.path().join(format!("t/again_{i}.json")).is_file());
        }
        assert_eq!(w.stats().failed.load(Ordering::Relaxed), 0);
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("t"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        drop(w);
        thread.join().await;
    }

    #[tokio::test]
    async fn waited_for_jobs_cut_a_long_linger_short() {
        // With a 10-minute linger, only the wake-ups let these finish: a durable job, a
        // prompt job (the evaluate API's trace) and a flush each wake the lingering writer.
        let tmp = tempfile::tempdir().unwrap();
        let cfg = WriterConfig {
            linger: Some(Duration::from_secs(600)),
            ..WriterConfig::default()
        };
        let (w, thread) = TraceWriter::spawn(cfg, 8).unwrap();
        let job = |name: &str| TraceJob {
            path: Some(tmp.path().join(name)),
            segment: false,
            record: Some(Arc::new(json!({"name": name}))),
            export: None,
        };
        let bound = Duration::from_secs(60);
        // the writer is parked on the queue: the first job wakes it; then it lingers
        tokio::time::timeout(bound, w.submit_durable(job("a.json")))
            .await
            .expect("durable job while parked")
            .unwrap();
        tokio::time::timeout(bound, w.submit_durable(job("b.json")))
            .await
            .expect("durable job while lingering")
            .unwrap();
        w.submit_prompt(job("c.json")).await.unwrap();
        let c = tmp.path().join("c.json");
        tokio::time::timeout(bound, async {
            while !c.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("prompt job while lingering");
        w.submit(job("d.json")).await.unwrap();
        tokio::time::timeout(bound, w.flush())
            .await
            .expect("flush while lingering")
            .unwrap();
        assert!(tmp.path().join("d.json").exists());
        assert_eq!(w.stats().written.load(Ordering::Relaxed), 4);
        drop(w);
        // closing the queue ends the linger at the latest when it runs out; do not wait 10
        // minutes for that in a test: the thread is detached once the handles are dropped
        drop(thread);
    }

    #[tokio::test]
    async fn full_queue_wait_is_bounded_and_counted() {
        // a writer whose thread is gone keeps the queue full: capacity 1, receiver alive
        let (tx, _rx) = mpsc::channel(1);
        let w = TraceWriter {
            shards: vec![Shard {
                tx,
                thread: std::thread::current(),
            }]
            .into(),
            next: Arc::default(),
            stats: Arc::default(),
            wait: Duration::from_millis(20),
        };
        let job = || TraceJob {
            path: None,
            segment: false,
            record: None,
            export: None,
        };
        w.submit(job()).await.unwrap();
        let e = w.submit(job()).await.unwrap_err();
        assert!(matches!(e, SubmitError::QueueTimeout(_)), "{e}");
        assert_eq!(w.stats().queue_timeouts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn segments_get_whole_lines_in_order_and_rotate_on_the_named_path() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log.jsonl");
        let cfg = WriterConfig {
            export_log_out: Some(log.clone()),
            export_otel_out: None,
            segments: true,
            linger: None,
        };
        let (w, thread) = TraceWriter::spawn_threads(cfg, 64, 1).unwrap();
        let seg = |n: usize| tmp.path().join(format!("segs/trace_seg_x_p1_{n:06}.jsonl"));
        let job = |i: usize| TraceJob {
            path: Some(seg(i / 7)),
            segment: true,
            record: Some(
                Arc::new(json!({"trace_id": format!("t{i}"), "n": i})) as Arc<dyn RecordBody>
            ),
            export: Some(ExportFields {
                trace_id: format!("t{i}"),
                trace_path: Some(seg(i / 7).display().to_string()),
                ..Default::default()
            }),
        };
        for i in 0..20 {
            if i == 10 {
                // a durable append is acknowledged after its batch is written and fdatasynced
                w.submit_durable(job(i)).await.unwrap();
            } else {
                w.submit(job(i)).await.unwrap();
            }
        }
        w.flush().await.unwrap();
        assert_eq!(w.stats().written.load(Ordering::Relaxed), 20);
        let mut seen = Vec::new();
        for n in 0..3 {
            let text = std::fs::read_to_string(seg(n)).unwrap();
            assert!(text.ends_with('\n'));
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert_eq!(
                    v["n"].as_u64().unwrap() as usize / 7,
                    n,
                    "line in the wrong segment"
                );
                seen.push(v["n"].as_u64().unwrap());
            }
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(seg(n)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(seen, (0..20).collect::<Vec<u64>>());
        assert!(!seg(3).exists());
        // exporter lines name the segment each record went to
        let exported = std::fs::read_to_string(&log).unwrap();
        assert_eq!(exported.lines().count(), 20);
        assert!(exported.lines().nth(14).unwrap().contains("_000002.jsonl"));
        drop(w);
        thread.join().await;
    }
}
