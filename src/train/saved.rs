//! Models on disk — a folder with `model.json` (spec, labels, standardisation,
//! windowing, calibration, decision rule, and for the default model its taxonomy and
//! tag fusion) and the weights (`net.bpk` or `forest.json`), or an ensemble of such
//! folders — and the one [`GenreModel`] implementation every kind goes through.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::features::{FeatureStore, Repr, Windowing, Windows};
use super::forest::Forest;
use super::fusion::{FuseInput, Fusion, fuse};
use super::metrics::argmax;
use super::models::{ModelKind, ModelSpec, Net};
use super::trainer::{Norm, TrackData, Vote, predict, track_probs};
use crate::error::{Error, ModelError};
use crate::listen::{Heard, PATCH_SECS, edge_bounds};
use crate::ml::Backbone;
use crate::ml::musicnn::{EMBED_DIM, N_MELS, N_TAGS, PATCH_FRAMES};
use crate::model::calibration::Calibration;
use crate::model::{
    DecisionRule, GenreModel, Listening, ModelOutput, SegmentOutput, Taxonomy, plain_taxonomy,
};

/// How an ensemble combines its members' track probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Mean of the probabilities.
    Sum,
    /// Normalised product of the probabilities.
    Product,
    /// If all members agree, their mean; otherwise the most confident member.
    Agree,
}

/// Combine members' probability rows.
pub fn combine(rule: Rule, members: &[Vec<f32>]) -> Vec<f32> {
    let k = members.first().map_or(0, Vec::len);
    let m = members.len().max(1) as f32;
    match rule {
        Rule::Sum => (0..k)
            .map(|c| members.iter().map(|p| p[c]).sum::<f32>() / m)
            .collect(),
        Rule::Product => {
            let logs: Vec<f32> = (0..k)
                .map(|c| members.iter().map(|p| p[c].max(1e-12).ln()).sum::<f32>())
                .collect();
            let mx = logs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = logs.iter().map(|l| (l - mx).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        }
        Rule::Agree => {
            let first = members.first().map(|p| argmax(p));
            if members.iter().all(|p| Some(argmax(p)) == first) {
                combine(Rule::Sum, members)
            } else {
                members
                    .iter()
                    .max_by(|a, b| {
                        a.iter()
                            .copied()
                            .fold(0.0, f32::max)
                            .total_cmp(&b.iter().copied().fold(0.0, f32::max))
                    })
                    .cloned()
                    .unwrap_or_default()
            }
        }
    }
}

/// `model.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFile {
    /// `genretag.model/1`.
    pub schema: String,
    /// Architecture (absent for ensembles).
    pub spec: Option<ModelSpec>,
    /// Output labels.
    pub labels: Vec<String>,
    /// Standardisation fitted on the training data.
    pub norm: Norm,
    /// How tracks are cut into windows.
    pub windowing: Windowing,
    /// Track-level decision.
    pub vote: Vote,
    /// Ensemble members (folders, relative to this one or absolute).
    #[serde(default)]
    pub members: Vec<PathBuf>,
    /// Ensemble rule.
    #[serde(default)]
    pub rule: Option<Rule>,
    /// Dataset, split and training summary.
    #[serde(default)]
    pub notes: String,
    /// The taxonomy (written names and backbone-tag evidence of the labels), as text in
    /// `models/taxonomy.txt`'s format; absent: each label is written as itself.
    #[serde(default)]
    pub taxonomy: Option<String>,
    /// Fusion of the head with the backbone's tag evidence (the default model).
    #[serde(default)]
    pub fusion: Option<Fusion>,
    /// Calibration of the final probabilities (fitted on held-out predictions).
    #[serde(default)]
    pub calibration: Calibration,
    /// When the model is sure enough to answer.
    #[serde(default)]
    pub decision: DecisionRule,
}

/// The schema written into new `model.json` files (version 1 files still load).
pub const MODEL_SCHEMA: &str = "genretag.model/2";

enum Inner {
    Net(Box<Net>),
    Forest(Forest),
    Ensemble(Vec<SavedModel>),
}

