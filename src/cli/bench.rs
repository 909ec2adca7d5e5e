//! `genretag bench`: decode+resample+mel, backbone and end-to-end speed on real clips,
//! printed beside the TensorFlow reference when its measurements are given.
//!
//! `scripts/bench.sh` runs the reference (TensorFlow 2 CPU musicnn) and this
//! command in the same run, so the ratios compare like with like.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;
use serde::Deserialize;

use super::EXIT_OK;
use crate::analysis::{AnalyseOptions, Analyzer, load_model};
use crate::listen::{ListenOptions, listen};
use crate::ml::musicnn::{N_MELS, PATCH_FRAMES};
use crate::ml::precision::{Agreement, Precision, default_precision, set_default_precision};
use crate::ml::shipped::{BACKBONE_FILE, find_model};
use crate::ml::{Backbone, StageTimes};
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
    /// (to measure what the fast path buys; fp32 only).
    #[arg(long)]
    pub burn_front_end: bool,
    /// Also print where a forward pass spends its time, stage by stage, per precision.
    #[arg(long)]
    pub profile: bool,
    /// Skip the end-to-end pass over every file (and with it the precision agreement).
    #[arg(long)]
    pub no_end_to_end: bool,
    /// Write the measurements as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Measure full-length songs instead: every file under this folder analysed end to
    /// end as `classify` does (adaptive listening, seeking), against fixed listening with
    /// and without seeking; songs per second and a first scan of 50 000 tracks estimated.
    #[arg(long, value_name = "DIR")]
    pub songs: Option<PathBuf>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
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

/// One precision's figures.
#[derive(Debug, Clone, serde::Serialize)]
struct PrecisionFigures {
    precision: Precision,
    /// Median milliseconds per single patch (batch 1).
    patch_ms: f64,
    /// Median milliseconds of backbone per clip (all its patches in one batch).
    clip_ms: f64,
    /// Mean patches per clip.
    patches_per_clip: f64,
    /// Tracks per second end to end (decode overlapped with inference), if measured.
    tracks_per_s: Option<f64>,
    /// Stage profile (seconds summed over the sample clips), with `--profile`.
    stages: Vec<(String, f64)>,
}

/// One clip's per-patch (penultimate embedding, tag probabilities).
type PatchOutputs = Vec<(Vec<f32>, Vec<f32>)>;

