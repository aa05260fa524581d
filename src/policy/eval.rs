//! Policy evaluation (gate.md §2 steps 3–7) over a normalised intent.
//!
//! Invariant: pure and allocation-light: no I/O, no clock reads (time comes from
//! [`EvalOptions::now`]), never panics. Reason codes and violations in every output are sorted
//! and deduplicated.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use super::Policy;
use super::compile::{
    AgentIdentityRule, ContextEvidenceRule, CredentialRule, Dataflow, Endpoint, FailClosed,
    FreezeWindow, Match, RateLimitSpec, Rule, Sandbox, ToolAnnotationMatch,
};
use super::kill_switch::{KillSwitchDecision, KillSwitchState};
use crate::intent::{
    ArgProvenance, Delegation, GoTime, IntentContext, IntentRequest, NormalizedIntent,
    SkillProvenance, Target,
};
use crate::{Profile, Verdict};

/// Kill-switch state as the caller has it (§2 steps 4 and 7).
#[derive(Debug, Clone, Default)]
pub enum KillSwitchInput {
    /// No `--kill-switch-state` configured.
    #[default]
    NotConfigured,
    /// Configured and loaded.
    Loaded(Arc<KillSwitchState>),
    /// Configured but unreadable or invalid (the string says why).
    Unavailable(String),
}

/// Evaluation inputs besides policy and intent.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Evaluation time: freeze windows, agent expiry, kill-switch expiry.
    pub now: DateTime<Utc>,
    pub profile: Profile,
    pub kill_switch: KillSwitchInput,
}

impl EvalOptions {
    /// Standard profile, no kill switch, at `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        EvalOptions {
            now,
            profile: Profile::Standard,
            kill_switch: KillSwitchInput::NotConfigured,
        }
    }
}

/// Freeze-window decision object (trace / gate eval output `freeze_window`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FreezeWindowDecision {
    /// `inactive`, `active` or `invalid`.
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub effect: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub timezone: String,
    pub evaluated_at: GoTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub window_name: String,
    pub window_start: GoTime,
    pub window_end: GoTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason_code: String,
}

/// Sandbox decision object (trace / gate eval output `sandbox`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SandboxDecision {
    /// `valid`, `missing`, `disallowed` or `invalid`.
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub env_exposure_mode: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout_seconds: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filesystem_isolation: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub evidence_ref: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub evidence_digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
}

use crate::intent::types::is_zero;

/// One step of a script evaluation (`step_verdicts[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepVerdict {
    pub index: usize,
    pub tool_name: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub matched_rule: String,
}

/// Script-level details (§2 step 5).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSummary {
    pub step_count: usize,
    /// `low`, `medium` or `high`.
    pub composite_risk_class: String,
    pub step_verdicts: Vec<StepVerdict>,
}

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub reason_codes: Vec<String>,
    pub violations: Vec<String>,
    /// Sorted, comma-joined names of every rule in the matching tier (`None` on default).
    pub matched_rule: Option<String>,
    pub matched_rule_names: Vec<String>,
    /// Approvals needed; non-zero only when `verdict` is `require_approval`.
    pub min_approvals: u32,
    pub require_distinct_approvers: bool,
    pub require_broker_credential: bool,
    pub require_delegation: bool,
    pub broker_reference: String,
    pub broker_scopes: Vec<String>,
    pub rate_limit: Option<RateLimitSpec>,
    pub destructive_budget: Option<RateLimitSpec>,
    pub dataflow_triggered: bool,
    /// True when the result came from `fail_closed` (step 3).
    pub fail_closed: bool,
    pub freeze_window: Option<FreezeWindowDecision>,
    pub sandbox: Option<SandboxDecision>,
    pub kill_switch: Option<KillSwitchDecision>,
    pub script: Option<ScriptSummary>,
}

impl Evaluation {
    fn bare(verdict: Verdict, reasons: Vec<String>, violations: Vec<String>) -> Self {
        Evaluation {
            verdict,
            reason_codes: sorted(reasons),
            violations: sorted(violations),
            matched_rule: None,
            matched_rule_names: Vec::new(),
            min_approvals: 0,
            require_distinct_approvers: false,
            require_broker_credential: false,
            require_delegation: false,
            broker_reference: String::new(),
            broker_scopes: Vec::new(),
            rate_limit: None,
            destructive_budget: None,
            dataflow_triggered: false,
            fail_closed: false,
            freeze_window: None,
            sandbox: None,
            kill_switch: None,
            script: None,
        }
    }
}

/// Sort and dedupe; every producer already trims, so only empties are dropped.
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.retain(|s| !s.is_empty());
    v.sort_unstable();
    v.dedup();
    v
}

fn s(v: &str) -> String {
    v.to_string()
}

/// §1.6 last bullet: intent normalisation failed. Returns the fail_closed block when
/// fail_closed applies to the *raw* risk class (trimmed, lowercased), else `None` (the caller
/// reports the normalisation error, exit 6).
pub fn fail_closed_intent_invalid(policy: &Policy, raw_risk_class: &str) -> Option<Evaluation> {
    let risk = raw_risk_class.trim().to_lowercase();
    if !policy.fail_closed().applies_to(&risk) {
        return None;
    }
    let mut e = Evaluation::bare(
        Verdict::Block,
        vec![s("fail_closed_intent_invalid")],
        vec![s("intent_not_evaluable")],
    );
    e.fail_closed = true;
    Some(e)
}

/// The parts of an intent one single-tool evaluation looks at (a script step reuses the
/// top-level context, delegation and skill provenance).
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub tool_name: &'a str,
    pub targets: &'a [Target],
    pub arg_provenance: &'a [ArgProvenance],
    pub ctx: &'a IntentContext,
    pub skill: Option<&'a SkillProvenance>,
    pub delegation: Option<&'a Delegation>,
}

