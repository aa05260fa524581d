//! Per-command operational and adoption events (ops.md §3): `GAIT_OPERATIONAL_LOG` gets a
//! `start` event before the command runs and an `end` event after it; `GAIT_ADOPTION_LOG` gets
//! one adoption event. A blank variable disables its log.
//!
//! The write path is the Go tool's, so Go and Rust processes can share one log: the path must
//! not contain `..`; the parent is created 0750; `<file>.lock` is taken with O_EXCL (retry every
//! 10 ms; a lock older than 2 minutes is stale and removed); the line is appended with O_APPEND
//! at 0600 and fsynced; the lock is released; the directory is fsynced. Unlike Go, a held lock
//! is waited on for at most [`LOCK_WAIT`] (not 30 s) and the file rotates at the telemetry size
//! cap. Invariant: telemetry never changes a command's exit code or output; a failed write is a
//! warning on stderr (unless `GAIT_TELEMETRY_WARN=off`) and a counter in
//! `GAIT_TELEMETRY_HEALTH_PATH`.
//!
//! `gait mcp serve` is the exception: it records its start and end through its own bounded
//! background writer (`ops::telemetry::events`), configured by the same variables or the
//! `telemetry.*` config keys.

use crate::ops::telemetry::events::{self, AdoptionEvent, EventStats, OperationalEvent};
use serde_json::{Map, Value, json};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest wait for another writer's lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
const LOCK_RETRY: Duration = Duration::from_millis(10);
const LOCK_STALE: Duration = Duration::from_secs(120);

/// Where this process writes, read from the environment.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    operational: Option<PathBuf>,
    adoption: Option<PathBuf>,
    workflow_id: Option<String>,
    health: Option<PathBuf>,
    warn: bool,
}

impl Sinks {
    /// From `GAIT_OPERATIONAL_LOG`, `GAIT_ADOPTION_LOG`, `GAIT_ADOPTION_WORKFLOW`,
    /// `GAIT_TELEMETRY_HEALTH_PATH` and `GAIT_TELEMETRY_WARN`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Sinks {
        let path = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Sinks {
            operational: path("GAIT_OPERATIONAL_LOG"),
            adoption: path("GAIT_ADOPTION_LOG"),
            workflow_id: get("GAIT_ADOPTION_WORKFLOW").filter(|w| !w.trim().is_empty()),
            health: path("GAIT_TELEMETRY_HEALTH_PATH"),
            warn: !get("GAIT_TELEMETRY_WARN").is_some_and(|v| v.trim().eq_ignore_ascii_case("off")),
        }
    }

    /// Whether any event log is enabled.
    pub fn enabled(&self) -> bool {
        self.operational.is_some() || self.adoption.is_some()
    }
}

/// Run `body` between a `start` and an `end` event; returns `body`'s exit code unchanged.
pub fn around(
    sinks: &Sinks,
    args: &[String],
    correlation_id: &str,
    body: impl FnOnce() -> u8,
) -> u8 {
    if !sinks.enabled() {
        return body();
    }
    let command = events::command_name(args);
    let started = Instant::now();
    if let Some(p) = &sinks.operational {
        let ev = OperationalEvent::new(correlation_id, &command, None, 0);
        write_event(sinks, p, "operational_start", &ev);
    }
    let code = body();
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(p) = &sinks.adoption {
        let mut ev = AdoptionEvent::new(&command, sinks.workflow_id.clone(), code, elapsed);
        if code == 0 {
            ev.milestones = milestones(&command);
        }
        write_event(sinks, p, "adoption", &ev);
    }
    if let Some(p) = &sinks.operational {
        let ev = OperationalEvent::new(correlation_id, &command, Some((code, None)), elapsed);
        write_event(sinks, p, "operational_end", &ev);
    }
    code
}

/// Adoption milestones of a successful command (Go: `demo` A1, `verify` A2, `regress init` A3,
/// `regress run` A4).
fn milestones(command: &str) -> Vec<&'static str> {
    let first = command.split(' ').next().unwrap_or_default();
    match (first, command) {
        ("demo", _) => vec!["A1"],
        ("verify", _) => vec!["A2"],
        (_, "regress init") => vec!["A3"],
        (_, "regress run") => vec!["A4"],
        _ => Vec::new(),
    }
}

