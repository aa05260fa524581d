//! Signed decision traces: the `gait.gate.trace` record, Ed25519 signing and verification, key
//! modes and key files, atomic artifact writes and the JSONL exporters (gate.md §4.5, §5, §7.1).
//!
//! Invariant: every trace gait writes is signed over `sha256(JCS(record minus signature))`, is
//! written atomically with mode 0600, and serializes with Go's key order and omitempty rules so
//! Go's verifier accepts it.

pub mod export;
pub mod file;
pub mod record;
pub mod segment;
pub mod sign;

pub use export::DecisionExport;
pub use record::{
    AgentLineage, AgentLink, DelegationRef, Edge, EntityRef, FreezeWindowDecision,
    KillSwitchDecision, McpTrustDecision, PolicyRef, Relationship, RelationshipInput,
    SandboxDecision, Signature, StepVerdict, TRACE_SCHEMA_ID, TRACE_SCHEMA_VERSION, TraceRecord,
    event_id, rfc3339_nano, trace_id,
};
pub use sign::{
    DEV_KEY_WARNING, KeyConfig, KeyMode, Signer, VerifyKeySource, key_id_of, record_digest,
    verify_value,
};

use crate::exit::Category;
use thiserror::Error;

/// Every way reading, signing, verifying or writing a trace (or a key) can fail.
#[derive(Debug, Error)]
pub enum TraceError {
    /// A record or JSON input is malformed or violates the schema.
    #[error("{0}")]
    Invalid(String),
    /// An input file is missing, unreadable, a directory or over the size cap.
    #[error("read {path}: {message}")]
    Input { path: String, message: String },
    /// A key source is misconfigured or a key does not decode.
    #[error("{0}")]
    Key(String),
    /// Signature verification failed (tampered, unsigned, other key).
    #[error("{0}")]
    Verify(String),
    /// Writing an artifact failed.
    #[error("write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl TraceError {
    /// Error category (and so exit code) of the failure.
    pub fn category(&self) -> Category {
        match self {
            TraceError::Invalid(_) | TraceError::Input { .. } | TraceError::Key(_) => {
                Category::InvalidInput
            }
            TraceError::Verify(_) => Category::VerificationFailed,
            TraceError::Io { .. } => Category::Io,
        }
    }
}
