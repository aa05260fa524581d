//! Checkpoints, the chain file and chain verification (sessions.md §2.3, §2.5, §4.2–§4.4).
//!
//! Invariants: `checkpoint_digest = sha256("<manifest>:<prev>:<index>:<start>:<end>")`; the zip
//! is written (atomically) before the checkpoint line that names it; the chain file is a pure
//! function of the journal's checkpoint records and is rewritten under the lock.

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;

use super::error::SessionError;
use super::fsx;
use super::gojson::{format_time, to_pretty};
use super::journal::{self, Cached, JournalModel, Options, Repair};
use super::record::{
    self, CHAIN_SCHEMA_ID, CHECKPOINT_SCHEMA_ID, Checkpoint, SCHEMA_VERSION, SessionChain,
};
use super::runpack::{self, RunpackInput, SignatureStatus};
use super::{DEFAULT_PRODUCER_VERSION, SessionPaths, validate_path};
use crate::canon;

/// `hex(sha256("<manifest_digest>:<prev>:<index>:<start>:<end>"))`.
pub fn checkpoint_digest(manifest: &str, prev: &str, index: i64, start: i64, end: i64) -> String {
    canon::sha256_hex(format!("{manifest}:{prev}:{index}:{start}:{end}").as_bytes())
}

/// `<run_id>_cp_NNNN` (index zero-padded to at least 4 digits).
pub fn checkpoint_run_id(run_id: &str, index: i64) -> String {
    format!("{run_id}_cp_{index:04}")
}

#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub base: Options,
    /// Extra copy of the chain file (`--chain-out`).
    pub chain_out: Option<PathBuf>,
    /// Sign the runpack manifest with this key.
    pub signing_key: Option<SigningKey>,
}

#[derive(Debug, Clone)]
pub struct CheckpointOutcome {
    pub checkpoint: Checkpoint,
    /// The default chain path (`<stem>_chain.json`).
    pub chain_path: PathBuf,
    /// The `--chain-out` copy, if requested.
    pub chain_out: Option<PathBuf>,
    pub repair: Option<Repair>,
}

/// `checkpoint`: emit a runpack of the events after the last checkpoint, append the checkpoint
/// record, update the state and rewrite the chain file(s), all under the lock.
pub fn checkpoint(
    journal: &Path,
    out: &Path,
    copts: &CheckpointOptions,
) -> Result<CheckpointOutcome, SessionError> {
    let journal = validate_path(&journal.to_string_lossy())?;
    let out = validate_path(&out.to_string_lossy())?;
    let chain_out = match &copts.chain_out {
        Some(p) => Some(validate_path(&p.to_string_lossy())?),
        None => None,
    };
    let paths = SessionPaths::new(&journal);
    journal::with_lock(&paths, &copts.base, || {
        let (mut model, repair) = journal::load_repaired(&journal)?;
        let (cp, _) = checkpoint_locked(&paths, &mut model, &out, copts)?;
        write_chains(&paths, &model, chain_out.as_deref())?;
        Ok(CheckpointOutcome {
            checkpoint: cp,
            chain_path: paths.chain.clone(),
            chain_out,
            repair,
        })
    })
}

