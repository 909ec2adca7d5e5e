//! `genretag train-default`: the shipped genre head and its honest accuracy.
//!
//! Embeds every clip of a GTZAN-layout folder with musicnn (patch-averaged
//! `penultimate`), reports cross-validated accuracy under several protocols —
//! grouped by blocks of consecutive GTZAN numbers (artist leakage) and plain
//! stratified for comparison — then trains the head on all clips and saves it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::EXIT_OK;
use crate::analysis::{BACKBONE_FILE, PatchOptions, decode_ahead, find_model, mean_rows};
use crate::genre::Genre;
use crate::ml::cv::{grouped_folds, gtzan_block, stratified_folds};
use crate::ml::musicnn::EMBED_DIM;
use crate::ml::{Backbone, GenreHead, HeadConfig, HeadKind};

/// Arguments of `train-default`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder: one sub-folder per genre (GTZAN layout).
    #[arg(long, default_value_os_t = super::default_gtzan_dir())]
    pub data: PathBuf,
    /// Output model path (writes `.json` and `.bpk`).
    #[arg(long, default_value = "models/genre_head")]
    pub out: PathBuf,
    /// Head kind.
    #[arg(long, value_enum, default_value_t = HeadKind::Logreg)]
    pub kind: HeadKind,
    /// Embedding cache (recomputed for files whose size or mtime changed).
    #[arg(long, default_value = "target/genretag-embeddings.json")]
    pub cache: PathBuf,
    /// Repeats of each cross-validation protocol (different fold seeds).
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Also cross-validate on TensorFlow reference embeddings (`reference_dev_embeddings.npz`).
    #[arg(long)]
    pub reference_embeddings: Option<PathBuf>,
    /// Write the cross-validation report here (JSON).
    #[arg(long, default_value = "models/genre_head_cv.json")]
    pub report: PathBuf,
    /// Only report cross-validation; do not write a model.
    #[arg(long)]
    pub cv_only: bool,
    /// Folder with the fault-filtered GTZAN split lists (train/valid/test_filtered.txt);
    /// skipped if absent.
    #[arg(long, default_value_os_t = super::default_gtzan_dir().join("../splits/gtzan-fault-filtered"))]
    pub splits: PathBuf,
}

/// One clip's cached embedding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedEmbedding {
    /// Path relative to the dataset folder.
    pub rel: String,
    /// File size, for invalidation.
    pub size: u64,
    /// Modification time (seconds), for invalidation.
    pub mtime: u64,
    /// Patch-averaged penultimate.
    pub embedding: Vec<f32>,
}

/// A labelled clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Path relative to the dataset folder (`blues/blues.00000.flac`).
    pub rel: String,
    /// Genre index.
    pub label: usize,
    /// Embedding.
    pub embedding: Vec<f32>,
}

fn file_stamp(p: &Path) -> (u64, u64) {
    let m = std::fs::metadata(p).ok();
    let size = m.as_ref().map_or(0, |m| m.len());
    let mtime = m
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    (size, mtime)
}

/// Labelled files of a GTZAN-layout folder, sorted.
pub fn dataset_files(data: &Path) -> anyhow::Result<Vec<(String, usize)>> {
    let ds = crate::train::dataset::Dataset::from_folder(data)?;
    let out: Vec<(String, usize)> = ds
        .items
        .iter()
        .filter_map(|item| {
            let genre = Genre::from_key(&ds.labels[item.label])?;
            let rel = item
                .path
                .strip_prefix(data)
                .ok()?
                .to_string_lossy()
                .to_string();
            Some((rel, genre.index()))
        })
        .collect();
    anyhow::ensure!(
        !out.is_empty(),
        "no genre folders with audio in {}",
        data.display()
    );
    Ok(out)
}

