//! `TraceRecord` (`gait.gate.trace` 1.0.0, gate.md §5.2) and the identifiers derived for it.
//!
//! Invariant: serializing a record yields the keys of Go's `TraceRecord` in struct order with
//! Go's `omitempty` rules (`""`, `0`, `false`, empty lists and absent objects dropped; times
//! always written), so a trace written here verifies in Go. Reading accepts unknown fields.

use crate::intent::{AgentIdentity, GoTime, SkillProvenance};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TraceError;

/// `schema_id` of a trace record.
pub const TRACE_SCHEMA_ID: &str = "gait.gate.trace";
/// `schema_version` of a trace record.
pub const TRACE_SCHEMA_VERSION: &str = "1.0.0";

// The Go omitempty / null-as-absent serde helpers, shared with the intent types.
use crate::intent::types::{is_false, is_zero as is_zero_i64, is_zero_f64, null_default};

/// Go's `time.RFC3339Nano` rendering of a UTC instant: fraction trailing zeros trimmed
/// (absent when zero), `Z` suffix.
pub fn rfc3339_nano(t: chrono::DateTime<chrono::Utc>) -> String {
    GoTime::from_utc(t).to_go_string()
}

/// `hex(sha256(policy_digest ":" intent_digest ":" verdict)[:12])` (gate.md §4.5).
pub fn trace_id(policy_digest: &str, intent_digest: &str, verdict: &str) -> String {
    let pre = format!("{policy_digest}:{intent_digest}:{verdict}");
    hex::encode(&crate::canon::sha256(pre.as_bytes())[..12])
}

/// `hex(sha256(trace_id ":" observed_at)[:12])` with `observed_at` in RFC3339Nano (§4.5).
pub fn event_id(trace_id: &str, observed_at: &str) -> String {
    let pre = format!("{trace_id}:{observed_at}");
    hex::encode(&crate::canon::sha256(pre.as_bytes())[..12])
}

/// The signature envelope of a trace (§5.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(default, deserialize_with = "null_default")]
    pub alg: String,
    #[serde(default, deserialize_with = "null_default")]
    pub key_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub sig: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub signed_digest: String,
}

/// One script step's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepVerdict {
    #[serde(default, deserialize_with = "null_default")]
    pub index: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub tool_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub verdict: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reason_codes: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub violations: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub matched_rule: String,
}

/// `delegation_ref` of a trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRef {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub delegation_token_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub requester_identity: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub delegation_depth: i64,
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
    pub chain_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reason_codes: Vec<String>,
}

/// `freeze_window` decision of a trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeWindowDecision {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub status: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub effect: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub timezone: String,
    #[serde(default)]
    pub evaluated_at: GoTime,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub window_name: String,
    #[serde(default)]
    pub window_start: GoTime,
    #[serde(default)]
    pub window_end: GoTime,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason_code: String,
}

/// `sandbox` decision of a trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxDecision {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub status: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub network_mode: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub env_exposure_mode: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
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
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reason_codes: Vec<String>,
}

/// `kill_switch` decision of a trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitchDecision {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub status: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason_code: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reason_codes: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matched_entry_ids: Vec<String>,
    #[serde(default)]
    pub evaluated_at: GoTime,
}

/// `mcp_trust` decision of a trace and of the proxy output (gate.md §8).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct McpTrustDecision {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
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
    pub status: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub decision_source: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_f64"
    )]
    pub score: f64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_f64"
    )]
    pub threshold: f64,
    #[serde(default)]
    pub updated_at: GoTime,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub max_age_seconds: i64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub required: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub enforced: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub registry_verified: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub publisher_allowed: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reason_codes: Vec<String>,
}

/// `{kind, id}` reference used throughout the relationship envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityRef {
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
}

impl EntityRef {
    pub fn new(kind: &str, id: &str) -> Self {
        EntityRef {
            kind: kind.to_string(),
            id: id.to_string(),
        }
    }
}

/// `relationship.policy_ref`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_version: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matched_rule_ids: Vec<String>,
}

/// `relationship.agent_chain[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLink {
    #[serde(default, deserialize_with = "null_default")]
    pub identity: String,
    #[serde(default, deserialize_with = "null_default")]
    pub role: String,
}

/// `relationship.edges[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default)]
    pub from: EntityRef,
    #[serde(default)]
    pub to: EntityRef,
}

/// `relationship.agent_lineage[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLineage {
    #[serde(default, deserialize_with = "null_default")]
    pub agent_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub delegated_by: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub delegation_record_id: String,
}

/// The additive relationship envelope (`schemas/common/relationship_envelope`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relationship {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<EntityRef>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entity_refs: Vec<EntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_ref: Option<PolicyRef>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub agent_chain: Vec<AgentLink>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub edges: Vec<Edge>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub parent_record_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related_record_ids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related_entity_ids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub agent_lineage: Vec<AgentLineage>,
}

