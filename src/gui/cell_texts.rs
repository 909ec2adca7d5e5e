//! Laid-out texts of the library table's cells, kept across frames.
//!
//! egui keeps a laid-out text (a galley) only while it is drawn in consecutive frames. A
//! table moved by more than a screen in one frame (the scroll bar dragged, Page Down held,
//! a jump to the playing track, a re-sort) therefore laid out and shaped every visible
//! cell again, and at nine columns that was most of such a frame's UI time (profiled:
//! 40-50 % in text layout, a third of it font shaping; 16 µs a new text). Artists,
//! albums, years, genres, predictions and statuses repeat down a library, and rows
//! scrolled back to are the same, so the table keeps its galleys here: the oldest dropped
//! first unless drawn in the last second. Dropping is spread over frames, a few more per
//! frame than were laid out: freeing thousands of galleys at once took 26 ms.
//!
//! How many are kept follows the table's size: the table's rows and the kept galleys
//! together stay within [`BUDGET_BYTES`], counting each galley's glyphs and mesh (a file
//! name's takes about 3.3 KB: [`galley_bytes`]). A library of a few thousand tracks with
//! short names keeps every cell (file names and titles are unique to a row, the other
//! columns repeat), so going back over it lays out only what changed (a status, a
//! prediction); at 50 000 rows the rows take most of the budget and at least [`KEEP_MIN`]
//! galleys are kept, as before.
//!
//! Laying out is also spread over frames: a frame lays out new texts for at most
//! [`LAYOUT_BUDGET`] (and at least [`LAYOUT_MIN`] of them), and the cells past that are
//! drawn in the next frames, top to bottom, which it asks for at once. A jump to an unseen
//! part of the table on a slow machine (a page of file names and titles is some 60-90 new
//! texts, about 1.3 ms of a loaded 2-core machine's time) then fills in over two or three
//! frames instead of making one frame that long; on a faster machine it fits in one. A cell
//! whose text was drawn before at another width (a column or the window being resized)
//! shows the galley it was drawn with last, clipped to the cell and kept meanwhile, until
//! its own is laid out, so resizing does not blank the table.
//!
//! A galley points into egui's glyph atlas, which egui empties when it is nearly full (a
//! library in many scripts); the cache then starts again, as egui's own does.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui::{self, Galley, WidgetText, text::LayoutJob};

/// Memory for the table's rows and its kept galleys together.
pub const BUDGET_BYTES: usize = 40 << 20;
/// A row of the table with its texts, sort orders and index entry (heaptrack: 50 000
/// rows took about 30 MB).
const ROW_BYTES: usize = 600;
/// The fewest galleys kept, however large the table (about 14 MB of file names).
pub const KEEP_MIN: usize = 4096;
/// Frames within which a galley counts as in use (it gets a second chance).
const RECENT: u64 = 60;
/// Time a frame may spend laying out new texts; the cells past it wait for the next frame.
pub const LAYOUT_BUDGET: Duration = Duration::from_micros(600);
/// New texts a frame lays out whatever the time, so that a slow machine fills the table too.
pub const LAYOUT_MIN: usize = 16;

/// Bytes the galleys of a table of `rows` rows may take.
pub fn budget_for(rows: usize) -> usize {
    BUDGET_BYTES.saturating_sub(rows * ROW_BYTES)
}

/// The heap a kept galley holds: its glyphs, their mesh, its text, and the cache's entry
/// and the allocations' headers (`OVERHEAD`). For "track01234.flac" this gives 3 327
/// bytes, where glibc's `mallinfo2` counted 3 289 freed per such galley dropped, the
/// cache's entry aside.
pub fn galley_bytes(g: &Galley) -> usize {
    use egui::epaint::{Vertex, text::Glyph};
    use std::mem::size_of;
    /// The cache's map and queue entries, `Galley`, `Row`, `LayoutJob` and its section,
    /// and malloc's header per allocation.
    const OVERHEAD: usize = 600;
    OVERHEAD
        + g.job.text.capacity()
        + g.rows
            .iter()
            .map(|r| {
                r.row.glyphs.capacity() * size_of::<Glyph>()
                    + r.row.visuals.mesh.vertices.capacity() * size_of::<Vertex>()
                    + r.row.visuals.mesh.indices.capacity() * size_of::<u32>()
            })
            .sum::<usize>()
}

