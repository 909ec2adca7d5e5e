//! Replacing a file without losing anything about it: the copy-verify-rename that
//! every tag write and undo goes through.
//!
//! - **Symbolic links** are written through: the link's final target is resolved and
//!   the scratch copy is made next to the *target*, then renamed over it. The link
//!   itself is never touched, so it keeps pointing at the (now tagged) file.
//! - **Hard links** (a file with more than one name) are refused: renaming a new copy
//!   over one name would split it from the others (they would keep the old content), and
//!   writing in place cannot be made atomic, so a crash could leave every name damaged.
//! - **Owner and group, mode, extended attributes** (POSIX ACLs are the
//!   `system.posix_acl_*` attributes on Linux) are copied to the scratch copy and checked
//!   before the rename. If one cannot be carried (only root can give a file to another
//!   user), the write is refused and the original is left as it was.
//! - **Timestamps**: the modification time becomes the time of the write, as for any
//!   other edit, so backup and sync tools see the change. Access time is not kept.
//! - **Concurrent edits**: if the original changes (size, mtime, inode) while the copy is
//!   prepared, the rename is abandoned.
//!
//! The scratch copy is `.genretag-<pid>-<name>` beside the target, locked
//! ([`super::lock`]) from creation to rename, so a later run can tell a copy whose
//! writer died from one still being written.

use std::fs::{File, Metadata, OpenOptions};
use std::path::{Path, PathBuf};

use crate::audio::source::{open_regular, special_kind};
use crate::error::TagError;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TagError + '_ {
    move |source| TagError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn metadata_err(path: &Path, reason: String) -> TagError {
    TagError::Metadata {
        path: path.to_path_buf(),
        reason,
    }
}

/// The file a write to `requested` really changes, and what it was like beforehand.
#[derive(Debug)]
pub struct Target {
    /// The path as the caller named it (possibly a symbolic link).
    pub requested: PathBuf,
    /// The resolved regular file that is replaced.
    pub path: PathBuf,
    /// Its metadata when resolved.
    pub meta: Metadata,
}

/// Resolve `path` to the regular file a write would replace, refusing what cannot be
/// written safely: special files, files with several hard links, read-only files.
pub fn resolve(path: &Path) -> Result<Target, TagError> {
    let resolved = std::fs::canonicalize(path).map_err(io_err(path))?;
    let meta = std::fs::metadata(&resolved).map_err(io_err(path))?;
    if let Some(kind) = special_kind(&meta) {
        return Err(TagError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("not a regular file: {kind}"),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(TagError::HardLinked {
                path: path.to_path_buf(),
                links: meta.nlink(),
            });
        }
    }
    if meta.permissions().readonly() {
        return Err(TagError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    Ok(Target {
        requested: path.to_path_buf(),
        path: resolved,
        meta,
    })
}

/// Where the scratch copy of `target` (a resolved path) is made, in this process.
pub fn scratch_path(target: &Path) -> PathBuf {
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut name = std::ffi::OsString::from(format!(".genretag-{}-", std::process::id()));
    if let Some(n) = target.file_name() {
        // Keeping the name keeps the extension, which some tag parsers look at.
        name.push(n);
    }
    dir.join(name)
}

/// A locked scratch copy of a target; removed on drop unless committed.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    file: File,
    committed: bool,
}

impl Scratch {
    /// Copy `target` to its scratch path with its owner, group, mode and extended
    /// attributes. Fails (leaving nothing behind) if any of those cannot be carried.
    pub fn create(target: &Target) -> Result<Self, TagError> {
        let path = scratch_path(&target.path);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Private until its metadata is set (it may hold a file others cannot read).
            options.mode(0o600);
        }
        let file = match options.open(&path) {
            // A copy left by a dead process that had our pid: remove it and retry once.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                super::lock::remove_if_stale(&path).map_err(io_err(&target.requested))?;
                options.open(&path)
            }
            other => other,
        }
        .map_err(io_err(&target.requested))?;
        // From here on `Drop` removes the copy if anything fails.
        let mut scratch = Self {
            path,
            file,
            committed: false,
        };
        // Nobody else has this new file open, so the lock is granted at once.
        scratch.file.lock().map_err(io_err(&target.requested))?;
        let mut src = open_regular(&target.path).map_err(io_err(&target.requested))?;
        std::io::copy(&mut src, &mut scratch.file).map_err(io_err(&target.requested))?;
        carry_metadata(&scratch.file, &src, &target.meta, &target.requested)?;
        Ok(scratch)
    }

    /// The scratch copy's path (to write tags into).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rename the scratch copy over the target, if the target has not changed since it
    /// was resolved; then make the rename durable.
    pub fn commit(mut self, target: &Target) -> Result<(), TagError> {
        let now = std::fs::metadata(&target.path).map_err(io_err(&target.requested))?;
        if stamp(&now) != stamp(&target.meta) {
            return Err(TagError::Verify {
                path: target.requested.clone(),
                reason: "another program changed the file while genretag was writing it".into(),
            });
        }
        self.file.sync_all().map_err(io_err(&target.requested))?;
        std::fs::rename(&self.path, &target.path).map_err(io_err(&target.requested))?;
        self.committed = true;
        let dir = target
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // The rename is durable once the directory is synced.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&target.requested))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing more can be done about a failure here: the copy is locked until
            // this process exits, and the next run's cleanup removes it then.
            let _left_for_cleanup = std::fs::remove_file(&self.path);
        }
    }
}

