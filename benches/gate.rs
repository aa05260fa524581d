//! Gate benchmarks: a realistic MCP `tools/call` payload against generated 10- and 200-rule
//! policies (unsigned), the intent pipeline alone, policy evaluation alone, and trace signing.
//!
//! Run: `cargo bench --bench gate`. Results are recorded by hand in `perf/bench_baseline.json`.

use criterion::{Criterion, criterion_group, criterion_main};
use gait::gate::{CallOptions, Engine, EngineConfig};
use gait::intent::adapters::Adapter;
use gait::policy::{EvalOptions, Policy};
use gait::trace::Signer;
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// A policy with `n` rules of mixed selectors; the benchmark call matches the last tier only,
/// so every rule before it is tested.
fn policy_yaml(n: usize) -> String {
    let mut y = String::from(
        "schema_id: gait.gate.policy\nschema_version: 1.0.0\ndefault_verdict: block\nfail_closed:\n  enabled: true\n  risk_classes: [critical]\n  required_fields: [targets]\nrules:\n",
    );
    for i in 0..n.saturating_sub(1) {
        match i % 4 {
            0 => y.push_str(&format!(
                "  - name: block-delete-{i}\n    priority: {p}\n    effect: block\n    match: {{tool_names: [tool.delete_{i}, tool.rm_{i}], risk_classes: [high, critical]}}\n    reason_codes: [destructive_{i}]\n",
                p = 10 + i
            )),
            1 => y.push_str(&format!(
                "  - name: approve-write-{i}\n    priority: {p}\n    effect: require_approval\n    match: {{tool_names: [tool.write_{i}], target_kinds: [path], workspace_prefixes: [/srv/{i}]}}\n",
                p = 10 + i
            )),
            2 => y.push_str(&format!(
                "  - name: egress-{i}\n    priority: {p}\n    effect: allow\n    match: {{tool_names: [tool.fetch_{i}], endpoint_classes: [net.http]}}\n    endpoint: {{enabled: true, domain_denylist: [\"*.bad{i}.example\"], action: block}}\n",
                p = 10 + i
            )),
            _ => y.push_str(&format!(
                "  - name: identity-{i}\n    priority: {p}\n    effect: dry_run\n    match: {{identities: [svc-{i}], risk_classes: [low]}}\n",
                p = 10 + i
            )),
        }
    }
    y.push_str(
        "  - name: allow-github-read\n    priority: 100000\n    effect: allow\n    match: {tool_names: [tool.read], target_kinds: [host], risk_classes: [medium]}\n    reason_codes: [github_read_allowed]\n",
    );
    y
}

fn call() -> Value {
    json!({
        "name": "tool.read",
        "args": {"resource": "issues", "query": "is:open label:bug", "per_page": 50},
        "targets": [{"kind": "host", "value": "api.github.com", "operation": "read", "discovery_method": "mcp"}],
        "arg_provenance": [{"arg_path": "$.query", "source": "user"}],
        "server": {"server_id": "github", "server_name": "GitHub MCP"},
        "context": {"identity": "agent-7", "workspace": "/repo", "risk_class": "medium", "session_id": "sess-42"}
    })
}

fn engine(rules: usize) -> Engine {
    let policy = Policy::from_yaml_str(&policy_yaml(rules)).expect("bench policy");
    assert_eq!(policy.rules().len(), rules);
    Engine::new(Arc::new(policy), EngineConfig::default()).expect("bench engine")
}

fn bench(c: &mut Criterion) {
    let payload = call();
    let unsigned = CallOptions {
        sign: false,
        ..CallOptions::default()
    };
    let mut g = c.benchmark_group("gate");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);

    for rules in [10usize, 200] {
        let e = engine(rules);
        let d = e
            .evaluate_call(Adapter::Mcp, &payload, &unsigned)
            .expect("decision");
        assert_eq!(d.output.verdict, gait::Verdict::Allow);
        assert_eq!(d.output.reason_codes, ["github_read_allowed"]);
        g.bench_function(format!("evaluate_call_unsigned_{rules}_rules"), |b| {
            b.iter(|| {
                black_box(
                    e.evaluate_call(Adapter::Mcp, black_box(&payload), &unsigned)
                        .expect("decision"),
                )
            })
        });
        let call = gait::intent::decode_call(Adapter::Mcp, &payload).expect("call");
        let (req, _) =
            gait::intent::intent_from_call(&call, gait::Profile::Standard).expect("intent");
        let norm = gait::intent::normalize(&req).expect("normalize");
        let opts = EvalOptions::at(chrono::Utc::now());
        g.bench_function(format!("policy_evaluate_{rules}_rules"), |b| {
            b.iter(|| {
                black_box(
                    e.policy()
                        .evaluate_request(black_box(norm.request()), &opts),
                )
            })
        });
    }

    g.bench_function("intent_decode_normalize_digest", |b| {
        b.iter(|| {
            let call = gait::intent::decode_call(Adapter::Mcp, black_box(&payload)).expect("call");
            let (req, _) =
                gait::intent::intent_from_call(&call, gait::Profile::Standard).expect("intent");
            black_box(gait::intent::normalize(&req).expect("normalize"))
        })
    });

    let e = engine(10);
    let record = e
        .evaluate_call(Adapter::Mcp, &payload, &unsigned)
        .expect("decision")
        .trace;
    let signer = Signer::generate();
    g.bench_function("trace_sign", |b| {
        b.iter(|| {
            let mut r = record.clone();
            signer.sign_record(&mut r).expect("sign");
            black_box(r)
        })
    });
    let signed_opts = CallOptions::default();
    g.bench_function("evaluate_call_signed_10_rules", |b| {
        b.iter(|| {
            black_box(
                e.evaluate_call(Adapter::Mcp, black_box(&payload), &signed_opts)
                    .expect("decision"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
