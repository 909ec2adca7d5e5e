//! A whole run: dataset -> split -> features -> training -> test evaluation -> report
//! folder and saved model. Shared by `genretag train`, `genretag eval` and the app.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::{self, Dataset, Split, SplitError};
use super::features::{FeatureStore, Repr, Windowing};
use super::forest::Forest;
use super::metrics::Metrics;
use super::models::{ModelKind, ModelSpec};
use super::report::{Prediction, Report};
use super::saved::{MODEL_SCHEMA, ModelFile, SavedModel, spec_name};
use super::trainer::{self, Event, Norm, Stop, TrackData, TrainConfig};
use crate::error::Error;
use crate::model::DecisionRule;
use crate::model::calibration::{self, Calibration, CalibrationSummary, TARGET_PRECISION};

/// Where labelled tracks come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A folder with one sub-folder per genre.
    Folder(PathBuf),
    /// A `path<TAB>genre` list.
    List(PathBuf),
    /// The genre tags already in a music library.
    Library {
        /// Folders to scan.
        roots: Vec<PathBuf>,
        /// Genres with fewer tracks are left out.
        min_tracks: usize,
        /// Optional `tag value = label` mapping file.
        map: Option<PathBuf>,
    },
}

impl Source {
    /// Load the dataset.
    pub fn load(&self) -> Result<Dataset, SplitError> {
        match self {
            Source::Folder(p) => Dataset::from_folder(p),
            Source::List(p) => Dataset::from_list(p),
            Source::Library {
                roots,
                min_tracks,
                map,
            } => dataset::from_library_tags(roots, *min_tracks, map.as_deref()),
        }
    }

    /// For reports.
    pub fn describe(&self) -> String {
        match self {
            Source::Folder(p) => format!("folder {}", p.display()),
            Source::List(p) => format!("list {}", p.display()),
            Source::Library {
                roots, min_tracks, ..
            } => format!(
                "library tags of {} (min {min_tracks} tracks per genre)",
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Grouping key of a grouped split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// GTZAN's blocks of 5 consecutive clip numbers.
    Gtzan,
    /// The artist tag.
    Artist,
    /// The album tag.
    Album,
}

impl GroupBy {
    /// The group of an item: its GTZAN block of 5 consecutive numbers, or its artist or
    /// album tag (untagged tracks form groups of their own).
    pub fn key(self, item: &dataset::Item) -> String {
        match self {
            GroupBy::Gtzan => dataset::gtzan_group(item, 5),
            GroupBy::Artist | GroupBy::Album => {
                let t = crate::library::tags::read_tags(&item.path).ok();
                let v = t.and_then(|t| {
                    if self == GroupBy::Artist {
                        t.artist
                    } else {
                        t.album
                    }
                });
                v.map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| item.path.display().to_string())
            }
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Gtzan => "gtzan-block-5",
            GroupBy::Artist => "artist",
            GroupBy::Album => "album",
        }
    }
}

/// How to split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitSpec {
    /// Stratified random by track.
    Stratified {
        /// Test fraction.
        test: f64,
        /// Validation fraction.
        val: f64,
        /// Seed.
        seed: u64,
    },
    /// Whole groups in one part.
    Grouped {
        /// Key.
        by: GroupBy,
        /// Test fraction of groups.
        test: f64,
        /// Validation fraction of groups.
        val: f64,
        /// Seed.
        seed: u64,
    },
    /// Explicit lists.
    Lists {
        /// Training list.
        train: PathBuf,
        /// Validation list.
        val: Option<PathBuf>,
        /// Test list.
        test: PathBuf,
    },
}

impl SplitSpec {
    /// The grouping of tracks this split keeps together (cross-validation uses it too):
    /// the grouped split's key, otherwise every track on its own.
    pub fn group_of(&self) -> Box<dyn Fn(&dataset::Item) -> String + Sync + '_> {
        match self {
            SplitSpec::Grouped { by, .. } => Box::new(move |i| by.key(i)),
            _ => Box::new(|i| i.path.display().to_string()),
        }
    }

    /// The name of that grouping.
    pub fn group_name(&self) -> String {
        match self {
            SplitSpec::Grouped { by, .. } => by.name().to_string(),
            _ => "track".into(),
        }
    }

