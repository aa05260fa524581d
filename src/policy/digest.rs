//! policy_digest (§4.4): sha256 over JCS of a Go-field-name payload of the compiled policy.
//!
//! Invariant: computed once at load from the compiled policy; aliases never appear, rules are
//! in `(priority, name)` order, empty lists are `[]` (sandbox path lists `null`).

use serde_json::{Map, Value, json};

use super::compile::{Compiled, Rule};

fn list(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

fn null_if_empty(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { list(v) }
}

fn put_list(m: &mut Map<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        m.insert(key.to_string(), list(v));
    }
}

fn put_true(m: &mut Map<String, Value>, key: &str, v: bool) {
    if v {
        m.insert(key.to_string(), Value::Bool(true));
    }
}

fn put_str(m: &mut Map<String, Value>, key: &str, v: &str) {
    if !v.is_empty() {
        m.insert(key.to_string(), Value::String(v.to_string()));
    }
}

fn put_pos(m: &mut Map<String, Value>, key: &str, v: i64) {
    if v > 0 {
        m.insert(key.to_string(), json!(v));
    }
}

/// Go `time.Duration.String()` for a nanosecond count (`24h` → `24h0m0s`, `1.5s`, `300ms`, `0s`).
pub fn go_duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: ns, µs or ms with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fmt_frac(u, scale));
        out.push_str(unit);
    } else {
        let hours = u / 3_600_000_000_000;
        let rem = u % 3_600_000_000_000;
        let minutes = rem / 60_000_000_000;
        let secs_nanos = rem % 60_000_000_000;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&fmt_frac(secs_nanos, 1_000_000_000));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

