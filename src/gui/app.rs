//! The eframe app: owns the state of the three views and the handles of the workers,
//! drains the workers' events in `logic` within a time budget, and routes drawing to
//! the views ([`super::library_view`], [`super::track_view`],
//! [`super::training_view`]). The UI thread only draws and routes: scanning, analysis,
//! decoding, tag writes, report loading, comparison, export and training run on the
//! workers of [`super::jobs`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText};

use super::diagnostics::Diagnostics;
use super::jobs::tasks::{self, Comparison, LoadedRun, PreviewInput, PreviewState};
use super::jobs::{
    LibCommand, LibEvent, LibraryHandle, LoadedTrack, ModelInfo, TaskError, TrackLoader,
    TrainingHandle, spawn_task,
};
use super::player::Player;
use super::state::{Exercise, RowAnalysis, Settings, StartOptions, Status, Tab, Table};
use crate::library::policy::{Proposal, TagPolicy};
use crate::train::metrics::Normalise;
use crate::train::models::ModelKind;
use crate::train::report::Report;
use crate::train::trainer::{EpochStats, TrainConfig};

/// The result channel of a one-off job.
pub(super) type Job<T> = Receiver<Result<T, TaskError>>;

/// Time per frame for draining worker events; the rest waits for the next frame.
pub(super) const EVENT_BUDGET: Duration = Duration::from_millis(4);

/// The state of the folder's analysis.
#[derive(Debug, Default)]
pub(super) struct Analysis {
    /// Analysing now (rows arrived, `Finished` not yet).
    pub running: bool,
    /// Paused (the worker said so).
    pub paused: bool,
    /// Stopped by Cancel before the end.
    pub cancelled: bool,
    /// Files seen while scanning (before the rows arrive).
    pub scanning: Option<usize>,
    /// (time, rows done) samples of the last seconds, for the time left.
    pub rate: VecDeque<(Instant, usize)>,
}

impl Analysis {
    /// Seconds left at the rate of the last ten seconds; `None` when paused, stopped
    /// or unknown.
    pub fn eta_s(&self, done: usize, total: usize) -> Option<f32> {
        if !self.running || self.paused || done >= total {
            return None;
        }
        let (&(t0, d0), &(t1, d1)) = (self.rate.front()?, self.rate.back()?);
        let dt = (t1 - t0).as_secs_f32();
        (d1 > d0 && dt >= 1.0).then(|| (total - done) as f32 * dt / (d1 - d0) as f32)
    }
}

/// The model the library is analysed with.
#[derive(Debug, Default)]
pub(super) struct ModelState {
    /// Loaded.
    pub info: Option<ModelInfo>,
    /// Why no model could be loaded / the chosen one failed.
    pub error: Option<String>,
}

/// The track view's state.
#[derive(Default)]
pub(super) struct TrackState {
    /// Row shown.
    pub current: Option<usize>,
    /// Request id of the current track (loader events of other ids are stale).
    pub request: u64,
    /// Decoding.
    pub loading: bool,
    /// The decoded track.
    pub loaded: Option<LoadedTrack>,
    /// Why the track cannot be played.
    pub error: Option<String>,
    /// Every patch analysed (long tracks), and whether that is under way / failed.
    pub whole: Option<RowAnalysis>,
    /// The whole-track analysis was asked for this request.
    pub whole_requested: bool,
    /// Why the whole-track analysis failed.
    pub whole_error: Option<String>,
    /// Recent whole-track analyses (path, analysis), newest last.
    pub whole_cache: Vec<(PathBuf, RowAnalysis)>,
    pub overview: Option<egui::TextureHandle>,
    pub live: Option<egui::TextureHandle>,
    pub live_frame: Option<usize>,
}

/// Training form.
pub(super) struct TrainForm {
    pub kind: ModelKind,
    pub data: DataSource,
    pub split: SplitChoice,
    pub train_list: String,
    pub test_list: String,
    pub min_tracks: usize,
    pub epochs: usize,
    pub lr: f64,
    pub width: f32,
    pub augment: bool,
    pub name: String,
}

/// Where training labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataSource {
    /// A folder with one sub-folder per genre.
    Folder,
    /// The genre tags of the open library folder.
    Library,
}

/// How tracks are split into train / validation / test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SplitChoice {
    Stratified,
    GtzanBlocks,
    Artist,
    Album,
    Lists,
}

