//! Training the default model: a transfer head on the backbone's embedding, fused with
//! the backbone's tag evidence ([`super::fusion`]), calibrated, with a decision
//! threshold — all chosen by grouped cross-validation on the labelled data.
//!
//! `genretag train --model fused` runs it (`scripts/train_default.sh` is the shipped
//! model's exact command). The procedure:
//! 1. features of every track: backbone embedding and tags per 3 s window, clean and
//!    through each simulated recording difference ([`super::shift`]);
//! 2. grouped k-fold CV (a group — GTZAN block, artist or album — never spans two
//!    folds): a head trained on the other folds (clean + augmented audio) predicts the
//!    held-out tracks under every shift ("familiar genre" rows);
//! 3. leave-one-genre-out: a head trained without genre g predicts g's tracks — how
//!    the model behaves on music of a genre its head never heard ("new genre" rows);
//! 4. the fusion's parameters are fitted on those rows; a second level of CV (fit on
//!    the other folds' rows, predict this fold's) gives honest estimates, on which the
//!    temperature is fitted and the threshold chosen for the target precision;
//! 5. the final head is trained on everything, the final fusion fitted on all rows.

use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::features::{Repr, Windows};
use super::fusion::{FuseInput, Fusion, FusionParams, Novelty, fit_params, fuse};
use super::metrics::Metrics;
use super::models::{ModelKind, ModelSpec, Net};
use super::report::{Prediction, Report, ShiftScore, robustness_markdown};
use super::run::{RunOptions, load_tracks};
use super::saved::{MODEL_SCHEMA, ModelFile, SavedModel};
use super::trainer::{self, Event, Norm, TrackData, Vote, predict, track_probs};
use crate::error::{Error, ModelError};
use crate::ml::cv::grouped_folds;
use crate::model::calibration::{
    self, Calibration, CalibrationSummary, TARGET_PRECISION, argmax, precision_coverage,
};
use crate::model::{DecisionRule, Taxonomy};
use crate::shift::Shift;

/// Options of the default model's training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedOptions {
    /// Cross-validation folds.
    pub folds: usize,
    /// Weight of the "new genre" rows against the "familiar genre" rows in the fusion fit.
    pub novel_weight: f32,
    /// Shifts the head is also trained on (besides the clean audio).
    pub augment: Vec<Shift>,
    /// Shifts the held-out tracks are heard through (the robustness table).
    pub eval_shifts: Vec<Shift>,
    /// Seed of the fold assignment.
    pub seed: u64,
}

impl Default for FusedOptions {
    fn default() -> Self {
        Self {
            folds: 5,
            novel_weight: 0.5,
            augment: vec![
                Shift::Mp3 { kbps: 64 },
                Shift::Aac { kbps: 64 },
                Shift::Lowpass { hz: 4000.0 },
                Shift::Tilt { db_per_octave: 3.0 },
                Shift::Tilt {
                    db_per_octave: -3.0,
                },
                Shift::Gain { db: -18.0 },
            ],
            eval_shifts: Shift::STANDARD.to_vec(),
            seed: 7,
        }
    }
}

/// One track's backbone windows under one shift.
#[derive(Debug, Clone)]
struct Heard2 {
    emb: Windows,
    tags: Windows,
}

impl Heard2 {
    fn mean(w: &Windows) -> Vec<f32> {
        let mut m = vec![0.0f32; w.row_len];
        for r in 0..w.rows() {
            m.iter_mut().zip(w.row(r)).for_each(|(a, b)| *a += b);
        }
        m.iter_mut().for_each(|a| *a /= w.rows().max(1) as f32);
        m
    }
}

/// A held-out prediction of the head, before fusion.
#[derive(Debug, Clone)]
struct Row {
    track: usize,
    shift: usize,
    novel: bool,
    fold: usize,
    input: FuseInput,
    /// The head alone, over the model's labels (0 for labels it does not output).
    head_only: Vec<f32>,
}

