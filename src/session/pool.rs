//! [`JournalPool`]: a fixed, small set of writer threads serving every session journal of the
//! process, with group commit per journal.
//!
//! Callers enqueue jobs (open, append) on a journal's FIFO queue; a worker takes a journal that
//! has work, drains up to `max_batch` of its appends and commits them with one session-lock
//! acquisition, one `write`, one fsync, then answers every caller with its sequence number.
//! A journal's header/state is cached while it is "open" and revalidated by (device, inode,
//! size) at every lock acquisition, so CLI processes may append to or compact the same journal
//! between batches.
//!
//! Invariants:
//! - at most one worker works on a given journal at a time and takes its jobs in FIFO order,
//!   so appends to one journal are strictly ordered and their sequences gap-free;
//! - a caller receives `Ok` only after its event is fsynced;
//! - the pool's thread count is `threads`, whatever the number of journals; no fd is held
//!   between batches (the session lock is taken per batch), and at most `max_open` journals
//!   are open (cached); beyond that the least recently used idle one is closed;
//! - a worker never waits on a contended journal lock: it retries that journal later (backoff
//!   capped at the lock's `retry`) and fails its jobs with the contention error once they have
//!   waited the lock `timeout`;
//! - at most `queue_capacity` jobs are queued in the pool (and `queue_capacity` of the journal's
//!   config per journal); an appender waits at most its enqueue timeout for space, then gets
//!   [`SessionError::QueueFull`];
//! - closing a journal (idle, LRU, last handle dropped, shutdown) writes its state index when
//!   it is behind; shutdown processes every job already enqueued, closes every journal, then
//!   the threads exit.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::checkpoint::{self, CheckpointOptions};
use super::error::SessionError;
use super::journal::{self, AppendInput, Cached};
use super::lock::{EnvSource, ProcessEnv, SessionLock};
use super::writer::{Appended, CheckpointInfo, JournalWriterConfig};
use super::{SessionPaths, naming, validate_path};

/// Environment variable: number of journal writer threads of the process-wide pool (1-16).
pub const ENV_WRITER_THREADS: &str = "GAIT_SESSION_WRITER_THREADS";

/// The state index is a cache validated by journal size: it is rewritten at most this often
/// (and on close), so an append costs one fsync, not three.
const STATE_WRITE_EVERY: Duration = Duration::from_millis(100);

/// A journal whose queue holds only appends written behind the request (nobody waits for
/// them) is taken this long after its oldest one was queued, so one session-lock acquisition
/// and one `write` serve every append of that window instead of one each. Any append or open
/// whose caller waits, a full batch, a close or shutdown takes the journal at once.
/// 10 ms, not 2: on one session at 32 connections the journal thread spent 20–22 µs of CPU
/// per call with 2 ms and 10–11 µs with 10 ms (one connection: 48 → 22 µs), and the proxy's
/// throughput rose ~20%; a `kill -9` loses at most the last 10 ms of written-behind appends.
const BEHIND_LINGER: Duration = Duration::from_millis(10);

/// Sizing of a [`JournalPool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Writer threads (at least 1).
    pub threads: usize,
    /// Most journals kept open (cached); the least recently used idle one is closed beyond.
    pub max_open: usize,
    /// A journal without work for this long is closed.
    pub idle: Duration,
    /// Most jobs queued in the whole pool.
    pub queue_capacity: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            threads: 1,
            max_open: 256,
            idle: Duration::from_secs(300),
            queue_capacity: 8192,
        }
    }
}

impl PoolConfig {
    /// Defaults, with `threads` from [`ENV_WRITER_THREADS`] when it is a number in 1..=16.
    pub fn from_env(env: &dyn EnvSource) -> PoolConfig {
        let mut c = PoolConfig::default();
        if let Some(n) =
            crate::ops::env::parse_bounded(env.var(ENV_WRITER_THREADS).as_deref(), 1..=16usize)
        {
            c.threads = n;
        }
        c
    }
}

type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

