//! `genretag tag` / `undo` / `history` on real files: preview writes nothing, --write
//! writes and journals, undo restores exactly and refuses files changed since.

use std::path::Path;

use genretag::library::{TagWriteOptions, read_tags, write_genres};
use serde_json::Value;

use crate::common::{ffmpeg, genretag, have, write_wav_sine};

fn undo(db: &Path) -> std::process::Output {
    genretag()
        .arg("undo")
        .arg("--db")
        .arg(db)
        .output()
        .expect("runs")
}

fn run_json(args: &[&str], dir: &Path, db: &Path) -> (Option<i32>, Value) {
    let out = genretag()
        .args(args)
        .arg("--db")
        .arg(db)
        .arg("--json")
        .arg(dir)
        .output()
        .expect("runs");
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

#[test]
fn issue3_tag_preview_write_undo_round_trip() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("music");
    std::fs::create_dir(&dir).expect("mkdir");
    let db = work.path().join("lib.sqlite3");
    let wav = work.path().join("src.wav");
    write_wav_sine(&wav, 330.0, 22_050, 4.0);
    let a = dir.join("a.flac");
    let b = dir.join("b.mp3");
    assert!(ffmpeg(
        &wav,
        &a,
        &["-metadata", "genre=Old", "-metadata", "title=Keep"]
    ));
    assert!(ffmpeg(&wav, &b, &["-c:a", "libmp3lame"]));
    std::fs::write(dir.join("c.mp3"), "broken ".repeat(50)).expect("write");
    let snapshot = || (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    let before = snapshot();

    // Preview: proposals, nothing written, the broken file reported.
    let (code, v) = run_json(&["tag", "--min-prob", "0"], &dir, &db);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["write"], false);
    assert_eq!(v["summary"]["would_tag"], 2, "{v}");
    assert_eq!(v["summary"]["failed"], 1);
    assert_eq!(snapshot(), before, "preview must not write");
    // The database keeps the whole analysis: genres, the 50 style tags, the timeline.
    {
        let lib = genretag::library::Library::open(&db).expect("db opens");
        let stored = lib.analyses(&a).expect("query");
        assert_eq!(stored.len(), 1);
        let an: genretag::analysis::StoredAnalysis =
            serde_json::from_str(&stored[0].1).expect("json");
        assert_eq!(
            (an.genres.len(), an.tags.len(), an.segments.len()),
            (16, 50, 1)
        );
    }
    let proposed_a: Vec<String> =
        serde_json::from_value(v["files"][0]["proposal"]["proposed"].clone()).expect("proposal");
    assert_eq!(proposed_a.len(), 1);

    // Write.
    let (code, v) = run_json(&["tag", "--min-prob", "0", "--write"], &dir, &db);
    assert_eq!(code, Some(1));
    assert_eq!(v["summary"]["tagged"], 2, "{v}");
    assert_eq!(read_tags(&a).expect("a").genres, proposed_a);
    assert_eq!(read_tags(&a).expect("a").title.as_deref(), Some("Keep"));
    assert_eq!(read_tags(&b).expect("b").genres.len(), 1);

    // Again: nothing to change (and the analysis comes from the database cache).
    let (_, v) = run_json(&["tag", "--min-prob", "0"], &dir, &db);
    assert_eq!(v["summary"]["unchanged"], 2, "{v}");

    // Undo restores the exact old state: genres and every byte of audio and other tags.
    let out = undo(&db);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(read_tags(&a).expect("a").genres, vec!["Old"]);
    assert!(read_tags(&b).expect("b").genres.is_empty());
    let out = undo(&db);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to undo"));

    // A file changed after the write is refused by undo; the other is reverted.
    let (_, _) = run_json(&["tag", "--min-prob", "0", "--write"], &dir, &db);
    write_genres(
        &b,
        &["Changed By Hand".to_string()],
        &TagWriteOptions::default(),
    )
    .expect("manual edit");
    let out = undo(&db);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refused") && text.contains("b.mp3"), "{text}");
    assert_eq!(read_tags(&a).expect("a").genres, vec!["Old"]);
    assert_eq!(read_tags(&b).expect("b").genres, vec!["Changed By Hand"]);

    let out = genretag()
        .arg("history")
        .arg("--db")
        .arg(&db)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("(undone)"), "{text}");
}
