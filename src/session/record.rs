//! Journal, state and chain record types in Go field order (sessions.md §2), and the
//! relationship envelopes built for events and checkpoints. No I/O.
//!
//! Readers accept unknown fields and `null` for any list or string (Go's lenient decoder);
//! writers omit empty optional fields exactly where Go's `omitempty` does.

use serde::{Deserialize, Deserializer, Serialize};

pub const JOURNAL_SCHEMA_ID: &str = "gait.runpack.session_journal";
pub const EVENT_SCHEMA_ID: &str = "gait.runpack.session_event";
pub const CHECKPOINT_SCHEMA_ID: &str = "gait.runpack.session_checkpoint";
pub const STATE_SCHEMA_ID: &str = "gait.runpack.session_state";
pub const CHAIN_SCHEMA_ID: &str = "gait.runpack.session_chain";
pub const LOCK_SCHEMA_ID: &str = "gait.runpack.session_lock";
pub const SCHEMA_VERSION: &str = "1.0.0";

/// `null` decodes as the default value (Go leaves the zero value).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{kind, id}` reference used by parent_ref, entity_refs and edge ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeRef {
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
}

impl NodeRef {
    pub fn new(kind: &str, id: &str) -> NodeRef {
        NodeRef {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_id: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_version: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_digest: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matched_rule_ids: Vec<String>,
}

/// One link of the agent chain (`role` ∈ requester, delegator, delegate).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgentLink {
    #[serde(default, deserialize_with = "nullable")]
    pub identity: String,
    #[serde(default, deserialize_with = "nullable")]
    pub role: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub from: NodeRef,
    #[serde(default, deserialize_with = "nullable")]
    pub to: NodeRef,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLineage {
    #[serde(default, deserialize_with = "nullable")]
    pub agent_id: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub delegated_by: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub delegation_record_id: String,
}

/// The relationship envelope, in Go key order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relationship {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<NodeRef>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entity_refs: Vec<NodeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_ref: Option<PolicyRef>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub agent_chain: Vec<AgentLink>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub edges: Vec<Edge>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub parent_record_id: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related_record_ids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related_entity_ids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub agent_lineage: Vec<AgentLineage>,
}

impl Relationship {
    pub fn is_empty(&self) -> bool {
        *self == Relationship::default()
    }
}

/// Journal header (the first record).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionHeader {
    #[serde(default, deserialize_with = "nullable")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub schema_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub producer_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub session_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub run_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub started_at: String,
    /// `[]` when written by start, `null` after compaction; ignored on read.
    #[serde(default, skip_deserializing)]
    pub events: Option<Vec<SessionEvent>>,
}

/// One journal event (sessions.md §2.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    #[serde(default, deserialize_with = "nullable")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub schema_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub producer_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub session_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub run_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sequence: i64,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub intent_id: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub tool_name: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub intent_digest: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_digest: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_id: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_version: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub matched_rule_ids: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub trace_id: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub trace_path: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub verdict: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reason_codes: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub violations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub safety_invariant_version: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub safety_invariant_hash: String,
}

/// One checkpoint record (journal line and chain element, sessions.md §2.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(default, deserialize_with = "nullable")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub schema_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub producer_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub session_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub run_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub checkpoint_index: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub sequence_start: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub sequence_end: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub runpack_path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub manifest_digest: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub prev_checkpoint_digest: String,
    #[serde(default, deserialize_with = "nullable")]
    pub checkpoint_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub safety_invariant_version: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub safety_invariant_hash: String,
}

/// `J.state.json` (sessions.md §2.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    #[serde(default, deserialize_with = "nullable")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub schema_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub updated_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub producer_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub session_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub run_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub started_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub event_count: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub last_sequence: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub checkpoint_count: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub last_checkpoint_index: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub last_checkpoint_sequence: i64,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub last_checkpoint_digest: String,
    #[serde(default, deserialize_with = "nullable")]
    pub journal_size_bytes: i64,
}

impl SessionState {
    /// Go's validation of a read state index (any failure means "rebuild").
    pub fn is_valid(&self) -> bool {
        self.schema_id == STATE_SCHEMA_ID
            && self.schema_version == SCHEMA_VERSION
            && !self.session_id.trim().is_empty()
            && !self.run_id.trim().is_empty()
            && self.event_count >= 0
            && self.last_sequence >= 0
            && self.checkpoint_count >= 0
            && self.last_checkpoint_index >= 0
            && self.last_checkpoint_sequence >= 0
            && self.journal_size_bytes >= 0
    }
}

/// The chain file (sessions.md §2.5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionChain {
    #[serde(default, deserialize_with = "nullable")]
    pub schema_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub schema_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: String,
    #[serde(default, deserialize_with = "nullable")]
    pub producer_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub session_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub run_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub checkpoints: Vec<Checkpoint>,
}

/// Journal line envelope for writing: `{"record_type":…, "<type>":{…}}`.
#[derive(Debug, Serialize)]
pub struct RecordOut<'a> {
    pub record_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<&'a SessionHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a SessionEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<&'a Checkpoint>,
}

