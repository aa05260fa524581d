//! `gait mcp serve`: the MCP reverse proxy and the evaluate API.
//!
//! Every flag is an `Option` so "unset" is visible: [`McpServeArgs::apply`] layers only the flags
//! the user gave over a [`ServeConfig`] that already holds the defaults and the project config
//! file. The server itself lives in [`crate::server`].

use super::Ctx;
use crate::exit::Category;
use crate::server::config::{ConfigError, ServeConfig, TlsConfig, UpstreamConfig};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args, Default, Clone)]
pub struct McpServeArgs {
    /// Policy YAML (required). Hot-reloaded on change and on SIGHUP.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Listen address (default 127.0.0.1:8787). Non-loopback requires --auth-mode token.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Upstream MCP endpoint: `URL` (served at /mcp) or `NAME=URL` (served at /mcp/NAME).
    /// Repeatable.
    #[arg(long = "upstream", value_name = "[NAME=]URL")]
    pub upstream: Vec<String>,
    /// Inject `Authorization` for upstream NAME from env var VAR (`NAME=VAR`; a bare token is
    /// sent as `Bearer <token>`). The caller's Authorization is never forwarded. Repeatable.
    #[arg(long = "upstream-auth-env", value_name = "NAME=VAR")]
    pub upstream_auth_env: Vec<String>,
    /// Extra CA certificate (PEM) trusted for https:// upstreams.
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,
    /// Default adapter of the evaluate API: mcp|openai|anthropic|langchain|claude_code.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Evaluation profile: standard|oss-prod.
    #[arg(long)]
    pub profile: Option<String>,
    /// Authentication: off|token.
    #[arg(long)]
    pub auth_mode: Option<String>,
    /// Env var holding the bearer token(s): `identity=token,identity2=token2` or one bare token
    /// (identity `token`). The identity is bound to every call made with that token.
    #[arg(long)]
    pub auth_token_env: Option<String>,
    /// Maximum request body in bytes (default 1048576).
    #[arg(long)]
    pub max_request_bytes: Option<u64>,
    /// compat (HTTP 200 for every verdict, default) or strict (block 403, approval/dry-run 409).
    #[arg(long)]
    pub http_verdict_status: Option<String>,
    /// Allow evaluate-API clients to name artifact paths (confined to the configured dirs).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub allow_client_artifact_paths: Option<bool>,
    /// Extra allowed browser `Origin` (exact match). Loopback origins are always allowed.
    #[arg(long = "allowed-origin")]
    pub allowed_origin: Vec<String>,
    /// Directory for signed traces (default ./gait-out/mcp-serve/traces).
    #[arg(long)]
    pub trace_dir: Option<PathBuf>,
    /// Proxy-path traces: `files` (one pretty-JSON file per decision, Go's format; default) or
    /// `segments` (signed records appended as JSON lines to rotating `trace_seg_*.jsonl` files).
    #[arg(long)]
    pub trace_sink: Option<String>,
    /// Records per trace segment before the next one starts (default 16384).
    #[arg(long)]
    pub trace_segment_records: Option<u64>,
    #[arg(long)]
    pub runpack_dir: Option<PathBuf>,
    #[arg(long)]
    pub pack_dir: Option<PathBuf>,
    /// Session journal directory (default ./gait-out/mcp-serve/sessions).
    #[arg(long)]
    pub session_dir: Option<PathBuf>,
    /// Append one JSON line per decision to this file.
    #[arg(long)]
    pub export_log_out: Option<PathBuf>,
    /// Append one OTel-style JSON line per decision to this file.
    #[arg(long)]
    pub export_otel_out: Option<PathBuf>,
    /// Signing key mode: dev|prod.
    #[arg(long)]
    pub key_mode: Option<String>,
    #[arg(long)]
    pub private_key: Option<PathBuf>,
    #[arg(long)]
    pub private_key_env: Option<String>,
    /// `context.workspace` put on every proxied tools/call.
    #[arg(long)]
    pub workspace: Option<String>,
    /// `context.risk_class` put on every proxied tools/call.
    #[arg(long)]
    pub risk_class: Option<String>,
    #[arg(long)]
    pub context_envelope: Option<PathBuf>,
    #[arg(long)]
    pub kill_switch_state: Option<PathBuf>,
    #[arg(long)]
    pub job_root: Option<PathBuf>,
    /// TLS certificate chain (PEM); requires --tls-key.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); requires --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Maximum concurrent connections.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Upstream response-head timeout in seconds for POST (→ 504).
    #[arg(long)]
    pub upstream_timeout_secs: Option<u64>,
    /// Graceful drain deadline in seconds.
    #[arg(long)]
    pub drain_timeout_secs: Option<u64>,
    /// Project config file (default `.gait/config.yaml` when it exists; a missing explicit path
    /// is an error). Layering: defaults → file → env (`GAIT_*`) → flags.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Admin listener serving `/metrics` (overrides `metrics.listen` and enables metrics).
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Retention caps (`0` = off), enforced by the background retention task.
    #[arg(long, allow_hyphen_values = true)]
    pub trace_max_age: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub trace_max_count: Option<i64>,
    #[arg(long, allow_hyphen_values = true)]
    pub runpack_max_age: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub runpack_max_count: Option<i64>,
    #[arg(long, allow_hyphen_values = true)]
    pub pack_max_age: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pack_max_count: Option<i64>,
    #[arg(long, allow_hyphen_values = true)]
    pub session_max_age: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub session_max_count: Option<i64>,
    /// Print one line of JSON at startup.
    #[arg(long)]
    pub json: bool,
}

