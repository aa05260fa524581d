//! The ops side of a running `mcp serve`: metrics registry and admin listener, rate limiter,
//! retention task and telemetry event writer, started together and stopped together.
//!
//! The server calls [`OpsRuntime::start`] after validating its config and before accepting,
//! hands [`OpsRuntime::telemetry`] and [`OpsRuntime::rate_limiter`] to its layers, and calls
//! [`OpsRuntime::shutdown`] after draining (the event writer flushes its queue first).
//! Invariant: nothing started here sits on the request path except the two handles.

use super::config::{ProjectConfig, is_loopback_host, resolve_listen, split_host_port};
use super::env::Env;
use super::ratelimit::RateLimiter;
use super::retention::{self, ClassDirs, RetentionPolicy};
use super::telemetry::events::{self, EventLogConfig, EventSink};
use super::telemetry::{Telemetry, ToolLabels, admin};
use crate::server::config::ServeConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the ops runtime could not start (invalid input, exit 6, except `Bind`).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("invalid metrics.listen {0:?}: {1}")]
    Listen(String, String),
    #[error(
        "metrics.listen {0} is not loopback: set metrics.auth_token_env to require a bearer token"
    )]
    PublicMetricsWithoutAuth(String),
    #[error("env var {0} named by metrics.auth_token_env is empty or unset")]
    EmptyToken(String),
    #[error("bind metrics listener {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

/// Running ops services.
pub struct OpsRuntime {
    pub telemetry: Arc<Telemetry>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Present when an operational or adoption log is configured.
    pub events: Option<EventSink>,
    /// Bound address of the admin listener, when enabled.
    pub admin_addr: Option<SocketAddr>,
    /// Whether a retention task is running.
    pub retention_enabled: bool,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for OpsRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsRuntime")
            .field("admin_addr", &self.admin_addr)
            .field("retention_enabled", &self.retention_enabled)
            .finish_non_exhaustive()
    }
}

