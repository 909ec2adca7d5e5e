//! Background workers and the messages between them and the UI.
//!
//! - The library worker owns the SQLite library and the genre model: it scans a
//!   folder, analyses every track (cached per model in the library), writes tags and
//!   undoes batches. Results are keyed by a generation number; the UI drops stale ones.
//! - The track loader decodes one track for playback and computes its spectrogram.
//! - The training worker runs one training run of [`crate::train::run`].
//!
//! Every worker wakes the UI with `request_repaint` after each event it sends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use burn::tensor::Device;
use eframe::egui;

use crate::analysis::{AnalyseOptions, Analyzer, Cached, StoredAnalysis, load_model};
use crate::library::db::{Library, default_db_path};
use crate::library::policy::Proposal;
use crate::library::tagger::{UndoReport, apply, undo_batch};
use crate::library::tags::TagWriteOptions;
use crate::train::report::Report;
use crate::train::run::{RunOptions, train};
use crate::train::trainer::{EpochStats, Event};

/// One library row as first listed (before analysis).
#[derive(Debug, Clone)]
pub struct RowInit {
    /// The file.
    pub path: PathBuf,
    /// Title tag.
    pub title: String,
    /// Artist tag.
    pub artist: String,
    /// Genres in the file now.
    pub genres: Vec<String>,
    /// Why its tags could not be read.
    pub error: Option<String>,
}

/// Orders for the library worker.
#[derive(Debug)]
pub enum LibCommand {
    /// List and analyse a folder; results carry `generation`.
    Open {
        /// The folder.
        folder: PathBuf,
        /// Key of this request.
        generation: u64,
    },
    /// Write these proposals as one journaled batch.
    Tag(Vec<(PathBuf, Proposal)>),
    /// Undo the last batch.
    Undo,
    /// Analyse with a trained model folder from now on (`None`: the shipped model).
    UseModel(Option<PathBuf>),
}

/// Facts from the library worker.
#[derive(Debug)]
pub enum LibEvent {
    /// The folder's tracks, sorted by path. Next: `Analysed`/`Failed` per track, then `Finished`.
    Rows {
        /// Request key.
        generation: u64,
        /// The rows.
        rows: Vec<RowInit>,
    },
    /// Track `index` of the rows was analysed.
    Analysed {
        /// Request key.
        generation: u64,
        /// Row index.
        index: usize,
        /// Result.
        analysis: StoredAnalysis,
    },
    /// Track `index` could not be analysed.
    Failed {
        /// Request key.
        generation: u64,
        /// Row index.
        index: usize,
        /// Why.
        error: String,
    },
    /// Analysis of the folder ended (or was cancelled by a newer request).
    Finished {
        /// Request key.
        generation: u64,
    },
    /// A tag batch was written: (file, new genres) of the files written; failures.
    Tagged {
        /// Files written with their new genres.
        written: Vec<(PathBuf, Vec<String>)>,
        /// Files that failed, and why.
        failed: Vec<(PathBuf, String)>,
    },
    /// The last batch was undone: the report, and the genres each restored file has now.
    Undone(UndoReport, Vec<(PathBuf, Vec<String>)>),
    /// A trained model is now in use (its name) or the shipped one (`None`).
    ModelChanged(Option<String>),
    /// Something went wrong outside a single track.
    Error(String),
}

/// The UI's side of the library worker.
pub struct LibraryHandle {
    tx: Sender<LibCommand>,
    /// Events.
    pub rx: Receiver<LibEvent>,
    /// Pause analysis while set.
    pub paused: Arc<AtomicBool>,
    /// The newest request; older work stops.
    pub generation: Arc<AtomicU64>,
}

