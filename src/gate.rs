//! The decision pipeline shared by `gate eval`, `mcp proxy`, the evaluate API and the inline
//! proxy gate: payload → intent → policy (+ kill switch, `mcp_trust`, emergency stop) →
//! verdict → signed trace record.
//!
//! Invariant: evaluation never does network I/O and never writes files; it reads only the
//! kill-switch state, the trust snapshot (cached) and a job's state when the call names one.
//! The one exception is `gate eval`'s rate-limit state file ([`limits`]), written only when
//! [`IntentOptions::rate_limit_state`] is set.
//! Writing the trace and the exports is the caller's separate step (the server hands them to a
//! background writer). Every failure is a [`GateError`] whose [`GateError::category`] gives the
//! exit code (6 for bad input), never a panic.

pub mod limits;

use crate::exit::Category;
use crate::intent::adapters::Adapter;
use crate::intent::{self, GoTime, IntentError, IntentRequest, NormalizedIntent, ToolCall};
use crate::policy::trust::{self, RequiredFrom, ServerRef, SnapshotCache};
use crate::policy::{self, EvalOptions, Evaluation, KillSwitchInput, Policy, PolicyError};
use crate::trace::{
    self, DEV_KEY_WARNING, DecisionExport, DelegationRef, KeyConfig, KeyMode, KillSwitchDecision,
    McpTrustDecision, Relationship, RelationshipInput, Signer, TraceError, TraceRecord,
};
use crate::{Profile, Verdict};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Default job-runtime root (`--job-root`).
pub const DEFAULT_JOB_ROOT: &str = "./gait-out/jobs";
/// Largest job state file read for the emergency-stop check.
const MAX_JOB_STATE_BYTES: u64 = 1024 * 1024;
/// How often the trust snapshot file is re-stat'ed.
const TRUST_RECHECK: Duration = Duration::from_secs(1);

/// Every way a gate decision can fail (all are "the request could not be evaluated").
#[derive(Debug, Error)]
pub enum GateError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Intent(#[from] IntentError),
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A usage or profile rule was violated.
    #[error("{0}")]
    Invalid(String),
    /// A shared state file stayed locked by another process (retryable).
    #[error("{0}")]
    Contention(String),
}

impl GateError {
    /// Error category (exit code) of the failure.
    pub fn category(&self) -> Category {
        match self {
            GateError::Policy(PolicyError::Read { .. }) => Category::InvalidInput,
            GateError::Policy(_) | GateError::Intent(_) | GateError::Invalid(_) => {
                Category::InvalidInput
            }
            GateError::Trace(e) => e.category(),
            GateError::Contention(_) => Category::StateContention,
        }
    }

    /// The `migration` array of a legacy-policy error.
    pub fn migration(&self) -> Option<&[String]> {
        match self {
            GateError::Policy(PolicyError::Legacy { migration, .. }) => Some(migration),
            _ => None,
        }
    }
}

/// How an [`Engine`] is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub profile: Profile,
    pub keys: KeyConfig,
    /// `--kill-switch-state`; re-read on every evaluation.
    pub kill_switch_state: Option<PathBuf>,
    /// `--job-root` for the emergency-stop check (default `./gait-out/jobs`).
    pub job_root: Option<PathBuf>,
    /// Which risk class decides `mcp_trust.required`. Default: Go's raw call risk class.
    pub trust_required_from: RequiredFrom,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            profile: Profile::Standard,
            keys: KeyConfig::default(),
            kill_switch_state: None,
            job_root: None,
            trust_required_from: RequiredFrom::RawGo,
        }
    }
}

/// Per-call options of [`Engine::evaluate_call`].
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Caller-supplied run id (`--run-id`, request `run_id`).
    pub run_id: Option<String>,
    /// Evaluation time (default: now).
    pub now: Option<DateTime<Utc>>,
    /// Sign the trace record (default true).
    pub sign: bool,
    /// The caller renders only the trace, not [`McpDecision`]: its `relationship` (a copy of
    /// the trace's, ~30 allocations) is left `None` (default false).
    pub lean_output: bool,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            run_id: None,
            now: None,
            sign: true,
            lean_output: false,
        }
    }
}

