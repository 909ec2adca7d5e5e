//! Probabilities you can read as probabilities: temperature scaling, calibration
//! error, reliability bins, and precision and coverage at a threshold.
//!
//! Every model's probabilities pass through a [`Calibration`] (a temperature fitted on
//! held-out predictions). A decision threshold is then chosen on held-out predictions
//! so that the genres written are right a given share of the time
//! ([`choose_threshold`]); what that costs is the coverage.

use serde::{Deserialize, Serialize};

/// The precision the decision threshold is chosen for: written genres right at least
/// this share of the time on held-out data.
pub const TARGET_PRECISION: f32 = 0.95;

/// Temperature scaling: `p_i ∝ p_i^(1/T)`. `T > 1` softens over-confident models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The temperature.
    pub temperature: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl Calibration {
    /// The raw probabilities a calibrated row came from (the inverse of [`Self::apply`]).
    pub fn invert(&self, calibrated: &[f32]) -> Vec<f32> {
        Calibration {
            temperature: 1.0 / self.temperature.max(1e-3),
        }
        .apply(calibrated)
    }

    /// Calibrated copy of a probability row.
    pub fn apply(&self, probs: &[f32]) -> Vec<f32> {
        let t = self.temperature.max(1e-3);
        let logs: Vec<f32> = probs.iter().map(|p| p.max(1e-12).ln() / t).collect();
        softmax(&logs)
    }
}

/// Softmax of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
    let s: f32 = e.iter().sum();
    if s > 0.0 && s.is_finite() {
        e.iter().map(|v| v / s).collect()
    } else {
        vec![1.0 / logits.len().max(1) as f32; logits.len()]
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// Weighted mean negative log-likelihood of the true labels.
pub fn nll(probs: &[Vec<f32>], truth: &[usize], weights: &[f32]) -> f64 {
    let (mut s, mut w) = (0.0f64, 0.0f64);
    for ((p, &t), &wt) in probs.iter().zip(truth).zip(weights) {
        s -= wt as f64 * (p.get(t).copied().unwrap_or(0.0).max(1e-12) as f64).ln();
        w += wt as f64;
    }
    if w > 0.0 { s / w } else { 0.0 }
}

/// The temperature minimising the weighted NLL of held-out predictions
/// (golden-section search over log T in [1/20, 20]).
pub fn fit_temperature(probs: &[Vec<f32>], truth: &[usize], weights: &[f32]) -> Calibration {
    if probs.is_empty() {
        return Calibration::default();
    }
    let cost = |log_t: f64| {
        let c = Calibration {
            temperature: log_t.exp() as f32,
        };
        let cal: Vec<Vec<f32>> = probs.iter().map(|p| c.apply(p)).collect();
        nll(&cal, truth, weights)
    };
    let (mut a, mut b) = ((1.0f64 / 20.0).ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (cost(c), cost(d));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = cost(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = cost(d);
        }
    }
    Calibration {
        temperature: ((a + b) / 2.0).exp() as f32,
    }
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower edge of the confidence range.
    pub lo: f32,
    /// Upper edge.
    pub hi: f32,
    /// Tracks whose top probability falls in the range.
    pub count: usize,
    /// Their mean top probability.
    pub confidence: f32,
    /// The share of them that is right.
    pub accuracy: f32,
}

/// Reliability bins of the top probability (equal width, `n` bins over [0, 1]).
pub fn reliability(probs: &[Vec<f32>], truth: &[usize], n: usize) -> Vec<Bin> {
    let n = n.max(1);
    let mut bins: Vec<(usize, f64, f64)> = vec![(0, 0.0, 0.0); n];
    for (p, &t) in probs.iter().zip(truth) {
        let top = argmax(p);
        let conf = p.get(top).copied().unwrap_or(0.0).clamp(0.0, 1.0);
        let b = ((conf * n as f32) as usize).min(n - 1);
        bins[b].0 += 1;
        bins[b].1 += conf as f64;
        bins[b].2 += (top == t) as u8 as f64;
    }
    bins.iter()
        .enumerate()
        .map(|(i, &(c, conf, acc))| Bin {
            lo: i as f32 / n as f32,
            hi: (i + 1) as f32 / n as f32,
            count: c,
            confidence: if c > 0 { (conf / c as f64) as f32 } else { 0.0 },
            accuracy: if c > 0 { (acc / c as f64) as f32 } else { 0.0 },
        })
        .collect()
}

/// Expected calibration error: the count-weighted mean |confidence - accuracy| over
/// reliability bins (15 bins, the usual choice).
pub fn ece(probs: &[Vec<f32>], truth: &[usize]) -> f32 {
    let bins = reliability(probs, truth, 15);
    let total: usize = bins.iter().map(|b| b.count).sum();
    if total == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|b| b.count as f32 * (b.confidence - b.accuracy).abs())
        .sum::<f32>()
        / total as f32
}

