//! Validated runtime configuration of `gait mcp serve`.
//!
//! [`ServeConfig`] is the one place every knob of the server lives. Sources are layered by the
//! caller: `ServeConfig::default()` (the development defaults), then the project config file
//! (`mcp_serve.*` keys, owned by ops), then CLI flags (`McpServeArgs::apply`). [`ServeConfig::validate`]
//! runs before any port is bound; a failure is an invalid-input error (exit 6).
//!
//! Invariant: no environment variables are read here; token and credential env vars are only
//! *named* in the config and resolved by [`ServeConfig::resolve_tokens`] /
//! [`ServeConfig::resolve_upstream_auth`] at startup, through an injectable lookup.

use crate::verdict::Profile;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Default listen address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// Default `--max-request-bytes`.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1_048_576;

/// `--auth-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    #[default]
    Off,
    Token,
}

impl FromStr for AuthMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "" => Ok(AuthMode::Off),
            "token" => Ok(AuthMode::Token),
            other => Err(ConfigError::Invalid {
                key: "auth_mode",
                message: format!("unsupported auth mode {other:?} (expected off|token)"),
            }),
        }
    }
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Off => "off",
            AuthMode::Token => "token",
        }
    }
}

/// `--trace-sink`: where the proxy path's signed traces go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceSink {
    /// One pretty-JSON file per decision, `trace_<run>_<ts>.json` (Go's format; default).
    #[default]
    Files,
    /// Signed TraceRecords appended as JSON lines to rotating segment files
    /// (`trace_seg_<start>_p<pid>_<n>.jsonl`); one `write` per writer batch instead of one file
    /// creation per decision. Evaluate-API decisions keep their trace files.
    Segments,
}

impl FromStr for TraceSink {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "files" | "" => Ok(TraceSink::Files),
            "segments" => Ok(TraceSink::Segments),
            other => Err(ConfigError::Invalid {
                key: "trace_sink",
                message: format!("unsupported trace sink {other:?} (expected files|segments)"),
            }),
        }
    }
}

impl TraceSink {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceSink::Files => "files",
            TraceSink::Segments => "segments",
        }
    }
}

/// Default records per trace segment before the next segment starts.
pub const DEFAULT_TRACE_SEGMENT_RECORDS: u64 = 16_384;

/// `--http-verdict-status`: how a non-allow verdict maps to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerdictStatusMode {
    /// HTTP 200 for every verdict (the body carries the verdict).
    #[default]
    Compat,
    /// block → 403, require_approval / dry_run → 409, allow → 200.
    Strict,
}

impl FromStr for VerdictStatusMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "compat" | "" => Ok(VerdictStatusMode::Compat),
            "strict" => Ok(VerdictStatusMode::Strict),
            other => Err(ConfigError::Invalid {
                key: "http_verdict_status",
                message: format!(
                    "unsupported http verdict status {other:?} (expected compat|strict)"
                ),
            }),
        }
    }
}

impl VerdictStatusMode {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictStatusMode::Compat => "compat",
            VerdictStatusMode::Strict => "strict",
        }
    }
}

/// `--key-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyMode {
    #[default]
    Dev,
    Prod,
}

impl FromStr for KeyMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dev" | "" => Ok(KeyMode::Dev),
            "prod" => Ok(KeyMode::Prod),
            other => Err(ConfigError::Invalid {
                key: "key_mode",
                message: format!("unsupported key mode {other:?} (expected dev|prod)"),
            }),
        }
    }
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Dev => "dev",
            KeyMode::Prod => "prod",
        }
    }
}

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Route name: served at `/mcp/<name>`; a single upstream is also served at `/mcp`.
    /// Also the `server.server_id` handed to the gate.
    pub name: String,
    /// Base URL of the upstream MCP endpoint (`http://` or `https://`).
    pub url: url::Url,
    /// Env var holding the `Authorization` header value to inject upstream
    /// (a bare token is sent as `Bearer <token>`).
    pub auth_env: Option<String>,
}

