//! `genretag classify`: each track's genre (or "unsure", with the reason), its top
//! genres, the backbone's style tags and an optional per-segment timeline.
//!
//! Decoding runs ahead of the model ([`Analyzer::analyse_all`]); a file that fails is
//! reported and the batch continues.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use clap::builder::TypedValueParser as _;
use serde::Serialize;

use super::{EXIT_FATAL, EXIT_OK, EXIT_PARTIAL};
use crate::analysis::{
    AnalyseOptions, Analyzer, DEFAULT_MAX_PATCHES, TrackAnalysis, Verdict, load_model, top_label,
    written_name,
};
use crate::model::GenreModel;

/// Arguments of `classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Audio files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// How many genres to show per track.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: u32,
    /// How many backbone style tags to show per track.
    #[arg(long, default_value_t = 5)]
    pub tags: usize,
    /// Show the genre of each 3 s segment.
    #[arg(long)]
    pub segments: bool,
    /// Print one JSON document (schema `genretag.classify/2`, see README) instead of text.
    #[arg(long)]
    pub json: bool,
    /// A model trained with `genretag train` (its run folder, `model/` folder or
    /// `model.json`); default: the shipped model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Answer when the top genre's calibrated probability is at least this (0-1);
    /// default: the model's own threshold (chosen for >= 95 % precision on held-out data).
    #[arg(long)]
    pub min_prob: Option<f32>,
    /// Analyse every 3 s patch instead of at most `--max-patches` spread ones.
    #[arg(long)]
    pub all_patches: bool,
    /// Patches analysed per track (spread over it, intro and outro left out) unless
    /// `--all-patches`.
    #[arg(long, default_value_t = DEFAULT_MAX_PATCHES, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    pub max_patches: usize,
}

/// One genre with its probability.
#[derive(Debug, Serialize)]
pub struct Scored {
    /// Label.
    pub label: String,
    /// Name written into tags.
    pub name: String,
    /// Calibrated probability in [0, 1].
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
    /// The decision: `{"kind": "genre", "label", "probability"}` or
    /// `{"kind": "unsure", "reason"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Verdict>,
    /// Decoded duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Seconds the model listened to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listened_s: Option<f64>,
    /// Segments analysed / complete 3 s patches in the track.
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
    /// Always `genretag.classify/2`.
    pub schema: &'static str,
    /// The model's id and name.
    pub model: JsonModel,
    /// Genre labels of the model, in output order.
    pub labels: Vec<String>,
    /// One entry per input file, in input order.
    pub tracks: Vec<JsonTrack>,
    /// Counts.
    pub summary: Summary,
}

/// Which model answered.
#[derive(Debug, Serialize)]
pub struct JsonModel {
    /// Stable id (a hash of its bytes).
    pub id: String,
    /// Human name.
    pub name: String,
    /// The decision threshold in force.
    pub threshold: f32,
}

/// Counts of the batch.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Files analysed.
    pub ok: usize,
    /// Of those, answered with a genre.
    pub sure: usize,
    /// Of those, "unsure".
    pub unsure: usize,
    /// Files that failed.
    pub failed: usize,
}

impl JsonTrack {
    fn failed(path: &std::path::Path, error: String) -> Self {
        Self {
            path: path.display().to_string(),
            ok: false,
            error: Some(error),
            decision: None,
            duration_s: None,
            listened_s: None,
            patches: None,
            genres: Vec::new(),
            tags: Vec::new(),
            segments: None,
            warnings: Vec::new(),
        }
    }

    fn of(a: &TrackAnalysis, model: &dyn GenreModel, args: &ClassifyArgs) -> Self {
        let scored = |label: &str, probability: f32| Scored {
            label: label.to_string(),
            name: written_name(model, label),
            probability,
        };
        Self {
            path: a.path.display().to_string(),
            ok: true,
            error: None,
            decision: Some(a.verdict.clone()),
            duration_s: Some((a.duration_s * 1000.0).round() / 1000.0),
            listened_s: Some((a.listened_s * 1000.0).round() / 1000.0),
            patches: Some([a.segments.len(), a.total_patches]),
            genres: a
                .ranked_genres()
                .into_iter()
                .take(args.top_k as usize)
                .map(|(l, p)| scored(l, p))
                .collect(),
            tags: a
                .ranked_tags()
                .into_iter()
                .take(args.tags)
                .map(|(t, p)| Scored {
                    label: t.to_string(),
                    name: t.to_string(),
                    probability: p,
                })
                .collect(),
            segments: args.segments.then(|| {
                a.segments
                    .iter()
                    .map(|s| {
                        let best = top_label(&a.labels, &s.genre_probs).unwrap_or_default();
                        let p = s.genre_probs.iter().copied().fold(0.0, f32::max);
                        JsonSegment {
                            start_s: s.start_s,
                            end_s: s.end_s,
                            genre: written_name(model, best),
                            probability: p,
                        }
                    })
                    .collect()
            }),
            warnings: a.warnings(),
        }
    }
}

