//! Unit tests for the session module (failure-named).

use super::checkpoint::{checkpoint_digest, checkpoint_run_id};
use super::gojson::{format_time, go_duration, to_line};
use super::journal::{self, Repair};
use super::lock::{LockConfig, LockProfile, SessionLock, assess_lock};
use super::runpack;
use super::*;
use chrono::{TimeZone, Utc};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 11, 0, 0, 0).unwrap()
}

fn opts() -> Options {
    Options {
        lock: LockConfig {
            profile: LockProfile::Standard,
            timeout: Duration::from_secs(5),
            retry: Duration::from_millis(5),
            stale_after: Duration::from_secs(300),
        },
        producer_version: Some("test".into()),
        now: Some(t0()),
    }
}

fn fast_timeout_opts(ms: u64) -> Options {
    let mut o = opts();
    o.lock.timeout = Duration::from_millis(ms);
    o.lock.retry = Duration::from_millis(10);
    o
}

fn input(tool: &str) -> AppendInput {
    AppendInput {
        tool_name: tool.into(),
        verdict: "allow".into(),
        ..AppendInput::default()
    }
}

fn started(dir: &Path) -> PathBuf {
    let j = dir.join("sessions/demo.journal.jsonl");
    start_session(&j, "sess_demo", "run_demo", &opts()).unwrap();
    j
}

fn append_n(j: &Path, n: usize) {
    for i in 0..n {
        append_event(j, &input(&format!("tool.{i}")), &opts()).unwrap();
    }
}

fn cp(j: &Path, out: &Path) -> CheckpointOutcome {
    checkpoint(
        j,
        out,
        &CheckpointOptions {
            base: opts(),
            ..CheckpointOptions::default()
        },
    )
    .unwrap()
}

// === golden vectors and encodings ===

#[test]
fn checkpoint_digest_matches_golden_vectors() {
    let d1 = checkpoint_digest(&"3".repeat(64), "", 1, 1, 5);
    assert_eq!(
        d1,
        "8e480dec26e365bfe4d71277994bf01c1b64bceecc6921c4c7c9139b6b366df2"
    );
    let d2 = checkpoint_digest(&"5".repeat(64), &d1, 2, 6, 9);
    assert_eq!(
        d2,
        "c54deddf8fbf988d83c84eb490179675d242071b3879d6e83fd0cd0015820939"
    );
}

#[test]
fn args_and_result_digests_match_golden_vectors() {
    assert_eq!(
        runpack::fallback_args_digest("sess_demo", 1, "", ""),
        "73b36e49818b9f8c2c2b6fd487d0f62f0b5bd8411c4065139b4e4615a14430d0"
    );
    let e = SessionEvent {
        verdict: "allow".into(),
        ..SessionEvent::default()
    };
    assert_eq!(
        runpack::result_digest(&e),
        "0dcd62daabc9284f4bdbe84598c85c79a113ee6532ccdfa8e562528ca922803c"
    );
}

#[test]
fn go_duration_strings_match_go() {
    assert_eq!(go_duration(Duration::ZERO), "0s");
    assert_eq!(go_duration(Duration::from_millis(50)), "50ms");
    assert_eq!(go_duration(Duration::from_secs(2)), "2s");
    assert_eq!(go_duration(Duration::from_millis(2013)), "2.013s");
    assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
    assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
}

#[test]
fn go_time_trims_trailing_zeros() {
    assert_eq!(format_time(t0()), "2026-02-11T00:00:00Z");
    let t = t0() + chrono::Duration::milliseconds(1500);
    assert_eq!(format_time(t), "2026-02-11T00:00:01.5Z");
}

#[test]
fn go_json_escapes_html_characters() {
    let v = serde_json::json!({"a": "<b>&\u{2028}"});
    assert_eq!(
        String::from_utf8(to_line(&v).unwrap()).unwrap(),
        r#"{"a":"\u003cb\u003e\u0026\u2028"}"#
    );
}

