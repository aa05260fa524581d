//! Session journal benchmarks: durable appends/s with an fsync per event vs group commit,
//! checkpoint time for 10k events, and append latency at several journal lengths (1 → 100k).
//!
//! Criterion measures the three operations; a direct wall-clock pass then writes the headline
//! numbers to `perf/session_bench.json`. Sizes scale with `SESSION_BENCH_SCALE` (default 1.0;
//! e.g. 0.1 for a quick run). Every append here is durable (fsync before acknowledgement).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use gait::session::{
    self, AppendInput, CheckpointOptions, JournalWriter, JournalWriterConfig, Options,
};
use serde_json::json;

fn scale() -> f64 {
    std::env::var("SESSION_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(1)
}

fn input(i: usize) -> AppendInput {
    AppendInput {
        tool_name: format!("tool.bench_{}", i % 13),
        verdict: "allow".into(),
        trace_id: format!("trace_{i}"),
        reason_codes: vec!["bench".into()],
        ..AppendInput::default()
    }
}

fn opts() -> Options {
    let mut o = Options::default();
    o.lock.timeout = Duration::from_secs(30);
    o.producer_version = Some("bench".into());
    o
}

fn new_journal(dir: &Path, name: &str) -> PathBuf {
    let j = dir.join(format!("{name}.journal.jsonl"));
    session::start_session(&j, "sess_bench", "run_bench", &opts()).expect("start");
    j
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open_writer(j: &Path) -> JournalWriter {
    let mut cfg = JournalWriterConfig::new(j, "sess_bench", "run_bench");
    cfg.options = opts();
    cfg.enqueue_timeout = Duration::from_secs(30);
    JournalWriter::open(cfg).await.expect("writer")
}

/// `n` appends from `tasks` concurrent callers through one writer; returns elapsed time.
async fn group_commit(w: &JournalWriter, n: usize, tasks: usize) -> Duration {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let w = w.clone();
        let per = n / tasks + usize::from(t < n % tasks);
        set.spawn(async move {
            for i in 0..per {
                w.append(input(t * 1_000_000 + i)).await.expect("append");
            }
        });
    }
    while set.join_next().await.is_some() {}
    start.elapsed()
}

fn percentile(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn criterion_benches(c: &mut Criterion, dir: &Path, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("session_append");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.warm_up_time(Duration::from_secs(1));
    let j = new_journal(dir, "crit_single");
    g.throughput(Throughput::Elements(1));
    g.bench_function("fsync_per_event_library_append", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            session::append_event(&j, &input(i), &opts()).expect("append")
        })
    });
    let jw = new_journal(dir, "crit_group");
    let w = rt.block_on(open_writer(&jw));
    let batch = scaled(5_000);
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_with_input(
        BenchmarkId::new("group_commit_256_tasks", batch),
        &batch,
        |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(group_commit(&w, n, 256));
                }
                total
            })
        },
    );
    g.finish();

    let mut g = c.benchmark_group("session_checkpoint");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    let n = scaled(10_000);
    let jc = new_journal(dir, "crit_cp");
    let wc = rt.block_on(open_writer(&jc));
    g.bench_function(BenchmarkId::new("checkpoint_events", n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for k in 0..iters {
                rt.block_on(group_commit(&wc, n, 256));
                let out = dir.join(format!("crit_cp_{k}.zip"));
                let copts = CheckpointOptions {
                    base: opts(),
                    ..CheckpointOptions::default()
                };
                let t = Instant::now();
                session::checkpoint(&jc, &out, &copts).expect("checkpoint");
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn report(dir: &Path, rt: &tokio::runtime::Runtime) -> serde_json::Value {
    // 1. fsync per event: the one-shot library append (lock + write + fsync + state per event).
    let j = new_journal(dir, "rep_single");
    let n_single = scaled(200);
    let t = Instant::now();
    for i in 0..n_single {
        session::append_event(&j, &input(i), &opts()).expect("append");
    }
    let single_rate = n_single as f64 / t.elapsed().as_secs_f64();
    // 1b. fsync per event through the writer (one caller at a time: batches of one).
    let jw1 = new_journal(dir, "rep_writer1");
    let w1 = rt.block_on(open_writer(&jw1));
    let t = Instant::now();
    rt.block_on(async {
        for i in 0..n_single {
            w1.append(input(i)).await.expect("append");
        }
    });
    let writer1_rate = n_single as f64 / t.elapsed().as_secs_f64();
    // 2. group commit.
    let jg = new_journal(dir, "rep_group");
    let wg = rt.block_on(open_writer(&jg));
    let n_group = scaled(50_000);
    let el = rt.block_on(group_commit(&wg, n_group, 256));
    let group_rate = n_group as f64 / el.as_secs_f64();
    // 3. checkpoint of 10k events.
    let jc = new_journal(dir, "rep_cp");
    let wc = rt.block_on(open_writer(&jc));
    let n_cp = scaled(10_000);
    rt.block_on(group_commit(&wc, n_cp, 256));
    let copts = CheckpointOptions {
        base: opts(),
        ..CheckpointOptions::default()
    };
    let t = Instant::now();
    session::checkpoint(&jc, &dir.join("rep_cp.zip"), &copts).expect("checkpoint");
    let cp_ms = t.elapsed().as_secs_f64() * 1e3;
    // 4. latency vs journal length: grow one journal, sample single durable appends at each length.
    let jl = new_journal(dir, "rep_latency");
    let wl = rt.block_on(open_writer(&jl));
    let mut points = Vec::new();
    let mut len = 0usize;
    for target in [1usize, 1_000, 10_000, 50_000, 100_000].map(scaled) {
        if target > len {
            rt.block_on(group_commit(&wl, target - len, 256));
            len = target;
        }
        let samples = 30;
        let mut writer_lat = Vec::with_capacity(samples);
        let mut lib_lat = Vec::with_capacity(samples);
        rt.block_on(async {
            for i in 0..samples {
                let t = Instant::now();
                wl.append(input(i)).await.expect("append");
                writer_lat.push(t.elapsed());
            }
        });
        for i in 0..samples {
            let t = Instant::now();
            session::append_event(&jl, &input(i), &opts()).expect("append");
            lib_lat.push(t.elapsed());
        }
        len += 2 * samples;
        points.push(json!({
            "journal_events": target,
            "writer_append_p50_us": percentile(writer_lat.clone(), 0.5).round(),
            "writer_append_p95_us": percentile(writer_lat, 0.95).round(),
            "library_append_p50_us": percentile(lib_lat.clone(), 0.5).round(),
            "library_append_p95_us": percentile(lib_lat, 0.95).round(),
        }));
    }
    json!({
        "schema_id": "gait.perf.session_bench",
        "scale": scale(),
        "durable": "every acknowledged append is fsynced (fdatasync) before the caller is answered",
        "fsync_per_event": {
            "library_append_events": n_single,
            "library_append_per_sec": single_rate.round(),
            "writer_batch_of_one_per_sec": writer1_rate.round(),
        },
        "group_commit": {
            "events": n_group,
            "concurrent_tasks": 256,
            "appends_per_sec": group_rate.round(),
        },
        "checkpoint": {
            "events": n_cp,
            "millis": (cp_ms * 10.0).round() / 10.0,
        },
        "latency_by_journal_length": points,
    })
}

fn main() {
    let dir =
        tempfile::tempdir_in(std::env::var("SESSION_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .expect("tempdir");
    let rt = rt();
    let only_report = std::env::args().any(|a| a == "--report-only");
    if !only_report {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, dir.path(), &rt);
        c.final_summary();
    }
    let r = report(dir.path(), &rt);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("perf/session_bench.json");
    if let Some(p) = out.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    let text = serde_json::to_string_pretty(&r).expect("json");
    std::fs::write(&out, format!("{text}\n")).expect("write perf/session_bench.json");
    println!("{text}");
}
