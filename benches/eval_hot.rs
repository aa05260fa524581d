//! Per-call gate decision hot path (gait issue 2): MCP adapter decode + `intent_from_call`,
//! `intent::normalize` (incl. the JCS + sha256 digests), `Policy::evaluate` on a pre-normalised
//! intent, and the full chain, each against generated 10-rule and 200-rule policies.
//!
//! Run: `cargo bench --bench eval_hot` (add `-- <filter>` to pick groups). No signing here.

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion};
use gait::Profile;
use gait::intent::{self, Adapter};
use gait::policy::{EvalOptions, Policy};
use serde_json::{Value, json};

fn call() -> Value {
    json!({
        "name": "tool.read",
        "args": {"path": "/srv/data/report.csv", "limit": 10},
        "targets": [{"kind": "path", "value": "/srv/data/report.csv", "operation": "read"}],
        "context": {"identity": "agent-1", "workspace": "/srv", "risk_class": "high", "session_id": "s1"}
    })
}

/// `n` rules that mostly miss (so evaluation scans all of them), ending in the rules that match
/// the benchmark call: an endpoint allowlist rule and a high-risk path rule.
fn policy_yaml(n: usize) -> String {
    let mut y = String::from(
        "schema_id: gait.gate.policy\nschema_version: 1.0.0\ndefault_verdict: block\nrules:\n",
    );
    let fillers = n.saturating_sub(2);
    for i in 0..fillers {
        let prio = 10 + i;
        let body = match i % 5 {
            0 => format!(
                "    effect: block\n    match:\n      tool_names: [tool.delete{i}, tool.drop{i}]\n    reason_codes: [blocked_{i}]\n    violations: [destructive_operation]\n"
            ),
            1 => format!(
                "    effect: allow\n    match:\n      tool_names: [tool.list{i}]\n      risk_classes: [low, medium]\n    reason_codes: [allowed_{i}]\n"
            ),
            2 => format!(
                "    effect: require_approval\n    min_approvals: 1\n    match:\n      risk_classes: [high, critical]\n      target_kinds: [bucket, queue]\n    reason_codes: [approval_{i}]\n"
            ),
            3 => format!(
                "    effect: allow\n    match:\n      tool_names: [tool.write{i}]\n      endpoint_classes: [fs.write, net.http]\n    endpoint:\n      enabled: true\n      path_allowlist: [/tmp/gait/**]\n      path_denylist: [/tmp/gait/blocked/**]\n      domain_allowlist: [api.internal.local]\n      egress_classes: [net.http]\n      action: block\n      reason_code: endpoint_policy_violation\n      violation: endpoint_policy_violation\n"
            ),
            _ if i == 4 => format!(
                "    effect: allow\n    match:\n      tool_names: [tool.fetch{i}]\n    dataflow:\n      enabled: true\n      tainted_sources: [external, tool_output]\n      destination_kinds: [host, url]\n      action: block\n    reason_codes: [fetch_{i}]\n"
            ),
            _ => format!(
                "    effect: dry_run\n    match:\n      tool_names: [tool.exec{i}]\n      risk_classes: [high]\n      target_kinds: [host]\n    reason_codes: [dry_{i}]\n"
            ),
        };
        y.push_str(&format!("  - name: rule-{i}\n    priority: {prio}\n{body}"));
    }
    let p = 10 + fillers;
    y.push_str(&format!(
        "  - name: read-endpoint\n    priority: {p}\n    effect: allow\n    match:\n      tool_names: [tool.read]\n    endpoint:\n      enabled: true\n      path_allowlist: [/srv/**]\n      path_denylist: [/srv/secret/**]\n      action: block\n    reason_codes: [read_allowed]\n"
    ));
    y.push_str(&format!(
        "  - name: high-risk-path\n    priority: {}\n    effect: require_approval\n    match:\n      risk_classes: [high, critical]\n      target_kinds: [path]\n    reason_codes: [high_risk_path]\n",
        p // same tier as read-endpoint: most restrictive wins (require_approval)
    ));
    y
}

fn bench(c: &mut Criterion) {
    let payload = call();
    let opts = EvalOptions::at(Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap());
    let tc = intent::decode_call(Adapter::Mcp, &payload).unwrap();
    let (req, _) = intent::intent_from_call(&tc, Profile::Standard).unwrap();
    let normalized = intent::normalize(&req).unwrap();

    let mut g = c.benchmark_group("eval_hot");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    g.bench_function("a_decode_intent_from_call", |b| {
        b.iter(|| {
            let tc = intent::decode_call(Adapter::Mcp, black_box(&payload)).unwrap();
            intent::intent_from_call(&tc, Profile::Standard).unwrap()
        })
    });
    g.bench_function("b_normalize", |b| {
        b.iter(|| intent::normalize(black_box(&req)).unwrap())
    });
    for n in [10usize, 200] {
        let policy = Policy::from_yaml_str(&policy_yaml(n)).unwrap();
        assert_eq!(policy.rules().len(), n);
        let e = policy.evaluate(&normalized, &opts);
        assert_eq!(e.verdict, gait::Verdict::RequireApproval, "{e:?}");
        g.bench_with_input(BenchmarkId::new("c_evaluate", n), &policy, |b, p| {
            b.iter(|| p.evaluate(black_box(&normalized), &opts))
        });
        g.bench_with_input(BenchmarkId::new("d_full_chain", n), &policy, |b, p| {
            b.iter(|| {
                let tc = intent::decode_call(Adapter::Mcp, black_box(&payload)).unwrap();
                let (req, _) = intent::intent_from_call(&tc, Profile::Standard).unwrap();
                let n = intent::normalize(&req).unwrap();
                p.evaluate(&n, &opts)
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
