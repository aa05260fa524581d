//! `mcp_trust` (gate.md §8): offline MCP-server admission from a local trust snapshot.
//!
//! Invariant: [`SnapshotCache`] is the only I/O; it re-reads the snapshot only when the file's
//! (mtime, len) changed, and stats it at most once per `recheck` interval, so the request path
//! does no file I/O in the steady state. [`decide`] and [`apply`] are pure.
//!
//! Deliberate difference from Go (docs/compat.md): trust `required` is computed from the
//! *defaulted* risk class (`high` when the call has no context) unless
//! [`RequiredFrom::RawGo`] is chosen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::McpTrustPolicy;
use super::eval::Evaluation;
use crate::Verdict;
use crate::intent::GoTime;

pub const TRUST_SNAPSHOT_SCHEMA_ID: &str = "gait.mcp.trust_snapshot";
pub const TRUST_SNAPSHOT_SCHEMA_VERSION: &str = "1.0.0";
const MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RegistryVerification {
    #[serde(default)]
    pub signature_verified: bool,
    #[serde(default)]
    pub publisher_allowed: bool,
    #[serde(default)]
    pub pin_present: bool,
    #[serde(default)]
    pub pin_verified: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TrustEntry {
    #[serde(default)]
    pub server_id: String,
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub publisher: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub updated_at: GoTime,
    #[serde(default)]
    pub score: f64,
    #[serde(default)]
    pub evidence_path: String,
    #[serde(default)]
    pub registry_verification: Option<RegistryVerification>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TrustSnapshotFile {
    #[serde(default)]
    pub schema_id: String,
    #[serde(default)]
    pub schema_version: String,
    #[serde(default)]
    pub created_at: GoTime,
    #[serde(default)]
    pub producer_version: String,
    #[serde(default)]
    pub entries: Vec<TrustEntry>,
}

/// A validated snapshot indexed by lower(server_id) else lower(server_name).
#[derive(Debug, Clone, Default)]
pub struct TrustSnapshot {
    pub path: String,
    by_key: HashMap<String, TrustEntry>,
}

impl TrustSnapshot {
    /// Validate and index snapshot JSON. `Err` means the snapshot is *invalid*.
    pub fn from_json_slice(path: &str, bytes: &[u8]) -> Result<TrustSnapshot, String> {
        let file: TrustSnapshotFile =
            serde_json::from_slice(bytes).map_err(|e| format!("parse trust snapshot: {e}"))?;
        let id = file.schema_id.trim();
        if !id.is_empty() && id != TRUST_SNAPSHOT_SCHEMA_ID {
            return Err(format!("unsupported trust snapshot schema_id: {id}"));
        }
        let ver = file.schema_version.trim();
        if !ver.is_empty() && ver != TRUST_SNAPSHOT_SCHEMA_VERSION {
            return Err(format!("unsupported trust snapshot schema_version: {ver}"));
        }
        let mut by_key = HashMap::with_capacity(file.entries.len());
        for e in file.entries {
            let key = entry_key(&e.server_id, &e.server_name);
            if key.is_empty() {
                return Err("trust snapshot entry has no server_id or server_name".into());
            }
            if by_key.insert(key.clone(), e).is_some() {
                return Err(format!("trust snapshot has duplicate entry {key}"));
            }
        }
        Ok(TrustSnapshot {
            path: path.to_string(),
            by_key,
        })
    }

    pub fn get(&self, key: &str) -> Option<&TrustEntry> {
        self.by_key.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

fn entry_key(id: &str, name: &str) -> String {
    let id = id.trim().to_lowercase();
    if id.is_empty() {
        name.trim().to_lowercase()
    } else {
        id
    }
}

/// What loading the snapshot gave.
#[derive(Debug, Clone)]
pub enum SnapshotState {
    Loaded(Arc<TrustSnapshot>),
    /// Unreadable (missing file, permissions…): status `missing`.
    Unavailable(String),
    /// Readable but invalid: status `invalid`.
    Invalid(String),
}

/// Read a snapshot once, uncached.
pub fn load_snapshot(path: &Path) -> SnapshotState {
    use std::io::Read;
    let shown = path.display().to_string();
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SNAPSHOT_BYTES + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return SnapshotState::Unavailable(format!("read trust snapshot {shown}: {e}"));
    }
    if bytes.len() as u64 > MAX_SNAPSHOT_BYTES {
        return SnapshotState::Invalid(format!("trust snapshot {shown} is too large"));
    }
    match TrustSnapshot::from_json_slice(&shown, &bytes) {
        Ok(s) => SnapshotState::Loaded(Arc::new(s)),
        Err(e) => SnapshotState::Invalid(e),
    }
}

type FileKey = Option<(SystemTime, u64)>;

struct CacheInner {
    key: FileKey,
    checked: Option<Instant>,
    state: SnapshotState,
}

/// Snapshot cache keyed by (path, mtime, len).
pub struct SnapshotCache {
    path: PathBuf,
    recheck: Duration,
    inner: Mutex<Option<CacheInner>>,
}

impl SnapshotCache {
    /// `recheck`: the file is stat'ed at most once per interval (`Duration::ZERO` = every call).
    pub fn new(path: impl Into<PathBuf>, recheck: Duration) -> Self {
        SnapshotCache {
            path: path.into(),
            recheck,
            inner: Mutex::new(None),
        }
    }

    /// A cache for the policy's `mcp_trust.snapshot` (resolved against the working directory,
    /// as Go does), or `None` when `mcp_trust` is not enabled.
    pub fn for_policy(policy: &super::Policy, recheck: Duration) -> Option<Self> {
        policy
            .mcp_trust()
            .map(|t| SnapshotCache::new(PathBuf::from(&t.snapshot), recheck))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_key(&self) -> FileKey {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// The current snapshot state, reloading only when the file changed.
    pub fn get(&self) -> SnapshotState {
        let now = Instant::now();
        let mut guard = self.inner.lock();
        if let Some(c) = guard.as_ref()
            && c.checked
                .is_some_and(|t| now.duration_since(t) < self.recheck)
        {
            return c.state.clone();
        }
        let key = self.file_key();
        if let Some(c) = guard.as_mut()
            && key.is_some()
            && c.key == key
        {
            c.checked = Some(now);
            return c.state.clone();
        }
        let state = load_snapshot(&self.path);
        *guard = Some(CacheInner {
            key,
            checked: Some(now),
            state: state.clone(),
        });
        state
    }
}

/// The `call.server` object of an MCP payload (the adapter's type).
pub type ServerRef = crate::intent::adapters::ServerInfo;

/// Which risk class decides `required`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequiredFrom {
    /// The normalised intent's risk class (defaults to `high`). gait's default.
    #[default]
    Defaulted,
    /// Go's behaviour: the raw `call.context.risk_class` (empty when absent → not required).
    RawGo,
}

/// The §8 decision object (trace and output `mcp_trust`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrustDecision {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub publisher: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub decision_source: String,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub score: f64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub threshold: f64,
    pub updated_at: GoTime,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_age_seconds: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub enforced: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub registry_verified: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub publisher_allowed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
}

use crate::intent::types::{is_false, is_zero as is_zero_i64, is_zero_f64};

/// Decide admission for one call. `raw_risk_class` is `call.context.risk_class` as sent;
/// `defaulted_risk_class` is the normalised intent's.
pub fn decide(
    policy: &McpTrustPolicy,
    snapshot: &SnapshotState,
    server: Option<&ServerRef>,
    raw_risk_class: &str,
    defaulted_risk_class: &str,
    required_from: RequiredFrom,
    now: DateTime<Utc>,
) -> TrustDecision {
    let risk = match required_from {
        RequiredFrom::Defaulted => defaulted_risk_class,
        RequiredFrom::RawGo => raw_risk_class,
    }
    .trim()
    .to_lowercase();
    let required = policy.required_risk_classes.contains(&risk);
    let empty = ServerRef::default();
    let server = server.unwrap_or(&empty);
    let mut d = TrustDecision {
        server_id: server.server_id.trim().to_string(),
        server_name: server.server_name.trim().to_string(),
        publisher: server.publisher.trim().to_lowercase(),
        source: server.source.trim().to_lowercase(),
        decision_source: policy.snapshot.clone(),
        threshold: policy.min_score,
        max_age_seconds: policy.max_age_nanos.max(0) / 1_000_000_000,
        required,
        ..TrustDecision::default()
    };
    let finish = |d: &mut TrustDecision, status: &str, reasons: Vec<String>| {
        d.status = status.to_string();
        d.reason_codes = reasons;
        d.reason_codes.sort();
        d.reason_codes.dedup();
        d.enforced = d.required && status != "trusted";
    };
    // Go looks entries up by one key: lower(server_id), else lower(server_name).
    let key = entry_key(&server.server_id, &server.server_name);
    if key.is_empty() {
        finish(
            &mut d,
            "missing",
            vec!["mcp_trust_identifier_missing".into()],
        );
        return d;
    }
    let snap = match snapshot {
        SnapshotState::Loaded(s) => s,
        SnapshotState::Unavailable(_) => {
            finish(
                &mut d,
                "missing",
                vec!["mcp_trust_snapshot_unavailable".into()],
            );
            return d;
        }
        SnapshotState::Invalid(_) => {
            finish(&mut d, "invalid", vec!["mcp_trust_snapshot_invalid".into()]);
            return d;
        }
    };
    let Some(e) = snap.get(&key) else {
        finish(&mut d, "unknown", vec!["mcp_trust_server_unknown".into()]);
        return d;
    };
    d.server_id = e.server_id.trim().to_string();
    d.server_name = e.server_name.trim().to_string();
    d.publisher = e.publisher.trim().to_lowercase();
    d.source = e.source.trim().to_lowercase();
    d.score = e.score;
    d.updated_at = e.updated_at.to_utc();
    if !e.evidence_path.trim().is_empty() {
        d.decision_source = e.evidence_path.trim().to_string();
    }
    // As in Go, `publisher_allowed` / `registry_verified` are only computed when the policy
    // asks for them (and are omitted from the decision otherwise).
    if !policy.publisher_allowlist.is_empty() {
        d.publisher_allowed = policy.publisher_allowlist.contains(&d.publisher);
    }
    if policy.require_registry {
        d.registry_verified = e.registry_verification.as_ref().is_some_and(|r| {
            r.signature_verified && r.publisher_allowed && (!r.pin_present || r.pin_verified)
        });
    }
    let mut reasons: Vec<(&str, &str)> = Vec::new();
    if !matches!(
        e.status.trim().to_lowercase().as_str(),
        "" | "trusted" | "allow" | "pass"
    ) {
        reasons.push(("mcp_trust_status_untrusted", "untrusted"));
    }
    if !policy.publisher_allowlist.is_empty() && !d.publisher_allowed {
        reasons.push(("mcp_trust_publisher_untrusted", "untrusted"));
    }
    if policy.require_registry && !d.registry_verified {
        reasons.push(("mcp_trust_registry_unverified", "invalid"));
    }
    if d.max_age_seconds > 0 {
        // Go: stale when updated_at is zero or updated_at + max_age (whole seconds) < now.
        let stale = match e.updated_at.get() {
            None => true,
            Some(t) => t.with_timezone(&Utc) + chrono::Duration::seconds(d.max_age_seconds) < now,
        };
        if stale {
            reasons.push(("mcp_trust_stale", "stale"));
        }
    }
    if policy.min_score > 0.0 && e.score < policy.min_score {
        reasons.push(("mcp_trust_below_threshold", "below_threshold"));
    }
    match reasons.first() {
        None => finish(&mut d, "trusted", vec!["mcp_trust_verified".into()]),
        Some((_, status)) => {
            let status = status.to_string();
            let codes = reasons.iter().map(|(c, _)| c.to_string()).collect();
            finish(&mut d, &status, codes);
        }
    }
    d
}

/// Merge a trust decision into an evaluation: reason codes always; when enforced the verdict
/// becomes the more restrictive of the current one and `action` (an existing `dry_run` is kept,
/// as in Go) and violation `mcp_trust_policy` is added.
pub fn apply(eval: &mut Evaluation, decision: &TrustDecision, action: Verdict) {
    let mut r = std::mem::take(&mut eval.reason_codes);
    r.extend(decision.reason_codes.iter().cloned());
    r.sort();
    r.dedup();
    eval.reason_codes = r;
    if decision.enforced {
        if eval.verdict != Verdict::DryRun {
            eval.verdict = eval.verdict.max(action);
        }
        if !eval.violations.iter().any(|v| v == "mcp_trust_policy") {
            eval.violations.push("mcp_trust_policy".to_string());
            eval.violations.sort();
        }
        if eval.verdict != Verdict::RequireApproval {
            eval.min_approvals = 0;
        } else if eval.min_approvals == 0 {
            eval.min_approvals = 1;
        }
    }
}