impl LibraryHandle {
    /// Start the worker with the library database at `db` (default location if `None`).
    pub fn spawn(ctx: egui::Context, db: Option<PathBuf>) -> Self {
        let (tx, rx_cmd) = channel();
        let (tx_ev, rx) = channel();
        let paused = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let w = LibraryWorker {
            ctx,
            tx: tx_ev,
            paused: paused.clone(),
            generation: generation.clone(),
            db: db.unwrap_or_else(default_db_path),
            model: None,
        };
        std::thread::Builder::new()
            .name("library".into())
            .spawn(move || w.run(rx_cmd))
            .ok();
        Self {
            tx,
            rx,
            paused,
            generation,
        }
    }

    /// Send an order (a worker that died makes this a no-op; its last event says why).
    pub fn send(&self, c: LibCommand) {
        let _ = self.tx.send(c);
    }

    /// Open `folder` as a new request; returns its generation.
    pub fn open(&self, folder: PathBuf) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.send(LibCommand::Open { folder, generation });
        generation
    }
}

struct LibraryWorker {
    ctx: egui::Context,
    tx: Sender<LibEvent>,
    paused: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    db: PathBuf,
    /// The model in use (loaded on first need), and the trained model's folder if any.
    model: Option<(Analyzer, Option<PathBuf>)>,
}

impl LibraryWorker {
    fn send(&self, e: LibEvent) {
        let _ = self.tx.send(e);
        self.ctx.request_repaint();
    }

    fn run(mut self, rx: Receiver<LibCommand>) {
        let lib = match self
            .db
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .map_err(|e| e.to_string())
            .and_then(|_| Library::open(&self.db).map_err(|e| e.to_string()))
        {
            Ok(l) => l,
            Err(e) => {
                self.send(LibEvent::Error(format!(
                    "cannot open the library database: {e}"
                )));
                return;
            }
        };
        let mut pending: Option<(PathBuf, u64)> = None;
        loop {
            let cmd = match pending.take() {
                Some((folder, generation)) => LibCommand::Open { folder, generation },
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
            };
            match cmd {
                LibCommand::Open { folder, generation } => {
                    pending = self.open(&lib, &folder, generation, &rx);
                }
                LibCommand::Tag(items) => self.tag(&lib, items),
                LibCommand::Undo => self.undo(&lib),
                LibCommand::UseModel(m) => self.use_model(m),
            }
        }
    }

    fn use_model(&mut self, m: Option<PathBuf>) {
        match load_model(m.as_deref(), &Device::flex()) {
            Ok(model) => {
                let name = m
                    .as_ref()
                    .map(|dir| format!("{} ({})", model.name(), dir.display()));
                self.model = Some((Analyzer::new(model, AnalyseOptions::default()), m));
                self.send(LibEvent::ModelChanged(name));
            }
            Err(e) => self.send(LibEvent::Error(format!(
                "cannot use {}: {e}",
                m.as_deref()
                    .map_or("the shipped model".into(), |d| d.display().to_string())
            ))),
        }
    }

    /// Analyse one file with the current model: cached analysis or a fresh one.
    fn analyse(&mut self, lib: &Library, path: &Path) -> Result<StoredAnalysis, String> {
        if self.model.is_none() {
            let model = load_model(None, &Device::flex()).map_err(|e| e.to_string())?;
            self.model = Some((Analyzer::new(model, AnalyseOptions::default()), None));
        }
        let Some((analyzer, _)) = &self.model else {
            return Err("no model".into());
        };
        let cache = Cached::new(analyzer, lib);
        if let Some(a) = cache.get(path).map_err(|e| e.to_string())? {
            return Ok(a);
        }
        let a = analyzer.analyse_path(path).map_err(|e| e.to_string())?;
        cache.put(&a).map_err(|e| e.to_string())
    }

