//! `gait keys init` and `gait trace verify`, run as the built binary.

mod support;

use gait::intent::GoTime;
use gait::trace::{Signer, TraceRecord, file};
use std::os::unix::fs::PermissionsExt;
use support::{assert_invalid_envelope, gait, gait_with};

fn signed_trace(signer: &Signer) -> TraceRecord {
    let mut r = TraceRecord {
        schema_id: "gait.gate.trace".into(),
        schema_version: "1.0.0".into(),
        created_at: GoTime::epoch_1980(),
        producer_version: "0.1.0".into(),
        trace_id: gait::trace::trace_id(&"a".repeat(64), &"b".repeat(64), "block"),
        tool_name: "tool.delete".into(),
        args_digest: "c".repeat(64),
        intent_digest: "b".repeat(64),
        policy_digest: "a".repeat(64),
        verdict: "block".into(),
        violations: vec!["destructive_action".into()],
        ..TraceRecord::default()
    };
    r.stamp_observed(chrono::Utc::now());
    signer.sign_record(&mut r).unwrap();
    r
}

#[test]
fn keys_init_writes_private_files_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let run = gait(
        dir.path(),
        &[
            "keys",
            "init",
            "--out-dir",
            "keys",
            "--prefix",
            "ci",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let v = run.json();
    assert_eq!(v["ok"], true);
    let priv_path = dir.path().join("keys/ci_private.key");
    let pub_path = dir.path().join("keys/ci_public.key");
    for p in [&priv_path, &pub_path] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
        let text = std::fs::read_to_string(p).unwrap();
        assert!(text.ends_with('\n') && !text.trim().contains('\n'));
    }
    let signer = Signer::from_base64(&std::fs::read_to_string(&priv_path).unwrap()).unwrap();
    assert_eq!(v["key_id"], signer.key_id());
    assert_eq!(
        std::fs::read_to_string(&pub_path).unwrap().trim(),
        signer.public_key_base64()
    );

    let before = std::fs::read_to_string(&priv_path).unwrap();
    let again = gait(
        dir.path(),
        &[
            "keys",
            "init",
            "--out-dir",
            "keys",
            "--prefix",
            "ci",
            "--json",
        ],
    );
    assert_invalid_envelope(&again);
    assert_eq!(std::fs::read_to_string(&priv_path).unwrap(), before);

    let forced = gait(
        dir.path(),
        &[
            "keys",
            "init",
            "--out-dir",
            "keys",
            "--prefix",
            "ci",
            "--force",
        ],
    );
    assert_eq!(forced.code, 0, "{forced:?}");
    assert_ne!(std::fs::read_to_string(&priv_path).unwrap(), before);
}

#[test]
fn trace_verify_accepts_good_rejects_tampered_and_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        gait(
            dir.path(),
            &["keys", "init", "--out-dir", ".", "--prefix", "k"]
        )
        .code,
        0
    );
    let priv_text = std::fs::read_to_string(dir.path().join("k_private.key")).unwrap();
    let signer = Signer::from_base64(&priv_text).unwrap();
    let rec = signed_trace(&signer);
    let trace_path = dir.path().join("trace.json");
    file::write_json_pretty(&trace_path, &rec).unwrap();

    let ok = gait(
        dir.path(),
        &[
            "trace",
            "verify",
            "trace.json",
            "--public-key",
            "k_public.key",
            "--json",
        ],
    );
    assert_eq!(ok.code, 0, "{ok:?}");
    let v = ok.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["signature_status"], "verified");
    assert_eq!(v["trace_id"], rec.trace_id.as_str());
    assert_eq!(v["verdict"], "block");
    assert_eq!(v["key_id"], signer.key_id());
    assert_eq!(v["path"], "trace.json");

    // The private key (file or env) works too.
    let via_env = gait_with(
        dir.path(),
        &[
            "trace",
            "verify",
            "trace.json",
            "--private-key-env",
            "GAIT_TEST_KEY",
            "--json",
        ],
        None,
        &[("GAIT_TEST_KEY", priv_text.as_str())],
    );
    assert_eq!(via_env.code, 0, "{via_env:?}");

    // Tamper with one field: exit 2, signature_status failed.
    let mut tampered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace_path).unwrap()).unwrap();
    tampered["verdict"] = "allow".into();
    std::fs::write(dir.path().join("bad.json"), tampered.to_string()).unwrap();
    let bad = gait(
        dir.path(),
        &[
            "trace",
            "verify",
            "bad.json",
            "--public-key",
            "k_public.key",
            "--json",
        ],
    );
    assert_eq!(bad.code, 2, "{bad:?}");
    let v = bad.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["signature_status"], "failed");
    assert_eq!(v["error_code"], "verification_failed");

    // Another key: exit 2.
    let other = Signer::generate();
    std::fs::write(dir.path().join("other.pub"), other.public_key_base64()).unwrap();
    let wrong = gait(
        dir.path(),
        &["trace", "verify", "trace.json", "--public-key", "other.pub"],
    );
    assert_eq!(wrong.code, 2, "{wrong:?}");

    // No key source, two key sources, missing file, not JSON: exit 6.
    assert_invalid_envelope(&gait(
        dir.path(),
        &["trace", "verify", "trace.json", "--json"],
    ));
    assert_invalid_envelope(&gait(
        dir.path(),
        &[
            "trace",
            "verify",
            "trace.json",
            "--public-key",
            "k_public.key",
            "--private-key",
            "k_private.key",
            "--json",
        ],
    ));
    assert_invalid_envelope(&gait(
        dir.path(),
        &[
            "trace",
            "verify",
            "nope.json",
            "--public-key",
            "k_public.key",
            "--json",
        ],
    ));
    std::fs::write(dir.path().join("junk.json"), [0xffu8, 0x00, 0x7b]).unwrap();
    assert_invalid_envelope(&gait(
        dir.path(),
        &[
            "trace",
            "verify",
            "junk.json",
            "--public-key",
            "k_public.key",
            "--json",
        ],
    ));
    let text_mode = gait(dir.path(), &["trace", "verify", "trace.json"]);
    assert_eq!(text_mode.code, 6);
    assert_eq!(text_mode.stderr.lines().count(), 1, "{text_mode:?}");
}
