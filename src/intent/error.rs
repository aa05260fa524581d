//! `IntentError`: every way decoding or normalising an intent can fail.
//!
//! Invariant: every message is one line (control characters in echoed input are escaped and
//! echoed input is truncated), and no message ever contains the value of an argument that was
//! rejected as a raw secret; only its path is named. The CLI exits 6 (HTTP 400 in serve) with it.

use thiserror::Error;

/// Longest piece of caller input echoed back inside a message.
const MAX_ECHO: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IntentError {
    /// A validation rule of gate.md §3.2 failed; the text matches the Go message.
    #[error("{0}")]
    Invalid(String),
    /// An argument (or `context.auth_context` entry) looks like a raw credential.
    #[error(
        "{path} must not contain raw credential material; use credential references or digests instead"
    )]
    RawCredential { path: String },
    /// The adapter payload could not be decoded.
    #[error("parse {adapter} tool call: {message}")]
    Decode {
        adapter: &'static str,
        message: String,
    },
    /// The adapter's arguments could not be decoded into an object.
    #[error("decode {adapter} {field}: {message}")]
    Arguments {
        adapter: &'static str,
        field: &'static str,
        message: String,
    },
    /// `--adapter` / request `adapter` names no known adapter.
    #[error("unsupported adapter: {0}")]
    UnsupportedAdapter(String),
    /// Serializing the normalized intent for a digest failed (not expected to happen).
    #[error("digest normalized intent: {0}")]
    Digest(String),
}

impl IntentError {
    /// A validation failure with a one-line message.
    pub fn invalid(message: impl AsRef<str>) -> Self {
        IntentError::Invalid(one_line(message.as_ref(), usize::MAX))
    }

    pub(crate) fn raw_credential(path: &str) -> Self {
        IntentError::RawCredential { path: echo(path) }
    }

    pub(crate) fn decode(adapter: &'static str, message: impl AsRef<str>) -> Self {
        IntentError::Decode {
            adapter,
            message: one_line(message.as_ref(), 512),
        }
    }

    pub(crate) fn arguments(
        adapter: &'static str,
        field: &'static str,
        message: impl AsRef<str>,
    ) -> Self {
        IntentError::Arguments {
            adapter,
            field,
            message: one_line(message.as_ref(), 512),
        }
    }
}

/// Caller input as it may appear inside an error message: escaped and truncated.
pub(crate) fn echo(input: &str) -> String {
    one_line(input, MAX_ECHO)
}

/// Escape control characters (so the message stays on one line) and cap the length.
pub(crate) fn one_line(input: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars.saturating_add(8)));
    for (count, ch) in input.chars().enumerate() {
        if count >= max_chars {
            out.push('…');
            break;
        }
        match ch {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_bounded() {
        let e = IntentError::invalid(format!("unsupported target kind: {}", echo("a\nb\r\u{7}")));
        assert_eq!(e.to_string(), "unsupported target kind: a\\nb\\r\\u{0007}");
        let long = "x".repeat(10_000);
        assert!(echo(&long).chars().count() <= MAX_ECHO + 1);
        let e = IntentError::raw_credential("args.token");
        assert_eq!(
            e.to_string(),
            "args.token must not contain raw credential material; use credential references or digests instead"
        );
    }
}