/// Per-call options of [`Engine::evaluate_intent`].
#[derive(Debug, Clone)]
pub struct IntentOptions {
    /// `--evaluation-time` (default: now).
    pub now: Option<DateTime<Utc>>,
    /// The CLI correlation id, written into the trace.
    pub correlation_id: String,
    /// Sign the trace record (default true).
    pub sign: bool,
    /// `--rate-limit-state`: count `rate_limit` / `destructive_budget` in this file. `None`
    /// leaves them uncounted (with a warning).
    pub rate_limit_state: Option<PathBuf>,
    /// `--simulate`: report what would happen, enforce nothing, consume no budget.
    pub simulate: bool,
}

impl Default for IntentOptions {
    fn default() -> Self {
        IntentOptions {
            now: None,
            correlation_id: String::new(),
            sign: true,
            rate_limit_state: None,
            simulate: false,
        }
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `mcpProxyOutput` (gate.md §6.4) in Go struct order; `ok` and `executed` always present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpDecision {
    pub ok: bool,
    pub executed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub adapter: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub job_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy_digest: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy_version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_rule_ids: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub intent_digest: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub decision_latency_ms: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub runpack_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pack_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pack_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub log_export: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub otel_export: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<KillSwitchDecision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_trust: Option<McpTrustDecision>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl McpDecision {
    /// Exit code / serve `exit_code`: block 3, require_approval 4, allow and dry_run 0.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }
}

/// A gate decision on a tool call: the output object and the (signed) trace record.
#[derive(Debug, Clone)]
pub struct CallDecision {
    pub output: McpDecision,
    pub trace: TraceRecord,
    /// The most restrictive `rate_limit` of the matched rules (counted by `mcp serve`).
    pub rate_limit: Option<policy::RateLimitSpec>,
}

impl CallDecision {
    /// The facts the JSONL exporters write (§7.1).
    pub fn export(&self) -> DecisionExport {
        let (delegation_ref, delegation_depth) = match &self.trace.delegation_ref {
            Some(d) if !d.delegation_token_ref.is_empty() => {
                (d.delegation_token_ref.clone(), d.delegation_depth)
            }
            Some(d) => (d.chain_digest.clone(), d.delegation_depth),
            None => (String::new(), 0),
        };
        DecisionExport {
            created_at: self.trace.created_at,
            run_id: self.output.run_id.clone(),
            session_id: self.output.session_id.clone(),
            trace_id: self.output.trace_id.clone(),
            trace_path: self.output.trace_path.clone(),
            tool_name: self.output.tool_name.clone(),
            verdict: self.output.verdict.as_str().to_string(),
            reason_codes: self.output.reason_codes.clone(),
            policy_digest: self.output.policy_digest.clone(),
            intent_digest: self.output.intent_digest.clone(),
            decision_latency_ms: self.output.decision_latency_ms,
            delegation_ref,
            delegation_depth,
        }
    }
}

/// `gait.gate.result` (gate.md §5.1): lists always present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    pub schema_id: String,
    pub schema_version: String,
    pub created_at: GoTime,
    pub producer_version: String,
    pub verdict: Verdict,
    pub reason_codes: Vec<String>,
    pub violations: Vec<String>,
}

/// The `gate eval` output fields this build produces (a subset of `gateEvalOutput`, §6.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateEvalOutput {
    pub ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub profile: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub required_approvals: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy_digest: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub intent_digest: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub script: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub step_count: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub script_hash: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub composite_risk_class: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub step_verdicts: Vec<trace::StepVerdict>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub matched_rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_window: Option<trace::FreezeWindowDecision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<trace::SandboxDecision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<KillSwitchDecision>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<LimitFields>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub destructive_budget: Option<BudgetFields>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulate_mode: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub would_have_blocked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated_verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub simulated_reason_codes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `rate_limit_{scope,key,used,remaining}` of a counted call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitFields {
    pub rate_limit_scope: String,
    pub rate_limit_key: String,
    pub rate_limit_used: u64,
    pub rate_limit_remaining: u64,
}

/// `destructive_budget_{scope,key,used,remaining}` of a counted destructive call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetFields {
    pub destructive_budget_scope: String,
    pub destructive_budget_key: String,
    pub destructive_budget_used: u64,
    pub destructive_budget_remaining: u64,
}

/// A `gate eval` decision.
#[derive(Debug, Clone)]
pub struct IntentDecision {
    pub output: GateEvalOutput,
    pub result: GateResult,
    pub trace: TraceRecord,
}

/// The compiled policy plus everything needed to decide and sign. Cheap to share (`Arc`).
pub struct Engine {
    policy: Arc<Policy>,
    profile: Profile,
    signer: Signer,
    kill_switch_state: Option<PathBuf>,
    job_root: PathBuf,
    trust_cache: Option<SnapshotCache>,
    trust_required_from: RequiredFrom,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policy_digest", &self.policy.digest())
            .field("profile", &self.profile)
            .field("signer", &self.signer)
            .field("kill_switch_state", &self.kill_switch_state)
            .field("job_root", &self.job_root)
            .finish_non_exhaustive()
    }
}

