//! `gait doctor`: installation checks and `--production-readiness` (see [`crate::ops::doctor`]).
//!
//! Output: one sorted JSON line with `--json` (no error envelope for check failures, as in Go),
//! else `- <name>: <status> (<message>)` lines; `--summary` lists only non-pass checks.
//! Exit: 0, 2 when a production run fails, 7 when a check is non-fixable, 6 on usage errors.

use super::Ctx;
use crate::ops::doctor::{self, DoctorOptions, Status};
use crate::ops::env::ProcessEnv;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Working directory to check (default: the current directory).
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,
    /// Output directory; a relative path is joined to the workdir.
    #[arg(long, default_value = "./gait-out")]
    pub output_dir: PathBuf,
    /// Project config file (default: <workdir>/.gait/config.yaml, or $GAIT_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Key mode to check: dev|prod (default: gate.key_mode from the config, else dev).
    #[arg(long)]
    pub key_mode: Option<String>,
    /// Private key file (base64 Ed25519).
    #[arg(long)]
    pub private_key: Option<PathBuf>,
    /// Env var holding the private key (base64 Ed25519).
    #[arg(long)]
    pub private_key_env: Option<String>,
    /// Public (verify) key file.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Env var holding the public key.
    #[arg(long)]
    pub public_key_env: Option<String>,
    /// Check the production posture of the hardening contract.
    #[arg(long)]
    pub production_readiness: bool,
    /// Print only the checks that did not pass.
    #[arg(long)]
    pub summary: bool,
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
    /// Explain what doctor checks and exit.
    #[arg(long)]
    pub explain: bool,
}

const EXPLAIN: &str = "gait doctor checks that the working directory, output directory and temp \
directory are usable, that key sources are unambiguous, strict and loadable, and with \
--production-readiness that .gait/config.yaml holds the production posture of the hardening \
contract (oss-prod profile, prod keys, token auth, strict verdict statuses, no client artifact \
paths, bounded requests, retention TTLs) and that its policy, env vars, TLS files, upstreams \
and metrics listener are valid. A production failure exits 2.";

pub fn run(args: DoctorArgs, ctx: &Ctx) -> u8 {
    if args.explain {
        if args.json {
            let mut m = serde_json::Map::new();
            m.insert("ok".into(), true.into());
            m.insert("explain".into(), EXPLAIN.into());
            super::output::print_json(m, None, ctx);
        } else {
            println!("{EXPLAIN}");
        }
        return crate::exit::OK;
    }
    let opts = DoctorOptions {
        workdir: args.workdir,
        output_dir: args.output_dir,
        config: args.config,
        key_mode: args.key_mode,
        private_key: args.private_key,
        private_key_env: args.private_key_env,
        public_key: args.public_key,
        public_key_env: args.public_key_env,
        production_readiness: args.production_readiness,
        summary: args.summary,
    };
    let result = doctor::run(&opts, &ProcessEnv);
    let code = result.exit_code();
    if args.json {
        match serde_json::to_value(&result) {
            Ok(serde_json::Value::Object(map)) => super::output::print_json(map, None, ctx),
            _ => {
                return super::output::fail(
                    true,
                    "failed to encode output",
                    crate::exit::Category::Internal,
                    ctx,
                );
            }
        }
    } else {
        use std::fmt::Write as _;
        let mut out = String::new();
        writeln!(out, "{}", result.summary).ok();
        for c in &result.checks {
            if args.summary && c.status == Status::Pass {
                continue;
            }
            writeln!(out, "- {}: {} ({})", c.name, c.status.as_str(), c.message).ok();
            if c.status != Status::Pass
                && let Some(f) = &c.fix_command
            {
                writeln!(out, "  fix: {f}").ok();
            }
        }
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    }
    code
}