/// Embed (or load from cache) every clip of the dataset.
pub fn embed_dataset(
    data: &Path,
    cache_path: &Path,
    backbone: &Backbone,
) -> anyhow::Result<Vec<Clip>> {
    let files = dataset_files(data)?;
    let mut cache: BTreeMap<String, CachedEmbedding> = std::fs::read_to_string(cache_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<CachedEmbedding>>(&t).ok())
        .map(|v| v.into_iter().map(|c| (c.rel.clone(), c)).collect())
        .unwrap_or_default();
    let todo: Vec<(String, PathBuf, (u64, u64))> = files
        .iter()
        .map(|(rel, _)| (rel.clone(), data.join(rel)))
        .map(|(rel, p)| {
            let stamp = file_stamp(&p);
            (rel, p, stamp)
        })
        .filter(|(rel, _, (size, mtime))| {
            !cache.get(rel).is_some_and(|c| {
                c.size == *size && c.mtime == *mtime && c.embedding.len() == EMBED_DIM
            })
        })
        .collect();
    if !todo.is_empty() {
        eprintln!("embedding {} clips with musicnn...", todo.len());
        let bar = indicatif::ProgressBar::new(todo.len() as u64);
        let paths: Vec<PathBuf> = todo.iter().map(|(_, p, _)| p.clone()).collect();
        let all_patches = PatchOptions {
            max_patches: None,
            batch: 10,
        };
        // decode_ahead yields files in order, so they pair up with `todo`.
        for ((rel, _, (size, mtime)), (_, patches)) in
            todo.into_iter().zip(decode_ahead(paths, all_patches))
        {
            let patches = patches.with_context(|| format!("while decoding {rel}"))?;
            let outs = backbone.embed_patches(&patches.data, 10);
            let embs: Vec<Vec<f32>> = outs.into_iter().map(|(e, _)| e).collect();
            cache.insert(
                rel.clone(),
                CachedEmbedding {
                    rel,
                    size,
                    mtime,
                    embedding: mean_rows(&embs),
                },
            );
            bar.inc(1);
        }
        bar.finish_and_clear();
        if let Some(parent) = cache_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let all: Vec<&CachedEmbedding> = cache.values().collect();
        std::fs::write(cache_path, serde_json::to_string(&all)?)?;
    }
    Ok(files
        .into_iter()
        .filter_map(|(rel, label)| {
            cache.get(&rel).map(|c| Clip {
                rel: rel.clone(),
                label,
                embedding: c.embedding.clone(),
            })
        })
        .collect())
}

/// One cross-validation protocol's result.
#[derive(Debug, Clone, Serialize)]
pub struct CvResult {
    /// Protocol name.
    pub protocol: String,
    /// Clips used.
    pub clips: usize,
    /// Mean accuracy over repeats.
    pub accuracy: f64,
    /// Standard deviation over repeats.
    pub accuracy_std: f64,
    /// Mean balanced (per-class averaged) accuracy.
    pub balanced_accuracy: f64,
    /// Repeats.
    pub repeats: usize,
}

fn fit_predict(
    kind: HeadKind,
    train: &[&Clip],
    test: &[&Clip],
    device: &Device,
) -> anyhow::Result<Vec<usize>> {
    let labels: Vec<String> = Genre::ALL.iter().map(|g| g.key().to_string()).collect();
    let mut cfg = HeadConfig::new(kind, labels, EMBED_DIM);
    cfg.l2 = 1.0 / train.len() as f32; // sklearn's C = 1
    let x: Vec<Vec<f32>> = train.iter().map(|c| c.embedding.clone()).collect();
    let y: Vec<usize> = train.iter().map(|c| c.label).collect();
    let head = GenreHead::train(cfg, &x, &y, device)?;
    let xt: Vec<Vec<f32>> = test.iter().map(|c| c.embedding.clone()).collect();
    Ok(head
        .predict_proba(&xt)
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i)
        })
        .collect())
}

/// Cross-validate with fold assignments produced per repeat by `folds(seed)`.
pub fn cross_validate(
    protocol: &str,
    clips: &[Clip],
    kind: HeadKind,
    repeats: usize,
    device: &Device,
    folds: impl Fn(u64) -> Vec<usize>,
) -> anyhow::Result<CvResult> {
    let mut accs = Vec::new();
    let mut baccs = Vec::new();
    for r in 0..repeats {
        let fold_of = folds(r as u64 + 1);
        let k = fold_of.iter().max().map_or(0, |m| m + 1);
        let mut pred = vec![usize::MAX; clips.len()];
        for f in 0..k {
            let train: Vec<&Clip> = clips
                .iter()
                .zip(&fold_of)
                .filter(|(_, g)| **g != f)
                .map(|(c, _)| c)
                .collect();
            let test_idx: Vec<usize> = (0..clips.len()).filter(|&i| fold_of[i] == f).collect();
            if test_idx.is_empty() {
                continue;
            }
            let test: Vec<&Clip> = test_idx.iter().map(|&i| &clips[i]).collect();
            for (i, p) in test_idx
                .iter()
                .zip(fit_predict(kind, &train, &test, device)?)
            {
                pred[*i] = p;
            }
        }
        let correct = clips
            .iter()
            .zip(&pred)
            .filter(|(c, p)| c.label == **p)
            .count();
        accs.push(correct as f64 / clips.len() as f64);
        let mut per_class = Vec::new();
        for g in 0..Genre::ALL.len() {
            let n = clips.iter().filter(|c| c.label == g).count();
            if n > 0 {
                let ok = clips
                    .iter()
                    .zip(&pred)
                    .filter(|(c, p)| c.label == g && **p == g)
                    .count();
                per_class.push(ok as f64 / n as f64);
            }
        }
        baccs.push(per_class.iter().sum::<f64>() / per_class.len().max(1) as f64);
    }
    let mean = accs.iter().sum::<f64>() / accs.len().max(1) as f64;
    let std =
        (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accs.len().max(1) as f64).sqrt();
    Ok(CvResult {
        protocol: protocol.to_string(),
        clips: clips.len(),
        accuracy: mean,
        accuracy_std: std,
        balanced_accuracy: baccs.iter().sum::<f64>() / baccs.len().max(1) as f64,
        repeats,
    })
}

