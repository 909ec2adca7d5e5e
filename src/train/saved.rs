//! Trained models on disk — a folder with `model.json` (spec, labels, standardisation,
//! windowing) and the weights (`net.bpk` or `forest.json`), or an ensemble of such
//! folders — and prediction from audio files with them.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::features::{FeatureStore, Windowing};
use super::forest::Forest;
use super::metrics::argmax;
use super::models::{ModelKind, ModelSpec, Net};
use super::trainer::{Norm, TrackData, Vote, predict, track_probs};
use crate::error::{Error, ModelError};

/// How an ensemble combines its members' track probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
}

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
    /// A network model.
    pub fn from_net(file: ModelFile, net: Net, device: &Device) -> Self {
        Self {
            file,
            inner: Inner::Net(Box::new(net)),
            device: device.clone(),
        }
    }

    /// A forest model.
    pub fn from_forest(file: ModelFile, forest: Forest, device: &Device) -> Self {
        Self {
            file,
            inner: Inner::Forest(forest),
            device: device.clone(),
        }
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
            schema: "genretag.model/1".into(),
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
        };
        Ok(Self {
            file,
            inner: Inner::Ensemble(loaded),
            device: device.clone(),
        })
    }

    /// A short name: kind and input, or the ensemble rule.
    pub fn name(&self) -> String {
        match (&self.file.spec, self.file.rule) {
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
        let inner = match (&file.spec, file.rule) {
            (None, Some(rule)) => {
                let members: Vec<PathBuf> = file.members.iter().map(|m| dir.join(m)).collect();
                return Self::ensemble(&members, rule, device).map(|mut e| {
                    e.file.notes = file.notes.clone();
                    e
                });
            }
            (Some(spec), _) if spec.kind == ModelKind::Forest => {
                let p = dir.join("forest.json");
                let text = std::fs::read_to_string(&p).map_err(|source| ModelError::Io {
                    path: p.clone(),
                    source,
                })?;
                Inner::Forest(serde_json::from_str(&text).map_err(|e| fmt_err(&p, e))?)
            }
            (Some(spec), _) => {
                let p = dir.join("net.bpk");
                let net = Net::init(spec, file.labels.len(), device)
                    .try_load_file(&p)
                    .map_err(|e| fmt_err(&p, e))?;
                Inner::Net(Box::new(net.valid()))
            }
            (None, None) => return Err(fmt_err(&json, "neither a spec nor an ensemble rule")),
        };
        Ok(Self {
            file,
            inner,
            device: device.clone(),
        })
    }

    /// Predict tracks whose inputs are already computed (in the spec's input order).
    pub fn predict_tracks(&self, tracks: &[&TrackData]) -> Vec<TrackPrediction> {
        let vote = self.file.vote;
        let windows = match (&self.inner, &self.file.spec) {
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
        };
        windows
            .into_iter()
            .map(|w| TrackPrediction {
                track: track_probs(&w, vote),
                windows: w,
            })
            .collect()
    }

    /// Predict one audio file, computing (or reading cached) features with `store`.
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

    /// Whether any part of the model needs the musicnn backbone.
    pub fn needs_backbone(&self) -> bool {
        match &self.inner {
            Inner::Ensemble(m) => m.iter().any(SavedModel::needs_backbone),
            _ => self
                .file
                .spec
                .as_ref()
                .is_some_and(|s| s.inputs().contains(&super::features::Repr::Embed)),
        }
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
