//! The one analysis service: file -> what the model heard ([`crate::listen`]) ->
//! calibrated probabilities ([`GenreModel`]) -> a decision ([`Verdict`]), with the
//! library database as a cache keyed by the file's content and the model's id.
//!
//! `classify`, `tag`, `eval` and the app all analyse through [`Analyzer`], so they
//! accept the same models and give the same answers for the same file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ModelError};
use crate::library::Library;
use crate::listen::{Heard, ListenOptions, listen_ahead, listen_shifted};
use crate::ml::musicnn::MSD_TAGS;
use crate::model::calibration::argmax;
use crate::model::{DecisionRule, GenreModel, Listening};
use crate::shift::Shift;
use crate::train::saved::SavedModel;

pub use crate::listen::{DEFAULT_MAX_PATCHES, PATCH_SECS};
pub use crate::model::Verdict;

/// Load a model: the shipped default (`None`), or a model folder, a run folder (its
/// `model/`), or a `model.json` made by `genretag train`.
pub fn load_model(path: Option<&Path>, device: &Device) -> Result<Arc<dyn GenreModel>, Error> {
    let dir = match path {
        None => crate::ml::shipped::find_model(crate::ml::shipped::DEFAULT_MODEL_DIR)?,
        Some(p) => {
            let p = if p.file_name().is_some_and(|n| n == "model.json") {
                p.parent().unwrap_or(Path::new(".")).to_path_buf()
            } else {
                p.to_path_buf()
            };
            SavedModel::find_dir(&p).ok_or_else(|| ModelError::Io {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a model: give a run folder of `genretag train`, its model/ folder, or a model.json",
                ),
            })?
        }
    };
    Ok(Arc::new(SavedModel::load(&dir, device)?))
}

/// One segment of an analysis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Start, seconds.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
    /// Calibrated genre probabilities in the model's label order.
    pub genre_probs: Vec<f32>,
}

/// Everything we learn about one track.
#[derive(Debug, Clone)]
pub struct TrackAnalysis {
    /// The file.
    pub path: PathBuf,
    /// The model's labels.
    pub labels: Vec<String>,
    /// Calibrated track probabilities, in label order.
    pub genre_probs: Vec<f32>,
    /// The backbone's mean tag probabilities (when the model ran the backbone).
    pub tag_probs: Option<Vec<f32>>,
    /// Per-segment probabilities.
    pub segments: Vec<Segment>,
    /// The decision.
    pub verdict: Verdict,
    /// How unlike the training data the track is (1.0 = the 99th percentile).
    pub novelty: Option<f32>,
    /// Decoded duration in seconds.
    pub duration_s: f64,
    /// Seconds of audible sound.
    pub active_s: f64,
    /// Seconds the model listened to.
    pub listened_s: f64,
    /// Complete 3 s patches in the track.
    pub total_patches: usize,
    /// Codec.
    pub codec: String,
    /// Corrupt packets skipped.
    pub skipped_packets: usize,
    /// Zero-padded because shorter than 3 s.
    pub padded: bool,
}

impl TrackAnalysis {
    /// `(label, probability)` sorted by probability, highest first.
    pub fn ranked_genres(&self) -> Vec<(&str, f32)> {
        rank(&self.labels, &self.genre_probs)
    }

    /// `(tag, probability)` sorted, highest first (empty when the backbone did not run).
    pub fn ranked_tags(&self) -> Vec<(&'static str, f32)> {
        let Some(t) = &self.tag_probs else {
            return Vec::new();
        };
        let mut v: Vec<(&str, f32)> = MSD_TAGS.iter().copied().zip(t.iter().copied()).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// Non-fatal problems worth telling the user.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.skipped_packets > 0 {
            w.push(format!(
                "skipped {} corrupt packet(s)",
                self.skipped_packets
            ));
        }
        if self.padded {
            w.push("shorter than 3 s: padded with silence".into());
        }
        w
    }
}

