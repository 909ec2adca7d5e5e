//! The eframe app: library, track and training views. The UI thread only draws and
//! routes: scanning, analysis, decoding, tag writes and training run on the workers
//! of [`super::jobs`]; their events are drained in `logic` within a small budget.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use eframe::egui::{self, Color32, RichText};
use serde::{Deserialize, Serialize};

use super::jobs::{
    LibCommand, LibEvent, LibraryHandle, LoadedTrack, RowInit, TrainEvent, TrainingHandle,
    load_track,
};
use super::player::Player;
use super::widgets;
use crate::analysis::StoredAnalysis;
use crate::library::policy::{Mode, Proposal, TagPolicy};
use crate::train::features::Windowing;
use crate::train::metrics::{Normalise, mcnemar};
use crate::train::models::{ModelKind, ModelSpec};
use crate::train::report::Report;
use crate::train::run::{GroupBy, RunOptions, Source, SplitSpec};
use crate::train::trainer::{Augment, EpochStats, TrainConfig};

/// Which view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Tab {
    /// The library table and tagging.
    #[default]
    Library,
    /// Playback, spectrograms and probabilities of one track.
    Track,
    /// Training and evaluation.
    Training,
}

/// User preferences, persisted with eframe's storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Most recent first.
    pub recent_folders: Vec<PathBuf>,
    /// Dark theme (else light).
    pub dark: bool,
    /// Playback volume.
    pub volume: f32,
    /// Last view.
    pub tab: Tab,
    /// Training dataset folder.
    pub dataset: String,
    /// Training output folder.
    pub runs_dir: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            recent_folders: Vec::new(),
            dark: true,
            volume: 0.8,
            tab: Tab::Library,
            dataset: String::new(),
            runs_dir: std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join("genretag-runs"))
                .unwrap_or_else(|| PathBuf::from("genretag-runs"))
                .display()
                .to_string(),
        }
    }
}

/// Start-up options (command line, tests).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Open this folder at start.
    pub folder: Option<PathBuf>,
    /// Library database (default location if `None`).
    pub db: Option<PathBuf>,
    /// Start on this view.
    pub tab: Option<Tab>,
    /// Select the first track and play it once analysed.
    pub play_first: bool,
    /// Show this run's report in the training view.
    pub run: Option<PathBuf>,
    /// Write frame-time statistics here on exit.
    pub frame_log: Option<PathBuf>,
    /// Act like a busy user (for frame-time measurements): scroll the table, select
    /// tracks and switch views continuously.
    pub exercise: bool,
    /// Hide machine-dependent text (frame times, audio device status) so snapshot
    /// images are reproducible.
    pub stable_ui: bool,
}

/// Analysis state of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Waiting.
    Pending,
    /// Analysed.
    Done,
    /// Could not be analysed.
    Failed(String),
}

/// One library row.
#[derive(Debug, Clone)]
pub struct Row {
    /// As listed.
    pub init: RowInit,
    /// Analysis, when done.
    pub analysis: Option<StoredAnalysis>,
    /// State.
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Title,
    Artist,
    File,
    Genre,
    Predicted,
    Status,
}

/// Training form.
struct TrainForm {
    kind: ModelKind,
    use_library: bool,
    grouped: bool,
    epochs: usize,
    lr: f64,
    width: f32,
    augment: bool,
    name: String,
}

impl Default for TrainForm {
    fn default() -> Self {
        Self {
            kind: ModelKind::Transfer,
            use_library: false,
            grouped: true,
            epochs: TrainConfig::for_kind(ModelKind::Transfer).epochs,
            lr: TrainConfig::for_kind(ModelKind::Transfer).lr,
            width: 0.5,
            augment: false,
            name: "run".into(),
        }
    }
}

/// The app.
pub struct GenretagApp {
    /// Preferences.
    pub settings: Settings,
    ctx: egui::Context,
    lib: LibraryHandle,
    generation: u64,
    /// Rows of the open folder.
    pub rows: Vec<Row>,
    folder: Option<PathBuf>,
    /// The folder path field.
    pub folder_input: String,
    filter: String,
    sort: (SortKey, bool),
    /// Visible order (indices into rows).
    order: Vec<usize>,
    order_dirty: bool,
    /// Selected rows.
    pub selected: BTreeSet<usize>,
    anchor: Option<usize>,
    started: Option<Instant>,
    analysis_done: bool,
    /// Tagging rules of the preview.
    pub policy: TagPolicy,
    /// Tag preview for the selection.
    pub preview: Vec<(PathBuf, Proposal)>,
    status: String,
    model_name: String,
    // Track view.
    /// Row shown in the track view.
    pub current: Option<usize>,
    loading: Option<Receiver<Result<LoadedTrack, String>>>,
    /// The decoded track.
    pub track: Option<LoadedTrack>,
    overview: Option<egui::TextureHandle>,
    live: Option<egui::TextureHandle>,
    live_frame: Option<usize>,
    /// Playback.
    pub player: Player,
    play_first: bool,
    /// Show the track view when `play_first` starts playing (no view was asked for).
    follow_play: bool,
    // Training view.
    form: TrainForm,
    training: Option<TrainingHandle>,
    /// Curves of the current run.
    pub curves: Vec<EpochStats>,
    train_log: Vec<String>,
    /// Report of the last finished or opened run.
    pub report: Option<Report>,
    report_dir: Option<PathBuf>,
    compare: Option<Report>,
    normalise: Normalise,
    /// A report export running on a worker.
    exporting: Option<Receiver<Result<PathBuf, String>>>,
    run_input: String,
    // Frame times (ms) of `ui`.
    frame_ms: Vec<f32>,
    /// Milliseconds between the starts of consecutive frames (includes egui's
    /// tessellation and the renderer's work, and idle time when nothing repaints).
    interval_ms: Vec<f32>,
    last_frame: Option<Instant>,
    frame_log: Option<PathBuf>,
    exercise: Option<u64>,
    scroll_to: Option<usize>,
    stable_ui: bool,
}