impl McpServeArgs {
    /// The ops config keys set by flags (`key`, raw value), validated like Go (ops.md §4):
    /// a negative age or count is an error.
    pub fn ops_flags(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        if let Some(l) = &self.admin_listen {
            out.push(("metrics.enabled".to_string(), "true".to_string()));
            out.push(("metrics.listen".to_string(), l.trim().to_string()));
        }
        let classes = [
            ("trace", &self.trace_max_age, self.trace_max_count),
            ("runpack", &self.runpack_max_age, self.runpack_max_count),
            ("pack", &self.pack_max_age, self.pack_max_count),
            ("session", &self.session_max_age, self.session_max_count),
        ];
        for (class, age, count) in classes {
            if let Some(a) = age {
                let a = a.trim();
                if a.starts_with('-') {
                    return Err(format!("parse --{class}-max-age: duration must be >= 0"));
                }
                if a != "0" {
                    out.push((format!("retention.{class}.max_age"), a.to_string()));
                }
            }
            if let Some(c) = count {
                if c < 0 {
                    return Err("retention max-count values must be >= 0".to_string());
                }
                if c > 0 {
                    out.push((format!("retention.{class}.max_count"), c.to_string()));
                }
            }
        }
        Ok(out)
    }

    /// Layer the flags that were given over `cfg`.
    pub fn apply(&self, cfg: &mut ServeConfig) -> Result<(), ConfigError> {
        if let Some(p) = &self.policy {
            cfg.policy = Some(p.clone());
        }
        if let Some(l) = self.listen {
            cfg.listen = l;
        }
        if !self.upstream.is_empty() {
            cfg.upstreams = self
                .upstream
                .iter()
                .map(|s| UpstreamConfig::parse(s))
                .collect::<Result<_, _>>()?;
        }
        for spec in &self.upstream_auth_env {
            let (name, var) = spec.split_once('=').ok_or_else(|| ConfigError::Invalid {
                key: "upstream_auth_env",
                message: format!("expected NAME=VAR, got {spec:?}"),
            })?;
            let up = cfg
                .upstreams
                .iter_mut()
                .find(|u| u.name == name.trim())
                .ok_or_else(|| ConfigError::Invalid {
                    key: "upstream_auth_env",
                    message: format!("no upstream named {name:?}"),
                })?;
            up.auth_env = Some(var.trim().to_string());
        }
        if let Some(v) = &self.upstream_ca {
            cfg.upstream_ca = Some(v.clone());
        }
        if let Some(v) = &self.adapter {
            cfg.adapter = v.trim().to_ascii_lowercase();
        }
        if let Some(v) = &self.profile {
            cfg.profile = v.parse().map_err(|message| ConfigError::Invalid {
                key: "profile",
                message,
            })?;
        }
        if let Some(v) = &self.auth_mode {
            cfg.auth_mode = v.parse()?;
        }
        if let Some(v) = &self.auth_token_env {
            cfg.auth_token_env = Some(v.clone());
        }
        if let Some(v) = self.max_request_bytes {
            cfg.max_request_bytes = v;
        }
        if let Some(v) = &self.http_verdict_status {
            cfg.http_verdict_status = v.parse()?;
        }
        if let Some(v) = self.allow_client_artifact_paths {
            cfg.allow_client_artifact_paths = v;
        }
        if !self.allowed_origin.is_empty() {
            cfg.allowed_origins = self.allowed_origin.clone();
        }
        set(&mut cfg.trace_dir, &self.trace_dir);
        if let Some(v) = &self.trace_sink {
            cfg.trace_sink = v.parse()?;
        }
        if let Some(v) = self.trace_segment_records {
            cfg.trace_segment_records = v;
        }
        set_opt(&mut cfg.runpack_dir, &self.runpack_dir);
        set_opt(&mut cfg.pack_dir, &self.pack_dir);
        set(&mut cfg.session_dir, &self.session_dir);
        set_opt(&mut cfg.export_log_out, &self.export_log_out);
        set_opt(&mut cfg.export_otel_out, &self.export_otel_out);
        if let Some(v) = &self.key_mode {
            cfg.key_mode = v.parse()?;
        }
        set_opt(&mut cfg.private_key, &self.private_key);
        set_opt(&mut cfg.private_key_env, &self.private_key_env);
        set_opt(&mut cfg.workspace, &self.workspace);
        set_opt(&mut cfg.risk_class, &self.risk_class);
        set_opt(&mut cfg.context_envelope, &self.context_envelope);
        set_opt(&mut cfg.kill_switch_state, &self.kill_switch_state);
        set_opt(&mut cfg.job_root, &self.job_root);
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                cfg.tls = Some(TlsConfig {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Invalid {
                    key: "tls",
                    message: "--tls-cert and --tls-key must be given together".into(),
                });
            }
        }
        if let Some(v) = self.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = self.upstream_timeout_secs {
            cfg.timeouts.upstream = std::time::Duration::from_secs(v);
        }
        if let Some(v) = self.drain_timeout_secs {
            cfg.timeouts.drain = std::time::Duration::from_secs(v);
        }
        if self.json {
            cfg.json = true;
        }
        Ok(())
    }
}

fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
    if let Some(v) = src {
        *dst = v.clone();
    }
}

fn set_opt<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
    if let Some(v) = src {
        *dst = Some(v.clone());
    }
}

pub fn run(args: McpServeArgs, ctx: &Ctx) -> u8 {
    let env = crate::ops::env::ProcessEnv;
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (cfg, loaded) = match crate::ops::config::layered_serve_config(&args, &env, &base) {
        Ok(v) => v,
        Err(e) => {
            return super::output::fail(args.json, &e.to_string(), Category::InvalidInput, ctx);
        }
    };
    if let Err(e) = cfg.validate() {
        return super::output::fail(args.json, &e.to_string(), Category::InvalidInput, ctx);
    }
    crate::server::run_cli(cfg, loaded, &ctx.correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::{AuthMode, VerdictStatusMode};
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: McpServeArgs,
    }

    fn parse(args: &[&str]) -> McpServeArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().a
    }

    #[test]
    fn unset_flags_keep_config() {
        let mut cfg = ServeConfig {
            max_request_bytes: 77,
            ..ServeConfig::default()
        };
        parse(&["--policy", "p.yaml"]).apply(&mut cfg).unwrap();
        assert_eq!(cfg.max_request_bytes, 77);
        assert_eq!(cfg.policy, Some(PathBuf::from("p.yaml")));
    }

    #[test]
    fn flags_override() {
        let mut cfg = ServeConfig::default();
        parse(&[
            "--policy",
            "p.yaml",
            "--upstream",
            "a=http://127.0.0.1:1/mcp",
            "--upstream-auth-env",
            "a=UPTOK",
            "--auth-mode",
            "token",
            "--auth-token-env",
            "TOK",
            "--http-verdict-status",
            "strict",
            "--allow-client-artifact-paths",
            "--listen",
            "127.0.0.1:0",
        ])
        .apply(&mut cfg)
        .unwrap();
        assert_eq!(cfg.auth_mode, AuthMode::Token);
        assert_eq!(cfg.http_verdict_status, VerdictStatusMode::Strict);
        assert!(cfg.allow_client_artifact_paths);
        assert_eq!(cfg.upstreams[0].auth_env.as_deref(), Some("UPTOK"));
        assert_eq!(cfg.validate(), Ok(()));
        assert!(
            parse(&["--tls-cert", "c.pem"])
                .apply(&mut ServeConfig::default())
                .is_err()
        );
    }
}