#[test]
fn event_line_matches_documented_go_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    let mut i = input("tool.write");
    i.intent_id = "intent_1".into();
    i.created_at = Some(t0() + chrono::Duration::seconds(1));
    append_event(&j, &i, &opts()).unwrap();
    let text = fs::read_to_string(&j).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"record_type":"header","header":{"schema_id":"gait.runpack.session_journal","schema_version":"1.0.0","created_at":"2026-02-11T00:00:00Z","producer_version":"test","session_id":"sess_demo","run_id":"run_demo","started_at":"2026-02-11T00:00:00Z","events":[]}}"#
    );
    assert_eq!(
        lines[1],
        r#"{"record_type":"event","event":{"schema_id":"gait.runpack.session_event","schema_version":"1.0.0","created_at":"2026-02-11T00:00:01Z","producer_version":"test","session_id":"sess_demo","run_id":"run_demo","sequence":1,"intent_id":"intent_1","tool_name":"tool.write","verdict":"allow","relationship":{"parent_ref":{"kind":"session","id":"sess_demo"},"entity_refs":[{"kind":"run","id":"run_demo"},{"kind":"tool","id":"tool.write"}],"parent_record_id":"sess_demo","related_entity_ids":["run_demo","tool.write"]}}}"#
    );
}

#[test]
fn paths_follow_go_rules() {
    assert!(validate_path("  ").is_err());
    assert!(validate_path(".").is_err());
    assert!(validate_path("/").is_err());
    let e = validate_path("../x").unwrap_err().to_string();
    assert!(e.contains("must not traverse parent"), "{e}");
    assert_eq!(validate_path("a/./b//c").unwrap(), PathBuf::from("a/b/c"));
    assert_eq!(validate_path("/tmp/../x").unwrap(), PathBuf::from("/x"));
    assert_eq!(
        default_chain_path(Path::new("sessions/demo.journal.jsonl")),
        PathBuf::from("sessions/demo.journal_chain.json")
    );
    let p = SessionPaths::new(Path::new("s/d.journal.jsonl"));
    assert_eq!(p.state, PathBuf::from("s/d.journal.jsonl.state.json"));
    assert_eq!(p.lock, PathBuf::from("s/d.journal.jsonl.lock"));
}

#[test]
fn serve_naming_helpers_match_go() {
    use naming::*;
    assert_eq!(session_file_base(" a/b c:d "), "a_b_c_d");
    assert_eq!(session_file_base("._x_."), "x");
    assert_eq!(session_file_base("  "), "session");
    assert_eq!(normalize_run_id("demo.1"), "run_demo_1");
    assert_eq!(normalize_run_id("run_ok"), "run_ok");
    assert_eq!(
        journal_path(Path::new("d"), "s/1"),
        PathBuf::from("d/s_1.journal.jsonl")
    );
    assert_eq!(
        journal_path_for_run(Path::new("d"), "s", "r"),
        PathBuf::from("d/s_run_r.journal.jsonl")
    );
    assert_eq!(
        checkpoint_zip_path(Path::new("rp"), "s", 7),
        PathBuf::from("rp/s_cp_000007.zip")
    );
    assert_eq!(
        journal_warning(Path::new("j"), 3),
        "session_journal=j sequence=3"
    );
    assert_eq!(checkpoint_run_id("run_demo", 1), "run_demo_cp_0001");
    assert_eq!(checkpoint_run_id("run_demo", 12345), "run_demo_cp_12345");
}

// === lock configuration ===

#[test]
fn lock_config_defaults_and_env_fallbacks() {
    let empty: [(&str, &str); 0] = [];
    assert_eq!(LockConfig::from_env(&empty), LockConfig::default());
    let swarm = LockConfig::from_env(&[("GAIT_SESSION_LOCK_PROFILE", " SWARM ")]);
    assert_eq!(swarm.profile, LockProfile::Swarm);
    assert_eq!(swarm.timeout, Duration::from_secs(10));
    assert_eq!(swarm.retry, Duration::from_millis(20));
    assert_eq!(swarm.stale_after, Duration::from_secs(600));
    let unknown = LockConfig::from_env(&[("GAIT_SESSION_LOCK_PROFILE", "turbo")]);
    assert_eq!(unknown.profile, LockProfile::Standard);
    let o = LockConfig::from_env(&[
        ("GAIT_SESSION_LOCK_PROFILE", "swarm"),
        ("GAIT_SESSION_LOCK_TIMEOUT", "200ms"),
        ("GAIT_SESSION_LOCK_RETRY", "20ms"),
        ("GAIT_SESSION_LOCK_STALE_AFTER", "2m"),
    ]);
    assert_eq!(o.timeout, Duration::from_millis(200));
    assert_eq!(o.retry, Duration::from_millis(20));
    assert_eq!(o.stale_after, Duration::from_secs(120));
    // Unparsable → the profile's value; ≤ 0 → the standard constant, even under swarm.
    let f = LockConfig::from_env(&[
        ("GAIT_SESSION_LOCK_PROFILE", "swarm"),
        ("GAIT_SESSION_LOCK_TIMEOUT", "soon"),
        ("GAIT_SESSION_LOCK_RETRY", "0s"),
        ("GAIT_SESSION_LOCK_STALE_AFTER", "-1m"),
    ]);
    assert_eq!(f.timeout, Duration::from_secs(10));
    assert_eq!(f.retry, Duration::from_millis(50));
    assert_eq!(f.stale_after, Duration::from_secs(300));
    // retry is clamped to timeout.
    let c = LockConfig::from_env(&[
        ("GAIT_SESSION_LOCK_TIMEOUT", "10ms"),
        ("GAIT_SESSION_LOCK_RETRY", "1s"),
    ]);
    assert_eq!(c.retry, Duration::from_millis(10));
}

