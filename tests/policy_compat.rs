//! Every policy under compat/policies loads, and the example intents evaluate to the verdicts
//! and reason codes gate.md implies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gait::Verdict;
use gait::intent::IntentRequest;
use gait::policy::trust::{self, RequiredFrom, ServerRef};
use gait::policy::{EvalOptions, Evaluation, KillSwitchInput, KillSwitchState, Policy};

const COMPAT: &str = "/work/shared/compat/policies";

fn compat(rel: &str) -> PathBuf {
    Path::new(COMPAT).join(rel)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn every_compat_policy_loads() {
    let mut files = Vec::new();
    yaml_files(Path::new(COMPAT), &mut files);
    assert!(
        files.len() >= 30,
        "expected the whole corpus, found {}",
        files.len()
    );
    for f in &files {
        let p = Policy::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(p.digest().len(), 64, "{}", f.display());
    }
    // The template and the example copy of baseline-highrisk are the same policy.
    let a = Policy::load(&compat("templates/baseline-highrisk.yaml")).expect("load");
    let b = Policy::load(&compat("examples/baseline-highrisk.yaml")).expect("load");
    assert_eq!(a.digest(), b.digest());
    let trust = Policy::load(&compat("mcp_trust/policy.yaml")).expect("load");
    let t = trust.mcp_trust().expect("mcp_trust enabled");
    assert_eq!(t.required_risk_classes, vec!["high"]);
    assert_eq!(t.action, Verdict::Block);
}

/// Test-local stand-in for `intent::normalize` (§3.2 subset the examples need): lowercasing,
/// endpoint-class and destructive inference, discovery_method default, phase default.
fn normalize(mut i: IntentRequest) -> IntentRequest {
    i.tool_name = i.tool_name.trim().to_lowercase();
    let base = i.tool_name.rsplit('.').next().unwrap_or("").to_string();
    let infer = |t: &mut gait::intent::Target, tool: &str, base: &str| {
        t.kind = t.kind.trim().to_lowercase();
        t.operation = t.operation.trim().to_lowercase();
        t.endpoint_class = t.endpoint_class.trim().to_lowercase();
        t.endpoint_domain = t.endpoint_domain.trim().to_lowercase();
        let op = t.operation.as_str();
        if t.endpoint_class.is_empty() {
            t.endpoint_class = match t.kind.as_str() {
                "path" => match op {
                    "read" | "get" | "list" | "open" | "cat" | "head" | "download" | "stat" => {
                        "fs.read"
                    }
                    "write" | "append" | "put" | "create" | "update" | "save" | "copy" | "move"
                    | "rename" => "fs.write",
                    "delete" | "remove" | "rm" | "unlink" | "rmdir" | "drop" | "truncate" => {
                        "fs.delete"
                    }
                    _ if ["read", "list", "fetch", "search"]
                        .iter()
                        .any(|h| base.contains(h)) =>
                    {
                        "fs.read"
                    }
                    _ if ["write", "update", "save", "create"]
                        .iter()
                        .any(|h| base.contains(h)) =>
                    {
                        "fs.write"
                    }
                    _ if ["delete", "remove", "rm", "drop"]
                        .iter()
                        .any(|h| base.contains(h)) =>
                    {
                        "fs.delete"
                    }
                    _ => "other",
                },
                "host" | "url" if matches!(op, "dns" | "resolve" | "lookup") => "net.dns",
                "host" | "url" => "net.http",
                "other"
                    if matches!(op, "exec" | "spawn" | "run" | "shell" | "command")
                        || ["exec", "shell", "command", "spawn", "run"]
                            .iter()
                            .any(|h| tool.contains(h)) =>
                {
                    "proc.exec"
                }
                _ => "other",
            }
            .to_string();
        }
        if t.endpoint_domain.is_empty() && t.kind == "host" {
            t.endpoint_domain = t.value.trim().to_lowercase();
        }
        t.destructive = t.destructive
            || t.destructive_hint
            || matches!(t.endpoint_class.as_str(), "fs.delete" | "proc.exec")
            || matches!(
                op,
                "delete"
                    | "remove"
                    | "rm"
                    | "unlink"
                    | "rmdir"
                    | "drop"
                    | "truncate"
                    | "exec"
                    | "spawn"
            );
        if t.discovery_method.is_empty() {
            t.discovery_method = "unknown".to_string();
        }
    };
    let tool = i.tool_name.clone();
    for t in &mut i.targets {
        infer(t, &tool, &base);
    }
    if let Some(script) = &mut i.script {
        for step in &mut script.steps {
            step.tool_name = step.tool_name.trim().to_lowercase();
            let b = step.tool_name.rsplit('.').next().unwrap_or("").to_string();
            let tn = step.tool_name.clone();
            for t in &mut step.targets {
                infer(t, &tn, &b);
            }
        }
    }
    for p in &mut i.arg_provenance {
        p.source = p.source.trim().to_lowercase();
    }
    i.context.risk_class = i.context.risk_class.trim().to_lowercase();
    if i.context.phase.trim().is_empty() {
        i.context.phase = "apply".to_string();
    }
    i
}

fn load_intent(rel: &str) -> IntentRequest {
    let bytes = std::fs::read(compat(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    normalize(serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn run(policy: &str, intent: &str) -> Evaluation {
    run_at(policy, intent, at("2026-05-10T00:00:00Z"))
}

fn run_at(policy: &str, intent: &str, now: DateTime<Utc>) -> Evaluation {
    let p = Policy::load(&compat(policy)).unwrap_or_else(|e| panic!("{policy}: {e}"));
    p.evaluate_request(&load_intent(intent), &EvalOptions::at(now))
}

fn v(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn expect(e: &Evaluation, verdict: Verdict, reasons: &[&str], violations: &[&str]) {
    assert_eq!(
        (e.verdict, &e.reason_codes, &e.violations),
        (verdict, &v(reasons), &v(violations)),
        "{e:#?}"
    );
}

#[test]
fn endpoint_examples() {
    let block = "examples/endpoint/block_denied_endpoints.yaml";
    let e = run(block, "examples/endpoint/fixtures/intent_block.json");
    expect(
        &e,
        Verdict::Block,
        &[
            "endpoint_path_denied",
            "endpoint_policy_violation",
            "matched_rule_endpoint_deny",
        ],
        &["endpoint_path_denied", "endpoint_policy_violation"],
    );
    assert_eq!(e.matched_rule.as_deref(), Some("endpoint-deny"));
    let e = run(block, "examples/endpoint/fixtures/intent_allow.json");
    expect(&e, Verdict::Allow, &["matched_rule_endpoint_deny"], &[]);
    let e = run(block, "examples/endpoint/fixtures/intent_destructive.json");
    expect(
        &e,
        Verdict::RequireApproval,
        &[
            "destructive_apply_requires_approval",
            "matched_rule_endpoint_deny",
        ],
        &[],
    );

    let safe = "examples/endpoint/allow_safe_endpoints.yaml";
    let e = run(safe, "examples/endpoint/fixtures/intent_allow.json");
    expect(
        &e,
        Verdict::Allow,
        &["matched_rule_endpoint_safe_allow"],
        &[],
    );
    let e = run(safe, "examples/endpoint/fixtures/intent_block.json");
    expect(
        &e,
        Verdict::Block,
        &[
            "endpoint_path_not_allowlisted",
            "endpoint_policy_violation",
            "matched_rule_endpoint_safe_allow",
        ],
        &["endpoint_path_not_allowlisted", "endpoint_policy_violation"],
    );

    let destructive = "examples/endpoint/require_approval_destructive.yaml";
    let e = run(
        destructive,
        "examples/endpoint/fixtures/intent_destructive.json",
    );
    expect(
        &e,
        Verdict::RequireApproval,
        &[
            "destructive_apply_requires_approval",
            "endpoint_destructive_guard",
            "endpoint_destructive_operation",
            "matched_rule_endpoint_destructive_approval",
        ],
        &["destructive_operation", "endpoint_destructive_guard"],
    );
    let e = run(destructive, "examples/endpoint/fixtures/intent_allow.json");
    expect(
        &e,
        Verdict::Allow,
        &["matched_rule_endpoint_destructive_approval"],
        &[],
    );
}

#[test]
fn freeze_window_examples() {
    let intent = "examples/freeze_windows/intent_prod_deploy.json";
    // 10:00 in Toronto (EDT) is 14:00Z, inside 09:00–12:00 local.
    let inside = at("2026-03-10T14:00:00Z");
    let outside = at("2026-03-10T16:00:00Z");
    let e = run_at(
        "examples/freeze_windows/production_block.yaml",
        intent,
        inside,
    );
    expect(
        &e,
        Verdict::Block,
        &[
            "freeze_window_active_block",
            "matched_rule_allow_prod_deploy",
        ],
        &["freeze_window_active_block"],
    );
    let d = e.freeze_window.expect("decision");
    assert_eq!(
        (d.status.as_str(), d.window_name.as_str()),
        ("active", "quarter-end")
    );
    assert_eq!(d.reason, "quarter-end freeze");
    let e = run_at(
        "examples/freeze_windows/production_block.yaml",
        intent,
        outside,
    );
    expect(&e, Verdict::Allow, &["matched_rule_allow_prod_deploy"], &[]);
    let e = run_at(
        "examples/freeze_windows/production_require_approval.yaml",
        intent,
        inside,
    );
    expect(
        &e,
        Verdict::RequireApproval,
        &[
            "freeze_window_active_require_approval",
            "matched_rule_allow_prod_deploy",
        ],
        &["freeze_window_active_require_approval"],
    );
    assert_eq!(e.min_approvals, 1);
}

#[test]
fn sandbox_examples() {
    let p = "examples/sandbox/allow_sandboxed_exec.yaml";
    let e = run(p, "examples/sandbox/intent_proc_exec_valid.json");
    expect(
        &e,
        Verdict::Allow,
        &["matched_rule_allow_sandboxed_exec"],
        &[],
    );
    assert_eq!(e.sandbox.expect("decision").status, "valid");
    let e = run(p, "examples/sandbox/intent_proc_exec_missing_sandbox.json");
    assert_eq!(e.verdict, Verdict::Block);
    assert!(
        e.reason_codes
            .contains(&"sandbox_metadata_missing".to_string()),
        "{e:?}"
    );
    assert_eq!(e.violations, v(&["sandbox_metadata_missing"]));
    let e = run(
        p,
        "examples/sandbox/intent_proc_exec_permissive_network.json",
    );
    assert_eq!(e.verdict, Verdict::Block);
    assert!(
        e.reason_codes
            .contains(&"sandbox_network_mode_disallowed".to_string()),
        "{e:?}"
    );
    assert_eq!(e.sandbox.expect("decision").status, "disallowed");
}

#[test]
fn kill_switch_example() {
    let p = Policy::load(&compat("examples/kill_switch/allow_exec.yaml")).expect("load");
    let intent = load_intent("examples/kill_switch/intent_exec.json");
    let now = at("2026-05-10T00:00:00Z");
    let e = p.evaluate_request(&intent, &EvalOptions::at(now));
    expect(
        &e,
        Verdict::RequireApproval,
        &[
            "destructive_apply_requires_approval",
            "matched_rule_allow_exec",
        ],
        &[],
    );
    let state = KillSwitchState::load(&compat(
        "examples/kill_switch/kill_switch_state_identity.json",
    ))
    .expect("state");
    let mut opts = EvalOptions::at(now);
    opts.kill_switch = KillSwitchInput::Loaded(Arc::new(state));
    let e = p.evaluate_request(&intent, &opts);
    expect(
        &e,
        Verdict::Block,
        &[
            "destructive_apply_requires_approval",
            "kill_switch_active",
            "kill_switch_identity_active",
            "matched_rule_allow_exec",
        ],
        &["kill_switch_active"],
    );
    let d = e.kill_switch.expect("decision");
    assert_eq!(d.matched_entry_ids, v(&["identity-stop"]));
    assert_eq!(
        serde_json::to_value(&d).expect("json")["evaluated_at"],
        serde_json::json!("2026-05-10T00:00:00Z")
    );
}

#[test]
fn high_risk_baseline_examples() {
    let p = "examples/base_high_risk.yaml";
    for allow in ["aws_sts_allow", "github_oidc_allow", "vault_dynamic_allow"] {
        let e = run(p, &format!("examples/credentials/intent_{allow}.json"));
        expect(&e, Verdict::Allow, &["delegated_egress_write_allowed"], &[]);
        assert_eq!(
            e.matched_rule.as_deref(),
            Some("allow-delegated-egress-write")
        );
    }
    for (block, code) in [
        (
            "aws_iam_user_cloud_admin_block",
            "standing_credential_disallowed",
        ),
        ("env_inherited_block", "credential_not_jit"),
        ("github_pat_static_block", "credential_source_disallowed"),
        (
            "unknown_provenance_block",
            "credential_access_type_disallowed",
        ),
    ] {
        let e = run(p, &format!("examples/credentials/intent_{block}.json"));
        assert_eq!(e.verdict, Verdict::Block, "{block}: {e:?}");
        assert!(e.reason_codes.contains(&code.to_string()), "{block}: {e:?}");
        assert!(e.violations.contains(&code.to_string()), "{block}: {e:?}");
        assert!(
            e.reason_codes
                .contains(&"delegated_egress_write_allowed".to_string())
        );
    }
    let e = run(p, "examples/intents/intent_delegated_egress_valid.json");
    expect(&e, Verdict::Allow, &["delegated_egress_write_allowed"], &[]);
    let e = run(p, "examples/intents/intent_delegated_egress_invalid.json");
    expect(
        &e,
        Verdict::Block,
        &["delegation_required_for_egress_write"],
        &["missing_or_invalid_delegation"],
    );
    let e = run(p, "examples/intents/intent_tainted_egress.json");
    expect(
        &e,
        Verdict::Block,
        &["blocked_tainted_egress"],
        &["tainted_data_exfiltration"],
    );
    let e = run(p, "examples/intents/intent_delete.json");
    expect(
        &e,
        Verdict::Block,
        &[
            "destructive_apply_requires_approval",
            "destructive_tool_blocked",
        ],
        &["destructive_operation"],
    );
    let e = run(p, "examples/intents/intent_read.json");
    expect(&e, Verdict::Allow, &["safe_read_allowed"], &[]);
    let e = run(p, "examples/intents/intent_write.json");
    expect(
        &e,
        Verdict::RequireApproval,
        &["approval_required_for_write"],
        &["approval_required"],
    );
    assert_eq!(e.min_approvals, 2);
    assert!(e.require_distinct_approvers && e.require_broker_credential);
    assert_eq!(e.broker_reference, "highrisk-egress");
}

#[test]
fn low_medium_and_knowledge_worker_examples() {
    for p in [
        "examples/base_low_risk.yaml",
        "templates/baseline-lowrisk.yaml",
    ] {
        let e = run(p, "examples/intents/intent_write.json");
        expect(
            &e,
            Verdict::RequireApproval,
            &["approval_required_for_write"],
            &["approval_required"],
        );
        assert_eq!(e.min_approvals, 1);
        assert_eq!(
            run(p, "examples/intents/intent_read.json").verdict,
            Verdict::Allow
        );
        assert_eq!(
            run(p, "examples/intents/intent_delete.json").verdict,
            Verdict::Block
        );
    }
    let m = "examples/base_medium_risk.yaml";
    expect(
        &run(m, "examples/intents/intent_read.json"),
        Verdict::Allow,
        &["safe_read_allowed"],
        &[],
    );
    let k = "examples/knowledge_worker_safe.yaml";
    expect(
        &run(k, "examples/intents/intent_read.json"),
        Verdict::Allow,
        &["safe_read_allowed"],
        &[],
    );
    let e = run(k, "examples/intents/intent_delete.json");
    expect(
        &e,
        Verdict::RequireApproval,
        &[
            "break_glass_required_for_permanent_delete",
            "destructive_apply_requires_approval",
        ],
        &["destructive_operation"],
    );
    assert_eq!(e.min_approvals, 2);
}

#[test]
fn trust_graduation_script_examples() {
    let intent = "examples/trust_graduation/script_write_intent.json";
    let cases = [
        ("examples/trust_graduation/observe.yaml", Verdict::Allow),
        (
            "examples/trust_graduation/read_only_allow.yaml",
            Verdict::Block,
        ),
        (
            "examples/trust_graduation/approval_gated_write.yaml",
            Verdict::RequireApproval,
        ),
        ("examples/trust_graduation/dry_run.yaml", Verdict::DryRun),
        (
            "examples/trust_graduation/blocked_destructive.yaml",
            Verdict::Block,
        ),
        // The brokered rule's credential constraints block a call with no credential evidence.
        (
            "examples/trust_graduation/brokered_write.yaml",
            Verdict::Block,
        ),
    ];
    for (p, want) in cases {
        let e = run(p, intent);
        assert_eq!(e.verdict, want, "{p}: {e:?}");
        let s = e.script.as_ref().expect("script summary");
        assert_eq!(
            (s.step_count, s.composite_risk_class.as_str()),
            (1, "medium"),
            "{p}"
        );
    }
    let e = run("examples/trust_graduation/dry_run.yaml", intent);
    assert_eq!(e.reason_codes, v(&["matched_rule_dry_run_write"]));
    let e = run("examples/trust_graduation/brokered_write.yaml", intent);
    assert!(
        e.reason_codes
            .contains(&"credential_evidence_missing".to_string()),
        "{e:?}"
    );
}

#[test]
fn skills_examples() {
    let mut i = load_intent("examples/intents/intent_write.json");
    let allow = Policy::load(&compat("examples/skills/allow_trusted.yaml")).expect("load");
    let block = Policy::load(&compat("examples/skills/block_untrusted.yaml")).expect("load");
    let approve = Policy::load(&compat(
        "examples/skills/require_approval_untrusted_source.yaml",
    ))
    .expect("load");
    let opts = EvalOptions::at(at("2026-05-10T00:00:00Z"));
    // No skill provenance: skill selectors never match.
    assert_eq!(
        allow.evaluate_request(&i, &opts).reason_codes,
        v(&["default_block"])
    );
    assert_eq!(block.evaluate_request(&i, &opts).verdict, Verdict::Allow);
    i.skill_provenance = Some(gait::intent::SkillProvenance {
        skill_name: "s".into(),
        source: "Registry".into(),
        publisher: "ACME".into(),
        ..Default::default()
    });
    expect(
        &allow.evaluate_request(&i, &opts),
        Verdict::Allow,
        &["skill_trusted"],
        &[],
    );
    assert_eq!(approve.evaluate_request(&i, &opts).verdict, Verdict::Allow);
    i.skill_provenance.as_mut().expect("skill").publisher = "compromised".into();
    i.skill_provenance.as_mut().expect("skill").source = "git".into();
    expect(
        &block.evaluate_request(&i, &opts),
        Verdict::Block,
        &["skill_untrusted_publisher"],
        &["skill_untrusted_publisher"],
    );
    expect(
        &approve.evaluate_request(&i, &opts),
        Verdict::RequireApproval,
        &["skill_untrusted_source"],
        &["skill_untrusted_source"],
    );
}

#[test]
fn mcp_trust_example() {
    let p = Policy::load(&compat("mcp_trust/policy.yaml")).expect("load");
    let t = p.mcp_trust().expect("trust");
    let snap = trust::load_snapshot(&compat("mcp_trust/trust_snapshot.json"));
    let server: ServerRef = serde_json::from_slice(
        &std::fs::read(compat("mcp_trust/server_github.json")).expect("read"),
    )
    .expect("server");
    let now = at("2026-03-02T00:00:00Z");
    let d = trust::decide(
        t,
        &snap,
        Some(&server),
        "high",
        "high",
        RequiredFrom::Defaulted,
        now,
    );
    assert_eq!(d.status, "trusted");
    assert_eq!(d.reason_codes, v(&["mcp_trust_verified"]));
    assert_eq!(
        d.decision_source,
        "examples/integrations/mcp_trust/snyk_mcp_report.json"
    );
    assert!(d.required && !d.enforced);
    let unknown = ServerRef {
        server_id: "gitlab".into(),
        ..Default::default()
    };
    let d = trust::decide(
        t,
        &snap,
        Some(&unknown),
        "high",
        "high",
        RequiredFrom::Defaulted,
        now,
    );
    assert!(d.enforced);
    let mut e = p.evaluate_request(
        &load_intent("examples/intents/intent_read.json"),
        &EvalOptions::at(now),
    );
    trust::apply(&mut e, &d, t.action);
    expect(
        &e,
        Verdict::Block,
        &["default_allow", "mcp_trust_server_unknown"],
        &["mcp_trust_policy"],
    );
}
