//! Payload adapters (gate.md §3.3): native MCP tool calls and the OpenAI, Anthropic, LangChain
//! and Claude Code tool-call shapes, decoded into one [`ToolCall`] and turned into an
//! [`IntentRequest`] with the MCP default context.
//!
//! Invariant: decoding is lenient about unknown keys and `null`s but strict about types, never
//! panics, and every error is a one-line [`IntentError`]. [`intent_from_call`] applies exactly
//! Go's defaults (`mcp-proxy` / `.` / `high`, `created_at` 1980-01-01, producer `0.0.0-dev`)
//! and the oss-prod context and OAuth-evidence requirements.

use super::error::{IntentError, echo};
use super::types::{
    ArgProvenance, Delegation, DelegationLink, GoTime, INTENT_SCHEMA_ID, INTENT_SCHEMA_VERSION,
    IntentContext, IntentRequest, JsonMap, Script, ScriptStep, Target, is_false, null_default,
};
use crate::Profile;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Identity used when an MCP call carries none (standard profile).
pub const DEFAULT_IDENTITY: &str = "mcp-proxy";
/// Workspace used when an MCP call carries none (standard profile).
pub const DEFAULT_WORKSPACE: &str = ".";
/// Risk class used when an MCP call carries none.
pub const DEFAULT_RISK_CLASS: &str = "high";
/// `producer_version` of intents built from tool calls.
pub const CALL_PRODUCER_VERSION: &str = "0.0.0-dev";
/// Warning added in the standard profile when identity, workspace or session_id is missing.
pub const FALLBACK_CONTEXT_WARNING: &str = "standard profile applied fallback intent context; use --profile oss-prod for strict context enforcement";

/// The payload shape of a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Adapter {
    #[default]
    Mcp,
    OpenAi,
    Anthropic,
    Langchain,
    ClaudeCode,
}

impl Adapter {
    pub fn as_str(self) -> &'static str {
        match self {
            Adapter::Mcp => "mcp",
            Adapter::OpenAi => "openai",
            Adapter::Anthropic => "anthropic",
            Adapter::Langchain => "langchain",
            Adapter::ClaudeCode => "claude_code",
        }
    }

    /// The name used in decode error messages (`parse <name> tool call: …`).
    fn label(self) -> &'static str {
        match self {
            Adapter::Mcp => "mcp",
            Adapter::OpenAi => "openai",
            Adapter::Anthropic => "anthropic",
            Adapter::Langchain => "langchain",
            Adapter::ClaudeCode => "claude code",
        }
    }
}

impl fmt::Display for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Adapter {
    type Err = IntentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "" | "mcp" => Ok(Adapter::Mcp),
            "openai" => Ok(Adapter::OpenAi),
            "anthropic" => Ok(Adapter::Anthropic),
            "claude_code" | "claude-code" | "claudecode" => Ok(Adapter::ClaudeCode),
            "langchain" => Ok(Adapter::Langchain),
            _ => Err(IntentError::UnsupportedAdapter(echo(s))),
        }
    }
}

/// The native MCP tool call (`core/mcp` `ToolCall`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "JsonMap::is_empty"
    )]
    pub args: JsonMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptCall>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub target: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub targets: Vec<CallTarget>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arg_provenance: Vec<ArgProvenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    #[serde(default, deserialize_with = "null_default")]
    pub context: CallContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<CallDelegation>,
    #[serde(default)]
    pub created_at: GoTime,
}

impl ToolCall {
    /// The raw `context.risk_class` as sent (trimmed, not defaulted). `mcp_trust` computes
    /// `required` from this, not from the intent's defaulted risk class (headline surprise 2).
    pub fn raw_risk_class(&self) -> &str {
        self.context.risk_class.trim()
    }

    /// The MCP server the call is addressed to, if the payload named one.
    pub fn server(&self) -> Option<&ServerInfo> {
        self.server.as_ref()
    }
}

/// `server{…}` of a native call: what `mcp_trust` admits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    #[serde(default, deserialize_with = "null_default")]
    pub server_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub server_name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub publisher: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub source: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub endpoint: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptCall {
    #[serde(default, deserialize_with = "null_default")]
    pub steps: Vec<ScriptCallStep>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptCallStep {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "JsonMap::is_empty"
    )]
    pub args: JsonMap,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub targets: Vec<CallTarget>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arg_provenance: Vec<ArgProvenance>,
}

