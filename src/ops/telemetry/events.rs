//! Operational and adoption events as JSONL (`gait.scout.operational_event`,
//! `gait.scout.adoption_event` 1.0.0, byte-compatible with the Go tool's schemas).
//!
//! Writes go through a bounded queue to one background task that appends to the file and
//! rotates it at a size cap (`path` → `path.1` → … → `path.<max_files>`). Invariant: a
//! telemetry failure never fails or slows a caller — [`EventSink::try_record`] never waits;
//! when the queue is full or the writer is gone the event is dropped and counted.

use super::Telemetry;
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `environment{os,arch}` with Go's names (`linux`, `amd64`, `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub os: String,
    pub arch: String,
}

impl Environment {
    pub fn current() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Environment {
            os: std::env::consts::OS.to_string(),
            arch: arch.to_string(),
        }
    }
}

/// `gait.scout.operational_event` (field order = Go struct order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationalEvent {
    pub schema_id: &'static str,
    pub schema_version: &'static str,
    pub created_at: String,
    pub producer_version: String,
    pub correlation_id: String,
    pub command: String,
    pub phase: &'static str,
    pub exit_code: u8,
    pub error_category: &'static str,
    pub retryable: bool,
    pub elapsed_ms: u64,
    pub environment: Environment,
}

impl OperationalEvent {
    /// A `start` (exit 0, category `none`) or `end` event.
    pub fn new(
        correlation_id: &str,
        command: &str,
        end: Option<(u8, Option<crate::exit::Category>)>,
        elapsed_ms: u64,
    ) -> Self {
        let (phase, exit_code, category, retryable) = match end {
            None => ("start", 0, "none", false),
            Some((0, _)) => ("end", 0, "none", false),
            Some((code, cat)) => {
                let cat_str = match cat {
                    Some(c) => c.as_str(),
                    None => match code {
                        6 => "invalid_input",
                        2 => "verification_failed",
                        3 => "policy_blocked",
                        4 => "approval_required",
                        7 => "dependency_missing",
                        _ => "internal_failure",
                    },
                };
                // unsafe_operation / regress_failed are not in the schema's enum.
                let cat_str = match cat_str {
                    "unsafe_operation" | "regress_failed" => "internal_failure",
                    s => s,
                };
                ("end", code, cat_str, cat.is_some_and(|c| c.retryable()))
            }
        };
        OperationalEvent {
            schema_id: "gait.scout.operational_event",
            schema_version: "1.0.0",
            created_at: now_rfc3339(),
            producer_version: crate::VERSION.to_string(),
            correlation_id: correlation_id.to_string(),
            command: command.to_string(),
            phase,
            exit_code,
            error_category: category,
            retryable,
            elapsed_ms,
            environment: Environment::current(),
        }
    }
}

/// `gait.scout.adoption_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdoptionEvent {
    pub schema_id: &'static str,
    pub schema_version: &'static str,
    pub created_at: String,
    pub producer_version: String,
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    pub success: bool,
    pub exit_code: u8,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<&'static str>,
    pub environment: Environment,
}

impl AdoptionEvent {
    pub fn new(command: &str, workflow_id: Option<String>, exit_code: u8, elapsed_ms: u64) -> Self {
        AdoptionEvent {
            schema_id: "gait.scout.adoption_event",
            schema_version: "1.0.0",
            created_at: now_rfc3339(),
            producer_version: crate::VERSION.to_string(),
            command: command.to_string(),
            workflow_id: workflow_id.filter(|w| !w.trim().is_empty()),
            success: exit_code == 0,
            exit_code,
            elapsed_ms,
            milestones: Vec::new(),
            environment: Environment::current(),
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Which log an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Operational,
    Adoption,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Operational => "operational",
            Stream::Adoption => "adoption",
        }
    }
}

/// Anything that can be logged.
pub trait Event: Serialize {
    const STREAM: Stream;
}
impl Event for OperationalEvent {
    const STREAM: Stream = Stream::Operational;
}
impl Event for AdoptionEvent {
    const STREAM: Stream = Stream::Adoption;
}

/// Where and how big.
#[derive(Debug, Clone)]
pub struct EventLogConfig {
    pub operational: Option<PathBuf>,
    pub adoption: Option<PathBuf>,
    pub queue_capacity: usize,
    pub max_file_bytes: u64,
    pub max_files: u32,
}

impl EventLogConfig {
    pub fn from_section(s: &crate::ops::config::TelemetrySection) -> Self {
        EventLogConfig {
            operational: s.operational_log.as_ref().map(PathBuf::from),
            adoption: s.adoption_log.as_ref().map(PathBuf::from),
            queue_capacity: usize::try_from(s.queue_capacity).unwrap_or(1024).max(1),
            max_file_bytes: s.max_file_bytes.max(1),
            max_files: u32::try_from(s.max_files).unwrap_or(3),
        }
    }
}

/// Counters shared by the sink and the writer.
#[derive(Debug, Default)]
pub struct EventStats {
    pub accepted: AtomicU64,
    pub dropped: AtomicU64,
    pub written: AtomicU64,
    pub write_failures: AtomicU64,
    pub rotations: AtomicU64,
}

/// The non-blocking handle callers hold.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<(Stream, String)>,
    stats: Arc<EventStats>,
    telemetry: Option<Arc<Telemetry>>,
    enabled: [bool; 2],
}

