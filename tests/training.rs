//! Training and evaluation engine (issue 5) on generated audio: three synthetic
//! "genres" (tones, noise, clicks) that any working model separates.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use genretag::train::features::{FeatureStore, Repr, Windowing};
use genretag::train::models::{ModelKind, ModelSpec};
use genretag::train::report::Report;
use genretag::train::run::{self, RunOptions, Source, SplitSpec};
use genretag::train::trainer::{Event, TrainConfig};

use crate::common::genretag;

const RATE: u32 = 16_000;

/// A 16 kHz mono 16-bit WAV.
pub fn write_wav(path: &Path, samples: &[f32]) {
    crate::common::write_wav(path, samples, RATE);
}

/// Deterministic noise in [-1, 1).
fn noise(seed: u64, i: usize) -> f32 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i as u64)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// One clip of `class` (0 tones, 1 noise, 2 clicks), 4 s.
pub fn clip(class: usize, k: usize) -> Vec<f32> {
    let n = 4 * RATE as usize;
    let seed = (class * 100 + k) as u64;
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            match class {
                0 => {
                    let f = 220.0 + 40.0 * k as f32;
                    0.4 * (2.0 * std::f32::consts::PI * f * t).sin()
                        + 0.2 * (2.0 * std::f32::consts::PI * 2.0 * f * t).sin()
                }
                1 => 0.3 * noise(seed, i),
                _ => {
                    let period = RATE as usize * 60 / (100 + 15 * k);
                    let j = i % period;
                    if j < 200 {
                        0.8 * noise(seed, i) * (1.0 - j as f32 / 200.0)
                    } else {
                        0.0
                    }
                }
            }
        })
        .collect()
}

/// Label names, sorted.
pub const CLASSES: [&str; 3] = ["clicks", "noise", "tones"];

/// A GTZAN-layout folder: 6 clips per class.
pub fn dataset(dir: &Path) -> PathBuf {
    let root = dir.join("data");
    for (c, name) in [(2, CLASSES[0]), (1, CLASSES[1]), (0, CLASSES[2])] {
        let d = root.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        for k in 0..6 {
            write_wav(&d.join(format!("{name}.{k:05}.wav")), &clip(c, k));
        }
    }
    root
}

fn train_cli(data: &Path, cache: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let o = genretag()
        .args(["train", "--data"])
        .arg(data)
        .args(["--split", "stratified", "--test", "0.34", "--val", "0.17"])
        .arg("--cache")
        .arg(cache)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("runs");
    assert!(
        o.status.success(),
        "train {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n") && b.len() > 1000)
}

