//! Command-line interface: one module per command, no logic here beyond dispatch.
//!
//! Every command returns a gait exit code (see [`crate::exit`]). Usage errors exit 6, never
//! clap's default 2 (2 means "verification failed" in gait).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod config;
pub mod doctor;
pub mod gate_eval;
pub mod keys;
pub mod mcp_proxy;
pub mod mcp_serve;
pub mod output;
pub mod session;
pub mod telemetry;
pub mod trace;
pub mod version;

/// Per-invocation context handed to every command.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `correlation_id` of this invocation (sha256 of the raw args, gate.md §4.5).
    pub correlation_id: String,
}

#[derive(Debug, Parser)]
#[command(
    name = "gait",
    about = "MCP security sidecar: gate every tool call from a YAML policy",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the gait version.
    Version(version::VersionArgs),
    /// Policy gate commands.
    Gate {
        #[command(subcommand)]
        command: GateCommand,
    },
    /// MCP commands: serve (the proxy), proxy (evaluate one payload).
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
    /// Signed trace commands.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// Signing key commands.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run capture commands.
    Run {
        #[command(subcommand)]
        command: RunCommand,
    },
    /// Verification commands.
    Verify {
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// Check the installation and, with --production-readiness, the production posture.
    Doctor(doctor::DoctorArgs),
    /// Project configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Evaluate an intent against a policy.
    Eval(gate_eval::GateEvalArgs),
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Evaluate one tool-call payload against a policy (does not execute it).
    #[command(alias = "bridge")]
    Proxy(mcp_proxy::McpProxyArgs),
    /// Run the MCP reverse proxy and the evaluate API.
    Serve(Box<mcp_serve::McpServeArgs>),
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Verify a signed TraceRecord.
    Verify(trace::TraceVerifyArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write an Ed25519 key pair (0600).
    Init(keys::KeysInitArgs),
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Session journal commands.
    Session(session::SessionArgs),
}

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Verify a session checkpoint chain.
    #[command(name = "session-chain")]
    SessionChain(session::VerifyChainArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration with the source of each value.
    Show(config::ConfigShowArgs),
}

/// Parse `std::env::args` and run the command. The only caller is `main.rs`.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    ExitCode::from(run(&args))
}

/// Parse `args` (including argv[0]) and run; returns the gait exit code.
pub fn run(args: &[String]) -> u8 {
    let ctx = Ctx {
        correlation_id: crate::exit::correlation_id(args.get(1..).unwrap_or_default()),
    };
    let rest = args.get(1..).unwrap_or_default();
    // `mcp serve` records its own start/end through its background event writer.
    let serve =
        rest.first().is_some_and(|a| a == "mcp") && rest.get(1).is_some_and(|a| a == "serve");
    let sinks = if serve {
        telemetry::Sinks::default()
    } else {
        telemetry::Sinks::from_env(|k| std::env::var(k).ok())
    };
    telemetry::around(
        &sinks,
        rest,
        &ctx.correlation_id,
        || match Cli::try_parse_from(args) {
            Ok(cli) => dispatch(cli.command, &ctx),
            Err(err) => output::usage_error(err, args, &ctx),
        },
    )
}

fn dispatch(command: Command, ctx: &Ctx) -> u8 {
    match command {
        Command::Version(a) => version::run(a, ctx),
        Command::Gate {
            command: GateCommand::Eval(a),
        } => gate_eval::run(a, ctx),
        Command::Mcp { command } => match command {
            McpCommand::Proxy(a) => mcp_proxy::run(a, ctx),
            McpCommand::Serve(a) => mcp_serve::run(*a, ctx),
        },
        Command::Trace {
            command: TraceCommand::Verify(a),
        } => trace::run_verify(a, ctx),
        Command::Keys {
            command: KeysCommand::Init(a),
        } => keys::run_init(a, ctx),
        Command::Run {
            command: RunCommand::Session(a),
        } => session::run(a, ctx),
        Command::Verify {
            command: VerifyCommand::SessionChain(a),
        } => session::run_verify_chain(a, ctx),
        Command::Doctor(a) => doctor::run(a, ctx),
        Command::Config {
            command: ConfigCommand::Show(a),
        } => config::run_show(a, ctx),
    }
}
