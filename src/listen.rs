//! What a model hears of a file: decode (through [`crate::audio::Resampled`], the one
//! front door), resample to 16 kHz, log-mel, and keep the 3 s patches that will be
//! analysed — plus, for models that need it, the whole 16 kHz signal.
//!
//! Streams end to end: log-mel frames are cut into patches as they arrive and only
//! the patches to analyse are kept, so a multi-hour file needs bounded memory. By
//! default at most [`DEFAULT_MAX_PATCHES`] patches are kept, evenly spread over the
//! track; on long tracks the intro and outro are left out, because they rarely sound
//! like the genre of the song. Loudness is measured on the way, so silent patches can
//! be left out of the decision and a file with too little sound is recognised.

use std::path::{Path, PathBuf};

use crate::audio::Resampled;
use crate::dsp::LogMelStream;
use crate::dsp::features::{MUSICNN_HOP, MUSICNN_N_FFT, MUSICNN_N_MELS, MUSICNN_SAMPLE_RATE_HZ};
use crate::error::DecodeError;
use crate::ml::musicnn::PATCH_FRAMES;
use crate::shift::Shift;

/// Patches analysed per track unless told otherwise (10 x 3 s = 30 s of audio).
pub const DEFAULT_MAX_PATCHES: usize = 10;
/// Seconds per patch.
pub const PATCH_SECS: f32 = (PATCH_FRAMES * MUSICNN_HOP) as f32 / MUSICNN_SAMPLE_RATE_HZ as f32;
/// Samples (16 kHz) per patch.
const PATCH_SAMPLES: usize = PATCH_FRAMES * MUSICNN_HOP;
/// Tracks with at least this many patches (60 s) skip their intro and outro.
pub const EDGE_MIN_PATCHES: usize = 20;
/// A patch quieter than this (dBFS RMS) counts as silence.
pub const SILENT_PATCH_DB: f32 = -55.0;
/// Level (dBFS RMS over 50 ms) above which sound counts as present.
const ACTIVE_DB: f32 = -60.0;
/// 50 ms at 16 kHz.
const ACTIVITY_FRAME: usize = 800;

/// How to listen to a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListenOptions {
    /// `None` = every patch; `Some(n)` = at most n, evenly spread.
    pub max_patches: Option<usize>,
    /// Keep the whole 16 kHz signal too (models that compute their own windows).
    pub whole: bool,
    /// On long files whose format can seek, decode only the patches that are kept
    /// (see [`SEEK_MIN_PATCHES`]); `false` decodes every file from start to end.
    pub seek: bool,
    /// Hear only this many of the planned patches now (spread over them), leaving the
    /// rest in [`Heard::pending`] for [`Heard::hear_rest`]: adaptive listening's first
    /// look. Applies where seeking does; elsewhere every planned patch is heard.
    pub first_look: Option<usize>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            max_patches: Some(DEFAULT_MAX_PATCHES),
            whole: false,
            seek: true,
            first_look: None,
        }
    }
}

/// Tracks with at least this many patches (about 90 s) are heard by seeking to each kept
/// patch when their format allows, instead of decoding them whole.
pub const SEEK_MIN_PATCHES: usize = 30;

/// A decoded track, as models receive it.
#[derive(Debug, Clone)]
pub struct Heard {
    /// The file.
    pub path: PathBuf,
    /// Frame-major log-mel of the kept patches, `indices.len() * 187 * 96` values.
    pub patches: Vec<f32>,
    /// Patch index in the track of each kept patch (start time = index * 3 s).
    pub indices: Vec<usize>,
    /// Level (dBFS RMS) of each kept patch, in the order of `indices`.
    pub kept_db: Vec<f32>,
    /// Planned patches not heard yet (adaptive listening's first look; ascending patch
    /// indices): [`Heard::hear_rest`] decodes them.
    pub pending: Vec<usize>,
    /// All complete patches in the track.
    pub total_patches: usize,
    /// The whole 16 kHz signal, when asked for.
    pub samples_16k: Option<Vec<f32>>,
    /// Decoded duration in seconds.
    pub duration_s: f64,
    /// Seconds with audible sound (50 ms frames above -60 dBFS). When only the kept
    /// patches were decoded (a long file heard by seeking), estimated from them: their
    /// share of audible frames times the duration.
    pub active_s: f64,
    /// When heard by seeking: audible and measured 50 ms frames in the decoded patches.
    pub activity: Option<(usize, usize)>,
    /// Native sample rate.
    pub sample_rate_hz: u32,
    /// Codec description.
    pub codec: String,
    /// Corrupt packets skipped while decoding.
    pub skipped_packets: usize,
    /// True if the track was shorter than one patch and was zero-padded.
    pub padded: bool,
}

