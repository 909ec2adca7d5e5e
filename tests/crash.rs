//! Crash safety: `kill -9` genretag at random moments, many times: during `tag --write`
//! batches, during `undo`, and while two writers compete for the same files. Checks
//! that every file still decodes to the same audio and has one of the genres written
//! and its other tags, that the database opens with a journal matching the files, that
//! no scratch copy survives the next start, and that `undo` then walks back through
//! every batch to the original genres.
//!
//! Sizes: GENRETAG_CRASH_FILES (default 120) and GENRETAG_CRASH_ROUNDS (default 9).

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
fn issue3_issue14_kill_9_during_write_undo_and_two_writers_never_corrupts() {
    if !have("ffmpeg") {
        return;
    }
    let n_files = env_usize("GENRETAG_CRASH_FILES", 120);
    let rounds = env_usize("GENRETAG_CRASH_ROUNDS", 9);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("music");
    std::fs::create_dir(&dir).expect("mkdir");
    let db = work.path().join("lib.sqlite3");

    let wav = work.path().join("src.wav");
    // Long enough for the model to answer (under a second of sound it is "unsure").
    write_wav_sine(&wav, 262.0, 22_050, 1.5);
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
    let lines: String = crate::safety::model_labels()
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

    // Rounds cycle through three ways to be killed: during a write batch, during an
    // undo, and while two writers compete for the same files (one of them is killed).
    let (mut corruptions, mut changed_total) = (0usize, 0usize);
    let mut mid = [0usize; 3];
    let mut stray_after_kills = 0usize;
    let mut checks = 0usize;
    // Genres a file may have: the original, the warm-up run's (the model's names, which
    // an undo round can bring back), the calibration run's, and each round's.
    let mut known: Vec<String> = vec!["Old".into(), "Calibration".into()];
    known.extend(
        genretag::model::taxonomy::Taxonomy::shipped()
            .genres
            .iter()
            .map(|g| g.name.clone()),
    );
    for round in 0..rounds {
        let kind = round % 3;
        let new_genre = format!("R{round}");
        let map = work.path().join(format!("map{round}.txt"));
        let lines: String = crate::safety::model_labels()
            .iter()
            .map(|k| format!("{k} = {new_genre}\n"))
            .collect();
        std::fs::write(&map, lines).expect("map");
        known.push(new_genre.clone());
        let before: BTreeMap<PathBuf, Vec<String>> = files
            .iter()
            .map(|(p, _)| (p.clone(), read_tags(p).expect("readable").genres))
            .collect();
        let writer = |map: &Path| {
            genretag()
                .args(["tag", "--write", "--min-prob", "0", "--map"])
                .arg(map)
                .arg("--db")
                .arg(&db)
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawns")
        };
        let wait_ms = rand() % (batch_ms + batch_ms / 10).max(1);
        match kind {
            0 => {
                let mut child = writer(&map);
                std::thread::sleep(Duration::from_millis(wait_ms));
                kill(&mut child);
            }
            1 => {
                let mut child = genretag()
                    .args(["undo", "--db"])
                    .arg(&db)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawns");
                std::thread::sleep(Duration::from_millis(wait_ms));
                kill(&mut child);
            }
            _ => {
                let other = work.path().join(format!("map{round}b.txt"));
                let other_genre = format!("R{round}b");
                let lines: String = crate::safety::model_labels()
                    .iter()
                    .map(|k| format!("{k} = {other_genre}\n"))
                    .collect();
                std::fs::write(&other, lines).expect("map");
                known.push(other_genre);
                let mut a = writer(&map);
                let mut b = writer(&other);
                std::thread::sleep(Duration::from_millis(wait_ms));
                // One writer holds the lock, the other waits for it; kill one of them at
                // a random moment and let the other finish.
                kill(&mut a);
                let status = b.wait().expect("waits");
                assert!(status.success() || status.code() == Some(1), "{status:?}");
            }
        }
        stray_after_kills += stray(&dir);
        let mut changed = 0;
        for (p, sum) in &files {
            checks += 1;
            let ok_audio = audio_checksum(p).ok() == Some(*sum);
            let tags = read_tags(p);
            let ok_tags = tags.as_ref().is_ok_and(|t| {
                t.genres.len() == 1
                    && known.contains(&t.genres[0])
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
            mid[kind] += 1;
        }
        eprintln!(
            "round {round} ({}): killed after {wait_ms} ms, {changed} of {n_files} files had \
             changed",
            ["write", "undo", "two writers"][kind]
        );
    }

    // The database opens, interrupted writes settle, scratch copies go, and the journal
    // matches the files.
    let lib = Library::open(&db).expect("database opens");
    lib.reconcile().expect("reconciles");
    let stray_left = stray(&dir);
    let mut last_done: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for b in lib.batches().expect("batches").iter().rev() {
        for e in lib.journal(Some(b.id)).expect("journal") {
            assert_ne!(e.state, "pending", "pending row left after reconcile");
            assert_ne!(e.state, "undoing", "undoing row left after reconcile");
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
    drop(lib);
    // Undo walks back through every batch to the genres the files started with.
    let mut refused = Vec::new();
    for _ in 0..(rounds * 2 + 4) {
        let out = genretag()
            .args(["undo", "--db"])
            .arg(&db)
            .output()
            .expect("undo runs");
        let text = String::from_utf8_lossy(&out.stdout);
        refused.extend(
            text.lines()
                .filter(|l| l.starts_with("refused:"))
                .map(str::to_string),
        );
        if String::from_utf8_lossy(&out.stderr).contains("nothing to undo") {
            break;
        }
    }
    let not_restored = files
        .iter()
        .filter(|(p, _)| {
            read_tags(p)
                .map(|t| t.genres != vec!["Old".to_string()])
                .unwrap_or(true)
        })
        .count();
    eprintln!(
        "crash test: {n_files} files, {rounds} kills (mid-batch: {} write, {} undo, {} two \
         writers), {checks} file checks, {changed_total} file changes observed, {corruptions} \
         damaged, {mismatches} journal mismatches, {stray_after_kills} stray scratch copies \
         right after the kills, {stray_left} left after the next start; full undo walk: \
         {} refused, {not_restored} files not back to their original genre",
        mid[0],
        mid[1],
        mid[2],
        refused.len()
    );
    for r in refused.iter().take(10) {
        eprintln!("  {r}");
    }
    assert_eq!(corruptions, 0);
    assert_eq!(mismatches, 0);
    assert_eq!(stray_left, 0, "scratch copies survived the next start");
    assert_eq!(
        (refused.len(), not_restored),
        (0, 0),
        "undo could not walk back"
    );
    assert!(
        mid[0] > 0 || rounds < 3,
        "no kill landed inside a write batch: the test proved nothing"
    );
}

fn kill(child: &mut std::process::Child) {
    // SIGKILL; the child may already have finished (that is fine).
    if let Err(e) = child.kill() {
        eprintln!("kill: {e}");
    }
    child.wait().expect("reaped");
}

/// Scratch copies (`.genretag-*`) in `dir`.
fn stray(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".genretag-"))
        .count()
}
