//! Retention: a background sweep that prunes traces, runpacks, packs and session files by
//! max age and max count, on an interval.
//!
//! Matching follows the Go server (ops.md §4): non-recursive, in each class's own directory,
//! on lowercased file names — trace `*.json` (and trace segments `*.jsonl`) containing
//! `trace`; runpack `*.zip` starting
//! `runpack_` or containing `_cp_`; pack `*.zip` starting `pack_`; session `*.json`, `*.jsonl`,
//! `*.state`. Newest first by mtime (ties: path descending); the first `max_count` are kept;
//! anything older than `max_age` or beyond the count is deleted.
//!
//! Invariants (stronger than Go): a checkpoint runpack named by any `*_chain.json` in the
//! session dir is never deleted; a journal with a live writer (its `J.lock` is not stale by
//! [`crate::session::lock::assess_lock`], or another process holds `J.flock`) is never
//! deleted, nor its state and chain files; hidden temp files are never touched. A failing
//! class never stops the others.

use super::config::RetentionSection;
use super::telemetry::Telemetry;
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// An artifact class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Trace,
    Runpack,
    Pack,
    Session,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Trace, Class::Runpack, Class::Pack, Class::Session];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Trace => "trace",
            Class::Runpack => "runpack",
            Class::Pack => "pack",
            Class::Session => "session",
        }
    }

    /// Whether a file name belongs to this class (case-insensitive).
    pub fn matches(self, file_name: &str) -> bool {
        let n = file_name.to_ascii_lowercase();
        if n.starts_with('.') {
            return false;
        }
        match self {
            Class::Trace => (n.ends_with(".json") || n.ends_with(".jsonl")) && n.contains("trace"),
            Class::Runpack => {
                n.ends_with(".zip") && (n.starts_with("runpack_") || n.contains("_cp_"))
            }
            Class::Pack => n.ends_with(".zip") && n.starts_with("pack_"),
            Class::Session => {
                n.ends_with(".json") || n.ends_with(".jsonl") || n.ends_with(".state")
            }
        }
    }
}

/// Caps for one class in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPolicy {
    pub class: Class,
    pub dir: PathBuf,
    pub max_age: Option<Duration>,
    pub max_count: Option<u64>,
}

/// What one sweep does.
#[derive(Clone, Default)]
pub struct RetentionPolicy {
    pub classes: Vec<ClassPolicy>,
    /// Where `*_chain.json` files and journal locks live (protects runpacks and journals).
    pub session_dir: Option<PathBuf>,
    /// A lock older than this, whose pid is not alive, no longer protects its journal.
    pub lock_stale_after: Duration,
    /// Report what would be deleted without deleting.
    pub dry_run: bool,
    /// Write each sweep's report here (atomically, 0600).
    pub report_path: Option<PathBuf>,
    /// Count removals in these metrics.
    pub telemetry: Option<Arc<Telemetry>>,
}

impl std::fmt::Debug for RetentionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionPolicy")
            .field("classes", &self.classes)
            .field("session_dir", &self.session_dir)
            .field("lock_stale_after", &self.lock_stale_after)
            .field("dry_run", &self.dry_run)
            .field("report_path", &self.report_path)
            .finish_non_exhaustive()
    }
}

/// Directories of the four classes (from the serve config).
#[derive(Debug, Clone, Default)]
pub struct ClassDirs {
    pub trace: Option<PathBuf>,
    pub runpack: Option<PathBuf>,
    pub pack: Option<PathBuf>,
    pub session: Option<PathBuf>,
}