impl<'a> View<'a> {
    pub(crate) fn of(i: &'a IntentRequest) -> Self {
        View {
            tool_name: &i.tool_name,
            targets: &i.targets,
            arg_provenance: &i.arg_provenance,
            ctx: &i.context,
            skill: i.skill_provenance.as_ref(),
            delegation: i.delegation.as_ref(),
        }
    }
}

// === matching ===

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == v)
}

fn any_target(targets: &[Target], list: &[String], f: impl Fn(&Target) -> &str) -> bool {
    list.is_empty() || targets.iter().any(|t| has(list, f(t)))
}

fn context_string(ctx: &IntentContext, key: &str) -> String {
    match ctx.auth_context.get(key) {
        Some(Value::String(s)) => s.trim().to_lowercase(),
        _ => String::new(),
    }
}

fn context_selector(ctx: &IntentContext, list: &[String], key: &str) -> bool {
    if list.is_empty() {
        return true;
    }
    let v = context_string(ctx, key);
    !v.is_empty() && has(list, &v)
}

fn annotations_match(m: &ToolAnnotationMatch, targets: &[Target]) -> bool {
    let check = |want: Option<bool>, f: fn(&Target) -> bool| match want {
        None => true,
        Some(w) => targets.iter().any(|t| f(t) == w),
    };
    check(m.read_only_hint, |t| t.read_only_hint)
        && check(m.destructive_hint, |t| t.destructive_hint)
        && check(m.idempotent_hint, |t| t.idempotent_hint)
        && check(m.open_world_hint, |t| t.open_world_hint)
}

fn delegation_matches(m: &Match, d: Option<&Delegation>) -> bool {
    if !m.delegation_constrained() {
        return true;
    }
    let Some(d) = d else { return false };
    if let Some(max) = m.max_delegation_depth
        && d.chain.len() > max as usize
    {
        return false;
    }
    if !m.allowed_delegator_identities.is_empty()
        && !d
            .chain
            .iter()
            .any(|l| has(&m.allowed_delegator_identities, l.delegator_identity.trim()))
    {
        return false;
    }
    if !m.allowed_delegate_identities.is_empty()
        && !has(&m.allowed_delegate_identities, d.requester_identity.trim())
        && !d
            .chain
            .iter()
            .any(|l| has(&m.allowed_delegate_identities, l.delegate_identity.trim()))
    {
        return false;
    }
    if !m.delegation_scopes.is_empty()
        && !has(&m.delegation_scopes, &d.scope_class.trim().to_lowercase())
        && !d
            .chain
            .iter()
            .any(|l| has(&m.delegation_scopes, &l.scope_class.trim().to_lowercase()))
    {
        return false;
    }
    true
}

pub(crate) fn rule_matches(m: &Match, v: &View<'_>) -> bool {
    let ctx = v.ctx;
    if !m.tool_names.is_empty() && !has(&m.tool_names, v.tool_name) {
        return false;
    }
    if !m.risk_classes.is_empty() && !has(&m.risk_classes, &ctx.risk_class) {
        return false;
    }
    if !m.identities.is_empty() && !has(&m.identities, &ctx.identity) {
        return false;
    }
    if !m.workspace_prefixes.is_empty()
        && !m
            .workspace_prefixes
            .iter()
            .any(|p| ctx.workspace.starts_with(p.as_str()))
    {
        return false;
    }
    if !context_selector(ctx, &m.context_tool_names, "wrkr.tool_name")
        || !context_selector(ctx, &m.context_data_classes, "wrkr.data_class")
        || !context_selector(ctx, &m.context_endpoint_classes, "wrkr.endpoint_class")
        || !context_selector(ctx, &m.context_autonomy_levels, "wrkr.autonomy_level")
    {
        return false;
    }
    let t = v.targets;
    if !any_target(t, &m.target_kinds, |t| &t.kind)
        || !any_target(t, &m.target_values, |t| &t.value)
        || !any_target(t, &m.endpoint_classes, |t| &t.endpoint_class)
        || !any_target(t, &m.discovery_methods, |t| &t.discovery_method)
    {
        return false;
    }
    if !annotations_match(&m.tool_annotations, t) {
        return false;
    }
    if !m.skill_publishers.is_empty()
        && !v
            .skill
            .is_some_and(|s| has(&m.skill_publishers, &s.publisher.trim().to_lowercase()))
    {
        return false;
    }
    if !m.skill_sources.is_empty()
        && !v
            .skill
            .is_some_and(|s| has(&m.skill_sources, &s.source.trim().to_lowercase()))
    {
        return false;
    }
    if !any_target(t, &m.data_classes, |t| &t.sensitivity)
        || !any_target(t, &m.destination_kinds, |t| &t.kind)
        || !any_target(t, &m.destination_values, |t| &t.value)
        || !any_target(t, &m.destination_ops, |t| &t.operation)
    {
        return false;
    }
    if !m.provenance_sources.is_empty()
        && !v
            .arg_provenance
            .iter()
            .any(|p| has(&m.provenance_sources, &p.source))
    {
        return false;
    }
    delegation_matches(m, v.delegation)
}

// === overlays ===

/// Reasons and violations an overlay adds, plus the effect it asks for.
struct Overlay {
    effect: Verdict,
    reasons: Vec<String>,
    violations: Vec<String>,
}

