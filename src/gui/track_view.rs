//! The track view: transport (play / pause / seek / volume), the live and whole-track
//! spectrograms, the genre timeline, and the whole-track, now-playing and style-tag
//! bars. It scrolls, so nothing is cut off at the smallest window size.

use std::time::Duration;

use eframe::egui::{self, RichText};

use super::app::GenretagApp;
use super::palette::text_colours;
use super::state::{RowAnalysis, Status, relative_folder};
use super::widgets::{self, mmss};
use crate::model::{Listening, Verdict};

/// Frames shown in the live spectrogram (5 s).
const LIVE_SPAN: usize = 313;

impl GenretagApp {
    /// The track view.
    pub(super) fn track_ui(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical()
            .id_salt("track-view")
            .auto_shrink([false, false])
            .show(ui, |ui| self.track_contents(ui));
    }

    fn track_contents(&mut self, ui: &mut egui::Ui) {
        let colours = text_colours(ui.visuals());
        let Some(index) = self.track.current else {
            ui.add_space(20.0);
            ui.label("Select a track in the library (double-click it, or use Up/Down there).");
            return;
        };
        let Some(row) = self.table.rows.get(index) else {
            return;
        };
        let (title, artist, path, status) = (
            row.init.title.clone(),
            row.init.artist.clone(),
            row.init.path.clone(),
            row.status.clone(),
        );
        ui.horizontal_wrapped(|ui| {
            ui.heading(&title);
            if !artist.is_empty() {
                ui.label(format!("- {artist}"));
            }
        });
        let root = self.table.folder.clone().unwrap_or_default();
        let sub = relative_folder(&path, &root);
        ui.label(
            RichText::new(format!(
                "{}{}",
                if sub.is_empty() {
                    String::new()
                } else {
                    format!("{sub}/")
                },
                super::state::file_name(&path)
            ))
            .weak(),
        );
        if let Some(e) = &self.track.error {
            ui.add_space(6.0);
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.colored_label(colours.error, "This track cannot be played.");
                ui.label(e);
            });
        }
        if let Some(e) = &self.loader.broken {
            ui.colored_label(colours.error, e);
        }
        if let Some(e) = self.player.no_sound()
            && !self.stable_ui
        {
            ui.colored_label(colours.warn, e.to_string());
        }
        // Transport.
        let pos = self.player.position_s();
        let dur = self.player.duration_s();
        ui.horizontal_wrapped(|ui| {
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
                .add_enabled(
                    self.player.is_loaded(),
                    egui::Slider::new(&mut p, 0.0..=dur.max(0.01)).show_value(false),
                )
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
        if self.track.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("decoding...");
            });
        }
        self.spectrograms_ui(ui, pos, dur);
        self.request_whole_analysis(index);
        // Borrowed, not cloned: this runs every frame while playing.
        let labels = &self.table.labels;
        let whole = self.track.whole.as_ref();
        let Some(row_analysis) = self.table.rows.get(index).and_then(|r| r.analysis.as_ref())
        else {
            ui.add_space(8.0);
            ui.label(match &status {
                Status::Failed(e) => format!("Could not be analysed: {e}"),
                _ => "Analysis pending...".into(),
            });
            return;
        };
        // The timeline and the segment bars: every patch when the whole track was
        // analysed, else what the library's analysis heard.
        let segs = whole.unwrap_or(row_analysis);
        ui.add_space(4.0);
        ui.label(RichText::new("Genres over time (hover for details, click to seek)").small());
        let timeline_dur = if dur > 0.0 {
            dur
        } else {
            row_analysis.duration_s as f64
        };
        if let Some(seek) = widgets::timeline(ui, segs, labels, pos, timeline_dur) {
            self.player.seek(seek);
        }
        listened_ui(
            ui,
            row_analysis,
            whole.is_some(),
            self.track.whole_requested,
            self.track.whole_error.as_deref(),
        );
        ui.add_space(6.0);
        // Whole-track order for every list of bars, so labels do not jump around as
        // the playhead moves from segment to segment.
        let ranked = row_analysis.ranked(labels);
        let shown: Vec<(&str, f32)> = ranked.iter().take(6).copied().collect();
        let verdict = &row_analysis.verdict;
        let narrow = ui.available_width() < 760.0;
        let whole_track = |ui: &mut egui::Ui| {
            ui.strong("Whole track");
            match verdict {
                Verdict::Unsure { reason } => {
                    ui.colored_label(colours.warn, format!("unsure: {reason}"));
                }
                Verdict::Genre { label, probability } => {
                    ui.label(format!("{label} ({:.0}%)", probability * 100.0));
                }
                Verdict::Unknown => {}
            }
            widgets::prob_bars(ui, &shown);
        };
        let now_playing = |ui: &mut egui::Ui| {
            ui.strong("Now playing");
            match segs.segment_at(pos as f32) {
                Some(s) => {
                    let inside = s.start_s as f64 <= pos && pos < s.end_s as f64;
                    ui.label(
                        RichText::new(format!(
                            "{}{}",
                            widgets::span(s.start_s, s.end_s),
                            if inside { "" } else { " (nearest heard part)" }
                        ))
                        .small(),
                    );
                    let by_label: Vec<(&str, f32)> = shown
                        .iter()
                        .map(|(l, _)| {
                            let i = labels.iter().position(|x| x == l).unwrap_or(usize::MAX);
                            (*l, s.probs.get(i).copied().unwrap_or(0.0))
                        })
                        .collect();
                    widgets::prob_bars(ui, &by_label);
                }
                None => {
                    ui.label("(no segments)");
                }
            }
        };
        let tags: Vec<(&str, f32)> = row_analysis
            .tags
            .iter()
            .filter_map(|&(i, p)| {
                crate::ml::musicnn::MSD_TAGS
                    .get(i as usize)
                    .map(|t| (*t, p))
            })
            .collect();
        let style = |ui: &mut egui::Ui| {
            ui.strong("Style tags (musicnn)");
            if tags.is_empty() {
                ui.label("(not given by this model)");
            }
            widgets::prob_bars(ui, &tags);
        };
        if narrow {
            whole_track(ui);
            ui.add_space(6.0);
            now_playing(ui);
            ui.add_space(6.0);
            style(ui);
        } else {
            ui.columns(3, |cols| {
                whole_track(&mut cols[0]);
                now_playing(&mut cols[1]);
                style(&mut cols[2]);
            });
        }
    }

    fn spectrograms_ui(&mut self, ui: &mut egui::Ui, pos: f64, dur: f64) {
        let Some(track) = &self.track.loaded else {
            return;
        };
        if track.skipped_packets > 0 {
            ui.colored_label(
                text_colours(ui.visuals()).warn,
                format!(
                    "{} damaged packet(s) skipped while decoding",
                    track.skipped_packets
                ),
            );
        }
        ui.label(RichText::new("Live mel spectrogram").small());
        let frame = (pos * crate::train::features::FRAMES_PER_S as f64) as usize;
        // One texture, updated in place only when the playhead moved a frame.
        if self.track.live.is_none() || self.track.live_frame != Some(frame) {
            let img = widgets::live_image(&track.mel, track.frames, frame, LIVE_SPAN);
            match &mut self.track.live {
                Some(t) => t.set(img, egui::TextureOptions::NEAREST),
                None => {
                    self.track.live = Some(ui.ctx().load_texture(
                        "live",
                        img,
                        egui::TextureOptions::NEAREST,
                    ))
                }
            }
            self.track.live_frame = Some(frame);
        }
        // Taller spectrograms in a taller window (the visible part of the scroll area).
        let room = ui.clip_rect().height();
        if let Some(tex) = &self.track.live {
            widgets::live_spectrogram(ui, tex, (room * 0.22).clamp(140.0, 260.0));
        }
        ui.label(RichText::new("Whole track (click to seek)").small());
        let tex = self.track.overview.get_or_insert_with(|| {
            ui.ctx().load_texture(
                "overview",
                track.overview.clone(),
                egui::TextureOptions::LINEAR,
            )
        });
        if let Some(seek) = widgets::overview(ui, tex, pos, dur, (room * 0.11).clamp(70.0, 130.0)) {
            self.player.seek(seek);
        }
    }

    /// A long track heard in part: analyse every patch of it, once, on the loader.
    fn request_whole_analysis(&mut self, index: usize) {
        if self.track.whole_requested {
            return;
        }
        let Some(info) = &self.model.info else { return };
        let Some(a) = self.table.rows.get(index).and_then(|r| r.analysis.as_ref()) else {
            return;
        };
        if !a.partial() || info.model.listening() != Listening::Patches {
            return;
        }
        self.track.whole_requested = true;
        let path = self.table.rows[index].init.path.clone();
        self.loader
            .analyse_whole(self.track.request, path, info.model.clone());
    }
}