/// The protocols reported for the default model.
pub fn standard_protocols(
    clips: &[Clip],
    kind: HeadKind,
    repeats: usize,
    device: &Device,
) -> anyhow::Result<Vec<CvResult>> {
    let file_name = |c: &Clip| c.rel.rsplit('/').next().unwrap_or(&c.rel).to_string();
    // The reference protocol: 10 clips per genre (the lowest numbers), stratified 10-fold.
    let mut per_genre = [0usize; 10];
    let balanced: Vec<Clip> = clips
        .iter()
        .filter(|c| {
            per_genre[c.label] += 1;
            per_genre[c.label] <= 10
        })
        .cloned()
        .collect();
    let labels_b: Vec<usize> = balanced.iter().map(|c| c.label).collect();
    let labels_a: Vec<usize> = clips.iter().map(|c| c.label).collect();
    let groups_a: Vec<String> = clips
        .iter()
        .map(|c| gtzan_block(&file_name(c), 5).unwrap_or_else(|| c.rel.clone()))
        .collect();
    let groups_b: Vec<String> = balanced
        .iter()
        .map(|c| gtzan_block(&file_name(c), 5).unwrap_or_else(|| c.rel.clone()))
        .collect();
    Ok(vec![
        cross_validate(
            "balanced-100, stratified 10-fold (reference protocol)",
            &balanced,
            kind,
            repeats,
            device,
            |s| stratified_folds(&labels_b, 10, s),
        )?,
        cross_validate(
            "balanced-100, grouped 5-fold (blocks of 5 numbers)",
            &balanced,
            kind,
            repeats,
            device,
            |s| grouped_folds(&labels_b, &groups_b, 5, s),
        )?,
        cross_validate(
            "all, stratified 10-fold, class-weighted",
            clips,
            kind,
            repeats,
            device,
            |s| stratified_folds(&labels_a, 10, s),
        )?,
        cross_validate(
            "all, grouped 5-fold (blocks of 5 numbers), class-weighted",
            clips,
            kind,
            repeats,
            device,
            |s| grouped_folds(&labels_a, &groups_a, 5, s),
        )?,
    ])
}

fn print_table(title: &str, rows: &[CvResult]) {
    println!("{title}");
    println!(
        "  {:<62} {:>5} {:>9} {:>7} {:>9}",
        "protocol", "clips", "accuracy", "std", "bal.acc"
    );
    for r in rows {
        println!(
            "  {:<62} {:>5} {:>9.3} {:>7.3} {:>9.3}",
            r.protocol, r.clips, r.accuracy, r.accuracy_std, r.balanced_accuracy
        );
    }
}

/// Result on the explicit fault-filtered split.
#[derive(Debug, Clone, Serialize)]
pub struct ListSplitResult {
    /// Training clips present (train + valid lists).
    pub train: usize,
    /// Test clips present.
    pub test: usize,
    /// Accuracy on them.
    pub accuracy: f64,
    /// Listed files not in the dataset.
    pub missing: usize,
    /// Files listed in all three lists.
    pub listed: usize,
}