fn dataflow_overlay(df: &Dataflow, v: &View<'_>) -> Option<Overlay> {
    if !v
        .arg_provenance
        .iter()
        .any(|p| has(&df.tainted_sources, &p.source))
    {
        return None;
    }
    if v.targets.is_empty() {
        return None;
    }
    let unfiltered = df.destination_kinds.is_empty()
        && df.destination_values.is_empty()
        && df.destination_operations.is_empty();
    let hit = if unfiltered {
        v.targets.iter().any(|t| {
            matches!(
                t.kind.as_str(),
                "host" | "url" | "bucket" | "queue" | "topic"
            )
        })
    } else {
        v.targets.iter().any(|t| {
            (df.destination_kinds.is_empty() || has(&df.destination_kinds, &t.kind))
                && (df.destination_values.is_empty() || has(&df.destination_values, &t.value))
                && (df.destination_operations.is_empty()
                    || has(&df.destination_operations, &t.operation))
        })
    };
    hit.then(|| Overlay {
        effect: df.action,
        reasons: vec![df.reason_code.clone()],
        violations: vec![df.violation.clone()],
    })
}

fn is_destructive(targets: &[Target]) -> bool {
    targets.iter().any(|t| t.destructive)
}

fn endpoint_overlay(ep: &Endpoint, v: &View<'_>) -> Option<Overlay> {
    let mut r: Vec<String> = Vec::new();
    for t in v.targets {
        if t.kind == "path" {
            let p = t.value.trim();
            let p: Cow<'_, str> = if p.contains('\\') {
                Cow::Owned(p.replace('\\', "/"))
            } else {
                Cow::Borrowed(p)
            };
            if !ep.path_denylist.is_empty() && ep.path_denylist.iter().any(|x| x.matches(&p)) {
                r.push(s("endpoint_path_denied"));
            }
            if !ep.path_allowlist.is_empty() && !ep.path_allowlist.iter().any(|x| x.matches(&p)) {
                r.push(s("endpoint_path_not_allowlisted"));
            }
        }
        let domain = lower_trimmed(&t.endpoint_domain);
        if !domain.is_empty() {
            if !ep.domain_denylist.is_empty()
                && ep.domain_denylist.iter().any(|x| x.matches(&domain))
            {
                r.push(s("endpoint_domain_denied"));
            }
            if !ep.domain_allowlist.is_empty()
                && !ep.domain_allowlist.iter().any(|x| x.matches(&domain))
            {
                r.push(s("endpoint_domain_not_allowlisted"));
            }
        }
        if t.endpoint_class.starts_with("net.")
            && !ep.egress_classes.is_empty()
            && !has(&ep.egress_classes, &t.endpoint_class)
        {
            r.push(s("endpoint_egress_class_not_allowed"));
        }
    }
    let mut violations = r.clone();
    let mut effect = ep.action;
    if let Some(da) = ep.destructive_action
        && is_destructive(v.targets)
    {
        effect = effect.max(da);
        r.push(s("endpoint_destructive_operation"));
        violations.push(s("destructive_operation"));
    }
    if r.is_empty() {
        return None;
    }
    r.push(ep.reason_code.clone());
    violations.push(ep.violation.clone());
    Some(Overlay {
        effect,
        reasons: r,
        violations,
    })
}

fn context_age_seconds(ctx: &IntentContext) -> Option<i64> {
    match ctx.auth_context.get("context_age_seconds")? {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else if let Some(u) = n.as_u64() {
                i64::try_from(u).ok()
            } else {
                let f = n.as_f64()?;
                (f >= 0.0).then_some(f as i64)
            }
        }
        Value::String(s) => s.trim().parse::<i64>().ok().filter(|v| *v >= 0),
        _ => None,
    }
}

fn context_overlay(ce: &ContextEvidenceRule, ctx: &IntentContext) -> Option<Overlay> {
    if !ce.enabled() {
        return None;
    }
    let mut r = Vec::new();
    let mut vi = Vec::new();
    if ctx.context_set_digest.trim().is_empty() {
        r.extend([
            s("context_evidence_missing"),
            s("context_set_digest_missing"),
        ]);
        vi.push(s("missing_context_evidence"));
    }
    if ce.required_mode == "required" && ctx.context_evidence_mode.trim() != "required" {
        r.push(s("context_evidence_mode_mismatch"));
        vi.push(s("context_evidence_mode_violation"));
    }
    if ce.max_context_age_seconds > 0 {
        match context_age_seconds(ctx) {
            Some(age) if age <= ce.max_context_age_seconds => {}
            _ => {
                r.push(s("context_freshness_exceeded"));
                vi.push(s("context_freshness_violation"));
            }
        }
    }
    block_if_any(r, vi)
}

fn block_if_any(reasons: Vec<String>, violations: Vec<String>) -> Option<Overlay> {
    (!reasons.is_empty()).then_some(Overlay {
        effect: Verdict::Block,
        reasons,
        violations,
    })
}

fn contains_all(values: &[String], required: &[String]) -> bool {
    required.iter().all(|r| values.iter().any(|v| v == r))
}

