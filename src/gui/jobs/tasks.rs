//! One-off jobs started by a click, each on its own short-lived thread (see
//! [`super::spawn_task`]): loading and checking a run's report, comparing two runs,
//! exporting figures, writing playlists, and computing a tag preview. The UI keeps
//! the receiver of the newest request only, so a result nobody waits for any more
//! (a cancelled dialog, a superseded click) is dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::TaskError;
use crate::error::ReportError;
use crate::library::policy::{Proposal, TagPolicy};
use crate::train::metrics::{Normalise, mcnemar};
use crate::train::report::Report;

/// A run's report, checked, with what the app needs to know about its folder.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// The report.
    pub report: Report,
    /// Its folder.
    pub dir: PathBuf,
    /// Whether the folder holds a model the library can use.
    pub has_model: bool,
}

/// Read `dir`'s report.json and check it can be shown.
pub fn load_run(dir: &Path) -> Result<LoadedRun, TaskError> {
    let report = Report::load(dir)?;
    // `dir` is the run's folder or its report.json.
    let (run_dir, file) = if dir.is_dir() {
        (dir.to_path_buf(), dir.join("report.json"))
    } else {
        let parent = dir.parent().unwrap_or(Path::new("."));
        (parent.to_path_buf(), dir.to_path_buf())
    };
    check_report(&report).map_err(|reason| ReportError::Format { path: file, reason })?;
    let has_model = run_dir.join("model").join("model.json").is_file();
    Ok(LoadedRun {
        report,
        dir: run_dir,
        has_model,
    })
}

/// A report whose numbers do not fit its labels (hand-edited, truncated, from another
/// version) is refused with the reason (the `reason` of a [`ReportError::Format`])
/// instead of being drawn with indices that do not exist.
pub fn check_report(r: &Report) -> Result<(), String> {
    let k = r.labels.len();
    if k == 0 {
        return Err("malformed report: no labels".into());
    }
    for (name, m) in [("track", &r.track), ("segment", &r.segment)] {
        if m.confusion.is_empty() && name == "segment" {
            continue;
        }
        if m.confusion.len() != k || m.confusion.iter().any(|row| row.len() != k) {
            return Err(format!(
                "malformed report: the {name} confusion matrix is not {k} x {k} (labels: {k})"
            ));
        }
        if m.per_class.len() > k {
            return Err(format!(
                "malformed report: {} per-class rows for {k} labels",
                m.per_class.len()
            ));
        }
    }
    for p in &r.predictions {
        if p.truth >= k || p.probs.len() != k {
            return Err(format!(
                "malformed report: a prediction for {} does not fit the {k} labels",
                p.path.display()
            ));
        }
    }
    Ok(())
}

/// Two runs side by side, with McNemar's test on the test tracks both scored.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The other run's folder.
    pub other_dir: PathBuf,
    /// (model, split, accuracy, balanced accuracy, macro F1) of this run and the other.
    pub rows: [(String, String, f64, f64, f64); 2],
    /// Common test tracks, only this run right, only the other right, p-value.
    pub mcnemar: Option<(usize, usize, usize, f64)>,
    /// A warning (different splits, different labels).
    pub note: Option<String>,
}

/// Compare `current` (the run shown, in `current_dir`) with the run in `other`.
pub fn compare(
    current: &Report,
    current_dir: &Path,
    other: &Path,
) -> Result<Comparison, TaskError> {
    if other.as_os_str().is_empty() {
        return Err(TaskError::NoOtherRun);
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    };
    if same(current_dir, other) {
        return Err(TaskError::SameRun {
            path: other.to_path_buf(),
        });
    }
    let o = load_run(other)?.report;
    let row = |r: &Report| {
        (
            r.model.clone(),
            r.split.clone(),
            r.track.accuracy,
            r.track.balanced_accuracy,
            r.track.macro_f1,
        )
    };
    fn ok(x: &Report) -> BTreeMap<&Path, bool> {
        x.predictions
            .iter()
            .map(|p| {
                (
                    p.path.as_path(),
                    crate::train::metrics::argmax(&p.probs) == p.truth,
                )
            })
            .collect()
    }
    let (a, b) = (ok(current), ok(&o));
    let common: Vec<&Path> = a.keys().copied().filter(|k| b.contains_key(k)).collect();
    let mcn = (!common.is_empty()).then(|| {
        let t = mcnemar(
            &common.iter().map(|k| a[k]).collect::<Vec<_>>(),
            &common.iter().map(|k| b[k]).collect::<Vec<_>>(),
        );
        (common.len(), t.only_a, t.only_b, t.p_value)
    });
    let note = if current.labels != o.labels {
        Some("the runs have different labels".into())
    } else if current.split != o.split {
        Some(format!(
            "the runs used different splits ({} / {}): McNemar uses only their common test tracks",
            current.split, o.split
        ))
    } else {
        None
    };
    Ok(Comparison {
        other_dir: other.to_path_buf(),
        rows: [row(current), row(&o)],
        mcnemar: mcn,
        note,
    })
}

/// Export the figures and tables of `report` (run folder `run_dir`) into `dir`.
pub fn export(
    report: &Report,
    run_dir: &Path,
    dir: &Path,
    how: Normalise,
) -> Result<Vec<PathBuf>, TaskError> {
    Ok(crate::train::plots::export(report, run_dir, dir, how)?)
}