fn print_text(t: &JsonTrack, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", t.path)?;
    if !t.ok {
        return writeln!(out, "  error: {}", t.error.as_deref().unwrap_or("unknown"));
    }
    match &t.decision {
        Some(Verdict::Genre { label, probability }) => {
            let name = t
                .genres
                .iter()
                .find(|g| &g.label == label)
                .map_or(label.as_str(), |g| g.name.as_str());
            writeln!(out, "  genre: {name} ({:.0} %)", probability * 100.0)?
        }
        Some(Verdict::Unsure { reason }) => writeln!(out, "  genre: unsure ({reason})")?,
        _ => {}
    }
    let genres: Vec<String> = t
        .genres
        .iter()
        .map(|g| format!("{} {:.0}%", g.name, g.probability * 100.0))
        .collect();
    writeln!(out, "  top:   {}", genres.join(", "))?;
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

/// Run `classify`. With `--json`, a fatal error still prints one JSON document.
pub fn run(args: ClassifyArgs, device: &Device) -> anyhow::Result<u8> {
    let json = args.json;
    super::tag::report_fatal(
        run_classify(args, device),
        json,
        "genretag.classify/2",
        &[],
        None,
    )
}

fn run_classify(args: ClassifyArgs, device: &Device) -> anyhow::Result<u8> {
    if let Some(p) = args.min_prob
        && !(0.0..=1.0).contains(&p)
    {
        anyhow::bail!("--min-prob must be between 0 and 1 (got {p})");
    }
    let model =
        load_model(args.model.as_deref(), device).context("while loading the genre model")?;
    let mut analyzer = Analyzer::new(
        model.clone(),
        AnalyseOptions {
            max_patches: (!args.all_patches).then_some(args.max_patches),
            ..AnalyseOptions::default()
        },
    );
    if let Some(p) = args.min_prob {
        analyzer = analyzer.with_threshold(p);
    }
    let (found, walk_errors) = crate::library::files::collect(&args.paths);
    if found.is_empty() && walk_errors.is_empty() {
        eprintln!("error: no audio files found in the given paths");
        return Ok(EXIT_FATAL);
    }

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
    let mut io_error = None;
    analyzer.analyse_all(found.clone(), |path, result| {
        progress.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
        let track = match result {
            Ok(a) => JsonTrack::of(&a, model.as_ref(), &args),
            Err(e) => JsonTrack::failed(&path, e.to_string()),
        };
        if !args.json
            && let Err(e) = progress.suspend(|| print_text(&track, &mut out))
        {
            io_error = Some(e);
            return false;
        }
        tracks.push(track);
        progress.inc(1);
        true
    });
    progress.finish_and_clear();
    if let Some(e) = io_error {
        return Err(e.into());
    }

    let failed = tracks.iter().filter(|t| !t.ok).count();
    let ok = tracks.len() - failed;
    let unsure = tracks
        .iter()
        .filter(|t| t.decision.as_ref().is_some_and(Verdict::is_unsure))
        .count();
    if args.json {
        let report = JsonReport {
            schema: "genretag.classify/2",
            model: JsonModel {
                id: model.id().to_string(),
                name: model.name(),
                threshold: analyzer.rule().threshold,
            },
            labels: model.labels().to_vec(),
            tracks,
            summary: Summary {
                ok,
                sure: ok - unsure,
                unsure,
                failed,
            },
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if found.len() > 1 || failed > 0 {
        eprintln!(
            "{ok} classified ({} with a genre, {unsure} unsure), {failed} failed",
            ok - unsure
        );
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_PARTIAL })
}
