//! The library database (SQLite, WAL): tracks, analysis results per (content, model),
//! and the journal of tag writes that `undo` replays backwards.
//!
//! Journal protocol, per file: a `pending` row (old and new genres, the file's content
//! hash, the scratch copy's path) is committed *before* the file is replaced, and
//! marked `done` (with the content hash afterwards) once it is. After a crash,
//! [`Library::reconcile`] settles every `pending` row by reading the file (content
//! unchanged -> `failed`, new genres -> `done`) and removes the scratch copies the dead
//! writer left. Recovery runs whenever the library's writer lock is taken: so
//! `Library::open` runs it when no other process is writing (every command and the app
//! start from a settled journal), and a writer that waited for the lock settles what a
//! holder killed mid-batch left before it writes anything itself.
//!
//! Paths are stored as BLOBs of their exact bytes ([`super::paths`]). The schema is
//! versioned ([`super::schema`]).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::lock::{LibraryLock, lock_path};
use super::paths::{escaped, from_bytes, to_bytes};
use super::schema::{self, LATEST, Refusal};

/// Why the library database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed (full disk, corrupt file, not a database...).
    #[error("library database error ({source}): {}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// Made by a newer genretag.
    #[error(
        "the library database was made by a newer genretag (schema version {found}; this \
         genretag knows up to {LATEST}); use that version, or another --db: {}",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// An SQLite file that is not a genretag library.
    #[error(
        "not a genretag library database (it holds other tables: {tables}); use another --db: \
         {}",
        path.display()
    )]
    Unrelated {
        /// The database file.
        path: PathBuf,
        /// The tables it holds.
        tables: String,
    },
    /// The folder or the lock file beside the database cannot be used.
    #[error("cannot use the library's files ({source}): {}", path.display())]
    Io {
        /// The folder or lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The default database: `$XDG_DATA_HOME/genretag/library.sqlite3`
/// (`~/.local/share/genretag/library.sqlite3`).
pub fn default_db_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("genretag").join("library.sqlite3")
}

/// Seconds since the epoch.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Size and modification time (ns) of a file, to notice changes cheaply.
pub fn stamp(path: &Path) -> Option<(i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos() as i64;
    Some((m.len() as i64, mtime))
}

/// Size, mtime, ctime (ns) and inode: while these are unchanged, so is the content
/// (ctime cannot be set back by any tool, unlike mtime).
fn full_stamp(path: &Path) -> Option<[i64; 4]> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some([
            m.len() as i64,
            m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            m.ino() as i64,
        ])
    }
    #[cfg(not(unix))]
    {
        let mtime = m
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos() as i64;
        Some([m.len() as i64, mtime, 0, 0])
    }
}

/// State of a journal row.
pub mod state {
    /// Committed before the file is replaced.
    pub const PENDING: &str = "pending";
    /// The file has the new genres.
    pub const DONE: &str = "done";
    /// The write did not happen; the file is as it was.
    pub const FAILED: &str = "failed";
    /// An undo is replacing the file.
    pub const UNDOING: &str = "undoing";
    /// The file has its old genres back.
    pub const UNDONE: &str = "undone";
    /// An undo left the file alone (changed since, or could not be written); see `note`.
    pub const REFUSED: &str = "refused";
}

/// One journaled genre write.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Row id (write order).
    pub id: i64,
    /// Batch it belongs to.
    pub batch: i64,
    /// The file (as the command named it; possibly a symbolic link).
    pub path: PathBuf,
    /// Genres before.
    pub old: Vec<String>,
    /// Genres after.
    pub new: Vec<String>,
    /// One of [`state`].
    pub state: String,
    /// Content hash before the write (`None` for rows from before version 2).
    pub hash_before: Option<String>,
    /// Content hash the write left.
    pub hash_after: Option<String>,
    /// The scratch copy of a write in flight.
    pub scratch: Option<PathBuf>,
    /// Why a write failed or an undo refused.
    pub note: Option<String>,
}

/// One batch of writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Id.
    pub id: i64,
    /// When it started.
    pub created_at: i64,
    /// What ran it.
    pub command: String,
    /// When it was undone (every write reverted or refused), if it was.
    pub undone_at: Option<i64>,
}

/// What opening the library recovered from an earlier crash.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Interrupted journal rows settled.
    pub settled: usize,
    /// Scratch copies removed.
    pub scratch_removed: usize,
    /// Scratch copies that could not be removed, and why.
    pub problems: Vec<(PathBuf, String)>,
    /// False if another process was writing, so nothing was recovered.
    pub ran: bool,
}