fn fmt_frac(v: u64, scale: u64) -> String {
    let whole = v / scale;
    let frac = v % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn rule_payload(rule: &Rule) -> Value {
    let m = &rule.matcher;
    let mut mp = Map::new();
    for (k, v) in [
        ("ToolNames", &m.tool_names),
        ("RiskClasses", &m.risk_classes),
        ("TargetKinds", &m.target_kinds),
        ("TargetValues", &m.target_values),
        ("ProvenanceSources", &m.provenance_sources),
        ("Identities", &m.identities),
        ("WorkspacePrefixes", &m.workspace_prefixes),
    ] {
        mp.insert(k.to_string(), list(v));
    }
    put_list(&mut mp, "EndpointClasses", &m.endpoint_classes);
    put_list(&mut mp, "DiscoveryMethods", &m.discovery_methods);
    if m.tool_annotations.is_set() {
        let mut ta = Map::new();
        let a = &m.tool_annotations;
        for (k, v) in [
            ("ReadOnlyHint", a.read_only_hint),
            ("DestructiveHint", a.destructive_hint),
            ("IdempotentHint", a.idempotent_hint),
            ("OpenWorldHint", a.open_world_hint),
        ] {
            if let Some(b) = v {
                ta.insert(k.to_string(), Value::Bool(b));
            }
        }
        mp.insert("ToolAnnotations".to_string(), Value::Object(ta));
    }
    put_list(&mut mp, "SkillPublishers", &m.skill_publishers);
    put_list(&mut mp, "SkillSources", &m.skill_sources);
    put_list(&mut mp, "DataClasses", &m.data_classes);
    put_list(&mut mp, "DestinationKinds", &m.destination_kinds);
    put_list(&mut mp, "DestinationValues", &m.destination_values);
    put_list(&mut mp, "DestinationOps", &m.destination_ops);
    put_list(&mut mp, "ContextToolNames", &m.context_tool_names);
    put_list(&mut mp, "ContextDataClasses", &m.context_data_classes);
    put_list(
        &mut mp,
        "ContextEndpointClasses",
        &m.context_endpoint_classes,
    );
    put_list(&mut mp, "ContextAutonomyLevels", &m.context_autonomy_levels);
    put_true(&mut mp, "RequireDelegation", m.require_delegation);
    put_list(
        &mut mp,
        "AllowedDelegatorIdentities",
        &m.allowed_delegator_identities,
    );
    put_list(
        &mut mp,
        "AllowedDelegateIdentities",
        &m.allowed_delegate_identities,
    );
    put_list(&mut mp, "DelegationScopes", &m.delegation_scopes);
    if let Some(d) = m.max_delegation_depth {
        mp.insert("MaxDelegationDepth".to_string(), json!(d));
    }

    let mut r = Map::new();
    r.insert("Name".into(), json!(rule.name));
    r.insert("Priority".into(), json!(rule.priority));
    r.insert("Effect".into(), json!(rule.effect.as_str()));
    r.insert("Match".into(), Value::Object(mp));
    r.insert("ReasonCodes".into(), list(&rule.reason_codes));
    r.insert("Violations".into(), list(&rule.violations));
    put_pos(&mut r, "MinApprovals", i64::from(rule.min_approvals));

    let ai = &rule.agent_identity;
    put_true(&mut r, "RequireDeclaredAgent", ai.require_declared_agent);
    put_list(&mut r, "AllowedAgentIDs", &ai.allowed_agent_ids);
    put_list(&mut r, "DeniedAgentIDs", &ai.denied_agent_ids);
    put_str(
        &mut r,
        "RequiredAgentManifestDigest",
        &ai.required_agent_manifest_digest,
    );
    put_list(
        &mut r,
        "AllowedAgentManifestPublishers",
        &ai.allowed_agent_manifest_publishers,
    );
    put_list(
        &mut r,
        "AllowedAgentManifestSources",
        &ai.allowed_agent_manifest_sources,
    );
    put_list(
        &mut r,
        "RequiredAgentLifecycleStates",
        &ai.required_agent_lifecycle_states,
    );
    put_true(&mut r, "RequireAgentOwner", ai.require_agent_owner);
    put_true(&mut r, "RequireUnexpiredAgent", ai.require_unexpired_agent);

    let c = &rule.credential;
    put_true(
        &mut r,
        "BlockStandingCredentials",
        c.block_standing_credentials,
    );
    put_list(
        &mut r,
        "AllowedCredentialSources",
        &c.allowed_credential_sources,
    );
    put_list(
        &mut r,
        "AllowedCredentialIssuers",
        &c.allowed_credential_issuers,
    );
    put_list(
        &mut r,
        "AllowedCredentialAccessTypes",
        &c.allowed_credential_access_types,
    );
    put_pos(
        &mut r,
        "MaxCredentialTTLSeconds",
        c.max_credential_ttl_seconds,
    );
    put_true(&mut r, "RequireJITCredential", c.require_jit_credential);

    put_true(
        &mut r,
        "RequireDistinctApprovers",
        rule.require_distinct_approvers,
    );
    let ce = &rule.context_evidence;
    put_true(
        &mut r,
        "RequireContextEvidence",
        ce.require_context_evidence,
    );
    put_str(&mut r, "RequiredContextEvidenceMode", &ce.required_mode);
    put_pos(&mut r, "MaxContextAgeSeconds", ce.max_context_age_seconds);
    put_true(
        &mut r,
        "RequireBrokerCredential",
        rule.require_broker_credential,
    );
    put_str(&mut r, "BrokerReference", &rule.broker_reference);
    put_list(&mut r, "BrokerScopes", &rule.broker_scopes);

    if let Some(fw) = &rule.freeze_window {
        let windows: Vec<Value> = fw
            .windows
            .iter()
            .map(|w| json!({"Name": w.name, "Start": w.start, "End": w.end}))
            .collect();
        r.insert(
            "FreezeWindow".into(),
            json!({
                "Enabled": true,
                "Timezone": fw.timezone,
                "Effect": fw.effect.as_str(),
                "Reason": fw.reason,
                "Environments": list(&fw.environments),
                "RiskClasses": list(&fw.risk_classes),
                "Windows": windows,
            }),
        );
    }
    if let Some(sb) = &rule.sandbox {
        r.insert(
            "Sandbox".into(),
            json!({
                "Enabled": true,
                "AllowedNetworkModes": list(&sb.allowed_network_modes),
                "AllowedWritablePathPrefixes": null_if_empty(&sb.allowed_writable_path_prefixes),
                "RequiredReadOnlyRoots": null_if_empty(&sb.required_read_only_roots),
                "AllowedEnvExposureModes": list(&sb.allowed_env_exposure_modes),
                "MaxTimeoutSeconds": sb.max_timeout_seconds,
                "AllowedFilesystemIsolations": list(&sb.allowed_filesystem_isolations),
                "AllowedUserModes": list(&sb.allowed_user_modes),
            }),
        );
    }
    for (key, spec) in [
        ("RateLimit", &rule.rate_limit),
        ("DestructiveBudget", &rule.destructive_budget),
    ] {
        if let Some(s) = spec {
            r.insert(
                key.into(),
                json!({"Requests": s.requests, "Window": s.window, "Scope": s.scope}),
            );
        }
    }
    if let Some(df) = &rule.dataflow {
        let mut d = Map::new();
        d.insert("Enabled".into(), Value::Bool(true));
        d.insert("TaintedSources".into(), list(&df.tainted_sources));
        d.insert("Action".into(), json!(df.action.as_str()));
        d.insert("ReasonCode".into(), json!(df.reason_code));
        d.insert("Violation".into(), json!(df.violation));
        put_list(&mut d, "DestinationKinds", &df.destination_kinds);
        put_list(&mut d, "DestinationValues", &df.destination_values);
        put_list(&mut d, "DestinationOperations", &df.destination_operations);
        r.insert("Dataflow".into(), Value::Object(d));
    }
    if let Some(ep) = &rule.endpoint {
        let paths = |v: &[super::pattern::PathPattern]| -> Value {
            Value::Array(v.iter().map(|p| json!(p.as_str())).collect())
        };
        let domains = |v: &[super::pattern::DomainPattern]| -> Value {
            Value::Array(v.iter().map(|p| json!(p.as_str())).collect())
        };
        r.insert(
            "Endpoint".into(),
            json!({
                "Enabled": true,
                "PathAllowlist": paths(&ep.path_allowlist),
                "PathDenylist": paths(&ep.path_denylist),
                "DomainAllowlist": domains(&ep.domain_allowlist),
                "DomainDenylist": domains(&ep.domain_denylist),
                "EgressClasses": list(&ep.egress_classes),
                "Action": ep.action.as_str(),
                "DestructiveAction": ep.destructive_action.map(|v| v.as_str()).unwrap_or(""),
                "ReasonCode": ep.reason_code,
                "Violation": ep.violation,
            }),
        );
    }
    Value::Object(r)
}

/// The §4.4 preimage (before JCS).
pub(crate) fn payload(p: &Compiled) -> Value {
    let mut fc = Map::new();
    fc.insert("Enabled".into(), Value::Bool(p.fail_closed.enabled));
    fc.insert("RiskClasses".into(), list(&p.fail_closed.risk_classes));
    fc.insert(
        "RequiredFields".into(),
        list(&p.fail_closed.required_fields),
    );
    put_list(
        &mut fc,
        "RequiredHighRiskFields",
        &p.fail_closed.required_high_risk_fields,
    );
    let mut top = Map::new();
    top.insert("SchemaID".into(), json!(p.schema_id));
    top.insert("SchemaVersion".into(), json!(p.schema_version));
    top.insert("DefaultVerdict".into(), json!(p.default_verdict.as_str()));
    top.insert("FailClosed".into(), Value::Object(fc));
    top.insert(
        "Rules".into(),
        Value::Array(p.rules.iter().map(rule_payload).collect()),
    );
    let s = &p.scripts;
    if s.max_steps > 0 || s.require_approval_above > 0 || s.block_mixed_risk {
        top.insert(
            "Scripts".into(),
            json!({
                "MaxSteps": s.max_steps,
                "RequireApprovalAbove": s.require_approval_above,
                "BlockMixedRisk": s.block_mixed_risk,
            }),
        );
    }
    if let Some(t) = &p.mcp_trust {
        top.insert(
            "MCPTrust".into(),
            json!({
                "Enabled": true,
                "SnapshotPath": t.snapshot,
                "Action": t.action.as_str(),
                "RequiredRiskClasses": list(&t.required_risk_classes),
                "MinScore": t.min_score,
                "MaxAge": go_duration_string(t.max_age_nanos),
                "PublisherAllowlist": list(&t.publisher_allowlist),
                "RequireRegistry": t.require_registry,
            }),
        );
    }
    Value::Object(top)
}

pub(crate) fn digest(p: &Compiled) -> String {
    crate::canon::digest(&payload(p))
}

#[cfg(test)]
mod tests {
    use super::go_duration_string;

    #[test]
    fn go_durations() {
        let h = 3_600_000_000_000i64;
        assert_eq!(go_duration_string(24 * h), "24h0m0s");
        assert_eq!(go_duration_string(90 * 60_000_000_000), "1h30m0s");
        assert_eq!(go_duration_string(1_500_000_000), "1.5s");
        assert_eq!(go_duration_string(300_000_000), "300ms");
        assert_eq!(go_duration_string(1_500), "1.5µs");
        assert_eq!(go_duration_string(0), "0s");
        assert_eq!(go_duration_string(61_000_000_000), "1m1s");
        assert_eq!(go_duration_string(-2_000_000_000), "-2s");
    }
}