/// Under the lock, with `model` freshly read: build and write the zip, append the record, update
/// the state. `model` gains the new checkpoint.
pub(crate) fn checkpoint_locked(
    paths: &SessionPaths,
    model: &mut JournalModel,
    out: &Path,
    copts: &CheckpointOptions,
) -> Result<(Checkpoint, Cached), SessionError> {
    let last = model.checkpoints.last();
    let index = model.checkpoints.len() as i64 + 1;
    let last_end = last.map_or(0, |c| c.sequence_end);
    let prev = last.map_or(String::new(), |c| c.checkpoint_digest.clone());
    let new_events: Vec<_> = model
        .events
        .iter()
        .filter(|e| e.sequence > last_end)
        .cloned()
        .collect();
    let (Some(first), Some(lastev)) = (new_events.first(), new_events.last()) else {
        return Err(SessionError::Invalid(
            "no new session events available for checkpoint".into(),
        ));
    };
    let (start, end) = (first.sequence, lastev.sequence);
    let h = &model.header;
    let cp_run = checkpoint_run_id(&h.run_id, index);
    let now = copts.base.now();
    let created_at = format_time(now);
    let producer = match copts.base.producer_version.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ if !h.producer_version.is_empty() => h.producer_version.clone(),
        _ => DEFAULT_PRODUCER_VERSION.to_string(),
    };
    let built = runpack::build(
        &RunpackInput {
            session_id: &h.session_id,
            cp_run: &cp_run,
            checkpoint_index: index,
            created_at: &created_at,
            producer: &producer,
            events: &new_events,
        },
        copts.signing_key.as_ref(),
    )?;
    fsx::write_atomic(out, &built.zip)?;
    let digest = checkpoint_digest(&built.manifest_digest, &prev, index, start, end);
    let (siv, sih) = new_events
        .iter()
        .rev()
        .find(|e| !e.safety_invariant_version.is_empty() && !e.safety_invariant_hash.is_empty())
        .map(|e| {
            (
                e.safety_invariant_version.clone(),
                e.safety_invariant_hash.clone(),
            )
        })
        .unwrap_or_default();
    let cp = Checkpoint {
        schema_id: CHECKPOINT_SCHEMA_ID.into(),
        schema_version: SCHEMA_VERSION.into(),
        created_at,
        producer_version: producer.clone(),
        session_id: h.session_id.clone(),
        run_id: h.run_id.clone(),
        checkpoint_index: index,
        sequence_start: start,
        sequence_end: end,
        runpack_path: out.to_string_lossy().into_owned(),
        manifest_digest: built.manifest_digest.clone(),
        prev_checkpoint_digest: prev,
        checkpoint_digest: digest.clone(),
        relationship: Some(record::checkpoint_relationship(
            &h.session_id,
            &h.run_id,
            &cp_run,
            &digest,
            &built.manifest_digest,
        )),
        safety_invariant_version: siv,
        safety_invariant_hash: sih,
    };
    let line = record::checkpoint_line(&cp)
        .map_err(|e| SessionError::Invalid(format!("encode checkpoint: {e}")))?;
    let ctx = || format!("append session checkpoint {}", paths.journal.display());
    let size = {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&paths.journal)
            .map_err(|e| SessionError::io(ctx(), e))?;
        let prev_len = f.metadata().map_err(|e| SessionError::io(ctx(), e))?.len();
        if let Err(e) = f.write_all(&line).and_then(|()| f.sync_data()) {
            let _ = f.set_len(prev_len);
            return Err(SessionError::io(ctx(), e));
        }
        f.metadata().map_err(|e| SessionError::io(ctx(), e))?.len()
    };
    model.checkpoints.push(cp.clone());
    model.size = size;
    let state = model.to_state(size, now, Some(&producer));
    journal::write_state(paths, &state)?;
    let id = journal::file_id(&paths.journal)?;
    Ok((cp, Cached { id, state }))
}

/// The chain file content for `model`.
pub fn chain_of(model: &JournalModel) -> SessionChain {
    SessionChain {
        schema_id: CHAIN_SCHEMA_ID.into(),
        schema_version: SCHEMA_VERSION.into(),
        created_at: model.header.created_at.clone(),
        producer_version: model.header.producer_version.clone(),
        session_id: model.header.session_id.clone(),
        run_id: model.header.run_id.clone(),
        checkpoints: model.checkpoints.clone(),
    }
}

/// Write the chain to its default path and to `extra` (atomically).
pub(crate) fn write_chains(
    paths: &SessionPaths,
    model: &JournalModel,
    extra: Option<&Path>,
) -> Result<(), SessionError> {
    let bytes = to_pretty(&chain_of(model))
        .map_err(|e| SessionError::Invalid(format!("encode session chain: {e}")))?;
    fsx::write_atomic(&paths.chain, &bytes)?;
    if let Some(p) = extra
        && p != paths.chain
    {
        fsx::write_atomic(p, &bytes)?;
    }
    Ok(())
}