fn rank<'a>(labels: &'a [String], probs: &[f32]) -> Vec<(&'a str, f32)> {
    let mut v: Vec<(&str, f32)> = labels
        .iter()
        .map(String::as_str)
        .zip(probs.iter().copied())
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// What the library database keeps of an analysis (JSON), per file and model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StoredAnalysis {
    /// Genre labels with calibrated probabilities, most likely first.
    pub genres: Vec<(String, f32)>,
    /// The backbone's 50 tags with probabilities, most likely first (empty when the
    /// model does not run the backbone).
    pub tags: Vec<(String, f32)>,
    /// Per-segment genre probabilities (label order of the model).
    pub segments: Vec<StoredSegment>,
    /// Decoded duration, seconds.
    pub duration_s: f64,
    /// The model's decision: a genre it is sure enough of, or "unsure" and why.
    /// Analyses stored before decisions existed read back as [`Verdict::Unknown`].
    #[serde(default)]
    pub verdict: Verdict,
    /// Seconds the model listened to (0 in analyses stored by older versions).
    #[serde(default)]
    pub listened_s: f64,
    /// Seconds of audible sound (to re-decide with another threshold).
    #[serde(default)]
    pub active_s: f64,
    /// Novelty (to re-decide with another threshold).
    #[serde(default)]
    pub novelty: Option<f32>,
    /// Complete 3 s patches in the track (0 in analyses stored by older versions).
    #[serde(default)]
    pub total_patches: usize,
    /// Non-fatal decoding problems (skipped corrupt packets, padding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One segment of a [`StoredAnalysis`].
pub type StoredSegment = Segment;

impl From<&TrackAnalysis> for StoredAnalysis {
    fn from(a: &TrackAnalysis) -> Self {
        let owned = |v: Vec<(&str, f32)>| v.into_iter().map(|(l, p)| (l.to_string(), p)).collect();
        Self {
            genres: owned(a.ranked_genres()),
            tags: owned(a.ranked_tags()),
            segments: a.segments.clone(),
            duration_s: a.duration_s,
            verdict: a.verdict.clone(),
            listened_s: a.listened_s,
            active_s: a.active_s,
            novelty: a.novelty,
            total_patches: a.total_patches,
            warnings: a.warnings(),
        }
    }
}

impl StoredAnalysis {
    /// The decision under another rule (a user's threshold). Analyses stored before
    /// decisions existed keep [`Verdict::Unknown`].
    pub fn verdict_with(&self, rule: &DecisionRule) -> Verdict {
        if self.verdict == Verdict::Unknown {
            return Verdict::Unknown;
        }
        let labels: Vec<String> = self.genres.iter().map(|(l, _)| l.clone()).collect();
        let probs: Vec<f32> = self.genres.iter().map(|(_, p)| *p).collect();
        rule.decide(&labels, &probs, self.active_s, self.novelty)
    }
}

/// How to analyse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalyseOptions {
    /// `None` = every patch; `Some(n)` = at most n, spread over the track.
    pub max_patches: Option<usize>,
    /// Tracks analysed together (the backbone sees all their patches in one batch).
    pub batch_tracks: usize,
    /// Adaptive listening: look at [`FIRST_LOOK_PATCHES`] spread patches first and keep
    /// that answer when it is already a genre at [`SETTLED_PROBABILITY`] or more; only
    /// other tracks are analysed with every kept patch.
    pub adaptive: bool,
    /// Decode only the analysed patches of long files whose format can seek (with
    /// adaptive listening, the first look's first); `false` decodes every file whole.
    pub seek: bool,
}

/// Patches of the first look of adaptive listening.
pub const FIRST_LOOK_PATCHES: usize = 4;

/// A first look that names a genre at least this probably (calibrated) is kept
/// (measured on held-out clips: docs/speed.md).
pub const SETTLED_PROBABILITY: f32 = 0.9;

impl Default for AnalyseOptions {
    fn default() -> Self {
        Self {
            max_patches: Some(DEFAULT_MAX_PATCHES),
            batch_tracks: 4,
            adaptive: false,
            seek: true,
        }
    }
}