impl Heard {
    /// The same track with only the kept patches at positions `keep` (in order), for a
    /// first, cheaper look at it. The whole-signal copy is not carried.
    pub fn subset(&self, keep: &[usize]) -> Heard {
        let mut patches = Vec::with_capacity(keep.len() * PATCH_FRAMES * MUSICNN_N_MELS);
        for &k in keep {
            patches.extend_from_slice(self.patch(k));
        }
        Heard {
            path: self.path.clone(),
            patches,
            indices: keep.iter().map(|&k| self.indices[k]).collect(),
            kept_db: keep.iter().map(|&k| self.kept_db[k]).collect(),
            pending: Vec::new(),
            activity: self.activity,
            total_patches: self.total_patches,
            samples_16k: None,
            duration_s: self.duration_s,
            active_s: self.active_s,
            sample_rate_hz: self.sample_rate_hz,
            codec: self.codec.clone(),
            skipped_packets: self.skipped_packets,
            padded: self.padded,
        }
    }

    /// Number of kept patches.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True if no patch was kept.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Patch `k` of the kept ones (187 x 96 values).
    pub fn patch(&self, k: usize) -> &[f32] {
        let n = PATCH_FRAMES * MUSICNN_N_MELS;
        &self.patches[k * n..(k + 1) * n]
    }

    /// Seconds of audio the kept patches cover.
    pub fn listened_s(&self) -> f64 {
        (self.len() as f64 * PATCH_SECS as f64).min(self.duration_s.max(PATCH_SECS as f64))
    }

    /// Whether kept patch `k` should count towards the track's decision: not silent,
    /// and not in the intro or outro of a long track (when enough other patches are
    /// left to decide with).
    pub fn decides(&self) -> Vec<bool> {
        let audible: Vec<bool> = (0..self.indices.len())
            .map(|k| self.kept_db.get(k).is_none_or(|&db| db > SILENT_PATCH_DB))
            .collect();
        let (lo, hi) = edge_bounds(self.total_patches);
        let inner: Vec<bool> = self
            .indices
            .iter()
            .zip(&audible)
            .map(|(&i, &a)| a && i >= lo && i < hi)
            .collect();
        if inner.iter().any(|&b| b) {
            inner
        } else if audible.iter().any(|&b| b) {
            audible
        } else {
            vec![true; self.indices.len()]
        }
    }
}

/// The patch range `[lo, hi)` that is neither intro nor outro: on tracks of at least
/// [`EDGE_MIN_PATCHES`] patches, a tenth of the track (at most 30 s) at each end.
pub fn edge_bounds(total: usize) -> (usize, usize) {
    if total < EDGE_MIN_PATCHES {
        return (0, total);
    }
    let margin = (total / 10).min(10);
    (margin, total - margin)
}

/// Evenly spread `k` of `total` indices (centres of `k` equal parts).
pub fn spread_indices(total: usize, k: usize) -> Vec<usize> {
    if total <= k {
        return (0..total).collect();
    }
    (0..k).map(|i| ((2 * i + 1) * total) / (2 * k)).collect()
}