/// What a pool reports while it writes (metrics). Called on writer threads: must not block.
pub trait PoolObserver: Send + Sync {
    /// One batch's `write` + `fdatasync` took `elapsed`.
    fn fsync(&self, elapsed: Duration);
    /// An append written behind the request failed (its call was already answered).
    fn behind_failed(&self);
}

/// The pool's observer, set at most once ([`JournalPool::observe`]).
#[derive(Default)]
struct Observer(OnceLock<Arc<dyn PoolObserver>>);

impl Observer {
    fn fsync(&self, elapsed: Duration) {
        if let Some(o) = self.0.get() {
            o.fsync(elapsed);
        }
    }

    /// Answer an append; a failure whose caller does not wait ([`PoolWriter::append_behind`])
    /// is logged and counted instead, so it is never silent.
    fn answer(&self, reply: Reply<Appended>, r: Result<Appended, SessionError>) {
        if let Err(Err(e)) = reply.send(r) {
            tracing::error!(error = %e, "Session journal append failed (written behind the request).");
            if let Some(o) = self.0.get() {
                o.behind_failed();
            }
        }
    }
}

enum Job {
    Open {
        session_id: String,
        run_id: String,
        reply: Reply<()>,
        enqueued: Instant,
    },
    Append {
        input: Box<AppendInput>,
        reply: Reply<Appended>,
        enqueued: Instant,
        /// Written behind the request: the caller does not wait for the reply.
        behind: bool,
    },
}

impl Job {
    fn enqueued(&self) -> Instant {
        match self {
            Job::Open { enqueued, .. } | Job::Append { enqueued, .. } => *enqueued,
        }
    }

    /// Someone waits for this job's reply.
    fn waited_for(&self) -> bool {
        !matches!(self, Job::Append { behind: true, .. })
    }

    fn fail(self, e: SessionError, obs: &Observer) {
        match self {
            Job::Open { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Job::Append { reply, .. } => obs.answer(reply, Err(e)),
        }
    }
}

/// A journal's fixed configuration (from the first opener).
#[derive(Debug)]
struct Spec {
    cfg: JournalWriterConfig,
    paths: SessionPaths,
}

/// What an open journal caches between batches.
struct OpenJournal {
    cache: Option<Cached>,
    last_state_write: Instant,
    /// The state index on disk is behind `cache`.
    dirty: bool,
}

struct Slot {
    spec: Arc<Spec>,
    queue: VecDeque<Job>,
    /// A worker is working on this journal (its `open` is moved out meanwhile).
    busy: bool,
    /// In `ready` or `delayed`.
    scheduled: bool,
    /// In `delayed` only to gather more write-behind appends ([`BEHIND_LINGER`]).
    lingering: bool,
    is_open: bool,
    open: Option<OpenJournal>,
    /// Close when the queue is empty (idle, LRU, handles gone, shutdown).
    close: bool,
    handles: usize,
    last_used: Instant,
    /// Consecutive lock attempts that found the journal locked.
    lock_failures: u32,
}

impl Slot {
    /// Nothing more is worth waiting for: the queue holds a batch, or the journal is closing.
    fn full_or_closing(&self, shutdown: bool) -> bool {
        shutdown || self.close || self.queue.len() >= self.spec.cfg.max_batch.max(1)
    }

    /// A lingering journal must be taken now: full, closing, or its newest job is waited for.
    /// (Only the newest: an older waited-for job would already have ended the linger.)
    fn must_not_linger(&self, shutdown: bool) -> bool {
        self.full_or_closing(shutdown) || self.queue.back().is_some_and(Job::waited_for)
    }

