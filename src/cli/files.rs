//! Expanding command-line paths into audio files (recursively, loop-safe, sorted).

use std::collections::HashSet;
use std::path::PathBuf;

use crate::library::scan::walk_audio;

/// Files named directly are kept whatever their extension (the decoder judges them);
/// folders are searched recursively for audio ([`walk_audio`]), skipping hidden entries
/// and symlink loops. Returns the files (sorted per argument) and the paths that could
/// not be read.
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
