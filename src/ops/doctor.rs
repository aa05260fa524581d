//! `gait doctor`: installation checks and, with `--production-readiness`, the production
//! posture of the hardening contract.
//!
//! Names, order, scopes, messages, fix commands, aggregation and exit codes follow the Go tool
//! (ops.md §1). Stronger than Go: every violation of a production check is reported (joined
//! with `; `), not only the first; `key_config` falls back to `gate.key_mode` and the config's
//! key sources when no flag is given; `auth_mode=token` is required in production even on
//! loopback (the contract's production posture); and six checks Go lacks are appended
//! (policy, env vars, TLS files, upstream URLs, metrics listener, retention caps > 0).
//!
//! Invariant: the checks only read the filesystem and the injected [`Env`], except the two
//! write probes Go also makes (`workdir`, `temp_dir`), which remove their probe file.

use super::config::{self, AuthMode, ConfigError, ConfigLocation, KeyMode, LoadedConfig};
use super::env::{Env, EnvStatus};
use crate::verdict::Profile;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const SCHEMA_ID: &str = "gait.doctor.result";
pub const SCHEMA_VERSION: &str = "1.0.0";
/// `max_request_bytes` upper bound in production.
pub const MAX_PROD_REQUEST_BYTES: u64 = 4_194_304;

/// Check status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// Scope of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Universal,
    Default,
    ProductionReadiness,
    RepoCheckout,
}

/// One check result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub scope: Scope,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_command: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub non_fixable: bool,
}

impl Check {
    fn new(name: &'static str, scope: Scope, status: Status, message: impl Into<String>) -> Self {
        Check {
            name,
            scope,
            status,
            message: message.into(),
            fix_command: None,
            non_fixable: false,
        }
    }
    fn pass(name: &'static str, scope: Scope, message: impl Into<String>) -> Self {
        Check::new(name, scope, Status::Pass, message)
    }
    fn warn(name: &'static str, scope: Scope, message: impl Into<String>) -> Self {
        Check::new(name, scope, Status::Warn, message)
    }
    fn fail(name: &'static str, scope: Scope, message: impl Into<String>) -> Self {
        Check::new(name, scope, Status::Fail, message)
    }
    fn fix(mut self, cmd: impl Into<String>) -> Self {
        self.fix_command = Some(cmd.into());
        self
    }
}

/// Doctor inputs (the CLI flags).
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    pub workdir: PathBuf,
    /// As given (`./gait-out` by default); relative paths are joined to the workdir.
    pub output_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub key_mode: Option<String>,
    pub private_key: Option<PathBuf>,
    pub private_key_env: Option<String>,
    pub public_key: Option<PathBuf>,
    pub public_key_env: Option<String>,
    pub production_readiness: bool,
    pub summary: bool,
}

/// `gait.doctor.result` (keys serialize sorted through the JSON envelope).
#[derive(Debug, Clone, Serialize)]
pub struct DoctorResult {
    pub schema_id: &'static str,
    pub schema_version: &'static str,
    pub created_at: String,
    pub producer_version: &'static str,
    pub ok: bool,
    pub status: Status,
    pub onboarding_mode: &'static str,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fix_commands: Vec<String>,
    pub summary: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub non_fixable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_mode: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_version: Option<String>,
    #[serde(skip)]
    pub production: bool,
}

impl DoctorResult {
    /// 7 when a check is non-fixable; 2 when a production run has a failure; else 0.
    pub fn exit_code(&self) -> u8 {
        if self.non_fixable {
            crate::exit::DEPENDENCY_MISSING
        } else if self.production && self.status == Status::Fail {
            crate::exit::VERIFICATION_FAILED
        } else {
            crate::exit::OK
        }
    }
}

