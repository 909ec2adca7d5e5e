//! Applying proposals through the journal, and undoing batches exactly.
//!
//! Every write and undo holds the library's writer lock ([`Library::write_lock`]), so
//! two processes never rewrite the same files at once, and re-checks the file under
//! it: a proposal made from genres the file no longer has is not applied.
//!
//! Undo decides by content, not by size or mtime: a file is reverted only if its
//! content hash is the one genretag last left it with (after the write, or after the
//! undo of a later batch), so `touch` is not a change but any edit by another program
//! is. Batches are undone newest first; a write that a later, still active batch wrote
//! over is refused with that batch's number. A refused write is marked `refused`, so the
//! next `undo` moves on to the previous batch instead of stopping at this one forever;
//! `undo --batch N` retries refused writes.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::db::{DbError, JournalEntry, Library, state};
use super::paths::{escaped, serialize_paths, serialize_problems};
use super::policy::Proposal;
use super::replace::scratch_path;
use super::tags::{TagWriteOptions, check_writable, read_tags, write_genres};
use crate::error::TagError;

/// Write one proposal, journaled: `pending` committed before the file changes, `done`
/// or `failed` after. The inner error is why the file was not written (it is then
/// unchanged), typed so a caller can tell a file that cannot take tags
/// ([`TagError::Unsupported`]) from one that failed.
pub fn apply_checked(
    lib: &Library,
    batch: i64,
    path: &Path,
    proposal: &Proposal,
    opts: &TagWriteOptions,
) -> Result<Result<(), TagError>, DbError> {
    let _writer = lib.write_lock()?;
    // Refusals that need no journal row: nothing is attempted.
    let target = match check_writable(path) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    match read_tags(path) {
        Ok(t) if t.genres == proposal.existing => {}
        Ok(t) => {
            return Ok(Err(TagError::Changed {
                path: path.to_path_buf(),
                reason: format!(
                    "its genres changed since they were read (now {:?}, expected {:?})",
                    t.genres, proposal.existing
                ),
            }));
        }
        Err(e) => return Ok(Err(e)),
    }
    let before = lib.rehash(path)?;
    let id = lib.journal_pending(
        batch,
        path,
        &proposal.existing,
        &proposal.proposed,
        before.as_deref(),
        Some(&scratch_path(&target.path)),
    )?;
    match write_genres(path, &proposal.proposed, opts) {
        Ok(_) => match lib.rehash(path)? {
            Some(after) => {
                lib.journal_settle_write(id, path, Ok(&after))?;
                lib.carry_analyses(before.as_deref(), &after)?;
                lib.mark_for_rescan(path)?;
                Ok(Ok(()))
            }
            None => {
                // Written, but unreadable a moment later: leave the row for recovery
                // to settle by reading the file when it can.
                Ok(Err(TagError::Verify {
                    path: path.to_path_buf(),
                    reason: "written, but the file could not be read back".into(),
                }))
            }
        },
        Err(e) => {
            lib.journal_settle_write(id, path, Err(&e.to_string()))?;
            Ok(Err(e))
        }
    }
}

/// What an undo did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct UndoReport {
    /// The batch.
    pub batch: i64,
    /// Files restored to their old genres.
    #[serde(serialize_with = "serialize_paths")]
    pub reverted: Vec<PathBuf>,
    /// Files left alone, and why (changed since the write, unreadable...).
    #[serde(serialize_with = "serialize_problems")]
    pub refused: Vec<(PathBuf, String)>,
}

