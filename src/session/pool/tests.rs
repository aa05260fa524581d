use super::*;
use crate::session::journal::{Options, read_journal};
use crate::session::lock::{LockConfig, LockProfile};
use std::fs;

fn opts(timeout: Duration) -> Options {
    Options {
        lock: LockConfig {
            profile: LockProfile::Standard,
            timeout,
            retry: Duration::from_millis(5),
            stale_after: Duration::from_secs(300),
        },
        producer_version: Some("test".into()),
        now: None,
    }
}

fn cfg(j: &Path, sid: &str) -> JournalWriterConfig {
    let mut c = JournalWriterConfig::new(j, sid, &format!("run_{sid}"));
    c.options = opts(Duration::from_secs(5));
    c
}

fn input(tool: &str) -> AppendInput {
    AppendInput {
        tool_name: tool.into(),
        verdict: "allow".into(),
        ..AppendInput::default()
    }
}

fn pool(threads: usize, max_open: usize, idle: Duration, queue: usize) -> JournalPool {
    JournalPool::new(PoolConfig {
        threads,
        max_open,
        idle,
        queue_capacity: queue,
    })
    .unwrap()
}

/// Poll `f` every 5 ms, at most `n` times (a bound for failure, not a timing assertion).
async fn eventually(n: usize, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..n {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

fn tools_in_file_order(j: &Path) -> Vec<(i64, String)> {
    let (m, torn) = read_journal(j).unwrap();
    assert!(torn.is_none());
    m.events
        .iter()
        .map(|e| (e.sequence, e.tool_name.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_sessions_with_concurrent_appenders_get_ordered_gap_free_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(2, 16, Duration::from_secs(3600), 100_000);
    let (sessions, tasks, per) = (40usize, 6usize, 12usize);
    let mut writers = Vec::new();
    for s in 0..sessions {
        let j = dir.path().join(format!("s{s}.journal.jsonl"));
        writers.push(p.open(cfg(&j, &format!("s{s}"))).await.unwrap());
    }
    let mut set = tokio::task::JoinSet::new();
    for (s, w) in writers.iter().enumerate() {
        for t in 0..tasks {
            let w = w.clone();
            set.spawn(async move {
                let mut acks = Vec::new();
                for i in 0..per {
                    let tool = format!("s{s}.t{t}.{i}");
                    let a = w.append(input(&tool)).await.unwrap();
                    assert_eq!(a.event.tool_name, tool);
                    acks.push((s, a.sequence, tool));
                }
                acks
            });
        }
    }
    let mut acked: Vec<Vec<(i64, String)>> = vec![Vec::new(); sessions];
    while let Some(r) = set.join_next().await {
        for (s, seq, tool) in r.unwrap() {
            acked[s].push((seq, tool));
        }
    }
    for (s, w) in writers.iter().enumerate() {
        let in_file = tools_in_file_order(w.journal_path());
        let n = (tasks * per) as i64;
        // Gap-free, strictly increasing in file order.
        let seqs: Vec<i64> = in_file.iter().map(|(q, _)| *q).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "session {s}");
        // Every acknowledged sequence is the one in the file, for the same event.
        acked[s].sort();
        assert_eq!(acked[s], in_file, "session {s}");
        // Each task's appends (issued one after the other) are in issue order.
        for t in 0..tasks {
            let mine: Vec<&String> = in_file
                .iter()
                .map(|(_, tool)| tool)
                .filter(|tool| tool.starts_with(&format!("s{s}.t{t}.")))
                .collect();
            let want: Vec<String> = (0..per).map(|i| format!("s{s}.t{t}.{i}")).collect();
            assert_eq!(mine, want.iter().collect::<Vec<_>>());
        }
    }
    assert!(p.stats().open <= 16 + 2, "{:?}", p.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_enqueued_in_order_commit_in_that_order() {
    // Futures created and polled in order enqueue in order (each enqueue is synchronous
    // when there is space), so one journal's FIFO order is the commit order.
    let dir = tempfile::tempdir().unwrap();
    let p = pool(2, 8, Duration::from_secs(3600), 10_000);
    let j = dir.path().join("o.journal.jsonl");
    let w = p.open(cfg(&j, "o")).await.unwrap();
    let futs: Vec<_> = (0..300)
        .map(|i| {
            let w = w.clone();
            async move { w.append(input(&format!("e{i:03}"))).await.unwrap().sequence }
        })
        .collect();
    let seqs = futures_util::future::join_all(futs).await;
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    let names: Vec<String> = tools_in_file_order(&j)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(
        names,
        (0..300).map(|i| format!("e{i:03}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_behind_appends_are_gathered_into_few_batches_and_a_waited_append_ends_the_wait() {
    // Appends nobody waits for linger up to BEHIND_LINGER so one lock acquisition and one
    // write serve many; taken one by one (no linger) they would cost a batch each.
    let dir = tempfile::tempdir().unwrap();
    let p = pool(1, 8, Duration::from_secs(3600), 10_000);
    let j = dir.path().join("b.journal.jsonl");
    let w = p.open(cfg(&j, "b")).await.unwrap();
    let before = p.stats().batches;
    for i in 0..40 {
        w.append_behind(input(&format!("b{i:02}"))).await.unwrap();
        // a worker without a linger takes the journal between two appends
        std::thread::sleep(Duration::from_micros(200));
    }
    // a waited-for append takes the journal at once, with every append queued before it
    let last = w.append(input("durable")).await.unwrap();
    assert_eq!(last.sequence, 41);
    let batches = p.stats().batches - before;
    assert!(
        batches <= 10,
        "41 appends took {batches} batches: write-behind appends were not gathered"
    );
    let names: Vec<String> = tools_in_file_order(&j)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut want: Vec<String> = (0..40).map(|i| format!("b{i:02}")).collect();
    want.push("durable".into());
    assert_eq!(names, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_close_flushes_state_and_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(1, 8, Duration::from_millis(30), 1000);
    let j = dir.path().join("idle.journal.jsonl");
    let w = p.open(cfg(&j, "idle")).await.unwrap();
    for i in 0..3 {
        w.append(input(&format!("t{i}"))).await.unwrap();
    }
    assert!(
        eventually(2000, || p.stats().open == 0).await,
        "{:?}",
        p.stats()
    );
    let paths = SessionPaths::new(&j);
    assert!(!paths.lock.exists(), "J.lock left behind after idle close");
    let st = journal::read_state(&paths.state).unwrap();
    assert_eq!(
        st.journal_size_bytes,
        fs::metadata(&j).unwrap().len() as i64
    );
    assert_eq!(st.last_sequence, 3);
    // The lock is free for anyone else at once.
    let other = SessionLock::try_acquire(&paths, &opts(Duration::from_secs(1)).lock).unwrap();
    assert!(other.is_some());
    drop(other);
    // The handle still works: the journal reopens and continues.
    assert_eq!(w.append(input("again")).await.unwrap().sequence, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_journals_are_capped_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(1, 3, Duration::from_secs(3600), 1000);
    let mut ws = Vec::new();
    for s in 0..10 {
        let j = dir.path().join(format!("l{s}.journal.jsonl"));
        let w = p.open(cfg(&j, &format!("l{s}"))).await.unwrap();
        assert_eq!(w.append(input("a")).await.unwrap().sequence, 1);
        ws.push(w);
    }
    assert!(
        eventually(2000, || p.stats().open <= 3).await,
        "{:?}",
        p.stats()
    );
    assert_eq!(p.stats().journals, 10);
    // The oldest journals were closed, with their state flushed.
    for w in &ws[..5] {
        let paths = SessionPaths::new(w.journal_path());
        let st = journal::read_state(&paths.state).unwrap();
        assert_eq!(st.last_sequence, 1, "{}", w.journal_path().display());
        assert!(!paths.lock.exists());
    }
    // A closed journal reopens transparently and keeps counting.
    assert_eq!(ws[0].append(input("b")).await.unwrap().sequence, 2);
    assert!(eventually(2000, || p.stats().open <= 3).await);
    // Dropping every handle closes and forgets the journals.
    drop(ws);
    assert!(
        eventually(2000, || p.stats().journals == 0 && p.stats().open == 0).await,
        "{:?}",
        p.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_gives_retryable_queue_full_after_bounded_wait() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(1, 8, Duration::from_secs(3600), 4);
    let j = dir.path().join("bp.journal.jsonl");
    let mut c = cfg(&j, "bp");
    c.enqueue_timeout = Duration::from_millis(50);
    let w = p.open(c).await.unwrap();
    // Hold the journal's lock: the writer cannot commit, so queued appends stay queued.
    let paths = SessionPaths::new(&j);
    let held = SessionLock::acquire(&paths, &opts(Duration::from_secs(1)).lock).unwrap();
    let mut pending = Vec::new();
    for i in 0..4 {
        let w = w.clone();
        pending.push(tokio::spawn(async move {
            w.append(input(&format!("q{i}"))).await
        }));
    }
    assert!(
        eventually(2000, || p.stats().queued == 4).await,
        "{:?}",
        p.stats()
    );
    let e = w.append(input("overflow")).await.unwrap_err();
    assert!(
        matches!(e, SessionError::QueueFull { capacity: 4, .. }),
        "{e:?}"
    );
    assert_eq!(e.http_status(), 503);
    assert!(e.retryable());
    assert_eq!(e.reason_code(), "session_writer_queue_full");
    assert!(e.retry_after().is_some());
    drop(held);
    let mut seqs = Vec::new();
    for h in pending {
        seqs.push(h.await.unwrap().unwrap().sequence);
    }
    seqs.sort();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(read_journal(&j).unwrap().0.events.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contended_journal_does_not_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(1, 8, Duration::from_secs(3600), 1000);
    let ja = dir.path().join("a.journal.jsonl");
    let jb = dir.path().join("b.journal.jsonl");
    let mut ca = cfg(&ja, "a");
    ca.options.lock.timeout = Duration::from_millis(300);
    let wa = p.open(ca).await.unwrap();
    let wb = p.open(cfg(&jb, "b")).await.unwrap();
    let held =
        SessionLock::acquire(&SessionPaths::new(&ja), &opts(Duration::from_secs(1)).lock).unwrap();
    let a = tokio::spawn({
        let wa = wa.clone();
        async move { wa.append(input("blocked")).await }
    });
    assert!(eventually(2000, || p.stats().queued >= 1).await);
    for i in 0..20 {
        assert_eq!(
            wb.append(input(&format!("b{i}"))).await.unwrap().sequence,
            i + 1
        );
    }
    assert!(!a.is_finished(), "A should still wait for its lock");
    // A's append times out with the structured contention error.
    let e = a.await.unwrap().unwrap_err();
    let c = e.contention().expect("contention error");
    assert!(c.attempts >= 2, "{c:?}");
    assert_eq!(e.http_status(), 503);
    drop(held);
    assert_eq!(wa.append(input("free")).await.unwrap().sequence, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_everything_enqueued_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(2, 64, Duration::from_secs(3600), 10_000);
    let mut held = Vec::new();
    let mut pending = Vec::new();
    for s in 0..5 {
        let j = dir.path().join(format!("d{s}.journal.jsonl"));
        let w = p.open(cfg(&j, &format!("d{s}"))).await.unwrap();
        held.push(
            SessionLock::acquire(&SessionPaths::new(&j), &opts(Duration::from_secs(1)).lock)
                .unwrap(),
        );
        for i in 0..20 {
            let w = w.clone();
            pending.push(tokio::spawn(async move {
                w.append(input(&format!("x{i}"))).await
            }));
        }
    }
    assert!(
        eventually(2000, || p.stats().queued == 100).await,
        "{:?}",
        p.stats()
    );
    let p2 = p.clone();
    let stopping = tokio::task::spawn_blocking(move || p2.shutdown_blocking());
    // New work is refused once shutdown began.
    assert!(eventually(2000, || p.stats().shutting_down).await);
    let j = dir.path().join("late.journal.jsonl");
    let e = p.open(cfg(&j, "late")).await.unwrap_err();
    assert!(matches!(e, SessionError::Unavailable(_)), "{e:?}");
    drop(held);
    stopping.await.unwrap();
    for h in pending {
        h.await.unwrap().unwrap();
    }
    for s in 0..5 {
        let j = dir.path().join(format!("d{s}.journal.jsonl"));
        let paths = SessionPaths::new(&j);
        assert_eq!(read_journal(&j).unwrap().0.last_sequence(), 20);
        // Closed on shutdown: state flushed, lock released.
        assert_eq!(journal::read_state(&paths.state).unwrap().last_sequence, 20);
        assert!(!paths.lock.exists());
    }
    assert_eq!(p.stats().open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_written_behind_the_pool_is_repaired_on_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(1, 8, Duration::from_secs(3600), 1000);
    let j = dir.path().join("torn.journal.jsonl");
    let w = p.open(cfg(&j, "torn")).await.unwrap();
    w.append(input("a")).await.unwrap();
    w.append(input("b")).await.unwrap();
    let clean = fs::metadata(&j).unwrap().len();
    // A writer killed mid-line leaves half a record.
    let torn = br#"{"record_type":"event","event":{"seq"#;
    let mut f = fs::OpenOptions::new().append(true).open(&j).unwrap();
    std::io::Write::write_all(&mut f, torn).unwrap();
    drop(f);
    let a = w.append(input("c")).await.unwrap();
    assert_eq!(a.sequence, 3);
    let r = a.repair.expect("repair reported");
    assert_eq!(r.dropped_lines, 1);
    assert_eq!(r.truncated_bytes, torn.len() as u64);
    let (m, torn) = read_journal(&j).unwrap();
    assert!(torn.is_none());
    assert_eq!(m.last_sequence(), 3);
    assert!(fs::metadata(&j).unwrap().len() > clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_conflict_is_reported_and_the_slot_released() {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(1, 8, Duration::from_secs(3600), 1000);
    let j = dir.path().join("id.journal.jsonl");
    let w = p.open(cfg(&j, "one")).await.unwrap();
    let e = p.open(cfg(&j, "two")).await.unwrap_err();
    assert!(naming::is_identity_conflict(&e), "{e}");
    assert_eq!(w.append(input("x")).await.unwrap().sequence, 1);
    drop(w);
    assert!(
        eventually(2000, || p.stats().journals == 0).await,
        "{:?}",
        p.stats()
    );
}

#[test]
fn writer_threads_from_env() {
    let env = [(ENV_WRITER_THREADS, "2")];
    assert_eq!(PoolConfig::from_env(&env).threads, 2);
    for bad in ["0", "17", "x", ""] {
        let env = [(ENV_WRITER_THREADS, bad)];
        assert_eq!(PoolConfig::from_env(&env).threads, 1, "{bad}");
    }
}
