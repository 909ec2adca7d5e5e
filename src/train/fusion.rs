//! Fusing a head trained on labelled audio with what the backbone's tag layer learned
//! from ~200 000 real tracks: a gated product of experts.
//!
//! For a track with head probabilities `p_h` (over the labels the head was trained
//! on), backbone-tag evidence `e_l` per label (see [`crate::model::taxonomy`]) and
//! novelty `d` (how far its embedding is from the head's training data), the score of
//! label `l` is
//!
//! ```text
//! z_l = a(d) * log q_l + b * log e_l + c_l,    p = softmax(z)
//! a(d) = a0 / (1 + exp(kappa * (d - d0)))
//! q_l = p_h(l) * K / n   for the K head labels,   1 / n   for the others
//! ```
//!
//! `q` spreads the head's belief over the whole taxonomy without letting it speak for
//! genres it never heard, `b` weighs the tag layer, and the gate `a(d)` trusts the head
//! less the less the track resembles what it was trained on. All of `a0, kappa, d0, b`
//! and the per-label offsets `c` (mean zero over the head labels) are fitted by
//! weighted maximum likelihood on held-out predictions — see
//! [`super::fused`] for the cross-validation that produces them.

use serde::{Deserialize, Serialize};

use crate::model::calibration::softmax;

/// A fitted fusion, saved in the model's `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    /// Labels the head outputs, in its output order (a subset of the model's labels).
    pub head_labels: Vec<String>,
    /// The head's weight for a typical track (`a0`).
    pub head_weight: f32,
    /// Novelty at which the head's weight is halved (`d0`).
    pub half_novelty: f32,
    /// Steepness of the gate (`kappa`).
    pub gate_slope: f32,
    /// Weight of the log tag evidence (`b`).
    pub tag_weight: f32,
    /// Per-label offsets over the model's labels (`c`).
    pub bias: Vec<f32>,
    /// How novelty is measured.
    pub novelty: Novelty,
}

/// The fusion's free parameters, in fitting order: a0, d0, kappa, b, then one offset
/// per head label (before centring).
#[derive(Debug, Clone, PartialEq)]
pub struct FusionParams {
    /// `a0`.
    pub head_weight: f32,
    /// `d0`.
    pub half_novelty: f32,
    /// `kappa`.
    pub gate_slope: f32,
    /// `b`.
    pub tag_weight: f32,
    /// `c` over the model's labels.
    pub bias: Vec<f32>,
}

impl FusionParams {
    /// The unfitted product of experts: equal weights, no gate, no offsets.
    pub fn plain_product(n: usize) -> Self {
        Self {
            head_weight: 1.0,
            half_novelty: 1e6,
            gate_slope: 0.0,
            tag_weight: 1.0,
            bias: vec![0.0; n],
        }
    }

    /// The head's weight at novelty `d`.
    pub fn gate(&self, d: f32) -> f32 {
        self.head_weight
            / (1.0
                + (self.gate_slope * (d - self.half_novelty))
                    .clamp(-60.0, 60.0)
                    .exp())
    }
}

/// One held-out track as the fusion sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FuseInput {
    /// Head probability per model label, `None` for labels the head does not output.
    pub head: Vec<Option<f32>>,
    /// Tag evidence per model label (already floored, > 0).
    pub evidence: Vec<f32>,
    /// Novelty of the track.
    pub novelty: f32,
}

impl FuseInput {
    /// `log q` per label.
    fn log_q(&self) -> Vec<f32> {
        let n = self.head.len() as f32;
        let known = self.head.iter().filter(|h| h.is_some()).count().max(1) as f32;
        self.head
            .iter()
            .map(|h| match h {
                Some(p) => (p.max(1e-4) * known / n).ln(),
                None => (1.0 / n).ln(),
            })
            .collect()
    }
}

/// Fused probabilities over the model's labels.
pub fn fuse(params: &FusionParams, x: &FuseInput) -> Vec<f32> {
    let a = params.gate(x.novelty);
    let lq = x.log_q();
    let z: Vec<f32> = lq
        .iter()
        .zip(&x.evidence)
        .zip(&params.bias)
        .map(|((q, e), c)| a * q + params.tag_weight * e.max(1e-6).ln() + c)
        .collect();
    softmax(&z)
}

impl Fusion {
    /// The fitted parameters.
    pub fn params(&self) -> FusionParams {
        FusionParams {
            head_weight: self.head_weight,
            half_novelty: self.half_novelty,
            gate_slope: self.gate_slope,
            tag_weight: self.tag_weight,
            bias: self.bias.clone(),
        }
    }