    /// When the queue holds only write-behind appends (and is neither full nor closing): the
    /// instant its oldest one has waited [`BEHIND_LINGER`], if still ahead.
    fn linger_until(&self, shutdown: bool) -> Option<Instant> {
        if self.full_or_closing(shutdown) || self.queue.iter().any(Job::waited_for) {
            return None;
        }
        let at = self.queue.front()?.enqueued() + BEHIND_LINGER;
        (at > Instant::now()).then_some(at)
    }
}

#[derive(Default)]
struct Inner {
    slots: HashMap<PathBuf, Slot>,
    ready: VecDeque<PathBuf>,
    delayed: Vec<(Instant, PathBuf)>,
    queued: usize,
    open_count: usize,
    busy_count: usize,
    shutdown: bool,
    next_idle_scan: Option<Instant>,
    /// Batches processed ([`PoolStats::batches`]).
    batches: u64,
}

struct Shared {
    cfg: PoolConfig,
    inner: Mutex<Inner>,
    work: Condvar,
    space: Notify,
    workers: Mutex<Vec<JoinHandle<()>>>,
    observer: Observer,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Put `key` on the ready list unless it is already scheduled or being worked on; a
    /// journal with only write-behind appends queued lingers in `delayed` first.
    fn schedule(&self, inner: &mut Inner, key: &Path) {
        let shutdown = inner.shutdown;
        let Some(slot) = inner.slots.get_mut(key) else {
            return;
        };
        if slot.busy {
            return;
        }
        if slot.scheduled {
            // A lingering journal is taken at once when it must not wait any longer.
            if slot.lingering && slot.must_not_linger(shutdown) {
                slot.lingering = false;
                inner.delayed.retain(|(_, k)| k != key);
                inner.ready.push_back(key.to_path_buf());
                self.work.notify_one();
            }
            return;
        }
        if slot.queue.is_empty() && !(slot.close && slot.is_open) {
            return;
        }
        slot.scheduled = true;
        match slot.linger_until(shutdown) {
            Some(at) => {
                slot.lingering = true;
                inner.delayed.push((at, key.to_path_buf()));
            }
            None => inner.ready.push_back(key.to_path_buf()),
        }
        self.work.notify_one();
    }

