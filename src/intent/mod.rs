//! Intents: the `IntentRequest` data types, their normalisation (gate.md §3.2), the payload
//! adapters that turn MCP / OpenAI / Anthropic / LangChain / Claude Code tool calls into intents
//! (§3.3), and the intent digests (§4.1–4.3, §4.5). No I/O.
//!
//! Invariant: a normalised intent is a pure function of its input; its digests are sha256 over
//! RFC 8785 JCS of exactly the JSON Go would marshal for the same normalised struct, and
//! normalisation never panics on any input.
//!
//! # Usage
//! ```
//! use gait::intent::{self, Adapter};
//! let payload = serde_json::json!({"function": {"name": "tool.search", "arguments": "{\"query\":\"gait\"}"}});
//! let call = intent::decode_call(Adapter::OpenAi, &payload)?;          // adapter shape → ToolCall
//! let (request, warnings) = intent::intent_from_call(&call, gait::Profile::Standard)?;
//! let normalized = intent::normalize(&request)?;                        // §3.2 + digests
//! assert_eq!(normalized.tool_name(), "tool.search");
//! assert_eq!(intent::default_run_id(normalized.intent_digest()), "run_mcp_3619e812b9e7");
//! assert_eq!(call.raw_risk_class(), "");                                // what mcp_trust uses
//! assert_eq!(warnings.len(), 1);                                        // fallback context
//! # Ok::<(), gait::intent::IntentError>(())
//! ```
//! `gate eval` reads intent files with [`IntentRequest::from_json_slice`]; script intents are
//! evaluated per step via [`NormalizedIntent::step_intents`].

pub mod adapters;
pub mod digest;
pub mod error;
pub mod jcs;
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
