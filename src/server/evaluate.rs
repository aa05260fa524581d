//! The evaluate API (`POST /v1/evaluate`, `/v1/evaluate/sse`, `/v1/evaluate/stream`):
//! request parsing, client artifact-path confinement, and response rendering.
//!
//! Invariant: client-named artifact paths are refused unless `--allow-client-artifact-paths`,
//! and even then must resolve (after following every existing symlink) inside the configured
//! directory for their kind; `..` components are always refused.

use super::error::{ResBody, full};
use super::gate::EvalOutcome;
use super::route::EvalFormat;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Component, Path, PathBuf};

/// The request body (unknown top-level fields are rejected, like the Go server).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRequest {
    pub adapter: Option<String>,
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub session_journal: Option<String>,
    pub checkpoint_interval: Option<i64>,
    pub trace_path: Option<String>,
    pub runpack_out: Option<String>,
    pub emit_runpack: Option<bool>,
    pub pack_out: Option<String>,
    pub emit_pack: Option<bool>,
    pub call: Option<Value>,
}

impl EvalRequest {
    /// Parse exactly one JSON object.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let req = EvalRequest::deserialize(&mut de).map_err(|e| format!("decode request: {e}"))?;
        de.end()
            .map_err(|_| "request body must contain a single JSON object".to_string())?;
        let empty = match &req.call {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(_) => false,
        };
        if empty {
            return Err("request.call is required".into());
        }
        Ok(req)
    }

    /// The session to journal the decision in: `session_id`, else the call's
    /// `context.session_id` (sessions.md §7).
    pub fn session(&self) -> Option<String> {
        let from_call = || {
            self.call
                .as_ref()?
                .get("context")?
                .get("session_id")?
                .as_str()
                .map(str::to_string)
        };
        self.session_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| from_call().filter(|s| !s.trim().is_empty()))
    }

    fn envelope_path(&self) -> Option<&str> {
        self.call
            .as_ref()?
            .get("context")?
            .get("context_envelope_path")?
            .as_str()
    }
}

/// Where client-named artifacts may go.
#[derive(Debug, Clone, Default)]
pub struct ArtifactPolicy {
    pub allow_client_paths: bool,
    pub trace_dir: PathBuf,
    pub runpack_dir: Option<PathBuf>,
    pub pack_dir: Option<PathBuf>,
    pub session_dir: PathBuf,
    /// Directory client context envelopes may be read from (the `--context-envelope` dir).
    pub envelope_dir: Option<PathBuf>,
}

/// Result of the artifact checks.
#[derive(Debug, Clone, Default)]
pub struct CheckedArtifacts {
    pub trace_path: Option<PathBuf>,
    /// Client-chosen (and confined) session journal.
    pub session_journal: Option<PathBuf>,
    pub warnings: Vec<String>,
}

impl ArtifactPolicy {
    /// Apply the artifact-path rules to a parsed request.
    pub async fn check(&self, req: &EvalRequest) -> Result<CheckedArtifacts, String> {
        let named: [(&str, Option<&str>, Option<&Path>); 5] = [
            (
                "trace_path",
                req.trace_path.as_deref(),
                Some(&self.trace_dir),
            ),
            (
                "runpack_out",
                req.runpack_out.as_deref(),
                self.runpack_dir.as_deref(),
            ),
            (
                "pack_out",
                req.pack_out.as_deref(),
                self.pack_dir.as_deref(),
            ),
            (
                "session_journal",
                req.session_journal.as_deref(),
                Some(&self.session_dir),
            ),
            (
                "call.context.context_envelope_path",
                req.envelope_path(),
                self.envelope_dir.as_deref(),
            ),
        ];
        let mut out = CheckedArtifacts::default();
        for (field, value, dir) in named {
            let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            if !self.allow_client_paths {
                return Err(format!(
                    "request.{field} is not allowed by server configuration"
                ));
            }
            let Some(dir) = dir else {
                return Err(format!(
                    "request.{field} has no configured directory to confine it to"
                ));
            };
            let confined = confine(dir, value)
                .await
                .map_err(|e| format!("request.{field}: {e}"))?;
            if field == "trace_path" {
                out.trace_path = Some(confined);
            } else if field == "session_journal" {
                out.session_journal = Some(confined);
            } else {
                out.warnings.push(format!(
                    "request.{field} accepted but not acted on by this server build"
                ));
            }
        }
        if req.emit_pack == Some(true) && self.pack_dir.is_none() {
            return Err("request.emit_pack requires --pack-dir".into());
        }
        Ok(out)
    }
}

/// Resolve `value` inside `dir`: relative paths are joined to `dir`; absolute paths must
/// already be inside it; `..` is refused; the deepest existing ancestor is canonicalized so a
/// symlink cannot lead out.
pub async fn confine(dir: &Path, value: &str) -> Result<PathBuf, String> {
    let p = Path::new(value.trim());
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("path must not contain '..'".into());
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    let base = tokio::fs::canonicalize(dir)
        .await
        .map_err(|e| format!("resolve {}: {e}", dir.display()))?;
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    // Walk up to the deepest existing ancestor, canonicalize it, re-append the rest.
    let mut existing = joined.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match tokio::fs::symlink_metadata(&existing).await {
            Ok(_) => break,
            Err(_) => {
                let Some(name) = existing.file_name() else {
                    return Err("path escapes the configured directory".into());
                };
                rest.push(name.to_os_string());
                if !existing.pop() {
                    return Err("path escapes the configured directory".into());
                }
            }
        }
    }
    let mut resolved = tokio::fs::canonicalize(&existing)
        .await
        .map_err(|e| format!("resolve path: {e}"))?;
    for r in rest.iter().rev() {
        resolved.push(r);
    }
    if !resolved.starts_with(&base) || resolved == base {
        return Err("path escapes the configured directory".into());
    }
    Ok(resolved)
}

