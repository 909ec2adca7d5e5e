//! `genretag scan` and the library database: new, unchanged, changed, removed files.

use genretag::library::Library;

use crate::common::{ffmpeg, genretag, have, write_wav_sine};

#[test]
fn issue3_scan_caches_and_notices_changes() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("music");
    let sub = root.join("artist/album");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let wav = sub.join("one.wav");
    write_wav_sine(&wav, 440.0, 8000, 1.0);
    let flac = sub.join("two.flac");
    assert!(ffmpeg(
        &wav,
        &flac,
        &["-metadata", "title=Two", "-metadata", "genre=Jazz;Blues"]
    ));
    // A FLAC without an extension is recognised by its content.
    std::fs::copy(&flac, root.join("noext")).expect("copy");
    std::fs::write(root.join("notes.txt"), "not audio").expect("write");
    std::fs::write(root.join(".hidden.mp3"), "hidden").expect("write");
    std::os::unix::fs::symlink(&root, sub.join("loop")).expect("symlink");
    let db = work.path().join("lib.sqlite3");

    let lib = Library::open(&db).expect("opens");
    let r = lib
        .scan(std::slice::from_ref(&root), |_| {})
        .expect("scans");
    assert_eq!((r.files, r.new, r.errors.len()), (3, 3, 0), "{r:?}");
    let row = lib.track(&flac).expect("query").expect("row");
    let (tags, hash, err) = (row.tags, row.hash, row.error);
    assert_eq!(tags.title.as_deref(), Some("Two"));
    assert_eq!(tags.genres, vec!["Jazz", "Blues"]);
    assert!((tags.duration_s - 1.0).abs() < 0.05);
    assert!(hash.is_some() && err.is_none());

    let r = lib
        .scan(std::slice::from_ref(&root), |_| {})
        .expect("rescans");
    assert_eq!((r.unchanged, r.new, r.changed), (3, 0, 0));

    std::thread::sleep(std::time::Duration::from_millis(20));
    write_wav_sine(&wav, 220.0, 8000, 2.0);
    std::fs::remove_file(root.join("noext")).expect("rm");
    let r = lib
        .scan(std::slice::from_ref(&root), |_| {})
        .expect("rescans");
    assert_eq!((r.unchanged, r.changed, r.removed), (1, 1, 1), "{r:?}");
    assert!((lib.track(&wav).expect("q").expect("row").tags.duration_s - 2.0).abs() < 0.05);
    assert_eq!(lib.track_count().expect("count"), 2);

    // The CLI prints the same counts; a second process can use the database alongside.
    let out = genretag()
        .args(["scan", "--json", "--db"])
        .arg(&db)
        .arg(&root)
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["unchanged"], 2);
}

#[test]
fn issue3_two_processes_share_the_database() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("music");
    std::fs::create_dir_all(&root).expect("mkdir");
    for i in 0..300 {
        write_wav_sine(
            &root.join(format!("t{i:03}.wav")),
            200.0 + i as f32,
            8000,
            0.05,
        );
    }
    let db = work.path().join("lib.sqlite3");
    let spawn = || {
        genretag()
            .args(["scan", "--json", "--db"])
            .arg(&db)
            .arg(&root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawns")
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().expect("waits");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lib = Library::open(&db).expect("opens");
    assert_eq!(lib.track_count().expect("count"), 300);
    let r = lib
        .scan(std::slice::from_ref(&root), |_| {})
        .expect("scans");
    assert_eq!(r.unchanged, 300);
}
