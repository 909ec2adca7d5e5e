//! `genretag classify`: top genres, style tags and an optional per-segment timeline.
//!
//! Decoding runs one file ahead of inference ([`decode_ahead`]), so the two
//! overlap. A file that fails is reported and the batch continues.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use serde::Serialize;

use super::{EXIT_FATAL, EXIT_OK, EXIT_PARTIAL};
use crate::analysis::{Analyzer, DEFAULT_MAX_PATCHES, PatchOptions, TrackAnalysis, decode_ahead};

/// Arguments of `classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Audio files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// How many genres to show per track (1 or more).
    #[arg(long, default_value_t = 3, value_parser = super::tag::at_least_one)]
    pub top_k: usize,
    /// How many backbone style tags to show per track.
    #[arg(long, default_value_t = 5)]
    pub tags: usize,
    /// Show the genre of each 3 s segment.
    #[arg(long)]
    pub segments: bool,
    /// Print one JSON document (schema `genretag.classify/1`, see README) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Genre head to use (`NAME.json` with `NAME.bpk` beside it), or a model trained with
    /// `genretag train` (its run folder or `model/` folder); default: the shipped model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Analyse every 3 s patch instead of at most `--max-patches` evenly spread ones.
    #[arg(long)]
    pub all_patches: bool,
    /// Patches analysed per track (evenly spread) unless `--all-patches` (1 or more).
    #[arg(long, default_value_t = DEFAULT_MAX_PATCHES, value_parser = super::tag::at_least_one)]
    pub max_patches: usize,
}

/// One genre with its probability.
#[derive(Debug, Serialize)]
pub struct Scored {
    /// Label.
    pub label: String,
    /// Probability in [0, 1].
    pub probability: f32,
}

/// One segment of the timeline.
#[derive(Debug, Serialize)]
pub struct JsonSegment {
    /// Start, seconds.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
    /// Most likely genre in this segment.
    pub genre: String,
    /// Its probability.
    pub probability: f32,
}

/// One track in the JSON output.
#[derive(Debug, Serialize)]
pub struct JsonTrack {
    /// File as given/found.
    pub path: String,
    /// False if the file could not be analysed.
    pub ok: bool,
    /// Why it failed (only when `ok` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Decoded duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Patches analysed / complete patches in the track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<[usize; 2]>,
    /// Top genres, most likely first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<Scored>,
    /// Top backbone tags, most likely first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Scored>,
    /// Per-segment timeline (with `--segments`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<JsonSegment>>,
    /// Non-fatal problems (skipped corrupt packets, padding).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The whole JSON document.
#[derive(Debug, Serialize)]
pub struct JsonReport {
    /// Always `genretag.classify/1`.
    pub schema: &'static str,
    /// Genre labels of the model, in output order.
    pub labels: Vec<String>,
    /// One entry per input file, in input order.
    pub tracks: Vec<JsonTrack>,
    /// Counts.
    pub summary: Summary,
}

/// Counts of the batch.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Files analysed.
    pub ok: usize,
    /// Files that failed.
    pub failed: usize,
}

fn top(ranked: Vec<(&str, f32)>, k: usize) -> Vec<Scored> {
    ranked
        .into_iter()
        .take(k)
        .map(|(label, probability)| Scored {
            label: label.to_string(),
            probability,
        })
        .collect()
}

impl JsonTrack {
    fn failed(path: &std::path::Path, error: String) -> Self {
        Self {
            path: path.display().to_string(),
            ok: false,
            error: Some(error),
            duration_s: None,
            patches: None,
            genres: Vec::new(),
            tags: Vec::new(),
            segments: None,
            warnings: Vec::new(),
        }
    }
}

fn to_json(a: &TrackAnalysis, args: &ClassifyArgs) -> JsonTrack {
    let mut warnings = Vec::new();
    if a.skipped_packets > 0 {
        warnings.push(format!("skipped {} corrupt packet(s)", a.skipped_packets));
    }
    if a.padded {
        warnings.push("shorter than 3 s: padded with silence, low confidence".into());
    }
    JsonTrack {
        path: a.path.display().to_string(),
        ok: true,
        error: None,
        duration_s: Some((a.duration_s * 1000.0).round() / 1000.0),
        patches: Some([a.segments.len(), a.total_patches]),
        genres: top(a.ranked_genres(), args.top_k),
        tags: top(a.ranked_tags(), args.tags),
        segments: args.segments.then(|| {
            a.segments
                .iter()
                .map(|s| {
                    let (best, p) = s
                        .genre_probs
                        .iter()
                        .enumerate()
                        .max_by(|x, y| x.1.total_cmp(y.1))
                        .map(|(i, p)| (a.labels[i].clone(), *p))
                        .unwrap_or_default();
                    JsonSegment {
                        start_s: s.start_s,
                        end_s: s.end_s,
                        genre: best,
                        probability: p,
                    }
                })
                .collect()
        }),
        warnings,
    }
}

fn print_text(t: &JsonTrack, out: &mut impl Write) -> std::io::Result<()> {
    if !t.ok {
        return writeln!(
            out,
            "{}\n  error: {}",
            t.path,
            t.error.as_deref().unwrap_or("unknown")
        );
    }
    writeln!(out, "{}", t.path)?;
    let genres: Vec<String> = t
        .genres
        .iter()
        .map(|g| format!("{} {:.0}%", g.label, g.probability * 100.0))
        .collect();
    writeln!(out, "  genre: {}", genres.join(", "))?;
    let tags: Vec<String> = t
        .tags
        .iter()
        .map(|g| format!("{} {:.0}%", g.label, g.probability * 100.0))
        .collect();
    if !tags.is_empty() {
        writeln!(out, "  style: {}", tags.join(", "))?;
    }
    if let Some(segs) = &t.segments {
        for s in segs {
            writeln!(
                out,
                "  {:>7.1}s-{:>7.1}s  {} {:.0}%",
                s.start_s,
                s.end_s,
                s.genre,
                s.probability * 100.0
            )?;
        }
    }
    for w in &t.warnings {
        writeln!(out, "  warning: {w}")?;
    }
    Ok(())
}

