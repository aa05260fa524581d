//! `gait trace verify`: check the Ed25519 signature of a TraceRecord file (gate.md §5.3).
//!
//! Exit 0 when the signature verifies, 2 when it does not (tampered, unsigned, other key),
//! 6 when the key source or the file is unusable.

use super::Ctx;
use crate::exit::{self, Category};
use crate::trace::{VerifyKeySource, file, verify_value};
use clap::Args;
use serde_json::{Map, Value};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TraceVerifyArgs {
    /// The trace JSON file.
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