impl RetentionPolicy {
    /// Build from the `retention:` section; classes without a dir or without caps are skipped.
    pub fn from_config(section: &RetentionSection, dirs: &ClassDirs) -> RetentionPolicy {
        let [t, r, p, s] = section.effective();
        let mut classes = Vec::new();
        for (class, caps, dir) in [
            (Class::Trace, t, &dirs.trace),
            (Class::Runpack, r, &dirs.runpack),
            (Class::Pack, p, &dirs.pack),
            (Class::Session, s, &dirs.session),
        ] {
            if let Some(dir) = dir
                && (caps.max_age.is_some() || caps.max_count.is_some())
            {
                classes.push(ClassPolicy {
                    class,
                    dir: dir.clone(),
                    max_age: caps.max_age,
                    max_count: caps.max_count,
                });
            }
        }
        RetentionPolicy {
            classes,
            session_dir: dirs.session.clone(),
            lock_stale_after: Duration::from_secs(300),
            report_path: section.report_path.as_ref().map(PathBuf::from),
            ..Default::default()
        }
    }

    /// Whether the policy has anything to do.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

/// One file in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    #[serde(skip)]
    pub class: Class,
    /// `trace` or `pack` (the guard schema's kinds; runpacks report as `pack`).
    pub kind: &'static str,
    pub modified_at: String,
    pub age_seconds: u64,
    pub action: &'static str,
    /// Why a file beyond its caps was kept (`chain_reference`, `live_writer`).
    #[serde(skip)]
    pub protected: Option<&'static str>,
}

/// Per-class outcome of one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassSummary {
    pub scanned: u64,
    pub removed_age: u64,
    pub removed_count: u64,
    pub protected: u64,
    pub errors: Vec<String>,
}

/// The result of one sweep: the guard retention report fields plus per-class detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub created_at: String,
    pub root_path: String,
    pub dry_run: bool,
    pub trace_ttl_seconds: i64,
    pub pack_ttl_seconds: i64,
    pub scanned_files: u64,
    pub deleted: Vec<Entry>,
    pub kept: Vec<Entry>,
    pub classes: Vec<(Class, ClassSummary)>,
}

impl RetentionReport {
    /// The `gait.guard.retention_report` 1.0.0 document. Session files are outside that
    /// schema's kinds and appear only in [`RetentionReport::classes`].
    pub fn guard_report(&self) -> serde_json::Value {
        let pick = |v: &[Entry]| {
            let mut out: Vec<&Entry> = v.iter().filter(|e| e.class != Class::Session).collect();
            out.sort_by(|a, b| a.path.cmp(&b.path));
            serde_json::to_value(out).unwrap_or_default()
        };
        serde_json::json!({
            "schema_id": "gait.guard.retention_report",
            "schema_version": "1.0.0",
            "created_at": self.created_at,
            "producer_version": crate::VERSION,
            "root_path": self.root_path,
            "dry_run": self.dry_run,
            "trace_ttl_seconds": self.trace_ttl_seconds,
            "pack_ttl_seconds": self.pack_ttl_seconds,
            "scanned_files": self.scanned_files,
            "deleted_files": pick(&self.deleted),
            "kept_files": pick(&self.kept),
        })
    }

    pub fn summary(&self, class: Class) -> Option<&ClassSummary> {
        self.classes
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, s)| s)
    }

    /// Go-style warnings: `retention_<class>_removed_age=A removed_count=C` or `…_error=…`.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (c, s) in &self.classes {
            for e in &s.errors {
                out.push(format!("retention_{}_error={e}", c.as_str()));
            }
            if s.removed_age + s.removed_count > 0 {
                out.push(format!(
                    "retention_{}_removed_age={} removed_count={}",
                    c.as_str(),
                    s.removed_age,
                    s.removed_count
                ));
            }
        }
        out
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Runpack file names referenced by any `*_chain.json` in `dir`.
pub fn chain_references(dir: &Path) -> HashSet<String> {
    let mut refs = HashSet::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return refs;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_ascii_lowercase();
        if !name.ends_with("_chain.json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        for cp in v
            .get("checkpoints")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(p) = cp.get("runpack_path").and_then(|p| p.as_str())
                && let Some(base) = Path::new(p).file_name()
            {
                refs.insert(base.to_string_lossy().to_string());
            }
        }
    }
    refs
}