#[test]
fn issue5_train_eval_compare_ensemble_resume_search_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = dataset(tmp.path());
    let cache = tmp.path().join("cache");

    // A classical model on handcrafted features: the report folder is complete.
    let lr = tmp.path().join("logreg");
    let o = train_cli(
        &data,
        &cache,
        &lr,
        &["--model", "logreg", "--patience", "0"],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("split   stratified(test=0.34,val=0.17,seed=1)"),
        "{stdout}"
    );
    for f in [
        "report.json",
        "confusion.csv",
        "confusion_by_true.csv",
        "confusion_by_pred.csv",
        "confusion_overall.csv",
        "per_class.csv",
        "history.csv",
        "model/model.json",
        "model/net.bpk",
    ] {
        assert!(lr.join(f).exists(), "missing {f}");
    }
    assert!(is_png(&lr.join("curves.png")) && is_png(&lr.join("confusion.png")));
    let r = Report::load(&lr).expect("report");
    assert_eq!(r.labels, CLASSES);
    assert_eq!(r.sizes[2], r.predictions.len());
    assert!(r.split.starts_with("stratified"));
    assert!(
        r.track.accuracy >= 0.8,
        "logreg accuracy {}",
        r.track.accuracy
    );
    assert_eq!(
        r.track.confusion.iter().flatten().sum::<usize>(),
        r.sizes[2]
    );
    let per_class = std::fs::read_to_string(lr.join("per_class.csv")).expect("csv");
    assert!(per_class.starts_with("label,precision,recall,f1,support\nclicks,"));
    // The feature cache is filled: one file per track and representation.
    let cached = std::fs::read_dir(&cache).expect("cache").count();
    assert_eq!(cached, 18);

    // A CNN for two epochs, then resumed to three.
    let cnn = tmp.path().join("cnn");
    train_cli(
        &data,
        &cache,
        &cnn,
        &["--model", "cnn-naive", "--epochs", "2", "--patience", "0"],
    );
    let o = train_cli(
        &data,
        &cache,
        &cnn,
        &[
            "--model",
            "cnn-naive",
            "--epochs",
            "3",
            "--patience",
            "0",
            "--resume",
        ],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resumed after epoch 2")
            || String::from_utf8_lossy(&o.stdout).contains("resumed after epoch 2")
    );
    let r = Report::load(&cnn).expect("report");
    assert_eq!(
        r.history.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        r.history
            .iter()
            .all(|e| e.val_loss.is_some() && e.val_acc.is_some())
    );
    let hist = std::fs::read_to_string(cnn.join("history.csv")).expect("csv");
    assert_eq!(hist.lines().count(), 4);

    // eval on every track of the folder with the saved model.
    let ev = tmp.path().join("eval");
    let o = genretag()
        .args(["eval", "--all", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&lr)
        .arg("--out")
        .arg(&ev)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = Report::load(&ev).expect("eval report");
    assert_eq!(
        (r.kind.as_str(), r.split.as_str(), r.track.n),
        ("eval", "all", 18)
    );

    // compare: a table and McNemar's test on the common test tracks.
    let o = genretag()
        .arg("compare")
        .arg(&lr)
        .arg(&cnn)
        .arg("--csv")
        .arg(tmp.path().join("cmp.csv"))
        .output()
        .expect("runs");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{s}");
    assert!(
        s.contains("McNemar") && s.contains("1 vs 2: 6 tracks") && s.contains("p = "),
        "{s}"
    );
    let csv = std::fs::read_to_string(tmp.path().join("cmp.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 3);

    // ensemble of the two runs, scored on their shared test set.
    for rule in ["sum", "product", "agree"] {
        let en = tmp.path().join(format!("ens-{rule}"));
        let o = genretag()
            .arg("ensemble")
            .arg(&lr)
            .arg(&cnn)
            .args(["--rule", rule, "--out"])
            .arg(&en)
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = Report::load(&en).expect("ensemble report");
        assert_eq!(r.kind, "ensemble");
        assert_eq!(r.track.n, 6);
        assert!(en.join("model/model.json").exists());
    }

    // Grid search over two learning rates: both trials recorded, the best copied.
    let se = tmp.path().join("search");
    train_cli(
        &data,
        &cache,
        &se,
        &[
            "--model",
            "logreg",
            "--epochs",
            "30",
            "--search",
            "0",
            "--search-mode",
            "grid",
            "--search-lr",
            "0.001,0.05",
            "--search-wd",
            "0",
            "--search-dropout",
            "0",
        ],
    );
    let trials = std::fs::read_to_string(se.join("trials.csv")).expect("trials");
    assert_eq!(trials.lines().count(), 3, "{trials}");
    assert!(se.join("model/model.json").exists() && se.join("report.json").exists());
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(se.join("trials.json")).expect("json"))
            .expect("json");
    assert_eq!(j["chosen_by"], "lowest validation loss");
}

#[test]
fn issue5_every_model_kind_trains_and_predicts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = dataset(tmp.path());
    let device = Device::flex();
    let cancel = AtomicBool::new(false);
    for kind in ModelKind::ALL {
        let mut spec = ModelSpec::new(kind);
        // Narrow networks train fast; the naive CNN is tiny at any width (363 parameters
        // at 0.25 cannot separate the classes).
        spec.width = if kind == ModelKind::CnnNaive {
            1.0
        } else {
            0.25
        };
        spec.trees = 20;
        spec.seq_len = 2;
        let mut config = TrainConfig::for_kind(kind);
        // Enough epochs for every kind to learn the easy task below.
        config.epochs = config.epochs.min(10);
        config.lr = config.lr.max(0.005);
        config.augment = genretag::train::trainer::Augment::reports();
        let out = tmp.path().join(kind.name());
        let opts = RunOptions {
            source: Source::Folder(data.clone()),
            split: SplitSpec::Stratified {
                test: 0.34,
                val: 0.17,
                seed: 3,
            },
            spec,
            config,
            windowing: Windowing {
                seconds: 1.0,
                overlap: 0.5,
                centre_only: false,
            },
            out: out.clone(),
            resume: false,
            cache: None,
            device: device.clone(),
            eval_centre: kind == ModelKind::Cnn1d,
        };
        let mut epochs = 0;
        let r = run::train(&opts, &cancel, &mut |e: &Event| {
            if matches!(e, Event::Epoch(_)) {
                epochs += 1;
            }
        })
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(r.sizes[2], 6, "{kind:?}");
        assert!(r.track.n == 6 && r.segment.n >= 6, "{kind:?}");
        if kind == ModelKind::Cnn1d {
            // Fixed evaluation windows: one centre window per test track.
            assert_eq!(r.segment.n, 6);
        }
        for p in &r.predictions {
            assert_eq!(p.probs.len(), 3);
            assert!((p.probs.iter().sum::<f32>() - 1.0).abs() < 1e-3, "{kind:?}");
        }
        if kind != ModelKind::Forest {
            assert_eq!(epochs, r.history.len(), "{kind:?}");
            assert!(r.parameters > 0);
        }
        // The saved model predicts a file on its own.
        let model = genretag::train::saved::SavedModel::load(&out.join("model"), &device)
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let store =
            run::store_for(&opts.spec.inputs(), None, opts.windowing, &device).expect("store");
        let p = model
            .predict_file(&store, &data.join("tones/tones.00000.wav"))
            .expect("predicts");
        assert_eq!(p.track.len(), 3);
        eprintln!(
            "{:<10} {:>7} params, test accuracy {:.2}",
            kind.name(),
            r.parameters,
            r.track.accuracy
        );
        // It learned: finite losses every epoch, and better than chance (2 of 6) on an
        // easy task (tones, noise, clicks).
        for e in &r.history {
            assert!(e.train_loss.is_finite(), "{kind:?}: epoch {}", e.epoch);
            assert!(
                e.val_loss.is_none_or(f64::is_finite),
                "{kind:?}: epoch {}",
                e.epoch
            );
        }
        assert!(
            r.track.accuracy > 0.5,
            "{kind:?} did not learn: test accuracy {:.2}",
            r.track.accuracy
        );
    }
}