/// Train the default model; writes the report folder and the model (`out/model`).
pub fn train_fused(
    opts: &RunOptions,
    fo: &FusedOptions,
    taxonomy: &Taxonomy,
    cancel: &AtomicBool,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Report, Error> {
    let other = |s: String| Error::from(ModelError::Other(s));
    let ds = opts.source.load()?;
    let labels = taxonomy.keys();
    let n = labels.len();
    // Dataset label -> taxonomy index.
    let to_model: Vec<usize> = ds
        .labels
        .iter()
        .map(|l| {
            taxonomy.index_of(l).ok_or_else(|| {
                other(format!(
                    "the dataset's genre {l:?} is not in the taxonomy; add it to the taxonomy file"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let head_model_idx: Vec<usize> = to_model.clone();
    let head_labels: Vec<String> = head_model_idx.iter().map(|&i| labels[i].clone()).collect();
    let k = head_labels.len();
    let group_of = opts.split.group_of();

    // 1. Features under every shift.
    let mut shifts: Vec<Shift> = vec![Shift::Clean];
    for s in fo.augment.iter().chain(&fo.eval_shifts) {
        if !shifts.contains(s) {
            shifts.push(*s);
        }
    }
    if shifts.iter().any(Shift::needs_ffmpeg) && !crate::shift::have_ffmpeg() {
        return Err(other(
            "re-encoding shifts need ffmpeg (install it, e.g. `apt install ffmpeg`)".into(),
        ));
    }
    let mut store = super::run::store_for(
        &[Repr::Embed],
        opts.cache.clone(),
        opts.windowing,
        &opts.device,
    )?;
    let all_items: Vec<usize> = (0..ds.items.len()).collect();
    let mut feats: Vec<Vec<Option<Heard2>>> = Vec::new();
    for (si, s) in shifts.iter().enumerate() {
        on_event(&Event::Log(format!(
            "features through {s} ({}/{})",
            si + 1,
            shifts.len()
        )));
        store.set_shift(*s);
        let (tracks, fails) = load_tracks(
            &store,
            &ds,
            &all_items,
            &[Repr::Embed, Repr::Tags],
            on_event,
        );
        for (p, why) in &fails {
            on_event(&Event::Log(format!("skipped {} ({s}): {why}", p.display())));
        }
        feats.push(
            tracks
                .into_iter()
                .map(|t| {
                    t.map(|t| {
                        let mut it = t.inputs.into_iter();
                        Heard2 {
                            emb: it.next().unwrap_or_default(),
                            tags: it.next().unwrap_or_default(),
                        }
                    })
                })
                .collect(),
        );
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(other("cancelled".into()));
        }
    }
    // Tracks usable under every shift.
    let usable: Vec<usize> = (0..ds.items.len())
        .filter(|&t| feats.iter().all(|f| f[t].is_some()))
        .collect();
    if usable.len() < 2 * fo.folds {
        return Err(other(format!(
            "only {} tracks could be analysed under every shift; too few to train",
            usable.len()
        )));
    }
    let heard = |si: usize, t: usize| feats[si][t].as_ref().expect("usable tracks have features");
    let truth_of = |t: usize| to_model[ds.items[t].label];
    let train_shifts: Vec<usize> = (0..shifts.len())
        .filter(|&i| shifts[i] == Shift::Clean || fo.augment.contains(&shifts[i]))
        .collect();
    let eval_idx: Vec<usize> = (0..shifts.len())
        .filter(|&i| fo.eval_shifts.contains(&shifts[i]))
        .collect();

    // A head on some tracks, some of the dataset's labels.
    let spec = {
        let mut s = ModelSpec::new(ModelKind::Transfer);
        s.frames = opts.windowing.frames();
        s
    };
    let fit_head = |train: &[usize],
                    keep: &[usize],
                    ev: &mut (dyn FnMut(&Event) + Send)|
     -> Result<(Net, Norm, Novelty), Error> {
        // `keep`: dataset label indices the head outputs, in order.
        let mut data: Vec<TrackData> = Vec::new();
        for &t in train {
            let Some(y) = keep.iter().position(|&l| l == ds.items[t].label) else {
                continue;
            };
            for &si in &train_shifts {
                data.push(TrackData {
                    path: ds.items[t].path.clone(),
                    label: y,
                    inputs: vec![heard(si, t).emb.clone()],
                });
            }
        }
        let refs: Vec<&TrackData> = data.iter().collect();
        let norm = Norm::fit(&[Repr::Embed], &refs);
        let trained = trainer::fit(
            &spec,
            &opts.config,
            keep.len(),
            &norm,
            &refs,
            &[],
            &opts.device,
            None,
            false,
            cancel,
            &mut |e| {
                if let Event::Log(_) = e {
                    ev(e)
                }
            },
        )?;
        let clean: Vec<(Vec<f32>, usize)> = train
            .iter()
            .filter_map(|&t| {
                keep.iter()
                    .position(|&l| l == ds.items[t].label)
                    .map(|y| (Heard2::mean(&heard(0, t).emb), y))
            })
            .collect();
        let embs: Vec<Vec<f32>> = clean.iter().map(|(e, _)| e.clone()).collect();
        let ys: Vec<usize> = clean.iter().map(|(_, y)| *y).collect();
        let novelty = Novelty::fit(&embs, &ys, keep.len(), NOVELTY_DIMS);
        Ok((trained.net, norm, novelty))
    };
    // Held-out rows of a head.
    let rows_of = |net: &Net,
                   norm: &Norm,
                   novelty: &Novelty,
                   keep: &[usize],
                   tracks: &[usize],
                   novel: bool,
                   fold: usize|
     -> Vec<Row> {
        let mut out = Vec::new();
        for &si in &eval_idx {
            let data: Vec<TrackData> = tracks
                .iter()
                .map(|&t| TrackData {
                    path: ds.items[t].path.clone(),
                    label: 0,
                    inputs: vec![heard(si, t).emb.clone()],
                })
                .collect();
            let refs: Vec<&TrackData> = data.iter().collect();
            let probs = predict(net, &spec, norm, &refs, &opts.device);
            for (&t, w) in tracks.iter().zip(probs) {
                let p = track_probs(&w, Vote::Mean);
                let mut head = vec![None; n];
                let mut head_only = vec![0.0f32; n];
                for (j, &l) in keep.iter().enumerate() {
                    head[to_model[l]] = Some(p[j]);
                    head_only[to_model[l]] = p[j];
                }
                let h = heard(si, t);
                out.push(Row {
                    track: t,
                    shift: si,
                    novel,
                    fold,
                    input: FuseInput {
                        head,
                        evidence: taxonomy.evidence(&Heard2::mean(&h.tags)),
                        novelty: novelty.score(&Heard2::mean(&h.emb)),
                    },
                    head_only,
                });
            }
        }
        out
    };

    // 2. Grouped k-fold.
    let groups: Vec<String> = usable.iter().map(|&t| group_of(&ds.items[t])).collect();
    let ys: Vec<usize> = usable.iter().map(|&t| ds.items[t].label).collect();
    let fold_of_usable = grouped_folds(&ys, &groups, fo.folds, fo.seed);
    let fold_of = |t: usize| -> usize {
        usable
            .iter()
            .position(|&u| u == t)
            .map_or(0, |i| fold_of_usable[i])
    };
    let every_label: Vec<usize> = (0..k).collect();
    let mut rows: Vec<Row> = Vec::new();
    for f in 0..fo.folds {
        on_event(&Event::Log(format!(
            "cross-validation fold {}/{}",
            f + 1,
            fo.folds
        )));
        let train: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|&t| fold_of(t) != f)
            .collect();
        let test: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|&t| fold_of(t) == f)
            .collect();
        let (net, norm, nov) = fit_head(&train, &every_label, on_event)?;
        rows.extend(rows_of(&net, &norm, &nov, &every_label, &test, false, f));
    }
    // 3. Leave one genre out.
    for g in 0..k {
        on_event(&Event::Log(format!(
            "new-genre check: without {}",
            ds.labels[g]
        )));
        let keep: Vec<usize> = (0..k).filter(|&l| l != g).collect();
        let train: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|&t| ds.items[t].label != g)
            .collect();
        let test: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|&t| ds.items[t].label == g)
            .collect();
        if keep.len() < 2 || test.is_empty() {
            continue;
        }
        let (net, norm, nov) = fit_head(&train, &keep, on_event)?;
        for &t in &test {
            let f = fold_of(t);
            rows.extend(rows_of(&net, &norm, &nov, &keep, &[t], true, f));
        }
    }

    // 4. Fit the fusion (second-level CV for honest estimates), the temperature and the
    // threshold.
    let clean_idx = 0usize;
    let weights = row_weights(
        &rows,
        &|r: &Row| truth_of(r.track),
        n,
        clean_idx,
        fo.novel_weight,
        eval_idx.len(),
    );
    let truth: Vec<usize> = rows.iter().map(|r| truth_of(r.track)).collect();
    let mut raw_oof: Vec<Vec<f32>> = vec![Vec::new(); rows.len()];
    for f in 0..fo.folds {
        let fit: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].fold != f).collect();
        let p = fit_params(
            &fit.iter()
                .map(|&i| rows[i].input.clone())
                .collect::<Vec<_>>(),
            &fit.iter().map(|&i| truth[i]).collect::<Vec<_>>(),
            &fit.iter().map(|&i| weights[i]).collect::<Vec<_>>(),
            &head_model_idx,
        );
        for i in (0..rows.len()).filter(|&i| rows[i].fold == f) {
            raw_oof[i] = fuse(&p, &rows[i].input);
        }
    }
    let temperature = calibration::fit_temperature(&raw_oof, &truth, &weights);
    let oof: Vec<Vec<f32>> = raw_oof.iter().map(|p| temperature.apply(p)).collect();
    let familiar: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].novel).collect();
    let sel = |idx: &[usize], v: &[Vec<f32>]| -> (Vec<Vec<f32>>, Vec<usize>) {
        (
            idx.iter().map(|&i| v[i].clone()).collect(),
            idx.iter().map(|&i| truth[i]).collect(),
        )
    };
    let (fam_p, fam_t) = sel(&familiar, &oof);
    let threshold = calibration::choose_threshold(&fam_p, &fam_t, TARGET_PRECISION, 0.3);
    // Novelty rule: beyond the 99th percentile of familiar clean tracks' held-out
    // novelty, demand more confidence (chosen on the new-genre rows' own precision).
    let mut fam_nov: Vec<f32> = familiar
        .iter()
        .filter(|&&i| rows[i].shift == clean_idx)
        .map(|&i| rows[i].input.novelty)
        .collect();
    fam_nov.sort_by(f32::total_cmp);
    let max_novelty = fam_nov
        .get(((fam_nov.len() as f32 * 0.99) as usize).min(fam_nov.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f32::INFINITY);
    let far: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].input.novelty > max_novelty)
        .collect();
    let (far_p, far_t) = sel(&far, &oof);
    let novel_threshold = calibration::choose_threshold(&far_p, &far_t, TARGET_PRECISION, 0.5)
        .unwrap_or(0.99)
        .max(threshold.unwrap_or(0.5));
    let threshold = threshold.unwrap_or(0.99);
    let rule = DecisionRule {
        threshold,
        chosen_by: format!(
            "lowest threshold with >= {:.0} % precision on {} held-out predictions (grouped {}-fold CV, {} shifts)",
            TARGET_PRECISION * 100.0,
            familiar.len(),
            fo.folds,
            eval_idx.len()
        ),
        min_active_s: DecisionRule::default().min_active_s,
        max_novelty: Some(max_novelty),
        novel_threshold,
    };

    // 5. The final model.
    on_event(&Event::Log("final head on all tracks".into()));
    let final_params: FusionParams = fit_params(
        &rows.iter().map(|r| r.input.clone()).collect::<Vec<_>>(),
        &truth,
        &weights,
        &head_model_idx,
    );
    let (net, norm, novelty) = fit_head(&usable, &every_label, on_event)?;
    let fusion = Fusion {
        head_labels: head_labels.clone(),
        head_weight: final_params.head_weight,
        half_novelty: final_params.half_novelty,
        gate_slope: final_params.gate_slope,
        tag_weight: final_params.tag_weight,
        bias: final_params.bias.clone(),
        novelty,
    };
    let file = ModelFile {
        schema: MODEL_SCHEMA.into(),
        spec: Some(spec.clone()),
        labels: labels.clone(),
        norm,
        windowing: opts.windowing,
        vote: Vote::Mean,
        members: Vec::new(),
        rule: None,
        notes: format!(
            "{}; head trained on {} tracks ({} genres) clean and through {}; fusion, temperature and threshold from grouped {}-fold CV by {}",
            opts.source.describe(),
            usable.len(),
            k,
            fo.augment
                .iter()
                .map(Shift::name)
                .collect::<Vec<_>>()
                .join(", "),
            fo.folds,
            opts.split.group_name()
        ),
        taxonomy: Some(taxonomy_text(taxonomy)),
        fusion: Some(fusion),
        calibration: temperature,
        decision: rule.clone(),
    };
    let model = SavedModel::from_net(file, net, &opts.device)?;
    model.save(&opts.out.join("model"))?;

    // The report: everything on held-out (second-level CV) predictions.
    let report = cv_report(CvParts {
        opts,
        fo,
        ds: &ds,
        labels: &labels,
        shifts: &shifts,
        eval_idx: &eval_idx,
        rows: &rows,
        raw_oof: &raw_oof,
        oof: &oof,
        truth: &truth,
        temperature,
        rule: &rule,
        final_params: &final_params,
        model: &model,
    });
    report.write(&opts.out).map_err(other)?;
    Ok(report)
}

