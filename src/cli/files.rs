//! Expanding command-line paths into audio files (recursively, loop-safe, sorted).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::audio::AUDIO_EXTENSIONS;

/// True if the file name has an audio extension we handle.
pub fn has_audio_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Files named directly are kept whatever their extension (the decoder judges them);
/// folders are searched recursively for audio extensions, skipping hidden entries.
/// Returns the files (sorted per argument) and the paths that could not be read.
pub fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut seen_dirs = HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                walk(p, &mut found, &mut errors, &mut seen_dirs);
                found.sort();
                files.extend(found);
            }
            Ok(_) => files.push(p.clone()),
            Err(e) => errors.push((p.clone(), e.to_string())),
        }
    }
    (files, errors)
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    errors: &mut Vec<(PathBuf, String)>,
    seen: &mut HashSet<PathBuf>,
) {
    let canonical = match dir.canonicalize() {
        Ok(c) => c,
        Err(e) => {
            errors.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    if !seen.insert(canonical) {
        return; // symlink loop or repeated argument
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, out, errors, seen),
            Ok(_) if has_audio_extension(&path) => out.push(path),
            Ok(_) => {}
            Err(e) => errors.push((path, e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(errors.len(), 1);
    }
}