/// A model ready to predict.
pub struct SavedModel {
    /// Its description.
    pub file: ModelFile,
    inner: Inner,
    device: Device,
    /// Stable id: a hash of the description, the weights and the backbone it runs.
    id: String,
    /// Hash of the weights (and members, and backbone), for recomputing `id`.
    weights_digest: u128,
    taxonomy: Taxonomy,
    backbone: Option<Arc<Backbone>>,
    /// The backbone's outputs for the patches it ran last.
    memo: std::sync::Mutex<PatchMemo>,
    /// Patches the backbone has run (not counting those taken from `memo`).
    patches_run: std::sync::atomic::AtomicU64,
}

/// The backbone's (embedding, tags) for the most recent patches, keyed by a 128-bit hash
/// of each patch's log-mel: adaptive listening analyses a track's first-look patches
/// again with the rest when the first look did not settle it, and they are not run twice.
#[derive(Default)]
struct PatchMemo {
    outputs: std::collections::HashMap<u128, (Vec<f32>, Vec<f32>)>,
    order: std::collections::VecDeque<u128>,
}

impl PatchMemo {
    /// Patches remembered (about 1 KiB each).
    const CAPACITY: usize = 256;

    fn key(patch: &[f32]) -> u128 {
        let bytes: Vec<u8> = patch.iter().flat_map(|v| v.to_le_bytes()).collect();
        xxhash_rust::xxh3::xxh3_128(&bytes)
    }

    fn insert(&mut self, key: u128, out: (Vec<f32>, Vec<f32>)) {
        if self.outputs.insert(key, out).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.outputs.remove(&old);
            }
        }
    }
}

/// Probabilities of one track.
#[derive(Debug, Clone)]
pub struct TrackPrediction {
    /// Per window (empty for ensembles).
    pub windows: Vec<Vec<f32>>,
    /// The track.
    pub track: Vec<f32>,
}

