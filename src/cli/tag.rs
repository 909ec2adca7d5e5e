//! `genretag tag` (preview, then `--write`), `genretag undo` and `genretag history`.
//!
//! Every write goes through the library database's journal, so `undo` can revert a
//! batch exactly and refuses files changed since.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use clap::builder::TypedValueParser as _;
use serde::Serialize;

use super::inputs::Inputs;
use super::{EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, JsonMode};
use crate::analysis::{AnalyseOptions, Analyzer, Cached, StoredAnalysis, Verdict, load_model};
use crate::error::TagError;
use crate::library::lock::remove_stale_scratch;
use crate::library::paths::{JsonPath, escaped};
use crate::library::tagger::{apply_checked, undo_batch};
use crate::library::tags::{Provenance, check_writable};
use crate::library::{
    Library, Mode, Proposal, TagPolicy, TagWriteOptions, default_db_path, read_tags,
};

/// Arguments of `tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Which files (paths, `--files-from`, `--shard`).
    #[command(flatten)]
    pub inputs: Inputs,
    /// Tag from a finished `classify --jsonl` run (`-`: standard input) instead of
    /// analysing (e.g. the concatenated outputs of a sharded run): the same preview,
    /// journal and undo. The decisions recorded there are used ("unsure" tracks are left
    /// alone); `--min-prob` can only make them stricter.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["paths", "files_from", "model"])]
    pub from_jsonl: Option<PathBuf>,
    /// Write the tags. Without it, only preview what would change.
    #[arg(long)]
    pub write: bool,
    /// At most this many genres per track.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    pub top_k: usize,
    /// Only genres at least this probable (0-1); default: the model's own threshold,
    /// chosen so that written genres were right >= 95 % of the time on held-out data.
    /// Tracks the model is unsure of are never tagged unless this is lowered.
    #[arg(long)]
    pub min_prob: Option<f32>,
    /// replace (keeping protected genres), merge with existing, or fill only untagged files.
    #[arg(long, value_enum, default_value_t = Mode::Replace)]
    pub policy: Mode,
    /// Genre-name mapping file: `label = Name` lines (e.g. `hiphop = Rap`).
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Only ever write these genre names (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Existing genres never removed (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub protect: Vec<String>,
    /// Listen to every kept patch of every track (default: adaptive, see `classify
    /// --no-adaptive`).
    #[arg(long, conflicts_with = "from_jsonl")]
    pub no_adaptive: bool,
    /// Decode every file from start to end, instead of only the analysed patches of
    /// long files whose format can seek (the same patches either way; see docs/speed.md).
    #[arg(long, conflicts_with = "from_jsonl")]
    pub no_seek: bool,
    /// Write ID3v2.3 (genres joined with "; ") instead of ID3v2.4.
    #[arg(long)]
    pub id3v23: bool,
    /// Also record confidence and model in custom fields (TXXX:GENRETAG_CONFIDENCE,
    /// TXXX:GENRETAG_MODEL; Vorbis and MP4 equivalents).
    #[arg(long)]
    pub record_confidence: bool,
    /// Library database (default: the XDG data directory).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// A model trained with `genretag train` (run folder, `model/` folder or
    /// `model.json`); default: the shipped model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Print one JSON object per file as it is done (flushed), and a summary last
    /// (schema `genretag.tag/2`).
    #[arg(long)]
    pub jsonl: bool,
}

/// Arguments of `undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The batch to undo (see `genretag history`); default: the last one.
    #[arg(long)]
    pub batch: Option<i64>,
    /// Library database (default: the XDG data directory).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Library database (default: the XDG data directory).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// One file in the report. JSON: `path` (escaped if not UTF-8, with the exact bytes in
/// `path_bytes`; see docs/safety.md).
#[derive(Debug, Serialize)]
struct FileReport {
    #[serde(flatten, serialize_with = "flat_path")]
    path: PathBuf,
    /// `tagged`, `would-tag`, `unchanged`, `skipped`, `unsure` or `failed`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    proposal: Option<Proposal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn flat_path<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&JsonPath(p), s)
}

/// Open the library (settling what a crash left: see `Library::open`) and say what
/// was recovered.
fn open_library(db: Option<PathBuf>) -> anyhow::Result<Library> {
    let path = db.unwrap_or_else(default_db_path);
    let lib = Library::open(&path)?;
    let r = lib.recovery();
    if r.settled > 0 {
        eprintln!(
            "settled {} interrupted write(s) from an earlier run",
            r.settled
        );
    }
    if r.scratch_removed > 0 {
        eprintln!(
            "removed {} scratch cop(ies) left by an interrupted run",
            r.scratch_removed
        );
    }
    for (p, e) in &r.problems {
        eprintln!(
            "warning: cannot remove a scratch copy ({e}): {}",
            escaped(p)
        );
    }
    Ok(lib)
}

/// Take the library's writer lock for this command, saying so if another process has
/// it (the wait then lasts until that process finishes its batch).
fn lock_for_writing(lib: &Library) -> anyhow::Result<crate::library::db::WriteGuard<'_>> {
    let guard = lib.write_lock_with(|holder| {
        let who = holder.map_or_else(|| "another process".to_string(), |p| format!("process {p}"));
        eprintln!(
            "waiting: {who} is writing tags with this library ({}); this run continues when it \
             finishes",
            lib.path().display()
        );
    })?;
    // Taking the lock settles what a holder killed mid-batch left.
    let r = lib.last_recovery();
    if r.settled > 0 {
        eprintln!(
            "settled {} interrupted write(s) left by the process this run waited for",
            r.settled
        );
    }
    Ok(guard)
}