/// Run `bench`.
pub fn run(args: BenchArgs, device: &Device) -> anyhow::Result<u8> {
    if let Some(dir) = &args.songs {
        return songs(dir, args.json.as_deref(), device);
    }
    // The precision `--precision` asked for; the shipped model is loaded at each one
    // measured (its shared backbone is per precision), then this is restored.
    let asked = default_precision();
    let loaded = Backbone::load(&find_model(BACKBONE_FILE)?, device)?;
    let mut precisions = vec![Precision::Fp32];
    let base = if args.burn_front_end {
        loaded.without_fast_path()
    } else {
        // The reduced precision `auto` picks here (int16 with VNNI), or the one asked for.
        let reduced = match asked {
            Precision::Auto | Precision::Fp32 => Precision::Auto.resolve(),
            p => p,
        };
        if reduced != Precision::Fp32 {
            precisions.push(reduced);
        }
        loaded
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
        ..ListenOptions::default()
    };

    // Warm up allocator, thread pool and decoder.
    listen(&sample[0], &all)?;
    let mut pre = Vec::new();
    let mut clips = Vec::new();
    for f in &sample {
        let t = Instant::now();
        let p = listen(f, &all).with_context(|| format!("while decoding {}", f.display()))?;
        pre.push(t.elapsed().as_secs_f64());
        clips.push(p);
    }
    let pre_ms = median(&mut pre) * 1e3;
    let one = ListenOptions {
        max_patches: Some(1),
        whole: false,
        ..ListenOptions::default()
    };
    let single = listen(&sample[0], &one)?;

    let mut figures = Vec::new();
    // Per precision: every sample clip's per-patch (embedding, tags), and every file's
    // genre probabilities from the shipped model end to end.
    let mut patch_outs: Vec<Vec<PatchOutputs>> = Vec::new();
    let mut genres: Vec<Vec<(PathBuf, Vec<f32>)>> = Vec::new();
    let mut e2e_files = 0;
    for &precision in &precisions {
        let backbone = if args.burn_front_end {
            base.clone()
        } else {
            base.clone().with_precision(precision)
        };
        backbone.embed_patches(&clips[0].patches, 10);
        let mut outs = Vec::with_capacity(clips.len());
        let mut net_clip: Vec<f64> = clips
            .iter()
            .map(|p| {
                let t = Instant::now();
                let o = backbone.embed_patches(&p.patches, 10);
                let s = t.elapsed().as_secs_f64();
                outs.push(o);
                s
            })
            .collect();
        patch_outs.push(outs);
        let mut net_patch: Vec<f64> = (0..10)
            .map(|_| {
                let t = Instant::now();
                backbone.embed_patches(&single.patches, 1);
                t.elapsed().as_secs_f64()
            })
            .collect();
        let mut stages = Vec::new();
        if args.profile {
            let mut times = StageTimes::default();
            for p in &clips {
                let n = p.patches.len() / (PATCH_FRAMES * N_MELS);
                let x: Tensor<3> = Tensor::from_data(
                    TensorData::new(p.patches.clone(), [n, PATCH_FRAMES, N_MELS]),
                    backbone.device(),
                );
                backbone.forward_profiled(x, &mut times);
            }
            stages = times
                .stages
                .into_iter()
                .map(|(s, v)| (s.to_string(), v / clips.len() as f64))
                .collect();
        }
        // End to end over every file with the shipped model at this precision: decoding
        // overlapped with inference, as `classify` does.
        let mut tracks_per_s = None;
        if !args.no_end_to_end {
            if !args.burn_front_end {
                set_default_precision(precision);
            }
            let model = load_model(None, device);
            set_default_precision(asked);
            let analyzer = Analyzer::new(model?, AnalyseOptions::default());
            let mut done = Vec::new();
            let t = Instant::now();
            analyzer.analyse_all(files.clone(), |path, r| {
                if let Ok(a) = r {
                    done.push((path, a.genre_probs));
                }
                true
            });
            let e2e = t.elapsed().as_secs_f64();
            e2e_files = done.len();
            tracks_per_s = Some(done.len() as f64 / e2e);
            genres.push(done);
        }
        figures.push(PrecisionFigures {
            precision,
            patch_ms: median(&mut net_patch) * 1e3,
            clip_ms: median(&mut net_clip) * 1e3,
            patches_per_clip: clips.iter().map(|p| p.len() as f64).sum::<f64>()
                / clips.len() as f64,
            tracks_per_s,
            stages,
        });
    }

    let reference: Option<Reference> = match &args.reference {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("while reading {}", path.display()))?;
            Some(serde_json::from_str(&text)?)
        }
        None => None,
    };
    println!(
        "genretag bench on {} ({} clips for stages, {} for end-to-end){}",
        args.data.display(),
        sample.len(),
        e2e_files,
        if args.burn_front_end {
            "; front end through burn's convolutions"
        } else {
            ""
        }
    );
    let ratio = |ours: f64, theirs: Option<f64>| match theirs {
        Some(r) if r > 0.0 => format!("  (ours/ref {:.2})", ours / r),
        _ => String::new(),
    };
    let ref_pre = reference.as_ref().map(|r| r.preprocess_s_per_clip * 1e3);
    let ref_clip = reference.as_ref().map(|r| r.network_s_per_clip * 1e3);
    let ref_patch = reference
        .as_ref()
        .and_then(|r| r.network_s_per_patch.map(|p| p * 1e3));
    let ref_total = reference
        .as_ref()
        .map(|r| (r.preprocess_s_per_clip + r.network_s_per_clip) * 1e3);
    println!(
        "  decode+resample+mel            {pre_ms:8.1} ms per clip{}",
        ratio(pre_ms, ref_pre)
    );
    for f in &figures {
        let p = f.precision;
        println!(
            "  [{p}] backbone, batch 1        {:8.1} ms per patch{}",
            f.patch_ms,
            ratio(f.patch_ms, ref_patch)
        );
        println!(
            "  [{p}] backbone, whole clip     {:8.1} ms per clip ({:.1} patches, {:.1} ms per patch){}",
            f.clip_ms,
            f.patches_per_clip,
            f.clip_ms / f.patches_per_clip,
            ratio(f.clip_ms, ref_clip)
        );
        println!(
            "  [{p}] pipeline (sequential)    {:8.1} ms per clip{}",
            pre_ms + f.clip_ms,
            ratio(pre_ms + f.clip_ms, ref_total)
        );
        if let Some(tps) = f.tracks_per_s {
            println!("  [{p}] end-to-end               {tps:8.2} tracks/s (decode overlapped)");
        }
        if !f.stages.is_empty() {
            let total: f64 = f.stages.iter().map(|(_, v)| v).sum();
            println!(
                "  [{p}] where a clip's forward pass goes ({:.1} ms):",
                total * 1e3
            );
            for (stage, v) in &f.stages {
                println!(
                    "        {stage:<32} {:7.1} ms {:5.1}%",
                    v * 1e3,
                    100.0 * v / total
                );
            }
        }
    }
    if let Some(r) = &reference {
        println!(
            "reference: TensorFlow {} CPU musicnn on {} of the same clips, same machine, same run",
            r.tensorflow, r.clips
        );
        println!(
            "  load+resample+mel              {:8.1} ms per clip",
            r.preprocess_s_per_clip * 1e3
        );
        if let Some(p) = ref_patch {
            println!("  network, batch 1               {p:8.1} ms per patch");
        }
        println!(
            "  network, whole clip            {:8.1} ms per clip",
            r.network_s_per_clip * 1e3
        );
        if let Some(total) = ref_total {
            println!("  full pipeline                  {total:8.1} ms per clip");
            for f in &figures {
                println!(
                    "  ratio [{}] full pipeline ours/ref {:.2} (target <= 0.35)",
                    f.precision,
                    (pre_ms + f.clip_ms) / total
                );
            }
        }
    }
    let mut agreement = None;
    if let [exact, other] = &patch_outs[..] {
        // Every patch of the sample clips (penultimate, tags); every file's genre
        // decision and probabilities when the end-to-end pass ran.
        let mut agree = Agreement::default();
        for (e, o) in exact.iter().zip(other) {
            fn emb(v: &[(Vec<f32>, Vec<f32>)]) -> Vec<&[f32]> {
                v.iter().map(|(e, _)| e.as_slice()).collect()
            }
            fn tags(v: &[(Vec<f32>, Vec<f32>)]) -> Vec<&[f32]> {
                v.iter().map(|(_, t)| t.as_slice()).collect()
            }
            let (ee, et, oe, ot) = (emb(e), tags(e), emb(o), tags(o));
            agree.add_patches((&ee, &oe), (&et, &ot));
        }
        if let [exact, other] = &genres[..] {
            for ((pe, e), (po, o)) in exact.iter().zip(other) {
                anyhow::ensure!(pe == po, "end-to-end passes disagree on the files");
                agree.add_genres(e, o);
            }
        }
        println!(
            "[{}] vs [fp32] ({} sample clips' patches{}): {}",
            precisions[1],
            exact.len(),
            if genres.len() == 2 {
                format!(", genres of all {e2e_files} files")
            } else {
                String::new()
            },
            agree.summary()
        );
        agreement = Some(agree);
    }
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "decode_ms_per_clip": pre_ms,
            "precisions": figures,
            "agreement": agreement,
            "reference": reference,
        }))?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(EXIT_OK)
}