/// Revert the writes of `batch` still in effect (`done`, and `refused` ones again),
/// newest first. A file whose content is not what genretag last left it with, or that a
/// later batch wrote over, is refused and not touched.
pub fn undo_batch(
    lib: &Library,
    batch: i64,
    opts: &TagWriteOptions,
) -> Result<UndoReport, DbError> {
    let _writer = lib.write_lock()?;
    let mut report = UndoReport {
        batch,
        ..UndoReport::default()
    };
    let mut entries = lib.journal(Some(batch))?;
    entries.reverse();
    for e in entries
        .into_iter()
        .filter(|e| e.state == state::DONE || e.state == state::REFUSED)
    {
        match undo_one(lib, &e, opts)? {
            Ok(()) => report.reverted.push(e.path),
            Err(why) => {
                let why = why.to_string();
                lib.journal_settle_undo(e.id, &e.path, Err(&why))?;
                let reason = format!("{why}: {}", escaped(&e.path));
                report.refused.push((e.path, reason));
            }
        }
    }
    // Every write of the batch is now undone or refused: the batch is done with.
    if !lib
        .journal(Some(batch))?
        .iter()
        .any(|e| e.state == state::DONE)
    {
        lib.mark_batch_undone(batch)?;
    }
    Ok(report)
}

/// Why undo left a file as it is.
#[derive(Debug, thiserror::Error)]
pub enum UndoRefusal {
    /// A later batch wrote the file again; undoing this one would lose that write.
    #[error("batch {0} wrote this file again later; undo batch {0} first")]
    LaterWrite(i64),
    /// The file is gone or cannot be read.
    #[error("cannot read the file (moved, deleted or unreadable)")]
    Unreadable,
    /// Its content is no longer what genretag wrote (someone edited it since).
    #[error("changed since genretag last wrote it (its content differs)")]
    ContentChanged,
    /// Its genres are no longer what genretag wrote.
    #[error("changed since genretag wrote it (genres are now {0:?})")]
    GenresChanged(Vec<String>),
    /// The old tags could not be read or written back.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// The old genres were written back, but the file could not be read afterwards.
    #[error("reverted, but the file could not be read back")]
    NotReadBack,
}

/// Revert one write if the file is as genretag left it; the inner error refuses.
fn undo_one(
    lib: &Library,
    e: &JournalEntry,
    opts: &TagWriteOptions,
) -> Result<Result<(), UndoRefusal>, DbError> {
    if let Some(later) = lib.later_write(e)? {
        return Ok(Err(UndoRefusal::LaterWrite(later)));
    }
    let expected = lib.file_state(&e.path)?;
    let Some(now) = lib.rehash(&e.path)? else {
        return Ok(Err(UndoRefusal::Unreadable));
    };
    // Rows from before content hashes (schema 1) have no expected content: their genres
    // are all there is to go on.
    if expected.as_ref().is_some_and(|h| *h != now) {
        return Ok(Err(UndoRefusal::ContentChanged));
    }
    match read_tags(&e.path) {
        Ok(t) if t.genres == e.new => {}
        Ok(t) => return Ok(Err(UndoRefusal::GenresChanged(t.genres))),
        Err(err) => return Ok(Err(err.into())),
    }
    // Where the undo's scratch copy will be, for recovery; a file that cannot be
    // written has none (write_genres then refuses it with the reason).
    let scratch = check_writable(&e.path).ok().map(|t| scratch_path(&t.path));
    lib.journal_undoing(e.id, scratch.as_deref())?;
    match write_genres(&e.path, &e.old, opts) {
        Ok(_) => {
            let Some(after) = lib.rehash(&e.path)? else {
                // Replaced, but unreadable a moment later: recovery settles the row.
                return Ok(Err(UndoRefusal::NotReadBack));
            };
            lib.journal_settle_undo(e.id, &e.path, Ok(&after))?;
            lib.carry_analyses(Some(&now), &after)?;
            lib.mark_for_rescan(&e.path)?;
            Ok(Ok(()))
        }
        Err(err) => Ok(Err(err.into())),
    }
}

/// Remove scratch copies (`.genretag-<pid>-<name>`) left in `dir` by a process that
/// was killed mid-write; copies still being written (locked by their writer) are left
/// alone. Returns how many were removed.
pub fn remove_stale_scratch(dir: &Path) -> usize {
    super::lock::remove_stale_scratch(dir).0
}
