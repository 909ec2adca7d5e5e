//! Streaming short-time Fourier transform producing power spectra (realfft).
//!
//! Centred framing with zero padding of `n_fft / 2` on both sides, periodic Hann
//! window, as `librosa.stft(center=True, pad_mode="constant")`: a signal of `N`
//! samples gives `1 + N / hop` frames.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Periodic Hann window of length `n` (the `fftbins=True` window of scipy/librosa).
pub fn hann_periodic(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// Streaming power STFT: push samples, receive `|X|^2` frames of `n_fft / 2 + 1` bins.
pub struct PowerStft {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    /// Samples not yet fully consumed, starting at the next frame's first sample.
    buf: Vec<f32>,
    samples_in: u64,
    frames_out: u64,
    frame_in: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    power: Vec<f32>,
}

impl PowerStft {
    /// A new STFT with window length `n_fft` and hop `hop`.
    pub fn new(n_fft: usize, hop: usize) -> Self {
        Self::with_left_pad(n_fft, hop, n_fft / 2)
    }

    /// An STFT over a piece cut from inside a longer signal: no left padding, so frame
    /// `f` covers samples `[f * hop, f * hop + n_fft)` of what is pushed. Pushing a
    /// signal from `n_fft / 2` samples before centred frame `g` gives frames `g, g+1...`
    /// of the whole signal's centred STFT.
    pub fn uncentred(n_fft: usize, hop: usize) -> Self {
        Self::with_left_pad(n_fft, hop, 0)
    }

    fn with_left_pad(n_fft: usize, hop: usize, pad: usize) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            n_fft,
            hop,
            window: hann_periodic(n_fft),
            fft,
            buf: vec![0.0; pad],
            samples_in: 0,
            frames_out: 0,
            frame_in: vec![0.0; n_fft],
            spectrum,
            scratch,
            power: vec![0.0; n_fft / 2 + 1],
        }
    }

    /// Number of frequency bins per frame.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames a signal of `n_samples` yields.
    pub fn frames_for(n_samples: u64, hop: usize) -> u64 {
        1 + n_samples / hop as u64
    }

    /// Push samples; `on_frame` gets each completed power frame.
    pub fn push(&mut self, samples: &[f32], mut on_frame: impl FnMut(&[f32])) {
        self.samples_in += samples.len() as u64;
        self.buf.extend_from_slice(samples);
        self.drain(&mut on_frame, u64::MAX);
    }

    /// End of signal: right-pad and emit the remaining frames.
    pub fn finish(&mut self, mut on_frame: impl FnMut(&[f32])) {
        let total = Self::frames_for(self.samples_in, self.hop);
        self.buf
            .extend(std::iter::repeat_n(0.0, self.n_fft / 2 + self.hop));
        self.drain(&mut on_frame, total);
    }

    fn drain(&mut self, on_frame: &mut impl FnMut(&[f32]), limit: u64) {
        let mut start = 0;
        while start + self.n_fft <= self.buf.len() && self.frames_out < limit {
            for ((dst, &x), &w) in self
                .frame_in
                .iter_mut()
                .zip(&self.buf[start..start + self.n_fft])
                .zip(&self.window)
            {
                *dst = x as f64 * w;
            }
            // realfft only fails on wrongly sized buffers, and ours come from the plan.
            let _ = self.fft.process_with_scratch(
                &mut self.frame_in,
                &mut self.spectrum,
                &mut self.scratch,
            );
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                // librosa keeps the spectrum as complex64, then squares in f32.
                let (re, im) = (c.re as f32, c.im as f32);
                *p = re * re + im * im;
            }
            on_frame(&self.power);
            self.frames_out += 1;
            start += self.hop;
        }
        self.buf.drain(..start.min(self.buf.len()));
    }
}

/// Power spectrogram of a whole signal, frame-major `[frames][n_fft/2+1]`.
pub fn power_spectrogram(signal: &[f32], n_fft: usize, hop: usize) -> Vec<Vec<f32>> {
    let mut stft = PowerStft::new(n_fft, hop);
    let mut frames = Vec::new();
    stft.push(signal, |f| frames.push(f.to_vec()));
    stft.finish(|f| frames.push(f.to_vec()));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_matches_librosa() {
        for n in [0usize, 1, 255, 256, 257, 1000, 4096] {
            let frames = power_spectrogram(&vec![0.1; n], 512, 256);
            assert_eq!(
                frames.len() as u64,
                PowerStft::frames_for(n as u64, 256),
                "n = {n}"
            );
        }
    }

    #[test]
    fn sine_peaks_in_its_bin() {
        let sr = 16_000.0;
        let freq = 1000.0; // bin 1000 / (16000 / 512) = 32
        let x: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / sr).sin())
            .collect();
        let frames = power_spectrogram(&x, 512, 256);
        let mid = &frames[frames.len() / 2];
        let peak = mid
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(peak, Some(32));
    }

    #[test]
    fn chunking_does_not_change_frames() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
            .collect();
        let whole = power_spectrogram(&x, 512, 256);
        let mut stft = PowerStft::new(512, 256);
        let mut frames = Vec::new();
        for c in x.chunks(333) {
            stft.push(c, |f| frames.push(f.to_vec()));
        }
        stft.finish(|f| frames.push(f.to_vec()));
        assert_eq!(frames, whole);
    }
}
