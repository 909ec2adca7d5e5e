//! Evaluating any model on any labelled music: `genretag eval`.
//!
//! Everything goes through the same analysis service the CLI and the app use, so the
//! numbers describe what a user would get: accuracy, precision of the genres it would
//! write and the share of tracks it answers at its threshold (the rest is "unsure"),
//! calibration error, and optionally robustness to recording differences and the
//! stability of decisions on long files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::analysis::{AnalyseOptions, Analyzer, TrackAnalysis, Verdict};
use crate::error::{Error, ModelError, ReportError};
use crate::model::GenreModel;
use crate::model::calibration::{CalibrationSummary, TARGET_PRECISION, argmax};
use crate::shift::Shift;
use crate::train::metrics::Metrics;
use crate::train::report::{Prediction, Report, ShiftScore, robustness_markdown};
use crate::train::run::{Source, SplitSpec};
use crate::train::trainer::Event;

/// What to measure besides the basics.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Accuracy under each simulated recording difference ([`Shift::STANDARD`]).
    pub robustness: bool,
    /// Decisions on long files built from several clips of one genre.
    pub stability: bool,
    /// Decision threshold instead of the model's.
    pub min_prob: Option<f32>,
    /// Patches per track (`None`: all).
    pub max_patches: Option<usize>,
    /// Adaptive listening ([`AnalyseOptions::adaptive`]).
    pub adaptive: bool,
}

/// The outcome of one track.
struct Scored {
    path: PathBuf,
    /// Model label index of the truth, or `None` when the truth is outside the model.
    truth: Option<usize>,
    truth_name: String,
    analysis: TrackAnalysis,
}

fn verdict_counts(s: &[&Scored]) -> (usize, usize, usize) {
    let (mut answered, mut right, mut unsure) = (0, 0, 0);
    for t in s {
        match &t.analysis.verdict {
            Verdict::Genre { label, .. } => {
                answered += 1;
                if t.truth.map(|i| &t.analysis.labels[i]) == Some(label) {
                    right += 1;
                }
            }
            Verdict::Unsure { .. } => unsure += 1,
            Verdict::Unknown => {}
        }
    }
    (answered, right, unsure)
}

