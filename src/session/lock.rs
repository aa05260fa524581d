//! The session lock: Go's `J.lock` protocol plus an OS advisory lock on `J.flock`.
//!
//! Acquisition order: (1) exclusive `flock` on the never-deleted sidecar `J.flock` — this
//! serialises every Rust writer (threads and processes alike, the kernel queues waiters) and is
//! released by the kernel if the holder dies; (2) the Go-compatible lock file `J.lock`, created
//! exclusively (hard link of a fully written temp file, so it is never observed empty) with the
//! keys Go writes (`created_at`, `pid`, `schema_id`, `schema_version`) plus keys Go ignores
//! (`boot_id`, `flock`, `hostname`, `nonce`).
//!
//! Invariants:
//! - while a [`SessionLock`] is alive its owner holds both locks;
//! - a `J.lock` written by a Rust holder (`"flock":true`) seen while we hold the flock is stale at
//!   once (its owner died); a lock whose pid is dead on this host (or from another boot) is stale
//!   at once; otherwise staleness is age (`created_at`, else mtime for empty/garbage files) over
//!   `stale_after`;
//! - stale takeover renames the lock to a tombstone and confirms it still holds what we judged;
//! - release removes `J.lock` only if it still holds our nonce.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value};

use super::SessionPaths;
use super::error::{LockContention, SessionError};
use super::gojson::{format_time_seconds, parse_go_duration, parse_time};
use super::record::{LOCK_SCHEMA_ID, SCHEMA_VERSION};

pub const ENV_PROFILE: &str = "GAIT_SESSION_LOCK_PROFILE";
pub const ENV_TIMEOUT: &str = "GAIT_SESSION_LOCK_TIMEOUT";
pub const ENV_RETRY: &str = "GAIT_SESSION_LOCK_RETRY";
pub const ENV_STALE_AFTER: &str = "GAIT_SESSION_LOCK_STALE_AFTER";

/// Where configuration is read from, so tests inject maps instead of mutating the process env.
pub trait EnvSource {
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl<const N: usize> EnvSource for [(&str, &str); N] {
    fn var(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockProfile {
    Standard,
    Swarm,
}

impl LockProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            LockProfile::Standard => "standard",
            LockProfile::Swarm => "swarm",
        }
    }
}

/// Lock timing (sessions.md §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    pub profile: LockProfile,
    pub timeout: Duration,
    pub retry: Duration,
    pub stale_after: Duration,
}

const STD_TIMEOUT: Duration = Duration::from_secs(2);
const STD_RETRY: Duration = Duration::from_millis(50);
const STD_STALE: Duration = Duration::from_secs(300);

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig::profile(LockProfile::Standard)
    }
}

impl LockConfig {
    pub fn profile(profile: LockProfile) -> LockConfig {
        match profile {
            LockProfile::Standard => LockConfig {
                profile,
                timeout: STD_TIMEOUT,
                retry: STD_RETRY,
                stale_after: STD_STALE,
            },
            LockProfile::Swarm => LockConfig {
                profile,
                timeout: Duration::from_secs(10),
                retry: Duration::from_millis(20),
                stale_after: Duration::from_secs(600),
            },
        }
    }

    /// Resolve from `GAIT_SESSION_LOCK_*`: unknown profile → standard; an unparsable override
    /// keeps the profile's value; a value ≤ 0 falls back to the *standard* constant; then
    /// `retry` is clamped to `timeout`.
    pub fn from_env(env: &dyn EnvSource) -> LockConfig {
        let profile = match env
            .var(ENV_PROFILE)
            .map(|s| s.trim().to_lowercase())
            .as_deref()
        {
            Some("swarm") => LockProfile::Swarm,
            _ => LockProfile::Standard,
        };
        let mut cfg = LockConfig::profile(profile);
        let over = |key: &str, current: Duration, standard: Duration| -> Duration {
            let Some(raw) = env.var(key) else {
                return current;
            };
            if raw.trim().is_empty() {
                return current;
            }
            match parse_go_duration(&raw) {
                None => current,
                Some(ns) if ns <= 0 => standard,
                Some(ns) => Duration::from_nanos(ns as u64),
            }
        };
        cfg.timeout = over(ENV_TIMEOUT, cfg.timeout, STD_TIMEOUT);
        cfg.retry = over(ENV_RETRY, cfg.retry, STD_RETRY);
        cfg.stale_after = over(ENV_STALE_AFTER, cfg.stale_after, STD_STALE);
        if cfg.retry > cfg.timeout {
            cfg.retry = cfg.timeout;
        }
        cfg
    }
}

