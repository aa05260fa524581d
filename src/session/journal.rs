//! The journal: reader (Go's acceptance rules plus torn-tail repair), state index, and the
//! start / append / status operations (sessions.md §2.2, §2.4, §2.6, §3.4).
//!
//! Invariants: the journal is the authority and `J.state.json` a cache trusted only while its
//! `journal_size_bytes` equals the journal's size; every append happens under the session lock
//! at the end of a journal whose tail is a complete line; `last_sequence` is
//! `max(last event, last checkpoint end)`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::SessionError;
use super::fsx;
use super::gojson::{format_time, to_pretty};
use super::lock::{EnvSource, LockConfig, SessionLock};
use super::record::{
    self, AgentLink, Checkpoint, EVENT_SCHEMA_ID, EventRelationshipInput, JOURNAL_SCHEMA_ID,
    RecordIn, SCHEMA_VERSION, STATE_SCHEMA_ID, SessionEvent, SessionHeader, SessionState,
};
use super::{DEFAULT_PRODUCER_VERSION, SessionPaths, validate_path};

/// Maximum journal line length (Go's scanner limit).
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// Per-call options shared by every operation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub lock: LockConfig,
    /// Producer version to record (default: the journal's, else `0.0.0-dev`).
    pub producer_version: Option<String>,
    /// Fixed "now" (tests and reproducible checkpoints); default: the wall clock.
    pub now: Option<DateTime<Utc>>,
}

impl Options {
    /// Lock settings from `GAIT_SESSION_LOCK_*`, producer = this crate's version.
    pub fn from_env(env: &dyn EnvSource) -> Options {
        Options {
            lock: LockConfig::from_env(env),
            producer_version: Some(crate::VERSION.to_string()),
            now: None,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    fn producer(&self, fallback: &str) -> String {
        match self.producer_version.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => p.to_string(),
            _ if !fallback.trim().is_empty() => fallback.trim().to_string(),
            _ => DEFAULT_PRODUCER_VERSION.to_string(),
        }
    }
}

/// What a repair did to the journal's tail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// Bytes of a torn final line that were truncated away.
    pub truncated_bytes: u64,
    /// Torn lines removed (0 or 1).
    pub dropped_lines: u64,
    /// Complete final records that lacked their `\n` and got one.
    pub completed_lines: u64,
}

impl Repair {
    pub fn is_empty(&self) -> bool {
        *self == Repair::default()
    }

    /// The warning printed by the CLI and returned by the server.
    pub fn warning(&self, journal: &Path) -> String {
        format!(
            "session_journal_repaired={} truncated_bytes={} dropped_lines={} completed_lines={}",
            journal.display(),
            self.truncated_bytes,
            self.dropped_lines,
            self.completed_lines
        )
    }
}

/// A result plus the tail repair performed on the way, if any.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    pub value: T,
    pub repair: Option<Repair>,
}

/// `status` payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionStatus {
    pub session_id: String,
    pub run_id: String,
    pub created_at: String,
    pub started_at: String,
    pub event_count: i64,
    pub checkpoint_count: i64,
    pub last_sequence: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub last_checkpoint_index: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub last_checkpoint_sequence: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_checkpoint_digest: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl From<&SessionState> for SessionStatus {
    fn from(s: &SessionState) -> Self {
        SessionStatus {
            session_id: s.session_id.clone(),
            run_id: s.run_id.clone(),
            created_at: s.created_at.clone(),
            started_at: s.started_at.clone(),
            event_count: s.event_count,
            checkpoint_count: s.checkpoint_count,
            last_sequence: s.last_sequence,
            last_checkpoint_index: s.last_checkpoint_index,
            last_checkpoint_sequence: s.last_checkpoint_sequence,
            last_checkpoint_digest: s.last_checkpoint_digest.clone(),
        }
    }
}