fn agent_overlay(
    a: &AgentIdentityRule,
    ctx: &IntentContext,
    now: DateTime<Utc>,
) -> Option<Overlay> {
    if !a.enabled() {
        return None;
    }
    let agent_id = ctx.agent_id.trim();
    let id = ctx.agent_identity.as_ref();
    let mut r = Vec::new();
    let mut vi = Vec::new();
    let mut add = |reason: &str, violation: &str| {
        r.push(s(reason));
        vi.push(s(violation));
    };
    if a.require_declared_agent && (agent_id.is_empty() || id.is_none()) {
        add("agent_unknown", "agent_identity_missing");
    }
    if !agent_id.is_empty() && has(&a.denied_agent_ids, agent_id) {
        add("agent_revoked", "agent_revoked");
    }
    if id.is_some_and(|i| i.revoked) {
        add("agent_revoked", "agent_revoked");
    }
    if !a.allowed_agent_ids.is_empty()
        && (agent_id.is_empty() || !has(&a.allowed_agent_ids, agent_id))
    {
        add("agent_unknown", "agent_not_declared");
    }
    if a.require_agent_owner && id.is_none_or(|i| i.owner.trim().is_empty()) {
        add("agent_owner_missing", "agent_owner_missing");
    }
    if !a.required_agent_lifecycle_states.is_empty()
        && !id.is_some_and(|i| {
            !i.lifecycle_states.is_empty()
                && contains_all(&i.lifecycle_states, &a.required_agent_lifecycle_states)
        })
    {
        add(
            "agent_lifecycle_state_invalid",
            "agent_lifecycle_state_invalid",
        );
    }
    if a.require_unexpired_agent && id.is_none_or(|i| i.expires_at.get().is_none_or(|e| e <= now)) {
        add("agent_expired", "agent_expired");
    }
    if !a.required_agent_manifest_digest.is_empty()
        && id.is_none_or(|i| i.manifest_digest.trim() != a.required_agent_manifest_digest)
    {
        add("agent_manifest_mismatch", "agent_manifest_mismatch");
    }
    if !a.allowed_agent_manifest_publishers.is_empty()
        && !id.is_some_and(|i| {
            has(
                &a.allowed_agent_manifest_publishers,
                &i.publisher.trim().to_lowercase(),
            )
        })
    {
        add("agent_manifest_mismatch", "agent_manifest_mismatch");
    }
    if !a.allowed_agent_manifest_sources.is_empty()
        && !id.is_some_and(|i| {
            has(
                &a.allowed_agent_manifest_sources,
                &i.source.trim().to_lowercase(),
            )
        })
    {
        add("agent_manifest_mismatch", "agent_manifest_mismatch");
    }
    block_if_any(r, vi)
}

fn credential_overlay(c: &CredentialRule, v: &View<'_>) -> Option<Overlay> {
    if !c.enabled() {
        return None;
    }
    let ctx = v.ctx;
    let source = ctx.credential_source.trim().to_lowercase();
    let access = ctx.credential_access_type.trim().to_lowercase();
    let issuer = ctx.credential_issuer.trim();
    let mut r = Vec::new();
    let mut add = |reason: &str| r.push(s(reason));
    if ctx.credential_ref.trim().is_empty() {
        add("credential_evidence_missing");
    }
    if source.is_empty() {
        add("credential_source_unknown");
    }
    if access.is_empty() {
        add("credential_access_type_unknown");
    }
    if c.require_jit_credential {
        if access.is_empty() {
            add("credential_evidence_missing");
        } else if access != "jit" {
            add("credential_not_jit");
        }
    }
    if c.block_standing_credentials
        && matches!(
            access.as_str(),
            "" | "cloud_admin" | "inherited" | "standing" | "static" | "unknown"
        )
    {
        add("standing_credential_disallowed");
    }
    if !c.allowed_credential_sources.is_empty()
        && (source.is_empty() || !has(&c.allowed_credential_sources, &source))
    {
        add("credential_source_disallowed");
    }
    if !c.allowed_credential_issuers.is_empty()
        && (issuer.is_empty() || !has(&c.allowed_credential_issuers, issuer))
    {
        add("credential_issuer_disallowed");
    }
    if !c.allowed_credential_access_types.is_empty()
        && (access.is_empty() || !has(&c.allowed_credential_access_types, &access))
    {
        add("credential_access_type_disallowed");
    }
    if c.max_credential_ttl_seconds > 0 {
        if ctx.credential_ttl_seconds <= 0 {
            add("credential_evidence_missing");
        } else if ctx.credential_ttl_seconds > c.max_credential_ttl_seconds {
            add("credential_ttl_exceeded");
        }
    }
    let target_binding = ctx.credential_target_binding.trim();
    if !target_binding.is_empty() {
        let expected = crate::canon::digest_of(v.targets).unwrap_or_default();
        if target_binding != expected {
            add("credential_target_binding_mismatch");
        }
    }
    let run = ctx.run_id.trim();
    let run_b = ctx.credential_run_binding.trim();
    if !run.is_empty() && !run_b.is_empty() && run != run_b {
        add("credential_run_binding_mismatch");
    }
    let job = ctx.job_id.trim();
    let job_b = ctx.credential_job_binding.trim();
    if !job.is_empty() && !job_b.is_empty() && job != job_b {
        add("credential_job_binding_mismatch");
    }
    let vi = r.clone();
    block_if_any(r, vi)
}

fn freeze_overlay(
    fw: &FreezeWindow,
    ctx: &IntentContext,
    now: DateTime<Utc>,
) -> (Option<Overlay>, FreezeWindowDecision) {
    let mut d = FreezeWindowDecision {
        status: s("inactive"),
        effect: s(fw.effect.as_str()),
        timezone: fw.timezone.clone(),
        evaluated_at: GoTime::from_utc(now),
        window_name: String::new(),
        window_start: GoTime::ZERO,
        window_end: GoTime::ZERO,
        reason: String::new(),
        reason_code: String::new(),
    };
    let env = ctx.environment.trim().to_lowercase();
    if !fw.environments.is_empty() && !has(&fw.environments, &env) {
        return (None, d);
    }
    let risk = ctx.risk_class.trim().to_lowercase();
    if !fw.risk_classes.is_empty() && !has(&fw.risk_classes, &risk) {
        return (None, d);
    }
    let block = |d: &mut FreezeWindowDecision, code: &str, reason: &str| {
        d.status = s("invalid");
        d.reason_code = s(code);
        d.reason = s(reason);
        Overlay {
            effect: Verdict::Block,
            reasons: vec![s(code)],
            violations: vec![s(code)],
        }
    };
    let Some(tz) = fw.tz else {
        let o = block(
            &mut d,
            "freeze_window_invalid_timezone",
            "freeze window timezone could not be loaded",
        );
        return (Some(o), d);
    };
    for w in &fw.windows {
        let range = w.parsed.and_then(|(a, b)| {
            let a = tz.from_local_datetime(&a).earliest()?.with_timezone(&Utc);
            let b = tz.from_local_datetime(&b).earliest()?.with_timezone(&Utc);
            (b > a).then_some((a, b))
        });
        let Some((start, end)) = range else {
            d.window_name = w.name.clone();
            let o = block(
                &mut d,
                "freeze_window_invalid_window",
                "freeze window has an invalid range",
            );
            return (Some(o), d);
        };
        if now >= start && now < end {
            d.status = s("active");
            d.window_name = w.name.clone();
            d.window_start = GoTime::from_utc(start);
            d.window_end = GoTime::from_utc(end);
            d.reason = if fw.reason.is_empty() {
                w.name.clone()
            } else {
                fw.reason.clone()
            };
            let code = if fw.effect == Verdict::RequireApproval {
                "freeze_window_active_require_approval"
            } else {
                "freeze_window_active_block"
            };
            d.reason_code = s(code);
            let o = Overlay {
                effect: fw.effect,
                reasons: vec![s(code)],
                violations: vec![s(code)],
            };
            return (Some(o), d);
        }
    }
    (None, d)
}

