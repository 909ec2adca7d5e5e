//! Events from the workers: drained in `logic` within a time budget and applied to
//! the app's state; one-off jobs polled; and `--exercise`, the busy user of
//! frame-time measurements.

use std::path::PathBuf;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use eframe::egui;

use super::app::{Analysis, EVENT_BUDGET, GenretagApp, Job, TrackState};
use super::jobs::{LibEvent, LoaderEvent, TaskError, TrainEvent};
use super::state::{Exercise, RowAnalysis, SortKey, Tab};

impl GenretagApp {
    /// Whether `generation` is the folder request waiting for its rows.
    fn is_requested(&self, generation: u64) -> bool {
        self.requested.as_ref().is_some_and(|r| r.0 == generation)
    }

    /// Handle one library event (the worker's, or a test's).
    pub fn apply_library_event(&mut self, ev: LibEvent) {
        match ev {
            LibEvent::Scanning { generation, files } if self.is_requested(generation) => {
                self.analysis.scanning = Some(files);
                self.status = format!("scanning: {files} files...");
            }
            LibEvent::OpenFailed {
                generation, reason, ..
            } if self.is_requested(generation) => {
                self.requested = None;
                self.analysis.scanning = None;
                self.status = reason.clone();
                self.open_error = Some(match self.table.folder.as_ref() {
                    Some(f) => format!("{reason} (still showing {})", f.display()),
                    None => reason,
                });
            }
            LibEvent::Rows {
                generation,
                folder,
                table,
            } if self.is_requested(generation) => {
                self.requested = None;
                self.shown = generation;
                self.settings.recent_folders.retain(|p| p != &folder);
                self.settings.recent_folders.insert(0, folder.clone());
                self.settings.recent_folders.truncate(8);
                self.folder_input = folder.display().to_string();
                let old = self.table.adopt(*table);
                // Dropping a large table frees many allocations: not on the UI thread.
                if old.rows.len() > 5000 {
                    let _ = std::thread::Builder::new()
                        .name("drop".into())
                        .spawn(move || drop(old));
                }
                self.preview.clear();
                self.genre_values = None;
                self.track = TrackState {
                    whole_cache: std::mem::take(&mut self.track.whole_cache),
                    request: self.track.request + 1,
                    ..TrackState::default()
                };
                self.loader.cancel(self.track.request);
                self.player.unload();
                // Pause is the user's switch for background analysis: it stays
                // on for a newly opened folder.
                self.analysis = Analysis {
                    running: true,
                    paused: self.analysis.paused,
                    ..Analysis::default()
                };
                self.analysis.rate.push_back((Instant::now(), 0));
                self.status = format!("{} tracks: analysing...", self.table.rows.len());
            }
            LibEvent::Model(info) => {
                self.model.error = None;
                self.settings.model = info.path.clone();
                let changed = self
                    .model
                    .info
                    .as_ref()
                    .is_some_and(|m| m.model.id() != info.model.id());
                self.status = format!("genres by {}", info.name);
                self.table.set_labels(info.labels.clone());
                self.model.info = Some(info);
                // Another model: the folder is analysed again with it.
                if changed && let Some(f) = self.table.folder.clone() {
                    self.open_folder(f);
                }
            }
            LibEvent::NoModel(e) => {
                self.status = format!("no genre model: {e}");
                self.model.error = Some(e);
            }
            LibEvent::Analysed {
                generation,
                index,
                analysis,
                labels,
            } if generation == self.shown => {
                self.table.set_labels(labels);
                self.table.set_analysis(index, *analysis);
                if self.play_first && self.track.current.is_none() && index == 0 {
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
            } if generation == self.shown => self.table.set_failed(index, error),
            LibEvent::Paused(p) => self.analysis.paused = p,
            LibEvent::Finished {
                generation,
                cancelled,
            } if generation == self.shown && self.analysis.running => {
                self.analysis.running = false;
                self.analysis.cancelled = cancelled;
                self.diag.log_now = true;
                self.table.refresh(true);
                let (done, failed, total) = self.progress();
                self.status = if cancelled {
                    format!("analysis cancelled: {done} of {total} analysed, {failed} failed")
                } else {
                    format!("{done} of {total} analysed, {failed} failed")
                };
            }
            LibEvent::TagProgress {
                written,
                failed,
                done,
                total,
            } => {
                for (p, g) in written {
                    self.table.set_genres(&p, g, true);
                }
                self.tagging = Some((done, total));
                self.status = format!("writing genres: {done}/{total}");
                if !failed.is_empty() {
                    let (p, e) = &failed[0];
                    self.status = format!(
                        "writing genres: {done}/{total}; {} failed, e.g. {}: {e}",
                        failed.len(),
                        p.display()
                    );
                }
                self.genre_values = None;
            }
            LibEvent::Tagged { written, failed } => {
                self.tagging = None;
                self.preview.clear();
                self.status = if failed == 0 {
                    format!("wrote genres to {written} file(s)")
                } else {
                    format!("wrote genres to {written} file(s); {failed} failed")
                };
            }
            LibEvent::Restored(files) => {
                for (p, g) in files {
                    self.table.set_genres(&p, g, false);
                }
                self.genre_values = None;
            }
            LibEvent::Undone {
                batch,
                reverted,
                refused,
            } => {
                self.undoing = false;
                self.status = match refused.first() {
                    None => format!("undid batch {batch}: {reverted} restored"),
                    Some((_, why)) => format!(
                        "undid batch {batch}: {reverted} restored, {} refused, e.g. {why}",
                        refused.len()
                    ),
                };
            }
            LibEvent::CanUndo(b) => self.can_undo = b,
            LibEvent::Reconciled(n) => {
                self.status =
                    format!("settled {n} tag write(s) that an earlier crash left unfinished")
            }
            LibEvent::Error(e) => {
                if self.undoing {
                    self.undoing = false;
                }
                if let Some(m) = self.settings.model.clone()
                    && e.starts_with(&format!("cannot use {}", m.display()))
                {
                    // The remembered model is gone: say so where the model is shown.
                    self.model.error = Some(e.clone());
                    self.settings.model = None;
                }
                self.status = e;
            }
            _ => {} // a stale generation
        }
    }

    fn apply_loader_event(&mut self, ev: LoaderEvent) {
        match ev {
            LoaderEvent::Loaded { id, track } if id == self.track.request => {
                self.track.loading = false;
                self.player.load(track.samples.clone(), track.rate_hz);
                self.player.set_volume(self.settings.volume);
                if self.play_first {
                    self.play_first = false;
                    self.player.play();
                }
                self.track.loaded = Some(*track);
            }
            LoaderEvent::Failed { id, error } if id == self.track.request => {
                self.track.loading = false;
                self.status = error.clone();
                self.track.error = Some(error);
            }
            LoaderEvent::Analysed {
                id,
                analysis,
                labels,
            } if id == self.track.request => {
                let a = RowAnalysis::from_stored(&analysis, &labels);
                if let Some(p) = self.current_path() {
                    self.track.whole_cache.retain(|(q, _)| *q != p);
                    self.track.whole_cache.push((p, a.clone()));
                    if self.track.whole_cache.len() > 16 {
                        self.track.whole_cache.remove(0);
                    }
                }
                self.track.whole = Some(a);
            }
            LoaderEvent::AnalysisFailed { id, error } if id == self.track.request => {
                self.track.whole_error = Some(error);
            }
            _ => {} // an older track's
        }
    }

    pub(super) fn current_path(&self) -> Option<PathBuf> {
        self.track
            .current
            .and_then(|i| self.table.rows.get(i))
            .map(|r| r.init.path.clone())
    }

    fn apply_training_event(&mut self, ev: TrainEvent) -> bool {
        let t = &mut self.training;
        match ev {
            TrainEvent::Preparing(d, n) => {
                t.preparing = Some((d, n));
                self.status = format!("training: features of {d}/{n} tracks ready");
            }
            TrainEvent::Started { epochs, steps } => {
                t.preparing = None;
                t.progress = Some((0, epochs, 0, steps));
                self.status = format!("training: epoch 1/{epochs}");
            }
            TrainEvent::Step { epoch, step } => {
                if let Some(p) = &mut t.progress {
                    p.0 = epoch;
                    p.2 = step;
                    self.status = format!("training: epoch {epoch}/{}, step {step}/{}", p.1, p.3);
                }
            }
            TrainEvent::Epoch(s) => {
                if let Some(p) = &mut t.progress {
                    p.0 = s.epoch;
                    p.2 = p.3;
                    self.status = format!(
                        "training: epoch {}/{} done, validation accuracy {}",
                        s.epoch,
                        p.1,
                        s.val_acc.map_or("-".into(), |a| format!("{a:.3}"))
                    );
                }
                t.curves.push(s);
            }
            TrainEvent::Log(l) => t.log.push(l),
            TrainEvent::Done(r) => {
                self.status = format!(
                    "training done: test accuracy {:.3} on {} tracks",
                    r.track.accuracy, r.track.n
                );
                t.has_model = true;
                t.comparison = None;
                t.report = Some(*r);
                t.progress = None;
                return true;
            }
            TrainEvent::Failed(e) => {
                self.status = format!("training failed: {e}");
                t.error = Some(e);
                t.progress = None;
                t.preparing = None;
                return true;
            }
        }
        false
    }

    /// Drain every worker's events within the frame's budget; asks for another frame
    /// when events are left.
    pub(super) fn drain(&mut self, ctx: &egui::Context) {
        let deadline = Instant::now() + EVENT_BUDGET;
        let mut left = false;
        loop {
            if Instant::now() >= deadline {
                left = true;
                break;
            }
            match self.lib.rx.try_recv() {
                Ok(ev) => {
                    self.diag.mark(ev.kind());
                    self.apply_library_event(ev);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.status.starts_with("the library worker") {
                        self.status = "the library worker stopped: restart the app".into();
                    }
                    break;
                }
            }
        }
        while let Ok(ev) = self.loader.rx.try_recv() {
            self.diag.mark(ev.kind());
            self.apply_loader_event(ev);
            if Instant::now() >= deadline {
                left = true;
                break;
            }
        }
        let mut finished = false;
        if let Some(h) = &self.training.run {
            let mut events = Vec::new();
            loop {
                if Instant::now() >= deadline {
                    left = true;
                    break;
                }
                match h.rx.try_recv() {
                    Ok(ev) => {
                        // The run's last word; the thread then ends and the channel closes.
                        let last = matches!(ev, TrainEvent::Done(_) | TrainEvent::Failed(_));
                        events.push(ev);
                        if last {
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        events.push(TrainEvent::Failed(
                            "the training thread stopped without a result".into(),
                        ));
                        break;
                    }
                }
            }
            for ev in events {
                self.diag.mark("training event");
                finished |= self.apply_training_event(ev);
            }
        }
        if finished {
            self.training.run = None;
        }
        self.poll_tasks();
        if left {
            ctx.request_repaint();
        }
        // Time left estimate: one sample a second.
        if self.analysis.running {
            let (d, f, _) = self.table.progress();
            let now = Instant::now();
            if self
                .analysis
                .rate
                .back()
                .is_none_or(|(t, _)| now - *t >= Duration::from_secs(1))
            {
                self.analysis.rate.push_back((now, d + f));
                while self.analysis.rate.len() > 11 {
                    self.analysis.rate.pop_front();
                }
            }
        }
    }

    fn poll_tasks(&mut self) {
        if let Some(r) = poll(&mut self.previewing) {
            match r {
                Ok(p) => {
                    let (changes, skipped) = (
                        p.iter().filter(|(_, x)| x.changes && !x.skipped).count(),
                        p.iter().filter(|(_, x)| x.skipped).count(),
                    );
                    self.status = format!(
                        "preview: {} file(s), {changes} to change, {skipped} skipped",
                        p.len()
                    );
                    self.preview = p;
                }
                Err(e) => self.status = e.to_string(),
            }
        }
        if let Some(r) = poll(&mut self.playlists) {
            self.playlist_msg = Some(
                r.map(|files| files_written("wrote", "playlist(s)", &files))
                    .map_err(|e| e.to_string()),
            );
        }
        let t = &mut self.training;
        if let Some(r) = poll(&mut t.loading_run) {
            match r {
                Ok(run) => {
                    t.curves = run.report.history.clone();
                    t.report = Some(run.report);
                    t.export_dir = run.dir.join("exports").display().to_string();
                    t.report_dir = Some(run.dir);
                    t.has_model = run.has_model;
                    t.comparison = None;
                    t.compare_msg = None;
                    t.export_msg = None;
                    t.run_error = None;
                }
                Err(e) => {
                    self.status = e.to_string();
                    t.run_error = Some(e.to_string());
                }
            }
        }
        if let Some(r) = poll(&mut t.comparing) {
            match r {
                Ok(c) => {
                    t.compare_msg = None;
                    t.comparison = Some(c);
                }
                Err(e) => t.compare_msg = Some(e.to_string()),
            }
            t.scroll_to_compare = true;
        }
        if let Some(r) = poll(&mut t.exporting) {
            t.export_msg = Some(
                r.map(|files| files_written("exported", "file(s)", &files))
                    .map_err(|e| e.to_string()),
            );
        }
    }
}

/// The result of a one-off job, once (the job is then forgotten).
fn poll<T>(slot: &mut Option<Job<T>>) -> Option<Result<T, TaskError>> {
    let rx = slot.as_ref()?;
    match rx.try_recv() {
        Ok(r) => {
            *slot = None;
            Some(r)
        }
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => {
            *slot = None;
            Some(Err(TaskError::Vanished))
        }
    }
}

impl GenretagApp {
    /// `--exercise`: act like a busy user for frame-time measurements.
    pub(super) fn exercise_step(&mut self, ctx: &egui::Context) {
        if self.exercise == Exercise::Off {
            return;
        }
        self.tick += 1;
        let t = self.tick;
        ctx.request_repaint();
        let n = self.table.order().len();
        if n == 0 {
            return;
        }
        match self.exercise {
            Exercise::Off => {}
            Exercise::Browse | Exercise::Sort => {
                self.scroll_to = Some((t as usize * 37) % n);
                if t.is_multiple_of(90) {
                    let i = self.table.order()[(t as usize * 13) % n] as usize;
                    self.select_track(i);
                }
                if t.is_multiple_of(240) {
                    self.settings.tab = match self.settings.tab {
                        Tab::Library => Tab::Track,
                        _ => Tab::Library,
                    };
                }
                if self.exercise == Exercise::Sort && t.is_multiple_of(120) {
                    self.settings.tab = Tab::Library;
                    let keys = [
                        SortKey::Title,
                        SortKey::Artist,
                        SortKey::Album,
                        SortKey::Year,
                        SortKey::Folder,
                        SortKey::File,
                        SortKey::Genre,
                        SortKey::Predicted,
                        SortKey::Status,
                    ];
                    self.table.sort_by(keys[(t / 120) as usize % keys.len()]);
                }
            }
            Exercise::Tag => {
                self.settings.tab = Tab::Library;
                self.scroll_to = Some((t as usize * 37) % n);
                match self.exercise_stage {
                    0 if self.analysis_finished() => {
                        self.table.select_all_visible();
                        self.preview_selection();
                        self.exercise_stage = 1;
                    }
                    1 if !self.preview.is_empty() && self.previewing.is_none() => {
                        self.apply_preview();
                        self.exercise_stage = 2;
                    }
                    2 if self.tagging.is_none() => {
                        self.undo();
                        self.exercise_stage = 3;
                    }
                    3 if !self.undoing => {
                        self.exercise_stage = 4;
                        self.status = "exercise: tagged and undone".into();
                        self.diag.exercise_done = true;
                        let (done, _, total) = self.table.progress();
                        self.diag.write_log(total, done, true);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// "wrote 3 playlist(s) to /folder": what a task that writes files into one folder did.
fn files_written(verb: &str, what: &str, files: &[std::path::PathBuf]) -> String {
    let folder = files
        .first()
        .and_then(|f| f.parent())
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    format!("{verb} {} {what} to {folder}", files.len())
}