/// One event to append (the library does not validate the verdict; the CLI does).
#[derive(Debug, Clone, Default)]
pub struct AppendInput {
    pub intent_id: String,
    pub tool_name: String,
    pub intent_digest: String,
    pub policy_digest: String,
    pub policy_id: String,
    pub policy_version: String,
    pub matched_rule_ids: Vec<String>,
    pub trace_id: String,
    pub trace_path: String,
    pub verdict: String,
    pub reason_codes: Vec<String>,
    pub violations: Vec<String>,
    pub agent_chain: Vec<AgentLink>,
    /// Explicit actor for the `calls` edge (else taken from the agent chain).
    pub actor: String,
    pub safety_invariant_version: String,
    pub safety_invariant_hash: String,
    /// Event time (default: now).
    pub created_at: Option<DateTime<Utc>>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl AppendInput {
    /// Reject malformed digests (sessions.md §8: validate 64-hex digests at append).
    pub fn validate(&self) -> Result<(), SessionError> {
        for (name, v) in [
            ("intent_digest", &self.intent_digest),
            ("policy_digest", &self.policy_digest),
            ("safety_invariant_hash", &self.safety_invariant_hash),
        ] {
            let v = v.trim();
            if !v.is_empty() && !is_hex64(v) {
                return Err(SessionError::Invalid(format!(
                    "{name} must be 64 hex characters"
                )));
            }
        }
        Ok(())
    }

    /// The stored event for `sequence` (normalised per sessions.md §2.2).
    pub fn to_event(
        &self,
        sequence: i64,
        state: &SessionState,
        producer: &str,
        now: DateTime<Utc>,
    ) -> SessionEvent {
        let t = |s: &String| s.trim().to_string();
        let tool_name = t(&self.tool_name);
        let trace_id = t(&self.trace_id);
        let policy_digest = self.policy_digest.trim().to_lowercase();
        let policy_id = t(&self.policy_id);
        let policy_version = t(&self.policy_version);
        let matched_rule_ids = record::normalize_list(&self.matched_rule_ids);
        let relationship = record::event_relationship(&EventRelationshipInput {
            session_id: &state.session_id,
            run_id: &state.run_id,
            tool_name: &tool_name,
            trace_id: &trace_id,
            policy_digest: &policy_digest,
            policy_id: &policy_id,
            policy_version: &policy_version,
            matched_rule_ids: &matched_rule_ids,
            agent_chain: &self.agent_chain,
            actor: &self.actor,
        });
        SessionEvent {
            schema_id: EVENT_SCHEMA_ID.into(),
            schema_version: SCHEMA_VERSION.into(),
            created_at: format_time(self.created_at.unwrap_or(now)),
            producer_version: producer.to_string(),
            session_id: state.session_id.clone(),
            run_id: state.run_id.clone(),
            sequence,
            intent_id: t(&self.intent_id),
            tool_name,
            intent_digest: self.intent_digest.trim().to_lowercase(),
            policy_digest,
            policy_id,
            policy_version,
            matched_rule_ids,
            trace_id,
            trace_path: t(&self.trace_path),
            verdict: t(&self.verdict),
            reason_codes: record::normalize_list(&self.reason_codes),
            violations: record::normalize_list(&self.violations),
            relationship,
            safety_invariant_version: t(&self.safety_invariant_version),
            safety_invariant_hash: self.safety_invariant_hash.trim().to_lowercase(),
        }
    }
}

/// A fully parsed journal.
#[derive(Debug, Clone, Default)]
pub struct JournalModel {
    pub header: SessionHeader,
    pub events: Vec<SessionEvent>,
    pub checkpoints: Vec<Checkpoint>,
    /// Size in bytes of the valid content (excluding a torn tail).
    pub size: u64,
}

impl JournalModel {
    /// `max(last event sequence, last checkpoint sequence_end)`.
    pub fn last_sequence(&self) -> i64 {
        let ev = self.events.last().map_or(0, |e| e.sequence);
        let cp = self.checkpoints.last().map_or(0, |c| c.sequence_end);
        ev.max(cp)
    }

