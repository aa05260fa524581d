//! Structured logs via `tracing-subscriber`: human-readable or JSON lines on stderr.
//!
//! Invariant (a rule for every caller): never log tokens, keys, Authorization headers or tool
//! arguments — log identities, tool names, verdicts and digests instead.

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid log level {0:?}: {1}")]
    Level(String, String),
    #[error("a global logger is already installed")]
    AlreadySet,
}

/// Install the global subscriber. `level` is an `EnvFilter` directive (`info`,
/// `gait=debug,hyper=warn`); `RUST_LOG` is not consulted so config stays the one source.
pub fn init(json: bool, level: &str) -> Result<(), LogError> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| LogError::Level(level.to_string(), e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let res = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    res.map_err(|_| LogError::AlreadySet)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_level_is_rejected() {
        assert!(matches!(
            super::init(true, "gait=nope=3"),
            Err(super::LogError::Level(..))
        ));
    }
}