/// The intent facts a trace record is built from.
struct TraceInputs<'a> {
    req: &'a IntentRequest,
    tool_name: &'a str,
    intent_digest: &'a str,
    args_digest: &'a str,
    script_hash: &'a str,
}

impl<'a> TraceInputs<'a> {
    fn of(norm: &'a NormalizedIntent) -> Self {
        TraceInputs {
            req: norm.request(),
            tool_name: norm.tool_name(),
            intent_digest: norm.intent_digest(),
            args_digest: norm.args_digest(),
            script_hash: norm.script_hash().unwrap_or_default(),
        }
    }
}

/// Convert between two serde shapes of the same JSON object (the policy module's decision
/// types and the trace module's record types share their Go field sets).
fn reshape<T: Serialize, U: serde::de::DeserializeOwned>(v: &T) -> Option<U> {
    serde_json::to_value(v)
        .ok()
        .and_then(|x| serde_json::from_value(x).ok())
}

fn merge_sorted(into: &mut Vec<String>, add: &[&str]) {
    for a in add {
        into.push((*a).to_string());
    }
    into.sort();
    into.dedup();
}

/// Force `block` with extra reasons/violations (emergency stop, gate-eval token checks).
fn escalate(eval: &mut Evaluation, verdict: Verdict, reasons: &[&str], violations: &[&str]) {
    eval.verdict = eval.verdict.max(verdict);
    merge_sorted(&mut eval.reason_codes, reasons);
    merge_sorted(&mut eval.violations, violations);
    if eval.verdict != Verdict::RequireApproval {
        eval.min_approvals = 0;
    }
}

/// `created_at` of a decision: the intent's, or 1980-01-01 when unset (§5.1).
fn decision_created_at(req: &IntentRequest) -> GoTime {
    if req.created_at.is_zero() {
        GoTime::epoch_1980()
    } else {
        req.created_at.to_utc()
    }
}

impl Engine {
    /// Build an engine: checks the policy against the profile and builds the signer.
    pub fn new(policy: Arc<Policy>, cfg: EngineConfig) -> Result<Engine, GateError> {
        if cfg.profile == Profile::OssProd && cfg.keys.mode != KeyMode::Prod {
            return Err(GateError::Invalid(
                "oss-prod profile requires --key-mode prod".into(),
            ));
        }
        let signer = Signer::from_config(&cfg.keys)?;
        Self::with_signer(policy, cfg, signer)
    }

