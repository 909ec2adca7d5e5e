//! From probabilities to a decision: a genre worth writing, or "unsure" and why.
//!
//! Three reasons to be unsure, checked in this order:
//! 1. too little sound to judge (digital silence, a sub-second file);
//! 2. the track is unlike anything the model was trained on (its embedding is far
//!    from the training data) and nothing else speaks for one genre;
//! 3. the calibrated top probability is below the model's threshold, which was chosen
//!    on held-out data so that the genres written are right at least a target share
//!    of the time.

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::calibration::argmax;

/// A model's rule for when to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRule {
    /// Answer only when the calibrated top probability is at least this.
    pub threshold: f32,
    /// How the threshold was chosen (shown in reports and `--explain`).
    pub chosen_by: String,
    /// Unsure below this many seconds of audible sound.
    pub min_active_s: f32,
    /// Novelty above which the track counts as unlike the training data (1.0 = the
    /// 99th percentile of the training tracks' novelty). `None`: not checked.
    pub max_novelty: Option<f32>,
    /// With high novelty, still answer when the top probability is at least this.
    pub novel_threshold: f32,
}

impl Default for DecisionRule {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            chosen_by: "default (no held-out data to choose it from)".into(),
            min_active_s: 1.0,
            max_novelty: None,
            novel_threshold: 0.9,
        }
    }
}

impl DecisionRule {
    /// The same rule with another probability threshold (a user's `--min-prob`). It
    /// replaces the model's extra caution for unfamiliar tracks too (the user decides
    /// now); tracks with too little sound stay unsure.
    pub fn with_threshold(&self, threshold: f32) -> Self {
        Self {
            threshold,
            chosen_by: format!("set by the user ({threshold:.2})"),
            max_novelty: None,
            ..self.clone()
        }
    }

    /// Decide for one track: `probs` calibrated over `labels`, `active_s` seconds of
    /// sound, `novelty` as the model measured it.
    pub fn decide(
        &self,
        labels: &[String],
        probs: &[f32],
        active_s: f64,
        novelty: Option<f32>,
    ) -> Verdict {
        if active_s < self.min_active_s as f64 {
            return Verdict::Unsure {
                reason: if active_s <= 0.0 {
                    "no audible sound (silence)".into()
                } else {
                    format!("too little sound to judge ({active_s:.1} s)")
                },
            };
        }
        if probs.is_empty() || labels.len() != probs.len() {
            return Verdict::Unsure {
                reason: "the model gave no probabilities".into(),
            };
        }
        let top = argmax(probs);
        let p = probs[top];
        if let (Some(max), Some(n)) = (self.max_novelty, novelty)
            && n > max
            && p < self.novel_threshold.max(self.threshold)
        {
            return Verdict::Unsure {
                reason: format!(
                    "unlike the music the model learned from (novelty {n:.1}); best guess {} {:.0} %",
                    labels[top],
                    p * 100.0
                ),
            };
        }
        if p < self.threshold {
            return Verdict::Unsure {
                reason: format!(
                    "top genre {} only {:.0} % (needs {:.0} %)",
                    labels[top],
                    p * 100.0,
                    self.threshold * 100.0
                ),
            };
        }
        Verdict::Genre {
            label: labels[top].clone(),
            probability: p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["rock".into(), "jazz".into()]
    }

    #[test]
    fn silence_and_short_files_are_unsure() {
        let r = DecisionRule::default();
        let v = r.decide(&labels(), &[0.97, 0.03], 0.0, None);
        assert!(
            matches!(v, Verdict::Unsure { ref reason } if reason.contains("silence")),
            "{v:?}"
        );
        let v = r.decide(&labels(), &[0.97, 0.03], 0.1, None);
        assert!(
            matches!(v, Verdict::Unsure { ref reason } if reason.contains("too little")),
            "{v:?}"
        );
    }

    #[test]
    fn low_confidence_is_unsure_and_high_is_a_genre() {
        let r = DecisionRule {
            threshold: 0.7,
            ..DecisionRule::default()
        };
        assert!(matches!(
            r.decide(&labels(), &[0.6, 0.4], 30.0, None),
            Verdict::Unsure { .. }
        ));
        assert_eq!(
            r.decide(&labels(), &[0.2, 0.8], 30.0, None),
            Verdict::Genre {
                label: "jazz".into(),
                probability: 0.8
            }
        );
        // A user may lower the threshold, but silence stays unsure.
        assert!(matches!(
            r.with_threshold(0.5)
                .decide(&labels(), &[0.6, 0.4], 30.0, None),
            Verdict::Genre { .. }
        ));
        assert!(matches!(
            r.with_threshold(0.0)
                .decide(&labels(), &[0.6, 0.4], 0.0, None),
            Verdict::Unsure { .. }
        ));
    }

    #[test]
    fn novel_tracks_need_more_confidence() {
        let r = DecisionRule {
            threshold: 0.6,
            max_novelty: Some(1.0),
            novel_threshold: 0.9,
            ..DecisionRule::default()
        };
        assert!(matches!(
            r.decide(&labels(), &[0.8, 0.2], 30.0, Some(0.5)),
            Verdict::Genre { .. }
        ));
        assert!(matches!(
            r.decide(&labels(), &[0.8, 0.2], 30.0, Some(3.0)),
            Verdict::Unsure { .. }
        ));
        assert!(matches!(
            r.decide(&labels(), &[0.95, 0.05], 30.0, Some(3.0)),
            Verdict::Genre { .. }
        ));
        // A user's own threshold replaces the caution.
        assert!(matches!(
            r.with_threshold(0.6)
                .decide(&labels(), &[0.8, 0.2], 30.0, Some(3.0)),
            Verdict::Genre { .. }
        ));
    }
}