/// Run every check in the Go tool's order and aggregate.
pub fn run(opts: &DoctorOptions, env: &dyn Env) -> DoctorResult {
    let wd = &opts.workdir;
    let out_dir = if opts.output_dir.as_os_str().is_empty() {
        PathBuf::from("./gait-out")
    } else {
        opts.output_dir.clone()
    };
    let out_abs = if out_dir.is_absolute() {
        out_dir.clone()
    } else {
        wd.join(&out_dir)
    };
    let onboarding_mode = onboarding_mode(wd);
    let location = ConfigLocation::resolve(opts.config.as_deref(), env, wd);
    let loaded = config::load(&location, env, &[]);

    let mut checks = vec![
        check_workdir(wd),
        check_output_dir(&out_dir, &out_abs),
        check_jobs(&out_abs),
        check_temp_dir(env),
    ];
    if !opts.production_readiness {
        checks.push(check_registry_cache(env));
        checks.push(check_rate_limit_lock(&out_abs));
        checks.push(Check::pass(
            "onboarding_binary",
            Scope::Default,
            format!("gait binary is available (gait {})", crate::VERSION),
        ));
    }
    let keys = KeySources::resolve(opts, loaded.as_ref().ok());
    checks.push(check_key_ambiguity(opts));
    checks.push(check_key_permissions(&keys, wd));
    checks.push(check_key_config(&keys, wd, env));
    if opts.production_readiness {
        checks.extend(production_checks(&location, &loaded, wd, env));
    }

    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    let non_fixable = checks.iter().any(|c| c.non_fixable);
    let mut fix_commands: Vec<String> = checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .filter_map(|c| c.fix_command.clone())
        .collect();
    fix_commands.sort();
    fix_commands.dedup();
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    let summary = format!(
        "doctor: onboarding_mode={onboarding_mode} status={} failed={failed} warned={warned} non_fixable={non_fixable}",
        status.as_str()
    );
    let ok = !non_fixable && (!opts.production_readiness || status != Status::Fail);
    let (binary_path, binary_version) = if opts.production_readiness {
        (None, None)
    } else {
        (
            std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string()),
            Some(crate::VERSION.to_string()),
        )
    };
    DoctorResult {
        schema_id: SCHEMA_ID,
        schema_version: SCHEMA_VERSION,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        producer_version: crate::VERSION,
        ok,
        status,
        onboarding_mode,
        checks,
        fix_commands,
        summary,
        non_fixable,
        summary_mode: opts.summary.then_some(true),
        binary_path,
        binary_version,
        production: opts.production_readiness,
    }
}

/// `repo_checkout` only inside a checkout of the Go tool (ops.md §1); gait itself is always
/// an `installed_binary`.
fn onboarding_mode(wd: &Path) -> &'static str {
    let gomod = std::fs::read_to_string(wd.join("go.mod")).unwrap_or_default();
    let repo = gomod.contains("module github.com/Clyra-AI/gait")
        && ["cmd/gait", "core", "schemas/v1", "scripts/install.sh"]
            .iter()
            .all(|p| wd.join(p).exists());
    if repo {
        "repo_checkout"
    } else {
        "installed_binary"
    }
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Create and remove a probe file with mode 0600.
fn probe(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?;
    std::fs::remove_file(path)
}

fn check_workdir(wd: &Path) -> Check {
    const N: &str = "workdir";
    match std::fs::metadata(wd) {
        Err(e) => Check::fail(N, Scope::Universal, format!("workdir not accessible: {e}"))
            .fix(format!("mkdir -p {}", q(wd))),
        Ok(m) if !m.is_dir() => Check::fail(N, Scope::Universal, "workdir is not a directory"),
        Ok(_) => match probe(&wd.join(".gait-doctor-writecheck")) {
            Err(e) => Check::fail(N, Scope::Universal, format!("workdir not writable: {e}"))
                .fix(format!("chmod u+w {}", q(wd))),
            Ok(()) => Check::pass(N, Scope::Universal, "workdir is writable"),
        },
    }
}

fn check_output_dir(given: &Path, abs: &Path) -> Check {
    const N: &str = "output_dir";
    let shown = given.strip_prefix("./").unwrap_or(given);
    match std::fs::metadata(abs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Check::warn(N, Scope::Universal, "output directory does not exist")
                .fix(format!("mkdir -p {}", q(shown)))
        }
        Err(e) => Check::fail(
            N,
            Scope::Universal,
            format!("output directory check failed: {e}"),
        ),
        Ok(m) if !m.is_dir() => Check::fail(N, Scope::Universal, "output path is not a directory"),
        Ok(_) => match probe(&abs.join(".gait-doctor-writecheck")) {
            Err(e) => Check::fail(
                N,
                Scope::Universal,
                format!("output directory not writable: {e}"),
            )
            .fix(format!("chmod u+w {}", q(shown))),
            Ok(()) => Check::pass(N, Scope::Universal, "output directory is writable"),
        },
    }
}

