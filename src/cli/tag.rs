//! `genretag tag` (preview, then `--write`), `genretag undo` and `genretag history`.
//!
//! Every write goes through the library database's journal, so `undo` can revert a
//! batch exactly and refuses files changed since.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use clap::builder::TypedValueParser as _;
use serde::Serialize;

use super::{EXIT_FATAL, EXIT_OK, EXIT_PARTIAL};
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
    /// Audio files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
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
    #[arg(long)]
    pub json: bool,
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
    json: bool,
    schema: &str,
    written: &[PathBuf],
    in_flight: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let Err(e) = result else {
        return result;
    };
    if json {
        let doc = serde_json::json!({
            "schema": schema,
            "error": format!("{e:#}"),
            "written": written.iter().map(|p| JsonPath(p)).collect::<Vec<_>>(),
            "maybe_written": in_flight.map(JsonPath),
        });
        println!("{doc:#}");
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
    let json = args.json;
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

fn run_tag(args: TagArgs, device: &Device, log: &mut WriteLog) -> anyhow::Result<u8> {
    if let Some(p) = args.min_prob
        && !(0.0..=1.0).contains(&p)
    {
        anyhow::bail!("--min-prob must be between 0 and 1 (got {p})");
    }
    let model =
        load_model(args.model.as_deref(), device).context("while loading the genre model")?;
    let mut analyzer = Analyzer::new(model.clone(), AnalyseOptions::default());
    if let Some(p) = args.min_prob {
        analyzer = analyzer.with_threshold(p);
    }
    let mut policy = TagPolicy {
        top_k: args.top_k,
        min_prob: analyzer.rule().threshold,
        mode: args.policy,
        whitelist: args.only.clone(),
        protected: args.protect.clone(),
        // Written names come from the model's taxonomy; `--map` renames further.
        names: model
            .taxonomy()
            .genres
            .iter()
            .map(|g| (g.key.to_lowercase(), g.name.clone()))
            .collect(),
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
    let model_id = model.id().to_string();
    let (found, walk_errors) = crate::library::files::collect(&args.paths);
    if found.is_empty() && walk_errors.is_empty() {
        eprintln!("error: no audio files found in the given paths");
        return Ok(EXIT_FATAL);
    }
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
    let write_opts = |confidence: f32| TagWriteOptions {
        force_id3v23: args.id3v23,
        provenance: args.record_confidence.then(|| Provenance {
            confidence,
            model: model_id.clone(),
        }),
    };
    let batch = if args.write {
        Some(lib.begin_batch(&format!(
                "tag {}",
                args.paths
                    .iter()
                    .map(|p| escaped(p))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))?)
    } else {
        None
    };

    let progress = indicatif::ProgressBar::new(found.len() as u64);
    if found.len() < 2 || args.json {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut reports: Vec<FileReport> = walk_errors
        .into_iter()
        .map(|(p, e)| FileReport {
            error: Some(format!("cannot read ({e}): {}", escaped(&p))),
            path: p,
            status: "failed",
            proposal: None,
        })
        .collect();
    // Files whose analysis is cached for this model are not decoded again.
    let mut analysed: Vec<(PathBuf, Result<StoredAnalysis, String>)> = Vec::new();
    Cached::new(&analyzer, &lib).get_or_analyse(found.clone(), |path, r, cached| {
        if !cached {
            progress.inc(1);
        }
        analysed.push((path, r.map_err(|e| e.to_string())));
        true
    });
    analysed.sort_by(|a, b| a.0.cmp(&b.0));

    for (path, analysis) in analysed {
        let report = match analysis {
            Err(e) => FileReport {
                path,
                status: "failed",
                proposal: None,
                error: Some(e),
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
                    let mut proposal = policy.propose(&tags.genres, &refs);
                    if let Verdict::Unsure { reason } = &a.verdict {
                        // "Unsure" is an answer: nothing is written for this track.
                        proposal.proposed = proposal.existing.clone();
                        proposal.changes = false;
                        proposal.skipped = true;
                        proposal.reason = format!("unsure: {reason}");
                    }
                    let (status, error) = match (proposal.skipped, proposal.changes, batch) {
                        (true, _, _) if a.verdict.is_unsure() => ("unsure", None),
                        (true, _, _) => ("skipped", None),
                        (false, false, _) => ("unchanged", None),
                        (false, true, batch) => {
                            let confidence = a.genres.first().map_or(0.0, |r| r.1);
                            let opts = write_opts(confidence);
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
        reports.push(report);
    }
    progress.finish_and_clear();

    let count = |s: &str| reports.iter().filter(|r| r.status == s).count();
    let failed = count("failed");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "schema": "genretag.tag/2",
                "write": args.write,
                "batch": batch,
                "model": {"id": model.id(), "name": model.name(), "threshold": analyzer.rule().threshold},
                "files": reports,
                "summary": {
                    "tagged": count("tagged"), "would_tag": count("would-tag"),
                    "unchanged": count("unchanged"), "skipped": count("skipped"),
                    "unsure": count("unsure"), "failed": failed,
                },
            }),
        )?;
        writeln!(out)?;
    } else {
        for r in &reports {
            let show = |v: &[String]| {
                if v.is_empty() {
                    "(none)".to_string()
                } else {
                    v.join("; ")
                }
            };
            let shown = escaped(&r.path);
            match (&r.proposal, &r.error) {
                (_, Some(e)) => writeln!(out, "{shown}\n  {}: {e}", r.status)?,
                (Some(p), None) if r.status == "unsure" => writeln!(
                    out,
                    "{shown}\n  unsure: keeps {}  ({})",
                    show(&p.existing),
                    p.reason
                )?,
                (Some(p), None) => writeln!(
                    out,
                    "{shown}\n  {}: {} -> {}  ({})",
                    r.status,
                    show(&p.existing),
                    show(&p.proposed),
                    p.reason
                )?,
                (None, None) => writeln!(out, "{shown}\n  {}", r.status)?,
            }
        }
        let verb = if args.write { "tagged" } else { "would tag" };
        writeln!(
            out,
            "{} {verb}, {} unchanged, {} unsure (left as they are), {} skipped, {failed} failed{}",
            count("tagged") + count("would-tag"),
            count("unchanged"),
            count("unsure"),
            count("skipped"),
            match batch {
                Some(b) => format!(" (batch {b}; `genretag undo` reverts it)"),
                None => " (preview: nothing written; add --write)".into(),
            }
        )?;
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
