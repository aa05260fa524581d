//! `gait mcp serve`: the tower stack, the MCP reverse proxy and the evaluate API.
//!
//! Work in progress: only [`config`] is in place.

pub mod config;

/// Run the server from the CLI (blocks until shutdown); returns the exit code.
pub fn run_cli(_cfg: config::ServeConfig, _correlation_id: &str) -> u8 {
    eprintln!("error: mcp serve is not implemented yet");
    crate::exit::INTERNAL
}