/// One way of listening measured by `bench --songs`.
#[derive(Debug, serde::Serialize)]
struct SongFigures {
    mode: &'static str,
    adaptive: bool,
    seek: bool,
    songs: usize,
    seconds: f64,
    songs_per_s: f64,
    /// CPU seconds (all threads) per song, and the cores that kept busy on average.
    cpu_s_per_song: f64,
    cores_busy: f64,
    /// Mean patches analysed per song.
    patches_per_song: f64,
    /// Songs whose decision (genre or unsure) is the one of the whole decode.
    same_as_whole_decode: usize,
    /// Hours a first scan of 50 000 such tracks would take at this rate.
    hours_for_50k: f64,
}

/// `bench --songs DIR`: end-to-end speed on full-length songs.
fn songs(
    dir: &std::path::Path,
    json: Option<&std::path::Path>,
    device: &Device,
) -> anyhow::Result<u8> {
    use crate::listen::PATCH_SECS;
    let (files, _) = crate::library::files::collect(&[dir.to_path_buf()]);
    anyhow::ensure!(!files.is_empty(), "no audio under {}", dir.display());
    let mut minutes = 0.0;
    for f in &files {
        let s = crate::audio::open(f)?;
        let i = s.info();
        minutes += i.total_frames.unwrap_or(0) as f64 / i.sample_rate_hz.max(1) as f64 / 60.0;
    }
    let modes = [
        ("adaptive listening, seeking (the default)", true, true),
        ("10 patches, seeking", false, true),
        ("10 patches, whole decode (before seeking)", false, false),
    ];
    // Warm up the allocator, thread pool, decoder and the shared backbone.
    Analyzer::new(load_model(None, device)?, AnalyseOptions::default()).analyse_path(&files[0])?;
    let mut runs = Vec::new();
    for (mode, adaptive, seek) in modes {
        // A model of its own: none of the patches it remembers come from another mode.
        let analyzer = Analyzer::new(
            load_model(None, device)?,
            AnalyseOptions {
                adaptive,
                seek,
                ..AnalyseOptions::default()
            },
        );
        let mut done = Vec::new();
        let (t, cpu0) = (Instant::now(), cpu_seconds());
        analyzer.analyse_all(files.clone(), |path, r| {
            match r {
                Ok(a) => done.push((path, Some(a.verdict), a.listened_s)),
                Err(_) => done.push((path, None, 0.0)),
            }
            true
        });
        let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        runs.push((mode, adaptive, seek, wall, cpu, done));
    }
    // The decision: the genre written, or none (unsure, or the file failed).
    let decision = |v: &Option<crate::model::Verdict>| match v {
        Some(crate::model::Verdict::Genre { label, .. }) => Some(label.clone()),
        _ => None,
    };
    let whole: Vec<Option<String>> = runs
        .last()
        .map(|r| r.5.iter().map(|d| decision(&d.1)).collect())
        .unwrap_or_default();
    println!(
        "genretag bench --songs {}: {} files, {:.1} min each on average",
        dir.display(),
        files.len(),
        minutes / files.len() as f64
    );
    let mut figures = Vec::new();
    for (mode, adaptive, seek, secs, cpu, done) in runs {
        let ok = done.iter().filter(|d| d.1.is_some()).count();
        let same = done
            .iter()
            .zip(&whole)
            .filter(|(d, w)| d.1.is_some() && decision(&d.1) == **w)
            .count();
        let patches = done.iter().map(|d| d.2 / PATCH_SECS as f64).sum::<f64>() / ok.max(1) as f64;
        let sps = ok as f64 / secs;
        let f = SongFigures {
            mode,
            adaptive,
            seek,
            songs: ok,
            seconds: secs,
            songs_per_s: sps,
            cpu_s_per_song: cpu / ok.max(1) as f64,
            cores_busy: cpu / secs.max(1e-9),
            patches_per_song: patches,
            same_as_whole_decode: same,
            hours_for_50k: 50_000.0 / sps.max(1e-9) / 3600.0,
        };
        println!(
            "  {:<44} {:6.2} songs/s ({:.3} s per song, {:.3} CPU s per song on {:.2} busy cores, \
             {:.1} patches per song); same decision as the whole decode on {}/{}; a first scan of \
             50 000 such tracks: {:.1} h",
            f.mode,
            f.songs_per_s,
            f.seconds / ok.max(1) as f64,
            f.cpu_s_per_song,
            f.cores_busy,
            f.patches_per_song,
            f.same_as_whole_decode,
            ok,
            f.hours_for_50k
        );
        figures.push(f);
    }
    if let Some(p) = json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "songs_dir": dir,
            "files": files.len(),
            "mean_minutes": minutes / files.len() as f64,
            "modes": figures,
        }))?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(EXIT_OK)
}

