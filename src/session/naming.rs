//! `mcp serve` session file naming and warning strings (sessions.md §7). No I/O.

use std::path::{Path, PathBuf};

/// Default `--session-dir` of `mcp serve`.
pub const DEFAULT_SESSION_DIR: &str = "./gait-out/mcp-serve/sessions";

/// File base for a session id: trim, replace `/ \ space :` with `_`, trim leading/trailing
/// `.` and `_`; empty → `session`.
pub fn session_file_base(session_id: &str) -> String {
    let replaced: String = session_id
        .trim()
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | ' ' | ':') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim_matches(|c| c == '.' || c == '_');
    if trimmed.is_empty() {
        "session".into()
    } else {
        trimmed.into()
    }
}

/// Normalise a run id: `[^A-Za-z0-9_-]` → `_`, prefixed with `run_` when missing; empty stays
/// empty.
pub fn normalize_run_id(run_id: &str) -> String {
    let s: String = run_id
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with("run_") {
        s
    } else {
        format!("run_{s}")
    }
}

/// Fallback run id when a request names none: `run_mcp_<first 12 hex of the intent digest>`.
pub fn run_id_from_intent_digest(intent_digest: &str) -> String {
    let d: String = intent_digest.chars().take(12).collect();
    format!("run_mcp_{d}")
}

/// `<session_dir>/<base>.journal.jsonl`
pub fn journal_path(session_dir: &Path, session_id: &str) -> PathBuf {
    session_dir.join(format!("{}.journal.jsonl", session_file_base(session_id)))
}

/// Retry path after "different session/run": `<session_dir>/<base>_<normalized run>.journal.jsonl`.
pub fn journal_path_for_run(session_dir: &Path, session_id: &str, run_id: &str) -> PathBuf {
    session_dir.join(format!(
        "{}_{}.journal.jsonl",
        session_file_base(session_id),
        normalize_run_id(run_id)
    ))
}

/// `<runpack_dir>/<base>_cp_%06d.zip` where the number is the triggering event sequence.
pub fn checkpoint_zip_path(runpack_dir: &Path, session_id: &str, sequence: i64) -> PathBuf {
    runpack_dir.join(format!(
        "{}_cp_{sequence:06}.zip",
        session_file_base(session_id)
    ))
}

/// Response warning after an append: `session_journal=<path> sequence=<n>`.
pub fn journal_warning(journal: &Path, sequence: i64) -> String {
    format!("session_journal={} sequence={sequence}", journal.display())
}

/// Response warning after a checkpoint: `session_checkpoint=<zip> chain=<chain>`.
pub fn checkpoint_warning(zip: &Path, chain: &Path) -> String {
    format!(
        "session_checkpoint={} chain={}",
        zip.display(),
        chain.display()
    )
}

/// True when a start error means "journal belongs to another session/run" (retry with
/// [`journal_path_for_run`]).
pub fn is_identity_conflict(err: &super::SessionError) -> bool {
    err.to_string()
        .contains("already initialized with different session/run")
}