    /// The state index describing this model.
    pub fn to_state(&self, size: u64, now: DateTime<Utc>, producer: Option<&str>) -> SessionState {
        let last_cp = self.checkpoints.last();
        SessionState {
            schema_id: STATE_SCHEMA_ID.into(),
            schema_version: SCHEMA_VERSION.into(),
            updated_at: format_time(now),
            producer_version: match producer {
                Some(p) if !p.trim().is_empty() => p.trim().to_string(),
                _ if !self.header.producer_version.is_empty() => {
                    self.header.producer_version.clone()
                }
                _ => DEFAULT_PRODUCER_VERSION.into(),
            },
            session_id: self.header.session_id.clone(),
            run_id: self.header.run_id.clone(),
            created_at: self.header.created_at.clone(),
            started_at: self.header.started_at.clone(),
            event_count: self.events.len() as i64,
            last_sequence: self.last_sequence(),
            checkpoint_count: self.checkpoints.len() as i64,
            last_checkpoint_index: last_cp.map_or(0, |c| c.checkpoint_index),
            last_checkpoint_sequence: last_cp.map_or(0, |c| c.sequence_end),
            last_checkpoint_digest: last_cp.map_or(String::new(), |c| c.checkpoint_digest.clone()),
            journal_size_bytes: size as i64,
        }
    }
}

/// Incremental validator implementing Go's reader rules (sessions.md §2.6). `feed` validates
/// completely before mutating, so a rejected line leaves the scanner unchanged.
#[derive(Debug, Default)]
struct Scanner {
    header: Option<SessionHeader>,
    events: Vec<SessionEvent>,
    checkpoints: Vec<Checkpoint>,
    expected: i64,
}

fn parse_err(line: usize, e: impl std::fmt::Display) -> SessionError {
    SessionError::Invalid(format!("session journal parse line {line}: {e}"))
}

impl Scanner {
    fn feed(&mut self, n: usize, raw: &[u8]) -> Result<(), SessionError> {
        let rec: RecordIn = serde_json::from_slice(raw).map_err(|e| parse_err(n, e))?;
        match rec.record_type.as_str() {
            "header" => {
                let Some(h) = rec.header else {
                    return Err(SessionError::Invalid(format!(
                        "session journal line {n} missing header payload"
                    )));
                };
                if self.header.is_some() {
                    return Err(SessionError::Invalid(
                        "session journal contains duplicate header".into(),
                    ));
                }
                if h.session_id.trim().is_empty() || h.run_id.trim().is_empty() {
                    return Err(SessionError::Invalid(
                        "session journal header missing session_id or run_id".into(),
                    ));
                }
                let mut h = h;
                if h.schema_id.is_empty() {
                    h.schema_id = JOURNAL_SCHEMA_ID.into();
                }
                if h.schema_version.is_empty() {
                    h.schema_version = SCHEMA_VERSION.into();
                }
                self.header = Some(h);
                self.expected = 1;
            }
            "event" => {
                let Some(h) = &self.header else {
                    return Err(SessionError::Invalid(
                        "session journal event encountered before header".into(),
                    ));
                };
                let Some(e) = rec.event else {
                    return Err(SessionError::Invalid(format!(
                        "session journal line {n} missing event payload"
                    )));
                };
                if e.sequence != self.expected {
                    return Err(SessionError::Invalid(format!(
                        "session event sequence mismatch line {n}: got {} want {}",
                        e.sequence, self.expected
                    )));
                }
                if e.session_id != h.session_id || e.run_id != h.run_id {
                    return Err(SessionError::Invalid(format!(
                        "session event identity mismatch at line {n}"
                    )));
                }
                self.expected += 1;
                self.events.push(e);
            }
            "checkpoint" => {
                let Some(h) = &self.header else {
                    return Err(SessionError::Invalid(
                        "session journal checkpoint encountered before header".into(),
                    ));
                };
                let Some(c) = rec.checkpoint else {
                    return Err(SessionError::Invalid(format!(
                        "session journal line {n} missing checkpoint payload"
                    )));
                };
                let bad = |what: &str| {
                    SessionError::Invalid(format!("session checkpoint {what} at line {n}"))
                };
                if c.session_id != h.session_id || c.run_id != h.run_id {
                    return Err(bad("identity mismatch"));
                }
                let last = self.checkpoints.last();
                let (last_index, last_end, last_digest) = last.map_or((0, 0, ""), |l| {
                    (
                        l.checkpoint_index,
                        l.sequence_end,
                        l.checkpoint_digest.as_str(),
                    )
                });
                if c.checkpoint_index != last_index + 1 {
                    return Err(bad("index mismatch"));
                }
                if c.sequence_start < 1 || c.sequence_end < c.sequence_start {
                    return Err(bad("sequence range invalid"));
                }
                if c.sequence_start <= last_end {
                    return Err(bad("sequence overlap"));
                }
                if c.checkpoint_index > 1 && c.prev_checkpoint_digest != last_digest {
                    return Err(bad("digest linkage mismatch"));
                }
                let want = super::checkpoint::checkpoint_digest(
                    &c.manifest_digest,
                    &c.prev_checkpoint_digest,
                    c.checkpoint_index,
                    c.sequence_start,
                    c.sequence_end,
                );
                if c.checkpoint_digest != want {
                    return Err(bad("digest invalid"));
                }
                if self.expected <= c.sequence_end {
                    self.expected = c.sequence_end + 1;
                }
                self.checkpoints.push(c);
            }
            other => {
                return Err(SessionError::Invalid(format!(
                    "session journal line {n} has unsupported record_type {other:?}"
                )));
            }
        }
        Ok(())
    }
}

/// State of the journal's final bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Ends with `\n` (or is empty).
    Clean,
    /// The last record is complete and valid but lacks its `\n`.
    Unterminated,
    /// The last line is a fragment; the valid content ends at `valid_len`.
    Torn { valid_len: u64 },
}