/// What identifies a file's content version without reading it.
fn stamp(m: &Metadata) -> (u64, Option<std::time::SystemTime>, u64) {
    #[cfg(unix)]
    let ino = {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    };
    #[cfg(not(unix))]
    let ino = 0;
    (m.len(), m.modified().ok(), ino)
}

/// Give `dst` the owner, group, extended attributes and mode of the original (`src`,
/// `meta`), then check they arrived.
#[cfg(unix)]
fn carry_metadata(dst: &File, src: &File, meta: &Metadata, shown: &Path) -> Result<(), TagError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use xattr::FileExt;

    let (uid, gid) = (meta.uid(), meta.gid());
    let mine = dst.metadata().map_err(io_err(shown))?;
    if (mine.uid(), mine.gid()) != (uid, gid) {
        std::os::unix::fs::fchown(dst, Some(uid), Some(gid)).map_err(|e| {
            metadata_err(
                shown,
                format!(
                    "cannot keep its owner and group (user {uid}, group {gid}) on the rewritten \
                     file ({e}); run as that user, or as root"
                ),
            )
        })?;
    }
    // Extended attributes, ACLs included. One the new file already has with the same
    // value (e.g. an SELinux label given by policy) is left as it is.
    let names: Vec<_> = src.list_xattr().map_err(io_err(shown))?.collect();
    for name in &names {
        let Some(value) = src.get_xattr(name).map_err(io_err(shown))? else {
            continue;
        };
        if dst.get_xattr(name).map_err(io_err(shown))?.as_deref() == Some(&value[..]) {
            continue;
        }
        dst.set_xattr(name, &value).map_err(|e| {
            metadata_err(
                shown,
                format!(
                    "cannot keep its extended attribute {} ({e})",
                    name.to_string_lossy()
                ),
            )
        })?;
    }
    // Mode last: changing the owner clears set-user/group-id bits.
    dst.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io_err(shown))?;

    let got = dst.metadata().map_err(io_err(shown))?;
    if (got.uid(), got.gid(), got.mode() & 0o7777) != (uid, gid, meta.mode() & 0o7777) {
        return Err(metadata_err(
            shown,
            format!(
                "the rewritten file would have owner {}:{} mode {:o} instead of {uid}:{gid} {:o}",
                got.uid(),
                got.gid(),
                got.mode() & 0o7777,
                meta.mode() & 0o7777
            ),
        ));
    }
    for name in &names {
        if dst.get_xattr(name).map_err(io_err(shown))?
            != src.get_xattr(name).map_err(io_err(shown))?
        {
            return Err(metadata_err(
                shown,
                format!(
                    "its extended attribute {} did not carry over",
                    name.to_string_lossy()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn carry_metadata(dst: &File, _src: &File, meta: &Metadata, shown: &Path) -> Result<(), TagError> {
    dst.set_permissions(meta.permissions())
        .map_err(io_err(shown))
}
