//! Cross-validation folds: stratified, and grouped (a group never spans train and test).
//!
//! GTZAN clips with neighbouring numbers often share an artist, so the honest
//! split groups blocks of consecutive numbers; stratified folds are kept for
//! comparison with published numbers.

/// A small deterministic RNG (SplitMix64), enough for shuffling folds.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Fold index per sample: each class's samples shuffled and dealt round-robin into `k` folds.
pub fn stratified_folds(labels: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix::new(seed);
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut folds = vec![0; labels.len()];
    let mut next = 0;
    for c in 0..n_classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        rng.shuffle(&mut idx);
        for i in idx {
            folds[i] = next % k;
            next += 1;
        }
    }
    folds
}

/// Fold index per sample such that all samples of a group share a fold. Groups are
/// dealt round-robin per class (continuing across classes), so every fold gets a
/// spread of classes and no group is split.
pub fn grouped_folds(labels: &[usize], groups: &[String], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix::new(seed);
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut group_fold = std::collections::BTreeMap::new();
    let mut next = 0;
    for c in 0..n_classes {
        let mut gs: Vec<&String> = (0..labels.len())
            .filter(|&i| labels[i] == c)
            .map(|i| &groups[i])
            .collect();
        gs.sort();
        gs.dedup();
        rng.shuffle(&mut gs);
        for g in gs {
            group_fold.entry(g.clone()).or_insert_with(|| {
                let f = next % k;
                next += 1;
                f
            });
        }
    }
    groups.iter().map(|g| group_fold[g]).collect()
}

/// The GTZAN block group of a file name like `blues.00042.flac`: genre plus
/// `number / block` (blocks of consecutive numbers).
pub fn gtzan_block(file_name: &str, block: usize) -> Option<String> {
    let mut parts = file_name.split('.');
    let genre = parts.next()?;
    let number: usize = parts.next()?.parse().ok()?;
    Some(format!("{genre}.{}", number / block.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_balances_classes() {
        let labels: Vec<usize> = (0..100).map(|i| i % 4).collect();
        let folds = stratified_folds(&labels, 5, 1);
        for f in 0..5 {
            for c in 0..4 {
                let n = (0..100)
                    .filter(|&i| folds[i] == f && labels[i] == c)
                    .count();
                assert_eq!(n, 5);
            }
        }
    }

    #[test]
    fn groups_never_span_folds() {
        let names: Vec<String> = (0..50).map(|i| format!("blues.{i:05}.flac")).collect();
        let groups: Vec<String> = names
            .iter()
            .map(|n| gtzan_block(n, 5).expect("gtzan name"))
            .collect();
        let labels = vec![0; 50];
        let folds = grouped_folds(&labels, &groups, 5, 7);
        for i in 0..50 {
            for j in 0..50 {
                if groups[i] == groups[j] {
                    assert_eq!(folds[i], folds[j]);
                }
            }
        }
        assert_eq!(gtzan_block("jazz.00017.flac", 5).as_deref(), Some("jazz.3"));
    }
}