/// Parse journal bytes. A final line without `\n` that does not parse or validate is reported
/// as [`Tail::Torn`] (never an error); any other bad line is Go's exact error.
pub fn parse_journal(data: &[u8]) -> Result<(JournalModel, Tail), SessionError> {
    let mut sc = Scanner::default();
    let mut tail = Tail::Clean;
    let mut offset = 0usize;
    let mut n = 0usize;
    let mut valid_len = 0u64;
    while offset < data.len() {
        n += 1;
        let rest = &data[offset..];
        let (line, terminated) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let next = offset + line.len() + usize::from(terminated);
        if line.len() > MAX_LINE_BYTES {
            if !terminated {
                tail = Tail::Torn {
                    valid_len: offset as u64,
                };
                break;
            }
            return Err(SessionError::Invalid(
                "read session journal: bufio.Scanner: token too long".into(),
            ));
        }
        let blank = line.iter().all(|b| b.is_ascii_whitespace());
        if blank {
            if !terminated {
                tail = Tail::Torn {
                    valid_len: offset as u64,
                };
                break;
            }
            offset = next;
            valid_len = offset as u64;
            continue;
        }
        match sc.feed(n, line) {
            Ok(()) => {
                if !terminated {
                    tail = Tail::Unterminated;
                }
            }
            Err(_) if !terminated => {
                tail = Tail::Torn {
                    valid_len: offset as u64,
                };
                break;
            }
            Err(e) => return Err(e),
        }
        offset = next;
        valid_len = offset as u64;
    }
    let Some(header) = sc.header else {
        return Err(SessionError::Invalid(
            "session journal missing header".into(),
        ));
    };
    Ok((
        JournalModel {
            header,
            events: sc.events,
            checkpoints: sc.checkpoints,
            size: valid_len,
        },
        tail,
    ))
}

