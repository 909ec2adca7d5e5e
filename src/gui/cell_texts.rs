//! Laid-out texts of the library table's cells, kept across frames.
//!
//! egui keeps a laid-out text (a galley) only while it is drawn in consecutive frames. A
//! table moved by more than a screen in one frame (the scroll bar dragged, Page Down held,
//! a jump to the playing track, a re-sort) therefore laid out and shaped every visible
//! cell again, and at nine columns that was most of such a frame's UI time (profiled:
//! 40-50 % in text layout, a third of it font shaping). Artists, albums, years, genres,
//! predictions and statuses repeat down a library, and rows scrolled back to are the same,
//! so the table keeps its galleys here for a while: a few thousand, the oldest dropped
//! first unless drawn in the last second. Dropping is spread over frames, a few more per
//! frame than were laid out: freeing thousands of galleys at once took 26 ms.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use eframe::egui::{self, Galley, WidgetText};

/// Galleys kept (short single lines: about 8 MB); more only while dropping catches up.
const KEEP: usize = 4096;
/// Frames within which a galley counts as in use (it gets a second chance).
const RECENT: u64 = 60;

/// The cache (one per table).
#[derive(Default)]
pub struct CellTexts {
    /// Key -> (galley, frame it was last drawn in).
    map: HashMap<u64, (Arc<Galley>, u64)>,
    /// Keys, oldest first (each once).
    queue: VecDeque<u64>,
    frame: u64,
    /// Galleys laid out in the last frame.
    added: usize,
    /// Cells drawn from the cache, and laid out anew, since the start.
    pub hits: u64,
    /// See `hits`.
    pub misses: u64,
}

impl CellTexts {
    /// A new frame: once too many are kept, drop the oldest not drawn recently, a few
    /// more than the last frame laid out (so the cache shrinks back to its size).
    pub fn begin_frame(&mut self) {
        self.frame += 1;
        let mut budget = 2 * std::mem::take(&mut self.added) + 16;
        while self.map.len() > KEEP && budget > 0 {
            budget -= 1;
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            match self.map.get(&key) {
                Some((_, drawn)) if self.frame - *drawn <= RECENT => self.queue.push_back(key),
                _ => {
                    self.map.remove(&key);
                }
            }
        }
    }

    /// Galleys kept now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// A non-selectable single-line label of `text`, truncated to the space left in `ui`,
    /// laid out exactly as `egui::Label::new(look(text)).truncate()` would (full text on
    /// hover when cut). `look` is a small number for how `style` dresses the text (colour,
    /// italics): the same `look` must always give the same styling for the same theme.
    pub fn label(
        &mut self,
        ui: &mut egui::Ui,
        text: &str,
        look: u8,
        style: impl FnOnce(&str) -> WidgetText,
    ) -> egui::Response {
        let width = ui.available_width();
        // An in-memory key (never stored), so std's hasher is fine here.
        let mut h = DefaultHasher::new();
        (
            text,
            look,
            ui.visuals().dark_mode,
            width.to_bits(),
            ui.ctx().pixels_per_point().to_bits(),
        )
            .hash(&mut h);
        let key = h.finish();
        let frame = self.frame;
        let galley = match self.map.get_mut(&key) {
            Some((g, drawn)) => {
                *drawn = frame;
                self.hits += 1;
                g.clone()
            }
            None => {
                self.misses += 1;
                let mut job = Arc::unwrap_or_clone(style(text).into_layout_job(
                    ui.style(),
                    egui::FontSelection::Default,
                    ui.text_valign(),
                ));
                job.wrap.max_width = width;
                job.wrap.max_rows = 1;
                job.wrap.break_anywhere = true;
                job.halign = ui.layout().horizontal_placement();
                job.justify = ui.layout().horizontal_justify();
                let g = ui.fonts_mut(|f| f.layout_job(job));
                self.map.insert(key, (g.clone(), frame));
                self.queue.push_back(key);
                self.added += 1;
                g
            }
        };
        ui.add(egui::Label::new(galley).selectable(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One frame of `ctx` running `f` (its texture changes dropped: nothing renders).
    fn pass(ctx: &egui::Context, f: impl FnMut(&mut egui::Ui)) {
        ctx.run_ui(egui::RawInput::default(), f)
            .textures_delta
            .clear();
    }

    /// Drawn twice, a cell is laid out once; a narrower column, another theme or another
    /// look lays it out again; the cached galley is the one egui's own truncating label
    /// makes; and the cache stays bounded while thousands of different texts pass.
    #[test]
    fn cells_are_laid_out_once_and_as_egui_would() {
        let ctx = egui::Context::default();
        let mut cells = CellTexts::default();
        let long = "A rather long title that will not fit in a narrow column at all";
        let run = |cells: &mut CellTexts, width: f32, dark: bool, look: u8| {
            let mut ours = None;
            let mut theirs = None;
            ctx.set_visuals(if dark {
                egui::Visuals::dark()
            } else {
                egui::Visuals::light()
            });
            pass(&ctx, |ui| {
                cells.begin_frame();
                ui.allocate_ui(egui::vec2(width, 20.0), |ui| {
                    ui.horizontal(|ui| {
                        ui.set_max_width(width);
                        let r = cells.label(ui, long, look, |t| t.into());
                        ours = Some(r.rect.size());
                    });
                });
                ui.allocate_ui(egui::vec2(width, 20.0), |ui| {
                    ui.horizontal(|ui| {
                        ui.set_max_width(width);
                        let r = ui.add(egui::Label::new(long).selectable(false).truncate());
                        theirs = Some(r.rect.size());
                    });
                });
            });
            (ours.expect("drawn"), theirs.expect("drawn"))
        };
        let (ours, theirs) = run(&mut cells, 120.0, true, 0);
        assert_eq!(ours, theirs, "the same size as egui's truncated label");
        assert!(ours.x <= 120.0 + 0.5, "truncated to the column: {ours:?}");
        assert_eq!((cells.hits, cells.misses), (0, 1));
        run(&mut cells, 120.0, true, 0);
        assert_eq!(
            (cells.hits, cells.misses),
            (1, 1),
            "drawn again: from the cache"
        );
        run(&mut cells, 80.0, true, 0);
        run(&mut cells, 80.0, false, 0);
        run(&mut cells, 80.0, false, 1);
        assert_eq!(cells.misses, 4, "width, theme and look are part of the key");

        // Many new texts per frame: the cache grows past its size only while dropping
        // catches up, a bounded amount per frame, and a text drawn every frame stays.
        let mut texts = CellTexts::default();
        let mut most = 0;
        for frame in 0..400 {
            pass(&ctx, |ui| {
                texts.begin_frame();
                texts.label(ui, "analysed", 0, |t| t.into());
                for i in 0..40 {
                    texts.label(ui, &format!("track{frame}-{i}"), 0, |t| t.into());
                }
            });
            most = most.max(texts.len());
        }
        assert!(most <= KEEP + 2 * 41 + 16, "bounded: {most}");
        assert!(
            texts.len() <= KEEP + 41,
            "back to its size: {}",
            texts.len()
        );
        let misses = texts.misses;
        pass(&ctx, |ui| {
            texts.begin_frame();
            texts.label(ui, "analysed", 0, |t| t.into());
        });
        assert_eq!(texts.misses, misses, "a text drawn every frame is kept");
    }
}
