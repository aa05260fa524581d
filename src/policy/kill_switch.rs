//! Kill-switch state file (`gait.gate.kill_switch_state`) and its per-intent decision (§2 step 7).
//!
//! Invariant: `KillSwitchState::load` is the only I/O; a loaded state is normalised (selectors
//! trimmed/lowercased, prefixes cleaned, entries sorted by id) and `decide` is pure.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::intent::{GoTime, IntentRequest, Target};

pub const KILL_SWITCH_SCHEMA_ID: &str = "gait.gate.kill_switch_state";
pub const KILL_SWITCH_SCHEMA_VERSION: &str = "1.0.0";
const MAX_STATE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum KillSwitchError {
    #[error("read kill switch state: {0}")]
    Read(#[from] std::io::Error),
    #[error("read kill switch state: file is larger than {MAX_STATE_BYTES} bytes")]
    TooLarge,
    #[error("parse kill switch state: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// One entry; every non-empty selector must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KillSwitchEntry {
    #[serde(default)]
    pub entry_id: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    #[serde(default)]
    pub created_at: GoTime,
    #[serde(default)]
    pub expires_at: GoTime,
}

/// The state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KillSwitchState {
    #[serde(default)]
    pub schema_id: String,
    #[serde(default)]
    pub schema_version: String,
    #[serde(default)]
    pub created_at: GoTime,
    #[serde(default)]
    pub updated_at: GoTime,
    #[serde(default)]
    pub producer_version: String,
    #[serde(default)]
    pub entries: Vec<KillSwitchEntry>,
}

/// Decision object (trace / output `kill_switch`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillSwitchDecision {
    /// `inactive` or `active`.
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason_code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_entry_ids: Vec<String>,
    pub evaluated_at: GoTime,
}

