//! Playback: a cpal output stream over a decoded track, controlled through atomics.
//!
//! The cpal callback only reads samples from a buffer it owns (moved in when the
//! stream is built for a track) and atomics for position, pause and volume: it never
//! locks, allocates or logs. With no output device (or no sound card at all) the
//! player keeps a silent clock instead, so the playhead, the live spectrogram and
//! the segment probabilities still follow "playback".

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

/// State shared with the audio callback.
struct Shared {
    /// Position in output frames.
    position: AtomicUsize,
    paused: AtomicBool,
    /// f32 bits.
    volume: AtomicU32,
}

/// The player held by the UI.
pub struct Player {
    shared: Arc<Shared>,
    stream: Option<cpal::Stream>,
    /// Output frames per second (device rate, or the track's rate when silent).
    rate_hz: u32,
    /// Frames in the loaded track at `rate_hz`.
    frames: usize,
    /// Silent clock: (started at, position then) while playing without a device.
    clock: Option<(Instant, usize)>,
    /// Why there is no sound, if there is none.
    pub no_sound: Option<String>,
}

impl Default for Player {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                position: AtomicUsize::new(0),
                paused: AtomicBool::new(true),
                volume: AtomicU32::new(0.8f32.to_bits()),
            }),
            stream: None,
            rate_hz: 16_000,
            frames: 0,
            clock: None,
            no_sound: None,
        }
    }
}

/// The output device's rate, or why there is none.
pub fn output_rate() -> Result<u32, String> {
    let host = cpal::default_host();
    let device = host
        .default_output_device()
        .ok_or_else(|| "no audio output device: playing silently".to_string())?;
    let cfg = device
        .default_output_config()
        .map_err(|e| format!("audio output unavailable ({e}): playing silently"))?;
    Ok(cfg.config().sample_rate)
}

impl Player {
    /// Load mono `samples` already at `rate_hz` (the output rate from [`output_rate`],
    /// or any rate when there is no device). Starts paused at 0.
    pub fn load(&mut self, samples: Arc<Vec<f32>>, rate_hz: u32) {
        self.stream = None;
        self.clock = None;
        self.rate_hz = rate_hz.max(1);
        self.frames = samples.len();
        self.shared.position.store(0, Ordering::Relaxed);
        self.shared.paused.store(true, Ordering::Relaxed);
        match build_stream(samples, self.shared.clone()) {
            Ok(s) => {
                self.stream = Some(s);
                self.no_sound = None;
            }
            Err(e) => self.no_sound = Some(e),
        }
    }

    /// Whether a track is loaded.
    pub fn is_loaded(&self) -> bool {
        self.frames > 0
    }

    /// Playing (not paused)?
    pub fn is_playing(&self) -> bool {
        !self.shared.paused.load(Ordering::Relaxed)
    }

    /// Start or resume.
    pub fn play(&mut self) {
        if !self.is_loaded() {
            return;
        }
        if self.position_frames() >= self.frames {
            self.shared.position.store(0, Ordering::Relaxed);
        }
        self.shared.paused.store(false, Ordering::Relaxed);
        if let Some(s) = &self.stream
            && let Err(e) = s.play()
        {
            self.no_sound = Some(format!("cannot start audio ({e}): playing silently"));
            self.stream = None;
        }
        if self.stream.is_none() {
            self.clock = Some((Instant::now(), self.shared.position.load(Ordering::Relaxed)));
        }
    }

    /// Pause.
    pub fn pause(&mut self) {
        let pos = self.position_frames();
        self.shared.paused.store(true, Ordering::Relaxed);
        if let Some(s) = &self.stream {
            let _ = s.pause();
        }
        self.clock = None;
        self.shared.position.store(pos, Ordering::Relaxed);
    }

    /// Toggle play/pause.
    pub fn toggle(&mut self) {
        if self.is_playing() {
            self.pause()
        } else {
            self.play()
        }
    }

    /// Jump to `seconds`.
    pub fn seek(&mut self, seconds: f64) {
        let f = ((seconds.max(0.0) * self.rate_hz as f64) as usize).min(self.frames);
        self.shared.position.store(f, Ordering::Relaxed);
        if self.clock.is_some() {
            self.clock = Some((Instant::now(), f));
        }
    }

    /// Volume in [0, 1].
    pub fn set_volume(&self, v: f32) {
        self.shared
            .volume
            .store(v.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    fn position_frames(&self) -> usize {
        match self.clock {
            Some((t0, p0)) if self.is_playing() => {
                (p0 + (t0.elapsed().as_secs_f64() * self.rate_hz as f64) as usize).min(self.frames)
            }
            _ => self
                .shared
                .position
                .load(Ordering::Relaxed)
                .min(self.frames),
        }
    }

    /// Playhead in seconds. Pauses itself at the end of the track.
    pub fn position_s(&mut self) -> f64 {
        let p = self.position_frames();
        if p >= self.frames && self.is_playing() {
            self.pause();
        }
        p as f64 / self.rate_hz as f64
    }

    /// Track length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.frames as f64 / self.rate_hz as f64
    }
}

fn build_stream(samples: Arc<Vec<f32>>, shared: Arc<Shared>) -> Result<cpal::Stream, String> {
    let host = cpal::default_host();
    let device = host
        .default_output_device()
        .ok_or_else(|| "no audio output device: playing silently".to_string())?;
    let supported = device
        .default_output_config()
        .map_err(|e| format!("audio output unavailable ({e}): playing silently"))?;
    if supported.sample_format() != cpal::SampleFormat::F32 {
        return Err(format!(
            "audio output wants {:?} samples (only f32 is supported): playing silently",
            supported.sample_format()
        ));
    }
    let config = supported.config();
    let channels = config.channels as usize;
    device
        .build_output_stream(
            config,
            move |out: &mut [f32], _| {
                let paused = shared.paused.load(Ordering::Relaxed);
                let vol = f32::from_bits(shared.volume.load(Ordering::Relaxed));
                let mut pos = shared.position.load(Ordering::Relaxed);
                for frame in out.chunks_mut(channels.max(1)) {
                    let v = if paused {
                        0.0
                    } else {
                        let s = samples.get(pos).copied().unwrap_or(0.0) * vol;
                        pos += 1;
                        s
                    };
                    frame.fill(v);
                }
                if !paused {
                    shared
                        .position
                        .store(pos.min(samples.len()), Ordering::Relaxed);
                }
            },
            |_e| {},
            None,
        )
        .map_err(|e| format!("cannot open the audio output ({e}): playing silently"))
}