/// Principal directions of the novelty model.
const NOVELTY_DIMS: usize = 20;

/// Row weights: classes balanced within each kind (familiar / new genre), familiar rows
/// in all weigh 1 and new-genre rows `novel_weight`; within a track, the clean hearing
/// weighs as much as all shifted hearings together.
fn row_weights(
    rows: &[Row],
    truth: &dyn Fn(&Row) -> usize,
    n: usize,
    clean: usize,
    novel_weight: f32,
    n_shifts: usize,
) -> Vec<f32> {
    let shifted = (n_shifts.saturating_sub(1)).max(1) as f32;
    let base: Vec<f32> = rows
        .iter()
        .map(|r| if r.shift == clean { 1.0 } else { 1.0 / shifted })
        .collect();
    let mut out = base.clone();
    for novel in [false, true] {
        let mut class_sum = vec![0.0f32; n];
        for (r, b) in rows.iter().zip(&base) {
            if r.novel == novel {
                class_sum[truth(r)] += b;
            }
        }
        let classes = class_sum.iter().filter(|&&s| s > 0.0).count().max(1) as f32;
        let kind_weight = if novel { novel_weight } else { 1.0 };
        for (i, r) in rows.iter().enumerate() {
            if r.novel == novel {
                out[i] = kind_weight * base[i] / class_sum[truth(r)].max(1e-9) / classes;
            }
        }
    }
    out
}

