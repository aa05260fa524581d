//! Trace segments (`mcp serve --trace-sink segments`): signed TraceRecords, one compact JSON
//! object per line, appended by the trace writer. Each line is a complete TraceRecord whose
//! signature verifies exactly like a trace file's (the signature covers the JCS form, so the
//! layout does not matter).
//!
//! A segment only ever holds whole lines: the writer appends each batch with one `write` and
//! cuts a failed append back to the previous line end. The one exception is a process killed
//! in the middle of that `write`: the last line may then lack its newline. [`verify_segment`]
//! reports such a torn tail (its byte count) without failing; a damaged complete line fails.

use super::{TraceError, verify_value};
use ed25519_dalek::VerifyingKey;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Longest accepted line (one record).
pub const MAX_LINE_BYTES: u64 = 4 * 1024 * 1024;

/// First failing line of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFailure {
    /// 1-based line number.
    pub line: u64,
    pub trace_id: String,
    pub error: String,
}

/// The outcome of verifying a whole segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentReport {
    /// Complete lines.
    pub records: u64,
    /// Lines whose signature verified.
    pub verified: u64,
    /// Lines that did not parse or verify.
    pub failed: u64,
    pub first_failure: Option<LineFailure>,
    /// Bytes after the last newline (a write cut short by a crash); not counted as records.
    pub torn_tail_bytes: u64,
    /// Verdict counts of the verified lines, sorted by verdict.
    pub verdicts: std::collections::BTreeMap<String, u64>,
}

impl SegmentReport {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

/// Whether `path` names a trace segment (`*.jsonl`).
pub fn is_segment(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
}

/// Verify every line of the segment at `path` with `key`, streaming (the segment is never held
/// in memory whole). An unreadable file is an input error; bad lines are counted, not errors.
pub fn verify_segment(path: &Path, key: &VerifyingKey) -> Result<SegmentReport, TraceError> {
    let input = |message: String| TraceError::Input {
        path: path.display().to_string(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| input(e.to_string()))?;
    if f.metadata().map_err(|e| input(e.to_string()))?.is_dir() {
        return Err(input("is a directory".into()));
    }
    verify_lines(BufReader::with_capacity(256 * 1024, f), key).map_err(|e| input(e.to_string()))
}

/// [`verify_segment`] over any reader.
pub fn verify_lines(mut r: impl BufRead, key: &VerifyingKey) -> std::io::Result<SegmentReport> {
    let mut rep = SegmentReport::default();
    let mut line = Vec::with_capacity(8 * 1024);
    let mut n = 0u64;
    loop {
        line.clear();
        let read = (&mut r)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            if read as u64 > MAX_LINE_BYTES {
                n += 1;
                rep.records += 1;
                fail(
                    &mut rep,
                    n,
                    String::new(),
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                );
                // skip the rest of the overlong line
                let mut sink = Vec::new();
                r.read_until(b'\n', &mut sink)?;
                continue;
            }
            rep.torn_tail_bytes = read as u64;
            break;
        }
        n += 1;
        rep.records += 1;
        let value: serde_json::Value = match serde_json::from_slice(&line) {
            Ok(v) => v,
            Err(e) => {
                fail(&mut rep, n, String::new(), format!("parse: {e}"));
                continue;
            }
        };
        let trace_id = value
            .get("trace_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        match verify_value(&value, key) {
            Ok(()) => {
                rep.verified += 1;
                let verdict = value
                    .get("verdict")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                *rep.verdicts.entry(verdict.to_string()).or_default() += 1;
            }
            Err(e) => fail(&mut rep, n, trace_id, e.to_string()),
        }
    }
    Ok(rep)
}

fn fail(rep: &mut SegmentReport, line: u64, trace_id: String, error: String) {
    rep.failed += 1;
    rep.first_failure.get_or_insert(LineFailure {
        line,
        trace_id,
        error,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Signer;

    fn signed_line(s: &Signer, verdict: &str, i: usize) -> Vec<u8> {
        let mut v = serde_json::json!({
            "schema_id": "gait.gate.trace", "schema_version": "1.0.0",
            "trace_id": format!("t{i}"), "verdict": verdict, "tool_name": "tool.read",
            "created_at": "2026-11-27T00:00:00Z",
        });
        let digest = crate::canon::sha256(&crate::canon::to_vec(&v));
        v["signature"] = serde_json::to_value(s.sign_digest(&digest)).unwrap();
        let mut b = serde_json::to_vec(&v).unwrap();
        b.push(b'\n');
        b
    }

    #[test]
    fn counts_records_verdicts_and_a_torn_tail() {
        let s = Signer::generate();
        let mut seg = Vec::new();
        for i in 0..5 {
            seg.extend(signed_line(
                &s,
                if i % 2 == 0 { "allow" } else { "block" },
                i,
            ));
        }
        let good = verify_lines(&seg[..], &s.verifying_key()).unwrap();
        assert_eq!(
            (
                good.records,
                good.verified,
                good.failed,
                good.torn_tail_bytes
            ),
            (5, 5, 0, 0)
        );
        assert_eq!(good.verdicts.get("allow"), Some(&3));
        assert_eq!(good.verdicts.get("block"), Some(&2));
        assert!(good.ok());
        // a crash mid-write: the last line has no newline; the complete ones still verify
        let torn = signed_line(&s, "allow", 9);
        seg.extend_from_slice(&torn[..torn.len() / 2]);
        let rep = verify_lines(&seg[..], &s.verifying_key()).unwrap();
        assert_eq!((rep.records, rep.verified, rep.failed), (5, 5, 0));
        assert_eq!(rep.torn_tail_bytes, (torn.len() / 2) as u64);
        assert!(rep.ok());
    }

    #[test]
    fn a_tampered_or_foreign_line_fails_and_is_located() {
        let s = Signer::generate();
        let mut seg = Vec::new();
        seg.extend(signed_line(&s, "block", 0));
        let tampered = String::from_utf8(signed_line(&s, "block", 1))
            .unwrap()
            .replace("\"verdict\":\"block\"", "\"verdict\":\"allow\"");
        seg.extend(tampered.as_bytes());
        seg.extend(b"not json\n");
        seg.extend(signed_line(&Signer::generate(), "allow", 3));
        let rep = verify_lines(&seg[..], &s.verifying_key()).unwrap();
        assert_eq!((rep.records, rep.verified, rep.failed), (4, 1, 3));
        let first = rep.first_failure.clone().unwrap();
        assert_eq!((first.line, first.trace_id.as_str()), (2, "t1"));
        assert!(!rep.ok());
    }

    #[test]
    fn unreadable_paths_are_input_errors() {
        let d = tempfile::tempdir().unwrap();
        let key = Signer::generate().verifying_key();
        assert!(matches!(
            verify_segment(&d.path().join("none.jsonl"), &key),
            Err(TraceError::Input { .. })
        ));
        assert!(matches!(
            verify_segment(d.path(), &key),
            Err(TraceError::Input { .. })
        ));
        assert!(is_segment(Path::new("a/trace_seg_x.jsonl")));
        assert!(!is_segment(Path::new("a/trace_x.json")));
    }
}
