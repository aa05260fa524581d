//! [`JournalWriter`]: the server's single writer per journal, with group commit.
//!
//! Callers `append` through a bounded queue; one blocking task drains the queue in batches and
//! commits each batch with one lock acquisition, one `write`, one fsync, then answers every
//! caller with its sequence number. The state index (a cache) is rewritten at most every 100 ms
//! and when the writer stops. The header/state is cached and
//! revalidated by (device, inode, size) at every lock acquisition, so CLI processes may append
//! to the same journal concurrently and compaction (new inode) is picked up.
//!
//! Invariants: a caller receives `Ok` only after its event is fsynced; appends cost O(1) in the
//! journal length (no re-read unless another writer changed the file); a checkpoint failure never
//! fails the appends it follows (it is reported next to them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::{self, CheckpointOptions};
use super::error::SessionError;
use super::journal::{self, AppendInput, Cached, Options, Repair};
use super::lock::SessionLock;
use super::naming;
use super::record::{Checkpoint, SessionEvent};
use super::{SessionPaths, validate_path};

/// Configuration of one journal's writer.
#[derive(Debug, Clone)]
pub struct JournalWriterConfig {
    pub journal: PathBuf,
    pub session_id: String,
    pub run_id: String,
    /// Lock settings, producer version (and a fixed clock for tests).
    pub options: Options,
    /// Emit a checkpoint when a batch reaches a multiple of this sequence (0: never).
    pub checkpoint_interval: u64,
    /// Where checkpoint zips go (`<dir>/<base>_cp_NNNNNN.zip`); required for checkpoints.
    pub runpack_dir: Option<PathBuf>,
    /// Sign checkpoint manifests.
    pub signing_key: Option<SigningKey>,
    /// Most events per commit.
    pub max_batch: usize,
    /// Bounded queue length.
    pub queue_capacity: usize,
    /// How long `append` waits for queue space before failing with a retryable error.
    pub enqueue_timeout: Duration,
}

impl JournalWriterConfig {
    pub fn new(journal: impl Into<PathBuf>, session_id: &str, run_id: &str) -> Self {
        JournalWriterConfig {
            journal: journal.into(),
            session_id: session_id.into(),
            run_id: run_id.into(),
            options: Options::default(),
            checkpoint_interval: 0,
            runpack_dir: None,
            signing_key: None,
            max_batch: 1024,
            queue_capacity: 8192,
            enqueue_timeout: Duration::from_secs(2),
        }
    }
}

/// A checkpoint emitted after a batch.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    pub checkpoint: Checkpoint,
    pub runpack_path: PathBuf,
    pub chain_path: PathBuf,
}

/// The answer to one `append`.
#[derive(Debug, Clone)]
pub struct Appended {
    pub sequence: i64,
    pub event: SessionEvent,
    /// Set on the event whose sequence triggered a checkpoint: the checkpoint or its error text.
    pub checkpoint: Option<Result<CheckpointInfo, String>>,
    /// A tail repair done before this batch.
    pub repair: Option<Repair>,
}

struct Request {
    input: AppendInput,
    reply: oneshot::Sender<Result<Appended, SessionError>>,
}

/// Handle to a journal's writer task. Cheap to clone; the task ends when every handle is gone.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Request>,
    journal: PathBuf,
    enqueue_timeout: Duration,
}

impl JournalWriter {
    /// Start (or idempotently reopen) the journal and spawn its writer task. Fails with
    /// "already initialized with different session/run" if the journal belongs to another
    /// session (see [`naming::journal_path_for_run`]).
    pub async fn open(cfg: JournalWriterConfig) -> Result<JournalWriter, SessionError> {
        let journal = validate_path(&cfg.journal.to_string_lossy())?;
        let (sid, rid, opts) = (
            cfg.session_id.clone(),
            cfg.run_id.clone(),
            cfg.options.clone(),
        );
        let j = journal.clone();
        tokio::task::spawn_blocking(move || journal::start_session(&j, &sid, &rid, &opts))
            .await
            .map_err(|e| SessionError::Unavailable(format!("session writer start: {e}")))??;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let enqueue_timeout = cfg.enqueue_timeout;
        let actor = Actor {
            paths: SessionPaths::new(&journal),
            cfg,
            cache: None,
            last_state_write: Instant::now(),
        };
        tokio::task::spawn_blocking(move || actor.run(rx));
        Ok(JournalWriter {
            tx,
            journal,
            enqueue_timeout,
        })
    }

    pub fn journal_path(&self) -> &Path {
        &self.journal
    }

