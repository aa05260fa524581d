use super::*;
use std::fs::File;

const H: u64 = 3600;

fn touch(dir: &Path, name: &str, age_secs: u64, now: SystemTime) -> PathBuf {
    let p = dir.join(name);
    let f = File::create(&p).unwrap();
    f.set_modified(now - Duration::from_secs(age_secs)).unwrap();
    p
}

fn policy(class: Class, dir: &Path, max_age: Option<u64>, max_count: Option<u64>) -> ClassPolicy {
    ClassPolicy {
        class,
        dir: dir.to_path_buf(),
        max_age: max_age.map(Duration::from_secs),
        max_count,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn matcher_follows_go() {
    assert!(Class::Trace.matches("trace_run_1.json"));
    assert!(Class::Trace.matches("My_TRACE.JSON"));
    assert!(!Class::Trace.matches("run.json"));
    assert!(Class::Trace.matches("trace_seg_20261127T000000.000000000_p1_000000.jsonl"));
    assert!(Class::Runpack.matches("runpack_abc.zip"));
    assert!(Class::Runpack.matches("sess_cp_000004.zip"));
    assert!(!Class::Runpack.matches("runpack_abc.json"));
    assert!(!Class::Runpack.matches("pack_1.zip"));
    assert!(Class::Pack.matches("pack_1.zip"));
    assert!(!Class::Pack.matches("artifact.zip"));
    assert!(Class::Session.matches("a.journal.jsonl"));
    assert!(Class::Session.matches("a.state"));
    assert!(!Class::Session.matches("sess_1.log"));
    assert!(!Class::Session.matches(".a.journal.jsonl.tmp-1.json"));
}

#[test]
fn age_and_count_pruning() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), "trace_old.json", 2 * H, now);
    touch(dir.path(), "trace_a.json", 10, now);
    touch(dir.path(), "trace_b.json", 20, now);
    touch(dir.path(), "trace_c.json", 30, now);
    touch(dir.path(), "notes.txt", 5 * H, now);
    let p = RetentionPolicy {
        classes: vec![policy(Class::Trace, dir.path(), Some(H), Some(2))],
        ..Default::default()
    };
    let r = sweep(&p, now);
    assert_eq!(
        names(dir.path()),
        ["notes.txt", "trace_a.json", "trace_b.json"]
    );
    let s = r.summary(Class::Trace).unwrap();
    assert_eq!((s.scanned, s.removed_age, s.removed_count), (4, 1, 1));
    assert_eq!(
        r.warnings(),
        ["retention_trace_removed_age=1 removed_count=1"]
    );
    assert_eq!(r.deleted.len(), 2);
    assert_eq!(r.kept.len(), 2);
}

#[test]
fn trace_segments_are_pruned_but_a_live_writers_open_segment_is_kept() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let me = std::process::id();
    // this process "writes" segments 0..=2; segment 2 is its open one
    for (n, age) in [(0, 3 * H), (1, 2 * H), (2, 2 * H)] {
        touch(
            dir.path(),
            &format!("trace_seg_20261127T000000.000000000_p{me}_{n:06}.jsonl"),
            age,
            now,
        );
    }
    // a writer that is gone (pid far above pid_max): nothing of it is protected
    touch(
        dir.path(),
        "trace_seg_20261126T000000.000000000_p999999999_000007.jsonl",
        2 * H,
        now,
    );
    touch(dir.path(), "trace_new.json", 10, now);
    let p = RetentionPolicy {
        classes: vec![policy(Class::Trace, dir.path(), Some(H), None)],
        ..Default::default()
    };
    let r = sweep(&p, now);
    assert_eq!(
        names(dir.path()),
        [
            "trace_new.json".to_string(),
            format!("trace_seg_20261127T000000.000000000_p{me}_000002.jsonl")
        ]
    );
    let s = r.summary(Class::Trace).unwrap();
    assert_eq!((s.scanned, s.removed_age, s.protected), (5, 3, 1));
}

#[test]
fn ties_break_by_path_descending_and_dry_run_deletes_nothing() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), "trace_1.json", 100, now);
    touch(dir.path(), "trace_2.json", 100, now);
    let mut p = RetentionPolicy {
        classes: vec![policy(Class::Trace, dir.path(), None, Some(1))],
        dry_run: true,
        ..Default::default()
    };
    let r = sweep(&p, now);
    assert_eq!(names(dir.path()).len(), 2);
    assert!(r.deleted[0].path.ends_with("trace_1.json"));
    p.dry_run = false;
    sweep(&p, now);
    assert_eq!(names(dir.path()), ["trace_2.json"]);
}

