//! Scanning folders into the library database.
//!
//! Streams the directory walk and writes in transactions of [`CHUNK`] files, so
//! memory stays flat however large the library. A file whose size and mtime match
//! its row is not opened again; a new or changed file has its tags read (lofty), its
//! content hashed and the start of its audio decoded, so a file that is not decodable
//! audio is reported, not counted as fine. Cached analyses are keyed by content, so a
//! changed file misses its old ones (which are forgotten). Rows under the scanned
//! folders whose files are gone are removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::db::{DbError, Library, now_s, stamp};
use super::paths::{from_bytes, serialize_problems, to_bytes};
use super::tags::read_tags;

pub use super::files::{content_hash, looks_like_audio, walk_audio};

/// The columns [`track_row`] reads, in order.
const TRACK_COLUMNS: &str = "title, artist, album, genres, duration_s, hash, error, year";

/// A [`TrackRow`] from a row selected with [`TRACK_COLUMNS`] first.
fn track_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrackRow> {
    let genres: String = r.get(3)?;
    Ok(TrackRow {
        tags: super::TrackTags {
            title: r.get(0)?,
            artist: r.get(1)?,
            album: r.get(2)?,
            genres: serde_json::from_str(&genres).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            duration_s: r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
            year: r.get(7)?,
        },
        hash: r.get(5)?,
        error: r.get(6)?,
    })
}

/// Files per transaction.
pub const CHUNK: usize = 1000;

/// A track as the library stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackRow {
    /// Tags as last scanned.
    pub tags: super::TrackTags,
    /// Content hash ([`content_hash`]).
    pub hash: Option<String>,
    /// Why its tags or audio could not be read, if they could not.
    pub error: Option<String>,
}

/// What a scan found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ScanReport {
    /// Audio files seen.
    pub files: usize,
    /// Added to the library.
    pub new: usize,
    /// Changed since the last scan (tags re-read).
    pub changed: usize,
    /// Unchanged (not opened).
    pub unchanged: usize,
    /// Rows removed because their file is gone.
    pub removed: usize,
    /// Files whose tags or audio cannot be read (this scan's and earlier scans'
    /// findings for files still there), folders that cannot be read, and special
    /// files skipped, each with the reason. JSON: `[{"path", "path_bytes"?, "reason"}]`.
    #[serde(serialize_with = "serialize_problems")]
    pub errors: Vec<(PathBuf, String)>,
}

/// Can the audio of `path` be decoded? Opens the decoder and decodes the first
/// packets: enough to catch a file that is not audio, or audio we cannot decode,
/// without the cost of decoding it all.
fn probe_audio(path: &Path) -> Result<(), crate::error::DecodeError> {
    match crate::audio::open(path)?.next_chunk()? {
        Some(_) => Ok(()),
        None => Err(crate::error::DecodeError::Empty {
            path: path.to_path_buf(),
        }),
    }
}

impl Library {
    /// Scan `roots` into the library. `progress` is called with the files seen so far.
    pub fn scan(
        &self,
        roots: &[PathBuf],
        mut progress: impl FnMut(usize),
    ) -> Result<ScanReport, DbError> {
        // Each scan marks the rows it sees with a new generation number.
        let generation: i64 = self
            .conn()
            .query_row("SELECT COALESCE(MAX(seen), 0) + 1 FROM tracks", [], |r| {
                r.get(0)
            })
            .map_err(self.error())?;
        let mut report = ScanReport::default();
        let mut pending: Vec<PathBuf> = Vec::with_capacity(CHUNK);
        let mut result = Ok(());
        let mut errors = Vec::new();
        walk_audio(roots, &mut HashSet::new(), false, &mut errors, |path| {
            if result.is_err() {
                return;
            }
            pending.push(path);
            if pending.len() >= CHUNK {
                result = self.scan_chunk(&pending, generation, &mut report);
                pending.clear();
                progress(report.files);
            }
        });
        result?;
        self.scan_chunk(&pending, generation, &mut report)?;
        progress(report.files);
        report.errors.extend(errors);
        report.removed = self.remove_unseen(roots, generation)?;
        if report.changed + report.removed > 0 {
            self.forget_orphan_analyses()?;
        }
        Ok(report)
    }

