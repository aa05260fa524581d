//! Session errors: one enum, one mapping to the CLI category/exit code and to HTTP status.
//!
//! Invariant: a lock timeout is always [`SessionError::Contention`] (category
//! `state_contention`, retryable, exit 1, HTTP 503 with `Retry-After`); its `Display` keeps Go's
//! message prefix and `key=value` fields so scripts matching on the text keep working.

use crate::exit::Category;
use std::time::Duration;

use super::gojson::go_duration;
use super::lock::LockProfile;

/// Structured lock-contention diagnostics (sessions.md §3.1 step 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockContention {
    /// The `J.lock` path.
    pub path: String,
    /// Time spent waiting (truncated to milliseconds).
    pub waited: Duration,
    pub attempts: u32,
    pub timeout: Duration,
    pub retry: Duration,
    pub profile: LockProfile,
    /// pid recorded in the lock file that blocked us, when readable.
    pub holder_pid: Option<i64>,
    /// Age of that lock file (from its `created_at`, else its mtime).
    pub holder_age: Option<Duration>,
}

impl std::fmt::Display for LockContention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session state contention: lock timeout (path={} waited={} attempts={} timeout={} retry={} profile={}",
            self.path,
            go_duration(self.waited),
            self.attempts,
            go_duration(self.timeout),
            go_duration(self.retry),
            self.profile.as_str()
        )?;
        if let Some(pid) = self.holder_pid {
            write!(f, " holder_pid={pid}")?;
        }
        if let Some(age) = self.holder_age {
            write!(f, " holder_age={}", go_duration(age))?;
        }
        write!(f, ")")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The lock could not be taken before the timeout.
    #[error("{0}")]
    Contention(Box<LockContention>),
    /// The lock file could not be created for a reason other than contention.
    #[error("{0}")]
    Lock(String),
    /// Invalid input, a malformed journal/chain, or a violated precondition (exit 6).
    #[error("{0}")]
    Invalid(String),
    /// A file that must exist does not (exit 6, like Go).
    #[error("{0}")]
    NotFound(String),
    /// An I/O failure while writing or reading (exit 1, `io_failure`).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The writer task is gone.
    #[error("{0}")]
    Unavailable(String),
    /// The shared writer pool's bounded queue stayed full for the whole enqueue timeout
    /// (backpressure; retryable, HTTP 503 + `Retry-After`).
    #[error("session writer queue full (queued={queued} capacity={capacity} waited={waited_ms}ms)")]
    QueueFull {
        queued: usize,
        capacity: usize,
        waited_ms: u64,
    },
}

impl SessionError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> SessionError {
        let context = context.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return SessionError::NotFound(format!("{context}: {source}"));
        }
        SessionError::Io { context, source }
    }

    /// CLI error category (and so the exit code and `retryable`).
    pub fn category(&self) -> Category {
        match self {
            SessionError::Contention(_) => Category::StateContention,
            SessionError::Lock(_) => Category::Internal,
            SessionError::Invalid(_) | SessionError::NotFound(_) => Category::InvalidInput,
            SessionError::Io { .. } => Category::Io,
            SessionError::Unavailable(_) | SessionError::QueueFull { .. } => {
                Category::StateContention
            }
        }
    }

    /// Stable machine-readable reason code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            SessionError::Contention(_) => "session_lock_contention",
            SessionError::Lock(_) => "session_lock_failed",
            SessionError::Invalid(_) => "session_invalid",
            SessionError::NotFound(_) => "session_not_found",
            SessionError::Io { .. } => "session_io_failure",
            SessionError::Unavailable(_) => "session_writer_unavailable",
            SessionError::QueueFull { .. } => "session_writer_queue_full",
        }
    }

    /// HTTP status for `mcp serve`: 503 for contention (with [`Self::retry_after`]), 400 for
    /// invalid input, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            SessionError::Contention(_)
            | SessionError::Unavailable(_)
            | SessionError::QueueFull { .. } => 503,
            SessionError::Invalid(_) | SessionError::NotFound(_) => 400,
            SessionError::Lock(_) | SessionError::Io { .. } => 500,
        }
    }

    /// Suggested `Retry-After` for retryable errors (whole seconds, at least 1).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SessionError::Contention(c) => Some(Duration::from_secs(c.retry.as_secs().max(1))),
            SessionError::Unavailable(_) | SessionError::QueueFull { .. } => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        }
    }

    pub fn retryable(&self) -> bool {
        self.category().retryable()
    }

    /// The contention details, if this is a lock timeout.
    pub fn contention(&self) -> Option<&LockContention> {
        match self {
            SessionError::Contention(c) => Some(c),
            _ => None,
        }
    }
}
