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

/// A Go-style O_EXCL lock file, released (removed) on drop. Acquisition retries every `retry`
/// for up to `wait`; a lock file older than `stale` is removed as abandoned. A lock still held
/// after `wait` is `ErrorKind::WouldBlock`.
#[derive(Debug)]
pub struct ExclLock(PathBuf);

impl ExclLock {
    pub fn acquire(
        lock: &Path,
        wait: std::time::Duration,
        stale: std::time::Duration,
        retry: std::time::Duration,
        content: &[u8],
    ) -> std::io::Result<ExclLock> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(lock)
            {
                Ok(mut f) => {
                    let _ = f.write_all(content);
                    return Ok(ExclLock(lock.to_path_buf()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let abandoned = fs::metadata(lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
                        .is_some_and(|age| age > stale);
                    if abandoned {
                        let _ = fs::remove_file(lock);
                        continue;
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::WouldBlock,
                            format!("lock {} held for more than {wait:?}", lock.display()),
                        ));
                    }
                    std::thread::sleep(retry);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for ExclLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