/// Inputs of [`Relationship::for_decision`].
#[derive(Debug, Clone, Default)]
pub struct RelationshipInput<'a> {
    pub session_id: &'a str,
    pub identity: &'a str,
    pub tool_name: &'a str,
    pub trace_id: &'a str,
    pub policy_id: &'a str,
    pub policy_version: &'a str,
    pub policy_digest: &'a str,
    pub matched_rule_ids: &'a [String],
    /// `(delegator, delegate)` hops of a delegation chain, in order.
    pub delegation_hops: &'a [(String, String)],
    /// The delegation's requester identity, if a delegation is present.
    pub delegation_requester: &'a str,
}

impl Relationship {
    /// The relationship envelope of a gate decision (gate.md §5.2).
    pub fn for_decision(input: &RelationshipInput<'_>) -> Relationship {
        let mut entity_refs = Vec::with_capacity(4);
        if !input.identity.is_empty() {
            entity_refs.push(EntityRef::new("agent", input.identity));
        }
        if !input.policy_digest.is_empty() {
            entity_refs.push(EntityRef::new("policy", input.policy_digest));
        }
        if !input.tool_name.is_empty() {
            entity_refs.push(EntityRef::new("tool", input.tool_name));
        }
        if !input.trace_id.is_empty() {
            entity_refs.push(EntityRef::new("trace", input.trace_id));
        }
        let mut agent_chain = Vec::new();
        let mut edges = Vec::new();
        let requester = if input.delegation_requester.is_empty() {
            input.identity
        } else {
            input.delegation_requester
        };
        if !requester.is_empty() {
            agent_chain.push(AgentLink {
                identity: requester.to_string(),
                role: "requester".into(),
            });
        }
        for (delegator, delegate) in input.delegation_hops {
            if !delegator.is_empty() {
                agent_chain.push(AgentLink {
                    identity: delegator.clone(),
                    role: "delegator".into(),
                });
            }
            if !delegate.is_empty() {
                agent_chain.push(AgentLink {
                    identity: delegate.clone(),
                    role: "delegate".into(),
                });
            }
        }
        if !input.identity.is_empty() && !input.tool_name.is_empty() {
            edges.push(Edge {
                kind: "calls".into(),
                from: EntityRef::new("agent", input.identity),
                to: EntityRef::new("tool", input.tool_name),
            });
        }
        if !input.tool_name.is_empty() && !input.policy_digest.is_empty() {
            edges.push(Edge {
                kind: "governed_by".into(),
                from: EntityRef::new("tool", input.tool_name),
                to: EntityRef::new("policy", input.policy_digest),
            });
        }
        for (delegator, delegate) in input.delegation_hops {
            if !delegator.is_empty() && !delegate.is_empty() {
                edges.push(Edge {
                    kind: "delegates_to".into(),
                    from: EntityRef::new("agent", delegator),
                    to: EntityRef::new("agent", delegate),
                });
            }
        }
        entity_refs.sort();
        entity_refs.dedup();
        let mut related: Vec<String> = entity_refs.iter().map(|r| r.id.clone()).collect();
        related.sort();
        related.dedup();
        let mut matched: Vec<String> = input.matched_rule_ids.to_vec();
        matched.sort();
        matched.dedup();
        Relationship {
            parent_ref: (!input.session_id.is_empty())
                .then(|| EntityRef::new("session", input.session_id)),
            entity_refs,
            policy_ref: Some(PolicyRef {
                policy_id: input.policy_id.to_string(),
                policy_version: input.policy_version.to_string(),
                policy_digest: input.policy_digest.to_string(),
                matched_rule_ids: matched,
            }),
            agent_chain,
            edges,
            related_entity_ids: related,
            ..Relationship::default()
        }
    }

    fn validate(&self) -> Result<(), TraceError> {
        const PARENT: [&str; 7] = [
            "trace", "run", "session", "intent", "policy", "agent", "evidence",
        ];
        const ENTITY: [&str; 8] = [
            "agent",
            "tool",
            "resource",
            "policy",
            "run",
            "trace",
            "delegation",
            "evidence",
        ];
        const EDGE: [&str; 6] = [
            "delegates_to",
            "calls",
            "governed_by",
            "targets",
            "derived_from",
            "emits_evidence",
        ];
        const ROLE: [&str; 3] = ["requester", "delegator", "delegate"];
        let bad = |what: &str| Err(TraceError::Invalid(format!("relationship: invalid {what}")));
        if let Some(p) = &self.parent_ref
            && (!PARENT.contains(&p.kind.as_str()) || p.id.is_empty())
        {
            return bad("parent_ref");
        }
        for r in &self.entity_refs {
            if !ENTITY.contains(&r.kind.as_str()) || r.id.is_empty() {
                return bad("entity_refs");
            }
        }
        for e in &self.edges {
            if !EDGE.contains(&e.kind.as_str())
                || e.from.kind.is_empty()
                || e.from.id.is_empty()
                || e.to.kind.is_empty()
                || e.to.id.is_empty()
            {
                return bad("edges");
            }
        }
        for a in &self.agent_chain {
            if !ROLE.contains(&a.role.as_str()) || a.identity.is_empty() {
                return bad("agent_chain");
            }
        }
        if let Some(p) = &self.policy_ref
            && !p.policy_digest.is_empty()
            && !is_hex64(p.policy_digest.trim_start_matches("sha256:"))
        {
            return bad("policy_ref.policy_digest");
        }
        Ok(())
    }
}