fn write_event<E: serde::Serialize>(sinks: &Sinks, path: &Path, stream: &str, ev: &E) {
    let res = serde_json::to_string(ev)
        .map_err(std::io::Error::other)
        .and_then(|line| append_locked(path, &line));
    if let Err(e) = &res
        && sinks.warn
    {
        eprintln!("gait warning: telemetry stream={stream} write failed: {e}");
    }
    if let Some(h) = &sinks.health {
        // best effort: the health file itself must never fail the command
        let _ = record_health(h, stream, res.is_ok());
    }
}

/// Reject paths with `..` (Go: "path must be local or absolute, with no `..`").
fn check_path(path: &Path) -> std::io::Result<()> {
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("telemetry path {} must not contain ..", path.display()),
        ));
    }
    Ok(())
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// The Go-compatible locked append (see the module docs).
pub fn append_locked(path: &Path, line: &str) -> std::io::Result<()> {
    check_path(path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
    }
    let _guard = lock(path)?;
    let cap = crate::ops::config::TelemetrySection::default();
    let max_files = u32::try_from(cap.max_files).unwrap_or(3);
    events::append(
        path,
        line,
        cap.max_file_bytes,
        max_files,
        &EventStats::default(),
    )?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .sync_all()?;
    drop(_guard);
    std::fs::File::open(dir)?.sync_all()
}

fn lock(path: &Path) -> std::io::Result<crate::session::fsx::ExclLock> {
    let holder = json!({"pid": std::process::id(), "created_at": chrono::Utc::now().to_rfc3339()});
    crate::session::fsx::ExclLock::acquire(
        &lock_path(path),
        LOCK_WAIT,
        LOCK_STALE,
        LOCK_RETRY,
        format!("{holder}\n").as_bytes(),
    )
}