/// What a `tag --write` run has written so far, to report on a fatal error.
#[derive(Debug, Default)]
struct WriteLog {
    /// Files written in this run.
    written: Vec<PathBuf>,
    /// The file being written when the error struck (it may or may not have changed).
    in_flight: Option<PathBuf>,
}

/// Write (or, without a batch, preview) one proposal that changes a file: the file's
/// status and error for the report. Files that cannot take tags (`.au`, several hard
/// links) are "skipped" with the reason; other refusals "failed".
fn write_one(
    lib: &Library,
    batch: Option<i64>,
    path: &std::path::Path,
    proposal: &Proposal,
    opts: &TagWriteOptions,
    log: &mut WriteLog,
) -> anyhow::Result<(&'static str, Option<String>)> {
    let outcome = match batch {
        None => check_writable(path).map(drop),
        Some(b) => {
            log.in_flight = Some(path.to_path_buf());
            let r = apply_checked(lib, b, path, proposal, opts)?;
            log.in_flight = None;
            if r.is_ok() {
                log.written.push(path.to_path_buf());
            }
            r
        }
    };
    Ok(match outcome {
        Ok(()) if batch.is_some() => ("tagged", None),
        Ok(()) => ("would-tag", None),
        Err(e @ (TagError::Unsupported { .. } | TagError::HardLinked { .. })) => {
            ("skipped", Some(e.to_string()))
        }
        Err(e) => ("failed", Some(e.to_string())),
    })
}

/// On a fatal error: with `--json`, still print one JSON document (the error, and what
/// was written before it); in text, list the files already written. The error then
/// goes on to `main`, which prints it and exits 2.
pub(super) fn report_fatal(
    result: anyhow::Result<u8>,
    json: JsonMode,
    schema: &str,
    written: &[PathBuf],
    in_flight: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let Err(e) = result else {
        return result;
    };
    let doc = || {
        serde_json::json!({
            "schema": schema,
            "type": "error",
            "error": format!("{e:#}"),
            "written": written.iter().map(|p| JsonPath(p)).collect::<Vec<_>>(),
            "maybe_written": in_flight.map(JsonPath),
        })
    };
    // A closed standard output (`| head`) must not turn the error into a panic.
    if json == JsonMode::Document {
        let _ = writeln!(std::io::stdout().lock(), "{:#}", doc());
    } else if json == JsonMode::Lines {
        let _ = writeln!(std::io::stdout().lock(), "{}", doc());
    } else if !written.is_empty() || in_flight.is_some() {
        eprintln!(
            "{} file(s) were written before the error; `genretag undo` reverts them once the \
             library database works again:",
            written.len()
        );
        for p in written {
            eprintln!("  written: {}", escaped(p));
        }
        if let Some(p) = in_flight {
            eprintln!(
                "  maybe written (being written when the error struck): {}",
                escaped(p)
            );
        }
    }
    Err(e)
}

/// Run `tag`.
pub fn run(args: TagArgs, device: &Device) -> anyhow::Result<u8> {
    let json = JsonMode::of(args.json, args.jsonl);
    let mut log = WriteLog::default();
    let result = run_tag(args, device, &mut log);
    report_fatal(
        result,
        json,
        "genretag.tag/2",
        &log.written,
        log.in_flight.as_deref(),
    )
}