fn fault_filtered(
    args: &TrainArgs,
    clips: &[Clip],
    device: &Device,
) -> anyhow::Result<ListSplitResult> {
    use crate::train::dataset::{Dataset, from_lists};
    let ds = Dataset::from_folder(&args.data)?;
    let split = from_lists(
        &ds,
        &args.splits.join("train_filtered.txt"),
        Some(&args.splits.join("valid_filtered.txt")),
        &args.splits.join("test_filtered.txt"),
    )?;
    let by_rel: BTreeMap<&str, &Clip> = clips.iter().map(|c| (c.rel.as_str(), c)).collect();
    let clip = |i: usize| -> Option<&Clip> {
        let rel = ds.items[i]
            .path
            .strip_prefix(&args.data)
            .ok()?
            .to_string_lossy()
            .to_string();
        by_rel.get(rel.as_str()).copied()
    };
    let train: Vec<&Clip> = split
        .train
        .iter()
        .chain(&split.val)
        .filter_map(|&i| clip(i))
        .collect();
    let test: Vec<&Clip> = split.test.iter().filter_map(|&i| clip(i)).collect();
    anyhow::ensure!(
        !train.is_empty() && !test.is_empty(),
        "no clips of the split lists are present"
    );
    let pred = fit_predict(args.kind, &train, &test, device)?;
    let correct = test
        .iter()
        .zip(&pred)
        .filter(|(c, p)| c.label == **p)
        .count();
    Ok(ListSplitResult {
        train: train.len(),
        test: test.len(),
        accuracy: correct as f64 / test.len() as f64,
        missing: split.missing.len(),
        listed: split.train.len() + split.val.len() + split.test.len() + split.missing.len(),
    })
}

/// Clips with the TF reference embeddings instead of ours.
fn reference_clips(npz: &Path) -> anyhow::Result<Vec<Clip>> {
    let arrays = crate::ml::npy::read_npz(npz)?;
    let files = arrays
        .get("files")
        .and_then(|a| a.strings())
        .context("npz lacks files")?;
    let pen = arrays
        .get("penultimate")
        .and_then(|a| a.f32s())
        .context("npz lacks penultimate")?;
    let mut clips: Vec<Clip> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let genre = Genre::from_key(f.split('/').next()?)?;
            Some(Clip {
                rel: f.clone(),
                label: genre.index(),
                embedding: pen[i * EMBED_DIM..(i + 1) * EMBED_DIM].to_vec(),
            })
        })
        .collect();
    clips.sort_by(|a, b| (a.label, &a.rel).cmp(&(b.label, &b.rel)));
    Ok(clips)
}

/// Run `train-default`.
pub fn run(args: TrainArgs, device: &Device) -> anyhow::Result<u8> {
    let backbone = Backbone::load(&find_model(BACKBONE_FILE)?, device)?;
    let clips = embed_dataset(&args.data, &args.cache, &backbone)?;
    eprintln!(
        "{} clips; cross-validating ({} repeats each)...",
        clips.len(),
        args.repeats
    );
    let ours = standard_protocols(&clips, args.kind, args.repeats, device)?;
    print_table("musicnn (this port) penultimate -> head:", &ours);
    let mut report = serde_json::json!({
        "data": args.data.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        "kind": args.kind,
        "ours": ours,
    });
    if let Some(npz) = &args.reference_embeddings {
        let theirs = standard_protocols(&reference_clips(npz)?, args.kind, args.repeats, device)?;
        print_table("TensorFlow reference embeddings -> same head:", &theirs);
        report["tensorflow_reference"] = serde_json::to_value(&theirs)?;
    }
    if args.splits.join("test_filtered.txt").exists() {
        let r = fault_filtered(&args, &clips, device)?;
        println!(
            "fault-filtered split (Kereliuk et al.), files present here: trained on {} (train+valid), \
             tested on {}: accuracy {:.3} ({} of {} listed files missing)",
            r.train, r.test, r.accuracy, r.missing, r.listed
        );
        report["fault_filtered"] = serde_json::to_value(&r)?;
    }
    if args.cv_only {
        return Ok(EXIT_OK);
    }
    let labels: Vec<String> = Genre::ALL.iter().map(|g| g.key().to_string()).collect();
    let mut cfg = HeadConfig::new(args.kind, labels, EMBED_DIM);
    cfg.l2 = 1.0 / clips.len() as f32;
    cfg.notes = format!(
        "trained on all {} clips of {} (class-weighted); see genre_head_cv.json and models/README.md",
        clips.len(),
        args.data
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    let x: Vec<Vec<f32>> = clips.iter().map(|c| c.embedding.clone()).collect();
    let y: Vec<usize> = clips.iter().map(|c| c.label).collect();
    let head = GenreHead::train(cfg, &x, &y, device)?;
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    head.save(&args.out)?;
    std::fs::write(&args.report, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!(
        "wrote {} (.json, .bpk) and {}",
        args.out.display(),
        args.report.display()
    );
    Ok(EXIT_OK)
}
