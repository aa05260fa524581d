//! `gait mcp proxy` (alias `bridge`): evaluate one tool-call payload against a policy without
//! executing it, write the signed trace and the optional JSONL exports (gate.md §6.4).
//! Exit 0 allow/dry_run, 3 block, 4 require_approval, 6 bad input.
//!
//! Not implemented: `--context-envelope`, `--runpack-out`, `--pack-out`, and journaling of
//! blocked dispatches into the job's event log.

use super::Ctx;
use super::gate_eval::fail_gate;
use crate::exit::Category;
use crate::gate::{CallOptions, Engine, EngineConfig, GateError};
use crate::intent::adapters::Adapter;
use crate::policy::Policy;
use crate::trace::{KeyConfig, file};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Boxed so the `mcp` subcommand enum stays small (clippy `large_enum_variant`).
#[derive(Debug, Args)]
pub struct McpProxyArgs {
    #[command(flatten)]
    pub opts: Box<McpProxyOpts>,
}

#[derive(Debug, Args)]
pub struct McpProxyOpts {
    /// `[POLICY] [CALL]` when --policy / --call are not given.
    #[arg(value_name = "POLICY_AND_CALL", num_args = 0..=2)]
    pub positional: Vec<String>,
    /// Policy YAML file.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Tool-call payload file, or `-` for stdin.
    #[arg(long)]
    pub call: Option<String>,
    /// Payload shape: mcp, openai, anthropic, langchain, claude_code.
    #[arg(long, default_value = "mcp")]
    pub adapter: String,
    /// Evaluation profile: standard or oss-prod.
    #[arg(long, default_value = "standard")]
    pub profile: String,
    /// Trace output path (default `trace_<run_id>_<UTC timestamp>.json`).
    #[arg(long)]
    pub trace_out: Option<PathBuf>,
    /// Run id reported in the output and used in the default trace file name.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Append one JSONL decision line here.
    #[arg(long)]
    pub export_log_out: Option<PathBuf>,
    /// Append one OTel-style JSONL decision line here.
    #[arg(long)]
    pub export_otel_out: Option<PathBuf>,
    /// Kill-switch state file.
    #[arg(long)]
    pub kill_switch_state: Option<PathBuf>,
    /// Job-runtime root for the emergency-stop check.
    #[arg(long)]
    pub job_root: Option<PathBuf>,
    /// Signing key mode: dev (ephemeral key) or prod.
    #[arg(long, default_value = "dev")]
    pub key_mode: String,
    /// Private signing key file (prod mode).
    #[arg(long)]
    pub private_key: Option<PathBuf>,
    /// Environment variable holding the private signing key (prod mode).
    #[arg(long)]
    pub private_key_env: Option<String>,
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

fn invalid(json: bool, msg: &str, ctx: &Ctx) -> u8 {
    super::output::fail(json, msg, Category::InvalidInput, ctx)
}

/// Run ids made only of `[A-Za-z0-9_-]` go into the file name as given; others are normalised.
fn file_run_id(raw: &str) -> String {
    let t = raw.trim();
    if t.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        t.to_string()
    } else {
        crate::intent::normalize_run_id(t)
    }
}

pub fn run(args: McpProxyArgs, ctx: &Ctx) -> u8 {
    let args = *args.opts;
    let mut positional = args.positional.iter();
    let policy_path = match args.policy.clone() {
        Some(p) => p,
        None => match positional.next() {
            Some(p) => PathBuf::from(p),
            None => return invalid(args.json, "missing required --policy", ctx),
        },
    };
    let call_src = match args.call.clone() {
        Some(c) => c,
        None => match positional.next() {
            Some(c) => c.clone(),
            None => return invalid(args.json, "missing required --call", ctx),
        },
    };
    if positional.next().is_some() {
        return invalid(args.json, "unexpected positional arguments", ctx);
    }
    let adapter: Adapter = match args.adapter.parse() {
        Ok(a) => a,
        Err(e) => return fail_gate(args.json, &GateError::Intent(e), ctx),
    };
    let profile = match args.profile.parse::<crate::Profile>() {
        Ok(p) => p,
        Err(e) => return invalid(args.json, &e, ctx),
    };
    let mode = match args.key_mode.parse() {
        Ok(m) => m,
        Err(e) => return fail_gate(args.json, &GateError::Trace(e), ctx),
    };
    let policy = match Policy::load(&policy_path) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail_gate(args.json, &GateError::Policy(e), ctx),
    };
    let payload = if call_src.trim() == "-" {
        file::read_stdin_bounded(file::MAX_JSON_INPUT_BYTES)
    } else {
        file::read_bounded(Path::new(&call_src), file::MAX_JSON_INPUT_BYTES)
    };
    let payload = match payload {
        Ok(p) => p,
        Err(e) => return fail_gate(args.json, &GateError::Trace(e), ctx),
    };
    let cfg = EngineConfig {
        profile,
        keys: KeyConfig {
            mode,
            private_key_path: args.private_key.clone(),
            private_key_env: args.private_key_env.clone(),
        },
        kill_switch_state: args.kill_switch_state.clone(),
        job_root: args.job_root.clone(),
        ..EngineConfig::default()
    };
    let engine = match Engine::new(policy, cfg) {
        Ok(e) => e,
        Err(e) => return fail_gate(args.json, &e, ctx),
    };
    let opts = CallOptions {
        run_id: args.run_id.clone(),
        ..CallOptions::default()
    };
    let mut decision = match engine.evaluate_call_slice(adapter, &payload, &opts) {
        Ok(d) => d,
        Err(e) => return fail_gate(args.json, &e, ctx),
    };
    let trace_path = args.trace_out.clone().unwrap_or_else(|| {
        let ts = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9f");
        let run = file_run_id(args.run_id.as_deref().unwrap_or_default());
        PathBuf::from(format!("trace_{run}_{ts}.json"))
    });
    if let Err(e) = file::write_json_pretty(&trace_path, &decision.trace) {
        return fail_gate(args.json, &GateError::Trace(e), ctx);
    }
    decision.output.trace_path = trace_path.display().to_string();
    let export = decision.export();
    if let Some(path) = &args.export_log_out {
        if let Err(e) = export.append_log(path) {
            return fail_gate(args.json, &GateError::Trace(e), ctx);
        }
        decision.output.log_export = path.display().to_string();
    }
    if let Some(path) = &args.export_otel_out {
        if let Err(e) = export.append_otel(path) {
            return fail_gate(args.json, &GateError::Trace(e), ctx);
        }
        decision.output.otel_export = path.display().to_string();
    }
    let code = decision.output.exit_code();
    if args.json {
        match serde_json::to_value(&decision.output) {
            Ok(Value::Object(obj)) => super::output::print_json(obj, None, ctx),
            _ => {
                return super::output::fail(
                    true,
                    "failed to encode output",
                    Category::Internal,
                    ctx,
                );
            }
        }
    } else {
        let o = &decision.output;
        println!(
            "mcp proxy: tool={} verdict={} reason_codes={} trace={}",
            o.tool_name,
            o.verdict,
            o.reason_codes.join(","),
            o.trace_path
        );
        for w in &o.warnings {
            eprintln!("warning: {w}");
        }
    }
    code
}
