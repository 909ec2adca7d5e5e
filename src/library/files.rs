//! Finding audio files: the directory walk (walkdir) shared by `scan`, `classify`,
//! `tag`, training datasets and the app, and the content hash that keys caches.
//!
//! Only regular files are ever opened: a named pipe, socket or device (directly or
//! through a symbolic link) is reported with its kind and skipped, never read, so it
//! cannot hang a batch.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::audio::AUDIO_EXTENSIONS;
use crate::audio::source::{open_regular, special_kind};

/// Does this file look like audio? By extension, or for files without one, by its
/// first bytes (FLAC, Ogg, RIFF/WAVE, AIFF, MP4, ID3/MPEG, .au). Only regular files
/// are sniffed; anything else is "no".
pub fn looks_like_audio(path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => AUDIO_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => {
            let mut head = [0u8; 12];
            // An unreadable file is simply not audio here; reading it later reports why.
            let n = open_regular(path)
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

/// Could this name be audio, judging by the name alone (an audio extension, or none)?
fn audio_name(path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => AUDIO_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => true,
    }
}

/// The stable content hash of a file: XXH3-128 of every byte, as 32 hex digits.
///
/// Persisted as a cache key (analyses, the undo journal), so it must not change
/// between builds or Rust releases: XXH3 is a fixed, specified algorithm (a test pins
/// its value for a fixed input).
pub fn content_hash(path: &Path) -> std::io::Result<String> {
    let mut f = open_regular(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:032x}", h.digest128()))
}

/// XXH3-128 of bytes in memory, in the same form as [`content_hash`].
pub fn bytes_hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Walk `roots`, calling `visit` for each audio file ([`looks_like_audio`]) in name
/// order, skipping hidden entries, symlink loops and folders already walked (tracked
/// in `seen`, so repeated roots and two links to one folder are walked once). Symbolic
/// links are followed. Unreadable paths, and special files (FIFOs, sockets, devices)
/// with an audio name, go to `errors` with the reason. A root that is a regular file is
/// visited if it looks like audio, or always with `keep_named_files` (the decoder then
/// judges it).
pub fn walk_audio(
    roots: &[PathBuf],
    seen: &mut HashSet<PathBuf>,
    keep_named_files: bool,
    errors: &mut Vec<(PathBuf, String)>,
    mut visit: impl FnMut(PathBuf),
) {
    for root in roots {
        let walk = WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            // Hidden entries (and our own `.genretag-*` scratch copies) are never audio
            // we were asked about; a root is walked whatever its name.
            .filter_entry(|e| e.depth() == 0 || !hidden(e.file_name()));
        let mut walk = walk;
        while let Some(entry) = walk.next() {
            let entry = match entry {
                Ok(e) => e,
                // A symlink pointing back up the tree: already being walked.
                Err(e) if e.loop_ancestor().is_some() => continue,
                Err(e) => {
                    let path = e.path().map_or_else(|| root.clone(), Path::to_path_buf);
                    let reason = e
                        .io_error()
                        .map_or_else(|| e.to_string(), |io| io.to_string());
                    errors.push((path, reason));
                    continue;
                }
            };
            let ft = entry.file_type();
            if ft.is_dir() {
                match entry.path().canonicalize() {
                    Ok(c) => {
                        if !seen.insert(c) {
                            walk.skip_current_dir();
                        }
                    }
                    Err(e) => {
                        errors.push((entry.path().to_path_buf(), e.to_string()));
                        walk.skip_current_dir();
                    }
                }
                continue;
            }
            let path = entry.into_path();
            if ft.is_file() {
                if (keep_named_files && path == *root) || looks_like_audio(&path) {
                    visit(path);
                }
                continue;
            }
            // A FIFO, socket or device (the walk followed links, so this is the target's
            // type). Never opened; reported when its name says it might be audio.
            if audio_name(&path) || path == *root {
                let kind = std::fs::metadata(&path)
                    .ok()
                    .and_then(|m| special_kind(&m))
                    .unwrap_or("not a regular file");
                errors.push((path, format!("not a regular file: {kind}; skipped")));
            }
        }
    }
}

/// Expand command-line paths into audio files. Files named directly are kept whatever
/// their extension (the decoder judges them); folders are searched recursively
/// ([`walk_audio`]). Returns the files (sorted per argument) and the paths that could
/// not be read or were skipped, with the reason.
pub fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut seen_dirs = HashSet::new();
    for p in paths {
        let mut found = Vec::new();
        walk_audio(
            std::slice::from_ref(p),
            &mut seen_dirs,
            true,
            &mut errors,
            |f| found.push(f),
        );
        found.sort();
        files.extend(found);
    }
    (files, errors)
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

    #[test]
    fn finds_audio_recursively_and_survives_loops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join("x.flac"), b"").expect("write");
        std::fs::write(dir.path().join("y.MP3"), b"").expect("write");
        std::fs::write(dir.path().join("notes.txt"), b"").expect("write");
        std::fs::write(dir.path().join(".hidden.mp3"), b"").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path(), sub.join("loop")).expect("symlink");
        let (files, errors) = collect(&[dir.path().to_path_buf(), dir.path().join("missing")]);
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                f.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(names, vec!["x.flac", "y.MP3"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn issue10_content_hash_is_stable_across_builds() {
        // XXH3-128 of fixed inputs, as the C reference implementation computes them
        // (checked with python-xxhash): if these change, every persisted cache key does.
        assert_eq!(bytes_hash(b""), "99aa06d3014798d86001c324468d497f");
        assert_eq!(
            bytes_hash(b"genretag stable hash"),
            bytes_hash(b"genretag stable hash")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.bin");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&f, &data).expect("write");
        // Streaming over 64 KiB reads equals the one-shot hash.
        assert_eq!(content_hash(&f).expect("hash"), bytes_hash(&data));
        assert_eq!(
            bytes_hash(b"genretag"),
            PINNED_GENRETAG,
            "XXH3-128 of b\"genretag\" changed"
        );
    }

    /// XXH3-128 of `b"genretag"` by the C reference implementation (python-xxhash 3).
    const PINNED_GENRETAG: &str = "f42149ea4403925724ab9945a1d5d7dc";
}
