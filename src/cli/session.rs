//! `gait run session start|append|status|checkpoint|compact` and `gait verify session-chain`
//! (sessions.md §1). Output: sorted-key one-line JSON with the envelope (`--json`) or the Go text
//! lines; exit codes 0 ok, 1 contention/IO, 2 chain verification failed, 6 invalid input.
//!
//! Two hidden subcommands serve the soak and chaos scripts: `stress` (a writer that logs every
//! acknowledged sequence) and `audit` (checks a journal against such logs).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Map, Value};

use super::Ctx;
use crate::exit::{self, Category};
use crate::session::{
    self, AppendInput, ChainVerifyOptions, CheckpointOptions, JournalWriter, JournalWriterConfig,
    Options, ProcessEnv, Repair, SessionError, runpack,
};

const EXPLAIN: &str = "Manage append-only long-running session journals and emit verifiable checkpoint runpacks with chain linkage.";
const EXPLAIN_VERIFY: &str =
    "Verify a session checkpoint chain: linkage, checkpoint digests and each checkpoint runpack.";

#[derive(Debug, Args)]
#[command(arg_required_else_help = false)]
pub struct SessionArgs {
    #[command(subcommand)]
    pub command: Option<SessionCommand>,
    /// Print a one-line description and exit.
    #[arg(long, global = true)]
    pub explain: bool,
    /// Print one line of JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session journal (idempotent for the same session and run).
    Start(StartArgs),
    /// Append one event.
    Append(AppendArgs),
    /// Print the session status.
    Status(JournalArgs),
    /// Emit a checkpoint runpack of the new events and update the chain.
    Checkpoint(CheckpointArgs),
    /// Drop checkpointed events from the journal.
    Compact(CompactArgs),
    /// (testing) Append many events and log each acknowledged sequence.
    #[command(hide = true)]
    Stress(StressArgs),
    /// (testing) Check a journal against acknowledgement logs.
    #[command(hide = true)]
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(long)]
    pub journal: Option<String>,
    #[arg(long)]
    pub session_id: Option<String>,
    #[arg(long)]
    pub run_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    #[arg(long)]
    pub journal: Option<String>,
    #[arg(long)]
    pub tool: Option<String>,
    /// allow|block|dry_run|require_approval
    #[arg(long)]
    pub verdict: Option<String>,
    #[arg(long)]
    pub intent_id: Option<String>,
    #[arg(long)]
    pub trace_id: Option<String>,
    #[arg(long)]
    pub trace_path: Option<String>,
    #[arg(long)]
    pub intent_digest: Option<String>,
    #[arg(long)]
    pub policy_digest: Option<String>,
    /// Comma-separated reason codes.
    #[arg(long)]
    pub reason_codes: Option<String>,
    /// Comma-separated violations.
    #[arg(long)]
    pub violations: Option<String>,
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    #[arg(long)]
    pub journal: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[arg(long)]
    pub journal: Option<String>,
    /// Checkpoint runpack zip to write.
    #[arg(long)]
    pub out: Option<String>,
    /// Extra copy of the chain file.
    #[arg(long)]
    pub chain_out: Option<String>,
    /// Sign the checkpoint manifest with this Ed25519 private key file (base64 seed‖pub).
    #[arg(long)]
    pub private_key: Option<String>,
    /// Environment variable holding the private key.
    #[arg(long)]
    pub private_key_env: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[arg(long)]
    pub journal: Option<String>,
    /// Output journal (default: in place).
    #[arg(long)]
    pub out: Option<String>,
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StressArgs {
    #[arg(long)]
    pub journal: String,
    #[arg(long, default_value = "sess_stress")]
    pub session_id: String,
    #[arg(long, default_value = "run_stress")]
    pub run_id: String,
    /// Appends to perform.
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// >1: run that many concurrent tasks through one JournalWriter (group commit).
    #[arg(long, default_value_t = 1)]
    pub tasks: u64,
    /// File receiving one acknowledged sequence number per line.
    #[arg(long)]
    pub ack_log: Option<PathBuf>,
    /// Checkpoint after every N appends (zips in --out-dir).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Compact after every N appends.
    #[arg(long, default_value_t = 0)]
    pub compact_every: u64,
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long)]
    pub journal: String,
    /// Acknowledgement logs written by `stress`.
    #[arg(long, num_args = 1..)]
    pub ack_log: Vec<PathBuf>,
    /// Expected last sequence (exact).
    #[arg(long)]
    pub expect: Option<i64>,
    /// Also verify this chain file.
    #[arg(long)]
    pub chain: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyChainArgs {
    /// The chain file (or pass it as the only positional argument).
    #[arg(long)]
    pub chain: Option<String>,
    #[arg(value_name = "CHAIN")]
    pub positional: Vec<String>,
    /// standard|strict (strict requires a verified signature on every checkpoint).
    #[arg(long, default_value = "standard")]
    pub profile: String,
    #[arg(long)]
    pub require_signature: bool,
    #[arg(long)]
    pub public_key: Option<String>,
    #[arg(long)]
    pub public_key_env: Option<String>,
    #[arg(long)]
    pub private_key: Option<String>,
    #[arg(long)]
    pub private_key_env: Option<String>,
    #[arg(long)]
    pub explain: bool,
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

/// `\n\r\t` → space, other control characters dropped, whitespace collapsed.
fn sanitize(s: &str) -> String {
    let mapped: String = s
        .chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

struct Reply<'a> {
    op: &'static str,
    journal: &'a str,
    json: bool,
    ctx: &'a Ctx,
}

impl Reply<'_> {
    fn ok(&self, payload: Vec<(&str, Value)>, repair: Option<&Repair>, text: &[String]) -> u8 {
        let warning = repair.map(|r| r.warning(Path::new(self.journal)));
        if self.json {
            let mut m = Map::new();
            m.insert("ok".into(), true.into());
            m.insert("operation".into(), self.op.into());
            m.insert("journal".into(), self.journal.into());
            for (k, v) in payload {
                m.insert(k.into(), v);
            }
            if let Some(w) = warning {
                m.insert("warnings".into(), Value::from(vec![w]));
            }
            super::output::print_json(m, None, self.ctx);
        } else {
            if let Some(w) = warning {
                eprintln!("warning: {}", sanitize(&w));
            }
            for line in text {
                println!("{line}");
            }
        }
        exit::OK
    }

    fn err(&self, message: &str, category: Category) -> u8 {
        if self.json {
            let mut m = Map::new();
            m.insert("ok".into(), false.into());
            m.insert("operation".into(), self.op.into());
            if !self.journal.is_empty() {
                m.insert("journal".into(), self.journal.into());
            }
            m.insert("error".into(), message.into());
            super::output::print_json(m, Some(category), self.ctx);
        } else {
            eprintln!("run session {} error: {}", self.op, sanitize(message));
        }
        category.exit_code()
    }

    fn fail(&self, e: &SessionError) -> u8 {
        if self.json
            && let Some(c) = e.contention()
        {
            // Structured contention diagnostics next to the Go-compatible message.
            let mut m = Map::new();
            m.insert("ok".into(), false.into());
            m.insert("operation".into(), self.op.into());
            m.insert("journal".into(), self.journal.into());
            m.insert("error".into(), e.to_string().into());
            m.insert("reason_code".into(), e.reason_code().into());
            let mut d = Map::new();
            d.insert("path".into(), c.path.clone().into());
            d.insert("waited_ms".into(), (c.waited.as_millis() as u64).into());
            d.insert("attempts".into(), c.attempts.into());
            d.insert("timeout_ms".into(), (c.timeout.as_millis() as u64).into());
            d.insert("retry_ms".into(), (c.retry.as_millis() as u64).into());
            d.insert("profile".into(), c.profile.as_str().into());
            if let Some(pid) = c.holder_pid {
                d.insert("holder_pid".into(), pid.into());
            }
            if let Some(age) = c.holder_age {
                d.insert("holder_age_ms".into(), (age.as_millis() as u64).into());
            }
            m.insert("contention".into(), Value::Object(d));
            super::output::print_json(m, Some(Category::StateContention), self.ctx);
            return Category::StateContention.exit_code();
        }
        self.err(&e.to_string(), e.category())
    }
}

