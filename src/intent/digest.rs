//! Intent digests and run identifiers (gate.md §4.1–4.3, §4.5).
//!
//! Invariant: every digest is lowercase hex sha256 over the RFC 8785 canonical JSON of the
//! exact key set Go marshals: the intent preimage is `{tool_name, args, script_hash?, script?,
//! targets, arg_provenance?, skill_provenance?, delegation?, context}` of the normalised
//! intent, so schema/version/created_at/producer_version/relationship never affect it.

use super::error::IntentError;
use super::jcs;
use super::normalize::{self, Parts};
use super::types::{
    ArgProvenance, Delegation, IntentContext, IntentRequest, JsonMap, Script, SkillProvenance,
    Target,
};
use crate::canon;
use serde::Serialize;

#[derive(Serialize)]
struct Preimage<'a> {
    tool_name: &'a str,
    args: &'a JsonMap,
    #[serde(skip_serializing_if = "Option::is_none")]
    script_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    script: Option<&'a Script>,
    targets: &'a [Target],
    #[serde(skip_serializing_if = "<[ArgProvenance]>::is_empty")]
    arg_provenance: &'a [ArgProvenance],
    #[serde(skip_serializing_if = "Option::is_none")]
    skill_provenance: Option<&'a SkillProvenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delegation: Option<&'a Delegation>,
    context: &'a IntentContext,
}

fn digest_err(e: serde_json::Error) -> IntentError {
    IntentError::Digest(super::error::one_line(&e.to_string(), 256))
}

/// `(args_digest, intent_digest)` of normalised parts in one pass: the preimage is written
/// directly in canonical key order (`arg_provenance`, `args`, `context`, `delegation`, `script`,
/// `script_hash`, `skill_provenance`, `targets`, `tool_name`) and the args digest hashes the
/// args bytes inside it, so args are serialized once. Byte-identical to
/// [`intent_digest_of_parts`] + [`args_digest`] (proptested in `normalize::tests`).
pub(crate) fn digests_of_parts(parts: &Parts) -> Result<(String, String), IntentError> {
    let mut enc = jcs::Encoder::with_capacity(512);
    enc.raw(b"{");
    if !parts.arg_provenance.is_empty() {
        enc.raw(b"\"arg_provenance\":");
        enc.value(&parts.arg_provenance).map_err(digest_err)?;
        enc.raw(b",");
    }
    enc.raw(b"\"args\":");
    let args_start = enc.bytes().len();
    enc.value(&parts.args).map_err(digest_err)?;
    let args_digest = canon::sha256_hex(&enc.bytes()[args_start..]);
    enc.raw(b",\"context\":");
    enc.value(&parts.context).map_err(digest_err)?;
    if let Some(d) = &parts.delegation {
        enc.raw(b",\"delegation\":");
        enc.value(d).map_err(digest_err)?;
    }
    if let Some(s) = &parts.script {
        enc.raw(b",\"script\":");
        enc.value(s).map_err(digest_err)?;
    }
    if let Some(h) = &parts.script_hash {
        enc.raw(b",\"script_hash\":");
        enc.value(h).map_err(digest_err)?;
    }
    if let Some(sp) = &parts.skill_provenance {
        enc.raw(b",\"skill_provenance\":");
        enc.value(sp).map_err(digest_err)?;
    }
    enc.raw(b",\"targets\":");
    enc.value(&parts.targets).map_err(digest_err)?;
    enc.raw(b",\"tool_name\":");
    enc.value(&parts.tool_name).map_err(digest_err)?;
    enc.raw(b"}");
    Ok((args_digest, canon::sha256_hex(enc.bytes())))
}

/// Reference path: the intent digest through a `serde_json::Value` tree (`canon::digest_of`).
#[cfg(test)]
pub(crate) fn intent_digest_of_parts(parts: &Parts) -> Result<String, IntentError> {
    let pre = Preimage {
        tool_name: &parts.tool_name,
        args: &parts.args,
        script_hash: parts.script_hash.as_deref(),
        script: parts.script.as_ref(),
        targets: &parts.targets,
        arg_provenance: &parts.arg_provenance,
        skill_provenance: parts.skill_provenance.as_ref(),
        delegation: parts.delegation.as_ref(),
        context: &parts.context,
    };
    canon::digest_of(&pre).map_err(digest_err)
}