impl UpstreamConfig {
    /// Parse `NAME=URL` or a bare `URL` (name `default`).
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let spec = spec.trim();
        let (name, raw_url) = match spec.split_once('=') {
            Some((n, u)) if !n.contains("://") && !n.contains('/') => (n.trim().to_string(), u),
            _ => ("default".to_string(), spec),
        };
        let url = url::Url::parse(raw_url.trim()).map_err(|e| ConfigError::Invalid {
            key: "upstream",
            message: format!("invalid upstream url {raw_url:?}: {e}"),
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ConfigError::Invalid {
                key: "upstream",
                message: format!("upstream url must be http:// or https://, got {raw_url:?}"),
            });
        }
        if url.host_str().is_none() {
            return Err(ConfigError::Invalid {
                key: "upstream",
                message: format!("upstream url has no host: {raw_url:?}"),
            });
        }
        if !valid_route_name(&name) {
            return Err(ConfigError::Invalid {
                key: "upstream",
                message: format!("upstream name {name:?} must match [A-Za-z0-9_.-]+"),
            });
        }
        Ok(UpstreamConfig {
            name,
            url,
            auth_env: None,
        })
    }
}

fn valid_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Server-side TLS (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Server timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time allowed to read a request head (slowloris guard).
    pub header_read: Duration,
    /// Idle keep-alive: a connection with no request in flight for this long is closed.
    pub idle: Duration,
    /// Upstream response-head deadline for POST (→ 504). GET streams have no total timeout.
    pub upstream: Duration,
    /// Connect timeout to the upstream (→ 502).
    pub upstream_connect: Duration,
    /// Graceful-drain deadline on SIGTERM/SIGINT.
    pub drain: Duration,
    /// Interval of `:` keep-alive comments on idle SSE streams.
    pub sse_keep_alive: Duration,
    /// Policy file poll interval for hot reload (zero disables polling; SIGHUP still reloads).
    pub policy_poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            upstream: Duration::from_secs(30),
            upstream_connect: Duration::from_secs(5),
            drain: Duration::from_secs(10),
            sse_keep_alive: Duration::from_secs(15),
            policy_poll: Duration::from_secs(1),
        }
    }
}

/// Validated runtime configuration of `gait mcp serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Policy file (required to start; re-read on change and SIGHUP).
    pub policy: Option<PathBuf>,
    /// Default adapter of the evaluate API (`mcp`, `openai`, …). The proxy always uses `mcp`.
    pub adapter: String,
    pub profile: Profile,
    pub upstreams: Vec<UpstreamConfig>,
    /// Extra CA (PEM) trusted for `https://` upstreams (in addition to the web roots).
    pub upstream_ca: Option<PathBuf>,
    pub auth_mode: AuthMode,
    /// Env var holding the token(s): `identity=token,identity2=token2` or one bare token.
    pub auth_token_env: Option<String>,
    pub max_request_bytes: u64,
    pub http_verdict_status: VerdictStatusMode,
    pub allow_client_artifact_paths: bool,
    /// Extra allowed `Origin` values (exact, e.g. `https://app.example`). Loopback origins are
    /// always allowed.
    pub allowed_origins: Vec<String>,
    pub trace_dir: PathBuf,
    /// Proxy-path trace layout (files or segments).
    pub trace_sink: TraceSink,
    /// Records per segment (`--trace-sink segments`), at least 1.
    pub trace_segment_records: u64,
    pub runpack_dir: Option<PathBuf>,
    pub pack_dir: Option<PathBuf>,
    pub session_dir: PathBuf,
    pub export_log_out: Option<PathBuf>,
    pub export_otel_out: Option<PathBuf>,
    pub key_mode: KeyMode,
    pub private_key: Option<PathBuf>,
    pub private_key_env: Option<String>,
    /// Context workspace put on every proxied call.
    pub workspace: Option<String>,
    /// Context risk class put on every proxied call.
    pub risk_class: Option<String>,
    pub context_envelope: Option<PathBuf>,
    pub kill_switch_state: Option<PathBuf>,
    pub job_root: Option<PathBuf>,
    pub tls: Option<TlsConfig>,
    pub timeouts: Timeouts,
    /// Maximum concurrent connections; further accepts wait.
    pub max_connections: usize,
    /// Capacity of the trace writer queue.
    pub trace_queue: usize,
    /// Fail-closed recording even outside `oss-prod`: an allowed call is forwarded only after
    /// its trace is durably written (see `server::record`).
    pub trace_fail_closed: bool,
    /// Print the `--json` startup line.
    pub json: bool,
}

