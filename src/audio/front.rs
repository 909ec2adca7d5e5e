//! The one way into decoded audio: open (panic-guarded), decode, mix to mono and
//! resample to the rate the caller works at, chunk by chunk.
//!
//! Analysis, training features and the app's track view all read audio through
//! [`Resampled`] (or [`read_resampled`] for a whole file), so a fix to decoding,
//! resampling or error handling lands everywhere at once. Log-mel frames are the
//! caller's business ([`crate::dsp::LogMelStream`]).

use std::path::{Path, PathBuf};

use super::{AudioInfo, AudioStream, StreamResampler, open};
use crate::error::DecodeError;

/// A decoding stream resampled to a fixed rate.
pub struct Resampled {
    path: PathBuf,
    stream: Box<dyn AudioStream>,
    resampler: StreamResampler,
    rate_hz: u32,
    native_samples: u64,
    finished: bool,
    /// Output samples still to drop after a seek (the seek lands a little early).
    drop_out: u64,
}

/// Native audio decoded before a sought position (at most this many seconds, rounded down
/// to the resampler's period): codecs with overlapping blocks (MP3, AAC, Vorbis) and the
/// resampler's filter settle on it, so what follows matches a decode from the start.
const SEEK_PREROLL_S: f64 = 0.1;

impl Resampled {
    /// Open `path` and resample it to `rate_hz`. Fails only if decoding cannot start.
    pub fn open(path: &Path, rate_hz: u32) -> Result<Self, DecodeError> {
        // Once per file for every batch (analysis, training, the app): keep the heap
        // from growing with the number of files (see `heap`).
        super::heap::release_free_pages();
        let stream = open(path)?;
        let resampler = new_resampler(path, stream.info().sample_rate_hz, rate_hz)?;
        Ok(Self {
            path: path.to_path_buf(),
            stream,
            resampler,
            rate_hz,
            native_samples: 0,
            finished: false,
            drop_out: 0,
        })
    }

    /// Continue at output sample `at` (at the output rate, from the start of the audio).
    /// `Ok(false)` when the file cannot seek; the stream is then where it was.
    ///
    /// Decoding restarts a little before `at` (see [`SEEK_PREROLL_S`]) at a native frame
    /// that falls exactly on an output sample, so the samples that follow are the same
    /// as a decode from the start up to float rounding (tested).
    pub fn seek_to(&mut self, at: u64) -> Result<bool, DecodeError> {
        let native = self.stream.info().sample_rate_hz.max(1) as u64;
        let out = self.rate_hz.max(1) as u64;
        let g = gcd(native, out);
        let (period_in, period_out) = (native / g, out / g);
        let preroll = (SEEK_PREROLL_S * native as f64) as u64;
        let periods = (at * native / out).saturating_sub(preroll) / period_in;
        let (from_native, from_out) = (periods * period_in, periods * period_out);
        if !self.stream.seek_to(from_native)? {
            return Ok(false);
        }
        self.resampler = new_resampler(&self.path, native as u32, self.rate_hz)?;
        self.drop_out = at - from_out;
        self.finished = false;
        Ok(true)
    }

    /// Properties of the file (native rate, channels, codec, length if known).
    pub fn info(&self) -> &AudioInfo {
        self.stream.info()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The output rate.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Frames at the output rate the whole file will give, when the container says.
    pub fn expected_frames(&self) -> Option<u64> {
        let info = self.stream.info();
        info.total_frames
            .map(|n| (n * self.rate_hz as u64).div_ceil(info.sample_rate_hz.max(1) as u64))
    }

    /// Append the next resampled samples to `out`. Returns `false` once the stream is
    /// exhausted (the resampler's tail has then been flushed into `out` too).
    pub fn next_into(&mut self, out: &mut Vec<f32>) -> Result<bool, DecodeError> {
        if self.finished {
            return Ok(false);
        }
        match self.stream.next_chunk()? {
            Some(chunk) => {
                self.native_samples += chunk.len() as u64;
                if self.drop_out == 0 {
                    self.resampler.push(&chunk, out);
                } else {
                    let from = out.len();
                    self.resampler.push(&chunk, out);
                    let drop = (self.drop_out as usize).min(out.len() - from);
                    out.drain(from..from + drop);
                    self.drop_out -= drop as u64;
                }
                Ok(true)
            }
            None => {
                self.finished = true;
                if self.native_samples == 0 {
                    return Err(DecodeError::Empty {
                        path: self.path.clone(),
                    });
                }
                self.resampler.finish(out);
                Ok(false)
            }
        }
    }

    /// Seconds decoded so far (at the native rate, so exact; after a seek, what was
    /// decoded, not where the stream is).
    pub fn decoded_secs(&self) -> f64 {
        self.native_samples as f64 / self.stream.info().sample_rate_hz.max(1) as f64
    }

    /// Corrupt packets skipped so far.
    pub fn skipped_packets(&self) -> usize {
        self.stream.skipped_packets()
    }
}

/// A resampler for `path`'s audio, its failure as a [`DecodeError`] naming the file.
pub(crate) fn new_resampler(
    path: &Path,
    from: u32,
    to: u32,
) -> Result<StreamResampler, DecodeError> {
    StreamResampler::new(from, to).map_err(|e| DecodeError::Unsupported {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// A whole file decoded at one rate.
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    /// Mono samples at `rate_hz`.
    pub samples: Vec<f32>,
    /// Their rate.
    pub rate_hz: u32,
    /// The file's properties.
    pub info: AudioInfo,
    /// Seconds decoded (native rate).
    pub duration_s: f64,
    /// Corrupt packets skipped.
    pub skipped_packets: usize,
}

/// Decode a whole file to mono samples at `rate_hz`.
pub fn read_resampled(path: &Path, rate_hz: u32) -> Result<DecodedAudio, DecodeError> {
    let mut s = Resampled::open(path, rate_hz)?;
    // A header may claim any length: reserve at most 16 MiB up front, grow as decoded.
    let mut samples = Vec::with_capacity(s.expected_frames().unwrap_or(0).min(1 << 22) as usize);
    while s.next_into(&mut samples)? {}
    Ok(DecodedAudio {
        samples,
        rate_hz,
        info: s.info().clone(),
        duration_s: s.decoded_secs(),
        skipped_packets: s.skipped_packets(),
    })
}
