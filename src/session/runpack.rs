//! Checkpoint runpacks: the five-entry deterministic zip (sessions.md §4.2, §5), its manifest
//! digest and optional Ed25519 signature, and `VerifyZip`.
//!
//! Invariants: every JSON entry is RFC 8785 canonical; entries are written sorted by name with
//! the fixed 1980-01-01 timestamp, mode 0644 and Deflate level 6 of the pinned `zip`/`flate2`,
//! so the same input and `created_at` give byte-identical zips; every digest covers only
//! uncompressed entry content.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};

use super::error::SessionError;
use super::record::{Edge, NodeRef, Relationship, SessionEvent};
use crate::canon;

pub const MANIFEST_SCHEMA_ID: &str = "gait.runpack.manifest";
/// `run.json env.runtime` written by this implementation (Go writes `"go"`).
pub const RUNTIME: &str = "rust";
const MAX_ENTRY_BYTES: u64 = 100 * 1024 * 1024;
const REQUIRED_FILES: [&str; 4] = ["intents.jsonl", "refs.json", "results.jsonl", "run.json"];

/// Go's GOOS/GOARCH names for this platform.
pub fn go_env() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        o => o,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        a => a,
    };
    (os, arch)
}

/// Inputs of one checkpoint runpack.
pub struct RunpackInput<'a> {
    pub session_id: &'a str,
    /// `<run_id>_cp_NNNN`
    pub cp_run: &'a str,
    pub checkpoint_index: i64,
    pub created_at: &'a str,
    pub producer: &'a str,
    pub events: &'a [SessionEvent],
}

/// A built runpack: zip bytes and its manifest digest.
pub struct BuiltRunpack {
    pub zip: Vec<u8>,
    pub manifest_digest: String,
}

fn rel_value(r: &Relationship) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn sorted_refs(mut refs: Vec<NodeRef>) -> Vec<NodeRef> {
    refs.retain(|r| !r.id.is_empty());
    refs.sort();
    refs.dedup();
    refs
}

/// `args_digest` fallback when the event has no intent digest.
pub fn fallback_args_digest(
    session_id: &str,
    sequence: i64,
    trace_id: &str,
    trace_path: &str,
) -> String {
    canon::digest(&json!({
        "session_id": session_id,
        "sequence": sequence,
        "trace_id": trace_id,
        "trace_path": trace_path,
    }))
}

fn null_if_empty(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

/// `result_digest`: absent lists are JSON `null`.
pub fn result_digest(e: &SessionEvent) -> String {
    canon::digest(&json!({
        "verdict": e.verdict,
        "reason_codes": null_if_empty(&e.reason_codes),
        "violations": null_if_empty(&e.violations),
        "trace_id": e.trace_id,
        "trace_path": e.trace_path,
    }))
}

fn jsonl(records: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend(canon::to_vec(r));
        out.push(b'\n');
    }
    out
}