fn read_all(path: &Path) -> Result<Vec<u8>, SessionError> {
    fs::read(path)
        .map_err(|e| SessionError::io(format!("read session journal: open {}", path.display()), e))
}

/// Read and validate a journal without modifying it. A torn tail is ignored (and described in
/// the returned [`Repair`], which was *not* applied).
pub fn read_journal(path: &Path) -> Result<(JournalModel, Option<Repair>), SessionError> {
    let data = read_all(path)?;
    let (model, tail) = parse_journal(&data)?;
    Ok((model, tail_repair(tail, data.len() as u64)))
}

fn tail_repair(tail: Tail, len: u64) -> Option<Repair> {
    match tail {
        Tail::Clean => None,
        Tail::Unterminated => Some(Repair {
            completed_lines: 1,
            ..Repair::default()
        }),
        Tail::Torn { valid_len } => Some(Repair {
            truncated_bytes: len - valid_len,
            dropped_lines: 1,
            ..Repair::default()
        }),
    }
}

/// Read the journal under the lock and repair its tail in place (truncate a torn final line,
/// complete an unterminated valid one). Returns the model and the repair done.
pub(crate) fn load_repaired(path: &Path) -> Result<(JournalModel, Option<Repair>), SessionError> {
    let data = read_all(path)?;
    let (mut model, tail) = parse_journal(&data)?;
    let repair = tail_repair(tail, data.len() as u64);
    let ctx = || format!("repair session journal {}", path.display());
    match tail {
        Tail::Clean => {}
        Tail::Torn { valid_len } => {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| SessionError::io(ctx(), e))?;
            f.set_len(valid_len)
                .map_err(|e| SessionError::io(ctx(), e))?;
            f.sync_all().map_err(|e| SessionError::io(ctx(), e))?;
            model.size = valid_len;
        }
        Tail::Unterminated => {
            let mut f = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| SessionError::io(ctx(), e))?;
            f.write_all(b"\n").map_err(|e| SessionError::io(ctx(), e))?;
            f.sync_all().map_err(|e| SessionError::io(ctx(), e))?;
            model.size = data.len() as u64 + 1;
        }
    }
    Ok((model, repair))
}

/// Identity of the journal file used to validate caches: (device, inode, size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
}

pub(crate) fn file_id(path: &Path) -> Result<FileId, SessionError> {
    let m = fs::metadata(path).map_err(|e| {
        SessionError::io(format!("read session journal: open {}", path.display()), e)
    })?;
    Ok(FileId {
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
    })
}

/// Read and validate the state index of `journal` (`None` if missing or invalid).
pub fn read_state_public(journal: &Path) -> Option<SessionState> {
    read_state(&SessionPaths::new(journal).state)
}

pub(crate) fn read_state(path: &Path) -> Option<SessionState> {
    let bytes = fs::read(path).ok()?;
    let s: SessionState = serde_json::from_slice(&bytes).ok()?;
    s.is_valid().then_some(s)
}

pub(crate) fn write_state(paths: &SessionPaths, state: &SessionState) -> Result<(), SessionError> {
    let bytes =
        to_pretty(state).map_err(|e| SessionError::Invalid(format!("encode state: {e}")))?;
    fsx::write_atomic(&paths.state, &bytes)
}

/// A state known to describe the journal file `id`.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub id: FileId,
    pub state: SessionState,
}

/// Under the lock: the current state, from `cache` (same dev/inode/size), else the state file
/// (size matches), else a rebuild from the journal (with tail repair), written back.
pub(crate) fn ensure_state(
    paths: &SessionPaths,
    cache: Option<&Cached>,
    opts: &Options,
) -> Result<(Cached, Option<Repair>), SessionError> {
    let id = file_id(&paths.journal)?;
    if let Some(c) = cache
        && c.id == id
    {
        return Ok((c.clone(), None));
    }
    if let Some(s) = read_state(&paths.state)
        && s.journal_size_bytes == id.size as i64
    {
        return Ok((Cached { id, state: s }, None));
    }
    let (model, repair) = load_repaired(&paths.journal)?;
    let id = file_id(&paths.journal)?;
    let state = model.to_state(id.size, opts.now(), None);
    write_state(paths, &state)?;
    Ok((Cached { id, state }, repair))
}

