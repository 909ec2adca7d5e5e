//! File -> genre: decode, resample to 16 kHz, log-mel, musicnn patches, genre head.
//!
//! Streams end to end: audio is decoded chunk by chunk, log-mel frames are cut
//! into 3 s patches as they arrive, and only the patches we will analyse are
//! kept, so a multi-hour file needs bounded memory. By default at most
//! [`DEFAULT_MAX_PATCHES`] patches, evenly spread over the track, are analysed.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;

use crate::audio::Resampled;
use crate::dsp::LogMelStream;
use crate::dsp::features::{MUSICNN_HOP, MUSICNN_N_MELS, MUSICNN_SAMPLE_RATE_HZ};
use crate::error::{DecodeError, Error, ModelError};
use crate::ml::musicnn::{EMBED_DIM, MSD_TAGS, N_TAGS, PATCH_FRAMES};
use crate::ml::{Backbone, GenreHead};

/// Patches analysed per track unless `--all-patches` (10 x 3 s = 30 s of audio).
pub const DEFAULT_MAX_PATCHES: usize = 10;
/// Seconds per patch.
pub const PATCH_SECS: f32 = (PATCH_FRAMES * MUSICNN_HOP) as f32 / MUSICNN_SAMPLE_RATE_HZ as f32;

/// Which patches to analyse.
#[derive(Debug, Clone, Copy)]
pub struct PatchOptions {
    /// `None` = every patch; `Some(n)` = at most n, evenly spread.
    pub max_patches: Option<usize>,
    /// Patches per backbone batch.
    pub batch: usize,
}

impl Default for PatchOptions {
    fn default() -> Self {
        Self {
            max_patches: Some(DEFAULT_MAX_PATCHES),
            batch: 10,
        }
    }
}

/// The log-mel patches chosen from one file.
#[derive(Debug, Clone)]
pub struct Patches {
    /// Frame-major log-mel, `len() * 187 * 96` values.
    pub data: Vec<f32>,
    /// Patch index in the track of each kept patch (start time = index * 3 s).
    pub indices: Vec<usize>,
    /// All complete patches in the track.
    pub total_patches: usize,
    /// Decoded duration in seconds.
    pub duration_s: f64,
    /// Native sample rate.
    pub sample_rate_hz: u32,
    /// Codec description.
    pub codec: String,
    /// Corrupt packets skipped while decoding.
    pub skipped_packets: usize,
    /// True if the track was shorter than one patch and was zero-padded.
    pub padded: bool,
}

impl Patches {
    /// Number of kept patches.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True if no patch was kept.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Evenly spread `k` of `total` indices (centres of `k` equal parts).
pub fn spread_indices(total: usize, k: usize) -> Vec<usize> {
    if total <= k {
        return (0..total).collect();
    }
    (0..k).map(|i| ((2 * i + 1) * total) / (2 * k)).collect()
}

/// Patch keeper for streams of unknown length: keeps every `stride`-th patch and
/// doubles the stride whenever it holds more than `2 * max`.
struct Keeper {
    max: Option<usize>,
    planned: Option<Vec<usize>>,
    stride: usize,
    kept: Vec<(usize, Vec<f32>)>,
    /// The latest patch, used if a plan made from a wrong duration kept nothing.
    last: Option<(usize, Vec<f32>)>,
}

impl Keeper {
    fn offer(&mut self, index: usize, patch: &[f32]) {
        let keep = match (&self.planned, self.max) {
            (_, None) => true,
            (Some(plan), _) => plan.binary_search(&index).is_ok(),
            (None, Some(_)) => index.is_multiple_of(self.stride),
        };
        if keep {
            self.kept.push((index, patch.to_vec()));
        } else if self.kept.is_empty() {
            self.last = Some((index, patch.to_vec()));
        }
        if let (None, Some(max)) = (&self.planned, self.max)
            && self.kept.len() > 2 * max.max(1)
        {
            self.stride *= 2;
            let stride = self.stride;
            self.kept.retain(|(i, _)| i.is_multiple_of(stride));
        }
    }

