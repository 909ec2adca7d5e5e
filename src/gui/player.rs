//! Playback: a cpal output stream over a decoded track, controlled through atomics.
//!
//! The cpal callback only reads samples from a buffer it owns (moved in when the
//! stream is built for a track) and atomics for position, pause and volume: it never
//! locks, allocates or logs. It advances the position with a compare-and-swap, so a
//! seek the UI stores while a callback runs is never overwritten by the callback's
//! stale position. With no output device (or no sound card at all), or when the
//! device fails while playing (the error callback reports it), the player keeps a
//! silent clock instead, so the playhead, the live spectrogram and the segment
//! probabilities still follow "playback".

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

/// State shared with the audio callback.
struct Shared {
    /// Position in output frames.
    position: AtomicUsize,
    paused: AtomicBool,
    /// f32 bits.
    volume: AtomicU32,
    /// A stream for the current track exists and runs the position.
    has_stream: AtomicBool,
    /// The stream reported an error (device gone): the silent clock takes over.
    failed: AtomicBool,
    /// Why there is no sound (written by the player thread and the error callback,
    /// read by the UI).
    no_sound: Mutex<Option<NoSound>>,
}

/// Why the player plays silently; the app goes on with a silent clock and shows this.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoSound {
    /// The host has no output device (a server, a container, no sound card).
    #[error("no audio output device: playing silently")]
    NoDevice,
    /// The device has no usable default configuration.
    #[error("audio output unavailable ({0}): playing silently")]
    Unavailable(cpal::Error),
    /// The device wants samples in a format the player does not write.
    #[error("audio output wants {0:?} samples (only f32 is supported): playing silently")]
    Format(cpal::SampleFormat),
    /// The output stream could not be opened.
    #[error("cannot open the audio output ({0}): playing silently")]
    Open(cpal::Error),
    /// The stream could not be started.
    #[error("cannot start audio ({0}): playing silently")]
    Start(cpal::Error),
    /// The stream failed while playing (the device went away).
    #[error("the audio output failed ({0}): playing silently")]
    Failed(cpal::Error),
}

impl Shared {
    fn new() -> Self {
        Self {
            position: AtomicUsize::new(0),
            paused: AtomicBool::new(true),
            volume: AtomicU32::new(0.8f32.to_bits()),
            has_stream: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            no_sound: Mutex::new(None),
        }
    }

    fn set_no_sound(&self, s: Option<NoSound>) {
        if let Ok(mut g) = self.no_sound.lock() {
            *g = s;
        }
    }
}

/// Fill one output buffer of `channels` interleaved channels from `samples`: the whole
/// body of the audio callback (no locks, no allocation).
fn fill(out: &mut [f32], channels: usize, samples: &[f32], shared: &Shared) {
    let paused = shared.paused.load(Ordering::Relaxed);
    let vol = f32::from_bits(shared.volume.load(Ordering::Relaxed));
    let from = shared.position.load(Ordering::Acquire);
    let mut pos = from;
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
        advance(shared, from, pos.min(samples.len()));
    }
}

/// Move the position from `from` to `to` unless it changed meanwhile: a seek stored
/// while the callback ran wins over the callback's advance.
fn advance(shared: &Shared, from: usize, to: usize) {
    let _ = shared
        .position
        .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed);
}

/// Orders for the player thread, which owns the cpal stream.
enum PlayerCmd {
    Load(Arc<Vec<f32>>),
    Unload,
    Play,
    Pause,
}

/// The player held by the UI: atomics shared with the audio callback, and a channel
/// to the player thread that builds, starts and stops the cpal stream (so the UI
/// thread never waits on the audio system).
pub struct Player {
    shared: Arc<Shared>,
    tx: Option<Sender<PlayerCmd>>,
    /// Output frames per second (device rate, or the track's rate when silent).
    rate_hz: u32,
    /// Frames in the loaded track at `rate_hz`.
    frames: usize,
    /// Silent clock: (started at, position then) while playing without a stream.
    clock: Option<(Instant, usize)>,
    /// The stream's failure was seen (the clock was started from its position).
    failure_seen: bool,
}