/// A model with its listening options and decision rule: turns files into analyses.
pub struct Analyzer {
    model: Arc<dyn GenreModel>,
    options: AnalyseOptions,
    rule: DecisionRule,
}

impl Analyzer {
    /// Analyse with `model`, deciding by its own rule.
    pub fn new(model: Arc<dyn GenreModel>, options: AnalyseOptions) -> Self {
        let rule = model.decision_rule().clone();
        Self {
            model,
            options,
            rule,
        }
    }

    /// Decide with another probability threshold than the model's.
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.rule = self.rule.with_threshold(threshold);
        self
    }

    /// The model.
    pub fn model(&self) -> &Arc<dyn GenreModel> {
        &self.model
    }

    /// The decision rule in force.
    pub fn rule(&self) -> &DecisionRule {
        &self.rule
    }

    /// The key analyses are cached under: the model's id, plus how much of each track
    /// is heard when that is not the default (an analysis of 10 patches is not one of
    /// every patch).
    pub fn cache_key(&self) -> String {
        let id = self.model.id();
        let heard = match self.options.max_patches {
            Some(DEFAULT_MAX_PATCHES) => id.to_string(),
            Some(n) => format!("{id}/patches={n}"),
            None => format!("{id}/patches=all"),
        };
        match (
            self.options.adaptive,
            self.rule.threshold > SETTLED_PROBABILITY,
        ) {
            (false, _) => heard,
            (true, false) => format!("{heard}/adaptive"),
            // A first look kept at 0.9 is not kept under a stricter threshold.
            (true, true) => format!("{heard}/adaptive@{:.3}", self.rule.threshold),
        }
    }

    /// What to keep of each file for this model.
    pub fn listen_options(&self) -> ListenOptions {
        let patches = self.model.listening() == Listening::Patches;
        ListenOptions {
            max_patches: self.options.max_patches,
            whole: !patches,
            seek: self.options.seek,
            first_look: (self.options.adaptive && patches).then_some(FIRST_LOOK_PATCHES),
        }
    }

    /// Analyse tracks already heard (one model call for all of them; two with adaptive
    /// listening, the second only for tracks the first look did not settle).
    pub fn analyse_heard(&self, heard: &[&Heard]) -> Result<Vec<TrackAnalysis>, ModelError> {
        if !self.options.adaptive || self.model.listening() != Listening::Patches {
            return self.analyse_every_patch(heard);
        }
        // First look: a few patches spread over what was kept (on a long file heard by
        // seeking, only those were decoded: the rest is `pending`).
        let firsts: Vec<Option<Heard>> = heard
            .iter()
            .map(|h| {
                let n = h.len();
                if !h.pending.is_empty() {
                    return Some((*h).clone());
                }
                (n > FIRST_LOOK_PATCHES).then(|| {
                    let keep: Vec<usize> = (0..FIRST_LOOK_PATCHES)
                        .map(|j| ((2 * j + 1) * n) / (2 * FIRST_LOOK_PATCHES))
                        .collect();
                    h.subset(&keep)
                })
            })
            .collect();
        let looked: Vec<&Heard> = firsts.iter().flatten().collect();
        let mut first = self.analyse_every_patch(&looked)?.into_iter();
        let mut out: Vec<Option<TrackAnalysis>> = Vec::with_capacity(heard.len());
        let mut again = Vec::new();
        for (i, f) in firsts.iter().enumerate() {
            let settled = match f {
                Some(_) => first.next().filter(|a| {
                    matches!(a.verdict, Verdict::Genre { probability, .. }
                        if probability >= SETTLED_PROBABILITY)
                }),
                None => None,
            };
            if settled.is_none() {
                again.push(i);
            }
            out.push(settled);
        }
        // Tracks heard only in part are heard in full now; should the file fail to seek
        // a second time, the first look's patches are all there is to decide with.
        // (Decoded side by side: the backbone waits for them.)
        let completed: Vec<Option<Heard>> = again
            .par_iter()
            .map(|&i| {
                let h = heard[i];
                (!h.pending.is_empty()).then(|| {
                    h.hear_rest().unwrap_or_else(|_| Heard {
                        pending: Vec::new(),
                        ..h.clone()
                    })
                })
            })
            .collect();
        let rest: Vec<&Heard> = again
            .iter()
            .zip(&completed)
            .map(|(&i, c)| c.as_ref().unwrap_or(heard[i]))
            .collect();
        for (i, a) in again.into_iter().zip(self.analyse_every_patch(&rest)?) {
            out[i] = Some(a);
        }
        out.into_iter()
            .map(|a| a.ok_or_else(|| ModelError::Other("the model gave no result".into())))
            .collect()
    }

    fn analyse_every_patch(&self, heard: &[&Heard]) -> Result<Vec<TrackAnalysis>, ModelError> {
        if heard.is_empty() {
            return Ok(Vec::new());
        }
        let outs = self.model.analyse(heard)?;
        let labels = self.model.labels().to_vec();
        Ok(heard
            .iter()
            .zip(outs)
            .map(|(h, o)| {
                let verdict = self.rule.decide(&labels, &o.probs, h.active_s, o.novelty);
                TrackAnalysis {
                    path: h.path.clone(),
                    labels: labels.clone(),
                    genre_probs: o.probs,
                    tag_probs: o.tags,
                    segments: o
                        .segments
                        .into_iter()
                        .map(|s| Segment {
                            start_s: s.start_s,
                            end_s: s.end_s,
                            genre_probs: s.probs,
                        })
                        .collect(),
                    verdict,
                    novelty: o.novelty,
                    duration_s: h.duration_s,
                    active_s: h.active_s,
                    listened_s: match self.model.listening() {
                        Listening::Patches => h.listened_s(),
                        Listening::Whole => h.duration_s,
                    },
                    total_patches: h.total_patches,
                    codec: h.codec.clone(),
                    skipped_packets: h.skipped_packets,
                    padded: h.padded,
                }
            })
            .collect())
    }

    /// Analyse one file.
    pub fn analyse_path(&self, path: &Path) -> Result<TrackAnalysis, Error> {
        self.analyse_shifted(path, Shift::Clean)
    }

    /// Analyse one file heard through a simulated recording difference.
    pub fn analyse_shifted(&self, path: &Path, shift: Shift) -> Result<TrackAnalysis, Error> {
        let heard = listen_shifted(path, &self.listen_options(), shift)?;
        Ok(self.analyse_heard(&[&heard])?.remove(0))
    }

    /// Analyse many files: decoding runs ahead on a worker while the model works, and
    /// the model sees a few tracks at a time. `each` gets every file's result in input
    /// order and returns `false` to stop early.
    pub fn analyse_all(
        &self,
        files: Vec<PathBuf>,
        mut each: impl FnMut(PathBuf, Result<TrackAnalysis, Error>) -> bool,
    ) {
        let batch = self.options.batch_tracks.max(1);
        let mut pending: Vec<(PathBuf, Result<Heard, Error>)> = Vec::with_capacity(batch);
        let mut flush = |pending: &mut Vec<(PathBuf, Result<Heard, Error>)>| -> bool {
            let ok: Vec<&Heard> = pending
                .iter()
                .filter_map(|(_, h)| h.as_ref().ok())
                .collect();
            let mut results = match self.analyse_heard(&ok) {
                Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => {
                    let msg = e.to_string();
                    ok.iter()
                        .map(|_| Err(Error::from(ModelError::Other(msg.clone()))))
                        .collect()
                }
            }
            .into_iter();
            for (path, heard) in pending.drain(..) {
                let r = match heard {
                    Ok(_) => results.next().unwrap_or_else(|| {
                        Err(ModelError::Other("the model gave no result".into()).into())
                    }),
                    Err(e) => Err(e),
                };
                if !each(path, r) {
                    return false;
                }
            }
            true
        };
        for (path, heard) in listen_ahead(files, self.listen_options(), batch) {
            pending.push((path, heard.map_err(Error::from)));
            if pending.len() >= batch && !flush(&mut pending) {
                return;
            }
        }
        flush(&mut pending);
    }
}

