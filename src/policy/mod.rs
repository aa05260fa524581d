//! Policy YAML loading, validation, compilation and evaluation (gate.md §1, §2, §4.4, §8).
//!
//! `Policy::from_yaml_str` / `Policy::load` parse strictly (unknown and duplicate keys are
//! errors naming the key and line), reject legacy draft keys with migration guidance, apply
//! every §1 default and §1.7 validation, and compile the result into an immutable [`Policy`]
//! (share it as `Arc<Policy>`). `Policy::evaluate` implements §2 steps 3–7.
//!
//! Invariant: no I/O past loading (the kill-switch state and the `mcp_trust` snapshot are
//! loaded by explicit calls, the snapshot through an mtime/len cache); evaluation is a pure
//! function of (policy, normalised intent, options) and never panics.

mod compile;
mod digest;
mod eval;
pub mod kill_switch;
mod pattern;
mod raw;
pub mod trust;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use thiserror::Error;

pub use compile::{
    AgentIdentityRule, ContextEvidenceRule, CredentialRule, Dataflow, Endpoint, FailClosed,
    FreezeRange, FreezeWindow, Match, McpTrustPolicy, RateLimitSpec, Rule, Sandbox, Scripts,
    ToolAnnotationMatch,
};
pub use digest::go_duration_string;
pub use eval::{
    EvalOptions, Evaluation, FreezeWindowDecision, KillSwitchInput, SandboxDecision, ScriptSummary,
    StepVerdict, fail_closed_intent_invalid,
};
pub use kill_switch::{KillSwitchDecision, KillSwitchEntry, KillSwitchState};
pub use pattern::{DomainPattern, PathPattern};

use crate::{Profile, Verdict};

/// Largest policy file `Policy::load` reads.
pub const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;

/// Every way loading a policy can fail. Display is one line; the CLI exits 6 with it.
#[derive(Debug, Error)]
pub enum PolicyError {
    #[error("read policy: {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("read policy: {path}: file is {size} bytes, larger than the {max}-byte limit")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("read policy: {path}: file is not valid UTF-8")]
    NotUtf8 { path: String },
    /// Strict YAML decode failure (syntax, unknown key, duplicate key, wrong type).
    #[error("parse policy yaml: {0}")]
    Parse(String),
    /// Legacy draft-proposal top-level keys. `migration` holds one `key->replacement (note)`
    /// line per key, in the Go order, for the CLI's `migration` array.
    #[error("{}", legacy_message(keys, migration))]
    Legacy {
        keys: Vec<String>,
        migration: Vec<String>,
    },
    /// A §1.7 normalisation-time validation error.
    #[error("{0}")]
    Invalid(String),
    /// The policy is not acceptable under the requested profile.
    #[error("{0}")]
    Profile(String),
}

fn legacy_message(keys: &[String], migration: &[String]) -> String {
    format!(
        "legacy policy proposal fields are not supported [{}]: {}",
        keys.join(", "),
        migration.join("; ")
    )
}

/// One legacy key's migration guidance (Go `LegacyPolicyFieldMigration`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegacyFieldMigration {
    pub field: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replacement_fields: Vec<&'static str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub note: &'static str,
}

const LEGACY_FIELDS: &[(&str, &[&str], &str)] = &[
    (
        "version",
        &["schema_id", "schema_version"],
        "set schema_id=gait.gate.policy and schema_version=1.0.0",
    ),
    (
        "name",
        &[],
        "remove the top-level policy name; rule names remain under rules[].name when needed",
    ),
    ("boundaries", &["rules", "mcp_trust"], ""),
    ("defaults", &["default_verdict", "fail_closed"], ""),
    (
        "trust_sources",
        &["mcp_trust.snapshot"],
        "render external trust data to a local snapshot before evaluation",
    ),
    (
        "unknown_server",
        &["mcp_trust.action"],
        "enforce unknown servers through local snapshot coverage and a fail-closed action",
    ),
];

/// Structured migrations for the given legacy keys, in the Go order (unknown keys skipped).
pub fn legacy_field_migrations(keys: &[String]) -> Vec<LegacyFieldMigration> {
    LEGACY_FIELDS
        .iter()
        .filter(|(f, _, _)| keys.iter().any(|k| k.trim() == *f))
        .map(|(field, repl, note)| LegacyFieldMigration {
            field,
            replacement_fields: repl.to_vec(),
            note,
        })
        .collect()
}