/// What we learned about an existing `J.lock`.
#[derive(Debug, Clone)]
pub struct LockHolder {
    pub content: Vec<u8>,
    pub pid: Option<i64>,
    pub age: Option<Duration>,
    pub stale: bool,
    pub reason: &'static str,
}

/// Held session lock; dropping it releases both locks (lock file only if still ours).
#[derive(Debug)]
pub struct SessionLock {
    lock_path: PathBuf,
    nonce: String,
    /// Stale locks taken over while acquiring (for diagnostics).
    pub takeovers: u32,
    pub attempts: u32,
    // Dropped last: the flock outlives the lock-file removal in `Drop`.
    _flock: Flock<File>,
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Ok(bytes) = fs::read(&self.lock_path)
            && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&bytes)
            && m.get("nonce").and_then(Value::as_str) == Some(self.nonce.as_str())
        {
            let _ = fs::remove_file(&self.lock_path);
        }
    }
}

/// This boot's id (constant until the next boot, so read once per process).
fn boot_id() -> String {
    static BOOT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// The host name, read once per process (a lock names its writer's host; a rename while
/// running only makes this process's lock files look foreign until they go stale).
fn hostname() -> &'static str {
    static HOSTNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOSTNAME.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

pub(crate) fn pid_is_dead(pid: i64) -> bool {
    if pid <= 0 || pid > i64::from(i32::MAX) {
        return false;
    }
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Judge an existing lock file's content. `we_hold_flock`: a Rust-written lock is then stale.
pub fn assess_lock(
    content: &[u8],
    mtime: Option<SystemTime>,
    stale_after: Duration,
    we_hold_flock: bool,
) -> LockHolder {
    let now = Utc::now();
    let mtime_age = mtime.and_then(|m| SystemTime::now().duration_since(m).ok());
    let parsed = serde_json::from_slice::<Value>(content).ok();
    let obj = parsed.as_ref().and_then(Value::as_object);
    let created = obj
        .and_then(|o| o.get("created_at"))
        .and_then(Value::as_str)
        .and_then(parse_time);
    let pid = obj.and_then(|o| o.get("pid")).and_then(Value::as_i64);
    let mut holder = LockHolder {
        content: content.to_vec(),
        pid,
        age: None,
        stale: false,
        reason: "fresh",
    };
    let Some(created) = created else {
        // Empty or unparsable (Go never recovers these): fall back to the file's mtime.
        holder.age = mtime_age;
        if mtime_age.is_some_and(|a| a > stale_after) {
            holder.stale = true;
            holder.reason = "unparsable_lock_older_than_stale_after";
        }
        return holder;
    };
    let age = (now - created).to_std().unwrap_or(Duration::ZERO);
    holder.age = Some(age);
    let obj = obj.cloned().unwrap_or_default();
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let rust_holder = obj.get("flock").and_then(Value::as_bool) == Some(true);
    let host = s("hostname");
    let same_host = host.is_empty() || host == hostname();
    let lock_boot = s("boot_id");
    if we_hold_flock && rust_holder && same_host {
        holder.stale = true;
        holder.reason = "owner_released_flock";
    } else if same_host && !lock_boot.is_empty() && lock_boot != boot_id() {
        holder.stale = true;
        holder.reason = "owner_from_previous_boot";
    } else if same_host && pid.is_some_and(pid_is_dead) {
        holder.stale = true;
        holder.reason = "owner_pid_dead";
    } else if age > stale_after {
        holder.stale = true;
        holder.reason = "older_than_stale_after";
    }
    holder
}

fn read_holder(lock: &Path, cfg: &LockConfig, we_hold_flock: bool) -> Option<LockHolder> {
    let content = fs::read(lock).ok()?;
    let mtime = fs::metadata(lock).and_then(|m| m.modified()).ok();
    Some(assess_lock(&content, mtime, cfg.stale_after, we_hold_flock))
}

fn lock_body(nonce: &str) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("boot_id".into(), boot_id().into());
    m.insert("created_at".into(), format_time_seconds(Utc::now()).into());
    m.insert("flock".into(), true.into());
    m.insert("hostname".into(), hostname().into());
    m.insert("nonce".into(), nonce.into());
    m.insert("pid".into(), std::process::id().into());
    m.insert("schema_id".into(), LOCK_SCHEMA_ID.into());
    m.insert("schema_version".into(), SCHEMA_VERSION.into());
    let mut out = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
    out.push(b'\n');
    out
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Create `lock` exclusively with `body` already inside (link of a temp file); falls back to
/// `O_CREAT|O_EXCL` + write where hard links are unsupported.
fn create_lock_file(lock: &Path, body: &[u8], nonce: &str) -> std::io::Result<()> {
    let tmp = with_suffix(lock, &format!(".tmp-{nonce}"));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(body)
    })();
    if let Err(e) = written {
        // e.g. ENOSPC: fail without leaving anything behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let linked = fs::hard_link(&tmp, lock);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        // Filesystems without hard links: plain O_EXCL create, removed again if the write fails.
        Err(e) if matches!(e.raw_os_error(), Some(1 | 31 | 38 | 95)) => {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(lock)?;
            if let Err(e) = f.write_all(body) {
                let _ = fs::remove_file(lock);
                return Err(e);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Take over a stale lock: rename it to a tombstone, then confirm it still held what we judged.
fn take_over(lock: &Path, observed: &[u8]) -> bool {
    let tomb = with_suffix(lock, &format!(".stale-{:016x}", rand::random::<u64>()));
    if fs::rename(lock, &tomb).is_err() {
        return false;
    }
    let got = fs::read(&tomb).unwrap_or_default();
    if got == observed {
        let _ = fs::remove_file(&tomb);
        return true;
    }
    // We moved a lock that changed under us: put it back if nobody took the name meanwhile.
    let _ = fs::hard_link(&tomb, lock);
    let _ = fs::remove_file(&tomb);
    false
}

fn open_flock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Exclusive flock on `path`, waiting at most until `deadline` (kernel-queued wait).
fn flock_until(path: &Path, deadline: Instant) -> Result<Option<Flock<File>>, std::io::Error> {
    let file = open_flock_file(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => return Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
        Err((_, e)) => return Err(std::io::Error::from(e)),
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Ok(None);
    }
    let file = open_flock_file(path)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("gait-session-flock".into())
        .spawn(move || {
            let r = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e);
            // If the receiver gave up, dropping the Flock here unlocks at once.
            let _ = tx.send(r);
        })?;
    match rx.recv_timeout(remaining) {
        Ok(Ok(l)) => Ok(Some(l)),
        Ok(Err(e)) => Err(std::io::Error::from(e)),
        Err(_) => Ok(None),
    }
}

impl SessionLock {
    /// One attempt that never waits: `Ok(None)` when another holder has the flock or a fresh
    /// `J.lock` (the caller retries later); a stale `J.lock` is taken over as in
    /// [`SessionLock::acquire`]. Used by the shared writer pool, whose threads must not block
    /// on one contended journal while others have work.
    pub fn try_acquire(
        paths: &SessionPaths,
        cfg: &LockConfig,
    ) -> Result<Option<SessionLock>, SessionError> {
        super::fsx::ensure_parent(&paths.lock)
            .map_err(|e| SessionError::Lock(format!("prepare session lock directory: {e}")))?;
        let file = open_flock_file(&paths.flock)
            .map_err(|e| SessionError::Lock(format!("acquire session lock: {e}")))?;
        let flock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(SessionError::Lock(format!("acquire session lock: {e}"))),
        };
        let nonce = new_nonce();
        let body = lock_body(&nonce);
        let mut takeovers = 0;
        // Bounded: a stale lock is taken over at most a few times before we report "busy".
        for attempts in 1..=4u32 {
            match lock_file_step(paths, cfg, &body, &nonce)? {
                LockStep::Created => {
                    return Ok(Some(SessionLock::held(
                        paths, nonce, takeovers, attempts, flock,
                    )));
                }
                LockStep::Retry { took_over } => takeovers += u32::from(took_over),
                LockStep::Held(_) => return Ok(None),
            }
        }
        Ok(None)
    }

    fn held(
        paths: &SessionPaths,
        nonce: String,
        takeovers: u32,
        attempts: u32,
        flock: Flock<File>,
    ) -> SessionLock {
        SessionLock {
            lock_path: paths.lock.clone(),
            nonce,
            takeovers,
            attempts,
            _flock: flock,
        }
    }

    /// The contention error for a caller that gave up after `waited` and `attempts` tries.
    pub fn contention(
        paths: &SessionPaths,
        cfg: &LockConfig,
        waited: Duration,
        attempts: u32,
    ) -> SessionError {
        contention_error(
            paths,
            cfg,
            waited,
            attempts,
            read_holder(&paths.lock, cfg, false),
        )
    }

    /// Acquire both locks for the journal in `paths` (sessions.md §3.1, improved per §8).
    pub fn acquire(paths: &SessionPaths, cfg: &LockConfig) -> Result<SessionLock, SessionError> {
        let start = Instant::now();
        let deadline = start + cfg.timeout;
        super::fsx::ensure_parent(&paths.lock)
            .map_err(|e| SessionError::Lock(format!("prepare session lock directory: {e}")))?;
        let contention = |attempts: u32, holder: Option<LockHolder>| {
            contention_error(paths, cfg, start.elapsed(), attempts, holder)
        };
        let mut attempts: u32 = 1;
        let flock = match flock_until(&paths.flock, deadline) {
            Ok(Some(l)) => l,
            Ok(None) => return Err(contention(attempts, read_holder(&paths.lock, cfg, false))),
            Err(e) => return Err(SessionError::Lock(format!("acquire session lock: {e}"))),
        };
        let nonce = new_nonce();
        let body = lock_body(&nonce);
        let mut backoff = Duration::from_millis(1);
        let mut takeovers = 0;
        loop {
            match lock_file_step(paths, cfg, &body, &nonce)? {
                LockStep::Created => {
                    return Ok(SessionLock::held(paths, nonce, takeovers, attempts, flock));
                }
                // a stale holder taken over, or the file vanished: try again at once
                LockStep::Retry { took_over } => {
                    takeovers += u32::from(took_over);
                    if Instant::now() >= deadline {
                        return Err(contention(attempts, None));
                    }
                    attempts += 1;
                    continue;
                }
                LockStep::Held(h) => {
                    if Instant::now() >= deadline {
                        return Err(contention(attempts, Some(h)));
                    }
                }
            }
            let jitter = backoff.mul_f64(0.5 + rand::random::<f64>() * 0.5);
            let sleep = jitter.min(deadline.saturating_duration_since(Instant::now()));
            std::thread::sleep(sleep);
            backoff = (backoff * 2).min(cfg.retry.max(Duration::from_millis(1)));
            attempts += 1;
        }
    }
}

fn new_nonce() -> String {
    format!("{:016x}{:08x}", rand::random::<u64>(), std::process::id())
}

/// What one try at creating `J.lock` found.
enum LockStep {
    Created,
    /// A stale holder (taken over when `took_over`) or a file that vanished between the create
    /// and the read: try again at once.
    Retry {
        took_over: bool,
    },
    /// A live holder.
    Held(LockHolder),
}

fn lock_file_step(
    paths: &SessionPaths,
    cfg: &LockConfig,
    body: &[u8],
    nonce: &str,
) -> Result<LockStep, SessionError> {
    match create_lock_file(&paths.lock, body, nonce) {
        Ok(()) => Ok(LockStep::Created),
        Err(e) if e.kind() == ErrorKind::AlreadyExists || paths.lock.exists() => {
            Ok(match read_holder(&paths.lock, cfg, true) {
                Some(h) if h.stale => LockStep::Retry {
                    took_over: take_over(&paths.lock, &h.content),
                },
                None => LockStep::Retry { took_over: false },
                Some(h) => LockStep::Held(h),
            })
        }
        Err(e) => Err(SessionError::Lock(format!("acquire session lock: {e}"))),
    }
}

fn contention_error(
    paths: &SessionPaths,
    cfg: &LockConfig,
    waited: Duration,
    attempts: u32,
    holder: Option<LockHolder>,
) -> SessionError {
    SessionError::Contention(Box::new(LockContention {
        path: paths.lock.display().to_string(),
        waited: Duration::from_millis(waited.as_millis() as u64),
        attempts,
        timeout: cfg.timeout,
        retry: cfg.retry,
        profile: cfg.profile,
        holder_pid: holder.as_ref().and_then(|h| h.pid),
        holder_age: holder.and_then(|h| h.age),
    }))
}