/// Files looked up in the cache at a time before the ones missing are analysed.
pub const CACHE_CHUNK: usize = 64;

/// The cache side of the service: analyses of files kept in the library database,
/// keyed by the file's content and the model's id.
pub struct Cached<'a> {
    analyzer: &'a Analyzer,
    library: &'a Library,
}

impl<'a> Cached<'a> {
    /// Analyse through `library`'s cache.
    pub fn new(analyzer: &'a Analyzer, library: &'a Library) -> Self {
        Self { analyzer, library }
    }

    /// The cached analysis of `path` for this model, re-decided under the analyzer's
    /// rule, if there is a valid one.
    pub fn get(&self, path: &Path) -> Result<Option<StoredAnalysis>, Error> {
        let json = self
            .library
            .cached_analysis(path, &self.analyzer.cache_key())?;
        Ok(json.and_then(|j| {
            // An entry this version cannot read, or one without a decision (stored by an
            // older genretag), is a cache miss, not an error.
            serde_json::from_str::<StoredAnalysis>(&j)
                .ok()
                .filter(|a| a.verdict != Verdict::Unknown)
                .map(|mut a| {
                    a.verdict = a.verdict_with(&self.analyzer.rule);
                    a
                })
        }))
    }

    /// Store a fresh analysis.
    pub fn put(&self, analysis: &TrackAnalysis) -> Result<StoredAnalysis, Error> {
        let stored = StoredAnalysis::from(analysis);
        let json = serde_json::to_string(&stored)
            .map_err(|e| ModelError::Other(format!("cannot serialise an analysis: {e}")))?;
        self.library
            .store_analysis(&analysis.path, &self.analyzer.cache_key(), &json)?;
        Ok(stored)
    }

