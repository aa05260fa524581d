//! `gate eval`'s fixed-window `rate_limit` and `destructive_budget` counters, kept in a state
//! file that separate processes share (gate.md §2 step 9, "Rate limit (gate eval)").
//!
//! Format (Go-compatible): `{"schema_id":"gait.gate.rate_limit_state","schema_version":"1.0.0",
//! "counters":[{"key":…,"count":n}]}`; key `<window>|<scope>|<bucket RFC3339>|<scopeKey>` with the
//! bucket start truncated to the minute or hour (UTC) and scopeKey `tool`, `identity` or
//! `tool|identity`; the destructive budget counts under the tool name `destructive_budget|<tool>`.
//!
//! Invariant: every read-modify-write happens under `<state>.lock` (O_EXCL, 3 s timeout, a lock
//! older than 15 s is stale) and replaces the file atomically (temp + fsync + rename, 0600), so
//! concurrent `gate eval` processes never lose or double an increment; a counter increments only
//! while it is under its limit. Unlike Go, counters of windows that have ended are dropped when
//! the file is rewritten, so the file does not grow without bound.

use crate::policy::RateLimitSpec;
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `gate eval` keeps its counters unless `--rate-limit-state` says otherwise.
pub const DEFAULT_STATE_PATH: &str = ".gait-out/gate_rate_limits.json";
const SCHEMA_ID: &str = "gait.gate.rate_limit_state";
const LOCK_TIMEOUT: Duration = Duration::from_secs(3);
const LOCK_STALE: Duration = Duration::from_secs(15);
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// Why the state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("rate limit state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rate limit state {0} is not a gait.gate.rate_limit_state document")]
    Corrupt(PathBuf),
    #[error("rate limit state lock {0} held for more than 3s")]
    Contention(PathBuf),
    #[error("unsupported rate_limit window {0:?}")]
    Window(String),
}

/// The outcome of counting one call against one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub scope: String,
    pub key: String,
    /// Calls counted in the current window, including this one when it was allowed.
    pub used: u64,
    pub remaining: u64,
    pub allowed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    schema_id: String,
    schema_version: String,
    #[serde(default)]
    counters: Vec<Counter>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counter {
    key: String,
    count: u64,
}

fn window_len(window: &str) -> Result<ChronoDuration, LimitError> {
    match window {
        "" | "minute" => Ok(ChronoDuration::minutes(1)),
        "hour" => Ok(ChronoDuration::hours(1)),
        other => Err(LimitError::Window(other.to_string())),
    }
}