/// A kept galley.
struct Entry {
    galley: Arc<Galley>,
    /// The frame it was last drawn in.
    drawn: u64,
    /// Its bytes ([`galley_bytes`]).
    bytes: usize,
    /// The key of its text at any width ([`CellTexts::text_key`]).
    text_key: u64,
}

/// The cache (one per table).
pub struct CellTexts {
    /// Key (text, look, theme, scale and width) -> galley.
    map: HashMap<u64, Entry>,
    /// Key of a text at any width -> the key of its galley drawn last: drawn in the place of
    /// a text not laid out at this width yet while the frame's layout time is spent.
    latest: HashMap<u64, u64>,
    /// The bytes of the galleys in `map`.
    bytes: usize,
    /// Keys, oldest first (each once).
    queue: VecDeque<u64>,
    frame: u64,
    /// Galleys laid out in this frame (until `begin_frame`: in the last one).
    added: usize,
    /// Time spent laying them out.
    layout_spent: Duration,
    /// How long a frame may lay out ([`LAYOUT_BUDGET`]; tests change it).
    layout_budget: Duration,
    /// Cells of this frame left for the next one.
    deferred_now: usize,
    /// A galley egui keeps in its own cache while it is asked for every frame: egui empties
    /// that cache exactly when its galleys go stale (the glyph atlas was emptied when nearly
    /// full, or the text options changed), and then gives a new one.
    sentinel: Option<Arc<Galley>>,
    /// Galleys dropped from the cache, freed in batches on a helper thread: freeing a
    /// galley (its glyphs and mesh) is a few microseconds of the UI thread's time, and a
    /// scrolled frame drops as many as it lays out.
    dropped: Vec<Arc<Galley>>,
    freer: Option<std::sync::mpsc::Sender<Vec<Arc<Galley>>>>,
    /// Cells drawn from the cache, and laid out anew, since the start.
    pub hits: u64,
    /// See `hits`.
    pub misses: u64,
    /// Cells drawn a frame late (the frame's layout time was spent), since the start.
    pub deferred: u64,
}

impl Default for CellTexts {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            latest: HashMap::new(),
            bytes: 0,
            queue: VecDeque::new(),
            frame: 0,
            added: 0,
            layout_spent: Duration::ZERO,
            layout_budget: LAYOUT_BUDGET,
            deferred_now: 0,
            sentinel: None,
            dropped: Vec::new(),
            freer: None,
            hits: 0,
            misses: 0,
            deferred: 0,
        }
    }
}

impl CellTexts {
    /// A new frame (call every frame, drawn or not) of a table of `rows` rows: if egui
    /// emptied its glyph atlas, everything kept is dropped; and while the kept galleys
    /// are over their budget and more than [`KEEP_MIN`], the oldest not drawn recently go,
    /// a few more than the last frame laid out (so the cache shrinks back). Returns whether
    /// everything was dropped.
    pub fn begin_frame(&mut self, ctx: &egui::Context, rows: usize) -> bool {
        self.frame += 1;
        let sentinel = ctx.fonts_mut(|f| {
            f.layout_no_wrap(
                "0".into(),
                egui::FontId::default(),
                egui::Color32::PLACEHOLDER,
            )
        });
        let stale = self
            .sentinel
            .replace(sentinel.clone())
            .is_some_and(|old| !Arc::ptr_eq(&old, &sentinel));
        if stale {
            self.clear();
        }
        self.layout_spent = Duration::ZERO;
        self.deferred_now = 0;
        let budget = budget_for(rows);
        let mut steps = 2 * std::mem::take(&mut self.added) + 16;
        while self.map.len() > KEEP_MIN && self.bytes > budget && steps > 0 {
            steps -= 1;
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            match self.map.get(&key) {
                Some(e) if self.frame - e.drawn <= RECENT => self.queue.push_back(key),
                _ => {
                    if let Some(e) = self.map.remove(&key) {
                        self.bytes -= e.bytes;
                        if self.latest.get(&e.text_key) == Some(&key) {
                            self.latest.remove(&e.text_key);
                        }
                        self.dropped.push(e.galley);
                    }
                }
            }
        }
        if self.dropped.len() >= 256 {
            self.free_dropped();
        }
        stale
    }

