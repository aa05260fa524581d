//! gait: an MCP security sidecar.
//!
//! gait sits on the execution boundary in front of MCP servers and decides for every
//! `tools/call` whether it may run (`allow`, `block`, `require_approval`, `dry_run`) from a
//! YAML policy, records a signed trace of each decision, keeps crash-safe session journals,
//! prunes old artifacts and exports metrics.
//!
//! # Layout
//! - [`canon`]: RFC 8785 canonical JSON and sha256 digests. No I/O.
//! - [`verdict`], [`exit`]: verdicts, exit codes and the CLI JSON error envelope.
//! - [`intent`]: `IntentRequest`, its normalisation, and the payload adapters. No I/O.
//! - [`policy`]: policy YAML loading, validation, compilation and evaluation. No I/O past loading.
//! - [`gate`]: the decision pipeline shared by the CLI, the evaluate API and the proxy.
//! - [`trace`]: TraceRecord, Ed25519 signing, key files, JSONL exporters.
//! - [`session`]: crash-safe session journals, locks, checkpoints, chains.
//! - [`server`]: `mcp serve`: the tower stack, the MCP reverse proxy and the evaluate API.
//! - [`ops`]: project config, doctor, retention, telemetry, rate limits.
//! - [`cli`]: one module per command; `main.rs` only calls [`cli::main`].

pub mod canon;
pub mod cli;
pub mod exit;
pub mod gate;
pub mod intent;
pub mod ops;
pub mod policy;
pub mod server;
pub mod session;
pub mod trace;
pub mod verdict;

pub use verdict::{Profile, Verdict};

/// Version string reported by `gait version` and written as `producer_version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