impl EventSink {
    /// A sink and the receiving end of its queue (the writer task consumes it).
    pub fn channel(
        capacity: usize,
        enabled: [bool; 2],
        telemetry: Option<Arc<Telemetry>>,
    ) -> (EventSink, mpsc::Receiver<(Stream, String)>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            EventSink {
                tx,
                stats: Arc::new(EventStats::default()),
                telemetry,
                enabled,
            },
            rx,
        )
    }

    /// Queue an event without waiting. Returns false when it was dropped (queue full, writer
    /// gone, or encoding failed); events for a disabled stream are ignored and return true.
    pub fn try_record<E: Event>(&self, event: &E) -> bool {
        let idx = usize::from(E::STREAM == Stream::Adoption);
        if !self.enabled[idx] {
            return true;
        }
        let Ok(line) = serde_json::to_string(event) else {
            self.drop_one(E::STREAM);
            return false;
        };
        match self.tx.try_send((E::STREAM, line)) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.drop_one(E::STREAM);
                false
            }
        }
    }

    fn drop_one(&self, stream: Stream) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &self.telemetry {
            t.telemetry_dropped(stream.as_str(), 1);
        }
    }

    pub fn stats(&self) -> &EventStats {
        &self.stats
    }

    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

/// Start the writer; it drains the queue and exits once `cancel` fires or every sink is gone.
pub fn spawn_writer(
    cfg: EventLogConfig,
    telemetry: Option<Arc<Telemetry>>,
    cancel: CancellationToken,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let enabled = [cfg.operational.is_some(), cfg.adoption.is_some()];
    let (sink, rx) = EventSink::channel(cfg.queue_capacity, enabled, telemetry);
    let stats = Arc::clone(&sink.stats);
    let h = tokio::spawn(run_writer(cfg, rx, stats, cancel));
    (sink, h)
}

async fn run_writer(
    cfg: EventLogConfig,
    mut rx: mpsc::Receiver<(Stream, String)>,
    stats: Arc<EventStats>,
    cancel: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            biased;
            m = rx.recv() => m,
            () = cancel.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = msg else { break };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let cfg2 = cfg.clone();
        let st = Arc::clone(&stats);
        let _ = tokio::task::spawn_blocking(move || write_batch(&cfg2, &batch, &st)).await;
    }
}

fn write_batch(cfg: &EventLogConfig, batch: &[(Stream, String)], stats: &EventStats) {
    for (stream, line) in batch {
        let path = match stream {
            Stream::Operational => cfg.operational.as_deref(),
            Stream::Adoption => cfg.adoption.as_deref(),
        };
        let Some(path) = path else { continue };
        match append(path, line, cfg.max_file_bytes, cfg.max_files, stats) {
            Ok(()) => {
                stats.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let n = stats.write_failures.fetch_add(1, Ordering::Relaxed);
                if n == 0 {
                    tracing::warn!(stream = stream.as_str(), error = %e, "Telemetry write failed; further failures are only counted.");
                }
            }
        }
    }
}

/// Append one line, rotating first if it would push the file past `max_bytes`.
pub fn append(
    path: &Path,
    line: &str,
    max_bytes: u64,
    max_files: u32,
    stats: &EventStats,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o750);
        }
        b.create(dir)?;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + line.len() as u64 + 1 > max_bytes {
        rotate(path, max_files)?;
        stats.rotations.fetch_add(1, Ordering::Relaxed);
    }
    let mut o = std::fs::OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    f.write_all(&buf)
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// `path.(max-1)` → `path.max`, …, `path` → `path.1`; with `max_files == 0` the file is
/// truncated instead.
fn rotate(path: &Path, max_files: u32) -> std::io::Result<()> {
    if max_files == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(rotated(path, max_files));
    for n in (1..max_files).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

/// Commands whose second argument (when not a flag) is part of the `command` value.
const PARENTS: &[&str] = &[
    "approve-script",
    "capture",
    "check",
    "contract",
    "enforce",
    "gate",
    "init",
    "keys",
    "list-scripts",
    "policy",
    "regress",
    "run",
    "job",
    "pack",
    "report",
    "scout",
    "guard",
    "incident",
    "registry",
    "gateway",
    "mcp",
    "voice",
    "doctor",
    "delegate",
    "test",
    "ui",
    // gait's own parents
    "config",
    "trace",
    "verify",
];

/// The `command` value of events (ops.md §3): `argv[1]`, plus `argv[2]` when that is a
/// non-flag subcommand of a parent command; no args → `version`; help flags → `help`;
/// `--explain` → `explain`. `args` excludes argv[0].
pub fn command_name(args: &[String]) -> String {
    let Some(first) = args.first().map(|s| s.trim()) else {
        return "version".into();
    };
    match first {
        "-h" | "--help" | "help" => return "help".into(),
        "--explain" => return "explain".into(),
        _ => {}
    }
    if PARENTS.contains(&first)
        && let Some(second) = args.get(1).map(|s| s.trim())
        && !second.is_empty()
        && !second.starts_with('-')
    {
        return format!("{first} {second}");
    }
    first.to_string()
}

#[cfg(test)]
mod command_tests {
    use super::command_name;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_names_follow_go() {
        assert_eq!(command_name(&[]), "version");
        assert_eq!(command_name(&v(&["--help"])), "help");
        assert_eq!(command_name(&v(&["--explain"])), "explain");
        assert_eq!(
            command_name(&v(&["mcp", "serve", "--policy", "p"])),
            "mcp serve"
        );
        assert_eq!(command_name(&v(&["gate", "--json"])), "gate");
        assert_eq!(command_name(&v(&["version", "x"])), "version");
        assert_eq!(command_name(&v(&["bogus"])), "bogus");
    }
}
