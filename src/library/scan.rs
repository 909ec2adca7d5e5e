//! Scanning folders into the library database.
//!
//! Streams the directory walk and writes in transactions of [`CHUNK`] files, so
//! memory stays flat however large the library. A file whose size and mtime match
//! its row is not opened again; a new or changed file has its tags read (lofty) and
//! its content hashed, and a changed file's cached analyses are dropped. Rows under
//! the scanned folders whose files are gone are removed.

use std::collections::HashSet;
use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::db::{DbError, Library, now_s, stamp};
use super::tags::read_tags;
use crate::audio::AUDIO_EXTENSIONS;

/// The columns [`track_row`] reads, in order.
const TRACK_COLUMNS: &str = "title, artist, album, genres, duration_s, hash, error";

/// A [`TrackRow`] from a row selected with [`TRACK_COLUMNS`] first.
fn track_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrackRow> {
    let genres: String = r.get(3)?;
    Ok(TrackRow {
        tags: super::TrackTags {
            title: r.get(0)?,
            artist: r.get(1)?,
            album: r.get(2)?,
            genres: serde_json::from_str(&genres).unwrap_or_default(),
            duration_s: r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
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
    /// Content hash.
    pub hash: Option<String>,
    /// Why its tags could not be read, if they could not.
    pub error: Option<String>,
}

/// What a scan found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ScanReport {
    /// Audio files seen.
    pub files: usize,
    /// Added to the library.
    pub new: usize,
    /// Changed since the last scan (tags re-read, analyses dropped).
    pub changed: usize,
    /// Unchanged (not opened).
    pub unchanged: usize,
    /// Rows removed because their file is gone.
    pub removed: usize,
    /// Folders or files that could not be read, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

/// Does this file look like audio? By extension, or for files without one, by its
/// first bytes (FLAC, Ogg, RIFF/WAVE, AIFF, MP4, ID3/MPEG, .au).
pub fn looks_like_audio(path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => AUDIO_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => {
            let mut head = [0u8; 12];
            let n = std::fs::File::open(path)
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            let h = &head[..n];
            h.starts_with(b"fLaC")
                || h.starts_with(b"OggS")
                || h.starts_with(b"ID3")
                || h.starts_with(b".snd")
                || (h.starts_with(b"RIFF") && h.get(8..12) == Some(b"WAVE"))
                || (h.starts_with(b"FORM") && matches!(h.get(8..12), Some(b"AIFF") | Some(b"AIFC")))
                || h.get(4..8) == Some(b"ftyp")
                || (h.len() >= 2 && h[0] == 0xff && h[1] & 0xe0 == 0xe0)
        }
    }
}

/// Hash of a file's whole content (SipHash over 64 KiB reads), as hex.
pub fn content_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Ok(format!("{:016x}", h.finish()))
}

/// Walk `roots`, calling `visit` for each audio file ([`looks_like_audio`]), skipping
/// hidden entries and folders already walked (symlink loops, repeated roots, tracked in
/// `seen`); unreadable paths go to `errors`. A root that is a file is visited if it
/// looks like audio, or always with `keep_named_files` (the decoder then judges it).
pub fn walk_audio(
    roots: &[PathBuf],
    seen: &mut HashSet<PathBuf>,
    keep_named_files: bool,
    errors: &mut Vec<(PathBuf, String)>,
    mut visit: impl FnMut(PathBuf),
) {
    let mut stack: Vec<PathBuf> = roots.iter().rev().cloned().collect();
    while let Some(dir) = stack.pop() {
        let meta = match std::fs::metadata(&dir) {
            Ok(m) => m,
            Err(e) => {
                errors.push((dir, e.to_string()));
                continue;
            }
        };
        if !meta.is_dir() {
            // Only roots reach here: sub-folder entries that are files are visited below.
            if keep_named_files || looks_like_audio(&dir) {
                visit(dir);
            }
            continue;
        }
        match dir.canonicalize() {
            Ok(c) => {
                if !seen.insert(c) {
                    continue; // a symlink loop or a folder reached twice
                }
            }
            Err(e) => {
                errors.push((dir, e.to_string()));
                continue;
            }
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                errors.push((dir, e.to_string()));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => subdirs.push(path),
                Ok(_) if looks_like_audio(&path) => visit(path),
                Ok(_) => {}
                Err(e) => errors.push((path, e.to_string())),
            }
        }
        subdirs.sort();
        stack.extend(subdirs.into_iter().rev());
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
                .prepare_cached("SELECT id, size, mtime_ns FROM tracks WHERE path = ?1")
                .map_err(self.error())?;
            let mut touch = tx
                .prepare_cached("UPDATE tracks SET seen = ?2 WHERE id = ?1")
                .map_err(self.error())?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO tracks (path, size, mtime_ns, hash, title, artist, album, genres,
                                         duration_s, error, scanned_at, seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                       hash = excluded.hash, title = excluded.title, artist = excluded.artist,
                       album = excluded.album, genres = excluded.genres, duration_s = excluded.duration_s,
                       error = excluded.error, scanned_at = excluded.scanned_at, seen = excluded.seen",
                )
                .map_err(self.error())?;
            let mut drop_analyses = tx
                .prepare_cached("DELETE FROM analyses WHERE track_id = ?1")
                .map_err(self.error())?;
            for path in paths {
                report.files += 1;
                let Some((size, mtime)) = stamp(path) else {
                    report
                        .errors
                        .push((path.clone(), "vanished during the scan".into()));
                    continue;
                };
                let key = path.to_string_lossy();
                let row: Option<(i64, i64, i64)> = find
                    .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
                    .map_err(self.error())?;
                match row {
                    Some((id, s, m)) if s == size && m == mtime => {
                        touch
                            .execute(params![id, generation])
                            .map_err(self.error())?;
                        report.unchanged += 1;
                        continue;
                    }
                    // Size -1: genretag itself changed the tags (or only analysed the file);
                    // its analyses are still valid.
                    Some((_, -1, _)) => report.changed += 1,
                    Some((id, _, _)) => {
                        drop_analyses.execute(params![id]).map_err(self.error())?;
                        report.changed += 1;
                    }
                    None => report.new += 1,
                }
                let hash = content_hash(path).ok();
                let (tags, error) = match read_tags(path) {
                    Ok(t) => (t, None),
                    Err(e) => (Default::default(), Some(e.to_string())),
                };
                let tags: super::TrackTags = tags;
                upsert
                    .execute(params![
                        key,
                        size,
                        mtime,
                        hash,
                        tags.title,
                        tags.artist,
                        tags.album,
                        serde_json::to_string(&tags.genres).unwrap_or_else(|_| "[]".into()),
                        tags.duration_s,
                        error,
                        now_s(),
                        generation
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
                .prepare("SELECT id, path FROM tracks WHERE path LIKE ?1 ESCAPE '\\' AND (seen IS NULL OR seen != ?2)")
                .map_err(self.error())?;
            for root in roots {
                let prefix = format!(
                    "{}%",
                    root.to_string_lossy()
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                );
                let rows = st
                    .query_map(params![prefix, generation], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(self.error())?;
                for row in rows {
                    let (id, path) = row.map_err(self.error())?;
                    // Not seen by this scan *and* not on disk: another process scanning at
                    // the same time must not make us drop rows it just refreshed.
                    if !Path::new(&path).exists() {
                        gone.push(id);
                    }
                }
            }
        }
        let tx = self.write_tx()?;
        for id in &gone {
            tx.execute("DELETE FROM tracks WHERE id = ?1", params![id])
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
                params![path.to_string_lossy()],
                track_row,
            )
            .optional()
            .map_err(self.error())
    }

    /// Every stored track below `root` (as the scan spelt its paths), sorted by path:
    /// one query instead of a walk and a lookup per file.
    pub fn tracks_under(&self, root: &Path) -> Result<Vec<(PathBuf, TrackRow)>, DbError> {
        let mut prefix = root.to_string_lossy().to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
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
                Ok((PathBuf::from(r.get::<_, String>(7)?), track_row(r)?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_audio_without_extension() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flac = dir.path().join("track");
        std::fs::write(&flac, b"fLaC\0\0\0\x22rest").expect("write");
        let text = dir.path().join("README");
        std::fs::write(&text, b"hello").expect("write");
        assert!(looks_like_audio(&flac));
        assert!(!looks_like_audio(&text));
        assert!(looks_like_audio(Path::new("x.MP3")));
        assert!(!looks_like_audio(Path::new("x.txt")));
    }
}