/// A target as MCP clients send it: hints in snake or camel case, plus `annotations{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallTarget {
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub value: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub operation: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub sensitivity: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub discovery_method: String,
    #[serde(
        default,
        rename = "discoveryMethod",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub discovery_method_alias: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub read_only_hint: bool,
    #[serde(
        default,
        rename = "readOnlyHint",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub read_only_hint_alias: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub destructive_hint: bool,
    #[serde(
        default,
        rename = "destructiveHint",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub destructive_hint_alias: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub idempotent_hint: bool,
    #[serde(
        default,
        rename = "idempotentHint",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub idempotent_hint_alias: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub open_world_hint: bool,
    #[serde(
        default,
        rename = "openWorldHint",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub open_world_hint_alias: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "JsonMap::is_empty"
    )]
    pub annotations: JsonMap,
}

/// `context{…}` of a native call (only this adapter can carry a context).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallContext {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub identity: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub workspace: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub risk_class: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub phase: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub job_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub session_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub request_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub run_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_evidence: Option<OAuthEvidence>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "JsonMap::is_empty"
    )]
    pub auth_context: JsonMap,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub credential_scopes: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub environment_fingerprint: String,
    /// Rejected by `mcp proxy` and by serve unless `--allow-client-artifact-paths`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub context_envelope_path: String,
}

/// OAuth evidence claimed by the caller (merged into `auth_context.oauth_evidence`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthEvidence {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub issuer: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audience: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub subject: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub client_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub token_type: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub dcr_client_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub redirect_uri: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub token_binding: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth_time: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub evidence_ref: String,
}

/// `delegation{…}` of a native call (no times).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDelegation {
    #[serde(default, deserialize_with = "null_default")]
    pub requester_identity: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub scope_class: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub token_refs: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub chain: Vec<CallDelegationLink>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDelegationLink {
    #[serde(default, deserialize_with = "null_default")]
    pub delegator_identity: String,
    #[serde(default, deserialize_with = "null_default")]
    pub delegate_identity: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub scope_class: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub token_ref: String,
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decode raw payload bytes with `adapter` (invalid JSON is a decode error of that adapter).
pub fn decode_call_slice(adapter: Adapter, payload: &[u8]) -> Result<ToolCall, IntentError> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| IntentError::decode(adapter.label(), e.to_string()))?;
    decode_call(adapter, &value)
}

/// Decode a parsed payload with `adapter` into a native [`ToolCall`] (gate.md §3.3).
pub fn decode_call(adapter: Adapter, payload: &Value) -> Result<ToolCall, IntentError> {
    match adapter {
        Adapter::Mcp => decode_mcp(payload),
        Adapter::OpenAi => decode_openai(payload),
        Adapter::Anthropic => decode_anthropic(payload),
        Adapter::Langchain => decode_langchain(payload),
        Adapter::ClaudeCode => decode_claude_code(payload),
    }
}

fn decode_mcp(payload: &Value) -> Result<ToolCall, IntentError> {
    if payload.is_null() {
        return Ok(ToolCall::default());
    }
    ToolCall::deserialize(payload).map_err(|e| IntentError::decode("mcp", e.to_string()))
}

