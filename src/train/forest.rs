//! A random forest (bootstrap samples, Gini splits over `sqrt(d)` random features,
//! probability-averaging trees), the reports' classical baseline.

use serde::{Deserialize, Serialize};

use crate::ml::cv::SplitMix;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Node {
    Leaf(Vec<f32>),
    Split {
        feature: usize,
        threshold: f32,
        left: Box<Node>,
        right: Box<Node>,
    },
}

/// A trained forest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forest {
    trees: Vec<Node>,
    classes: usize,
}

/// Tree growth limits.
const MAX_DEPTH: usize = 16;
const MIN_LEAF: usize = 1;

fn leaf(idx: &[usize], y: &[usize], w: &[f32], k: usize) -> Node {
    let mut p = vec![0.0f32; k];
    for &i in idx {
        p[y[i]] += w[i];
    }
    let s: f32 = p.iter().sum::<f32>().max(1e-12);
    p.iter_mut().for_each(|v| *v /= s);
    Node::Leaf(p)
}

fn gini(counts: &[f32], total: f32) -> f32 {
    if total <= 0.0 {
        return 0.0;
    }
    1.0 - counts.iter().map(|c| (c / total).powi(2)).sum::<f32>()
}

struct Grow<'a> {
    x: &'a [Vec<f32>],
    y: &'a [usize],
    w: &'a [f32],
    k: usize,
    mtry: usize,
}

impl Grow<'_> {
    fn node(&self, idx: &mut [usize], depth: usize, rng: &mut SplitMix) -> Node {
        let first = self.y[idx[0]];
        if depth >= MAX_DEPTH
            || idx.len() <= 2 * MIN_LEAF
            || idx.iter().all(|&i| self.y[i] == first)
        {
            return leaf(idx, self.y, self.w, self.k);
        }
        let d = self.x[0].len();
        let mut feats: Vec<usize> = (0..d).collect();
        rng.shuffle(&mut feats);
        let mut total = vec![0.0f32; self.k];
        idx.iter().for_each(|&i| total[self.y[i]] += self.w[i]);
        let w_all: f32 = total.iter().sum();
        let parent = gini(&total, w_all);
        let mut best: Option<(f32, usize, f32)> = None;
        for &f in feats.iter().take(self.mtry) {
            idx.sort_by(|&a, &b| self.x[a][f].total_cmp(&self.x[b][f]));
            let mut left = vec![0.0f32; self.k];
            let mut w_left = 0.0;
            for j in 0..idx.len() - 1 {
                let i = idx[j];
                left[self.y[i]] += self.w[i];
                w_left += self.w[i];
                let (a, b) = (self.x[i][f], self.x[idx[j + 1]][f]);
                if a == b || j + 1 < MIN_LEAF || idx.len() - j - 1 < MIN_LEAF {
                    continue;
                }
                let right: Vec<f32> = total.iter().zip(&left).map(|(t, l)| t - l).collect();
                let w_right = w_all - w_left;
                let impurity =
                    (w_left * gini(&left, w_left) + w_right * gini(&right, w_right)) / w_all;
                if impurity < parent - 1e-7 && best.is_none_or(|(b, _, _)| impurity < b) {
                    best = Some((impurity, f, 0.5 * (a + b)));
                }
            }
        }
        let Some((_, feature, threshold)) = best else {
            return leaf(idx, self.y, self.w, self.k);
        };
        let mut l: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| self.x[i][feature] <= threshold)
            .collect();
        let mut r: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| self.x[i][feature] > threshold)
            .collect();
        Node::Split {
            feature,
            threshold,
            left: Box::new(self.node(&mut l, depth + 1, rng)),
            right: Box::new(self.node(&mut r, depth + 1, rng)),
        }
    }
}

impl Forest {
    /// Grow `trees` trees on rows `x` with labels `y` and sample weights `w`.
    pub fn fit(x: &[Vec<f32>], y: &[usize], w: &[f32], k: usize, trees: usize, seed: u64) -> Self {
        use rayon::prelude::*;
        let d = x.first().map_or(1, Vec::len);
        let g = Grow {
            x,
            y,
            w,
            k,
            mtry: ((d as f64).sqrt().round() as usize).max(1),
        };
        let trees = (0..trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = SplitMix::new(seed ^ (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mut idx: Vec<usize> = (0..x.len())
                    .map(|_| (rng.next_u64() % x.len() as u64) as usize)
                    .collect();
                g.node(&mut idx, 0, &mut rng)
            })
            .collect();
        Self { trees, classes: k }
    }

    /// Mean of the trees' leaf distributions.
    pub fn predict_proba(&self, row: &[f32]) -> Vec<f32> {
        let mut p = vec![0.0f32; self.classes];
        for t in &self.trees {
            let mut n = t;
            loop {
                match n {
                    Node::Leaf(v) => {
                        p.iter_mut().zip(v).for_each(|(a, b)| *a += b);
                        break;
                    }
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => {
                        n = if row[*feature] <= *threshold {
                            left
                        } else {
                            right
                        }
                    }
                }
            }
        }
        let n = self.trees.len().max(1) as f32;
        p.iter_mut().for_each(|v| *v /= n);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_an_xor_pattern() {
        // XOR is not linearly separable; trees handle it.
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut rng = SplitMix::new(3);
        for _ in 0..400 {
            let a = (rng.next_u64() % 1000) as f32 / 1000.0;
            let b = (rng.next_u64() % 1000) as f32 / 1000.0;
            x.push(vec![a, b, 0.5]);
            y.push(usize::from((a > 0.5) != (b > 0.5)));
        }
        let w = vec![1.0; x.len()];
        let f = Forest::fit(&x, &y, &w, 2, 30, 1);
        let acc = x
            .iter()
            .zip(&y)
            .filter(|(r, t)| crate::train::metrics::argmax(&f.predict_proba(r)) == **t)
            .count() as f32
            / x.len() as f32;
        assert!(acc > 0.95, "{acc}");
        assert!((f.predict_proba(&[0.2, 0.9, 0.5])[1] - 1.0).abs() < 0.3);
    }
}
