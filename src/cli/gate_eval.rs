//! `gait gate eval`: evaluate one IntentRequest against a policy, write the signed trace, print
//! the decision (gate.md §6.3). Exit 0 allow/dry_run, 3 block, 4 require_approval, 6 bad input.
//!
//! Defaults come from the `gate:` section of `.gait/config.yaml` (or `--config`, `GAIT_CONFIG`;
//! `--no-config` skips it); flags override. `rate_limit` / `destructive_budget` are counted in
//! `--rate-limit-state` (default `.gait-out/gate_rate_limits.json`); `--simulate` enforces
//! nothing and exits 0. Approval/delegation tokens, credential brokers, context envelopes and
//! `--explain` are not implemented; requirements they would satisfy stay unmet (see
//! [`crate::gate::Engine::evaluate_intent`]).

use super::Ctx;
use crate::exit::Category;
use crate::gate::{Engine, EngineConfig, GateError, IntentOptions};
use crate::intent::IntentRequest;
use crate::policy::Policy;
use crate::trace::{KeyConfig, file};
use clap::Args;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct GateEvalArgs {
    /// Policy YAML file.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// IntentRequest JSON file.
    #[arg(long)]
    pub intent: Option<PathBuf>,
    /// Evaluation profile: standard (default) or oss-prod.
    #[arg(long)]
    pub profile: Option<String>,
    /// Signing key mode: dev (ephemeral key, default) or prod.
    #[arg(long)]
    pub key_mode: Option<String>,
    /// Private signing key file (prod mode).
    #[arg(long)]
    pub private_key: Option<PathBuf>,
    /// Environment variable holding the private signing key (prod mode).
    #[arg(long)]
    pub private_key_env: Option<String>,
    /// Trace output path (default `trace_<trace_id>.json`).
    #[arg(long)]
    pub trace_out: Option<PathBuf>,
    /// Evaluation time (RFC 3339) for freeze windows, expiries and the kill switch.
    #[arg(long)]
    pub evaluation_time: Option<String>,
    /// Kill-switch state file.
    #[arg(long)]
    pub kill_switch_state: Option<PathBuf>,
    /// Rate-limit / destructive-budget counter file (default `.gait-out/gate_rate_limits.json`).
    #[arg(long)]
    pub rate_limit_state: Option<PathBuf>,
    /// Report what the policy would do without enforcing it (exit 0; refused in oss-prod).
    #[arg(long)]
    pub simulate: bool,
    /// Config file (default `.gait/config.yaml`; `GAIT_CONFIG` also names one).
    #[arg(long, conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Ignore the config file.
    #[arg(long)]
    pub no_config: bool,
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

/// Print a gate error (with the legacy-policy `migration` array) and return its exit code.
pub(crate) fn fail_gate(json: bool, err: &GateError, ctx: &Ctx) -> u8 {
    let category = err.category();
    if !json {
        eprintln!("error: {err}");
        return category.exit_code();
    }
    let mut obj = Map::new();
    obj.insert("ok".into(), Value::Bool(false));
    obj.insert("error".into(), err.to_string().into());
    if let Some(m) = err.migration() {
        obj.insert(
            "migration".into(),
            Value::Array(m.iter().map(|s| Value::String(s.clone())).collect()),
        );
    }
    super::output::print_json(obj, Some(category), ctx);
    category.exit_code()
}

fn invalid(json: bool, msg: &str, ctx: &Ctx) -> u8 {
    super::output::fail(json, msg, Category::InvalidInput, ctx)
}

/// Fill unset flags from the config file's `gate:` section.
fn apply_config(args: &mut GateEvalArgs) -> Result<(), String> {
    use crate::ops::config::{self, ConfigLocation};
    let env = crate::ops::env::ProcessEnv;
    let location = if args.no_config {
        ConfigLocation::None
    } else {
        ConfigLocation::resolve(args.config.as_deref(), &env, std::path::Path::new("."))
    };
    let gate = config::load(&location, &env, &[])
        .map_err(|e| e.to_string())?
        .config
        .gate;
    let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    args.policy = args.policy.take().or_else(|| path(&gate.policy));
    args.profile = args
        .profile
        .take()
        .or_else(|| Some(gate.profile.as_str().to_string()));
    args.key_mode = args
        .key_mode
        .take()
        .or_else(|| Some(gate.key_mode.as_str().to_string()));
    args.private_key = args.private_key.take().or_else(|| path(&gate.private_key));
    args.private_key_env = args
        .private_key_env
        .take()
        .or_else(|| text(&gate.private_key_env));
    args.kill_switch_state = args
        .kill_switch_state
        .take()
        .or_else(|| path(&gate.kill_switch_state));
    args.rate_limit_state = args
        .rate_limit_state
        .take()
        .or_else(|| path(&gate.rate_limit_state));
    args.trace_out = args.trace_out.take().or_else(|| path(&gate.trace_path));
    Ok(())
}

pub fn run(mut args: GateEvalArgs, ctx: &Ctx) -> u8 {
    if let Err(e) = apply_config(&mut args) {
        return invalid(args.json, &e, ctx);
    }
    let (Some(policy_path), Some(intent_path)) = (&args.policy, &args.intent) else {
        return invalid(args.json, "both --policy and --intent are required", ctx);
    };
    let profile = match args
        .profile
        .as_deref()
        .unwrap_or("standard")
        .parse::<crate::Profile>()
    {
        Ok(p) => p,
        Err(e) => return invalid(args.json, &e, ctx),
    };
    if args.simulate && profile == crate::Profile::OssProd {
        return invalid(args.json, "oss-prod profile does not allow --simulate", ctx);
    }
    let mode = match args.key_mode.as_deref().unwrap_or("dev").parse() {
        Ok(m) => m,
        Err(e) => return fail_gate(args.json, &GateError::Trace(e), ctx),
    };
    let now = match &args.evaluation_time {
        None => None,
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t.trim()) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                return invalid(args.json, &format!("invalid --evaluation-time: {e}"), ctx);
            }
        },
    };
    let policy = match Policy::load(policy_path) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail_gate(args.json, &GateError::Policy(e), ctx),
    };
    let request: IntentRequest = match file::read_bounded(intent_path, file::MAX_JSON_INPUT_BYTES)
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| crate::trace::TraceError::Invalid(format!("parse intent: {e}")))
        }) {
        Ok(r) => r,
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
        ..EngineConfig::default()
    };
    let engine = match Engine::new(policy, cfg) {
        Ok(e) => e,
        Err(e) => return fail_gate(args.json, &e, ctx),
    };
    let opts = IntentOptions {
        now,
        correlation_id: ctx.correlation_id.clone(),
        sign: true,
        rate_limit_state: Some(
            args.rate_limit_state
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::gate::limits::DEFAULT_STATE_PATH)),
        ),
        simulate: args.simulate,
    };
    let mut decision = match engine.evaluate_intent(&request, &opts) {
        Ok(d) => d,
        Err(e) => return fail_gate(args.json, &e, ctx),
    };
    let trace_path = args
        .trace_out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("trace_{}.json", decision.trace.trace_id)));
    if let Err(e) = file::write_json_pretty(&trace_path, &decision.trace) {
        return fail_gate(args.json, &GateError::Trace(e), ctx);
    }
    decision.output.trace_path = trace_path.display().to_string();
    let code = decision.output.verdict.exit_code();
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
            "gate eval: verdict={} reason_codes={} trace={}",
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