    /// Where each head output goes among the model's `labels` (`None` if it is not one).
    pub fn head_index(&self, labels: &[String]) -> Vec<Option<usize>> {
        self.head_labels
            .iter()
            .map(|h| labels.iter().position(|l| l == h))
            .collect()
    }
}

/// Fit the fusion's parameters by weighted maximum likelihood (full-batch Adam on the
/// exact gradient; a few thousand steps of a 14-parameter model over a few thousand
/// rows). `head_labels` are the model-label indices the head outputs; only their
/// offsets are free (centred to mean zero), the others stay 0.
pub fn fit_params(
    rows: &[FuseInput],
    truth: &[usize],
    weights: &[f32],
    head_labels: &[usize],
) -> FusionParams {
    let n = rows.first().map_or(0, |r| r.head.len());
    let lqs: Vec<Vec<f32>> = rows.iter().map(FuseInput::log_q).collect();
    let les: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.evidence.iter().map(|e| e.max(1e-6).ln()).collect())
        .collect();
    let w_sum: f32 = weights.iter().sum::<f32>().max(1e-9);
    // theta = [a0, d0, kappa, b, u_0..u_n]
    let mut theta: Vec<f64> = vec![1.0, 1.0, 1.0, 1.0];
    theta.extend(std::iter::repeat_n(0.0, n));
    let is_head: Vec<bool> = (0..n).map(|l| head_labels.contains(&l)).collect();
    let centred = |u: &[f64]| -> Vec<f64> {
        let m = u
            .iter()
            .zip(&is_head)
            .filter(|(_, h)| **h)
            .map(|(v, _)| *v)
            .sum::<f64>()
            / head_labels.len().max(1) as f64;
        u.iter()
            .zip(&is_head)
            .map(|(v, h)| if *h { v - m } else { 0.0 })
            .collect()
    };
    const L2: f64 = 1e-2;
    let (lr, b1, b2, eps) = (0.02f64, 0.9f64, 0.999f64, 1e-8f64);
    let mut m = vec![0.0f64; theta.len()];
    let mut v = vec![0.0f64; theta.len()];
    for step in 1..=3000 {
        let c = centred(&theta[4..]);
        let mut g = vec![0.0f64; theta.len()];
        let mut g_c = vec![0.0f64; n];
        for (i, x) in rows.iter().enumerate() {
            let d = x.novelty as f64;
            let s = 1.0 / (1.0 + (theta[2] * (d - theta[1])).clamp(-60.0, 60.0).exp());
            let a = theta[0] * s;
            let z: Vec<f32> = (0..n)
                .map(|l| (a * lqs[i][l] as f64 + theta[3] * les[i][l] as f64 + c[l]) as f32)
                .collect();
            let p = softmax(&z);
            let w = (weights[i] / w_sum) as f64;
            let (mut g_a, mut g_b) = (0.0f64, 0.0f64);
            for l in 0..n {
                let r = w * (p[l] as f64 - if l == truth[i] { 1.0 } else { 0.0 });
                g_a += r * lqs[i][l] as f64;
                g_b += r * les[i][l] as f64;
                g_c[l] += r;
            }
            g[0] += g_a * s;
            g[1] += g_a * theta[0] * theta[2] * s * (1.0 - s);
            g[2] += g_a * theta[0] * -(d - theta[1]) * s * (1.0 - s);
            g[3] += g_b;
        }
        // d/du of the centred offsets, plus the penalty.
        let gc = centred(&g_c);
        for l in 0..n {
            g[4 + l] = gc[l] + 2.0 * L2 * c[l];
        }
        for k in 0..theta.len() {
            m[k] = b1 * m[k] + (1.0 - b1) * g[k];
            v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
            let mh = m[k] / (1.0 - b1.powi(step));
            let vh = v[k] / (1.0 - b2.powi(step));
            theta[k] -= lr * mh / (vh.sqrt() + eps);
        }
        theta[0] = theta[0].clamp(0.0, 10.0);
        theta[1] = theta[1].clamp(0.0, 50.0);
        theta[2] = theta[2].clamp(0.0, 20.0);
        theta[3] = theta[3].clamp(0.0, 10.0);
    }
    let c = centred(&theta[4..]);
    FusionParams {
        head_weight: theta[0] as f32,
        half_novelty: theta[1] as f32,
        gate_slope: theta[2] as f32,
        tag_weight: theta[3] as f32,
        bias: c.into_iter().map(|v| v as f32).collect(),
    }
}