impl Default for Player {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared::new()),
            tx: None,
            rate_hz: 16_000,
            frames: 0,
            clock: None,
            failure_seen: false,
        }
    }
}

fn player_thread(shared: Arc<Shared>, rx: Receiver<PlayerCmd>) {
    let mut stream: Option<cpal::Stream> = None;
    let set_status = |s: Option<NoSound>| shared.set_no_sound(s);
    while let Ok(cmd) = rx.recv() {
        match cmd {
            PlayerCmd::Load(samples) => {
                stream = None;
                shared.has_stream.store(false, Ordering::SeqCst);
                shared.failed.store(false, Ordering::SeqCst);
                match build_stream(samples, shared.clone()) {
                    Ok(s) => {
                        stream = Some(s);
                        shared.has_stream.store(true, Ordering::SeqCst);
                        set_status(None);
                    }
                    Err(e) => set_status(Some(e)),
                }
            }
            PlayerCmd::Unload => {
                stream = None;
                shared.has_stream.store(false, Ordering::SeqCst);
            }
            PlayerCmd::Play => {
                if let Some(s) = &stream
                    && let Err(e) = s.play()
                {
                    stream = None;
                    shared.has_stream.store(false, Ordering::SeqCst);
                    set_status(Some(NoSound::Start(e)));
                }
            }
            PlayerCmd::Pause => {
                if let Some(s) = &stream {
                    let _ = s.pause();
                }
            }
        }
    }
}

/// The default output device and its default configuration, or why there is none.
fn output_device() -> Result<(cpal::Device, cpal::SupportedStreamConfig), NoSound> {
    let host = cpal::default_host();
    let device = host.default_output_device().ok_or(NoSound::NoDevice)?;
    let cfg = device
        .default_output_config()
        .map_err(NoSound::Unavailable)?;
    Ok((device, cfg))
}

/// The output device's rate, or why there is none.
pub fn output_rate() -> Result<u32, NoSound> {
    output_device().map(|(_, cfg)| cfg.config().sample_rate)
}

impl Player {
    /// Load mono `samples` already at `rate_hz` (the output rate from [`output_rate`],
    /// or any rate when there is no device). Starts paused at 0.
    pub fn load(&mut self, samples: Arc<Vec<f32>>, rate_hz: u32) {
        self.clock = None;
        self.failure_seen = false;
        self.rate_hz = rate_hz.max(1);
        self.frames = samples.len();
        self.shared.position.store(0, Ordering::Relaxed);
        self.shared.paused.store(true, Ordering::Relaxed);
        self.shared.has_stream.store(false, Ordering::SeqCst);
        if self.tx.is_none() {
            let (tx, rx) = channel();
            let shared = self.shared.clone();
            if std::thread::Builder::new()
                .name("player".into())
                .spawn(move || player_thread(shared, rx))
                .is_ok()
            {
                self.tx = Some(tx);
            }
        }
        self.send(PlayerCmd::Load(samples));
    }