    /// Apply to a dataset.
    pub fn apply(&self, ds: &Dataset) -> Result<Split, SplitError> {
        Ok(match self {
            SplitSpec::Stratified { test, val, seed } => {
                dataset::stratified(ds, *test, *val, *seed)
            }
            SplitSpec::Grouped {
                by,
                test,
                val,
                seed,
            } => dataset::grouped(ds, &|i| by.key(i), *test, *val, *seed, by.name()),
            SplitSpec::Lists { train, val, test } => {
                dataset::from_lists(ds, train, val.as_deref(), test)?
            }
        })
    }
}

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Data.
    pub source: Source,
    /// Split.
    pub split: SplitSpec,
    /// Model.
    pub spec: ModelSpec,
    /// Training.
    pub config: TrainConfig,
    /// Windows.
    pub windowing: Windowing,
    /// Report folder (the model goes to `out/model`).
    pub out: PathBuf,
    /// Continue from `out/checkpoint`.
    pub resume: bool,
    /// Feature cache folder (`None`: no cache).
    pub cache: Option<PathBuf>,
    /// Compute device.
    pub device: Device,
    /// Score the test tracks on their centre window only (fixed evaluation windows).
    pub eval_centre: bool,
}

/// Tracks whose features could not be computed: (file, reason).
pub type Failures = Vec<(PathBuf, String)>;