#[test]
fn issue5_feature_cache_is_read_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wav = tmp.path().join("a.wav");
    write_wav(&wav, &clip(0, 1));
    let cache = tmp.path().join("cache");
    let store = FeatureStore::new(Some(cache.clone()), Windowing::default());
    let first = store
        .windows(&wav, &[Repr::Mfcc, Repr::Hand])
        .expect("features");
    assert_eq!(first[1].row_len, genretag::train::features::HAND_DIM);
    assert_eq!(first[0].rows(), first[1].rows());
    // Tamper with the cached MFCC values: a second call returns them, so it did not decode.
    let file = std::fs::read_dir(&cache)
        .expect("cache")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("-mfcc-"))
        .expect("mfcc cache file");
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[8..12].copy_from_slice(&1234.5f32.to_le_bytes());
    std::fs::write(&file, bytes).expect("write");
    let second = store.windows(&wav, &[Repr::Mfcc]).expect("features");
    assert_eq!(second[0].data[0], 1234.5);
    // A changed file has a new content hash: recomputed.
    write_wav(&wav, &clip(0, 2));
    let third = store.windows(&wav, &[Repr::Mfcc]).expect("features");
    assert_ne!(third[0].data[0], 1234.5);
}

#[test]
fn issue5_library_tags_as_labels_and_bad_files_in_a_batch() {
    use genretag::library::tags::{TagWriteOptions, write_genres};
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    // 4 tracks tagged "Chiptune Noise", 4 "tonal", 1 "Rare"; one untagged.
    for k in 0..4 {
        for (c, g) in [(1, "Chiptune Noise"), (0, "tonal")] {
            let p = lib.join(format!("{c}-{k}.wav"));
            write_wav(&p, &clip(c, k));
            write_genres(&p, &[g.to_string()], &TagWriteOptions::default()).expect("tag");
        }
    }
    let rare = lib.join("rare.wav");
    write_wav(&rare, &clip(2, 0));
    write_genres(&rare, &["Rare".to_string()], &TagWriteOptions::default()).expect("tag");
    write_wav(&lib.join("untagged.wav"), &clip(2, 1));
    let map = tmp.path().join("map.txt");
    std::fs::write(&map, "# tag = label\nchiptune noise = noise\n").expect("map");
    let ds = genretag::train::dataset::from_library_tags(std::slice::from_ref(&lib), 3, Some(&map))
        .expect("dataset");
    assert_eq!(ds.labels, vec!["noise".to_string(), "tonal".to_string()]);
    assert_eq!(ds.items.len(), 8);

    // A corrupt file among them: the run goes on, names it, and exits 1.
    std::fs::write(lib.join("broken.wav"), b"RIFF\x10\0\0\0WAVEjunkjunk").expect("write");
    let list = tmp.path().join("list.tsv");
    let mut text = String::new();
    for e in std::fs::read_dir(&lib).expect("lib").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let label = if name.starts_with('0') || name == "broken.wav" {
            "tonal"
        } else {
            "noise"
        };
        text += &format!("lib/{name}\t{label}\n");
    }
    std::fs::write(&list, text).expect("list");
    let out = tmp.path().join("run");
    let o = genretag()
        .args([
            "train",
            "--model",
            "logreg",
            "--split",
            "stratified",
            "--test",
            "0.3",
            "--val",
            "0",
            "--no-cache",
            "--list",
        ])
        .arg(&list)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("skipped") && err.contains("broken.wav"),
        "{err}"
    );
    let r = Report::load(&out).expect("report");
    let failed = r.config["failed_tracks"].as_array().expect("list");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].as_str().is_some_and(|s| s.contains("broken.wav")));
}

#[test]
fn issue5_ctrl_c_keeps_the_best_epoch_and_writes_the_report() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = dataset(tmp.path());
    let out = tmp.path().join("run");
    let mut child = genretag()
        .args([
            "train",
            "--model",
            "cnn-naive",
            "--epochs",
            "500",
            "--patience",
            "0",
        ])
        .args([
            "--split",
            "stratified",
            "--test",
            "0.34",
            "--val",
            "0.17",
            "--no-cache",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    // Wait for two finished epochs, then interrupt like Ctrl+C.
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let two = line.starts_with("epoch   2:");
        seen.push(line);
        if two {
            break;
        }
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("waits");
    assert!(status.success(), "{seen:?} {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("cancelled during epoch")),
        "{rest:?}"
    );
    let r = Report::load(&out).expect("report written after the interrupt");
    assert_eq!(r.stop, "cancelled");
    assert!(r.history.len() >= 2 && r.history.len() < 500);
    assert!(out.join("model/model.json").exists());
}
