//! The `gait.gate.intent_request` data types (gate.md §3.1) and their Go-compatible serde.
//!
//! Invariant: serializing any of these types yields exactly the keys Go's `json.Marshal` would
//! emit for the same struct: `omitempty` drops `""`, `0`, `false`, empty lists and empty maps,
//! but never a `time.Time`, which is always written (as `0001-01-01T00:00:00Z` when zero). The
//! digest preimages (§4) are these serializations, so this is load-bearing. Readers ignore
//! unknown fields and treat JSON `null` like an absent field, as Go does.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// `schema_id` of an intent request.
pub const INTENT_SCHEMA_ID: &str = "gait.gate.intent_request";
/// `schema_version` of an intent request.
pub const INTENT_SCHEMA_VERSION: &str = "1.0.0";

/// A JSON object (`map[string]any` in Go).
pub type JsonMap = Map<String, Value>;

/// Deserialize `null` (or an absent field, with `#[serde(default)]`) as `T::default()`.
pub(crate) fn null_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + DeserializeOwned,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

pub(crate) fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A Go `time.Time` as it appears in JSON: RFC 3339, `null` = zero, zero serialized as
/// `0001-01-01T00:00:00Z`, non-zero as Go's RFC3339Nano (fraction trimmed, `Z` for UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GoTime(Option<DateTime<FixedOffset>>);

/// The text Go writes for a zero `time.Time`.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl GoTime {
    /// The zero time.
    pub const ZERO: GoTime = GoTime(None);

    /// Wrap a timestamp (the Go zero instant maps to [`GoTime::ZERO`]).
    pub fn new(t: DateTime<FixedOffset>) -> Self {
        if t.timestamp() == go_zero_unix() && t.timestamp_subsec_nanos() == 0 {
            GoTime(None)
        } else {
            GoTime(Some(t))
        }
    }

    /// A UTC timestamp.
    pub fn from_utc(t: DateTime<Utc>) -> Self {
        GoTime::new(t.fixed_offset())
    }

    /// `1980-01-01T00:00:00Z`, the default `created_at` of MCP-derived intents.
    pub fn epoch_1980() -> Self {
        GoTime::from_utc(
            Utc.with_ymd_and_hms(1980, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        )
    }

    /// Parse RFC 3339 text (what Go's `time.Time.UnmarshalJSON` accepts).
    pub fn parse(s: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(s)
            .map(GoTime::new)
            .map_err(|e| format!("parsing time {s:?}: {e}"))
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_none()
    }

    pub fn get(&self) -> Option<DateTime<FixedOffset>> {
        self.0
    }

    /// Go's `t.UTC()`: same instant, UTC offset.
    pub fn to_utc(self) -> Self {
        GoTime(self.0.map(|t| t.with_timezone(&Utc).fixed_offset()))
    }

    /// Go's RFC3339Nano rendering.
    pub fn to_go_string(&self) -> String {
        match self.0 {
            None => GO_ZERO_TIME.to_string(),
            Some(t) => {
                let use_z = t.offset().local_minus_utc() == 0;
                t.to_rfc3339_opts(SecondsFormat::AutoSi, use_z)
                    .replace_fraction_zeros()
            }
        }
    }
}

fn go_zero_unix() -> i64 {
    // 0001-01-01T00:00:00Z
    -62_135_596_800
}

/// chrono's `AutoSi` prints 3/6/9 digit fractions; Go trims all trailing zeros.
trait TrimFraction {
    fn replace_fraction_zeros(self) -> String;
}

impl TrimFraction for String {
    fn replace_fraction_zeros(self) -> String {
        let Some(dot) = self.find('.') else {
            return self;
        };
        let frac_end = self[dot + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map(|i| dot + 1 + i)
            .unwrap_or(self.len());
        let digits = self[dot + 1..frac_end].trim_end_matches('0');
        let mut out = String::with_capacity(self.len());
        out.push_str(&self[..dot]);
        if !digits.is_empty() {
            out.push('.');
            out.push_str(digits);
        }
        out.push_str(&self[frac_end..]);
        out
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_go_string())
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_go_string())
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(de)? {
            None => Ok(GoTime::ZERO),
            Some(s) => GoTime::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// A `gait.gate.intent_request` (gate.md §3.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntentRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub schema_version: String,
    #[serde(default)]
    pub created_at: GoTime,
    #[serde(default, deserialize_with = "null_default")]
    pub producer_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tool_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub args: JsonMap,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub args_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub intent_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub script_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
    #[serde(default, deserialize_with = "null_default")]
    pub targets: Vec<Target>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arg_provenance: Vec<ArgProvenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_provenance: Option<SkillProvenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
    /// Relationship envelope, passed through untouched (not part of any digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub context: IntentContext,
}

impl IntentRequest {
    /// Parse an intent file's bytes. Goes through `serde_json::Value` first so a duplicated key
    /// keeps its last value (as Go does) instead of failing.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, super::IntentError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(super::IntentError::parse_intent)?;
        IntentRequest::deserialize(&value).map_err(super::IntentError::parse_intent)
    }
}

/// `script{steps}`: a multi-step intent (at most 64 steps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Script {
    #[serde(default, deserialize_with = "null_default")]
    pub steps: Vec<ScriptStep>,
}

/// One step of a script intent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptStep {
    #[serde(default, deserialize_with = "null_default")]
    pub tool_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub args: JsonMap,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub targets: Vec<Target>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arg_provenance: Vec<ArgProvenance>,
}

