//! `genretag bench`: decode+resample+mel, backbone and end-to-end speed on real clips,
//! printed beside the TensorFlow reference when its measurements are given.
//!
//! `scripts/bench.sh` runs the reference (TensorFlow 2 CPU musicnn) and this
//! command in the same run, so the ratios compare like with like.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use serde::Deserialize;

use super::EXIT_OK;
use crate::analysis::{AnalyseOptions, Analyzer, load_model};
use crate::listen::{ListenOptions, listen};
use crate::train::bench::median;

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Folder of clips (searched recursively).
    #[arg(long, default_value_os_t = super::default_gtzan_dir())]
    pub data: PathBuf,
    /// Clips for the per-stage timings.
    #[arg(long, default_value_t = 20)]
    pub clips: usize,
    /// Reference timings (JSON written by scripts/musicnn_reference.py).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Run the front end through burn's generic convolutions instead of the fused CPU kernels
    /// (to measure what the fast path buys).
    #[arg(long)]
    pub burn_front_end: bool,
}

#[derive(Debug, Deserialize)]
struct Reference {
    clips: usize,
    /// Median seconds per 30 s clip for load+resample+mel.
    preprocess_s_per_clip: f64,
    /// Median seconds per 30 s clip (10 patches) for the network.
    network_s_per_clip: f64,
    /// Seconds per single patch.
    #[serde(default)]
    network_s_per_patch: Option<f64>,
    /// TensorFlow version.
    #[serde(default)]
    tensorflow: String,
}

/// Run `bench`.
pub fn run(args: BenchArgs, device: &Device) -> anyhow::Result<u8> {
    let backbone = if args.burn_front_end {
        std::sync::Arc::new(
            crate::ml::Backbone::load(
                &crate::ml::shipped::find_model(crate::ml::shipped::BACKBONE_FILE)?,
                device,
            )?
            .without_fast_path(),
        )
    } else {
        crate::ml::shipped::backbone(device)?
    };
    let (files, _) = crate::library::files::collect(std::slice::from_ref(&args.data));
    anyhow::ensure!(!files.is_empty(), "no audio under {}", args.data.display());
    let sample: Vec<PathBuf> = files
        .iter()
        .step_by((files.len() / args.clips.max(1)).max(1))
        .take(args.clips)
        .cloned()
        .collect();
    let all = ListenOptions {
        max_patches: None,
        whole: false,
    };

    // Warm up allocator, thread pool and kernels.
    let warm = listen(&sample[0], &all)?;
    backbone.embed_patches(&warm.patches, 10);

    let mut pre = Vec::new();
    let mut net_clip = Vec::new();
    let mut patches_per_clip = Vec::new();
    for f in &sample {
        let t = Instant::now();
        let p = listen(f, &all).with_context(|| format!("while decoding {}", f.display()))?;
        pre.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        backbone.embed_patches(&p.patches, 10);
        net_clip.push(t.elapsed().as_secs_f64());
        patches_per_clip.push(p.len() as f64);
    }
    let one = ListenOptions {
        max_patches: Some(1),
        whole: false,
    };
    let single = listen(&sample[0], &one)?;
    let mut net_patch: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            backbone.embed_patches(&single.patches, 1);
            t.elapsed().as_secs_f64()
        })
        .collect();

    // End to end over every file: decoding overlapped with inference, as `classify` does.
    let analyzer = Analyzer::new(load_model(None, device)?, AnalyseOptions::default());
    let t = Instant::now();
    let mut done = 0;
    analyzer.analyse_all(files.clone(), |_, r| {
        done += r.is_ok() as usize;
        true
    });
    let e2e = t.elapsed().as_secs_f64();

    let pre_ms = median(&mut pre) * 1e3;
    let clip_ms = median(&mut net_clip) * 1e3;
    let patch_ms = median(&mut net_patch) * 1e3;
    let mean_patches = patches_per_clip.iter().sum::<f64>() / patches_per_clip.len() as f64;
    println!(
        "genretag bench on {} ({} clips for stages, {} for end-to-end)",
        args.data.display(),
        sample.len(),
        files.len()
    );
    println!("  decode+resample+mel      {pre_ms:8.1} ms per clip");
    println!("  backbone, batch 1        {patch_ms:8.1} ms per patch");
    println!(
        "  backbone, whole clip     {clip_ms:8.1} ms per clip ({mean_patches:.1} patches, {:.1} ms per patch)",
        clip_ms / mean_patches
    );
    println!(
        "  pipeline (sequential)    {:8.1} ms per clip",
        pre_ms + clip_ms
    );
    println!(
        "  end-to-end               {:8.2} tracks/s ({done} tracks in {e2e:.1} s, decode overlapped)",
        done as f64 / e2e
    );
    if let Some(path) = &args.reference {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("while reading {}", path.display()))?;
        let r: Reference = serde_json::from_str(&text)?;
        let ref_total = (r.preprocess_s_per_clip + r.network_s_per_clip) * 1e3;
        let ours_total = pre_ms + clip_ms;
        println!(
            "reference: TensorFlow {} CPU musicnn on {} of the same clips, same machine, same run",
            r.tensorflow, r.clips
        );
        println!(
            "  load+resample+mel        {:8.1} ms per clip  (ours/ref {:.2})",
            r.preprocess_s_per_clip * 1e3,
            pre_ms / (r.preprocess_s_per_clip * 1e3)
        );
        if let Some(p) = r.network_s_per_patch {
            println!(
                "  network, batch 1         {:8.1} ms per patch (ours/ref {:.2})",
                p * 1e3,
                patch_ms / (p * 1e3)
            );
        }
        println!(
            "  network, whole clip      {:8.1} ms per clip  (ours/ref {:.2})",
            r.network_s_per_clip * 1e3,
            clip_ms / (r.network_s_per_clip * 1e3)
        );
        println!(
            "  full pipeline            {ref_total:8.1} ms per clip  (ours/ref {:.2}; target <= 0.70)",
            ours_total / ref_total
        );
    }
    Ok(EXIT_OK)
}

