//! Policy YAML as written: serde types with `deny_unknown_fields` on every level.
//!
//! Invariant: these types only mirror the file; all defaults, aliases, normalisation and
//! validation happen in `compile.rs`. Lists accept an explicit `null` as empty.

use serde::{Deserialize, Deserializer};

/// `null` (or absent, with `#[serde(default)]`) becomes an empty list.
fn null_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `null` (or absent) becomes the type's default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default, deserialize_with = "null_default")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub schema_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub default_verdict: String,
    #[serde(default, deserialize_with = "null_default")]
    pub default_action: String,
    #[serde(default, deserialize_with = "null_default")]
    pub scripts: RawScripts,
    #[serde(default, deserialize_with = "null_default")]
    pub fail_closed: RawFailClosed,
    #[serde(default)]
    pub mcp_trust: Option<RawMcpTrust>,
    #[serde(default, deserialize_with = "null_vec")]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScripts {
    #[serde(default)]
    pub max_steps: i64,
    #[serde(default)]
    pub require_approval_above: i64,
    #[serde(default)]
    pub block_mixed_risk: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFailClosed {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, deserialize_with = "null_vec")]
    pub risk_classes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub required_fields: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub required_high_risk_fields: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMcpTrust {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub required_risk_classes: Option<Vec<String>>,
    #[serde(default)]
    pub min_score: Option<f64>,
    #[serde(default)]
    pub max_age: Option<String>,
    #[serde(default)]
    pub publisher_allowlist: Option<Vec<String>>,
    #[serde(default)]
    pub require_registry: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub effect: String,
    #[serde(default, deserialize_with = "null_default")]
    pub action: String,
    #[serde(default, rename = "match", deserialize_with = "null_default")]
    pub matcher: RawMatch,
    #[serde(default, deserialize_with = "null_default")]
    pub endpoint: RawEndpoint,
    #[serde(default, deserialize_with = "null_vec")]
    pub reason_codes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub violations: Vec<String>,
    #[serde(default)]
    pub min_approvals: i64,
    #[serde(default)]
    pub require_distinct_approvers: bool,
    #[serde(default)]
    pub require_context_evidence: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub required_context_evidence_mode: String,
    #[serde(default)]
    pub max_context_age_seconds: i64,
    #[serde(default)]
    pub require_broker_credential: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub broker_reference: String,
    #[serde(default, deserialize_with = "null_vec")]
    pub broker_scopes: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub rate_limit: RawRateLimit,
    #[serde(default, deserialize_with = "null_default")]
    pub destructive_budget: RawRateLimit,
    #[serde(default, deserialize_with = "null_default")]
    pub dataflow: RawDataflow,
    #[serde(default, deserialize_with = "null_default")]
    pub freeze_window: RawFreezeWindow,
    #[serde(default, deserialize_with = "null_default")]
    pub sandbox: RawSandbox,
    // agent identity
    #[serde(default)]
    pub require_declared_agent: bool,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_agent_ids: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub denied_agent_ids: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub required_agent_manifest_digest: String,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_agent_manifest_publishers: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_agent_manifest_sources: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub required_agent_lifecycle_states: Vec<String>,
    #[serde(default)]
    pub require_agent_owner: bool,
    #[serde(default)]
    pub require_unexpired_agent: bool,
    // credential provenance
    #[serde(default)]
    pub block_standing_credentials: bool,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_credential_sources: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_credential_issuers: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_credential_access_types: Vec<String>,
    #[serde(default)]
    pub max_credential_ttl_seconds: i64,
    #[serde(default)]
    pub require_jit_credential: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    #[serde(default)]
    pub requests: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub window: String,
    #[serde(default, deserialize_with = "null_default")]
    pub scope: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataflow {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, deserialize_with = "null_vec")]
    pub tainted_sources: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub destination_kinds: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub destination_values: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub destination_operations: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub action: String,
    #[serde(default, deserialize_with = "null_default")]
    pub reason_code: String,
    #[serde(default, deserialize_with = "null_default")]
    pub violation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, deserialize_with = "null_vec")]
    pub path_allowlist: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub path_denylist: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub domain_allowlist: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub domain_denylist: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub egress_classes: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub action: String,
    #[serde(default, deserialize_with = "null_default")]
    pub destructive_action: String,
    #[serde(default, deserialize_with = "null_default")]
    pub reason_code: String,
    #[serde(default, deserialize_with = "null_default")]
    pub violation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFreezeWindow {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub timezone: String,
    #[serde(default, deserialize_with = "null_default")]
    pub effect: String,
    #[serde(default, deserialize_with = "null_default")]
    pub reason: String,
    #[serde(default, deserialize_with = "null_vec")]
    pub environments: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub risk_classes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub windows: Vec<RawFreezeRange>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFreezeRange {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub start: String,
    #[serde(default, deserialize_with = "null_default")]
    pub end: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_network_modes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_writable_path_prefixes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub required_read_only_roots: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_env_exposure_modes: Vec<String>,
    #[serde(default)]
    pub max_timeout_seconds: i64,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_filesystem_isolations: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_user_modes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    #[serde(default, deserialize_with = "null_default")]
    pub tool_name: String,
    #[serde(default, deserialize_with = "null_vec")]
    pub tool_names: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub risk_classes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub target_kinds: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub target_values: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub endpoint_class: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub endpoint_classes: Vec<String>,
    #[serde(default, rename = "discovery_method", deserialize_with = "null_vec")]
    pub discovery_methods: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub tool_annotations: RawToolAnnotations,
    #[serde(default, deserialize_with = "null_vec")]
    pub skill_publishers: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub skill_sources: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub data_classes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub destination_kinds: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub destination_values: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub destination_operations: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub provenance_sources: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub identities: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub workspace_prefixes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub context_tool_names: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub context_data_classes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub context_endpoint_classes: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub context_autonomy_levels: Vec<String>,
    #[serde(default)]
    pub require_delegation: bool,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_delegator_identities: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub allowed_delegate_identities: Vec<String>,
    #[serde(default, deserialize_with = "null_vec")]
    pub delegation_scopes: Vec<String>,
    #[serde(default)]
    pub max_delegation_depth: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToolAnnotations {
    #[serde(default, rename = "readOnlyHint")]
    pub read_only_hint: Option<bool>,
    #[serde(default, rename = "destructiveHint")]
    pub destructive_hint: Option<bool>,
    #[serde(default, rename = "idempotentHint")]
    pub idempotent_hint: Option<bool>,
    #[serde(default, rename = "openWorldHint")]
    pub open_world_hint: Option<bool>,
}