    fn scan_chunk(
        &self,
        paths: &[PathBuf],
        generation: i64,
        report: &mut ScanReport,
    ) -> Result<(), DbError> {
        let tx = self.write_tx()?;
        {
            let mut find = tx
                .prepare_cached("SELECT id, size, mtime_ns, error FROM tracks WHERE path = ?1")
                .map_err(self.error())?;
            let mut touch = tx
                .prepare_cached("UPDATE tracks SET seen = ?2 WHERE id = ?1")
                .map_err(self.error())?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO tracks (path, size, mtime_ns, hash, title, artist, album, genres,
                                         duration_s, error, scanned_at, seen, year)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                       hash = excluded.hash, title = excluded.title, artist = excluded.artist,
                       album = excluded.album, genres = excluded.genres, duration_s = excluded.duration_s,
                       error = excluded.error, scanned_at = excluded.scanned_at, seen = excluded.seen,
                       year = excluded.year",
                )
                .map_err(self.error())?;
            for path in paths {
                report.files += 1;
                let Some((size, mtime)) = stamp(path) else {
                    report
                        .errors
                        .push((path.clone(), "vanished during the scan".into()));
                    continue;
                };
                let key = to_bytes(path);
                let row: Option<(i64, i64, i64, Option<String>)> = find
                    .query_row(params![key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()
                    .map_err(self.error())?;
                match row {
                    Some((id, s, m, error)) if s == size && m == mtime => {
                        touch
                            .execute(params![id, generation])
                            .map_err(self.error())?;
                        report.unchanged += 1;
                        // A file found unreadable before is still unreadable: say so again.
                        if let Some(e) = error {
                            report.errors.push((path.clone(), e));
                        }
                        continue;
                    }
                    // Size -1: genretag itself changed the tags (or only analysed the file).
                    Some(_) => report.changed += 1,
                    None => report.new += 1,
                }
                // Analyses are keyed by content: a changed file simply misses them.
                let hash = self.content_hash_of(path)?;
                let (tags, mut error) = match read_tags(path) {
                    Ok(t) => (t, None),
                    Err(e) => (super::TrackTags::default(), Some(e.to_string())),
                };
                if error.is_none() {
                    error = probe_audio(path).err().map(|e| e.to_string());
                }
                if let Some(e) = &error {
                    report.errors.push((path.clone(), e.clone()));
                }
                upsert
                    .execute(params![
                        key,
                        size,
                        mtime,
                        hash,
                        tags.title,
                        tags.artist,
                        tags.album,
                        serde_json::Value::from(tags.genres.clone()).to_string(),
                        tags.duration_s,
                        error,
                        now_s(),
                        generation,
                        tags.year
                    ])
                    .map_err(self.error())?;
            }
        }
        tx.commit().map_err(self.error())
    }

    fn remove_unseen(&self, roots: &[PathBuf], generation: i64) -> Result<usize, DbError> {
        let mut gone = Vec::new();
        {
            let mut st = self
                .conn()
                .prepare(
                    "SELECT id, path FROM tracks WHERE substr(path, 1, length(?1)) = ?1
                       AND (seen IS NULL OR seen != ?2)",
                )
                .map_err(self.error())?;
            for root in roots {
                let rows = st
                    .query_map(params![to_bytes(root), generation], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })
                    .map_err(self.error())?;
                for row in rows {
                    let (id, path) = row.map_err(self.error())?;
                    let path = from_bytes(path);
                    // Not seen by this scan *and* not on disk: another process scanning at
                    // the same time must not make us drop rows it just refreshed.
                    // (`symlink_metadata`: a dangling link is still "there" to be reported.)
                    if std::fs::symlink_metadata(&path).is_err() {
                        gone.push((id, path));
                    }
                }
            }
        }
        let tx = self.write_tx()?;
        for (id, path) in &gone {
            tx.execute("DELETE FROM tracks WHERE id = ?1", params![id])
                .map_err(self.error())?;
            tx.execute(
                "DELETE FROM file_hashes WHERE path = ?1",
                params![to_bytes(path)],
            )
            .map_err(self.error())?;
        }
        tx.commit().map_err(self.error())?;
        Ok(gone.len())
    }

    /// The stored row of one file: tags as scanned, content hash, and error if unreadable.
    pub fn track(&self, path: &Path) -> Result<Option<TrackRow>, DbError> {
        self.conn()
            .query_row(
                &format!("SELECT {TRACK_COLUMNS} FROM tracks WHERE path = ?1"),
                params![to_bytes(path)],
                track_row,
            )
            .optional()
            .map_err(self.error())
    }

    /// Every stored track below `root` (as the scan spelt its paths), sorted by path:
    /// one query instead of a walk and a lookup per file.
    pub fn tracks_under(&self, root: &Path) -> Result<Vec<(PathBuf, TrackRow)>, DbError> {
        let mut prefix = to_bytes(root).to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {TRACK_COLUMNS}, path FROM tracks \
                 WHERE substr(path, 1, length(?1)) = ?1 ORDER BY path"
            ))
            .map_err(self.error())?;
        let rows = stmt
            .query_map(params![prefix], |r| {
                Ok((from_bytes(r.get::<_, Vec<u8>>(8)?), track_row(r)?))
            })
            .map_err(self.error())?;
        rows.collect::<Result<_, _>>().map_err(self.error())
    }

    /// Number of tracks in the library.
    pub fn track_count(&self) -> Result<usize, DbError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM tracks", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(self.error())
    }
}