    fn send(&self, c: PlayerCmd) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(c);
        }
    }

    /// Why there is no sound, if there is none.
    pub fn no_sound(&self) -> Option<NoSound> {
        self.shared.no_sound.lock().ok().and_then(|g| g.clone())
    }

    fn streaming(&self) -> bool {
        self.shared.has_stream.load(Ordering::SeqCst) && !self.shared.failed.load(Ordering::SeqCst)
    }

    /// Forget the loaded track (a track that could not be decoded was selected):
    /// nothing plays, Play is disabled.
    pub fn unload(&mut self) {
        self.pause();
        self.frames = 0;
        self.clock = None;
        self.shared.position.store(0, Ordering::Relaxed);
        self.shared.has_stream.store(false, Ordering::SeqCst);
        self.send(PlayerCmd::Unload);
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
        self.send(PlayerCmd::Play);
        // Until (or unless) a stream runs, a clock moves the playhead.
        self.clock = Some((Instant::now(), self.shared.position.load(Ordering::Relaxed)));
    }

    /// Pause.
    pub fn pause(&mut self) {
        let pos = self.position_frames();
        self.shared.paused.store(true, Ordering::Relaxed);
        self.send(PlayerCmd::Pause);
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
            Some((t0, p0)) if self.is_playing() && !self.streaming() => {
                (p0 + (t0.elapsed().as_secs_f64() * self.rate_hz as f64) as usize).min(self.frames)
            }
            _ => self
                .shared
                .position
                .load(Ordering::Relaxed)
                .min(self.frames),
        }
    }

    /// Playhead in seconds. Pauses itself at the end of the track; when the audio
    /// device failed, continues on the silent clock from where the stream was.
    pub fn position_s(&mut self) -> f64 {
        if !self.failure_seen && self.shared.failed.load(Ordering::SeqCst) {
            self.failure_seen = true;
            if self.is_playing() {
                self.clock = Some((Instant::now(), self.shared.position.load(Ordering::Relaxed)));
            }
        }
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

fn build_stream(samples: Arc<Vec<f32>>, shared: Arc<Shared>) -> Result<cpal::Stream, NoSound> {
    let (device, supported) = output_device()?;
    if supported.sample_format() != cpal::SampleFormat::F32 {
        return Err(NoSound::Format(supported.sample_format()));
    }
    let config = supported.config();
    let channels = config.channels as usize;
    let err_shared = shared.clone();
    device
        .build_output_stream(
            config,
            move |out: &mut [f32], _| fill(out, channels, &samples, &shared),
            // Not the real-time callback: it may lock. The UI shows the message and the
            // silent clock takes over.
            move |e| {
                err_shared.failed.store(true, Ordering::SeqCst);
                err_shared.set_no_sound(Some(NoSound::Failed(e)));
            },
            None,
        )
        .map_err(NoSound::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue10_seek_during_a_callback_wins() {
        let shared = Shared::new();
        shared.paused.store(false, Ordering::Relaxed);
        shared.position.store(100, Ordering::Relaxed);
        // The callback read the position...
        let from = shared.position.load(Ordering::Acquire);
        // ...the UI seeks while it fills the buffer...
        shared.position.store(50_000, Ordering::Relaxed);
        // ...and the callback's advance must not undo the seek.
        advance(&shared, from, from + 512);
        assert_eq!(shared.position.load(Ordering::Relaxed), 50_000);
        // Without a seek the callback advances.
        advance(&shared, 50_000, 50_512);
        assert_eq!(shared.position.load(Ordering::Relaxed), 50_512);
    }

    #[test]
    fn issue10_seeks_are_never_lost_under_a_running_callback() {
        const BUF: usize = 64;
        let shared = Arc::new(Shared::new());
        shared.paused.store(false, Ordering::Relaxed);
        let samples: Arc<Vec<f32>> = Arc::new(vec![0.1; 4_000_000]);
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let cb = {
            let (shared, samples, stop, calls) =
                (shared.clone(), samples.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0.0f32; BUF];
                while !stop.load(Ordering::Relaxed) {
                    fill(&mut buf, 1, &samples, &shared);
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_micros(20));
                }
            })
        };
        for k in 0..300 {
            let target = if k % 2 == 0 { 2_000_000 } else { 1_000 };
            let c0 = calls.load(Ordering::SeqCst);
            shared.position.store(target, Ordering::Relaxed);
            while calls.load(Ordering::SeqCst) < c0 + 3 {
                std::thread::yield_now();
            }
            let p = shared.position.load(Ordering::Relaxed);
            let c1 = calls.load(Ordering::SeqCst);
            // At most every callback since the seek advanced it (one may have been
            // running when the seek landed).
            let most = target + (c1 - c0 + 1) * BUF;
            assert!(
                p >= target && p <= most,
                "seek {k} to {target} lost: position {p} (at most {most})"
            );
        }
        stop.store(true, Ordering::Relaxed);
        cb.join().expect("callback thread");
    }
}
