//! (placeholder: filled by the policy work)