/// Whether a session lock file (`J.lock`) shows a live writer, judged by the session
/// module's own rules (live pid on this host, fresh `created_at`, or an unparsable but fresh
/// file).
pub fn lock_is_live(lock: &Path, stale_after: Duration) -> bool {
    let Ok(content) = std::fs::read(lock) else {
        return false;
    };
    let mtime = std::fs::metadata(lock).and_then(|m| m.modified()).ok();
    !crate::session::lock::assess_lock(&content, mtime, stale_after, false).stale
}

/// Whether another process holds the advisory lock on `J.flock` (a Rust writer mid-operation).
fn flock_is_held(flock: &Path) -> bool {
    let Ok(f) = std::fs::File::open(flock) else {
        return false;
    };
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_guard) => false,
        Err((_, errno)) => errno == nix::errno::Errno::EWOULDBLOCK,
    }
}

/// Trace segments a live `mcp serve` may still append to: for each process (start stamp and
/// pid in `trace_seg_<stamp>_p<pid>_<n>.jsonl`) whose pid is alive on this host, its
/// highest-numbered segment. Deleting it would make the writer append to an unlinked file.
fn open_trace_segments<'a>(names: impl Iterator<Item = &'a str>) -> HashSet<String> {
    let mut newest: std::collections::HashMap<&str, (u64, &str)> = Default::default();
    for name in names {
        let Some((writer, n, pid)) = name
            .strip_prefix("trace_seg_")
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|r| r.rsplit_once('_'))
            .and_then(|(w, n)| {
                let pid = w.rsplit_once("_p")?.1.parse::<i64>().ok()?;
                Some((w, n.parse::<u64>().ok()?, pid))
            })
        else {
            continue;
        };
        if crate::session::lock::pid_is_dead(pid) {
            continue;
        }
        let e = newest.entry(writer).or_insert((n, name));
        if n >= e.0 {
            *e = (n, name);
        }
    }
    newest.into_values().map(|(_, n)| n.to_string()).collect()
}

/// Session files protected by a live writer: the journal, its state and its chain.
fn live_session_files(dir: &Path, stale_after: Duration) -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let live = if let Some(j) = name.strip_suffix(".lock") {
            lock_is_live(&e.path(), stale_after).then(|| j.to_string())
        } else if let Some(j) = name.strip_suffix(".flock") {
            flock_is_held(&e.path()).then(|| j.to_string())
        } else {
            None
        };
        let Some(journal) = live else { continue };
        let paths = crate::session::SessionPaths::new(&dir.join(&journal));
        for p in [&paths.journal, &paths.state, &paths.chain] {
            if let Some(n) = p.file_name() {
                out.insert(n.to_string_lossy().to_string());
            }
        }
    }
    out
}

struct Candidate {
    path: PathBuf,
    name: String,
    mtime: SystemTime,
}