fn freeze_rank(d: &FreezeWindowDecision) -> (u8, u8) {
    let status = match d.status.as_str() {
        "invalid" => 3,
        "active" => 2,
        "inactive" => 1,
        _ => 0,
    };
    let effect = match d.effect.as_str() {
        "block" => 2,
        "require_approval" => 1,
        _ => 0,
    };
    (status, effect)
}

fn pick_freeze(
    cur: Option<FreezeWindowDecision>,
    cand: FreezeWindowDecision,
) -> Option<FreezeWindowDecision> {
    let Some(cur) = cur else { return Some(cand) };
    let (a, b) = (freeze_rank(&cand), freeze_rank(&cur));
    if a > b || (a == b && cand.window_name.trim() < cur.window_name.trim()) {
        Some(cand)
    } else {
        Some(cur)
    }
}

fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let (path, prefix) = (path.trim(), prefix.trim());
    path == prefix
        || prefix == "/"
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

fn sandbox_overlay(sb: &Sandbox, ctx: &IntentContext) -> (Option<Overlay>, SandboxDecision) {
    let Some(x) = ctx.sandbox.as_ref().filter(|x| !x.is_empty()) else {
        let d = SandboxDecision {
            status: s("missing"),
            reason_codes: vec![s("sandbox_metadata_missing")],
            ..SandboxDecision::default()
        };
        let o = Overlay {
            effect: Verdict::Block,
            reasons: d.reason_codes.clone(),
            violations: d.reason_codes.clone(),
        };
        return (Some(o), d);
    };
    let mut d = SandboxDecision {
        status: s("valid"),
        network_mode: x.network_mode.clone(),
        env_exposure_mode: x.env_exposure_mode.clone(),
        timeout_seconds: x.timeout_seconds,
        filesystem_isolation: x.filesystem_isolation.clone(),
        user_mode: x.user_mode.clone(),
        evidence_ref: x.evidence_ref.clone(),
        evidence_digest: x.evidence_digest.clone(),
        reason_codes: Vec::new(),
    };
    let mut r: Vec<String> = Vec::new();
    if x.evidence_ref.is_empty() || x.evidence_digest.is_empty() {
        r.push(s("sandbox_evidence_missing"));
    }
    let mut mode = |value: &str, allowed: &[String], name: &str| {
        if value.is_empty() {
            r.push(format!("sandbox_{name}_missing"));
        } else if !allowed.is_empty() && !has(allowed, value) {
            r.push(format!("sandbox_{name}_disallowed"));
        }
    };
    mode(&x.network_mode, &sb.allowed_network_modes, "network_mode");
    mode(
        &x.env_exposure_mode,
        &sb.allowed_env_exposure_modes,
        "env_exposure_mode",
    );
    if x.timeout_seconds <= 0 {
        r.push(s("sandbox_timeout_missing"));
    } else if sb.max_timeout_seconds > 0 && x.timeout_seconds > sb.max_timeout_seconds {
        r.push(s("sandbox_timeout_exceeded"));
    }
    let mut mode = |value: &str, allowed: &[String], name: &str| {
        if value.is_empty() {
            r.push(format!("sandbox_{name}_missing"));
        } else if !allowed.is_empty() && !has(allowed, value) {
            r.push(format!("sandbox_{name}_disallowed"));
        }
    };
    mode(
        &x.filesystem_isolation,
        &sb.allowed_filesystem_isolations,
        "filesystem_isolation",
    );
    mode(&x.user_mode, &sb.allowed_user_modes, "user_mode");
    if !sb.allowed_writable_path_prefixes.is_empty()
        && x.writable_paths.iter().any(|w| {
            !sb.allowed_writable_path_prefixes
                .iter()
                .any(|p| path_has_prefix(w, p))
        })
    {
        r.push(s("sandbox_writable_path_disallowed"));
    }
    if !sb.required_read_only_roots.is_empty()
        && (x.read_only_roots.is_empty()
            || !contains_all(&x.read_only_roots, &sb.required_read_only_roots))
    {
        r.push(s("sandbox_read_only_root_missing"));
    }
    if r.is_empty() {
        return (None, d);
    }
    let r = sorted(r);
    d.status = if r.iter().any(|c| c.ends_with("_missing")) {
        s("missing")
    } else if r
        .iter()
        .any(|c| c.ends_with("_disallowed") || c.ends_with("_exceeded"))
    {
        s("disallowed")
    } else {
        s("invalid")
    };
    d.reason_codes = r.clone();
    let o = Overlay {
        effect: Verdict::Block,
        reasons: r.clone(),
        violations: r,
    };
    (Some(o), d)
}

fn sandbox_rank(status: &str) -> u8 {
    match status {
        "missing" => 4,
        "disallowed" => 3,
        "invalid" => 2,
        "valid" => 1,
        _ => 0,
    }
}