    /// Build an engine around an existing signer (the server keeps one per process).
    pub fn with_signer(
        policy: Arc<Policy>,
        cfg: EngineConfig,
        signer: Signer,
    ) -> Result<Engine, GateError> {
        policy.check_profile(cfg.profile)?;
        let trust_cache = policy
            .mcp_trust()
            .map(|t| SnapshotCache::new(PathBuf::from(&t.snapshot), TRUST_RECHECK));
        Ok(Engine {
            policy,
            profile: cfg.profile,
            signer,
            kill_switch_state: cfg.kill_switch_state,
            job_root: cfg
                .job_root
                .unwrap_or_else(|| PathBuf::from(DEFAULT_JOB_ROOT)),
            trust_cache,
            trust_required_from: cfg.trust_required_from,
        })
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    fn kill_switch_input(&self) -> KillSwitchInput {
        match &self.kill_switch_state {
            None => KillSwitchInput::NotConfigured,
            Some(path) => match policy::KillSwitchState::load(path) {
                Ok(state) => KillSwitchInput::Loaded(Arc::new(state)),
                Err(e) => KillSwitchInput::Unavailable(e.to_string()),
            },
        }
    }

    /// Decode a raw payload with `adapter` and evaluate it (§6.4 / §7).
    pub fn evaluate_call(
        &self,
        adapter: Adapter,
        payload: &Value,
        opts: &CallOptions,
    ) -> Result<CallDecision, GateError> {
        let start = Instant::now();
        let call = intent::decode_call(adapter, payload)?;
        self.decide_call(adapter, &call, opts, start)
    }

    /// Decode raw payload bytes (one JSON document) with `adapter` and evaluate them.
    pub fn evaluate_call_slice(
        &self,
        adapter: Adapter,
        payload: &[u8],
        opts: &CallOptions,
    ) -> Result<CallDecision, GateError> {
        let start = Instant::now();
        let call = intent::adapters::decode_call_slice(adapter, payload)?;
        self.decide_call(adapter, &call, opts, start)
    }

    /// Evaluate an already decoded tool call.
    pub fn evaluate_tool_call(
        &self,
        adapter: Adapter,
        call: &ToolCall,
        opts: &CallOptions,
    ) -> Result<CallDecision, GateError> {
        self.decide_call(adapter, call, opts, Instant::now())
    }

    fn decide_call(
        &self,
        adapter: Adapter,
        call: &ToolCall,
        opts: &CallOptions,
        start: Instant,
    ) -> Result<CallDecision, GateError> {
        let now = opts.now.unwrap_or_else(Utc::now);
        if !call.context.context_envelope_path.trim().is_empty() {
            return Err(GateError::Invalid(
                "call.context.context_envelope_path is not supported; use --context-envelope"
                    .into(),
            ));
        }
        let (mut req, intent_warnings) = intent::intent_from_call(call, self.profile)?;
        intent::strip_unverified_context_claims(&mut req);
        let norm = intent::normalize(&req)?;
        let mut eval = self.policy.evaluate_request(
            norm.request(),
            &EvalOptions {
                now,
                profile: self.profile,
                kill_switch: self.kill_switch_input(),
            },
        );

        let mut warnings = Vec::new();
        if self.signer.is_ephemeral() && opts.sign {
            warnings.push(DEV_KEY_WARNING.to_string());
        }
        warnings.extend(intent_warnings);

        // §2 step 8: mcp_trust, then the emergency stop.
        let mut trust_out = None;
        if let (Some(tp), Some(cache)) = (self.policy.mcp_trust(), &self.trust_cache) {
            let snapshot = cache.get();
            let server = call.server.as_ref().map(|s| ServerRef {
                server_id: s.server_id.clone(),
                server_name: s.server_name.clone(),
                publisher: s.publisher.clone(),
                source: s.source.clone(),
                endpoint: s.endpoint.clone(),
            });
            let decision = trust::decide(
                tp,
                &snapshot,
                server.as_ref(),
                call.raw_risk_class(),
                norm.risk_class(),
                self.trust_required_from,
                now,
            );
            trust::apply(&mut eval, &decision, tp.action);
            trust_out = reshape::<_, McpTrustDecision>(&decision);
        }
        let job_id = norm.context().job_id.trim().to_string();
        if !job_id.is_empty() {
            match job_status(&self.job_root, &job_id) {
                Ok(status) if status == "emergency_stopped" => escalate(
                    &mut eval,
                    Verdict::Block,
                    &["emergency_stop_preempted"],
                    &["emergency_stop_active"],
                ),
                Ok(_) => {}
                Err(e) => {
                    warnings.push(format!("job_status_unavailable={e}"));
                    escalate(
                        &mut eval,
                        Verdict::Block,
                        &["emergency_stop_state_unavailable"],
                        &["emergency_stop_active"],
                    );
                }
            }
        }

        let run_id = opts
            .run_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .or_else(|| Some(call.context.run_id.trim()).filter(|s| !s.is_empty()))
            .map(str::to_string)
            .unwrap_or_else(|| intent::default_run_id(norm.intent_digest()));

        let mut record = self.build_trace(&TraceInputs::of(&norm), &eval, trust_out.clone(), "");
        record.stamp_observed(Utc::now());
        if opts.sign {
            self.signer.sign_record(&mut record)?;
        }
        let ctx = norm.context();
        let output = McpDecision {
            ok: true,
            executed: false,
            adapter: adapter.as_str().to_string(),
            run_id,
            job_id,
            phase: ctx.phase.clone(),
            session_id: ctx.session_id.clone(),
            tool_name: norm.tool_name().to_string(),
            verdict: eval.verdict,
            reason_codes: eval.reason_codes.clone(),
            violations: eval.violations.clone(),
            policy_digest: self.policy.digest().to_string(),
            policy_id: self.policy.schema_id().to_string(),
            policy_version: self.policy.schema_version().to_string(),
            matched_rule_ids: record.matched_rule_ids.clone(),
            intent_digest: norm.intent_digest().to_string(),
            decision_latency_ms: i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX),
            trace_id: record.trace_id.clone(),
            trace_path: String::new(),
            runpack_path: String::new(),
            pack_path: String::new(),
            pack_id: String::new(),
            log_export: String::new(),
            otel_export: String::new(),
            kill_switch: record.kill_switch.clone(),
            mcp_trust: trust_out,
            warnings,
            relationship: if opts.lean_output {
                None
            } else {
                record.relationship.clone()
            },
            error: String::new(),
        };
        Ok(CallDecision {
            output,
            trace: record,
            rate_limit: eval.rate_limit.clone(),
        })
    }

