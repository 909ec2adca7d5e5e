//! Numeric precision of the backbone on the CPU: exact fp32, or integer front ends
//! through AVX-512 VNNI.
//!
//! The choice is made once per process (the CLI's global `--precision`) and read by every
//! [`super::Backbone`] built afterwards; a backbone can also be switched on its own
//! ([`super::Backbone::with_precision`]). `auto` resolves from the CPU's features at run
//! time: int16 where AVX-512 VNNI exists, fp32 elsewhere.
//!
//! Measured on this project's machine (Xeon, AVX-512 with BF16 and VNNI; one core,
//! independent accumulators): an fp32 FMA sustains 5.3-5.5 G instructions/s (85 GMAC/s),
//! `vpdpwssd` (int16 pairs) 5.1-5.9 G (165-190 GMAC/s), `vpdpbusd` (int8 quads) 5.9 G
//! (375 GMAC/s) and `vdpbf16ps` only 1.3 G (43 GMAC/s, half of fp32). So there is no
//! bf16 path: it would be slower than fp32. int8 is the fastest but 8-bit weights move
//! some patches' penultimate by up to 9 %; int16 (13-bit weights, 11-bit activations)
//! stays inside the accuracy bar (see [`Agreement`] and docs/speed.md).

use std::sync::atomic::{AtomicU8, Ordering};

/// Requested precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// int16 where the CPU has AVX-512 VNNI, fp32 elsewhere.
    #[default]
    Auto,
    /// Exact fp32 everywhere (bit-for-bit the reference port).
    Fp32,
    /// Integer front end: 11-bit activations, 13-bit weights with per-channel scales,
    /// `vpdpwssd`; within the accuracy bar.
    Int16,
    /// Integer front end: u8 activations, s8 weights with per-channel scales,
    /// `vpdpbusd`; the fastest, but outside the accuracy bar (opt-in).
    Int8,
}

impl Precision {
    /// What `self` means on this CPU: never `Auto`. (An integer precision on a CPU
    /// without VNNI runs the portable integer path: the same results, slowly.)
    pub fn resolve(self) -> Precision {
        match self {
            Precision::Auto if has_vnni() => Precision::Int16,
            Precision::Auto => Precision::Fp32,
            p => p,
        }
    }

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Int16 => "int16",
            Precision::Int8 => "int8",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Precision::Auto => 0,
            Precision::Fp32 => 1,
            Precision::Int16 => 2,
            Precision::Int8 => 3,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Precision::Fp32,
            2 => Precision::Int16,
            3 => Precision::Int8,
            _ => Precision::Auto,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

static DEFAULT: AtomicU8 = AtomicU8::new(0);

/// Set the precision that backbones built from now on use (the CLI's `--precision`).
pub fn set_default_precision(p: Precision) {
    DEFAULT.store(p.to_u8(), Ordering::Relaxed);
}

/// The precision backbones are built with (`Auto` unless [`set_default_precision`] said
/// otherwise).
pub fn default_precision() -> Precision {
    Precision::from_u8(DEFAULT.load(Ordering::Relaxed))
}

/// Does this CPU have the AVX-512 VNNI kernels' instructions (and may the OS use them)?
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What one track's analysis gave, as far as precision agreement is concerned.
#[derive(Debug, Clone, Copy)]
pub struct TrackOutputs<'a> {
    /// Genre probabilities from the head on the mean embedding.
    pub genre_probs: &'a [f32],
    /// Per analysed patch: its penultimate embedding.
    pub patch_embeddings: &'a [&'a [f32]],
    /// Per analysed patch: its 50 tag probabilities.
    pub patch_tags: &'a [&'a [f32]],
}

/// How far a reduced-precision pass is from fp32 over the same tracks. The accuracy bar
/// (issue 12): the same genre decision on every track, every patch's tag probabilities
/// within 0.01, every patch's penultimate within 1 % (relative L2).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// Tracks compared.
    pub tracks: usize,
    /// Tracks whose top genre is the same.
    pub same_genre: usize,
    /// Patches compared.
    pub patches: usize,
    /// Largest |difference| of a tag probability, over all patches.
    pub max_tag_diff: f32,
    /// Largest |difference| of a genre probability, over all tracks.
    pub max_genre_prob_diff: f32,
    /// Largest relative L2 difference of a patch's penultimate embedding.
    pub worst_embedding_rel: f32,
    /// Mean of the patches' relative L2 differences.
    pub mean_embedding_rel: f32,
}

