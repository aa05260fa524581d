//! The JSONL decision exporters `--export-log-out` and `--export-otel-out` (gate.md §7.1).
//!
//! Invariant: each decision is one line with exactly Go's key set and order: the log line in
//! struct order with its omitempty fields, the OTel-style line with sorted keys and every
//! attribute always present.

use super::TraceError;
use crate::intent::GoTime;
use serde::Serialize;
use std::path::Path;

/// The decision facts both exporters need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionExport {
    /// The decision's `created_at` (the intent's; 1980-01-01 when unset).
    pub created_at: GoTime,
    pub run_id: String,
    pub session_id: String,
    pub trace_id: String,
    pub trace_path: String,
    pub tool_name: String,
    pub verdict: String,
    pub reason_codes: Vec<String>,
    pub policy_digest: String,
    pub intent_digest: String,
    pub decision_latency_ms: i64,
    pub delegation_ref: String,
    pub delegation_depth: i64,
}

use crate::intent::types::is_zero;

#[derive(Serialize)]
struct LogLine<'a> {
    created_at: &'a GoTime,
    producer_version: &'a str,
    run_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    session_id: &'a str,
    trace_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    trace_path: &'a str,
    tool_name: &'a str,
    verdict: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    reason_codes: &'a [String],
    policy_digest: &'a str,
    intent_digest: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    decision_latency_ms: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    delegation_ref: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    delegation_depth: i64,
}

/// Attribute keys in sorted order (Go marshals a map).
#[derive(Serialize)]
struct OtelAttributes<'a> {
    #[serde(rename = "gait.decision_latency_ms")]
    decision_latency_ms: i64,
    #[serde(rename = "gait.delegation_depth")]
    delegation_depth: i64,
    #[serde(rename = "gait.delegation_ref")]
    delegation_ref: &'a str,
    #[serde(rename = "gait.intent_digest")]
    intent_digest: &'a str,
    #[serde(rename = "gait.policy_digest")]
    policy_digest: &'a str,
    #[serde(rename = "gait.reason_codes")]
    reason_codes: &'a [String],
    #[serde(rename = "gait.run_id")]
    run_id: &'a str,
    #[serde(rename = "gait.session_id")]
    session_id: &'a str,
    #[serde(rename = "gait.tool_name")]
    tool_name: &'a str,
    #[serde(rename = "gait.trace_path")]
    trace_path: &'a str,
    #[serde(rename = "gait.verdict")]
    verdict: &'a str,
}

#[derive(Serialize)]
struct OtelLine<'a> {
    attributes: OtelAttributes<'a>,
    body: &'static str,
    severity_text: &'static str,
    time_unix_nano: i64,
    trace_id: &'a str,
}

impl DecisionExport {
    /// The `--export-log-out` line (no trailing newline).
    pub fn log_line(&self) -> String {
        let line = LogLine {
            created_at: &self.created_at,
            producer_version: crate::VERSION,
            run_id: &self.run_id,
            session_id: &self.session_id,
            trace_id: &self.trace_id,
            trace_path: &self.trace_path,
            tool_name: &self.tool_name,
            verdict: &self.verdict,
            reason_codes: &self.reason_codes,
            policy_digest: &self.policy_digest,
            intent_digest: &self.intent_digest,
            decision_latency_ms: self.decision_latency_ms,
            delegation_ref: &self.delegation_ref,
            delegation_depth: self.delegation_depth,
        };
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// The `--export-otel-out` line (no trailing newline).
    pub fn otel_line(&self) -> String {
        let nanos = self
            .created_at
            .get()
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(0);
        let line = OtelLine {
            attributes: OtelAttributes {
                decision_latency_ms: self.decision_latency_ms,
                delegation_depth: self.delegation_depth,
                delegation_ref: &self.delegation_ref,
                intent_digest: &self.intent_digest,
                policy_digest: &self.policy_digest,
                reason_codes: &self.reason_codes,
                run_id: &self.run_id,
                session_id: &self.session_id,
                tool_name: &self.tool_name,
                trace_path: &self.trace_path,
                verdict: &self.verdict,
            },
            body: "gait.mcp.proxy.decision",
            severity_text: "INFO",
            time_unix_nano: nanos,
            trace_id: &self.trace_id,
        };
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Append the log line to `path` (locked, 0600).
    pub fn append_log(&self, path: &Path) -> Result<(), TraceError> {
        super::file::append_line_locked(path, self.log_line().as_bytes())
    }

    /// Append the OTel line to `path` (locked, 0600).
    pub fn append_otel(&self, path: &Path) -> Result<(), TraceError> {
        super::file::append_line_locked(path, self.otel_line().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DecisionExport {
        DecisionExport {
            created_at: GoTime::epoch_1980(),
            run_id: "run_x".into(),
            trace_id: "t".into(),
            tool_name: "tool.search".into(),
            verdict: "allow".into(),
            policy_digest: "p".into(),
            intent_digest: "i".into(),
            ..Default::default()
        }
    }

    #[test]
    fn log_line_keys_in_struct_order_with_omitempty() {
        let line = sample().log_line();
        assert_eq!(
            line,
            format!(
                r#"{{"created_at":"1980-01-01T00:00:00Z","producer_version":"{}","run_id":"run_x","trace_id":"t","tool_name":"tool.search","verdict":"allow","policy_digest":"p","intent_digest":"i"}}"#,
                crate::VERSION
            )
        );
    }

    #[test]
    fn otel_line_has_every_attribute_and_1980_nanos() {
        let line = sample().otel_line();
        assert_eq!(
            line,
            r#"{"attributes":{"gait.decision_latency_ms":0,"gait.delegation_depth":0,"gait.delegation_ref":"","gait.intent_digest":"i","gait.policy_digest":"p","gait.reason_codes":[],"gait.run_id":"run_x","gait.session_id":"","gait.tool_name":"tool.search","gait.trace_path":"","gait.verdict":"allow"},"body":"gait.mcp.proxy.decision","severity_text":"INFO","time_unix_nano":315532800000000000,"trace_id":"t"}"#
        );
    }
}