/// `job_runtime_durability`: gait has no job runtime, so this detects the two divergences
/// visible from the file layout alone (`pending_mutation`, `missing_state_with_events`).
fn check_jobs(out: &Path) -> Check {
    const N: &str = "job_runtime_durability";
    let jobs = out.join("jobs");
    let entries = match std::fs::read_dir(&jobs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::pass(N, Scope::Universal, "job durable state is consistent");
        }
        Err(e) => {
            return Check::fail(
                N,
                Scope::Universal,
                format!("job durable-state scan failed: {e}"),
            );
        }
        Ok(e) => e,
    };
    let mut issues = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let job = entry.file_name().to_string_lossy().to_string();
        if dir.join("pending_mutation.json").exists() {
            issues.push(format!("{job}:pending_mutation"));
        }
        if dir.join("events.jsonl").exists() && !dir.join("state.json").exists() {
            issues.push(format!("{job}:missing_state_with_events"));
        }
    }
    issues.sort();
    if issues.is_empty() {
        Check::pass(N, Scope::Universal, "job durable state is consistent")
    } else {
        Check::fail(
            N,
            Scope::Universal,
            format!(
                "durable job state divergence detected: {}",
                issues.join(",")
            ),
        )
    }
}

fn check_temp_dir(env: &dyn Env) -> Check {
    const N: &str = "temp_dir";
    let dir = match env.get("TMPDIR") {
        Some(d) if !d.trim().is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir(),
    };
    if dir.as_os_str().is_empty() {
        return Check::fail(N, Scope::Universal, "temporary directory is not configured");
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    match probe(&dir.join(format!("gait-doctor-{nanos}.tmp"))) {
        Err(e) => Check::fail(
            N,
            Scope::Universal,
            format!("temporary directory is not writable: {e}"),
        ),
        Ok(()) => Check::pass(N, Scope::Universal, "temporary directory is writable"),
    }
}

fn check_registry_cache(env: &dyn Env) -> Check {
    const N: &str = "registry_cache";
    let Some(home) = env.get("HOME").filter(|h| !h.trim().is_empty()) else {
        return Check::warn(N, Scope::Default, "home directory is not configured");
    };
    let dir = Path::new(&home).join(".gait").join("registry");
    match std::fs::metadata(&dir) {
        Err(_) => Check::warn(N, Scope::Default, "registry cache directory does not exist")
            .fix(format!("mkdir -p {}", q(&dir))),
        Ok(m) if !m.is_dir() => {
            Check::fail(N, Scope::Default, "registry cache path is not a directory")
        }
        Ok(_) => Check::pass(N, Scope::Default, "registry cache directory is present"),
    }
}

fn check_rate_limit_lock(out: &Path) -> Check {
    const N: &str = "gate_rate_limit_lock";
    let lock = out.join("gate_rate_limits.json.lock");
    let age = std::fs::metadata(&lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    match age {
        Some(a) if a.as_secs() > 30 => Check::warn(
            N,
            Scope::Default,
            format!("stale gate rate limit lock detected: {}", lock.display()),
        )
        .fix(format!("rm -f {}", q(&lock))),
        _ => Check::pass(N, Scope::Default, "no stale gate rate limit lock"),
    }
}

/// Effective key sources: flags first, else the config (Rust, stronger than Go).
#[derive(Debug, Clone, Default)]
struct KeySources {
    mode: String,
    /// True when the mode or a source came from flags.
    from_flags: bool,
    private_key: Option<PathBuf>,
    private_key_env: Option<String>,
    public_key: Option<PathBuf>,
    public_key_env: Option<String>,
}

impl KeySources {
    fn resolve(opts: &DoctorOptions, loaded: Option<&LoadedConfig>) -> KeySources {
        let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let flag_sources = opts.private_key.is_some()
            || opts.private_key_env.is_some()
            || opts.public_key.is_some()
            || opts.public_key_env.is_some();
        if opts.key_mode.is_some() || flag_sources || loaded.is_none() {
            return KeySources {
                mode: opts
                    .key_mode
                    .clone()
                    .unwrap_or_else(|| "dev".into())
                    .trim()
                    .to_ascii_lowercase(),
                from_flags: true,
                private_key: opts.private_key.clone(),
                private_key_env: opts.private_key_env.clone(),
                public_key: opts.public_key.clone(),
                public_key_env: opts.public_key_env.clone(),
            };
        }
        let g = loaded.map(|l| &l.config.gate);
        let Some(g) = g else {
            return KeySources::default();
        };
        KeySources {
            mode: g.key_mode.as_str().to_string(),
            from_flags: false,
            private_key: nonempty(&g.private_key).map(PathBuf::from),
            private_key_env: nonempty(&g.private_key_env),
            public_key: None,
            public_key_env: None,
        }
    }

    fn any(&self) -> bool {
        self.private_key.is_some()
            || self.private_key_env.is_some()
            || self.public_key.is_some()
            || self.public_key_env.is_some()
    }
}

fn check_key_ambiguity(opts: &DoctorOptions) -> Check {
    const N: &str = "key_source_ambiguity";
    if opts.private_key.is_some() && opts.private_key_env.is_some() {
        return Check::fail(N, Scope::Universal, "private key path and env are both set")
            .fix("set only one of --private-key or --private-key-env");
    }
    if opts.public_key.is_some() && opts.public_key_env.is_some() {
        return Check::fail(N, Scope::Universal, "public key path and env are both set")
            .fix("set only one of --public-key or --public-key-env");
    }
    Check::pass(
        N,
        Scope::Universal,
        "key source configuration is unambiguous",
    )
}

fn abs(wd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        wd.join(p)
    }
}

fn check_key_permissions(keys: &KeySources, wd: &Path) -> Check {
    const N: &str = "key_permissions";
    let paths: Vec<&PathBuf> = [&keys.private_key, &keys.public_key]
        .into_iter()
        .flatten()
        .collect();
    if paths.is_empty() {
        return Check::pass(N, Scope::Universal, "no key file paths configured");
    }
    for p in paths {
        let full = abs(wd, p);
        match std::fs::metadata(&full) {
            Err(e) => {
                return Check::warn(
                    N,
                    Scope::Universal,
                    format!("key file not accessible: {} ({e})", p.display()),
                )
                .fix(format!("ls -l {}", q(p)));
            }
            Ok(m) if m.is_dir() => {
                return Check::warn(
                    N,
                    Scope::Universal,
                    format!("key path is a directory: {}", p.display()),
                );
            }
            #[cfg(unix)]
            Ok(m)
                if {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o022 != 0
                } =>
            {
                return Check::warn(
                    N,
                    Scope::Universal,
                    format!("key file is writable by group/others: {}", p.display()),
                )
                .fix(format!("chmod go-w {}", q(p)));
            }
            Ok(_) => {}
        }
    }
    Check::pass(N, Scope::Universal, "key file permissions are strict")
}

/// Errors of the key-material shim.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("read key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("env var {0} is unset or empty")]
    EmptyEnv(String),
    #[error("private key source is required")]
    Missing,
    #[error("decode key: {0}")]
    Decode(String),
    #[error("{0}")]
    Trace(String),
    #[error("public key does not match private key")]
    Mismatch,
}