/// A `gait.gate.trace` record. Field order is Go's struct order (it is the JSON key order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    #[serde(default, deserialize_with = "null_default")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub schema_version: String,
    #[serde(default)]
    pub created_at: GoTime,
    #[serde(default)]
    pub observed_at: GoTime,
    #[serde(default, deserialize_with = "null_default")]
    pub producer_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub trace_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub event_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub correlation_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tool_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub args_digest: String,
    #[serde(default, deserialize_with = "null_default")]
    pub intent_digest: String,
    #[serde(default, deserialize_with = "null_default")]
    pub policy_digest: String,
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
        skip_serializing_if = "is_zero_i64"
    )]
    pub credential_ttl_seconds: i64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_credential_ref: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_credential_source: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_credential_access_type: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_credential_issuer: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_request_digest: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_target_binding: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_run_binding: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub broker_job_binding: String,
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
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_version: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matched_rule_ids: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub verdict: String,
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
        skip_serializing_if = "is_zero_i64"
    )]
    pub context_ref_count: i64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub context_source: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub script: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_i64"
    )]
    pub step_count: i64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub script_hash: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub composite_risk_class: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub step_verdicts: Vec<StepVerdict>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub pre_approved: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub pattern_id: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub registry_reason: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub violations: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero_f64"
    )]
    pub latency_ms: f64,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub approval_token_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation_ref: Option<DelegationRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_window: Option<FreezeWindowDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<KillSwitchDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_trust: Option<McpTrustDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_provenance: Option<SkillProvenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

const VERDICTS: [&str; 4] = ["allow", "block", "dry_run", "require_approval"];

impl TraceRecord {
    /// Parse and validate a trace record (JSON bytes). Unknown fields are accepted.
    pub fn parse(bytes: &[u8]) -> Result<TraceRecord, TraceError> {
        let value = super::file::parse_json_bounded(bytes)?;
        Self::from_value(value)
    }

    /// Validate and convert a parsed JSON value.
    pub fn from_value(value: Value) -> Result<TraceRecord, TraceError> {
        if !value.is_object() {
            return Err(TraceError::Invalid(
                "trace record must be a JSON object".into(),
            ));
        }
        let rec: TraceRecord = serde_json::from_value(value)
            .map_err(|e| TraceError::Invalid(format!("decode trace record: {e}")))?;
        rec.validate()?;
        Ok(rec)
    }

    /// Check the schema rules a reader relies on (`trace_record.schema.json`).
    pub fn validate(&self) -> Result<(), TraceError> {
        let invalid = |m: String| Err(TraceError::Invalid(m));
        if self.schema_id != TRACE_SCHEMA_ID {
            return invalid(format!("unsupported trace schema_id {:?}", self.schema_id));
        }
        if self.schema_version != TRACE_SCHEMA_VERSION {
            return invalid(format!(
                "unsupported trace schema_version {:?}",
                self.schema_version
            ));
        }
        if self.created_at.is_zero() {
            return invalid("trace created_at is required".into());
        }
        for (name, v) in [("trace_id", &self.trace_id), ("tool_name", &self.tool_name)] {
            if v.is_empty() {
                return invalid(format!("trace {name} is required"));
            }
        }
        for (name, v) in [
            ("args_digest", &self.args_digest),
            ("intent_digest", &self.intent_digest),
            ("policy_digest", &self.policy_digest),
        ] {
            if !is_hex64(v) {
                return invalid(format!("trace {name} must be sha256 hex"));
            }
        }
        if !VERDICTS.contains(&self.verdict.as_str()) {
            return invalid(format!("unsupported trace verdict {:?}", self.verdict));
        }
        for (name, v) in [
            ("context_set_digest", &self.context_set_digest),
            ("script_hash", &self.script_hash),
            ("broker_request_digest", &self.broker_request_digest),
        ] {
            if !v.is_empty() && !is_hex64(v) {
                return invalid(format!("trace {name} must be sha256 hex"));
            }
        }
        if let Some(sp) = &self.skill_provenance {
            if sp.skill_name.is_empty() || sp.source.is_empty() || sp.publisher.is_empty() {
                return invalid(
                    "trace skill_provenance requires skill_name, source, publisher".into(),
                );
            }
            if !sp.digest.is_empty() && !is_hex64(&sp.digest) {
                return invalid("trace skill_provenance.digest must be sha256 hex".into());
            }
        }
        if let Some(r) = &self.relationship {
            r.validate()?;
        }
        Ok(())
    }

