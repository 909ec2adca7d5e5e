//! The musicnn port against TensorFlow's golden outputs and reference embeddings.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use genretag::dsp::features::musicnn_log_mel;
use genretag::dsp::{MelFilterbank, PowerStft};
use genretag::listen::{ListenOptions, listen};
use genretag::ml::npy::{NpyArray, read_npz};
use genretag::ml::shipped::{BACKBONE_FILE, DEFAULT_MODEL_DIR, find_model};
use genretag::ml::{Backbone, Musicnn, Precision};
use genretag::train::saved::SavedModel;

use crate::common::shared;

fn golden() -> Option<BTreeMap<String, NpyArray>> {
    let dir = shared("reference/musicnn")?;
    Some(read_npz(&dir.join("golden_msd_blues00000.npz")).expect("golden npz reads"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn log_mel_matches_golden_within_1e5() {
    let Some(g) = golden() else { return };
    let audio = g["audio16k"].f32s().expect("f32 audio");
    let expected = g["logmel"].f32s().expect("f32 logmel");
    let ours = musicnn_log_mel(audio);
    assert_eq!(ours.len(), expected.len(), "frame count");

    // The reference rounds mel power to float16 before the log. Where the f32 power lands
    // within float error of a float16 rounding midpoint, numpy's and our summation order can
    // round to neighbouring float16 values: then (and only then) the log differs by more
    // than 1e-5. Check every other value is within 1e-5 and every outlier is such a tie.
    let mut power = Vec::new();
    let mut stft = PowerStft::new(512, 256);
    let mel = MelFilterbank::new(16_000, 512, 96, 0.0, 8000.0);
    let mut frame = vec![0.0f32; 96];
    let mut push = |p: &[f32]| {
        mel.apply(p, &mut frame);
        power.extend_from_slice(&frame);
    };
    stft.push(audio, &mut push);
    stft.finish(&mut push);

    let mut max_ok = 0.0f32;
    let mut ties = 0;
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        let d = (a - b).abs();
        if d <= 1e-5 {
            max_ok = max_ok.max(d);
            continue;
        }
        let ours16 = half::f16::from_f32(power[i]);
        let theirs16 = half::f16::from_f32(((10f64.powf(*b as f64) - 1.0) / 10_000.0) as f32);
        let ulps = (ours16.to_bits() as i32 - theirs16.to_bits() as i32).abs();
        assert_eq!(ulps, 1, "value {i}: diff {d} is not a float16 rounding tie");
        // And our unrounded power really sits at a midpoint (within 1e-6 relative).
        let mid = (ours16.to_f32() as f64 + theirs16.to_f32() as f64) / 2.0;
        let rel = ((power[i] as f64 - mid) / mid).abs();
        assert!(rel < 1e-5, "value {i}: {rel:e} from a midpoint");
        ties += 1;
    }
    eprintln!(
        "log-mel: {} values, max |diff| {max_ok:.2e} outside float16 ties; {ties} ties ({:.3}%)",
        ours.len(),
        100.0 * ties as f64 / ours.len() as f64
    );
    assert!(ties * 1000 < ours.len(), "{ties} ties is too many");
}

fn run(backbone: &Backbone, patches: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = patches.len() / (187 * 96);
    let x: Tensor<3> = Tensor::from_data(
        TensorData::new(patches.to_vec(), [n, 187, 96]),
        backbone.device(),
    );
    let out = backbone.forward(x);
    let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
    (v(out.penultimate), v(out.tags), v(out.max_pool))
}

#[test]
fn network_matches_golden_per_patch() {
    let Some(g) = golden() else { return };
    let device = Device::flex();
    let backbone = Backbone::load(&find_model(BACKBONE_FILE).expect("shipped model"), &device)
        .expect("loads")
        .with_precision(Precision::Fp32);
    let patches = g["patches"].f32s().expect("patches");
    let (pen, tags, max_pool) = run(&backbone, patches);
    let (d_pen, d_tags, d_max) = (
        max_abs_diff(&pen, g["tf_penultimate"].f32s().expect("f32")),
        max_abs_diff(&tags, g["tf_tags"].f32s().expect("f32")),
        max_abs_diff(&max_pool, g["tf_max_pool"].f32s().expect("f32")),
    );
    eprintln!("golden: tags {d_tags:.2e}, penultimate {d_pen:.2e}, max_pool {d_max:.2e}");
    assert!(d_tags < 1e-4, "tags differ by {d_tags}");
    assert!(d_pen < 1e-3, "penultimate differs by {d_pen}");
}

#[test]
fn converter_from_reference_weights_equals_shipped_model() {
    let (Some(g), Some(dir)) = (golden(), shared("reference/musicnn")) else {
        return;
    };
    let device = Device::flex();
    let weights = read_npz(&dir.join("msd_musicnn_weights.npz")).expect("weights npz");
    let tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = weights
        .into_iter()
        .map(|(k, a)| (k, (a.shape.clone(), a.f32s().expect("f32").to_vec())))
        .collect();
    let converted = Backbone::new(
        Musicnn::from_tf_tensors(&tensors, &device).expect("converts"),
        device.clone(),
    );
    let shipped =
        Backbone::load(&find_model(BACKBONE_FILE).expect("shipped"), &device).expect("loads");
    let patches = &g["patches"].f32s().expect("patches")[..2 * 187 * 96];
    let (a, b) = (run(&converted, patches), run(&shipped, patches));
    assert_eq!(a.0, b.0, "penultimate");
    assert_eq!(a.1, b.1, "tags");
}

#[test]
fn end_to_end_embeddings_close_to_tensorflow() {
    let (Some(data), Some(refdir)) = (shared("data/gtzan"), shared("reference/musicnn")) else {
        return;
    };
    let reference = read_npz(&refdir.join("reference_dev_embeddings.npz")).expect("reference npz");
    let files = reference["files"].strings().expect("files");
    let pen = reference["penultimate"].f32s().expect("penultimate");
    let device = Device::flex();
    let backbone = Backbone::load(&find_model(BACKBONE_FILE).expect("shipped"), &device)
        .expect("loads")
        .with_precision(Precision::Fp32);
    let mut worst = (0.0f32, String::new());
    let mut sum = 0.0f32;
    let (mut ours_all, mut theirs_all) = (Vec::new(), Vec::new());
    for (i, f) in files.iter().enumerate() {
        let heard = listen(
            &data.join(f),
            &ListenOptions {
                max_patches: None,
                whole: false,
                ..ListenOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{f}: {e}"));
        let embs: Vec<Vec<f32>> = backbone
            .embed_patches(&heard.patches, 10)
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        let mut ours = vec![0.0f32; 200];
        for e in &embs {
            ours.iter_mut()
                .zip(e)
                .for_each(|(a, b)| *a += b / embs.len() as f32);
        }
        let theirs = &pen[i * 200..(i + 1) * 200];
        let num: f32 = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            .sqrt();
        let den: f32 = theirs.iter().map(|b| b * b).sum::<f32>().sqrt();
        sum += num / den;
        if num / den > worst.0 {
            worst = (num / den, f.clone());
        }
        ours_all.push(ours);
        theirs_all.push(theirs.to_vec());
    }
    // The shipped model's head on either set of embeddings: how often do the genres agree?
    let head = SavedModel::load(
        &find_model(DEFAULT_MODEL_DIR).expect("default model"),
        &device,
    )
    .expect("default model loads");
    let argmax = |p: &Vec<f32>| {
        p.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    let agree = head
        .predict_embeddings(&ours_all)
        .iter()
        .zip(head.predict_embeddings(&theirs_all).iter())
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    eprintln!(
        "end-to-end over {} clips: relative L2 difference mean {:.4}, worst {:.4} ({}); \
         same predicted genre for {agree} of {}",
        files.len(),
        sum / files.len() as f32,
        worst.0,
        worst.1,
        files.len()
    );
    assert_eq!(agree, files.len(), "predicted genres differ");
    assert!(
        worst.0 < 0.05,
        "worst relative difference {} on {}",
        worst.0,
        worst.1
    );
}

#[test]
fn cpu_fast_front_end_equals_burn_convolutions() {
    let Some(g) = golden() else { return };
    let device = Device::flex();
    let fast = Backbone::load(&find_model(BACKBONE_FILE).expect("shipped"), &device)
        .expect("loads")
        .with_precision(Precision::Fp32);
    let plain = fast.clone().without_fast_path();
    let patches = &g["patches"].f32s().expect("patches")[..3 * 187 * 96];
    let (a, b) = (run(&fast, patches), run(&plain, patches));
    let (d_pen, d_tags) = (max_abs_diff(&a.0, &b.0), max_abs_diff(&a.1, &b.1));
    eprintln!("fast vs burn front end: penultimate {d_pen:.2e}, tags {d_tags:.2e}");
    assert!(d_pen < 1e-4 && d_tags < 1e-5);
}

/// The reduced precisions on the golden patches against TensorFlow's outputs: int16
/// within the accuracy bar (tags within 0.01, penultimate within 1 % relative per patch),
/// int8 reported (outside the bar by design).
#[test]
fn reduced_precision_close_to_golden() {
    let Some(g) = golden() else { return };
    let device = Device::flex();
    let loaded =
        Backbone::load(&find_model(BACKBONE_FILE).expect("shipped"), &device).expect("loads");
    let patches = g["patches"].f32s().expect("patches");
    let tf_pen = g["tf_penultimate"].f32s().expect("f32");
    let tf_tags = g["tf_tags"].f32s().expect("f32");
    for precision in [Precision::Int16, Precision::Int8] {
        let backbone = loaded.clone().with_precision(precision);
        assert_eq!(backbone.precision(), precision);
        let (pen, tags, _) = run(&backbone, patches);
        let worst_rel = pen
            .chunks(200)
            .zip(tf_pen.chunks(200))
            .map(|(a, b)| {
                let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
                let den: f32 = b.iter().map(|y| y * y).sum();
                (num / den).sqrt()
            })
            .fold(0.0f32, f32::max);
        let d_tags = max_abs_diff(&tags, tf_tags);
        eprintln!(
            "golden, {precision}: tags {d_tags:.2e}, penultimate worst {worst_rel:.3e} relative"
        );
        if precision == Precision::Int16 {
            assert!(d_tags < 0.01, "int16 tags differ by {d_tags}");
            assert!(worst_rel < 0.01, "int16 penultimate differs by {worst_rel}");
        }
    }
}

/// fp32 stays bit for bit the port the golden assertions check, whatever precision the
/// backbone was switched through (`--precision fp32` reaching the backbone exactly is
/// tests/precision.rs).
#[test]
fn fp32_is_bit_for_bit_after_switching_precisions() {
    let Some(g) = golden() else { return };
    let device = Device::flex();
    let path = find_model(BACKBONE_FILE).expect("shipped");
    let explicit = Backbone::load(&path, &device)
        .expect("loads")
        .with_precision(Precision::Fp32);
    let patches = &g["patches"].f32s().expect("patches")[..3 * 187 * 96];
    let reference = run(&explicit, patches);
    // Switching precisions back and forth leaves no trace.
    let round_trip = explicit
        .clone()
        .with_precision(Precision::Int16)
        .with_precision(Precision::Fp32);
    assert_eq!(round_trip.precision(), Precision::Fp32);
    let again = run(&round_trip, patches);
    assert_eq!(reference.0, again.0, "penultimate bits");
    assert_eq!(reference.1, again.1, "tag bits");
    assert_eq!(reference.2, again.2, "max-pool bits");
}