/// Under the lock: append `inputs` as one write and one fsync, then update the state.
/// On a failed write the journal is truncated back to its previous size. Also returns how
/// long the write and its `fdatasync` took.
pub(crate) fn append_locked(
    paths: &SessionPaths,
    cached: &Cached,
    inputs: &[AppendInput],
    opts: &Options,
    write_state_file: bool,
) -> Result<(Vec<SessionEvent>, Cached, std::time::Duration), SessionError> {
    for i in inputs {
        i.validate()?;
    }
    let now = opts.now();
    let producer = opts.producer(&cached.state.producer_version);
    let mut state = cached.state.clone();
    let mut events = Vec::with_capacity(inputs.len());
    let mut bytes = Vec::with_capacity(inputs.len() * 512);
    for input in inputs {
        let ev = input.to_event(state.last_sequence + 1, &state, &producer, now);
        bytes.extend(
            record::event_line(&ev)
                .map_err(|e| SessionError::Invalid(format!("encode session event: {e}")))?,
        );
        state.last_sequence = ev.sequence;
        state.event_count += 1;
        events.push(ev);
    }
    let ctx = || format!("append session journal {}", paths.journal.display());
    let mut f = OpenOptions::new()
        .append(true)
        .open(&paths.journal)
        .map_err(|e| SessionError::io(ctx(), e))?;
    let prev = cached.id.size;
    let started = std::time::Instant::now();
    let written = f.write_all(&bytes).and_then(|()| f.sync_data());
    let synced = started.elapsed();
    if let Err(e) = written {
        let _ = f.set_len(prev);
        let _ = f.sync_all();
        return Err(SessionError::io(ctx(), e));
    }
    let m = f.metadata().map_err(|e| SessionError::io(ctx(), e))?;
    let id = FileId {
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
    };
    state.updated_at = format_time(now);
    state.producer_version = producer;
    state.journal_size_bytes = id.size as i64;
    if write_state_file {
        write_state(paths, &state)?;
    }
    Ok((events, Cached { id, state }, synced))
}

fn read_first_line(path: &Path) -> Result<Vec<u8>, SessionError> {
    let f = File::open(path).map_err(|e| {
        SessionError::io(format!("read session journal: open {}", path.display()), e)
    })?;
    let mut line = Vec::new();
    BufReader::new(f.take(MAX_LINE_BYTES as u64 + 1))
        .read_until(b'\n', &mut line)
        .map_err(|e| SessionError::io("read session journal", e))?;
    Ok(line)
}

/// Run `f` holding the session lock of `paths`.
pub(crate) fn with_lock<T>(
    paths: &SessionPaths,
    opts: &Options,
    f: impl FnOnce() -> Result<T, SessionError>,
) -> Result<T, SessionError> {
    let _lock = SessionLock::acquire(paths, &opts.lock)?;
    f()
}

/// `start`: create the journal with its header, or (idempotently) return the status of an
/// existing journal with the same ids. An existing empty file (crash during create) is
/// initialised.
pub fn start_session(
    journal: &Path,
    session_id: &str,
    run_id: &str,
    opts: &Options,
) -> Result<Outcome<SessionStatus>, SessionError> {
    let journal = validate_path(&journal.to_string_lossy())?;
    let (sid, rid) = (session_id.trim(), run_id.trim());
    if sid.is_empty() || rid.is_empty() {
        return Err(SessionError::Invalid(
            "session_id and run_id are required".into(),
        ));
    }
    let paths = SessionPaths::new(&journal);
    fsx::ensure_parent(&journal)
        .map_err(|e| SessionError::io("create session journal directory", e))?;
    with_lock(&paths, opts, || start_locked(&paths, sid, rid, opts))
}