impl GenretagApp {
    /// Create the app; restores settings from eframe storage when present.
    pub fn new(cc: &eframe::CreationContext<'_>, start: StartOptions) -> Self {
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        Self::with_settings(cc.egui_ctx.clone(), settings, start)
    }

    /// Create the app with given settings (tests).
    pub fn with_settings(ctx: egui::Context, mut settings: Settings, start: StartOptions) -> Self {
        ctx.set_theme(if settings.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        if let Some(t) = start.tab {
            settings.tab = t;
        }
        let lib = LibraryHandle::spawn(ctx.clone(), start.db.clone());
        let mut app = Self {
            ctx,
            folder_input: settings
                .recent_folders
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            settings,
            lib,
            generation: 0,
            rows: Vec::new(),
            folder: None,
            filter: String::new(),
            sort: (SortKey::File, true),
            order: Vec::new(),
            order_dirty: true,
            selected: BTreeSet::new(),
            anchor: None,
            started: None,
            analysis_done: false,
            policy: TagPolicy::default(),
            preview: Vec::new(),
            status: String::new(),
            model_name: "shipped model (musicnn MSD + logistic regression)".into(),
            current: None,
            loading: None,
            track: None,
            overview: None,
            live: None,
            live_frame: None,
            player: Player::default(),
            play_first: start.play_first,
            follow_play: start.tab.is_none(),
            form: TrainForm::default(),
            training: None,
            curves: Vec::new(),
            train_log: Vec::new(),
            report: None,
            report_dir: None,
            compare: None,
            normalise: Normalise::Counts,
            exporting: None,
            run_input: String::new(),
            frame_ms: Vec::new(),
            interval_ms: Vec::new(),
            last_frame: None,
            frame_log: start.frame_log.clone(),
            exercise: start.exercise.then_some(0),
            scroll_to: None,
            stable_ui: start.stable_ui,
        };
        app.player.set_volume(app.settings.volume);
        if let Some(f) = start.folder {
            app.open_folder(f);
        }
        if let Some(r) = start.run {
            app.open_run(&r);
        }
        app
    }

    /// Open a music folder: list it and analyse it in the background.
    pub fn open_folder(&mut self, folder: PathBuf) {
        if !folder.is_dir() {
            self.status = format!("not a folder: {}", folder.display());
            return;
        }
        self.settings.recent_folders.retain(|p| p != &folder);
        self.settings.recent_folders.insert(0, folder.clone());
        self.settings.recent_folders.truncate(8);
        self.folder_input = folder.display().to_string();
        self.generation = self.lib.open(folder.clone());
        self.folder = Some(folder);
        self.rows.clear();
        self.selected.clear();
        self.preview.clear();
        self.order_dirty = true;
        self.started = Some(Instant::now());
        self.analysis_done = false;
        self.status = "scanning...".into();
    }

    /// Analysed rows, failed rows, total.
    pub fn progress(&self) -> (usize, usize, usize) {
        let done = self
            .rows
            .iter()
            .filter(|r| r.status == Status::Done)
            .count();
        let failed = self
            .rows
            .iter()
            .filter(|r| matches!(r.status, Status::Failed(_)))
            .count();
        (done, failed, self.rows.len())
    }

    /// Whether the open folder has been analysed completely.
    pub fn analysis_finished(&self) -> bool {
        self.analysis_done
    }

    /// Select one row and show it in the track view (decoding on a worker).
    pub fn select_track(&mut self, index: usize) {
        if index >= self.rows.len() {
            return;
        }
        self.selected = BTreeSet::from([index]);
        self.anchor = Some(index);
        if self.current != Some(index) {
            self.current = Some(index);
            self.track = None;
            self.overview = None;
            self.live_frame = None;
            self.player.pause();
            self.loading = Some(load_track(
                self.ctx.clone(),
                self.rows[index].init.path.clone(),
            ));
        }
    }

    /// Tag proposals for the selected rows under the current policy.
    pub fn preview_selection(&mut self) {
        self.preview = self
            .selected
            .iter()
            .filter_map(|&i| {
                let r = &self.rows[i];
                let a = r.analysis.as_ref()?;
                let ranked: Vec<(&str, f32)> =
                    a.genres.iter().map(|(l, p)| (l.as_str(), *p)).collect();
                Some((
                    r.init.path.clone(),
                    self.policy.propose(&r.init.genres, &ranked),
                ))
            })
            .collect();
    }

    /// Write the previewed changes.
    pub fn apply_preview(&mut self) {
        let items: Vec<(PathBuf, Proposal)> = self
            .preview
            .iter()
            .filter(|(_, p)| p.changes && !p.skipped)
            .cloned()
            .collect();
        if items.is_empty() {
            self.status = "nothing to write".into();
            return;
        }
        self.status = format!("writing genres to {} file(s)...", items.len());
        self.lib.send(LibCommand::Tag(items));
    }

    /// Undo the last tag batch.
    pub fn undo(&mut self) {
        self.lib.send(LibCommand::Undo);
    }

    /// Show a finished run's report.
    pub fn open_run(&mut self, dir: &Path) {
        match Report::load(dir) {
            Ok(r) => {
                self.curves = r.history.clone();
                self.report = Some(r);
                self.report_dir = Some(dir.to_path_buf());
                self.run_input = dir.display().to_string();
            }
            Err(e) => self.status = e,
        }
    }

    /// Start training with the form's settings; `folder` is the dataset.
    pub fn start_training(&mut self, resume: bool) {
        let kind = self.form.kind;
        let source = if self.form.use_library {
            match &self.folder {
                Some(f) => Source::Library {
                    roots: vec![f.clone()],
                    min_tracks: 5,
                    map: None,
                },
                None => {
                    self.status = "open a library folder first".into();
                    return;
                }
            }
        } else {
            Source::Folder(PathBuf::from(self.settings.dataset.trim()))
        };
        let split = if self.form.grouped {
            SplitSpec::Grouped {
                by: GroupBy::Gtzan,
                test: 0.25,
                val: 0.15,
                seed: 1,
            }
        } else {
            SplitSpec::Stratified {
                test: 0.25,
                val: 0.15,
                seed: 1,
            }
        };
        let mut spec = ModelSpec::new(kind);
        spec.width = self.form.width;
        let mut config = TrainConfig::for_kind(kind);
        config.epochs = self.form.epochs.max(1);
        config.lr = self.form.lr;
        if self.form.augment {
            config.augment = Augment::reports();
        }
        let out = PathBuf::from(self.settings.runs_dir.trim()).join(self.form.name.trim());
        let opts = RunOptions {
            source,
            split,
            spec,
            config,
            windowing: Windowing::default(),
            out: out.clone(),
            resume,
            cache: crate::train::features::FeatureStore::default_cache(),
            device: burn::tensor::Device::flex(),
            eval_centre: false,
        };
        self.curves.clear();
        self.train_log.clear();
        self.report = None;
        self.report_dir = Some(out);
        self.training = Some(TrainingHandle::spawn(self.ctx.clone(), opts));
    }

    /// Choose the model kind and epochs of the training form.
    pub fn set_training_form(&mut self, kind: ModelKind, epochs: usize) {
        self.form.kind = kind;
        self.form.epochs = epochs;
        self.form.lr = TrainConfig::for_kind(kind).lr;
    }

    /// The status-bar text.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// Whether a training run is going on.
    pub fn training_running(&self) -> bool {
        self.training.is_some()
    }

    fn drain(&mut self) {
        let budget = Instant::now() + Duration::from_millis(4);
        while Instant::now() < budget {
            let Ok(ev) = self.lib.rx.try_recv() else {
                break;
            };
            match ev {
                LibEvent::Rows { generation, rows } if generation == self.generation => {
                    self.rows = rows
                        .into_iter()
                        .map(|init| Row {
                            status: if init.error.is_some() {
                                Status::Failed(init.error.clone().unwrap_or_default())
                            } else {
                                Status::Pending
                            },
                            init,
                            analysis: None,
                        })
                        .collect();
                    self.order_dirty = true;
                    self.status = format!("{} tracks: analysing...", self.rows.len());
                }
                LibEvent::Analysed {
                    generation,
                    index,
                    analysis,
                } if generation == self.generation => {
                    if let Some(r) = self.rows.get_mut(index) {
                        r.analysis = Some(analysis);
                        r.status = Status::Done;
                        self.order_dirty |=
                            matches!(self.sort.0, SortKey::Predicted | SortKey::Status);
                    }
                    if self.play_first && self.current.is_none() && index == 0 {
                        self.select_track(0);
                        if self.follow_play {
                            self.settings.tab = Tab::Track;
                        }
                    }
                }
                LibEvent::Failed {
                    generation,
                    index,
                    error,
                } if generation == self.generation => {
                    if let Some(r) = self.rows.get_mut(index) {
                        r.status = Status::Failed(error);
                    }
                }
                LibEvent::Finished { generation } if generation == self.generation => {
                    self.analysis_done = true;
                    let (done, failed, total) = self.progress();
                    self.status = format!("{done} of {total} analysed, {failed} failed");
                }
                LibEvent::Tagged { written, failed } => {
                    for (p, g) in &written {
                        if let Some(r) = self.rows.iter_mut().find(|r| &r.init.path == p) {
                            r.init.genres = g.clone();
                        }
                    }
                    self.status = format!(
                        "wrote genres to {} file(s){}",
                        written.len(),
                        if failed.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; {} failed: {}",
                                failed.len(),
                                failed
                                    .iter()
                                    .map(|(p, e)| format!("{}: {e}", p.display()))
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            )
                        }
                    );
                    self.preview.clear();
                    self.order_dirty = true;
                }
                LibEvent::Undone(r, restored) => {
                    for (p, genres) in restored {
                        if let Some(row) = self.rows.iter_mut().find(|row| row.init.path == p) {
                            row.init.genres = genres;
                        }
                    }
                    self.status = format!(
                        "undid batch {}: {} restored, {} refused",
                        r.batch,
                        r.reverted.len(),
                        r.refused.len()
                    );
                    self.order_dirty = true;
                }
                LibEvent::ModelChanged(name) => {
                    self.model_name = name.unwrap_or_else(|| "shipped model".into());
                    if let Some(f) = self.folder.clone() {
                        self.open_folder(f);
                    }
                }
                LibEvent::Error(e) => self.status = e,
                _ => {} // stale generation
            }
        }
        if let Some(rx) = &self.loading
            && let Ok(r) = rx.try_recv()
        {
            self.loading = None;
            match r {
                Ok(t) => {
                    self.player.load(t.samples.clone(), t.rate_hz);
                    self.player.set_volume(self.settings.volume);
                    if self.play_first {
                        self.play_first = false;
                        self.player.play();
                    }
                    self.track = Some(t);
                }
                Err(e) => self.status = e,
            }
        }
        if let Some(rx) = &self.exporting
            && let Ok(r) = rx.try_recv()
        {
            self.exporting = None;
            self.status = match r {
                Ok(dir) => format!("exported to {}", dir.display()),
                Err(e) => e,
            };
        }
        let mut finished = false;
        if let Some(h) = &self.training {
            while let Ok(ev) = h.rx.try_recv() {
                match ev {
                    TrainEvent::Preparing(d, t) => {
                        self.status = format!("training: features {d}/{t}");
                    }
                    TrainEvent::Epoch(s) => self.curves.push(s),
                    TrainEvent::Log(l) => self.train_log.push(l),
                    TrainEvent::Done(r) => {
                        self.status = format!(
                            "training done: test accuracy {:.3} on {} tracks",
                            r.track.accuracy, r.track.n
                        );
                        self.report = Some(*r);
                        finished = true;
                    }
                    TrainEvent::Failed(e) => {
                        self.status = format!("training failed: {e}");
                        finished = true;
                    }
                }
            }
        }
        if finished {
            self.training = None;
        }
    }

    fn sorted_order(&mut self) {
        if !self.order_dirty {
            return;
        }
        let f = self.filter.to_lowercase();
        let rows = &self.rows;
        let mut order: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                f.is_empty() || {
                    let r = &rows[i];
                    r.init.title.to_lowercase().contains(&f)
                        || r.init.artist.to_lowercase().contains(&f)
                        || r.init.path.to_string_lossy().to_lowercase().contains(&f)
                        || r.init.genres.iter().any(|g| g.to_lowercase().contains(&f))
                        || predicted(r).is_some_and(|(g, _)| g.to_lowercase().contains(&f))
                }
            })
            .collect();
        let (key, asc) = self.sort;
        order.sort_by(|&a, &b| {
            let (ra, rb) = (&rows[a], &rows[b]);
            let o = match key {
                SortKey::Title => ra.init.title.cmp(&rb.init.title),
                SortKey::Artist => ra.init.artist.cmp(&rb.init.artist),
                SortKey::File => ra.init.path.cmp(&rb.init.path),
                SortKey::Genre => ra.init.genres.cmp(&rb.init.genres),
                SortKey::Predicted => {
                    let pa = predicted(ra).map(|(g, p)| (g.to_string(), (p * 1e4) as i64));
                    let pb = predicted(rb).map(|(g, p)| (g.to_string(), (p * 1e4) as i64));
                    pa.cmp(&pb)
                }
                SortKey::Status => status_text(ra).cmp(status_text(rb)),
            };
            if asc { o } else { o.reverse() }
        });
        self.order = order;
        self.order_dirty = false;
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (space, up, down, left, right, open) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::Space),
                i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::ArrowDown),
                i.key_pressed(egui::Key::ArrowLeft),
                i.key_pressed(egui::Key::ArrowRight),
                i.modifiers.command && i.key_pressed(egui::Key::O),
            )
        });
        if space {
            self.player.toggle();
        }
        if up || down {
            let pos = self
                .current
                .and_then(|c| self.order.iter().position(|&i| i == c));
            let next = match (pos, down) {
                (Some(p), true) => (p + 1).min(self.order.len().saturating_sub(1)),
                (Some(p), false) => p.saturating_sub(1),
                (None, _) => 0,
            };
            if let Some(&i) = self.order.get(next) {
                self.select_track(i);
            }
        }
        if left || right {
            let p = self.player.position_s();
            self.player.seek(if right { p + 5.0 } else { p - 5.0 });
        }
        if open {
            self.pick_folder();
        }
    }

    fn pick_folder(&mut self) {
        // rfd stays on the UI thread; without a desktop portal it returns nothing and
        // the path field remains the way in.
        match rfd::FileDialog::new().pick_folder() {
            Some(f) => self.open_folder(f),
            None => {
                self.status =
                    "no folder chosen (no file dialog here? type or paste a path, or drop a folder)"
                        .into()
            }
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("genretag");
            ui.separator();
            for (t, name) in [
                (Tab::Library, "Library"),
                (Tab::Track, "Track"),
                (Tab::Training, "Training"),
            ] {
                ui.selectable_value(&mut self.settings.tab, t, name);
            }
            ui.separator();
            let theme = if self.settings.dark {
                "Light theme"
            } else {
                "Dark theme"
            };
            if ui.button(theme).clicked() {
                self.settings.dark = !self.settings.dark;
                ui.ctx().set_theme(if self.settings.dark {
                    egui::Theme::Dark
                } else {
                    egui::Theme::Light
                });
            }
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(&self.status);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if !self.stable_ui {
                    let (p50, p99) = frame_stats(&self.frame_ms);
                    ui.label(
                        RichText::new(format!("ui {p50:.1} / {p99:.1} ms (p50/p99)"))
                            .small()
                            .weak(),
                    );
                }
                ui.label(RichText::new(&self.model_name).small().weak());
            });
        });
    }

    fn library_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let l = ui.label("Folder:");
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut self.folder_input)
                        .hint_text("type or paste a path, or drop a folder on the window")
                        .desired_width(420.0),
                )
                .labelled_by(l.id);
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Open").clicked() || enter {
                let p = PathBuf::from(self.folder_input.trim());
                self.open_folder(p);
            }
            if ui.button("Browse...").clicked() {
                self.pick_folder();
            }
            let recent = self.settings.recent_folders.clone();
            egui::ComboBox::new("recent", "recent folders")
                .selected_text("Recent")
                .show_ui(ui, |ui| {
                    for f in recent {
                        if ui
                            .selectable_label(false, f.display().to_string())
                            .clicked()
                        {
                            self.open_folder(f);
                        }
                    }
                });
        });
        // Progress.
        let (done, failed, total) = self.progress();
        if total > 0 {
            ui.horizontal(|ui| {
                let frac = (done + failed) as f32 / total as f32;
                let eta = self.started.and_then(|t| {
                    let n = done + failed;
                    (n > 0 && n < total)
                        .then(|| t.elapsed().as_secs_f32() / n as f32 * (total - n) as f32)
                });
                let text = match eta {
                    Some(s) => {
                        format!("{done}/{total} analysed, {failed} failed, about {s:.0} s left")
                    }
                    None => format!("{done}/{total} analysed, {failed} failed"),
                };
                ui.add(egui::ProgressBar::new(frac).text(text).desired_width(420.0));
                let paused = self.lib.paused.load(Ordering::Relaxed);
                if !self.analysis_done {
                    if ui.button(if paused { "Resume" } else { "Pause" }).clicked() {
                        self.lib.paused.store(!paused, Ordering::Relaxed);
                    }
                    if ui.button("Cancel").clicked() {
                        // A newer generation stops the worker; keep the rows we have.
                        self.lib.generation.fetch_add(1, Ordering::SeqCst);
                        self.analysis_done = true;
                        self.status = "analysis cancelled".into();
                    }
                }
            });
        }
        ui.horizontal(|ui| {
            let l = ui.label("Search:");
            if ui
                .add(egui::TextEdit::singleline(&mut self.filter).desired_width(240.0))
                .labelled_by(l.id)
                .changed()
            {
                self.order_dirty = true;
            }
            ui.label(format!(
                "{} shown, {} selected",
                self.order.len(),
                self.selected.len()
            ));
        });
        egui::Panel::bottom("tagging")
            .resizable(true)
            .default_size(190.0)
            .show(ui, |ui| self.tagging_ui(ui));
        self.sorted_order();
        self.table_ui(ui);
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) {
        use egui_extras::{Column, TableBuilder};
        let mut clicked: Option<(usize, egui::Modifiers)> = None;
        let mut double: Option<usize> = None;
        let mut sort_by: Option<SortKey> = None;
        let header = |ui: &mut egui::Ui,
                      key: SortKey,
                      name: &str,
                      sort: (SortKey, bool),
                      out: &mut Option<SortKey>| {
            let arrow = if sort.0 == key {
                if sort.1 { " (asc)" } else { " (desc)" }
            } else {
                ""
            };
            if ui.button(format!("{name}{arrow}")).clicked() {
                *out = Some(key);
            }
        };
        let sort = self.sort;
        let mut table = TableBuilder::new(ui);
        if let Some(r) = self.scroll_to.take() {
            table = table.scroll_to_row(r, None);
        }
        table
            .striped(true)
            .sense(egui::Sense::click())
            .column(Column::initial(200.0).at_least(60.0).clip(true))
            .column(Column::initial(140.0).at_least(40.0).clip(true))
            .column(Column::initial(180.0).at_least(40.0).clip(true))
            .column(Column::initial(110.0).at_least(40.0).clip(true))
            .column(Column::initial(150.0).at_least(40.0).clip(true))
            .column(Column::remainder().at_least(60.0).clip(true))
            .header(22.0, |mut h| {
                h.col(|ui| header(ui, SortKey::Title, "Title", sort, &mut sort_by));
                h.col(|ui| header(ui, SortKey::Artist, "Artist", sort, &mut sort_by));
                h.col(|ui| header(ui, SortKey::File, "File", sort, &mut sort_by));
                h.col(|ui| header(ui, SortKey::Genre, "Genre", sort, &mut sort_by));
                h.col(|ui| header(ui, SortKey::Predicted, "Predicted", sort, &mut sort_by));
                h.col(|ui| header(ui, SortKey::Status, "Status", sort, &mut sort_by));
            })
            .body(|body| {
                body.rows(20.0, self.order.len(), |mut row| {
                    let i = self.order[row.index()];
                    let r = &self.rows[i];
                    row.set_selected(self.selected.contains(&i));
                    // Cells are plain (not selectable) text so clicks reach the row.
                    let cell = |ui: &mut egui::Ui, t: egui::WidgetText| {
                        ui.add(egui::Label::new(t).selectable(false).truncate())
                    };
                    row.col(|ui| {
                        cell(ui, r.init.title.as_str().into());
                    });
                    row.col(|ui| {
                        cell(ui, r.init.artist.as_str().into());
                    });
                    row.col(|ui| {
                        let name = r
                            .init
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        cell(ui, name.into()).on_hover_text(r.init.path.display().to_string());
                    });
                    row.col(|ui| {
                        cell(ui, r.init.genres.join("; ").into());
                    });
                    row.col(|ui| {
                        if let Some((g, p)) = predicted(r) {
                            cell(ui, format!("{g} {:.0}%", p * 100.0).into());
                        }
                    });
                    row.col(|ui| match &r.status {
                        Status::Failed(e) => {
                            cell(
                                ui,
                                RichText::new("error")
                                    .color(Color32::from_rgb(220, 80, 60))
                                    .into(),
                            )
                            .on_hover_text(e);
                        }
                        s => {
                            cell(
                                ui,
                                if *s == Status::Done {
                                    "analysed"
                                } else {
                                    "pending"
                                }
                                .into(),
                            );
                        }
                    });
                    let resp = row.response();
                    if resp.clicked() {
                        clicked = Some((i, resp.ctx.input(|inp| inp.modifiers)));
                    }
                    if resp.double_clicked() {
                        double = Some(i);
                    }
                });
            });
        if let Some(k) = sort_by {
            self.sort = if self.sort.0 == k {
                (k, !self.sort.1)
            } else {
                (k, true)
            };
            self.order_dirty = true;
        }
        if let Some((i, m)) = clicked {
            if m.shift {
                if let Some(a) = self.anchor {
                    let (pa, pi) = (
                        self.order.iter().position(|&x| x == a).unwrap_or(0),
                        self.order.iter().position(|&x| x == i).unwrap_or(0),
                    );
                    let (lo, hi) = (pa.min(pi), pa.max(pi));
                    self.selected.extend(self.order[lo..=hi].iter().copied());
                }
            } else if m.command {
                if !self.selected.remove(&i) {
                    self.selected.insert(i);
                }
                self.anchor = Some(i);
            } else {
                self.select_track(i);
            }
        }
        if let Some(i) = double {
            self.select_track(i);
            self.settings.tab = Tab::Track;
        }
    }

    fn tagging_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("Tagging");
            let l = ui.label("top");
            ui.add(egui::DragValue::new(&mut self.policy.top_k).range(1..=5))
                .labelled_by(l.id);
            let l = ui.label(format!("min probability {:.2}", self.policy.min_prob));
            ui.add(egui::Slider::new(&mut self.policy.min_prob, 0.0..=1.0).show_value(false))
                .labelled_by(l.id);
            egui::ComboBox::new("mode", "policy")
                .selected_text(format!("{:?}", self.policy.mode))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.policy.mode, Mode::Replace, "Replace");
                    ui.selectable_value(&mut self.policy.mode, Mode::Merge, "Merge");
                    ui.selectable_value(&mut self.policy.mode, Mode::Fill, "Fill (untagged only)");
                });
            if ui
                .add_enabled(!self.selected.is_empty(), egui::Button::new("Preview"))
                .clicked()
            {
                self.preview_selection();
            }
            let changes = self
                .preview
                .iter()
                .filter(|(_, p)| p.changes && !p.skipped)
                .count();
            if ui
                .add_enabled(changes > 0, egui::Button::new(format!("Apply {changes}")))
                .clicked()
            {
                self.apply_preview();
            }
            if ui.button("Undo last batch").clicked() {
                self.undo();
            }
        });
        egui::ScrollArea::vertical()
            .id_salt("preview")
            .show(ui, |ui| {
                egui::Grid::new("preview-grid")
                    .striped(true)
                    .show(ui, |ui| {
                        if !self.preview.is_empty() {
                            ui.strong("File");
                            ui.strong("Existing");
                            ui.strong("Proposed");
                            ui.strong("Why");
                            ui.end_row();
                        }
                        for (p, prop) in &self.preview {
                            ui.label(
                                p.file_name()
                                    .map(|n| n.to_string_lossy().to_string())
                                    .unwrap_or_default(),
                            );
                            ui.label(prop.existing.join("; "));
                            let text = prop.proposed.join("; ");
                            if prop.changes && !prop.skipped {
                                ui.colored_label(Color32::from_rgb(90, 180, 90), text);
                            } else {
                                ui.label(RichText::new(text).weak());
                            }
                            ui.label(&prop.reason);
                            ui.end_row();
                        }
                    });
            });
    }

    fn track_ui(&mut self, ui: &mut egui::Ui) {
        let Some(index) = self.current else {
            ui.label("Select a track in the library (double-click, or Up/Down).");
            return;
        };
        let row = self.rows.get(index).cloned();
        let Some(row) = row else { return };
        ui.horizontal(|ui| {
            ui.heading(&row.init.title);
            if !row.init.artist.is_empty() {
                ui.label(format!("- {}", row.init.artist));
            }
        });
        if let Some(e) = self.player.no_sound()
            && !self.stable_ui
        {
            ui.colored_label(Color32::from_rgb(220, 160, 60), e);
        }
        // Transport.
        let pos = self.player.position_s();
        let dur = self.player.duration_s();
        ui.horizontal(|ui| {
            let label = if self.player.is_playing() {
                "Pause"
            } else {
                "Play"
            };
            if ui
                .add_enabled(self.player.is_loaded(), egui::Button::new(label))
                .clicked()
            {
                self.player.toggle();
            }
            let mut p = pos;
            let l = ui.label("Position");
            if ui
                .add(egui::Slider::new(&mut p, 0.0..=dur.max(0.01)).show_value(false))
                .labelled_by(l.id)
                .changed()
            {
                self.player.seek(p);
            }
            ui.label(format!("{} / {}", mmss(pos), mmss(dur)));
            let l = ui.label("Volume");
            if ui
                .add(egui::Slider::new(&mut self.settings.volume, 0.0..=1.0).show_value(false))
                .labelled_by(l.id)
                .changed()
            {
                self.player.set_volume(self.settings.volume);
            }
        });
        if self.player.is_playing() {
            ui.ctx().request_repaint_after(Duration::from_millis(33));
        }
        let Some(track) = &self.track else {
            ui.spinner();
            ui.label("decoding...");
            return;
        };
        // Live spectrogram around the playhead, then the overview.
        ui.label(RichText::new("Live mel spectrogram").small());
        let frame = (pos * crate::train::features::FRAMES_PER_S as f64) as usize;
        // One texture, updated in place only when the playhead moved a frame.
        if self.live.is_none() || self.live_frame != Some(frame) {
            let img = widgets::live_image(&track.mel, track.frames, frame, LIVE_SPAN);
            match &mut self.live {
                Some(t) => t.set(img, egui::TextureOptions::NEAREST),
                None => {
                    self.live = Some(ui.ctx().load_texture(
                        "live",
                        img,
                        egui::TextureOptions::NEAREST,
                    ))
                }
            }
            self.live_frame = Some(frame);
        }
        let Some(tex) = &self.live else { return };
        widgets::live_spectrogram(ui, tex, 160.0);
        ui.label(RichText::new("Whole track (click to seek)").small());
        let tex = self.overview.get_or_insert_with(|| {
            ui.ctx().load_texture(
                "overview",
                track.overview.clone(),
                egui::TextureOptions::LINEAR,
            )
        });
        if let Some(seek) = widgets::overview(ui, tex, pos, dur, 90.0) {
            self.player.seek(seek);
        }
        let labels: Vec<String> = row
            .analysis
            .as_ref()
            .map(|a| {
                let mut l: Vec<String> = a.genres.iter().map(|g| g.0.clone()).collect();
                l.sort();
                l
            })
            .unwrap_or_default();
        if let Some(a) = &row.analysis {
            if let Some(seek) = widgets::timeline(ui, a, &labels, pos, dur) {
                self.player.seek(seek);
            }
            ui.columns(3, |cols| {
                cols[0].strong("Whole track");
                widgets::prob_bars(&mut cols[0], &a.genres);
                cols[1].strong("Now playing (segment)");
                let seg = a
                    .segments
                    .iter()
                    .rfind(|s| (s.start_s as f64) <= pos)
                    .or(a.segments.first());
                if let Some(s) = seg {
                    let mut g: Vec<(String, f32)> = labels
                        .iter()
                        .cloned()
                        .zip(s.genre_probs.iter().copied())
                        .collect();
                    g.sort_by(|x, y| y.1.total_cmp(&x.1));
                    cols[1].label(format!("{:.1}-{:.1} s", s.start_s, s.end_s));
                    widgets::prob_bars(&mut cols[1], &g);
                }
                cols[2].strong("Style tags (musicnn)");
                let tags: Vec<(String, f32)> = a.tags.iter().take(8).cloned().collect();
                if tags.is_empty() {
                    cols[2].label("(not given by this model)");
                }
                widgets::prob_bars(&mut cols[2], &tags);
            });
        } else {
            ui.label(match &row.status {
                Status::Failed(e) => format!("analysis failed: {e}"),
                _ => "analysis pending...".into(),
            });
        }
    }

    fn training_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::left("train-form")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| self.train_form_ui(ui));
        egui::ScrollArea::vertical()
            .id_salt("train-results")
            .show(ui, |ui| {
                self.train_results_ui(ui);
            });
    }

    fn train_form_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Train a model");
        ui.checkbox(
            &mut self.form.use_library,
            "Use my library's genre tags as labels",
        );
        ui.add_enabled_ui(!self.form.use_library, |ui| {
            let l = ui.label("Dataset folder (one sub-folder per genre):");
            ui.text_edit_singleline(&mut self.settings.dataset)
                .labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            ui.label("Split:");
            ui.radio_value(&mut self.form.grouped, true, "grouped (GTZAN blocks)");
            ui.radio_value(&mut self.form.grouped, false, "stratified");
        });
        egui::ComboBox::from_label("Model")
            .selected_text(self.form.kind.name())
            .show_ui(ui, |ui| {
                for k in ModelKind::ALL {
                    if ui
                        .selectable_value(&mut self.form.kind, k, k.name())
                        .changed()
                    {
                        let c = TrainConfig::for_kind(k);
                        self.form.epochs = c.epochs;
                        self.form.lr = c.lr;
                    }
                }
            });
        ui.horizontal(|ui| {
            let l = ui.label("Epochs");
            ui.add(egui::DragValue::new(&mut self.form.epochs).range(1..=1000))
                .labelled_by(l.id);
            let l = ui.label("LR");
            ui.add(
                egui::DragValue::new(&mut self.form.lr)
                    .speed(0.0001)
                    .range(1e-6..=1.0),
            )
            .labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            let l = ui.label("Width");
            ui.add(
                egui::DragValue::new(&mut self.form.width)
                    .speed(0.05)
                    .range(0.1..=2.0),
            )
            .labelled_by(l.id);
            ui.checkbox(&mut self.form.augment, "augment");
        });
        let l = ui.label("Runs folder:");
        ui.text_edit_singleline(&mut self.settings.runs_dir)
            .labelled_by(l.id);
        ui.horizontal(|ui| {
            let l = ui.label("Run name");
            ui.text_edit_singleline(&mut self.form.name)
                .labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            let running = self.training.is_some();
            if ui
                .add_enabled(!running, egui::Button::new("Start"))
                .clicked()
            {
                self.start_training(false);
            }
            if ui
                .add_enabled(!running, egui::Button::new("Resume"))
                .clicked()
            {
                self.start_training(true);
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked()
                && let Some(h) = &self.training
            {
                h.cancel.store(true, Ordering::Relaxed);
            }
            if running {
                ui.spinner();
            }
        });
        ui.separator();
        let l = ui.label("Open a finished run (folder):");
        ui.horizontal(|ui| {
            ui.text_edit_singleline(&mut self.run_input)
                .labelled_by(l.id);
            if ui.button("Open run").clicked() {
                let d = PathBuf::from(self.run_input.trim());
                self.open_run(&d);
            }
        });
        if ui.button("Compare with another run...").clicked() {
            if let Some(d) = rfd::FileDialog::new().pick_folder() {
                self.compare = Report::load(&d).ok();
            } else {
                let d = PathBuf::from(self.run_input.trim());
                self.compare = Report::load(&d).ok();
            }
        }
        for l in self.train_log.iter().rev().take(6) {
            ui.label(RichText::new(l).small().weak());
        }
    }

    fn train_results_ui(&mut self, ui: &mut egui::Ui) {
        widgets::curves(ui, &self.curves);
        let Some(r) = &self.report else {
            ui.label(
                "Train a model or open a run to see its confusion matrix and per-class table.",
            );
            return;
        };
        ui.horizontal(|ui| {
            ui.heading(format!(
                "{}: test accuracy {:.3}",
                r.model, r.track.accuracy
            ));
        });
        ui.label(format!(
            "split {} - {} test tracks; balanced accuracy {:.3}, macro F1 {:.3}, top-2 {:.3}",
            r.split, r.track.n, r.track.balanced_accuracy, r.track.macro_f1, r.track.top2
        ));
        let mut use_model = false;
        let mut export = None;
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("normalise")
                .selected_text(format!("{:?}", self.normalise))
                .show_ui(ui, |ui| {
                    for n in [
                        Normalise::Counts,
                        Normalise::True,
                        Normalise::Pred,
                        Normalise::All,
                    ] {
                        ui.selectable_value(&mut self.normalise, n, format!("{n:?}"));
                    }
                });
            if let Some(dir) = &self.report_dir {
                if ui
                    .add_enabled(
                        self.exporting.is_none(),
                        egui::Button::new("Export PNG + CSV"),
                    )
                    .clicked()
                {
                    export = Some((r.clone(), dir.clone()));
                }
                if dir.join("model").join("model.json").exists()
                    && ui.button("Use this model for my library").clicked()
                {
                    use_model = true;
                }
            }
        });
        widgets::confusion(ui, &r.labels, &r.track, self.normalise);
        widgets::per_class_table(ui, &r.track);
        if let Some(c) = &self.compare {
            ui.separator();
            ui.strong("Comparison");
            egui::Grid::new("cmp").striped(true).show(ui, |ui| {
                for h in ["run", "split", "accuracy", "balanced", "macro F1"] {
                    ui.strong(h);
                }
                ui.end_row();
                for x in [r, c] {
                    ui.label(&x.model);
                    ui.label(&x.split);
                    ui.label(format!("{:.3}", x.track.accuracy));
                    ui.label(format!("{:.3}", x.track.balanced_accuracy));
                    ui.label(format!("{:.3}", x.track.macro_f1));
                    ui.end_row();
                }
            });
            let ok = |x: &Report| -> std::collections::BTreeMap<PathBuf, bool> {
                x.predictions
                    .iter()
                    .map(|p| {
                        (
                            p.path.clone(),
                            crate::train::metrics::argmax(&p.probs) == p.truth,
                        )
                    })
                    .collect()
            };
            let (a, b) = (ok(r), ok(c));
            let common: Vec<&PathBuf> = a.keys().filter(|k| b.contains_key(*k)).collect();
            if !common.is_empty() {
                let t = mcnemar(
                    &common.iter().map(|k| a[*k]).collect::<Vec<_>>(),
                    &common.iter().map(|k| b[*k]).collect::<Vec<_>>(),
                );
                ui.label(format!(
                    "McNemar on {} common test tracks: only first right {}, only second right {}, p = {:.4}",
                    common.len(),
                    t.only_a,
                    t.only_b,
                    t.p_value
                ));
            }
        }
        if let Some((report, dir)) = export {
            self.exporting = Some(super::jobs::export_report(
                self.ctx.clone(),
                report,
                dir,
                self.normalise,
            ));
            self.status = "exporting...".into();
        }
        if use_model && let Some(dir) = &self.report_dir {
            self.lib.send(LibCommand::UseModel(Some(dir.join("model"))));
            self.status = "analysing the library with the trained model...".into();
        }
    }
}