/// A file's analysis for tagging: fresh, cached, or read from `classify --jsonl`.
type Judged = Result<StoredAnalysis, NotAnalysed>;

/// Why a file has no analysis to tag from.
#[derive(Debug, thiserror::Error)]
enum NotAnalysed {
    /// The analysis failed here.
    #[error(transparent)]
    Failed(#[from] crate::Error),
    /// `classify --jsonl` recorded a failure: its words, as it wrote them.
    #[error("{0}")]
    Recorded(String),
}

/// One track line of `classify --jsonl`, as far as tagging needs it.
#[derive(Debug, serde::Deserialize)]
struct ClassifiedLine {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    path_bytes: Option<String>,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    decision: Option<Verdict>,
    #[serde(default)]
    genres: Vec<ClassifiedGenre>,
    /// The model id on track lines (an object on the summary line).
    #[serde(default)]
    model: serde_json::Value,
    #[serde(default)]
    duration_s: Option<f64>,
}

#[derive(Debug, serde::Deserialize)]
struct ClassifiedGenre {
    label: String,
    name: String,
    probability: f32,
}

/// One classified track: its path, its analysis (or why it failed), the model's id.
type Classified = (PathBuf, Judged, String);

/// Read `classify --jsonl` output (`-`: standard input) once: the track lines, and the
/// written name of every label they mention. Summary lines are skipped. A line that is not
/// valid JSON is an error naming it, except a last line without its newline (what a
/// killed run can leave), which is reported and ignored.
fn read_classified(
    file: &std::path::Path,
) -> anyhow::Result<(Vec<Classified>, BTreeMap<String, String>)> {
    use std::io::BufRead;
    let cannot = || format!("cannot read the classification {}", file.display());
    let reader: Box<dyn std::io::Read> = if file == std::path::Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(cannot)?)
    };
    let mut reader = std::io::BufReader::new(reader);
    let (mut tracks, mut names) = (Vec::new(), BTreeMap::new());
    let mut raw = Vec::new();
    for n in 1.. {
        raw.clear();
        if reader.read_until(b'\n', &mut raw).with_context(cannot)? == 0 {
            break;
        }
        let whole = raw.last() == Some(&b'\n');
        let line = String::from_utf8_lossy(&raw);
        if line.trim().is_empty() {
            continue;
        }
        let l: ClassifiedLine = match serde_json::from_str(&line) {
            Ok(l) => l,
            Err(_) if !whole => {
                eprintln!(
                    "warning: {}:{n}: ignoring an incomplete last line (the run that wrote \
                     it was stopped?)",
                    file.display()
                );
                break;
            }
            Err(e) => {
                return Err(anyhow::anyhow!(e).context(format!(
                    "{}:{n}: not a `genretag classify --jsonl` line",
                    file.display()
                )));
            }
        };
        if l.kind != "track" {
            continue;
        }
        let Some(path) = crate::library::paths::from_json(&l.path, l.path_bytes.as_deref()) else {
            anyhow::bail!("{}:{n}: path_bytes is not hex", file.display());
        };
        for g in &l.genres {
            names
                .entry(g.label.to_lowercase())
                .or_insert_with(|| g.name.clone());
        }
        let judged = if l.ok {
            Ok(StoredAnalysis {
                genres: l
                    .genres
                    .iter()
                    .map(|g| (g.label.clone(), g.probability))
                    .collect(),
                verdict: l.decision.clone().unwrap_or_default(),
                duration_s: l.duration_s.unwrap_or(0.0),
                ..StoredAnalysis::default()
            })
        } else {
            Err(NotAnalysed::Recorded(
                l.error.clone().unwrap_or_else(|| "failed".into()),
            ))
        };
        let model = l.model.as_str().unwrap_or("").to_string();
        tracks.push((path, judged, model));
    }
    Ok((tracks, names))
}

/// What `tag` prints as it goes: text, JSON lines, or (kept for) one document.
struct TagOutput {
    mode: JsonMode,
    write: bool,
    kept: Vec<FileReport>,
    counts: BTreeMap<&'static str, usize>,
    out: std::io::StdoutLock<'static>,
}

impl TagOutput {
    fn emit(&mut self, r: FileReport) -> std::io::Result<()> {
        *self.counts.entry(r.status).or_default() += 1;
        match self.mode {
            JsonMode::Document => self.kept.push(r),
            JsonMode::Lines => {
                let mut v = serde_json::to_value(&r).map_err(std::io::Error::other)?;
                v["schema"] = "genretag.tag/2".into();
                v["type"] = "file".into();
                v["write"] = self.write.into();
                super::classify::write_line(&mut self.out, &v)?;
            }
            JsonMode::Off => print_report(&r, &mut self.out)?,
        }
        Ok(())
    }

