//! `gait keys init`: write an Ed25519 key pair as `<prefix>_private.key` / `<prefix>_public.key`
//! (std base64 + `\n`, mode 0600). Existing files are never overwritten without `--force`.

use super::Ctx;
use crate::trace::{Signer, file};
use clap::Args;
use serde_json::{Map, Value};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct KeysInitArgs {
    /// Directory the key files are written to (created 0750 if missing).
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// File name prefix: `<prefix>_private.key`, `<prefix>_public.key`.
    #[arg(long, default_value = "gait")]
    pub prefix: String,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_init(args: KeysInitArgs, ctx: &Ctx) -> u8 {
    let prefix = args.prefix.trim();
    if prefix.is_empty()
        || prefix.contains('/')
        || prefix.contains('\\')
        || prefix == "."
        || prefix == ".."
    {
        return super::output::fail(
            args.json,
            "--prefix must be a non-empty file name prefix",
            crate::exit::Category::InvalidInput,
            ctx,
        );
    }
    let private_path = args.out_dir.join(format!("{prefix}_private.key"));
    let public_path = args.out_dir.join(format!("{prefix}_public.key"));
    if !args.force {
        for p in [&private_path, &public_path] {
            if p.exists() {
                let msg = format!(
                    "refusing to overwrite existing file {} (use --force)",
                    p.display()
                );
                return super::output::fail(
                    args.json,
                    &msg,
                    crate::exit::Category::InvalidInput,
                    ctx,
                );
            }
        }
    }
    let signer = Signer::generate();
    let write = |path: &PathBuf, text: String| {
        file::write_atomic_opts(path, format!("{text}\n").as_bytes(), args.force)
    };
    if let Err(e) = write(&private_path, signer.private_key_base64())
        .and_then(|()| write(&public_path, signer.public_key_base64()))
    {
        return super::output::fail(args.json, &e.to_string(), e.category(), ctx);
    }
    if args.json {
        let mut obj = Map::new();
        obj.insert("ok".into(), Value::Bool(true));
        obj.insert("key_id".into(), signer.key_id().into());
        obj.insert(
            "private_key_path".into(),
            private_path.display().to_string().into(),
        );
        obj.insert(
            "public_key_path".into(),
            public_path.display().to_string().into(),
        );
        super::output::print_json(obj, None, ctx);
    } else {
        println!("private key: {}", private_path.display());
        println!("public key: {}", public_path.display());
        println!("key_id: {}", signer.key_id());
    }
    crate::exit::OK
}