/// Go `filepath.ToSlash(filepath.Clean(p))` for the common cases.
pub(crate) fn clean_path(p: &str) -> String {
    let p = p.trim().replace('\\', "/");
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn norm_prefixes(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter()
        .map(|p| clean_path(p))
        .filter(|p| p != "." && !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn prefix_matches(value: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return false;
    }
    if value == prefix {
        return true;
    }
    if prefix.ends_with('/') {
        return value.starts_with(prefix);
    }
    value.len() > prefix.len()
        && value.starts_with(prefix)
        && value.as_bytes()[prefix.len()] == b'/'
}

const TARGET_KINDS: &[&str] = &[
    "path", "url", "host", "repo", "bucket", "table", "queue", "topic", "other",
];

impl KillSwitchState {
    /// Read and normalise a state file.
    pub fn load(path: &Path) -> Result<KillSwitchState, KillSwitchError> {
        use std::io::Read;
        let file = std::fs::File::open(path)?;
        let mut bytes = Vec::new();
        file.take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(KillSwitchError::TooLarge);
        }
        Self::from_json_slice(&bytes)
    }

    /// Parse and normalise state JSON.
    pub fn from_json_slice(bytes: &[u8]) -> Result<KillSwitchState, KillSwitchError> {
        let state: KillSwitchState = serde_json::from_slice(bytes)?;
        state.normalized()
    }

    fn normalized(mut self) -> Result<KillSwitchState, KillSwitchError> {
        let inv = |m: String| KillSwitchError::Invalid(m);
        if self.schema_id.trim().is_empty() {
            self.schema_id = KILL_SWITCH_SCHEMA_ID.to_string();
        }
        if self.schema_version.trim().is_empty() {
            self.schema_version = KILL_SWITCH_SCHEMA_VERSION.to_string();
        }
        if self.schema_id != KILL_SWITCH_SCHEMA_ID {
            return Err(inv(format!(
                "kill switch state schema_id must be {KILL_SWITCH_SCHEMA_ID}"
            )));
        }
        if self.schema_version != KILL_SWITCH_SCHEMA_VERSION {
            return Err(inv(format!(
                "kill switch state schema_version must be {KILL_SWITCH_SCHEMA_VERSION}"
            )));
        }
        if self.created_at.is_zero() {
            return Err(inv("kill switch state created_at is required".into()));
        }
        if self.updated_at.is_zero() {
            return Err(inv("kill switch state updated_at is required".into()));
        }
        self.created_at = self.created_at.to_utc();
        self.updated_at = self.updated_at.to_utc();
        self.producer_version = self.producer_version.trim().to_string();
        if self.producer_version.is_empty() {
            self.producer_version = "0.0.0-dev".to_string();
        }
        for e in &mut self.entries {
            e.entry_id = e.entry_id.trim().to_string();
            e.agent_id = e.agent_id.trim().to_string();
            e.identity = e.identity.trim().to_string();
            e.tool_name = e.tool_name.trim().to_lowercase();
            e.target_kind = e.target_kind.trim().to_lowercase();
            e.target_value = e.target_value.trim().to_string();
            e.environment = e.environment.trim().to_lowercase();
            e.reason = e.reason.trim().to_string();
            e.actor = e.actor.trim().to_string();
            if e.created_at.is_zero() {
                return Err(inv("kill switch entry created_at is required".into()));
            }
            e.created_at = e.created_at.to_utc();
            e.expires_at = e.expires_at.to_utc();
            e.path_prefixes = norm_prefixes(&e.path_prefixes);
            e.workspace_prefixes = norm_prefixes(&e.workspace_prefixes);
            if !e.target_kind.is_empty() && !TARGET_KINDS.contains(&e.target_kind.as_str()) {
                return Err(inv(format!(
                    "kill switch entry target_kind is unsupported: {}",
                    e.target_kind
                )));
            }
            let no_selector = e.agent_id.is_empty()
                && e.identity.is_empty()
                && e.tool_name.is_empty()
                && e.target_kind.is_empty()
                && e.target_value.is_empty()
                && e.environment.is_empty()
                && e.path_prefixes.is_empty()
                && e.workspace_prefixes.is_empty();
            if e.entry_id.is_empty() && no_selector {
                return Err(inv(
                    "kill switch entry requires at least one scope selector".into(),
                ));
            }
        }
        self.entries.sort_by(|a, b| a.entry_id.cmp(&b.entry_id));
        Ok(self)
    }

    /// Match every enabled, unexpired entry against a normalised intent.
    pub fn decide(&self, intent: &IntentRequest, now: DateTime<Utc>) -> KillSwitchDecision {
        let mut reasons: Vec<String> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        for e in &self.entries {
            if !e.enabled {
                continue;
            }
            if let Some(exp) = e.expires_at.get()
                && exp <= now
            {
                continue;
            }
            if let Some(r) = entry_matches(e, intent) {
                ids.push(e.entry_id.clone());
                reasons.push("kill_switch_active".to_string());
                reasons.extend(r);
            }
        }
        reasons.sort();
        reasons.dedup();
        ids.sort();
        ids.dedup();
        let active = !ids.is_empty();
        let reason_code = if active {
            reasons
                .iter()
                .find(|r| *r != "kill_switch_active")
                .cloned()
                .unwrap_or_else(|| "kill_switch_active".to_string())
        } else {
            String::new()
        };
        KillSwitchDecision {
            status: if active { "active" } else { "inactive" }.to_string(),
            reason_code,
            reason_codes: reasons,
            matched_entry_ids: ids,
            evaluated_at: GoTime::from_utc(now),
        }
    }
}

fn all_targets(i: &IntentRequest) -> impl Iterator<Item = &Target> {
    i.targets.iter().chain(
        i.script
            .iter()
            .flat_map(|s| s.steps.iter().flat_map(|st| st.targets.iter())),
    )
}

fn entry_matches(e: &KillSwitchEntry, i: &IntentRequest) -> Option<Vec<String>> {
    let mut r = Vec::new();
    let ctx = &i.context;
    if !e.agent_id.is_empty() {
        (ctx.agent_id.trim() == e.agent_id).then_some(())?;
        r.push("kill_switch_agent_id_active".to_string());
    }
    if !e.identity.is_empty() {
        (ctx.identity.trim() == e.identity).then_some(())?;
        r.push("kill_switch_identity_active".to_string());
    }
    if !e.tool_name.is_empty() {
        (i.tool_name.trim().to_lowercase() == e.tool_name).then_some(())?;
        r.push("kill_switch_tool_name_active".to_string());
    }
    if !e.environment.is_empty() {
        (ctx.environment.trim().to_lowercase() == e.environment).then_some(())?;
        r.push("kill_switch_environment_active".to_string());
    }
    if !e.target_kind.is_empty() || !e.target_value.is_empty() {
        all_targets(i)
            .any(|t| {
                (e.target_kind.is_empty() || t.kind.trim().to_lowercase() == e.target_kind)
                    && (e.target_value.is_empty() || t.value.trim() == e.target_value)
            })
            .then_some(())?;
        r.push("kill_switch_target_active".to_string());
    }
    if !e.path_prefixes.is_empty() {
        all_targets(i)
            .filter(|t| t.kind.trim().eq_ignore_ascii_case("path"))
            .any(|t| {
                let p = clean_path(&t.value);
                e.path_prefixes.iter().any(|pre| prefix_matches(&p, pre))
            })
            .then_some(())?;
        r.push("kill_switch_path_active".to_string());
    }
    if !e.workspace_prefixes.is_empty() {
        let w = clean_path(&ctx.workspace);
        e.workspace_prefixes
            .iter()
            .any(|pre| prefix_matches(&w, pre))
            .then_some(())?;
        r.push("kill_switch_workspace_active".to_string());
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::clean_path;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(clean_path("a/../.."), "..");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("/.."), "/");
    }
}