/// The payload as an object (`null` is an empty object, like Go's decode into a struct).
fn envelope<'a>(
    adapter: Adapter,
    payload: &'a Value,
) -> Result<Option<&'a serde_json::Map<String, Value>>, IntentError> {
    match payload {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        other => Err(IntentError::decode(
            adapter.label(),
            format!("expected a JSON object, got {}", kind_of(other)),
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A string field of an envelope: absent/null → "", string → itself, else a decode error.
fn string_field(
    adapter: Adapter,
    obj: Option<&serde_json::Map<String, Value>>,
    key: &str,
) -> Result<String, IntentError> {
    match obj.and_then(|o| o.get(key)) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(IntentError::decode(
            adapter.label(),
            format!("field {key} must be a string, got {}", kind_of(other)),
        )),
    }
}

/// A field that may be absent or null.
fn any_field<'a>(obj: Option<&'a serde_json::Map<String, Value>>, key: &str) -> Option<&'a Value> {
    match obj.and_then(|o| o.get(key)) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// Go's `decodeArguments`: null → {}, object → itself, string → parsed JSON object ("" or
/// "null" → {}), anything else → error.
fn decode_arguments(raw: Option<&Value>) -> Result<JsonMap, String> {
    match raw {
        None | Some(Value::Null) => Ok(JsonMap::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::String(s)) => decode_json_string_arguments(s),
        Some(other) => Err(format!(
            "cannot decode {} arguments into an object",
            kind_of(other)
        )),
    }
}

fn decode_json_string_arguments(encoded: &str) -> Result<JsonMap, String> {
    if encoded.trim().is_empty() {
        return Ok(JsonMap::new());
    }
    match serde_json::from_str::<Value>(encoded) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(JsonMap::new()),
        Ok(other) => Err(format!(
            "cannot decode {} arguments into an object",
            kind_of(&other)
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn decode_openai(payload: &Value) -> Result<ToolCall, IntentError> {
    let env = envelope(Adapter::OpenAi, payload)?;
    let function = match any_field(env, "function") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            return Err(IntentError::decode(
                "openai",
                format!("field function must be an object, got {}", kind_of(other)),
            ));
        }
    };
    let name = string_field(Adapter::OpenAi, function, "name")?;
    let args = decode_arguments(any_field(function, "arguments"))
        .map_err(|e| IntentError::arguments("openai", "arguments", e))?;
    Ok(ToolCall {
        name,
        args,
        ..ToolCall::default()
    })
}

fn decode_anthropic(payload: &Value) -> Result<ToolCall, IntentError> {
    let env = envelope(Adapter::Anthropic, payload)?;
    string_field(Adapter::Anthropic, env, "type")?;
    let name = string_field(Adapter::Anthropic, env, "name")?;
    let args = match any_field(env, "input") {
        None => JsonMap::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(IntentError::decode(
                "anthropic",
                format!("field input must be an object, got {}", kind_of(other)),
            ));
        }
    };
    Ok(ToolCall {
        name,
        args,
        ..ToolCall::default()
    })
}

fn decode_langchain(payload: &Value) -> Result<ToolCall, IntentError> {
    let env = envelope(Adapter::Langchain, payload)?;
    let name = string_field(Adapter::Langchain, env, "tool")?;
    let args = decode_arguments(any_field(env, "tool_input"))
        .map_err(|e| IntentError::arguments("langchain", "tool_input", e))?;
    Ok(ToolCall {
        name,
        args,
        ..ToolCall::default()
    })
}

fn decode_claude_code(payload: &Value) -> Result<ToolCall, IntentError> {
    let a = Adapter::ClaudeCode;
    let env = envelope(a, payload)?;
    string_field(a, env, "type")?;
    let name_fallback = string_field(a, env, "name")?;
    let session_id = string_field(a, env, "session_id")?;
    let tool_name = string_field(a, env, "tool_name")?;
    let hook_event_name = string_field(a, env, "hook_event_name")?;

    let raw_name = match tool_name.trim() {
        "" => name_fallback.trim(),
        t => t,
    };
    let name = normalize_claude_code_tool_name(raw_name);
    if name.is_empty() {
        return Err(IntentError::invalid(
            "claude code tool call name is required",
        ));
    }
    let raw_args = any_field(env, "tool_input").or_else(|| any_field(env, "input"));
    let args = decode_arguments(raw_args)
        .map_err(|e| IntentError::arguments("claude code", "tool_input", e))?;

    let mut call = ToolCall {
        targets: infer_claude_code_targets(&name, &args),
        name,
        args,
        ..ToolCall::default()
    };
    let session_id = session_id.trim();
    if !session_id.is_empty() {
        call.context.session_id = session_id.to_string();
    }
    let hook = hook_event_name.trim();
    if !hook.is_empty() {
        let mut auth = JsonMap::new();
        auth.insert("hook_event_name".into(), Value::String(hook.to_string()));
        auth.insert("adapter".into(), Value::String("claude_code".into()));
        call.context.auth_context = auth;
    }
    Ok(call)
}

/// Claude Code tool names → gait tool names (gate.md §3.3 name map).
pub fn normalize_claude_code_tool_name(raw: &str) -> String {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    let canonical: String = trimmed
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect();
    let mapped = match canonical.as_str() {
        "read" | "grep" | "glob" | "webfetch" | "websearch" => Some("tool.read"),
        "write" | "edit" | "notebookedit" => Some("tool.write"),
        "bash" => Some("tool.exec"),
        "task" => Some("tool.delegate"),
        _ => None,
    };
    if let Some(m) = mapped {
        return m.to_string();
    }
    if trimmed.contains('.') {
        return trimmed.to_lowercase();
    }
    format!("tool.{}", trimmed.to_lowercase().replace([' ', '-'], "_"))
}

fn first_non_empty_string(args: &JsonMap, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match args.get(*k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    })
}

