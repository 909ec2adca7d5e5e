//! The library database (SQLite, WAL): tracks, analysis results per model, and the
//! journal of tag writes that `undo` replays backwards.
//!
//! Journal protocol, per file: a `pending` row (old and new genres) is committed
//! *before* the file is replaced, and marked `done` (with the file's size and
//! mtime afterwards) once it is. After a crash, [`Library::reconcile`] settles
//! every `pending` row by reading the file: new genres -> `done`, old -> `failed`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

/// Database errors, with the database path.
#[derive(Debug, thiserror::Error)]
#[error("library database error ({source}): {}", path.display())]
pub struct DbError {
    /// The database file.
    pub path: PathBuf,
    /// What SQLite said.
    #[source]
    pub source: rusqlite::Error,
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

/// Size and modification time (ns) of a file, to notice changes.
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

/// One journaled genre write.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Row id.
    pub id: i64,
    /// Batch it belongs to.
    pub batch: i64,
    /// The file.
    pub path: PathBuf,
    /// Genres before.
    pub old: Vec<String>,
    /// Genres after.
    pub new: Vec<String>,
    /// `pending`, `done`, `failed`, `undoing` or `undone`.
    pub state: String,
    /// File size after the write.
    pub size_after: Option<i64>,
    /// File mtime (ns) after the write.
    pub mtime_after: Option<i64>,
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
    /// When it was undone, if it was.
    pub undone_at: Option<i64>,
}

