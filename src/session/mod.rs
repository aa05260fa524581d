//! Crash-safe session journals, locks, checkpoints and chains (sessions.md).
//!
//! A session journal `J` is an append-only JSONL file (header, events, checkpoints) that Go
//! gait can read and write too. Around it live `J.state.json` (a cache trusted only while its
//! recorded journal size matches), `J.lock` (the Go-compatible `O_EXCL` lock file), `J.flock`
//! (an OS advisory lock on a never-deleted sidecar, Rust writers only), the chain file
//! `<stem>_chain.json` and the checkpoint runpacks (deterministic zips).
//!
//! Invariants:
//! - every mutation of `J` happens while holding both locks ([`lock::SessionLock`]);
//! - sequences are contiguous from 1 and `last_sequence = max(last event, last checkpoint end)`,
//!   so a fully compacted journal keeps counting (fixes Go's compaction defect);
//! - a torn final line is truncated (and counted) before anything else is appended;
//! - the state, chain, compacted journal and zips are replaced atomically
//!   (temp file, fsync, rename, directory fsync).
//!
//! Entry points: [`start_session`], [`append_event`], [`append_events`], [`session_status`],
//! [`checkpoint`], [`compact`], [`verify_chain`] for one-shot use (CLI), and
//! [`writer::JournalWriter`] for the server (handles to journals in a shared, bounded
//! [`pool::JournalPool`] of writer threads, group commit per journal).

pub mod checkpoint;
pub mod compact;
pub mod error;
pub mod fsx;
pub mod gojson;
pub mod journal;
pub mod lock;
pub mod naming;
pub mod pool;
pub mod record;
pub mod runpack;
pub mod writer;

pub use checkpoint::{
    ChainVerifyOptions, ChainVerifyResult, CheckpointOptions, CheckpointOutcome, checkpoint,
    checkpoint_digest, read_chain, verify_chain,
};
pub use compact::{CompactionResult, compact};
pub use error::{LockContention, SessionError};
pub use journal::{
    AppendInput, JournalModel, Options, Outcome, Repair, SessionStatus, append_event,
    append_events, read_journal, session_status, start_session,
};
pub use lock::{EnvSource, LockConfig, LockProfile, ProcessEnv};
pub use pool::{JournalPool, PoolConfig, PoolStats, PoolWriter};
pub use record::{
    AgentLink, Checkpoint, Relationship, SessionChain, SessionEvent, SessionHeader, SessionState,
};
pub use writer::{Appended, CheckpointInfo, JournalWriter, JournalWriterConfig};

use std::path::{Component, Path, PathBuf};

/// Producer version used when neither the caller nor the journal names one.
pub const DEFAULT_PRODUCER_VERSION: &str = "0.0.0-dev";

/// The files that belong to one journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPaths {
    pub journal: PathBuf,
    /// `J.state.json`
    pub state: PathBuf,
    /// `J.lock` (Go-compatible lock file, deleted on release)
    pub lock: PathBuf,
    /// `J.flock` (advisory-lock sidecar, never deleted)
    pub flock: PathBuf,
    /// `dir(J)/<basename(J) minus last extension>_chain.json`
    pub chain: PathBuf,
}

impl SessionPaths {
    pub fn new(journal: &Path) -> SessionPaths {
        let with_suffix = |suffix: &str| {
            let mut s = journal.as_os_str().to_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        SessionPaths {
            journal: journal.to_path_buf(),
            state: with_suffix(".state.json"),
            lock: with_suffix(".lock"),
            flock: with_suffix(".flock"),
            chain: default_chain_path(journal),
        }
    }
}

/// Default chain path: `dir(J)/<basename(J) minus its last extension>_chain.json`.
pub fn default_chain_path(journal: &Path) -> PathBuf {
    let base = journal
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = match base.rfind('.') {
        Some(i) => &base[..i],
        None => base.as_str(),
    };
    let name = format!("{stem}_chain.json");
    match journal.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    }
}

/// Go's path rule for every session path (sessions.md §2.1): trimmed, non-empty, cleaned,
/// not `.` or `/`, and a relative path must not traverse `..`.
pub fn validate_path(raw: &str) -> Result<PathBuf, SessionError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(SessionError::Invalid(
            "runpack output path is required".into(),
        ));
    }
    let cleaned = clean_path(trimmed);
    if cleaned == Path::new(".") || cleaned == Path::new("/") {
        return Err(SessionError::Invalid(format!(
            "invalid runpack output path: {trimmed}"
        )));
    }
    if cleaned.is_relative() && cleaned.components().any(|c| c == Component::ParentDir) {
        return Err(SessionError::Invalid(
            "relative runpack output path must not traverse parent directories".into(),
        ));
    }
    Ok(cleaned)
}

/// Lexical path cleaning like Go's `filepath.Clean`.
pub fn clean_path(p: &str) -> PathBuf {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => PathBuf::from(format!("/{joined}")),
        (false, true) => PathBuf::from("."),
        (false, false) => PathBuf::from(joined),
    }
}

#[cfg(test)]
mod tests;
