//! Project configuration `.gait/config.yaml`: typed sections, layering and source tracking.
//!
//! Layers, lowest first: built-in defaults (the *development* posture of the hardening
//! contract), the config file, environment variables (`GAIT_<SECTION>_<KEY>`), then flags.
//! Every effective value remembers which layer set it ([`Source`]), which is what
//! `gait config show` prints.
//!
//! Deliberate difference from the Go tool: unknown keys are **errors** naming the key and its
//! line (Go silently ignores them), durations are validated at load (Go only checks the three
//! TTLs in `doctor`), and negative durations are rejected.
//!
//! Invariants: no process env access here (an [`Env`] is passed in); loading never binds a
//! port or touches anything but the one config file.

use super::duration;
use super::env::{Env, EnvStatus};
use crate::verdict::Profile;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default location, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = ".gait/config.yaml";
/// Env var naming the config file when no `--config` is given.
pub const CONFIG_PATH_ENV: &str = "GAIT_CONFIG";

// === errors ===

/// Why a configuration could not be loaded. All are invalid input (exit 6).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file not found: {}", .0.display())]
    Missing(PathBuf),
    #[error("read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse project config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("env {var}: invalid value for {key}: {message}")]
    Env {
        var: String,
        key: String,
        message: String,
    },
    #[error("flag {key}: {message}")]
    Flag { key: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

// === sections ===

/// Case-insensitive, trimmed deserialization of the small config enums (Go lowercases
/// `auth_mode` and `http_verdict_status` and trims every string).
macro_rules! lowercase_enum {
    ($ty:ident { $($s:literal => $v:ident),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                match raw.trim().to_ascii_lowercase().as_str() {
                    $($s => Ok($ty::$v),)+
                    other => Err(serde::de::Error::unknown_variant(other, &[$($s),+])),
                }
            }
        }
    };
}

/// `null` / absent → empty string; other strings are trimmed (Go's behaviour).
fn trimmed_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|s| s.trim().to_string())
        .unwrap_or_default())
}

/// `gate.profile`: case-insensitive, empty = `standard`.
fn profile_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Profile, D::Error> {
    let raw = Option::<String>::deserialize(d)?.unwrap_or_default();
    raw.parse::<Profile>().map_err(serde::de::Error::custom)
}

/// `gate.key_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    #[default]
    Dev,
    Prod,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Dev => "dev",
            KeyMode::Prod => "prod",
        }
    }
}

/// `mcp_serve.auth_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Off,
    Token,
}

/// `mcp_serve.http_verdict_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictStatus {
    #[default]
    Compat,
    Strict,
}

/// Rate-limit window (`minute` or `hour`), as in policy `rate_limit` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    #[default]
    Minute,
    Hour,
}

impl Window {
    pub fn as_duration(self) -> Duration {
        match self {
            Window::Minute => Duration::from_secs(60),
            Window::Hour => Duration::from_secs(3600),
        }
    }
}

lowercase_enum!(KeyMode { "dev" => Dev, "prod" => Prod });
lowercase_enum!(AuthMode { "off" => Off, "token" => Token });
lowercase_enum!(VerdictStatus { "compat" => Compat, "strict" => Strict });
lowercase_enum!(Window { "minute" => Minute, "hour" => Hour });

/// `gate:` (the Go tool's keys, verbatim).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateSection {
    #[serde(deserialize_with = "trimmed_string")]
    pub policy: String,
    #[serde(deserialize_with = "profile_de")]
    pub profile: Profile,
    pub key_mode: KeyMode,
    #[serde(deserialize_with = "trimmed_string")]
    pub private_key: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub private_key_env: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub approval_public_key: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub approval_public_key_env: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub approval_private_key: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub approval_private_key_env: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub kill_switch_state: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub rate_limit_state: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub credential_broker: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub credential_env_prefix: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub credential_ref: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub credential_scopes: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub credential_command: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub credential_command_args: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub credential_evidence_path: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub trace_path: String,
    #[serde(deserialize_with = "trimmed_string")]
    pub wrkr_inventory_path: String,
}