fn pick_sandbox(cur: Option<SandboxDecision>, cand: SandboxDecision) -> Option<SandboxDecision> {
    let Some(cur) = cur else { return Some(cand) };
    let (a, b) = (sandbox_rank(&cand.status), sandbox_rank(&cur.status));
    if a > b || (a == b && cand.evidence_digest.trim() < cur.evidence_digest.trim()) {
        Some(cand)
    } else {
        Some(cur)
    }
}

// === single intent (§2 step 6) ===

struct RuleOutcome<'p> {
    rule: &'p Rule,
    effect: Verdict,
    reasons: Vec<String>,
    violations: Vec<String>,
    dataflow_triggered: bool,
}

fn apply(
    effect: &mut Verdict,
    reasons: &mut Vec<String>,
    violations: &mut Vec<String>,
    o: Overlay,
) {
    *effect = (*effect).max(o.effect);
    reasons.extend(o.reasons);
    violations.extend(o.violations);
}

fn evaluate_rule<'p>(
    rule: &'p Rule,
    v: &View<'_>,
    now: DateTime<Utc>,
    freeze: &mut Option<FreezeWindowDecision>,
    sandbox: &mut Option<SandboxDecision>,
) -> RuleOutcome<'p> {
    let mut effect = rule.effect;
    let mut reasons = if rule.reason_codes.is_empty() {
        vec![rule.fallback_reason.clone()]
    } else {
        rule.reason_codes.clone()
    };
    let mut violations = rule.violations.clone();
    let mut dataflow_triggered = false;
    if let Some(df) = &rule.dataflow
        && let Some(o) = dataflow_overlay(df, v)
    {
        dataflow_triggered = true;
        effect = o.effect; // replaces, never merges
        reasons.extend(o.reasons);
        violations.extend(o.violations);
    }
    if let Some(ep) = &rule.endpoint
        && let Some(o) = endpoint_overlay(ep, v)
    {
        apply(&mut effect, &mut reasons, &mut violations, o);
    }
    if let Some(o) = context_overlay(&rule.context_evidence, v.ctx) {
        apply(&mut effect, &mut reasons, &mut violations, o);
    }
    if let Some(o) = agent_overlay(&rule.agent_identity, v.ctx, now) {
        apply(&mut effect, &mut reasons, &mut violations, o);
    }
    if let Some(o) = credential_overlay(&rule.credential, v) {
        apply(&mut effect, &mut reasons, &mut violations, o);
    }
    if let Some(fw) = &rule.freeze_window {
        let (o, d) = freeze_overlay(fw, v.ctx, now);
        *freeze = pick_freeze(freeze.take(), d);
        if let Some(o) = o {
            apply(&mut effect, &mut reasons, &mut violations, o);
        }
    }
    let mut sandbox_valid = false;
    if let Some(sb) = &rule.sandbox {
        let (o, d) = sandbox_overlay(sb, v.ctx);
        sandbox_valid = d.status == "valid";
        *sandbox = pick_sandbox(sandbox.take(), d);
        if let Some(o) = o {
            apply(&mut effect, &mut reasons, &mut violations, o);
        }
    }
    let exec_only =
        !v.targets.is_empty() && v.targets.iter().all(|t| t.endpoint_class == "proc.exec");
    if is_destructive(v.targets) && !(sandbox_valid && exec_only) {
        match v.ctx.phase.trim().to_lowercase().as_str() {
            "plan" => {
                effect = effect.max(Verdict::DryRun);
                reasons.push(s("plan_phase_non_destructive"));
            }
            "" | "apply" => {
                effect = effect.max(Verdict::RequireApproval);
                reasons.push(s("destructive_apply_requires_approval"));
            }
            _ => {}
        }
    }
    RuleOutcome {
        rule,
        effect,
        reasons,
        violations,
        dataflow_triggered,
    }
}

/// Index of the first rule (in evaluation order) that matches `v`, visiting only the rules
/// the tool-name index says can match: the same answer as scanning every rule, because a rule
/// with `tool_names` matches only when one of them equals `v.tool_name`.
pub(crate) fn first_match(policy: &Policy, v: &View<'_>) -> Option<usize> {
    let rules = policy.rules();
    let index = policy.rule_index();
    let any = index.any_tool.as_slice();
    let tooled = index
        .by_tool
        .get(v.tool_name)
        .map_or(&[][..], Vec::as_slice);
    let (mut i, mut j) = (0, 0);
    loop {
        let next = match (any.get(i), tooled.get(j)) {
            (Some(&a), Some(&b)) if a < b => {
                i += 1;
                a
            }
            (_, Some(&b)) => {
                j += 1;
                b
            }
            (Some(&a), None) => {
                i += 1;
                a
            }
            (None, None) => return None,
        };
        let k = next as usize;
        if rules.get(k).is_some_and(|r| rule_matches(&r.matcher, v)) {
            return Some(k);
        }
    }
}