/// The counter key of `spec` for this call at `now`.
pub fn counter_key(
    spec: &RateLimitSpec,
    tool: &str,
    identity: &str,
    now: DateTime<Utc>,
) -> Result<String, LimitError> {
    let len = window_len(&spec.window)?;
    let bucket = now
        .duration_trunc(len)
        .map_err(|_| LimitError::Window(spec.window.clone()))?;
    let window = if spec.window.is_empty() {
        "minute"
    } else {
        spec.window.as_str()
    };
    let scope = if spec.scope.is_empty() {
        "tool_identity"
    } else {
        spec.scope.as_str()
    };
    let scope_key = match scope {
        "tool" => tool.to_string(),
        "identity" => identity.to_string(),
        _ => format!("{tool}|{identity}"),
    };
    Ok(format!(
        "{window}|{scope}|{}|{scope_key}",
        bucket.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
}

/// When the window of `key` ends (None when the key is not ours to judge).
fn key_expiry(key: &str) -> Option<DateTime<Utc>> {
    let mut parts = key.splitn(4, '|');
    let len = window_len(parts.next()?).ok()?;
    let _scope = parts.next()?;
    let start = DateTime::parse_from_rfc3339(parts.next()?).ok()?;
    Some(start.with_timezone(&Utc) + len)
}

/// Count one call of `tool` by `identity` against `spec` at `now` (`consume == false` only
/// reports what would happen, as `--simulate` does).
pub fn enforce(
    state: &Path,
    spec: &RateLimitSpec,
    tool: &str,
    identity: &str,
    now: DateTime<Utc>,
    consume: bool,
) -> Result<Usage, LimitError> {
    let key = counter_key(spec, tool, identity, now)?;
    let limit = u64::from(spec.requests);
    let scope = if spec.scope.is_empty() {
        "tool_identity".to_string()
    } else {
        spec.scope.clone()
    };
    let io = |e: std::io::Error| LimitError::Io {
        path: state.to_path_buf(),
        source: e,
    };
    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(io)?;
    }
    let _lock = lock_state(state)?;
    let mut file = match std::fs::read(state) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => empty_state(),
        Ok(b) => serde_json::from_slice::<StateFile>(&b)
            .ok()
            .filter(|f| f.schema_id == SCHEMA_ID)
            .ok_or_else(|| LimitError::Corrupt(state.to_path_buf()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty_state(),
        Err(e) => return Err(io(e)),
    };
    let current = file
        .counters
        .iter()
        .find(|c| c.key == key)
        .map_or(0, |c| c.count);
    let allowed = current < limit;
    let used = if allowed { current + 1 } else { current };
    if consume && allowed {
        file.counters.retain(|c| c.key != key);
        file.counters
            .retain(|c| key_expiry(&c.key).is_none_or(|end| end > now));
        file.counters.push(Counter {
            key: key.clone(),
            count: used,
        });
        file.counters.sort_by(|a, b| a.key.cmp(&b.key));
        let mut buf = serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
        buf.push(b'\n');
        crate::session::fsx::write_atomic(state, &buf)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    }
    Ok(Usage {
        scope,
        key,
        used,
        remaining: limit.saturating_sub(used),
        allowed,
    })
}

fn empty_state() -> StateFile {
    StateFile {
        schema_id: SCHEMA_ID.into(),
        schema_version: "1.0.0".into(),
        counters: Vec::new(),
    }
}

fn lock_state(state: &Path) -> Result<crate::session::fsx::ExclLock, LimitError> {
    let mut s = state.as_os_str().to_owned();
    s.push(".lock");
    let lock = PathBuf::from(s);
    crate::session::fsx::ExclLock::acquire(&lock, LOCK_TIMEOUT, LOCK_STALE, LOCK_RETRY, b"")
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => LimitError::Contention(lock.clone()),
            _ => LimitError::Io {
                path: lock.clone(),
                source: e,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(requests: u32, window: &str, scope: &str) -> RateLimitSpec {
        RateLimitSpec {
            requests,
            window: window.into(),
            scope: scope.into(),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn keys_follow_the_go_layout() {
        let now = at("2026-11-27T10:17:42.5Z");
        assert_eq!(
            counter_key(&spec(2, "minute", "tool"), "tool.write", "alice", now).unwrap(),
            "minute|tool|2026-11-27T10:17:00Z|tool.write"
        );
        assert_eq!(
            counter_key(&spec(2, "hour", "identity"), "tool.write", "alice", now).unwrap(),
            "hour|identity|2026-11-27T10:00:00Z|alice"
        );
        assert_eq!(
            counter_key(&spec(2, "", ""), "t", "a", now).unwrap(),
            "minute|tool_identity|2026-11-27T10:17:00Z|t|a"
        );
        assert!(counter_key(&spec(2, "day", "tool"), "t", "a", now).is_err());
    }

    #[test]
    fn counts_up_to_the_limit_then_refuses_without_incrementing() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("out/state.json");
        let s = spec(2, "minute", "tool_identity");
        let now = at("2026-11-27T10:17:00Z");
        let a = enforce(&state, &s, "t", "alice", now, true).unwrap();
        assert!(a.allowed && a.used == 1 && a.remaining == 1);
        let b = enforce(&state, &s, "t", "alice", now, true).unwrap();
        assert!(b.allowed && b.used == 2 && b.remaining == 0);
        let c = enforce(&state, &s, "t", "alice", now, true).unwrap();
        assert!(!c.allowed && c.used == 2 && c.remaining == 0);
        // another identity has its own counter; the next minute starts afresh
        assert!(enforce(&state, &s, "t", "bob", now, true).unwrap().allowed);
        let later = at("2026-11-27T10:18:01Z");
        let n = enforce(&state, &s, "t", "alice", later, true).unwrap();
        assert!(n.allowed && n.used == 1);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(doc["schema_id"], SCHEMA_ID);
        // the ended 10:17 window was dropped on rewrite
        let keys: Vec<&str> = doc["counters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["minute|tool_identity|2026-11-27T10:18:00Z|t|alice"]);
        assert!(!d.path().join("out/state.json.lock").exists());
    }

    #[test]
    fn simulate_does_not_consume() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("s.json");
        let s = spec(1, "hour", "tool");
        let now = at("2026-11-27T10:17:00Z");
        for _ in 0..3 {
            assert!(enforce(&state, &s, "t", "a", now, false).unwrap().allowed);
        }
        assert!(!state.exists());
    }

    #[test]
    fn corrupt_state_and_held_lock_are_errors_and_change_nothing() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("s.json");
        std::fs::write(&state, b"{\"schema_id\":\"other\"}").unwrap();
        let s = spec(1, "minute", "tool");
        let now = Utc::now();
        assert!(matches!(
            enforce(&state, &s, "t", "a", now, true),
            Err(LimitError::Corrupt(_))
        ));
        assert_eq!(std::fs::read(&state).unwrap(), b"{\"schema_id\":\"other\"}");
        std::fs::remove_file(&state).unwrap();
        std::fs::write(d.path().join("s.json.lock"), b"").unwrap();
        assert!(matches!(
            enforce(&state, &s, "t", "a", now, true),
            Err(LimitError::Contention(_))
        ));
        assert!(!state.exists());
    }

    #[test]
    fn concurrent_processes_never_lose_an_increment() {
        // threads stand in for processes: each call opens, locks, rewrites and unlocks the file
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("s.json");
        let s = spec(1000, "hour", "tool");
        let now = Utc::now();
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| {
                    for _ in 0..25 {
                        enforce(&state, &s, "t", "a", now, true).unwrap();
                    }
                });
            }
        });
        let last = enforce(&state, &s, "t", "a", now, false).unwrap();
        assert_eq!(last.used, 201);
    }
}
