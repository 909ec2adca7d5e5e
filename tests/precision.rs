//! The reduced-precision backbone (issue 12): the same decisions as fp32 within the
//! accuracy bar, and `--precision fp32` exactly the fp32 port.

use std::path::Path;

use burn::tensor::Device;
use genretag::analysis::{Analyzer, PatchOptions, TrackAnalysis, extract_patches};
use genretag::ml::Precision;
use genretag::ml::precision::{Agreement, TrackOutputs, has_vnni};
use serde_json::Value;

use crate::common::{genretag, shared};

/// 16-bit mono WAV of `samples` (in -1..1) at `rate`.
fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    let n = samples.len() as u32;
    let mut data = Vec::with_capacity(44 + 2 * samples.len());
    data.extend_from_slice(b"RIFF");
    data.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 1] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    for v in [rate, rate * 2] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    for v in [2u16, 16] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    data.extend_from_slice(b"data");
    data.extend_from_slice(&(2 * n).to_le_bytes());
    for &s in samples {
        data.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, data).expect("write wav");
}

/// A few seconds of music-like signals, made by code: a chord with a beat, a noisy
/// percussive loop, a slow arpeggio, a bass line with hi-hats.
fn generated_tracks(dir: &Path) -> Vec<std::path::PathBuf> {
    let rate = 22_050u32;
    let secs = 9.5;
    let n = (rate as f32 * secs) as usize;
    let mut lcg = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        lcg = lcg
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (lcg >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let tau = std::f32::consts::TAU;
    let mut tracks: Vec<(&str, Vec<f32>)> = Vec::new();
    let chord: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let beat = (-((t * 2.0).fract()) * 8.0).exp();
            [220.0, 277.2, 329.6]
                .iter()
                .map(|f| (tau * f * t).sin())
                .sum::<f32>()
                * 0.2
                * (0.5 + 0.5 * beat)
        })
        .collect();
    tracks.push(("chord.wav", chord));
    let drums: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let kick = (-(t * 2.0).fract() * 30.0).exp() * (tau * 60.0 * t).sin();
            let snare = (-((t * 2.0 + 0.5).fract()) * 25.0).exp() * noise();
            0.6 * kick + 0.4 * snare
        })
        .collect();
    tracks.push(("drums.wav", drums));
    let arpeggio: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let step = (t * 4.0) as usize % 4;
            let f = [261.6, 329.6, 392.0, 523.3][step];
            let env = (-((t * 4.0).fract()) * 3.0).exp();
            0.5 * env * ((tau * f * t).sin() + 0.3 * (tau * 2.0 * f * t).sin())
        })
        .collect();
    tracks.push(("arpeggio.wav", arpeggio));
    let bass: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let f = if ((t * 0.5) as usize).is_multiple_of(2) {
                55.0
            } else {
                73.4
            };
            let hat = (-((t * 8.0).fract()) * 60.0).exp() * noise();
            0.5 * (tau * f * t).sin().signum() * 0.4 + 0.2 * hat
        })
        .collect();
    tracks.push(("bass.wav", bass));
    tracks
        .into_iter()
        .map(|(name, x)| {
            let p = dir.join(name);
            write_wav(&p, &x, rate);
            p
        })
        .collect()
}

fn analyze(a: &Analyzer, path: &Path) -> TrackAnalysis {
    let opts = PatchOptions {
        max_patches: None,
        batch: 10,
    };
    let p = extract_patches(path, &opts).expect("decodes");
    a.analyze_patches(path, p, opts.batch)
}

fn view(v: &[Vec<f32>]) -> Vec<&[f32]> {
    v.iter().map(Vec::as_slice).collect()
}

/// Compare two analyses of the same tracks.
fn agreement(exact: &[TrackAnalysis], other: &[TrackAnalysis]) -> Agreement {
    let mut agree = Agreement::default();
    for (e, o) in exact.iter().zip(other) {
        let emb = |a: &TrackAnalysis| -> Vec<Vec<f32>> {
            a.segments.iter().map(|s| s.embedding.clone()).collect()
        };
        let tags = |a: &TrackAnalysis| -> Vec<Vec<f32>> {
            a.segments.iter().map(|s| s.tags.clone()).collect()
        };
        let (ee, et, oe, ot) = (emb(e), tags(e), emb(o), tags(o));
        agree.add(
            TrackOutputs {
                genre_probs: &e.genre_probs,
                patch_embeddings: &view(&ee),
                patch_tags: &view(&et),
            },
            TrackOutputs {
                genre_probs: &o.genre_probs,
                patch_embeddings: &view(&oe),
                patch_tags: &view(&ot),
            },
        );
    }
    agree
}

fn analyzers() -> (Analyzer, Analyzer, Analyzer) {
    let device = Device::flex();
    let base = Analyzer::load(None, &device).expect("shipped models load");
    let at = |p: Precision| {
        let mut a = base.clone();
        a.backbone = a.backbone.with_precision(p);
        assert_eq!(a.backbone.precision(), p, "{p} is available on the CPU");
        a
    };
    (
        at(Precision::Fp32),
        at(Precision::Int16),
        at(Precision::Int8),
    )
}