/// Marker on the first lines of every playlist genretag writes: only such files are
/// ever overwritten.
const PLAYLIST_MARK: &str = "# written by genretag";

/// Write one `.m3u8` playlist per genre into `dir`. Returns the files written. A file
/// of the same name that genretag did not write is left alone (an error names it).
pub fn write_playlists(
    dir: &Path,
    lists: &BTreeMap<String, Vec<(PathBuf, String, f32)>>,
) -> Result<Vec<PathBuf>, TaskError> {
    if lists.is_empty() {
        return Err(TaskError::NothingToGroup);
    }
    std::fs::create_dir_all(dir).map_err(|source| TaskError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (genre, tracks) in lists {
        let name: String = genre
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || " -_&+.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{}.m3u8", name.trim().trim_start_matches('.')));
        if let Ok(old) = std::fs::read_to_string(&path)
            && !old.lines().take(2).any(|l| l == PLAYLIST_MARK)
        {
            return Err(TaskError::InTheWay { path });
        }
        let mut text = format!("#EXTM3U\n{PLAYLIST_MARK}\n");
        for (p, who, dur) in tracks {
            let secs = if *dur > 0.0 { dur.round() as i64 } else { -1 };
            text += &format!(
                "#EXTINF:{secs},{}\n{}\n",
                who.replace('\n', " "),
                p.display()
            );
        }
        // Write beside, then rename: a crash never leaves half a playlist.
        let tmp = dir.join(format!(".{}.genretag-tmp", std::process::id()));
        let r = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(source) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(TaskError::Write { path, source });
        }
        written.push(path);
    }
    Ok(written)
}

/// What the preview knows of one selected row.
#[derive(Debug, Clone)]
pub enum PreviewState {
    /// Analysed and sure enough: ranked genres.
    Ranked(Vec<(String, f32)>),
    /// The model is unsure: why.
    Unsure(String),
    /// Not analysed (yet, or it failed): why.
    NotAnalysed(String),
}

/// One selected row for the preview.
#[derive(Debug, Clone)]
pub struct PreviewInput {
    /// The file.
    pub path: PathBuf,
    /// Its genres now.
    pub existing: Vec<String>,
    /// What the analysis said.
    pub state: PreviewState,
}

/// Proposals for every input, in order; rows that get no genre are kept, skipped, with
/// the reason (an unsure track, a file that could not be analysed).
pub fn preview(policy: &TagPolicy, items: Vec<PreviewInput>) -> Vec<(PathBuf, Proposal)> {
    items
        .into_iter()
        .map(|it| {
            let skipped = |reason: String| Proposal {
                proposed: it.existing.clone(),
                existing: it.existing.clone(),
                changes: false,
                skipped: true,
                reason,
            };
            let p = match &it.state {
                PreviewState::Ranked(r) => {
                    let ranked: Vec<(&str, f32)> =
                        r.iter().map(|(l, p)| (l.as_str(), *p)).collect();
                    policy.propose(&it.existing, &ranked)
                }
                PreviewState::Unsure(why) => {
                    skipped(format!("skipped: the model is unsure ({why})"))
                }
                PreviewState::NotAnalysed(why) => skipped(format!("skipped: {why}")),
            };
            (it.path, p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_never_overwrite_a_users_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lists = BTreeMap::new();
        lists.insert(
            "Hip Hop".to_string(),
            vec![(PathBuf::from("/m/a.mp3"), "A - B".to_string(), 61.4)],
        );
        let w = write_playlists(dir.path(), &lists).expect("written");
        let text = std::fs::read_to_string(&w[0]).expect("read");
        assert!(text.starts_with("#EXTM3U\n"));
        assert!(text.contains("#EXTINF:61,A - B\n/m/a.mp3\n"));
        // Ours again: overwritten.
        write_playlists(dir.path(), &lists).expect("rewritten");
        // Someone else's: refused, untouched.
        std::fs::write(&w[0], "#EXTM3U\nmine\n").expect("write");
        assert!(write_playlists(dir.path(), &lists).is_err());
        assert_eq!(
            std::fs::read_to_string(&w[0]).expect("read"),
            "#EXTM3U\nmine\n"
        );
    }

    #[test]
    fn preview_keeps_unsure_and_failed_rows_with_reasons() {
        let p = preview(
            &TagPolicy::default(),
            vec![
                PreviewInput {
                    path: "a".into(),
                    existing: vec![],
                    state: PreviewState::Ranked(vec![("rock".into(), 0.9)]),
                },
                PreviewInput {
                    path: "b".into(),
                    existing: vec!["Pop".into()],
                    state: PreviewState::Unsure("top genre only 41 %".into()),
                },
                PreviewInput {
                    path: "c".into(),
                    existing: vec![],
                    state: PreviewState::NotAnalysed("cannot decode".into()),
                },
            ],
        );
        assert_eq!(p.len(), 3);
        assert!(p[0].1.changes && !p[0].1.skipped);
        assert!(p[1].1.skipped && p[1].1.reason.contains("41 %"));
        assert_eq!(p[1].1.proposed, vec!["Pop".to_string()]);
        assert!(p[2].1.skipped && p[2].1.reason.contains("cannot decode"));
    }
}