/// `classify` with a model from `genretag train` (any kind, or an ensemble).
fn run_trained(args: &ClassifyArgs, dir: &std::path::Path, device: &Device) -> anyhow::Result<u8> {
    use crate::train::features::{FRAMES_PER_S, FeatureStore};
    use crate::train::saved::SavedModel;
    let model = SavedModel::load(dir, device)
        .with_context(|| format!("while loading the model in {}", dir.display()))?;
    let store = crate::train::run::store_for_model(&model, FeatureStore::default_cache(), device)?;
    let (found, walk_errors) = crate::library::files::collect(&args.paths);
    if found.is_empty() && walk_errors.is_empty() {
        eprintln!("error: no audio files found in the given paths");
        return Ok(EXIT_FATAL);
    }
    let labels = model.file.labels.clone();
    let w = model.file.windowing;
    let (len_s, hop_s) = (
        w.frames() as f32 / FRAMES_PER_S,
        w.hop() as f32 / FRAMES_PER_S,
    );
    let per_window = model
        .file
        .spec
        .as_ref()
        .is_some_and(|s| s.kind != crate::train::models::ModelKind::Rnn);
    let mut tracks: Vec<JsonTrack> = walk_errors
        .into_iter()
        .map(|(p, e)| JsonTrack::failed(&p, format!("cannot read ({e}): {}", p.display())))
        .collect();
    for path in &found {
        let t = match model.predict_file(&store, path) {
            Ok(p) => {
                let mut ranked: Vec<(&str, f32)> = labels
                    .iter()
                    .map(String::as_str)
                    .zip(p.track.iter().copied())
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let segments = (args.segments && per_window).then(|| {
                    p.windows
                        .iter()
                        .enumerate()
                        .map(|(i, row)| {
                            let best = crate::train::metrics::argmax(row);
                            JsonSegment {
                                start_s: i as f32 * hop_s,
                                end_s: i as f32 * hop_s + len_s,
                                genre: labels[best].clone(),
                                probability: row[best],
                            }
                        })
                        .collect()
                });
                JsonTrack {
                    path: path.display().to_string(),
                    ok: true,
                    error: None,
                    duration_s: None,
                    patches: Some([p.windows.len(), p.windows.len()]),
                    genres: top(ranked, args.top_k),
                    tags: Vec::new(),
                    segments,
                    warnings: Vec::new(),
                }
            }
            Err(e) => JsonTrack::failed(path, e.to_string()),
        };
        if !args.json {
            print_text(&t, &mut std::io::stdout().lock())?;
        }
        tracks.push(t);
    }
    let failed = tracks.iter().filter(|t| !t.ok).count();
    let ok = tracks.len() - failed;
    if args.json {
        let report = JsonReport {
            schema: "genretag.classify/1",
            labels,
            tracks,
            summary: Summary { ok, failed },
        };
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if found.len() > 1 || failed > 0 {
        eprintln!("{ok} classified, {failed} failed");
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_PARTIAL })
}

/// Run `classify`. With `--json`, a fatal error still prints one JSON document.
pub fn run(args: ClassifyArgs, device: &Device) -> anyhow::Result<u8> {
    let json = args.json;
    super::tag::report_fatal(
        run_classify(args, device),
        json,
        "genretag.classify/1",
        &[],
        None,
    )
}

fn run_classify(args: ClassifyArgs, device: &Device) -> anyhow::Result<u8> {
    if let Some(dir) = args
        .model
        .as_deref()
        .and_then(crate::train::saved::SavedModel::find_dir)
    {
        return run_trained(&args, &dir, device);
    }
    let analyzer =
        Analyzer::load(args.model.as_deref(), device).context("while loading the genre model")?;
    let (found, walk_errors) = crate::library::files::collect(&args.paths);
    if found.is_empty() && walk_errors.is_empty() {
        eprintln!("error: no audio files found in the given paths");
        return Ok(EXIT_FATAL);
    }
    let opts = PatchOptions {
        max_patches: (!args.all_patches).then_some(args.max_patches.max(1)),
        ..PatchOptions::default()
    };

    let progress = indicatif::ProgressBar::new(found.len() as u64);
    if found.len() < 2 || args.json {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {eta} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let mut tracks: Vec<JsonTrack> = walk_errors
        .into_iter()
        .map(|(p, e)| JsonTrack::failed(&p, format!("cannot read ({e}): {}", p.display())))
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.json {
        for t in &tracks {
            progress.suspend(|| print_text(t, &mut out))?;
        }
    }
    for (path, patches) in decode_ahead(found.clone(), opts) {
        progress.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
        let track = match patches {
            Ok(p) => to_json(&analyzer.analyze_patches(&path, p, opts.batch), &args),
            Err(e) => JsonTrack::failed(&path, e.to_string()),
        };
        if !args.json {
            progress.suspend(|| print_text(&track, &mut out))?;
        }
        tracks.push(track);
        progress.inc(1);
    }
    progress.finish_and_clear();

    let failed = tracks.iter().filter(|t| !t.ok).count();
    let ok = tracks.len() - failed;
    if args.json {
        let report = JsonReport {
            schema: "genretag.classify/1",
            labels: analyzer.head.config.labels.clone(),
            tracks,
            summary: Summary { ok, failed },
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if found.len() > 1 || failed > 0 {
        eprintln!("{ok} classified, {failed} failed");
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_PARTIAL })
}
