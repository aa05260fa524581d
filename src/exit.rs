//! Exit codes, error categories and the `--json` error envelope shared by every command.
//!
//! Codes follow the Go tool (gate.md §6.1): 0 ok, 1 internal, 2 verification failed,
//! 3 policy blocked, 4 approval required, 5 regress failed, 6 invalid input,
//! 7 missing dependency, 8 unsafe operation.

use serde_json::{Map, Value};

pub const OK: u8 = 0;
pub const INTERNAL: u8 = 1;
pub const VERIFICATION_FAILED: u8 = 2;
pub const POLICY_BLOCKED: u8 = 3;
pub const APPROVAL_REQUIRED: u8 = 4;
pub const REGRESS_FAILED: u8 = 5;
pub const INVALID_INPUT: u8 = 6;
pub const DEPENDENCY_MISSING: u8 = 7;
pub const UNSAFE_OPERATION: u8 = 8;

/// Error category of the envelope (ops.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    InvalidInput,
    VerificationFailed,
    PolicyBlocked,
    ApprovalRequired,
    DependencyMissing,
    UnsafeOperation,
    RegressFailed,
    StateContention,
    NetworkTransient,
    Io,
    Internal,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::InvalidInput => "invalid_input",
            Category::VerificationFailed => "verification_failed",
            Category::PolicyBlocked => "policy_blocked",
            Category::ApprovalRequired => "approval_required",
            Category::DependencyMissing => "dependency_missing",
            Category::UnsafeOperation => "unsafe_operation",
            Category::RegressFailed => "regress_failed",
            Category::StateContention => "state_contention",
            Category::NetworkTransient => "network_transient",
            Category::Io => "io_failure",
            Category::Internal => "internal_failure",
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Category::InvalidInput => INVALID_INPUT,
            Category::VerificationFailed => VERIFICATION_FAILED,
            Category::PolicyBlocked => POLICY_BLOCKED,
            Category::ApprovalRequired => APPROVAL_REQUIRED,
            Category::DependencyMissing => DEPENDENCY_MISSING,
            Category::UnsafeOperation => UNSAFE_OPERATION,
            Category::RegressFailed => REGRESS_FAILED,
            Category::StateContention
            | Category::NetworkTransient
            | Category::Io
            | Category::Internal => INTERNAL,
        }
    }

    /// `error_code` of the envelope.
    pub fn error_code(self) -> &'static str {
        match self {
            Category::InvalidInput => "invalid_input",
            Category::VerificationFailed => "verification_failed",
            Category::PolicyBlocked => "policy_blocked",
            Category::ApprovalRequired => "approval_required",
            Category::DependencyMissing => "dependency_missing",
            Category::UnsafeOperation => "unsafe_operation",
            Category::RegressFailed => "regress_failed",
            _ => "internal_failure",
        }
    }

    pub fn retryable(self) -> bool {
        matches!(self, Category::StateContention | Category::NetworkTransient)
    }

    pub fn hint(self) -> &'static str {
        match self.exit_code() {
            INVALID_INPUT => "check command usage and input schema",
            VERIFICATION_FAILED => "re-run verify after checking artifact integrity",
            POLICY_BLOCKED => "inspect reason_codes and adjust policy or intent",
            APPROVAL_REQUIRED => "provide a valid approval token and retry",
            DEPENDENCY_MISSING => "install or configure the missing dependency and retry",
            _ => "retry after checking local environment and logs",
        }
    }
}

/// CLI `correlation_id`: first 12 bytes hex of sha256(args joined by `\x1f`); zeros for no args.
pub fn correlation_id(args: &[String]) -> String {
    if args.is_empty() {
        return "0".repeat(24);
    }
    let joined = args.join("\u{1f}");
    crate::canon::sha256_hex(joined.as_bytes())[..24].to_string()
}

/// Fill in the envelope keys (gate.md §6.2) on a JSON output object.
///
/// Adds `correlation_id` when absent; when `error` is non-empty adds `error_code`,
/// `error_category`, `retryable` and `hint`. Keys serialize sorted (BTreeMap-backed `Map`).
pub fn envelope(
    mut obj: Map<String, Value>,
    category: Option<Category>,
    correlation: &str,
) -> Value {
    obj.entry("correlation_id")
        .or_insert_with(|| Value::String(correlation.to_string()));
    let has_error = matches!(obj.get("error"), Some(Value::String(s)) if !s.is_empty());
    if has_error {
        let cat = category.unwrap_or(Category::InvalidInput);
        obj.insert("error_code".into(), cat.error_code().into());
        obj.insert("error_category".into(), cat.as_str().into());
        obj.insert("retryable".into(), cat.retryable().into());
        obj.insert("hint".into(), cat.hint().into());
    }
    Value::Object(obj)
}

/// The one-line error envelope: `{"correlation_id","error","error_category","error_code","hint","ok":false,"retryable"}`.
pub fn error_envelope(message: &str, category: Category, correlation: &str) -> Value {
    let mut obj = Map::new();
    obj.insert("ok".into(), false.into());
    obj.insert("error".into(), message.into());
    envelope(obj, Some(category), correlation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_invalid_envelope() {
        let v = error_envelope(
            "missing required --policy",
            Category::InvalidInput,
            "cid-golden-invalid",
        );
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"correlation_id":"cid-golden-invalid","error":"missing required --policy","error_category":"invalid_input","error_code":"invalid_input","hint":"check command usage and input schema","ok":false,"retryable":false}"#
        );
    }

    #[test]
    fn contention_is_retryable_exit_1() {
        assert!(Category::StateContention.retryable());
        assert_eq!(Category::StateContention.exit_code(), INTERNAL);
        assert_eq!(correlation_id(&[]), "000000000000000000000000");
    }
}
