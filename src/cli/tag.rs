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

use super::{EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, files};
use crate::analysis::{AnalyseOptions, Analyzer, Cached, StoredAnalysis, Verdict, load_model};
use crate::library::tagger::{apply, remove_stale_scratch, undo_batch};
use crate::library::tags::Provenance;
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

/// One file in the report.
#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    /// `tagged`, `would-tag`, `unchanged`, `skipped`, `unsure` or `failed`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    proposal: Option<Proposal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn open_library(db: Option<PathBuf>) -> anyhow::Result<Library> {
    let path = db.unwrap_or_else(default_db_path);
    let lib = Library::open(&path)?;
    let settled = lib.reconcile()?;
    if settled > 0 {
        eprintln!("settled {settled} interrupted write(s) from an earlier run");
    }
    Ok(lib)
}

/// Run `tag`.
pub fn run(args: TagArgs, device: &Device) -> anyhow::Result<u8> {
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
    let model_id = model.id().to_string();
    let (found, walk_errors) = files::collect(&args.paths);
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
        let stale: usize = dirs.iter().map(|d| remove_stale_scratch(d)).sum();
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
                    .map(|p| p.display().to_string())
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
            path: p.display().to_string(),
            status: "failed",
            proposal: None,
            error: Some(format!("cannot read ({e}): {}", p.display())),
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
                path: path.display().to_string(),
                status: "failed",
                proposal: None,
                error: Some(e),
            },
            Ok(a) => match read_tags(&path) {
                Err(e) => FileReport {
                    path: path.display().to_string(),
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
                        (false, true, None) => ("would-tag", None),
                        (false, true, Some(b)) => {
                            let confidence = a.genres.first().map_or(0.0, |r| r.1);
                            match apply(&lib, b, &path, &proposal, &write_opts(confidence))? {
                                Ok(()) => ("tagged", None),
                                Err(e) => ("failed", Some(e)),
                            }
                        }
                    };
                    FileReport {
                        path: path.display().to_string(),
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
            match (&r.proposal, &r.error) {
                (_, Some(e)) => writeln!(out, "{}\n  failed: {e}", r.path)?,
                (Some(p), None) if r.status == "unsure" => writeln!(
                    out,
                    "{}\n  unsure: keeps {}  ({})",
                    r.path,
                    show(&p.existing),
                    p.reason
                )?,
                (Some(p), None) => writeln!(
                    out,
                    "{}\n  {}: {} -> {}  ({})",
                    r.path,
                    r.status,
                    show(&p.existing),
                    show(&p.proposed),
                    p.reason
                )?,
                (None, None) => writeln!(out, "{}\n  {}", r.path, r.status)?,
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
    let Some(batch) = args.batch.or(lib.last_undoable_batch()?) else {
        eprintln!("nothing to undo");
        return Ok(EXIT_OK);
    };
    let report = undo_batch(&lib, batch, &TagWriteOptions::default())?;
    for p in &report.reverted {
        println!("reverted: {}", p.display());
    }
    for (_, why) in &report.refused {
        println!("refused: {why}");
    }
    println!(
        "batch {batch}: {} reverted, {} refused",
        report.reverted.len(),
        report.refused.len()
    );
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
        let done = entries.iter().filter(|e| e.state == "done").count();
        let undone = entries.iter().filter(|e| e.state == "undone").count();
        let failed = entries.iter().filter(|e| e.state == "failed").count();
        println!(
            "batch {:>4}  {} written, {} undone, {} failed{}  {}",
            b.id,
            done,
            undone,
            failed,
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