    /// Append one event; resolves after it is durable, with its sequence number.
    pub async fn append(&self, input: AppendInput) -> Result<Appended, SessionError> {
        let (reply, rx) = oneshot::channel();
        match tokio::time::timeout(self.enqueue_timeout, self.tx.send(Request { input, reply }))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(SessionError::Unavailable("session writer stopped".into())),
            Err(_) => {
                return Err(SessionError::Unavailable(
                    "session writer queue full".into(),
                ));
            }
        }
        rx.await
            .map_err(|_| SessionError::Unavailable("session writer stopped".into()))?
    }
}

struct Actor {
    paths: SessionPaths,
    cfg: JournalWriterConfig,
    cache: Option<Cached>,
    last_state_write: Instant,
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
    }
}

const STATE_WRITE_EVERY: Duration = Duration::from_millis(100);

impl Actor {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < self.cfg.max_batch.max(1) {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let mut inputs = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for r in batch {
                match r.input.validate() {
                    Ok(()) => {
                        inputs.push(r.input);
                        replies.push(r.reply);
                    }
                    Err(e) => {
                        let _ = r.reply.send(Err(e));
                    }
                }
            }
            if inputs.is_empty() {
                continue;
            }
            // The state index is a cache validated by journal size: refresh it at most every
            // STATE_WRITE_EVERY (and on shutdown) so an append costs one fsync, not three.
            let write_state = self.last_state_write.elapsed() >= STATE_WRITE_EVERY;
            match self.commit(&inputs, write_state) {
                Ok(answers) => {
                    for (reply, a) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(a));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(dup(&e)));
                    }
                }
            }
        }
        // Leave an accurate state index behind.
        if let Some(c) = &self.cache
            && let Ok(_lock) = SessionLock::acquire(&self.paths, &self.cfg.options.lock)
            && journal::file_id(&self.paths.journal).ok() == Some(c.id)
        {
            let _ = journal::write_state(&self.paths, &c.state);
        }
    }

    fn commit(
        &mut self,
        inputs: &[AppendInput],
        write_state: bool,
    ) -> Result<Vec<Appended>, SessionError> {
        let _lock = SessionLock::acquire(&self.paths, &self.cfg.options.lock)?;
        let (cached, repair) =
            match journal::ensure_state(&self.paths, self.cache.as_ref(), &self.cfg.options) {
                Ok(v) => v,
                Err(e) => {
                    self.cache = None;
                    return Err(e);
                }
            };
        let (events, cached) = match journal::append_locked(
            &self.paths,
            &cached,
            inputs,
            &self.cfg.options,
            write_state,
        ) {
            Ok(v) => v,
            Err(e) => {
                self.cache = None;
                return Err(e);
            }
        };
        if write_state {
            self.last_state_write = Instant::now();
        }
        self.cache = Some(cached);
        let mut answers: Vec<Appended> = events
            .into_iter()
            .map(|event| Appended {
                sequence: event.sequence,
                event,
                checkpoint: None,
                repair: repair.clone(),
            })
            .collect();
        let interval = self.cfg.checkpoint_interval as i64;
        if interval > 0
            && let Some(dir) = self.cfg.runpack_dir.clone()
            && let Some(pos) = answers.iter().rposition(|a| a.sequence % interval == 0)
        {
            let seq = answers[pos].sequence;
            let result = self.checkpoint_locked(&dir, seq);
            answers[pos].checkpoint = Some(result.map_err(|e| e.to_string()));
        }
        Ok(answers)
    }

    fn checkpoint_locked(&mut self, dir: &Path, seq: i64) -> Result<CheckpointInfo, SessionError> {
        let out = naming::checkpoint_zip_path(dir, &self.cfg.session_id, seq);
        let (mut model, _) = journal::load_repaired(&self.paths.journal)?;
        let copts = CheckpointOptions {
            base: self.cfg.options.clone(),
            chain_out: None,
            signing_key: self.cfg.signing_key.clone(),
        };
        let result = checkpoint::checkpoint_locked(&self.paths, &mut model, &out, &copts);
        let (cp, cached) = match result {
            Ok(v) => v,
            Err(e) => {
                self.cache = None;
                return Err(e);
            }
        };
        self.cache = Some(cached);
        self.last_state_write = Instant::now();
        checkpoint::write_chains(&self.paths, &model, None)?;
        Ok(CheckpointInfo {
            checkpoint: cp,
            runpack_path: out,
            chain_path: self.paths.chain.clone(),
        })
    }
}