/// The response object: decision output + `trace_path`, `warnings` and `exit_code`.
pub fn response_object(o: &EvalOutcome, trace_path: Option<&Path>) -> Map<String, Value> {
    let mut obj = o.decision.output.clone();
    if let Some(p) = trace_path {
        obj.insert("trace_path".into(), p.display().to_string().into());
    }
    if !o.warnings.is_empty() {
        let mut w: Vec<Value> = obj
            .get("warnings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        w.extend(o.warnings.iter().cloned().map(Value::String));
        obj.insert("warnings".into(), Value::Array(w));
    }
    obj.insert(
        "exit_code".into(),
        Value::from(o.decision.verdict.exit_code()),
    );
    obj
}

/// Render the evaluate response in the endpoint's format (status 200; the verdict layer maps
/// strict statuses).
pub fn render(format: EvalFormat, obj: &Map<String, Value>) -> Response<ResBody> {
    let json = serde_json::to_string(obj).unwrap_or_else(|_| "{}".into());
    let (body, ct) = match format {
        EvalFormat::Json => (format!("{json}\n"), "application/json"),
        EvalFormat::Stream => (format!("{json}\n"), "application/x-ndjson"),
        EvalFormat::Sse => (
            format!("event: evaluate\ndata: {json}\n\n"),
            "text/event-stream",
        ),
    };
    let mut res = Response::new(full(body));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if format == EvalFormat::Sse {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rules() {
        assert!(EvalRequest::parse(br#"{"call":{"name":"x"}}"#).is_ok());
        let e = EvalRequest::parse(br#"{"call":{}}"#).unwrap_err();
        assert_eq!(e, "request.call is required");
        let e = EvalRequest::parse(br#"{"call":{"a":1},"bogus":1}"#).unwrap_err();
        assert!(e.starts_with("decode request:"), "{e}");
        let e = EvalRequest::parse(br#"{"call":{"a":1}} {}"#).unwrap_err();
        assert_eq!(e, "request body must contain a single JSON object");
    }

    fn policy(dir: &Path, allow: bool) -> ArtifactPolicy {
        ArtifactPolicy {
            allow_client_paths: allow,
            trace_dir: dir.join("traces"),
            runpack_dir: None,
            pack_dir: None,
            session_dir: dir.join("sessions"),
            envelope_dir: None,
        }
    }

    fn req(field: &str, v: &str) -> EvalRequest {
        let mut r: EvalRequest =
            serde_json::from_value(serde_json::json!({"call": {"name": "t"}})).unwrap();
        match field {
            "trace_path" => r.trace_path = Some(v.into()),
            "runpack_out" => r.runpack_out = Some(v.into()),
            "pack_out" => r.pack_out = Some(v.into()),
            "session_journal" => r.session_journal = Some(v.into()),
            _ => {
                r.call =
                    Some(serde_json::json!({"name":"t","context":{"context_envelope_path": v}}))
            }
        }
        r
    }

    #[tokio::test]
    async fn client_paths_refused_by_default() {
        let tmp = tempfile::tempdir().unwrap();
        let p = policy(tmp.path(), false);
        for f in [
            "trace_path",
            "runpack_out",
            "pack_out",
            "session_journal",
            "envelope",
        ] {
            let e = p.check(&req(f, "x.json")).await.unwrap_err();
            assert!(
                e.contains("is not allowed by server configuration"),
                "{f}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn confinement_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let p = policy(tmp.path(), true);
        let ok = p.check(&req("trace_path", "sub/t.json")).await.unwrap();
        let base = tokio::fs::canonicalize(tmp.path().join("traces"))
            .await
            .unwrap();
        assert_eq!(ok.trace_path.unwrap(), base.join("sub/t.json"));
        // dot-dot
        assert!(p.check(&req("trace_path", "../t.json")).await.is_err());
        assert!(p.check(&req("trace_path", "a/../../t.json")).await.is_err());
        // absolute escape
        assert!(p.check(&req("trace_path", "/etc/passwd")).await.is_err());
        // absolute inside is fine
        let inside = base.join("abs.json");
        assert!(
            p.check(&req("trace_path", inside.to_str().unwrap()))
                .await
                .is_ok()
        );
        // symlink escape
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, base.join("link")).unwrap();
        let e = p
            .check(&req("trace_path", "link/t.json"))
            .await
            .unwrap_err();
        assert!(e.contains("escapes"), "{e}");
        // session journal confined to the session dir
        assert!(p.check(&req("session_journal", "s.jsonl")).await.is_ok());
        assert!(
            p.check(&req("session_journal", "/tmp/x.jsonl"))
                .await
                .is_err()
        );
        // no configured dir
        let e = p.check(&req("runpack_out", "r.zip")).await.unwrap_err();
        assert!(e.contains("no configured directory"), "{e}");
        let e = p.check(&req("envelope", "e.json")).await.unwrap_err();
        assert!(e.contains("no configured directory"), "{e}");
    }
}