/// An open library database.
pub struct Library {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    title TEXT, artist TEXT, album TEXT,
    hash TEXT,
    genres TEXT NOT NULL DEFAULT '[]',
    duration_s REAL,
    error TEXT,
    scanned_at INTEGER NOT NULL,
    seen INTEGER
);
CREATE TABLE IF NOT EXISTS analyses (
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    result TEXT NOT NULL,
    analyzed_at INTEGER NOT NULL,
    PRIMARY KEY (track_id, model)
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    command TEXT NOT NULL,
    undone_at INTEGER
);
CREATE TABLE IF NOT EXISTS tag_writes (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches(id),
    path TEXT NOT NULL,
    old_genres TEXT NOT NULL,
    new_genres TEXT NOT NULL,
    state TEXT NOT NULL,
    size_after INTEGER,
    mtime_after_ns INTEGER,
    written_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tag_writes_batch ON tag_writes(batch_id);
";

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn from_json(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl Library {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let err = |source| DbError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        // WAL: readers never block the writer and a crash mid-transaction rolls back.
        // busy_timeout: a second process waits for the lock instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // Switching a new database to WAL and creating the schema can race another
        // process doing the same; SQLite then answers BUSY without waiting, so retry.
        let init = |conn: &Connection| -> rusqlite::Result<()> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.execute_batch(SCHEMA)?;
            // Databases from before a column existed gain it (an error means it is there).
            for column in ["hash TEXT", "seen INTEGER"] {
                let _ = conn.execute(&format!("ALTER TABLE tracks ADD COLUMN {column}"), []);
            }
            Ok(())
        };
        let mut attempt = 0;
        loop {
            match init(&conn) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 200 =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
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
        move |source| DbError {
            path: self.path.clone(),
            source,
        }
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

    /// Journal a write about to happen (committed before the file is touched).
    pub fn journal_pending(
        &self,
        batch: i64,
        path: &Path,
        old: &[String],
        new: &[String],
    ) -> Result<i64, DbError> {
        self.conn
            .execute(
                "INSERT INTO tag_writes (batch_id, path, old_genres, new_genres, state, written_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                params![
                    batch,
                    path.to_string_lossy(),
                    to_json(old),
                    to_json(new),
                    now_s()
                ],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Set a journal row's state, recording the file's size and mtime now.
    pub fn journal_set_state(&self, id: i64, state: &str, path: &Path) -> Result<(), DbError> {
        let (size, mtime) = stamp(path).map_or((None, None), |(s, m)| (Some(s), Some(m)));
        self.conn
            .execute(
                "UPDATE tag_writes SET state = ?2, size_after = ?3, mtime_after_ns = ?4 WHERE id = ?1",
                params![id, state, size, mtime],
            )
            .map_err(self.err())?;
        Ok(())
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

    /// The newest batch not undone that wrote something.
    pub fn last_undoable_batch(&self) -> Result<Option<i64>, DbError> {
        self.conn
            .query_row(
                "SELECT b.id FROM batches b WHERE b.undone_at IS NULL AND EXISTS
                   (SELECT 1 FROM tag_writes w WHERE w.batch_id = b.id AND w.state = 'done')
                 ORDER BY b.id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// Journal rows of a batch (or, with `None`, every `pending` row), in write order.
    pub fn journal(&self, batch: Option<i64>) -> Result<Vec<JournalEntry>, DbError> {
        let sql = "SELECT id, batch_id, path, old_genres, new_genres, state, size_after, mtime_after_ns
                   FROM tag_writes WHERE (?1 IS NULL AND state IN ('pending', 'undoing')) OR batch_id = ?1
                   ORDER BY id";
        let mut st = self.conn.prepare(sql).map_err(self.err())?;
        let rows = st
            .query_map(params![batch], |r| {
                Ok(JournalEntry {
                    id: r.get(0)?,
                    batch: r.get(1)?,
                    path: PathBuf::from(r.get::<_, String>(2)?),
                    old: from_json(&r.get::<_, String>(3)?),
                    new: from_json(&r.get::<_, String>(4)?),
                    state: r.get(5)?,
                    size_after: r.get(6)?,
                    mtime_after: r.get(7)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Settle rows a crash left in flight by reading each file's genres: a `pending`
    /// write is `done` if the file has the new genres, else `failed`; an `undoing` one is
    /// `undone` if the file has the old genres, else still `done`. Returns how many.
    pub fn reconcile(&self) -> Result<usize, DbError> {
        let open = self.journal(None)?;
        for e in &open {
            let genres = super::tags::read_tags(&e.path).map(|t| t.genres).ok();
            let state = match (e.state.as_str(), genres) {
                ("pending", Some(g)) if g == e.new => "done",
                ("pending", _) => "failed",
                (_, Some(g)) if g == e.old => "undone",
                _ => "done",
            };
            self.journal_set_state(e.id, state, &e.path)?;
        }
        Ok(open.len())
    }

    /// Cached analysis result (JSON) for a file, if its size and mtime still match.
    pub fn cached_analysis(&self, path: &Path, model: &str) -> Result<Option<String>, DbError> {
        let Some((size, mtime)) = stamp(path) else {
            return Ok(None);
        };
        self.conn
            .query_row(
                "SELECT a.result FROM analyses a JOIN tracks t ON t.id = a.track_id
                 WHERE t.path = ?1 AND a.model = ?2 AND a.size = ?3 AND a.mtime_ns = ?4",
                params![path.to_string_lossy(), model, size, mtime],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    /// After genretag rewrote a file's tags (audio verified unchanged), move its cached
    /// analyses to the file's new size and mtime so they stay valid, and mark its track
    /// row for the next scan to re-read the tags.
    pub fn refresh_stamp(&self, path: &Path) -> Result<(), DbError> {
        let Some((size, mtime)) = stamp(path) else {
            return Ok(());
        };
        let p = path.to_string_lossy();
        self.conn
            .execute(
                "UPDATE analyses SET size = ?2, mtime_ns = ?3
                 WHERE track_id = (SELECT id FROM tracks WHERE path = ?1)",
                params![p, size, mtime],
            )
            .map_err(self.err())?;
        self.conn
            .execute(
                "UPDATE tracks SET size = ?2, mtime_ns = ?3 WHERE path = ?1",
                params![p, size, mtime],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Every stored analysis of a file: (model, result JSON), by model name.
    pub fn analyses(&self, path: &Path) -> Result<Vec<(String, String)>, DbError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT a.model, a.result FROM analyses a JOIN tracks t ON t.id = a.track_id
                 WHERE t.path = ?1 ORDER BY a.model",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(params![path.to_string_lossy()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Store an analysis result (JSON) for a file and model.
    pub fn store_analysis(&self, path: &Path, model: &str, result: &str) -> Result<(), DbError> {
        let Some((size, mtime)) = stamp(path) else {
            return Ok(());
        };
        let tx = self.write_tx()?;
        // A track first seen here gets size -1: the next scan reads its tags.
        tx.execute(
            "INSERT INTO tracks (path, size, mtime_ns, scanned_at) VALUES (?1, -1, -1, ?2)
             ON CONFLICT(path) DO NOTHING",
            params![path.to_string_lossy(), now_s()],
        )
        .map_err(self.err())?;
        tx.execute(
            "INSERT INTO analyses (track_id, model, size, mtime_ns, result, analyzed_at)
             SELECT id, ?2, ?3, ?4, ?5, ?6 FROM tracks WHERE path = ?1
             ON CONFLICT(track_id, model) DO UPDATE SET size = excluded.size,
               mtime_ns = excluded.mtime_ns, result = excluded.result, analyzed_at = excluded.analyzed_at",
            params![path.to_string_lossy(), model, size, mtime, result, now_s()],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }
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
                .journal_pending(b, &f, &["Old".into()], &["New".into()])
                .expect("journal");
            lib.journal_set_state(id, "done", &f).expect("settle");
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
        assert_eq!(j[0].size_after, Some(1));
        assert_eq!(
            lib.cached_analysis(&f, "m1").expect("query").as_deref(),
            Some("{\"x\":1}")
        );
        assert_eq!(lib.cached_analysis(&f, "m2").expect("query"), None);
        // A changed file invalidates its cached analysis.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, b"xy").expect("write");
        assert_eq!(lib.cached_analysis(&f, "m1").expect("query"), None);
        lib.mark_batch_undone(1).expect("undo");
        assert_eq!(lib.last_undoable_batch().expect("query"), None);
    }
}