/// A resource the call touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
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
    pub endpoint_class: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub endpoint_domain: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub destructive: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub discovery_method: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub read_only_hint: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub destructive_hint: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub idempotent_hint: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub open_world_hint: bool,
}

/// Where an argument value came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArgProvenance {
    #[serde(default, deserialize_with = "null_default")]
    pub arg_path: String,
    #[serde(default, deserialize_with = "null_default")]
    pub source: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub source_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub integrity_digest: String,
}

/// Provenance of the skill that issued the call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillProvenance {
    #[serde(default, deserialize_with = "null_default")]
    pub skill_name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub skill_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub source: String,
    #[serde(default, deserialize_with = "null_default")]
    pub publisher: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub signature_key_id: String,
}

/// An (unsigned) delegation claim. Times are always serialized (Go zero-time quirk).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
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
    pub chain: Vec<DelegationLink>,
    #[serde(default)]
    pub issued_at: GoTime,
    #[serde(default)]
    pub expires_at: GoTime,
}

/// One hop of a delegation chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationLink {
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
    #[serde(default)]
    pub issued_at: GoTime,
    #[serde(default)]
    pub expires_at: GoTime,
}

/// Declared agent identity (`context.agent_identity`). Times are always serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIdentity {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub lifecycle_states: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub owner: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub manifest_digest: String,
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
    #[serde(default)]
    pub issued_at: GoTime,
    #[serde(default)]
    pub approved_at: GoTime,
    #[serde(default)]
    pub expires_at: GoTime,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub revoked: bool,
}

/// Sandbox posture claimed for the call (`context.sandbox`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub network_mode: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub writable_paths: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub read_only_roots: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub env_exposure_mode: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub timeout_seconds: i64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub filesystem_isolation: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user_mode: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub evidence_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub evidence_digest: String,
}

impl Sandbox {
    /// True when every field is empty (normalisation then drops the sandbox).
    pub fn is_empty(&self) -> bool {
        *self == Sandbox::default()
    }
}

/// The intent's `context` object. `identity`, `workspace`, `risk_class` are always serialized;
/// everything else follows `omitempty`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntentContext {
    #[serde(default, deserialize_with = "null_default")]
    pub identity: String,
    #[serde(default, deserialize_with = "null_default")]
    pub workspace: String,
    #[serde(default, deserialize_with = "null_default")]
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
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_identity: Option<AgentIdentity>,
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
    pub workflow_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub repo: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub environment: String,
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
    pub credential_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_source: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_access_type: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_issuer: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_subject: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_owner: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_target_binding: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_run_binding: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub credential_job_binding: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub credential_ttl_seconds: i64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub approval_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub wrkr_inventory_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub agent_action_bom_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Map::is_empty"
    )]
    pub auth_context: JsonMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Sandbox>,
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
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub context_set_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub context_evidence_mode: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub context_refs: Vec<String>,
    // Action-contract binding fields (newer Go context keys; carried and digested when set).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub contract_family_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub contract_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub contract_revision: i64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub proposal_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub activation_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub approval_token_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub delegation_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub expected_outcome: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub effect_scope: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub containment_scope: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_time_round_trips_like_go() {
        assert_eq!(GoTime::ZERO.to_go_string(), GO_ZERO_TIME);
        let t = GoTime::parse("2026-02-09T00:00:00Z").unwrap();
        assert_eq!(t.to_go_string(), "2026-02-09T00:00:00Z");
        let t = GoTime::parse("2026-02-09T00:00:00.120000+02:00").unwrap();
        assert_eq!(t.to_go_string(), "2026-02-09T00:00:00.12+02:00");
        assert_eq!(t.to_utc().to_go_string(), "2026-02-08T22:00:00.12Z");
        assert!(GoTime::parse("0001-01-01T00:00:00Z").unwrap().is_zero());
        assert_eq!(GoTime::epoch_1980().to_go_string(), "1980-01-01T00:00:00Z");
        assert!(GoTime::parse("").is_err());
        assert!(GoTime::parse("2026-02-09").is_err());
    }

    #[test]
    fn omitempty_and_zero_times() {
        let d = Delegation {
            requester_identity: "a".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"requester_identity":"a","issued_at":GO_ZERO_TIME,"expires_at":GO_ZERO_TIME})
        );
        let t = Target {
            kind: "path".into(),
            value: "/x".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"kind":"path","value":"/x"})
        );
        let c = IntentContext::default();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"identity":"","workspace":"","risk_class":""})
        );
    }

    #[test]
    fn readers_ignore_unknown_fields_and_nulls() {
        let r: IntentRequest = serde_json::from_value(json!({
            "tool_name": "x", "args": null, "targets": null, "future_field": 1,
            "context": {"identity": null, "new_thing": true, "credential_ttl_seconds": null}
        }))
        .unwrap();
        assert_eq!(r.tool_name, "x");
        assert!(r.args.is_empty() && r.targets.is_empty());
        assert!(r.created_at.is_zero());
    }

    #[test]
    fn type_mismatch_is_an_error() {
        let r = serde_json::from_value::<IntentRequest>(json!({"args": "nope"}));
        assert!(r.is_err());
        let r = serde_json::from_value::<IntentRequest>(
            json!({"context": {"credential_scopes": ["a", 42]}}),
        );
        assert!(r.is_err());
    }
}
