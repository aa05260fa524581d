use super::events::{AdoptionEvent, EventLogConfig, EventSink, OperationalEvent, Stream};
use super::*;
use crate::Verdict;
use std::collections::HashMap;
use std::sync::Arc;

type Parsed = (
    HashMap<String, String>,
    HashMap<String, String>,
    Vec<(String, String)>,
);

/// Parse the text exposition into (HELP, TYPE, samples) and check its line grammar.
fn parse(text: &str) -> Parsed {
    let mut help = HashMap::new();
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (n, h) = rest.split_once(' ').unwrap();
            help.insert(n.to_string(), h.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (n, t) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&t),
                "{line}"
            );
            types.insert(n.to_string(), t.to_string());
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            samples.push((series.to_string(), value.to_string()));
        }
    }
    (help, types, samples)
}

#[test]
fn metrics_render_as_valid_exposition_with_bounded_labels() {
    let t = Telemetry::new(
        ToolLabels::new(["tool.read", "tool.write"]),
        ToolLabels::new(["safe_read_allowed"]),
    );
    t.decision(Verdict::Allow, Some("safe_read_allowed"));
    t.decision(Verdict::Block, Some("attacker_controlled_reason_1"));
    t.decision(Verdict::Block, Some("attacker_controlled_reason_2"));
    t.tool_call("tool.read", Verdict::Allow);
    for i in 0..50 {
        t.tool_call(&format!("random.tool.{i}"), Verdict::Block);
    }
    t.http_request("mcp", 200, Duration::from_millis(3));
    t.upstream_latency("default", Duration::from_millis(12));
    t.journal_fsync(Duration::from_micros(800));
    t.auth_rejected(AuthReject::Missing);
    t.body_limit_rejected();
    t.retention_removed("trace", 2);
    t.policy_reload(false);
    t.queue_depth("trace", 3);
    t.mcp_sessions(1.0);
    t.rate_limited(crate::ops::ratelimit::Scope::Token);
    let text = t.render();
    let (help, types, samples) = parse(&text);
    for m in METRICS {
        assert!(m.name.starts_with("gait_"), "{}", m.name);
        match m.kind {
            Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
            Kind::Histogram => assert!(m.name.ends_with("_seconds"), "{}", m.name),
            Kind::Gauge => {}
        }
        assert!(
            types.contains_key(m.name),
            "TYPE missing for {}\n{text}",
            m.name
        );
        assert!(help.contains_key(m.name), "HELP missing for {}", m.name);
    }
    assert_eq!(types[GATE_DECISIONS], "counter");
    assert_eq!(types[UPSTREAM_DURATION], "histogram");
    assert!(samples.iter().any(|(s, v)| s
        == r#"gait_gate_decisions_total{verdict="block",reason="_other"}"#
        && v == "2"));
    let tool_series: Vec<&String> = samples
        .iter()
        .map(|(s, _)| s)
        .filter(|s| s.starts_with(TOOL_CALLS))
        .collect();
    assert_eq!(tool_series.len(), 2, "{tool_series:?}");
    assert!(samples.iter().any(|(s, v)| s
        == r#"gait_mcp_tool_calls_total{tool="_other",verdict="block"}"#
        && v == "50"));
    assert!(samples.iter().any(|(s, _)| s.starts_with(
        "gait_upstream_request_duration_seconds_bucket{upstream=\"default\",le=\"0.025\"}"
    )));
    assert!(samples.iter().any(|(s, _)| s.starts_with("gait_journal_fsync_duration_seconds_bucket{le=\"0.001\"}")));
    assert!(
        samples
            .iter()
            .any(|(s, v)| s == r#"gait_retention_removed_files_total{class="trace"}"# && v == "2")
    );
}

#[test]
fn tool_labels_are_bounded() {
    let l = ToolLabels::new(vec!["a".to_string()]);
    assert_eq!(l.label("a"), "a");
    assert_eq!(l.label("b"), OTHER);
    assert_eq!(l.len(), 1);
}

#[test]
fn admin_handler_serves_metrics_and_checks_token() {
    let t = Telemetry::default();
    let req = |path: &str, auth: Option<&str>| {
        let mut b = http::Request::builder().uri(path);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap()
    };
    let r = admin::handle(&req("/metrics", None), &t, None);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], admin::CONTENT_TYPE);
    assert_eq!(
        admin::handle(&req("/metrics", None), &t, Some("tok")).status(),
        401
    );
    assert_eq!(
        admin::handle(&req("/metrics", Some("Bearer nope")), &t, Some("tok")).status(),
        401
    );
    assert_eq!(
        admin::handle(&req("/metrics", Some("Bearer tok")), &t, Some("tok")).status(),
        200
    );
    assert_eq!(admin::handle(&req("/other", None), &t, None).status(), 404);
    assert!(
        t.render()
            .contains(r#"gait_http_auth_rejections_total{reason="invalid"} 1"#)
    );
}