    /// The unsigned trace record of a decision (§5.2 field rules).
    fn build_trace(
        &self,
        inputs: &TraceInputs<'_>,
        eval: &Evaluation,
        mcp_trust: Option<McpTrustDecision>,
        correlation_id: &str,
    ) -> TraceRecord {
        let req = inputs.req;
        let ctx = &req.context;
        let verdict = eval.verdict.as_str();
        let policy_digest = self.policy.digest();
        let trace_id = trace::trace_id(policy_digest, inputs.intent_digest, verdict);
        let (step_verdicts, step_count, composite) = match &eval.script {
            Some(s) => (
                s.step_verdicts
                    .iter()
                    .filter_map(reshape::<_, trace::StepVerdict>)
                    .collect::<Vec<_>>(),
                i64::try_from(s.step_count).unwrap_or(i64::MAX),
                s.composite_risk_class.clone(),
            ),
            None => (Vec::new(), 0, String::new()),
        };
        let mut matched_rule_ids: Vec<String> = step_verdicts
            .iter()
            .flat_map(|s| s.matched_rule.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        matched_rule_ids.sort();
        matched_rule_ids.dedup();
        let hops: Vec<(String, String)> = req
            .delegation
            .as_ref()
            .map(|d| {
                d.chain
                    .iter()
                    .map(|l| (l.delegator_identity.clone(), l.delegate_identity.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let delegation_ref = req.delegation.as_ref().map(|d| DelegationRef {
            requester_identity: d.requester_identity.clone(),
            delegation_depth: i64::try_from(d.chain.len()).unwrap_or(i64::MAX),
            scope_class: d.scope_class.clone(),
            chain_digest: crate::canon::digest_of(d).unwrap_or_default(),
            ..DelegationRef::default()
        });
        let relationship = Relationship::for_decision(&RelationshipInput {
            session_id: &ctx.session_id,
            identity: &ctx.identity,
            tool_name: inputs.tool_name,
            trace_id: &trace_id,
            policy_id: self.policy.schema_id(),
            policy_version: self.policy.schema_version(),
            policy_digest,
            matched_rule_ids: &matched_rule_ids,
            delegation_hops: &hops,
            delegation_requester: req
                .delegation
                .as_ref()
                .map(|d| d.requester_identity.as_str())
                .unwrap_or(""),
        });
        TraceRecord {
            schema_id: trace::TRACE_SCHEMA_ID.into(),
            schema_version: trace::TRACE_SCHEMA_VERSION.into(),
            created_at: decision_created_at(req),
            producer_version: crate::VERSION.into(),
            trace_id,
            correlation_id: correlation_id.to_string(),
            tool_name: inputs.tool_name.to_string(),
            args_digest: inputs.args_digest.to_string(),
            intent_digest: inputs.intent_digest.to_string(),
            policy_digest: policy_digest.to_string(),
            agent_id: ctx.agent_id.clone(),
            agent_identity: ctx.agent_identity.clone(),
            run_id: ctx.run_id.clone(),
            workflow_id: ctx.workflow_id.clone(),
            repo: ctx.repo.clone(),
            environment: ctx.environment.clone(),
            credential_ref: ctx.credential_ref.clone(),
            credential_source: ctx.credential_source.clone(),
            credential_access_type: ctx.credential_access_type.clone(),
            credential_issuer: ctx.credential_issuer.clone(),
            credential_subject: ctx.credential_subject.clone(),
            credential_owner: ctx.credential_owner.clone(),
            credential_target_binding: ctx.credential_target_binding.clone(),
            credential_run_binding: ctx.credential_run_binding.clone(),
            credential_job_binding: ctx.credential_job_binding.clone(),
            credential_ttl_seconds: ctx.credential_ttl_seconds,
            approval_ref: ctx.approval_ref.clone(),
            wrkr_inventory_ref: ctx.wrkr_inventory_ref.clone(),
            agent_action_bom_ref: ctx.agent_action_bom_ref.clone(),
            policy_id: self.policy.schema_id().to_string(),
            policy_version: self.policy.schema_version().to_string(),
            matched_rule_ids,
            verdict: verdict.to_string(),
            context_set_digest: ctx.context_set_digest.clone(),
            context_evidence_mode: ctx.context_evidence_mode.clone(),
            context_ref_count: i64::try_from(ctx.context_refs.len()).unwrap_or(i64::MAX),
            script: eval.script.is_some(),
            step_count,
            script_hash: inputs.script_hash.to_string(),
            composite_risk_class: composite,
            step_verdicts,
            violations: eval.violations.clone(),
            delegation_ref,
            freeze_window: eval.freeze_window.as_ref().and_then(reshape),
            sandbox: eval.sandbox.as_ref().and_then(reshape),
            kill_switch: eval.kill_switch.as_ref().and_then(reshape),
            mcp_trust,
            relationship: Some(relationship),
            skill_provenance: req.skill_provenance.clone(),
            ..TraceRecord::default()
        }
    }

    /// `gate eval` step 9 for `rate_limit` and `destructive_budget` (calls already blocked are
    /// not counted). Exceeding either blocks with `rate_limit_exceeded` /
    /// `destructive_budget_exceeded`.
    #[allow(clippy::type_complexity)]
    fn count_limits(
        &self,
        eval: &mut Evaluation,
        inputs: &TraceInputs<'_>,
        norm: Option<&NormalizedIntent>,
        now: DateTime<Utc>,
        opts: &IntentOptions,
        warnings: &mut Vec<String>,
    ) -> Result<(Option<LimitFields>, Option<BudgetFields>), GateError> {
        let rate = eval.rate_limit.clone().filter(|s| s.requests > 0);
        let destructive = norm.is_some_and(NormalizedIntent::has_destructive_target);
        let budget = eval
            .destructive_budget
            .clone()
            .filter(|s| s.requests > 0 && destructive);
        if eval.verdict == Verdict::Block || (rate.is_none() && budget.is_none()) {
            return Ok((None, None));
        }
        let Some(state) = &opts.rate_limit_state else {
            warnings.push(
                "rate_limit/destructive_budget were not counted (no rate limit state file)".into(),
            );
            return Ok((None, None));
        };
        let err = |e: limits::LimitError| match e {
            limits::LimitError::Contention(_) => GateError::Contention(e.to_string()),
            other => GateError::Invalid(other.to_string()),
        };
        let tool = inputs.tool_name;
        let identity = inputs.req.context.identity.trim();
        let consume = !opts.simulate;
        let mut rate_fields = None;
        if let Some(spec) = rate {
            let u = limits::enforce(state, &spec, tool, identity, now, consume).map_err(err)?;
            if !u.allowed {
                escalate(
                    eval,
                    Verdict::Block,
                    &["rate_limit_exceeded"],
                    &["rate_limit_exceeded"],
                );
            }
            rate_fields = Some(LimitFields {
                rate_limit_scope: u.scope,
                rate_limit_key: u.key,
                rate_limit_used: u.used,
                rate_limit_remaining: u.remaining,
            });
        }
        let mut budget_fields = None;
        if let Some(spec) = budget.filter(|_| eval.verdict != Verdict::Block) {
            let name = format!("destructive_budget|{tool}");
            let u = limits::enforce(state, &spec, &name, identity, now, consume).map_err(err)?;
            if !u.allowed {
                escalate(
                    eval,
                    Verdict::Block,
                    &["destructive_budget_exceeded"],
                    &["destructive_budget_exceeded"],
                );
            }
            budget_fields = Some(BudgetFields {
                destructive_budget_scope: u.scope,
                destructive_budget_key: u.key,
                destructive_budget_used: u.used,
                destructive_budget_remaining: u.remaining,
            });
        }
        Ok((rate_fields, budget_fields))
    }

    /// `gate eval` (§6.3) for one intent request. Approval, delegation tokens, credential
    /// brokers and rate-limit state are not supported by this build; their requirements are
    /// reported as missing (fail closed) or as a warning, never as satisfied.
    pub fn evaluate_intent(
        &self,
        request: &IntentRequest,
        opts: &IntentOptions,
    ) -> Result<IntentDecision, GateError> {
        let start = Instant::now();
        let now = opts.now.unwrap_or_else(Utc::now);
        check_intent_request(request)?;
        let mut req = request.clone();
        intent::strip_unverified_context_claims(&mut req);
        // §1.6: an intent that does not normalise blocks when fail_closed applies to its raw
        // risk class; its digests are then taken over the request as given.
        let (norm, mut eval) = match intent::normalize(&req) {
            Ok(n) => {
                let eval = self.policy.evaluate_request(
                    n.request(),
                    &EvalOptions {
                        now,
                        profile: self.profile,
                        kill_switch: self.kill_switch_input(),
                    },
                );
                (Some(n), eval)
            }
            Err(e) => {
                match policy::fail_closed_intent_invalid(&self.policy, &req.context.risk_class) {
                    Some(eval) => (None, eval),
                    None => return Err(e.into()),
                }
            }
        };
        let raw_digests;
        let inputs = match &norm {
            Some(n) => TraceInputs::of(n),
            None => {
                raw_digests = (
                    crate::canon::digest_of(&req).unwrap_or_default(),
                    crate::canon::digest(&Value::Object(req.args.clone())),
                );
                TraceInputs {
                    req: &req,
                    tool_name: req.tool_name.trim(),
                    intent_digest: &raw_digests.0,
                    args_digest: &raw_digests.1,
                    script_hash: "",
                }
            }
        };
        let mut warnings = Vec::new();
        if self.signer.is_ephemeral() && opts.sign {
            warnings.push(DEV_KEY_WARNING.to_string());
        }
        // §2 step 9: rate limit and destructive budget (state file), then tokens and brokers
        // (not supported by this build: their requirements stay unmet).
        let (rate_fields, budget_fields) =
            self.count_limits(&mut eval, &inputs, norm.as_ref(), now, opts, &mut warnings)?;
        if eval.require_delegation {
            escalate(
                &mut eval,
                Verdict::Block,
                &["delegation_token_missing"],
                &[],
            );
        }
        if eval.verdict == Verdict::RequireApproval {
            merge_sorted(&mut eval.reason_codes, &["approval_token_missing"]);
        }
        if eval.verdict == Verdict::Allow && eval.require_broker_credential {
            escalate(
                &mut eval,
                Verdict::Block,
                &["broker_credential_required", "broker_credential_missing"],
                &[],
            );
            warnings.push("credential brokers are not supported by this build".into());
        }
        let mut simulated = None;
        if opts.simulate {
            simulated = Some((eval.verdict, eval.reason_codes.clone()));
            if matches!(eval.verdict, Verdict::Block | Verdict::RequireApproval) {
                let r = format!("simulated_{}", eval.verdict.as_str());
                eval.verdict = Verdict::Allow;
                eval.violations.clear();
                eval.min_approvals = 0;
                merge_sorted(&mut eval.reason_codes, &[r.as_str()]);
            }
            merge_sorted(&mut eval.reason_codes, &["simulate_mode_non_enforcing"]);
        }
        let mut record = self.build_trace(&inputs, &eval, None, &opts.correlation_id);
        record.latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        record.stamp_observed(Utc::now());
        if opts.sign {
            self.signer.sign_record(&mut record)?;
        }
        let result = GateResult {
            schema_id: "gait.gate.result".into(),
            schema_version: "1.0.0".into(),
            created_at: record.created_at,
            producer_version: crate::VERSION.into(),
            verdict: eval.verdict,
            reason_codes: eval.reason_codes.clone(),
            violations: eval.violations.clone(),
        };
        let output = GateEvalOutput {
            ok: true,
            profile: self.profile.as_str().to_string(),
            verdict: eval.verdict,
            reason_codes: eval.reason_codes.clone(),
            violations: eval.violations.clone(),
            required_approvals: if eval.verdict == Verdict::RequireApproval {
                i64::from(eval.min_approvals.max(1))
            } else {
                0
            },
            trace_id: record.trace_id.clone(),
            trace_path: String::new(),
            policy_digest: record.policy_digest.clone(),
            intent_digest: record.intent_digest.clone(),
            script: record.script,
            step_count: record.step_count,
            script_hash: record.script_hash.clone(),
            composite_risk_class: record.composite_risk_class.clone(),
            step_verdicts: record.step_verdicts.clone(),
            matched_rule: eval.matched_rule.clone().unwrap_or_default(),
            freeze_window: record.freeze_window.clone(),
            sandbox: record.sandbox.clone(),
            kill_switch: record.kill_switch.clone(),
            phase: inputs.req.context.phase.clone(),
            rate_limit: rate_fields,
            destructive_budget: budget_fields,
            simulate_mode: opts.simulate,
            would_have_blocked: simulated
                .as_ref()
                .is_some_and(|(v, _)| matches!(v, Verdict::Block | Verdict::RequireApproval)),
            simulated_verdict: simulated.as_ref().map(|(v, _)| *v),
            simulated_reason_codes: simulated.map(|(_, r)| r).unwrap_or_default(),
            warnings,
        };
        Ok(IntentDecision {
            output,
            result,
            trace: record,
        })
    }
}

/// Reader checks on an IntentRequest beyond normalisation: the schema id/version and any
/// caller-supplied digests must be well formed (they are recomputed, but a malformed one means
/// the producer is broken; `gate_intent_request_invalid.json`).
pub fn check_intent_request(req: &IntentRequest) -> Result<(), GateError> {
    if !req.schema_id.is_empty() && req.schema_id != "gait.gate.intent_request" {
        return Err(GateError::Invalid(format!(
            "unsupported intent schema_id {:?}",
            crate::intent::error::one_line(&req.schema_id, 64)
        )));
    }
    if !req.schema_version.is_empty() && req.schema_version != "1.0.0" {
        return Err(GateError::Invalid(format!(
            "unsupported intent schema_version {:?}",
            crate::intent::error::one_line(&req.schema_version, 64)
        )));
    }
    for (name, v) in [
        ("args_digest", &req.args_digest),
        ("intent_digest", &req.intent_digest),
        ("script_hash", &req.script_hash),
    ] {
        if !v.is_empty() && !trace::record::is_hex64(v) {
            return Err(GateError::Invalid(format!(
                "intent {name} must be sha256 hex"
            )));
        }
    }
    Ok(())
}

/// Status of job `job_id` under `root` (`<root>/<job_id>/state.json`, Go's job runtime).
/// A job id that is not a single path component is treated as unreadable state.
fn job_status(root: &Path, job_id: &str) -> Result<String, String> {
    let safe = !job_id.contains(['/', '\\', '\0']) && job_id != "." && job_id != "..";
    if !safe {
        return Err(format!("invalid job_id {job_id:?}"));
    }
    let path = root.join(job_id).join("state.json");
    let bytes = trace::file::read_bounded(&path, MAX_JOB_STATE_BYTES).map_err(|e| match e {
        TraceError::Input { message, .. } if message.contains("No such file") => {
            "job not found".to_string()
        }
        other => other.to_string(),
    })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("parse job state: {e}"))?;
    if v.get("job_id")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err("invalid job state: missing job_id".into());
    }
    Ok(v.get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

#[cfg(test)]
mod tests;