// === lock state machine ===

fn write_go_lock(path: &Path, pid: u32, created: chrono::DateTime<Utc>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        path,
        format!(
            "{{\"created_at\":\"{}\",\"pid\":{pid},\"schema_id\":\"gait.runpack.session_lock\",\"schema_version\":\"1.0.0\"}}\n",
            gojson::format_time_seconds(created)
        ),
    )
    .unwrap();
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn fresh_foreign_lock_times_out_with_structured_contention() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SessionPaths::new(&dir.path().join("j.journal.jsonl"));
    write_go_lock(&paths.lock, std::process::id(), Utc::now());
    let cfg = LockConfig::from_env(&[
        ("GAIT_SESSION_LOCK_PROFILE", "swarm"),
        ("GAIT_SESSION_LOCK_TIMEOUT", "200ms"),
        ("GAIT_SESSION_LOCK_RETRY", "20ms"),
    ]);
    let start = Instant::now();
    let err = SessionLock::acquire(&paths, &cfg).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(180));
    let c = err.contention().expect("contention error").clone();
    assert_eq!(c.profile, LockProfile::Swarm);
    assert_eq!(c.timeout, Duration::from_millis(200));
    assert_eq!(c.retry, Duration::from_millis(20));
    assert!(c.attempts >= 2, "attempts {}", c.attempts);
    assert_eq!(c.holder_pid, Some(i64::from(std::process::id())));
    let msg = err.to_string();
    assert!(
        msg.starts_with("session state contention: lock timeout (path="),
        "{msg}"
    );
    assert!(
        msg.contains("timeout=200ms retry=20ms profile=swarm"),
        "{msg}"
    );
    assert_eq!(err.category(), crate::exit::Category::StateContention);
    assert!(err.retryable());
    assert_eq!(err.reason_code(), "session_lock_contention");
    assert_eq!(err.http_status(), 503);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    // The foreign lock is untouched.
    assert!(paths.lock.exists());
}

#[test]
fn dead_pid_lock_is_stale_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SessionPaths::new(&dir.path().join("j.journal.jsonl"));
    write_go_lock(&paths.lock, dead_pid(), Utc::now());
    let lock = SessionLock::acquire(&paths, &fast_timeout_opts(300).lock).unwrap();
    assert_eq!(lock.takeovers, 1);
    let body = fs::read_to_string(&paths.lock).unwrap();
    assert!(body.contains("\"pid\":"));
    assert!(body.contains("\"created_at\":"));
    drop(lock);
    assert!(!paths.lock.exists());
    assert!(paths.flock.exists(), "the flock sidecar is never deleted");
}

#[test]
fn old_lock_from_live_pid_is_stale_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SessionPaths::new(&dir.path().join("j.journal.jsonl"));
    write_go_lock(
        &paths.lock,
        std::process::id(),
        Utc::now() - chrono::Duration::minutes(10),
    );
    let lock = SessionLock::acquire(&paths, &fast_timeout_opts(300).lock).unwrap();
    assert_eq!(lock.takeovers, 1);
}

#[test]
fn empty_lock_file_is_not_stale_while_fresh_but_is_after_stale_after() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SessionPaths::new(&dir.path().join("j.journal.jsonl"));
    fs::write(&paths.lock, b"").unwrap();
    let err = SessionLock::acquire(&paths, &fast_timeout_opts(100).lock).unwrap_err();
    assert!(err.contention().is_some());
    let h = assess_lock(
        b"",
        Some(std::time::SystemTime::now()),
        Duration::from_secs(1),
        true,
    );
    assert!(!h.stale);
    let mut cfg = fast_timeout_opts(500).lock;
    cfg.stale_after = Duration::from_millis(1);
    std::thread::sleep(Duration::from_millis(20));
    let lock = SessionLock::acquire(&paths, &cfg).unwrap();
    assert_eq!(lock.takeovers, 1);
}

