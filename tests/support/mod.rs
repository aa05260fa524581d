//! Shared helpers for the CLI integration tests: run the built `gait` binary in a temp dir.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Result of one `gait` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The single stdout line parsed as JSON (panics with context otherwise).
    pub fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one JSON line, got: {:?}",
            self.stdout
        );
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad json {e}: {}", lines[0]))
    }
}

/// Run `gait <args>` in `cwd` with an optional stdin payload and extra env vars.
pub fn gait_with(cwd: &Path, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gait"));
    cmd.args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gait");
    if let Some(data) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        // A write error (EPIPE) is fine: gait may refuse before reading everything.
        let _ = pipe.write_all(data);
    }
    let out = child.wait_with_output().expect("wait gait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run `gait <args>` in `cwd`.
pub fn gait(cwd: &Path, args: &[&str]) -> Run {
    gait_with(cwd, args, None, &[])
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, text).expect("write");
    p
}

/// Directory of the shared compatibility data.
pub fn compat() -> PathBuf {
    PathBuf::from("/work/shared/compat")
}

/// Assert the one-line error envelope of an invalid-input failure.
pub fn assert_invalid_envelope(run: &Run) {
    assert_eq!(run.code, 6, "stdout={} stderr={}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error_code"], "invalid_input");
    assert_eq!(v["error_category"], "invalid_input");
    assert!(v["correlation_id"].is_string());
    assert!(!v["error"].as_str().unwrap_or_default().is_empty());
}

/// A validator for `schemas/gate/<name>.schema.json`, with every gate/common schema loaded
/// into the resource registry (so cross-file `$ref`s resolve offline) and formats checked.
pub fn schema_validator(name: &str) -> jsonschema::Validator {
    let root = compat().join("schemas");
    let mut registry = jsonschema::Registry::new();
    let mut target = None;
    for sub in ["gate", "common"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(sub))
            .expect("schema dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).expect("schema");
            let schema: Value = serde_json::from_str(&text).expect("schema json");
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let uri = schema
                .get("$id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("https://gait.dev/schemas/v1/{sub}/{file}"));
            if sub == "gate" && file == format!("{name}.schema.json") {
                target = Some((uri.clone(), schema.clone()));
            }
            registry = registry.add(uri.as_str(), schema).expect("add schema");
        }
    }
    let registry = registry.prepare().expect("prepare registry");
    let (uri, schema) = target.unwrap_or_else(|| panic!("no schema {name}"));
    jsonschema::options()
        .with_registry(&registry)
        .with_base_uri(uri)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("build {name}: {e}"))
}

/// Schema errors of `value`, joined (empty when valid).
pub fn schema_errors(v: &jsonschema::Validator, value: &Value) -> String {
    v.iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("; ")
}