/// Arguments of `bench-train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Timed training steps per variant.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Reference timings (JSON written by scripts/train_reference.py).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Channel widths of the conv blocks (default: the 16,32,64,128).
    #[arg(long, value_delimiter = ',')]
    pub widths: Vec<usize>,
    /// Write the measurements as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also print per-layer forward times (our convolution vs burn's, batch norm, ReLU,
    /// pooling) and each step's forward/backward/update split: where the time goes.
    #[arg(long)]
    pub profile: bool,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct TrainReference {
    framework: String,
    parameters: usize,
    step_s: f64,
    infer_ms: f64,
}

/// Run `bench-train`.
pub fn run_train(args: BenchTrainArgs, device: &Device) -> anyhow::Result<u8> {
    use crate::train::bench::{INPUT, WIDTHS, measure};
    let reference: Option<TrainReference> = match &args.reference {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
            )
            .with_context(|| format!("bad reference JSON {}", p.display()))?,
        ),
        None => None,
    };
    println!(
        "CNN {:?} (3x3 conv, batch norm, ReLU, 2x2 max-pool; global average pool; dense 10), batch {} of 1x{}x{}, Adam",
        if args.widths.is_empty() {
            WIDTHS.to_vec()
        } else {
            args.widths.clone()
        },
        args.batch,
        INPUT[0],
        INPUT[1]
    );
    if args.profile {
        crate::train::bench::layer_timings(device, args.batch);
    }
    let widths = if args.widths.is_empty() {
        WIDTHS.to_vec()
    } else {
        args.widths.clone()
    };
    let m = measure(device, args.batch, args.steps, 20, args.profile, &widths);
    println!(
        "{:<18} {:>8} params  {:>7.3} s/step  {:>6.2} ms/inference  (loss after {} steps {:.3})",
        "genretag",
        m.parameters,
        m.step_s,
        m.infer_ms,
        args.steps + 2,
        m.final_loss
    );
    if let Some(r) = &reference {
        println!(
            "{:<18} {:>8} params  {:>7.3} s/step  {:>6.2} ms/inference",
            r.framework, r.parameters, r.step_s, r.infer_ms
        );
        println!(
            "ratio genretag / {}: training step {:.2}x, inference {:.2}x",
            r.framework,
            m.step_s / r.step_s,
            m.infer_ms / r.infer_ms
        );
    }
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "genretag": m,
            "reference": reference,
        }))?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(EXIT_OK)
}
