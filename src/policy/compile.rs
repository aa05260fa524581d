//! Raw YAML types → the compiled, validated, immutable policy (§1 of gate.md).
//!
//! Invariant: every default, alias and §1.7 validation rule is applied here, exactly once, at
//! load time. Lists are trimmed (lowercased where §1 says so), deduplicated and sorted; rules are
//! sorted by `(priority, name)`; patterns and time zones are precompiled.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::PolicyError;
use super::pattern::{DomainPattern, PathPattern};
use super::raw::*;
use crate::Verdict;

pub(crate) const POLICY_SCHEMA_ID: &str = "gait.gate.policy";
pub(crate) const POLICY_SCHEMA_VERSION: &str = "1.0.0";

pub(crate) const ENDPOINT_CLASSES: &[&str] = &[
    "fs.read",
    "fs.write",
    "fs.delete",
    "proc.exec",
    "net.http",
    "net.dns",
    "ui.click",
    "ui.type",
    "ui.navigate",
    "other",
];
const DISCOVERY_METHODS: &[&str] = &[
    "webmcp",
    "dynamic_mcp",
    "a2a",
    "mcp",
    "static_mcp",
    "manual",
    "unknown",
];
const REQUIRED_FIELDS: &[&str] = &[
    "targets",
    "arg_provenance",
    "endpoint_class",
    "delegation",
    "context_evidence",
];
pub(crate) const HIGH_RISK_FIELDS: &[&str] = &[
    "agent_id",
    "agent_identity",
    "run_id",
    "workflow_id",
    "repo",
    "environment",
    "credential_ref",
    "credential_source",
    "credential_access_type",
    "credential_issuer",
    "credential_ttl_seconds",
    "approval_ref",
    "wrkr_inventory_ref",
    "agent_action_bom_ref",
];
const CREDENTIAL_SOURCES: &[&str] = &[
    "aws_iam_user",
    "aws_sts",
    "azure_federated",
    "command",
    "env",
    "gcp_sts",
    "github_oidc",
    "github_pat",
    "kubernetes_service_account",
    "stub",
    "unknown",
    "vault_dynamic",
];
const CREDENTIAL_ACCESS_TYPES: &[&str] = &[
    "cloud_admin",
    "inherited",
    "jit",
    "standing",
    "static",
    "unknown",
];
const NETWORK_MODES: &[&str] = &["disabled", "egress_allowlist", "full"];
const ENV_EXPOSURE_MODES: &[&str] = &["allowlist", "full", "none"];
const FS_ISOLATIONS: &[&str] = &["container", "none", "workspace"];
const USER_MODES: &[&str] = &["default", "root", "unprivileged"];

// === compiled types ===

/// `fail_closed` (§1.6) after defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailClosed {
    pub enabled: bool,
    pub risk_classes: Vec<String>,
    pub required_fields: Vec<String>,
    pub required_high_risk_fields: Vec<String>,
}

impl FailClosed {
    /// Whether fail_closed applies to an intent of this (already lowercased) risk class.
    pub fn applies_to(&self, risk_class: &str) -> bool {
        self.enabled && self.risk_classes.iter().any(|r| r == risk_class)
    }
}

/// `scripts` (§2 step 5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scripts {
    pub max_steps: u32,
    pub require_approval_above: u32,
    pub block_mixed_risk: bool,
}

/// `mcp_trust` (§8) after defaults; present only when enabled.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTrustPolicy {
    pub snapshot: String,
    pub action: Verdict,
    pub required_risk_classes: Vec<String>,
    pub min_score: f64,
    /// Nanoseconds (Go `time.Duration`); 0 = no age limit.
    pub max_age_nanos: i64,
    pub publisher_allowlist: Vec<String>,
    pub require_registry: bool,
}

impl McpTrustPolicy {
    /// For `mcp verify` without `--risk-class`: the most severe class in
    /// `required_risk_classes` (critical > high > medium > low), default `high`.
    pub fn most_severe_required_class(&self) -> &str {
        ["critical", "high", "medium", "low"]
            .into_iter()
            .find(|c| self.required_risk_classes.iter().any(|r| r == c))
            .unwrap_or("high")
    }
}

/// Fixed-window request budget (`rate_limit` / `destructive_budget`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitSpec {
    pub requests: u32,
    /// `minute` or `hour`.
    pub window: String,
    /// `tool`, `identity` or `tool_identity`.
    pub scope: String,
}

impl RateLimitSpec {
    fn window_rank(&self) -> u8 {
        match self.window.as_str() {
            "minute" => 0,
            "hour" => 1,
            _ => 2,
        }
    }

