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

use super::JsonMode;
use super::inputs::Inputs;
use super::{EXIT_FATAL, EXIT_OK, EXIT_PARTIAL};
use crate::analysis::{
    AnalyseOptions, Analyzer, Cached, DEFAULT_MAX_PATCHES, StoredAnalysis, Verdict, load_model,
    top_label, written_name,
};
use crate::library::paths::{JsonPath, escaped};
use crate::library::{Library, default_db_path};
use crate::model::GenreModel;

/// Arguments of `classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Which files (paths, `--files-from`, `--shard`).
    #[command(flatten)]
    pub inputs: Inputs,
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
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per track as soon as it is done (flushed), and a summary
    /// object last (schema `genretag.classify/2`, see README): a killed run keeps every
    /// line it printed. Progress goes to standard error.
    #[arg(long)]
    pub jsonl: bool,
    /// Library database whose analysis cache is used (default: the XDG data directory):
    /// files analysed before with the same model are not decoded again.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Do not read or fill the library's analysis cache.
    #[arg(long, conflicts_with = "db")]
    pub no_cache: bool,
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
    /// Listen to every kept patch of every track. By default listening is adaptive: 4
    /// spread patches first, and the rest only when those do not already name a genre at
    /// 90 % or more (same decisions on held-out clips, about half the work; see
    /// docs/speed.md). `--segments` and `--all-patches` always listen to every patch.
    #[arg(long)]
    pub no_adaptive: bool,
    /// Decode every file from start to end, instead of only the analysed patches of
    /// long files whose format can seek (the same patches either way; see docs/speed.md).
    #[arg(long)]
    pub no_seek: bool,
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
    /// File as given/found: `path` (escaped if not UTF-8) and then `path_bytes` (hex of
    /// the exact bytes; see docs/safety.md).
    #[serde(flatten, serialize_with = "flat_path")]
    pub path: PathBuf,
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
    /// True when the analysis came from the library's cache.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

fn flat_path<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&JsonPath(p), s)
}

/// One line of `--jsonl` output: a track (`"type": "track"`) ...
#[derive(Debug, Serialize)]
struct TrackLine<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The model's id.
    model: &'a str,
    /// The threshold the decision was made with.
    threshold: f32,
    #[serde(flatten)]
    track: &'a JsonTrack,
}

/// ... and the last line, the summary (`"type": "summary"`).
#[derive(Debug, Serialize)]
struct SummaryLine<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    model: &'a JsonModel,
    labels: &'a [String],
    summary: &'a Summary,
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
    /// Of the files analysed, those whose analysis came from the library's cache.
    pub cached: usize,
    /// Of the files analysed, those analysed in this run.
    pub analysed: usize,
}

impl JsonTrack {
    fn failed(path: PathBuf, error: String) -> Self {
        Self {
            path,
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
            cached: false,
        }
    }