/// Journal line envelope for reading.
#[derive(Debug, Deserialize)]
pub struct RecordIn {
    #[serde(default, deserialize_with = "nullable")]
    pub record_type: String,
    #[serde(default)]
    pub header: Option<SessionHeader>,
    #[serde(default)]
    pub event: Option<SessionEvent>,
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

/// Encode one journal line (`\n`-terminated).
pub fn header_line(h: &SessionHeader) -> Result<Vec<u8>, serde_json::Error> {
    line(&RecordOut {
        record_type: "header",
        header: Some(h),
        event: None,
        checkpoint: None,
    })
}

pub fn event_line(e: &SessionEvent) -> Result<Vec<u8>, serde_json::Error> {
    line(&RecordOut {
        record_type: "event",
        header: None,
        event: Some(e),
        checkpoint: None,
    })
}

pub fn checkpoint_line(c: &Checkpoint) -> Result<Vec<u8>, serde_json::Error> {
    line(&RecordOut {
        record_type: "checkpoint",
        header: None,
        event: None,
        checkpoint: Some(c),
    })
}

fn line(r: &RecordOut<'_>) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = super::gojson::to_line(r)?;
    v.push(b'\n');
    Ok(v)
}

/// Trim, drop blanks, dedupe and sort (Go's `normalizeStringList`).
pub fn normalize_list(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Inputs of an event's relationship envelope.
pub struct EventRelationshipInput<'a> {
    pub session_id: &'a str,
    pub run_id: &'a str,
    pub tool_name: &'a str,
    pub trace_id: &'a str,
    pub policy_digest: &'a str,
    pub policy_id: &'a str,
    pub policy_version: &'a str,
    pub matched_rule_ids: &'a [String],
    pub agent_chain: &'a [AgentLink],
    pub actor: &'a str,
}

fn sorted_refs(refs: Vec<NodeRef>) -> Vec<NodeRef> {
    let mut refs: Vec<NodeRef> = refs
        .into_iter()
        .filter(|r| !r.kind.is_empty() && !r.id.is_empty())
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

fn entity_ids(refs: &[NodeRef]) -> Vec<String> {
    let mut ids: Vec<String> = refs.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The event relationship envelope (sessions.md §2.2). `None` when it would be empty.
pub fn event_relationship(input: &EventRelationshipInput<'_>) -> Option<Relationship> {
    let entity_refs = sorted_refs(vec![
        NodeRef::new("run", input.run_id),
        NodeRef::new("tool", input.tool_name),
        NodeRef::new("trace", input.trace_id),
        NodeRef::new("policy", input.policy_digest),
    ]);
    let policy_ref = PolicyRef {
        policy_id: input.policy_id.to_string(),
        policy_version: input.policy_version.to_string(),
        policy_digest: input.policy_digest.to_string(),
        matched_rule_ids: input.matched_rule_ids.to_vec(),
    };
    let policy_ref = (policy_ref != PolicyRef::default()).then_some(policy_ref);
    let mut chain: Vec<AgentLink> = input
        .agent_chain
        .iter()
        .map(|l| AgentLink {
            identity: l.identity.trim().to_string(),
            role: l.role.trim().to_lowercase(),
        })
        .filter(|l| {
            !l.identity.is_empty()
                && matches!(l.role.as_str(), "requester" | "delegator" | "delegate")
        })
        .collect();
    chain.sort_by(|a, b| (&a.role, &a.identity).cmp(&(&b.role, &b.identity)));
    chain.dedup();
    let mut edges = Vec::new();
    if !input.tool_name.is_empty() && !input.policy_digest.is_empty() {
        edges.push(Edge {
            kind: "governed_by".into(),
            from: NodeRef::new("tool", input.tool_name),
            to: NodeRef::new("policy", input.policy_digest),
        });
    }
    let role_actor = |role: &str| {
        chain
            .iter()
            .find(|l| l.role == role)
            .map(|l| l.identity.clone())
    };
    let actor = if !input.actor.trim().is_empty() {
        Some(input.actor.trim().to_string())
    } else {
        role_actor("delegate")
            .or_else(|| role_actor("requester"))
            .or_else(|| role_actor("delegator"))
    };
    if let Some(actor) = actor
        && !input.tool_name.is_empty()
    {
        edges.push(Edge {
            kind: "calls".into(),
            from: NodeRef::new("agent", &actor),
            to: NodeRef::new("tool", input.tool_name),
        });
    }
    edges.sort_by(|a, b| {
        (&a.kind, &a.from.kind, &a.from.id, &a.to.kind, &a.to.id).cmp(&(
            &b.kind,
            &b.from.kind,
            &b.from.id,
            &b.to.kind,
            &b.to.id,
        ))
    });
    let rel = Relationship {
        parent_ref: (!input.session_id.is_empty())
            .then(|| NodeRef::new("session", input.session_id)),
        related_entity_ids: entity_ids(&entity_refs),
        entity_refs,
        policy_ref,
        agent_chain: chain,
        edges,
        parent_record_id: input.session_id.to_string(),
        ..Relationship::default()
    };
    (!rel.is_empty()).then_some(rel)
}

/// The checkpoint relationship envelope (sessions.md §2.3).
pub fn checkpoint_relationship(
    session_id: &str,
    run_id: &str,
    cp_run: &str,
    checkpoint_digest: &str,
    manifest_digest: &str,
) -> Relationship {
    let entity_refs = sorted_refs(vec![
        NodeRef::new("evidence", checkpoint_digest),
        NodeRef::new("evidence", manifest_digest),
        NodeRef::new("run", run_id),
        NodeRef::new("run", cp_run),
    ]);
    Relationship {
        parent_ref: Some(NodeRef::new("session", session_id)),
        related_entity_ids: entity_ids(&entity_refs),
        entity_refs,
        edges: vec![Edge {
            kind: "derived_from".into(),
            from: NodeRef::new("evidence", checkpoint_digest),
            to: NodeRef::new("run", cp_run),
        }],
        parent_record_id: session_id.to_string(),
        ..Relationship::default()
    }
}
