//! [`JournalWriter`]: the server's writer handle for one journal, with group commit.
//!
//! A `JournalWriter` is a handle to one journal in a shared [`JournalPool`] (the process-wide
//! [`JournalPool::global`] for [`JournalWriter::open`], or any pool via
//! [`JournalWriter::open_in`]). Callers `append` through the pool's bounded queue; a pool
//! thread drains the journal's queue in batches and commits each batch with one lock
//! acquisition, one `write`, one fsync, then answers every caller with its sequence number.
//! No thread or file descriptor belongs to one journal; see [`super::pool`] for the threads,
//! bounds, idle close and backpressure.
//!
//! Invariants: a caller receives `Ok` only after its event is fsynced; appends to one journal
//! are committed in the order they were enqueued with gap-free sequences; appends cost O(1) in
//! the journal length (no re-read unless another writer changed the file); a checkpoint failure
//! never fails the appends it follows (it is reported next to them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::error::SessionError;
use super::journal::{AppendInput, Options, Repair};
use super::pool::{JournalPool, PoolWriter};
use super::record::{Checkpoint, SessionEvent};

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
    /// Most jobs queued for this journal (the pool also bounds the total).
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

/// Handle to a journal's writer. Cheap to clone; the journal is closed (state index flushed)
/// when every handle is gone.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    inner: PoolWriter,
}

impl JournalWriter {
    /// Start (or idempotently reopen) the journal in the process-wide pool. Fails with
    /// "already initialized with different session/run" if the journal belongs to another
    /// session (see [`super::naming::journal_path_for_run`]).
    pub async fn open(cfg: JournalWriterConfig) -> Result<JournalWriter, SessionError> {
        JournalWriter::open_in(&JournalPool::global()?, cfg).await
    }

    /// [`JournalWriter::open`] in a given pool.
    pub async fn open_in(
        pool: &JournalPool,
        cfg: JournalWriterConfig,
    ) -> Result<JournalWriter, SessionError> {
        Ok(JournalWriter {
            inner: pool.open(cfg).await?,
        })
    }

    pub fn journal_path(&self) -> &Path {
        self.inner.journal_path()
    }

    /// Append one event; resolves after it is durable, with its sequence number.
    pub async fn append(&self, input: AppendInput) -> Result<Appended, SessionError> {
        self.inner.append(input).await
    }

    /// Enqueue one event; resolves once it is queued (in order), not once it is written.
    pub async fn append_behind(&self, input: AppendInput) -> Result<(), SessionError> {
        self.inner.append_behind(input).await
    }
}