impl Default for GateSection {
    fn default() -> Self {
        GateSection {
            policy: String::new(),
            profile: Profile::Standard,
            key_mode: KeyMode::Dev,
            private_key: String::new(),
            private_key_env: String::new(),
            approval_public_key: String::new(),
            approval_public_key_env: String::new(),
            approval_private_key: String::new(),
            approval_private_key_env: String::new(),
            kill_switch_state: String::new(),
            rate_limit_state: String::new(),
            credential_broker: "off".into(),
            credential_env_prefix: "GAIT_BROKER_TOKEN_".into(),
            credential_ref: String::new(),
            credential_scopes: String::new(),
            credential_command: String::new(),
            credential_command_args: String::new(),
            credential_evidence_path: String::new(),
            trace_path: String::new(),
            wrkr_inventory_path: String::new(),
        }
    }
}

/// One entry of `mcp_serve.upstreams` (ours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_env: Option<String>,
}

/// `mcp_serve:` (Go's seven keys plus ours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServeSection {
    pub enabled: bool,
    #[serde(deserialize_with = "trimmed_string")]
    pub listen: String,
    pub auth_mode: AuthMode,
    #[serde(deserialize_with = "trimmed_string")]
    pub auth_token_env: String,
    pub max_request_bytes: u64,
    pub http_verdict_status: VerdictStatus,
    pub allow_client_artifact_paths: bool,
    pub upstreams: Vec<UpstreamEntry>,
    pub upstream_ca: Option<String>,
    pub allowed_origins: Vec<String>,
    #[serde(deserialize_with = "trimmed_string")]
    pub trace_dir: String,
    /// `files` (default) or `segments` (ours).
    #[serde(deserialize_with = "trimmed_string")]
    pub trace_sink: String,
    /// Records per trace segment (ours).
    pub trace_segment_records: u64,
    pub runpack_dir: Option<String>,
    pub pack_dir: Option<String>,
    #[serde(deserialize_with = "trimmed_string")]
    pub session_dir: String,
    pub export_log_out: Option<String>,
    pub export_otel_out: Option<String>,
    pub max_connections: u64,
}

impl Default for McpServeSection {
    fn default() -> Self {
        McpServeSection {
            enabled: false,
            listen: "127.0.0.1:8787".into(),
            auth_mode: AuthMode::Off,
            auth_token_env: String::new(),
            max_request_bytes: 1_048_576,
            http_verdict_status: VerdictStatus::Compat,
            allow_client_artifact_paths: false,
            upstreams: Vec::new(),
            upstream_ca: None,
            allowed_origins: Vec::new(),
            trace_dir: "./gait-out/mcp-serve/traces".into(),
            trace_sink: "files".into(),
            trace_segment_records: crate::server::config::DEFAULT_TRACE_SEGMENT_RECORDS,
            runpack_dir: None,
            pack_dir: None,
            session_dir: "./gait-out/mcp-serve/sessions".into(),
            export_log_out: None,
            export_otel_out: None,
            max_connections: 1024,
        }
    }
}

/// Retention caps of one artifact class (ours). `None` = no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassCaps {
    #[serde(with = "duration::option")]
    pub max_age: Option<Duration>,
    pub max_count: Option<u64>,
}

/// `retention:` (Go's three TTLs plus per-class caps and the sweep interval).
///
/// A class's effective max age is its own `max_age`, else the matching TTL: trace ←
/// `trace_ttl`, session and runpack ← `session_ttl`, pack ← `export_ttl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    #[serde(with = "duration::option")]
    pub trace_ttl: Option<Duration>,
    #[serde(with = "duration::option")]
    pub session_ttl: Option<Duration>,
    #[serde(with = "duration::option")]
    pub export_ttl: Option<Duration>,
    #[serde(with = "duration::serde")]
    pub sweep_interval: Duration,
    /// Where each sweep writes its `gait.guard.retention_report` (latest only); unset = none.
    pub report_path: Option<String>,
    pub trace: ClassCaps,
    pub runpack: ClassCaps,
    pub pack: ClassCaps,
    pub session: ClassCaps,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            trace_ttl: None,
            session_ttl: None,
            export_ttl: None,
            sweep_interval: Duration::from_secs(300),
            report_path: None,
            trace: ClassCaps::default(),
            runpack: ClassCaps::default(),
            pack: ClassCaps::default(),
            session: ClassCaps::default(),
        }
    }
}