    fn idle_scan_every(&self) -> Duration {
        (self.cfg.idle / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Flag journals idle for `idle` (and, beyond `max_open`, the least recently used) for
    /// closing.
    fn flag_closes(&self, inner: &mut Inner, now: Instant) {
        let idle = self.cfg.idle;
        let mut keys = Vec::new();
        let mut flagged = 0;
        for (k, s) in inner.slots.iter_mut() {
            if !s.is_open || s.busy || !s.queue.is_empty() {
                continue;
            }
            if !s.close && now.duration_since(s.last_used) >= idle {
                s.close = true;
                keys.push(k.clone());
            }
            if s.close {
                flagged += 1;
            }
        }
        let mut excess = inner
            .open_count
            .saturating_sub(self.cfg.max_open.max(1))
            .saturating_sub(flagged);
        while excess > 0 {
            let lru = inner
                .slots
                .iter()
                .filter(|(_, s)| s.is_open && !s.busy && !s.close && s.queue.is_empty())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            let Some(k) = lru else { break };
            if let Some(s) = inner.slots.get_mut(&k) {
                s.close = true;
            }
            keys.push(k);
            excess -= 1;
        }
        for k in keys {
            self.schedule(inner, &k);
        }
    }

    fn done(&self, inner: &Inner) -> bool {
        inner.shutdown
            && inner.queued == 0
            && inner.busy_count == 0
            && inner.ready.is_empty()
            && inner.delayed.is_empty()
            && inner.open_count == 0
    }

    fn begin_shutdown(&self) {
        let mut inner = lock(&self.inner);
        if inner.shutdown {
            return;
        }
        inner.shutdown = true;
        let keys: Vec<PathBuf> = inner.slots.keys().cloned().collect();
        for k in keys {
            if let Some(s) = inner.slots.get_mut(&k) {
                s.close = true;
            }
            self.schedule(&mut inner, &k);
        }
        self.work.notify_all();
        drop(inner);
        self.space.notify_waiters();
    }
}

/// One unit of work taken by a worker.
enum Work {
    Batch {
        key: PathBuf,
        spec: Arc<Spec>,
        open: OpenJournal,
        jobs: Vec<Job>,
        failures: u32,
    },
    Close {
        key: PathBuf,
        spec: Arc<Spec>,
        open: Option<OpenJournal>,
    },
}

fn worker(shared: Arc<Shared>) {
    loop {
        let Some(work) = next_work(&shared) else {
            return;
        };
        match work {
            Work::Batch {
                key,
                spec,
                mut open,
                jobs,
                failures,
            } => {
                let n = jobs.len();
                let res = process(&spec, &mut open, jobs, failures, &shared.observer);
                let mut inner = lock(&shared.inner);
                inner.busy_count -= 1;
                if matches!(res, Processed::Done) {
                    inner.batches += 1;
                }
                let now = Instant::now();
                let completed = match res {
                    Processed::Done => n,
                    Processed::Locked { retry } => {
                        let back = retry.len();
                        if let Some(s) = inner.slots.get_mut(&key) {
                            s.lock_failures = s.lock_failures.saturating_add(1);
                            for j in retry.into_iter().rev() {
                                s.queue.push_front(j);
                            }
                        }
                        n - back
                    }
                };
                inner.queued -= completed;
                let mut delay = None;
                if let Some(s) = inner.slots.get_mut(&key) {
                    s.busy = false;
                    s.open = Some(open);
                    s.last_used = now;
                    if completed == n {
                        s.lock_failures = 0;
                    } else if !s.queue.is_empty() {
                        let cap = spec.cfg.options.lock.retry.max(Duration::from_millis(1));
                        let exp = Duration::from_millis(1 << s.lock_failures.min(12));
                        s.scheduled = true;
                        delay = Some(now + exp.min(cap));
                    }
                }
                match delay {
                    Some(at) => {
                        inner.delayed.push((at, key));
                        shared.work.notify_one();
                    }
                    None => shared.schedule(&mut inner, &key),
                }
                if inner.open_count > shared.cfg.max_open {
                    shared.flag_closes(&mut inner, now);
                }
                drop(inner);
                if completed > 0 {
                    shared.space.notify_waiters();
                }
            }
            Work::Close { key, spec, open } => {
                if let Some(open) = open {
                    close(&spec, open);
                }
                let mut inner = lock(&shared.inner);
                inner.busy_count -= 1;
                inner.open_count -= 1;
                let remove = match inner.slots.get_mut(&key) {
                    Some(s) => {
                        s.busy = false;
                        s.is_open = false;
                        s.close = false;
                        s.handles == 0 && s.queue.is_empty()
                    }
                    None => false,
                };
                if remove {
                    inner.slots.remove(&key);
                } else {
                    shared.schedule(&mut inner, &key);
                }
                if shared.done(&inner) {
                    shared.work.notify_all();
                }
            }
        }
    }
}

/// Wait for and take the next unit of work; `None` once shut down and drained.
fn next_work(shared: &Shared) -> Option<Work> {
    let mut inner = lock(&shared.inner);
    loop {
        let now = Instant::now();
        // Journals whose lock backoff has passed become ready again.
        if !inner.delayed.is_empty() {
            let mut i = 0;
            while i < inner.delayed.len() {
                if inner.delayed[i].0 <= now {
                    let (_, k) = inner.delayed.swap_remove(i);
                    inner.ready.push_back(k);
                } else {
                    i += 1;
                }
            }
        }
        if inner.open_count > 0 && inner.next_idle_scan.is_none_or(|t| t <= now) {
            inner.next_idle_scan = Some(now + shared.idle_scan_every());
            shared.flag_closes(&mut inner, now);
        }
        while let Some(key) = inner.ready.pop_front() {
            let Some(slot) = inner.slots.get_mut(&key) else {
                continue;
            };
            slot.scheduled = false;
            slot.lingering = false;
            if slot.busy {
                continue;
            }
            let spec = slot.spec.clone();
            if !slot.queue.is_empty() {
                let mut jobs = Vec::new();
                if matches!(slot.queue.front(), Some(Job::Open { .. })) {
                    jobs.extend(slot.queue.pop_front());
                } else {
                    let max = spec.cfg.max_batch.max(1);
                    while jobs.len() < max && matches!(slot.queue.front(), Some(Job::Append { .. }))
                    {
                        jobs.extend(slot.queue.pop_front());
                    }
                }
                slot.busy = true;
                let failures = slot.lock_failures;
                let newly_open = !slot.is_open;
                slot.is_open = true;
                let open = slot.open.take().unwrap_or(OpenJournal {
                    cache: None,
                    last_state_write: now,
                    dirty: false,
                });
                inner.busy_count += 1;
                if newly_open {
                    inner.open_count += 1;
                }
                return Some(Work::Batch {
                    key,
                    spec,
                    open,
                    jobs,
                    failures,
                });
            }
            if slot.close && slot.is_open {
                slot.busy = true;
                let open = slot.open.take();
                inner.busy_count += 1;
                return Some(Work::Close { key, spec, open });
            }
        }
        if shared.done(&inner) {
            shared.work.notify_all();
            return None;
        }
        let mut wake: Option<Instant> = inner.delayed.iter().map(|(t, _)| *t).min();
        if inner.open_count > 0
            && let Some(t) = inner.next_idle_scan
        {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
        inner = match wake {
            Some(t) => {
                let d = t
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1));
                shared
                    .work
                    .wait_timeout(inner, d)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0)
            }
            None => shared.work.wait(inner).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

enum Processed {
    Done,
    /// The journal was locked by someone else: `retry` goes back to the queue front (in
    /// order); jobs that waited the lock timeout were failed with the contention error.
    Locked {
        retry: Vec<Job>,
    },
}

/// A copy of an error for every caller of a failed batch.
fn dup(e: &SessionError) -> SessionError {
    match e {
        SessionError::Contention(c) => SessionError::Contention(c.clone()),
        SessionError::Lock(s) => SessionError::Lock(s.clone()),
        SessionError::Invalid(s) => SessionError::Invalid(s.clone()),
        SessionError::NotFound(s) => SessionError::NotFound(s.clone()),
        SessionError::Io { context, source } => SessionError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        SessionError::Unavailable(s) => SessionError::Unavailable(s.clone()),
        SessionError::QueueFull {
            queued,
            capacity,
            waited_ms,
        } => SessionError::QueueFull {
            queued: *queued,
            capacity: *capacity,
            waited_ms: *waited_ms,
        },
    }
}

fn process(
    spec: &Spec,
    open: &mut OpenJournal,
    jobs: Vec<Job>,
    failures: u32,
    obs: &Observer,
) -> Processed {
    let paths = &spec.paths;
    let opts = &spec.cfg.options;
    // (try_acquire creates the journal's directory, shared with the lock file.)
    let lock = match SessionLock::try_acquire(paths, &opts.lock) {
        Ok(Some(l)) => l,
        Ok(None) => {
            let now = Instant::now();
            let mut retry = Vec::with_capacity(jobs.len());
            for j in jobs {
                let waited = now.duration_since(j.enqueued());
                if waited >= opts.lock.timeout {
                    j.fail(
                        SessionLock::contention(paths, &opts.lock, waited, failures + 1),
                        obs,
                    );
                } else {
                    retry.push(j);
                }
            }
            return Processed::Locked { retry };
        }
        Err(e) => {
            for j in jobs {
                j.fail(dup(&e), obs);
            }
            return Processed::Done;
        }
    };
    let mut inputs = Vec::with_capacity(jobs.len());
    let mut replies = Vec::with_capacity(jobs.len());
    for j in jobs {
        match j {
            Job::Open {
                session_id,
                run_id,
                reply,
                ..
            } => {
                let r = journal::start_locked(paths, &session_id, &run_id, opts).map(|_| ());
                // The state file was (re)validated by start: read it again next batch.
                open.cache = None;
                let _ = reply.send(r);
            }
            Job::Append { input, reply, .. } => match input.validate() {
                Ok(()) => {
                    inputs.push(*input);
                    replies.push(reply);
                }
                Err(e) => obs.answer(reply, Err(e)),
            },
        }
    }
    if !inputs.is_empty() {
        match commit(spec, open, &inputs, obs) {
            Ok(answers) => {
                for (reply, a) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(a));
                }
            }
            Err(e) => {
                for reply in replies {
                    obs.answer(reply, Err(dup(&e)));
                }
            }
        }
    }
    drop(lock);
    Processed::Done
}

/// Under the lock: one write + one fsync for `inputs`, then a checkpoint if one is due.
fn commit(
    spec: &Spec,
    open: &mut OpenJournal,
    inputs: &[AppendInput],
    obs: &Observer,
) -> Result<Vec<Appended>, SessionError> {
    let (paths, opts) = (&spec.paths, &spec.cfg.options);
    let write_state = open.last_state_write.elapsed() >= STATE_WRITE_EVERY;
    let (cached, repair) = match journal::ensure_state(paths, open.cache.as_ref(), opts) {
        Ok(v) => v,
        Err(e) => {
            open.cache = None;
            return Err(e);
        }
    };
    let (events, cached) = match journal::append_locked(paths, &cached, inputs, opts, write_state) {
        Ok((events, cached, synced)) => {
            obs.fsync(synced);
            (events, cached)
        }
        Err(e) => {
            open.cache = None;
            return Err(e);
        }
    };
    if write_state {
        open.last_state_write = Instant::now();
    }
    open.dirty = !write_state;
    open.cache = Some(cached);
    let mut answers: Vec<Appended> = events
        .into_iter()
        .map(|event| Appended {
            sequence: event.sequence,
            event,
            checkpoint: None,
            repair: repair.clone(),
        })
        .collect();
    let interval = spec.cfg.checkpoint_interval as i64;
    if interval > 0
        && let Some(dir) = spec.cfg.runpack_dir.as_deref()
        && let Some(pos) = answers.iter().rposition(|a| a.sequence % interval == 0)
    {
        let seq = answers[pos].sequence;
        let result = checkpoint_locked(spec, open, dir, seq);
        answers[pos].checkpoint = Some(result.map_err(|e| e.to_string()));
    }
    Ok(answers)
}

fn checkpoint_locked(
    spec: &Spec,
    open: &mut OpenJournal,
    dir: &Path,
    seq: i64,
) -> Result<CheckpointInfo, SessionError> {
    let out = naming::checkpoint_zip_path(dir, &spec.cfg.session_id, seq);
    let (mut model, _) = journal::load_repaired(&spec.paths.journal)?;
    let copts = CheckpointOptions {
        base: spec.cfg.options.clone(),
        chain_out: None,
        signing_key: spec.cfg.signing_key.clone(),
    };
    let (cp, cached) = match checkpoint::checkpoint_locked(&spec.paths, &mut model, &out, &copts) {
        Ok(v) => v,
        Err(e) => {
            open.cache = None;
            return Err(e);
        }
    };
    open.cache = Some(cached);
    open.last_state_write = Instant::now();
    open.dirty = false;
    checkpoint::write_chains(&spec.paths, &model, None)?;
    Ok(CheckpointInfo {
        checkpoint: cp,
        runpack_path: out,
        chain_path: spec.paths.chain.clone(),
    })
}

/// Leave an accurate state index behind (best effort: skipped if the journal is locked by
/// someone else or changed since our last batch; the index is a size-validated cache).
fn close(spec: &Spec, open: OpenJournal) {
    if !open.dirty {
        return;
    }
    let Some(c) = open.cache else { return };
    if let Ok(Some(_lock)) = SessionLock::try_acquire(&spec.paths, &spec.cfg.options.lock)
        && journal::file_id(&spec.paths.journal).ok() == Some(c.id)
    {
        let _ = journal::write_state(&spec.paths, &c.state);
    }
}

/// Removes the owner's claim when the last [`JournalPool`] clone goes: the pool then drains
/// and its threads exit.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.begin_shutdown();
    }
}