#[test]
fn garbage_lock_with_bad_time_is_not_stale_while_fresh() {
    let h = assess_lock(
        br#"{"created_at":"yesterday","pid":1}"#,
        Some(std::time::SystemTime::now()),
        Duration::from_secs(300),
        true,
    );
    assert!(!h.stale);
}

#[test]
fn rust_lock_seen_while_holding_flock_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SessionPaths::new(&dir.path().join("j.journal.jsonl"));
    // A lock left by a crashed Rust writer (its flock died with it), pid still alive.
    fs::write(
        &paths.lock,
        format!(
            "{{\"created_at\":\"{}\",\"flock\":true,\"nonce\":\"x\",\"pid\":{}}}\n",
            gojson::format_time_seconds(Utc::now()),
            std::process::id()
        ),
    )
    .unwrap();
    let lock = SessionLock::acquire(&paths, &fast_timeout_opts(300).lock).unwrap();
    assert_eq!(lock.takeovers, 1);
}

#[test]
fn release_leaves_a_lock_that_is_no_longer_ours() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SessionPaths::new(&dir.path().join("j.journal.jsonl"));
    let lock = SessionLock::acquire(&paths, &opts().lock).unwrap();
    write_go_lock(&paths.lock, 1, Utc::now());
    drop(lock);
    assert!(
        paths.lock.exists(),
        "release must not delete a foreign lock"
    );
}

#[test]
fn held_flock_blocks_a_second_acquirer_until_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let paths = SessionPaths::new(&dir.path().join("j.journal.jsonl"));
    let held = SessionLock::acquire(&paths, &opts().lock).unwrap();
    let err = SessionLock::acquire(&paths, &fast_timeout_opts(100).lock).unwrap_err();
    let c = err.contention().unwrap();
    assert!(c.holder_pid.is_some());
    drop(held);
    SessionLock::acquire(&paths, &fast_timeout_opts(100).lock).unwrap();
}

// === journal lifecycle ===

#[test]
fn start_is_idempotent_and_rejects_a_different_session() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    let again = start_session(&j, "sess_demo", "run_demo", &opts()).unwrap();
    assert_eq!(again.value.event_count, 0);
    let e = start_session(&j, "other", "run_demo", &opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "session journal already initialized with different session/run"
    );
    assert!(naming::is_identity_conflict(&e));
    assert_eq!(e.category().exit_code(), 6);
}

#[test]
fn empty_journal_left_by_a_crash_during_start_is_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j.journal.jsonl");
    fs::write(&j, b"").unwrap();
    start_session(&j, "s", "r", &opts()).unwrap();
    fs::write(&j, b"{\"record_type\":\"hea").unwrap();
    start_session(&j, "s", "r", &opts()).unwrap();
    append_n(&j, 1);
    assert_eq!(read_journal(&j).unwrap().0.events.len(), 1);
}

#[test]
fn lifecycle_appends_checkpoints_and_links_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    let mut i = input("tool.write");
    i.reason_codes = vec!["b".into(), " a ".into(), "b".into(), "".into()];
    i.matched_rule_ids = vec!["r2".into(), "r1".into(), "r2".into()];
    i.policy_digest = "A".repeat(64);
    i.policy_id = "gait.gate.policy".into();
    let e = append_event(&j, &i, &opts()).unwrap().value;
    assert_eq!(e.sequence, 1);
    assert_eq!(e.reason_codes, vec!["a", "b"]);
    assert_eq!(e.matched_rule_ids, vec!["r1", "r2"]);
    assert_eq!(e.policy_digest, "a".repeat(64));
    let rel = e.relationship.unwrap();
    assert!(rel.policy_ref.is_some());
    assert_eq!(rel.edges[0].kind, "governed_by");
    append_n(&j, 1);
    let c1 = cp(&j, &dir.path().join("cp1.zip"));
    assert_eq!(c1.checkpoint.checkpoint_index, 1);
    assert_eq!(
        (c1.checkpoint.sequence_start, c1.checkpoint.sequence_end),
        (1, 2)
    );
    assert!(c1.checkpoint.prev_checkpoint_digest.is_empty());
    append_n(&j, 1);
    let c2 = cp(&j, &dir.path().join("cp2.zip"));
    assert_eq!(
        c2.checkpoint.prev_checkpoint_digest,
        c1.checkpoint.checkpoint_digest
    );
    assert_eq!(
        (c2.checkpoint.sequence_start, c2.checkpoint.sequence_end),
        (3, 3)
    );
    let err = checkpoint(
        &j,
        &dir.path().join("cp3.zip"),
        &CheckpointOptions {
            base: opts(),
            ..CheckpointOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no new session events available for checkpoint"
    );
    let st = session_status(&j, &opts()).unwrap().value;
    assert_eq!(
        (st.event_count, st.checkpoint_count, st.last_sequence),
        (3, 2, 3)
    );
    let chain = read_chain(&c2.chain_path).unwrap();
    assert_eq!(chain.checkpoints.len(), 2);
    assert_eq!(chain.created_at, "2026-02-11T00:00:00Z");
    let v = verify_chain(&c2.chain_path, &ChainVerifyOptions::default()).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.checkpoints_checked, 2);
}