/// How much of the track the model heard, in words, and the state of the analysis of
/// the rest.
fn listened_ui(
    ui: &mut egui::Ui,
    a: &RowAnalysis,
    whole: bool,
    whole_requested: bool,
    whole_error: Option<&str>,
) {
    let colours = text_colours(ui.visuals());
    let heard = if a.listened_s > 0.0 {
        a.listened_s
    } else {
        a.segments.iter().map(|s| s.end_s - s.start_s).sum()
    };
    let text = if whole {
        "Timeline: every 3 s patch of the track analysed.".to_string()
    } else if heard + 0.5 >= a.duration_s {
        format!(
            "The model listened to the whole track ({}).",
            mmss(a.duration_s as f64)
        )
    } else {
        format!(
            "The genres come from {:.0} s of the track's {} ({} patch(es) of 3 s{}).",
            heard,
            mmss(a.duration_s as f64),
            a.segments.len(),
            if a.segments.len() > 1 {
                " spread over it"
            } else {
                ""
            }
        )
    };
    ui.label(RichText::new(text).small());
    if !whole && a.partial() {
        match whole_error {
            Some(e) => {
                ui.colored_label(
                    colours.error,
                    format!("the rest could not be analysed: {e}"),
                );
            }
            None if whole_requested => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(
                        RichText::new("analysing the rest of the track for the timeline...")
                            .small(),
                    );
                });
            }
            None => {}
        }
    }
}
