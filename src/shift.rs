//! Recording differences, simulated: re-encoding (MP3/AAC at low bit rates),
//! band-limiting, EQ tilt and loudness changes applied to a track before its
//! features are computed.
//!
//! Used two ways: as training augmentation (the model sees the same music through
//! several "recording chains", so it cannot lean on one dataset's quirks), and by
//! `genretag eval --robustness` (accuracy under each shift). Encodings run ffmpeg on
//! the original file into a private temporary folder; nothing derived is kept.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::audio::read_resampled;
use crate::dsp::features::MUSICNN_SAMPLE_RATE_HZ;
use crate::error::DecodeError;

/// One simulated difference in how a track was recorded or delivered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Shift {
    /// The file as it is.
    Clean,
    /// Re-encoded to MP3 (LAME) at this bit rate.
    Mp3 {
        /// kbit/s.
        kbps: u32,
    },
    /// Re-encoded to AAC (ffmpeg's encoder) at this bit rate.
    Aac {
        /// kbit/s.
        kbps: u32,
    },
    /// Everything above this frequency removed (a 4th-order low-pass).
    Lowpass {
        /// Cut-off, Hz.
        hz: f32,
    },
    /// Everything below this frequency removed (a 4th-order high-pass; thin speakers).
    Highpass {
        /// Cut-off, Hz.
        hz: f32,
    },
    /// Spectral tilt around 1 kHz: positive brightens, negative darkens.
    Tilt {
        /// dB per octave.
        db_per_octave: f32,
    },
    /// Level change (peaks clipped at full scale, as a hot master would be).
    Gain {
        /// dB.
        db: f32,
    },
}

impl Shift {
    /// The shifts of the robustness table and of training augmentation.
    pub const STANDARD: [Shift; 10] = [
        Shift::Clean,
        Shift::Mp3 { kbps: 64 },
        Shift::Mp3 { kbps: 128 },
        Shift::Aac { kbps: 64 },
        Shift::Aac { kbps: 128 },
        Shift::Lowpass { hz: 4000.0 },
        Shift::Highpass { hz: 300.0 },
        Shift::Tilt { db_per_octave: 3.0 },
        Shift::Tilt {
            db_per_octave: -3.0,
        },
        Shift::Gain { db: -18.0 },
    ];

    /// Short name (cache keys, reports, `--shift` values): `clean`, `mp3-64`, `aac-128`,
    /// `lowpass-4000`, `highpass-300`, `tilt+3`, `tilt-3`, `gain-18`, `gain+6`.
    pub fn name(&self) -> String {
        match *self {
            Shift::Clean => "clean".into(),
            Shift::Mp3 { kbps } => format!("mp3-{kbps}"),
            Shift::Aac { kbps } => format!("aac-{kbps}"),
            Shift::Lowpass { hz } => format!("lowpass-{hz:.0}"),
            Shift::Highpass { hz } => format!("highpass-{hz:.0}"),
            Shift::Tilt { db_per_octave } => format!("tilt{db_per_octave:+.0}"),
            Shift::Gain { db } => format!("gain{db:+.0}"),
        }
    }

    /// Parse a [`Shift::name`].
    pub fn parse(s: &str) -> Option<Shift> {
        let s = s.trim().to_ascii_lowercase();
        if s == "clean" {
            return Some(Shift::Clean);
        }
        let num = |prefix: &str| -> Option<f32> { s.strip_prefix(prefix)?.parse().ok() };
        if let Some(k) = num("mp3-") {
            return Some(Shift::Mp3 { kbps: k as u32 });
        }
        if let Some(k) = num("aac-") {
            return Some(Shift::Aac { kbps: k as u32 });
        }
        if let Some(hz) = num("lowpass-") {
            return Some(Shift::Lowpass { hz });
        }
        if let Some(hz) = num("highpass-") {
            return Some(Shift::Highpass { hz });
        }
        if let Some(d) = num("tilt") {
            return Some(Shift::Tilt { db_per_octave: d });
        }
        num("gain").map(|db| Shift::Gain { db })
    }

    /// True if this shift needs ffmpeg.
    pub fn needs_ffmpeg(&self) -> bool {
        matches!(self, Shift::Mp3 { .. } | Shift::Aac { .. })
    }

    /// Decode `path` to 16 kHz mono with this shift applied.
    pub fn decode_16k(&self, path: &Path) -> Result<Vec<f32>, DecodeError> {
        let rate = MUSICNN_SAMPLE_RATE_HZ;
        match *self {
            Shift::Mp3 { kbps } => reencode(path, "mp3", &["-c:a", "libmp3lame"], kbps, rate),
            Shift::Aac { kbps } => reencode(path, "m4a", &["-c:a", "aac"], kbps, rate),
            _ => {
                let mut x = read_resampled(path, rate)?.samples;
                self.apply_16k(&mut x);
                Ok(x)
            }
        }
    }

    /// Apply a signal-domain shift (not the encodings) to 16 kHz samples in place.
    pub fn apply_16k(&self, x: &mut [f32]) {
        let fs = MUSICNN_SAMPLE_RATE_HZ as f32;
        match *self {
            Shift::Lowpass { hz } => {
                for _ in 0..2 {
                    Biquad::lowpass(hz, fs).run(x);
                }
            }
            Shift::Highpass { hz } => {
                for _ in 0..2 {
                    Biquad::highpass(hz, fs).run(x);
                }
            }
            Shift::Tilt { db_per_octave } => tilt(x, db_per_octave, fs),
            Shift::Gain { db } => {
                let g = 10f32.powf(db / 20.0);
                x.iter_mut().for_each(|v| *v = (*v * g).clamp(-1.0, 1.0));
            }
            Shift::Clean | Shift::Mp3 { .. } | Shift::Aac { .. } => {}
        }
    }
}