#[test]
fn torn_final_line_is_truncated_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 3);
    let good_len = fs::metadata(&j).unwrap().len();
    let mut f = fs::OpenOptions::new().append(true).open(&j).unwrap();
    std::io::Write::write_all(&mut f, b"{\"record_type\":\"event\",\"event\":{\"sch").unwrap();
    drop(f);
    // A read-only reader reports the pending repair without touching the file.
    let (m, pending) = read_journal(&j).unwrap();
    assert_eq!(m.events.len(), 3);
    assert_eq!(pending.unwrap().dropped_lines, 1);
    let out = append_event(&j, &input("tool.after"), &opts()).unwrap();
    let repair = out.repair.expect("repair reported");
    assert_eq!(repair.dropped_lines, 1);
    assert_eq!(repair.truncated_bytes, 36);
    assert!(repair.warning(&j).contains("dropped_lines=1"));
    assert_eq!(out.value.sequence, 4);
    let (m, pending) = read_journal(&j).unwrap();
    assert!(pending.is_none());
    assert_eq!(m.events.len(), 4);
    assert!(fs::metadata(&j).unwrap().len() > good_len);
}

#[test]
fn torn_line_at_every_byte_offset_of_the_last_record_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 2);
    let full = fs::read(&j).unwrap();
    let last_start = full[..full.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    for cut in last_start..full.len() {
        fs::write(&j, &full[..cut]).unwrap();
        let _ = fs::remove_file(SessionPaths::new(&j).state);
        let st = session_status(&j, &opts()).unwrap();
        let want_events = if cut == full.len() - 1 { 2 } else { 1 };
        assert_eq!(st.value.event_count, want_events, "cut at {cut}");
        let (m, pending) = read_journal(&j).unwrap();
        assert!(pending.is_none(), "cut at {cut}");
        assert_eq!(m.events.len() as i64, want_events);
    }
}

#[test]
fn unterminated_valid_final_record_gets_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 2);
    let full = fs::read(&j).unwrap();
    fs::write(&j, &full[..full.len() - 1]).unwrap();
    let out = append_event(&j, &input("x"), &opts()).unwrap();
    assert_eq!(
        out.repair,
        Some(Repair {
            completed_lines: 1,
            ..Repair::default()
        })
    );
    assert_eq!(out.value.sequence, 3);
}

#[test]
fn corrupt_middle_line_is_a_hard_error_with_go_text() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 1);
    let text = fs::read_to_string(&j).unwrap();
    fs::write(&j, format!("{text}{{oops\n")).unwrap();
    let e = session_status(&j, &opts()).unwrap_err().to_string();
    assert!(e.starts_with("session journal parse line 3:"), "{e}");
}

