//! One model interface. Every genre model — the shipped default and every kind
//! `genretag train` makes — is a [`GenreModel`]: it has labels and a stable id, says
//! what it needs to hear of a track, turns what it heard into calibrated
//! probabilities, and carries the rule that decides when it is sure enough to answer.
//! `classify`, `tag`, `eval` and the app use models only through this trait (via
//! [`crate::analysis`]), so none of them asks which kind of model it has.
//!
//! - [`taxonomy`]: labels, written names and backbone-tag evidence (`models/taxonomy.txt`).
//! - [`calibration`]: temperature scaling, calibration error, thresholds.
//! - [`decision`]: from probabilities to a [`Verdict`] ("unsure" is an answer).

pub mod calibration;
pub mod decision;
pub mod taxonomy;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::listen::Heard;
pub use decision::DecisionRule;
pub use taxonomy::Taxonomy;

/// What a model needs to hear of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// musicnn log-mel patches (any number; the listener chooses which).
    Patches,
    /// The whole 16 kHz signal (the model cuts its own windows).
    Whole,
}

/// One segment of a track as a model heard it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentOutput {
    /// Start, seconds.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
    /// Calibrated probabilities over the model's labels.
    pub probs: Vec<f32>,
}

/// What a model says about one track, before the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    /// Calibrated track probabilities over the model's labels.
    pub probs: Vec<f32>,
    /// Per-segment probabilities, in time order.
    pub segments: Vec<SegmentOutput>,
    /// The backbone's 50 tag probabilities (track mean), when the model ran it.
    pub tags: Option<Vec<f32>>,
    /// How unlike the training data the track is (1.0 = the 99th percentile of the
    /// training tracks), when the model measures it.
    pub novelty: Option<f32>,
}

/// What the model concludes about a track.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Verdict {
    /// No decision recorded (an analysis stored by an older genretag).
    #[default]
    Unknown,
    /// Sure enough to write this genre (label in the model's vocabulary).
    Genre {
        /// The label.
        label: String,
        /// Its calibrated probability.
        probability: f32,
    },
    /// Not sure: no genre should be written. `reason` is for people, e.g. "top genre only
    /// 41 %", "too little sound to judge", "unlike the music the model learned from".
    Unsure {
        /// Why, in words a user understands.
        reason: String,
    },
}

impl Verdict {
    /// True for [`Verdict::Unsure`].
    pub fn is_unsure(&self) -> bool {
        matches!(self, Verdict::Unsure { .. })
    }

    /// The genre label, when sure.
    pub fn label(&self) -> Option<&str> {
        match self {
            Verdict::Genre { label, .. } => Some(label),
            _ => None,
        }
    }
}

/// A genre model.
pub trait GenreModel: Send + Sync {
    /// A stable identifier derived from the model's bytes (weights, configuration,
    /// taxonomy): equal ids mean equal answers, so analyses are cached under it.
    fn id(&self) -> &str;

    /// A short human name (kind and input, e.g. `default (musicnn + tags)`).
    fn name(&self) -> String;

    /// Output labels, in probability order.
    fn labels(&self) -> &[String];

    /// The names written into tags for the labels.
    fn taxonomy(&self) -> &Taxonomy;

    /// What it needs to hear of a track.
    fn listening(&self) -> Listening;

    /// Calibrated probabilities for a batch of tracks (batching lets the backbone run
    /// on many patches at once). One output per input, in order.
    fn analyse(&self, tracks: &[&Heard]) -> Result<Vec<ModelOutput>, ModelError>;

    /// When this model is sure enough to answer.
    fn decision_rule(&self) -> &DecisionRule;

    /// The calibration its probabilities already went through (to show the raw ones).
    fn calibration(&self) -> calibration::Calibration {
        calibration::Calibration::default()
    }
}

/// The taxonomy of a model trained on its own labels: each label is written under its
/// shipped name when it is one of the shipped genres (`hiphop` -> `Hip Hop`), as itself
/// otherwise (a user's own genres), and no backbone tag is evidence for any of them.
pub fn plain_taxonomy(labels: &[String]) -> Taxonomy {
    let shipped = Taxonomy::shipped();
    Taxonomy {
        genres: labels
            .iter()
            .map(|l| taxonomy::GenreDef {
                key: l.clone(),
                name: shipped.name_of(l).unwrap_or(l).to_string(),
                evidence: Vec::new(),
            })
            .collect(),
    }
}

// Models are shared between the analysis workers and the app.
const _: () = {
    const fn shareable<T: Send + Sync + ?Sized>() {}
    shareable::<dyn GenreModel>();
};