fn taxonomy_text(t: &Taxonomy) -> String {
    t.genres
        .iter()
        .map(|g| {
            let tags: Vec<String> = g
                .evidence
                .iter()
                .map(|&(i, w)| {
                    let name = crate::ml::musicnn::MSD_TAGS[i];
                    if (w - 1.0).abs() < 1e-6 {
                        name.to_string()
                    } else {
                        format!("{name} * {w}")
                    }
                })
                .collect();
            format!("{} = {} : {}\n", g.key, g.name, tags.join(", "))
        })
        .collect()
}

struct CvParts<'a> {
    opts: &'a RunOptions,
    fo: &'a FusedOptions,
    ds: &'a Dataset,
    labels: &'a [String],
    shifts: &'a [Shift],
    eval_idx: &'a [usize],
    rows: &'a [Row],
    raw_oof: &'a [Vec<f32>],
    oof: &'a [Vec<f32>],
    truth: &'a [usize],
    temperature: Calibration,
    rule: &'a DecisionRule,
    final_params: &'a FusionParams,
    model: &'a SavedModel,
}

fn cv_report(c: CvParts<'_>) -> Report {
    let pick = |f: &dyn Fn(&Row) -> bool| -> Vec<usize> {
        (0..c.rows.len()).filter(|&i| f(&c.rows[i])).collect()
    };
    let sub = |idx: &[usize], v: &[Vec<f32>]| -> (Vec<Vec<f32>>, Vec<usize>) {
        (
            idx.iter().map(|&i| v[i].clone()).collect(),
            idx.iter().map(|&i| c.truth[i]).collect(),
        )
    };
    let clean_fam = pick(&|r| !r.novel && r.shift == 0);
    let (p, t) = sub(&clean_fam, c.oof);
    let (raw_p, _) = sub(&clean_fam, c.raw_oof);
    let track = Metrics::compute(c.labels, &p, &t);
    let calibration = CalibrationSummary::new(
        &format!(
            "grouped {}-fold CV ({}), clean audio, familiar genres",
            c.fo.folds,
            c.opts.split.group_name()
        ),
        &raw_p,
        &t,
        c.temperature,
        c.rule.threshold,
        TARGET_PRECISION,
    );
    let predictions: Vec<Prediction> = clean_fam
        .iter()
        .map(|&i| Prediction {
            path: c.ds.items[c.rows[i].track].path.clone(),
            truth: c.truth[i],
            probs: c.oof[i].clone(),
            windows: Vec::new(),
        })
        .collect();
    let robustness: Vec<ShiftScore> = c
        .eval_idx
        .iter()
        .map(|&si| {
            let idx = pick(&|r| !r.novel && r.shift == si);
            let (p, t) = sub(&idx, c.oof);
            let (precision, coverage) = precision_coverage(&p, &t, c.rule.threshold);
            ShiftScore {
                shift: c.shifts[si].name(),
                tracks: idx.len(),
                accuracy: accuracy(&p, &t),
                precision,
                coverage,
                in_training: c.fo.augment.contains(&c.shifts[si]),
            }
        })
        .collect();
    let mut notes = Vec::new();
    // Head alone vs fused, familiar genres, clean.
    let head_only: Vec<Vec<f32>> = clean_fam
        .iter()
        .map(|&i| c.rows[i].head_only.clone())
        .collect();
    let plain: Vec<Vec<f32>> = clean_fam
        .iter()
        .map(|&i| {
            fuse(
                &FusionParams::plain_product(c.labels.len()),
                &c.rows[i].input,
            )
        })
        .collect();
    notes.push(format!(
        "**Familiar genres, clean audio** (grouped CV, {} tracks): head alone accuracy {:.3}; \
         plain product of head and tag evidence {:.3}; fitted fusion {:.3}, calibrated: ECE {:.3} \
         -> {:.3}; at the threshold {:.2}: precision {}, coverage {:.2}; wider-taxonomy answers on these \
         ten-genre tracks: {:.1} %.",
        clean_fam.len(),
        accuracy(&head_only, &t),
        accuracy(&plain, &t),
        track.accuracy,
        calibration.ece_before,
        calibration.ece_after,
        c.rule.threshold,
        calibration.precision.map_or("-".into(), |p| format!("{p:.3}")),
        calibration.coverage,
        100.0 * p.iter().filter(|r| !c.model.fusion_head_knows(argmax(r))).count() as f32 / p.len().max(1) as f32
    ));
    let fam_all = pick(&|r| !r.novel);
    let (pa, ta) = sub(&fam_all, c.oof);
    let (prec_a, cov_a) = precision_coverage(&pa, &ta, c.rule.threshold);
    notes.push(format!(
        "**Familiar genres, all {} hearings** (clean and {} shifts): accuracy {:.3}; at the threshold precision {}, coverage {:.2}.",
        fam_all.len(),
        c.eval_idx.len() - 1,
        accuracy(&pa, &ta),
        prec_a.map_or("-".into(), |p| format!("{p:.3}")),
        cov_a
    ));
    let nov = pick(&|r| r.novel && r.shift == 0);
    let (pn, tn) = sub(&nov, c.oof);
    let (prec_n, cov_n) = precision_coverage(&pn, &tn, c.rule.threshold);
    let wrong_confident = pn
        .iter()
        .zip(&tn)
        .filter(|(p, t)| argmax(p) != **t && p[argmax(p)] >= c.rule.threshold)
        .count();
    notes.push(format!(
        "**A genre the head never heard** (leave-one-genre-out, clean, {} tracks): right {:.3}; \
         at the threshold precision {}, coverage {:.2} ({} confident wrong answers). \
         Genres with backbone-tag evidence can still be recognised; those without (classical, \
         disco, reggae in the shipped taxonomy) cannot, and should be unsure.",
        nov.len(),
        accuracy(&pn, &tn),
        prec_n.map_or("-".into(), |p| format!("{p:.3}")),
        cov_n,
        wrong_confident
    ));
    let fp = c.final_params;
    notes.push(format!(
        "**Fusion** (fitted on all held-out rows): head weight a0 = {:.2}, halved at novelty {:.2} \
         (slope {:.2}); tag-evidence weight b = {:.2}; temperature {:.2}; novelty limit {:.2} \
         (above it, answers need {:.2}).",
        fp.head_weight,
        fp.half_novelty,
        fp.gate_slope,
        fp.tag_weight,
        c.temperature.temperature,
        c.rule.max_novelty.unwrap_or(f32::INFINITY),
        c.rule.novel_threshold
    ));
    notes.push(format!(
        "**Robustness** (held-out tracks through each shift)\n\n{}",
        robustness_markdown(&robustness)
    ));
    Report {
        schema: "genretag.report/1".into(),
        kind: "train-default".into(),
        model: c.model.name(),
        config: serde_json::json!({
            "fused": c.fo,
            "train": c.opts.config,
            "windowing": c.opts.windowing,
        }),
        dataset: c.opts.source.describe(),
        split: format!(
            "grouped {}-fold CV by {} (every number is on held-out folds)",
            c.fo.folds,
            c.opts.split.group_name()
        ),
        missing: Vec::new(),
        labels: c.labels.to_vec(),
        sizes: [c.ds.items.len(), 0, clean_fam.len()],
        history: Vec::new(),
        best_epoch: 0,
        stop: "completed".into(),
        train_secs: 0.0,
        parameters: 0,
        track: track.clone(),
        segment: track,
        predictions,
        calibration: Some(calibration),
        robustness,
        notes,
    }
}

fn accuracy(p: &[Vec<f32>], t: &[usize]) -> f32 {
    p.iter().zip(t).filter(|(p, t)| argmax(p) == **t).count() as f32 / t.len().max(1) as f32
}