impl RetentionSection {
    /// Effective caps of the four classes: `[trace, runpack, pack, session]`.
    pub fn effective(&self) -> [ClassCaps; 4] {
        let with = |c: ClassCaps, ttl: Option<Duration>| ClassCaps {
            max_age: c.max_age.or(ttl),
            max_count: c.max_count,
        };
        [
            with(self.trace, self.trace_ttl),
            with(self.runpack, self.session_ttl),
            with(self.pack, self.export_ttl),
            with(self.session, self.session_ttl),
        ]
    }

    /// Whether any class has a cap (the production posture requires it).
    pub fn any_caps(&self) -> bool {
        self.effective()
            .iter()
            .any(|c| c.max_age.is_some() || c.max_count.is_some())
    }
}

/// `tls:` server certificate for `mcp serve` (ours).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

/// `metrics:` the admin listener serving `/metrics` (ours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub enabled: bool,
    #[serde(deserialize_with = "trimmed_string")]
    pub listen: String,
    /// Env var holding a bearer token required on `/metrics`; unset = no auth
    /// (only allowed on loopback).
    pub auth_token_env: Option<String>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: false,
            listen: "127.0.0.1:9464".into(),
            auth_token_env: None,
        }
    }
}

/// `rate_limits:` global limits from config (ours); policy `rate_limit` blocks add more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsSection {
    /// Requests per window allowed for each bearer token identity; `None` = unlimited.
    pub per_token_requests: Option<u32>,
    pub window: Window,
}

/// `telemetry:` operational and adoption JSONL event logs (ours; Go reads
/// `GAIT_OPERATIONAL_LOG` / `GAIT_ADOPTION_LOG`, which map onto these keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    pub operational_log: Option<String>,
    pub adoption_log: Option<String>,
    pub queue_capacity: u64,
    pub max_file_bytes: u64,
    pub max_files: u64,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            operational_log: None,
            adoption_log: None,
            queue_capacity: 1024,
            max_file_bytes: 10 * 1024 * 1024,
            max_files: 3,
        }
    }
}

/// The whole `.gait/config.yaml`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectConfig {
    pub gate: GateSection,
    pub mcp_serve: McpServeSection,
    pub retention: RetentionSection,
    pub tls: TlsSection,
    pub metrics: MetricsSection,
    pub rate_limits: RateLimitsSection,
    pub telemetry: TelemetrySection,
}

// === sources ===

/// Which layer set a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
            Source::Flag => "flag",
        }
    }
}

/// Source of every leaf key (`gate.profile`, `retention.trace.max_age`, …).
pub type Sources = BTreeMap<String, Source>;

/// A loaded configuration with the source of each value.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    pub config: ProjectConfig,
    pub sources: Sources,
    /// The file that was read, if any.
    pub path: Option<PathBuf>,
}

/// Where to find the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLocation {
    /// `--config PATH` (or `GAIT_CONFIG`): a missing file is an error.
    Explicit(PathBuf),
    /// `.gait/config.yaml` under a directory: a missing file means defaults.
    Default(PathBuf),
    /// Skip the file (`--no-config`).
    None,
}

impl ConfigLocation {
    /// `--config` beats `GAIT_CONFIG` beats `<base>/.gait/config.yaml`.
    pub fn resolve(flag: Option<&Path>, env: &dyn Env, base: &Path) -> ConfigLocation {
        if let Some(p) = flag {
            return ConfigLocation::Explicit(p.to_path_buf());
        }
        match env.get(CONFIG_PATH_ENV) {
            Some(p) if !p.trim().is_empty() => ConfigLocation::Explicit(PathBuf::from(p.trim())),
            _ => ConfigLocation::Default(base.join(DEFAULT_CONFIG_PATH)),
        }
    }
}

/// Extra env var names mapped onto config keys (the Go tool's telemetry variables).
const ENV_ALIASES: &[(&str, &str)] = &[
    ("telemetry.operational_log", "GAIT_OPERATIONAL_LOG"),
    ("telemetry.adoption_log", "GAIT_ADOPTION_LOG"),
];

/// Env var name of a key: `GAIT_` + upper-cased path with `.` → `_`.
pub fn env_var_name(key: &str) -> String {
    format!("GAIT_{}", key.to_ascii_uppercase().replace('.', "_"))
}

