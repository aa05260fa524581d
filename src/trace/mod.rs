//! (placeholder: filled by the trace work)
