//! `genretag classify` as a user runs it: real binary, real files, JSON schema, exit codes.

use serde_json::Value;

use crate::common::{genretag, write_au_sine, write_wav_sine};

#[test]
fn issue2_classify_json_reports_each_file_and_continues_past_bad_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_wav_sine(&dir.path().join("a_tone.wav"), 220.0, 22_050, 7.0);
    write_au_sine(&dir.path().join("b_tone.au"), 330.0, 22_050, 4.0, 1);
    std::fs::write(dir.path().join("c_broken.mp3"), "not audio ".repeat(100)).expect("write");
    let out = genretag()
        .args(["classify", "--json", "--segments", "--all-patches"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["schema"], "genretag.classify/2");
    assert_eq!(v["labels"].as_array().map(Vec::len), Some(16));
    assert_eq!(v["summary"]["ok"], 2);
    assert_eq!(v["summary"]["failed"], 1);
    let tracks = v["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 3);
    let bad = &tracks[2];
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("c_broken.mp3")),
        "{bad}"
    );
    for t in &tracks[..2] {
        assert_eq!(t["ok"], true, "{t}");
        let genres = t["genres"].as_array().expect("genres");
        assert_eq!(genres.len(), 3);
        let p: Vec<f64> = genres
            .iter()
            .map(|g| g["probability"].as_f64().expect("p"))
            .collect();
        assert!(p.windows(2).all(|w| w[0] >= w[1]), "sorted: {p:?}");
        assert!(p.iter().sum::<f64>() <= 1.0 + 1e-5);
        assert_eq!(t["tags"].as_array().map(Vec::len), Some(5));
        assert!(t["segments"].is_array());
        // Every analysed track has a decision: a genre, or unsure with a reason.
        match t["decision"]["kind"].as_str() {
            Some("genre") => assert!(t["decision"]["label"].is_string(), "{t}"),
            Some("unsure") => assert!(t["decision"]["reason"].is_string(), "{t}"),
            other => panic!("no decision {other:?}: {t}"),
        }
    }
    // 7 s at 16 kHz: 1 + 112000/256 = 438 frames -> 2 whole 3 s patches.
    assert_eq!(tracks[0]["patches"], serde_json::json!([2, 2]));
    assert_eq!(tracks[0]["segments"].as_array().map(Vec::len), Some(2));
    // 4 s: one patch.
    assert_eq!(tracks[1]["patches"], serde_json::json!([1, 1]));
}

#[test]
fn issue2_classify_text_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 44_100, 3.5);
    let out = genretag().arg("classify").arg(&wav).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tone.wav") && text.contains("genre:") && text.contains("style:"),
        "{text}"
    );

    // An explicit model path (here the shipped model, by its model.json) gives the same answer.
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default/model.json");
    let again = genretag()
        .arg("classify")
        .arg("--model")
        .arg(&model)
        .arg(&wav)
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(again.stdout, out.stdout);

    // A model that does not exist is fatal.
    let out = genretag()
        .args(["classify", "--model", "/nonexistent/run"])
        .arg(&wav)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/run"));

    // An empty folder has nothing to do: fatal too.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = genretag()
        .arg("classify")
        .arg(&empty)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn issue2_gpu_device_runs_or_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 16_000, 3.2);
    let out = genretag()
        .args(["--device", "gpu", "classify", "--json"])
        .arg(&wav)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        // A GPU (or a software Vulkan adapter) was found and used.
        Some(0) => assert!(String::from_utf8_lossy(&out.stdout).contains("genretag.classify/2")),
        // None here: a clear message, not a crash.
        Some(2) => assert!(stderr.contains("GPU"), "{stderr}"),
        other => panic!("unexpected exit {other:?}: {stderr}"),
    }
}

#[test]
fn issue2_long_tracks_analyse_a_bounded_spread_of_patches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("long.wav");
    // 66 s: 1 + 1_056_000 / 256 = 4126 frames -> 22 whole patches.
    write_wav_sine(&wav, 440.0, 16_000, 66.0);
    let out = genretag()
        .args(["classify", "--json", "--segments", "--max-patches", "4"])
        .arg(&wav)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let t = &v["tracks"][0];
    assert_eq!(t["patches"], serde_json::json!([4, 22]));
    let starts: Vec<f64> = t["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["start_s"].as_f64().expect("start"))
        .collect();
    // The intro and outro (2 patches each: a tenth of the track) are left out; centres of
    // four equal parts of the 18 patches between: 4, 8, 13, 17 (x 2.992 s).
    let expected: Vec<f64> = [4.0, 8.0, 13.0, 17.0].iter().map(|i| i * 2.992).collect();
    for (s, e) in starts.iter().zip(&expected) {
        assert!((s - e).abs() < 1e-3, "{starts:?}");
    }
}