impl Default for TrainForm {
    fn default() -> Self {
        Self {
            kind: ModelKind::Transfer,
            data: DataSource::Folder,
            split: SplitChoice::GtzanBlocks,
            train_list: String::new(),
            test_list: String::new(),
            min_tracks: 5,
            epochs: TrainConfig::for_kind(ModelKind::Transfer).epochs,
            lr: TrainConfig::for_kind(ModelKind::Transfer).lr,
            width: 0.5,
            augment: false,
            name: "run".into(),
        }
    }
}

/// The training view's state.
pub(super) struct TrainingState {
    pub form: TrainForm,
    pub run: Option<TrainingHandle>,
    /// Features ready of all (before the first epoch).
    pub preparing: Option<(usize, usize)>,
    /// (epoch, of epochs, step, of steps).
    pub progress: Option<(usize, usize, usize, usize)>,
    pub curves: Vec<EpochStats>,
    pub log: Vec<String>,
    /// Why the last run failed.
    pub error: Option<String>,
    pub report: Option<Report>,
    pub report_dir: Option<PathBuf>,
    pub has_model: bool,
    pub run_input: String,
    pub loading_run: Option<Job<LoadedRun>>,
    pub run_error: Option<String>,
    pub compare_input: String,
    pub comparing: Option<Job<Comparison>>,
    pub comparison: Option<Comparison>,
    pub compare_msg: Option<String>,
    pub scroll_to_compare: bool,
    pub normalise: Normalise,
    pub export_dir: String,
    pub exporting: Option<Job<Vec<PathBuf>>>,
    pub export_msg: Option<Result<String, String>>,
}

impl Default for TrainingState {
    fn default() -> Self {
        Self {
            form: TrainForm::default(),
            run: None,
            preparing: None,
            progress: None,
            curves: Vec::new(),
            log: Vec::new(),
            error: None,
            report: None,
            report_dir: None,
            has_model: false,
            run_input: String::new(),
            loading_run: None,
            run_error: None,
            compare_input: String::new(),
            comparing: None,
            comparison: None,
            compare_msg: None,
            scroll_to_compare: false,
            // Recall per true genre: what most readers look for first.
            normalise: Normalise::True,
            export_dir: String::new(),
            exporting: None,
            export_msg: None,
        }
    }
}