    /// Returns a newer `Open` that arrived meanwhile, to be handled next.
    fn open(
        &mut self,
        lib: &Library,
        folder: &Path,
        generation: u64,
        rx: &Receiver<LibCommand>,
    ) -> Option<(PathBuf, u64)> {
        let stale = |g: &AtomicU64| g.load(Ordering::SeqCst) != generation;
        // The scan walks the folder into the library; the rows then come from it.
        match lib.scan(&[folder.to_path_buf()], |_| {}) {
            Ok(report) => {
                for (p, e) in report.errors {
                    self.send(LibEvent::Error(format!(
                        "cannot read ({e}): {}",
                        p.display()
                    )));
                }
            }
            Err(e) => self.send(LibEvent::Error(format!("scan failed: {e}"))),
        }
        let stored = match lib.tracks_under(folder) {
            Ok(t) => t,
            Err(e) => {
                self.send(LibEvent::Error(format!("cannot list the library: {e}")));
                Vec::new()
            }
        };
        let paths: Vec<PathBuf> = stored.iter().map(|(p, _)| p.clone()).collect();
        let rows: Vec<RowInit> = stored
            .into_iter()
            .map(|(path, r)| {
                let title = r.tags.title.unwrap_or_else(|| {
                    path.file_stem()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default()
                });
                RowInit {
                    title,
                    artist: r.tags.artist.unwrap_or_default(),
                    genres: r.tags.genres,
                    error: r.error,
                    path,
                }
            })
            .collect();
        self.send(LibEvent::Rows { generation, rows });
        for (index, path) in paths.iter().enumerate() {
            // Orders that arrive during a long analysis are served between tracks.
            while let Ok(cmd) = rx.try_recv() {
                match cmd {
                    LibCommand::Open { folder, generation } => return Some((folder, generation)),
                    LibCommand::Tag(items) => self.tag(lib, items),
                    LibCommand::Undo => self.undo(lib),
                    LibCommand::UseModel(m) => self.use_model(m),
                }
            }
            while self.paused.load(Ordering::Relaxed) && !stale(&self.generation) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if stale(&self.generation) {
                break;
            }
            let ev = match self.analyse(lib, path) {
                Ok(analysis) => LibEvent::Analysed {
                    generation,
                    index,
                    analysis,
                },
                Err(error) => LibEvent::Failed {
                    generation,
                    index,
                    error,
                },
            };
            self.send(ev);
        }
        self.send(LibEvent::Finished { generation });
        None
    }

    fn tag(&self, lib: &Library, items: Vec<(PathBuf, Proposal)>) {
        let batch = match lib.begin_batch("app: tag selection") {
            Ok(b) => b,
            Err(e) => return self.send(LibEvent::Error(e.to_string())),
        };
        let mut written = Vec::new();
        let mut failed = Vec::new();
        for (path, p) in items {
            match apply(lib, batch, &path, &p, &TagWriteOptions::default()) {
                Ok(Ok(())) => written.push((path, p.proposed.clone())),
                Ok(Err(e)) => failed.push((path, e)),
                Err(e) => failed.push((path, e.to_string())),
            }
        }
        self.send(LibEvent::Tagged { written, failed });
    }

    fn undo(&self, lib: &Library) {
        match lib.last_undoable_batch() {
            Ok(Some(b)) => match undo_batch(lib, b, &TagWriteOptions::default()) {
                Ok(r) => {
                    let restored = r
                        .reverted
                        .iter()
                        .filter_map(|p| {
                            crate::library::tags::read_tags(p)
                                .ok()
                                .map(|t| (p.clone(), t.genres))
                        })
                        .collect();
                    self.send(LibEvent::Undone(r, restored))
                }
                Err(e) => self.send(LibEvent::Error(e.to_string())),
            },
            Ok(None) => self.send(LibEvent::Error("nothing to undo".into())),
            Err(e) => self.send(LibEvent::Error(e.to_string())),
        }
    }
}

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
}

