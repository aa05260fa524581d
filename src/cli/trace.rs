//! `gait trace verify`: check the Ed25519 signature of a TraceRecord file (gate.md §5.3), or
//! of every record of a trace segment (`*.jsonl`, `mcp serve --trace-sink segments`).
//!
//! Exit 0 when the signature verifies (for a segment: every complete line; a torn last line
//! left by a crash is reported, not failed), 2 when it does not (tampered, unsigned, other
//! key), 6 when the key source or the file is unusable.

use super::Ctx;
use crate::exit::{self, Category};
use crate::trace::{VerifyKeySource, file, verify_value};
use clap::Args;
use serde_json::{Map, Value};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TraceVerifyArgs {
    /// The trace JSON file, or a trace segment (`*.jsonl`).
    pub path: PathBuf,
    /// Public key file (std base64 of 32 bytes).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Environment variable holding the public key.
    #[arg(long)]
    pub public_key_env: Option<String>,
    /// Private key file (std base64 of the 64-byte key); its public half is used.
    #[arg(long)]
    pub private_key: Option<PathBuf>,
    /// Environment variable holding the private key.
    #[arg(long)]
    pub private_key_env: Option<String>,
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

fn key_source(args: &TraceVerifyArgs) -> Result<VerifyKeySource, String> {
    let mut sources = Vec::new();
    if let Some(p) = &args.public_key {
        sources.push(VerifyKeySource::PublicPath(p.clone()));
    }
    if let Some(v) = &args.public_key_env {
        sources.push(VerifyKeySource::PublicEnv(v.clone()));
    }
    if let Some(p) = &args.private_key {
        sources.push(VerifyKeySource::PrivatePath(p.clone()));
    }
    if let Some(v) = &args.private_key_env {
        sources.push(VerifyKeySource::PrivateEnv(v.clone()));
    }
    match sources.len() {
        0 => Err("missing verify key: set --public-key, --public-key-env, --private-key or --private-key-env".into()),
        1 => Ok(sources.remove(0)),
        _ => Err("set only one of --public-key, --public-key-env, --private-key, --private-key-env".into()),
    }
}

pub fn run_verify(args: TraceVerifyArgs, ctx: &Ctx) -> u8 {
    let source = match key_source(&args) {
        Ok(s) => s,
        Err(msg) => return super::output::fail(args.json, &msg, Category::InvalidInput, ctx),
    };
    let key = match source.load() {
        Ok(k) => k,
        Err(e) => return super::output::fail(args.json, &e.to_string(), e.category(), ctx),
    };
    if crate::trace::segment::is_segment(&args.path) {
        return verify_segment(&args, &key, ctx);
    }
    let value = match file::read_bounded(&args.path, file::MAX_JSON_INPUT_BYTES)
        .and_then(|b| file::parse_json_bounded(&b))
    {
        Ok(v) => v,
        Err(e) => return super::output::fail(args.json, &e.to_string(), e.category(), ctx),
    };
    let field = |k: &str| -> String {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let trace_id = field("trace_id");
    let verdict = field("verdict");
    let key_id = value
        .get("signature")
        .and_then(|s| s.get("key_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| crate::trace::key_id_of(&key));
    let result = verify_value(&value, &key);
    let path = args.path.display().to_string();
    if args.json {
        let mut obj = Map::new();
        obj.insert("ok".into(), Value::Bool(result.is_ok()));
        obj.insert("path".into(), path.into());
        obj.insert("trace_id".into(), trace_id.into());
        obj.insert("verdict".into(), verdict.into());
        obj.insert("key_id".into(), key_id.into());
        obj.insert(
            "signature_status".into(),
            if result.is_ok() { "verified" } else { "failed" }.into(),
        );
        let category = match &result {
            Ok(()) => None,
            Err(e) => {
                obj.insert("error".into(), e.to_string().into());
                Some(e.category())
            }
        };
        super::output::print_json(obj, category, ctx);
    } else {
        match &result {
            Ok(()) => println!("trace verified: {path} (trace_id={trace_id} verdict={verdict})"),
            Err(e) => eprintln!("trace verification failed: {path}: {e}"),
        }
    }
    match result {
        Ok(()) => exit::OK,
        Err(e) => e.category().exit_code(),
    }
}

fn verify_segment(args: &TraceVerifyArgs, key: &ed25519_dalek::VerifyingKey, ctx: &Ctx) -> u8 {
    let rep = match crate::trace::segment::verify_segment(&args.path, key) {
        Ok(r) => r,
        Err(e) => return super::output::fail(args.json, &e.to_string(), e.category(), ctx),
    };
    let path = args.path.display().to_string();
    let category = (!rep.ok()).then_some(Category::VerificationFailed);
    if args.json {
        let mut obj = Map::new();
        obj.insert("ok".into(), Value::Bool(rep.ok()));
        obj.insert("path".into(), path.into());
        obj.insert("format".into(), "segment".into());
        obj.insert("key_id".into(), crate::trace::key_id_of(key).into());
        obj.insert("records".into(), rep.records.into());
        obj.insert("verified".into(), rep.verified.into());
        obj.insert("failed".into(), rep.failed.into());
        obj.insert("torn_tail_bytes".into(), rep.torn_tail_bytes.into());
        obj.insert(
            "verdicts".into(),
            Value::Object(
                rep.verdicts
                    .iter()
                    .map(|(k, v)| (k.clone(), (*v).into()))
                    .collect(),
            ),
        );
        obj.insert(
            "signature_status".into(),
            if rep.ok() { "verified" } else { "failed" }.into(),
        );
        if let Some(f) = &rep.first_failure {
            obj.insert(
                "first_failure".into(),
                serde_json::json!({"line": f.line, "trace_id": f.trace_id, "error": f.error}),
            );
            obj.insert(
                "error".into(),
                format!("line {}: {}", f.line, f.error).into(),
            );
        }
        super::output::print_json(obj, category, ctx);
    } else if let Some(f) = &rep.first_failure {
        eprintln!(
            "trace segment verification failed: {path}: {} of {} records failed; first at line {} (trace_id={}): {}",
            rep.failed, rep.records, f.line, f.trace_id, f.error
        );
    } else {
        println!(
            "trace segment verified: {path} ({} records{})",
            rep.records,
            if rep.torn_tail_bytes > 0 {
                format!(", torn last line of {} bytes ignored", rep.torn_tail_bytes)
            } else {
                String::new()
            }
        );
    }
    category.map_or(exit::OK, Category::exit_code)
}