#[test]
fn reduced_precision_gives_the_same_genre_as_fp32_on_generated_audio() {
    if !has_vnni() {
        // The portable integer path gives the same bits, but in a test build it takes
        // minutes per track; the equality of the two paths is a unit test
        // (ml::quant::tests).
        eprintln!("SKIP: no AVX-512 VNNI on this CPU");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let files = generated_tracks(dir.path());
    let (fp32, int16, int8) = analyzers();
    let exact: Vec<TrackAnalysis> = files.iter().map(|f| analyze(&fp32, f)).collect();
    let a16: Vec<TrackAnalysis> = files.iter().map(|f| analyze(&int16, f)).collect();
    let a8: Vec<TrackAnalysis> = files.iter().map(|f| analyze(&int8, f)).collect();
    let agree16 = agreement(&exact, &a16);
    let agree8 = agreement(&exact, &a8);
    eprintln!("generated audio, int16 vs fp32: {}", agree16.summary());
    eprintln!("generated audio, int8 vs fp32: {}", agree8.summary());
    assert_eq!(agree16.tracks, files.len());
    assert!(agree16.patches >= 3 * files.len(), "every patch compared");
    assert!(agree16.meets_bar(), "int16 misses the bar: {agree16:?}");
    // int8 is outside the bar by design (8-bit weights), but not far off.
    assert!(
        agree8.max_tag_diff < 0.1 && agree8.worst_embedding_rel < 0.2,
        "int8 drifted: {agree8:?}"
    );
}

/// Genre and tag probabilities of `genretag --precision P classify --json`, by label.
fn cli_probs(precision: &str, file: &Path) -> Vec<(String, f32)> {
    let out = genretag()
        .args(["--precision", precision, "classify", "--json"])
        .args(["--top-k", "10", "--tags", "50"])
        .arg(file)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let track = &v["tracks"][0];
    let mut probs = Vec::new();
    for key in ["genres", "tags"] {
        for s in track[key].as_array().expect("array") {
            probs.push((
                format!("{key}:{}", s["label"].as_str().expect("label")),
                s["probability"].as_f64().expect("number") as f32,
            ));
        }
    }
    probs.sort_by(|a, b| a.0.cmp(&b.0));
    probs
}

/// The same probabilities from the library at a given precision.
fn lib_probs(a: &Analyzer, file: &Path) -> Vec<(String, f32)> {
    let t = a.analyze(file, &PatchOptions::default()).expect("analyses");
    let mut probs: Vec<(String, f32)> = t
        .ranked_genres()
        .into_iter()
        .map(|(l, p)| (format!("genres:{l}"), p))
        .chain(
            t.ranked_tags()
                .into_iter()
                .map(|(l, p)| (format!("tags:{l}"), p)),
        )
        .collect();
    probs.sort_by(|a, b| a.0.cmp(&b.0));
    probs
}

#[test]
fn precision_flag_reaches_the_backbone_and_fp32_is_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = generated_tracks(dir.path());
    let file = &files[0];
    let (fp32, int16, _) = analyzers();
    // `--precision fp32` is bit for bit the library's fp32 backbone (JSON floats
    // round-trip exactly).
    let cli = cli_probs("fp32", file);
    assert_eq!(cli.len(), 60, "10 genres and 50 tags");
    assert_eq!(cli, lib_probs(&fp32, file), "--precision fp32 is not exact");
    if has_vnni() {
        // And `--precision int16` is the int16 path: different bits, same decisions.
        let cli16 = cli_probs("int16", file);
        assert_eq!(cli16, lib_probs(&int16, file));
        assert_ne!(cli16, cli, "int16 should not be fp32's bits");
    }
}

/// The accuracy bar on real music: a spread sample of the dev clips (every tenth; the
/// benchmark, `genretag bench`, measures all 180).
#[test]
fn int16_meets_the_accuracy_bar_on_dev_clips() {
    let Some(data) = shared("data/gtzan") else {
        return;
    };
    if !has_vnni() {
        eprintln!("SKIP: no AVX-512 VNNI on this CPU");
        return;
    }
    let mut files: Vec<_> = walkdir::WalkDir::new(&data)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    let sample: Vec<_> = files.into_iter().step_by(10).collect();
    assert!(sample.len() >= 10, "dev clips present");
    let (fp32, int16, _) = analyzers();
    let opts = PatchOptions::default();
    let (mut exact, mut reduced) = (Vec::new(), Vec::new());
    for f in &sample {
        let p = extract_patches(f, &opts).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        exact.push(fp32.analyze_patches(f, p.clone(), opts.batch));
        reduced.push(int16.analyze_patches(f, p, opts.batch));
    }
    let agree = agreement(&exact, &reduced);
    eprintln!(
        "{} dev clips, int16 vs fp32: {}",
        sample.len(),
        agree.summary()
    );
    assert!(agree.meets_bar(), "{agree:?}");
}