/// Frames shown in the live spectrogram (5 s).
const LIVE_SPAN: usize = 313;

fn mmss(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The top prediction of a row.
fn predicted(r: &Row) -> Option<(&str, f32)> {
    r.analysis
        .as_ref()
        .and_then(|a| a.genres.first())
        .map(|(g, p)| (g.as_str(), *p))
}

fn status_text(r: &Row) -> &'static str {
    match r.status {
        Status::Pending => "pending",
        Status::Done => "analysed",
        Status::Failed(_) => "error",
    }
}

/// p50 and p99 of frame times.
pub fn frame_stats(ms: &[f32]) -> (f32, f32) {
    if ms.is_empty() {
        return (0.0, 0.0);
    }
    let mut v = ms.to_vec();
    v.sort_by(f32::total_cmp);
    let at = |q: f32| v[((v.len() - 1) as f32 * q).round() as usize];
    (at(0.5), at(0.99))
}

impl GenretagApp {
    /// One frame: drain events, then draw.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let t0 = Instant::now();
        if let Some(prev) = self.last_frame.replace(t0) {
            self.interval_ms.push((t0 - prev).as_secs_f32() * 1e3);
            if self.interval_ms.len() > 100_000 {
                self.interval_ms.drain(..50_000);
            }
        }
        self.drain();
        let ctx = ui.ctx().clone();
        // Dropped folders open as the library.
        let dropped: Option<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .find(|p| !p.as_os_str().is_empty() && p.is_dir())
        });
        if let Some(d) = dropped {
            self.open_folder(d);
        }
        self.shortcuts(&ctx);
        if let Some(tick) = self.exercise.as_mut() {
            *tick += 1;
            let t = *tick;
            let n = self.order.len();
            if n > 0 {
                self.scroll_to = Some((t as usize * 37) % n);
                if t % 90 == 0 {
                    self.select_track(self.order[(t as usize * 13) % n]);
                }
            }
            if t % 240 == 0 {
                self.settings.tab = match self.settings.tab {
                    Tab::Library => Tab::Track,
                    _ => Tab::Library,
                };
            }
            ctx.request_repaint();
        }
        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default().show(ui, |ui| match self.settings.tab {
            Tab::Library => self.library_ui(ui),
            Tab::Track => self.track_ui(ui),
            Tab::Training => self.training_ui(ui),
        });
        if !self.analysis_done && !self.rows.is_empty() || self.training.is_some() {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        self.frame_ms.push(t0.elapsed().as_secs_f32() * 1e3);
        if self.frame_ms.len() > 100_000 {
            self.frame_ms.drain(..50_000);
        }
    }

    fn write_frame_log(&self) {
        if let Some(p) = &self.frame_log {
            let (p50, p99) = frame_stats(&self.frame_ms);
            let max = self.frame_ms.iter().copied().fold(0.0f32, f32::max);
            let (i50, i99) = frame_stats(&self.interval_ms);
            let text = format!(
                "{{\"frames\": {}, \"ui_p50_ms\": {p50:.3}, \"ui_p99_ms\": {p99:.3}, \"ui_max_ms\": {max:.3}, \"interval_p50_ms\": {i50:.3}, \"interval_p99_ms\": {i99:.3}, \"tracks\": {}, \"analysed\": {}}}\n",
                self.frame_ms.len(),
                self.rows.len(),
                self.progress().0
            );
            let _ = std::fs::write(p, text);
        }
    }
}

impl eframe::App for GenretagApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
        if self.frame_log.is_some() && self.frame_ms.len().is_multiple_of(60) {
            self.write_frame_log();
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.write_frame_log();
    }
}
