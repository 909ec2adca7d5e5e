//! Genres you can trust (issue 9): "unsure" is an answer — for silence, for sounds
//! unlike music, for music outside what the model knows — `tag` writes nothing then,
//! probabilities are calibrated, and a model trained on a user's own genres gets the
//! same handling.

use std::path::Path;

use serde_json::Value;

use crate::common::{genretag, shared, write_wav};

const RATE: u32 = 22_050;
const GTZAN: [&str; 10] = [
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
];

fn classify_json(args: &[&str], files: &[&Path]) -> Value {
    let out = genretag()
        .args(["classify", "--json"])
        .args(args)
        .args(files)
        .output()
        .expect("runs");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Deterministic noise in [-1, 1).
fn noise(state: &mut u64) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// 30 s of something a listener would call electronic dance music, made from nothing:
/// a four-on-the-floor kick at 128 BPM, off-beat open hats, a detuned saw-wave
/// arpeggio and a sub bass.
fn synth_dance(secs: f32) -> Vec<f32> {
    let n = (secs * RATE as f32) as usize;
    let beat = 60.0 / 128.0;
    let mut rng = 0x1234_5678_9abc_def0u64;
    let notes = [220.0f32, 261.63, 329.63, 392.0];
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let tb = t % beat;
            let kick = (-tb * 18.0).exp()
                * (2.0 * std::f32::consts::PI * (45.0 + 90.0 * (-tb * 30.0).exp()) * tb).sin();
            let th = (t + beat / 2.0) % beat;
            let hat = 0.25 * (-th * 60.0).exp() * noise(&mut rng);
            let step = (t / (beat / 4.0)) as usize;
            let f = notes[step % 4]
                * if (step / 16).is_multiple_of(2) {
                    1.0
                } else {
                    1.5
                };
            let saw = |f: f32| 2.0 * ((t * f).fract()) - 1.0;
            let lead = 0.12 * (saw(f) + saw(f * 1.007)) * (-(t % (beat / 4.0)) * 8.0).exp();
            let bass = 0.25 * (2.0 * std::f32::consts::PI * 55.0 * t).sin();
            0.5 * kick + hat + lead + bass
        })
        .collect()
}

#[test]
fn issue9_silence_short_files_and_noise_are_unsure_never_a_genre() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silence = dir.path().join("silence.wav");
    write_wav(&silence, &vec![0.0; 30 * RATE as usize], RATE);
    let blip = dir.path().join("blip.wav");
    let tone: Vec<f32> = (0..RATE as usize / 10)
        .map(|i| 0.5 * (i as f32 * 0.1).sin())
        .collect();
    write_wav(&blip, &tone, RATE);
    let hiss = dir.path().join("hiss.wav");
    let mut s = 7u64;
    write_wav(
        &hiss,
        &(0..20 * RATE as usize)
            .map(|_| 0.3 * noise(&mut s))
            .collect::<Vec<_>>(),
        RATE,
    );
    let v = classify_json(&[], &[&silence, &blip, &hiss]);
    assert_eq!(v["schema"], "genretag.classify/2");
    for t in v["tracks"].as_array().expect("tracks") {
        assert_eq!(t["ok"], true, "{t}");
        assert_eq!(t["decision"]["kind"], "unsure", "{t}");
    }
    let reason = |i: usize| {
        v["tracks"][i]["decision"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(reason(0).contains("silence"), "{}", reason(0));
    assert!(reason(1).contains("too little sound"), "{}", reason(1));
    assert_eq!(v["summary"]["unsure"], 3);
    // Even a user's threshold of 0 does not make silence a genre.
    let v = classify_json(&["--min-prob", "0"], &[&silence, &blip]);
    for t in v["tracks"].as_array().expect("tracks") {
        assert_eq!(t["decision"]["kind"], "unsure", "{t}");
    }
}

#[test]
fn issue9_music_outside_the_ten_genres_is_unsure_or_a_wider_genre() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dance = dir.path().join("dance.wav");
    write_wav(&dance, &synth_dance(30.0), RATE);
    let v = classify_json(&["--top-k", "5"], &[&dance]);
    let t = &v["tracks"][0];
    eprintln!("synthetic dance track: {}", t["decision"]);
    assert_eq!(v["labels"].as_array().map(Vec::len), Some(16), "{v}");
    match t["decision"]["kind"].as_str() {
        Some("unsure") => {}
        Some("genre") => {
            let label = t["decision"]["label"].as_str().unwrap_or("");
            assert!(
                !GTZAN.contains(&label),
                "forced into one of the ten GTZAN genres: {t}"
            );
        }
        other => panic!("no decision: {other:?} {t}"),
    }
}