/// Decode `path` on a thread; the result (or error) arrives on the returned receiver.
pub fn load_track(ctx: egui::Context, path: PathBuf) -> Receiver<Result<LoadedTrack, String>> {
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("track-loader".into())
        .spawn(move || {
            let r = (|| {
                // One decode at the rate playback needs (the output device's, or the
                // file's own without a device); the display spectrogram is made from it.
                let rate = match super::player::output_rate() {
                    Ok(r) => r,
                    Err(_) => {
                        crate::audio::open(&path)
                            .map_err(|e| e.to_string())?
                            .info()
                            .sample_rate_hz
                    }
                };
                let decoded =
                    crate::audio::read_resampled(&path, rate).map_err(|e| e.to_string())?;
                let sr16 = crate::dsp::features::MUSICNN_SAMPLE_RATE_HZ;
                let x16 = crate::audio::resample::resample(&decoded.samples, rate, sr16)?;
                let mel = crate::dsp::features::musicnn_log_mel(&x16);
                let frames = mel.len() / crate::dsp::features::MUSICNN_N_MELS;
                let (samples, rate_hz) = (decoded.samples, rate);
                let overview = super::widgets::spectrogram_image(&mel, frames, 2048);
                Ok(LoadedTrack {
                    path: path.clone(),
                    samples: Arc::new(samples),
                    rate_hz,
                    mel,
                    frames,
                    overview,
                })
            })();
            let _ = tx.send(r);
            ctx.request_repaint();
        })
        .ok();
    rx
}

/// Write a report folder (JSON, CSVs, PNG plots) plus the confusion matrix normalised
/// as shown, on a thread; the folder (or the error) arrives on the returned receiver.
pub fn export_report(
    ctx: egui::Context,
    report: Report,
    dir: PathBuf,
    how: crate::train::metrics::Normalise,
) -> Receiver<Result<PathBuf, String>> {
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("export".into())
        .spawn(move || {
            let r = report.write(&dir).and_then(|_| {
                let p = dir.join(format!("confusion_{how:?}.csv").to_lowercase());
                std::fs::write(
                    &p,
                    crate::train::report::confusion_csv(&report.labels, &report.track, how),
                )
                .map_err(|e| format!("{}: {e}", p.display()))
            });
            let _ = tx.send(r.map(|_| dir));
            ctx.request_repaint();
        })
        .ok();
    rx
}

/// Facts from a training run.
#[derive(Debug)]
pub enum TrainEvent {
    /// Features ready for `done` of `total` tracks.
    Preparing(usize, usize),
    /// An epoch ended.
    Epoch(EpochStats),
    /// A log line.
    Log(String),
    /// The run ended with its report (also written to its folder).
    Done(Box<Report>),
    /// The run failed.
    Failed(String),
}

/// The UI's side of a training run.
pub struct TrainingHandle {
    /// Events.
    pub rx: Receiver<TrainEvent>,
    /// Set to stop (the best checkpoint is kept and evaluated).
    pub cancel: Arc<AtomicBool>,
}

impl TrainingHandle {
    /// Start a run on a thread.
    pub fn spawn(ctx: egui::Context, opts: RunOptions) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        std::thread::Builder::new()
            .name("training".into())
            .spawn(move || {
                let send = |e: TrainEvent| {
                    let _ = tx.send(e);
                    ctx.request_repaint();
                };
                let r = train(&opts, &c, &mut |e: &Event| match e {
                    Event::Preparing { done, total } => send(TrainEvent::Preparing(*done, *total)),
                    Event::Epoch(s) => send(TrainEvent::Epoch(s.clone())),
                    Event::Log(l) => send(TrainEvent::Log(l.clone())),
                    Event::Started { .. } | Event::Step { .. } => {}
                });
                match r {
                    Ok(rep) => send(TrainEvent::Done(Box::new(rep))),
                    Err(e) => send(TrainEvent::Failed(e.to_string())),
                }
            })
            .ok();
        Self { rx, cancel }
    }
}

// Handles cross into the UI thread and workers.
const _: () = {
    const fn send<T: Send>() {}
    send::<LibCommand>();
    send::<LibEvent>();
    send::<TrainEvent>();
};
