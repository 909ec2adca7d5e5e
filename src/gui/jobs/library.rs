//! The library worker: owns the SQLite library and the genre model. It scans a folder,
//! analyses every track through the analysis service (cached per model in the
//! library), writes tags and undoes batches.
//!
//! Everything the UI asks is a [`LibCommand`]; the worker reads its channel between
//! tracks, also while paused, so Tag and Undo are served at once whatever the analysis
//! is doing. Results carry the generation of the folder request they answer; the UI
//! drops stale ones.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use burn::tensor::Device;
use eframe::egui;

use super::panic_message;
use crate::analysis::{AnalyseOptions, Analyzer, Cached, load_model};
use crate::gui::state::{ColumnOrders, RowAnalysis, RowInit, Table};
use crate::library::db::{Library, default_db_path};
use crate::library::policy::Proposal;
use crate::library::tagger::{apply_checked, undo_batch};
use crate::library::tags::TagWriteOptions;
use crate::model::GenreModel;

/// Tag writes and restored genres are reported in chunks of this many files, so the UI
/// spreads the updates of a 10 000-file batch over frames and shows progress.
const CHUNK: usize = 250;

/// Orders for the library worker.
#[derive(Debug)]
pub enum LibCommand {
    /// List and analyse a folder; results carry `generation`. A path that is not a
    /// folder is refused ([`LibEvent::OpenFailed`]) and the current folder goes on.
    Open {
        /// The folder.
        folder: PathBuf,
        /// Key of this request.
        generation: u64,
    },
    /// Pause (true) or resume (false) the analysis; tags and undo are still served.
    Pause(bool),
    /// Stop analysing the folder of `generation`; its rows stay.
    Cancel {
        /// The request to stop.
        generation: u64,
    },
    /// Write these proposals as one journaled batch.
    Tag(Vec<(PathBuf, Proposal)>),
    /// Undo the last batch.
    Undo,
    /// Analyse with a trained model folder from now on (`None`: the shipped model).
    UseModel(Option<PathBuf>),
}

/// The model in use, for the UI.
#[derive(Clone)]
pub struct ModelInfo {
    /// Human name.
    pub name: String,
    /// The trained model's folder (`None`: the shipped model).
    pub path: Option<PathBuf>,
    /// Labels in probability order.
    pub labels: Arc<[String]>,
    /// The model itself (the track view analyses whole tracks with it).
    pub model: Arc<dyn GenreModel>,
}

impl std::fmt::Debug for ModelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelInfo")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// Facts from the library worker.
#[derive(Debug)]
pub enum LibEvent {
    /// Files seen so far by the scan of `generation`.
    Scanning {
        /// Request key.
        generation: u64,
        /// Files seen.
        files: usize,
    },
    /// The folder of `generation` could not be opened; the previous one is still shown.
    OpenFailed {
        /// Request key.
        generation: u64,
        /// The folder asked for.
        folder: PathBuf,
        /// Why.
        reason: String,
    },
    /// The folder's tracks as a table ready to show (indexed and sorted here, off the
    /// UI thread). Next: `Analysed`/`Failed` per track (in any order), then `Finished`.
    Rows {
        /// Request key.
        generation: u64,
        /// The folder.
        folder: PathBuf,
        /// The rows, sorted by path.
        table: Box<Table>,
    },
    /// The model that analyses from now on.
    Model(ModelInfo),
    /// No model could be loaded: the rows stay unanalysed.
    NoModel(String),
    /// Row `index` was analysed.
    Analysed {
        /// Request key.
        generation: u64,
        /// Row index.
        index: usize,
        /// What the row keeps of the result (made here, not on the UI thread).
        analysis: Box<RowAnalysis>,
        /// The labels of the model that made it (the order of its probabilities).
        labels: Arc<[String]>,
    },
    /// Row `index` could not be analysed.
    Failed {
        /// Request key.
        generation: u64,
        /// Row index.
        index: usize,
        /// Why.
        error: String,
    },
    /// The analysis is paused (or runs again).
    Paused(bool),
    /// Analysis of the folder ended.
    Finished {
        /// Request key.
        generation: u64,
        /// Stopped by Cancel (or a newer request) before the last track.
        cancelled: bool,
    },
    /// Part of a tag batch was written: (file, new genres), failures, files done so far
    /// and in all. Next: more `TagProgress`, then `Tagged`.
    TagProgress {
        /// Files written with their new genres.
        written: Vec<(PathBuf, Vec<String>)>,
        /// Files that failed, and why.
        failed: Vec<(PathBuf, String)>,
        /// Files handled so far.
        done: usize,
        /// Files in the batch.
        total: usize,
    },
    /// A tag batch ended.
    Tagged {
        /// Files written.
        written: usize,
        /// Files that failed.
        failed: usize,
    },
    /// Files whose genres an undo restored, with their genres now. Next: more, then
    /// `Undone`.
    Restored(Vec<(PathBuf, Vec<String>)>),
    /// The last batch was undone.
    Undone {
        /// The batch.
        batch: i64,
        /// Files restored.
        reverted: usize,
        /// Files left alone, and why.
        refused: Vec<(PathBuf, String)>,
    },
    /// Whether there is a batch to undo.
    CanUndo(bool),
    /// Writes a crash left in flight were settled at start.
    Reconciled(usize),
    /// Something went wrong outside a single track.
    Error(String),
}