/// Tag probabilities must stay within this of fp32.
pub const TAG_TOLERANCE: f32 = 0.01;
/// Penultimate embeddings must stay within this relative L2 distance of fp32.
pub const EMBEDDING_TOLERANCE: f32 = 0.01;

fn argmax(v: &[f32]) -> Option<usize> {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

impl Agreement {
    /// Add one track, analysed at fp32 (`exact`) and at the reduced precision (`other`).
    pub fn add(&mut self, exact: TrackOutputs<'_>, other: TrackOutputs<'_>) {
        self.add_genres(exact.genre_probs, other.genre_probs);
        self.add_patches(
            (exact.patch_embeddings, other.patch_embeddings),
            (exact.patch_tags, other.patch_tags),
        );
    }

    /// Add one track's genre probabilities at fp32 and at the reduced precision.
    pub fn add_genres(&mut self, exact: &[f32], other: &[f32]) {
        self.tracks += 1;
        if argmax(exact) == argmax(other) {
            self.same_genre += 1;
        }
        self.max_genre_prob_diff = self.max_genre_prob_diff.max(max_abs_diff(exact, other));
    }

    /// Add patches' penultimate embeddings and tag probabilities, (fp32, reduced) each.
    pub fn add_patches(
        &mut self,
        (exact_emb, other_emb): (&[&[f32]], &[&[f32]]),
        (exact_tags, other_tags): (&[&[f32]], &[&[f32]]),
    ) {
        let mut sum = self.mean_embedding_rel * self.patches as f32;
        for (e, o) in exact_emb.iter().zip(other_emb) {
            let num: f32 = e.iter().zip(*o).map(|(a, b)| (a - b).powi(2)).sum();
            let den: f32 = e.iter().map(|a| a * a).sum();
            let rel = (num / den.max(f32::MIN_POSITIVE)).sqrt();
            self.worst_embedding_rel = self.worst_embedding_rel.max(rel);
            sum += rel;
            self.patches += 1;
        }
        self.mean_embedding_rel = sum / self.patches.max(1) as f32;
        for (e, o) in exact_tags.iter().zip(other_tags) {
            self.max_tag_diff = self.max_tag_diff.max(max_abs_diff(e, o));
        }
    }

    /// Does it meet the accuracy bar?
    pub fn meets_bar(&self) -> bool {
        self.same_genre == self.tracks
            && self.max_tag_diff <= TAG_TOLERANCE
            && self.worst_embedding_rel <= EMBEDDING_TOLERANCE
    }

    /// One line for reports.
    pub fn summary(&self) -> String {
        format!(
            "same genre {}/{} tracks; over {} patches: tag probabilities max |diff| {:.4} (bar {TAG_TOLERANCE}), \
             penultimate relative L2 worst {:.2}% mean {:.2}% (bar {:.0}%); genre probabilities max |diff| {:.4}: {}",
            self.same_genre,
            self.tracks,
            self.patches,
            self.max_tag_diff,
            100.0 * self.worst_embedding_rel,
            100.0 * self.mean_embedding_rel,
            100.0 * EMBEDDING_TOLERANCE,
            self.max_genre_prob_diff,
            if self.meets_bar() {
                "meets the bar"
            } else {
                "MISSES the bar"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_resolves_to_a_concrete_precision() {
        let r = Precision::Auto.resolve();
        assert_ne!(r, Precision::Auto);
        assert_eq!(r == Precision::Int16, has_vnni());
        assert_eq!(Precision::Fp32.resolve(), Precision::Fp32);
        assert_eq!(Precision::Int8.resolve(), Precision::Int8);
        for p in [
            Precision::Auto,
            Precision::Fp32,
            Precision::Int16,
            Precision::Int8,
        ] {
            assert_eq!(Precision::from_u8(p.to_u8()), p);
        }
    }
}