impl ServeConfig {
    /// Whether trace writes are fail-closed (`oss-prod` or `trace_fail_closed`).
    pub fn trace_fail_closed(&self) -> bool {
        self.trace_fail_closed || self.profile == Profile::OssProd
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            policy: None,
            adapter: "mcp".to_string(),
            profile: Profile::Standard,
            upstreams: Vec::new(),
            upstream_ca: None,
            auth_mode: AuthMode::Off,
            auth_token_env: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            http_verdict_status: VerdictStatusMode::Compat,
            allow_client_artifact_paths: false,
            allowed_origins: Vec::new(),
            trace_dir: PathBuf::from("./gait-out/mcp-serve/traces"),
            trace_sink: TraceSink::Files,
            trace_segment_records: DEFAULT_TRACE_SEGMENT_RECORDS,
            runpack_dir: None,
            pack_dir: None,
            session_dir: PathBuf::from("./gait-out/mcp-serve/sessions"),
            export_log_out: None,
            export_otel_out: None,
            key_mode: KeyMode::Dev,
            private_key: None,
            private_key_env: None,
            workspace: None,
            risk_class: None,
            context_envelope: None,
            kill_switch_state: None,
            job_root: None,
            tls: None,
            timeouts: Timeouts::default(),
            max_connections: 1024,
            trace_queue: 4096,
            trace_fail_closed: false,
            json: false,
        }
    }
}

/// A configuration error; every variant is invalid input (exit 6) except `Refused`, which is
/// an unsafe posture (also exit 6, with its own message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required --policy")]
    MissingPolicy,
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(
        "refusing to listen on non-loopback address {0} without token auth; use --auth-mode token --auth-token-env VAR"
    )]
    NonLoopbackWithoutAuth(SocketAddr),
    #[error("--auth-mode token requires --auth-token-env naming a non-empty env var")]
    MissingToken,
    #[error("env var {0} named by {1} is empty or unset")]
    EmptyEnv(String, &'static str),
}

impl ServeConfig {
    /// Check cross-field rules. Runs before binding any port.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.policy.is_none() {
            return Err(ConfigError::MissingPolicy);
        }
        if self.max_request_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "max_request_bytes",
                message: "must be > 0".into(),
            });
        }
        if self.auth_mode == AuthMode::Off && !self.listen.ip().is_loopback() {
            return Err(ConfigError::NonLoopbackWithoutAuth(self.listen));
        }
        if self.auth_mode == AuthMode::Token
            && self.auth_token_env.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError::MissingToken);
        }
        let mut names: Vec<&str> = self.upstreams.iter().map(|u| u.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid {
                key: "upstream",
                message: "duplicate upstream name".into(),
            });
        }
        if self.max_connections == 0 || self.trace_queue == 0 {
            return Err(ConfigError::Invalid {
                key: "max_connections",
                message: "limits must be > 0".into(),
            });
        }
        if self.trace_segment_records == 0 {
            return Err(ConfigError::Invalid {
                key: "trace_segment_records",
                message: "must be > 0".into(),
            });
        }
        if self.key_mode == KeyMode::Dev
            && (self.private_key.is_some() || self.private_key_env.is_some())
        {
            return Err(ConfigError::Invalid {
                key: "key_mode",
                message: "dev mode does not accept explicit key sources".into(),
            });
        }
        if self.key_mode == KeyMode::Prod
            && self.private_key.is_none()
            && self.private_key_env.is_none()
        {
            return Err(ConfigError::Invalid {
                key: "key_mode",
                message: "prod mode requires a private key source".into(),
            });
        }
        if self.private_key.is_some() && self.private_key_env.is_some() {
            return Err(ConfigError::Invalid {
                key: "private_key",
                message: "private key source: set either path or env".into(),
            });
        }
        if self.profile == Profile::OssProd && self.key_mode != KeyMode::Prod {
            return Err(ConfigError::Invalid {
                key: "profile",
                message: "oss-prod profile requires --key-mode prod".into(),
            });
        }
        Ok(())
    }

    /// Resolve the token env var into `(identity, token)` pairs (token mode only).
    ///
    /// Format: `identity=token[,identity2=token2…]`, or one bare token (identity `token`).
    pub fn resolve_tokens(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        if self.auth_mode == AuthMode::Off {
            return Ok(Vec::new());
        }
        let var = self
            .auth_token_env
            .as_deref()
            .ok_or(ConfigError::MissingToken)?;
        let raw = lookup(var).unwrap_or_default();
        let tokens = parse_token_list(&raw);
        if tokens.is_empty() {
            return Err(ConfigError::EmptyEnv(var.to_string(), "--auth-token-env"));
        }
        Ok(tokens)
    }

    /// Resolve each upstream's injected `Authorization` value (`None` = send none).
    pub fn resolve_upstream_auth(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Option<String>>, ConfigError> {
        self.upstreams
            .iter()
            .map(|u| match &u.auth_env {
                None => Ok(None),
                Some(var) => {
                    let v = lookup(var).unwrap_or_default();
                    let v = v.trim();
                    if v.is_empty() {
                        return Err(ConfigError::EmptyEnv(var.clone(), "--upstream-auth-env"));
                    }
                    if v.contains(' ') {
                        Ok(Some(v.to_string()))
                    } else {
                        Ok(Some(format!("Bearer {v}")))
                    }
                }
            })
            .collect()
    }
}