    fn finish(mut self) -> Vec<(usize, Vec<f32>)> {
        if let (None, Some(max)) = (&self.planned, self.max)
            && self.kept.len() > max
        {
            let pick = spread_indices(self.kept.len(), max);
            return std::mem::take(&mut self.kept)
                .into_iter()
                .enumerate()
                .filter(|(j, _)| pick.binary_search(j).is_ok())
                .map(|(_, item)| item)
                .collect();
        }
        if self.kept.is_empty() {
            return self.last.take().into_iter().collect();
        }
        self.kept
    }
}

/// Decode `path` and cut the musicnn log-mel patches to analyse.
///
/// Never panics (decoding goes through [`Resampled`], whose decoder is
/// panic-guarded): a malformed file is an error for that file and a batch goes on.
pub fn extract_patches(path: &Path, opts: &PatchOptions) -> Result<Patches, DecodeError> {
    let mut stream = Resampled::open(path, MUSICNN_SAMPLE_RATE_HZ)?;
    let info = stream.info().clone();
    let planned = match (opts.max_patches, stream.expected_frames()) {
        (Some(max), Some(n16)) => {
            let total = ((1 + n16 / MUSICNN_HOP as u64) / PATCH_FRAMES as u64) as usize;
            Some(spread_indices(total, max))
        }
        _ => None,
    };
    let mut keeper = Keeper {
        max: opts.max_patches,
        planned,
        stride: 1,
        kept: Vec::new(),
        last: None,
    };
    let per_patch = PATCH_FRAMES * MUSICNN_N_MELS;
    let mut mel = LogMelStream::new();
    let (mut buf16, mut frames) = (Vec::new(), Vec::<f32>::new());
    let mut next_patch = 0usize;
    let cut = |frames: &mut Vec<f32>, keeper: &mut Keeper, next_patch: &mut usize| {
        let whole = frames.len() / per_patch;
        for p in 0..whole {
            keeper.offer(*next_patch, &frames[p * per_patch..(p + 1) * per_patch]);
            *next_patch += 1;
        }
        frames.drain(..whole * per_patch);
    };
    loop {
        buf16.clear();
        let more = stream.next_into(&mut buf16)?;
        mel.push(&buf16, &mut frames);
        if !more {
            mel.finish(&mut frames);
            break;
        }
        cut(&mut frames, &mut keeper, &mut next_patch);
    }
    let mut padded = false;
    if next_patch == 0 {
        // Shorter than one patch: pad with silence (log-mel 0) so short clips still get a guess.
        padded = true;
        frames.resize(per_patch, 0.0);
    }
    cut(&mut frames, &mut keeper, &mut next_patch);
    let total = next_patch;
    let kept = keeper.finish();
    let mut data = Vec::with_capacity(kept.len() * per_patch);
    let mut indices = Vec::with_capacity(kept.len());
    for (i, p) in kept {
        indices.push(i);
        data.extend_from_slice(&p);
    }
    Ok(Patches {
        data,
        indices,
        total_patches: total,
        duration_s: stream.decoded_secs(),
        sample_rate_hz: info.sample_rate_hz,
        codec: info.codec,
        skipped_packets: stream.skipped_packets(),
        padded,
    })
}

/// Decode `files` on a worker thread, one file ahead of the consumer, so decoding
/// overlaps inference. Yields each file with its patches (or its error), in order.
pub fn decode_ahead(
    files: Vec<PathBuf>,
    opts: PatchOptions,
) -> impl Iterator<Item = (PathBuf, Result<Patches, DecodeError>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for path in files {
            let patches = extract_patches(&path, &opts);
            if tx.send((path, patches)).is_err() {
                break; // the consumer stopped
            }
        }
    });
    rx.into_iter()
}