    /// `GoTime` of `now`, for `observed_at`.
    pub fn stamp_observed(&mut self, now: chrono::DateTime<chrono::Utc>) {
        self.observed_at = GoTime::from_utc(now);
        self.event_id = event_id(&self.trace_id, &self.observed_at.to_go_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn golden_trace_id() {
        // gate.md §4.6.
        assert_eq!(
            trace_id(
                "65819d9cf07c7619aa8aaf2bd4e8d6f8e3f86b139b49a68c535fd14d77a5009f",
                "3619e812b9e7192ccd9f84fb51fc067284b1b015f5a8ac37b3748f77302f8841",
                "allow"
            ),
            "c4c9323f1b04440d3b862edb"
        );
    }

    #[test]
    fn event_id_is_sha_prefix_of_trace_and_time() {
        let t = Utc
            .with_ymd_and_hms(2026, 8, 20, 10, 15, 0)
            .single()
            .unwrap()
            + chrono::Duration::nanoseconds(123_450_000);
        let s = rfc3339_nano(t);
        assert_eq!(s, "2026-08-20T10:15:00.12345Z");
        let want = &crate::canon::sha256_hex(b"abc:2026-08-20T10:15:00.12345Z")[..24];
        assert_eq!(event_id("abc", &s), want);
        assert_eq!(
            rfc3339_nano(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()),
            "2026-01-01T00:00:00Z"
        );
    }

    fn minimal() -> TraceRecord {
        TraceRecord {
            schema_id: TRACE_SCHEMA_ID.into(),
            schema_version: TRACE_SCHEMA_VERSION.into(),
            created_at: GoTime::epoch_1980(),
            producer_version: "0.1.0".into(),
            trace_id: "t".into(),
            tool_name: "tool.x".into(),
            args_digest: "a".repeat(64),
            intent_digest: "b".repeat(64),
            policy_digest: "c".repeat(64),
            verdict: "allow".into(),
            ..TraceRecord::default()
        }
    }

    #[test]
    fn key_order_and_omitempty_follow_go() {
        let mut r = minimal();
        r.stamp_observed(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap());
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"schema_id":"gait.gate.trace","schema_version":"1.0.0","created_at":"1980-01-01T00:00:00Z","observed_at":"2026-01-02T03:04:05Z","producer_version":"0.1.0","trace_id":"t","event_id":"{}","tool_name":"tool.x","args_digest":"{}","intent_digest":"{}","policy_digest":"{}","verdict":"allow"}}"#,
                r.event_id,
                "a".repeat(64),
                "b".repeat(64),
                "c".repeat(64)
            )
        );
        // A kill-switch decision always carries its (zero) evaluated_at, like Go.
        r.kill_switch = Some(KillSwitchDecision {
            status: "inactive".into(),
            ..Default::default()
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["kill_switch"],
            serde_json::json!({"status":"inactive","evaluated_at":"0001-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn reader_accepts_unknown_fields_and_rejects_bad_digests() {
        let mut v = serde_json::to_value(minimal()).unwrap();
        v["future_field"] = serde_json::json!({"x": 1});
        assert!(TraceRecord::from_value(v.clone()).is_ok());
        v["intent_digest"] = "bad".into();
        assert!(TraceRecord::from_value(v).is_err());
        assert!(TraceRecord::parse(b"[1,2]").is_err());
    }

    #[test]
    fn relationship_for_decision_is_sorted_and_valid() {
        let rel = Relationship::for_decision(&RelationshipInput {
            session_id: "sess-1",
            identity: "agent-a",
            tool_name: "tool.read",
            trace_id: "abc",
            policy_id: "gait.gate.policy",
            policy_version: "1.0.0",
            policy_digest: &"d".repeat(64),
            ..Default::default()
        });
        let kinds: Vec<&str> = rel.entity_refs.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["agent", "policy", "tool", "trace"]);
        assert_eq!(rel.parent_ref, Some(EntityRef::new("session", "sess-1")));
        assert_eq!(rel.edges.len(), 2);
        assert!(rel.validate().is_ok());
        let mut ids = rel.related_entity_ids.clone();
        ids.sort();
        assert_eq!(ids, rel.related_entity_ids);
    }
}