fn csv(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|v| v.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default()
}

fn req(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn read_key_source(path: &Option<String>, env: &Option<String>) -> Result<Option<String>, String> {
    match (req(path), req(env)) {
        (Some(_), Some(_)) => Err("private key source: set either path or env".into()),
        (Some(p), None) => std::fs::read_to_string(p)
            .map(Some)
            .map_err(|e| format!("read key {p}: {e}")),
        (None, Some(v)) => std::env::var(v)
            .map(Some)
            .map_err(|_| format!("key env {v} is not set")),
        (None, None) => Ok(None),
    }
}

pub fn run(args: SessionArgs, ctx: &Ctx) -> u8 {
    if args.explain {
        println!("{EXPLAIN}");
        return exit::OK;
    }
    let opts = Options::from_env(&ProcessEnv);
    let json = args.json;
    let Some(command) = args.command else {
        eprintln!("usage: gait run session <start|append|status|checkpoint|compact> [flags]");
        return exit::INVALID_INPUT;
    };
    match command {
        SessionCommand::Start(a) => run_start(a, &opts, json, ctx),
        SessionCommand::Append(a) => run_append(a, &opts, json, ctx),
        SessionCommand::Status(a) => run_status(a, &opts, json, ctx),
        SessionCommand::Checkpoint(a) => run_checkpoint(a, &opts, json, ctx),
        SessionCommand::Compact(a) => run_compact(a, &opts, json, ctx),
        SessionCommand::Stress(a) => run_stress(a, &opts),
        SessionCommand::Audit(a) => run_audit(a),
    }
}

fn status_text(op: &str, s: &session::SessionStatus, journal: &str) -> Vec<String> {
    vec![
        format!(
            "session {op}: session_id={} run_id={} events={} checkpoints={} last_sequence={}",
            sanitize(&s.session_id),
            sanitize(&s.run_id),
            s.event_count,
            s.checkpoint_count,
            s.last_sequence
        ),
        format!("journal: {}", sanitize(journal)),
    ]
}

fn run_start(a: StartArgs, opts: &Options, json: bool, ctx: &Ctx) -> u8 {
    let journal = a.journal.clone().unwrap_or_default();
    let r = Reply {
        op: "start",
        journal: &journal,
        json,
        ctx,
    };
    let (Some(j), Some(sid), Some(rid)) = (req(&a.journal), req(&a.session_id), req(&a.run_id))
    else {
        return r.err(
            "--journal, --session-id, and --run-id are required",
            Category::InvalidInput,
        );
    };
    match session::start_session(Path::new(j), sid, rid, opts) {
        Ok(out) => r.ok(
            vec![("status", to_value(&out.value))],
            out.repair.as_ref(),
            &status_text("start", &out.value, j),
        ),
        Err(e) => r.fail(&e),
    }
}

fn run_status(a: JournalArgs, opts: &Options, json: bool, ctx: &Ctx) -> u8 {
    let journal = a.journal.clone().unwrap_or_default();
    let r = Reply {
        op: "status",
        journal: &journal,
        json,
        ctx,
    };
    let Some(j) = req(&a.journal) else {
        return r.err("--journal is required", Category::InvalidInput);
    };
    match session::session_status(Path::new(j), opts) {
        Ok(out) => r.ok(
            vec![("status", to_value(&out.value))],
            out.repair.as_ref(),
            &status_text("status", &out.value, j),
        ),
        Err(e) => r.fail(&e),
    }
}

fn run_append(a: AppendArgs, opts: &Options, json: bool, ctx: &Ctx) -> u8 {
    let journal = a.journal.clone().unwrap_or_default();
    let r = Reply {
        op: "append",
        journal: &journal,
        json,
        ctx,
    };
    let (Some(j), Some(tool), Some(verdict)) = (req(&a.journal), req(&a.tool), req(&a.verdict))
    else {
        return r.err(
            "--journal, --tool, and --verdict are required",
            Category::InvalidInput,
        );
    };
    let verdict = verdict.to_lowercase();
    if !matches!(
        verdict.as_str(),
        "allow" | "block" | "dry_run" | "require_approval"
    ) {
        return r.err(
            "unsupported --verdict value (expected allow|block|dry_run|require_approval)",
            Category::InvalidInput,
        );
    }
    let input = AppendInput {
        tool_name: tool.to_string(),
        verdict: verdict.clone(),
        intent_id: a.intent_id.clone().unwrap_or_default(),
        trace_id: a.trace_id.clone().unwrap_or_default(),
        trace_path: a.trace_path.clone().unwrap_or_default(),
        intent_digest: a.intent_digest.clone().unwrap_or_default(),
        policy_digest: a.policy_digest.clone().unwrap_or_default(),
        reason_codes: csv(&a.reason_codes),
        violations: csv(&a.violations),
        ..AppendInput::default()
    };
    match session::append_event(Path::new(j), &input, opts) {
        Ok(out) => {
            let e = &out.value;
            let text = vec![format!(
                "session append: sequence={} tool={} verdict={}",
                e.sequence,
                if e.tool_name.is_empty() {
                    "unset"
                } else {
                    "redacted"
                },
                verdict
            )];
            r.ok(vec![("event", to_value(e))], out.repair.as_ref(), &text)
        }
        Err(e) => r.fail(&e),
    }
}

fn run_checkpoint(a: CheckpointArgs, opts: &Options, json: bool, ctx: &Ctx) -> u8 {
    let journal = a.journal.clone().unwrap_or_default();
    let r = Reply {
        op: "checkpoint",
        journal: &journal,
        json,
        ctx,
    };
    let (Some(j), Some(out)) = (req(&a.journal), req(&a.out)) else {
        return r.err("--journal and --out are required", Category::InvalidInput);
    };
    let signing_key = match read_key_source(&a.private_key, &a.private_key_env) {
        Ok(None) => None,
        Ok(Some(text)) => match runpack::parse_private_key(&text) {
            Ok(k) => Some(k),
            Err(e) => return r.fail(&e),
        },
        Err(e) => return r.err(&e, Category::InvalidInput),
    };
    let copts = CheckpointOptions {
        base: opts.clone(),
        chain_out: req(&a.chain_out).map(PathBuf::from),
        signing_key,
    };
    match session::checkpoint(Path::new(j), Path::new(out), &copts) {
        Ok(o) => {
            let chain_path = o.chain_out.clone().unwrap_or(o.chain_path.clone());
            let chain_s = chain_path.to_string_lossy().into_owned();
            let cp = &o.checkpoint;
            let text = vec![
                format!(
                    "session checkpoint: index={} runpack={} range={}..{}",
                    cp.checkpoint_index,
                    if cp.runpack_path.is_empty() {
                        "unset"
                    } else {
                        "redacted"
                    },
                    cp.sequence_start,
                    cp.sequence_end
                ),
                format!("session chain: {}", sanitize(&chain_s)),
            ];
            r.ok(
                vec![
                    ("checkpoint", to_value(cp)),
                    ("chain_path", Value::from(chain_s)),
                ],
                o.repair.as_ref(),
                &text,
            )
        }
        Err(e) => r.fail(&e),
    }
}

fn run_compact(a: CompactArgs, opts: &Options, json: bool, ctx: &Ctx) -> u8 {
    let journal = a.journal.clone().unwrap_or_default();
    let r = Reply {
        op: "compact",
        journal: &journal,
        json,
        ctx,
    };
    let Some(j) = req(&a.journal) else {
        return r.err("--journal is required", Category::InvalidInput);
    };
    let out = req(&a.out).map(PathBuf::from);
    match session::compact(Path::new(j), out.as_deref(), a.dry_run, opts) {
        Ok(o) => {
            let c = &o.value;
            let text = vec![
                format!(
                    "session compact: compacted={} dry_run={} events={}->{} checkpoints={} bytes={}->{}",
                    c.compacted,
                    c.dry_run,
                    c.events_before,
                    c.events_after,
                    c.checkpoints,
                    c.bytes_before,
                    c.bytes_after
                ),
                format!("journal: {}", sanitize(&c.journal_path)),
                format!("output: {}", sanitize(&c.output_path)),
            ];
            r.ok(vec![("compaction", to_value(c))], o.repair.as_ref(), &text)
        }
        Err(e) => r.fail(&e),
    }
}

// === verify session-chain ===

pub fn run_verify_chain(args: VerifyChainArgs, ctx: &Ctx) -> u8 {
    if args.explain {
        println!("{EXPLAIN_VERIFY}");
        return exit::OK;
    }
    let fail = |msg: &str| super::output::fail(args.json, msg, Category::InvalidInput, ctx);
    let chain = match (req(&args.chain), args.positional.as_slice()) {
        (Some(c), []) => c.to_string(),
        (None, [one]) if !one.trim().is_empty() => one.trim().to_string(),
        _ => return fail("expected --chain <session_chain.json>"),
    };
    let profile = args.profile.trim().to_lowercase();
    if !matches!(profile.as_str(), "standard" | "strict") {
        return fail(&format!(
            "unsupported --profile value {:?} (expected standard|strict)",
            args.profile
        ));
    }
    let require_signature = args.require_signature || profile == "strict";
    let public_key = match resolve_verify_key(&args) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    if profile == "strict" && public_key.is_none() {
        return fail(
            "strict verify profile requires --public-key/--public-key-env or private key source",
        );
    }
    let opts = ChainVerifyOptions {
        require_signature,
        public_key,
    };
    let res = match session::verify_chain(Path::new(&chain), &opts) {
        Ok(r) => r,
        Err(e) => return super::output::fail(args.json, &e.to_string(), e.category(), ctx),
    };
    let ok = res.ok();
    if args.json {
        let mut m = match to_value(&res) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("ok".into(), ok.into());
        super::output::print_json(m, None, ctx);
    } else if ok {
        println!("verify session-chain: ok ({})", sanitize(&chain));
        println!(
            "session={} run={} checkpoints={}",
            sanitize(&res.session_id),
            sanitize(&res.run_id),
            res.checkpoints_checked
        );
    } else {
        println!("verify session-chain failed: {}", sanitize(&chain));
        if !res.linkage_errors.is_empty() {
            println!("linkage errors: {}", res.linkage_errors.join("; "));
        }
        if !res.checkpoint_errors.is_empty() {
            println!("checkpoint errors: {}", res.checkpoint_errors.join("; "));
        }
    }
    if ok {
        exit::OK
    } else {
        exit::VERIFICATION_FAILED
    }
}

fn resolve_verify_key(
    args: &VerifyChainArgs,
) -> Result<Option<ed25519_dalek::VerifyingKey>, String> {
    match (req(&args.public_key), req(&args.public_key_env)) {
        (Some(_), Some(_)) => return Err("public key source: set either path or env".into()),
        (Some(p), None) => {
            let t = std::fs::read_to_string(p).map_err(|e| format!("read public key {p}: {e}"))?;
            return runpack::parse_public_key(&t)
                .map(Some)
                .map_err(|e| e.to_string());
        }
        (None, Some(v)) => {
            let t = std::env::var(v).map_err(|_| format!("public key env {v} is not set"))?;
            return runpack::parse_public_key(&t)
                .map(Some)
                .map_err(|e| e.to_string());
        }
        (None, None) => {}
    }
    match read_key_source(&args.private_key, &args.private_key_env)? {
        Some(t) => runpack::parse_private_key(&t)
            .map(|k| Some(k.verifying_key()))
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

// === hidden test helpers: stress and audit ===

fn ack_writer(path: &Option<PathBuf>) -> Option<std::fs::File> {
    path.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    })
}

fn ack(f: &mut Option<std::fs::File>, seq: i64) {
    if let Some(f) = f {
        let _ = f.write_all(format!("{seq}\n").as_bytes());
    }
}

fn stress_input(i: u64) -> AppendInput {
    AppendInput {
        tool_name: format!("tool.stress_{}", i % 7),
        verdict: if i.is_multiple_of(5) {
            "block"
        } else {
            "allow"
        }
        .into(),
        trace_id: format!("trace_{}_{i}", std::process::id()),
        reason_codes: vec!["stress".into()],
        ..AppendInput::default()
    }
}

fn run_stress(a: StressArgs, opts: &Options) -> u8 {
    let journal = PathBuf::from(&a.journal);
    if let Err(e) = session::start_session(&journal, &a.session_id, &a.run_id, opts) {
        eprintln!("stress start error: {e}");
        return e.category().exit_code();
    }
    let mut acks = ack_writer(&a.ack_log);
    let mut errors = 0u64;
    if a.tasks > 1 {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("stress runtime: {e}");
                return exit::INTERNAL;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<i64, String>>();
        rt.block_on(async {
            let mut cfg = JournalWriterConfig::new(&journal, &a.session_id, &a.run_id);
            cfg.options = opts.clone();
            let writer = match JournalWriter::open(cfg).await {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let per = a.count / a.tasks;
            let extra = a.count % a.tasks;
            let mut set = tokio::task::JoinSet::new();
            for t in 0..a.tasks {
                let w = writer.clone();
                let tx = tx.clone();
                let n = per + u64::from(t < extra);
                set.spawn(async move {
                    for i in 0..n {
                        let r = w.append(stress_input(t * 1_000_000 + i)).await;
                        let _ = tx.send(r.map(|a| a.sequence).map_err(|e| e.to_string()));
                    }
                });
            }
            drop(tx);
            while let Some(r) = rx.recv().await {
                match r {
                    Ok(seq) => ack(&mut acks, seq),
                    Err(e) => {
                        errors += 1;
                        eprintln!("stress append error: {e}");
                    }
                }
            }
            while set.join_next().await.is_some() {}
        });
    } else {
        let mut cps = 0u64;
        for i in 0..a.count {
            match session::append_event(&journal, &stress_input(i), opts) {
                Ok(o) => ack(&mut acks, o.value.sequence),
                Err(e) => {
                    errors += 1;
                    eprintln!("stress append error: {e}");
                }
            }
            let n = i + 1;
            if a.checkpoint_every > 0 && n % a.checkpoint_every == 0 {
                cps += 1;
                let out = a
                    .out_dir
                    .join(format!("cp_{}_{}.zip", std::process::id(), cps));
                let copts = CheckpointOptions {
                    base: opts.clone(),
                    ..CheckpointOptions::default()
                };
                if let Err(e) = session::checkpoint(&journal, &out, &copts)
                    && !e.to_string().contains("no new session events")
                {
                    errors += 1;
                    eprintln!("stress checkpoint error: {e}");
                }
            }
            if a.compact_every > 0
                && n % a.compact_every == 0
                && let Err(e) = session::compact(&journal, None, false, opts)
            {
                errors += 1;
                eprintln!("stress compact error: {e}");
            }
        }
    }
    if errors > 0 {
        eprintln!("stress: {errors} errors");
        return exit::INTERNAL;
    }
    exit::OK
}

fn run_audit(a: AuditArgs) -> u8 {
    let mut problems: Vec<String> = Vec::new();
    let journal = Path::new(&a.journal);
    let (model, pending) = match session::read_journal(journal) {
        Ok(v) => v,
        Err(e) => {
            println!("{{\"ok\":false,\"error\":{}}}", Value::from(e.to_string()));
            return exit::VERIFICATION_FAILED;
        }
    };
    if pending.is_some() {
        problems.push("journal tail not repaired".into());
    }
    // Coverage: checkpoint ranges then retained events must tile 1..=last without gaps.
    let mut next = 1i64;
    for c in &model.checkpoints {
        if c.sequence_start != next {
            problems.push(format!(
                "checkpoint {} starts at {} want {}",
                c.checkpoint_index, c.sequence_start, next
            ));
        }
        next = c.sequence_end + 1;
    }
    let mut covered_events = BTreeSet::new();
    for e in &model.events {
        covered_events.insert(e.sequence);
    }
    let last_cp_end = model.checkpoints.last().map_or(0, |c| c.sequence_end);
    for e in model.events.iter().filter(|e| e.sequence > last_cp_end) {
        if e.sequence != next {
            problems.push(format!("event sequence {} want {}", e.sequence, next));
        }
        next = e.sequence + 1;
    }
    let last = model.last_sequence();
    let covered = |s: i64| s >= 1 && s <= last;
    let mut acked = BTreeSet::new();
    let mut ack_count = 0u64;
    let mut dup = 0u64;
    for p in &a.ack_log {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        for line in text.lines() {
            let Ok(s) = line.trim().parse::<i64>() else {
                continue;
            };
            ack_count += 1;
            if !acked.insert(s) {
                dup += 1;
            }
        }
    }
    if dup > 0 {
        problems.push(format!("{dup} duplicate acknowledged sequences"));
    }
    let lost: Vec<i64> = acked.iter().copied().filter(|s| !covered(*s)).collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged sequences lost (first {})",
            lost.len(),
            lost[0]
        ));
    }
    if let Some(n) = a.expect
        && last != n
    {
        problems.push(format!("last_sequence {last} want {n}"));
    }
    let state_ok = session::journal::read_state_public(journal)
        .map(|s| {
            // A state whose recorded size differs is merely stale (readers rebuild it).
            s.journal_size_bytes as u64 != std::fs::metadata(journal).map_or(0, |m| m.len())
                || (s.last_sequence == last
                    && s.event_count == model.events.len() as i64
                    && s.checkpoint_count == model.checkpoints.len() as i64)
        })
        .unwrap_or(true);
    if !state_ok {
        problems.push("state index disagrees with journal".into());
    }
    let mut chain_checked = 0;
    if let Some(c) = &a.chain {
        match session::verify_chain(c, &ChainVerifyOptions::default()) {
            Ok(r) if r.ok() => chain_checked = r.checkpoints_checked,
            Ok(r) => problems.push(format!(
                "chain invalid: {:?} {:?}",
                r.linkage_errors, r.checkpoint_errors
            )),
            Err(e) => problems.push(format!("chain: {e}")),
        }
    }
    let mut m = Map::new();
    m.insert("ok".into(), problems.is_empty().into());
    m.insert("last_sequence".into(), last.into());
    m.insert("events_present".into(), (model.events.len() as u64).into());
    m.insert(
        "checkpoints".into(),
        (model.checkpoints.len() as u64).into(),
    );
    m.insert("acknowledged".into(), ack_count.into());
    m.insert("chain_checkpoints_checked".into(), chain_checked.into());
    m.insert("problems".into(), Value::from(problems.clone()));
    println!("{}", Value::Object(m));
    if problems.is_empty() {
        exit::OK
    } else {
        exit::VERIFICATION_FAILED
    }
}