fn parse_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| KeyError::Decode(e.to_string()))?;
    let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
        KeyError::Decode(format!("expected 32 public key bytes, got {}", raw.len()))
    })?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::Decode(e.to_string()))
}

fn read_source(
    path: Option<&PathBuf>,
    var: Option<&String>,
    wd: &Path,
    env: &dyn Env,
) -> Result<Option<String>, KeyError> {
    if let Some(p) = path {
        return std::fs::read_to_string(abs(wd, p))
            .map(Some)
            .map_err(|source| KeyError::Read {
                path: p.display().to_string(),
                source,
            });
    }
    if let Some(v) = var {
        return match env.get(v) {
            Some(s) if !s.trim().is_empty() => Ok(Some(s)),
            _ => Err(KeyError::EmptyEnv(v.clone())),
        };
    }
    Ok(None)
}

fn check_key_config(keys: &KeySources, wd: &Path, env: &dyn Env) -> Check {
    const N: &str = "key_config";
    match keys.mode.as_str() {
        "" | "dev" => {
            if keys.any() && keys.from_flags {
                Check::warn(N, Scope::Universal, "dev mode ignores explicit key sources")
            } else {
                Check::pass(N, Scope::Universal, "dev key mode is configured")
            }
        }
        "prod" => {
            let private = read_source(
                keys.private_key.as_ref(),
                keys.private_key_env.as_ref(),
                wd,
                env,
            )
            .and_then(|t| t.ok_or(KeyError::Missing))
            .and_then(|t| {
                crate::trace::Signer::from_base64(&t)
                    .map(|s| s.verifying_key())
                    .map_err(|e| KeyError::Trace(e.to_string()))
            });
            let private = match private {
                Err(e) => {
                    return Check::fail(
                        N,
                        Scope::Universal,
                        format!("invalid prod signing key config: {e}"),
                    )
                    .fix("set --private-key <path> or --private-key-env <VAR> for prod mode");
                }
                Ok(k) => k,
            };
            let public = read_source(
                keys.public_key.as_ref(),
                keys.public_key_env.as_ref(),
                wd,
                env,
            )
            .and_then(|t| t.map(|t| parse_public_key(&t)).transpose());
            match public {
                Err(e) => Check::fail(
                    N,
                    Scope::Universal,
                    format!("invalid verify key config: {e}"),
                ),
                Ok(Some(p)) if p != private => Check::fail(
                    N,
                    Scope::Universal,
                    format!("invalid verify key config: {}", KeyError::Mismatch),
                ),
                Ok(_) => Check::pass(N, Scope::Universal, "prod key configuration is valid"),
            }
        }
        other => Check::fail(
            N,
            Scope::Universal,
            format!("unsupported key mode: {other}"),
        ),
    }
}

