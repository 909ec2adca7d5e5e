//! The track loader: two long-lived threads behind the track view. One decodes the
//! selected track for playback and makes its spectrograms; the other analyses every
//! patch of a long track when the library's analysis listened to only part of it.
//!
//! Each thread serves the newest request only: selecting ten tracks in a row starts
//! one decode, not ten, and a decode whose track is no longer wanted stops at its next
//! chunk. A decoder error or panic becomes a `Failed` event for that request.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

use super::panic_message;
use crate::analysis::{AnalyseOptions, Analyzer, StoredAnalysis};
use crate::audio::Resampled;
use crate::audio::front::new_resampler;
use crate::dsp::LogMelStream;
use crate::dsp::features::{MUSICNN_N_MELS, MUSICNN_SAMPLE_RATE_HZ};
use crate::error::DecodeError;
use crate::model::GenreModel;

/// A track decoded for the track view.
pub struct LoadedTrack {
    /// The file.
    pub path: PathBuf,
    /// Mono samples at `rate_hz`, for playback.
    pub samples: Arc<Vec<f32>>,
    /// Their rate (the output device's, when there is one).
    pub rate_hz: u32,
    /// musicnn log-mel, frame-major `frames x 96`.
    pub mel: Vec<f32>,
    /// Mel frames (62.5 per second).
    pub frames: usize,
    /// The whole-track spectrogram image (made here, not on the UI thread).
    pub overview: egui::ColorImage,
    /// Corrupt packets skipped while decoding.
    pub skipped_packets: usize,
}

/// Facts from the loader; `id` is the request's.
pub enum LoaderEvent {
    /// The track is decoded.
    Loaded {
        /// Request.
        id: u64,
        /// The track.
        track: Box<LoadedTrack>,
    },
    /// It could not be decoded.
    Failed {
        /// Request.
        id: u64,
        /// Why (the file is named in it).
        error: String,
    },
    /// Every patch of the track analysed (the timeline of a long track).
    Analysed {
        /// Request.
        id: u64,
        /// The analysis.
        analysis: Box<StoredAnalysis>,
        /// Its labels.
        labels: Arc<[String]>,
    },
    /// The whole-track analysis failed.
    AnalysisFailed {
        /// Request.
        id: u64,
        /// Why.
        error: String,
    },
}

impl LoaderEvent {
    /// The event's kind, for the frame diagnostics.
    pub fn kind(&self) -> &'static str {
        match self {
            LoaderEvent::Loaded { .. } => "track: loaded",
            LoaderEvent::Failed { .. } => "track: failed",
            LoaderEvent::Analysed { .. } => "track: analysed",
            LoaderEvent::AnalysisFailed { .. } => "track: analysis failed",
        }
    }
}

struct Request {
    id: u64,
    path: PathBuf,
}

struct AnalyseRequest {
    id: u64,
    path: PathBuf,
    model: Arc<dyn GenreModel>,
}

/// The UI's side of the loader.
pub struct TrackLoader {
    decode_tx: Option<Sender<Request>>,
    analyse_tx: Option<Sender<AnalyseRequest>>,
    /// Events.
    pub rx: Receiver<LoaderEvent>,
    latest: Arc<AtomicU64>,
    /// Why a thread could not start (shown in the view).
    pub broken: Option<String>,
}

impl TrackLoader {
    /// Start both threads.
    pub fn spawn(ctx: egui::Context) -> Self {
        let (tx_ev, rx) = channel();
        let latest = Arc::new(AtomicU64::new(0));
        let mut broken = None;
        let (decode_tx, decode_rx) = channel::<Request>();
        let (analyse_tx, analyse_rx) = channel::<AnalyseRequest>();
        let (t, c, l) = (tx_ev.clone(), ctx.clone(), latest.clone());
        let decode_ok = std::thread::Builder::new()
            .name("track-decoder".into())
            .spawn(move || {
                // Behind the UI thread: a frame is never held up by decoding.
                super::background_priority();
                decode_loop(decode_rx, t, c, l)
            })
            .map_err(|e| broken = Some(format!("cannot start the track decoder: {e}")))
            .is_ok();
        let (t, c, l) = (tx_ev, ctx, latest.clone());
        let analyse_ok = std::thread::Builder::new()
            .name("track-analyser".into())
            .spawn(move || {
                super::background_priority();
                analyse_loop(analyse_rx, t, c, l)
            })
            .map_err(|e| broken = Some(format!("cannot start the track analyser: {e}")))
            .is_ok();
        Self {
            decode_tx: decode_ok.then_some(decode_tx),
            analyse_tx: analyse_ok.then_some(analyse_tx),
            rx,
            latest,
            broken,
        }
    }

    /// Decode `path` as request `id` (newer ids make older requests stale).
    pub fn load(&self, id: u64, path: PathBuf) {
        self.latest.store(id, Ordering::SeqCst);
        if let Some(tx) = &self.decode_tx {
            let _ = tx.send(Request { id, path });
        }
    }

