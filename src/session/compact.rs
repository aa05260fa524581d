//! Compaction: drop checkpointed events, keep the header and every checkpoint
//! (sessions.md §4.5).
//!
//! Invariant: the rebuilt state keeps `last_sequence = max(last event, last checkpoint end)`, so
//! compacting away *every* event never resets the sequence (Go's defect), and chain
//! verification is unaffected (it reads only the chain and the zips).

use std::path::Path;

use serde::Serialize;

use super::error::SessionError;
use super::fsx;
use super::journal::{self, JournalModel, Options, Outcome};
use super::record;
use super::{SessionPaths, validate_path};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionResult {
    pub journal_path: String,
    pub output_path: String,
    pub compacted: bool,
    pub dry_run: bool,
    pub events_before: i64,
    pub events_after: i64,
    pub checkpoints: i64,
    pub last_checkpoint_sequence: i64,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

/// Compact `journal` into `out` (default: in place). With `dry_run`, only report.
pub fn compact(
    journal: &Path,
    out: Option<&Path>,
    dry_run: bool,
    opts: &Options,
) -> Result<Outcome<CompactionResult>, SessionError> {
    let journal = validate_path(&journal.to_string_lossy())?;
    let out = match out {
        Some(p) => validate_path(&p.to_string_lossy())?,
        None => journal.clone(),
    };
    let paths = SessionPaths::new(&journal);
    journal::with_lock(&paths, opts, || {
        let (model, repair) = journal::load_repaired(&journal)?;
        let last_end = model.checkpoints.last().map_or(0, |c| c.sequence_end);
        let retained: Vec<_> = model
            .events
            .iter()
            .filter(|e| e.sequence > last_end)
            .cloned()
            .collect();
        let mut header = model.header.clone();
        header.events = None;
        let enc =
            |e: serde_json::Error| SessionError::Invalid(format!("encode compacted journal: {e}"));
        let mut bytes = record::header_line(&header).map_err(enc)?;
        for c in &model.checkpoints {
            bytes.extend(record::checkpoint_line(c).map_err(enc)?);
        }
        for e in &retained {
            bytes.extend(record::event_line(e).map_err(enc)?);
        }
        let same = out == journal;
        let dropped = retained.len() < model.events.len();
        let compacted = dropped || !same || bytes.len() as u64 != model.size;
        if compacted && !dry_run {
            fsx::write_atomic(&out, &bytes)?;
            if same {
                let new_model = JournalModel {
                    header,
                    events: retained.clone(),
                    checkpoints: model.checkpoints.clone(),
                    size: bytes.len() as u64,
                };
                let mut state = new_model.to_state(
                    bytes.len() as u64,
                    opts.now(),
                    opts.producer_version.as_deref(),
                );
                // Keep the true last sequence even if the model lost events (it cannot go back).
                state.last_sequence = state.last_sequence.max(model.last_sequence());
                journal::write_state(&paths, &state)?;
            }
        }
        Ok(Outcome {
            value: CompactionResult {
                journal_path: journal.to_string_lossy().into_owned(),
                output_path: out.to_string_lossy().into_owned(),
                compacted,
                dry_run,
                events_before: model.events.len() as i64,
                events_after: retained.len() as i64,
                checkpoints: model.checkpoints.len() as i64,
                last_checkpoint_sequence: last_end,
                bytes_before: model.size as i64,
                bytes_after: bytes.len() as i64,
            },
            repair,
        })
    })
}