/// A shared, bounded journal writer pool. Cheap to clone; writers opened from it keep it alive.
#[derive(Clone)]
pub struct JournalPool {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for JournalPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalPool")
            .field("cfg", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

/// Counters of a pool at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub threads: usize,
    /// Journals with a slot (a live handle or pending work).
    pub journals: usize,
    /// Journals open (state cached).
    pub open: usize,
    /// Jobs waiting or being processed.
    pub queued: usize,
    /// Shutdown has begun (new jobs are refused).
    pub shutting_down: bool,
    /// Batches processed so far, each under one session-lock acquisition (an open is a
    /// batch of its own).
    pub batches: u64,
}

impl JournalPool {
    /// Report fsync latencies and failed write-behind appends to `o` (the first observer set
    /// stays; later calls are ignored).
    pub fn observe(&self, o: Arc<dyn PoolObserver>) {
        let _ = self.shared.observer.0.set(o);
    }

    /// Start a pool with `cfg.threads` writer threads.
    pub fn new(cfg: PoolConfig) -> Result<JournalPool, SessionError> {
        let threads = cfg.threads.max(1);
        let shared = Arc::new(Shared {
            cfg: PoolConfig { threads, ..cfg },
            inner: Mutex::new(Inner::default()),
            work: Condvar::new(),
            space: Notify::new(),
            workers: Mutex::new(Vec::new()),
            observer: Observer::default(),
        });
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("gait-journal-{i}"))
                .stack_size(1 << 20)
                .spawn(move || worker(s));
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.begin_shutdown();
                    return Err(SessionError::Unavailable(format!(
                        "start session writer thread: {e}"
                    )));
                }
            }
        }
        *shared.workers.lock().unwrap_or_else(|p| p.into_inner()) = handles;
        Ok(JournalPool {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        })
    }

    /// The process-wide pool ([`PoolConfig::from_env`]) used by [`JournalWriter::open`].
    ///
    /// [`JournalWriter::open`]: super::writer::JournalWriter::open
    pub fn global() -> Result<JournalPool, SessionError> {
        static GLOBAL: OnceLock<JournalPool> = OnceLock::new();
        if let Some(p) = GLOBAL.get() {
            return Ok(p.clone());
        }
        let p = JournalPool::new(PoolConfig::from_env(&ProcessEnv))?;
        // A racing initialiser may win: its pool is used and ours drains and exits.
        Ok(GLOBAL.get_or_init(|| p).clone())
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.cfg
    }

    pub fn stats(&self) -> PoolStats {
        let inner = lock(&self.shared.inner);
        PoolStats {
            threads: self.shared.cfg.threads,
            journals: inner.slots.len(),
            open: inner.open_count,
            queued: inner.queued,
            shutting_down: inner.shutdown,
            batches: inner.batches,
        }
    }

    /// Start (or idempotently reopen) the journal of `cfg` and return a handle to it. Fails
    /// with "already initialized with different session/run" if the journal belongs to
    /// another session (see [`naming::journal_path_for_run`]).
    pub async fn open(&self, cfg: JournalWriterConfig) -> Result<PoolWriter, SessionError> {
        let journal = validate_path(&cfg.journal.to_string_lossy())?;
        let (sid, rid) = (cfg.session_id.trim(), cfg.run_id.trim());
        if sid.is_empty() || rid.is_empty() {
            return Err(SessionError::Invalid(
                "session_id and run_id are required".into(),
            ));
        }
        let (session_id, run_id) = (sid.to_string(), rid.to_string());
        let enqueue_timeout = cfg.enqueue_timeout;
        let handle = {
            let mut inner = lock(&self.shared.inner);
            if inner.shutdown {
                return Err(SessionError::Unavailable("session writer stopped".into()));
            }
            let slot = inner.slots.entry(journal.clone()).or_insert_with(|| Slot {
                spec: Arc::new(Spec {
                    paths: SessionPaths::new(&journal),
                    cfg: JournalWriterConfig {
                        journal: journal.clone(),
                        ..cfg
                    },
                }),
                queue: VecDeque::new(),
                busy: false,
                scheduled: false,
                lingering: false,
                is_open: false,
                open: None,
                close: false,
                handles: 0,
                last_used: Instant::now(),
                lock_failures: 0,
            });
            slot.handles += 1;
            Arc::new(Handle {
                pool: self.clone(),
                key: journal.clone(),
                enqueue_timeout,
            })
        };
        let (reply, rx) = oneshot::channel();
        let job = Job::Open {
            session_id,
            run_id,
            reply,
            enqueued: Instant::now(),
        };
        handle.enqueue(job).await?;
        rx.await
            .map_err(|_| SessionError::Unavailable("session writer stopped".into()))??;
        Ok(PoolWriter { handle })
    }

    /// Stop taking jobs, finish every job already enqueued, close every journal (state
    /// flushed) and wait for the writer threads to exit. Blocking: call from a blocking
    /// context (or use [`JournalPool::shutdown`]).
    pub fn shutdown_blocking(&self) {
        self.shared.begin_shutdown();
        let handles = std::mem::take(
            &mut *self
                .shared
                .workers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let me = std::thread::current().id();
        for h in handles {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }

    /// [`JournalPool::shutdown_blocking`] on the blocking thread pool.
    pub async fn shutdown(&self) {
        let p = self.clone();
        let _ = tokio::task::spawn_blocking(move || p.shutdown_blocking()).await;
    }
}

/// One journal's claim on the pool; the journal is closed when the last one goes.
struct Handle {
    pool: JournalPool,
    key: PathBuf,
    enqueue_timeout: Duration,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let shared = &self.pool.shared;
        let mut inner = lock(&shared.inner);
        if let Some(s) = inner.slots.get_mut(&self.key) {
            s.handles -= 1;
            if s.handles == 0 {
                s.close = true;
                if !s.is_open && !s.busy && s.queue.is_empty() {
                    inner.slots.remove(&self.key);
                    return;
                }
                shared.schedule(&mut inner, &self.key);
            }
        }
    }
}

