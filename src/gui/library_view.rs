//! The library view: the folder field (or a first-start page that explains the three
//! ways in), the model in use, analysis progress with Pause / Cancel, search and
//! filters, the virtualised table, playlists, and the tag preview with Apply / Undo.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use eframe::egui::{self, RichText};
use egui_extras::{Column, TableBuilder};

use super::app::GenretagApp;
use super::grid::{Grid, GridColumn};
use super::jobs::spawn_task;
use super::jobs::tasks;
use super::palette::{genre_colour, text_colours};
use super::state::{
    Facet, PlaylistBy, Row, RowAnalysis, SortKey, Status, Table, file_name, playlists,
    relative_folder,
};
use crate::library::policy::Mode;
use crate::model::Verdict;

/// The table's columns: sort key, header, first width as a share of the table, narrowest.
const COLUMNS: [(SortKey, &str, f32, f32); 9] = [
    (SortKey::Title, "Title", 0.16, 80.0),
    (SortKey::Artist, "Artist", 0.11, 50.0),
    (SortKey::Album, "Album", 0.11, 50.0),
    (SortKey::Year, "Year", 0.04, 40.0),
    (SortKey::Folder, "Folder", 0.08, 40.0),
    (SortKey::File, "File", 0.13, 60.0),
    (SortKey::Genre, "Genre", 0.09, 50.0),
    (SortKey::Predicted, "Predicted", 0.13, 70.0),
    (SortKey::Status, "Status", 0.0, 60.0),
];
/// Positions in `COLUMNS` of the cells that say more on hover or carry a dot.
const FILE: usize = 5;
const GENRE: usize = 6;
const PREDICTED: usize = 7;
const STATUS: usize = 8;

/// How a cell's text is dressed (its "look", part of the cell-text cache's key).
const PLAIN: u8 = 0;
const OURS: u8 = 1;
const UNSURE: u8 = 2;
const FAILED: u8 = 3;
const PENDING: u8 = 4;

