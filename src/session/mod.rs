//! (placeholder: filled by the session work)