    /// Free the dropped galleys on the helper thread (here, if it cannot be started).
    fn free_dropped(&mut self) {
        let batch = std::mem::take(&mut self.dropped);
        if self.freer.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<Arc<Galley>>>();
            let started = std::thread::Builder::new()
                .name("cell-texts-free".into())
                .spawn(move || rx.into_iter().for_each(drop));
            self.freer = started.is_ok().then_some(tx);
        }
        if let Some(Err(failed)) = self.freer.as_ref().map(|tx| tx.send(batch)) {
            self.freer = None;
            drop(failed.0);
        }
    }

    /// Drop every galley (their glyphs are gone from egui's atlas).
    fn clear(&mut self) {
        self.dropped.extend(self.map.drain().map(|(_, e)| e.galley));
        self.latest.clear();
        self.bytes = 0;
        self.queue.clear();
        self.free_dropped();
    }

    /// Galleys kept now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The bytes they hold (see [`galley_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The key of `text` in `look` in `ui`'s theme and scale, at any width.
    fn text_key(ui: &egui::Ui, text: &str, look: u8) -> u64 {
        // In-memory keys (never stored), so std's hasher is fine here.
        let mut h = DefaultHasher::new();
        (
            text,
            look,
            ui.visuals().dark_mode,
            ui.ctx().pixels_per_point().to_bits(),
        )
            .hash(&mut h);
        h.finish()
    }

    /// The key of a text (its `text_key`) laid out at `width`.
    fn key(text_key: u64, width: f32) -> u64 {
        let mut h = DefaultHasher::new();
        (text_key, width.to_bits()).hash(&mut h);
        h.finish()
    }

    /// The layout of `text` on one line of at most `width` points, cut with "…".
    fn job(ui: &egui::Ui, text: WidgetText, width: f32) -> LayoutJob {
        let mut job = Arc::unwrap_or_clone(text.into_layout_job(
            ui.style(),
            egui::FontSelection::Default,
            egui::Align::Center,
        ));
        job.wrap.max_width = width;
        job.wrap.max_rows = 1;
        job.wrap.break_anywhere = true;
        job.halign = egui::Align::LEFT;
        job.justify = false;
        job
    }

    /// `text` laid out on one line of at most `width` points, cut with "…" where longer,
    /// exactly as `egui::Label::new(style(text)).truncate()` would lay it out in a
    /// left-to-right row. `look` is a small number for how `style` dresses the text
    /// (colour, italics): the same `look` must always give the same styling for the same
    /// theme.
    ///
    /// When the text is new at this width and this frame's layout time is spent, the next
    /// frame (asked for here) lays it out, and this one gets the text's galley at the width
    /// it was last drawn at, if that is kept (to be drawn clipped to the cell), else `None`
    /// (the cell stays empty).
    pub fn galley(
        &mut self,
        ui: &egui::Ui,
        text: &str,
        look: u8,
        width: f32,
        style: impl FnOnce(&str) -> WidgetText,
    ) -> Option<Arc<Galley>> {
        let text_key = Self::text_key(ui, text, look);
        let key = Self::key(text_key, width);
        let frame = self.frame;
        if let Some(e) = self.map.get_mut(&key) {
            e.drawn = frame;
            self.hits += 1;
            if self.latest.get(&text_key) != Some(&key) {
                // Drawn at this width again (a column back to an earlier width).
                self.latest.insert(text_key, key);
            }
            return Some(e.galley.clone());
        }
        if self.added >= LAYOUT_MIN && self.layout_spent >= self.layout_budget {
            if self.deferred_now == 0 {
                ui.ctx().request_repaint();
            }
            self.deferred_now += 1;
            self.deferred += 1;
            // Drawn in this frame, so that it is kept while it stands in.
            let stand_in = self.latest.get(&text_key).and_then(|k| self.map.get_mut(k));
            return stand_in.map(|e| {
                e.drawn = frame;
                e.galley.clone()
            });
        }
        let started = Instant::now();
        self.misses += 1;
        let job = Self::job(ui, style(text), width);
        let g = ui.fonts_mut(|f| f.layout_job(job));
        let bytes = galley_bytes(&g);
        self.bytes += bytes;
        self.map.insert(
            key,
            Entry {
                galley: g.clone(),
                drawn: frame,
                bytes,
                text_key,
            },
        );
        self.latest.insert(text_key, key);
        self.queue.push_back(key);
        self.added += 1;
        self.layout_spent += started.elapsed();
        Some(g)
    }

    /// Cells of the current frame left for the next one.
    pub fn deferred_now(&self) -> usize {
        self.deferred_now
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
                cells.begin_frame(ui.ctx(), 10);
                ui.allocate_ui(egui::vec2(width, 20.0), |ui| {
                    ui.horizontal(|ui| {
                        ui.set_max_width(width);
                        let g = cells
                            .galley(ui, long, look, width, |t| t.into())
                            .expect("laid out");
                        ours = Some(g.size());
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

        // Many new texts per frame in a huge table (no budget left beside its rows): the
        // cache grows past the minimum only while dropping catches up, a bounded amount
        // per frame, and a text drawn every frame stays.
        const KEEP: usize = KEEP_MIN;
        assert_eq!(budget_for(1_000_000), 0);
        let mut texts = CellTexts {
            layout_budget: Duration::MAX, // all 41 new texts in each frame
            ..Default::default()
        };
        let mut most = 0;
        for frame in 0..400 {
            pass(&ctx, |ui| {
                texts.begin_frame(ui.ctx(), 1_000_000);
                texts.galley(ui, "analysed", 0, 100.0, |t| t.into());
                for i in 0..40 {
                    texts.galley(ui, &format!("track{frame}-{i}"), 0, 100.0, |t| t.into());
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
            texts.begin_frame(ui.ctx(), 1_000_000);
            texts.galley(ui, "analysed", 0, 100.0, |t| t.into());
        });
        assert_eq!(texts.misses, misses, "a text drawn every frame is kept");
    }

    /// A table of a few thousand rows keeps every cell's text (its two unique columns and
    /// the repeating ones) within the memory budget, so scrolling back over all of it
    /// lays nothing out again; a larger table keeps fewer, never under the minimum; and
    /// the count of bytes follows what is kept.
    #[test]
    fn a_small_table_keeps_every_text_and_a_large_one_fewer() {
        let ctx = egui::Context::default();
        let mut texts = CellTexts {
            layout_budget: Duration::MAX, // every cell in the frame that draws it
            ..Default::default()
        };
        let sweep = |texts: &mut CellTexts, rows: usize| {
            for page in 0..rows / 30 {
                pass(&ctx, |ui| {
                    texts.begin_frame(ui.ctx(), rows);
                    for i in page * 30..(page + 1) * 30 {
                        texts.galley(ui, &format!("track{i:05}.flac"), 0, 150.0, |t| t.into());
                        texts.galley(ui, &format!("Title number {i}"), 0, 150.0, |t| t.into());
                        texts.galley(ui, ["Blues", "Jazz", "Pop"][i % 3], 0, 150.0, |t| t.into());
                    }
                });
            }
        };
        let rows = 4950; // whole pages of 30
        sweep(&mut texts, rows);
        assert_eq!(
            texts.misses as usize,
            2 * rows + 3,
            "each text laid out once"
        );
        sweep(&mut texts, rows);
        assert_eq!(
            texts.misses as usize,
            2 * rows + 3,
            "the second pass over the table lays nothing out"
        );
        assert_eq!(texts.len(), 2 * rows + 3);
        let per_galley = texts.bytes() / texts.len();
        assert!(
            (2000..5000).contains(&per_galley),
            "a short line's galley: {per_galley} bytes"
        );

        // The table grows to 50 000 rows: they take most of the budget, and the cache
        // shrinks, a few galleys a frame, to the minimum (what is kept here needs more
        // than the budget left: a precondition of this test).
        assert!(budget_for(50_000) < KEEP_MIN * per_galley);
        for _ in 0..600 {
            pass(&ctx, |ui| {
                texts.begin_frame(ui.ctx(), 50_000);
            });
        }
        assert_eq!(texts.len(), KEEP_MIN, "shrunk to the minimum");
        assert_eq!(
            texts.bytes(),
            texts
                .map
                .values()
                .map(|e| galley_bytes(&e.galley))
                .sum::<usize>(),
            "the count of bytes follows what is kept"
        );
    }

    /// A frame lays out new texts until its layout time is spent (here at once: the budget
    /// is zero) but at least [`LAYOUT_MIN`]; the cells past that are left empty and the
    /// next frame is asked for at once; the following frames fill in the rest, top first,
    /// and once all are laid out the frames stop. When the column is then resized,
    /// every cell shows its text at once: the galley of the width drawn last stands in
    /// (and is kept) until the new one is laid out.
    #[test]
    fn a_frame_lays_out_within_its_time_and_the_next_frames_the_rest() {
        let ctx = egui::Context::default();
        let mut texts = CellTexts {
            layout_budget: Duration::ZERO,
            ..Default::default()
        };
        let cells = 100;
        // The width each cell's galley was laid out for (None: nothing drawn), and whether
        // the next frame was asked for at once.
        let frame = |texts: &mut CellTexts, width: f32| {
            let mut drawn = Vec::new();
            let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
                texts.begin_frame(ui.ctx(), cells);
                for i in 0..cells {
                    let g = texts.galley(ui, &format!("Title number {i}"), 0, width, |t| t.into());
                    drawn.push(g.map(|g| g.job.wrap.max_width));
                }
            });
            let asked =
                out.viewport_output[&egui::ViewportId::ROOT].repaint_delay == Duration::ZERO;
            out.textures_delta.clear(); // nothing renders
            (drawn, asked)
        };
        let fill = |texts: &mut CellTexts, width: f32, before: Option<f32>| {
            let mut frames = 0;
            loop {
                let (drawn, asked) = frame(texts, width);
                frames += 1;
                let done = (frames * LAYOUT_MIN).min(cells);
                assert!(
                    drawn[..done].iter().all(|w| *w == Some(width)),
                    "frame {frames}: the first {done} cells laid out: {drawn:?}"
                );
                assert!(
                    drawn[done..].iter().all(|w| *w == before),
                    "frame {frames}: the rest wait, showing {before:?}: {drawn:?}"
                );
                assert_eq!(texts.deferred_now(), cells - done);
                assert!(asked || done == cells, "frame {frames}: asked for the next");
                if done == cells {
                    // egui itself runs a pass or two after one that asked for more.
                    let settled = (0..3).any(|_| !frame(texts, width).1);
                    assert!(settled, "no more frames asked for once all are drawn");
                    return frames;
                }
            }
        };
        let frames = fill(&mut texts, 150.0, None);
        assert_eq!(frames, cells.div_ceil(LAYOUT_MIN));
        assert_eq!(texts.misses as usize, cells, "each laid out once");
        let waited: usize = (1..frames).map(|f| cells - f * LAYOUT_MIN).sum();
        assert_eq!(texts.deferred as usize, waited);

        // The column narrows: the 150-point galleys stand in, then each is laid out anew.
        assert_eq!(fill(&mut texts, 120.0, Some(150.0)), frames);
        assert_eq!(texts.misses as usize, 2 * cells);
        // Drawn again at either width, nothing is laid out; the width drawn last is the one
        // that stands in at the next resize.
        frame(&mut texts, 120.0);
        frame(&mut texts, 150.0);
        assert_eq!(texts.misses as usize, 2 * cells);
        let (drawn, _) = frame(&mut texts, 130.0);
        assert!(
            drawn[LAYOUT_MIN..].iter().all(|w| *w == Some(150.0)),
            "{drawn:?}"
        );
        // A galley standing in counts as drawn, so it is kept while it stands in (a
        // resize dragged for long).
        let now = texts.frame;
        let standing_in = texts
            .map
            .values()
            .filter(|e| e.galley.job.wrap.max_width == 150.0 && e.drawn == now)
            .count();
        assert_eq!(standing_in, cells - LAYOUT_MIN);
    }

    /// When egui empties its full glyph atlas, the galleys kept point into the old one:
    /// they are dropped and laid out again.
    #[test]
    fn a_reset_glyph_atlas_drops_the_kept_galleys() {
        let ctx = egui::Context::default();
        let mut cells = CellTexts::default();
        let mut fill = 0.0;
        for frame in 0..6 {
            pass(&ctx, |ui| {
                cells.begin_frame(ui.ctx(), 10);
                if frame == 1 {
                    fill = ui.fonts(|f| f.font_atlas_fill_ratio());
                }
                if frame == 2 {
                    assert_eq!(cells.len(), 0, "dropped after the atlas was emptied");
                    assert_eq!(cells.bytes(), 0);
                }
                cells.galley(ui, "analysed", 0, 100.0, |t| t.into());
                if frame == 1 {
                    // Big glyphs fill the atlas past egui's limit: it is emptied next pass.
                    for size in [200.0, 240.0, 280.0] {
                        ui.label(
                            egui::RichText::new(
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                            )
                            .size(size),
                        );
                    }
                    assert!(
                        ui.fonts(|f| f.font_atlas_fill_ratio()) > 0.8,
                        "the atlas must be nearly full for this test"
                    );
                }
            });
        }
        assert!(fill < 0.8);
        assert_eq!(
            cells.misses, 2,
            "laid out once before the reset and once after"
        );
    }
}