fn call_target(kind: &str, value: String, operation: &str) -> CallTarget {
    CallTarget {
        kind: kind.to_string(),
        value,
        operation: operation.to_string(),
        ..CallTarget::default()
    }
}

fn infer_claude_code_targets(tool_name: &str, args: &JsonMap) -> Vec<CallTarget> {
    let mut out = Vec::new();
    match tool_name {
        "tool.read" => {
            if let Some(p) =
                first_non_empty_string(args, &["path", "file_path", "filepath", "file"])
            {
                out.push(call_target("path", p, "read"));
            }
            if let Some(u) = first_non_empty_string(args, &["url", "uri"]) {
                out.push(call_target("url", u, "read"));
            }
        }
        "tool.write" => {
            if let Some(p) =
                first_non_empty_string(args, &["path", "file_path", "filepath", "file"])
            {
                out.push(call_target("path", p, "write"));
            }
        }
        "tool.exec" => {
            if let Some(c) = first_non_empty_string(args, &["command", "cmd", "script"]) {
                out.push(call_target("other", c, "execute"));
            }
        }
        "tool.delegate" => {
            if let Some(t) = first_non_empty_string(args, &["task", "prompt", "description"]) {
                out.push(call_target("other", t, "delegate"));
            }
        }
        _ => {}
    }
    out
}

// ---------------------------------------------------------------------------------------------
// ToolCall → IntentRequest