/// Build the runpack entries and zip (sessions.md §4.2 steps 4–6).
pub fn build(
    input: &RunpackInput<'_>,
    key: Option<&SigningKey>,
) -> Result<BuiltRunpack, SessionError> {
    let RunpackInput {
        session_id,
        cp_run,
        checkpoint_index,
        created_at,
        producer,
        events,
    } = *input;
    let mut intents = Vec::with_capacity(events.len());
    let mut results = Vec::with_capacity(events.len());
    let mut timeline = Vec::with_capacity(events.len() + 1);
    for (i, e) in events.iter().enumerate() {
        let intent_id = if e.intent_id.is_empty() {
            format!("intent_{}", i + 1)
        } else {
            e.intent_id.clone()
        };
        let args_digest = if e.intent_digest.is_empty() {
            fallback_args_digest(session_id, e.sequence, &e.trace_id, &e.trace_path)
        } else {
            e.intent_digest.clone()
        };
        intents.push(json!({
            "schema_id": "gait.runpack.intent",
            "schema_version": "1.0.0",
            "created_at": e.created_at,
            "producer_version": producer,
            "run_id": cp_run,
            "intent_id": intent_id,
            "tool_name": e.tool_name,
            "args_digest": args_digest,
        }));
        let status = if matches!(e.verdict.as_str(), "block" | "require_approval") {
            "error"
        } else {
            "ok"
        };
        results.push(json!({
            "schema_id": "gait.runpack.result",
            "schema_version": "1.0.0",
            "created_at": e.created_at,
            "producer_version": producer,
            "run_id": cp_run,
            "intent_id": intent_id,
            "status": status,
            "result_digest": result_digest(e),
        }));
        let mut edges = Vec::new();
        if !e.trace_id.is_empty() {
            edges.push(Edge {
                kind: "derived_from".into(),
                from: NodeRef::new("trace", &e.trace_id),
                to: NodeRef::new("run", cp_run),
            });
        }
        if !e.tool_name.is_empty() && !e.policy_digest.is_empty() {
            edges.push(Edge {
                kind: "governed_by".into(),
                from: NodeRef::new("tool", &e.tool_name),
                to: NodeRef::new("policy", &e.policy_digest),
            });
        }
        edges.sort();
        let rel = Relationship {
            parent_ref: Some(NodeRef::new("run", cp_run)),
            entity_refs: sorted_refs(vec![
                NodeRef::new("evidence", session_id),
                NodeRef::new("policy", &e.policy_digest),
                NodeRef::new("tool", &e.tool_name),
                NodeRef::new("trace", &e.trace_id),
            ]),
            edges,
            ..Relationship::default()
        };
        let mut entry = json!({
            "event": "session_event",
            "ts": e.created_at,
            "relationship": rel_value(&rel),
        });
        if !e.trace_id.is_empty() {
            entry["ref"] = json!(e.trace_id);
        }
        timeline.push(entry);
    }
    let cp_ref = format!("checkpoint:{checkpoint_index}");
    let final_rel = Relationship {
        parent_ref: Some(NodeRef::new("run", cp_run)),
        entity_refs: vec![NodeRef::new("evidence", &cp_ref)],
        edges: vec![Edge {
            kind: "emits_evidence".into(),
            from: NodeRef::new("run", cp_run),
            to: NodeRef::new("evidence", &cp_ref),
        }],
        ..Relationship::default()
    };
    timeline.push(json!({
        "event": "session_checkpoint_emitted",
        "ts": created_at,
        "ref": cp_ref,
        "relationship": rel_value(&final_rel),
    }));
    let (os, arch) = go_env();
    let run = json!({
        "schema_id": "gait.runpack.run",
        "schema_version": "1.0.0",
        "created_at": created_at,
        "producer_version": producer,
        "run_id": cp_run,
        "env": {"os": os, "arch": arch, "runtime": RUNTIME},
        "timeline": timeline,
    });
    let refs = json!({
        "schema_id": "gait.runpack.refs",
        "schema_version": "1.0.0",
        "created_at": created_at,
        "producer_version": producer,
        "run_id": cp_run,
        "receipts": [],
    });
    let mut files: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    files.insert("intents.jsonl", jsonl(&intents));
    files.insert("results.jsonl", jsonl(&results));
    files.insert("run.json", canon::to_vec(&run));
    files.insert("refs.json", canon::to_vec(&refs));
    let file_list: Vec<Value> = files
        .iter()
        .map(|(p, b)| json!({"path": p, "sha256": canon::sha256_hex(b)}))
        .collect();
    let mut manifest = json!({
        "schema_id": MANIFEST_SCHEMA_ID,
        "schema_version": "1.0.0",
        "created_at": created_at,
        "producer_version": producer,
        "run_id": cp_run,
        "capture_mode": "reference",
        "files": file_list,
        "manifest_digest": "",
    });
    let manifest_digest = canon::digest(&manifest);
    manifest["manifest_digest"] = json!(manifest_digest);
    if let Some(key) = key {
        manifest["signatures"] = json!([sign_digest_value(&manifest, key)]);
    }
    files.insert("manifest.json", canon::to_vec(&manifest));
    let zip = write_zip(&files)?;
    Ok(BuiltRunpack {
        zip,
        manifest_digest,
    })
}

/// `{alg, key_id, sig, signed_digest}` over JCS(manifest without `signatures`).
fn sign_digest_value(manifest: &Value, key: &SigningKey) -> Value {
    let mut m = manifest.clone();
    if let Some(o) = m.as_object_mut() {
        o.remove("signatures");
    }
    let digest = canon::sha256(&canon::to_vec(&m));
    let sig: Signature = key.sign(&digest);
    json!({
        "alg": "ed25519",
        "key_id": canon::sha256_hex(key.verifying_key().as_bytes()),
        "sig": B64.encode(sig.to_bytes()),
        "signed_digest": hex::encode(digest),
    })
}

fn write_zip(files: &BTreeMap<&str, Vec<u8>>) -> Result<Vec<u8>, SessionError> {
    use zip::write::SimpleFileOptions;
    let zerr = |e: zip::result::ZipError| SessionError::Invalid(format!("write runpack zip: {e}"));
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, bytes) in files {
        w.start_file(*name, opts).map_err(zerr)?;
        w.write_all(bytes)
            .map_err(|e| SessionError::io("write runpack zip", e))?;
    }
    Ok(w.finish().map_err(zerr)?.into_inner())
}

/// Signature status of a verified zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStatus {
    Missing,
    Skipped,
    Verified,
    Failed,
}

#[derive(Debug, Clone)]
pub struct ZipVerification {
    pub run_id: String,
    pub manifest_digest: String,
    pub missing_files: Vec<String>,
    pub hash_mismatches: Vec<String>,
    pub signature_status: SignatureStatus,
}

