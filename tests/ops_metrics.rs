//! The admin `/metrics` listener checked by real Prometheus tooling (ignored by default: it
//! needs `promtool`/`prometheus`, which `scripts/check_prometheus.sh` installs via apt-get).
//!
//! Run: `cargo test --test ops_metrics -- --ignored`.

use gait::ops::telemetry::{Telemetry, ToolLabels, admin};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs scripts/check_prometheus.sh (promtool + prometheus)"]
async fn prometheus_scrapes_the_admin_listener() {
    let t = Arc::new(Telemetry::new(
        ToolLabels::new(["tool.read"]),
        ToolLabels::new(["safe_read_allowed"]),
    ));
    t.decision(gait::Verdict::Allow, Some("safe_read_allowed"));
    t.tool_call("tool.read", gait::Verdict::Allow);
    t.upstream_latency("default", Duration::from_millis(4));
    t.http_request("mcp", 200, Duration::from_millis(5));
    t.journal_fsync(Duration::from_micros(300));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let h = admin::serve(
        listener,
        Arc::clone(&t),
        Some("adm1n".into()),
        cancel.clone(),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check_prometheus.sh");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script)
            .arg(format!("http://{addr}"))
            .arg("adm1n")
            .env("TIMEOUT_SECS", "45")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    cancel.cancel();
    h.await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("PASS"), "{err}");
}
