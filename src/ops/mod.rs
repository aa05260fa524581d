//! Operations: project config, `doctor`, retention, telemetry (metrics and event logs),
//! rate limits and logging.
//!
//! Invariant: nothing here is on the request path except [`ratelimit::RateLimiter::check`] and
//! the non-blocking telemetry handles; everything that does I/O runs in background tasks or in
//! CLI commands.

pub mod config;
pub mod doctor;
pub mod duration;
pub mod env;
pub mod logging;
pub mod ratelimit;
pub mod retention;
pub mod runtime;
pub mod telemetry;