/// Read and validate a chain file (sessions.md §2.5 reader rules).
pub fn read_chain(path: &Path) -> Result<SessionChain, SessionError> {
    let bytes = std::fs::read(path)
        .map_err(|e| SessionError::io(format!("read session chain {}", path.display()), e))?;
    let mut chain: SessionChain = serde_json::from_slice(&bytes)
        .map_err(|e| SessionError::Invalid(format!("parse session chain: {e}")))?;
    if chain.schema_id.is_empty() {
        chain.schema_id = CHAIN_SCHEMA_ID.into();
    }
    if chain.schema_version.is_empty() {
        chain.schema_version = SCHEMA_VERSION.into();
    }
    if chain.schema_id != CHAIN_SCHEMA_ID || chain.schema_version != SCHEMA_VERSION {
        return Err(SessionError::Invalid(
            "unsupported session chain schema".into(),
        ));
    }
    if chain.session_id.trim().is_empty() || chain.run_id.trim().is_empty() {
        return Err(SessionError::Invalid(
            "session chain missing session_id/run_id".into(),
        ));
    }
    if chain.checkpoints.is_empty() {
        return Err(SessionError::Invalid(
            "session chain has no checkpoints".into(),
        ));
    }
    Ok(chain)
}

#[derive(Debug, Clone, Default)]
pub struct ChainVerifyOptions {
    pub require_signature: bool,
    pub public_key: Option<VerifyingKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChainVerifyResult {
    pub chain_path: String,
    pub session_id: String,
    pub run_id: String,
    pub checkpoints_checked: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub linkage_errors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_errors: Vec<String>,
}

impl ChainVerifyResult {
    pub fn ok(&self) -> bool {
        self.linkage_errors.is_empty() && self.checkpoint_errors.is_empty()
    }
}

/// Resolve a runpack path: as stored (relative to the CWD, like Go), else relative to the
/// chain's directory (so a moved chain+zips directory still verifies).
fn resolve_runpack(chain_path: &Path, runpack: &str) -> PathBuf {
    let p = PathBuf::from(runpack);
    if p.is_absolute() || p.exists() {
        return p;
    }
    let alt = fsx::parent_dir(chain_path).join(&p);
    if alt.exists() { alt } else { p }
}

/// `verify session-chain` (sessions.md §4.4).
pub fn verify_chain(
    chain_path: &Path,
    opts: &ChainVerifyOptions,
) -> Result<ChainVerifyResult, SessionError> {
    let chain = read_chain(chain_path)?;
    let mut res = ChainVerifyResult {
        chain_path: chain_path.to_string_lossy().into_owned(),
        session_id: chain.session_id.clone(),
        run_id: chain.run_id.clone(),
        ..ChainVerifyResult::default()
    };
    let (mut last_index, mut last_digest, mut last_end) = (0i64, String::new(), 0i64);
    for (pos, cp) in chain.checkpoints.iter().enumerate() {
        let idx = cp.checkpoint_index;
        if idx != last_index + 1 {
            res.linkage_errors
                .push(format!("checkpoint index mismatch at position {pos}"));
        }
        if idx > 1 && cp.prev_checkpoint_digest != last_digest {
            res.linkage_errors.push(format!(
                "prev_checkpoint_digest mismatch at checkpoint {idx}"
            ));
        }
        if cp.sequence_start <= last_end {
            res.linkage_errors
                .push(format!("sequence overlap at checkpoint {idx}"));
        }
        let want = checkpoint_digest(
            &cp.manifest_digest,
            &cp.prev_checkpoint_digest,
            idx,
            cp.sequence_start,
            cp.sequence_end,
        );
        if cp.checkpoint_digest != want {
            res.linkage_errors
                .push(format!("checkpoint_digest mismatch at checkpoint {idx}"));
        }
        let zpath = resolve_runpack(chain_path, &cp.runpack_path);
        match runpack::verify_zip(&zpath, opts.public_key.as_ref()) {
            Err(e) => res
                .checkpoint_errors
                .push(format!("checkpoint {idx} verify error: {e}")),
            Ok(v) => {
                if v.manifest_digest != cp.manifest_digest {
                    res.checkpoint_errors
                        .push(format!("checkpoint {idx} manifest digest mismatch"));
                }
                if !v.integrity_ok() {
                    res.checkpoint_errors
                        .push(format!("checkpoint {idx} runpack integrity failure"));
                }
                if opts.require_signature && v.signature_status != SignatureStatus::Verified {
                    res.checkpoint_errors
                        .push(format!("checkpoint {idx} signature verification failed"));
                }
            }
        }
        res.checkpoints_checked += 1;
        last_index = idx;
        last_digest = cp.checkpoint_digest.clone();
        last_end = cp.sequence_end;
    }
    Ok(res)
}
