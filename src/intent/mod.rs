//! (placeholder: filled by the intent work)