#[test]
fn issue9_tag_writes_nothing_for_an_unsure_track() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("music");
    std::fs::create_dir(&dir).expect("mkdir");
    let db = work.path().join("lib.sqlite3");
    let quiet = dir.join("quiet.wav");
    write_wav(&quiet, &vec![0.0; 10 * RATE as usize], RATE);
    let before = std::fs::read(&quiet).expect("read");
    let run = |extra: &[&str]| -> Value {
        let out = genretag()
            .args(["tag", "--json", "--write", "--db"])
            .arg(&db)
            .args(extra)
            .arg(&dir)
            .output()
            .expect("runs");
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let v = run(&[]);
    assert_eq!(v["summary"]["unsure"], 1, "{v}");
    assert_eq!(v["summary"]["tagged"], 0, "{v}");
    assert_eq!(v["files"][0]["status"], "unsure");
    assert!(
        v["files"][0]["proposal"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unsure")),
        "{v}"
    );
    assert_eq!(std::fs::read(&quiet).expect("read"), before, "file changed");
    // A lower threshold does not make silence a genre either.
    let v = run(&["--min-prob", "0"]);
    assert_eq!(v["summary"]["tagged"], 0, "{v}");
    assert_eq!(std::fs::read(&quiet).expect("read"), before, "file changed");
}

#[test]
fn issue9_long_files_decide_by_the_music_not_the_intro_and_outro() {
    let Some(data) = shared("data/gtzan") else {
        return;
    };
    // Three jazz clips after 20 s of silence and before 40 s of noise.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut x = vec![0.0f32; 20 * RATE as usize];
    for n in [10, 11, 12] {
        let clip =
            genretag::audio::read_resampled(&data.join(format!("jazz/jazz.{n:05}.flac")), RATE)
                .expect("decodes");
        x.extend(clip.samples);
    }
    let mut s = 3u64;
    x.extend((0..40 * RATE as usize).map(|_| 0.2 * noise(&mut s)));
    let long = dir.path().join("long.wav");
    write_wav(&long, &x, RATE);
    let v = classify_json(&["--segments"], &[&long]);
    let t = &v["tracks"][0];
    assert_eq!(t["genres"][0]["label"], "jazz", "{t}");
    // No analysed patch lies in the silent intro.
    for seg in t["segments"].as_array().expect("segments") {
        assert!(seg["start_s"].as_f64().unwrap_or(0.0) >= 12.0, "{seg}");
    }
}

#[test]
fn issue9_a_model_trained_on_my_own_genres_is_calibrated_and_says_unsure() {
    use crate::training::{clip, write_wav as write_wav16};
    use genretag::library::tags::{TagWriteOptions, write_genres};
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    for k in 0..8 {
        for (c, g) in [(1, "Harsh Noise"), (0, "Drone")] {
            let p = lib.join(format!("{c}-{k}.wav"));
            write_wav16(&p, &clip(c, k));
            write_genres(&p, &[g.to_string()], &TagWriteOptions::default()).expect("tag");
        }
    }
    let out = tmp.path().join("run");
    let o = genretag()
        .args([
            "train",
            "--model",
            "logreg",
            "--split",
            "stratified",
            "--test",
            "0.25",
        ])
        .args([
            "--val",
            "0.25",
            "--no-cache",
            "--min-tracks",
            "3",
            "--library",
        ])
        .arg(&lib)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("model/model.json")).expect("model"),
    )
    .expect("json");
    assert!(
        model["calibration"]["temperature"].as_f64().is_some(),
        "{model}"
    );
    assert!(model["decision"]["threshold"].as_f64().is_some(), "{model}");
    assert!(
        model["decision"]["chosen_by"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{model}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    assert!(
        report["calibration"]["ece_after"].as_f64().is_some(),
        "{report}"
    );
    assert!(out.join("reliability.png").exists());
    // Its decisions: a drone is a genre of its own; silence is unsure.
    let silent = tmp.path().join("silent.wav");
    write_wav(&silent, &vec![0.0; 5 * RATE as usize], RATE);
    let drone = tmp.path().join("drone.wav");
    write_wav16(&drone, &clip(0, 9));
    let model_dir = out.display().to_string();
    let v = classify_json(&["--model", &model_dir], &[&silent, &drone]);
    assert_eq!(v["tracks"][0]["decision"]["kind"], "unsure", "{v}");
    assert_eq!(v["tracks"][1]["genres"][0]["label"], "Drone", "{v}");
    assert!(v["tracks"][1]["decision"]["kind"].is_string(), "{v}");
}

#[test]
fn issue9_calibration_reduces_calibration_error_on_held_out_folds() {
    use burn::tensor::Device;
    use genretag::model::Taxonomy;
    use genretag::model::calibration::{Calibration, argmax, ece, fit_temperature};
    use genretag::train::features::{Repr, Windows};
    use genretag::train::fusion::{FuseInput, FusionParams, Novelty, fit_params, fuse};
    use genretag::train::models::{ModelKind, ModelSpec};
    use genretag::train::trainer::{self, Norm, TrackData, TrainConfig, predict, track_probs};
    let Some(refdir) = shared("reference/musicnn") else {
        return;
    };
    // The default model's recipe in miniature, on TensorFlow's musicnn outputs for the 180
    // dev clips (embedding and tags; no audio decoding): held-out head predictions for
    // familiar genres (grouped 5-fold) and for a genre the head never heard (leave one
    // genre out), fused with the tag evidence. Uncalibrated = the plain product of the two
    // experts; calibrated = fusion weights and temperature fitted on the OTHER folds' rows.
    let npz = genretag::ml::npy::read_npz(&refdir.join("reference_dev_embeddings.npz"))
        .expect("reference npz");
    let files = npz["files"].strings().expect("files");
    let pen = npz["penultimate"].f32s().expect("penultimate");
    let tags = npz["tags"].f32s().expect("tags");
    let taxonomy = Taxonomy::shipped();
    let n = taxonomy.genres.len();
    let genre = |f: &str| f.split('/').next().unwrap_or("").to_string();
    let mut heads: Vec<String> = files.iter().map(|f| genre(f)).collect();
    heads.sort();
    heads.dedup();
    let to_model: Vec<usize> = heads
        .iter()
        .map(|g| {
            taxonomy
                .index_of(g)
                .expect("GTZAN genres are in the taxonomy")
        })
        .collect();
    let ys: Vec<usize> = files
        .iter()
        .map(|f| heads.iter().position(|g| *g == genre(f)).expect("genre"))
        .collect();
    let emb = |i: usize| pen[i * 200..(i + 1) * 200].to_vec();
    let groups: Vec<String> = files
        .iter()
        .map(|f| {
            let name = f.rsplit('/').next().unwrap_or(f);
            genretag::ml::cv::gtzan_block(name, 5).unwrap_or_else(|| name.to_string())
        })
        .collect();
    let fold = genretag::ml::cv::grouped_folds(&ys, &groups, 5, 3);
    let device = Device::flex();
    let spec = ModelSpec::new(ModelKind::Transfer);
    let cfg = TrainConfig::for_kind(ModelKind::Transfer);
    // Train a head on `train` clips over the head labels `keep`; rows for `test` clips.
    let rows_for = |train: &[usize], keep: &[usize], test: &[usize]| -> Vec<FuseInput> {
        let data: Vec<TrackData> = train
            .iter()
            .filter_map(|&i| {
                keep.iter().position(|&k| k == ys[i]).map(|y| TrackData {
                    path: files[i].clone().into(),
                    label: y,
                    inputs: vec![Windows {
                        data: emb(i),
                        row_len: 200,
                    }],
                })
            })
            .collect();
        let refs: Vec<&TrackData> = data.iter().collect();
        let norm = Norm::fit(&[Repr::Embed], &refs);
        let net = trainer::fit(
            &spec,
            &cfg,
            keep.len(),
            &norm,
            &refs,
            &[],
            &device,
            None,
            false,
            &std::sync::atomic::AtomicBool::new(false),
            &mut |_| {},
        )
        .expect("trains")
        .net;
        let novelty = Novelty::fit(
            &data
                .iter()
                .map(|t| t.inputs[0].data.clone())
                .collect::<Vec<_>>(),
            &data.iter().map(|t| t.label).collect::<Vec<_>>(),
            keep.len(),
            20,
        );
        let tt: Vec<TrackData> = test
            .iter()
            .map(|&i| TrackData {
                path: files[i].clone().into(),
                label: 0,
                inputs: vec![Windows {
                    data: emb(i),
                    row_len: 200,
                }],
            })
            .collect();
        let refs: Vec<&TrackData> = tt.iter().collect();
        test.iter()
            .zip(predict(&net, &spec, &norm, &refs, &device))
            .map(|(&i, w)| {
                let p = track_probs(&w, Default::default());
                let mut head = vec![None; n];
                for (j, &k) in keep.iter().enumerate() {
                    head[to_model[k]] = Some(p[j]);
                }
                FuseInput {
                    head,
                    evidence: taxonomy.evidence(&tags[i * 50..(i + 1) * 50]),
                    novelty: novelty.score(&emb(i)),
                }
            })
            .collect()
    };
    let all: Vec<usize> = (0..files.len()).collect();
    let every: Vec<usize> = (0..heads.len()).collect();
    let mut rows: Vec<(FuseInput, usize, usize)> = Vec::new(); // (input, truth, fold)
    for f in 0..5 {
        let train: Vec<usize> = all.iter().copied().filter(|&i| fold[i] != f).collect();
        let test: Vec<usize> = all.iter().copied().filter(|&i| fold[i] == f).collect();
        for (x, &i) in rows_for(&train, &every, &test).into_iter().zip(&test) {
            rows.push((x, to_model[ys[i]], f));
        }
    }
    for g in 0..heads.len() {
        let keep: Vec<usize> = every.iter().copied().filter(|&k| k != g).collect();
        let train: Vec<usize> = all.iter().copied().filter(|&i| ys[i] != g).collect();
        let test: Vec<usize> = all.iter().copied().filter(|&i| ys[i] == g).collect();
        for (x, &i) in rows_for(&train, &keep, &test).into_iter().zip(&test) {
            rows.push((x, to_model[ys[i]], fold[i]));
        }
    }
    let truth: Vec<usize> = rows.iter().map(|r| r.1).collect();
    let plain: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| fuse(&FusionParams::plain_product(n), &r.0))
        .collect();
    let mut calibrated = vec![Vec::new(); rows.len()];
    for f in 0..5 {
        let fit: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].2 != f).collect();
        let inputs: Vec<FuseInput> = fit.iter().map(|&i| rows[i].0.clone()).collect();
        let t: Vec<usize> = fit.iter().map(|&i| truth[i]).collect();
        let w = vec![1.0; fit.len()];
        let params = fit_params(&inputs, &t, &w, &to_model);
        let fused: Vec<Vec<f32>> = inputs.iter().map(|x| fuse(&params, x)).collect();
        let cal: Calibration = fit_temperature(&fused, &t, &w);
        for i in (0..rows.len()).filter(|&i| rows[i].2 == f) {
            calibrated[i] = cal.apply(&fuse(&params, &rows[i].0));
        }
    }
    let acc = |p: &[Vec<f32>]| {
        p.iter()
            .zip(&truth)
            .filter(|(p, t)| argmax(p) == **t)
            .count() as f32
            / truth.len() as f32
    };
    let (before, after) = (ece(&plain, &truth), ece(&calibrated, &truth));
    eprintln!(
        "{} held-out rows (familiar and never-heard genres): plain product accuracy {:.3}, ECE {before:.3}; \
         calibrated accuracy {:.3}, ECE {after:.3}",
        rows.len(),
        acc(&plain),
        acc(&calibrated)
    );
    assert!(after < before, "ECE {before} -> {after}");
}