/// Run one sweep (blocking I/O; call from `spawn_blocking`).
pub fn sweep(policy: &RetentionPolicy, now: SystemTime) -> RetentionReport {
    let ttl = |c: Class| {
        policy
            .classes
            .iter()
            .find(|p| p.class == c)
            .and_then(|p| p.max_age)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    };
    let mut report = RetentionReport {
        created_at: rfc3339(now),
        root_path: policy
            .session_dir
            .as_ref()
            .or(policy.classes.first().map(|c| &c.dir))
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        dry_run: policy.dry_run,
        trace_ttl_seconds: ttl(Class::Trace),
        pack_ttl_seconds: ttl(Class::Pack),
        scanned_files: 0,
        deleted: Vec::new(),
        kept: Vec::new(),
        classes: Vec::new(),
    };
    // Sessions first, so a chain removed by age no longer protects its runpacks.
    let mut order: Vec<&ClassPolicy> = policy.classes.iter().collect();
    order.sort_by_key(|c| match c.class {
        Class::Session => 0,
        Class::Trace => 1,
        Class::Runpack => 2,
        Class::Pack => 3,
    });
    for cp in order {
        let mut summary = ClassSummary::default();
        let mut protected_refs = match cp.class {
            Class::Runpack => policy
                .session_dir
                .as_deref()
                .map(chain_references)
                .unwrap_or_default(),
            Class::Session => live_session_files(&cp.dir, policy.lock_stale_after),
            _ => HashSet::new(),
        };
        let protect_reason = match cp.class {
            Class::Runpack => "chain_reference",
            _ => "live_writer",
        };
        let rd = match std::fs::read_dir(&cp.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.classes.push((cp.class, summary));
                continue;
            }
            Err(e) => {
                summary
                    .errors
                    .push(format!("read {}: {e}", cp.dir.display()));
                report.classes.push((cp.class, summary));
                continue;
            }
        };
        let mut cands: Vec<Candidate> = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !cp.class.matches(&name) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            cands.push(Candidate {
                path: e.path(),
                name,
                mtime,
            });
        }
        cands.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| b.path.cmp(&a.path)));
        if cp.class == Class::Trace {
            protected_refs = open_trace_segments(cands.iter().map(|c| c.name.as_str()));
        }
        summary.scanned = cands.len() as u64;
        report.scanned_files += summary.scanned;
        for (i, c) in cands.iter().enumerate() {
            let age = now.duration_since(c.mtime).unwrap_or_default();
            let too_old = cp.max_age.is_some_and(|m| age > m);
            let over_count = cp.max_count.is_some_and(|m| i as u64 >= m);
            let protected = protected_refs.contains(&c.name);
            let mut entry = Entry {
                path: c.path.display().to_string(),
                class: cp.class,
                kind: if cp.class == Class::Trace {
                    "trace"
                } else {
                    "pack"
                },
                modified_at: rfc3339(c.mtime),
                age_seconds: age.as_secs(),
                action: "kept",
                protected: None,
            };
            if !(too_old || over_count) {
                report.kept.push(entry);
                continue;
            }
            if protected {
                summary.protected += 1;
                entry.protected = Some(protect_reason);
                report.kept.push(entry);
                continue;
            }
            if !policy.dry_run
                && let Err(e) = std::fs::remove_file(&c.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                summary
                    .errors
                    .push(format!("remove {}: {e}", c.path.display()));
                report.kept.push(entry);
                break;
            }
            if too_old {
                summary.removed_age += 1;
            } else {
                summary.removed_count += 1;
            }
            entry.action = "deleted";
            report.deleted.push(entry);
        }
        if let Some(t) = &policy.telemetry {
            t.retention_removed(
                cp.class.as_str(),
                summary.removed_age + summary.removed_count,
            );
        }
        report.classes.push((cp.class, summary));
    }
    report.deleted.sort_by(|a, b| a.path.cmp(&b.path));
    report.kept.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(p) = &policy.report_path
        && let Err(e) = write_report(p, &report)
    {
        tracing::warn!(path = %p.display(), error = %e, "Retention report write failed.");
    }
    report
}

/// Write the guard report atomically with mode 0600.
pub fn write_report(path: &Path, report: &RetentionReport) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let bytes = crate::canon::to_vec(&report.guard_report());
    std::io::Write::write_all(&mut tmp, &bytes)?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Run [`sweep`] every `interval` until `cancel` fires (first sweep after one interval).
/// Each sweep runs on the blocking pool; a panic or failure is logged and the loop goes on.
pub fn spawn(
    policy: RetentionPolicy,
    interval: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let policy = Arc::new(policy);
    let interval = interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            let p = Arc::clone(&policy);
            let res = tokio::task::spawn_blocking(move || sweep(&p, SystemTime::now())).await;
            match res {
                Ok(report) => {
                    for w in report.warnings() {
                        tracing::warn!(warning = %w, "Retention sweep.");
                    }
                    tracing::debug!(
                        scanned = report.scanned_files,
                        deleted = report.deleted.len(),
                        "Retention sweep finished."
                    );
                }
                Err(e) => tracing::error!(error = %e, "Retention sweep task failed."),
            }
        }
    })
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