/// `start` under the session lock of `paths` (ids already trimmed and non-empty, parent
/// directory present).
pub(crate) fn start_locked(
    paths: &SessionPaths,
    sid: &str,
    rid: &str,
    opts: &Options,
) -> Result<Outcome<SessionStatus>, SessionError> {
    let journal = &paths.journal;
    {
        let existing = fs::metadata(journal).map(|m| m.len()).unwrap_or(0);
        let first = if existing > 0 {
            read_first_line(journal)?
        } else {
            Vec::new()
        };
        // A file without one complete line is a crash during create: initialise it again.
        if first.ends_with(b"\n") {
            let (model, _) = parse_journal(&first)?;
            if model.header.session_id != sid || model.header.run_id != rid {
                return Err(SessionError::Invalid(
                    "session journal already initialized with different session/run".into(),
                ));
            }
            let (cached, repair) = ensure_state(paths, None, opts)?;
            return Ok(Outcome {
                value: SessionStatus::from(&cached.state),
                repair,
            });
        }
        let now = format_time(opts.now());
        let header = SessionHeader {
            schema_id: JOURNAL_SCHEMA_ID.into(),
            schema_version: SCHEMA_VERSION.into(),
            created_at: now.clone(),
            producer_version: opts.producer(""),
            session_id: sid.into(),
            run_id: rid.into(),
            started_at: now,
            events: Some(Vec::new()),
        };
        let line = record::header_line(&header)
            .map_err(|e| SessionError::Invalid(format!("encode session header: {e}")))?;
        let ctx = || format!("create session journal {}", journal.display());
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(journal)
            .map_err(|e| SessionError::io(ctx(), e))?;
        f.write_all(&line)
            .and_then(|()| f.sync_all())
            .map_err(|e| SessionError::io(ctx(), e))?;
        fsx::sync_parent(journal);
        let model = JournalModel {
            header,
            ..JournalModel::default()
        };
        let state = model.to_state(line.len() as u64, opts.now(), None);
        write_state(paths, &state)?;
        Ok(Outcome {
            value: SessionStatus::from(&state),
            repair: None,
        })
    }
}

/// `append` one event; returns the stored event.
pub fn append_event(
    journal: &Path,
    input: &AppendInput,
    opts: &Options,
) -> Result<Outcome<SessionEvent>, SessionError> {
    let out = append_events(journal, std::slice::from_ref(input), opts)?;
    let value = out
        .value
        .into_iter()
        .next()
        .ok_or_else(|| SessionError::Invalid("no event appended".into()))?;
    Ok(Outcome {
        value,
        repair: out.repair,
    })
}

/// Append several events under one lock, one write and one fsync.
pub fn append_events(
    journal: &Path,
    inputs: &[AppendInput],
    opts: &Options,
) -> Result<Outcome<Vec<SessionEvent>>, SessionError> {
    let journal = validate_path(&journal.to_string_lossy())?;
    let paths = SessionPaths::new(&journal);
    with_lock(&paths, opts, || {
        let (cached, repair) = ensure_state(&paths, None, opts)?;
        let (events, _, _) = append_locked(&paths, &cached, inputs, opts, true)?;
        Ok(Outcome {
            value: events,
            repair,
        })
    })
}

/// `status`: the state (rebuilt and written back if stale).
pub fn session_status(
    journal: &Path,
    opts: &Options,
) -> Result<Outcome<SessionStatus>, SessionError> {
    let journal = validate_path(&journal.to_string_lossy())?;
    let paths = SessionPaths::new(&journal);
    with_lock(&paths, opts, || {
        let (cached, repair) = ensure_state(&paths, None, opts)?;
        Ok(Outcome {
            value: SessionStatus::from(&cached.state),
            repair,
        })
    })
}
