//! The training view: the form (data, split, model, schedule), the run's progress and
//! failures, live curves, and a run's report — accuracy, the confusion matrix with a
//! plain-language normalisation, the per-class table, comparison with another run
//! (McNemar), figure export, and "use this model for my library".

use std::path::PathBuf;

use eframe::egui::{self, RichText};

use super::app::{DataSource, GenretagApp, SplitChoice};
use super::jobs::TrainingHandle;
use super::palette::text_colours;
use super::widgets::{self, format_p, normalise_name};
use crate::train::features::Windowing;
use crate::train::metrics::Normalise;
use crate::train::models::{ModelKind, ModelSpec};
use crate::train::run::{GroupBy, RunOptions, Source, SplitSpec};
use crate::train::trainer::{Augment, TrainConfig};

impl GenretagApp {
    /// The training view.
    pub(super) fn training_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::left("train-form")
            .resizable(true)
            .default_size(300.0)
            .size_range(220.0..=480.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("train-form-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.train_form_ui(ui));
            });
        egui::ScrollArea::vertical()
            .id_salt("train-results")
            .auto_shrink([false, false])
            .show(ui, |ui| self.train_results_ui(ui));
    }

    /// Start training with the form's settings.
    pub fn start_training(&mut self, resume: bool) {
        let f = &self.training.form;
        let kind = f.kind;
        let source = match f.data {
            DataSource::Library => match &self.table.folder {
                Some(folder) => Source::Library {
                    roots: vec![folder.clone()],
                    min_tracks: f.min_tracks.max(1),
                    map: None,
                },
                None => {
                    self.training.error = Some("open a library folder first (Library view)".into());
                    return;
                }
            },
            DataSource::Folder => {
                let d = self.settings.dataset.trim();
                if d.is_empty() {
                    self.training.error =
                        Some("type the dataset folder (one sub-folder per genre)".into());
                    return;
                }
                Source::Folder(PathBuf::from(d))
            }
        };
        let (test, val, seed) = (0.25, 0.15, 1);
        let split = match f.split {
            SplitChoice::Stratified => SplitSpec::Stratified { test, val, seed },
            SplitChoice::GtzanBlocks => SplitSpec::Grouped {
                by: GroupBy::Gtzan,
                test,
                val,
                seed,
            },
            SplitChoice::Artist => SplitSpec::Grouped {
                by: GroupBy::Artist,
                test,
                val,
                seed,
            },
            SplitChoice::Album => SplitSpec::Grouped {
                by: GroupBy::Album,
                test,
                val,
                seed,
            },
            SplitChoice::Lists => {
                if f.train_list.trim().is_empty() || f.test_list.trim().is_empty() {
                    self.training.error =
                        Some("give a training list and a test list (path<TAB>genre lines)".into());
                    return;
                }
                SplitSpec::Lists {
                    train: PathBuf::from(f.train_list.trim()),
                    val: None,
                    test: PathBuf::from(f.test_list.trim()),
                }
            }
        };
        let mut spec = ModelSpec::new(kind);
        spec.width = f.width;
        let mut config = TrainConfig::for_kind(kind);
        config.epochs = f.epochs.max(1);
        config.lr = f.lr;
        if f.augment {
            config.augment = Augment::reports();
        }
        let out = PathBuf::from(self.settings.runs_dir.trim()).join(f.name.trim());
        let opts = RunOptions {
            source,
            split,
            spec,
            config,
            windowing: Windowing::default(),
            out: out.clone(),
            resume,
            cache: crate::train::features::FeatureStore::default_cache(),
            device: self.device.clone(),
            eval_centre: false,
        };
        let t = &mut self.training;
        t.curves.clear();
        t.log.clear();
        t.error = None;
        t.report = None;
        t.comparison = None;
        t.compare_msg = None;
        t.export_msg = None;
        t.has_model = false;
        t.export_dir = out.join("exports").display().to_string();
        t.report_dir = Some(out);
        t.preparing = Some((0, 0));
        t.run = Some(TrainingHandle::spawn(self.ctx.clone(), opts));
        self.status = "training: preparing features...".into();
    }

    fn train_form_ui(&mut self, ui: &mut egui::Ui) {
        let colours = text_colours(ui.visuals());
        ui.heading("Train a model");
        let running = self.training.run.is_some();
        ui.add_enabled_ui(!running, |ui| {
            let f = &mut self.training.form;
            ui.label("Labels from:");
            let before = f.data;
            ui.radio_value(
                &mut f.data,
                DataSource::Folder,
                "a dataset folder (one sub-folder per genre)",
            );
            ui.radio_value(&mut f.data, DataSource::Library, "my library's genre tags");
            if f.data != before {
                // Offer only the splits that make sense for the source.
                f.split = match f.data {
                    DataSource::Folder => SplitChoice::GtzanBlocks,
                    DataSource::Library => SplitChoice::Artist,
                };
            }
            match f.data {
                DataSource::Folder => {
                    let l = ui.label("Dataset folder:");
                    ui.text_edit_singleline(&mut self.settings.dataset)
                        .labelled_by(l.id);
                }
                DataSource::Library => {
                    ui.label(
                        RichText::new(match &self.table.folder {
                            Some(d) => format!("the tags of {}", d.display()),
                            None => "open a folder in the Library view first".into(),
                        })
                        .small(),
                    );
                    ui.horizontal(|ui| {
                        let l = ui.label("Genres with at least");
                        ui.add(egui::DragValue::new(&mut f.min_tracks).range(1..=1000))
                            .labelled_by(l.id);
                        ui.label("tracks");
                    });
                }
            }
            ui.label("Test tracks kept apart:");
            let splits: &[(SplitChoice, &str, &str)] = match f.data {
                DataSource::Folder => &[
                    (
                        SplitChoice::GtzanBlocks,
                        "by GTZAN blocks",
                        "clips 0-4, 5-9... stay together (GTZAN's near-duplicates)",
                    ),
                    (
                        SplitChoice::Artist,
                        "by artist",
                        "no artist in both training and test",
                    ),
                    (
                        SplitChoice::Album,
                        "by album",
                        "no album in both training and test",
                    ),
                    (
                        SplitChoice::Stratified,
                        "random (stratified)",
                        "optimistic when tracks of one artist are alike",
                    ),
                    (
                        SplitChoice::Lists,
                        "from list files",
                        "path<TAB>genre lines",
                    ),
                ],
                DataSource::Library => &[
                    (
                        SplitChoice::Artist,
                        "by artist",
                        "no artist in both training and test",
                    ),
                    (
                        SplitChoice::Album,
                        "by album",
                        "no album in both training and test",
                    ),
                    (
                        SplitChoice::Lists,
                        "from list files",
                        "path<TAB>genre lines",
                    ),
                ],
            };
            for (c, name, hint) in splits {
                ui.radio_value(&mut f.split, *c, *name).on_hover_text(*hint);
            }
            if f.split == SplitChoice::Lists {
                let l = ui.label("training list:");
                ui.text_edit_singleline(&mut f.train_list).labelled_by(l.id);
                let l = ui.label("test list:");
                ui.text_edit_singleline(&mut f.test_list).labelled_by(l.id);
            }
            ui.separator();
            egui::ComboBox::from_label("Model")
                .selected_text(f.kind.name())
                .show_ui(ui, |ui| {
                    for k in ModelKind::ALL {
                        if ui.selectable_value(&mut f.kind, k, k.name()).changed() {
                            let c = TrainConfig::for_kind(k);
                            f.epochs = c.epochs;
                            f.lr = c.lr;
                        }
                    }
                });
            ui.horizontal(|ui| {
                let l = ui.label("Epochs");
                ui.add(egui::DragValue::new(&mut f.epochs).range(1..=1000))
                    .labelled_by(l.id);
                let l = ui.label("LR");
                ui.add(
                    egui::DragValue::new(&mut f.lr)
                        .speed(0.0001)
                        .range(1e-6..=1.0),
                )
                .labelled_by(l.id);
            });
            ui.horizontal(|ui| {
                let l = ui.label("Width");
                ui.add(
                    egui::DragValue::new(&mut f.width)
                        .speed(0.05)
                        .range(0.1..=2.0),
                )
                .labelled_by(l.id);
                ui.checkbox(&mut f.augment, "augment");
            });
            let l = ui.label("Runs folder:");
            ui.text_edit_singleline(&mut self.settings.runs_dir)
                .labelled_by(l.id);
            ui.horizontal(|ui| {
                let l = ui.label("Run name");
                ui.text_edit_singleline(&mut self.training.form.name)
                    .labelled_by(l.id);
            });
        });
        ui.horizontal(|ui| {
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
            let stopping = self
                .training
                .run
                .as_ref()
                .is_some_and(TrainingHandle::stopping);
            if ui
                .add_enabled(running && !stopping, egui::Button::new("Stop"))
                .on_hover_text("stop after this step; the best epoch so far is kept and evaluated")
                .clicked()
                && let Some(h) = &self.training.run
            {
                h.stop();
            }
        });
        if running {
            match (self.training.preparing, self.training.progress) {
                (_, Some((e, n, s, steps))) => {
                    let frac =
                        ((e.max(1) - 1) as f32 + s as f32 / steps.max(1) as f32) / n.max(1) as f32;
                    ui.add(egui::ProgressBar::new(frac).text(format!("epoch {}/{n}", e.max(1))));
                }
                (Some((d, n)), None) => {
                    let text = if n == 0 {
                        "preparing...".to_string()
                    } else {
                        format!("features {d}/{n}")
                    };
                    ui.add(egui::ProgressBar::new(d as f32 / n.max(1) as f32).text(text));
                }
                (None, None) => {
                    ui.spinner();
                }
            }
        }
        if let Some(e) = &self.training.error {
            ui.colored_label(colours.error, format!("Training failed: {e}"));
        }
        for l in self.training.log.iter().rev().take(6) {
            ui.label(RichText::new(l).small().weak());
        }
        ui.separator();
        let l = ui.label("Open a finished run (folder):");
        ui.horizontal(|ui| {
            ui.add(egui::TextEdit::singleline(&mut self.training.run_input).desired_width(170.0))
                .labelled_by(l.id);
            if ui.button("Open run").clicked() {
                let d = PathBuf::from(self.training.run_input.trim());
                self.open_run(&d);
            }
        });
        if self.training.loading_run.is_some() {
            ui.spinner();
        }
        if let Some(e) = &self.training.run_error {
            ui.colored_label(colours.error, e);
        }
    }

    fn train_results_ui(&mut self, ui: &mut egui::Ui) {
        let colours = text_colours(ui.visuals());
        if self.training.report.is_none() {
            widgets::curves(ui, &self.training.curves);
            ui.label(
                "Train a model or open a run to see its confusion matrix and per-class table.",
            );
            return;
        }
        let mut use_model = false;
        let mut export = false;
        let mut compare = false;
        let mut browse = false;
        if let Some(r) = &self.training.report {
            ui.heading(format!(
                "{}: test accuracy {:.3}",
                r.model, r.track.accuracy
            ));
            ui.label(format!(
                "split {} - {} test tracks; balanced accuracy {:.3}, macro F1 {:.3}, top-2 {:.3}",
                r.split, r.track.n, r.track.balanced_accuracy, r.track.macro_f1, r.track.top2
            ));
            if let Some(d) = &self.training.report_dir
                && !self.stable_ui
            {
                ui.label(RichText::new(d.display().to_string()).small().weak());
            }
        }
        ui.horizontal_wrapped(|ui| {
            if self.training.has_model
                && ui
                    .button("Use this model for my library")
                    .on_hover_text("analyse the library with this model from now on (remembered)")
                    .clicked()
            {
                use_model = true;
            }
            if let Some(m) = &self.model.info
                && m.path.is_some()
                && m.path == self.training.report_dir.as_ref().map(|d| d.join("model"))
            {
                ui.colored_label(colours.ok, "the library uses this model");
            }
        });
        // Comparison: right under the header, so its result is seen where it was asked.
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Compare with run:");
            ui.add(
                egui::TextEdit::singleline(&mut self.training.compare_input)
                    .hint_text("another run's folder")
                    .desired_width(240.0),
            )
            .labelled_by(l.id);
            if ui.button("Browse...").clicked() {
                browse = true;
            }
            if ui
                .add_enabled(
                    self.training.comparing.is_none(),
                    egui::Button::new("Compare"),
                )
                .clicked()
            {
                compare = true;
            }
            if self.training.comparing.is_some() {
                ui.spinner();
            }
        });
        let mut scroll = std::mem::take(&mut self.training.scroll_to_compare);
        if let Some(m) = &self.training.compare_msg {
            let r = ui.colored_label(colours.warn, m);
            if scroll {
                r.scroll_to_me(Some(egui::Align::Center));
                scroll = false;
            }
        }
        if let Some(c) = &self.training.comparison {
            let r = egui::Frame::group(ui.style())
                .show(ui, |ui| {
                    ui.strong("Comparison");
                    egui::Grid::new("cmp").striped(true).show(ui, |ui| {
                        for h in ["run", "model", "split", "accuracy", "balanced", "macro F1"] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for (i, row) in c.rows.iter().enumerate() {
                            ui.label(if i == 0 { "this run" } else { "other" });
                            ui.label(&row.0);
                            ui.label(&row.1);
                            ui.label(format!("{:.3}", row.2));
                            ui.label(format!("{:.3}", row.3));
                            ui.label(format!("{:.3}", row.4));
                            ui.end_row();
                        }
                    });
                    ui.label(RichText::new(c.other_dir.display().to_string()).small().weak());
                    match c.mcnemar {
                        Some((n, a, b, p)) => {
                            ui.label(format!(
                                "McNemar's exact test on {n} common test tracks: only this run right {a}, only the other right {b}, p = {}{}",
                                format_p(p),
                                if p < 0.05 { " (significant at 0.05)" } else { "" }
                            ));
                        }
                        None => {
                            ui.label("No common test tracks: McNemar's test needs the same test tracks.");
                        }
                    }
                    if let Some(n) = &c.note {
                        ui.colored_label(colours.warn, n);
                    }
                })
                .response;
            if scroll {
                r.scroll_to_me(Some(egui::Align::Center));
            }
        }
        ui.separator();
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Confusion matrix:");
            egui::ComboBox::new("normalise", "")
                .selected_text(normalise_name(self.training.normalise))
                .show_ui(ui, |ui| {
                    for n in [
                        Normalise::Counts,
                        Normalise::True,
                        Normalise::Pred,
                        Normalise::All,
                    ] {
                        ui.selectable_value(&mut self.training.normalise, n, normalise_name(n));
                    }
                })
                .response
                .labelled_by(l.id);
            let l = ui.label("Export to");
            ui.add(egui::TextEdit::singleline(&mut self.training.export_dir).desired_width(220.0))
                .labelled_by(l.id);
            if ui
                .add_enabled(
                    self.training.exporting.is_none(),
                    egui::Button::new("Export figures (PNG, SVG, CSV)"),
                )
                .clicked()
            {
                export = true;
            }
        });
        if let Some(m) = &self.training.export_msg {
            match m {
                Ok(t) => ui.colored_label(colours.ok, t),
                Err(e) => ui.colored_label(colours.error, e),
            };
        }
        if let Some(r) = &self.training.report {
            if ui.available_width() >= 1000.0 {
                // A wide window: the per-class table beside the matrix, not below it
                // (the matrix's cells stop growing at 48 px, so the room is there).
                ui.horizontal_top(|ui| {
                    ui.vertical(|ui| {
                        ui.set_max_width(ui.available_width() - 320.0);
                        widgets::confusion(ui, &r.labels, &r.track, self.training.normalise);
                    });
                    ui.add_space(24.0);
                    ui.vertical(|ui| {
                        ui.add_space(20.0);
                        widgets::per_class_table(ui, &r.track);
                    });
                });
            } else {
                widgets::confusion(ui, &r.labels, &r.track, self.training.normalise);
                ui.add_space(8.0);
                widgets::per_class_table(ui, &r.track);
            }
            ui.add_space(8.0);
            if let Some(c) = &r.calibration {
                widgets::calibration(ui, c);
                ui.add_space(8.0);
            }
        }
        widgets::curves(ui, &self.training.curves);
        if browse && let Some(d) = rfd::FileDialog::new().pick_folder() {
            // A cancelled dialog changes nothing (never compares a run with itself).
            self.training.compare_input = d.display().to_string();
            compare = true;
        }
        if compare {
            self.compare_runs();
        }
        if export {
            self.start_export();
        }
        if use_model && let Some(dir) = &self.training.report_dir {
            let m = dir.join("model");
            self.use_model(Some(m));
        }
    }
}