// === production readiness ===

const PR: Scope = Scope::ProductionReadiness;

fn production_checks(
    location: &ConfigLocation,
    loaded: &Result<LoadedConfig, ConfigError>,
    wd: &Path,
    env: &dyn Env,
) -> Vec<Check> {
    const N: &str = "production_readiness_config";
    let shown = match location {
        ConfigLocation::Explicit(p) => p.display().to_string(),
        _ => config::DEFAULT_CONFIG_PATH.to_string(),
    };
    let loaded = match loaded {
        Err(ConfigError::Missing(_)) => None,
        Err(e) => {
            let msg = match e {
                ConfigError::Parse { message, .. } => message.clone(),
                other => other.to_string(),
            };
            return vec![
                Check::fail(N, PR, format!("failed to parse {shown}: {msg}"))
                    .fix(format!("edit '{shown}' and fix yaml syntax")),
            ];
        }
        Ok(l) => l.path.is_some().then_some(l),
    };
    let default_loaded;
    let (first, l) = match loaded {
        Some(l) => (Check::pass(N, PR, format!("{shown} present")), l),
        None => {
            default_loaded = LoadedConfig {
                config: config::ProjectConfig::default(),
                sources: Default::default(),
                path: None,
            };
            (
                Check::fail(N, PR, format!("missing {shown}"))
                    .fix(format!("cp config/oss-prod.yaml '{shown}'")),
                &default_loaded,
            )
        }
    };
    let c = &l.config;
    let edit = format!("edit '{shown}'");
    let mut out = vec![first];

    out.push(if c.gate.profile == Profile::OssProd {
        Check::pass("production_profile", PR, "gate.profile is oss-prod")
    } else {
        Check::fail(
            "production_profile",
            PR,
            "gate.profile must be oss-prod for production readiness",
        )
        .fix(format!("set gate.profile=oss-prod in '{shown}'"))
    });
    out.push(if c.gate.key_mode == KeyMode::Prod {
        Check::pass("production_key_mode", PR, "gate.key_mode is prod")
    } else {
        Check::fail(
            "production_key_mode",
            PR,
            "gate.key_mode must be prod for production readiness",
        )
        .fix(format!("set gate.key_mode=prod in '{shown}'"))
    });
    out.push(retention_check(c, &edit));
    out.push(service_boundary_check(l, &edit));
    out.push(context_strictness_check(c, &edit));
    out.push(policy_check(c, wd, &edit));
    out.push(env_vars_check(c, env));
    out.push(tls_check(c, wd, &edit));
    out.push(upstreams_check(c, &edit));
    out.push(metrics_check(c, &edit));
    out
}

fn join_fail(name: &'static str, v: Vec<String>, pass: &str, fix: &str) -> Check {
    if v.is_empty() {
        Check::pass(name, PR, pass)
    } else {
        Check::fail(name, PR, v.join("; ")).fix(fix.to_string())
    }
}