/// An open library database.
pub struct Library {
    conn: Connection,
    path: PathBuf,
    lock_path: PathBuf,
    lock: RefCell<Option<LibraryLock>>,
    lock_depth: Cell<usize>,
    recovery: Recovery,
    /// What the last acquisition of the writer lock recovered.
    last_recovery: RefCell<Recovery>,
}

/// The library's writer lock (re-entrant within one [`Library`]); released when the
/// last guard is dropped.
pub struct WriteGuard<'a> {
    lib: &'a Library,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let depth = self.lib.lock_depth.get().saturating_sub(1);
        self.lib.lock_depth.set(depth);
        if depth == 0 {
            self.lib.lock.borrow_mut().take();
        }
    }
}

fn to_json(v: &[String]) -> String {
    // A list of strings always serialises.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Genres stored as JSON by this module; anything else is a corrupt row.
fn from_json(s: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

const JOURNAL_COLUMNS: &str =
    "id, batch_id, path, old_genres, new_genres, state, hash_before, hash_after, scratch, note";

fn journal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        id: r.get(0)?,
        batch: r.get(1)?,
        path: from_bytes(r.get(2)?),
        old: from_json(&r.get::<_, String>(3)?)?,
        new: from_json(&r.get::<_, String>(4)?)?,
        state: r.get(5)?,
        hash_before: r.get(6)?,
        hash_after: r.get(7)?,
        scratch: r.get::<_, Option<Vec<u8>>>(8)?.map(from_bytes),
        note: r.get(9)?,
    })
}

