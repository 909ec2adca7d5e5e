//! Advisory locks (`flock`, through `std::fs::File::lock`): one per library for
//! writers, one per scratch copy while it is being written.
//!
//! - The library lock (`<database>.lock` beside the database) is held by whoever
//!   writes tags or undoes, for the whole batch: a second writer waits for it, so two
//!   `tag --write` runs on the same files never interleave. Recovery after a crash
//!   only runs when nobody holds it (a live writer's journal rows are not "interrupted").
//! - A scratch copy is locked by the process writing it from creation to rename. A
//!   later process cleaning up removes only scratch copies it can lock, which means
//!   their writer is gone. No process table is consulted (on macOS `/proc` does not
//!   exist; pids are reused everywhere). The kernel drops both kinds of lock when a
//!   process dies, however it dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file of the library database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    db.with_file_name(name)
}

/// The library's writer lock, held while this value lives.
#[derive(Debug)]
pub struct LibraryLock {
    file: File,
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl LibraryLock {
    /// Take the lock if it is free; `Ok(None)` if another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Self::claimed(file).map(Some),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Take the lock, waiting for it as long as another process holds it.
    pub fn acquire(path: &Path) -> std::io::Result<Self> {
        let file = open_lock_file(path)?;
        file.lock()?;
        Self::claimed(file)
    }

    /// Record our pid in the lock file, for the "waiting for pid N" message.
    fn claimed(mut file: File) -> std::io::Result<Self> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{}", std::process::id())?;
        Ok(Self { file })
    }

    /// The pid recorded by the process holding the lock at `path`, if readable.
    pub fn holder(path: &Path) -> Option<u32> {
        let mut text = String::new();
        File::open(path).ok()?.read_to_string(&mut text).ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for LibraryLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it immediate
        // even if the descriptor was inherited. An error here changes nothing.
        let _unlocked = self.file.unlock();
    }
}

/// Is this a scratch copy's name (`.genretag-<pid>-<name>`)?
pub fn is_scratch_name(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".genretag-")
}

/// Remove the scratch copy at `path` if its writer is gone (we can lock it). Returns
/// whether it was removed; a scratch copy still being written, or one that is no longer
/// there, is left alone.
pub fn remove_if_stale(path: &Path) -> std::io::Result<bool> {
    let file = match crate::audio::source::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // The name may have been renamed over a real file between our open and the lock
    // (the writer finished): only unlink if the name still refers to what we locked.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let locked = file.metadata()?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove the scratch copies (`.genretag-<pid>-<name>`) in `dir` whose writer is gone.
/// Returns how many were removed and the ones that could not be (with the reason).
pub fn remove_stale_scratch(dir: &Path) -> (usize, Vec<(PathBuf, String)>) {
    let mut removed = 0;
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push((dir.to_path_buf(), e.to_string()));
            return (0, problems);
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push((dir.to_path_buf(), e.to_string()));
                continue;
            }
        };
        if !is_scratch_name(&entry.file_name()) {
            continue;
        }
        match remove_if_stale(&entry.path()) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => problems.push((entry.path(), e.to_string())),
        }
    }
    (removed, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = lock_path(&dir.path().join("lib.sqlite3"));
        assert!(path.ends_with("lib.sqlite3.lock"));
        let first = LibraryLock::try_acquire(&path)
            .expect("lock file")
            .expect("free");
        assert_eq!(LibraryLock::holder(&path), Some(std::process::id()));
        // A second open file description is a second holder, even in this process.
        assert!(
            LibraryLock::try_acquire(&path)
                .expect("lock file")
                .is_none()
        );
        drop(first);
        assert!(
            LibraryLock::try_acquire(&path)
                .expect("lock file")
                .is_some()
        );
    }

    #[test]
    fn only_unlocked_scratch_copies_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = dir.path().join(".genretag-1-live.flac");
        let dead = dir.path().join(".genretag-2-dead.flac");
        let other = dir.path().join("song.flac");
        for p in [&live, &dead, &other] {
            std::fs::write(p, b"x").expect("write");
        }
        let holder = File::open(&live).expect("open");
        holder.lock().expect("lock");
        let (removed, problems) = remove_stale_scratch(dir.path());
        assert_eq!((removed, problems.len()), (1, 0), "{problems:?}");
        assert!(live.exists() && !dead.exists() && other.exists());
        drop(holder);
        assert!(remove_if_stale(&live).expect("removes"));
    }
}