/// The app.
pub struct GenretagApp {
    /// Preferences.
    pub settings: Settings,
    pub(super) ctx: egui::Context,
    pub(super) lib: LibraryHandle,
    /// The library table.
    pub table: Table,
    /// Events of this generation update the table.
    pub(super) shown: u64,
    /// An Open waiting for its rows: (generation, folder).
    pub(super) requested: Option<(u64, PathBuf)>,
    /// The folder path field.
    pub folder_input: String,
    /// Why the last folder could not be opened (shown by the field).
    pub(super) open_error: Option<String>,
    pub(super) analysis: Analysis,
    pub(super) model: ModelState,
    pub(super) can_undo: bool,
    /// Tagging rules of the preview.
    pub policy: TagPolicy,
    /// Tag preview for the selection.
    pub preview: Vec<(PathBuf, Proposal)>,
    pub(super) previewing: Option<Job<Vec<(PathBuf, Proposal)>>>,
    /// A batch being written: (files done, of files).
    pub(super) tagging: Option<(usize, usize)>,
    pub(super) undoing: bool,
    pub(super) genre_values: Option<Vec<String>>,
    pub(super) playlist_by: super::state::PlaylistBy,
    pub(super) playlists: Option<Job<Vec<PathBuf>>>,
    /// The library table's laid-out cell texts, kept across frames.
    pub(super) cell_texts: super::cell_texts::CellTexts,
    pub(super) playlist_msg: Option<Result<String, String>>,
    pub(super) status: String,
    pub(super) track: TrackState,
    pub(super) loader: TrackLoader,
    /// Playback.
    pub player: Player,
    pub(super) play_first: bool,
    /// Show the track view when `play_first` starts playing (no view was asked for).
    pub(super) follow_play: bool,
    pub(super) training: TrainingState,
    pub(super) diag: Diagnostics,
    pub(super) exercise: Exercise,
    pub(super) tick: u64,
    pub(super) exercise_stage: u8,
    pub(super) scroll_to: Option<usize>,
    pub(super) stable_ui: bool,
    pub(super) device: burn::tensor::Device,
    /// Sorting or filtering changed this frame (diagnostics).
    pub(super) sorted_now: bool,
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
        if let Some(d) = start.dark {
            settings.dark = d;
        }
        ctx.set_theme(if settings.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        // Opening a folder from the command line lands on the library.
        if start.folder.is_some() {
            settings.tab = Tab::Library;
        }
        if let Some(t) = start.tab {
            settings.tab = t;
        }
        if start.model.is_some() {
            settings.model = start.model.clone();
        }
        let device = start
            .device
            .clone()
            .unwrap_or_else(burn::tensor::Device::flex);
        let lib = LibraryHandle::spawn(ctx.clone(), start.db.clone(), device.clone());
        let loader = TrackLoader::spawn(ctx.clone());
        let mut diag = Diagnostics::default();
        diag.log = start.frame_log.clone();
        let mut app = Self {
            ctx,
            folder_input: settings
                .recent_folders
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            settings,
            lib,
            table: Table::default(),
            shown: 0,
            requested: None,
            open_error: None,
            analysis: Analysis::default(),
            model: ModelState::default(),
            can_undo: false,
            policy: TagPolicy::default(),
            preview: Vec::new(),
            previewing: None,
            tagging: None,
            undoing: false,
            genre_values: None,
            playlist_by: super::state::PlaylistBy::Predicted,
            playlists: None,
            cell_texts: Default::default(),
            playlist_msg: None,
            status: String::new(),
            track: TrackState::default(),
            loader,
            player: Player::default(),
            play_first: start.play_first,
            follow_play: start.tab.is_none(),
            training: TrainingState::default(),
            diag,
            exercise: start.exercise,
            tick: 0,
            exercise_stage: 0,
            scroll_to: None,
            stable_ui: start.stable_ui,
            device,
            sorted_now: false,
        };
        app.player.set_volume(app.settings.volume);
        if let Some(m) = app.settings.model.clone() {
            app.lib.send(LibCommand::UseModel(Some(m)));
        }
        // The folder asked for, else the last one (reopened, not just prefilled).
        let folder = start.folder.or_else(|| {
            (!start.no_reopen)
                .then(|| app.settings.recent_folders.first().cloned())
                .flatten()
        });
        if let Some(f) = folder {
            app.open_folder(f);
        }
        if let Some(r) = start.run {
            app.open_run(&r);
        }
        app
    }

    /// Open a music folder: the worker checks it, lists it and analyses it. Until its
    /// rows arrive the current folder stays on screen; a path that is not a folder is
    /// refused there, with the reason next to the field.
    pub fn open_folder(&mut self, folder: PathBuf) {
        self.folder_input = folder.display().to_string();
        self.open_error = None;
        let generation = self.lib.open(folder.clone());
        self.requested = Some((generation, folder));
        self.status = "opening...".into();
    }

    /// Show `rows` of `folder` as if a scan had listed them, analysis pending (tests
    /// and tools drive the views this way without a scan). Returns the generation
    /// that events about these rows must carry.
    pub fn show_rows(&mut self, folder: PathBuf, rows: Vec<super::state::RowInit>) -> u64 {
        let generation = self.lib.next_generation();
        self.requested = Some((generation, folder.clone()));
        let table = Table::prepared(folder.clone(), rows, None, &[]);
        self.apply_library_event(LibEvent::Rows {
            generation,
            folder,
            table: Box::new(table),
        });
        generation
    }

    /// The folder shown.
    pub fn folder(&self) -> Option<&Path> {
        self.table.folder.as_deref()
    }

    /// Why the last folder could not be opened.
    pub fn open_error(&self) -> Option<&str> {
        self.open_error.as_deref()
    }

    /// Analysed rows, failed rows, total.
    pub fn progress(&self) -> (usize, usize, usize) {
        self.table.progress()
    }

    /// Whether the open folder's analysis has ended (finished or cancelled).
    pub fn analysis_finished(&self) -> bool {
        !self.analysis.running && self.requested.is_none() && self.table.folder.is_some()
    }

    /// The progress line under the folder field.
    pub fn progress_text(&self) -> String {
        let (done, failed, total) = self.progress();
        let counts = format!("{done}/{total} analysed, {failed} failed");
        if self.analysis.cancelled {
            format!("analysis cancelled: {counts}")
        } else if self.analysis.running && self.analysis.paused {
            format!("paused: {counts}")
        } else if self.analysis.running {
            match self.analysis.eta_s(done + failed, total) {
                Some(s) => format!("{counts}, about {} left", eta_words(s)),
                None => counts,
            }
        } else {
            counts
        }
    }