#[tokio::test]
async fn admin_listener_serves_over_loopback() {
    let t = Arc::new(Telemetry::default());
    t.policy_reload(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let h = admin::serve(listener, Arc::clone(&t), None, cancel.clone());
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(r#"gait_policy_reloads_total{result="ok"} 1"#),
        "{body}"
    );
    cancel.cancel();
    h.await.unwrap();
}

#[test]
fn full_queue_drops_and_counts_without_waiting() {
    let t = Arc::new(Telemetry::default());
    let (sink, _rx) = EventSink::channel(2, [true, true], Some(Arc::clone(&t)));
    let ev = OperationalEvent::new("cid", "mcp serve", None, 0);
    let results: Vec<bool> = (0..5).map(|_| sink.try_record(&ev)).collect();
    assert_eq!(results, [true, true, false, false, false]);
    assert_eq!(sink.dropped(), 3);
    assert!(
        t.render()
            .contains(r#"gait_telemetry_events_dropped_total{stream="operational"} 3"#)
    );
    // a closed writer also drops instead of failing
    drop(_rx);
    assert!(!sink.try_record(&AdoptionEvent::new("version", None, 0, 1)));
    assert_eq!(sink.dropped(), 4);
    // disabled streams are ignored
    let (off, _rx2) = EventSink::channel(1, [false, false], None);
    assert!(off.try_record(&ev));
    assert_eq!(off.dropped(), 0);
}

fn validator(name: &str) -> jsonschema::Validator {
    let p = format!("/work/shared/compat/schemas/scout/{name}");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[tokio::test]
async fn writer_appends_valid_events_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let ops = dir.path().join("logs/ops.jsonl");
    let adopt = dir.path().join("logs/adoption.jsonl");
    let cfg = EventLogConfig {
        operational: Some(ops.clone()),
        adoption: Some(adopt.clone()),
        queue_capacity: 64,
        max_file_bytes: 1200,
        max_files: 2,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let (sink, h) = events::spawn_writer(cfg, None, cancel.clone());
    for i in 0..10u8 {
        assert!(sink.try_record(&OperationalEvent::new(
            "cid",
            "mcp serve",
            Some((i % 7, None)),
            5
        )));
    }
    assert!(sink.try_record(&AdoptionEvent::new("version", Some("wf".into()), 0, 3)));
    cancel.cancel();
    h.await.unwrap();
    let op_v = validator("operational_event.schema.json");
    let ad_v = validator("adoption_event.schema.json");
    let mut lines = 0;
    for p in [
        ops.clone(),
        PathBuf::from(format!("{}.1", ops.display())),
        PathBuf::from(format!("{}.2", ops.display())),
    ] {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        assert!(text.len() as u64 <= 1200, "{} over cap", p.display());
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(op_v.is_valid(&v), "{l}");
            lines += 1;
        }
    }
    assert!(
        sink.stats()
            .rotations
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert!((1..=10).contains(&lines));
    assert!(!PathBuf::from(format!("{}.3", ops.display())).exists());
    let a = std::fs::read_to_string(&adopt).unwrap();
    let v: serde_json::Value = serde_json::from_str(a.lines().next().unwrap()).unwrap();
    assert!(ad_v.is_valid(&v), "{a}");
    assert_eq!(Stream::Adoption.as_str(), "adoption");
}

#[tokio::test]
async fn unwritable_path_counts_failures_and_never_fails_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let cfg = EventLogConfig {
        operational: Some(blocker.join("sub/ops.jsonl")),
        adoption: None,
        queue_capacity: 8,
        max_file_bytes: 1 << 20,
        max_files: 1,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let (sink, h) = events::spawn_writer(cfg, None, cancel.clone());
    for _ in 0..3 {
        assert!(sink.try_record(&OperationalEvent::new("c", "doctor", None, 0)));
    }
    cancel.cancel();
    h.await.unwrap();
    assert_eq!(
        sink.stats()
            .write_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        sink.stats()
            .written
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

use std::path::PathBuf;

#[test]
fn labels_come_from_the_policy() {
    let p = crate::policy::Policy::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/policies/oss-prod.yaml"
    )))
    .unwrap();
    let (tools, reasons) = labels_for_policy(&p);
    assert_eq!(tools.label("tool.delete"), "tool.delete");
    assert_eq!(tools.label("tool.unknown"), OTHER);
    assert_eq!(
        reasons.label("destructive_tool_blocked"),
        "destructive_tool_blocked"
    );
    assert_eq!(reasons.label("made_up"), OTHER);
}