#[test]
fn shared_dir_runpack_and_pack_keep_newest_of_each() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), "runpack_a.zip", 10, now);
    touch(dir.path(), "runpack_b.zip", 20, now);
    touch(dir.path(), "pack_a.zip", 10, now);
    touch(dir.path(), "pack_b.zip", 20, now);
    let p = RetentionPolicy {
        classes: vec![
            policy(Class::Runpack, dir.path(), None, Some(1)),
            policy(Class::Pack, dir.path(), None, Some(1)),
        ],
        ..Default::default()
    };
    let r = sweep(&p, now);
    assert_eq!(names(dir.path()), ["pack_a.zip", "runpack_a.zip"]);
    assert_eq!(r.warnings().len(), 2);
}

#[test]
fn checkpoint_referenced_by_a_chain_is_never_deleted() {
    let now = SystemTime::now();
    let runpacks = tempfile::tempdir().unwrap();
    let sessions = tempfile::tempdir().unwrap();
    touch(runpacks.path(), "sess_cp_000001.zip", 10 * H, now);
    touch(runpacks.path(), "sess_cp_000002.zip", 10 * H, now);
    touch(runpacks.path(), "other_cp_000001.zip", 10 * H, now);
    std::fs::write(
        sessions.path().join("sess.journal_chain.json"),
        r#"{"schema_id":"gait.runpack.session_chain","checkpoints":[{"runpack_path":"gait-out/rp/sess_cp_000001.zip"},{"runpack_path":"sess_cp_000002.zip"}]}"#,
    )
    .unwrap();
    let p = RetentionPolicy {
        classes: vec![policy(Class::Runpack, runpacks.path(), Some(H), Some(1))],
        session_dir: Some(sessions.path().to_path_buf()),
        ..Default::default()
    };
    let r = sweep(&p, now);
    assert_eq!(
        names(runpacks.path()),
        ["sess_cp_000001.zip", "sess_cp_000002.zip"]
    );
    assert_eq!(r.summary(Class::Runpack).unwrap().protected, 2);
    assert!(
        r.kept
            .iter()
            .filter(|e| e.protected == Some("chain_reference"))
            .count()
            == 2
    );
}

#[test]
fn journal_with_live_writer_is_never_deleted() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "live.journal.jsonl",
        "live.journal.jsonl.state.json",
        "live.journal_chain.json",
        "dead.journal.jsonl",
        "stale.journal.jsonl",
        "busy.journal.jsonl",
    ] {
        touch(dir.path(), name, 10 * H, now);
    }
    // busy: a writer holds the advisory lock on J.flock (no J.lock between operations)
    let flock_file = File::create(dir.path().join("busy.journal.jsonl.flock")).unwrap();
    let _held = nix::fcntl::Flock::lock(flock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    // live: our own pid
    std::fs::write(
        dir.path().join("live.journal.jsonl.lock"),
        format!(
            r#"{{"created_at":"{}","pid":{}}}"#,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            std::process::id()
        ),
    )
    .unwrap();
    // stale: old created_at, pid that cannot exist
    std::fs::write(
        dir.path().join("stale.journal.jsonl.lock"),
        r#"{"created_at":"2001-01-01T00:00:00Z","pid":2147483000}"#,
    )
    .unwrap();
    let p = RetentionPolicy {
        classes: vec![policy(Class::Session, dir.path(), Some(H), None)],
        session_dir: Some(dir.path().to_path_buf()),
        lock_stale_after: Duration::from_secs(300),
        ..Default::default()
    };
    let r = sweep(&p, now);
    assert_eq!(
        names(dir.path()),
        [
            "busy.journal.jsonl",
            "busy.journal.jsonl.flock",
            "live.journal.jsonl",
            "live.journal.jsonl.lock",
            "live.journal.jsonl.state.json",
            "live.journal_chain.json",
            "stale.journal.jsonl.lock"
        ]
    );
    assert_eq!(r.summary(Class::Session).unwrap().protected, 4);
}