impl Library {
    /// Open (creating if needed) the database at `path`, migrate it to the current
    /// schema, and, unless another process is writing, settle what a crash left
    /// ([`Library::recovery`] says what).
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let err = |source| DbError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = Connection::open(path).map_err(err)?;
        // WAL: readers never block the writer and a crash mid-transaction rolls back.
        // busy_timeout: a second process waits for the lock instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // Switching a new database to WAL can race another process doing the same;
        // SQLite then answers BUSY without waiting, so retry.
        let mut attempt = 0;
        loop {
            let init = |conn: &mut Connection| -> rusqlite::Result<Result<(), Refusal>> {
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn.pragma_update(None, "foreign_keys", "ON")?;
                schema::migrate(conn)
            };
            match init(&mut conn) {
                Ok(Ok(())) => break,
                Ok(Err(Refusal::TooNew(found))) => {
                    return Err(DbError::TooNew {
                        path: path.to_path_buf(),
                        found,
                    });
                }
                Ok(Err(Refusal::Unrelated(tables))) => {
                    return Err(DbError::Unrelated {
                        path: path.to_path_buf(),
                        tables: tables.join(", "),
                    });
                }
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 200 =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(err(e)),
            }
        }
        let mut lib = Self {
            conn,
            path: path.to_path_buf(),
            lock_path: lock_path(path),
            lock: RefCell::new(None),
            lock_depth: Cell::new(0),
            recovery: Recovery::default(),
            last_recovery: RefCell::new(Recovery::default()),
        };
        let recovered = lib.try_write_lock()?.is_some();
        if recovered {
            lib.recovery = lib.last_recovery.take();
        }
        Ok(lib)
    }

    /// What [`Library::open`] recovered from an earlier crash.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// What the last acquisition of the writer lock recovered (after waiting for a
    /// process that may have died mid-batch).
    pub fn last_recovery(&self) -> Recovery {
        self.last_recovery.borrow().clone()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection (for the scanner in this module's siblings).
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// second process waits on the busy timeout instead of failing on a lock upgrade.
    pub(super) fn write_tx(&self) -> Result<rusqlite::Transaction<'_>, DbError> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())
    }

    /// Error mapper naming this database.
    pub(super) fn error(&self) -> impl FnOnce(rusqlite::Error) -> DbError + '_ {
        self.err()
    }

    fn err(&self) -> impl FnOnce(rusqlite::Error) -> DbError + '_ {
        move |source| DbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn lock_err(&self) -> impl FnOnce(std::io::Error) -> DbError + '_ {
        move |source| DbError::Io {
            path: self.lock_path.clone(),
            source,
        }
    }

    /// Take the library's writer lock, waiting while another process holds it.
    /// `waiting` is called once, with the holder's pid if known, before a wait.
    /// Re-entrant: nested guards share the lock. Taking it settles what an earlier
    /// holder killed mid-batch left ([`Library::last_recovery`] says what).
    pub fn write_lock_with(
        &self,
        waiting: impl FnOnce(Option<u32>),
    ) -> Result<WriteGuard<'_>, DbError> {
        if self.lock_depth.get() > 0 {
            self.lock_depth.set(self.lock_depth.get() + 1);
            return Ok(WriteGuard { lib: self });
        }
        let lock = match LibraryLock::try_acquire(&self.lock_path).map_err(self.lock_err())? {
            Some(l) => l,
            None => {
                waiting(LibraryLock::holder(&self.lock_path));
                LibraryLock::acquire(&self.lock_path).map_err(self.lock_err())?
            }
        };
        self.locked(lock)
    }

    /// [`Library::write_lock_with`] without a message.
    pub fn write_lock(&self) -> Result<WriteGuard<'_>, DbError> {
        self.write_lock_with(|_| {})
    }

    /// The writer lock if no other process holds it.
    pub fn try_write_lock(&self) -> Result<Option<WriteGuard<'_>>, DbError> {
        if self.lock_depth.get() > 0 {
            self.lock_depth.set(self.lock_depth.get() + 1);
            return Ok(Some(WriteGuard { lib: self }));
        }
        match LibraryLock::try_acquire(&self.lock_path).map_err(self.lock_err())? {
            Some(l) => self.locked(l).map(Some),
            None => Ok(None),
        }
    }

    /// The lock was just taken: hold it, and settle rows a dead holder left in flight
    /// before anything else is written (otherwise a write over the same file would make
    /// the dead holder's finished write look like it never happened).
    fn locked(&self, lock: LibraryLock) -> Result<WriteGuard<'_>, DbError> {
        *self.lock.borrow_mut() = Some(lock);
        self.lock_depth.set(1);
        let guard = WriteGuard { lib: self };
        let recovery = self.settle_interrupted()?;
        *self.last_recovery.borrow_mut() = recovery;
        Ok(guard)
    }

    /// Start a batch of writes; returns its id.
    pub fn begin_batch(&self, command: &str) -> Result<i64, DbError> {
        self.conn
            .execute(
                "INSERT INTO batches (created_at, command) VALUES (?1, ?2)",
                params![now_s(), command],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Journal a write about to happen (committed before the file is touched), with the
    /// file's content hash now and the scratch copy that will be made.
    pub fn journal_pending(
        &self,
        batch: i64,
        path: &Path,
        old: &[String],
        new: &[String],
        hash_before: Option<&str>,
        scratch: Option<&Path>,
    ) -> Result<i64, DbError> {
        self.conn
            .execute(
                "INSERT INTO tag_writes (batch_id, path, old_genres, new_genres, state,
                                         hash_before, scratch, written_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7)",
                params![
                    batch,
                    to_bytes(path),
                    to_json(old),
                    to_json(new),
                    hash_before,
                    scratch.map(to_bytes),
                    now_s()
                ],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Settle a write: `done` with the content it left (recorded as the file's state),
    /// or `failed` with why. The scratch copy is no longer in flight either way.
    pub fn journal_settle_write(
        &self,
        id: i64,
        path: &Path,
        outcome: Result<&str, &str>,
    ) -> Result<(), DbError> {
        self.journal_settle(id, path, outcome, ("done", "hash_after"), "failed")
    }

    /// Settle a journal row: on success `ok.0` with the content left in column `ok.1`
    /// (and as the file's state), else `failed` with the note; the scratch copy is no
    /// longer in flight either way.
    fn journal_settle(
        &self,
        id: i64,
        path: &Path,
        outcome: Result<&str, &str>,
        ok: (&str, &str),
        failed: &str,
    ) -> Result<(), DbError> {
        let tx = self.write_tx()?;
        match outcome {
            Ok(hash) => {
                let (state, column) = ok;
                tx.execute(
                    &format!(
                        "UPDATE tag_writes SET state = '{state}', {column} = ?2, scratch = NULL,
                           note = NULL WHERE id = ?1"
                    ),
                    params![id, hash],
                )
                .map_err(self.err())?;
                set_file_state(&tx, path, hash).map_err(self.err())?;
            }
            Err(note) => {
                tx.execute(
                    &format!(
                        "UPDATE tag_writes SET state = '{failed}', scratch = NULL, note = ?2
                         WHERE id = ?1"
                    ),
                    params![id, note],
                )
                .map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())
    }

    /// Mark a row `undoing` (committed before the file is replaced by the undo).
    pub fn journal_undoing(&self, id: i64, scratch: Option<&Path>) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE tag_writes SET state = 'undoing', scratch = ?2 WHERE id = ?1",
                params![id, scratch.map(to_bytes)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Settle an undo: `undone` with the content it left, or `refused` with why (the
    /// file is as the write left it, or was changed by someone else).
    pub fn journal_settle_undo(
        &self,
        id: i64,
        path: &Path,
        outcome: Result<&str, &str>,
    ) -> Result<(), DbError> {
        self.journal_settle(id, path, outcome, ("undone", "hash_undone"), "refused")
    }

    /// The content genretag last left `path` with (after a write or an undo), if it
    /// ever wrote it since journal rows carried hashes.
    pub fn file_state(&self, path: &Path) -> Result<Option<String>, DbError> {
        self.conn
            .query_row(
                "SELECT hash FROM file_states WHERE path = ?1",
                params![to_bytes(path)],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// A later write of the same path that is still in effect (done, refused by an
    /// undo, or in flight), by batch: an earlier write cannot be undone before it.
    pub fn later_write(&self, entry: &JournalEntry) -> Result<Option<i64>, DbError> {
        self.conn
            .query_row(
                "SELECT batch_id FROM tag_writes WHERE path = ?1 AND id > ?2
                   AND state IN ('done', 'refused', 'pending', 'undoing')
                 ORDER BY id DESC LIMIT 1",
                params![to_bytes(&entry.path), entry.id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// Mark a batch undone.
    pub fn mark_batch_undone(&self, batch: i64) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE batches SET undone_at = ?2 WHERE id = ?1",
                params![batch, now_s()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// All batches, newest first.
    pub fn batches(&self) -> Result<Vec<Batch>, DbError> {
        let mut st = self
            .conn
            .prepare("SELECT id, created_at, command, undone_at FROM batches ORDER BY id DESC")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok(Batch {
                    id: r.get(0)?,
                    created_at: r.get(1)?,
                    command: r.get(2)?,
                    undone_at: r.get(3)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// The newest batch with writes still in effect (`done`). A batch whose remaining
    /// writes were all refused by an undo is not chosen again, so `undo` walks back
    /// through batches instead of stopping at one it cannot finish.
    pub fn last_undoable_batch(&self) -> Result<Option<i64>, DbError> {
        self.conn
            .query_row(
                "SELECT batch_id FROM tag_writes WHERE state = 'done'
                 ORDER BY batch_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// Journal rows of a batch (or, with `None`, every row in flight: `pending` or
    /// `undoing`), in write order.
    pub fn journal(&self, batch: Option<i64>) -> Result<Vec<JournalEntry>, DbError> {
        let sql = format!(
            "SELECT {JOURNAL_COLUMNS} FROM tag_writes
             WHERE (?1 IS NULL AND state IN ('pending', 'undoing')) OR batch_id = ?1 ORDER BY id"
        );
        let mut st = self.conn.prepare(&sql).map_err(self.err())?;
        let rows = st
            .query_map(params![batch], journal_row)
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Settle rows a crash left in flight, and remove the scratch copies their writers
    /// left; returns how many rows were settled. Does nothing while another process
    /// holds the writer lock (its rows are live, not interrupted).
    ///
    /// A `pending` write whose file still has its old content is `failed`; one whose file
    /// has the new genres is `done`. An `undoing` row whose file has the old genres is
    /// `undone`; otherwise the write is still in effect (`done`).
    pub fn reconcile(&self) -> Result<usize, DbError> {
        if self.lock_depth.get() > 0 {
            // This process is the writer: its own rows are settled as it goes.
            return Ok(self.settle_interrupted()?.settled);
        }
        match self.try_write_lock()? {
            Some(_writer) => Ok(self.last_recovery.borrow().settled),
            None => Ok(0),
        }
    }

    /// Settle every row in flight; only called while holding the writer lock.
    fn settle_interrupted(&self) -> Result<Recovery, DbError> {
        let mut recovery = Recovery {
            ran: true,
            ..Recovery::default()
        };
        for e in self.journal(None)? {
            if let Some(scratch) = &e.scratch {
                match super::lock::remove_if_stale(scratch) {
                    Ok(true) => recovery.scratch_removed += 1,
                    Ok(false) => {}
                    Err(err) => recovery.problems.push((scratch.clone(), err.to_string())),
                }
            }
            // A file that cannot be read now cannot confirm a write: it settles as not
            // having happened (pending) or as still written (undoing), and undo later
            // refuses it by content if that was wrong.
            let hash = super::files::content_hash(&e.path).ok();
            let genres = super::tags::read_tags(&e.path).map(|t| t.genres).ok();
            let unchanged = hash.is_some() && hash == e.hash_before;
            match e.state.as_str() {
                state::PENDING => match (&hash, genres) {
                    (Some(h), Some(g)) if g == e.new && !unchanged => {
                        self.journal_settle_write(e.id, &e.path, Ok(h))?;
                        self.carry_analyses(e.hash_before.as_deref(), h)?;
                    }
                    _ => self.journal_settle_write(
                        e.id,
                        &e.path,
                        Err("interrupted before the file was replaced"),
                    )?,
                },
                _ => match (&hash, genres) {
                    (Some(h), Some(g)) if g == e.old && hash != e.hash_after => {
                        self.journal_settle_undo(e.id, &e.path, Ok(h))?;
                    }
                    _ => {
                        // The undo never replaced the file: the write is still in effect.
                        self.conn
                            .execute(
                                "UPDATE tag_writes SET state = 'done', scratch = NULL WHERE id = ?1",
                                params![e.id],
                            )
                            .map_err(self.err())?;
                    }
                },
            }
            recovery.settled += 1;
        }
        Ok(recovery)
    }

    /// The content hash of `path`, from the memo while its size, mtime, ctime and inode
    /// are unchanged, else by reading it (and remembering). `None` if it cannot be read
    /// (the caller then reads it itself and reports why).
    pub fn content_hash_of(&self, path: &Path) -> Result<Option<String>, DbError> {
        let Some(before) = full_stamp(path) else {
            return Ok(None);
        };
        let key = to_bytes(path);
        let memo: Option<String> = self
            .conn
            .query_row(
                "SELECT hash FROM file_hashes WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3
                   AND ctime_ns = ?4 AND inode = ?5",
                params![key, before[0], before[1], before[2], before[3]],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        if memo.is_some() {
            return Ok(memo);
        }
        let Ok(hash) = super::files::content_hash(path) else {
            return Ok(None);
        };
        // Remember it only if the file did not change while it was read.
        if full_stamp(path) == Some(before) {
            self.remember_hash(path, before, &hash)?;
        }
        Ok(Some(hash))
    }

    /// Record `hash` as the content of `path` for this stamp.
    fn remember_hash(&self, path: &Path, stamp: [i64; 4], hash: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "INSERT INTO file_hashes (path, size, mtime_ns, ctime_ns, inode, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                   ctime_ns = excluded.ctime_ns, inode = excluded.inode, hash = excluded.hash",
                params![to_bytes(path), stamp[0], stamp[1], stamp[2], stamp[3], hash],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Hash `path` now and remember it (after genretag itself changed the file).
    pub(super) fn rehash(&self, path: &Path) -> Result<Option<String>, DbError> {
        let Some(before) = full_stamp(path) else {
            return Ok(None);
        };
        let Ok(hash) = super::files::content_hash(path) else {
            return Ok(None);
        };
        if full_stamp(path) == Some(before) {
            self.remember_hash(path, before, &hash)?;
        }
        Ok(Some(hash))
    }

    /// Cached analysis result (JSON) for a file's current content and a model.
    pub fn cached_analysis(&self, path: &Path, model: &str) -> Result<Option<String>, DbError> {
        let Some(hash) = self.content_hash_of(path)? else {
            return Ok(None);
        };
        self.conn
            .query_row(
                "SELECT result FROM analyses WHERE hash = ?1 AND model = ?2",
                params![hash, model],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// After genretag rewrote a file's tags (audio verified unchanged), its analyses
    /// stay valid: copy them from the old content hash to the new one, and mark the
    /// file's track row for the next scan to re-read its tags.
    pub fn carry_analyses(&self, old_hash: Option<&str>, new_hash: &str) -> Result<(), DbError> {
        let Some(old_hash) = old_hash.filter(|h| *h != new_hash) else {
            return Ok(());
        };
        self.conn
            .execute(
                "INSERT OR IGNORE INTO analyses (hash, model, result, analyzed_at)
                 SELECT ?2, model, result, analyzed_at FROM analyses WHERE hash = ?1",
                params![old_hash, new_hash],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Mark the track row of `path` for the next scan to re-read its tags (genretag
    /// itself changed them).
    pub fn mark_for_rescan(&self, path: &Path) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE tracks SET size = -1 WHERE path = ?1",
                params![to_bytes(path)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Every stored analysis of a file's current content: (model, result JSON), by model.
    pub fn analyses(&self, path: &Path) -> Result<Vec<(String, String)>, DbError> {
        let Some(hash) = self.content_hash_of(path)? else {
            return Ok(Vec::new());
        };
        let mut st = self
            .conn
            .prepare("SELECT model, result FROM analyses WHERE hash = ?1 ORDER BY model")
            .map_err(self.err())?;
        let rows = st
            .query_map(params![hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Store an analysis result (JSON) for a file's current content and a model. A file
    /// that cannot be read (it vanished) has nothing to key the result on: not stored.
    pub fn store_analysis(&self, path: &Path, model: &str, result: &str) -> Result<(), DbError> {
        let Some(hash) = self.content_hash_of(path)? else {
            return Ok(());
        };
        let tx = self.write_tx()?;
        // A track first seen here gets size -1: the next scan reads its tags.
        tx.execute(
            "INSERT INTO tracks (path, size, mtime_ns, scanned_at) VALUES (?1, -1, -1, ?2)
             ON CONFLICT(path) DO NOTHING",
            params![to_bytes(path), now_s()],
        )
        .map_err(self.err())?;
        tx.execute(
            "INSERT INTO analyses (hash, model, result, analyzed_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(hash, model) DO UPDATE SET result = excluded.result,
               analyzed_at = excluded.analyzed_at",
            params![hash, model, result, now_s()],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Drop analyses no known file has any more (after a scan noticed changes).
    pub(super) fn forget_orphan_analyses(&self) -> Result<usize, DbError> {
        self.conn
            .execute(
                "DELETE FROM analyses WHERE hash NOT IN (SELECT hash FROM file_hashes)",
                [],
            )
            .map_err(self.err())
    }

    /// The path for messages: escaped if not UTF-8.
    pub fn show(path: &Path) -> String {
        escaped(path)
    }
}

/// Record the content genretag left `path` with.
fn set_file_state(tx: &rusqlite::Transaction<'_>, path: &Path, hash: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO file_states (path, hash, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(path) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
        params![to_bytes(path), hash, now_s()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trip_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("lib.sqlite3");
        let f = dir.path().join("a.flac");
        std::fs::write(&f, b"x").expect("write");
        {
            let lib = Library::open(&db).expect("opens");
            let b = lib.begin_batch("test").expect("batch");
            let id = lib
                .journal_pending(b, &f, &["Old".into()], &["New".into()], Some("h0"), None)
                .expect("journal");
            lib.journal_settle_write(id, &f, Ok("h1")).expect("settle");
            assert_eq!(lib.last_undoable_batch().expect("query"), Some(b));
            lib.store_analysis(&f, "m1", "{\"x\":1}").expect("store");
        }
        let lib = Library::open(&db).expect("reopens");
        let j = lib.journal(Some(1)).expect("journal");
        assert_eq!(j.len(), 1);
        assert_eq!(
            (j[0].old.clone(), j[0].new.clone(), j[0].state.as_str()),
            (vec!["Old".to_string()], vec!["New".to_string()], "done")
        );
        assert_eq!(j[0].hash_after.as_deref(), Some("h1"));
        assert_eq!(lib.file_state(&f).expect("query").as_deref(), Some("h1"));
        assert_eq!(
            lib.cached_analysis(&f, "m1").expect("query").as_deref(),
            Some("{\"x\":1}")
        );
        assert_eq!(lib.cached_analysis(&f, "m2").expect("query"), None);
        // A `touch` is not a change: same content, same cache entry.
        let t = std::fs::File::options().write(true).open(&f).expect("open");
        t.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .expect("touch");
        assert!(lib.cached_analysis(&f, "m1").expect("query").is_some());
        // A changed file misses its cached analysis.
        std::fs::write(&f, b"xy").expect("write");
        assert_eq!(lib.cached_analysis(&f, "m1").expect("query"), None);
        // genretag's own rewrite carries the analyses to the new content.
        let old = super::super::files::bytes_hash(b"x");
        let new = lib.content_hash_of(&f).expect("hash").expect("readable");
        lib.carry_analyses(Some(&old), &new).expect("carry");
        assert!(lib.cached_analysis(&f, "m1").expect("query").is_some());
        lib.mark_batch_undone(1).expect("undo");
    }
}
