//! Diagnostics: how long the UI code takes per frame, for developers (behind a
//! toggle, not in the status bar) and for `--frame-log` measurements.
//!
//! Times go into a fixed histogram (10 µs buckets up to 50 ms), so recording a frame
//! is one increment and a percentile is one pass over the buckets — nothing is copied
//! or sorted per frame.

use std::path::PathBuf;
use std::time::Instant;

use eframe::egui::{self, RichText};

/// Bucket width, milliseconds.
const BUCKET_MS: f32 = 0.01;
/// Buckets (the last one holds everything above 50 ms).
const BUCKETS: usize = 5001;

/// A histogram of durations in milliseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    n: u64,
    max_ms: f32,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            max_ms: 0.0,
        }
    }
}

impl Histogram {
    /// Record one duration.
    pub fn record(&mut self, ms: f32) {
        let b = ((ms.max(0.0) / BUCKET_MS) as usize).min(BUCKETS - 1);
        self.counts[b] += 1;
        self.n += 1;
        self.max_ms = self.max_ms.max(ms);
    }

    /// Durations recorded.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Nothing recorded yet.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `q` quantile (upper edge of its bucket), 0 when empty.
    pub fn quantile(&self, q: f32) -> f32 {
        if self.n == 0 {
            return 0.0;
        }
        // f32 -> f64 turns 0.99 into 0.990000009...: round before taking the ceiling.
        let want = ((self.n as f64 * q as f64 - 1e-6).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= want {
                return ((b + 1) as f32 * BUCKET_MS).min(self.max_ms);
            }
        }
        self.max_ms
    }

    /// The longest duration.
    pub fn max(&self) -> f32 {
        self.max_ms
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.n = 0;
        self.max_ms = 0.0;
    }
}

/// Frame-time bookkeeping.
#[derive(Debug, Default)]
pub struct Diagnostics {
    /// Time in the app's code per frame (event draining + drawing).
    pub ui: Histogram,
    /// Time between the starts of consecutive frames (includes egui's tessellation and
    /// the renderer, and idle time when nothing repaints).
    pub interval: Histogram,
    /// UI-code time of frames while a tag batch was being applied.
    pub tagging: Histogram,
    /// UI-code time of frames right after a sort or filter change.
    pub sorting: Histogram,
    last_start: Option<Instant>,
    frame_start: Option<Instant>,
    /// Where `--frame-log` writes (JSON).
    pub log: Option<PathBuf>,
    last_log: Option<Instant>,
    rss: Option<(Instant, f32)>,
    /// `--exercise` finished its script (the measurement can stop).
    pub exercise_done: bool,
    /// Write the log at the next frame whatever the time (a milestone happened).
    pub log_now: bool,
}

impl Diagnostics {
    /// A frame starts (call first thing in `logic`).
    pub fn begin(&mut self) {
        let now = Instant::now();
        if let Some(prev) = self.last_start.replace(now) {
            self.interval.record((now - prev).as_secs_f32() * 1e3);
        }
        self.frame_start = Some(now);
    }

    /// The frame's UI code ended; `tagging` / `sorting`: what the frame did.
    pub fn end(&mut self, tagging: bool, sorting: bool) {
        if let Some(t0) = self.frame_start.take() {
            let ms = t0.elapsed().as_secs_f32() * 1e3;
            self.ui.record(ms);
            if tagging {
                self.tagging.record(ms);
            }
            if sorting {
                self.sorting.record(ms);
            }
        }
    }

    /// Peak resident memory in MB, read at most once a second (a /proc read).
    pub fn peak_rss(&mut self) -> Option<f32> {
        match self.rss {
            Some((t, v)) if t.elapsed().as_secs_f32() < 1.0 => Some(v),
            _ => {
                let v = peak_rss_mb()?;
                self.rss = Some((Instant::now(), v));
                Some(v)
            }
        }
    }

    /// The JSON the frame log holds.
    pub fn json(&mut self, tracks: usize, analysed: usize) -> String {
        let rss = self.peak_rss().unwrap_or(0.0);
        format!(
            "{{\"frames\": {}, \"ui_p50_ms\": {:.3}, \"ui_p99_ms\": {:.3}, \"ui_max_ms\": {:.3}, \"interval_p50_ms\": {:.3}, \"interval_p99_ms\": {:.3}, \"tag_frames\": {}, \"tag_max_ms\": {:.3}, \"sort_frames\": {}, \"sort_max_ms\": {:.3}, \"tracks\": {tracks}, \"analysed\": {analysed}, \"rss_peak_mb\": {:.1}, \"exercise_done\": {}}}\n",
            self.ui.len(),
            self.ui.quantile(0.5),
            self.ui.quantile(0.99),
            self.ui.max(),
            self.interval.quantile(0.5),
            self.interval.quantile(0.99),
            self.tagging.len(),
            self.tagging.max(),
            self.sorting.len(),
            self.sorting.max(),
            rss,
            self.exercise_done,
        )
    }

    /// Write the frame log if one was asked for; at most once a second unless `now`.
    pub fn write_log(&mut self, tracks: usize, analysed: usize, now: bool) {
        let now = now || std::mem::take(&mut self.log_now);
        if self.log.is_none()
            || (!now
                && self
                    .last_log
                    .is_some_and(|t| t.elapsed().as_secs_f32() < 1.0))
        {
            return;
        }
        self.last_log = Some(Instant::now());
        let text = self.json(tracks, analysed);
        let Some(p) = &self.log else { return };
        // A measurement aid: a failed write only loses the figures, say so on stderr.
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("cannot write the frame log {}: {e}", p.display());
        }
    }

    /// The diagnostics panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, tracks: usize) {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Diagnostics").strong());
            ui.label(format!(
                "UI code per frame: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} frames",
                self.ui.quantile(0.5),
                self.ui.quantile(0.99),
                self.ui.max(),
                self.ui.len()
            ));
            ui.label(format!(
                "frame interval p50 {:.1} ms; {tracks} rows; peak memory {}",
                self.interval.quantile(0.5),
                self.peak_rss().map_or("?".into(), |m| format!("{m:.0} MB"))
            ));
            if ui.button("Reset").clicked() {
                self.ui.clear();
                self.interval.clear();
                self.tagging.clear();
                self.sorting.clear();
            }
        });
    }
}

/// Peak resident memory of this process (Linux: VmHWM), in MB.
pub fn peak_rss_mb() -> Option<f32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f32 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        for i in 1..=100 {
            h.record(i as f32 * 0.1);
        }
        assert!((h.quantile(0.5) - 5.0).abs() < 0.02, "{}", h.quantile(0.5));
        assert!(
            (h.quantile(0.99) - 9.9).abs() < 0.02,
            "{}",
            h.quantile(0.99)
        );
        assert_eq!(h.max(), 10.0);
        h.record(80.0);
        assert_eq!(h.max(), 80.0);
        assert_eq!(h.len(), 101);
    }
}
