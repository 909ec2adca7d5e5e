//! The inputs models train on, cut into fixed windows, and their on-disk cache.
//!
//! Every track is decoded once to 16 kHz mono; from it come, per window
//! (default 3 s with 50% overlap):
//! - `logmel`: musicnn's 96-band log-mel, `frames x 96`;
//! - `mfcc`: 20 MFCCs of that log-mel, `frames x 20`;
//! - `raw`: the waveform at 8 kHz;
//! - `hand`: one vector of handcrafted features ([`HAND_NAMES`]);
//! - `embed`: the musicnn MSD penultimate embedding (200 values).
//!
//! Windows of one track stay together (splits are by track). Features are cached
//! under the cache folder keyed by the file's content hash and the window settings,
//! so a second run does not decode again.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dsp::features::{
    MUSICNN_HOP, MUSICNN_N_MELS, MUSICNN_SAMPLE_RATE_HZ, mfcc, musicnn_log_mel,
};
use crate::dsp::stft::power_spectrogram;
use crate::error::{DecodeError, Error};
use crate::ml::Backbone;
use crate::ml::musicnn::{EMBED_DIM, N_TAGS, PATCH_FRAMES};
use crate::shift::Shift;

/// Frames per second of the log-mel (16 kHz, hop 256).
pub const FRAMES_PER_S: f32 = MUSICNN_SAMPLE_RATE_HZ as f32 / MUSICNN_HOP as f32;
/// MFCCs per frame.
pub const N_MFCC: usize = 20;
/// Raw waveform rate.
pub const RAW_RATE_HZ: u32 = 8_000;
/// Raw samples per log-mel frame.
const RAW_PER_FRAME: usize = MUSICNN_HOP * RAW_RATE_HZ as usize / MUSICNN_SAMPLE_RATE_HZ as usize;

/// Names of the handcrafted features, in vector order.
pub const HAND_NAMES: [&str; HAND_DIM] = {
    let mut n = [""; HAND_DIM];
    let base = [
        "chroma_C",
        "chroma_C#",
        "chroma_D",
        "chroma_D#",
        "chroma_E",
        "chroma_F",
        "chroma_F#",
        "chroma_G",
        "chroma_G#",
        "chroma_A",
        "chroma_A#",
        "chroma_B",
    ];
    let mut i = 0;
    while i < 12 {
        n[i] = base[i];
        i += 1;
    }
    let pairs = [
        "rms_mean",
        "rms_var",
        "centroid_mean",
        "centroid_var",
        "bandwidth_mean",
        "bandwidth_var",
        "rolloff_mean",
        "rolloff_var",
        "zcr_mean",
        "zcr_var",
        "harmonic_mean",
        "harmonic_var",
        "percussive_mean",
        "percussive_var",
        "tempo_bpm",
    ];
    let mut j = 0;
    while j < pairs.len() {
        n[12 + j] = pairs[j];
        j += 1;
    }
    let mf = [
        "mfcc1_mean",
        "mfcc1_var",
        "mfcc2_mean",
        "mfcc2_var",
        "mfcc3_mean",
        "mfcc3_var",
        "mfcc4_mean",
        "mfcc4_var",
        "mfcc5_mean",
        "mfcc5_var",
        "mfcc6_mean",
        "mfcc6_var",
        "mfcc7_mean",
        "mfcc7_var",
        "mfcc8_mean",
        "mfcc8_var",
        "mfcc9_mean",
        "mfcc9_var",
        "mfcc10_mean",
        "mfcc10_var",
        "mfcc11_mean",
        "mfcc11_var",
        "mfcc12_mean",
        "mfcc12_var",
        "mfcc13_mean",
        "mfcc13_var",
        "mfcc14_mean",
        "mfcc14_var",
        "mfcc15_mean",
        "mfcc15_var",
        "mfcc16_mean",
        "mfcc16_var",
        "mfcc17_mean",
        "mfcc17_var",
        "mfcc18_mean",
        "mfcc18_var",
        "mfcc19_mean",
        "mfcc19_var",
        "mfcc20_mean",
        "mfcc20_var",
    ];
    let mut k = 0;
    while k < mf.len() {
        n[27 + k] = mf[k];
        k += 1;
    }
    n
};
/// Length of the handcrafted vector: 12 chroma means, 7 mean/variance pairs, tempo,
/// 20 MFCC means and variances.
pub const HAND_DIM: usize = 12 + 15 + 2 * N_MFCC;