/// How unlike a head's training data an embedding is: the squared distance, in the
/// whitened space of the training embeddings' leading principal components, to the
/// nearest class centre, divided by the 99th percentile of that distance over the
/// training tracks (so 1.0 is "as unusual as the training data gets").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Novelty {
    /// Per-dimension mean of the training embeddings.
    pub mean: Vec<f32>,
    /// Per-dimension standard deviation.
    pub std: Vec<f32>,
    /// Principal directions (rows), in the standardised space.
    pub basis: Vec<Vec<f32>>,
    /// Standard deviation along each direction.
    pub scale: Vec<f32>,
    /// Class centres in the whitened space.
    pub centres: Vec<Vec<f32>>,
    /// Mean per-dimension variance of what the principal directions leave unexplained.
    pub residual_var: f32,
    /// 99th percentile of the training tracks' raw distance.
    pub q99: f32,
}

impl Novelty {
    /// Fit on training embeddings (one per track) with class labels in `0..classes`.
    pub fn fit(embeddings: &[Vec<f32>], labels: &[usize], classes: usize, dims: usize) -> Self {
        let d = embeddings.first().map_or(0, Vec::len);
        let n = embeddings.len().max(1) as f64;
        let mut mean = vec![0.0f64; d];
        for e in embeddings {
            mean.iter_mut()
                .zip(e)
                .for_each(|(m, v)| *m += *v as f64 / n);
        }
        let mut std = vec![0.0f64; d];
        for e in embeddings {
            std.iter_mut()
                .zip(e.iter().zip(&mean))
                .for_each(|(s, (v, m))| *s += (*v as f64 - m).powi(2) / n);
        }
        let std: Vec<f32> = std.iter().map(|s| (s.sqrt() as f32).max(1e-6)).collect();
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let z: Vec<Vec<f64>> = embeddings
            .iter()
            .map(|e| {
                e.iter()
                    .zip(&mean)
                    .zip(&std)
                    .map(|((v, m), s)| ((v - m) / s) as f64)
                    .collect()
            })
            .collect();
        // Covariance of the standardised embeddings, then its leading eigenvectors by
        // power iteration with deflation.
        let mut cov = vec![vec![0.0f64; d]; d];
        for r in &z {
            for (row, &ri) in cov.iter_mut().zip(r) {
                row.iter_mut().zip(r).for_each(|(c, &rj)| *c += ri * rj / n);
            }
        }
        let k = dims.min(d).min(embeddings.len().saturating_sub(1)).max(1);
        let mut basis: Vec<Vec<f64>> = Vec::with_capacity(k);
        let mut scale = Vec::with_capacity(k);
        for c in 0..k {
            let mut v: Vec<f64> = (0..d)
                .map(|i| 1.0 + ((i * 31 + c * 17) % 7) as f64)
                .collect();
            let mut lambda = 0.0;
            for _ in 0..300 {
                let mut w: Vec<f64> = (0..d)
                    .map(|i| cov[i].iter().zip(&v).map(|(a, b)| a * b).sum())
                    .collect();
                for b in &basis {
                    let dot: f64 = w.iter().zip(b).map(|(a, b)| a * b).sum();
                    w.iter_mut().zip(b).for_each(|(a, b)| *a -= dot * b);
                }
                let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
                if norm < 1e-12 {
                    break;
                }
                lambda = norm;
                v = w.into_iter().map(|a| a / norm).collect();
            }
            scale.push((lambda.sqrt() as f32).max(1e-3));
            basis.push(v);
        }
        let mut me = Self {
            mean,
            std,
            basis: basis
                .iter()
                .map(|b| b.iter().map(|&x| x as f32).collect())
                .collect(),
            scale,
            centres: Vec::new(),
            residual_var: 1.0,
            q99: 1.0,
        };
        let rest = (d - me.basis.len()).max(1) as f32;
        me.residual_var = (embeddings
            .iter()
            .map(|e| me.project(e).1 / rest)
            .sum::<f32>()
            / embeddings.len().max(1) as f32)
            .max(1e-6);
        let proj: Vec<Vec<f32>> = embeddings.iter().map(|e| me.project(e).0).collect();
        me.centres = (0..classes)
            .map(|c| {
                let members: Vec<&Vec<f32>> = proj
                    .iter()
                    .zip(labels)
                    .filter(|(_, l)| **l == c)
                    .map(|(p, _)| p)
                    .collect();
                let mut m = vec![0.0f32; me.basis.len()];
                for p in &members {
                    m.iter_mut().zip(p.iter()).for_each(|(a, b)| *a += b);
                }
                m.iter_mut().for_each(|a| *a /= members.len().max(1) as f32);
                m
            })
            .collect();
        let mut raw: Vec<f32> = embeddings.iter().map(|e| me.raw(e)).collect();
        raw.sort_by(f32::total_cmp);
        me.q99 = raw
            .get(((raw.len() as f32 * 0.99) as usize).min(raw.len().saturating_sub(1)))
            .copied()
            .unwrap_or(1.0)
            .max(1e-6);
        me
    }

