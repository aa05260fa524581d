//! The shared journal writer pool: the process's thread count does not grow with the number
//! of open session journals (the old design held one blocking thread per journal).
//!
//! One test in its own binary, so no other test's threads disturb the count.

mod support_threads;

use gait::session::{AppendInput, JournalPool, JournalWriterConfig, PoolConfig, read_journal};
use std::time::Duration;
use support_threads::{named, threads};

#[test]
fn thread_count_is_flat_across_500_open_sessions() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = JournalPool::new(PoolConfig {
        threads: 2,
        max_open: 1000,
        idle: Duration::from_secs(3600),
        queue_capacity: 10_000,
    })
    .unwrap();
    let input = |i: usize| AppendInput {
        tool_name: format!("tool{i}"),
        verdict: "allow".into(),
        ..AppendInput::default()
    };
    rt.block_on(async {
        // Warm-up: one journal, so lazily created runtime threads exist before counting.
        let j = dir.path().join("warm.journal.jsonl");
        let w = pool
            .open(JournalWriterConfig::new(&j, "warm", "run_warm"))
            .await
            .unwrap();
        w.append(input(0)).await.unwrap();
        let before = threads();
        let mut writers = Vec::new();
        for s in 0..500 {
            let j = dir.path().join(format!("s{s}.journal.jsonl"));
            let w = pool
                .open(JournalWriterConfig::new(&j, &format!("s{s}"), "run_t"))
                .await
                .unwrap();
            assert_eq!(w.append(input(s)).await.unwrap().sequence, 1);
            writers.push(w);
        }
        let after = threads();
        let stats = pool.stats();
        assert_eq!(stats.journals, 501, "{stats:?}");
        assert_eq!(stats.open, 501, "all 500 journals are open: {stats:?}");
        assert_eq!(
            after, before,
            "threads grew from {before} to {after} with 500 open sessions"
        );
        assert_eq!(named("gait-journal"), 2);
        for w in writers.iter().step_by(50) {
            assert_eq!(read_journal(w.journal_path()).unwrap().0.events.len(), 1);
        }
    });
    pool.shutdown_blocking();
    assert_eq!(named("gait-journal"), 0, "writer threads exit on shutdown");
}