fn retention_check(c: &config::ProjectConfig, fix: &str) -> Check {
    let r = &c.retention;
    let mut v = Vec::new();
    if r.trace_ttl.is_none() || r.session_ttl.is_none() || r.export_ttl.is_none() {
        v.push(
            "retention.trace_ttl, retention.session_ttl, and retention.export_ttl are required"
                .to_string(),
        );
    }
    for (k, ttl) in [
        ("trace_ttl", r.trace_ttl),
        ("session_ttl", r.session_ttl),
        ("export_ttl", r.export_ttl),
    ] {
        if ttl.is_some_and(|d| d.is_zero()) {
            v.push(format!("retention.{k} must be > 0"));
        }
    }
    for (k, caps) in [
        ("trace", r.trace),
        ("runpack", r.runpack),
        ("pack", r.pack),
        ("session", r.session),
    ] {
        if caps.max_age.is_some_and(|d| d.is_zero()) {
            v.push(format!("retention.{k}.max_age must be > 0"));
        }
        if caps.max_count == Some(0) {
            v.push(format!("retention.{k}.max_count must be > 0"));
        }
    }
    if r.sweep_interval.is_zero() {
        v.push("retention.sweep_interval must be > 0".into());
    }
    join_fail(
        "production_retention",
        v,
        "retention policies are configured",
        fix,
    )
}

fn service_boundary_check(l: &LoadedConfig, fix: &str) -> Check {
    const N: &str = "production_service_boundary";
    let m = &l.config.mcp_serve;
    let listen_set = l
        .sources
        .get("mcp_serve.listen")
        .is_some_and(|s| *s != config::Source::Default);
    if !m.enabled && !listen_set {
        return Check::pass(N, PR, "mcp_serve not configured");
    }
    let mut v = Vec::new();
    match config::split_host_port(&m.listen) {
        Err(e) => v.push(format!("invalid mcp_serve.listen: {e}")),
        Ok((host, _)) => {
            if !config::is_loopback_host(&host) && m.auth_mode != AuthMode::Token {
                v.push("non-loopback mcp_serve.listen requires mcp_serve.auth_mode=token".into());
            }
        }
    }
    if m.auth_mode != AuthMode::Token {
        v.push("mcp_serve.auth_mode must be token in production".into());
    }
    if m.auth_mode == AuthMode::Token && m.auth_token_env.trim().is_empty() {
        v.push("mcp_serve.auth_mode=token requires mcp_serve.auth_token_env".into());
    }
    if m.allow_client_artifact_paths {
        v.push("mcp_serve.allow_client_artifact_paths must be false in production".into());
    }
    if m.max_request_bytes == 0 || m.max_request_bytes > MAX_PROD_REQUEST_BYTES {
        v.push("mcp_serve.max_request_bytes must be >0 and <=4194304".into());
    }
    if m.http_verdict_status != config::VerdictStatus::Strict {
        v.push("mcp_serve.http_verdict_status must be strict in production".into());
    }
    join_fail(
        N,
        v,
        "service boundary hardening settings are configured",
        fix,
    )
}

fn context_strictness_check(c: &config::ProjectConfig, fix: &str) -> Check {
    let mut v = Vec::new();
    if c.gate.profile != Profile::OssProd {
        v.push("strict context enforcement requires gate.profile=oss-prod".to_string());
    }
    if c.gate.policy.trim().is_empty() {
        v.push("gate.policy must be set for strict context enforcement".to_string());
    }
    join_fail(
        "production_context_strictness",
        v,
        "strict context enforcement is configured",
        fix,
    )
}

fn policy_check(c: &config::ProjectConfig, wd: &Path, fix: &str) -> Check {
    const N: &str = "production_policy";
    if c.gate.policy.trim().is_empty() {
        return Check::fail(N, PR, "gate.policy is not set").fix(fix.to_string());
    }
    let p = abs(wd, Path::new(c.gate.policy.trim()));
    let policy = match crate::policy::Policy::load(&p) {
        Err(crate::policy::PolicyError::Read { source, .. }) => {
            return Check::fail(
                N,
                PR,
                format!("policy file not readable: {} ({source})", p.display()),
            )
            .fix(format!("fix or replace {}", q(&p)));
        }
        Err(e) => {
            return Check::fail(N, PR, format!("policy file does not parse: {e}"))
                .fix(format!("fix or replace {}", q(&p)));
        }
        Ok(policy) => policy,
    };
    if let Err(e) = policy.check_profile(c.gate.profile) {
        return Check::fail(N, PR, format!("policy rejected by gate.profile: {e}"))
            .fix(format!("set default_verdict: block in {}", q(&p)));
    }
    Check::pass(
        N,
        PR,
        format!(
            "policy file parses (default_verdict={})",
            policy.default_verdict().as_str()
        ),
    )
}