#[test]
fn reader_errors_use_go_messages() {
    let cases: &[(&str, &str)] = &[
        ("{\n", "session journal parse line 1:"),
        (
            "{\"record_type\":\"event\",\"event\":{\"sequence\":1}}\n",
            "session journal event encountered before header",
        ),
        (
            "{\"record_type\":\"nope\"}\n",
            "session journal line 1 has unsupported record_type \"nope\"",
        ),
        (
            "{}\n",
            "session journal line 1 has unsupported record_type \"\"",
        ),
        (
            "{\"record_type\":\"header\"}\n",
            "session journal line 1 missing header payload",
        ),
        ("\n\n", "session journal missing header"),
    ];
    for (text, want) in cases {
        let e = journal::parse_journal(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
    let h = r#"{"record_type":"header","header":{"session_id":"s","run_id":"r"}}"#;
    let dup = format!("{h}\n{h}\n");
    assert_eq!(
        journal::parse_journal(dup.as_bytes())
            .unwrap_err()
            .to_string(),
        "session journal contains duplicate header"
    );
    let gap = format!(
        "{h}\n{{\"record_type\":\"event\",\"event\":{{\"session_id\":\"s\",\"run_id\":\"r\",\"sequence\":2}}}}\n"
    );
    assert_eq!(
        journal::parse_journal(gap.as_bytes())
            .unwrap_err()
            .to_string(),
        "session event sequence mismatch line 2: got 2 want 1"
    );
    let ident = format!(
        "{h}\n{{\"record_type\":\"event\",\"event\":{{\"session_id\":\"x\",\"run_id\":\"r\",\"sequence\":1}}}}\n"
    );
    assert_eq!(
        journal::parse_journal(ident.as_bytes())
            .unwrap_err()
            .to_string(),
        "session event identity mismatch at line 2"
    );
    // Unknown fields, nulls and blank lines are accepted.
    let lenient = format!(
        "{h}\n\n{{\"record_type\":\"event\",\"extra\":1,\"event\":{{\"session_id\":\"s\",\"run_id\":\"r\",\"sequence\":1,\"reason_codes\":null,\"new\":true}}}}\n"
    );
    let (m, _) = journal::parse_journal(lenient.as_bytes()).unwrap();
    assert_eq!(m.events.len(), 1);
}

#[test]
fn tampered_checkpoint_digest_in_journal_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 1);
    let c = cp(&j, &dir.path().join("cp.zip"));
    let text = fs::read_to_string(&j).unwrap();
    fs::write(
        &j,
        text.replace(&c.checkpoint.checkpoint_digest, &"0".repeat(64)),
    )
    .unwrap();
    let e = journal::read_journal(&j).unwrap_err().to_string();
    assert_eq!(e, "session checkpoint digest invalid at line 3");
}

#[test]
fn stale_state_index_is_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 1);
    let sp = SessionPaths::new(&j).state;
    let mut st: SessionState = serde_json::from_slice(&fs::read(&sp).unwrap()).unwrap();
    st.last_sequence = 0;
    st.event_count = 0;
    st.journal_size_bytes = 1;
    fs::write(&sp, serde_json::to_vec(&st).unwrap()).unwrap();
    let e = append_event(&j, &input("x"), &opts()).unwrap().value;
    assert_eq!(e.sequence, 2);
    let st: SessionState = serde_json::from_slice(&fs::read(&sp).unwrap()).unwrap();
    assert_eq!((st.last_sequence, st.event_count), (2, 2));
    assert_eq!(
        st.journal_size_bytes as u64,
        fs::metadata(&j).unwrap().len()
    );
}

#[test]
fn compaction_of_every_event_keeps_last_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 3);
    let c1 = cp(&j, &dir.path().join("cp1.zip"));
    let res = compact(&j, None, false, &opts()).unwrap().value;
    assert!(res.compacted);
    assert_eq!((res.events_before, res.events_after), (3, 0));
    assert_eq!(res.last_checkpoint_sequence, 3);
    let st = session_status(&j, &opts()).unwrap().value;
    assert_eq!(st.last_sequence, 3, "Go resets this to 0");
    assert_eq!(st.event_count, 0);
    // Even if the state index is lost, a rebuild derives 3 from the checkpoint.
    fs::remove_file(SessionPaths::new(&j).state).unwrap();
    let e = append_event(&j, &input("after"), &opts()).unwrap().value;
    assert_eq!(e.sequence, 4);
    let (m, _) = read_journal(&j).unwrap();
    assert_eq!(m.last_sequence(), 4);
    let c2 = cp(&j, &dir.path().join("cp2.zip"));
    assert_eq!(
        (c2.checkpoint.sequence_start, c2.checkpoint.sequence_end),
        (4, 4)
    );
    assert_eq!(
        c2.checkpoint.prev_checkpoint_digest,
        c1.checkpoint.checkpoint_digest
    );
    let v = verify_chain(&c2.chain_path, &ChainVerifyOptions::default()).unwrap();
    assert!(v.ok(), "{v:?}");
}