/// Parse `identity=token,identity2=token2` or a bare token (identity `token`).
pub fn parse_token_list(raw: &str) -> Vec<(String, String)> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Vec::new();
    }
    if !raw.contains('=') {
        return vec![("token".to_string(), raw.to_string())];
    }
    raw.split(',')
        .filter_map(|part| {
            let (id, tok) = part.split_once('=')?;
            let (id, tok) = (id.trim(), tok.trim());
            (!id.is_empty() && !tok.is_empty()).then(|| (id.to_string(), tok.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ServeConfig {
        ServeConfig {
            policy: Some("p.yaml".into()),
            ..ServeConfig::default()
        }
    }

    #[test]
    fn defaults_are_dev_defaults() {
        let c = ServeConfig::default();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.auth_mode, AuthMode::Off);
        assert_eq!(c.max_request_bytes, 1_048_576);
        assert_eq!(c.http_verdict_status, VerdictStatusMode::Compat);
        assert_eq!(c.validate(), Err(ConfigError::MissingPolicy));
        assert_eq!(base().validate(), Ok(()));
    }

    #[test]
    fn non_loopback_requires_token() {
        let mut c = base();
        c.listen = "0.0.0.0:8787".parse().unwrap();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::NonLoopbackWithoutAuth(_))
        ));
        c.auth_mode = AuthMode::Token;
        assert_eq!(c.validate(), Err(ConfigError::MissingToken));
        c.auth_token_env = Some("GAIT_TOKEN".into());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn token_list_formats() {
        assert_eq!(
            parse_token_list(" abc "),
            vec![("token".into(), "abc".into())]
        );
        assert_eq!(
            parse_token_list("alice=t1, bob=t2,=x,bad="),
            vec![("alice".into(), "t1".into()), ("bob".into(), "t2".into())]
        );
        let mut c = base();
        c.auth_mode = AuthMode::Token;
        c.auth_token_env = Some("V".into());
        assert_eq!(
            c.resolve_tokens(|_| Some(String::new())),
            Err(ConfigError::EmptyEnv("V".into(), "--auth-token-env"))
        );
        assert_eq!(c.resolve_tokens(|_| Some("x".into())).unwrap().len(), 1);
    }

    #[test]
    fn upstream_specs() {
        let u = UpstreamConfig::parse("http://127.0.0.1:9/mcp").unwrap();
        assert_eq!(u.name, "default");
        let u = UpstreamConfig::parse("gh=https://h.example/mcp").unwrap();
        assert_eq!(u.name, "gh");
        assert_eq!(u.url.scheme(), "https");
        assert!(UpstreamConfig::parse("ftp://x/").is_err());
        assert!(UpstreamConfig::parse("b@d=http://x/").is_err());
        let mut c = base();
        c.upstreams = vec![
            UpstreamConfig::parse("a=http://x/").unwrap(),
            UpstreamConfig::parse("a=http://y/").unwrap(),
        ];
        assert!(c.validate().is_err());
    }

    #[test]
    fn upstream_auth_injection() {
        let mut c = base();
        let mut u = UpstreamConfig::parse("a=http://x/").unwrap();
        u.auth_env = Some("UP".into());
        c.upstreams = vec![u, UpstreamConfig::parse("b=http://y/").unwrap()];
        let got = c.resolve_upstream_auth(|_| Some("sekrit".into())).unwrap();
        assert_eq!(got, vec![Some("Bearer sekrit".into()), None]);
        assert!(c.resolve_upstream_auth(|_| None).is_err());
    }

    #[test]
    fn key_mode_rules() {
        let mut c = base();
        c.private_key = Some("k".into());
        assert!(c.validate().is_err());
        c.key_mode = KeyMode::Prod;
        assert_eq!(c.validate(), Ok(()));
        c.private_key = None;
        assert!(c.validate().is_err());
    }
}