/// The canonical intent-digest preimage of an already normalised request.
pub fn intent_preimage(normalized: &IntentRequest) -> Result<Vec<u8>, IntentError> {
    let script_hash =
        (!normalized.script_hash.is_empty()).then_some(normalized.script_hash.as_str());
    let pre = Preimage {
        tool_name: &normalized.tool_name,
        args: &normalized.args,
        script_hash,
        script: normalized.script.as_ref(),
        targets: &normalized.targets,
        arg_provenance: &normalized.arg_provenance,
        skill_provenance: normalized.skill_provenance.as_ref(),
        delegation: normalized.delegation.as_ref(),
        context: &normalized.context,
    };
    jcs::to_vec(&pre).map_err(digest_err)
}

/// `args_digest` of already-normalised args.
pub(crate) fn args_digest(args: &JsonMap) -> Result<String, IntentError> {
    jcs::digest_of(args).map_err(digest_err)
}

pub(crate) fn script_hash_of(script: &Script) -> Result<String, IntentError> {
    jcs::digest_of(script).map_err(digest_err)
}

/// `intent_digest` of a request (normalises it first).
pub fn intent_digest(req: &IntentRequest) -> Result<String, IntentError> {
    Ok(normalize::normalize(req)?.intent_digest().to_string())
}

/// `args_digest` of raw args (trims them first, like Go's `ArgsDigest`).
pub fn args_digest_of(args: &JsonMap) -> Result<String, IntentError> {
    let normalized = normalize::normalize_args(args)
        .map_err(|e| IntentError::invalid(format!("normalize args: {e}")))?;
    args_digest(&normalized)
}

/// `script_hash` of a script request (normalises it first); errors if there is no script.
pub fn script_hash(req: &IntentRequest) -> Result<String, IntentError> {
    match normalize::normalize(req)?.script_hash() {
        Some(h) => Ok(h.to_string()),
        None => Err(IntentError::invalid("script is required")),
    }
}

/// Default MCP run id: `run_mcp_` + the first 12 hex chars of the intent digest.
pub fn default_run_id(intent_digest: &str) -> String {
    let prefix: String = intent_digest.chars().take(12).collect();
    format!("run_mcp_{prefix}")
}

/// Go's `normalizeRunID`: runs of `[^A-Za-z0-9_-]` become `_`, `_` is trimmed from both ends,
/// and `run_` is prefixed unless present. Empty input (or nothing left) gives `""`.
pub fn normalize_run_id(raw: &str) -> String {
    let t = raw.trim();
    if t.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(t.len() + 4);
    let mut in_bad_run = false;
    for ch in t.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
            out.push(ch);
            in_bad_run = false;
        } else if !in_bad_run {
            out.push('_');
            in_bad_run = true;
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        return String::new();
    }
    if trimmed.starts_with("run_") {
        trimmed.to_string()
    } else {
        format!("run_{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids() {
        assert_eq!(
            default_run_id("3619e812b9e7192ccd9f84fb51fc067284b1b015f5a8ac37b3748f77302f8841"),
            "run_mcp_3619e812b9e7"
        );
        assert_eq!(normalize_run_id(""), "");
        assert_eq!(normalize_run_id("  "), "");
        assert_eq!(normalize_run_id("///"), "");
        assert_eq!(
            normalize_run_id("run_mcp_server_case"),
            "run_mcp_server_case"
        );
        assert_eq!(normalize_run_id("my run/42"), "run_my_run_42");
        assert_eq!(normalize_run_id("__a..b__"), "run_a_b");
        assert_eq!(normalize_run_id("run-x"), "run_run-x");
        assert_eq!(normalize_run_id("é"), "");
    }
}