#[test]
fn compaction_dry_run_reports_and_first_run_rewrites_header() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 2);
    let before = fs::read(&j).unwrap();
    let dry = compact(&j, None, true, &opts()).unwrap().value;
    assert!(dry.compacted && dry.dry_run);
    assert_eq!(dry.bytes_after, dry.bytes_before + 2, "[] becomes null");
    assert_eq!(fs::read(&j).unwrap(), before, "dry run writes nothing");
    assert!(compact(&j, None, false, &opts()).unwrap().value.compacted);
    let again = compact(&j, None, false, &opts()).unwrap().value;
    assert!(!again.compacted, "idempotent");
    let out = dir.path().join("copy.jsonl");
    let copy = compact(&j, Some(&out), false, &opts()).unwrap().value;
    assert!(copy.compacted);
    assert_eq!(read_journal(&out).unwrap().0.events.len(), 2);
}

#[test]
fn concurrent_threads_append_contiguous_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    append_event(&j, &input(&format!("t{t}.{i}")), &opts()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (m, _) = read_journal(&j).unwrap();
    let seqs: Vec<i64> = m.events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
}

#[test]
fn invalid_digest_is_rejected_at_append() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    let mut i = input("x");
    i.intent_digest = "abc".into();
    let e = append_event(&j, &i, &opts()).unwrap_err();
    assert_eq!(e.category().exit_code(), 6);
    assert_eq!(read_journal(&j).unwrap().0.events.len(), 0);
}

#[test]
fn missing_journal_is_invalid_input_not_internal() {
    let dir = tempfile::tempdir().unwrap();
    let e = session_status(&dir.path().join("none.jsonl"), &opts()).unwrap_err();
    assert_eq!(e.category().exit_code(), 6);
    assert_eq!(e.http_status(), 400);
}

// === runpacks and chain verification ===

#[test]
fn same_input_and_time_give_byte_identical_zips() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for d in [&a, &b] {
        let j = started(d);
        append_n(&j, 3);
        cp(&j, &d.join("cp.zip"));
    }
    assert_eq!(
        fs::read(a.join("cp.zip")).unwrap(),
        fs::read(b.join("cp.zip")).unwrap()
    );
}

#[test]
fn signed_checkpoint_verifies_and_strict_rejects_unsigned() {
    use ed25519_dalek::SigningKey;
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 2);
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let out = checkpoint(
        &j,
        &dir.path().join("signed.zip"),
        &CheckpointOptions {
            base: opts(),
            chain_out: None,
            signing_key: Some(key.clone()),
        },
    )
    .unwrap();
    let strict = ChainVerifyOptions {
        require_signature: true,
        public_key: Some(key.verifying_key()),
    };
    let v = verify_chain(&out.chain_path, &strict).unwrap();
    assert!(v.ok(), "{v:?}");
    let other = SigningKey::from_bytes(&[8u8; 32]);
    let wrong = ChainVerifyOptions {
        require_signature: true,
        public_key: Some(other.verifying_key()),
    };
    let v = verify_chain(&out.chain_path, &wrong).unwrap();
    assert_eq!(
        v.checkpoint_errors,
        vec!["checkpoint 1 signature verification failed"]
    );
    // An unsigned checkpoint fails require-signature.
    append_n(&j, 1);
    let out2 = cp(&j, &dir.path().join("unsigned.zip"));
    let v = verify_chain(&out2.chain_path, &strict).unwrap();
    assert_eq!(
        v.checkpoint_errors,
        vec!["checkpoint 2 signature verification failed"]
    );
    // Key file format: base64(seed‖pub).
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(key.to_keypair_bytes());
    assert_eq!(
        runpack::parse_private_key(&format!("{text}\n"))
            .unwrap()
            .verifying_key(),
        key.verifying_key()
    );
}

#[test]
fn chain_tamper_and_missing_zip_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 2);
    let zip = dir.path().join("cp1.zip");
    let out = cp(&j, &zip);
    let mut chain = read_chain(&out.chain_path).unwrap();
    chain.checkpoints[0].checkpoint_digest = "0".repeat(64);
    let tampered = dir.path().join("tampered.json");
    fs::write(&tampered, serde_json::to_vec(&chain).unwrap()).unwrap();
    fs::remove_file(&zip).unwrap();
    let v = verify_chain(&tampered, &ChainVerifyOptions::default()).unwrap();
    assert_eq!(
        v.linkage_errors,
        vec!["checkpoint_digest mismatch at checkpoint 1"]
    );
    assert_eq!(
        v.checkpoint_errors,
        vec![format!(
            "checkpoint 1 verify error: open zip: open {}: no such file or directory",
            zip.display()
        )]
    );
    assert!(!v.ok());
}