/// What a row's cells say: each column's text and look, and the colour of a sure
/// prediction's genre dot.
struct RowTexts<'r> {
    texts: [(Cow<'r, str>, u8); 9],
    dot: Option<egui::Color32>,
}

impl<'r> RowTexts<'r> {
    fn new(table: &'r Table, r: &'r Row, root: &Path) -> Self {
        let (predicted, dot) = match r.analysis.as_ref().and_then(|a| Some((a, a.top?))) {
            Some((a, (l, p))) => {
                let label = table.label(l);
                match a.verdict {
                    Verdict::Unsure { .. } => (
                        (format!("unsure ({label} {:.0}%)", p * 100.0).into(), UNSURE),
                        None,
                    ),
                    _ => (
                        (format!("{label} {:.0}%", p * 100.0).into(), PLAIN),
                        Some(genre_colour(label)),
                    ),
                }
            }
            None => (("".into(), PLAIN), None),
        };
        let status = match &r.status {
            Status::Failed(_) => ("error".into(), FAILED),
            Status::Done => ("analysed".into(), PLAIN),
            Status::Pending => ("pending".into(), PENDING),
        };
        Self {
            texts: [
                (r.init.title.as_str().into(), PLAIN),
                (r.init.artist.as_str().into(), PLAIN),
                (r.init.album.as_str().into(), PLAIN),
                (
                    r.init
                        .year
                        .map(|y| y.to_string())
                        .unwrap_or_default()
                        .into(),
                    PLAIN,
                ),
                (relative_folder(&r.init.path, root).into(), PLAIN),
                (file_name(&r.init.path).into(), PLAIN),
                (
                    r.init.genres.join("; ").into(),
                    if r.changed_by_us { OURS } else { PLAIN },
                ),
                predicted,
                status,
            ],
            dot,
        }
    }
}

impl GenretagApp {
    /// The library view.
    pub(super) fn library_ui(&mut self, ui: &mut egui::Ui) {
        let colours = text_colours(ui.visuals());
        if self.table.folder.is_none() && self.requested.is_none() {
            self.welcome_ui(ui);
            return;
        }
        self.folder_bar(ui);
        if let Some(e) = &self.open_error {
            ui.colored_label(colours.error, e);
        }
        self.model_line(ui);
        self.progress_line(ui);
        self.filter_line(ui);
        let max = (ui.available_height() - 120.0).max(140.0);
        if self.preview.is_empty() && self.previewing.is_none() {
            // Nothing to preview yet: the controls and a hint only, so the table keeps
            // the room (the resizable panel comes back, at its remembered height, with
            // the preview).
            egui::Panel::bottom("tagging-idle")
                .show_separator_line(true)
                // About its content (a row of controls and a hint), so the first frame
                // is already right; it then takes its content's height.
                .default_size(62.0)
                .show(ui, |ui| self.tagging_ui(ui, false));
        } else {
            self.tagging_panel(ui, max);
        }
        // The table gets exactly the space left above the panel (and is clipped to it).
        let rect = ui.available_rect_before_wrap();
        ui.scope_builder(egui::UiBuilder::new().max_rect(rect), |ui| {
            ui.set_clip_rect(rect.intersect(ui.clip_rect()));
            self.table_ui(ui);
        });
    }

    /// The resizable tagging panel with the preview, at the height the user chose.
    fn tagging_panel(&mut self, ui: &mut egui::Ui, max: f32) {
        let resp = egui::Panel::bottom("tagging")
            .resizable(true)
            .show_separator_line(true)
            .default_size(
                self.settings
                    .preview_height
                    .clamp(140.0, (ui.available_height() * 0.38).max(140.0)),
            )
            .size_range(140.0..=max)
            .show(ui, |ui| self.tagging_ui(ui, true));
        // Remember the height the user dragged it to (restored on the next start).
        let h = resp.response.rect.height();
        if (h - self.settings.preview_height).abs() > 1.0 && h >= 140.0 {
            self.settings.preview_height = h;
        }
    }

    /// First start: say what the app does and the three ways to open a folder.
    fn welcome_ui(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.add_space(24.0);
            ui.vertical_centered(|ui| {
                ui.heading("Tag the genres of your music");
                ui.label(
                    "genretag listens to every track of a folder, shows the genres it hears, \
                     and writes them into the files when you say so (with a preview, and undo).",
                );
                ui.add_space(16.0);
                ui.strong("Open a music folder in one of three ways:");
            });
            ui.add_space(8.0);
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.label("1. Type or paste its path, then Open:");
                self.folder_bar(ui);
                if let Some(e) = &self.open_error {
                    ui.colored_label(text_colours(ui.visuals()).error, e);
                }
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    ui.label("2. Choose it in a dialog:");
                    if ui.button("Browse...").clicked() {
                        self.pick_folder();
                    }
                });
                ui.add_space(6.0);
                ui.label("3. Drag a folder from your file manager and drop it on this window.");
            });
            if !self.settings.recent_folders.is_empty() {
                ui.add_space(12.0);
                ui.strong("Recent folders");
                for f in self.settings.recent_folders.clone() {
                    if ui.link(f.display().to_string()).clicked() {
                        self.open_folder(f);
                    }
                }
            }
            ui.add_space(12.0);
            ui.label(
                RichText::new(
                    "Keys: Up/Down pick a track, Space plays, Left/Right seek 5 s, Ctrl+A selects \
                     all rows, Ctrl+O opens a folder.",
                )
                .weak(),
            );
        });
    }

    fn folder_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Folder:");
            let w = (ui.available_width() - 260.0).clamp(160.0, 520.0);
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut self.folder_input)
                        .hint_text("type or paste a path, or drop a folder on the window")
                        .desired_width(w),
                )
                .labelled_by(l.id);
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Open").clicked() || enter {
                let p = PathBuf::from(self.folder_input.trim());
                self.open_folder(p);
            }
            if self.table.folder.is_some() && ui.button("Browse...").clicked() {
                self.pick_folder();
            }
            if self.table.folder.is_some() && !self.settings.recent_folders.is_empty() {
                let recent = self.settings.recent_folders.clone();
                ui.menu_button("Recent", |ui| {
                    for f in recent {
                        if ui.button(f.display().to_string()).clicked() {
                            self.open_folder(f);
                            ui.close();
                        }
                    }
                });
            }
            if self.requested.is_some() {
                ui.spinner();
            }
        });
    }

    fn model_line(&mut self, ui: &mut egui::Ui) {
        let colours = text_colours(ui.visuals());
        let mut shipped = false;
        ui.horizontal_wrapped(|ui| {
            ui.label("Genres by:");
            match (&self.model.info, &self.model.error) {
                (Some(m), err) => {
                    let r = ui.strong(&m.name);
                    if let Some(p) = &m.path {
                        r.on_hover_text(p.display().to_string());
                    }
                    if m.path.is_some() && ui.small_button("Use the shipped model").clicked() {
                        shipped = true;
                    }
                    if let Some(e) = err {
                        ui.colored_label(colours.warn, e);
                    }
                }
                (None, Some(e)) => {
                    ui.colored_label(colours.error, format!("no genre model: {e}"));
                    ui.label(
                        "Train one in the Training view, or open a run there and use its model.",
                    );
                }
                (None, None) => {
                    ui.label(RichText::new("loading the model...").weak());
                }
            }
        });
        if shipped {
            self.use_model(None);
        }
    }

    fn progress_line(&mut self, ui: &mut egui::Ui) {
        if let Some(files) = self.analysis.scanning.filter(|_| self.requested.is_some()) {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("scanning: {files} files..."));
            });
            return;
        }
        let (_, _, total) = self.progress();
        if total == 0 {
            if self.table.folder.is_some() && self.requested.is_none() {
                ui.label("No audio files in this folder (or its sub-folders).");
            }
            return;
        }
        ui.horizontal(|ui| {
            let (done, failed, total) = self.progress();
            let frac = (done + failed) as f32 / total.max(1) as f32;
            ui.add(
                egui::ProgressBar::new(frac)
                    .text(self.progress_text())
                    .desired_width((ui.available_width() - 180.0).clamp(200.0, 520.0)),
            );
            if self.analysis.running {
                let paused = self.analysis.paused;
                if ui.button(if paused { "Resume" } else { "Pause" }).clicked() {
                    self.pause(!paused);
                }
                if ui.button("Cancel").clicked() {
                    self.cancel_analysis();
                }
            }
        });
    }

    fn filter_line(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Search:");
            if ui
                .add(egui::TextEdit::singleline(&mut self.table.filter).desired_width(180.0))
                .labelled_by(l.id)
                .changed()
            {
                self.table.filter_changed();
            }
            let mut facet = self.table.facet.clone();
            let labels = self.table.labels.clone();
            let (table, genre_values) = (&self.table, &mut self.genre_values);
            let l = ui.label("Show:");
            egui::ComboBox::new("facet", "")
                .selected_text(facet.name())
                .show_ui(ui, |ui| {
                    for f in [
                        Facet::All,
                        Facet::Unsure,
                        Facet::Changed,
                        Facet::Failed,
                        Facet::Untagged,
                    ] {
                        let n = f.name();
                        ui.selectable_value(&mut facet, f, n);
                    }
                    ui.separator();
                    for l in labels.iter() {
                        let f = Facet::Predicted(l.clone());
                        let n = f.name();
                        ui.selectable_value(&mut facet, f, n);
                    }
                    ui.separator();
                    // Listed only while the menu is open (a pass over every row).
                    for g in genre_values
                        .get_or_insert_with(|| table.genre_values())
                        .clone()
                    {
                        let f = Facet::Genre(g);
                        let n = f.name();
                        ui.selectable_value(&mut facet, f, n);
                    }
                })
                .response
                .labelled_by(l.id);
            if facet != self.table.facet {
                self.table.facet = facet;
                self.table.filter_changed();
            }
            ui.label(format!(
                "{} shown, {} selected",
                self.table.order().len(),
                self.table.selected_count()
            ));
            ui.menu_button("Playlists...", |ui| self.playlist_menu(ui));
        });
        if let Some(m) = &self.playlist_msg {
            let c = text_colours(ui.visuals());
            match m {
                Ok(t) => ui.colored_label(c.ok, t),
                Err(e) => ui.colored_label(c.error, e),
            };
        }
    }

    fn playlist_menu(&mut self, ui: &mut egui::Ui) {
        ui.label("One .m3u8 playlist per genre");
        ui.radio_value(
            &mut self.playlist_by,
            PlaylistBy::Predicted,
            "by predicted genre",
        );
        ui.radio_value(
            &mut self.playlist_by,
            PlaylistBy::Written,
            "by genre tag in the files",
        );
        let default = self
            .table
            .folder
            .as_ref()
            .map(|f| f.join("playlists").display().to_string())
            .unwrap_or_default();
        let l = ui.label("into the folder:");
        ui.add(
            egui::TextEdit::singleline(&mut self.settings.playlist_dir)
                .hint_text(default.clone())
                .desired_width(320.0),
        )
        .labelled_by(l.id);
        let selected = self.table.selected_count();
        let mut go = None;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    selected > 0,
                    egui::Button::new(format!("Selected ({selected})")),
                )
                .clicked()
            {
                go = Some(self.table.selected());
            }
            if ui
                .button(format!("Whole folder ({})", self.table.rows.len()))
                .clicked()
            {
                go = Some((0..self.table.rows.len()).collect());
            }
        });
        if let Some(rows) = go {
            let lists = playlists(&self.table, &rows, self.playlist_by);
            let dir = if self.settings.playlist_dir.trim().is_empty() {
                PathBuf::from(default)
            } else {
                PathBuf::from(self.settings.playlist_dir.trim())
            };
            self.playlist_msg = None;
            self.playlists = Some(spawn_task(self.ctx.clone(), "playlists", move || {
                tasks::write_playlists(&dir, &lists)
            }));
            ui.close();
        }
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) {
        let columns = COLUMNS.map(|(_, _, share, min)| GridColumn { share, min });
        let mut clicked: Option<(usize, egui::Modifiers)> = None;
        let mut double: Option<usize> = None;
        let mut sort_by: Option<SortKey> = None;
        let sort = self.table.sort;
        let header = |ui: &mut egui::Ui, c: usize| {
            let (key, name, ..) = COLUMNS[c];
            let arrow = if sort.0 == key {
                if sort.1 { " ^" } else { " v" }
            } else {
                ""
            };
            if ui
                .add(
                    egui::Button::new(RichText::new(format!("{name}{arrow}")).strong())
                        .frame(false),
                )
                .on_hover_text("sort (again: reverse)")
                .clicked()
            {
                sort_by = Some(key);
            }
        };
        let colours = text_colours(ui.visuals());
        // How a cell's text is dressed, by look (see `RowTexts`).
        let dress = |t: &str, look: u8| -> egui::WidgetText {
            let t = RichText::new(t);
            match look {
                OURS => t.color(colours.ok),
                UNSURE => t.italics().color(colours.warn),
                FAILED => t.color(colours.error),
                PENDING => t.weak(),
                _ => t,
            }
            .into()
        };
        let root = self.table.folder.clone().unwrap_or_default();
        let table = &self.table;
        let cells = &mut self.cell_texts;
        // A sure prediction's text follows its genre's dot, one item spacing after it.
        let dot = 8.0 + ui.spacing().item_spacing.x;
        Grid::new(ui.make_persistent_id("library-table"), &columns, 22.0, 20.0)
            .scroll_to(self.scroll_to.take())
            .show(
                ui,
                table.order().len(),
                header,
                |k| table.is_selected(table.order()[k] as usize),
                |ui, row| {
                    let i = table.order()[row.index] as usize;
                    let r = &table.rows[i];
                    let shown = RowTexts::new(table, r, &root);
                    for (col, (t, look)) in shown.texts.iter().enumerate() {
                        let mut indent = 0.0;
                        if col == PREDICTED
                            && let Some(colour) = shown.dot
                        {
                            let cell = row.cell(col);
                            row.painter(ui, col).circle_filled(
                                egui::pos2(cell.left() + 4.0, cell.center().y),
                                4.0,
                                colour,
                            );
                            indent = dot;
                        }
                        let width = row.width(col) - indent;
                        // `None`: new, and this frame's layout time is spent (the next
                        // frame draws it; a galley of another width may stand in).
                        let g = cells.galley(ui, t, *look, width, |t| dress(t, *look));
                        if let Some(g) = &g {
                            row.text(ui, col, indent, g);
                        }
                        let elided = g.as_ref().is_some_and(|g| g.elided);
                        let Some(resp) = row.cell_response(ui, col, t) else {
                            continue;
                        };
                        // Tooltips: what a cell means where it says more than its text,
                        // and the full text of a cut one.
                        let more = match (col, &r.status, &r.analysis) {
                            (FILE, ..) => Some(r.init.path.display().to_string()),
                            (GENRE, ..) if r.changed_by_us => {
                                Some("written by genretag (Undo last batch reverts it)".to_string())
                            }
                            (
                                PREDICTED,
                                _,
                                Some(RowAnalysis {
                                    verdict: Verdict::Unsure { reason },
                                    ..
                                }),
                            ) => Some(format!("the model will not write a genre: {reason}")),
                            (STATUS, Status::Failed(e), _) => Some(e.clone()),
                            _ => None,
                        };
                        match (more, elided && col != FILE) {
                            (Some(more), true) => {
                                resp.on_hover_text(format!("{t}\n{more}"));
                            }
                            (Some(more), false) => {
                                resp.on_hover_text(more);
                            }
                            (None, true) => {
                                resp.on_hover_text(t.as_ref());
                            }
                            (None, false) => {}
                        }
                    }
                    let resp = &row.response;
                    if resp.clicked() {
                        clicked = Some((i, resp.ctx.input(|inp| inp.modifiers)));
                    }
                    if resp.double_clicked() {
                        double = Some(i);
                    }
                },
            );
        let c = &self.cell_texts;
        self.diag.cell_texts = super::diagnostics::CellTextCounts {
            hits: c.hits,
            misses: c.misses,
            kept: c.len(),
            kept_bytes: c.bytes(),
            deferred: c.deferred,
        };
        if let Some(k) = sort_by {
            self.table.sort_by(k);
        }
        if let Some((i, m)) = clicked {
            if m.shift || m.command {
                self.table.click(i, m.command, m.shift);
            } else {
                self.select_track(i);
            }
        }
        if let Some(i) = double {
            self.select_track(i);
            self.settings.tab = super::state::Tab::Track;
        }
    }

    /// The tagging controls and the preview; `resizable`: shown in the resizable panel.
    fn tagging_ui(&mut self, ui: &mut egui::Ui, resizable: bool) {
        ui.add_space(2.0);
        if resizable {
            // A visible grip on the resize edge.
            let (grip, _) =
                ui.allocate_exact_size(egui::vec2(ui.available_width(), 6.0), egui::Sense::hover());
            let c = text_colours(ui.visuals()).bar_outline;
            for dx in [-10.0, 0.0, 10.0] {
                ui.painter()
                    .circle_filled(grip.center() + egui::vec2(dx, 0.0), 2.0, c);
            }
        }
        ui.horizontal_wrapped(|ui| {
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
            let n = self.table.selected_count();
            if ui
                .add_enabled(
                    n > 0 && self.previewing.is_none(),
                    egui::Button::new("Preview"),
                )
                .on_hover_text(
                    "what would be written to the selected files (nothing is written yet)",
                )
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
                .add_enabled(
                    changes > 0 && self.tagging.is_none(),
                    egui::Button::new(format!("Apply {changes}")),
                )
                .clicked()
            {
                self.apply_preview();
            }
            if ui
                .add_enabled(
                    self.can_undo && self.tagging.is_none() && !self.undoing,
                    egui::Button::new("Undo last batch"),
                )
                .on_disabled_hover_text("nothing to undo")
                .clicked()
            {
                self.undo();
            }
            if let Some((d, t)) = self.tagging {
                ui.add(
                    egui::ProgressBar::new(d as f32 / t.max(1) as f32)
                        .text(format!("writing {d}/{t}"))
                        .desired_width(160.0),
                );
            }
            if self.previewing.is_some() || self.undoing {
                ui.spinner();
            }
        });
        if self.preview.is_empty() {
            ui.label(
                RichText::new(
                    "Select tracks (click, Shift/Ctrl+click, Ctrl+A) and press Preview to see the \
                     genres that would be written.",
                )
                .weak(),
            );
            if resizable {
                ui.allocate_space(ui.available_size());
            }
            return;
        }
        let colours = text_colours(ui.visuals());
        let w = ui.available_width();
        TableBuilder::new(ui)
            .id_salt("preview-table")
            .striped(true)
            .resizable(true)
            .auto_shrink([false, false])
            .column(Column::initial(w * 0.3).at_least(60.0).clip(true))
            .column(Column::initial(w * 0.18).at_least(40.0).clip(true))
            .column(Column::initial(w * 0.18).at_least(40.0).clip(true))
            .column(Column::remainder().at_least(60.0).clip(true))
            .header(20.0, |mut h| {
                for t in ["File", "Existing", "Proposed", "Why"] {
                    h.col(|ui| {
                        ui.strong(t);
                    });
                }
            })
            .body(|body| {
                body.rows(18.0, self.preview.len(), |mut row| {
                    let (p, prop) = &self.preview[row.index()];
                    row.col(|ui| {
                        ui.add(egui::Label::new(file_name(p)).truncate())
                            .on_hover_text(p.display().to_string());
                    });
                    row.col(|ui| {
                        ui.add(egui::Label::new(prop.existing.join("; ")).truncate());
                    });
                    row.col(|ui| {
                        let text = prop.proposed.join("; ");
                        let t = if prop.skipped {
                            RichText::new("(skipped)").italics().color(colours.warn)
                        } else if prop.changes {
                            RichText::new(text).color(colours.ok)
                        } else {
                            RichText::new(format!("{text} (unchanged)")).weak()
                        };
                        ui.add(egui::Label::new(t).truncate());
                    });
                    row.col(|ui| {
                        ui.add(egui::Label::new(&prop.reason).truncate())
                            .on_hover_text(&prop.reason);
                    });
                });
            });
    }
}