impl Handle {
    /// Queue `job`, waiting at most the enqueue timeout for space.
    async fn enqueue(&self, job: Job) -> Result<(), SessionError> {
        let shared = &self.pool.shared;
        let start = tokio::time::Instant::now();
        let deadline = start + self.enqueue_timeout;
        let mut job = Some(job);
        loop {
            let notified = shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let queued = {
                let mut inner = lock(&shared.inner);
                if inner.shutdown {
                    return Err(SessionError::Unavailable("session writer stopped".into()));
                }
                let queued = inner.queued;
                let global_ok = queued < shared.cfg.queue_capacity.max(1);
                match inner.slots.get_mut(&self.key) {
                    Some(s) if global_ok && s.queue.len() < s.spec.cfg.queue_capacity.max(1) => {
                        if let Some(j) = job.take() {
                            s.queue.push_back(j);
                            s.close = s.handles == 0;
                        }
                        inner.queued += 1;
                        shared.schedule(&mut inner, &self.key);
                        return Ok(());
                    }
                    Some(_) => {}
                    None => return Err(SessionError::Unavailable("session writer closed".into())),
                }
                queued
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(SessionError::QueueFull {
                    queued,
                    capacity: shared.cfg.queue_capacity,
                    waited_ms: start.elapsed().as_millis() as u64,
                });
            }
        }
    }
}

