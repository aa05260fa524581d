//! Bounded reads of input files and atomic, private writes of artifacts.
//!
//! Invariant: an artifact path is either absent or holds a complete file: writes go to a temp
//! file in the same directory, are fsynced, chmod 0600, renamed into place, and the directory is
//! fsynced. Created parent directories are 0750. A relative output path never contains `..`.

use super::TraceError;
use serde::Serialize;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

/// Default cap for JSON inputs (intents, tool calls, traces).
pub const MAX_JSON_INPUT_BYTES: u64 = 4 * 1024 * 1024;

fn io_err(path: &Path, source: std::io::Error) -> TraceError {
    TraceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Read a whole file, refusing anything larger than `cap` bytes (or not a regular file).
pub fn read_bounded(path: &Path, cap: u64) -> Result<Vec<u8>, TraceError> {
    let file = fs::File::open(path).map_err(|e| TraceError::Input {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if meta.is_dir() {
        return Err(TraceError::Input {
            path: path.display().to_string(),
            message: "is a directory".into(),
        });
    }
    if meta.len() > cap {
        return Err(too_large(path, cap));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    if buf.len() as u64 > cap {
        return Err(too_large(path, cap));
    }
    Ok(buf)
}

/// Read stdin up to `cap` bytes.
pub fn read_stdin_bounded(cap: u64) -> Result<Vec<u8>, TraceError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(Path::new("-"), e))?;
    if buf.len() as u64 > cap {
        return Err(too_large(Path::new("-"), cap));
    }
    Ok(buf)
}

fn too_large(path: &Path, cap: u64) -> TraceError {
    TraceError::Input {
        path: path.display().to_string(),
        message: format!("exceeds the {cap}-byte input limit"),
    }
}

/// Parse JSON bytes (UTF-8, serde_json's nesting limit of 128 applies: no stack overflow).
pub fn parse_json_bounded(bytes: &[u8]) -> Result<serde_json::Value, TraceError> {
    serde_json::from_slice(bytes).map_err(|e| TraceError::Invalid(format!("parse json: {e}")))
}

/// Reject relative output paths with a `..` component.
pub fn check_output_path(path: &Path) -> Result<(), TraceError> {
    if path.as_os_str().is_empty() {
        return Err(TraceError::Invalid("output path is empty".into()));
    }
    if path.is_relative() && path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(TraceError::Invalid(format!(
            "output path must not contain '..': {}",
            path.display()
        )));
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<&Path, TraceError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(|e| io_err(parent, e))?;
    }
    Ok(parent)
}

/// Atomically write `bytes` to `path` with mode 0600 (replacing an existing file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TraceError> {
    write_atomic_opts(path, bytes, true)
}

/// Atomically write `bytes` to `path` with mode 0600; with `overwrite == false` an existing
/// file is an error (checked at rename time, so there is no check-then-write race).
pub fn write_atomic_opts(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), TraceError> {
    check_output_path(path)?;
    let parent = create_parent(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".gait-tmp-")
        .tempfile_in(parent)
        .map_err(|e| io_err(parent, e))?;
    tmp.write_all(bytes).map_err(|e| io_err(path, e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| io_err(path, e))?;
    if overwrite {
        tmp.persist(path).map_err(|e| io_err(path, e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                TraceError::Invalid(format!(
                    "refusing to overwrite existing file {} (use --force)",
                    path.display()
                ))
            } else {
                io_err(path, e.error)
            }
        })?;
    }
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Pretty JSON (2-space indent) plus a trailing newline, written atomically with mode 0600.
pub fn write_json_pretty<T: Serialize>(path: &Path, value: &T) -> Result<(), TraceError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| TraceError::Invalid(format!("encode json: {e}")))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Append one line (a `\n` is added) to a JSONL file under an exclusive file lock; the file is
/// created with mode 0600.
pub fn append_line_locked(path: &Path, line: &[u8]) -> Result<(), TraceError> {
    check_output_path(path)?;
    create_parent(path)?;
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let mut lock = fd_lock::RwLock::new(file);
    let mut guard = lock.write().map_err(|e| io_err(path, e))?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    guard.write_all(&buf).map_err(|e| io_err(path, e))?;
    guard.flush().map_err(|e| io_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/trace.json");
        write_json_pretty(&p, &serde_json::json!({"k": [1]})).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\n  \"k\": [\n    1\n  ]\n}\n");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.path().join("a/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode & !0o750, 0, "dir mode {dmode:o}");
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn dotdot_relative_paths_are_rejected() {
        assert!(check_output_path(Path::new("../x.json")).is_err());
        assert!(check_output_path(Path::new("a/../../x.json")).is_err());
        assert!(check_output_path(Path::new("a/x.json")).is_ok());
        assert!(check_output_path(Path::new("")).is_err());
    }

    #[test]
    fn bounded_read_refuses_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        fs::write(&p, vec![b'x'; 100]).unwrap();
        assert!(read_bounded(&p, 99).is_err());
        assert_eq!(read_bounded(&p, 100).unwrap().len(), 100);
        assert!(read_bounded(dir.path(), 100).is_err());
        assert!(read_bounded(&dir.path().join("missing"), 100).is_err());
    }

    #[test]
    fn appended_lines_accumulate_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        append_line_locked(&p, b"{\"a\":1}").unwrap();
        append_line_locked(&p, b"{\"a\":2}").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn deep_json_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_json_bounded(deep.as_bytes()).is_err());
        assert!(parse_json_bounded(&[0xff, 0xfe]).is_err());
    }
}