    /// Analyses of `files`: cached ones at once, the rest analysed (and stored), a
    /// chunk of [`CACHE_CHUNK`] files at a time so that results start coming before
    /// every file has been looked up. `each` gets (file, result, whether it came from
    /// the cache): within a chunk, cached files first, then the analysed ones in input
    /// order; it returns `false` to stop. A cache that cannot be written (a read-only or
    /// full database) costs the cache, not the analysis: one warning, and the results
    /// still come.
    pub fn get_or_analyse(
        &self,
        files: Vec<PathBuf>,
        mut each: impl FnMut(PathBuf, Result<StoredAnalysis, Error>, bool) -> bool,
    ) {
        let mut warned = false;
        let mut files = files.into_iter().peekable();
        while files.peek().is_some() {
            let mut missing = Vec::new();
            for f in files.by_ref().take(CACHE_CHUNK) {
                match self.get(&f) {
                    Ok(Some(a)) => {
                        if !each(f, Ok(a), true) {
                            return;
                        }
                    }
                    _ => missing.push(f),
                }
            }
            let mut go_on = true;
            self.analyzer.analyse_all(missing, |path, r| {
                let r = r.map(|a| match self.put(&a) {
                    Ok(stored) => stored,
                    Err(e) => {
                        if !warned {
                            eprintln!("warning: analyses are not cached ({e})");
                            warned = true;
                        }
                        StoredAnalysis::from(&a)
                    }
                });
                go_on = each(path, r, false);
                go_on
            });
            if !go_on {
                return;
            }
        }
    }
}

/// The written name of a label under `model`'s taxonomy (the label itself if unknown).
pub fn written_name(model: &dyn GenreModel, label: &str) -> String {
    model.taxonomy().name_of(label).unwrap_or(label).to_string()
}

/// The top label of a probability row.
pub fn top_label<'a>(labels: &'a [String], probs: &[f32]) -> Option<&'a str> {
    labels.get(argmax(probs)).map(String::as_str)
}
