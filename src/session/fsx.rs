//! Durable file primitives: atomic replace (temp, fsync, chmod, rename, directory fsync) and
//! directory creation with Go's modes.
//!
//! Invariant: after [`write_atomic`] returns `Ok`, the target holds exactly the new bytes and
//! survives a crash; on error the target is untouched and the temp file is removed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::SessionError;

/// Directory of `path` for creating and syncing (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `MkdirAll(dir(path), 0750)`.
pub fn ensure_parent(path: &Path) -> std::io::Result<()> {
    let dir = parent_dir(path);
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&dir)
}

/// fsync the directory containing `path` (errors ignored, as Go does).
pub fn sync_parent(path: &Path) {
    if let Ok(d) = File::open(parent_dir(path)) {
        let _ = d.sync_all();
    }
}

/// Atomically replace `path` with `bytes` (mode 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SessionError> {
    write_atomic_mode(path, bytes, 0o600)
}

pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SessionError> {
    let ctx = || format!("write {}", path.display());
    ensure_parent(path).map_err(|e| SessionError::io(ctx(), e))?;
    let dir = parent_dir(path);
    let base = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{base}.tmp-{:016x}", rand::random::<u64>()));
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(SessionError::io(ctx(), e));
    }
    sync_parent(path);
    Ok(())
}
