//! Applying proposals through the journal, and undoing batches exactly.

use std::path::{Path, PathBuf};

use super::db::{DbError, Library, stamp};
use super::policy::Proposal;
use super::tags::{TagWriteOptions, read_tags, write_genres};

/// Write one proposal, journaled: `pending` committed before the file changes,
/// `done` or `failed` after. Returns the error text on failure (the file is unchanged).
pub fn apply(
    lib: &Library,
    batch: i64,
    path: &Path,
    proposal: &Proposal,
    opts: &TagWriteOptions,
) -> Result<Result<(), String>, DbError> {
    let id = lib.journal_pending(batch, path, &proposal.existing, &proposal.proposed)?;
    match write_genres(path, &proposal.proposed, opts) {
        Ok(_) => {
            lib.journal_set_state(id, "done", path)?;
            lib.refresh_stamp(path)?;
            Ok(Ok(()))
        }
        Err(e) => {
            lib.journal_set_state(id, "failed", path)?;
            Ok(Err(e.to_string()))
        }
    }
}

/// What an undo did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct UndoReport {
    /// The batch.
    pub batch: i64,
    /// Files restored to their old genres.
    pub reverted: Vec<PathBuf>,
    /// Files left alone, and why (changed since the write, unreadable...).
    pub refused: Vec<(PathBuf, String)>,
}

/// Revert every `done` write of `batch`, newest first. A file changed since its write
/// (size, mtime or genres differ from what the write left) is refused, not touched.
pub fn undo_batch(
    lib: &Library,
    batch: i64,
    opts: &TagWriteOptions,
) -> Result<UndoReport, DbError> {
    let mut report = UndoReport {
        batch,
        ..UndoReport::default()
    };
    let mut entries = lib.journal(Some(batch))?;
    entries.reverse();
    for e in entries.into_iter().filter(|e| e.state == "done") {
        let unchanged = stamp(&e.path) == e.size_after.zip(e.mtime_after)
            && read_tags(&e.path).is_ok_and(|t| t.genres == e.new);
        if !unchanged {
            report.refused.push((
                e.path.clone(),
                format!("changed since genretag wrote it: {}", e.path.display()),
            ));
            continue;
        }
        lib.journal_set_state(e.id, "undoing", &e.path)?;
        match write_genres(&e.path, &e.old, opts) {
            Ok(_) => {
                lib.journal_set_state(e.id, "undone", &e.path)?;
                lib.refresh_stamp(&e.path)?;
                report.reverted.push(e.path);
            }
            Err(err) => {
                lib.journal_set_state(e.id, "done", &e.path)?;
                report.refused.push((e.path, err.to_string()));
            }
        }
    }
    if report.refused.is_empty() {
        lib.mark_batch_undone(batch)?;
    }
    Ok(report)
}

/// Remove scratch copies (`.genretag-<pid>-<name>`) left in `dir` by a process that
/// was killed mid-write. Copies of running processes are left alone. Returns how many.
pub fn remove_stale_scratch(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(".genretag-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
