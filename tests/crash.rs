//! Crash safety: `kill -9` a `tag --write` batch at random moments, many times, and
//! check every file still decodes to the same audio, has its old or its new genre and
//! its other tags, and that the database opens with a journal matching the files.
//!
//! Sizes: GENRETAG_CRASH_FILES (default 120) and GENRETAG_CRASH_ROUNDS (default 8).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use genretag::library::tags::audio_checksum;
use genretag::library::{Library, read_tags};

use crate::common::{ffmpeg, genretag, have, write_wav_sine};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn issue3_kill_9_during_tag_write_never_corrupts() {
    if !have("ffmpeg") {
        return;
    }
    let n_files = env_usize("GENRETAG_CRASH_FILES", 120);
    let rounds = env_usize("GENRETAG_CRASH_ROUNDS", 8);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("music");
    std::fs::create_dir(&dir).expect("mkdir");
    let db = work.path().join("lib.sqlite3");

    let wav = work.path().join("src.wav");
    // Over a second: shorter files are "unsure" (too little sound) and never written.
    write_wav_sine(&wav, 262.0, 22_050, 1.2);
    let mut templates = Vec::new();
    for (ext, args) in [
        ("flac", vec![]),
        ("mp3", vec!["-c:a", "libmp3lame"]),
        ("ogg", vec!["-c:a", "libvorbis"]),
        ("m4a", vec!["-c:a", "aac"]),
        ("wav", vec!["-write_id3v2", "1"]),
    ] {
        let t = work.path().join(format!("template.{ext}"));
        let mut all = args.clone();
        all.extend([
            "-metadata",
            "title=T",
            "-metadata",
            "artist=A",
            "-metadata",
            "genre=Old",
        ]);
        assert!(ffmpeg(&wav, &t, &all), "{ext}");
        templates.push((ext, audio_checksum(&t).expect("template decodes"), t));
    }
    let mut files: Vec<(PathBuf, (u64, u64))> = Vec::new();
    for i in 0..n_files {
        let (ext, sum, t) = &templates[i % templates.len()];
        let p = dir.join(format!("f{i:04}.{ext}"));
        std::fs::copy(t, &p).expect("copy");
        files.push((p, *sum));
    }

    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ n_files as u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Warm up: one complete run fills the analysis cache and measures how long a whole
    // write batch takes, so the kills below land inside batches, not after them.
    let started = std::time::Instant::now();
    let warm = genretag()
        .args(["tag", "--write", "--min-prob", "0", "--db"])
        .arg(&db)
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    let warm_ms = started.elapsed().as_millis() as u64;
    let calib = work.path().join("calib.txt");
    let lines: String = genretag::model::Taxonomy::shipped()
        .keys()
        .iter()
        .map(|k| format!("{k} = Calibration\n"))
        .collect();
    std::fs::write(&calib, lines).expect("map");
    let time_one = std::time::Instant::now();
    let full = genretag()
        .args(["tag", "--write", "--min-prob", "0", "--map"])
        .arg(&calib)
        .arg("--db")
        .arg(&db)
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(full.status.success());
    let batch_ms = time_one.elapsed().as_millis() as u64;
    eprintln!("warm-up run {warm_ms} ms; a full write batch with cached analysis {batch_ms} ms");

    let (mut corruptions, mut changed_total, mut mid_batch) = (0usize, 0usize, 0usize);
    for round in 0..rounds {
        let new_genre = format!("R{round}");
        let map = work.path().join("map.txt");
        let lines: String = genretag::model::Taxonomy::shipped()
            .keys()
            .iter()
            .map(|k| format!("{k} = {new_genre}\n"))
            .collect();
        std::fs::write(&map, lines).expect("map");
        let before: BTreeMap<PathBuf, Vec<String>> = files
            .iter()
            .map(|(p, _)| (p.clone(), read_tags(p).expect("readable").genres))
            .collect();

        let mut child = genretag()
            .args(["tag", "--write", "--min-prob", "0", "--map"])
            .arg(&map)
            .arg("--db")
            .arg(&db)
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns");
        let wait_ms = rand() % (batch_ms + batch_ms / 10).max(1);
        std::thread::sleep(Duration::from_millis(wait_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        let mut changed = 0;
        for (p, sum) in &files {
            let ok_audio = audio_checksum(p).ok() == Some(*sum);
            let tags = read_tags(p);
            let ok_tags = tags.as_ref().is_ok_and(|t| {
                (t.genres == before[p] || t.genres == vec![new_genre.clone()])
                    && t.title.as_deref() == Some("T")
                    && t.artist.as_deref() == Some("A")
            });
            if !(ok_audio && ok_tags) {
                corruptions += 1;
                eprintln!(
                    "CORRUPT after round {round}: {} audio ok {ok_audio}, tags {tags:?}",
                    p.display()
                );
            }
            if tags.is_ok_and(|t| t.genres != before[p]) {
                changed += 1;
            }
        }
        changed_total += changed;
        if changed > 0 && changed < n_files {
            mid_batch += 1;
        }
        eprintln!(
            "round {round}: killed after {wait_ms} ms, {changed} of {n_files} files had changed"
        );
    }

    // The database opens, interrupted writes settle, and the journal matches the files.
    let lib = Library::open(&db).expect("database opens");
    lib.reconcile().expect("reconciles");
    let mut last_done: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for b in lib.batches().expect("batches").iter().rev() {
        for e in lib.journal(Some(b.id)).expect("journal") {
            assert_ne!(e.state, "pending", "pending row left after reconcile");
            if e.state == "done" {
                last_done.insert(e.path.clone(), e.new.clone());
            }
        }
    }
    let mismatches = last_done
        .iter()
        .filter(|(p, g)| {
            read_tags(Path::new(p))
                .map(|t| &t.genres != *g)
                .unwrap_or(true)
        })
        .count();
    let stray = std::fs::read_dir(&dir)
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".genretag-"))
        .count();
    eprintln!(
        "crash test: {n_files} files, {rounds} kills ({mid_batch} mid-batch), {changed_total} file \
         changes observed, {corruptions} corruptions, {mismatches} journal mismatches, {stray} \
         stray scratch copies"
    );
    assert_eq!(corruptions, 0);
    assert_eq!(mismatches, 0);
    assert!(
        mid_batch > 0,
        "no kill landed inside a batch: the test proved nothing"
    );
}
