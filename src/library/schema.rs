//! The library database's schema and its migrations, versioned with
//! `PRAGMA user_version`.
//!
//! | version | what |
//! |---|---|
//! | 0 | an empty file: the current schema is created |
//! | 0 with our tables | a database from before versioning (genretag 0.1): migrated as version 1 |
//! | 1 | paths as TEXT (lossy for non-UTF-8 names), analyses keyed by path + size/mtime, an unstable content hash, journal rows with size/mtime |
//! | 2 | paths as BLOBs (exact bytes), analyses keyed by (stable content hash, model), a memo of content hashes, journal rows with content hashes, file states for undo |
//! | 3 | tracks gain `year` (the recording year tag); every track is re-read at the next scan |
//!
//! A database with a version above [`LATEST`] was made by a newer genretag and is
//! refused (reading it could misinterpret, writing it could damage it); one holding
//! tables that are not ours is not a genretag library and is refused too. Each
//! migration runs in one transaction: a crash leaves the old version intact.
//!
//! Migrating from version 1 drops the cached analyses (their keys cannot be trusted:
//! the old content hash is not stable across builds) and marks every track for a
//! re-read at the next scan; the journal is kept, so old batches can still be undone.

use rusqlite::{Connection, Transaction};

/// The schema version this genretag writes.
pub const LATEST: i64 = 3;

/// Tables of every version (a database with others is not ours).
const OUR_TABLES: &[&str] = &[
    "tracks",
    "analyses",
    "batches",
    "tag_writes",
    "file_hashes",
    "file_states",
];