/// Handle to one journal in a [`JournalPool`]. Cheap to clone.
#[derive(Clone)]
pub struct PoolWriter {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for PoolWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolWriter")
            .field("journal", &self.handle.key)
            .finish()
    }
}

impl PoolWriter {
    pub fn journal_path(&self) -> &Path {
        &self.handle.key
    }

    /// Enqueue one event without waiting for it to be written (bounded wait for queue space
    /// only: a full queue still refuses). Appends keep their FIFO order with every other
    /// append of the journal; a failure is logged by the writer.
    pub async fn append_behind(&self, input: AppendInput) -> Result<(), SessionError> {
        let (reply, _) = oneshot::channel();
        self.handle
            .enqueue(Job::Append {
                input: Box::new(input),
                reply,
                enqueued: Instant::now(),
                behind: true,
            })
            .await
    }

    /// Append one event; resolves after it is durable, with its sequence number.
    pub async fn append(&self, input: AppendInput) -> Result<Appended, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.handle
            .enqueue(Job::Append {
                input: Box::new(input),
                reply,
                enqueued: Instant::now(),
                behind: false,
            })
            .await?;
        rx.await
            .map_err(|_| SessionError::Unavailable("session writer stopped".into()))?
    }

    /// The pool this journal is written by.
    pub fn pool(&self) -> &JournalPool {
        &self.handle.pool
    }
}

#[cfg(test)]
mod tests;