impl std::fmt::Display for Shift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// True if ffmpeg can be run.
pub fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn reencode(
    path: &Path,
    ext: &str,
    codec: &[&str],
    kbps: u32,
    rate: u32,
) -> Result<Vec<f32>, DecodeError> {
    let io = |source: std::io::Error| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let out = dir.path().join(format!("shifted.{ext}"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "2"])
        .args(codec)
        .args(["-b:a", &format!("{kbps}k")])
        .arg(&out)
        .status()
        .map_err(io)?;
    if !status.success() {
        return Err(DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("ffmpeg could not re-encode it ({status})"),
        });
    }
    // The shifted copy is ours; errors name the original.
    read_resampled(&out, rate)
        .map(|d| d.samples)
        .map_err(|e| DecodeError::Malformed {
            path: path.to_path_buf(),
            reason: format!("re-encoded copy did not decode: {e}"),
        })
}

/// A second-order IIR section (RBJ cookbook), direct form I.
struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
}

impl Biquad {
    fn lowpass(hz: f32, fs: f32) -> Self {
        let w = 2.0 * std::f32::consts::PI * (hz / fs).min(0.49);
        let (s, c) = w.sin_cos();
        let alpha = s / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let a0 = 1.0 + alpha;
        Self {
            b: [(1.0 - c) / 2.0 / a0, (1.0 - c) / a0, (1.0 - c) / 2.0 / a0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
        }
    }

    fn highpass(hz: f32, fs: f32) -> Self {
        let w = 2.0 * std::f32::consts::PI * (hz / fs).min(0.49);
        let (s, c) = w.sin_cos();
        let alpha = s / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let a0 = 1.0 + alpha;
        Self {
            b: [(1.0 + c) / 2.0 / a0, -(1.0 + c) / a0, (1.0 + c) / 2.0 / a0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
        }
    }

    fn run(&self, x: &mut [f32]) {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for v in x.iter_mut() {
            let x0 = *v;
            let y0 =
                self.b[0] * x0 + self.b[1] * x1 + self.b[2] * x2 - self.a[0] * y1 - self.a[1] * y2;
            x2 = x1;
            x1 = x0;
            y2 = y1;
            y1 = y0;
            *v = y0;
        }
    }
}

/// Spectral tilt by FFT: gain `db_per_octave * log2(f / 1 kHz)` dB, limited to
/// +-12 dB, applied to the whole signal at once (tracks are at most minutes here).
fn tilt(x: &mut [f32], db_per_octave: f32, fs: f32) {
    use realfft::RealFftPlanner;
    let n = x.len();
    if n < 2 {
        return;
    }
    let mut planner = RealFftPlanner::<f32>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut spec = fwd.make_output_vec();
    let mut input = x.to_vec();
    if fwd.process(&mut input, &mut spec).is_err() {
        return;
    }
    for (k, c) in spec.iter_mut().enumerate() {
        let f = (k as f32 * fs / n as f32).max(20.0);
        let db = (db_per_octave * (f / 1000.0).log2()).clamp(-12.0, 12.0);
        *c *= 10f32.powf(db / 20.0) / n as f32;
    }
    // The inverse of a real signal's spectrum: DC and Nyquist bins must be real.
    if let Some(c) = spec.first_mut() {
        c.im = 0.0;
    }
    if n.is_multiple_of(2)
        && let Some(c) = spec.last_mut()
    {
        c.im = 0.0;
    }
    if inv.process(&mut spec, x).is_err() {
        return;
    }
    x.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / 16_000.0).sin())
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        let tail = &x[x.len() / 4..];
        (tail.iter().map(|v| v * v).sum::<f32>() / tail.len() as f32).sqrt()
    }

    #[test]
    fn names_round_trip() {
        for s in Shift::STANDARD {
            assert_eq!(Shift::parse(&s.name()), Some(s), "{s}");
        }
        assert_eq!(Shift::parse("gain+6"), Some(Shift::Gain { db: 6.0 }));
        assert_eq!(Shift::parse("nonsense"), None);
    }

    #[test]
    fn filters_remove_the_stopband_and_keep_the_passband() {
        let mut hi = sine(6000.0, 16_000);
        Shift::Lowpass { hz: 2000.0 }.apply_16k(&mut hi);
        assert!(
            rms(&hi) < 0.01,
            "6 kHz after a 2 kHz low-pass: {}",
            rms(&hi)
        );
        let mut lo = sine(200.0, 16_000);
        Shift::Lowpass { hz: 2000.0 }.apply_16k(&mut lo);
        assert!((rms(&lo) - 0.5 / 2f32.sqrt()).abs() < 0.02);
        let mut lo2 = sine(60.0, 16_000);
        Shift::Highpass { hz: 600.0 }.apply_16k(&mut lo2);
        assert!(rms(&lo2) < 0.01);
    }

    #[test]
    fn tilt_brightens_highs_and_darkens_lows() {
        let mut hi = sine(4000.0, 16_000);
        Shift::Tilt { db_per_octave: 3.0 }.apply_16k(&mut hi);
        // Two octaves above 1 kHz: +6 dB.
        assert!(
            (rms(&hi) / (0.5 / 2f32.sqrt()) - 2.0).abs() < 0.05,
            "{}",
            rms(&hi)
        );
        let mut gain = sine(440.0, 16_000);
        Shift::Gain { db: -20.0 }.apply_16k(&mut gain);
        assert!((rms(&gain) / (0.5 / 2f32.sqrt()) - 0.1).abs() < 0.005);
    }
}