/// Precision (share right) and coverage (share answered) when only predictions whose
/// top probability is at least `threshold` are answered. Precision is `None` when
/// nothing is answered.
pub fn precision_coverage(
    probs: &[Vec<f32>],
    truth: &[usize],
    threshold: f32,
) -> (Option<f32>, f32) {
    let mut answered = 0usize;
    let mut right = 0usize;
    for (p, &t) in probs.iter().zip(truth) {
        let top = argmax(p);
        if p.get(top).copied().unwrap_or(0.0) >= threshold {
            answered += 1;
            right += (top == t) as usize;
        }
    }
    let coverage = answered as f32 / probs.len().max(1) as f32;
    let precision = (answered > 0).then(|| right as f32 / answered as f32);
    (precision, coverage)
}

/// The lowest threshold (on a 0.01 grid from `floor`) whose precision on these held-out
/// predictions is at least `target`, keeping every higher threshold at the target too
/// (so a lucky dip does not decide). `None` if even 0.99 misses it.
pub fn choose_threshold(
    probs: &[Vec<f32>],
    truth: &[usize],
    target: f32,
    floor: f32,
) -> Option<f32> {
    let grid: Vec<f32> = (0..=99)
        .map(|i| i as f32 / 100.0)
        .filter(|&t| t >= floor)
        .collect();
    let ok: Vec<bool> = grid
        .iter()
        .map(|&t| {
            precision_coverage(probs, truth, t)
                .0
                .is_none_or(|p| p >= target)
        })
        .collect();
    // The smallest t such that every t' >= t is ok.
    let mut best = None;
    for (i, &t) in grid.iter().enumerate().rev() {
        if ok[i] {
            best = Some(t);
        } else {
            break;
        }
    }
    // A threshold that answers nothing is no threshold.
    best.filter(|&t| precision_coverage(probs, truth, t).1 > 0.0)
}

/// How well a set of held-out predictions is calibrated, before and after, and what
/// the decision threshold does with it. Written into reports and model cards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSummary {
    /// Where the numbers come from (e.g. "validation part", "grouped 5-fold CV").
    pub source: String,
    /// The fitted temperature.
    pub temperature: f32,
    /// ECE of the raw probabilities.
    pub ece_before: f32,
    /// ECE after calibration.
    pub ece_after: f32,
    /// The decision threshold on the calibrated top probability.
    pub threshold: f32,
    /// The precision target the threshold was chosen for.
    pub target_precision: f32,
    /// Precision of the answered tracks at the threshold.
    pub precision: Option<f32>,
    /// Share of tracks answered (not "unsure") at the threshold.
    pub coverage: f32,
    /// Accuracy of the top genre over all tracks (answered or not).
    pub accuracy: f32,
    /// Reliability bins after calibration (10 bins).
    pub bins: Vec<Bin>,
    /// Tracks the numbers are over.
    pub tracks: usize,
}