/// Build the intent for `call` (gate.md §3.3 mapping) under `profile`, and return the warnings
/// the caller should report. Runs the `auth_mode` / OAuth-evidence boundary checks first.
pub fn intent_from_call(
    call: &ToolCall,
    profile: Profile,
) -> Result<(IntentRequest, Vec<String>), IntentError> {
    validate_oauth_evidence(call, profile)?;

    let name = call.name.trim();
    let script_steps = call
        .script
        .as_ref()
        .map(|s| s.steps.as_slice())
        .unwrap_or(&[]);
    let has_script = !script_steps.is_empty();
    if name.is_empty() && !has_script {
        return Err(IntentError::invalid("tool call name is required"));
    }

    let targets: Vec<Target> = if call.targets.is_empty() && !call.target.trim().is_empty() {
        vec![to_intent_target(&infer_legacy_target(&call.target))]
    } else {
        call.targets.iter().map(to_intent_target).collect()
    };
    let arg_provenance: Vec<ArgProvenance> =
        call.arg_provenance.iter().map(trim_provenance).collect();

    let mut tool_name = name.to_string();
    let mut args = call.args.clone();
    let mut script = None;
    if has_script {
        let mut steps = Vec::with_capacity(script_steps.len());
        for (index, step) in script_steps.iter().enumerate() {
            let step_name = step.name.trim();
            if step_name.is_empty() {
                return Err(IntentError::invalid(format!(
                    "script.steps[{index}].name is required"
                )));
            }
            steps.push(ScriptStep {
                tool_name: step_name.to_string(),
                args: step.args.clone(),
                targets: step.targets.iter().map(to_intent_target).collect(),
                arg_provenance: step.arg_provenance.iter().map(trim_provenance).collect(),
            });
        }
        script = Some(Script { steps });
        tool_name = "script".to_string();
        args = JsonMap::new();
    }

    let created_at = if call.created_at.is_zero() {
        GoTime::epoch_1980()
    } else {
        call.created_at.to_utc()
    };

    let ctx = &call.context;
    if profile == Profile::OssProd {
        for (field, value) in [
            ("identity", &ctx.identity),
            ("workspace", &ctx.workspace),
            ("session_id", &ctx.session_id),
        ] {
            if value.trim().is_empty() {
                return Err(IntentError::invalid(format!(
                    "context.{field} is required in strict profile"
                )));
            }
        }
    }
    let mut warnings = Vec::new();
    if profile == Profile::Standard
        && (ctx.identity.trim().is_empty()
            || ctx.workspace.trim().is_empty()
            || ctx.session_id.trim().is_empty())
    {
        warnings.push(FALLBACK_CONTEXT_WARNING.to_string());
    }

    let delegation = call.delegation.as_ref().map(|d| Delegation {
        requester_identity: d.requester_identity.trim().to_string(),
        scope_class: d.scope_class.trim().to_string(),
        token_refs: d.token_refs.clone(),
        chain: d
            .chain
            .iter()
            .map(|l| DelegationLink {
                delegator_identity: l.delegator_identity.trim().to_string(),
                delegate_identity: l.delegate_identity.trim().to_string(),
                scope_class: l.scope_class.trim().to_string(),
                token_ref: l.token_ref.trim().to_string(),
                issued_at: GoTime::ZERO,
                expires_at: GoTime::ZERO,
            })
            .collect(),
        issued_at: GoTime::ZERO,
        expires_at: GoTime::ZERO,
    });

    let mut auth_context = ctx.auth_context.clone();
    let auth_mode = ctx.auth_mode.trim();
    if !auth_mode.is_empty() {
        auth_context.insert("auth_mode".into(), Value::String(auth_mode.to_string()));
    }
    if let Some(evidence) = &ctx.oauth_evidence {
        let v = serde_json::to_value(evidence)
            .map_err(|e| IntentError::Digest(super::error::one_line(&e.to_string(), 256)))?;
        auth_context.insert("oauth_evidence".into(), v);
    }

    let request = IntentRequest {
        schema_id: INTENT_SCHEMA_ID.to_string(),
        schema_version: INTENT_SCHEMA_VERSION.to_string(),
        created_at,
        producer_version: CALL_PRODUCER_VERSION.to_string(),
        tool_name,
        args,
        script,
        targets,
        arg_provenance,
        delegation,
        context: IntentContext {
            identity: default_str(&ctx.identity, DEFAULT_IDENTITY),
            workspace: default_str(&ctx.workspace, DEFAULT_WORKSPACE),
            risk_class: default_str(&ctx.risk_class, DEFAULT_RISK_CLASS),
            phase: ctx.phase.trim().to_string(),
            job_id: ctx.job_id.trim().to_string(),
            session_id: ctx.session_id.trim().to_string(),
            request_id: ctx.request_id.trim().to_string(),
            auth_context,
            credential_scopes: ctx.credential_scopes.clone(),
            environment_fingerprint: ctx.environment_fingerprint.trim().to_string(),
            ..IntentContext::default()
        },
        ..IntentRequest::default()
    };
    Ok((request, warnings))
}

fn default_str(value: &str, fallback: &str) -> String {
    match value.trim() {
        "" => fallback.to_string(),
        t => t.to_string(),
    }
}

fn trim_provenance(p: &ArgProvenance) -> ArgProvenance {
    ArgProvenance {
        arg_path: p.arg_path.trim().to_string(),
        source: p.source.trim().to_string(),
        source_ref: p.source_ref.trim().to_string(),
        integrity_digest: p.integrity_digest.trim().to_string(),
    }
}

/// A legacy `target` string: `url` if it contains `://`, `path` if it contains `/`, else `host`.
pub fn infer_legacy_target(raw: &str) -> CallTarget {
    let value = raw.trim();
    let kind = if value.contains("://") {
        "url"
    } else if value.contains('/') {
        "path"
    } else if !value.is_empty() {
        "host"
    } else {
        "other"
    };
    CallTarget {
        kind: kind.to_string(),
        value: value.to_string(),
        ..CallTarget::default()
    }
}

fn annotation_bool(annotations: &JsonMap, keys: [&str; 2]) -> Option<bool> {
    for key in keys {
        match annotations.get(key) {
            None => continue,
            Some(Value::Bool(b)) => return Some(*b),
            Some(Value::String(s)) => match s.trim().to_lowercase().as_str() {
                "true" => return Some(true),
                "false" => return Some(false),
                _ => continue,
            },
            Some(_) => continue,
        }
    }
    None
}

fn annotation_string<'a>(annotations: &'a JsonMap, keys: [&str; 2]) -> Option<&'a str> {
    keys.iter().find_map(|k| match annotations.get(*k) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    })
}