/// An input representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Repr {
    /// 96-band log-mel patches.
    Logmel,
    /// 20 MFCCs per frame.
    Mfcc,
    /// 8 kHz waveform.
    Raw,
    /// Handcrafted feature vector per window.
    Hand,
    /// musicnn embedding per window.
    Embed,
    /// musicnn's 50 tag probabilities per window (computed with [`Repr::Embed`]).
    Tags,
}

impl Repr {
    /// Values per window for a window of `frames` log-mel frames.
    pub fn window_len(self, frames: usize) -> usize {
        match self {
            Repr::Logmel => frames * MUSICNN_N_MELS,
            Repr::Mfcc => frames * N_MFCC,
            Repr::Raw => frames * RAW_PER_FRAME,
            Repr::Hand => HAND_DIM,
            Repr::Embed => EMBED_DIM,
            Repr::Tags => N_TAGS,
        }
    }

    /// True for the inputs the musicnn backbone computes.
    pub fn needs_backbone(self) -> bool {
        matches!(self, Repr::Embed | Repr::Tags)
    }

    /// Values per frame of the 2-D inputs (96 mel bands, 20 MFCCs; 1 for the others).
    pub fn bands(self) -> usize {
        match self {
            Repr::Logmel => MUSICNN_N_MELS,
            Repr::Mfcc => N_MFCC,
            _ => 1,
        }
    }

    /// Short name used in cache keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            Repr::Logmel => "logmel",
            Repr::Mfcc => "mfcc",
            Repr::Raw => "raw",
            Repr::Hand => "hand",
            Repr::Embed => "embed",
            Repr::Tags => "tags",
        }
    }
}

/// How tracks are cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Windowing {
    /// Window length in seconds (default 3).
    pub seconds: f32,
    /// Overlap fraction in [0, 1) (default 0.5).
    pub overlap: f32,
    /// Only the centre window of each track (fixed evaluation windows).
    #[serde(default)]
    pub centre_only: bool,
}

impl Default for Windowing {
    fn default() -> Self {
        Self {
            seconds: 3.0,
            overlap: 0.5,
            centre_only: false,
        }
    }
}

impl Windowing {
    /// Window length in log-mel frames (3 s = 187 frames, musicnn's patch).
    pub fn frames(&self) -> usize {
        if (self.seconds - 3.0).abs() < 1e-6 {
            PATCH_FRAMES
        } else {
            ((self.seconds * FRAMES_PER_S).round() as usize).max(8)
        }
    }

    /// Hop between windows in frames.
    pub fn hop(&self) -> usize {
        ((self.frames() as f32 * (1.0 - self.overlap.clamp(0.0, 0.95))).round() as usize).max(1)
    }

    /// Start frames of the windows of a track of `total` frames (at least one window;
    /// a short track gives one zero-padded window).
    pub fn starts(&self, total: usize) -> Vec<usize> {
        let w = self.frames();
        if total <= w {
            return vec![0];
        }
        let all: Vec<usize> = (0..=(total - w)).step_by(self.hop()).collect();
        if self.centre_only {
            return vec![(total - w) / 2];
        }
        all
    }

    fn key(&self) -> String {
        format!(
            "w{}o{}{}",
            self.frames(),
            self.hop(),
            if self.centre_only { "c" } else { "" }
        )
    }
}

/// One track's windows of one representation: `rows` windows of `row_len` values.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    /// Row-major values.
    pub data: Vec<f32>,
    /// Values per window.
    pub row_len: usize,
}

impl Windows {
    /// Number of windows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.row_len).unwrap_or(0)
    }

    /// Window `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.row_len..(i + 1) * self.row_len]
    }
}