    fn count(&self, s: &str) -> usize {
        self.counts.get(s).copied().unwrap_or(0)
    }
}

fn print_report(r: &FileReport, out: &mut impl Write) -> std::io::Result<()> {
    let show = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join("; ")
        }
    };
    let shown = escaped(&r.path);
    match (&r.proposal, &r.error) {
        (_, Some(e)) => writeln!(out, "{shown}\n  {}: {e}", r.status),
        (Some(p), None) if r.status == "unsure" => writeln!(
            out,
            "{shown}\n  unsure: keeps {}  ({})",
            show(&p.existing),
            p.reason
        ),
        (Some(p), None) => writeln!(
            out,
            "{shown}\n  {}: {} -> {}  ({})",
            r.status,
            show(&p.existing),
            show(&p.proposed),
            p.reason
        ),
        (None, None) => writeln!(out, "{shown}\n  {}", r.status),
    }
}

fn run_tag(args: TagArgs, device: &Device, log: &mut WriteLog) -> anyhow::Result<u8> {
    if let Some(p) = args.min_prob
        && !(0.0..=1.0).contains(&p)
    {
        anyhow::bail!("--min-prob must be between 0 and 1 (got {p})");
    }
    // The files, and (from a classification) its answers and the written names it used.
    let mut jsonl_names: BTreeMap<String, String> = BTreeMap::new();
    let mut classified: Vec<Classified> = Vec::new();
    let (found, walk_errors, model) = match &args.from_jsonl {
        Some(file) => {
            let (mut tracks, names) = read_classified(file)?;
            tracks.retain(|(p, _, _)| args.inputs.selects(p));
            jsonl_names = names;
            let found = tracks.iter().map(|(p, _, _)| p.clone()).collect();
            classified = tracks;
            (found, Vec::new(), None)
        }
        None => {
            let model = load_model(args.model.as_deref(), device)
                .context("while loading the genre model")?;
            let (found, errors) = args.inputs.collect()?;
            (found, errors, Some(model))
        }
    };
    if found.is_empty() && walk_errors.is_empty() {
        eprintln!("error: no audio files found in the given paths");
        return Ok(EXIT_FATAL);
    }
    let analyzer = model.as_ref().map(|m| {
        let a = Analyzer::new(
            m.clone(),
            AnalyseOptions {
                adaptive: !args.no_adaptive,
                seek: !args.no_seek,
                ..AnalyseOptions::default()
            },
        );
        match args.min_prob {
            Some(p) => a.with_threshold(p),
            None => a,
        }
    });
    let threshold = match (&analyzer, args.min_prob) {
        (Some(a), _) => a.rule().threshold,
        // From a classification: its decisions stand; further genres (--top-k) need
        // this probability (default: none beyond the decision).
        (None, p) => p.unwrap_or(1.0),
    };
    let taxonomy = model
        .as_ref()
        .map_or_else(crate::model::Taxonomy::shipped, |m| m.taxonomy().clone());
    let mut names: BTreeMap<String, String> = taxonomy
        .genres
        .iter()
        .map(|g| (g.key.to_lowercase(), g.name.clone()))
        .collect();
    for (k, v) in jsonl_names {
        names.entry(k).or_insert(v);
    }
    let mut policy = TagPolicy {
        top_k: args.top_k,
        min_prob: threshold,
        mode: args.policy,
        whitelist: args.only.clone(),
        protected: args.protect.clone(),
        // Written names come from the model's taxonomy; `--map` renames further.
        names,
    };
    if let Some(map) = &args.map {
        policy
            .load_names(map)
            .with_context(|| format!("while reading the genre map {}", map.display()))?;
    }
    let lib = open_library(args.db.clone())?;
    // One writer per library for the whole run: a second `tag --write` waits here, and
    // then proposes from the genres this one wrote.
    let _writer = if args.write {
        Some(lock_for_writing(&lib)?)
    } else {
        None
    };
    if args.write {
        let mut dirs: Vec<PathBuf> = found
            .iter()
            .filter_map(|p| p.parent().map(PathBuf::from))
            .collect();
        dirs.sort();
        dirs.dedup();
        // Recovery removed the scratch copies the journal knows; these folders may hold
        // copies from before the journal recorded them.
        let mut stale = 0;
        for d in &dirs {
            let (removed, problems) = remove_stale_scratch(d);
            stale += removed;
            for (p, e) in problems {
                eprintln!(
                    "warning: cannot remove a scratch copy ({e}): {}",
                    escaped(&p)
                );
            }
        }
        if stale > 0 {
            eprintln!("removed {stale} scratch cop(ies) left by an interrupted run");
        }
    }
    let batch = if args.write {
        let what = match &args.from_jsonl {
            Some(f) => format!("--from-jsonl {}", escaped(f)),
            None => args.inputs.describe(),
        };
        Some(lib.begin_batch(&format!("tag {what}"))?)
    } else {
        None
    };

    let progress = indicatif::ProgressBar::with_draw_target(
        Some(found.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if found.len() < 2 || args.json || args.jsonl {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut output = TagOutput {
        mode: JsonMode::of(args.json, args.jsonl),
        write: args.write,
        kept: Vec::new(),
        counts: BTreeMap::new(),
        out: std::io::stdout().lock(),
    };
    for (p, e) in walk_errors {
        output.emit(FileReport {
            error: Some(format!("cannot read ({e}): {}", escaped(&p))),
            path: p,
            status: "failed",
            proposal: None,
        })?;
    }

    // Each file is proposed for, written (with --write) and reported as its analysis
    // arrives: memory stays flat with the number of files.
    let mut one = |path: PathBuf, analysis: Judged, model_id: &str| -> anyhow::Result<()> {
        let report = match analysis {
            Err(e) => FileReport {
                path,
                status: "failed",
                proposal: None,
                error: Some(e.to_string()),
            },
            Ok(a) => match read_tags(&path) {
                Err(e) => FileReport {
                    path,
                    status: "failed",
                    proposal: None,
                    error: Some(e.to_string()),
                },
                Ok(tags) => {
                    let refs: Vec<(&str, f32)> =
                        a.genres.iter().map(|(l, p)| (l.as_str(), *p)).collect();
                    let verdict = match &a.verdict {
                        // No decision recorded (an older genretag's analysis): never a
                        // genre written on a guess.
                        Verdict::Unknown => Verdict::Unsure {
                            reason: "no decision recorded for it; classify it again".into(),
                        },
                        // From a classification: a stricter --min-prob still applies.
                        Verdict::Genre { probability, .. }
                            if analyzer.is_none()
                                && args.min_prob.is_some_and(|p| *probability < p) =>
                        {
                            Verdict::Unsure {
                                reason: format!(
                                    "top genre {:.0} % is below --min-prob {:.0} %",
                                    probability * 100.0,
                                    threshold * 100.0
                                ),
                            }
                        }
                        v => v.clone(),
                    };
                    let mut proposal = match &verdict {
                        // From a classification, its decision is the first genre; more
                        // (--top-k) need the threshold.
                        Verdict::Genre { label, probability } if analyzer.is_none() => {
                            let mut p = policy.clone();
                            p.min_prob = probability.min(threshold);
                            let mut ranked = refs.clone();
                            ranked.retain(|(l, q)| l == label || *q >= threshold);
                            p.propose(&tags.genres, &ranked)
                        }
                        _ => policy.propose(&tags.genres, &refs),
                    };
                    if let Verdict::Unsure { reason } = &verdict {
                        // "Unsure" is an answer: nothing is written for this track.
                        proposal.proposed = proposal.existing.clone();
                        proposal.changes = false;
                        proposal.skipped = true;
                        proposal.reason = format!("unsure: {reason}");
                    }
                    let (status, error) = match (proposal.skipped, proposal.changes, batch) {
                        (true, _, _) if verdict.is_unsure() => ("unsure", None),
                        (true, _, _) => ("skipped", None),
                        (false, false, _) => ("unchanged", None),
                        (false, true, batch) => {
                            let confidence = a.genres.first().map_or(0.0, |r| r.1);
                            let opts = TagWriteOptions {
                                force_id3v23: args.id3v23,
                                provenance: args.record_confidence.then(|| Provenance {
                                    confidence,
                                    model: model_id.to_string(),
                                }),
                            };
                            write_one(&lib, batch, &path, &proposal, &opts, log)?
                        }
                    };
                    FileReport {
                        path,
                        status,
                        proposal: Some(proposal),
                        error,
                    }
                }
            },
        };
        progress.suspend(|| output.emit(report))?;
        progress.inc(1);
        Ok(())
    };
    let mut fatal = None;
    match (&analyzer, &args.from_jsonl) {
        (None, Some(_)) => {
            for (path, judged, model_id) in classified {
                one(path, judged, &model_id)?;
            }
        }
        (Some(analyzer), _) => {
            let model_id = analyzer.model().id().to_string();
            // Files whose analysis is cached for this model are not decoded again.
            Cached::new(analyzer, &lib).get_or_analyse(found, |path, r, _cached| {
                match one(path, r.map_err(NotAnalysed::from), &model_id) {
                    Ok(()) => true,
                    Err(e) => {
                        fatal = Some(e);
                        false
                    }
                }
            });
        }
        (None, None) => unreachable!("a model is loaded unless --from-jsonl"),
    }
    progress.finish_and_clear();
    if let Some(e) = fatal {
        return Err(e);
    }

    let failed = output.count("failed");
    let summary = serde_json::json!({
        "tagged": output.count("tagged"), "would_tag": output.count("would-tag"),
        "unchanged": output.count("unchanged"), "skipped": output.count("skipped"),
        "unsure": output.count("unsure"), "failed": failed,
    });
    let model_json = match &analyzer {
        Some(a) => serde_json::json!({
            "id": a.model().id(), "name": a.model().name(), "threshold": threshold,
        }),
        None => serde_json::json!({ "from_jsonl": args.from_jsonl.as_deref().map(JsonPath) }),
    };
    let mut out = std::mem::replace(&mut output.out, std::io::stdout().lock());
    match output.mode {
        JsonMode::Document => {
            let mut files = std::mem::take(&mut output.kept);
            files.sort_by(|a, b| a.path.cmp(&b.path));
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({
                    "schema": "genretag.tag/2",
                    "write": args.write,
                    "batch": batch,
                    "model": model_json,
                    "files": files,
                    "summary": summary,
                }),
            )?;
            writeln!(out)?;
        }
        JsonMode::Lines => {
            super::classify::write_line(
                &mut out,
                &serde_json::json!({
                    "schema": "genretag.tag/2",
                    "type": "summary",
                    "write": args.write,
                    "batch": batch,
                    "model": model_json,
                    "summary": summary,
                }),
            )?;
        }
        JsonMode::Off => {
            let verb = if args.write { "tagged" } else { "would tag" };
            writeln!(
                out,
                "{} {verb}, {} unchanged, {} unsure (left as they are), {} skipped, {failed} \
                 failed{}",
                output.count("tagged") + output.count("would-tag"),
                output.count("unchanged"),
                output.count("unsure"),
                output.count("skipped"),
                match batch {
                    Some(b) => format!(" (batch {b}; `genretag undo` reverts it)"),
                    None => " (preview: nothing written; add --write)".into(),
                }
            )?;
        }
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_PARTIAL })
}

/// Run `undo`.
pub fn run_undo(args: UndoArgs) -> anyhow::Result<u8> {
    let lib = open_library(args.db)?;
    let _writer = lock_for_writing(&lib)?;
    let Some(batch) = args.batch.or(lib.last_undoable_batch()?) else {
        eprintln!("nothing to undo");
        return Ok(EXIT_OK);
    };
    let report = undo_batch(&lib, batch, &TagWriteOptions::default())?;
    for p in &report.reverted {
        println!("reverted: {}", escaped(p));
    }
    for (_, why) in &report.refused {
        println!("refused: {why}");
    }
    println!(
        "batch {batch}: {} reverted, {} refused",
        report.reverted.len(),
        report.refused.len()
    );
    if !report.refused.is_empty() {
        println!(
            "(refused files keep genretag's genres; `genretag undo` goes on to the previous \
             batch, `genretag undo --batch {batch}` tries these again)"
        );
    }
    Ok(if report.refused.is_empty() {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}

/// Run `history`.
pub fn run_history(args: HistoryArgs) -> anyhow::Result<u8> {
    let lib = open_library(args.db)?;
    for b in lib.batches()? {
        let entries = lib.journal(Some(b.id))?;
        let count = |state: &str| entries.iter().filter(|e| e.state == state).count();
        use crate::library::db::state;
        println!(
            "batch {:>4}  {} written, {} undone, {} refused, {} failed{}  {}",
            b.id,
            count(state::DONE),
            count(state::UNDONE),
            count(state::REFUSED),
            count(state::FAILED),
            if b.undone_at.is_some() {
                " (undone)"
            } else {
                ""
            },
            b.command
        );
    }
    Ok(EXIT_OK)
}