/// The current schema.
const SCHEMA_V2: &str = "
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
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
-- The content hash of a path while its size, mtime, ctime and inode are unchanged.
CREATE TABLE file_hashes (
    path BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    hash TEXT NOT NULL
) WITHOUT ROWID;
-- Analysis results by content and model: identical files share them, a changed file
-- misses them.
CREATE TABLE analyses (
    hash TEXT NOT NULL,
    model TEXT NOT NULL,
    result TEXT NOT NULL,
    analyzed_at INTEGER NOT NULL,
    PRIMARY KEY (hash, model)
) WITHOUT ROWID;
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    command TEXT NOT NULL,
    undone_at INTEGER
);
-- One journaled write. state: pending, done, failed, undoing, undone, refused.
CREATE TABLE tag_writes (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches(id),
    path BLOB NOT NULL,
    old_genres TEXT NOT NULL,
    new_genres TEXT NOT NULL,
    state TEXT NOT NULL,
    hash_before TEXT,
    hash_after TEXT,
    hash_undone TEXT,
    scratch BLOB,
    note TEXT,
    written_at INTEGER NOT NULL
);
CREATE INDEX tag_writes_batch ON tag_writes(batch_id);
CREATE INDEX tag_writes_path ON tag_writes(path);
CREATE INDEX tag_writes_state ON tag_writes(state);
-- The content genretag last left each written path with (after a write or an undo).
CREATE TABLE file_states (
    path BLOB PRIMARY KEY,
    hash TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Why a database cannot be used.
#[derive(Debug)]
pub enum Refusal {
    /// Made by a newer genretag.
    TooNew(i64),
    /// Holds tables that are not a genretag library's.
    Unrelated(Vec<String>),
}

/// The result of [`migrate`]: done, refused, or an SQLite error.
pub type Outcome = Result<Result<(), Refusal>, rusqlite::Error>;

fn tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

fn columns(tx: &Transaction<'_>, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = tx.prepare(&format!("PRAGMA table_info({table})"))?;
    let rows = st.query_map([], |r| r.get(1))?;
    rows.collect()
}

/// Bring the database to [`LATEST`], or say why it cannot be used. Runs in one
/// `BEGIN IMMEDIATE` transaction, so two processes opening a new database do not race.
pub fn migrate(conn: &mut Connection) -> Outcome {
    let tx = Transaction::new(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > LATEST {
        return Ok(Err(Refusal::TooNew(version)));
    }
    let existing = tables(&tx)?;
    let foreign: Vec<String> = existing
        .iter()
        .filter(|t| !OUR_TABLES.contains(&t.as_str()))
        .cloned()
        .collect();
    if !foreign.is_empty() {
        return Ok(Err(Refusal::Unrelated(foreign)));
    }
    if version == 0 {
        if existing.is_empty() {
            tx.execute_batch(SCHEMA_V2)?;
            version = 2;
        } else {
            // Our tables without a version: a library from before versioning.
            version = 1;
        }
    }
    if version == 1 {
        v1_to_v2(&tx)?;
        version = 2;
    }
    if version == 2 {
        // size -1: the next scan re-reads every track's tags (and so its year).
        tx.execute_batch(
            "ALTER TABLE tracks ADD COLUMN year INTEGER;
             UPDATE tracks SET size = -1;",
        )?;
        version = 3;
    }
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Version 1 -> 2 (see the module docs).
fn v1_to_v2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    // Version 1 databases may predate some of their own columns.
    let mut legacy_schema = String::new();
    for (table, ddl) in [
        (
            "tracks",
            "CREATE TABLE tracks (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, \
             size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, title TEXT, artist TEXT, \
             album TEXT, genres TEXT NOT NULL DEFAULT '[]', duration_s REAL, error TEXT, \
             scanned_at INTEGER NOT NULL);",
        ),
        (
            "batches",
            "CREATE TABLE batches (id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL, \
             command TEXT NOT NULL, undone_at INTEGER);",
        ),
        (
            "tag_writes",
            "CREATE TABLE tag_writes (id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, \
             path TEXT NOT NULL, old_genres TEXT NOT NULL, new_genres TEXT NOT NULL, \
             state TEXT NOT NULL, written_at INTEGER NOT NULL);",
        ),
    ] {
        if !tables(tx)?.iter().any(|t| t == table) {
            legacy_schema.push_str(ddl);
        }
    }
    tx.execute_batch(&legacy_schema)?;
    for column in ["hash TEXT", "seen INTEGER"] {
        let name = column.split(' ').next().unwrap_or(column);
        if !columns(tx, "tracks")?.iter().any(|c| c == name) {
            tx.execute_batch(&format!("ALTER TABLE tracks ADD COLUMN {column}"))?;
        }
    }
    tx.execute_batch(
        "ALTER TABLE tracks RENAME TO tracks_v1;
         ALTER TABLE batches RENAME TO batches_v1;
         ALTER TABLE tag_writes RENAME TO tag_writes_v1;
         DROP TABLE IF EXISTS analyses;",
    )?;
    tx.execute_batch(SCHEMA_V2)?;
    // size -1: the next scan re-reads the tags and computes the stable hash.
    tx.execute_batch(
        "INSERT INTO tracks (id, path, size, mtime_ns, title, artist, album, hash, genres,
                             duration_s, error, scanned_at, seen)
           SELECT id, CAST(path AS BLOB), -1, mtime_ns, title, artist, album, NULL, genres,
                  duration_s, error, scanned_at, seen FROM tracks_v1;
         INSERT INTO batches SELECT id, created_at, command, undone_at FROM batches_v1;
         INSERT INTO tag_writes (id, batch_id, path, old_genres, new_genres, state, written_at)
           SELECT id, batch_id, CAST(path AS BLOB), old_genres, new_genres, state, written_at
           FROM tag_writes_v1;
         DROP TABLE tracks_v1;
         DROP TABLE batches_v1;
         DROP TABLE tag_writes_v1;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_gets_the_latest_schema() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        assert!(migrate(&mut conn).expect("sqlite").is_ok());
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, LATEST);
        // Idempotent.
        assert!(migrate(&mut conn).expect("sqlite").is_ok());
    }

    #[test]
    fn version_2_gains_the_year_and_rereads_every_track() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.execute_batch(SCHEMA_V2).expect("v2 schema");
        conn.pragma_update(None, "user_version", 2).expect("pragma");
        conn.execute(
            "INSERT INTO tracks (path, size, mtime_ns, scanned_at) VALUES (x'2f61', 10, 5, 1)",
            [],
        )
        .expect("a track");
        assert!(migrate(&mut conn).expect("sqlite").is_ok());
        let (size, year): (i64, Option<i64>) = conn
            .query_row("SELECT size, year FROM tracks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("row");
        assert_eq!((size, year), (-1, None), "marked for the next scan");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, 3);
    }

    #[test]
    fn newer_and_unrelated_databases_are_refused() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "user_version", 999)
            .expect("pragma");
        assert!(matches!(
            migrate(&mut conn).expect("sqlite"),
            Err(Refusal::TooNew(999))
        ));
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.execute_batch("CREATE TABLE invoices (id INTEGER)")
            .expect("create");
        assert!(matches!(
            migrate(&mut conn).expect("sqlite"),
            Err(Refusal::Unrelated(t)) if t == vec!["invoices".to_string()]
        ));
    }
}