/// CPU time this process has used, all threads, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value, and getrusage only writes the struct
    // it is given.
    let (status, u) = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut u), u)
    };
    if status != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
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
    /// Channel widths of the conv blocks (default: the 16,32,64,128; the results
    /// table's 5-block CNN is 32,64,128,256,512).
    #[arg(long, value_delimiter = ',')]
    pub widths: Vec<usize>,
    /// Write the measurements as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also print each block's forward and backward time, fused and through burn's
    /// separate operations, and each step's forward/backward/update split.
    #[arg(long)]
    pub profile: bool,
    /// Skip the measurement through burn's separate operations (the "before" figure).
    #[arg(long)]
    pub fused_only: bool,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct TrainReference {
    framework: String,
    parameters: usize,
    step_s: f64,
    infer_ms: f64,
    #[serde(default)]
    widths: Vec<usize>,
}

/// Run `bench-train`.
pub fn run_train(args: BenchTrainArgs, device: &Device) -> anyhow::Result<u8> {
    use crate::train::bench::{INPUT, WIDTHS, layer_timings, measure};
    use crate::train::conv_block::set_fused_enabled;
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
    let widths = if args.widths.is_empty() {
        WIDTHS.to_vec()
    } else {
        args.widths.clone()
    };
    if let Some(r) = &reference {
        anyhow::ensure!(
            r.widths.is_empty() || r.widths == widths,
            "the reference measured widths {:?}, not {widths:?}",
            r.widths
        );
    }
    println!(
        "CNN {widths:?} (3x3 conv, batch norm, ReLU, 2x2 max-pool; global average pool; dense 10), batch {} of 1x{}x{}, Adam, fp32",
        args.batch, INPUT[0], INPUT[1]
    );
    let mut layers = Vec::new();
    if args.profile {
        layers = layer_timings(device, args.batch, &widths);
        println!(
            "{:<20} {:>16} {:>16} {:>16} {:>16}",
            "block (training)", "burn fwd ms", "burn bwd ms", "fused fwd ms", "fused bwd ms"
        );
        for l in &layers {
            println!(
                "{:<20} {:>16.1} {:>16.1} {:>16.1} {:>16.1}",
                l.layer,
                l.unfused_forward_ms,
                l.unfused_backward_ms,
                l.fused_forward_ms,
                l.fused_backward_ms
            );
        }
        let sum =
            |f: fn(&crate::train::bench::LayerTiming) -> f64| layers.iter().map(f).sum::<f64>();
        println!(
            "{:<20} {:>16.1} {:>16.1} {:>16.1} {:>16.1}",
            "all blocks",
            sum(|l| l.unfused_forward_ms),
            sum(|l| l.unfused_backward_ms),
            sum(|l| l.fused_forward_ms),
            sum(|l| l.fused_backward_ms)
        );
    }
    set_fused_enabled(true);
    let fused = measure(device, args.batch, args.steps, 20, args.profile, &widths);
    let unfused = if args.fused_only {
        None
    } else {
        set_fused_enabled(false);
        let m = measure(device, args.batch, args.steps, 20, args.profile, &widths);
        set_fused_enabled(true);
        Some(m)
    };
    let row = |name: &str, m: &crate::train::bench::Measured| {
        println!(
            "{name:<22} {:>8} params  {:>7.3} s/step  {:>6.2} ms/inference  (loss after {} steps {:.3})",
            m.parameters,
            m.step_s,
            m.infer_ms,
            args.steps + 2,
            m.final_loss
        );
    };
    row("genretag (fused)", &fused);
    if let Some(u) = &unfused {
        row("genretag (burn ops)", u);
    }
    if let Some(r) = &reference {
        println!(
            "{:<22} {:>8} params  {:>7.3} s/step  {:>6.2} ms/inference",
            r.framework, r.parameters, r.step_s, r.infer_ms
        );
        println!(
            "ratio genretag (fused) / {}: training step {:.2}x (target <= 1.0), inference {:.2}x",
            r.framework,
            fused.step_s / r.step_s,
            fused.infer_ms / r.infer_ms
        );
        if let Some(u) = &unfused {
            println!(
                "ratio genretag (burn ops) / {}: training step {:.2}x, inference {:.2}x",
                r.framework,
                u.step_s / r.step_s,
                u.infer_ms / r.infer_ms
            );
        }
    }
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "widths": widths,
            "genretag": fused,
            "genretag_unfused": unfused,
            "layers": layers,
            "reference": reference,
        }))?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(EXIT_OK)
}