fn evaluate_single(policy: &Policy, v: &View<'_>, now: DateTime<Utc>) -> Evaluation {
    let rules = policy.rules();
    let Some(first) = first_match(policy, v) else {
        let dv = policy.default_verdict();
        let mut e = Evaluation::bare(dv, vec![format!("default_{}", dv.as_str())], Vec::new());
        if dv == Verdict::RequireApproval {
            e.min_approvals = 1;
        }
        return e;
    };
    let tier = rules[first].priority;
    let mut freeze = None;
    let mut sandbox = None;
    let outcomes: Vec<RuleOutcome<'_>> = rules[first..]
        .iter()
        .take_while(|r| r.priority == tier)
        .enumerate()
        .filter(|(k, r)| *k == 0 || rule_matches(&r.matcher, v))
        .map(|(_, r)| r)
        .map(|r| evaluate_rule(r, v, now, &mut freeze, &mut sandbox))
        .collect();
    let verdict = outcomes
        .iter()
        .map(|o| o.effect)
        .max()
        .unwrap_or(Verdict::Allow);
    let mut reasons = Vec::new();
    let mut violations = Vec::new();
    let mut e = Evaluation::bare(verdict, Vec::new(), Vec::new());
    let mut names: Vec<String> = outcomes.iter().map(|o| o.rule.name.clone()).collect();
    names.sort();
    names.dedup();
    e.matched_rule = Some(names.join(","));
    e.matched_rule_names = names;
    let mut scopes = BTreeSet::new();
    for o in outcomes.into_iter().filter(|o| o.effect == verdict) {
        let r = o.rule;
        reasons.extend(o.reasons);
        violations.extend(o.violations);
        e.min_approvals = e.min_approvals.max(r.min_approvals);
        e.require_distinct_approvers |= r.require_distinct_approvers;
        e.require_broker_credential |= r.require_broker_credential;
        e.require_delegation |= r.matcher.require_delegation;
        if e.broker_reference.is_empty() {
            e.broker_reference = r.broker_reference.clone();
        }
        scopes.extend(r.broker_scopes.iter().cloned());
        e.rate_limit = RateLimitSpec::most_restrictive(e.rate_limit.take(), r.rate_limit.as_ref());
        e.destructive_budget = RateLimitSpec::most_restrictive(
            e.destructive_budget.take(),
            r.destructive_budget.as_ref(),
        );
        e.dataflow_triggered |= o.dataflow_triggered;
    }
    e.broker_scopes = scopes.into_iter().collect();
    if verdict == Verdict::RequireApproval {
        e.min_approvals = e.min_approvals.max(1);
    } else {
        e.min_approvals = 0;
    }
    e.reason_codes = sorted(reasons);
    e.violations = sorted(violations);
    e.freeze_window = freeze;
    e.sandbox = sandbox;
    e
}

// === fail_closed (§2 step 3) ===

fn fail_closed_reasons(fc: &FailClosed, i: &IntentRequest) -> (Vec<String>, Vec<String>) {
    let mut r = Vec::new();
    let mut vi = Vec::new();
    let unknown_class = |t: &Target| {
        let c = t.endpoint_class.trim();
        c.is_empty() || c == "other"
    };
    for f in &fc.required_fields {
        let missing = match f.as_str() {
            "targets" => i.targets.is_empty(),
            "arg_provenance" => i.arg_provenance.is_empty(),
            "endpoint_class" => i.targets.iter().any(unknown_class),
            "delegation" => i.delegation.is_none(),
            "context_evidence" => i.context.context_set_digest.trim().is_empty(),
            _ => false,
        };
        if missing {
            if f == "context_evidence" {
                r.push(s("context_evidence_missing"));
                vi.push(s("missing_context_evidence"));
            } else {
                r.push(format!("fail_closed_missing_{f}"));
                vi.push(format!("missing_{f}"));
            }
        }
    }
    let c = &i.context;
    for f in &fc.required_high_risk_fields {
        let missing = match f.as_str() {
            "agent_id" => c.agent_id.trim().is_empty(),
            "agent_identity" => c.agent_identity.is_none(),
            "run_id" => c.run_id.trim().is_empty(),
            "workflow_id" => c.workflow_id.trim().is_empty(),
            "repo" => c.repo.trim().is_empty(),
            "environment" => c.environment.trim().is_empty(),
            "credential_ref" => c.credential_ref.trim().is_empty(),
            "credential_source" => c.credential_source.trim().is_empty(),
            "credential_access_type" => c.credential_access_type.trim().is_empty(),
            "credential_issuer" => c.credential_issuer.trim().is_empty(),
            "credential_ttl_seconds" => c.credential_ttl_seconds <= 0,
            "approval_ref" => c.approval_ref.trim().is_empty(),
            "wrkr_inventory_ref" => c.wrkr_inventory_ref.trim().is_empty(),
            "agent_action_bom_ref" => c.agent_action_bom_ref.trim().is_empty(),
            _ => false,
        };
        if missing {
            r.push(format!("fail_closed_missing_{f}"));
            vi.push(format!("missing_{f}"));
        }
    }
    if i.targets.iter().any(unknown_class) {
        r.push(s("fail_closed_endpoint_class_unknown"));
        vi.push(s("endpoint_class_unknown"));
    }
    (r, vi)
}

// === scripts (§2 step 5) ===

const MAX_SCRIPT_STEPS: usize = 64;

fn step_risk(targets: &[Target]) -> &'static str {
    let mut risk = "low";
    for t in targets {
        match t.endpoint_class.as_str() {
            "fs.delete" | "proc.exec" => return "high",
            "fs.write" | "net.http" | "net.dns" => risk = "medium",
            _ => {}
        }
        if t.destructive {
            return "high";
        }
    }
    risk
}

