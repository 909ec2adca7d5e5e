//! Genre writes on real files of every writable format, checked with lofty and with
//! ffmpeg/ffprobe as a second reader and decoder.

use std::path::{Path, PathBuf};
use std::process::Command;

use genretag::error::TagError;
use genretag::library::{TagWriteOptions, read_tags, write_genres};

use crate::common::have;

/// All format-level and stream-level tags ffprobe sees, as sorted `key=value` lines.
fn ffprobe_tags(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format_tags:stream_tags",
            "-of",
            "flat",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(".tags."))
        .map(|l| {
            // "format.tags.genre=\"x\"" / "streams.stream.0.tags.GENRE=\"x\"" -> "genre=x"
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            let key = k.rsplit('.').next().unwrap_or(k).to_lowercase();
            format!("{key}={}", v.trim_matches('"'))
        })
        .collect();
    v.sort();
    v
}

/// Decoded audio as ffmpeg sees it (a second decoder): raw f32 bytes.
fn ffmpeg_pcm(path: &Path) -> Vec<u8> {
    Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg runs")
        .stdout
}

/// A 2 s tone with title/artist/album/comment and genre "Old Genre" (and cover art where
/// the format takes it easily).
fn make(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let cover = dir.join("cover.png");
    if !cover.exists() {
        let ok = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "color=c=red:s=16x16",
                "-frames:v",
                "1",
            ])
            .arg(&cover)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cover");
    }
    let path = dir.join(name);
    let with_cover = name.ends_with(".mp3") || name.ends_with(".flac");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
    ]);
    if with_cover {
        cmd.arg("-i").arg(&cover).args([
            "-map",
            "0",
            "-map",
            "1",
            "-c:v",
            "copy",
            "-disposition:v",
            "attached_pic",
        ]);
    }
    cmd.args(extra)
        .args([
            "-metadata",
            "title=T",
            "-metadata",
            "artist=A",
            "-metadata",
            "album=Al",
        ])
        .args(["-metadata", "genre=Old Genre", "-metadata", "comment=C"])
        .arg(&path);
    assert!(
        cmd.status().is_ok_and(|s| s.success()),
        "ffmpeg made {name}"
    );
    path
}

fn stream_count(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=index",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn issue3_genre_write_every_format_keeps_audio_and_other_tags() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "id3v24.mp3",
            vec!["-c:a", "libmp3lame", "-id3v2_version", "4"],
        ),
        ("a.flac", vec![]),
        ("a.ogg", vec!["-c:a", "libvorbis"]),
        ("a.m4a", vec!["-c:a", "aac"]),
        ("a.wav", vec![]),
        ("a.aiff", vec!["-write_id3v2", "1"]),
    ];
    let new = vec!["Blues".to_string(), "Jazz".to_string()];
    for (name, extra) in cases {
        let path = make(dir.path(), name, &extra);
        let before_tags = read_tags(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(before_tags.genres, vec!["Old Genre"], "{name}");
        let before_probe = ffprobe_tags(&path);
        let before_pcm = ffmpeg_pcm(&path);
        let before_streams = stream_count(&path);

        let change = write_genres(&path, &new, &TagWriteOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(change.old, vec!["Old Genre"]);

        // lofty reads the new genres and the same title/artist/album.
        let after = read_tags(&path).expect("reads");
        assert_eq!(after.genres, new, "{name}");
        assert_eq!(
            (&after.title, &after.artist, &after.album),
            (&before_tags.title, &before_tags.artist, &before_tags.album)
        );
        // ffprobe (second reader): genre changed, every other tag identical.
        let after_probe = ffprobe_tags(&path);
        let genre_line = after_probe
            .iter()
            .find(|l| l.starts_with("genre="))
            .cloned()
            .unwrap_or_default();
        assert!(genre_line.contains("Blues"), "{name}: {genre_line}");
        let strip = |v: &[String]| -> Vec<String> {
            v.iter()
                .filter(|l| !l.starts_with("genre="))
                .cloned()
                .collect()
        };
        assert_eq!(
            strip(&after_probe),
            strip(&before_probe),
            "{name}: other tags changed"
        );
        // ffmpeg decodes identical audio; cover art is still there.
        assert_eq!(ffmpeg_pcm(&path), before_pcm, "{name}: audio changed");
        assert_eq!(
            stream_count(&path),
            before_streams,
            "{name}: streams changed"
        );
        // No scratch file left behind.
        let leftovers = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("genretag"))
            .count();
        assert_eq!(leftovers, 0);

        // Writing the old value back restores it exactly (what undo does).
        write_genres(&path, &change.old, &TagWriteOptions::default()).expect("restore");
        assert_eq!(read_tags(&path).expect("reads").genres, vec!["Old Genre"]);
        assert_eq!(ffmpeg_pcm(&path), before_pcm);
    }
}

#[test]
fn issue3_id3v23_files_stay_id3v23_with_joined_genres() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make(
        dir.path(),
        "v23.mp3",
        &["-c:a", "libmp3lame", "-id3v2_version", "3"],
    );
    assert_eq!(
        std::fs::read(&path).expect("read")[3],
        3,
        "ffmpeg wrote ID3v2.3"
    );
    write_genres(
        &path,
        &["Hip-Hop".to_string(), "Jazz".to_string()],
        &TagWriteOptions::default(),
    )
    .expect("writes");
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(&bytes[..3], b"ID3");
    assert_eq!(bytes[3], 3, "still ID3v2.3");
    assert_eq!(
        read_tags(&path).expect("reads").genres,
        vec!["Hip-Hop", "Jazz"]
    );
    let probe = ffprobe_tags(&path);
    assert!(
        probe.contains(&"genre=Hip-Hop; Jazz".to_string()),
        "{probe:?}"
    );
}

