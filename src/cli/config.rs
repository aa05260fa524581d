//! `gait config show`: the effective project config, secrets redacted, with the source of
//! each value (`default|file|env|flag`).
//!
//! Env vars named by `*_env` keys are reported as `set|empty|unset`, never their values.

use super::Ctx;
use crate::exit::Category;
use crate::ops::config::{self, ConfigLocation};
use crate::ops::env::{EnvStatus, ProcessEnv};
use clap::Args;
use serde_json::{Map, Value};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// Config file (default: .gait/config.yaml, or $GAIT_CONFIG). A missing explicit file is
    /// an error; a missing default file means built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. `--set gate.profile=oss-prod` (source `flag`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print one line of JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_show(args: ConfigShowArgs, ctx: &Ctx) -> u8 {
    let env = ProcessEnv;
    let mut flags = Vec::new();
    for s in &args.set {
        match s.split_once('=') {
            Some((k, v)) => flags.push((k.trim().to_string(), v.to_string())),
            None => {
                return super::output::fail(
                    args.json,
                    &format!("--set expects KEY=VALUE, got {s:?}"),
                    Category::InvalidInput,
                    ctx,
                );
            }
        }
    }
    let location = ConfigLocation::resolve(args.config.as_deref(), &env, std::path::Path::new("."));
    let loaded = match config::load(&location, &env, &flags) {
        Ok(l) => l,
        Err(e) => {
            return super::output::fail(args.json, &e.to_string(), Category::InvalidInput, ctx);
        }
    };
    let redacted = config::redacted_json(&loaded.config);
    let env_refs: Vec<(&str, String, EnvStatus)> = config::env_ref_keys(&loaded.config)
        .into_iter()
        .map(|(k, var)| {
            let st = EnvStatus::of(&env, var.trim());
            (k, var, st)
        })
        .collect();
    if args.json {
        let mut obj = Map::new();
        obj.insert("ok".into(), true.into());
        obj.insert(
            "config_path".into(),
            loaded
                .path
                .as_ref()
                .map(|p| Value::String(p.display().to_string()))
                .unwrap_or(Value::Null),
        );
        obj.insert("config".into(), redacted);
        obj.insert(
            "sources".into(),
            Value::Object(
                loaded
                    .sources
                    .iter()
                    .map(|(k, s)| (k.clone(), Value::String(s.as_str().into())))
                    .collect(),
            ),
        );
        obj.insert(
            "env_refs".into(),
            Value::Object(
                env_refs
                    .iter()
                    .map(|(k, var, st)| {
                        let mut m = Map::new();
                        m.insert("var".into(), var.clone().into());
                        m.insert("status".into(), st.as_str().into());
                        ((*k).to_string(), Value::Object(m))
                    })
                    .collect(),
            ),
        );
        super::output::print_json(obj, None, ctx);
    } else {
        use std::fmt::Write as _;
        let mut out = String::new();
        match &loaded.path {
            Some(p) => writeln!(out, "# config: {}", p.display()).ok(),
            None => writeln!(out, "# config: (none, built-in defaults)").ok(),
        };
        let tree = redacted;
        let mut leaves = Vec::new();
        flatten(&tree, "", &mut leaves);
        for (k, v) in leaves {
            let src = loaded
                .sources
                .get(&k)
                .map(|s| s.as_str())
                .unwrap_or("default");
            let shown = match &v {
                Value::String(s) => s.clone(),
                Value::Null => "~".into(),
                other => other.to_string(),
            };
            let note = env_refs
                .iter()
                .find(|(key, _, _)| *key == k)
                .map(|(_, _, st)| format!(" [env {}]", st.as_str()))
                .unwrap_or_default();
            writeln!(out, "{k} = {shown} ({src}){note}").ok();
        }
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    }
    crate::exit::OK
}

fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(c, &key, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}