    /// The model's name as the library view shows it.
    pub fn model_name(&self) -> Option<&str> {
        self.model.info.as_ref().map(|m| m.name.as_str())
    }

    /// The trained model's folder in use (`None`: the shipped model, or none yet).
    pub fn model_path(&self) -> Option<&Path> {
        self.model.info.as_ref().and_then(|m| m.path.as_deref())
    }

    /// Why there is no (or not the chosen) model.
    pub fn model_error(&self) -> Option<&str> {
        self.model.error.as_deref()
    }

    /// Whether the last tag batch can be undone.
    pub fn can_undo(&self) -> bool {
        self.can_undo
    }

    /// Pause or resume the analysis.
    pub fn pause(&mut self, paused: bool) {
        self.lib.send(LibCommand::Pause(paused));
    }

    /// Stop analysing the folder shown; its rows stay.
    pub fn cancel_analysis(&mut self) {
        self.lib.send(LibCommand::Cancel {
            generation: self.shown,
        });
    }

    /// Select one row and show it in the track view (decoding on the loader). The
    /// previous track stops and is forgotten at once.
    pub fn select_track(&mut self, index: usize) {
        if index >= self.table.rows.len() {
            return;
        }
        self.diag.mark("track selected");
        self.table.select_one(index);
        if self.track.current == Some(index) {
            return;
        }
        self.show_track(index);
    }

