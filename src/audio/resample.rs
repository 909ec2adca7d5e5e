//! Streaming high-quality sample-rate conversion (rubato's synchronous FFT resampler).
//!
//! Output length is `ceil(input_len * out_rate / in_rate)`, the resampler's delay is
//! removed, so the output lines up with the input sample for sample.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// A rate pair the resampler cannot convert between.
#[derive(Debug, thiserror::Error)]
#[error("cannot resample {from_hz} Hz -> {to_hz} Hz: {reason}")]
pub struct ResampleError {
    /// Input rate.
    pub from_hz: u32,
    /// Output rate.
    pub to_hz: u32,
    /// What the resampler said.
    pub reason: String,
}

/// Resamples a mono stream pushed in arbitrary chunks.
pub struct StreamResampler {
    inner: Option<Fft<f32>>,
    in_rate: u64,
    out_rate: u64,
    pending: Vec<f32>,
    out_chunk: Vec<f32>,
    delay_left: usize,
    in_total: u64,
    out_total: u64,
}

impl StreamResampler {
    /// A resampler from `in_rate_hz` to `out_rate_hz`. Equal rates pass samples through.
    pub fn new(in_rate_hz: u32, out_rate_hz: u32) -> Result<Self, ResampleError> {
        let inner = if in_rate_hz == out_rate_hz {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    in_rate_hz as usize,
                    out_rate_hz as usize,
                    2048,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| ResampleError {
                    from_hz: in_rate_hz,
                    to_hz: out_rate_hz,
                    reason: e.to_string(),
                })?,
            )
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self {
            inner,
            in_rate: in_rate_hz as u64,
            out_rate: out_rate_hz as u64,
            pending: Vec::new(),
            out_chunk: Vec::new(),
            delay_left,
            in_total: 0,
            out_total: 0,
        })
    }

    /// Feed input samples; resampled output is appended to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.in_total += input.len() as u64;
        let Some(resampler) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            self.out_total += input.len() as u64;
            return;
        };
        self.pending.extend_from_slice(input);
        let mut consumed = 0;
        loop {
            let need = resampler.input_frames_next();
            if self.pending.len() - consumed < need {
                break;
            }
            let produced = run_chunk(
                resampler,
                &self.pending[consumed..consumed + need],
                None,
                &mut self.out_chunk,
            );
            consumed += need;
            emit(
                &self.out_chunk[..produced],
                &mut self.delay_left,
                &mut self.out_total,
                out,
            );
        }
        self.pending.drain(..consumed);
    }

    /// Flush the tail: after this, exactly `ceil(in * out_rate / in_rate)` samples were output.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let expected = (self.in_total * self.out_rate).div_ceil(self.in_rate);
        let Some(resampler) = self.inner.as_mut() else {
            return;
        };
        let mut partial = std::mem::take(&mut self.pending);
        // Each pass flushes one chunk: first the remaining input, then silence, until
        // the delayed tail has come out.
        let mut guard = 0;
        while self.out_total < expected && guard < 64 {
            guard += 1;
            let need = resampler.input_frames_next();
            let len = partial.len().min(need);
            partial.resize(need, 0.0);
            let produced = run_chunk(resampler, &partial, Some(len), &mut self.out_chunk);
            partial.clear();
            let room = (expected - self.out_total) as usize;
            let mut produced_slice = &self.out_chunk[..produced];
            if self.delay_left == 0 && produced_slice.len() > room {
                produced_slice = &produced_slice[..room];
            }
            emit(
                produced_slice,
                &mut self.delay_left,
                &mut self.out_total,
                out,
            );
        }
        if self.out_total > expected {
            let extra = (self.out_total - expected) as usize;
            out.truncate(out.len().saturating_sub(extra));
            self.out_total = expected;
        }
    }
}

fn run_chunk(
    resampler: &mut Fft<f32>,
    input: &[f32],
    partial: Option<usize>,
    out: &mut Vec<f32>,
) -> usize {
    out.resize(resampler.output_frames_max(), 0.0);
    let frames_out = out.len();
    let input = InterleavedSlice::new(input, 1, input.len()).expect("one channel always fits");
    let mut output =
        InterleavedSlice::new_mut(out, 1, frames_out).expect("one channel always fits");
    let indexing = Indexing {
        partial_len: partial,
        ..Indexing::default()
    };
    match resampler.process_into_buffer(&input, &mut output, Some(&indexing)) {
        Ok((_, produced)) => produced,
        // Buffers are sized from the resampler's own figures, so this cannot happen.
        Err(_) => 0,
    }
}

fn emit(chunk: &[f32], delay_left: &mut usize, out_total: &mut u64, out: &mut Vec<f32>) {
    let skip = (*delay_left).min(chunk.len());
    *delay_left -= skip;
    out.extend_from_slice(&chunk[skip..]);
    *out_total += (chunk.len() - skip) as u64;
}

/// Resample a whole buffer.
pub fn resample(
    input: &[f32],
    in_rate_hz: u32,
    out_rate_hz: u32,
) -> Result<Vec<f32>, ResampleError> {
    let mut r = StreamResampler::new(in_rate_hz, out_rate_hz)?;
    let mut out = Vec::with_capacity(input.len() * out_rate_hz as usize / in_rate_hz as usize + 16);
    r.push(input, &mut out);
    r.finish(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn length_amplitude_and_alignment_22050_to_16000() {
        let x = sine(440.0, 22_050, 22_050 * 2 + 17);
        let y = resample(&x, 22_050, 16_000).expect("valid rates");
        assert_eq!(
            y.len(),
            ((x.len() as u64 * 16_000).div_ceil(22_050)) as usize
        );
        // Project the middle of the output on sin/cos at 440 Hz: amplitude and phase.
        let w = 2.0 * std::f64::consts::PI * 440.0 / 16_000.0;
        let (mut s, mut c) = (0.0f64, 0.0f64);
        let mid = 2000..y.len() - 2000;
        for n in mid.clone() {
            s += y[n] as f64 * (w * n as f64).sin();
            c += y[n] as f64 * (w * n as f64).cos();
        }
        let len = mid.len() as f64;
        let amplitude = 2.0 * (s * s + c * c).sqrt() / len;
        let delay_samples = -c.atan2(s) / w;
        assert!((amplitude - 1.0).abs() < 2e-3, "amplitude {amplitude}");
        // rubato's FFT resampler delay is compensated to the nearest output sample; the
        // fractional remainder (0.36 samples, 23 us, here) is far below a 16 ms STFT hop.
        assert!(delay_samples.abs() < 0.5, "delay {delay_samples} samples");
    }

    #[test]
    fn chunked_equals_whole() {
        let x = sine(1000.0, 44_100, 44_100);
        let whole = resample(&x, 44_100, 16_000).expect("valid rates");
        let mut r = StreamResampler::new(44_100, 16_000).expect("valid rates");
        let mut out = Vec::new();
        for c in x.chunks(1234) {
            r.push(c, &mut out);
        }
        r.finish(&mut out);
        assert_eq!(out.len(), whole.len());
        let diff = out
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "diff {diff}");
    }
}