impl LibEvent {
    /// The event's kind, for the frame diagnostics.
    pub fn kind(&self) -> &'static str {
        match self {
            LibEvent::Scanning { .. } => "library: scanning",
            LibEvent::OpenFailed { .. } => "library: open failed",
            LibEvent::Rows { .. } => "library: rows",
            LibEvent::Model(_) => "library: model",
            LibEvent::NoModel(_) => "library: no model",
            LibEvent::Analysed { .. } => "library: analysed",
            LibEvent::Failed { .. } => "library: failed",
            LibEvent::Paused(_) => "library: paused",
            LibEvent::Finished { .. } => "library: finished",
            LibEvent::TagProgress { .. } => "library: tag progress",
            LibEvent::Tagged { .. } => "library: tagged",
            LibEvent::Restored(_) => "library: restored",
            LibEvent::Undone { .. } => "library: undone",
            LibEvent::CanUndo(_) => "library: can undo",
            LibEvent::Reconciled(_) => "library: reconciled",
            LibEvent::Error(_) => "library: error",
        }
    }
}

/// The UI's side of the library worker.
pub struct LibraryHandle {
    tx: Sender<LibCommand>,
    /// Events.
    pub rx: Receiver<LibEvent>,
    generation: u64,
}

impl LibraryHandle {
    /// Start the worker with the library database at `db` (default location if
    /// `None`), analysing on `device`. A worker that cannot start says so in its
    /// first event.
    pub fn spawn(ctx: egui::Context, db: Option<PathBuf>, device: Device) -> Self {
        let (tx, rx_cmd) = channel();
        let (tx_ev, rx) = channel();
        let tx_err = tx_ev.clone();
        let ctx_err = ctx.clone();
        let w = LibraryWorker {
            ctx,
            tx: tx_ev,
            db: db.unwrap_or_else(default_db_path),
            device,
            model: None,
            backlog: VecDeque::new(),
            paused: false,
        };
        let spawned = std::thread::Builder::new()
            .name("library".into())
            .spawn(move || {
                // Its decoding thread and the backbone's pool inherit this.
                super::background_priority();
                let tx = w.tx.clone();
                let ctx = w.ctx.clone();
                if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| w.run(rx_cmd))) {
                    let _ = tx.send(LibEvent::Error(format!(
                        "the library worker crashed ({}); restart the app",
                        panic_message(&p)
                    )));
                    ctx.request_repaint();
                }
            });
        if let Err(e) = spawned {
            let _ = tx_err.send(LibEvent::Error(format!(
                "cannot start the library worker: {e}"
            )));
            ctx_err.request_repaint();
        }
        Self {
            tx,
            rx,
            generation: 0,
        }
    }

    /// Send an order. A worker that died makes this a no-op; its last event said why.
    pub fn send(&self, c: LibCommand) {
        let _ = self.tx.send(c);
    }

    /// Ask to open `folder`; returns the request's generation.
    pub fn open(&mut self, folder: PathBuf) -> u64 {
        let generation = self.next_generation();
        self.send(LibCommand::Open { folder, generation });
        generation
    }

    /// A new generation number (for rows that do not come from a scan).
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }
}