/// A decoded track: 16 kHz samples and the log-mel.
struct Decoded {
    samples: Vec<f32>,
    log_mel: Vec<f32>,
    frames: usize,
}

impl Decoded {
    fn from_samples(samples: Vec<f32>) -> Self {
        let log_mel = musicnn_log_mel(&samples);
        let frames = log_mel.len() / MUSICNN_N_MELS;
        Self {
            samples,
            log_mel,
            frames,
        }
    }
}

/// Report a feature-cache write failure once per process (it only costs time).
fn warn_cache_once(path: &Path, e: &std::io::Error) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "warning: cannot write the feature cache ({e}): {} (features will be recomputed next time)",
            path.display()
        );
    });
}

/// Copy frames `[start, start+len)` of a frame-major matrix with `width` values per
/// frame, zero-padding past the end.
fn frame_slice(m: &[f32], width: usize, start: usize, len: usize, out: &mut Vec<f32>) {
    let total = m.len() / width;
    for f in start..start + len {
        if f < total {
            out.extend_from_slice(&m[f * width..(f + 1) * width]);
        } else {
            out.extend(std::iter::repeat_n(0.0, width));
        }
    }
}

fn mean_var(v: &[f32]) -> (f32, f32) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m as f32, var as f32)
}

/// Median of a small slice (copied).
fn median(buf: &mut [f32]) -> f32 {
    let mid = buf.len() / 2;
    *buf.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Per-frame handcrafted descriptors of a whole track, frame-major, [`FRAME_DESC`] wide.
const FRAME_DESC: usize = 12 + 8 + N_MFCC;

fn frame_descriptors(d: &Decoded) -> Vec<f32> {
    const N_FFT: usize = 512;
    let sr = MUSICNN_SAMPLE_RATE_HZ as f32;
    let power = power_spectrogram(&d.samples, N_FFT, MUSICNN_HOP);
    let n = power.len().min(d.frames.max(1));
    let bins = N_FFT / 2 + 1;
    let freq: Vec<f32> = (0..bins).map(|k| k as f32 * sr / N_FFT as f32).collect();
    // Harmonic/percussive split by median filtering (Fitzgerald 2010), kernel 9.
    const K: usize = 9;
    let mut harm = vec![0.0f32; n];
    let mut perc = vec![0.0f32; n];
    let mut buf = Vec::with_capacity(K);
    for t in 0..n {
        let (mut h_e, mut p_e) = (0.0f32, 0.0f32);
        for k in 0..bins {
            buf.clear();
            buf.extend(
                power[t.saturating_sub(K / 2)..(t + K / 2 + 1).min(n)]
                    .iter()
                    .map(|f| f[k]),
            );
            let h = median(&mut buf);
            buf.clear();
            buf.extend_from_slice(&power[t][k.saturating_sub(K / 2)..(k + K / 2 + 1).min(bins)]);
            let p = median(&mut buf);
            let s = h + p;
            if s > 0.0 {
                let x = power[t][k];
                h_e += x * h / s;
                p_e += x * p / s;
            }
        }
        harm[t] = (h_e / bins as f32).sqrt();
        perc[t] = (p_e / bins as f32).sqrt();
    }
    let mut out = Vec::with_capacity(n * FRAME_DESC);
    for t in 0..n {
        let p = &power[t];
        out.extend_from_slice(&crate::dsp::features::chroma(
            p,
            MUSICNN_SAMPLE_RATE_HZ,
            N_FFT,
        ));
        let total: f32 = p.iter().sum::<f32>().max(1e-12);
        let centroid: f32 = p.iter().zip(&freq).map(|(a, f)| a * f).sum::<f32>() / total;
        let bandwidth = (p
            .iter()
            .zip(&freq)
            .map(|(a, f)| a * (f - centroid).powi(2))
            .sum::<f32>()
            / total)
            .sqrt();
        let mut acc = 0.0;
        let mut rolloff = freq[bins - 1];
        for (a, f) in p.iter().zip(&freq) {
            acc += a;
            if acc >= 0.85 * total {
                rolloff = *f;
                break;
            }
        }
        let s0 = t * MUSICNN_HOP;
        let seg = &d.samples[s0.min(d.samples.len())..(s0 + N_FFT).min(d.samples.len())];
        let rms = (seg.iter().map(|x| x * x).sum::<f32>() / seg.len().max(1) as f32).sqrt();
        let zcr = seg
            .windows(2)
            .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
            .count() as f32
            / seg.len().max(1) as f32;
        let flux: f32 = if t > 0 {
            p.iter()
                .zip(&power[t - 1])
                .map(|(a, b)| (a.sqrt() - b.sqrt()).max(0.0))
                .sum()
        } else {
            0.0
        };
        out.extend_from_slice(&[
            rms, centroid, bandwidth, rolloff, zcr, harm[t], perc[t], flux,
        ]);
        let lm = &d.log_mel[t * MUSICNN_N_MELS..(t + 1) * MUSICNN_N_MELS];
        out.extend(mfcc(lm, N_MFCC));
    }
    out
}

/// Tempo (BPM, 60-200) of an onset-strength curve by autocorrelation.
fn tempo(flux: &[f32]) -> f32 {
    let m = flux.iter().sum::<f32>() / flux.len().max(1) as f32;
    let x: Vec<f32> = flux.iter().map(|v| v - m).collect();
    let (lo, hi) = (
        (FRAMES_PER_S * 60.0 / 200.0) as usize,
        (FRAMES_PER_S * 60.0 / 60.0) as usize,
    );
    let mut best = (0.0f32, lo.max(1));
    for lag in lo.max(1)..=hi.min(x.len().saturating_sub(1)) {
        let r: f32 = x.iter().zip(&x[lag..]).map(|(a, b)| a * b).sum();
        if r > best.0 {
            best = (r, lag);
        }
    }
    60.0 * FRAMES_PER_S / best.1 as f32
}

/// Handcrafted vector of frames `[start, start+len)`.
fn hand_vector(desc: &[f32], start: usize, len: usize) -> Vec<f32> {
    let total = desc.len() / FRAME_DESC;
    let end = (start + len).min(total).max(start.min(total));
    let rows: Vec<&[f32]> = (start.min(total)..end)
        .map(|f| &desc[f * FRAME_DESC..(f + 1) * FRAME_DESC])
        .collect();
    let col = |c: usize| rows.iter().map(|r| r[c]).collect::<Vec<f32>>();
    let mut v = Vec::with_capacity(HAND_DIM);
    for c in 0..12 {
        v.push(mean_var(&col(c)).0);
    }
    for c in 12..19 {
        let (m, var) = mean_var(&col(c));
        v.push(m);
        v.push(var);
    }
    v.push(tempo(&col(19)));
    for c in 20..20 + N_MFCC {
        let (m, var) = mean_var(&col(c));
        v.push(m);
        v.push(var);
    }
    v
}

/// Computes (and caches) windows of tracks.
pub struct FeatureStore {
    cache: Option<PathBuf>,
    windowing: Windowing,
    backbone: Option<std::sync::Arc<Backbone>>,
    shift: Shift,
}

impl FeatureStore {
    /// A store caching under `cache` (none: no cache).
    pub fn new(cache: Option<PathBuf>, windowing: Windowing) -> Self {
        Self {
            cache,
            windowing,
            backbone: None,
            shift: Shift::Clean,
        }
    }

    /// Compute features of every track as heard through `shift` from now on.
    pub fn set_shift(&mut self, shift: Shift) {
        self.shift = shift;
    }

    /// The shift features are computed through.
    pub fn shift(&self) -> Shift {
        self.shift
    }

    /// The default cache folder: `$XDG_CACHE_HOME/genretag/features` or `~/.cache/...`.
    pub fn default_cache() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("genretag").join("features"))
    }

    /// Cut windows this way from now on.
    pub fn set_windowing(&mut self, windowing: Windowing) {
        self.windowing = windowing;
    }

    /// Give the store the musicnn backbone (needed for [`Repr::Embed`]).
    pub fn with_backbone(self, backbone: Backbone) -> Self {
        self.with_shared_backbone(std::sync::Arc::new(backbone))
    }

    /// Give the store a backbone shared with others.
    pub fn with_shared_backbone(mut self, backbone: std::sync::Arc<Backbone>) -> Self {
        self.backbone = Some(backbone);
        self
    }

    fn cache_path(&self, hash: &str, repr: Repr) -> Option<PathBuf> {
        let shift = match self.shift {
            Shift::Clean => String::new(),
            s => format!("-{}", s.name()),
        };
        // Backbone outputs depend on its arithmetic: int16 and fp32 features never mix
        // (fp32 keeps the names caches had before reduced precision existed).
        let precision = match &self.backbone {
            Some(b) if repr.needs_backbone() => match b.precision().resolve() {
                crate::ml::Precision::Fp32 => String::new(),
                p => format!("-{}", p.name()),
            },
            _ => String::new(),
        };
        self.cache.as_ref().map(|d| {
            d.join(format!(
                "{hash}-{}-{}{shift}{precision}-v1.f32",
                repr.name(),
                self.windowing.key()
            ))
        })
    }

    /// Windows of `path` for each of `reprs`, from the cache where possible.
    /// Returns one [`Windows`] per repr, all with the same number of rows.
    pub fn windows(&self, path: &Path, reprs: &[Repr]) -> Result<Vec<Windows>, Error> {
        let hash = crate::library::scan::content_hash(path).map_err(|source| DecodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut out: Vec<Option<Windows>> = reprs
            .iter()
            .map(|&r| self.cache_path(&hash, r).and_then(|p| read_cache(&p)))
            .collect();
        if out.iter().any(Option::is_none) {
            let decoded = Decoded::from_samples(self.shift.decode_16k(path)?);
            let mut backbone_out: Option<(Windows, Windows)> = None;
            for (slot, &r) in out.iter_mut().zip(reprs) {
                if slot.is_none() {
                    let w = if r.needs_backbone() {
                        if backbone_out.is_none() {
                            backbone_out = Some(self.embed(&decoded)?);
                        }
                        let (e, t) = backbone_out.as_ref().expect("computed just above");
                        if r == Repr::Embed {
                            e.clone()
                        } else {
                            t.clone()
                        }
                    } else {
                        self.compute(&decoded, r)
                    };
                    if let Some(p) = self.cache_path(&hash, r) {
                        // A cache that cannot be written only costs time; say so once.
                        if let Err(e) = write_cache(&p, &w) {
                            warn_cache_once(&p, &e);
                        }
                    }
                    *slot = Some(w);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Windows of an already decoded 16 kHz signal (no cache): what a trained model
    /// computes when it analyses a track.
    pub fn windows_of(&self, samples_16k: Vec<f32>, reprs: &[Repr]) -> Result<Vec<Windows>, Error> {
        let decoded = Decoded::from_samples(samples_16k);
        let mut backbone_out = None;
        reprs
            .iter()
            .map(|&r| {
                if r.needs_backbone() {
                    if backbone_out.is_none() {
                        backbone_out = Some(self.embed(&decoded)?);
                    }
                    let (e, t) = backbone_out.as_ref().expect("computed just above");
                    Ok(if r == Repr::Embed {
                        e.clone()
                    } else {
                        t.clone()
                    })
                } else {
                    Ok(self.compute(&decoded, r))
                }
            })
            .collect()
    }

    /// Embedding and tag windows (one backbone pass).
    fn embed(&self, d: &Decoded) -> Result<(Windows, Windows), Error> {
        let Some(bb) = &self.backbone else {
            return Err(crate::error::ModelError::Other(
                "embedding features need the musicnn backbone".into(),
            )
            .into());
        };
        let starts = self.windowing.starts(d.frames);
        let mut patches = Vec::with_capacity(starts.len() * PATCH_FRAMES * MUSICNN_N_MELS);
        for &s in &starts {
            // The backbone always sees its own 3 s patch at the window start.
            frame_slice(&d.log_mel, MUSICNN_N_MELS, s, PATCH_FRAMES, &mut patches);
        }
        let mut emb = Windows {
            data: Vec::with_capacity(starts.len() * EMBED_DIM),
            row_len: EMBED_DIM,
        };
        let mut tags = Windows {
            data: Vec::with_capacity(starts.len() * N_TAGS),
            row_len: N_TAGS,
        };
        for (e, t) in bb.embed_patches(&patches, 16) {
            emb.data.extend(e);
            tags.data.extend(t);
        }
        Ok((emb, tags))
    }

    fn compute(&self, d: &Decoded, repr: Repr) -> Windows {
        let w = self.windowing.frames();
        let starts = self.windowing.starts(d.frames);
        let row_len = repr.window_len(w);
        let mut data = Vec::with_capacity(starts.len() * row_len);
        match repr {
            Repr::Logmel => {
                for &s in &starts {
                    frame_slice(&d.log_mel, MUSICNN_N_MELS, s, w, &mut data);
                }
            }
            Repr::Mfcc => {
                let m: Vec<f32> = d
                    .log_mel
                    .chunks(MUSICNN_N_MELS)
                    .flat_map(|f| mfcc(f, N_MFCC))
                    .collect();
                for &s in &starts {
                    frame_slice(&m, N_MFCC, s, w, &mut data);
                }
            }
            Repr::Raw => {
                let raw: Vec<f32> = d
                    .samples
                    .chunks(2)
                    .map(|c| c.iter().sum::<f32>() / c.len() as f32)
                    .collect();
                for &s in &starts {
                    frame_slice(&raw, RAW_PER_FRAME, s, w, &mut data);
                }
            }
            Repr::Hand => {
                let desc = frame_descriptors(d);
                for &s in &starts {
                    data.extend(hand_vector(&desc, s, w));
                }
            }
            Repr::Embed | Repr::Tags => unreachable!("computed by FeatureStore::embed"),
        }
        Windows { data, row_len }
    }
}

fn read_cache(path: &Path) -> Option<Windows> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 8 {
        return None;
    }
    let rows = u32::from_le_bytes(bytes[0..4].try_into().ok()?) as usize;
    let row_len = u32::from_le_bytes(bytes[4..8].try_into().ok()?) as usize;
    if bytes.len() != 8 + rows * row_len * 4 || row_len == 0 {
        return None;
    }
    let data = bytes[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(Windows { data, row_len })
}

fn write_cache(path: &Path, w: &Windows) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write a temporary file, then rename: a reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    f.write_all(&(w.rows() as u32).to_le_bytes())?;
    f.write_all(&(w.row_len as u32).to_le_bytes())?;
    for v in &w.data {
        f.write_all(&v.to_le_bytes())?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_track() {
        let w = Windowing::default();
        assert_eq!(w.frames(), 187);
        assert_eq!(w.hop(), 94);
        // 30 s = 1875 frames -> 18 windows, the last ending within one hop of the end.
        let s = w.starts(1875);
        assert_eq!(s.len(), 18);
        assert!(
            s.last()
                .is_some_and(|&l| l + 187 <= 1875 && l + 187 + 94 > 1875)
        );
        assert_eq!(w.starts(100), vec![0]);
        let c = Windowing {
            centre_only: true,
            ..w
        };
        assert_eq!(c.starts(1875), vec![(1875 - 187) / 2]);
    }

    #[test]
    fn tempo_of_a_click_track() {
        // Clicks at 120 BPM = every 0.5 s = 31.25 frames.
        let flux: Vec<f32> = (0..600)
            .map(|i| if (i as f32 % 31.25) < 1.0 { 1.0 } else { 0.0 })
            .collect();
        let bpm = tempo(&flux);
        assert!((bpm - 120.0).abs() < 4.0, "{bpm}");
    }

    #[test]
    fn hand_names_fill_the_vector() {
        assert!(HAND_NAMES.iter().all(|n| !n.is_empty()));
        assert_eq!(HAND_NAMES[HAND_DIM - 1], "mfcc20_var");
    }
}
