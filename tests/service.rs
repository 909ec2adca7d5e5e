//! One model interface, one analysis service (issue 10): `tag --model` works exactly like
//! `classify --model`, and the analysis cache never serves a retrained model's old answers.

use std::path::Path;

use serde_json::Value;

use crate::common::genretag;
use crate::training::{clip, dataset, write_wav};

fn train(data: &Path, out: &Path, seed: &str) {
    let o = genretag()
        .args([
            "train",
            "--model",
            "logreg",
            "--split",
            "stratified",
            "--test",
            "0.34",
        ])
        .args(["--val", "0", "--no-cache", "--seed", seed, "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn json(args: &[&str], extra: &[&Path]) -> Value {
    let o = genretag().args(args).args(extra).output().expect("runs");
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn issue10_tag_accepts_every_model_classify_does_and_retraining_is_never_served_stale() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = dataset(tmp.path());
    let run = tmp.path().join("run");
    train(&data, &run, "1");
    let music = tmp.path().join("music");
    std::fs::create_dir(&music).expect("mkdir");
    write_wav(&music.join("tones.wav"), &clip(0, 5));
    let db = tmp.path().join("lib.sqlite3");
    let run_s = run.display().to_string();
    let db_s = db.display().to_string();

    // The same model, the same file: classify and tag (preview) agree.
    let c = json(&["classify", "--json", "--model", &run_s], &[&music]);
    let t = json(
        &[
            "tag",
            "--json",
            "--min-prob",
            "0",
            "--model",
            &run_s,
            "--db",
            &db_s,
        ],
        &[&music],
    );
    assert_eq!(c["model"]["id"], t["model"]["id"], "{c}\n{t}");
    let top = c["tracks"][0]["genres"][0]["name"].clone();
    assert_eq!(t["files"][0]["proposal"]["proposed"][0], top, "{t}");
    let id1 = t["model"]["id"].as_str().expect("id").to_string();

    // Retrain into the same folder: another model, another id, a fresh analysis.
    train(&data, &run, "2");
    let t2 = json(
        &[
            "tag",
            "--json",
            "--min-prob",
            "0",
            "--model",
            &run_s,
            "--db",
            &db_s,
        ],
        &[&music],
    );
    let id2 = t2["model"]["id"].as_str().expect("id").to_string();
    assert_ne!(id1, id2, "a retrained model must not keep its id");
    let lib = genretag::library::Library::open(&db).expect("db");
    let stored = lib.analyses(&music.join("tones.wav")).expect("query");
    // Cache keys are the model id, then how it listened (e.g. `/adaptive`).
    let models: Vec<&str> = stored
        .iter()
        .filter_map(|(m, _)| m.split('/').next())
        .collect();
    assert!(
        models.contains(&id1.as_str()) && models.contains(&id2.as_str()),
        "both models' analyses are kept apart: {models:?}"
    );
    // And the id is derived from bytes: loading the same folder twice gives the same id.
    let again = json(&["classify", "--json", "--model", &run_s], &[&music]);
    assert_eq!(again["model"]["id"].as_str(), Some(id2.as_str()));
}

#[test]
fn issue12_adaptive_listening_stops_early_only_when_settled() {
    let Some(gtzan) = crate::common::shared("data/gtzan") else {
        return;
    };
    let clips: Vec<std::path::PathBuf> = ["blues", "classical", "metal", "reggae"]
        .iter()
        .map(|g| gtzan.join(g).join(format!("{g}.00001.flac")))
        .collect();
    let refs: Vec<&Path> = clips.iter().map(|p| p.as_path()).collect();
    let fixed = json(
        &["classify", "--json", "--no-cache", "--no-adaptive"],
        &refs,
    );
    let adaptive = json(&["classify", "--json", "--no-cache"], &refs);
    let mut early = 0;
    for (f, a) in fixed["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .zip(adaptive["tracks"].as_array().expect("tracks"))
    {
        assert_eq!(f["path"], a["path"]);
        assert_eq!(f["patches"][0], 10, "{f}");
        let looked = a["patches"][0].as_u64().expect("patches");
        if looked == 4 {
            // Stopped after the first look: only with a genre at >= 90 %, and the same
            // genre the full listening gives.
            early += 1;
            assert_eq!(a["decision"]["kind"], "genre", "{a}");
            assert!(
                a["decision"]["probability"].as_f64().expect("p") >= 0.9,
                "{a}"
            );
            assert_eq!(a["decision"]["label"], f["decision"]["label"], "{a} vs {f}");
        } else {
            // Not settled: listened to everything, exactly as with --no-adaptive.
            assert_eq!(looked, 10, "{a}");
            assert_eq!(a["decision"], f["decision"]);
        }
    }
    assert!(early > 0, "clear GTZAN clips settle after the first look");
}

/// Issue 12: full-length songs are heard by seeking to the analysed patches (with
/// adaptive listening, the first look's first): the same decisions as decoding them
/// whole, and without adaptive listening the same probabilities.
#[test]
fn issue12_long_songs_heard_by_seeking_decide_as_a_whole_decode() {
    let Some(gtzan) = crate::common::shared("data/gtzan") else {
        return;
    };
    if !crate::common::have("ffmpeg") {
        crate::common::skip("issue12 long songs: ffmpeg missing");
        return;
    }
    // Two-and-a-half-minute MP3s: five clips of one genre end to end (made here, never
    // kept).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut songs = Vec::new();
    for g in ["blues", "classical", "metal", "reggae"] {
        let list = dir.path().join(format!("{g}.txt"));
        let lines: String = (0..5)
            .map(|k| {
                let clip = gtzan.join(g).join(format!("{g}.{k:05}.flac"));
                format!("file '{}'\n", clip.display())
            })
            .collect();
        std::fs::write(&list, lines).expect("list");
        let song = dir.path().join(format!("{g}.mp3"));
        let ok = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
            ])
            .arg("-i")
            .arg(&list)
            .args([
                "-ar",
                "44100",
                "-ac",
                "2",
                "-c:a",
                "libmp3lame",
                "-b:a",
                "192k",
            ])
            .arg(&song)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ffmpeg could not make {}", song.display());
        songs.push(song);
    }
    let refs: Vec<&Path> = songs.iter().map(|p| p.as_path()).collect();
    let base = ["classify", "--json", "--no-cache"];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        json(&args, &refs)["tracks"]
            .as_array()
            .expect("tracks")
            .clone()
    };
    let whole = run(&["--no-seek", "--no-adaptive"]);
    let sought = run(&["--no-adaptive"]);
    let default = run(&[]);
    for ((w, s), d) in whole.iter().zip(&sought).zip(&default) {
        assert!(w["patches"][1].as_u64().expect("total") >= 30, "{w}");
        assert_eq!(w["patches"], s["patches"]);
        assert_eq!(w["decision"]["kind"], s["decision"]["kind"], "{w} vs {s}");
        assert_eq!(w["decision"]["label"], s["decision"]["label"], "{w} vs {s}");
        for (a, b) in w["genres"]
            .as_array()
            .expect("genres")
            .iter()
            .zip(s["genres"].as_array().expect("genres"))
        {
            let p = |v: &Value| v["probability"].as_f64().expect("probability");
            let (pa, pb) = (p(a), p(b));
            assert!((pa - pb).abs() < 0.01, "{a} vs {b}");
        }
        let looked = d["patches"][0].as_u64().expect("patches");
        assert!(looked == 4 || looked == 10, "{d}");
        assert_eq!(d["decision"]["label"], w["decision"]["label"], "{d} vs {w}");
    }
}