#[test]
fn moved_chain_with_relative_runpack_paths_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let j = started(dir.path());
    append_n(&j, 1);
    let zip = dir.path().join("sessions/cp1.zip");
    let out = cp(&j, &zip);
    let mut chain = read_chain(&out.chain_path).unwrap();
    chain.checkpoints[0].runpack_path = "cp1.zip".into();
    let moved = dir.path().join("sessions/moved_chain.json");
    fs::write(&moved, serde_json::to_vec(&chain).unwrap()).unwrap();
    let v = verify_chain(&moved, &ChainVerifyOptions::default()).unwrap();
    assert!(v.ok(), "{v:?}");
}

#[test]
fn chain_reader_rejects_bad_schema_and_empty_chain() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    fs::write(
        &p,
        r#"{"schema_id":"x","session_id":"s","run_id":"r","checkpoints":[]}"#,
    )
    .unwrap();
    assert_eq!(
        read_chain(&p).unwrap_err().to_string(),
        "unsupported session chain schema"
    );
    fs::write(&p, r#"{"session_id":"s","run_id":"r","checkpoints":[]}"#).unwrap();
    assert_eq!(
        read_chain(&p).unwrap_err().to_string(),
        "session chain has no checkpoints"
    );
    fs::write(&p, r#"{"session_id":"","run_id":"r"}"#).unwrap();
    assert_eq!(
        read_chain(&p).unwrap_err().to_string(),
        "session chain missing session_id/run_id"
    );
}

// === the server writer ===

fn writer_cfg(j: &Path) -> JournalWriterConfig {
    let mut cfg = JournalWriterConfig::new(j, "sess_w", "run_w");
    cfg.options = opts();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_group_commit_gives_each_caller_a_unique_contiguous_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("w.journal.jsonl");
    let w = JournalWriter::open(writer_cfg(&j)).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..64 {
        let w = w.clone();
        set.spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..20 {
                seqs.push(
                    w.append(input(&format!("t{t}.{i}")))
                        .await
                        .unwrap()
                        .sequence,
                );
            }
            seqs
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=1280).collect::<Vec<_>>());
    let (m, pending) = read_journal(&j).unwrap();
    assert!(pending.is_none());
    assert_eq!(m.events.len(), 1280);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_sees_appends_and_compaction_by_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("w.journal.jsonl");
    let w = JournalWriter::open(writer_cfg(&j)).await.unwrap();
    assert_eq!(w.append(input("a")).await.unwrap().sequence, 1);
    let j2 = j.clone();
    tokio::task::spawn_blocking(move || {
        append_event(&j2, &input("cli"), &opts()).unwrap();
        cp(&j2, &j2.with_file_name("cp.zip"));
        compact(&j2, None, false, &opts()).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(w.append(input("b")).await.unwrap().sequence, 3);
    let (m, _) = read_journal(&j).unwrap();
    assert_eq!(m.last_sequence(), 3);
    assert_eq!(m.events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_emits_periodic_checkpoints_with_serve_names() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("w.journal.jsonl");
    let mut cfg = writer_cfg(&j);
    cfg.checkpoint_interval = 5;
    cfg.runpack_dir = Some(dir.path().join("runpacks"));
    let w = JournalWriter::open(cfg).await.unwrap();
    let mut cps = Vec::new();
    for i in 0..12 {
        let a = w.append(input(&format!("t{i}"))).await.unwrap();
        if let Some(c) = a.checkpoint {
            cps.push((a.sequence, c.unwrap()));
        }
    }
    assert_eq!(cps.len(), 2);
    assert_eq!(cps[0].0, 5);
    assert!(
        cps[0]
            .1
            .runpack_path
            .ends_with("runpacks/sess_w_cp_000005.zip")
    );
    let v = verify_chain(&cps[1].1.chain_path, &ChainVerifyOptions::default()).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.checkpoints_checked, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_reports_contention_as_retryable_503() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("w.journal.jsonl");
    let mut cfg = writer_cfg(&j);
    cfg.options.lock.timeout = Duration::from_millis(100);
    let w = JournalWriter::open(cfg).await.unwrap();
    let paths = SessionPaths::new(&j);
    let held = SessionLock::acquire(&paths, &opts().lock).unwrap();
    let e = w.append(input("x")).await.unwrap_err();
    assert_eq!(e.http_status(), 503);
    assert!(e.retryable());
    drop(held);
    assert_eq!(w.append(input("y")).await.unwrap().sequence, 1);
}