/// What to do after serving the orders that arrived.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct LibraryWorker {
    ctx: egui::Context,
    tx: Sender<LibEvent>,
    db: PathBuf,
    device: Device,
    /// The model in use (loaded on first need).
    model: Option<ModelInfo>,
    /// Orders read but not served yet (an Open or UseModel that stops an analysis).
    backlog: VecDeque<LibCommand>,
    paused: bool,
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
        // A crash may have left writes in flight: opening the library settles them when
        // it gets the writer lock, else (another writer held it) settle them now.
        let at_open = lib.recovery().settled;
        match lib.reconcile().map(|n| n + at_open) {
            Ok(0) => {}
            Ok(n) => self.send(LibEvent::Reconciled(n)),
            Err(e) => self.send(LibEvent::Error(format!(
                "cannot check the write journal: {e}"
            ))),
        }
        self.send_can_undo(&lib);
        loop {
            let cmd = match self.backlog.pop_front() {
                Some(c) => c,
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
            };
            match cmd {
                LibCommand::Open { folder, generation } => {
                    self.open(&lib, &folder, generation, &rx)
                }
                LibCommand::Pause(p) => {
                    self.paused = p;
                    self.send(LibEvent::Paused(p));
                }
                // Nothing is analysing: confirm, so the UI leaves its "analysing" state.
                LibCommand::Cancel { generation } => self.send(LibEvent::Finished {
                    generation,
                    cancelled: true,
                }),
                LibCommand::Tag(items) => self.tag(&lib, items),
                LibCommand::Undo => self.undo(&lib),
                LibCommand::UseModel(m) => self.use_model(m),
            }
        }
    }

    fn load(&self, path: Option<&Path>) -> Result<ModelInfo, crate::Error> {
        let model = load_model(path, &self.device)?;
        // The run's folder name, not its path: the path is shown on hover.
        let run_name = |dir: &Path| {
            let d = if dir.file_name().is_some_and(|n| n == "model") {
                dir.parent().unwrap_or(dir)
            } else {
                dir
            };
            d.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| d.display().to_string())
        };
        Ok(ModelInfo {
            name: match path {
                Some(dir) => format!("{} (run {})", model.name(), run_name(dir)),
                None => format!("shipped model: {}", model.name()),
            },
            path: path.map(Path::to_path_buf),
            labels: Arc::from(model.labels().to_vec()),
            model,
        })
    }

    fn use_model(&mut self, m: Option<PathBuf>) {
        match self.load(m.as_deref()) {
            Ok(info) => {
                self.model = Some(info.clone());
                self.send(LibEvent::Model(info));
            }
            Err(e) => self.send(LibEvent::Error(format!(
                "cannot use {}: {e}",
                m.as_deref()
                    .map_or("the shipped model".into(), |d| d.display().to_string())
            ))),
        }
    }

    /// Serve the orders that arrived; while paused, wait for more (blocking on the
    /// channel: no polling). Returns `Stop` when the analysis of `generation` must end.
    fn between(&mut self, lib: &Library, rx: &Receiver<LibCommand>, generation: u64) -> Flow {
        loop {
            while let Ok(c) = rx.try_recv() {
                if self.serve(lib, c, generation) == Flow::Stop {
                    return Flow::Stop;
                }
            }
            if !self.paused {
                return Flow::Continue;
            }
            match rx.recv() {
                Ok(c) => {
                    if self.serve(lib, c, generation) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Err(_) => return Flow::Stop,
            }
        }
    }

    /// One order during an analysis. Tag and Undo are served at once; Open (of a real
    /// folder) and UseModel stop the analysis and are handled after it, as is Cancel of
    /// this generation.
    fn serve(&mut self, lib: &Library, c: LibCommand, generation: u64) -> Flow {
        match c {
            LibCommand::Tag(items) => self.tag(lib, items),
            LibCommand::Undo => self.undo(lib),
            LibCommand::Pause(p) => {
                self.paused = p;
                self.send(LibEvent::Paused(p));
            }
            LibCommand::Cancel { generation: g } => {
                if g == generation {
                    // A cancelled analysis is not waiting any more: the next one runs.
                    if self.paused {
                        self.paused = false;
                        self.send(LibEvent::Paused(false));
                    }
                    return Flow::Stop;
                }
            }
            LibCommand::Open { folder, generation } if !folder.is_dir() => {
                self.send(LibEvent::OpenFailed {
                    generation,
                    reason: not_a_folder(&folder),
                    folder,
                })
            }
            c @ (LibCommand::Open { .. } | LibCommand::UseModel(_)) => {
                self.backlog.push_back(c);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn open(&mut self, lib: &Library, folder: &Path, generation: u64, rx: &Receiver<LibCommand>) {
        if !folder.is_dir() {
            self.send(LibEvent::OpenFailed {
                generation,
                folder: folder.to_path_buf(),
                reason: not_a_folder(folder),
            });
            return;
        }
        // The scan walks the folder into the library; the rows then come from it.
        match lib.scan(&[folder.to_path_buf()], |files| {
            self.send(LibEvent::Scanning { generation, files })
        }) {
            Ok(report) => {
                if !report.errors.is_empty() {
                    let (p, e) = &report.errors[0];
                    self.send(LibEvent::Error(format!(
                        "{} file(s) or folder(s) could not be read, e.g. {} ({e})",
                        report.errors.len(),
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
        let rows: Vec<RowInit> = stored
            .into_iter()
            .map(|(path, r)| {
                RowInit::new(
                    path,
                    r.tags.title,
                    r.tags.artist,
                    r.tags.album,
                    r.tags.genres,
                    r.error,
                )
                .with_year(r.tags.year)
            })
            .collect();
        let index: HashMap<PathBuf, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.path.clone(), i))
            .collect();
        let changed = match written_by_us(lib) {
            Ok(paths) => paths.iter().filter_map(|p| index.get(p).copied()).collect(),
            Err(e) => {
                self.send(LibEvent::Error(format!("cannot read the journal: {e}")));
                Vec::new()
            }
        };
        let orders = ColumnOrders::compute(&rows, folder);
        // Rows whose tags could not be read are not analysed (the decoder would fail
        // the same way); they show their error.
        let files: Vec<PathBuf> = rows
            .iter()
            .filter(|r| r.error.is_none())
            .map(|r| r.path.clone())
            .collect();
        let table = Table::prepared(folder.to_path_buf(), rows, Some(orders), &changed);
        self.send(LibEvent::Rows {
            generation,
            folder: folder.to_path_buf(),
            table: Box::new(table),
        });
        if self.between(lib, rx, generation) == Flow::Stop {
            self.send(LibEvent::Finished {
                generation,
                cancelled: true,
            });
            return;
        }
        if self.model.is_none() {
            match self.load(None) {
                Ok(info) => {
                    self.model = Some(info.clone());
                    self.send(LibEvent::Model(info));
                }
                Err(e) => {
                    self.send(LibEvent::NoModel(e.to_string()));
                    self.send(LibEvent::Finished {
                        generation,
                        cancelled: false,
                    });
                    return;
                }
            }
        }
        let Some(info) = self.model.clone() else {
            return;
        };
        let analyzer = Analyzer::new(info.model.clone(), AnalyseOptions::default());
        let cache = Cached::new(&analyzer, lib);
        let total = files.len();
        let mut seen = 0usize;
        cache.get_or_analyse(files, |path, r, _cached| {
            seen += 1;
            if let Some(&index) = index.get(&path) {
                self.send(match r {
                    Ok(a) => LibEvent::Analysed {
                        generation,
                        index,
                        analysis: Box::new(RowAnalysis::from_stored(&a, &info.labels)),
                        labels: info.labels.clone(),
                    },
                    Err(e) => LibEvent::Failed {
                        generation,
                        index,
                        error: e.to_string(),
                    },
                });
            }
            self.between(lib, rx, generation) == Flow::Continue
        });
        self.send(LibEvent::Finished {
            generation,
            cancelled: seen < total,
        });
    }

    fn tag(&self, lib: &Library, items: Vec<(PathBuf, Proposal)>) {
        let batch = match lib.begin_batch("app: tag selection") {
            Ok(b) => b,
            Err(e) => return self.send(LibEvent::Error(e.to_string())),
        };
        let total = items.len();
        let (mut n_written, mut n_failed) = (0, 0);
        let mut written = Vec::new();
        let mut failed = Vec::new();
        for (k, (path, p)) in items.into_iter().enumerate() {
            match apply_checked(lib, batch, path.as_path(), &p, &TagWriteOptions::default()) {
                Ok(Ok(())) => written.push((path, p.proposed)),
                Ok(Err(e)) => failed.push((path, e.to_string())),
                Err(e) => failed.push((path, e.to_string())),
            }
            if written.len() + failed.len() >= CHUNK || k + 1 == total {
                n_written += written.len();
                n_failed += failed.len();
                self.send(LibEvent::TagProgress {
                    written: std::mem::take(&mut written),
                    failed: std::mem::take(&mut failed),
                    done: k + 1,
                    total,
                });
            }
        }
        self.send(LibEvent::Tagged {
            written: n_written,
            failed: n_failed,
        });
        self.send_can_undo(lib);
    }

    fn undo(&self, lib: &Library) {
        match lib.last_undoable_batch() {
            Ok(Some(b)) => match undo_batch(lib, b, &TagWriteOptions::default()) {
                Ok(r) => {
                    for chunk in r.reverted.chunks(CHUNK) {
                        let restored = chunk
                            .iter()
                            .map(|p| match crate::library::tags::read_tags(p) {
                                Ok(t) => (p.clone(), t.genres),
                                // Restored but unreadable now: show it untagged, say why.
                                Err(e) => {
                                    self.send(LibEvent::Error(e.to_string()));
                                    (p.clone(), Vec::new())
                                }
                            })
                            .collect();
                        self.send(LibEvent::Restored(restored));
                    }
                    self.send(LibEvent::Undone {
                        batch: r.batch,
                        reverted: r.reverted.len(),
                        refused: r.refused,
                    });
                }
                Err(e) => self.send(LibEvent::Error(e.to_string())),
            },
            Ok(None) => self.send(LibEvent::Error("nothing to undo".into())),
            Err(e) => self.send(LibEvent::Error(e.to_string())),
        }
        self.send_can_undo(lib);
    }

    fn send_can_undo(&self, lib: &Library) {
        match lib.last_undoable_batch() {
            Ok(b) => self.send(LibEvent::CanUndo(b.is_some())),
            Err(e) => self.send(LibEvent::Error(e.to_string())),
        }
    }
}

fn not_a_folder(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        "no folder given".into()
    } else if p.exists() {
        format!("not a folder: {}", p.display())
    } else {
        format!("no such folder: {}", p.display())
    }
}

/// Files whose current genres genretag wrote: `done` writes of batches not undone.
fn written_by_us(lib: &Library) -> Result<HashSet<PathBuf>, crate::library::db::DbError> {
    let mut out = HashSet::new();
    for b in lib.batches()?.into_iter().filter(|b| b.undone_at.is_none()) {
        for e in lib.journal(Some(b.id))? {
            if e.state == "done" {
                out.insert(e.path);
            }
        }
    }
    Ok(out)
}