/// Issue 12: the first look's patches are not run through the backbone again when the
/// rest of the track is heard (the model remembers its latest patches), and what it
/// remembers is what it would compute.
#[test]
fn issue12_patches_already_heard_are_not_run_twice() {
    use genretag::listen::{ListenOptions, listen};
    use genretag::ml::shipped::{DEFAULT_MODEL_DIR, find_model};
    use genretag::model::GenreModel;
    use genretag::train::saved::SavedModel;
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("clip.wav");
    let samples: Vec<f32> = (0..8).flat_map(|k| clip(k % 3, k)).collect();
    write_wav(&wav, &samples);
    let heard = listen(&wav, &ListenOptions::default()).expect("heard");
    assert_eq!(heard.len(), 10);
    let model = SavedModel::load(
        &find_model(DEFAULT_MODEL_DIR).expect("shipped"),
        &burn::tensor::Device::flex(),
    )
    .expect("loads");
    let first = model
        .analyse(&[&heard.subset(&[1, 3, 6, 8])])
        .expect("first look");
    assert_eq!(model.backbone_patches_run(), 4);
    let all = model.analyse(&[&heard]).expect("all");
    assert_eq!(model.backbone_patches_run(), 10);
    let again = model.analyse(&[&heard]).expect("again");
    assert_eq!(model.backbone_patches_run(), 10);
    assert_eq!(all[0].probs, again[0].probs);
    // The same as a model that computes everything afresh.
    let fresh = SavedModel::load(
        &find_model(DEFAULT_MODEL_DIR).expect("shipped"),
        &burn::tensor::Device::flex(),
    )
    .expect("loads");
    assert_eq!(
        fresh.analyse(&[&heard]).expect("fresh")[0].probs,
        all[0].probs
    );
    assert_eq!(first.len(), 1);
}