#[test]
fn issue3_refusals_leave_files_untouched() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make(dir.path(), "ro.flac", &[]);
    let before = std::fs::read(&path).expect("read");
    let mut perm = std::fs::metadata(&path).expect("meta").permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&path, perm).expect("chmod");
    let err =
        write_genres(&path, &["Rock".into()], &TagWriteOptions::default()).expect_err("read-only");
    assert!(matches!(err, TagError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("ro.flac"));
    assert_eq!(std::fs::read(&path).expect("read"), before);

    let text = dir.path().join("notes.mp3");
    std::fs::write(&text, "not audio".repeat(100)).expect("write");
    let err =
        write_genres(&text, &["Rock".into()], &TagWriteOptions::default()).expect_err("not audio");
    assert!(err.to_string().contains("notes.mp3"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&text).expect("read"),
        "not audio".repeat(100)
    );

    let au = dir.path().join("x.au");
    crate::common::write_au_sine(&au, 440.0, 8000, 0.5, 1);
    let before = std::fs::read(&au).expect("read");
    assert!(write_genres(&au, &["Rock".into()], &TagWriteOptions::default()).is_err());
    assert_eq!(std::fs::read(&au).expect("read"), before);
}

#[test]
fn issue3_optional_confidence_fields() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = TagWriteOptions {
        provenance: Some(genretag::library::tags::Provenance {
            confidence: 0.8125,
            model: "musicnn_msd/test".into(),
        }),
        ..TagWriteOptions::default()
    };
    for (name, extra) in [
        ("p.mp3", vec!["-c:a", "libmp3lame"]),
        ("p.flac", vec![]),
        ("p.ogg", vec!["-c:a", "libvorbis"]),
        ("p.m4a", vec!["-c:a", "aac"]),
    ] {
        let path = make(dir.path(), name, &extra);
        let before = ffprobe_tags(&path);
        write_genres(&path, &["Rock".to_string()], &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let after = ffprobe_tags(&path);
        let has = |key: &str, value: &str| {
            after
                .iter()
                .any(|l| l.eq_ignore_ascii_case(&format!("{key}={value}")))
        };
        assert!(
            has("genretag_confidence", "0.812") || has("genretag_confidence", "0.813"),
            "{name}: {after:?}"
        );
        assert!(
            has("genretag_model", "musicnn_msd/test"),
            "{name}: {after:?}"
        );
        let strip = |v: &[String]| -> Vec<String> {
            v.iter()
                .filter(|l| !l.starts_with("genre=") && !l.starts_with("genretag_"))
                .cloned()
                .collect()
        };
        assert_eq!(strip(&after), strip(&before), "{name}");
        assert_eq!(read_tags(&path).expect("reads").genres, vec!["Rock"]);
    }
}

#[test]
fn issue14_truncated_file_tags_are_read_but_not_written() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make(dir.path(), "whole.wav", &[]);
    let bytes = std::fs::read(&path).expect("read");
    // ffmpeg puts the tags (LIST INFO) before the audio: they survive the cut.
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).expect("write");
    let tags = read_tags(&cut).expect("tags of a truncated WAV");
    assert_eq!(tags.title.as_deref(), Some("T"));
    let before = std::fs::read(&cut).expect("read");
    let err = write_genres(&cut, &["Rock".into()], &TagWriteOptions::default())
        .expect_err("damaged file");
    assert!(matches!(err, TagError::Damaged { .. }), "{err}");
    assert!(
        err.to_string().contains("cut short") && err.to_string().contains("cut.wav"),
        "{err}"
    );
    assert_eq!(std::fs::read(&cut).expect("read"), before);
}

#[test]
fn issue14_au_write_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let au = dir.path().join("x.au");
    crate::common::write_au_sine(&au, 440.0, 8000, 0.5, 1);
    let tags = read_tags(&au).expect(".au has no tags, but reads");
    assert!(tags.genres.is_empty() && (tags.duration_s - 0.5).abs() < 0.01);
    let err = write_genres(&au, &["Rock".into()], &TagWriteOptions::default()).expect_err("au");
    assert!(matches!(err, TagError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("cannot write tags into .au files"),
        "{err}"
    );
}

#[test]
fn issue11_year_is_read_and_scanned_for_the_library_view() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let flac = make(dir.path(), "y.flac", &["-metadata", "date=1999-04-01"]);
    let mp3 = make(dir.path(), "y.mp3", &["-metadata", "date=1987"]);
    let none = make(dir.path(), "n.ogg", &[]);
    assert_eq!(read_tags(&flac).expect("tags").year, Some(1999));
    assert_eq!(read_tags(&mp3).expect("tags").year, Some(1987));
    assert_eq!(read_tags(&none).expect("tags").year, None);
    // The scan stores it, so the library view can show and sort by it.
    let db = dir.path().join("lib.sqlite3");
    let lib = genretag::library::Library::open(&db).expect("db");
    lib.scan(&[dir.path().to_path_buf()], |_| {}).expect("scan");
    let row = lib.track(&flac).expect("query").expect("scanned");
    assert_eq!(row.tags.year, Some(1999));
}