/// Add one attempt to `stream`'s counters in the health file (atomic rewrite, 0600).
fn record_health(path: &Path, stream: &str, ok: bool) -> std::io::Result<()> {
    check_path(path)?;
    let _guard = lock(path)?;
    let mut streams = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("streams").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    let entry = streams
        .entry(stream.to_string())
        .or_insert_with(|| json!({"attempts": 0, "success": 0, "failed": 0}));
    let bump = |m: &mut Map<String, Value>, k: &str| {
        let n = m.get(k).and_then(Value::as_u64).unwrap_or(0);
        m.insert(k.into(), (n + 1).into());
    };
    if let Some(m) = entry.as_object_mut() {
        bump(m, "attempts");
        bump(m, if ok { "success" } else { "failed" });
    }
    let doc = json!({
        "schema_id": "gait.scout.telemetry_health",
        "schema_version": "1.0.0",
        "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "producer_version": crate::VERSION,
        "streams": streams,
    });
    let buf = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
    crate::trace::file::write_atomic(path, &buf).map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn sinks(dir: &Path) -> Sinks {
        Sinks {
            operational: Some(dir.join("ops/operational.jsonl")),
            adoption: Some(dir.join("ops/adoption.jsonl")),
            workflow_id: Some("wf-1".into()),
            health: Some(dir.join("health.json")),
            warn: false,
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn lines(p: &Path) -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn start_and_end_events_bracket_the_command_and_keep_its_exit_code() {
        let d = tempfile::tempdir().unwrap();
        let s = sinks(d.path());
        let ops = d.path().join("ops/operational.jsonl");
        let code = around(&s, &args(&["gate", "eval", "--policy", "p"]), "abc", || {
            // the start event is on disk before the command body runs
            let l = lines(&ops);
            assert_eq!(l.len(), 1);
            assert_eq!(l[0]["phase"], "start");
            3
        });
        assert_eq!(code, 3);
        let l = lines(&ops);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1]["phase"], "end");
        assert_eq!(l[1]["exit_code"], 3);
        assert_eq!(l[1]["error_category"], "policy_blocked");
        assert_eq!(l[1]["command"], "gate eval");
        assert_eq!(l[0]["correlation_id"], "abc");
        let a = lines(&d.path().join("ops/adoption.jsonl"));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["success"], false);
        assert_eq!(a[0]["workflow_id"], "wf-1");
        let h: Value =
            serde_json::from_slice(&std::fs::read(d.path().join("health.json")).unwrap()).unwrap();
        assert_eq!(h["streams"]["operational_end"]["success"], 1);
        assert_eq!(h["streams"]["adoption"]["attempts"], 1);
        assert!(!ops.with_extension("jsonl.lock").exists());
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&ops).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn events_validate_against_the_scout_schemas() {
        let d = tempfile::tempdir().unwrap();
        let s = sinks(d.path());
        around(&s, &args(&["verify", "session-chain", "x"]), "c", || 0);
        let root = PathBuf::from(
            std::env::var("GAIT_COMPAT_DIR").unwrap_or_else(|_| "/work/shared/compat".into()),
        )
        .join("schemas/scout");
        for (file, schema) in [
            ("ops/operational.jsonl", "operational_event.schema.json"),
            ("ops/adoption.jsonl", "adoption_event.schema.json"),
        ] {
            let raw = std::fs::read(root.join(schema)).unwrap();
            let schema: Value = serde_json::from_slice(&raw).unwrap();
            let v = jsonschema::validator_for(&schema).unwrap();
            for l in lines(&d.path().join(file)) {
                let errs: Vec<String> = v.iter_errors(&l).map(|e| e.to_string()).collect();
                assert!(errs.is_empty(), "{file}: {errs:?} in {l}");
            }
        }
        let a = lines(&d.path().join("ops/adoption.jsonl"));
        assert_eq!(a[0]["milestones"], json!(["A2"]));
    }

    #[test]
    fn a_failed_write_never_changes_the_exit_code_and_is_counted() {
        let d = tempfile::tempdir().unwrap();
        // the log's parent is a regular file: every append fails
        std::fs::write(d.path().join("blocker"), b"x").unwrap();
        let s = Sinks {
            operational: Some(d.path().join("blocker/ops.jsonl")),
            adoption: None,
            workflow_id: None,
            health: Some(d.path().join("health.json")),
            warn: false,
        };
        assert_eq!(around(&s, &args(&["version"]), "c", || 0), 0);
        let h: Value =
            serde_json::from_slice(&std::fs::read(d.path().join("health.json")).unwrap()).unwrap();
        assert_eq!(h["streams"]["operational_start"]["failed"], 1);
        assert_eq!(h["streams"]["operational_end"]["failed"], 1);
    }

    #[test]
    fn dotdot_paths_and_held_locks_fail_without_blocking_long() {
        let d = tempfile::tempdir().unwrap();
        let bad = d.path().join("a/../ops.jsonl");
        assert!(append_locked(&bad, "{}").is_err());
        let p = d.path().join("ops.jsonl");
        std::fs::write(lock_path(&p), b"held").unwrap();
        let err = append_locked(&p, "{}").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(
            !p.exists(),
            "nothing written while another writer holds the lock"
        );
        // a lock older than the stale age is removed and the append goes through
        let old = SystemTime::now() - Duration::from_secs(600);
        std::fs::File::options()
            .write(true)
            .open(lock_path(&p))
            .unwrap()
            .set_modified(old)
            .unwrap();
        append_locked(&p, "{\"a\":1}").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":1}\n");
    }

    #[test]
    fn blank_variables_disable_and_warn_off_is_read() {
        let env = |k: &str| match k {
            "GAIT_OPERATIONAL_LOG" => Some("  ".to_string()),
            "GAIT_ADOPTION_LOG" => Some("/tmp/x.jsonl".to_string()),
            "GAIT_TELEMETRY_WARN" => Some("OFF".to_string()),
            _ => None,
        };
        let s = Sinks::from_env(env);
        assert!(s.operational.is_none());
        assert!(s.adoption.is_some());
        assert!(!s.warn);
        assert!(!Sinks::from_env(|_| None).enabled());
    }
}