impl ZipVerification {
    pub fn integrity_ok(&self) -> bool {
        self.missing_files.is_empty() && self.hash_mismatches.is_empty()
    }
}

/// Go's `VerifyZip` for a checkpoint runpack.
pub fn verify_zip(path: &Path, key: Option<&VerifyingKey>) -> Result<ZipVerification, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("open zip: open {}: {}", path.display(), io_text(&e)))?;
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("open zip: {e}"))?;
    let mut names = std::collections::BTreeSet::new();
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| format!("read zip entry: {e}"))?;
        let name = f.name().to_string();
        if !names.insert(name.clone()) {
            return Err(format!("zip contains duplicate entries: {name}"));
        }
        if f.size() > MAX_ENTRY_BYTES {
            return Err(format!("zip entry too large: {name}"));
        }
        let mut buf = Vec::new();
        f.by_ref()
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("read zip entry {name}: {e}"))?;
        entries.insert(name, buf);
    }
    let manifest_bytes = entries
        .get("manifest.json")
        .ok_or_else(|| "missing manifest.json".to_string())?;
    let manifest: Value =
        serde_json::from_slice(manifest_bytes).map_err(|e| format!("parse manifest: {e}"))?;
    let s = |k: &str| {
        manifest
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if s("schema_id") != MANIFEST_SCHEMA_ID || s("schema_version") != "1.0.0" {
        return Err("manifest schema mismatch".into());
    }
    let run_id = s("run_id");
    if run_id.is_empty() {
        return Err("manifest missing run_id".into());
    }
    let mut listed = std::collections::BTreeSet::new();
    let mut hash_mismatches = Vec::new();
    let mut missing_files = Vec::new();
    for f in manifest
        .get("files")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let p = f
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let want = f.get("sha256").and_then(Value::as_str).unwrap_or("");
        listed.insert(p.clone());
        match entries.get(&p) {
            None => missing_files.push(p),
            Some(b) => {
                if !canon::sha256_hex(b).eq_ignore_ascii_case(want) {
                    hash_mismatches.push(p);
                }
            }
        }
    }
    for req in REQUIRED_FILES {
        if !listed.contains(req) {
            missing_files.push(req.to_string());
        }
    }
    let recorded = s("manifest_digest");
    let mut unsigned = manifest.clone();
    if let Some(o) = unsigned.as_object_mut() {
        o.remove("signatures");
        o.insert("manifest_digest".into(), json!(""));
    }
    if canon::digest(&unsigned) != recorded {
        hash_mismatches.push("manifest.json".into());
    }
    let sigs = manifest
        .get("signatures")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let signature_status = if sigs.is_empty() {
        SignatureStatus::Missing
    } else if let Some(key) = key {
        let mut m = manifest.clone();
        if let Some(o) = m.as_object_mut() {
            o.remove("signatures");
        }
        let digest = canon::sha256(&canon::to_vec(&m));
        let key_id = canon::sha256_hex(key.as_bytes());
        let ok = sigs.iter().any(|sig| {
            let g = |k: &str| sig.get(k).and_then(Value::as_str).unwrap_or("");
            g("alg") == "ed25519"
                && (g("key_id").is_empty() || g("key_id") == key_id)
                && g("signed_digest") == hex::encode(digest)
                && B64
                    .decode(g("sig"))
                    .ok()
                    .and_then(|b| Signature::from_slice(&b).ok())
                    .is_some_and(|s| key.verify(&digest, &s).is_ok())
        });
        if ok {
            SignatureStatus::Verified
        } else {
            SignatureStatus::Failed
        }
    } else {
        SignatureStatus::Skipped
    };
    Ok(ZipVerification {
        run_id,
        manifest_digest: recorded,
        missing_files,
        hash_mismatches,
        signature_status,
    })
}

/// Go-like text of an I/O error (`no such file or directory`).
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Parse a private key file/env value: std base64 of the 64-byte seed‖public key (gate.md §5.3).
pub fn parse_private_key(text: &str) -> Result<SigningKey, SessionError> {
    let raw = B64
        .decode(text.trim())
        .map_err(|e| SessionError::Invalid(format!("decode private key: {e}")))?;
    let bytes: [u8; 64] = raw
        .as_slice()
        .try_into()
        .map_err(|_| SessionError::Invalid("private key must be 64 bytes".into()))?;
    SigningKey::from_keypair_bytes(&bytes)
        .map_err(|e| SessionError::Invalid(format!("invalid private key: {e}")))
}

/// Parse a public key: std base64 of 32 bytes.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SessionError> {
    let raw = B64
        .decode(text.trim())
        .map_err(|e| SessionError::Invalid(format!("decode public key: {e}")))?;
    let bytes: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| SessionError::Invalid("public key must be 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| SessionError::Invalid(format!("invalid public key: {e}")))
}