/// Per-patch backbone output.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    /// Start in seconds.
    pub start_s: f32,
    /// End in seconds.
    pub end_s: f32,
    /// Genre probabilities from this patch alone, in label order.
    pub genre_probs: Vec<f32>,
    /// Tag probabilities.
    #[serde(skip)]
    pub tags: Vec<f32>,
    /// Embedding.
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// Everything we learn about one track.
#[derive(Debug, Clone)]
pub struct TrackAnalysis {
    /// The file.
    pub path: PathBuf,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Genre labels, in probability order.
    pub labels: Vec<String>,
    /// Track-level genre probabilities, in label order.
    pub genre_probs: Vec<f32>,
    /// Mean tag probabilities, in MSD tag order.
    pub tag_probs: Vec<f32>,
    /// Mean embedding.
    pub embedding: Vec<f32>,
    /// Analysed patches.
    pub segments: Vec<Segment>,
    /// Complete patches in the track.
    pub total_patches: usize,
    /// Codec.
    pub codec: String,
    /// Corrupt packets skipped.
    pub skipped_packets: usize,
    /// Zero-padded because shorter than 3 s.
    pub padded: bool,
}

impl TrackAnalysis {
    /// `(label, probability)` sorted by probability, highest first.
    pub fn ranked_genres(&self) -> Vec<(&str, f32)> {
        let mut v: Vec<(&str, f32)> = self
            .labels
            .iter()
            .map(String::as_str)
            .zip(self.genre_probs.iter().copied())
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// `(tag, probability)` sorted, highest first.
    pub fn ranked_tags(&self) -> Vec<(&'static str, f32)> {
        let mut v: Vec<(&str, f32)> = MSD_TAGS
            .iter()
            .copied()
            .zip(self.tag_probs.iter().copied())
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

/// What the library database keeps of an analysis (JSON), per file and model.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StoredAnalysis {
    /// Genre labels with probabilities, most likely first.
    pub genres: Vec<(String, f32)>,
    /// The backbone's 50 tags with probabilities, most likely first.
    pub tags: Vec<(String, f32)>,
    /// Per-segment genre probabilities (label order of the model).
    pub segments: Vec<StoredSegment>,
    /// Decoded duration, seconds.
    pub duration_s: f64,
    /// The model's decision: a genre it is sure enough of, or "unsure" and why.
    /// Analyses stored before decisions existed read back as [`Verdict::Unknown`].
    #[serde(default)]
    pub verdict: Verdict,
}

/// What the model concludes about a track.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
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
    /// 41 %", "too little musical signal", "unlike anything the model knows".
    Unsure {
        /// Why, in words a user understands.
        reason: String,
    },
}

/// One segment of a [`StoredAnalysis`].
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StoredSegment {
    /// Start, seconds.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
    /// Genre probabilities in the model's label order.
    pub genre_probs: Vec<f32>,
}

impl From<&TrackAnalysis> for StoredAnalysis {
    fn from(a: &TrackAnalysis) -> Self {
        let owned = |v: Vec<(&str, f32)>| v.into_iter().map(|(l, p)| (l.to_string(), p)).collect();
        Self {
            genres: owned(a.ranked_genres()),
            tags: owned(a.ranked_tags()),
            segments: a
                .segments
                .iter()
                .map(|s| StoredSegment {
                    start_s: s.start_s,
                    end_s: s.end_s,
                    genre_probs: s.genre_probs.clone(),
                })
                .collect(),
            duration_s: a.duration_s,
            verdict: Verdict::Unknown,
        }
    }
}

/// Mean of equal-length rows.
pub fn mean_rows(rows: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let mut m = vec![0.0f32; first.len()];
    for r in rows {
        m.iter_mut().zip(r).for_each(|(a, b)| *a += b);
    }
    m.iter_mut().for_each(|a| *a /= rows.len() as f32);
    m
}

/// Backbone plus genre head: the whole classifier.
#[derive(Debug, Clone)]
pub struct Analyzer {
    /// musicnn.
    pub backbone: Backbone,
    /// Genre head.
    pub head: GenreHead,
}

/// Where shipped models are looked for, in order.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("GENRETAG_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(4) {
            dirs.push(anc.join("models"));
        }
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs.push(PathBuf::from("models"));
    dirs
}