#[test]
fn lock_liveness_rules() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("j.lock");
    let stale = Duration::from_secs(300);
    assert!(!lock_is_live(&l, stale), "absent lock");
    let fresh = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(&l, format!(r#"{{"created_at":"{fresh}"}}"#)).unwrap();
    assert!(lock_is_live(&l, stale), "fresh created_at");
    std::fs::write(
        &l,
        format!(r#"{{"created_at":"{fresh}","pid":2147483000}}"#),
    )
    .unwrap();
    assert!(!lock_is_live(&l, stale), "dead pid on this host");
    std::fs::write(&l, "").unwrap();
    assert!(lock_is_live(&l, stale), "empty but fresh mtime");
    File::options()
        .write(true)
        .open(&l)
        .unwrap()
        .set_modified(now - Duration::from_secs(600))
        .unwrap();
    assert!(!lock_is_live(&l, stale), "empty and old");
}

#[test]
fn report_validates_against_guard_schema_and_is_written() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let packs = dir.path().join("packs");
    let sessions = dir.path().join("sessions");
    for d in [&traces, &packs, &sessions] {
        std::fs::create_dir_all(d).unwrap();
    }
    touch(&traces, "trace_old.json", 3 * H, now);
    touch(&traces, "trace_new.json", 1, now);
    touch(&packs, "pack_old.zip", 3 * H, now);
    touch(&packs, "runpack_old.zip", 3 * H, now);
    touch(&sessions, "s.journal.jsonl", 3 * H, now);
    let report_path = dir.path().join("reports/retention_report.json");
    let section = crate::ops::config::RetentionSection {
        trace_ttl: Some(Duration::from_secs(H)),
        session_ttl: Some(Duration::from_secs(H)),
        export_ttl: Some(Duration::from_secs(H)),
        ..Default::default()
    };
    let mut p = RetentionPolicy::from_config(
        &section,
        &ClassDirs {
            trace: Some(traces.clone()),
            runpack: Some(packs.clone()),
            pack: Some(packs.clone()),
            session: Some(sessions.clone()),
        },
    );
    assert_eq!(p.classes.len(), 4);
    p.report_path = Some(report_path.clone());
    let tel = Arc::new(Telemetry::default());
    p.telemetry = Some(Arc::clone(&tel));
    let r = sweep(&p, now);
    assert_eq!(r.deleted.len(), 4);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("/work/shared/compat/schemas/guard/retention_report.schema.json")
            .unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let doc = r.guard_report();
    assert!(v.is_valid(&doc), "{doc}");
    assert_eq!(doc["trace_ttl_seconds"], 3600);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert!(v.is_valid(&written));
    assert_eq!(
        written["deleted_files"].as_array().unwrap().len(),
        3,
        "sessions are not in the guard doc"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&report_path)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let text = tel.render();
    assert!(
        text.contains(r#"gait_retention_removed_files_total{class="session"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"gait_retention_removed_files_total{class="trace"} 1"#));
}

#[test]
fn unreadable_class_dir_reports_error_and_others_continue() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not_a_dir");
    std::fs::write(&file, "x").unwrap();
    touch(dir.path(), "trace_old.json", 3 * H, now);
    let p = RetentionPolicy {
        classes: vec![
            policy(Class::Pack, &file, Some(H), None),
            policy(Class::Trace, dir.path(), Some(H), None),
        ],
        ..Default::default()
    };
    let r = sweep(&p, now);
    assert_eq!(r.summary(Class::Pack).unwrap().errors.len(), 1);
    assert!(
        r.warnings()
            .iter()
            .any(|w| w.starts_with("retention_pack_error="))
    );
    assert_eq!(r.summary(Class::Trace).unwrap().removed_age, 1);
}

#[tokio::test(start_paused = true)]
async fn spawned_task_sweeps_on_interval_and_stops_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    touch(dir.path(), "trace_old.json", 3 * H, now);
    let p = RetentionPolicy {
        classes: vec![policy(Class::Trace, dir.path(), Some(H), None)],
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    let h = spawn(p, Duration::from_secs(60), cancel.clone());
    // Before the first interval nothing is removed.
    tokio::task::yield_now().await;
    assert_eq!(names(dir.path()), ["trace_old.json"]);
    let mut removed = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_secs(61)).await;
        if names(dir.path()).is_empty() {
            removed = true;
            break;
        }
    }
    assert!(removed);
    cancel.cancel();
    h.await.unwrap();
}