impl LegacyFieldMigration {
    /// `field->a|b (note)`, `field->note` or `field->remove`, as in Go's message.
    pub fn detail(&self) -> String {
        if self.replacement_fields.is_empty() {
            if self.note.trim().is_empty() {
                return format!("{}->remove", self.field);
            }
            return format!("{}->{}", self.field, self.note);
        }
        let mut d = format!("{}->{}", self.field, self.replacement_fields.join("|"));
        if !self.note.trim().is_empty() {
            d.push_str(&format!(" ({})", self.note));
        }
        d
    }
}

fn detect_legacy(src: &str) -> Option<PolicyError> {
    use std::collections::BTreeMap;
    let root: BTreeMap<String, serde::de::IgnoredAny> = serde_saphyr::from_str(src).ok()?;
    let present: Vec<String> = root.keys().map(|k| k.trim().to_string()).collect();
    let migrations = legacy_field_migrations(&present);
    if migrations.is_empty() {
        return None;
    }
    Some(PolicyError::Legacy {
        keys: migrations.iter().map(|m| m.field.to_string()).collect(),
        migration: migrations
            .iter()
            .map(LegacyFieldMigration::detail)
            .collect(),
    })
}

/// One-line rendering of a serde-saphyr error: message plus line/column, no snippet.
fn render_yaml_error(err: &serde_saphyr::Error) -> String {
    let rendered = err.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let mut one_line = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    // Drop library hints that mean nothing to a policy author.
    one_line = one_line.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    if let Some(start) = one_line.find(", expected one of ") {
        let end = one_line[start..]
            .find(" at line ")
            .map_or(one_line.len(), |i| start + i);
        one_line.replace_range(start..end, "");
    }
    if let Some(loc) = err.location()
        && loc.line() > 0
        && !one_line.contains(&format!("line {}", loc.line()))
    {
        one_line.push_str(&format!(" at line {} column {}", loc.line(), loc.column()));
    }
    one_line
}

/// An immutable compiled policy. Cheap to share as `Arc<Policy>`.
#[derive(Debug)]
pub struct Policy {
    schema_id: String,
    schema_version: String,
    default_verdict: Verdict,
    fail_closed: FailClosed,
    scripts: Scripts,
    mcp_trust: Option<McpTrustPolicy>,
    rules: Vec<Rule>,
    digest: String,
    tool_names: BTreeSet<String>,
    rule_index: RuleIndex,
}

/// Candidate rules per tool name, so evaluation skips rules whose `match.tool_names` cannot
/// hold. Indices are ascending (evaluation order); a rule with `tool_names` appears under each
/// exact name it lists, a rule without them is in `any_tool`.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    pub by_tool: HashMap<String, Vec<u32>>,
    pub any_tool: Vec<u32>,
}

impl RuleIndex {
    fn build(rules: &[Rule]) -> RuleIndex {
        let mut idx = RuleIndex::default();
        for (i, r) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            if r.matcher.tool_names.is_empty() {
                idx.any_tool.push(i);
            }
            for name in &r.matcher.tool_names {
                let list = idx.by_tool.entry(name.clone()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        idx
    }
}

impl Policy {
    /// Parse, validate and compile a policy from YAML text.
    pub fn from_yaml_str(src: &str) -> Result<Policy, PolicyError> {
        if let Some(legacy) = detect_legacy(src) {
            return Err(legacy);
        }
        // An empty document (blank, comments only, `---`, `null`) is an all-defaults policy,
        // as in Go.
        let raw: raw::RawPolicy = if src.trim().is_empty() {
            raw::RawPolicy::default()
        } else {
            serde_saphyr::from_str::<Option<raw::RawPolicy>>(src)
                .map_err(|e| PolicyError::Parse(render_yaml_error(&e)))?
                .unwrap_or_default()
        };
        let compiled = compile::compile(raw)?;
        let digest = digest::digest(&compiled);
        let tool_names = compiled
            .rules
            .iter()
            .flat_map(|r| r.matcher.tool_names.iter().cloned())
            .collect();
        let rule_index = RuleIndex::build(&compiled.rules);
        Ok(Policy {
            schema_id: compiled.schema_id,
            schema_version: compiled.schema_version,
            default_verdict: compiled.default_verdict,
            fail_closed: compiled.fail_closed,
            scripts: compiled.scripts,
            mcp_trust: compiled.mcp_trust,
            rules: compiled.rules,
            digest,
            tool_names,
            rule_index,
        })
    }

    /// Read (at most [`MAX_POLICY_BYTES`], UTF-8 only) and compile a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let read_err = |source| PolicyError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        if size > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: shown,
                size,
                max: MAX_POLICY_BYTES,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(MAX_POLICY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: shown,
                size: bytes.len() as u64,
                max: MAX_POLICY_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8 { path: shown })?;
        Policy::from_yaml_str(&text)
    }

    pub(crate) fn rule_index(&self) -> &RuleIndex {
        &self.rule_index
    }

    /// policy_digest (§4.4), 64 lowercase hex chars.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// `gait.gate.policy` (the trace's `policy_id`).
    pub fn schema_id(&self) -> &str {
        &self.schema_id
    }

    /// `1.0.0` (the trace's `policy_version`).
    pub fn schema_version(&self) -> &str {
        &self.schema_version
    }

    pub fn default_verdict(&self) -> Verdict {
        self.default_verdict
    }

    /// Rules in evaluation order: `(priority asc, name asc)`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn fail_closed(&self) -> &FailClosed {
        &self.fail_closed
    }

    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// The `mcp_trust` block, present only when enabled.
    pub fn mcp_trust(&self) -> Option<&McpTrustPolicy> {
        self.mcp_trust.as_ref()
    }