impl ProjectConfig {
    /// Parse YAML text (file layer over defaults). `path` is only used in messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<(ProjectConfig, Vec<String>), ConfigError> {
        let parse_err = |e: serde_saphyr::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        };
        if text.trim().is_empty() {
            return Ok((ProjectConfig::default(), Vec::new()));
        }
        let cfg: ProjectConfig = serde_saphyr::from_str(text).map_err(parse_err)?;
        let raw: Value = serde_saphyr::from_str(text).map_err(parse_err)?;
        let mut keys = Vec::new();
        flatten_keys(&raw, "", &mut keys);
        Ok((cfg, keys))
    }

    /// The leaf keys of the config with their values (JSON), in declaration order.
    pub fn leaves(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if let Ok(v) = serde_json::to_value(self) {
            flatten(&v, "", &mut out);
        }
        out
    }

    /// Resolve the env var named by a `*_env` key; `None` when the key is empty.
    pub fn env_ref_status(&self, env: &dyn Env, var: &str) -> Option<EnvStatus> {
        (!var.trim().is_empty()).then(|| EnvStatus::of(env, var.trim()))
    }
}

/// Load with all layers: defaults → file → env → `flags` (`key=value` pairs).
pub fn load(
    location: &ConfigLocation,
    env: &dyn Env,
    flags: &[(String, String)],
) -> Result<LoadedConfig, ConfigError> {
    let mut sources: Sources = ProjectConfig::default()
        .leaves()
        .into_iter()
        .map(|(k, _)| (k, Source::Default))
        .collect();
    let (mut config, path) = match location {
        ConfigLocation::None => (ProjectConfig::default(), None),
        ConfigLocation::Explicit(p) | ConfigLocation::Default(p) => {
            match std::fs::read_to_string(p) {
                Ok(text) => {
                    let (cfg, keys) = ProjectConfig::from_yaml(&text, p)?;
                    for k in keys {
                        sources.insert(k, Source::File);
                    }
                    (cfg, Some(p.clone()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if matches!(location, ConfigLocation::Explicit(_)) {
                        return Err(ConfigError::Missing(p.clone()));
                    }
                    (ProjectConfig::default(), None)
                }
                Err(e) => {
                    return Err(ConfigError::Read {
                        path: p.clone(),
                        source: e,
                    });
                }
            }
        }
    };
    // env layer
    let defaults: BTreeMap<String, Value> = ProjectConfig::default().leaves().into_iter().collect();
    for (key, default) in &defaults {
        let mut names = vec![env_var_name(key)];
        names.extend(
            ENV_ALIASES
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| (*v).to_string()),
        );
        for var in names {
            let Some(raw) = env.get(&var) else { continue };
            config = set_key(&config, key, default, &raw).map_err(|message| ConfigError::Env {
                var: var.clone(),
                key: key.clone(),
                message,
            })?;
            sources.insert(key.clone(), Source::Env);
            break;
        }
    }
    // flag layer
    for (key, raw) in flags {
        let Some(default) = defaults.get(key) else {
            return Err(ConfigError::Flag {
                key: key.clone(),
                message: "unknown config key".into(),
            });
        };
        config = set_key(&config, key, default, raw).map_err(|message| ConfigError::Flag {
            key: key.clone(),
            message,
        })?;
        sources.insert(key.clone(), Source::Flag);
    }
    Ok(LoadedConfig {
        config,
        sources,
        path,
    })
}

/// Set one leaf from a string, typed after the default's JSON shape, and re-validate.
fn set_key(
    config: &ProjectConfig,
    key: &str,
    default: &Value,
    raw: &str,
) -> Result<ProjectConfig, String> {
    let raw = raw.trim();
    let value = match default {
        Value::Bool(_) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(format!("expected true|false, got {raw:?}")),
        },
        Value::Number(_) => raw
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("expected a non-negative integer, got {raw:?}"))?,
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        Value::Null if key.ends_with("max_count") || key.ends_with("_requests") => {
            if raw.is_empty() {
                Value::Null
            } else {
                raw.parse::<u64>()
                    .map(Value::from)
                    .map_err(|_| format!("expected a non-negative integer, got {raw:?}"))?
            }
        }
        Value::Null if raw.is_empty() => Value::Null,
        _ => Value::String(raw.to_string()),
    };
    let mut tree = serde_json::to_value(config).map_err(|e| e.to_string())?;
    let mut node = &mut tree;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err("not a section".into());
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            break;
        }
        node = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    serde_json::from_value(tree).map_err(|e| e.to_string())
}

fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(child, &key, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

/// Keys present in a raw YAML tree (objects recurse; null sections count as absent).
fn flatten_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_keys(child, &key, out);
            }
        }
        Value::Null if !prefix.contains('.') => {}
        _ if !prefix.is_empty() => out.push(prefix.to_string()),
        _ => {}
    }
}

/// The first line of a parser message (`line L column C: …`), without the source snippet.
fn one_line(s: &str) -> String {
    let first = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(s);
    let first = first.split(" --> ").next().unwrap_or(first);
    first.trim_start_matches("error: ").to_string()
}

// === show ===

/// Keys whose *value* is a secret (never printed). Env-var *names* are not secrets; their
/// values are never read into the config.
const SECRET_KEYS: &[&str] = &["gate.credential_command_args", "gate.credential_ref"];

/// Keys that name an env var; `config show` reports whether it is set, never its value.
pub fn env_ref_keys(cfg: &ProjectConfig) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("gate.private_key_env", cfg.gate.private_key_env.clone()),
        (
            "gate.approval_public_key_env",
            cfg.gate.approval_public_key_env.clone(),
        ),
        (
            "gate.approval_private_key_env",
            cfg.gate.approval_private_key_env.clone(),
        ),
        (
            "mcp_serve.auth_token_env",
            cfg.mcp_serve.auth_token_env.clone(),
        ),
        (
            "metrics.auth_token_env",
            cfg.metrics.auth_token_env.clone().unwrap_or_default(),
        ),
    ];
    out.retain(|(_, v)| !v.trim().is_empty());
    out
}

/// Replace the password and query of a URL; non-URLs are returned unchanged.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            if u.query().is_some() {
                u.set_query(Some("REDACTED"));
            }
            u.to_string()
        }
        Err(_) => raw.to_string(),
    }
}

/// The effective config as JSON with secrets redacted.
pub fn redacted_json(cfg: &ProjectConfig) -> Value {
    let mut c = cfg.clone();
    for up in &mut c.mcp_serve.upstreams {
        up.url = redact_url(&up.url);
    }
    let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
    for key in SECRET_KEYS {
        let (section, leaf) = key.split_once('.').unwrap_or((key, ""));
        if let Some(Value::Object(m)) = v.get_mut(section)
            && let Some(slot) = m.get_mut(leaf)
            && slot.as_str().is_some_and(|s| !s.is_empty())
        {
            *slot = Value::String("<redacted>".into());
        }
    }
    v
}

// === glue to `mcp serve` ===

