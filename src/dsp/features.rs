//! Frame-level features: musicnn's log-mel, dB scaling, MFCC (DCT-II, ortho), chroma.

use super::{MelFilterbank, PowerStft};

/// musicnn's compression: round mel power to f16, then `log10(10000 x + 1)` in f32.
///
/// The f16 rounding reproduces the reference pipeline exactly; doing the
/// multiplication in f16 (as musicnn 0.1.0 does under numpy 2) would overflow.
pub fn musicnn_log(mel_power: f32) -> f32 {
    let x = half::f16::from_f32(mel_power).to_f32();
    (10_000.0 * x + 1.0).log10()
}

/// librosa's `power_to_db(S, ref=1.0, amin=1e-10, top_db=80)` over a whole matrix.
pub fn power_to_db(power: &[f32]) -> Vec<f32> {
    let db: Vec<f32> = power.iter().map(|&p| 10.0 * p.max(1e-10).log10()).collect();
    let max = db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    db.into_iter().map(|d| d.max(max - 80.0)).collect()
}

/// MFCCs of one frame of log-mel (dB) values: orthonormal DCT-II, first `n_mfcc` coefficients.
pub fn mfcc(log_mel: &[f32], n_mfcc: usize) -> Vec<f32> {
    let n = log_mel.len() as f64;
    (0..n_mfcc)
        .map(|k| {
            let sum: f64 = log_mel
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    x as f64
                        * (std::f64::consts::PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n))
                            .cos()
                })
                .sum();
            let scale = if k == 0 {
                (1.0 / n).sqrt()
            } else {
                (2.0 / n).sqrt()
            };
            (sum * scale) as f32
        })
        .collect()
}

/// 12-bin chroma (C = 0 … B = 11) of one power frame, max-normalised.
///
/// Each FFT bin above 32 Hz adds its power to the two pitch classes nearest its
/// frequency, weighted linearly by distance (A4 = 440 Hz).
pub fn chroma(power: &[f32], sample_rate_hz: u32, n_fft: usize) -> [f32; 12] {
    let mut out = [0.0f32; 12];
    for (k, &p) in power.iter().enumerate().skip(1) {
        let f = k as f64 * sample_rate_hz as f64 / n_fft as f64;
        if f < 32.0 {
            continue;
        }
        let pitch = 12.0 * (f / 440.0).log2() + 9.0; // semitones above C, A = 9
        let pc = pitch.rem_euclid(12.0);
        let lo = pc.floor() as usize % 12;
        let frac = (pc - pc.floor()) as f32;
        out[lo] += p * (1.0 - frac);
        out[(lo + 1) % 12] += p * frac;
    }
    let max = out.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        out.iter_mut().for_each(|v| *v /= max);
    }
    out
}

/// Streaming musicnn front end: 16 kHz samples in, 96-band log-mel frames out.
pub struct LogMelStream {
    stft: PowerStft,
    mel: MelFilterbank,
    frame: Vec<f32>,
}

/// musicnn's STFT size.
pub const MUSICNN_N_FFT: usize = 512;
/// musicnn's hop.
pub const MUSICNN_HOP: usize = 256;
/// musicnn's mel bands.
pub const MUSICNN_N_MELS: usize = 96;
/// musicnn's sample rate.
pub const MUSICNN_SAMPLE_RATE_HZ: u32 = 16_000;

impl Default for LogMelStream {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMelStream {
    /// musicnn's configuration: 16 kHz, n_fft 512, hop 256, 96 Slaney mels over 0–8 kHz.
    pub fn new() -> Self {
        Self::with_stft(PowerStft::new(MUSICNN_N_FFT, MUSICNN_HOP))
    }

    /// The same for a piece cut from inside a track: frame `f` covers samples
    /// `[f * 256, f * 256 + 512)` of what is pushed (see [`PowerStft::uncentred`]).
    pub fn uncentred() -> Self {
        Self::with_stft(PowerStft::uncentred(MUSICNN_N_FFT, MUSICNN_HOP))
    }

    fn with_stft(stft: PowerStft) -> Self {
        Self {
            stft,
            mel: MelFilterbank::new(
                MUSICNN_SAMPLE_RATE_HZ,
                MUSICNN_N_FFT,
                MUSICNN_N_MELS,
                0.0,
                8000.0,
            ),
            frame: vec![0.0; MUSICNN_N_MELS],
        }
    }

    /// Push 16 kHz samples; each finished log-mel frame is appended to `out` (96 values each).
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        let (mel, frame) = (&self.mel, &mut self.frame);
        self.stft.push(samples, |p| {
            mel.apply(p, frame);
            out.extend(frame.iter().map(|&m| musicnn_log(m)));
        });
    }

    /// Flush the final frames.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let (mel, frame) = (&self.mel, &mut self.frame);
        self.stft.finish(|p| {
            mel.apply(p, frame);
            out.extend(frame.iter().map(|&m| musicnn_log(m)));
        });
    }
}

/// Log-mel of a whole 16 kHz signal, frame-major (`frames * 96` values).
pub fn musicnn_log_mel(signal_16k: &[f32]) -> Vec<f32> {
    let mut s = LogMelStream::new();
    let mut out = Vec::new();
    s.push(signal_16k, &mut out);
    s.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfcc_of_constant_is_only_c0() {
        let c = mfcc(&[3.0; 40], 13);
        assert!((c[0] - 3.0 * 40f32.sqrt()).abs() < 1e-4);
        assert!(c[1..].iter().all(|v| v.abs() < 1e-4));
    }

    #[test]
    fn chroma_of_a440_is_a() {
        let sr = 22_050;
        let x: Vec<f32> = (0..4096)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin())
            .collect();
        let frames = super::super::stft::power_spectrogram(&x, 4096, 4096);
        let c = chroma(&frames[1], sr, 4096);
        let best = (0..12).max_by(|&a, &b| c[a].total_cmp(&c[b]));
        assert_eq!(best, Some(9));
    }

    #[test]
    fn musicnn_log_values() {
        assert_eq!(musicnn_log(0.0), 0.0);
        assert!((musicnn_log(1.0) - 10_001f32.log10()).abs() < 1e-6);
        // A value f16 cannot hold exactly is rounded first.
        let x = 0.123_456_7f32;
        let r = half::f16::from_f32(x).to_f32();
        assert_eq!(musicnn_log(x), (10_000.0 * r + 1.0).log10());
    }

    #[test]
    fn db_clips_to_top_80() {
        let db = power_to_db(&[1.0, 1e-12, 0.1]);
        assert!((db[0] - 0.0).abs() < 1e-6);
        assert!((db[1] + 80.0).abs() < 1e-4);
        assert!((db[2] + 10.0).abs() < 1e-4);
    }
}