fn evaluate_script(policy: &Policy, i: &IntentRequest, now: DateTime<Utc>) -> Evaluation {
    let steps = i.script.as_ref().map(|s| s.steps.as_slice()).unwrap_or(&[]);
    let mut verdict = Verdict::Allow;
    let mut reasons = Vec::new();
    let mut violations = Vec::new();
    let mut matched = BTreeSet::new();
    let mut risks = BTreeSet::new();
    let mut step_verdicts = Vec::with_capacity(steps.len());
    let mut agg = Evaluation::bare(Verdict::Allow, Vec::new(), Vec::new());
    let mut scopes = BTreeSet::new();
    for (index, step) in steps.iter().enumerate() {
        let v = View {
            tool_name: &step.tool_name,
            targets: &step.targets,
            arg_provenance: &step.arg_provenance,
            ctx: &i.context,
            skill: i.skill_provenance.as_ref(),
            delegation: i.delegation.as_ref(),
        };
        let e = evaluate_single(policy, &v, now);
        verdict = verdict.max(e.verdict);
        reasons.extend(e.reason_codes.iter().cloned());
        violations.extend(e.violations.iter().cloned());
        if let Some(m) = &e.matched_rule {
            matched.insert(m.clone());
        }
        agg.min_approvals = agg.min_approvals.max(e.min_approvals);
        agg.require_distinct_approvers |= e.require_distinct_approvers;
        agg.require_broker_credential |= e.require_broker_credential;
        agg.require_delegation |= e.require_delegation;
        if agg.broker_reference.is_empty() {
            agg.broker_reference = e.broker_reference.clone();
        }
        scopes.extend(e.broker_scopes.iter().cloned());
        agg.rate_limit =
            RateLimitSpec::most_restrictive(agg.rate_limit.take(), e.rate_limit.as_ref());
        agg.destructive_budget = RateLimitSpec::most_restrictive(
            agg.destructive_budget.take(),
            e.destructive_budget.as_ref(),
        );
        agg.dataflow_triggered |= e.dataflow_triggered;
        if let Some(d) = e.freeze_window.clone() {
            agg.freeze_window = pick_freeze(agg.freeze_window.take(), d);
        }
        if let Some(d) = e.sandbox.clone() {
            agg.sandbox = pick_sandbox(agg.sandbox.take(), d);
        }
        risks.insert(step_risk(&step.targets));
        step_verdicts.push(StepVerdict {
            index,
            tool_name: step.tool_name.clone(),
            verdict: e.verdict,
            reason_codes: e.reason_codes,
            violations: e.violations,
            matched_rule: e.matched_rule.unwrap_or_default(),
        });
    }
    let scripts = policy.scripts();
    let max_steps = if scripts.max_steps == 0 {
        MAX_SCRIPT_STEPS
    } else {
        scripts.max_steps as usize
    };
    if steps.len() > max_steps {
        verdict = Verdict::Block;
        reasons.push(s("script_max_steps_exceeded"));
        violations.push(s("script_max_steps_exceeded"));
    }
    if scripts.require_approval_above > 0 && steps.len() > scripts.require_approval_above as usize {
        verdict = verdict.max(Verdict::RequireApproval);
        reasons.push(s("script_step_threshold_approval"));
        if agg.min_approvals == 0 {
            agg.min_approvals = 1;
        }
    }
    if scripts.block_mixed_risk && risks.len() > 1 {
        verdict = Verdict::Block;
        reasons.push(s("script_mixed_risk_blocked"));
        violations.push(s("script_mixed_risk"));
    }
    let composite = if risks.contains("high") {
        "high"
    } else if risks.contains("medium") {
        "medium"
    } else {
        "low"
    };
    agg.verdict = verdict;
    agg.reason_codes = sorted(reasons);
    agg.violations = sorted(violations);
    let names: Vec<String> = matched
        .iter()
        .flat_map(|m: &String| m.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !matched.is_empty() {
        agg.matched_rule = Some(matched.into_iter().collect::<Vec<_>>().join(","));
    }
    agg.matched_rule_names = names;
    agg.broker_scopes = scopes.into_iter().collect();
    agg.script = Some(ScriptSummary {
        step_count: steps.len(),
        composite_risk_class: s(composite),
        step_verdicts,
    });
    agg
}

/// `s.trim().to_lowercase()`, borrowing when that changes nothing (the normalised case).
fn lower_trimmed(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    if t.bytes().any(|b| b.is_ascii_uppercase()) || !t.is_ascii() {
        Cow::Owned(t.to_lowercase())
    } else {
        Cow::Borrowed(t)
    }
}

// === entry point ===

impl Policy {
    /// Evaluate a normalised intent (§2 steps 3–7).
    pub fn evaluate(&self, intent: &NormalizedIntent, opts: &EvalOptions) -> Evaluation {
        self.evaluate_request(intent.request(), opts)
    }

    /// Same as [`Policy::evaluate`] over the request inside a [`NormalizedIntent`]. The request
    /// must already be normalised (`intent::normalize`): tool name and classes lowercased,
    /// targets inferred, phase set. Exposed for tests and callers that keep only the request.
    pub fn evaluate_request(&self, intent: &IntentRequest, opts: &EvalOptions) -> Evaluation {
        let risk = lower_trimmed(&intent.context.risk_class);
        // Step 3: fail_closed.
        if self.fail_closed().applies_to(&risk) {
            let (r, vi) = fail_closed_reasons(self.fail_closed(), intent);
            if !r.is_empty() {
                let mut e = Evaluation::bare(Verdict::Block, r, vi);
                e.fail_closed = true;
                return e;
            }
        }
        // Step 4: kill-switch state required but unreadable.
        if let KillSwitchInput::Unavailable(_) = &opts.kill_switch
            && (opts.profile == Profile::OssProd || matches!(&*risk, "high" | "critical"))
        {
            return Evaluation::bare(
                Verdict::Block,
                vec![s("kill_switch_state_unavailable")],
                Vec::new(),
            );
        }
        // Steps 5 and 6.
        let has_script = intent.script.as_ref().is_some_and(|s| !s.steps.is_empty());
        let mut e = if has_script {
            evaluate_script(self, intent, opts.now)
        } else {
            evaluate_single(self, &View::of(intent), opts.now)
        };
        // Step 7: kill switch.
        if let KillSwitchInput::Loaded(state) = &opts.kill_switch {
            let d = state.decide(intent, opts.now);
            if d.status == "active" {
                e.verdict = Verdict::Block;
                e.min_approvals = 0;
                let mut r = std::mem::take(&mut e.reason_codes);
                r.extend(d.reason_codes.iter().cloned());
                e.reason_codes = sorted(r);
                let mut vi = std::mem::take(&mut e.violations);
                vi.push(s("kill_switch_active"));
                e.violations = sorted(vi);
            }
            e.kill_switch = Some(d);
        }
        e
    }
}