/// Merge snake/camel hints and `annotations{}` (which override) into an intent target.
fn to_intent_target(t: &CallTarget) -> Target {
    let mut discovery_method = t.discovery_method.trim().to_string();
    if discovery_method.is_empty() {
        discovery_method = t.discovery_method_alias.trim().to_string();
    }
    let a = &t.annotations;
    if let Some(v) = annotation_string(a, ["discovery_method", "discoveryMethod"]) {
        discovery_method = v.trim().to_string();
    }
    Target {
        kind: t.kind.trim().to_string(),
        value: t.value.trim().to_string(),
        operation: t.operation.trim().to_string(),
        sensitivity: t.sensitivity.trim().to_string(),
        discovery_method,
        read_only_hint: annotation_bool(a, ["read_only_hint", "readOnlyHint"])
            .unwrap_or(t.read_only_hint || t.read_only_hint_alias),
        destructive_hint: annotation_bool(a, ["destructive_hint", "destructiveHint"])
            .unwrap_or(t.destructive_hint || t.destructive_hint_alias),
        idempotent_hint: annotation_bool(a, ["idempotent_hint", "idempotentHint"])
            .unwrap_or(t.idempotent_hint || t.idempotent_hint_alias),
        open_world_hint: annotation_bool(a, ["open_world_hint", "openWorldHint"])
            .unwrap_or(t.open_world_hint || t.open_world_hint_alias),
        ..Target::default()
    }
}

/// `auth_mode` must be off|none|token|oauth|oauth_dcr; under oss-prod an OAuth mode needs
/// complete `oauth_evidence` (gate.md §2 "Profile oss-prod").
pub fn validate_oauth_evidence(call: &ToolCall, profile: Profile) -> Result<(), IntentError> {
    let ctx = &call.context;
    let mut mode = ctx.auth_mode.trim().to_lowercase();
    if mode.is_empty()
        && let Some(Value::String(s)) = ctx.auth_context.get("oauth_mode")
    {
        mode = s.trim().to_lowercase();
    }
    if mode.is_empty() {
        if ctx.oauth_evidence.is_some() {
            mode = "oauth".to_string();
        } else {
            return Ok(());
        }
    }
    match mode.as_str() {
        "off" | "none" | "token" => return Ok(()),
        "oauth" | "oauth_dcr" => {}
        _ => {
            return Err(IntentError::invalid(
                "context.auth_mode must be one of off|none|token|oauth|oauth_dcr",
            ));
        }
    }
    if profile != Profile::OssProd {
        return Ok(());
    }
    let from_auth_context;
    let evidence = match &ctx.oauth_evidence {
        Some(e) => e,
        None => {
            from_auth_context = ctx
                .auth_context
                .get("oauth_evidence")
                .and_then(|v| OAuthEvidence::deserialize(v).ok());
            match &from_auth_context {
                Some(e) => e,
                None => {
                    return Err(IntentError::invalid(
                        "oss-prod with OAuth auth mode requires context.oauth_evidence",
                    ));
                }
            }
        }
    };
    let blank = |s: &str| s.trim().is_empty();
    let none_set = |v: &[String]| v.iter().all(|s| s.trim().is_empty());
    let mut missing: Vec<&str> = Vec::new();
    if blank(&evidence.issuer) {
        missing.push("issuer");
    }
    if none_set(&evidence.audience) {
        missing.push("audience");
    }
    if blank(&evidence.subject) {
        missing.push("subject");
    }
    if blank(&evidence.client_id) {
        missing.push("client_id");
    }
    if blank(&evidence.token_type) {
        missing.push("token_type");
    }
    if none_set(&evidence.scopes) {
        missing.push("scopes");
    }
    if blank(&evidence.redirect_uri) {
        missing.push("redirect_uri");
    }
    if blank(&evidence.evidence_ref) {
        missing.push("evidence_ref");
    }
    if mode == "oauth_dcr" {
        if blank(&evidence.dcr_client_id) {
            missing.push("dcr_client_id");
        }
        if blank(&evidence.token_binding) {
            missing.push("token_binding");
        }
    }
    if blank(&evidence.auth_time) {
        missing.push("auth_time");
    } else if chrono::DateTime::parse_from_rfc3339(evidence.auth_time.trim()).is_err() {
        return Err(IntentError::invalid(
            "context.oauth_evidence.auth_time must be RFC3339",
        ));
    }
    if !missing.is_empty() {
        return Err(IntentError::invalid(format!(
            "missing OAuth evidence fields: {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