    /// Whitened coordinates along the principal directions, and the squared norm of
    /// the standardised embedding's part outside them.
    fn project(&self, e: &[f32]) -> (Vec<f32>, f32) {
        let mut z: Vec<f32> = e
            .iter()
            .zip(&self.mean)
            .zip(&self.std)
            .map(|((v, m), s)| (v - m) / s)
            .collect();
        let mut coords = Vec::with_capacity(self.basis.len());
        for (b, s) in self.basis.iter().zip(&self.scale) {
            let c = b.iter().zip(&z).map(|(a, x)| a * x).sum::<f32>();
            z.iter_mut().zip(b).for_each(|(x, a)| *x -= c * a);
            coords.push(c / s);
        }
        (coords, z.iter().map(|x| x * x).sum())
    }

    fn raw(&self, e: &[f32]) -> f32 {
        let (p, residual) = self.project(e);
        let rest = (self.mean.len() - p.len()).max(1) as f32;
        let inside = self
            .centres
            .iter()
            .map(|c| c.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum::<f32>())
            .fold(f32::INFINITY, f32::min);
        (inside + residual / self.residual_var) / (p.len() as f32 + rest)
    }

    /// Novelty of an embedding (1.0 = the training tracks' 99th percentile).
    pub fn score(&self, embedding: &[f32]) -> f32 {
        if embedding.len() != self.mean.len() || self.centres.is_empty() {
            return 0.0;
        }
        self.raw(embedding) / self.q99
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows where the head is right on "familiar" tracks and useless on "novel" ones,
    /// while the tag evidence is mildly informative everywhere.
    fn synthetic() -> (Vec<FuseInput>, Vec<usize>) {
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for i in 0..400 {
            let t = i % 3;
            let novel = i % 2 == 1;
            let head: Vec<Option<f32>> = (0..3)
                .map(|l| {
                    let right = if novel { (t + 1) % 3 } else { t };
                    Some(if l == right { 0.9 } else { 0.05 })
                })
                .collect();
            let evidence: Vec<f32> = (0..3).map(|l| if l == t { 0.5 } else { 0.2 }).collect();
            rows.push(FuseInput {
                head,
                evidence,
                novelty: if novel { 5.0 } else { 0.3 },
            });
            truth.push(t);
        }
        (rows, truth)
    }

    #[test]
    fn the_gate_learns_to_distrust_the_head_on_novel_tracks() {
        let (rows, truth) = synthetic();
        let w = vec![1.0; rows.len()];
        let p = fit_params(&rows, &truth, &w, &[0, 1, 2]);
        assert!(p.gate(0.3) > 1.0, "{p:?}");
        assert!(p.gate(5.0) < 0.2 * p.gate(0.3), "{p:?}");
        let right = rows
            .iter()
            .zip(&truth)
            .filter(|(r, t)| crate::model::calibration::argmax(&fuse(&p, r)) == **t)
            .count();
        assert_eq!(right, rows.len());
        // Offsets of head labels are centred.
        assert!(p.bias.iter().sum::<f32>().abs() < 1e-4);
    }

    #[test]
    fn labels_the_head_never_heard_get_a_flat_share() {
        let x = FuseInput {
            head: vec![Some(0.99), Some(0.01), None],
            evidence: vec![0.02, 0.02, 0.9],
            novelty: 0.0,
        };
        let p = fuse(&FusionParams::plain_product(3), &x);
        // Strong tag evidence for a genre outside the head wins against a confident head.
        assert_eq!(crate::model::calibration::argmax(&p), 2, "{p:?}");
    }

    #[test]
    fn novelty_is_low_inside_and_high_outside_the_training_data() {
        let mut emb = Vec::new();
        let mut lab = Vec::new();
        for i in 0..200 {
            let c = i % 2;
            let mut e: Vec<f32> = (0..8)
                .map(|j| (((i * 7 + j * 13) % 17) as f32 / 17.0 - 0.5) * 0.2)
                .collect();
            e[c] += 2.0;
            emb.push(e);
            lab.push(c);
        }
        let nov = Novelty::fit(&emb, &lab, 2, 4);
        assert!(nov.score(&emb[0]) <= 1.0);
        let mut far = vec![0.0; 8];
        far[5] = 30.0;
        far[6] = -30.0;
        assert!(nov.score(&far) > 5.0, "{}", nov.score(&far));
    }
}