impl OpsRuntime {
    /// Start everything the project config asks for. `tools`/`reasons` bound the metric
    /// labels (from the policy: `Policy::tool_names()` and its rules' reason codes).
    pub async fn start(
        project: &ProjectConfig,
        serve: &ServeConfig,
        env: &dyn Env,
        tools: ToolLabels,
        reasons: ToolLabels,
        parent: &CancellationToken,
    ) -> Result<OpsRuntime, OpsError> {
        let cancel = parent.child_token();
        let telemetry = Arc::new(Telemetry::new(tools, reasons));
        let rate_limiter = Arc::new(RateLimiter::from_config(&project.rate_limits));
        let mut tasks = Vec::new();

        let mut admin_addr = None;
        let m = &project.metrics;
        if m.enabled {
            let addr =
                resolve_listen(&m.listen).map_err(|e| OpsError::Listen(m.listen.clone(), e))?;
            let host = split_host_port(&m.listen)
                .map(|(h, _)| h)
                .map_err(|e| OpsError::Listen(m.listen.clone(), e))?;
            let token = match m.auth_token_env.as_deref().map(str::trim) {
                Some(var) if !var.is_empty() => match env.get(var) {
                    Some(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                    _ => return Err(OpsError::EmptyToken(var.to_string())),
                },
                _ => None,
            };
            if token.is_none() && !is_loopback_host(&host) {
                return Err(OpsError::PublicMetricsWithoutAuth(m.listen.clone()));
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| OpsError::Bind(addr, e))?;
            admin_addr = listener.local_addr().ok();
            tasks.push(admin::serve(
                listener,
                Arc::clone(&telemetry),
                token,
                cancel.clone(),
            ));
        }

        let mut policy = RetentionPolicy::from_config(
            &project.retention,
            &ClassDirs {
                trace: Some(serve.trace_dir.clone()),
                runpack: serve.runpack_dir.clone(),
                pack: serve.pack_dir.clone(),
                session: Some(serve.session_dir.clone()),
            },
        );
        let retention_enabled = !policy.is_empty();
        if retention_enabled {
            policy.telemetry = Some(Arc::clone(&telemetry));
            tasks.push(retention::spawn(
                policy,
                project.retention.sweep_interval,
                cancel.clone(),
            ));
        }

        let ev_cfg = EventLogConfig::from_section(&project.telemetry);
        let events = if ev_cfg.operational.is_some() || ev_cfg.adoption.is_some() {
            let (sink, h) =
                events::spawn_writer(ev_cfg, Some(Arc::clone(&telemetry)), cancel.clone());
            tasks.push(h);
            Some(sink)
        } else {
            None
        };

        Ok(OpsRuntime {
            telemetry,
            rate_limiter,
            events,
            admin_addr,
            retention_enabled,
            cancel,
            tasks,
        })
    }

    /// Record `mcp serve`'s operational `start` (`end == None`) or `end` event, and with the
    /// end its adoption event, through the bounded event writer (never blocks; a full queue
    /// drops and counts).
    pub fn record_lifecycle(&self, correlation_id: &str, end: Option<u8>, elapsed_ms: u64) {
        let Some(sink) = &self.events else { return };
        let ev = events::OperationalEvent::new(
            correlation_id,
            "mcp serve",
            end.map(|c| (c, None)),
            elapsed_ms,
        );
        sink.try_record(&ev);
        if let Some(code) = end {
            let wf = std::env::var("GAIT_ADOPTION_WORKFLOW").ok();
            sink.try_record(&events::AdoptionEvent::new(
                "mcp serve",
                wf,
                code,
                elapsed_ms,
            ));
        }
    }

    /// Stop every task and wait for them (the event writer drains its queue first).
    pub async fn shutdown(self) {
        self.cancel.cancel();
        drop(self.events);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::env::MapEnv;

    #[tokio::test]
    async fn starts_admin_listener_and_stops() {
        let mut p = ProjectConfig::default();
        p.metrics.enabled = true;
        p.metrics.listen = "127.0.0.1:0".into();
        let dir = tempfile::tempdir().unwrap();
        p.telemetry.operational_log = Some(dir.path().join("ops.jsonl").display().to_string());
        p.retention.trace.max_count = Some(10);
        let serve = ServeConfig {
            trace_dir: dir.path().join("traces"),
            session_dir: dir.path().join("sessions"),
            ..ServeConfig::default()
        };
        let cancel = CancellationToken::new();
        let rt = OpsRuntime::start(
            &p,
            &serve,
            &MapEnv::new(),
            ToolLabels::default(),
            ToolLabels::default(),
            &cancel,
        )
        .await
        .unwrap();
        assert!(rt.retention_enabled);
        let addr = rt.admin_addr.unwrap();
        let ev = events::OperationalEvent::new("cid", "mcp serve", None, 0);
        assert!(rt.events.as_ref().unwrap().try_record(&ev));
        rt.record_lifecycle("cid", None, 0);
        rt.record_lifecycle("cid", Some(3), 7);
        let body = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            body.contains("# TYPE gait_mcp_sessions_active gauge"),
            "{body}"
        );
        rt.shutdown().await;
        let written = std::fs::read_to_string(dir.path().join("ops.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{written}");
        assert_eq!(lines[1]["phase"], "start");
        assert_eq!(lines[2]["phase"], "end");
        assert_eq!(lines[2]["exit_code"], 3);
        assert_eq!(lines[2]["command"], "mcp serve");
    }

    #[tokio::test]
    async fn refuses_public_metrics_without_token_and_empty_token_env() {
        let mut p = ProjectConfig::default();
        p.metrics.enabled = true;
        p.metrics.listen = "0.0.0.0:0".into();
        let cancel = CancellationToken::new();
        let s = ServeConfig::default();
        let e = OpsRuntime::start(
            &p,
            &s,
            &MapEnv::new(),
            ToolLabels::default(),
            ToolLabels::default(),
            &cancel,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpsError::PublicMetricsWithoutAuth(_)), "{e}");
        p.metrics.auth_token_env = Some("MTOK".into());
        let e = OpsRuntime::start(
            &p,
            &s,
            &MapEnv::from([("MTOK", " ")]),
            ToolLabels::default(),
            ToolLabels::default(),
            &cancel,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OpsError::EmptyToken(_)), "{e}");
    }
}