    /// Go `mergeRateLimitPolicy`: fewer requests wins, then the shorter window, then the scope
    /// that sorts first.
    pub fn most_restrictive(current: Option<Self>, candidate: Option<&Self>) -> Option<Self> {
        let Some(c) = candidate else { return current };
        let Some(cur) = current else {
            return Some(c.clone());
        };
        let take = (c.requests, c.window_rank(), c.scope.as_str())
            < (cur.requests, cur.window_rank(), cur.scope.as_str());
        Some(if take { c.clone() } else { cur })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolAnnotationMatch {
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

impl ToolAnnotationMatch {
    pub fn is_set(&self) -> bool {
        self.read_only_hint.is_some()
            || self.destructive_hint.is_some()
            || self.idempotent_hint.is_some()
            || self.open_world_hint.is_some()
    }
}

/// `match` (§1.4) after alias folding and normalisation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    pub tool_names: Vec<String>,
    pub risk_classes: Vec<String>,
    pub identities: Vec<String>,
    pub workspace_prefixes: Vec<String>,
    pub target_kinds: Vec<String>,
    pub target_values: Vec<String>,
    pub endpoint_classes: Vec<String>,
    pub discovery_methods: Vec<String>,
    pub tool_annotations: ToolAnnotationMatch,
    pub skill_publishers: Vec<String>,
    pub skill_sources: Vec<String>,
    pub data_classes: Vec<String>,
    pub destination_kinds: Vec<String>,
    pub destination_values: Vec<String>,
    pub destination_ops: Vec<String>,
    pub provenance_sources: Vec<String>,
    pub context_tool_names: Vec<String>,
    pub context_data_classes: Vec<String>,
    pub context_endpoint_classes: Vec<String>,
    pub context_autonomy_levels: Vec<String>,
    pub require_delegation: bool,
    pub allowed_delegator_identities: Vec<String>,
    pub allowed_delegate_identities: Vec<String>,
    pub delegation_scopes: Vec<String>,
    pub max_delegation_depth: Option<u32>,
}

impl Match {
    pub(crate) fn delegation_constrained(&self) -> bool {
        self.require_delegation
            || !self.allowed_delegator_identities.is_empty()
            || !self.allowed_delegate_identities.is_empty()
            || !self.delegation_scopes.is_empty()
            || self.max_delegation_depth.is_some()
    }

    /// True when the only selector set is `tool_names` (or none at all): such a match holds for
    /// every call of a listed tool, whatever its arguments and context.
    pub(crate) fn only_tool_selector(&self) -> bool {
        self.risk_classes.is_empty()
            && self.identities.is_empty()
            && self.workspace_prefixes.is_empty()
            && self.target_kinds.is_empty()
            && self.target_values.is_empty()
            && self.endpoint_classes.is_empty()
            && self.discovery_methods.is_empty()
            && !self.tool_annotations.is_set()
            && self.skill_publishers.is_empty()
            && self.skill_sources.is_empty()
            && self.data_classes.is_empty()
            && self.destination_kinds.is_empty()
            && self.destination_values.is_empty()
            && self.destination_ops.is_empty()
            && self.provenance_sources.is_empty()
            && self.context_tool_names.is_empty()
            && self.context_data_classes.is_empty()
            && self.context_endpoint_classes.is_empty()
            && self.context_autonomy_levels.is_empty()
            && !self.delegation_constrained()
    }

    /// Could this match hold for some call of `tool` (lowercased)?
    pub(crate) fn may_match_tool(&self, tool: &str) -> bool {
        self.tool_names.is_empty() || self.tool_names.iter().any(|t| t == tool)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataflow {
    pub tainted_sources: Vec<String>,
    pub destination_kinds: Vec<String>,
    pub destination_values: Vec<String>,
    pub destination_operations: Vec<String>,
    pub action: Verdict,
    pub reason_code: String,
    pub violation: String,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub path_allowlist: Vec<PathPattern>,
    pub path_denylist: Vec<PathPattern>,
    pub domain_allowlist: Vec<DomainPattern>,
    pub domain_denylist: Vec<DomainPattern>,
    pub egress_classes: Vec<String>,
    pub action: Verdict,
    pub destructive_action: Option<Verdict>,
    pub reason_code: String,
    pub violation: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FreezeRange {
    pub name: String,
    pub start: String,
    pub end: String,
    /// Parsed local times; `None` when either side does not parse (→ `freeze_window_invalid_window`).
    pub parsed: Option<(NaiveDateTime, NaiveDateTime)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FreezeWindow {
    pub timezone: String,
    /// `None` when the IANA name is unknown (→ `freeze_window_invalid_timezone` at evaluation).
    pub tz: Option<chrono_tz::Tz>,
    pub effect: Verdict,
    pub reason: String,
    pub environments: Vec<String>,
    pub risk_classes: Vec<String>,
    pub windows: Vec<FreezeRange>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sandbox {
    pub allowed_network_modes: Vec<String>,
    pub allowed_writable_path_prefixes: Vec<String>,
    pub required_read_only_roots: Vec<String>,
    pub allowed_env_exposure_modes: Vec<String>,
    pub max_timeout_seconds: i64,
    pub allowed_filesystem_isolations: Vec<String>,
    pub allowed_user_modes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentIdentityRule {
    pub require_declared_agent: bool,
    pub allowed_agent_ids: Vec<String>,
    pub denied_agent_ids: Vec<String>,
    pub required_agent_manifest_digest: String,
    pub allowed_agent_manifest_publishers: Vec<String>,
    pub allowed_agent_manifest_sources: Vec<String>,
    pub required_agent_lifecycle_states: Vec<String>,
    pub require_agent_owner: bool,
    pub require_unexpired_agent: bool,
}

impl AgentIdentityRule {
    pub fn enabled(&self) -> bool {
        self.require_declared_agent
            || !self.allowed_agent_ids.is_empty()
            || !self.denied_agent_ids.is_empty()
            || !self.required_agent_manifest_digest.is_empty()
            || !self.allowed_agent_manifest_publishers.is_empty()
            || !self.allowed_agent_manifest_sources.is_empty()
            || !self.required_agent_lifecycle_states.is_empty()
            || self.require_agent_owner
            || self.require_unexpired_agent
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialRule {
    pub block_standing_credentials: bool,
    pub allowed_credential_sources: Vec<String>,
    pub allowed_credential_issuers: Vec<String>,
    pub allowed_credential_access_types: Vec<String>,
    pub max_credential_ttl_seconds: i64,
    pub require_jit_credential: bool,
}

impl CredentialRule {
    pub fn enabled(&self) -> bool {
        self.block_standing_credentials
            || !self.allowed_credential_sources.is_empty()
            || !self.allowed_credential_issuers.is_empty()
            || !self.allowed_credential_access_types.is_empty()
            || self.max_credential_ttl_seconds > 0
            || self.require_jit_credential
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextEvidenceRule {
    pub require_context_evidence: bool,
    /// `""` or `required`.
    pub required_mode: String,
    pub max_context_age_seconds: i64,
}

impl ContextEvidenceRule {
    pub fn enabled(&self) -> bool {
        self.require_context_evidence
            || self.required_mode == "required"
            || self.max_context_age_seconds > 0
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub priority: i64,
    pub effect: Verdict,
    pub matcher: Match,
    /// Configured reason codes (sorted, deduped); may be empty.
    pub reason_codes: Vec<String>,
    pub violations: Vec<String>,
    /// `matched_rule_<sanitized name>`, used when `reason_codes` is empty.
    pub fallback_reason: String,
    pub min_approvals: u32,
    pub require_distinct_approvers: bool,
    pub require_broker_credential: bool,
    pub broker_reference: String,
    pub broker_scopes: Vec<String>,
    pub rate_limit: Option<RateLimitSpec>,
    pub destructive_budget: Option<RateLimitSpec>,
    pub dataflow: Option<Dataflow>,
    pub endpoint: Option<Endpoint>,
    pub context_evidence: ContextEvidenceRule,
    pub agent_identity: AgentIdentityRule,
    pub credential: CredentialRule,
    pub freeze_window: Option<FreezeWindow>,
    pub sandbox: Option<Sandbox>,
}

/// Everything the compiled [`super::Policy`] is built from.
pub(crate) struct Compiled {
    pub schema_id: String,
    pub schema_version: String,
    pub default_verdict: Verdict,
    pub fail_closed: FailClosed,
    pub scripts: Scripts,
    pub mcp_trust: Option<McpTrustPolicy>,
    pub rules: Vec<Rule>,
}

// === helpers ===

fn invalid(msg: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(msg.into())
}

/// Trim, drop empties, dedupe, sort.
pub(crate) fn norm_list(values: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    set.into_iter().collect()
}

/// Trim, lowercase, drop empties, dedupe, sort.
pub(crate) fn norm_list_lower(values: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = values
        .iter()
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    set.into_iter().collect()
}

fn lower(s: &str) -> String {
    s.trim().to_lowercase()
}

fn parse_verdict(s: &str) -> Option<Verdict> {
    match s {
        "allow" => Some(Verdict::Allow),
        "block" => Some(Verdict::Block),
        "dry_run" => Some(Verdict::DryRun),
        "require_approval" => Some(Verdict::RequireApproval),
        _ => None,
    }
}

fn parse_action(s: &str) -> Option<Verdict> {
    match s {
        "block" => Some(Verdict::Block),
        "require_approval" => Some(Verdict::RequireApproval),
        _ => None,
    }
}

/// Go `sanitizeName`: JSON-escape, spaces and `-` to `_`, lowercase.
pub(crate) fn sanitize_name(name: &str) -> String {
    if name.is_empty() {
        return "rule".to_string();
    }
    let json = serde_json::to_string(name).unwrap_or_else(|_| "\"rule\"".to_string());
    json.trim_matches('"')
        .replace([' ', '-'], "_")
        .to_lowercase()
}

fn non_negative(v: i64, what: &str, rule: &str) -> Result<i64, PolicyError> {
    if v < 0 {
        return Err(invalid(format!("{what} must be >= 0 for {rule}")));
    }
    Ok(v)
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn check_enum(
    values: &[String],
    allowed: &[&str],
    what: &str,
    rule: &str,
) -> Result<(), PolicyError> {
    for v in values {
        if !allowed.contains(&v.as_str()) {
            return Err(invalid(format!("unsupported {what} {v:?} for {rule}")));
        }
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// === compile ===

pub(crate) fn compile(raw: RawPolicy) -> Result<Compiled, PolicyError> {
    let schema_id = match raw.schema_id.trim() {
        "" => POLICY_SCHEMA_ID.to_string(),
        s => s.to_string(),
    };
    if schema_id != POLICY_SCHEMA_ID {
        return Err(invalid(format!(
            "unsupported policy schema_id: {schema_id}"
        )));
    }
    let schema_version = match raw.schema_version.trim() {
        "" => POLICY_SCHEMA_VERSION.to_string(),
        s => s.to_string(),
    };
    if schema_version != POLICY_SCHEMA_VERSION {
        return Err(invalid(format!(
            "unsupported policy schema_version: {schema_version}"
        )));
    }

    let mut default_verdict = lower(&raw.default_verdict);
    let default_action = lower(&raw.default_action);
    if default_verdict.is_empty() {
        default_verdict = default_action.clone();
    }
    if !default_action.is_empty() && default_verdict != default_action {
        return Err(invalid(
            "default_action must match default_verdict when both are set",
        ));
    }
    if default_verdict.is_empty() {
        default_verdict = "require_approval".to_string();
    }
    let default_verdict = parse_verdict(&default_verdict)
        .ok_or_else(|| invalid(format!("invalid default_verdict: {default_verdict}")))?;

    let fail_closed = compile_fail_closed(&raw.fail_closed)?;

    if raw.scripts.max_steps < 0 {
        return Err(invalid("scripts.max_steps must be >= 0"));
    }
    if raw.scripts.require_approval_above < 0 {
        return Err(invalid("scripts.require_approval_above must be >= 0"));
    }
    let scripts = Scripts {
        max_steps: to_u32(raw.scripts.max_steps),
        require_approval_above: to_u32(raw.scripts.require_approval_above),
        block_mixed_risk: raw.scripts.block_mixed_risk,
    };

    let mcp_trust = match raw.mcp_trust {
        Some(t) => compile_mcp_trust(t)?,
        None => None,
    };

    let mut rules = raw
        .rules
        .into_iter()
        .map(compile_rule)
        .collect::<Result<Vec<_>, _>>()?;
    rules.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| a.name.cmp(&b.name))
    });

    Ok(Compiled {
        schema_id,
        schema_version,
        default_verdict,
        fail_closed,
        scripts,
        mcp_trust,
        rules,
    })
}

fn compile_fail_closed(raw: &RawFailClosed) -> Result<FailClosed, PolicyError> {
    let mut risk_classes = norm_list_lower(&raw.risk_classes);
    if raw.enabled && risk_classes.is_empty() {
        risk_classes = vec!["critical".to_string(), "high".to_string()];
    }
    let required_fields = norm_list_lower(&raw.required_fields);
    for f in &required_fields {
        if !REQUIRED_FIELDS.contains(&f.as_str()) {
            return Err(invalid(format!(
                "unsupported fail_closed required_field: {f}"
            )));
        }
    }
    let required_high_risk_fields = norm_list_lower(&raw.required_high_risk_fields);
    for f in &required_high_risk_fields {
        if !HIGH_RISK_FIELDS.contains(&f.as_str()) {
            return Err(invalid(format!(
                "unsupported fail_closed required_high_risk_field: {f}"
            )));
        }
    }
    Ok(FailClosed {
        enabled: raw.enabled,
        risk_classes,
        required_fields,
        required_high_risk_fields,
    })
}

fn compile_mcp_trust(raw: RawMcpTrust) -> Result<Option<McpTrustPolicy>, PolicyError> {
    let any_set = raw.snapshot.is_some()
        || raw.action.is_some()
        || raw.required_risk_classes.is_some()
        || raw.min_score.is_some()
        || raw.max_age.is_some()
        || raw.publisher_allowlist.is_some()
        || raw.require_registry.is_some();
    let enabled = raw.enabled.unwrap_or(false) || any_set;
    if !enabled {
        return Ok(None);
    }
    let snapshot = raw.snapshot.unwrap_or_default().trim().to_string();
    if snapshot.is_empty() {
        return Err(invalid(
            "mcp_trust.snapshot is required when mcp_trust is configured",
        ));
    }
    let action = match lower(raw.action.as_deref().unwrap_or("")).as_str() {
        "" => Verdict::Block,
        other => parse_action(other)
            .ok_or_else(|| invalid(format!("unsupported mcp_trust.action {other:?}")))?,
    };
    let mut required_risk_classes = norm_list_lower(&raw.required_risk_classes.unwrap_or_default());
    if required_risk_classes.is_empty() {
        required_risk_classes = vec!["critical".to_string(), "high".to_string()];
    }
    let min_score = raw.min_score.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_score) || min_score.is_nan() {
        return Err(invalid("mcp_trust.min_score must be between 0 and 1"));
    }
    let max_age_nanos = match raw.max_age.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(s) => {
            let n = go_parse_duration::parse_duration(s)
                .map_err(|e| invalid(format!("parse mcp_trust.max_age: {e:?}")))?;
            if n < 0 {
                return Err(invalid("mcp_trust.max_age must be >= 0"));
            }
            n
        }
    };
    Ok(Some(McpTrustPolicy {
        snapshot,
        action,
        required_risk_classes,
        min_score,
        max_age_nanos,
        publisher_allowlist: norm_list_lower(&raw.publisher_allowlist.unwrap_or_default()),
        require_registry: raw.require_registry.unwrap_or(false),
    }))
}

fn compile_rate_limit(
    raw: &RawRateLimit,
    what: &str,
    rule: &str,
    budget: bool,
) -> Result<Option<RateLimitSpec>, PolicyError> {
    if raw.requests < 0 {
        return Err(invalid(format!("{what}.requests must be >= 0 for {rule}")));
    }
    let mut window = lower(&raw.window);
    let mut scope = lower(&raw.scope);
    let configured = if budget {
        raw.requests > 0 || !window.is_empty() || !scope.is_empty()
    } else {
        raw.requests > 0
    };
    if !configured {
        return Ok(None);
    }
    if raw.requests <= 0 {
        return Err(invalid(format!("{what}.requests must be >= 1 for {rule}")));
    }
    if window.is_empty() {
        window = "minute".to_string();
    }
    if !matches!(window.as_str(), "minute" | "hour") {
        return Err(invalid(format!(
            "unsupported {what}.window {window:?} for {rule}"
        )));
    }
    if scope.is_empty() {
        scope = "tool_identity".to_string();
    }
    if !matches!(scope.as_str(), "tool" | "identity" | "tool_identity") {
        return Err(invalid(format!(
            "unsupported {what}.scope {scope:?} for {rule}"
        )));
    }
    Ok(Some(RateLimitSpec {
        requests: to_u32(raw.requests),
        window,
        scope,
    }))
}

fn compile_match(raw: &RawMatch, rule: &str) -> Result<Match, PolicyError> {
    let mut tool_names = raw.tool_names.clone();
    if !raw.tool_name.trim().is_empty() {
        tool_names.push(raw.tool_name.clone());
    }
    let mut endpoint_classes = raw.endpoint_classes.clone();
    endpoint_classes.extend(raw.endpoint_class.iter().cloned());
    let endpoint_classes = norm_list_lower(&endpoint_classes);
    for c in &endpoint_classes {
        if !ENDPOINT_CLASSES.contains(&c.as_str()) {
            return Err(invalid(format!(
                "unsupported match endpoint_class {c:?} for {rule}"
            )));
        }
    }
    let discovery_methods = norm_list_lower(&raw.discovery_methods);
    for d in &discovery_methods {
        if !DISCOVERY_METHODS.contains(&d.as_str()) {
            return Err(invalid(format!(
                "unsupported match discovery_method {d:?} for {rule}"
            )));
        }
    }
    let max_delegation_depth = match raw.max_delegation_depth {
        Some(d) if d < 0 => {
            return Err(invalid(format!(
                "max_delegation_depth must be >= 0 for {rule}"
            )));
        }
        Some(d) => Some(to_u32(d)),
        None => None,
    };
    Ok(Match {
        tool_names: norm_list_lower(&tool_names),
        risk_classes: norm_list_lower(&raw.risk_classes),
        identities: norm_list(&raw.identities),
        workspace_prefixes: norm_list(&raw.workspace_prefixes),
        target_kinds: norm_list_lower(&raw.target_kinds),
        target_values: norm_list(&raw.target_values),
        endpoint_classes,
        discovery_methods,
        tool_annotations: ToolAnnotationMatch {
            read_only_hint: raw.tool_annotations.read_only_hint,
            destructive_hint: raw.tool_annotations.destructive_hint,
            idempotent_hint: raw.tool_annotations.idempotent_hint,
            open_world_hint: raw.tool_annotations.open_world_hint,
        },
        skill_publishers: norm_list_lower(&raw.skill_publishers),
        skill_sources: norm_list_lower(&raw.skill_sources),
        data_classes: norm_list_lower(&raw.data_classes),
        destination_kinds: norm_list_lower(&raw.destination_kinds),
        destination_values: norm_list(&raw.destination_values),
        destination_ops: norm_list_lower(&raw.destination_operations),
        provenance_sources: norm_list_lower(&raw.provenance_sources),
        context_tool_names: norm_list_lower(&raw.context_tool_names),
        context_data_classes: norm_list_lower(&raw.context_data_classes),
        context_endpoint_classes: norm_list_lower(&raw.context_endpoint_classes),
        context_autonomy_levels: norm_list_lower(&raw.context_autonomy_levels),
        require_delegation: raw.require_delegation,
        allowed_delegator_identities: norm_list(&raw.allowed_delegator_identities),
        allowed_delegate_identities: norm_list(&raw.allowed_delegate_identities),
        delegation_scopes: norm_list_lower(&raw.delegation_scopes),
        max_delegation_depth,
    })
}

fn compile_dataflow(raw: &RawDataflow, rule: &str) -> Result<Option<Dataflow>, PolicyError> {
    let mut tainted_sources = norm_list_lower(&raw.tainted_sources);
    let destination_kinds = norm_list_lower(&raw.destination_kinds);
    let destination_values = norm_list(&raw.destination_values);
    let destination_operations = norm_list_lower(&raw.destination_operations);
    let enabled = raw.enabled
        || !tainted_sources.is_empty()
        || !destination_kinds.is_empty()
        || !destination_values.is_empty()
        || !destination_operations.is_empty();
    if !enabled {
        return Ok(None);
    }
    if tainted_sources.is_empty() {
        tainted_sources = vec!["external".to_string(), "tool_output".to_string()];
    }
    let action = match lower(&raw.action).as_str() {
        "" => Verdict::RequireApproval,
        a => parse_action(a)
            .ok_or_else(|| invalid(format!("unsupported dataflow.action {a:?} for {rule}")))?,
    };
    let reason_code = match raw.reason_code.trim() {
        "" => "dataflow_tainted_destination".to_string(),
        s => s.to_string(),
    };
    let violation = match raw.violation.trim() {
        "" => "tainted_dataflow".to_string(),
        s => s.to_string(),
    };
    Ok(Some(Dataflow {
        tainted_sources,
        destination_kinds,
        destination_values,
        destination_operations,
        action,
        reason_code,
        violation,
    }))
}

fn norm_path_patterns(values: &[String]) -> Vec<String> {
    let v: Vec<String> = values.iter().map(|s| s.trim().replace('\\', "/")).collect();
    norm_list(&v)
}

fn compile_endpoint(raw: &RawEndpoint, rule: &str) -> Result<Option<Endpoint>, PolicyError> {
    let path_allowlist = norm_path_patterns(&raw.path_allowlist);
    let path_denylist = norm_path_patterns(&raw.path_denylist);
    let domain_allowlist = norm_list_lower(&raw.domain_allowlist);
    let domain_denylist = norm_list_lower(&raw.domain_denylist);
    let egress_classes = norm_list_lower(&raw.egress_classes);
    for c in &egress_classes {
        if !ENDPOINT_CLASSES.contains(&c.as_str()) {
            return Err(invalid(format!(
                "unsupported endpoint.egress_class {c:?} for {rule}"
            )));
        }
        if !c.starts_with("net.") {
            return Err(invalid(format!(
                "endpoint.egress_class must be network class for {rule}"
            )));
        }
    }
    let destructive_action = lower(&raw.destructive_action);
    let enabled = raw.enabled
        || !path_allowlist.is_empty()
        || !path_denylist.is_empty()
        || !domain_allowlist.is_empty()
        || !domain_denylist.is_empty()
        || !egress_classes.is_empty()
        || !destructive_action.is_empty();
    if !enabled {
        return Ok(None);
    }
    let action = match lower(&raw.action).as_str() {
        "" => Verdict::Block,
        a => parse_action(a)
            .ok_or_else(|| invalid(format!("unsupported endpoint.action {a:?} for {rule}")))?,
    };
    let destructive_action = match destructive_action.as_str() {
        "" => None,
        a => Some(parse_action(a).ok_or_else(|| {
            invalid(format!(
                "unsupported endpoint.destructive_action {a:?} for {rule}"
            ))
        })?),
    };
    let reason_code = match raw.reason_code.trim() {
        "" => "endpoint_constraint_violation".to_string(),
        s => s.to_string(),
    };
    let violation = match raw.violation.trim() {
        "" => "endpoint_constraint_violation".to_string(),
        s => s.to_string(),
    };
    Ok(Some(Endpoint {
        path_allowlist: path_allowlist.iter().map(|p| PathPattern::new(p)).collect(),
        path_denylist: path_denylist.iter().map(|p| PathPattern::new(p)).collect(),
        domain_allowlist: domain_allowlist
            .iter()
            .map(|p| DomainPattern::new(p))
            .collect(),
        domain_denylist: domain_denylist
            .iter()
            .map(|p| DomainPattern::new(p))
            .collect(),
        egress_classes,
        action,
        destructive_action,
        reason_code,
        violation,
    }))
}

const FREEZE_LAYOUT: &str = "%Y-%m-%dT%H:%M:%S";

fn compile_freeze_window(
    raw: &RawFreezeWindow,
    rule: &str,
) -> Result<Option<FreezeWindow>, PolicyError> {
    let timezone = raw.timezone.trim().to_string();
    let effect = lower(&raw.effect);
    let environments = norm_list_lower(&raw.environments);
    let risk_classes = norm_list_lower(&raw.risk_classes);
    let enabled = raw.enabled
        || !timezone.is_empty()
        || !effect.is_empty()
        || !raw.reason.trim().is_empty()
        || !environments.is_empty()
        || !risk_classes.is_empty()
        || !raw.windows.is_empty();
    if !enabled {
        return Ok(None);
    }
    if timezone.is_empty() {
        return Err(invalid(format!(
            "freeze_window.timezone is required for {rule}"
        )));
    }
    let effect = match effect.as_str() {
        "" => Verdict::Block,
        e => parse_action(e)
            .ok_or_else(|| invalid(format!("unsupported freeze_window.effect {e:?} for {rule}")))?,
    };
    let tz = timezone.parse::<chrono_tz::Tz>().ok();
    let windows = raw
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let name = match w.name.trim() {
                "" => format!("window-{}", i + 1),
                n => n.to_string(),
            };
            let start = w.start.trim().to_string();
            let end = w.end.trim().to_string();
            let parsed = NaiveDateTime::parse_from_str(&start, FREEZE_LAYOUT)
                .ok()
                .zip(NaiveDateTime::parse_from_str(&end, FREEZE_LAYOUT).ok());
            FreezeRange {
                name,
                start,
                end,
                parsed,
            }
        })
        .collect();
    Ok(Some(FreezeWindow {
        timezone,
        tz,
        effect,
        reason: raw.reason.trim().to_string(),
        environments,
        risk_classes,
        windows,
    }))
}

fn compile_sandbox(raw: &RawSandbox, rule: &str) -> Result<Option<Sandbox>, PolicyError> {
    let s = Sandbox {
        allowed_network_modes: norm_list_lower(&raw.allowed_network_modes),
        allowed_writable_path_prefixes: norm_list(&raw.allowed_writable_path_prefixes),
        required_read_only_roots: norm_list(&raw.required_read_only_roots),
        allowed_env_exposure_modes: norm_list_lower(&raw.allowed_env_exposure_modes),
        max_timeout_seconds: non_negative(
            raw.max_timeout_seconds,
            "sandbox.max_timeout_seconds",
            rule,
        )?,
        allowed_filesystem_isolations: norm_list_lower(&raw.allowed_filesystem_isolations),
        allowed_user_modes: norm_list_lower(&raw.allowed_user_modes),
    };
    let enabled = raw.enabled || s != Sandbox::default();
    if !enabled {
        return Ok(None);
    }
    check_enum(
        &s.allowed_network_modes,
        NETWORK_MODES,
        "sandbox.allowed_network_modes",
        rule,
    )?;
    check_enum(
        &s.allowed_env_exposure_modes,
        ENV_EXPOSURE_MODES,
        "sandbox.allowed_env_exposure_modes",
        rule,
    )?;
    check_enum(
        &s.allowed_filesystem_isolations,
        FS_ISOLATIONS,
        "sandbox.allowed_filesystem_isolations",
        rule,
    )?;
    check_enum(
        &s.allowed_user_modes,
        USER_MODES,
        "sandbox.allowed_user_modes",
        rule,
    )?;
    Ok(Some(s))
}

fn compile_rule(raw: RawRule) -> Result<Rule, PolicyError> {
    let name = raw.name.trim().to_string();
    if name.is_empty() {
        return Err(invalid("rule name is required"));
    }
    let mut effect = lower(&raw.effect);
    let action = lower(&raw.action);
    if effect.is_empty() {
        effect = action.clone();
    }
    if !action.is_empty() && effect != action {
        return Err(invalid(format!("rule action must match effect for {name}")));
    }
    if effect.is_empty() {
        return Err(invalid(format!("rule effect is required for {name}")));
    }
    let effect = parse_verdict(&effect)
        .ok_or_else(|| invalid(format!("invalid rule effect {effect:?} for {name}")))?;

    let matcher = compile_match(&raw.matcher, &name)?;
    let min_approvals = non_negative(raw.min_approvals, "min_approvals", &name)?;
    let mode = lower(&raw.required_context_evidence_mode);
    if !mode.is_empty() && mode != "required" {
        return Err(invalid(format!(
            "required_context_evidence_mode must be required for {name}"
        )));
    }
    let mode = if raw.require_context_evidence && mode.is_empty() {
        "required".to_string()
    } else {
        mode
    };
    let context_evidence = ContextEvidenceRule {
        require_context_evidence: raw.require_context_evidence,
        required_mode: mode,
        max_context_age_seconds: non_negative(
            raw.max_context_age_seconds,
            "max_context_age_seconds",
            &name,
        )?,
    };

    let digest = lower(&raw.required_agent_manifest_digest);
    if !digest.is_empty() && !is_sha256_hex(&digest) {
        return Err(invalid(format!(
            "required_agent_manifest_digest must be sha256 hex for {name}"
        )));
    }
    let agent_identity = AgentIdentityRule {
        require_declared_agent: raw.require_declared_agent,
        allowed_agent_ids: norm_list(&raw.allowed_agent_ids),
        denied_agent_ids: norm_list(&raw.denied_agent_ids),
        required_agent_manifest_digest: digest,
        allowed_agent_manifest_publishers: norm_list_lower(&raw.allowed_agent_manifest_publishers),
        allowed_agent_manifest_sources: norm_list_lower(&raw.allowed_agent_manifest_sources),
        required_agent_lifecycle_states: norm_list_lower(&raw.required_agent_lifecycle_states),
        require_agent_owner: raw.require_agent_owner,
        require_unexpired_agent: raw.require_unexpired_agent,
    };

    let credential = CredentialRule {
        block_standing_credentials: raw.block_standing_credentials,
        allowed_credential_sources: norm_list_lower(&raw.allowed_credential_sources),
        allowed_credential_issuers: norm_list(&raw.allowed_credential_issuers),
        allowed_credential_access_types: norm_list_lower(&raw.allowed_credential_access_types),
        max_credential_ttl_seconds: non_negative(
            raw.max_credential_ttl_seconds,
            "max_credential_ttl_seconds",
            &name,
        )?,
        require_jit_credential: raw.require_jit_credential,
    };
    check_enum(
        &credential.allowed_credential_sources,
        CREDENTIAL_SOURCES,
        "allowed_credential_sources",
        &name,
    )?;
    check_enum(
        &credential.allowed_credential_access_types,
        CREDENTIAL_ACCESS_TYPES,
        "allowed_credential_access_types",
        &name,
    )?;

    Ok(Rule {
        fallback_reason: format!("matched_rule_{}", sanitize_name(&name)),
        priority: raw.priority,
        effect,
        reason_codes: norm_list(&raw.reason_codes),
        violations: norm_list(&raw.violations),
        min_approvals: to_u32(min_approvals),
        require_distinct_approvers: raw.require_distinct_approvers || min_approvals > 1,
        require_broker_credential: raw.require_broker_credential,
        broker_reference: raw.broker_reference.trim().to_string(),
        broker_scopes: norm_list_lower(&raw.broker_scopes),
        rate_limit: compile_rate_limit(&raw.rate_limit, "rate_limit", &name, false)?,
        destructive_budget: compile_rate_limit(
            &raw.destructive_budget,
            "destructive_budget",
            &name,
            true,
        )?,
        dataflow: compile_dataflow(&raw.dataflow, &name)?,
        endpoint: compile_endpoint(&raw.endpoint, &name)?,
        freeze_window: compile_freeze_window(&raw.freeze_window, &name)?,
        sandbox: compile_sandbox(&raw.sandbox, &name)?,
        context_evidence,
        agent_identity,
        credential,
        matcher,
        name,
    })
}
