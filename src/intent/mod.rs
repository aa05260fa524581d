//! Intents: the `IntentRequest` data types, their normalisation (gate.md §3.2), the payload
//! adapters that turn MCP / OpenAI / Anthropic / LangChain / Claude Code tool calls into intents
//! (§3.3), and the intent digests (§4.1–4.3, §4.5). No I/O.
//!
//! Invariant: a normalised intent is a pure function of its input; its digests are sha256 over
//! RFC 8785 JCS of exactly the JSON Go would marshal for the same normalised struct, and
//! normalisation never panics on any input.

pub mod adapters;
pub mod digest;
pub mod error;
pub mod normalize;
pub mod types;

pub use adapters::{Adapter, ToolCall, decode_call, intent_from_call};
pub use digest::{
    args_digest_of, default_run_id, intent_digest, intent_preimage, normalize_run_id, script_hash,
};
pub use error::IntentError;
pub use normalize::{NormalizedIntent, normalize, strip_unverified_context_claims};
pub use types::{
    AgentIdentity, ArgProvenance, Delegation, DelegationLink, GoTime, IntentContext, IntentRequest,
    JsonMap, Sandbox, Script, ScriptStep, SkillProvenance, Target,
};