    fn of(
        path: PathBuf,
        a: StoredAnalysis,
        cached: bool,
        model: &dyn GenreModel,
        args: &ClassifyArgs,
    ) -> Self {
        let scored = |label: &str, probability: f32| Scored {
            label: label.to_string(),
            name: written_name(model, label),
            probability,
        };
        let labels = model.labels();
        Self {
            path,
            ok: true,
            error: None,
            decision: Some(a.verdict),
            duration_s: Some((a.duration_s * 1000.0).round() / 1000.0),
            listened_s: Some((a.listened_s * 1000.0).round() / 1000.0),
            patches: Some([a.segments.len(), a.total_patches]),
            genres: a
                .genres
                .iter()
                .take(args.top_k as usize)
                .map(|(l, p)| scored(l, *p))
                .collect(),
            tags: a
                .tags
                .iter()
                .take(args.tags)
                .map(|(t, p)| Scored {
                    label: t.clone(),
                    name: t.clone(),
                    probability: *p,
                })
                .collect(),
            segments: args.segments.then(|| {
                a.segments
                    .iter()
                    .map(|s| {
                        let best = top_label(labels, &s.genre_probs).unwrap_or_default();
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
            warnings: a.warnings,
            cached,
        }
    }
}

fn print_text(t: &JsonTrack, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", escaped(&t.path))?;
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

/// Run `classify`. With `--json`, a fatal error still prints one JSON document; with
/// `--jsonl`, one line (`"type": "error"`).
pub fn run(args: ClassifyArgs, device: &Device) -> anyhow::Result<u8> {
    let json = JsonMode::of(args.json, args.jsonl);
    super::tag::report_fatal(run_classify(args, device), json, SCHEMA, &[], None)
}

/// Where analyses are cached: the library database, unless `--no-cache`. A library
/// that cannot be opened costs the cache, not the run.
fn open_cache(args: &ClassifyArgs) -> Option<Library> {
    if args.no_cache {
        return None;
    }
    let path = args.db.clone().unwrap_or_else(default_db_path);
    match Library::open(&path) {
        Ok(lib) => Some(lib),
        Err(e) if args.db.is_some() => {
            eprintln!("warning: {e:#}; analysing without the cache");
            None
        }
        Err(_) => None,
    }
}

/// How results leave: text or JSON lines as they come, or one document at the end.
struct Output<'a> {
    args: &'a ClassifyArgs,
    out: std::io::StdoutLock<'static>,
    model_id: String,
    threshold: f32,
    /// Kept only for `--json` (one document); text and `--jsonl` stream.
    kept: Vec<JsonTrack>,
    summary: Summary,
}

impl Output<'_> {
    fn emit(&mut self, t: JsonTrack) -> std::io::Result<()> {
        if t.ok {
            self.summary.ok += 1;
            if t.decision.as_ref().is_some_and(Verdict::is_unsure) {
                self.summary.unsure += 1;
            } else {
                self.summary.sure += 1;
            }
            if t.cached {
                self.summary.cached += 1;
            } else {
                self.summary.analysed += 1;
            }
        } else {
            self.summary.failed += 1;
        }
        if self.args.json {
            self.kept.push(t);
        } else if self.args.jsonl {
            let line = TrackLine {
                schema: SCHEMA,
                kind: "track",
                model: &self.model_id,
                threshold: self.threshold,
                track: &t,
            };
            write_line(&mut self.out, &line)?;
        } else {
            print_text(&t, &mut self.out)?;
        }
        Ok(())
    }
}

/// Write one JSON line with a single write and flush it: a run killed at any moment
/// leaves only whole lines behind.
pub(super) fn write_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    buf.push(b'\n');
    out.write_all(&buf)?;
    out.flush()
}

/// The schema of `classify`'s JSON and JSON lines.
pub const SCHEMA: &str = "genretag.classify/2";

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
            adaptive: !(args.no_adaptive || args.segments || args.all_patches),
            seek: !args.no_seek,
            ..AnalyseOptions::default()
        },
    );
    if let Some(p) = args.min_prob {
        analyzer = analyzer.with_threshold(p);
    }
    let (found, walk_errors) = args.inputs.collect()?;
    if found.is_empty() && walk_errors.is_empty() {
        eprintln!("error: no audio files found in the given paths");
        return Ok(EXIT_FATAL);
    }
    let cache = open_cache(&args);
    // `--json` lists tracks in input order (unreadable paths first); answers from the
    // cache arrive before fresh ones, so remember each file's place.
    let order: std::collections::HashMap<PathBuf, usize> = if args.json {
        found
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i + 1))
            .collect()
    } else {
        Default::default()
    };

    let progress = indicatif::ProgressBar::with_draw_target(
        Some(found.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if found.len() < 2 || args.json {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {eta} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let mut output = Output {
        args: &args,
        out: std::io::stdout().lock(),
        model_id: model.id().to_string(),
        threshold: analyzer.rule().threshold,
        kept: Vec::new(),
        summary: Summary {
            ok: 0,
            sure: 0,
            unsure: 0,
            failed: 0,
            cached: 0,
            analysed: 0,
        },
    };
    for (p, e) in walk_errors {
        let why = format!("cannot read ({e}): {}", escaped(&p));
        progress.suspend(|| output.emit(JsonTrack::failed(p, why)))?;
    }
    let mut io_error = None;
    let mut each = |path: PathBuf, result: Result<StoredAnalysis, crate::Error>, cached: bool| {
        progress.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
        let track = match result {
            Ok(a) => JsonTrack::of(path, a, cached, model.as_ref(), &args),
            Err(e) => JsonTrack::failed(path, e.to_string()),
        };
        if let Err(e) = progress.suspend(|| output.emit(track)) {
            io_error = Some(e);
            return false;
        }
        progress.inc(1);
        true
    };
    match &cache {
        Some(lib) => Cached::new(&analyzer, lib).get_or_analyse(found, each),
        None => analyzer.analyse_all(found, |path, r| {
            let r = r.map(|a| StoredAnalysis::from(&a));
            each(path, r, false)
        }),
    }
    progress.finish_and_clear();
    if let Some(e) = io_error {
        return Err(e.into());
    }

    let Output {
        mut out,
        kept,
        summary,
        ..
    } = output;
    let model_line = JsonModel {
        id: model.id().to_string(),
        name: model.name(),
        threshold: analyzer.rule().threshold,
    };
    let (ok, unsure, failed) = (summary.ok, summary.unsure, summary.failed);
    let (from_cache, analysed) = (summary.cached, summary.analysed);
    if args.json {
        let mut tracks = kept;
        tracks.sort_by_key(|t| order.get(&t.path).copied().unwrap_or(0));
        let report = JsonReport {
            schema: SCHEMA,
            model: model_line,
            labels: model.labels().to_vec(),
            tracks,
            summary,
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if args.jsonl {
        let line = SummaryLine {
            schema: SCHEMA,
            kind: "summary",
            model: &model_line,
            labels: model.labels(),
            summary: &summary,
        };
        write_line(&mut out, &line)?;
    }
    if !args.json && (ok + failed > 1 || failed > 0) {
        eprintln!(
            "{ok} classified ({} with a genre, {unsure} unsure; {} from the cache, {} analysed), \
             {failed} failed",
            ok - unsure,
            from_cache,
            analysed,
        );
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_PARTIAL })
}
