//! Schema conformance: everything the session module writes validates against the Go schemas in
//! /work/shared/compat (journal, checkpoint, chain, and every runpack entry).

use gait::session::{
    self, AgentLink, AppendInput, CheckpointOptions, LockConfig, Options, SessionPaths,
};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};

fn compat() -> PathBuf {
    PathBuf::from(std::env::var("GAIT_COMPAT_DIR").unwrap_or_else(|_| "/work/shared/compat".into()))
}

fn schema(name: &str) -> jsonschema::Validator {
    let p = compat().join("schemas/runpack").join(name);
    let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    jsonschema::validator_for(&v).unwrap()
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{doc}");
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(compat().join("testdata").join(name)).unwrap()).unwrap()
}

#[test]
fn compat_fixtures_are_accepted_and_rejected_by_the_validator() {
    for (s, ok, bad) in [
        (
            "session_chain.schema.json",
            "session_chain_valid.json",
            "session_chain_invalid.json",
        ),
        (
            "session_checkpoint.schema.json",
            "session_checkpoint_valid.json",
            "session_checkpoint_invalid.json",
        ),
        (
            "session_journal.schema.json",
            "session_journal_valid.json",
            "session_journal_invalid.json",
        ),
    ] {
        let v = schema(s);
        assert_valid(&v, &fixture(ok), ok);
        assert!(!v.is_valid(&fixture(bad)), "{bad} must be rejected");
    }
    let v = schema("session_journal.schema.json");
    assert_valid(
        &v,
        &fixture("session_journal_relationship_valid.json"),
        "relationship",
    );
}

fn opts() -> Options {
    Options {
        lock: LockConfig::default(),
        producer_version: Some("0.0.0-dev".into()),
        now: None,
    }
}

fn build(dir: &Path) -> (PathBuf, PathBuf) {
    let j = dir.join("sessions/demo.journal.jsonl");
    session::start_session(&j, "sess_demo", "run_demo", &opts()).unwrap();
    let full = AppendInput {
        intent_id: "intent_1".into(),
        tool_name: "tool.write".into(),
        intent_digest: "1".repeat(64),
        policy_digest: "2".repeat(64),
        policy_id: "gait.gate.policy".into(),
        policy_version: "1.0.0".into(),
        matched_rule_ids: vec!["allow-writer".into()],
        trace_id: "trace_1".into(),
        trace_path: "gait-out/trace_1.json".into(),
        verdict: "block".into(),
        reason_codes: vec!["r".into()],
        violations: vec!["v".into()],
        agent_chain: vec![
            AgentLink {
                identity: "agent.demo".into(),
                role: "requester".into(),
            },
            AgentLink {
                identity: "agent.sub".into(),
                role: "delegate".into(),
            },
        ],
        ..AppendInput::default()
    };
    session::append_event(&j, &full, &opts()).unwrap();
    let bare = AppendInput {
        tool_name: "tool.read".into(),
        verdict: "allow".into(),
        ..AppendInput::default()
    };
    session::append_event(&j, &bare, &opts()).unwrap();
    let zip = dir.join("gait-out/cp1.zip");
    let copts = CheckpointOptions {
        base: opts(),
        ..CheckpointOptions::default()
    };
    session::checkpoint(&j, &zip, &copts).unwrap();
    session::append_event(&j, &bare, &opts()).unwrap();
    session::checkpoint(&j, &dir.join("gait-out/cp2.zip"), &copts).unwrap();
    (j, zip)
}

#[test]
fn written_journal_checkpoints_and_chain_validate() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = build(dir.path());
    let mut header = Value::Null;
    let mut events = Vec::new();
    let mut cps = Vec::new();
    for line in std::fs::read_to_string(&j).unwrap().lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        match rec["record_type"].as_str().unwrap() {
            "header" => header = rec["header"].clone(),
            "event" => events.push(rec["event"].clone()),
            "checkpoint" => cps.push(rec["checkpoint"].clone()),
            other => panic!("record type {other}"),
        }
    }
    assert_eq!(events.len(), 3);
    let e0 = &events[0]["relationship"];
    assert!(
        e0["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "calls" && e["from"]["id"] == "agent.sub"),
        "delegate is the actor: {e0}"
    );
    let mut journal = header.clone();
    journal["events"] = json!(events);
    journal["checkpoints"] = json!(cps);
    assert_valid(&schema("session_journal.schema.json"), &journal, "journal");
    let cpv = schema("session_checkpoint.schema.json");
    for c in &cps {
        assert_valid(&cpv, c, "checkpoint");
    }
    let chain: Value =
        serde_json::from_slice(&std::fs::read(SessionPaths::new(&j).chain).unwrap()).unwrap();
    assert_valid(&schema("session_chain.schema.json"), &chain, "chain");
    assert_eq!(chain["checkpoints"].as_array().unwrap().len(), 2);
}

#[test]
fn checkpoint_runpack_entries_validate() {
    let dir = tempfile::tempdir().unwrap();
    let (_, zip) = build(dir.path());
    let mut z = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    let names: Vec<String> = z.file_names().map(String::from).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are written sorted");
    assert_eq!(
        names,
        [
            "intents.jsonl",
            "manifest.json",
            "refs.json",
            "results.jsonl",
            "run.json"
        ]
    );
    let mut read = |n: &str| {
        let mut s = String::new();
        z.by_name(n).unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let manifest: Value = serde_json::from_str(&read("manifest.json")).unwrap();
    assert_valid(&schema("manifest.schema.json"), &manifest, "manifest");
    assert_eq!(manifest["run_id"], "run_demo_cp_0001");
    let run: Value = serde_json::from_str(&read("run.json")).unwrap();
    assert_valid(&schema("run.schema.json"), &run, "run");
    let tl = run["timeline"].as_array().unwrap();
    assert_eq!(tl.last().unwrap()["event"], "session_checkpoint_emitted");
    assert_eq!(tl.last().unwrap()["ref"], "checkpoint:1");
    let refs: Value = serde_json::from_str(&read("refs.json")).unwrap();
    assert_valid(&schema("refs.schema.json"), &refs, "refs");
    let iv = schema("intent.schema.json");
    let intents = read("intents.jsonl");
    let lines: Vec<Value> = intents
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["intent_id"], "intent_1");
    assert_eq!(
        lines[1]["intent_id"], "intent_2",
        "fallback id uses the position"
    );
    for l in &lines {
        assert_valid(&iv, l, "intent");
    }
    let rv = schema("result.schema.json");
    let results = read("results.jsonl");
    let lines: Vec<Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["status"], "error", "block → error");
    assert_eq!(lines[1]["status"], "ok");
    for l in &lines {
        assert_valid(&rv, l, "result");
    }
}