    /// Every tool name any rule's `match.tool_names` mentions (lowercased), for bounding
    /// metrics label cardinality.
    pub fn tool_names(&self) -> &BTreeSet<String> {
        &self.tool_names
    }

    /// Metrics label for a tool: the policy's own spelling when the policy names the tool,
    /// else `_other`, so label cardinality is bounded by the policy.
    pub fn tool_label<'a>(&'a self, tool_name: &str) -> &'a str {
        let lower = tool_name.trim().to_lowercase();
        self.tool_names
            .get(lower.as_str())
            .map_or("_other", String::as_str)
    }

    /// §1.6: intent normalisation failed. `Some(block fail_closed_intent_invalid)` when
    /// fail_closed applies to the raw risk class, else `None` (report the error, exit 6).
    pub fn fail_closed_intent_invalid(&self, raw_risk_class: &str) -> Option<Evaluation> {
        eval::fail_closed_intent_invalid(self, raw_risk_class)
    }

    /// `oss-prod` rejects `default_verdict: allow` (§2, profile rules).
    pub fn check_profile(&self, profile: Profile) -> Result<(), PolicyError> {
        if profile == Profile::OssProd && self.default_verdict == Verdict::Allow {
            return Err(PolicyError::Profile(
                "oss-prod profile rejects policy default_verdict=allow; use default_verdict: block or require_approval"
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// Whether some call of `tool_name` could end with a verdict other than `block`; used to
    /// filter `tools/list`. Conservative: `false` only when a block is certain whatever the
    /// arguments and context.
    ///
    /// Exact rule. Call a rule *relevant* when its `tool_names` is empty or contains the tool,
    /// *a certain block* when its effect is `block` and it has no `dataflow` (dataflow replaces
    /// the effect), and *unconditional* when it is relevant and its `match` sets no selector
    /// other than `tool_names`. Walking the tiers in order, the tool is hidden when some tier
    /// holds an unconditional certain-block rule and every relevant rule in that tier's
    /// predecessors is a certain block (any tier that could match first then blocks, as overlays
    /// only escalate), or when every relevant rule is a certain block and `default_verdict` is
    /// `block`. fail_closed, kill switch and trust can only add blocks, so they are ignored.
    pub fn could_allow_tool(&self, tool_name: &str) -> bool {
        let tool = tool_name.trim().to_lowercase();
        let certain_block = |r: &Rule| r.effect == Verdict::Block && r.dataflow.is_none();
        for rule in &self.rules {
            if !rule.matcher.may_match_tool(&tool) {
                continue;
            }
            if !certain_block(rule) {
                // A relevant rule at this or an earlier tier might be the first match and
                // not block. Rules in the same tier as an unconditional block still yield
                // block (max wins), so check that tier first.
                let tier_has_unconditional_block = self.rules.iter().any(|o| {
                    o.priority == rule.priority
                        && o.matcher.may_match_tool(&tool)
                        && o.matcher.only_tool_selector()
                        && certain_block(o)
                });
                if tier_has_unconditional_block
                    && self.rules.iter().all(|o| {
                        o.priority >= rule.priority
                            || !o.matcher.may_match_tool(&tool)
                            || certain_block(o)
                    })
                {
                    return false;
                }
                return true;
            }
            if rule.matcher.only_tool_selector() {
                // Every call of the tool matches this tier at the latest, and every relevant
                // rule before it (all visited) blocks.
                return false;
            }
        }
        self.default_verdict != Verdict::Block
    }
}