impl CalibrationSummary {
    /// Summarise held-out raw probabilities under `cal` and `threshold`.
    pub fn new(
        source: &str,
        raw: &[Vec<f32>],
        truth: &[usize],
        cal: Calibration,
        threshold: f32,
        target_precision: f32,
    ) -> Self {
        let after: Vec<Vec<f32>> = raw.iter().map(|p| cal.apply(p)).collect();
        Self::from_parts(source, raw, &after, truth, cal, threshold, target_precision)
    }

    /// Summarise held-out probabilities before calibration (`before`) and after all of it
    /// (`after`: for the default model, the fitted fusion and the temperature).
    pub fn from_parts(
        source: &str,
        before: &[Vec<f32>],
        after: &[Vec<f32>],
        truth: &[usize],
        cal: Calibration,
        threshold: f32,
        target_precision: f32,
    ) -> Self {
        let (precision, coverage) = precision_coverage(after, truth, threshold);
        let right = after
            .iter()
            .zip(truth)
            .filter(|(p, t)| argmax(p) == **t)
            .count();
        Self {
            source: source.to_string(),
            temperature: cal.temperature,
            ece_before: ece(before, truth),
            ece_after: ece(after, truth),
            threshold,
            target_precision,
            precision,
            coverage,
            accuracy: right as f32 / truth.len().max(1) as f32,
            bins: reliability(after, truth, 10),
            tracks: truth.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over-confident predictions: always 0.95 on the top class, right 70 % of the time.
    fn overconfident() -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut p = Vec::new();
        let mut t = Vec::new();
        for i in 0..200 {
            let top = i % 3;
            let mut row = vec![0.025; 3];
            row[top] = 0.95;
            p.push(row);
            t.push(if i % 10 < 7 { top } else { (top + 1) % 3 });
        }
        (p, t)
    }

    #[test]
    fn temperature_scaling_reduces_calibration_error() {
        let (p, t) = overconfident();
        let w = vec![1.0; p.len()];
        let before = ece(&p, &t);
        let cal = fit_temperature(&p, &t, &w);
        assert!(cal.temperature > 1.0, "{cal:?}");
        let after: Vec<Vec<f32>> = p.iter().map(|r| cal.apply(r)).collect();
        let e = ece(&after, &t);
        assert!(before > 0.2 && e < 0.05, "ECE {before} -> {e}");
        // Calibration never changes the top genre.
        assert!(p.iter().zip(&after).all(|(a, b)| argmax(a) == argmax(b)));
    }

    #[test]
    fn threshold_meets_the_precision_target() {
        // Confidence says how often it is right: answering only >= 0.9 is 90+ % right.
        let mut p = Vec::new();
        let mut t = Vec::new();
        for i in 0..1000 {
            let conf = 0.4 + 0.6 * (i as f32 / 1000.0);
            p.push(vec![conf, 1.0 - conf]);
            // Right with probability ~conf (deterministic pattern).
            t.push(if ((i * 7919) % 1000) as f32 / 1000.0 < conf {
                0
            } else {
                1
            });
        }
        let th = choose_threshold(&p, &t, 0.95, 0.3).expect("reachable");
        let (prec, cov) = precision_coverage(&p, &t, th);
        assert!(prec.unwrap_or(0.0) >= 0.95, "{prec:?} at {th}");
        assert!(cov > 0.0 && cov < 1.0);
        assert!(th > 0.8, "{th}");
        assert_eq!(choose_threshold(&p, &t, 1.01, 0.0), None);
    }

    #[test]
    fn reliability_bins_count_everything() {
        let (p, t) = overconfident();
        let b = reliability(&p, &t, 10);
        assert_eq!(b.iter().map(|b| b.count).sum::<usize>(), 200);
        assert!((b[9].accuracy - 0.7).abs() < 1e-6);
        let s = CalibrationSummary::new("test", &p, &t, Calibration::default(), 0.5, 0.95);
        assert_eq!(s.coverage, 1.0);
        assert!((s.precision.unwrap_or(0.0) - 0.7).abs() < 1e-6);
    }
}
