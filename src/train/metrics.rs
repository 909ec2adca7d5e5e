//! Classification metrics: accuracy, top-k, confusion matrices, per-class precision /
//! recall / F1, and McNemar's paired test.

use serde::{Deserialize, Serialize};

/// Index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// How a confusion matrix is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalise {
    /// Raw counts.
    #[default]
    Counts,
    /// Rows sum to 1 (recall per true class).
    True,
    /// Columns sum to 1 (precision per predicted class).
    Pred,
    /// Everything sums to 1.
    All,
}

/// One class's row of the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Label.
    pub label: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// True instances.
    pub support: usize,
}

/// Metrics of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Items scored.
    pub n: usize,
    /// Accuracy.
    pub accuracy: f64,
    /// Mean recall over classes present (balanced accuracy).
    pub balanced_accuracy: f64,
    /// Macro-averaged precision.
    pub macro_precision: f64,
    /// Macro-averaged recall.
    pub macro_recall: f64,
    /// Macro-averaged F1.
    pub macro_f1: f64,
    /// Top-2 accuracy.
    pub top2: f64,
    /// Top-3 accuracy.
    pub top3: f64,
    /// `confusion[true][pred]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Per-class table.
    pub per_class: Vec<ClassMetrics>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Metrics {
    /// Score probability rows against true labels.
    pub fn compute(labels: &[String], probs: &[Vec<f32>], truth: &[usize]) -> Self {
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        let (mut top2, mut top3) = (0, 0);
        for (p, &t) in probs.iter().zip(truth) {
            // A truth or probability row that does not fit the labels is not counted
            // (a malformed input must not panic the app that shows it).
            let (Some(row), Some(&pt)) = (confusion.get_mut(t), p.get(t)) else {
                continue;
            };
            if let Some(c) = row.get_mut(argmax(p)) {
                *c += 1;
            }
            let rank = p.iter().filter(|&&v| v > pt).count();
            top2 += usize::from(rank < 2);
            top3 += usize::from(rank < 3);
        }
        let n = truth.len();
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c][c];
                let support: usize = confusion[c].iter().sum();
                let predicted: usize = confusion.iter().map(|r| r[c]).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    label: labels[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let present: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
        let mean = |f: &dyn Fn(&ClassMetrics) -> f64| {
            if present.is_empty() {
                0.0
            } else {
                present.iter().map(|c| f(c)).sum::<f64>() / present.len() as f64
            }
        };
        Self {
            n,
            accuracy: ratio(correct, n),
            balanced_accuracy: mean(&|c| c.recall),
            macro_precision: mean(&|c| c.precision),
            macro_recall: mean(&|c| c.recall),
            macro_f1: mean(&|c| c.f1),
            top2: ratio(top2, n),
            top3: ratio(top3, n),
            confusion,
            per_class,
        }
    }

    /// The confusion matrix normalised as asked.
    pub fn normalised(&self, how: Normalise) -> Vec<Vec<f64>> {
        normalise(&self.confusion, how)
    }
}

/// Normalise a confusion matrix. Missing cells of a ragged (malformed) matrix count
/// as 0; the result is square.
pub fn normalise(c: &[Vec<usize>], how: Normalise) -> Vec<Vec<f64>> {
    let total: usize = c.iter().flatten().sum();
    let k = c.len();
    let cell = |i: usize, j: usize| c.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
    (0..k)
        .map(|i| {
            (0..k)
                .map(|j| {
                    let v = cell(i, j);
                    match how {
                        Normalise::Counts => v as f64,
                        Normalise::True => ratio(v, c[i].iter().sum()),
                        Normalise::Pred => ratio(v, (0..k).map(|r| cell(r, j)).sum()),
                        Normalise::All => ratio(v, total),
                    }
                })
                .collect()
        })
        .collect()
}

/// McNemar's test of two classifiers on the same items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Items only the first got right.
    pub only_a: usize,
    /// Items only the second got right.
    pub only_b: usize,
    /// Two-sided exact binomial p-value (mid-p not used).
    pub p_value: f64,
}

/// McNemar's exact test from per-item correctness.
pub fn mcnemar(a_correct: &[bool], b_correct: &[bool]) -> McNemar {
    let only_a = a_correct
        .iter()
        .zip(b_correct)
        .filter(|&(&a, &b)| a && !b)
        .count();
    let only_b = a_correct
        .iter()
        .zip(b_correct)
        .filter(|&(&a, &b)| !a && b)
        .count();
    let n = only_a + only_b;
    let k = only_a.min(only_b);
    // P(X <= k) for X ~ Binomial(n, 1/2), doubled, capped at 1.
    let mut cdf = 0.0f64;
    let mut log_c = 0.0f64; // log C(n, i)
    for i in 0..=k {
        if i > 0 {
            log_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        cdf += (log_c - n as f64 * std::f64::consts::LN_2).exp();
    }
    McNemar {
        only_a,
        only_b,
        p_value: if n == 0 { 1.0 } else { (2.0 * cdf).min(1.0) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_a_known_confusion() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // truth a,a,a,b ; predicted a,a,b,b
        let probs = vec![
            vec![0.9, 0.1],
            vec![0.8, 0.2],
            vec![0.4, 0.6],
            vec![0.3, 0.7],
        ];
        let m = Metrics::compute(&labels, &probs, &[0, 0, 0, 1]);
        assert_eq!(m.confusion, vec![vec![2, 1], vec![0, 1]]);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        assert!((m.per_class[0].precision - 1.0).abs() < 1e-12);
        assert!((m.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.per_class[1].precision - 0.5).abs() < 1e-12);
        assert!((m.per_class[0].f1 - 0.8).abs() < 1e-12);
        assert!((m.balanced_accuracy - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert!((m.top2 - 1.0).abs() < 1e-12);
        let t = m.normalised(Normalise::True);
        assert!((t[0][1] - 1.0 / 3.0).abs() < 1e-12);
        let p = m.normalised(Normalise::Pred);
        assert!((p[1][1] - 0.5).abs() < 1e-12);
        let all = m.normalised(Normalise::All);
        assert!((all.iter().flatten().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn issue10_malformed_inputs_do_not_panic() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // A truth index past the labels and a short probability row are skipped.
        let m = Metrics::compute(
            &labels,
            &[vec![0.9, 0.1], vec![0.5], vec![0.2, 0.8]],
            &[0, 1, 7],
        );
        assert_eq!(m.confusion, vec![vec![1, 0], vec![0, 0]]);
        // A ragged matrix normalises to a square one.
        let n = normalise(&[vec![1, 2], vec![3]], Normalise::Pred);
        assert_eq!(n.len(), 2);
        assert!(n.iter().all(|r| r.len() == 2));
        assert!((n[1][0] - 0.75).abs() < 1e-12);
    }

    #[test]
    fn mcnemar_exact_values() {
        // 10 discordant pairs, all favouring A: p = 2 / 2^10.
        let a = vec![true; 10];
        let b = vec![false; 10];
        let t = mcnemar(&a, &b);
        assert_eq!((t.only_a, t.only_b), (10, 0));
        assert!((t.p_value - 2.0 / 1024.0).abs() < 1e-12);
        // Balanced disagreement: p = 1.
        let t = mcnemar(&[true, false], &[false, true]);
        assert!((t.p_value - 1.0).abs() < 1e-12);
        // 1 vs 5 discordant: p = 2 * (1 + 6) / 64 = 0.21875.
        let a = [true, false, false, false, false, false];
        let b = [false, true, true, true, true, true];
        assert!((mcnemar(&a, &b).p_value - 0.21875).abs() < 1e-12);
    }
}