/// Find a shipped model file by name.
pub fn find_model(name: &str) -> Result<PathBuf, ModelError> {
    model_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| ModelError::Io {
            path: PathBuf::from(name),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found in GENRETAG_MODELS, next to the executable, or the source tree's models/",
            ),
        })
}

/// File name of the converted backbone.
pub const BACKBONE_FILE: &str = "musicnn_msd.bpk";
/// File stem of the default genre head.
pub const DEFAULT_HEAD_FILE: &str = "genre_head.json";

impl Analyzer {
    /// Load the shipped backbone and the head at `head_path` (default head if `None`).
    pub fn load(head_path: Option<&Path>, device: &Device) -> Result<Self, Error> {
        let backbone = Backbone::load(&find_model(BACKBONE_FILE)?, device)?;
        let head_path = match head_path {
            Some(p) => p.to_path_buf(),
            None => find_model(DEFAULT_HEAD_FILE)?,
        };
        let head = GenreHead::load(&head_path, device)?;
        if head.config.input_dim != EMBED_DIM {
            return Err(ModelError::Format {
                path: head_path,
                reason: format!(
                    "head expects {} inputs, the backbone gives {EMBED_DIM}",
                    head.config.input_dim
                ),
            }
            .into());
        }
        Ok(Self { backbone, head })
    }

    /// Run the backbone over patches: per-patch (embedding, tags).
    pub fn embed(&self, patches: &Patches, batch: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
        self.backbone.embed_patches(&patches.data, batch)
    }

    /// Analyse one file.
    pub fn analyze(&self, path: &Path, opts: &PatchOptions) -> Result<TrackAnalysis, Error> {
        let patches = extract_patches(path, opts)?;
        Ok(self.analyze_patches(path, patches, opts.batch))
    }

    /// Analyse already extracted patches.
    pub fn analyze_patches(&self, path: &Path, patches: Patches, batch: usize) -> TrackAnalysis {
        let outs = self.embed(&patches, batch);
        let embeddings: Vec<Vec<f32>> = outs.iter().map(|(e, _)| e.clone()).collect();
        let tags: Vec<Vec<f32>> = outs.iter().map(|(_, t)| t.clone()).collect();
        let embedding = mean_rows(&embeddings);
        let genre_probs = self
            .head
            .predict_proba(std::slice::from_ref(&embedding))
            .pop()
            .unwrap_or_default();
        let per_patch = self.head.predict_proba(&embeddings);
        let segments = patches
            .indices
            .iter()
            .zip(per_patch)
            .zip(outs)
            .map(|((&i, probs), (emb, tag))| Segment {
                start_s: i as f32 * PATCH_SECS,
                end_s: (i + 1) as f32 * PATCH_SECS,
                genre_probs: probs,
                tags: tag,
                embedding: emb,
            })
            .collect();
        TrackAnalysis {
            path: path.to_path_buf(),
            duration_s: patches.duration_s,
            labels: self.head.config.labels.clone(),
            genre_probs,
            tag_probs: if tags.is_empty() {
                vec![0.0; N_TAGS]
            } else {
                mean_rows(&tags)
            },
            embedding,
            segments,
            total_patches: patches.total_patches,
            codec: patches.codec,
            skipped_packets: patches.skipped_packets,
            padded: patches.padded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_bounded() {
        assert_eq!(spread_indices(5, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(spread_indices(100, 4), vec![12, 37, 62, 87]);
        let s = spread_indices(1000, 10);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn keeper_bounds_memory_for_unknown_length() {
        let mut k = Keeper {
            max: Some(4),
            planned: None,
            stride: 1,
            kept: Vec::new(),
            last: None,
        };
        for i in 0..1000 {
            k.offer(i, &[i as f32]);
            assert!(k.kept.len() <= 9);
        }
        let kept = k.finish();
        assert_eq!(kept.len(), 4);
        assert!(kept.first().map(|k| k.0).unwrap_or(0) < 300);
        assert!(kept.last().map(|k| k.0).unwrap_or(0) > 600);
    }
}
