//! The `gait run session …` and `gait verify session-chain` CLI: exit codes, sorted-key JSON,
//! the error envelope and the contention category.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn gait(dir: &Path, args: &[&str]) -> (u8, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gait"))
        .args(args)
        .current_dir(dir)
        .env("GAIT_SESSION_LOCK_TIMEOUT", "300ms")
        .env("GAIT_SESSION_LOCK_RETRY", "20ms")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1) as u8,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

const J: &str = "sessions/demo.journal.jsonl";

#[test]
fn lifecycle_exit_codes_and_json_shapes() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "start",
            "--journal",
            J,
            "--session-id",
            "sess_demo",
            "--run-id",
            "run_demo",
            "--json",
        ],
    );
    assert_eq!(rc, 0);
    assert!(
        out.starts_with("{\"correlation_id\":"),
        "sorted keys: {out}"
    );
    let v = json(&out);
    assert_eq!(v["operation"], "start");
    assert_eq!(v["status"]["last_sequence"], 0);
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "append",
            "--journal",
            J,
            "--tool",
            "tool.write",
            "--verdict",
            " Allow ",
            "--reason-codes",
            "b,a",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{out}");
    let v = json(&out);
    assert_eq!(v["event"]["sequence"], 1);
    assert_eq!(v["event"]["verdict"], "allow");
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "append",
            "--journal",
            J,
            "--tool",
            "t",
            "--verdict",
            "maybe",
            "--json",
        ],
    );
    assert_eq!(rc, 6);
    let v = json(&out);
    assert_eq!(
        v["error"],
        "unsupported --verdict value (expected allow|block|dry_run|require_approval)"
    );
    assert_eq!(v["error_category"], "invalid_input");
    let (rc, _, err) = gait(d, &["run", "session", "append", "--journal", J]);
    assert_eq!(rc, 6);
    assert!(
        err.contains("run session append error: --journal, --tool, and --verdict are required"),
        "{err}"
    );
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "checkpoint",
            "--journal",
            J,
            "--out",
            "gait-out/cp1.zip",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{out}");
    let v = json(&out);
    assert_eq!(v["chain_path"], "sessions/demo.journal_chain.json");
    assert_eq!(v["checkpoint"]["runpack_path"], "gait-out/cp1.zip");
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "checkpoint",
            "--journal",
            J,
            "--out",
            "gait-out/cp2.zip",
            "--json",
        ],
    );
    assert_eq!(rc, 6);
    assert_eq!(
        json(&out)["error"],
        "no new session events available for checkpoint"
    );
    let (rc, out, _) = gait(d, &["run", "session", "compact", "--journal", J, "--json"]);
    assert_eq!(rc, 0);
    assert_eq!(json(&out)["compaction"]["events_after"], 0);
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "append",
            "--journal",
            J,
            "--tool",
            "x",
            "--verdict",
            "block",
        ],
    );
    assert_eq!(rc, 0);
    assert_eq!(
        out.trim(),
        "session append: sequence=2 tool=redacted verdict=block"
    );
    let (rc, out, _) = gait(
        d,
        &[
            "verify",
            "session-chain",
            "sessions/demo.journal_chain.json",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{out}");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["checkpoints_checked"], 1);
    let (rc, out, _) = gait(
        d,
        &[
            "verify",
            "session-chain",
            "--chain",
            "sessions/demo.journal_chain.json",
        ],
    );
    assert_eq!(rc, 0);
    assert!(out.starts_with("verify session-chain: ok (sessions/demo.journal_chain.json)"));
    // Tamper with the zip: exit 2, ok:false, no error envelope.
    std::fs::write(d.join("gait-out/cp1.zip"), b"not a zip").unwrap();
    let (rc, out, _) = gait(
        d,
        &[
            "verify",
            "session-chain",
            "--chain",
            "sessions/demo.journal_chain.json",
            "--json",
        ],
    );
    assert_eq!(rc, 2);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert!(v.get("error_code").is_none());
    assert!(
        v["checkpoint_errors"][0]
            .as_str()
            .unwrap()
            .starts_with("checkpoint 1 verify error:")
    );
}

#[test]
fn usage_errors_exit_6() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    assert_eq!(gait(d, &["run", "session"]).0, 6);
    assert_eq!(gait(d, &["run", "session", "bogus"]).0, 6);
    let (rc, out, _) = gait(d, &["run", "session", "--explain"]);
    assert_eq!(rc, 0);
    assert!(out.starts_with("Manage append-only long-running session journals"));
    let (rc, out, _) = gait(d, &["verify", "session-chain", "--json"]);
    assert_eq!(rc, 6);
    assert_eq!(json(&out)["error"], "expected --chain <session_chain.json>");
    let (rc, out, _) = gait(
        d,
        &[
            "verify",
            "session-chain",
            "c.json",
            "--profile",
            "strict",
            "--json",
        ],
    );
    assert_eq!(rc, 6);
    assert_eq!(
        json(&out)["error"],
        "strict verify profile requires --public-key/--public-key-env or private key source"
    );
    let (rc, _, _) = gait(d, &["verify", "session-chain", "missing.json"]);
    assert_eq!(rc, 6);
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "status",
            "--journal",
            "../x.jsonl",
            "--json",
        ],
    );
    assert_eq!(rc, 6);
    assert_eq!(
        json(&out)["error"],
        "relative runpack output path must not traverse parent directories"
    );
}

#[test]
fn lock_timeout_is_state_contention_exit_1_retryable() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    assert_eq!(
        gait(
            d,
            &[
                "run",
                "session",
                "start",
                "--journal",
                J,
                "--session-id",
                "s",
                "--run-id",
                "r"
            ]
        )
        .0,
        0
    );
    // A fresh Go-style lock held by a live process (this test).
    std::fs::write(
        d.join(format!("{J}.lock")),
        format!(
            "{{\"created_at\":\"{}\",\"pid\":{},\"schema_id\":\"gait.runpack.session_lock\",\"schema_version\":\"1.0.0\"}}\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
            std::process::id()
        ),
    )
    .unwrap();
    let (rc, out, _) = gait(
        d,
        &[
            "run",
            "session",
            "append",
            "--journal",
            J,
            "--tool",
            "t",
            "--verdict",
            "allow",
            "--json",
        ],
    );
    assert_eq!(rc, 1, "{out}");
    let v = json(&out);
    assert_eq!(v["error_category"], "state_contention");
    assert_eq!(v["retryable"], true);
    assert_eq!(v["reason_code"], "session_lock_contention");
    assert_eq!(v["contention"]["profile"], "standard");
    assert_eq!(v["contention"]["holder_pid"], std::process::id());
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("session state contention: lock timeout (path=")
    );
    // Text mode prints the Go line on stderr.
    let (rc, _, err) = gait(d, &["run", "session", "status", "--journal", J]);
    assert_eq!(rc, 1);
    assert!(
        err.starts_with("run session status error: session state contention: lock timeout"),
        "{err}"
    );
}