    /// Analyse every patch of `path` with `model`, as part of request `id`.
    pub fn analyse_whole(&self, id: u64, path: PathBuf, model: Arc<dyn GenreModel>) {
        if let Some(tx) = &self.analyse_tx {
            let _ = tx.send(AnalyseRequest { id, path, model });
        }
    }

    /// Forget the current request (no track selected): a running decode stops.
    pub fn cancel(&self, id: u64) {
        self.latest.store(id, Ordering::SeqCst);
    }
}

/// The newest request waiting on `rx` (older ones are dropped unserved).
fn newest<T>(rx: &Receiver<T>) -> Option<T> {
    let mut r = rx.recv().ok()?;
    while let Ok(n) = rx.try_recv() {
        r = n;
    }
    Some(r)
}

fn decode_loop(
    rx: Receiver<Request>,
    tx: Sender<LoaderEvent>,
    ctx: egui::Context,
    latest: Arc<AtomicU64>,
) {
    while let Some(req) = newest(&rx) {
        if latest.load(Ordering::SeqCst) != req.id {
            continue;
        }
        let stale = || latest.load(Ordering::SeqCst) != req.id;
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| decode(&req.path, &stale)))
            .unwrap_or_else(|p| {
                Err(DecodeError::Malformed {
                    path: req.path.clone(),
                    reason: format!("the decoder crashed: {}", panic_message(&p)),
                })
            });
        let ev = match r {
            Ok(Some(track)) => LoaderEvent::Loaded {
                id: req.id,
                track: Box::new(track),
            },
            Ok(None) => continue, // stale: a newer request is waiting
            Err(e) => LoaderEvent::Failed {
                id: req.id,
                error: e.to_string(),
            },
        };
        let _ = tx.send(ev);
        ctx.request_repaint();
    }
}

/// Decode for playback and display; `None` when `stale` turned true on the way.
fn decode(
    path: &std::path::Path,
    stale: &dyn Fn() -> bool,
) -> Result<Option<LoadedTrack>, DecodeError> {
    // Playback at the output device's rate; without a device the silent clock runs at
    // musicnn's rate and one decode serves both.
    let sr16 = MUSICNN_SAMPLE_RATE_HZ;
    let rate = super::super::player::output_rate().unwrap_or(sr16);
    let mut stream = Resampled::open(path, rate)?;
    let mut to16 = if rate == sr16 {
        None
    } else {
        Some(new_resampler(path, rate, sr16)?)
    };
    let mut mel_stream = LogMelStream::new();
    let mut samples: Vec<f32> =
        Vec::with_capacity(stream.expected_frames().unwrap_or(0).min(1 << 26) as usize);
    let mut mel = Vec::new();
    let mut buf16 = Vec::new();
    loop {
        if stale() {
            return Ok(None);
        }
        let start = samples.len();
        let more = stream.next_into(&mut samples)?;
        let new = &samples[start..];
        match &mut to16 {
            Some(r) => {
                buf16.clear();
                r.push(new, &mut buf16);
                if !more {
                    r.finish(&mut buf16);
                }
                mel_stream.push(&buf16, &mut mel);
            }
            None => mel_stream.push(new, &mut mel),
        }
        if !more {
            break;
        }
    }
    mel_stream.finish(&mut mel);
    let frames = mel.len() / MUSICNN_N_MELS;
    let overview = super::super::widgets::spectrogram_image(&mel, frames, 2048);
    samples.shrink_to_fit();
    Ok(Some(LoadedTrack {
        path: path.to_path_buf(),
        samples: Arc::new(samples),
        rate_hz: rate,
        mel,
        frames,
        overview,
        skipped_packets: stream.skipped_packets(),
    }))
}

fn analyse_loop(
    rx: Receiver<AnalyseRequest>,
    tx: Sender<LoaderEvent>,
    ctx: egui::Context,
    latest: Arc<AtomicU64>,
) {
    while let Some(req) = newest(&rx) {
        if latest.load(Ordering::SeqCst) != req.id {
            continue;
        }
        let labels: Arc<[String]> = Arc::from(req.model.labels().to_vec());
        let analyzer = Analyzer::new(
            req.model.clone(),
            AnalyseOptions {
                max_patches: None,
                batch_tracks: 1,
                ..AnalyseOptions::default()
            },
        );
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            analyzer.analyse_path(&req.path).map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|p| {
            Err(format!(
                "the analysis crashed ({}): {}",
                panic_message(&p),
                req.path.display()
            ))
        });
        let ev = match r {
            Ok(a) => LoaderEvent::Analysed {
                id: req.id,
                analysis: Box::new(StoredAnalysis::from(&a)),
                labels,
            },
            Err(error) => LoaderEvent::AnalysisFailed { id: req.id, error },
        };
        let _ = tx.send(ev);
        ctx.request_repaint();
    }
}