    fn show_track(&mut self, index: usize) {
        let path = self.table.rows[index].init.path.clone();
        self.player.unload();
        let request = self.track.request + 1;
        let cache = std::mem::take(&mut self.track.whole_cache);
        let whole = cache
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, a)| a.clone());
        self.track = TrackState {
            current: Some(index),
            request,
            loading: true,
            whole_requested: whole.is_some(),
            whole,
            whole_cache: cache,
            ..TrackState::default()
        };
        self.loader.load(request, path);
    }

    /// The track view's row.
    pub fn current_track(&self) -> Option<usize> {
        self.track.current
    }

    /// Whether the current track is decoded.
    pub fn track_loaded(&self) -> bool {
        self.track.loaded.is_some()
    }

    /// Why the current track cannot be played.
    pub fn track_error(&self) -> Option<&str> {
        self.track.error.as_deref()
    }

    /// The analysis the track view shows: every patch when the whole track was analysed.
    pub fn track_analysis(&self) -> Option<&RowAnalysis> {
        self.track.whole.as_ref().or_else(|| {
            self.track
                .current
                .and_then(|i| self.table.rows.get(i))
                .and_then(|r| r.analysis.as_ref())
        })
    }

    /// Tag proposals for the selected rows under the current policy, computed on a
    /// worker; every selected row gets a line (skipped ones with the reason).
    pub fn preview_selection(&mut self) {
        let labels = self.table.labels.clone();
        let items: Vec<PreviewInput> = self
            .table
            .selected()
            .into_iter()
            .filter_map(|i| self.table.rows.get(i))
            .map(|r| PreviewInput {
                path: r.init.path.clone(),
                existing: r.init.genres.clone(),
                state: match (&r.status, &r.analysis) {
                    (_, Some(a)) if a.verdict.is_unsure() => {
                        PreviewState::Unsure(match &a.verdict {
                            crate::model::Verdict::Unsure { reason } => reason.clone(),
                            _ => String::new(),
                        })
                    }
                    (_, Some(a)) => PreviewState::Ranked(
                        a.ranked(&labels)
                            .into_iter()
                            .map(|(l, p)| (l.to_string(), p))
                            .collect(),
                    ),
                    (Status::Failed(e), None) => {
                        PreviewState::NotAnalysed(format!("could not be analysed: {e}"))
                    }
                    (_, None) => PreviewState::NotAnalysed("not analysed yet".into()),
                },
            })
            .collect();
        let policy = self.policy.clone();
        self.previewing = Some(spawn_task(self.ctx.clone(), "preview", move || {
            Ok(tasks::preview(&policy, items))
        }));
    }

    /// Whether a preview is being computed.
    pub fn previewing(&self) -> bool {
        self.previewing.is_some()
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
        self.tagging = Some((0, items.len()));
        self.lib.send(LibCommand::Tag(items));
    }

    /// Undo the last tag batch.
    pub fn undo(&mut self) {
        self.undoing = true;
        self.status = "undoing the last batch...".into();
        self.lib.send(LibCommand::Undo);
    }

    /// Show a finished run's report (loaded and checked on a worker).
    pub fn open_run(&mut self, dir: &Path) {
        let d = dir.to_path_buf();
        self.training.run_input = dir.display().to_string();
        self.training.run_error = None;
        self.training.loading_run = Some(spawn_task(self.ctx.clone(), "report", move || {
            tasks::load_run(&d)
        }));
    }

    /// Compare the run shown with the run in the comparison field (on a worker).
    pub fn compare_runs(&mut self) {
        let other = PathBuf::from(self.training.compare_input.trim());
        let (Some(r), Some(dir)) = (&self.training.report, &self.training.report_dir) else {
            self.training.compare_msg = Some("open or train a run first".into());
            return;
        };
        if other.as_os_str().is_empty() {
            self.training.compare_msg =
                Some("type or choose another run's folder to compare with".into());
            self.training.scroll_to_compare = true;
            return;
        }
        let (r, dir) = (r.clone(), dir.clone());
        self.training.compare_msg = Some(format!("comparing with {}...", other.display()));
        self.training.comparison = None;
        self.training.scroll_to_compare = true;
        self.training.comparing = Some(spawn_task(self.ctx.clone(), "compare", move || {
            tasks::compare(&r, &dir, &other)
        }));
    }

    /// Compare the run shown with the run in `other` (as if typed in the field).
    pub fn compare_runs_with(&mut self, other: &Path) {
        self.training.compare_input = other.display().to_string();
        self.compare_runs();
    }

    /// Export the shown run's figures and tables into `dir` (on a worker).
    pub fn export_to(&mut self, dir: &Path) {
        self.training.export_dir = dir.display().to_string();
        self.start_export();
    }

    pub(super) fn start_export(&mut self) {
        let (Some(r), Some(run_dir)) = (&self.training.report, &self.training.report_dir) else {
            return;
        };
        let (r, run_dir) = (r.clone(), run_dir.clone());
        let to = PathBuf::from(self.training.export_dir.trim());
        let how = self.training.normalise;
        self.training.export_msg = None;
        self.training.exporting = Some(spawn_task(self.ctx.clone(), "export", move || {
            tasks::export(&r, &run_dir, &to, how)
        }));
    }

    /// What the last export said: where it wrote, or why it failed.
    pub fn export_message(&self) -> Option<&Result<String, String>> {
        self.training.export_msg.as_ref()
    }

    /// The comparison shown, if any.
    pub fn comparison(&self) -> Option<&Comparison> {
        self.training.comparison.as_ref()
    }

    /// The message next to the Compare button.
    pub fn compare_message(&self) -> Option<&str> {
        self.training.compare_msg.as_deref()
    }

    /// The report shown in the training view.
    pub fn report(&self) -> Option<&Report> {
        self.training.report.as_ref()
    }

    /// The training curves shown.
    pub fn curves(&self) -> &[EpochStats] {
        &self.training.curves
    }

    /// Why the last run could not be opened.
    pub fn run_error(&self) -> Option<&str> {
        self.training.run_error.as_deref()
    }

    /// Choose the model kind and epochs of the training form.
    pub fn set_training_form(&mut self, kind: ModelKind, epochs: usize) {
        self.training.form.kind = kind;
        self.training.form.epochs = epochs;
        self.training.form.lr = TrainConfig::for_kind(kind).lr;
    }

    /// Cells of the library table that the last frame left for the next one (its layout
    /// time was spent); 0 once every shown cell is drawn.
    pub fn cells_waiting(&self) -> usize {
        self.cell_texts.deferred_now()
    }

    /// The status-bar text.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// Whether a training run is going on.
    pub fn training_running(&self) -> bool {
        self.training.run.is_some()
    }

    /// Analyse the library with the model in `run` (a run folder), or the shipped one.
    pub fn use_model(&mut self, run: Option<PathBuf>) {
        self.status = match &run {
            Some(d) => format!("loading the model of {}...", d.display()),
            None => "loading the shipped model...".into(),
        };
        self.lib.send(LibCommand::UseModel(run));
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (space, up, down, left, right, open, all, f12) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::Space),
                i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::ArrowDown),
                i.key_pressed(egui::Key::ArrowLeft),
                i.key_pressed(egui::Key::ArrowRight),
                i.modifiers.command && i.key_pressed(egui::Key::O),
                i.modifiers.command && i.key_pressed(egui::Key::A),
                i.key_pressed(egui::Key::F12),
            )
        });
        if space && self.player.is_loaded() {
            self.player.toggle();
        }
        if (up || down)
            && let Some(i) = self.table.neighbour(self.track.current, down)
        {
            self.select_track(i);
            self.scroll_to = self.table.order().iter().position(|&o| o as usize == i);
        }
        if left || right {
            let p = self.player.position_s();
            self.player.seek(if right { p + 5.0 } else { p - 5.0 });
        }
        if open {
            self.pick_folder();
        }
        if all && self.settings.tab == Tab::Library {
            self.table.select_all_visible();
        }
        if f12 {
            self.settings.diagnostics = !self.settings.diagnostics;
        }
    }

    pub(super) fn pick_folder(&mut self) {
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
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
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
                ui.toggle_value(&mut self.settings.diagnostics, "Diagnostics")
                    .on_hover_text("frame times and memory (F12)");
            });
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        let model = match (&self.model.info, &self.model.error) {
            (Some(m), _) => m.name.clone(),
            (None, Some(_)) => "no genre model".into(),
            (None, None) => String::new(),
        };
        let model_hover = match self.model.info.as_ref().and_then(|m| m.path.as_ref()) {
            Some(p) => format!("{model}: {}", p.display()),
            None => model.clone(),
        };
        ui.horizontal(|ui| {
            let w = ui.available_width();
            // The model label gets at most a third of the bar; the status the rest,
            // each cut with an ellipsis (full text on hover) instead of overlapping.
            ui.allocate_ui_with_layout(
                egui::Vec2::new((w * 0.66).max(100.0), ui.spacing().interact_size.y),
                egui::Layout::left_to_right(egui::Align::Center),
                |ui| {
                    ui.add(egui::Label::new(&self.status).truncate())
                        .on_hover_text(&self.status);
                },
            );
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.add(egui::Label::new(RichText::new(&model).small().weak()).truncate())
                    .on_hover_text(&model_hover);
            });
        });
    }

    /// One frame's drawing.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        // Dropped folders open as the library (the worker checks it is a folder).
        let dropped: Option<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .find(|p| !p.as_os_str().is_empty())
        });
        if let Some(d) = dropped {
            self.settings.tab = Tab::Library;
            self.open_folder(d);
        }
        self.shortcuts(&ctx);
        self.exercise_step(&ctx);
        // Every frame, whichever view shows: the cache checks egui's own is still valid.
        if self.cell_texts.begin_frame(&ctx, self.table.rows.len()) {
            self.diag.mark("cell texts dropped (atlas emptied)");
        }
        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        if self.settings.diagnostics && !self.stable_ui {
            let rows = self.table.rows.len();
            egui::Panel::bottom("diagnostics").show(ui, |ui| self.diag.ui(ui, rows));
        }
        let tab = self.settings.tab;
        if self.diag.last_tab.replace(tab) != Some(tab) {
            self.diag.mark("view changed");
        }
        self.diag.mark(match tab {
            Tab::Library => "library view",
            Tab::Track => "track view",
            Tab::Training => "training view",
        });
        egui::CentralPanel::default().show(ui, |ui| match tab {
            Tab::Library => self.library_ui(ui),
            Tab::Track => self.track_ui(ui),
            Tab::Training => self.training_ui(ui),
        });
        if self.analysis.running && !self.analysis.paused || self.training.run.is_some() {
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }
}

impl eframe::App for GenretagApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.diag.begin();
        self.drain(ctx);
        let before = self.table.order().len();
        self.sorted_now = self.table.refresh(false) || before != self.table.order().len();
        self.diag.logic_done();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
        let tagging = self.tagging.is_some() || self.undoing;
        self.diag.end(tagging, self.sorted_now);
        self.sorted_now = false;
        let (done, _, total) = self.table.progress();
        self.diag.write_log(total, done, false);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        let (done, _, total) = self.table.progress();
        self.diag.write_log(total, done, true);
    }
}

/// "about 2 min" / "about 40 s".
fn eta_words(s: f32) -> String {
    if s >= 90.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.0} s", s.max(1.0))
    }
}