/// The patches to analyse of a track of `total` patches: at most `k`, evenly spread
/// over the part that is neither intro nor outro.
pub fn plan_patches(total: usize, k: usize) -> Vec<usize> {
    let (lo, hi) = edge_bounds(total);
    spread_indices(hi - lo, k)
        .into_iter()
        .map(|i| i + lo)
        .collect()
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

    fn finish(mut self, total: usize) -> Vec<(usize, Vec<f32>)> {
        if let (None, Some(max)) = (&self.planned, self.max)
            && self.kept.len() > max
        {
            // Prefer the kept patches outside the intro and outro.
            let (lo, hi) = edge_bounds(total);
            let inner: Vec<usize> = (0..self.kept.len())
                .filter(|&j| (lo..hi).contains(&self.kept[j].0))
                .collect();
            let pool: Vec<usize> = if inner.len() >= max {
                inner
            } else {
                (0..self.kept.len()).collect()
            };
            let pick: Vec<usize> = spread_indices(pool.len(), max)
                .into_iter()
                .map(|j| pool[j])
                .collect();
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

/// Streaming loudness: per-patch RMS and seconds of audible sound.
#[derive(Default)]
struct Loudness {
    patch_sq: Vec<f64>,
    pos: usize,
    frame_sq: f64,
    frame_n: usize,
    active_frames: usize,
}

impl Loudness {
    fn push(&mut self, x: &[f32]) {
        let active = 10f64.powf(ACTIVE_DB as f64 / 10.0);
        for &v in x {
            let sq = (v as f64) * (v as f64);
            let p = self.pos / PATCH_SAMPLES;
            if p >= self.patch_sq.len() {
                self.patch_sq.push(0.0);
            }
            self.patch_sq[p] += sq;
            self.pos += 1;
            self.frame_sq += sq;
            self.frame_n += 1;
            if self.frame_n == ACTIVITY_FRAME {
                if self.frame_sq / ACTIVITY_FRAME as f64 > active {
                    self.active_frames += 1;
                }
                self.frame_sq = 0.0;
                self.frame_n = 0;
            }
        }
    }

    fn finish(mut self, total_patches: usize) -> (Vec<f32>, f64) {
        if self.frame_n > 0
            && self.frame_sq / ACTIVITY_FRAME as f64 > 10f64.powf(ACTIVE_DB as f64 / 10.0)
        {
            self.active_frames += 1;
        }
        let db = (0..total_patches)
            .map(|p| {
                let sq = self.patch_sq.get(p).copied().unwrap_or(0.0);
                (10.0 * (sq / PATCH_SAMPLES as f64).max(1e-12).log10()) as f32
            })
            .collect();
        let active_s =
            self.active_frames as f64 * ACTIVITY_FRAME as f64 / MUSICNN_SAMPLE_RATE_HZ as f64;
        (db, active_s)
    }
}

/// Decode `path` and keep what a model needs.
///
/// Never panics (decoding goes through [`Resampled`], whose decoder is
/// panic-guarded): a malformed file is an error for that file and a batch goes on.
pub fn listen(path: &Path, opts: &ListenOptions) -> Result<Heard, DecodeError> {
    let mut stream = Resampled::open(path, MUSICNN_SAMPLE_RATE_HZ)?;
    let total = stream
        .expected_frames()
        .map(|n16| ((1 + n16 / MUSICNN_HOP as u64) / PATCH_FRAMES as u64) as usize);
    if let (true, false, Some(max), Some(total)) = (opts.seek, opts.whole, opts.max_patches, total)
        && total >= SEEK_MIN_PATCHES
    {
        let plan = plan_patches(total, max);
        let (now, pending) = match opts.first_look {
            Some(n) if n < plan.len() => first_look(&plan, n),
            _ => (plan, Vec::new()),
        };
        if let Some(mut heard) = hear_patches(&mut stream, &now, total)? {
            heard.pending = pending;
            return Ok(heard);
        }
        // The format could not seek after all: decode it whole, from the start.
        stream = Resampled::open(path, MUSICNN_SAMPLE_RATE_HZ)?;
    }
    let info = stream.info().clone();
    let mut l = Listener::new(opts, total);
    let mut buf16 = Vec::new();
    loop {
        buf16.clear();
        let more = stream.next_into(&mut buf16)?;
        l.push(&buf16);
        if !more {
            break;
        }
    }
    Ok(l.finish(Source {
        path: path.to_path_buf(),
        duration_s: stream.decoded_secs(),
        sample_rate_hz: info.sample_rate_hz,
        codec: info.codec,
        skipped_packets: stream.skipped_packets(),
    }))
}

/// `n` of the planned patches, spread over them (the positions adaptive listening's
/// first look takes), and the others.
pub fn first_look(plan: &[usize], n: usize) -> (Vec<usize>, Vec<usize>) {
    let picks: Vec<usize> = (0..n)
        .map(|j| ((2 * j + 1) * plan.len()) / (2 * n))
        .collect();
    let (mut now, mut rest) = (Vec::new(), Vec::new());
    for (k, &p) in plan.iter().enumerate() {
        if picks.contains(&k) {
            now.push(p);
        } else {
            rest.push(p);
        }
    }
    (now, rest)
}

/// Hear patches `patches` (ascending, none the first) of a track of `total` patches by
/// seeking to each. `None` if the stream cannot seek or ends before a patch (the caller
/// decodes the file whole instead).
fn hear_patches(
    stream: &mut Resampled,
    patches: &[usize],
    total: usize,
) -> Result<Option<Heard>, DecodeError> {
    let per_patch = PATCH_FRAMES * MUSICNN_N_MELS;
    // Centred frame g covers samples [g * hop - n_fft / 2, g * hop + n_fft / 2).
    let half = MUSICNN_N_FFT / 2;
    let need = PATCH_SAMPLES + half;
    let mut data = Vec::with_capacity(patches.len() * per_patch);
    let mut kept_db = Vec::with_capacity(patches.len());
    let (mut active, mut measured) = (0, 0);
    let mut buf = Vec::with_capacity(need + 8192);
    for &p in patches {
        let Some(start) = (p * PATCH_SAMPLES).checked_sub(half) else {
            return Ok(None);
        };
        if !stream.seek_to(start as u64)? {
            return Ok(None);
        }
        buf.clear();
        while buf.len() < need {
            if !stream.next_into(&mut buf)? {
                return Ok(None);
            }
        }
        let mut mel = LogMelStream::uncentred();
        let mut frames = Vec::with_capacity(per_patch + MUSICNN_N_MELS);
        mel.push(&buf[..need], &mut frames);
        if frames.len() < per_patch {
            return Ok(None);
        }
        data.extend_from_slice(&frames[..per_patch]);
        let mut loud = Loudness::default();
        loud.push(&buf[half..half + PATCH_SAMPLES]);
        active += loud.active_frames;
        measured += PATCH_SAMPLES / ACTIVITY_FRAME;
        let (db, _) = loud.finish(1);
        kept_db.push(db[0]);
    }
    let info = stream.info();
    let rate = info.sample_rate_hz.max(1);
    let duration_s = info.total_frames.unwrap_or(0) as f64 / rate as f64;
    Ok(Some(Heard {
        path: stream.path().to_path_buf(),
        patches: data,
        indices: patches.to_vec(),
        kept_db,
        pending: Vec::new(),
        total_patches: total,
        samples_16k: None,
        duration_s,
        active_s: estimate_active(active, measured, duration_s),
        activity: Some((active, measured)),
        sample_rate_hz: rate,
        codec: info.codec.clone(),
        skipped_packets: stream.skipped_packets(),
        padded: false,
    }))
}

fn estimate_active(active: usize, measured: usize, duration_s: f64) -> f64 {
    duration_s * active as f64 / measured.max(1) as f64
}

impl Heard {
    /// Hear the [`pending`](Heard::pending) patches too: the same track with every planned
    /// patch, in order (the file is opened again and sought to each).
    pub fn hear_rest(&self) -> Result<Heard, DecodeError> {
        if self.pending.is_empty() {
            return Ok(self.clone());
        }
        let mut stream = Resampled::open(&self.path, MUSICNN_SAMPLE_RATE_HZ)?;
        let Some(rest) = hear_patches(&mut stream, &self.pending, self.total_patches)? else {
            return Err(DecodeError::Malformed {
                path: self.path.clone(),
                reason: "the file could not be sought a second time".into(),
            });
        };
        let per_patch = PATCH_FRAMES * MUSICNN_N_MELS;
        let mut order: Vec<(usize, &[f32], f32)> = (0..self.len())
            .map(|k| (self.indices[k], self.patch(k), self.kept_db[k]))
            .chain((0..rest.len()).map(|k| (rest.indices[k], rest.patch(k), rest.kept_db[k])))
            .collect();
        order.sort_by_key(|o| o.0);
        let mut patches = Vec::with_capacity(order.len() * per_patch);
        for o in &order {
            patches.extend_from_slice(o.1);
        }
        let (a0, m0) = self.activity.unwrap_or((0, 0));
        let (a1, m1) = rest.activity.unwrap_or((0, 0));
        Ok(Heard {
            patches,
            indices: order.iter().map(|o| o.0).collect(),
            kept_db: order.iter().map(|o| o.2).collect(),
            pending: Vec::new(),
            active_s: estimate_active(a0 + a1, m0 + m1, self.duration_s),
            activity: Some((a0 + a1, m0 + m1)),
            skipped_packets: self.skipped_packets + rest.skipped_packets,
            ..self.clone()
        })
    }
}

/// Like [`listen`], but heard through a simulated recording difference (re-encoded,
/// filtered, louder or quieter): for robustness measurements.
pub fn listen_shifted(
    path: &Path,
    opts: &ListenOptions,
    shift: Shift,
) -> Result<Heard, DecodeError> {
    if shift == Shift::Clean {
        return listen(path, opts);
    }
    let x = shift.decode_16k(path)?;
    let mut l = Listener::new(opts, Some(x.len() / (PATCH_FRAMES * MUSICNN_HOP)));
    l.push(&x);
    Ok(l.finish(Source {
        path: path.to_path_buf(),
        duration_s: x.len() as f64 / MUSICNN_SAMPLE_RATE_HZ as f64,
        sample_rate_hz: MUSICNN_SAMPLE_RATE_HZ,
        codec: format!("shifted ({shift})"),
        skipped_packets: 0,
    }))
}

/// Facts about the decoded file, for [`Heard`].
struct Source {
    path: PathBuf,
    duration_s: f64,
    sample_rate_hz: u32,
    codec: String,
    skipped_packets: usize,
}

/// Streaming patch cutter: 16 kHz samples in, the kept log-mel patches out.
struct Listener {
    keeper: Keeper,
    mel: LogMelStream,
    loud: Loudness,
    whole: Option<Vec<f32>>,
    frames: Vec<f32>,
    next_patch: usize,
}

impl Listener {
    fn new(opts: &ListenOptions, total_patches: Option<usize>) -> Self {
        let planned = match (opts.max_patches, total_patches) {
            (Some(max), Some(total)) => Some(plan_patches(total, max)),
            _ => None,
        };
        Self {
            keeper: Keeper {
                max: opts.max_patches,
                planned,
                stride: 1,
                kept: Vec::new(),
                last: None,
            },
            mel: LogMelStream::new(),
            loud: Loudness::default(),
            whole: opts.whole.then(Vec::new),
            frames: Vec::new(),
            next_patch: 0,
        }
    }

    fn cut(&mut self) {
        let per_patch = PATCH_FRAMES * MUSICNN_N_MELS;
        let n = self.frames.len() / per_patch;
        for p in 0..n {
            self.keeper.offer(
                self.next_patch,
                &self.frames[p * per_patch..(p + 1) * per_patch],
            );
            self.next_patch += 1;
        }
        self.frames.drain(..n * per_patch);
    }

    fn push(&mut self, x16: &[f32]) {
        self.loud.push(x16);
        self.mel.push(x16, &mut self.frames);
        if let Some(w) = self.whole.as_mut() {
            w.extend_from_slice(x16);
        }
        self.cut();
    }

    fn finish(mut self, src: Source) -> Heard {
        let per_patch = PATCH_FRAMES * MUSICNN_N_MELS;
        self.mel.finish(&mut self.frames);
        let mut padded = false;
        if self.next_patch == 0 && self.frames.len() < per_patch {
            // Shorter than one patch: pad with silence (log-mel 0) so the model still hears
            // it; the decision knows how little sound there was (`active_s`).
            padded = true;
            self.frames.resize(per_patch, 0.0);
        }
        self.cut();
        let total = self.next_patch;
        let kept = self.keeper.finish(total);
        let (patch_db, active_s) = self.loud.finish(total);
        let mut data = Vec::with_capacity(kept.len() * per_patch);
        let mut indices = Vec::with_capacity(kept.len());
        for (i, p) in kept {
            indices.push(i);
            data.extend_from_slice(&p);
        }
        // A patch index past the complete ones (a short, padded track) counts as audible.
        let kept_db = indices
            .iter()
            .map(|&i| patch_db.get(i).copied().unwrap_or(0.0))
            .collect();
        Heard {
            path: src.path,
            patches: data,
            indices,
            kept_db,
            pending: Vec::new(),
            activity: None,
            total_patches: total,
            samples_16k: self.whole,
            duration_s: src.duration_s,
            active_s,
            sample_rate_hz: src.sample_rate_hz,
            codec: src.codec,
            skipped_packets: src.skipped_packets,
            padded,
        }
    }
}

/// Decode `files` on a worker thread, up to `ahead` files ahead of the consumer, so
/// decoding overlaps inference. Yields each file with what was heard (or its error),
/// in order. Dropping the iterator stops the worker after the file in hand.
pub fn listen_ahead(
    files: impl IntoIterator<Item = PathBuf> + Send + 'static,
    opts: ListenOptions,
    ahead: usize,
) -> impl Iterator<Item = (PathBuf, Result<Heard, DecodeError>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(ahead.max(1));
    std::thread::spawn(move || {
        for path in files {
            let heard = listen(&path, &opts);
            if tx.send((path, heard)).is_err() {
                break; // the consumer stopped
            }
        }
    });
    rx.into_iter()
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
    fn long_tracks_skip_intro_and_outro() {
        // A 30 s clip: every patch is fair game.
        assert_eq!(plan_patches(10, 10), (0..10).collect::<Vec<_>>());
        // A 4-minute song (80 patches): the first and last 24 s are left out.
        let p = plan_patches(80, 10);
        assert_eq!(p.len(), 10);
        assert!(p[0] >= 8 && *p.last().unwrap_or(&0) < 72, "{p:?}");
        // An hour (1200 patches): the margin is capped at 30 s.
        assert_eq!(edge_bounds(1200), (10, 1190));
    }

    #[test]
    fn first_look_takes_spread_patches_and_leaves_the_rest() {
        let plan = plan_patches(80, 10);
        let (now, rest) = first_look(&plan, 4);
        assert_eq!(now, vec![plan[1], plan[3], plan[6], plan[8]]);
        assert_eq!(rest.len(), 6);
        let mut all: Vec<usize> = now.iter().chain(&rest).copied().collect();
        all.sort_unstable();
        assert_eq!(all, plan);
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
        let kept = k.finish(1000);
        assert_eq!(kept.len(), 4);
        assert!(kept.first().map(|k| k.0).unwrap_or(0) < 300);
        assert!(kept.last().map(|k| k.0).unwrap_or(0) > 600);
    }

    #[test]
    fn loudness_finds_silence_and_sound() {
        let mut l = Loudness::default();
        l.push(&vec![0.0; PATCH_SAMPLES]);
        let tone: Vec<f32> = (0..PATCH_SAMPLES)
            .map(|i| 0.1 * (i as f32 * 0.1).sin())
            .collect();
        l.push(&tone);
        let (db, active) = l.finish(2);
        assert!(db[0] < -100.0, "silence {}", db[0]);
        assert!((db[1] - (20.0 * (0.1f32 / 2f32.sqrt()).log10())).abs() < 0.5);
        assert!((active - PATCH_SECS as f64).abs() < 0.06, "{active}");
    }

    #[test]
    fn decision_patches_leave_out_silence_and_edges() {
        let heard = Heard {
            path: PathBuf::from("x"),
            patches: Vec::new(),
            indices: vec![0, 10, 20, 30, 39],
            kept_db: vec![-20.0, -20.0, -90.0, -20.0, -20.0],
            pending: Vec::new(),
            activity: None,
            total_patches: 40,
            samples_16k: None,
            duration_s: 120.0,
            active_s: 117.0,
            sample_rate_hz: 16_000,
            codec: String::new(),
            skipped_packets: 0,
            padded: false,
        };
        assert_eq!(heard.decides(), vec![false, true, false, true, false]);
    }
}