/// Compute (or read cached) features of dataset items, in parallel.
pub fn load_tracks(
    store: &FeatureStore,
    ds: &Dataset,
    items: &[usize],
    reprs: &[Repr],
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> (Vec<Option<TrackData>>, Failures) {
    let total = items.len();
    let done = Arc::new(Mutex::new((0usize, on_event)));
    let results: Vec<Result<TrackData, (PathBuf, String)>> = items
        .par_iter()
        .map(|&i| {
            let it = &ds.items[i];
            let r = store
                .windows(&it.path, reprs)
                .map(|inputs| TrackData {
                    path: it.path.clone(),
                    label: it.label,
                    inputs,
                })
                .map_err(|e| (it.path.clone(), e.to_string()));
            if let Ok(mut g) = done.lock() {
                g.0 += 1;
                let n = g.0;
                (g.1)(&Event::Preparing { done: n, total });
            }
            r
        })
        .collect();
    let mut fails = Vec::new();
    let tracks = results
        .into_iter()
        .map(|r| r.map_err(|f| fails.push(f)).ok())
        .collect();
    (tracks, fails)
}

/// A feature store, with the (shared) backbone if `reprs` need it.
pub fn store_for(
    reprs: &[Repr],
    cache: Option<PathBuf>,
    windowing: Windowing,
    device: &Device,
) -> Result<FeatureStore, Error> {
    let store = FeatureStore::new(cache, windowing);
    if reprs.iter().any(|r| r.needs_backbone()) {
        return Ok(store.with_shared_backbone(crate::ml::shipped::backbone(device)?));
    }
    Ok(store)
}

/// The feature store a saved model predicts with (with the backbone if it needs it).
pub fn store_for_model(
    model: &SavedModel,
    cache: Option<PathBuf>,
    device: &Device,
) -> Result<FeatureStore, Error> {
    let reprs = if model.needs_backbone() {
        vec![Repr::Embed]
    } else {
        Vec::new()
    };
    store_for(&reprs, cache, model.file.windowing, device)
}

/// Score predictions: track-level and window-level metrics and the prediction list.
pub fn score(
    labels: &[String],
    tracks: &[&TrackData],
    preds: Vec<super::saved::TrackPrediction>,
) -> (Metrics, Metrics, Vec<Prediction>) {
    let truth: Vec<usize> = tracks.iter().map(|t| t.label).collect();
    let track_probs: Vec<Vec<f32>> = preds.iter().map(|p| p.track.clone()).collect();
    let mut seg_probs = Vec::new();
    let mut seg_truth = Vec::new();
    for (p, t) in preds.iter().zip(tracks) {
        for w in &p.windows {
            seg_probs.push(w.clone());
            seg_truth.push(t.label);
        }
    }
    let predictions = preds
        .into_iter()
        .zip(tracks)
        .map(|(p, t)| Prediction {
            path: t.path.clone(),
            truth: t.label,
            probs: p.track,
            windows: p.windows,
        })
        .collect();
    (
        Metrics::compute(labels, &track_probs, &truth),
        Metrics::compute(labels, &seg_probs, &seg_truth),
        predictions,
    )
}

fn forest_fit(
    spec: &ModelSpec,
    cfg: &TrainConfig,
    k: usize,
    norm: &Norm,
    train: &[&TrackData],
) -> Forest {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for t in train {
        let w = &t.inputs[0];
        for r in 0..w.rows() {
            let mut v = w.row(r).to_vec();
            norm.apply(0, &mut v);
            x.push(v);
            y.push(t.label);
        }
    }
    let class_w = super::trainer::class_weights(k, y.iter().copied(), cfg.class_weights);
    let w: Vec<f32> = y.iter().map(|&l| class_w[l]).collect();
    Forest::fit(&x, &y, &w, k, spec.trees, cfg.seed)
}

/// Train, evaluate on the test part, write the report folder and the model.
pub fn train(
    opts: &RunOptions,
    cancel: &AtomicBool,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Report, Error> {
    let ds = opts.source.load()?;
    let split = opts.split.apply(&ds)?;
    if split.train.is_empty() || split.test.is_empty() {
        return Err(SplitError::EmptyPart {
            split: split.name.clone(),
            train: split.train.len(),
            test: split.test.len(),
        }
        .into());
    }
    if !split.missing.is_empty() {
        on_event(&Event::Log(format!(
            "{} listed files are not in the dataset (named in the report)",
            split.missing.len()
        )));
    }
    let mut spec = opts.spec.clone();
    spec.frames = opts.windowing.frames();
    let spec = &spec;
    let reprs = spec.inputs();
    let mut store = store_for(&reprs, opts.cache.clone(), opts.windowing, &opts.device)?;
    let fit_items: Vec<usize> = split.train.iter().chain(&split.val).copied().collect();
    let (mut loaded, mut fails) = load_tracks(&store, &ds, &fit_items, &reprs, on_event);
    if opts.eval_centre {
        // Test tracks are cut into their single centre window.
        store.set_windowing(Windowing {
            centre_only: true,
            ..opts.windowing
        });
    }
    let (test, f) = load_tracks(&store, &ds, &split.test, &reprs, on_event);
    loaded.extend(test);
    fails.extend(f);
    for (p, why) in &fails {
        on_event(&Event::Log(format!("skipped {}: {why}", p.display())));
    }
    let (n_tr, n_va) = (split.train.len(), split.val.len());
    let part =
        |r: std::ops::Range<usize>| -> Vec<&TrackData> { loaded[r].iter().flatten().collect() };
    let train = part(0..n_tr);
    let val = part(n_tr..n_tr + n_va);
    let test = part(n_tr + n_va..loaded.len());
    if train.is_empty() || test.is_empty() {
        return Err(SplitError::TooFewUsable {
            usable: train.len() + test.len(),
            needed: 2,
            when: " (at least one for training and one for testing)",
        }
        .into());
    }
    let k = ds.labels.len();
    let norm = Norm::fit(&reprs, &train);
    let file = ModelFile {
        schema: MODEL_SCHEMA.into(),
        spec: Some(spec.clone()),
        labels: ds.labels.clone(),
        norm: norm.clone(),
        windowing: opts.windowing,
        vote: opts.config.vote,
        members: Vec::new(),
        rule: None,
        notes: format!("{}; split {}", opts.source.describe(), split.name),
        taxonomy: None,
        fusion: None,
        calibration: Calibration::default(),
        decision: DecisionRule::default(),
    };
    let (model, history, best_epoch, stop, secs, parameters) = if spec.kind == ModelKind::Forest {
        let t0 = std::time::Instant::now();
        on_event(&Event::Log(format!("growing {} trees", spec.trees)));
        let f = forest_fit(spec, &opts.config, k, &norm, &train);
        let secs = t0.elapsed().as_secs_f64();
        (
            SavedModel::from_forest(file, f, &opts.device)?,
            Vec::new(),
            0,
            Stop::Completed,
            secs,
            0,
        )
    } else {
        let t = trainer::fit(
            spec,
            &opts.config,
            k,
            &norm,
            &train,
            &val,
            &opts.device,
            Some(&trainer::checkpoint_dir(&opts.out)),
            opts.resume,
            cancel,
            on_event,
        )?;
        let parameters = t.net.parameters();
        (
            SavedModel::from_net(file, t.net, &opts.device)?,
            t.history,
            t.best_epoch,
            t.stop,
            t.secs,
            parameters,
        )
    };
    let mut model = model;
    let (cal, rule) = calibrate(&model, &val);
    on_event(&Event::Log(format!(
        "calibration: temperature {:.2}; threshold {:.2} ({})",
        cal.temperature, rule.threshold, rule.chosen_by
    )));
    model.set_calibration(cal, rule);
    model.save(&opts.out.join("model"))?;
    let preds = model.predict_tracks(&test);
    let calibration = Some(test_calibration(&model, &test, &preds));
    let (track, segment, predictions) = score(&ds.labels, &test, preds);
    let report = Report {
        schema: "genretag.report/1".into(),
        kind: "train".into(),
        model: spec_name(spec),
        config: serde_json::json!({
            "model": spec,
            "train": opts.config,
            "windowing": opts.windowing,
            "test_windows": if opts.eval_centre { "centre window only" } else { "all windows" },
            "failed_tracks": fails.iter().map(|(p, w)| format!("{}: {w}", p.display())).collect::<Vec<_>>(),
        }),
        dataset: opts.source.describe(),
        split: split.name.clone(),
        missing: split.missing.clone(),
        labels: ds.labels.clone(),
        sizes: [train.len(), val.len(), test.len()],
        history,
        best_epoch,
        stop: format!("{stop:?}").to_lowercase(),
        train_secs: secs,
        parameters,
        track,
        segment,
        predictions,
        calibration,
        robustness: Vec::new(),
        notes: Vec::new(),
    };
    report.write(&opts.out)?;
    Ok(report)
}

/// Validation tracks needed to choose a decision threshold from them.
pub const MIN_THRESHOLD_TRACKS: usize = 20;

/// Fit the temperature and choose the decision threshold on held-out `val` tracks
/// (precision target [`TARGET_PRECISION`]). Without enough of them the temperature
/// stays 1 and the threshold is the default, and the rule says so.
pub fn calibrate(model: &SavedModel, val: &[&TrackData]) -> (Calibration, DecisionRule) {
    let preds = model.predict_tracks(val);
    let probs: Vec<Vec<f32>> = preds.into_iter().map(|p| p.track).collect();
    let truth: Vec<usize> = val.iter().map(|t| t.label).collect();
    if val.len() < MIN_THRESHOLD_TRACKS {
        return (
            Calibration::default(),
            DecisionRule {
                chosen_by: format!(
                    "default: the validation part has {} tracks, too few to choose from (needs {MIN_THRESHOLD_TRACKS})",
                    val.len()
                ),
                ..DecisionRule::default()
            },
        );
    }
    let weights =
        super::trainer::class_weights(model.file.labels.len(), truth.iter().copied(), true);
    let w: Vec<f32> = truth.iter().map(|&t| weights[t]).collect();
    let cal = calibration::fit_temperature(&probs, &truth, &w);
    let calibrated: Vec<Vec<f32>> = probs.iter().map(|p| cal.apply(p)).collect();
    let rule = match calibration::choose_threshold(&calibrated, &truth, TARGET_PRECISION, 0.3) {
        Some(t) => DecisionRule {
            threshold: t,
            chosen_by: format!(
                "lowest threshold with >= {:.0} % precision on the {} validation tracks",
                TARGET_PRECISION * 100.0,
                val.len()
            ),
            ..DecisionRule::default()
        },
        None => DecisionRule {
            threshold: 0.99,
            chosen_by: format!(
                "no threshold reached {:.0} % precision on the {} validation tracks: answers only when near certain",
                TARGET_PRECISION * 100.0,
                val.len()
            ),
            ..DecisionRule::default()
        },
    };
    (cal, rule)
}

/// Calibration and decision figures of a model on its test tracks.
pub fn test_calibration(
    model: &SavedModel,
    test: &[&TrackData],
    raw: &[super::saved::TrackPrediction],
) -> CalibrationSummary {
    let probs: Vec<Vec<f32>> = raw.iter().map(|p| p.track.clone()).collect();
    let truth: Vec<usize> = test.iter().map(|t| t.label).collect();
    CalibrationSummary::new(
        "test part",
        &probs,
        &truth,
        model.file.calibration,
        model.file.decision.threshold,
        TARGET_PRECISION,
    )
}