fn fmt_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl SavedModel {
    fn assemble(
        file: ModelFile,
        inner: Inner,
        device: &Device,
        weights: &[u8],
    ) -> Result<Self, ModelError> {
        let taxonomy = match &file.taxonomy {
            Some(text) => Taxonomy::parse(text, Path::new("model.json (taxonomy)"))
                .map_err(|e| ModelError::Other(format!("the model's taxonomy is invalid: {e}")))?,
            None => plain_taxonomy(&file.labels),
        };
        if taxonomy.keys() != file.labels {
            return Err(ModelError::Other(format!(
                "the model's taxonomy ({:?}) does not match its labels ({:?})",
                taxonomy.keys(),
                file.labels
            )));
        }
        let needs = match &inner {
            Inner::Ensemble(m) => m.iter().any(|m| m.backbone.is_some()),
            _ => file
                .spec
                .as_ref()
                .is_some_and(|s| s.inputs().iter().any(|r| r.needs_backbone())),
        };
        let backbone = if needs {
            Some(crate::ml::shipped::backbone(device)?)
        } else {
            None
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(weights);
        if let Inner::Ensemble(members) = &inner {
            for m in members {
                h.update(m.id.as_bytes());
            }
        }
        if needs {
            // The backbone's identity: a user may point GENRETAG_MODELS at another conversion.
            let path = crate::ml::shipped::find_model(crate::ml::shipped::BACKBONE_FILE)?;
            let bytes = std::fs::read(&path).map_err(|source| ModelError::Io { path, source })?;
            h.update(&bytes);
            // And its precision: an int16 backbone's answers differ (slightly) from fp32's,
            // so they must not share cached analyses. fp32 keeps the id it always had.
            if let Some(bb) = &backbone
                && bb.precision() != crate::ml::Precision::Fp32
            {
                h.update(bb.precision().name().as_bytes());
            }
        }
        let mut me = Self {
            file,
            inner,
            device: device.clone(),
            id: String::new(),
            weights_digest: h.digest128(),
            taxonomy,
            backbone,
            memo: Default::default(),
            patches_run: Default::default(),
        };
        me.rehash();
        Ok(me)
    }

    /// Patches its backbone has run so far (those it remembered are not run again).
    pub fn backbone_patches_run(&self) -> u64 {
        self.patches_run.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Recompute the id after the description changed.
    fn rehash(&mut self) {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(
            serde_json::to_string(&self.file)
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update(&self.weights_digest.to_le_bytes());
        self.id = format!("{:032x}", h.digest128());
    }

    /// Set the calibration and decision rule (fitted after training, on held-out data).
    pub fn set_calibration(&mut self, calibration: Calibration, decision: DecisionRule) {
        self.file.calibration = calibration;
        self.file.decision = decision;
        self.rehash();
    }

    /// A network model.
    pub fn from_net(file: ModelFile, net: Net, device: &Device) -> Result<Self, ModelError> {
        let bytes = net_bytes(&net)?;
        Self::assemble(file, Inner::Net(Box::new(net)), device, &bytes)
    }

    /// A forest model.
    pub fn from_forest(
        file: ModelFile,
        forest: Forest,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let bytes = serde_json::to_vec(&forest).map_err(|e| ModelError::Other(e.to_string()))?;
        Self::assemble(file, Inner::Forest(forest), device, &bytes)
    }

    /// An ensemble of saved model folders.
    pub fn ensemble(members: &[PathBuf], rule: Rule, device: &Device) -> Result<Self, ModelError> {
        let loaded: Vec<SavedModel> = members
            .iter()
            .map(|m| SavedModel::load(m, device))
            .collect::<Result<_, _>>()?;
        let Some(first) = loaded.first() else {
            return Err(ModelError::Other("an ensemble needs members".into()));
        };
        if let Some(bad) = loaded.iter().find(|m| m.file.labels != first.file.labels) {
            return Err(ModelError::Other(format!(
                "ensemble members disagree on labels: {:?} vs {:?}",
                first.file.labels, bad.file.labels
            )));
        }
        let file = ModelFile {
            schema: MODEL_SCHEMA.into(),
            spec: None,
            labels: first.file.labels.clone(),
            norm: Norm::default(),
            windowing: first.file.windowing,
            vote: Vote::Mean,
            members: members
                .iter()
                .map(|m| std::path::absolute(m).unwrap_or_else(|_| m.clone()))
                .collect(),
            rule: Some(rule),
            notes: String::new(),
            taxonomy: first.file.taxonomy.clone(),
            fusion: None,
            calibration: Calibration::default(),
            // The members' strictest rule.
            decision: loaded
                .iter()
                .map(|m| m.file.decision.clone())
                .max_by(|a, b| a.threshold.total_cmp(&b.threshold))
                .unwrap_or_default(),
        };
        Self::assemble(file, Inner::Ensemble(loaded), device, &[])
    }

    /// A short name: kind and input, or the ensemble rule.
    pub fn name(&self) -> String {
        match (&self.file.spec, self.file.rule) {
            (Some(s), _) if self.file.fusion.is_some() => {
                format!("{} + backbone tags", spec_name(s))
            }
            (Some(s), _) => spec_name(s),
            (None, Some(r)) => format!("ensemble-{r:?}").to_lowercase(),
            _ => "model".into(),
        }
    }

    /// The model folder `path` names: a run folder's `model/`, or the folder itself,
    /// whichever holds a `model.json`.
    pub fn find_dir(path: &Path) -> Option<PathBuf> {
        [path.join("model"), path.to_path_buf()]
            .into_iter()
            .find(|d| d.join("model.json").is_file())
    }

    /// Save into folder `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = dir.join("model.json");
        let text = serde_json::to_string_pretty(&self.file).map_err(|e| fmt_err(&json, e))?;
        std::fs::write(&json, text + "\n").map_err(|source| ModelError::Io {
            path: json.clone(),
            source,
        })?;
        match &self.inner {
            Inner::Net(n) => {
                let p = dir.join("net.bpk");
                n.as_ref().clone().save_file(&p).map_err(|e| fmt_err(&p, e))
            }
            Inner::Forest(f) => {
                let p = dir.join("forest.json");
                let text = serde_json::to_string(f).map_err(|e| fmt_err(&p, e))?;
                std::fs::write(&p, text).map_err(|source| ModelError::Io { path: p, source })
            }
            Inner::Ensemble(_) => Ok(()),
        }
    }

    /// Load a model folder (or its `model.json`).
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let json = dir.join("model.json");
        let text = std::fs::read_to_string(&json).map_err(|source| ModelError::Io {
            path: json.clone(),
            source,
        })?;
        let file: ModelFile = serde_json::from_str(&text).map_err(|e| fmt_err(&json, e))?;
        if file.labels.is_empty() {
            return Err(fmt_err(&json, "no labels"));
        }
        if let Some(f) = &file.fusion
            && (f.bias.len() != file.labels.len()
                || f.head_index(&file.labels).iter().any(Option::is_none))
        {
            return Err(fmt_err(&json, "the fusion does not match the labels"));
        }
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| ModelError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        match (&file.spec, file.rule) {
            (None, Some(rule)) => {
                let members: Vec<PathBuf> = file.members.iter().map(|m| dir.join(m)).collect();
                Self::ensemble(&members, rule, device).map(|mut e| {
                    e.file.notes = file.notes.clone();
                    e
                })
            }
            (Some(spec), _) if spec.kind == ModelKind::Forest => {
                let p = dir.join("forest.json");
                let bytes = read(&p)?;
                let forest: Forest = serde_json::from_slice(&bytes).map_err(|e| fmt_err(&p, e))?;
                Self::assemble(file, Inner::Forest(forest), device, &bytes)
            }
            (Some(spec), _) => {
                let p = dir.join("net.bpk");
                let bytes = read(&p)?;
                let k = file
                    .fusion
                    .as_ref()
                    .map_or(file.labels.len(), |f| f.head_labels.len());
                let net = Net::init(spec, k, device)
                    .try_load_file(&p)
                    .map_err(|e| fmt_err(&p, e))?;
                Self::assemble(file, Inner::Net(Box::new(net.valid())), device, &bytes)
            }
            (None, None) => Err(fmt_err(&json, "neither a spec nor an ensemble rule")),
        }
    }

    /// Raw (uncalibrated, unfused) window probabilities of tracks whose inputs are
    /// already computed (in the spec's input order), and the track probabilities.
    pub fn predict_tracks(&self, tracks: &[&TrackData]) -> Vec<TrackPrediction> {
        let vote = self.file.vote;
        self.window_probs(tracks)
            .into_iter()
            .map(|w| TrackPrediction {
                track: track_probs(&w, vote),
                windows: w,
            })
            .collect()
    }

    fn window_probs(&self, tracks: &[&TrackData]) -> Vec<Vec<Vec<f32>>> {
        match (&self.inner, &self.file.spec) {
            (Inner::Net(net), Some(spec)) => {
                predict(net, spec, &self.file.norm, tracks, &self.device)
            }
            (Inner::Forest(f), _) => tracks
                .iter()
                .map(|t| {
                    let w = &t.inputs[0];
                    (0..w.rows())
                        .map(|r| {
                            let mut v = w.row(r).to_vec();
                            self.file.norm.apply(0, &mut v);
                            f.predict_proba(&v)
                        })
                        .collect()
                })
                .collect(),
            _ => vec![Vec::new(); tracks.len()],
        }
    }

    /// Raw head probabilities of single embedding vectors (models whose only input is
    /// the backbone embedding, e.g. the default model's head); empty otherwise.
    pub fn predict_embeddings(&self, rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
        if self.file.spec.as_ref().map(ModelSpec::inputs) != Some(vec![Repr::Embed]) {
            return Vec::new();
        }
        let tracks: Vec<TrackData> = rows
            .iter()
            .map(|r| TrackData {
                path: PathBuf::new(),
                label: 0,
                inputs: vec![Windows {
                    data: r.clone(),
                    row_len: r.len(),
                }],
            })
            .collect();
        let refs: Vec<&TrackData> = tracks.iter().collect();
        self.window_probs(&refs)
            .into_iter()
            .map(|mut w| w.pop().unwrap_or_default())
            .collect()
    }

    /// Predict one audio file, computing (or reading cached) features with `store`
    /// (raw probabilities, as training and evaluation on datasets use them).
    pub fn predict_file(
        &self,
        store: &FeatureStore,
        path: &Path,
    ) -> Result<TrackPrediction, Error> {
        match (&self.inner, &self.file.spec) {
            (Inner::Ensemble(members), _) => {
                let rule = self.file.rule.unwrap_or(Rule::Sum);
                let preds: Vec<Vec<f32>> = members
                    .iter()
                    .map(|m| m.predict_file(store, path).map(|p| p.track))
                    .collect::<Result<_, _>>()?;
                Ok(TrackPrediction {
                    windows: Vec::new(),
                    track: combine(rule, &preds),
                })
            }
            (_, Some(spec)) => {
                let inputs = store.windows(path, &spec.inputs())?;
                let t = TrackData {
                    path: path.to_path_buf(),
                    label: 0,
                    inputs,
                };
                Ok(self.predict_tracks(&[&t]).remove(0))
            }
            _ => Err(ModelError::Other("model has no spec".into()).into()),
        }
    }

    /// For a fused model: whether label `index` is one its head was trained on (others
    /// come from the backbone's tag evidence alone). True for every label otherwise.
    pub fn fusion_head_knows(&self, index: usize) -> bool {
        match (&self.file.fusion, self.file.labels.get(index)) {
            (Some(f), Some(l)) => f.head_labels.contains(l),
            _ => true,
        }
    }

    /// Whether any part of the model needs the musicnn backbone.
    pub fn needs_backbone(&self) -> bool {
        self.backbone.is_some()
    }

    /// True if the model reads only backbone outputs (embedding, tags), so a few
    /// patches are all it needs to hear.
    fn reads_patches(&self) -> bool {
        match &self.inner {
            Inner::Ensemble(m) => m.iter().all(SavedModel::reads_patches),
            _ => self
                .file
                .spec
                .as_ref()
                .is_some_and(|s| s.inputs().iter().all(|r| r.needs_backbone())),
        }
    }

    /// Window inputs, their time spans (s) and the backbone outputs (per window
    /// embedding and tags, when the backbone ran) of a heard track.
    fn inputs_of(
        &self,
        heard: &Heard,
        pre: Option<&BackboneOut>,
    ) -> Result<HeardInputs, ModelError> {
        let spec = self
            .file
            .spec
            .as_ref()
            .ok_or_else(|| ModelError::Other("model has no spec".into()))?;
        let reprs = spec.inputs();
        if self.reads_patches() {
            let (emb, tags) = match pre {
                Some(p) => p.clone(),
                None => self.run_backbone(&[heard])?.remove(0),
            };
            let inputs = reprs
                .iter()
                .map(|r| {
                    if *r == Repr::Tags {
                        tags.clone()
                    } else {
                        emb.clone()
                    }
                })
                .collect();
            let spans = heard
                .indices
                .iter()
                .map(|&i| (i as f32 * PATCH_SECS, (i + 1) as f32 * PATCH_SECS))
                .collect();
            return Ok(HeardInputs {
                inputs,
                spans,
                decides: heard.decides(),
                backbone: Some((emb, tags)),
            });
        }
        let samples = heard.samples_16k.clone().ok_or_else(|| {
            ModelError::Other("this model needs the whole track and was given patches".into())
        })?;
        let mut store = FeatureStore::new(None, self.file.windowing);
        if let Some(bb) = &self.backbone {
            store = store.with_shared_backbone(bb.clone());
        }
        let mut wanted = reprs.clone();
        if self.backbone.is_some() && !wanted.contains(&Repr::Tags) {
            wanted.push(Repr::Tags);
        }
        let level = window_levels(&samples, self.file.windowing);
        let mut all = store
            .windows_of(samples, &wanted)
            .map_err(|e| ModelError::Other(e.to_string()))?;
        let backbone = self.backbone.is_some().then(|| {
            let tags = all.pop().unwrap_or_default();
            let emb = reprs
                .iter()
                .position(|r| *r == Repr::Embed)
                .map(|i| all[i].clone())
                .unwrap_or_default();
            (emb, tags)
        });
        all.truncate(reprs.len());
        let w = self.file.windowing;
        let fps = super::features::FRAMES_PER_S;
        let total_frames = heard.total_patches.max(1) * PATCH_FRAMES;
        let starts = w.starts(total_frames.max(all.first().map_or(0, Windows::rows) * w.hop()));
        let rows = all.first().map_or(0, Windows::rows);
        let spans: Vec<(f32, f32)> = (0..rows)
            .map(|i| {
                let s = starts.get(i).copied().unwrap_or(i * w.hop()) as f32 / fps;
                (s, s + w.frames() as f32 / fps)
            })
            .collect();
        let (lo, hi) = edge_bounds(heard.total_patches);
        let (lo_s, hi_s) = (lo as f32 * PATCH_SECS, hi as f32 * PATCH_SECS);
        let decides: Vec<bool> = spans
            .iter()
            .zip(level.iter().chain(std::iter::repeat(&0.0)))
            .map(|(&(s, e), &db)| db > crate::listen::SILENT_PATCH_DB && s >= lo_s && e <= hi_s)
            .collect();
        let decides = if decides.iter().any(|&d| d) {
            decides
        } else {
            vec![true; rows]
        };
        Ok(HeardInputs {
            inputs: all,
            spans,
            decides,
            backbone,
        })
    }

    /// Raw (calibrated later) probabilities of one heard track: per window over the
    /// model's labels, the track's, its mean tags and novelty.
    /// The backbone's per-patch (embedding, tags) of several heard tracks, in one run
    /// over all their patches (large batches keep the backbone's matrix products fast).
    fn run_backbone(&self, heard: &[&Heard]) -> Result<Vec<BackboneOut>, ModelError> {
        let bb = self
            .backbone
            .as_ref()
            .ok_or_else(|| ModelError::Other("the backbone is not loaded".into()))?;
        // Patches the backbone ran lately are taken from the memo; the others run in one
        // batch.
        let per = PATCH_FRAMES * N_MELS;
        let patches = || heard.iter().flat_map(|h| h.patches.chunks_exact(per));
        let keys: Vec<u128> = patches().map(PatchMemo::key).collect();
        let mut have = std::collections::HashMap::new();
        let (mut missing, mut missing_keys) = (Vec::new(), Vec::new());
        {
            let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            for (k, patch) in keys.iter().zip(patches()) {
                if have.contains_key(k) {
                    continue;
                }
                match memo.outputs.get(k) {
                    Some(o) => {
                        have.insert(*k, o.clone());
                    }
                    None => {
                        missing.extend_from_slice(patch);
                        missing_keys.push(*k);
                        // Marks it as on its way (a patch twice in one call runs once).
                        have.insert(*k, (Vec::new(), Vec::new()));
                    }
                }
            }
        }
        let computed = bb.embed_patches(&missing, 32);
        self.patches_run
            .fetch_add(computed.len() as u64, std::sync::atomic::Ordering::Relaxed);
        {
            let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            for (k, o) in missing_keys.iter().zip(&computed) {
                memo.insert(*k, o.clone());
            }
        }
        have.extend(missing_keys.into_iter().zip(computed));
        let all: Vec<(Vec<f32>, Vec<f32>)> = keys
            .iter()
            .map(|k| {
                have.get(k)
                    .filter(|o| !o.0.is_empty())
                    .cloned()
                    .ok_or_else(|| ModelError::Other("the backbone gave no output".into()))
            })
            .collect::<Result<_, _>>()?;
        let mut outs = all.into_iter();
        Ok(heard
            .iter()
            .map(|h| {
                let mine: Vec<(Vec<f32>, Vec<f32>)> = outs.by_ref().take(h.len()).collect();
                (
                    Windows {
                        data: mine.iter().flat_map(|(e, _)| e.iter().copied()).collect(),
                        row_len: EMBED_DIM,
                    },
                    Windows {
                        data: mine.iter().flat_map(|(_, t)| t.iter().copied()).collect(),
                        row_len: N_TAGS,
                    },
                )
            })
            .collect())
    }

    fn raw_output(
        &self,
        heard: &Heard,
        pre: Option<&BackboneOut>,
    ) -> Result<RawOutput, ModelError> {
        if let Inner::Ensemble(members) = &self.inner {
            let outs: Vec<RawOutput> = members
                .iter()
                .map(|m| {
                    m.raw_output(heard, pre)
                        .map(|o| o.calibrated(&m.file.calibration))
                })
                .collect::<Result<_, _>>()?;
            let rule = self.file.rule.unwrap_or(Rule::Sum);
            let track = combine(
                rule,
                &outs.iter().map(|o| o.track.clone()).collect::<Vec<_>>(),
            );
            let first = outs.into_iter().next();
            return Ok(RawOutput {
                track,
                windows: first
                    .as_ref()
                    .map(|o| o.windows.clone())
                    .unwrap_or_default(),
                spans: first.as_ref().map(|o| o.spans.clone()).unwrap_or_default(),
                tags: first.as_ref().and_then(|o| o.tags.clone()),
                novelty: first.and_then(|o| o.novelty),
            });
        }
        let hi = self.inputs_of(heard, pre)?;
        let t = TrackData {
            path: heard.path.clone(),
            label: 0,
            inputs: hi.inputs,
        };
        let windows = self.window_probs(&[&t]).pop().unwrap_or_default();
        let deciding: Vec<Vec<f32>> = windows
            .iter()
            .zip(&hi.decides)
            .filter(|(_, d)| **d)
            .map(|(w, _)| w.clone())
            .collect();
        let mean_of = |w: &Windows| -> Option<Vec<f32>> {
            let rows: Vec<&[f32]> = (0..w.rows())
                .filter(|&r| hi.decides.get(r).copied().unwrap_or(true))
                .map(|r| w.row(r))
                .collect();
            (!rows.is_empty()).then(|| {
                let mut m = vec![0.0f32; w.row_len];
                for r in &rows {
                    m.iter_mut().zip(r.iter()).for_each(|(a, b)| *a += b);
                }
                m.iter_mut().for_each(|a| *a /= rows.len() as f32);
                m
            })
        };
        let tags = hi.backbone.as_ref().and_then(|(_, t)| mean_of(t));
        let track = track_probs(&deciding, self.file.vote);
        let Some(f) = &self.file.fusion else {
            return Ok(RawOutput {
                track,
                windows,
                spans: hi.spans,
                tags,
                novelty: None,
            });
        };
        // The default model: fuse the head with the tag evidence, per window and for
        // the track; the gate uses the track's novelty everywhere.
        let (emb, tag_w) = hi
            .backbone
            .as_ref()
            .ok_or_else(|| ModelError::Other("a fused model needs the backbone".into()))?;
        let novelty = mean_of(emb).map_or(0.0, |e| f.novelty.score(&e));
        let index = f.head_index(&self.file.labels);
        let params = f.params();
        let input = |head: &[f32], tags: &[f32]| -> FuseInput {
            let mut h = vec![None; self.file.labels.len()];
            for (j, &p) in head.iter().enumerate() {
                if let Some(Some(l)) = index.get(j) {
                    h[*l] = Some(p);
                }
            }
            FuseInput {
                head: h,
                evidence: self.taxonomy.evidence(tags),
                novelty,
            }
        };
        let fused_windows: Vec<Vec<f32>> = windows
            .iter()
            .enumerate()
            .map(|(r, w)| fuse(&params, &input(w, tag_w.row(r))))
            .collect();
        let track = fuse(&params, &input(&track, tags.as_deref().unwrap_or(&[])));
        Ok(RawOutput {
            track,
            windows: fused_windows,
            spans: hi.spans,
            tags,
            novelty: Some(novelty),
        })
    }
}

/// What a model computed from a heard track before calibration.
struct RawOutput {
    track: Vec<f32>,
    windows: Vec<Vec<f32>>,
    spans: Vec<(f32, f32)>,
    tags: Option<Vec<f32>>,
    novelty: Option<f32>,
}

impl RawOutput {
    fn calibrated(self, cal: &Calibration) -> Self {
        Self {
            track: cal.apply(&self.track),
            windows: self.windows.iter().map(|w| cal.apply(w)).collect(),
            ..self
        }
    }
}

/// Per-patch backbone outputs of one track: embeddings and tag probabilities.
type BackboneOut = (Windows, Windows);

/// A heard track turned into model inputs.
struct HeardInputs {
    inputs: Vec<Windows>,
    spans: Vec<(f32, f32)>,
    decides: Vec<bool>,
    backbone: Option<BackboneOut>,
}

/// Level (dBFS RMS) of each window of a 16 kHz signal cut by `w`.
fn window_levels(samples: &[f32], w: Windowing) -> Vec<f32> {
    let per_frame = crate::dsp::features::MUSICNN_HOP;
    let frames = samples.len() / per_frame + 1;
    w.starts(frames)
        .into_iter()
        .map(|s| {
            let a = (s * per_frame).min(samples.len());
            let b = ((s + w.frames()) * per_frame).min(samples.len());
            let seg = &samples[a..b];
            let ms = seg.iter().map(|x| x * x).sum::<f32>() / seg.len().max(1) as f32;
            10.0 * ms.max(1e-12).log10()
        })
        .collect()
}

fn net_bytes(net: &Net) -> Result<Vec<u8>, ModelError> {
    let dir = tempfile::tempdir().map_err(|source| ModelError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let p = dir.path().join("net.bpk");
    net.clone().save_file(&p).map_err(|e| fmt_err(&p, e))?;
    std::fs::read(&p).map_err(|source| ModelError::Io { path: p, source })
}

impl GenreModel for SavedModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn name(&self) -> String {
        SavedModel::name(self)
    }

    fn labels(&self) -> &[String] {
        &self.file.labels
    }

    fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    fn listening(&self) -> Listening {
        if self.reads_patches() {
            Listening::Patches
        } else {
            Listening::Whole
        }
    }

    fn analyse(&self, tracks: &[&Heard]) -> Result<Vec<ModelOutput>, ModelError> {
        let pre = if self.reads_patches() && self.backbone.is_some() {
            self.run_backbone(tracks)?.into_iter().map(Some).collect()
        } else {
            vec![None; tracks.len()]
        };
        tracks
            .iter()
            .zip(&pre)
            .map(|(h, pre)| {
                let raw = self
                    .raw_output(h, pre.as_ref())?
                    .calibrated(&self.file.calibration);
                Ok(ModelOutput {
                    probs: raw.track,
                    segments: raw
                        .spans
                        .iter()
                        .zip(raw.windows)
                        .map(|(&(start_s, end_s), probs)| SegmentOutput {
                            start_s,
                            end_s: end_s.min(h.duration_s as f32).max(start_s),
                            probs,
                        })
                        .collect(),
                    tags: raw.tags,
                    novelty: raw.novelty,
                })
            })
            .collect()
    }

    fn decision_rule(&self) -> &DecisionRule {
        &self.file.decision
    }

    fn calibration(&self) -> Calibration {
        self.file.calibration
    }
}

/// `kind` or `kind(input)` for the 2-D models whose input can vary.
pub fn spec_name(s: &ModelSpec) -> String {
    match s.kind {
        ModelKind::CnnNaive
        | ModelKind::Cnn5
        | ModelKind::Crnn
        | ModelKind::Rescnn
        | ModelKind::Mixnet
        | ModelKind::Hybrid => {
            let cell = if s.kind == ModelKind::Crnn {
                format!(",{:?}", s.cell).to_lowercase()
            } else {
                String::new()
            };
            format!("{}({}{cell})", s.kind.name(), s.image.name())
        }
        ModelKind::Rnn => format!("rnn({:?})", s.cell).to_lowercase(),
        ModelKind::Transfer if s.hidden > 0 => format!("transfer(mlp{})", s.hidden),
        ModelKind::Transfer => "transfer(logreg)".into(),
        k => k.name().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_rules() {
        let a = vec![0.7, 0.2, 0.1];
        let b = vec![0.4, 0.5, 0.1];
        let s = combine(Rule::Sum, &[a.clone(), b.clone()]);
        assert!((s[0] - 0.55).abs() < 1e-6);
        let p = combine(Rule::Product, &[a.clone(), b.clone()]);
        let z = 0.28 + 0.1 + 0.01;
        assert!((p[0] - 0.28 / z).abs() < 1e-5 && (p[1] - 0.1 / z).abs() < 1e-5);
        // Disagreement: the most confident member (a, max 0.7) wins.
        assert_eq!(combine(Rule::Agree, &[a.clone(), b]), a);
        // Agreement: the mean.
        let c = vec![0.6, 0.3, 0.1];
        let g = combine(Rule::Agree, &[a, c]);
        assert!((g[0] - 0.65).abs() < 1e-6);
    }
}