impl ProjectConfig {
    /// Layer the file/env values of this config onto the server's runtime config.
    ///
    /// Only keys whose source is not `default` are applied, so `ServeConfig::default()` stays the
    /// single source of server defaults; flags are applied afterwards by
    /// `McpServeArgs::apply` (call [`mark_serve_flags`] to record their source).
    pub fn apply_serve(
        &self,
        cfg: &mut crate::server::config::ServeConfig,
        sources: &Sources,
    ) -> Result<(), ConfigError> {
        use crate::server::config as sc;
        let set = |k: &str| sources.get(k).is_some_and(|s| *s != Source::Default);
        let inv = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        let g = &self.gate;
        let m = &self.mcp_serve;
        if set("gate.policy") && !g.policy.is_empty() {
            cfg.policy = Some(PathBuf::from(&g.policy));
        }
        if set("gate.profile") {
            cfg.profile = g.profile;
        }
        if set("gate.key_mode") {
            cfg.key_mode = match g.key_mode {
                KeyMode::Dev => sc::KeyMode::Dev,
                KeyMode::Prod => sc::KeyMode::Prod,
            };
        }
        if set("gate.private_key") && !g.private_key.is_empty() {
            cfg.private_key = Some(PathBuf::from(&g.private_key));
        }
        if set("gate.private_key_env") && !g.private_key_env.is_empty() {
            cfg.private_key_env = Some(g.private_key_env.clone());
        }
        if set("gate.kill_switch_state") && !g.kill_switch_state.is_empty() {
            cfg.kill_switch_state = Some(PathBuf::from(&g.kill_switch_state));
        }
        if set("mcp_serve.listen") {
            cfg.listen = resolve_listen(&m.listen)
                .map_err(|e| inv("mcp_serve.listen", format!("invalid mcp_serve.listen: {e}")))?;
        }
        if set("mcp_serve.auth_mode") {
            cfg.auth_mode = match m.auth_mode {
                AuthMode::Off => sc::AuthMode::Off,
                AuthMode::Token => sc::AuthMode::Token,
            };
        }
        if set("mcp_serve.auth_token_env") && !m.auth_token_env.is_empty() {
            cfg.auth_token_env = Some(m.auth_token_env.clone());
        }
        if set("mcp_serve.max_request_bytes") {
            cfg.max_request_bytes = m.max_request_bytes;
        }
        if set("mcp_serve.http_verdict_status") {
            cfg.http_verdict_status = match m.http_verdict_status {
                VerdictStatus::Compat => sc::VerdictStatusMode::Compat,
                VerdictStatus::Strict => sc::VerdictStatusMode::Strict,
            };
        }
        if set("mcp_serve.allow_client_artifact_paths") {
            cfg.allow_client_artifact_paths = m.allow_client_artifact_paths;
        }
        if set("mcp_serve.upstreams") {
            cfg.upstreams = m
                .upstreams
                .iter()
                .map(|u| {
                    let mut up = sc::UpstreamConfig::parse(&format!("{}={}", u.name, u.url))
                        .map_err(|e| inv("mcp_serve.upstreams", e.to_string()))?;
                    up.auth_env = u.auth_env.clone();
                    Ok(up)
                })
                .collect::<Result<_, ConfigError>>()?;
        }
        if set("mcp_serve.upstream_ca")
            && let Some(p) = &m.upstream_ca
        {
            cfg.upstream_ca = Some(PathBuf::from(p));
        }
        if set("mcp_serve.allowed_origins") {
            cfg.allowed_origins = m.allowed_origins.clone();
        }
        if set("mcp_serve.trace_dir") {
            cfg.trace_dir = PathBuf::from(&m.trace_dir);
        }
        if set("mcp_serve.trace_sink") {
            cfg.trace_sink = m
                .trace_sink
                .parse()
                .map_err(|e: sc::ConfigError| inv("mcp_serve.trace_sink", e.to_string()))?;
        }
        if set("mcp_serve.trace_segment_records") {
            cfg.trace_segment_records = m.trace_segment_records;
        }
        if set("mcp_serve.session_dir") {
            cfg.session_dir = PathBuf::from(&m.session_dir);
        }
        let opt = |v: &Option<String>| v.as_ref().map(PathBuf::from);
        if set("mcp_serve.runpack_dir") {
            cfg.runpack_dir = opt(&m.runpack_dir);
        }
        if set("mcp_serve.pack_dir") {
            cfg.pack_dir = opt(&m.pack_dir);
        }
        if set("mcp_serve.export_log_out") {
            cfg.export_log_out = opt(&m.export_log_out);
        }
        if set("mcp_serve.export_otel_out") {
            cfg.export_otel_out = opt(&m.export_otel_out);
        }
        if set("mcp_serve.max_connections") {
            cfg.max_connections = usize::try_from(m.max_connections).unwrap_or(usize::MAX);
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(c), Some(k)) => {
                cfg.tls = Some(sc::TlsConfig {
                    cert: PathBuf::from(c),
                    key: PathBuf::from(k),
                })
            }
            (None, None) => {}
            _ => {
                return Err(inv(
                    "tls",
                    "tls.cert_file and tls.key_file must be set together".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Record the source `flag` for every serve flag that was given (call after
/// `McpServeArgs::apply`), so a startup report can say where each value came from.
pub fn mark_serve_flags(args: &crate::cli::mcp_serve::McpServeArgs, sources: &mut Sources) {
    let pairs: [(&str, bool); 19] = [
        ("gate.policy", args.policy.is_some()),
        ("gate.profile", args.profile.is_some()),
        ("gate.key_mode", args.key_mode.is_some()),
        ("gate.private_key", args.private_key.is_some()),
        ("gate.private_key_env", args.private_key_env.is_some()),
        ("gate.kill_switch_state", args.kill_switch_state.is_some()),
        ("mcp_serve.listen", args.listen.is_some()),
        ("mcp_serve.auth_mode", args.auth_mode.is_some()),
        ("mcp_serve.auth_token_env", args.auth_token_env.is_some()),
        (
            "mcp_serve.max_request_bytes",
            args.max_request_bytes.is_some(),
        ),
        (
            "mcp_serve.http_verdict_status",
            args.http_verdict_status.is_some(),
        ),
        (
            "mcp_serve.allow_client_artifact_paths",
            args.allow_client_artifact_paths.is_some(),
        ),
        ("mcp_serve.upstreams", !args.upstream.is_empty()),
        ("mcp_serve.trace_dir", args.trace_dir.is_some()),
        ("mcp_serve.trace_sink", args.trace_sink.is_some()),
        (
            "mcp_serve.trace_segment_records",
            args.trace_segment_records.is_some(),
        ),
        ("mcp_serve.session_dir", args.session_dir.is_some()),
        ("mcp_serve.runpack_dir", args.runpack_dir.is_some()),
        ("mcp_serve.pack_dir", args.pack_dir.is_some()),
    ];
    for (k, given) in pairs {
        if given {
            sources.insert(k.to_string(), Source::Flag);
        }
    }
    if args.tls_cert.is_some() {
        sources.insert("tls.cert_file".into(), Source::Flag);
        sources.insert("tls.key_file".into(), Source::Flag);
    }
}

/// Resolve `host:port` where host is an IP, `localhost` or `[v6]`. Other hostnames are
/// rejected (the listener must bind a known address).
pub fn resolve_listen(listen: &str) -> Result<std::net::SocketAddr, String> {
    let (host, port) = split_host_port(listen)?;
    let port: u16 = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
    let ip: std::net::IpAddr = if host.eq_ignore_ascii_case("localhost") {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else if host.is_empty() {
        std::net::IpAddr::from([0, 0, 0, 0])
    } else {
        host.parse()
            .map_err(|_| format!("host {host:?} is not an IP address or localhost"))?
    };
    Ok(std::net::SocketAddr::new(ip, port))
}

/// Split `host:port` like Go's `net.SplitHostPort` (`[::1]:80`, `:8787`, `a:1`).
pub fn split_host_port(s: &str) -> Result<(String, String), String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {s}: missing ']' in address"))?;
        let port = tail
            .strip_prefix(':')
            .ok_or_else(|| format!("address {s}: missing port in address"))?;
        return Ok((host.to_string(), port.to_string()));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("address {s}: missing port in address"))?;
    if host.contains(':') {
        return Err(format!("address {s}: too many colons in address"));
    }
    Ok((host.to_string(), port.to_string()))
}

/// Loopback as Go's doctor means it: `localhost` or a loopback IP.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

/// The full layering for `mcp serve`: `ServeConfig::default()` → config file → env → flags.
///
/// The file is `$GAIT_CONFIG` or `<base>/.gait/config.yaml` (a missing default file means
/// defaults). Returns the runtime config (not yet validated: call `ServeConfig::validate`) and
/// the loaded project config whose `sources` now also mark the given flags.
pub fn layered_serve_config(
    args: &crate::cli::mcp_serve::McpServeArgs,
    env: &dyn Env,
    base: &Path,
) -> Result<(crate::server::config::ServeConfig, LoadedConfig), ConfigError> {
    let location = ConfigLocation::resolve(args.config.as_deref(), env, base);
    let flags = args.ops_flags().map_err(|message| ConfigError::Flag {
        key: "mcp serve".into(),
        message,
    })?;
    let mut loaded = load(&location, env, &flags)?;
    let mut cfg = crate::server::config::ServeConfig::default();
    loaded.config.apply_serve(&mut cfg, &loaded.sources)?;
    args.apply(&mut cfg).map_err(|e| ConfigError::Flag {
        key: "mcp serve".into(),
        message: e.to_string(),
    })?;
    mark_serve_flags(args, &mut loaded.sources);
    Ok((cfg, loaded))
}