fn env_vars_check(c: &config::ProjectConfig, env: &dyn Env) -> Check {
    let mut refs: Vec<(String, String)> = config::env_ref_keys(c)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if c.mcp_serve.auth_mode != AuthMode::Token {
        refs.retain(|(k, _)| k != "mcp_serve.auth_token_env");
    }
    for u in &c.mcp_serve.upstreams {
        if let Some(var) = &u.auth_env {
            refs.push((
                format!("mcp_serve.upstreams[{}].auth_env", u.name),
                var.clone(),
            ));
        }
    }
    let v: Vec<String> = refs
        .iter()
        .filter(|(_, var)| EnvStatus::of(env, var.trim()) != EnvStatus::Set)
        .map(|(k, var)| {
            format!(
                "env var {} named by {k} is {}",
                var.trim(),
                EnvStatus::of(env, var.trim()).as_str()
            )
        })
        .collect();
    let fix = refs
        .iter()
        .find(|(_, var)| EnvStatus::of(env, var.trim()) != EnvStatus::Set)
        .map(|(_, var)| format!("export {}=<value>", var.trim()))
        .unwrap_or_default();
    join_fail(
        "production_env_vars",
        v,
        "referenced env vars are set and non-empty",
        &fix,
    )
}

fn tls_check(c: &config::ProjectConfig, wd: &Path, fix: &str) -> Check {
    const N: &str = "production_tls";
    let t = &c.tls;
    let mut v = Vec::new();
    match (&t.cert_file, &t.key_file) {
        (None, None) => {
            let loopback = config::split_host_port(&c.mcp_serve.listen)
                .map(|(h, _)| config::is_loopback_host(&h))
                .unwrap_or(true);
            return if loopback || !c.mcp_serve.enabled {
                Check::pass(N, PR, "tls not configured (listener is loopback)")
            } else {
                Check::warn(N, PR, "non-loopback mcp_serve.listen without tls").fix(fix.to_string())
            };
        }
        (Some(_), None) | (None, Some(_)) => {
            v.push("tls.cert_file and tls.key_file must be set together".to_string());
        }
        _ => {}
    }
    for (k, p) in [
        ("tls.cert_file", &t.cert_file),
        ("tls.key_file", &t.key_file),
    ] {
        if let Some(p) = p {
            let full = abs(wd, Path::new(p));
            if let Err(e) = std::fs::read(&full) {
                v.push(format!("{k} not readable: {p} ({e})"));
            }
        }
    }
    join_fail(N, v, "tls files are readable", fix)
}

fn upstreams_check(c: &config::ProjectConfig, fix: &str) -> Check {
    let ups = &c.mcp_serve.upstreams;
    let mut v = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for u in ups {
        if let Err(e) =
            crate::server::config::UpstreamConfig::parse(&format!("{}={}", u.name, u.url))
        {
            v.push(format!(
                "mcp_serve.upstreams[{}]: {}",
                u.name,
                config::redact_url(&e.to_string())
            ));
        }
        if names.contains(&u.name.as_str()) {
            v.push(format!("duplicate upstream name {:?}", u.name));
        }
        names.push(&u.name);
    }
    let pass = if ups.is_empty() {
        "no upstreams configured".to_string()
    } else {
        format!("{} upstream url(s) are valid", ups.len())
    };
    join_fail("production_upstreams", v, &pass, fix)
}

fn metrics_check(c: &config::ProjectConfig, fix: &str) -> Check {
    let m = &c.metrics;
    if !m.enabled {
        return Check::pass("production_metrics", PR, "metrics listener disabled");
    }
    let mut v = Vec::new();
    match config::split_host_port(&m.listen) {
        Err(e) => v.push(format!("invalid metrics.listen: {e}")),
        Ok((host, _)) => {
            if !config::is_loopback_host(&host)
                && m.auth_token_env
                    .as_deref()
                    .is_none_or(|s| s.trim().is_empty())
            {
                v.push(format!(
                    "metrics.listen {} is not loopback and metrics.auth_token_env is not set",
                    m.listen
                ));
            }
        }
    }
    join_fail(
        "production_metrics",
        v,
        "metrics listener is loopback or authenticated",
        fix,
    )
}

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