/// Evaluate `model` on a dataset's test part (or all of it).
pub fn evaluate(
    model: Arc<dyn GenreModel>,
    source: &Source,
    split: Option<&SplitSpec>,
    opts: &EvalOptions,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Report, Error> {
    let ds = source.load()?;
    let (split_name, idx, missing) = match split {
        Some(s) => {
            let sp = s.apply(&ds)?;
            (sp.name, sp.test, sp.missing)
        }
        None => ("all".to_string(), (0..ds.items.len()).collect(), Vec::new()),
    };
    let mut analyzer = Analyzer::new(
        model.clone(),
        AnalyseOptions {
            max_patches: opts.max_patches,
            adaptive: opts.adaptive,
            ..AnalyseOptions::default()
        },
    );
    if let Some(p) = opts.min_prob {
        analyzer = analyzer.with_threshold(p);
    }
    let taxonomy = model.taxonomy();
    let truth_of = |label: &str| taxonomy.index_of(label);
    let files: Vec<PathBuf> = idx.iter().map(|&i| ds.items[i].path.clone()).collect();
    let label_of: std::collections::BTreeMap<PathBuf, String> = idx
        .iter()
        .map(|&i| {
            (
                ds.items[i].path.clone(),
                ds.labels[ds.items[i].label].clone(),
            )
        })
        .collect();
    let total = files.len();
    let mut scored = Vec::new();
    let mut fails: Vec<(PathBuf, String)> = Vec::new();
    let mut done = 0;
    analyzer.analyse_all(files, |path, r| {
        done += 1;
        on_event(&Event::Preparing { done, total });
        let name = label_of.get(&path).cloned().unwrap_or_default();
        match r {
            Ok(a) => scored.push(Scored {
                truth: truth_of(&name),
                truth_name: name,
                path,
                analysis: a,
            }),
            Err(e) => fails.push((path, e.to_string())),
        }
        true
    });
    for (p, why) in &fails {
        on_event(&Event::Log(format!("skipped {}: {why}", p.display())));
    }
    if scored.is_empty() {
        return Err(crate::train::dataset::SplitError::TooFewUsable {
            usable: 0,
            needed: 1,
            when: " for the evaluation",
        }
        .into());
    }
    let labels = model.labels().to_vec();
    let known: Vec<&Scored> = scored.iter().filter(|s| s.truth.is_some()).collect();
    let outside: Vec<&Scored> = scored.iter().filter(|s| s.truth.is_none()).collect();
    let probs: Vec<Vec<f32>> = known
        .iter()
        .map(|s| s.analysis.genre_probs.clone())
        .collect();
    let truth: Vec<usize> = known.iter().filter_map(|s| s.truth).collect();
    let track = Metrics::compute(&labels, &probs, &truth);
    let cal = model.calibration();
    let raw: Vec<Vec<f32>> = probs.iter().map(|p| cal.invert(p)).collect();
    let mut calibration = CalibrationSummary::new(
        &format!(
            "{split_name} ({} tracks of genres the model knows)",
            known.len()
        ),
        &raw,
        &truth,
        cal,
        analyzer.rule().threshold,
        TARGET_PRECISION,
    );
    // Precision and coverage as a user gets them: from the decisions (which also say
    // "unsure" for silence and for tracks unlike the training data).
    let (answered, right, _) = verdict_counts(&known);
    calibration.precision = (answered > 0).then(|| right as f32 / answered as f32);
    calibration.coverage = answered as f32 / known.len().max(1) as f32;
    let mut notes = Vec::new();
    notes.push(format!(
        "**Decisions**: {} of {} tracks answered ({:.0} %), {} of them right (precision {}); threshold {:.2} ({}).",
        answered,
        known.len(),
        100.0 * calibration.coverage,
        right,
        calibration.precision.map_or("-".into(), |p| format!("{:.1} %", p * 100.0)),
        analyzer.rule().threshold,
        analyzer.rule().chosen_by
    ));
    if !outside.is_empty() {
        let (answered_o, _, unsure_o) = verdict_counts(&outside);
        let mut given: std::collections::BTreeMap<String, usize> = Default::default();
        for s in &outside {
            if let Verdict::Genre { label, .. } = &s.analysis.verdict {
                *given
                    .entry(format!("{} -> {label}", s.truth_name))
                    .or_default() += 1;
            }
        }
        notes.push(format!(
            "**Genres the model does not have** ({} tracks: {}): {unsure_o} answered unsure, {answered_o} given a genre{}.",
            outside.len(),
            outside
                .iter()
                .map(|s| s.truth_name.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", "),
            if given.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    given
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
    }
    let robustness = if opts.robustness {
        robustness_table(&analyzer, &known, on_event)
    } else {
        Vec::new()
    };
    if !robustness.is_empty() {
        notes.push(format!(
            "**Robustness**\n\n{}",
            robustness_markdown(&robustness)
        ));
    }
    if opts.stability {
        notes.push(stability(&analyzer, &known, on_event)?);
    }
    let predictions = known
        .iter()
        .map(|s| Prediction {
            path: s.path.clone(),
            truth: s.truth.unwrap_or(0),
            probs: s.analysis.genre_probs.clone(),
            windows: s
                .analysis
                .segments
                .iter()
                .map(|g| g.genre_probs.clone())
                .collect(),
        })
        .collect();
    let segment = {
        let (mut sp, mut st) = (Vec::new(), Vec::new());
        for s in &known {
            for g in &s.analysis.segments {
                sp.push(g.genre_probs.clone());
                st.push(s.truth.unwrap_or(0));
            }
        }
        Metrics::compute(&labels, &sp, &st)
    };
    Ok(Report {
        schema: "genretag.report/1".into(),
        kind: "eval".into(),
        model: model.name(),
        config: serde_json::json!({
            "model_id": model.id(),
            "threshold": analyzer.rule().threshold,
            "failed_tracks": fails.iter().map(|(p, w)| format!("{}: {w}", p.display())).collect::<Vec<_>>(),
            "outside_taxonomy": outside.iter().map(|s| format!("{} ({})", s.path.display(), s.truth_name)).collect::<Vec<_>>(),
        }),
        dataset: source.describe(),
        split: split_name,
        missing,
        labels,
        sizes: [0, 0, known.len()],
        history: Vec::new(),
        best_epoch: 0,
        stop: String::new(),
        train_secs: 0.0,
        parameters: 0,
        segment,
        track,
        predictions,
        calibration: Some(calibration),
        robustness,
        notes,
    })
}

fn robustness_table(
    analyzer: &Analyzer,
    known: &[&Scored],
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Vec<ShiftScore> {
    /// One held-out track heard through a shift: probabilities, truth, answered, right.
    type Outcome = (Vec<f32>, usize, bool, bool);
    let have_ffmpeg = crate::shift::have_ffmpeg();
    let mut rows = Vec::new();
    for shift in Shift::STANDARD {
        if shift.needs_ffmpeg() && !have_ffmpeg {
            on_event(&Event::Log(format!(
                "{shift}: skipped (ffmpeg is not installed)"
            )));
            continue;
        }
        on_event(&Event::Log(format!("robustness: {shift}")));
        let results: Vec<Option<Outcome>> = known
            .par_iter()
            .map(|s| {
                let a = if shift == Shift::Clean {
                    s.analysis.clone()
                } else {
                    analyzer.analyse_shifted(&s.path, shift).ok()?
                };
                let t = s.truth?;
                let answered = matches!(a.verdict, Verdict::Genre { .. });
                let right = a.verdict.label() == Some(a.labels[t].as_str());
                Some((a.genre_probs, t, answered, right))
            })
            .collect();
        let ok: Vec<_> = results.into_iter().flatten().collect();
        let answered = ok.iter().filter(|r| r.2).count();
        let right = ok.iter().filter(|r| r.3).count();
        rows.push(ShiftScore {
            shift: shift.name(),
            tracks: ok.len(),
            accuracy: ok.iter().filter(|r| argmax(&r.0) == r.1).count() as f32
                / ok.len().max(1) as f32,
            precision: (answered > 0).then(|| right as f32 / answered as f32),
            coverage: answered as f32 / ok.len().max(1) as f32,
            in_training: false,
        });
    }
    rows
}

/// Long files built from several clips of one genre (with a silent intro and a noise
/// outro): is the decision the genre, and the same as the clips' own majority?
fn stability(
    analyzer: &Analyzer,
    known: &[&Scored],
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<String, Error> {
    const CLIPS: usize = 6;
    let dir = tempfile::tempdir().map_err(|source| ModelError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut by_label: std::collections::BTreeMap<usize, Vec<&Scored>> = Default::default();
    for s in known {
        if let Some(t) = s.truth {
            by_label.entry(t).or_default().push(s);
        }
    }
    let (mut files, mut right, mut agree, mut unsure) = (0, 0, 0, 0);
    let mut lines = Vec::new();
    for (label, clips) in by_label {
        for (g, group) in clips.chunks(CLIPS).enumerate() {
            if group.len() < CLIPS {
                continue;
            }
            let path = dir.path().join(format!("long-{label}-{g}.wav"));
            build_long_file(group.iter().map(|s| s.path.as_path()), &path)?;
            let a = analyzer.analyse_path(&path)?;
            files += 1;
            on_event(&Event::Log(format!("stability: long file {files}")));
            let name = &a.labels[label];
            let majority = {
                let mut votes = vec![0usize; a.labels.len()];
                for s in group {
                    votes[argmax(&s.analysis.genre_probs)] += 1;
                }
                argmax(&votes.iter().map(|&v| v as f32).collect::<Vec<_>>())
            };
            let top = argmax(&a.genre_probs);
            right += (top == label) as usize;
            agree += (top == majority) as usize;
            unsure += a.verdict.is_unsure() as usize;
            lines.push(format!(
                "{name} x{CLIPS} ({:.0} s): {} {:.0} %{}",
                a.duration_s,
                a.labels[top],
                a.genre_probs[top] * 100.0,
                if a.verdict.is_unsure() {
                    " (unsure)"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(format!(
        "**Long files** ({files} files, each {CLIPS} clips of one genre after 10 s of silence and before 15 s of noise): \
         top genre right on {right}, same as the clips' majority on {agree}, unsure on {unsure}.\n\n{}",
        lines.join("\n")
    ))
}

/// Write a 16 kHz WAV: 10 s of silence, the clips one after another, 15 s of fading
/// pink-ish noise.
fn build_long_file<'a>(clips: impl Iterator<Item = &'a Path>, out: &Path) -> Result<(), Error> {
    let rate = crate::dsp::features::MUSICNN_SAMPLE_RATE_HZ;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let io = |e: hound::Error| ReportError::Io {
        path: out.to_path_buf(),
        source: match e {
            hound::Error::IoError(e) => e,
            e => std::io::Error::other(e),
        },
    };
    let mut w = hound::WavWriter::create(out, spec).map_err(io)?;
    let put = |x: f32, w: &mut hound::WavWriter<_>| {
        w.write_sample((x.clamp(-1.0, 1.0) * 32767.0) as i16)
            .map_err(io)
    };
    for _ in 0..10 * rate {
        put(0.0, &mut w)?;
    }
    for c in clips {
        for x in crate::audio::read_resampled(c, rate)?.samples {
            put(x, &mut w)?;
        }
    }
    let mut rng = crate::ml::cv::SplitMix::new(1);
    let mut lp = 0.0f32;
    let n = 15 * rate;
    for i in 0..n {
        let white = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        lp = 0.97 * lp + 0.03 * white;
        put(lp * 2.0 * (1.0 - i as f32 / n as f32), &mut w)?;
    }
    w.finalize().map_err(io)?;
    Ok(())
}
