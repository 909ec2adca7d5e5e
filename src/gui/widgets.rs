//! Drawing helpers: spectrogram images, probability bars, the segment timeline,
//! training curves, the confusion-matrix heatmap and the per-class table.
//! Pure drawing over data the workers produced; every index into report data is
//! checked, so a malformed report draws what it can instead of panicking.

use eframe::egui::{self, Color32, Pos2, Rect, RichText, Sense, Stroke, Vec2};

use super::palette::{genre_colour, text_colours, text_on};
use super::state::{RowAnalysis, Segment};
use crate::dsp::features::MUSICNN_N_MELS;
use crate::train::metrics::{Metrics, Normalise};
use crate::train::trainer::EpochStats;

/// Train curves' colour (Okabe-Ito blue), the same in the app and the exported plots.
pub const TRAIN_COLOUR: Color32 = Color32::from_rgb(0, 114, 178);
/// Validation curves' colour (Okabe-Ito vermillion).
pub const VALIDATION_COLOUR: Color32 = Color32::from_rgb(213, 94, 0);

/// A perceptual-ish dark-to-bright colour map (black, purple, orange, yellow-white).
pub fn colour(v: f32) -> Color32 {
    let v = v.clamp(0.0, 1.0);
    let stops = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.25, [80.0, 18.0, 123.0]),
        (0.5, [182.0, 54.0, 121.0]),
        (0.75, [251.0, 136.0, 97.0]),
        (1.0, [252.0, 253.0, 191.0]),
    ];
    for w in stops.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if v <= b {
            let t = (v - a) / (b - a);
            let c = |i: usize| (ca[i] + t * (cb[i] - ca[i])) as u8;
            return Color32::from_rgb(c(0), c(1), c(2));
        }
    }
    Color32::WHITE
}

/// musicnn log-mel values run from 0 (silence) to about 4.
fn norm(v: f32) -> f32 {
    v / 3.5
}

/// The whole track as an image, at most `max_width` columns (frames averaged).
pub fn spectrogram_image(mel: &[f32], frames: usize, max_width: usize) -> egui::ColorImage {
    let width = frames.clamp(1, max_width);
    let h = MUSICNN_N_MELS;
    let mut pixels = vec![Color32::BLACK; width * h];
    for x in 0..width {
        let (f0, f1) = (
            x * frames / width,
            ((x + 1) * frames / width).max(x * frames / width + 1),
        );
        for m in 0..h {
            let mut s = 0.0;
            let mut n = 0;
            for f in f0..f1.min(frames) {
                s += mel.get(f * h + m).copied().unwrap_or(0.0);
                n += 1;
            }
            // Low frequencies at the bottom.
            pixels[(h - 1 - m) * width + x] = colour(norm(s / n.max(1) as f32));
        }
    }
    egui::ColorImage::new([width, h], pixels)
}

/// The spectrogram around `frame` (`span` frames, playhead in the middle) as an
/// image; the caller uploads it into one texture that is updated in place.
pub fn live_image(mel: &[f32], frames: usize, frame: usize, span: usize) -> egui::ColorImage {
    let h = MUSICNN_N_MELS;
    let mut pixels = vec![Color32::BLACK; span * h];
    let start = frame as i64 - (span / 2) as i64;
    for x in 0..span {
        let f = start + x as i64;
        if f < 0 || f as usize >= frames {
            continue;
        }
        let f = f as usize;
        for m in 0..h {
            pixels[(h - 1 - m) * span + x] =
                colour(norm(mel.get(f * h + m).copied().unwrap_or(0.0)));
        }
    }
    egui::ColorImage::new([span, h], pixels)
}

/// Draw the live spectrogram texture with a playhead line in the middle.
pub fn live_spectrogram(ui: &mut egui::Ui, tex: &egui::TextureHandle, height: f32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.image(
        tex.id(),
        rect,
        Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
        Color32::WHITE,
    );
    playhead(&painter, rect, 0.5);
}

/// A white vertical line with a dark edge at `frac` (0..1) of `rect`'s width.
fn playhead(painter: &egui::Painter, rect: Rect, frac: f32) {
    let x = rect.left() + frac.clamp(0.0, 1.0) * rect.width();
    painter.line_segment(
        [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
        Stroke::new(3.0, Color32::from_black_alpha(160)),
    );
    painter.line_segment(
        [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
        Stroke::new(1.5, Color32::WHITE),
    );
}

/// Where in a track of `total_s` seconds a click or drag on `rect` points.
fn seek_target(resp: &egui::Response, rect: Rect, total_s: f64, drag: bool) -> Option<f64> {
    if !(resp.clicked() || (drag && resp.dragged())) {
        return None;
    }
    let p = resp.interact_pointer_pos()?;
    Some(((p.x - rect.left()) / rect.width()).clamp(0.0, 1.0) as f64 * total_s)
}

/// The overview image with the playhead; returns a seek time when clicked.
pub fn overview(
    ui: &mut egui::Ui,
    tex: &egui::TextureHandle,
    pos_s: f64,
    dur_s: f64,
    height: f32,
) -> Option<f64> {
    let (rect, resp) = ui.allocate_exact_size(
        Vec2::new(ui.available_width(), height),
        Sense::click_and_drag(),
    );
    let painter = ui.painter_at(rect);
    painter.image(
        tex.id(),
        rect,
        Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
        Color32::WHITE,
    );
    if dur_s > 0.0 {
        playhead(&painter, rect, (pos_s / dur_s) as f32);
    }
    seek_target(&resp, rect, dur_s, true)
}

/// The top label of a segment.
fn segment_top<'a>(s: &Segment, labels: &'a [String]) -> Option<(&'a str, f32)> {
    let best = crate::train::metrics::argmax(&s.probs);
    labels
        .get(best)
        .map(|l| (l.as_str(), s.probs.get(best).copied().unwrap_or(0.0)))
}

/// Per-segment genre blocks; hovering a block shows its genres, parts the model did
/// not hear are hatched. Returns a seek time when clicked.
pub fn timeline(
    ui: &mut egui::Ui,
    a: &RowAnalysis,
    labels: &[String],
    pos_s: f64,
    dur_s: f64,
) -> Option<f64> {
    let (rect, resp) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), 26.0), Sense::click());
    let painter = ui.painter_at(rect);
    let total = if dur_s > 0.0 {
        dur_s as f32
    } else {
        a.segments.last().map_or(1.0, |s| s.end_s).max(1.0)
    };
    let x = |t: f32| rect.left() + (t / total).clamp(0.0, 1.0) * rect.width();
    // Unheard background: hatched.
    let visuals = ui.visuals();
    painter.rect_filled(rect, 2.0, visuals.faint_bg_color);
    let hatch = Stroke::new(1.0, text_colours(visuals).bar_outline.gamma_multiply(0.5));
    let mut hx = rect.left() - rect.height();
    while hx < rect.right() {
        painter.line_segment(
            [
                Pos2::new(hx, rect.bottom()),
                Pos2::new(hx + rect.height(), rect.top()),
            ],
            hatch,
        );
        hx += 8.0;
    }
    let mut hovered: Option<&Segment> = None;
    let hover = resp.hover_pos();
    // Neighbouring segments of the same genre merge into one labelled block.
    let mut blocks: Vec<(f32, f32, &str)> = Vec::new();
    for s in a.segments.iter() {
        let Some((label, _)) = segment_top(s, labels) else {
            continue;
        };
        let r = Rect::from_min_max(
            Pos2::new(x(s.start_s), rect.top()),
            Pos2::new(x(s.end_s).max(x(s.start_s) + 1.0), rect.bottom()),
        );
        painter.rect_filled(r, 0.0, genre_colour(label));
        if hover.is_some_and(|p| p.x >= r.left() && p.x < r.right()) {
            hovered = Some(s);
        }
        match blocks.last_mut() {
            Some(b) if b.2 == label && s.start_s - b.1 < 0.5 => b.1 = s.end_s,
            _ => blocks.push((s.start_s, s.end_s, label)),
        }
    }
    for (s0, s1, label) in blocks {
        let (x0, x1) = (x(s0), x(s1));
        let font = egui::FontId::proportional(11.0);
        let g = painter.layout_no_wrap(label.to_string(), font, text_on(genre_colour(label)));
        if x1 - x0 > g.size().x + 6.0 {
            painter.galley(
                Pos2::new(x0 + 3.0, rect.center().y - g.size().y / 2.0),
                g,
                Color32::BLACK,
            );
        }
    }
    playhead(&painter, rect, pos_s as f32 / total);
    let resp = match hovered {
        Some(s) => resp.on_hover_ui_at_pointer(|ui| {
            ui.strong(format!(
                "{} - {}",
                mmss(s.start_s as f64),
                mmss(s.end_s as f64)
            ));
            let mut v: Vec<(&str, f32)> = labels
                .iter()
                .map(String::as_str)
                .zip(s.probs.iter().copied())
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (l, p) in v.into_iter().take(3) {
                ui.label(format!("{l} {:.0}%", p * 100.0));
            }
        }),
        None if hover.is_some() => resp.on_hover_text_at_pointer("not heard by the model (yet)"),
        None => resp,
    };
    seek_target(&resp, rect, total as f64, false)
}

/// A part of a track, `m:ss - m:ss`, rounded to the second.
pub fn span(start_s: f32, end_s: f32) -> String {
    format!(
        "{} - {}",
        mmss((start_s as f64).round()),
        mmss((end_s as f64).round())
    )
}

/// `m:ss`.
pub fn mmss(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// One horizontal bar: a track with a visible outline (readable in both themes), the
/// filled part in `fill`.
pub fn bar(ui: &mut egui::Ui, frac: f32, width: f32, fill: Color32) -> egui::Response {
    let (rect, resp) = ui.allocate_exact_size(Vec2::new(width, 14.0), Sense::hover());
    let t = text_colours(ui.visuals());
    let painter = ui.painter();
    painter.rect_filled(rect, 3.0, t.bar_track);
    let mut f = rect;
    f.set_width(rect.width() * frac.clamp(0.0, 1.0));
    painter.rect_filled(f, 3.0, fill);
    painter.rect_stroke(
        rect,
        3.0,
        Stroke::new(1.0, t.bar_outline),
        egui::StrokeKind::Inside,
    );
    resp
}

/// Horizontal probability bars in the given order.
pub fn prob_bars(ui: &mut egui::Ui, items: &[(&str, f32)]) {
    let avail = ui.available_width();
    let label_w = (avail * 0.32).clamp(70.0, 140.0);
    let w = (avail - label_w - 60.0).clamp(40.0, 240.0);
    for (label, p) in items {
        ui.horizontal(|ui| {
            // Right-aligned next to its bar.
            ui.allocate_ui_with_layout(
                Vec2::new(label_w, 16.0),
                egui::Layout::right_to_left(egui::Align::Center),
                |ui| {
                    ui.add(egui::Label::new(*label).truncate())
                        .on_hover_text(*label);
                },
            );
            bar(ui, *p, w, genre_colour(label));
            ui.label(RichText::new(format!("{:>3.0}%", p * 100.0)).monospace());
        });
    }
}

/// Calibration of a run's model: ECE before and after, the temperature, the decision
/// threshold with its precision and coverage, and the reliability diagram (accuracy
/// against confidence per bin; the diagonal is perfect calibration).
pub fn calibration(ui: &mut egui::Ui, c: &crate::model::calibration::CalibrationSummary) {
    use egui_plot::{Legend, Line, Plot, PlotPoints, Points};
    ui.label(egui::RichText::new("Calibration and decisions").strong());
    ui.label(format!(
        "expected calibration error {:.3} before, {:.3} after (temperature {:.2}); over {} \
         tracks ({})",
        c.ece_before, c.ece_after, c.temperature, c.tracks, c.source
    ));
    let precision = c
        .precision
        .map_or_else(|| "-".to_string(), |p| format!("{:.1} %", p * 100.0));
    ui.label(format!(
        "answers when the top genre is at least {:.0} % sure: right {precision} of the time, \
         on {:.0} % of tracks (the rest: unsure); aim {:.0} %",
        c.threshold * 100.0,
        c.coverage * 100.0,
        c.target_precision * 100.0
    ));
    let bins: Vec<[f64; 2]> = c
        .bins
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| [b.confidence as f64, b.accuracy as f64])
        .collect();
    let diagonal = ui.visuals().weak_text_color();
    Plot::new("reliability")
        .height(200.0)
        .width(ui.available_width().min(420.0))
        .legend(Legend::default().position(egui_plot::Corner::LeftTop))
        .x_axis_label("confidence (calibrated top probability)")
        .y_axis_label("accuracy")
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .data_aspect(1.0)
        .allow_scroll(false)
        .show(ui, |p| {
            p.line(
                Line::new("perfect", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]))
                    .color(diagonal),
            );
            p.line(Line::new("model", PlotPoints::from(bins.clone())).color(VALIDATION_COLOUR));
            p.points(
                Points::new("model", PlotPoints::from(bins))
                    .radius(3.0)
                    .color(VALIDATION_COLOUR),
            );
        });
}

/// Loss and accuracy curves, train and validation, with labelled axes.
pub fn curves(ui: &mut egui::Ui, h: &[EpochStats]) {
    use egui_plot::{Legend, Line, Plot, PlotPoints};
    if h.is_empty() {
        ui.label("Curves appear here after the first epoch.");
        return;
    }
    let pts = |f: &dyn Fn(&EpochStats) -> Option<f64>| -> PlotPoints {
        h.iter()
            .filter_map(|e| f(e).map(|v| [e.epoch as f64, v]))
            .filter(|p| p[1].is_finite())
            .collect()
    };
    let height = 210.0;
    ui.columns(2, |cols| {
        Plot::new("loss")
            .height(height)
            .legend(Legend::default())
            .x_axis_label("epoch")
            .y_axis_label("loss (cross-entropy)")
            .include_y(0.0)
            .allow_scroll(false)
            .show(&mut cols[0], |p| {
                p.line(Line::new("train", pts(&|e| Some(e.train_loss))).color(TRAIN_COLOUR));
                p.line(Line::new("validation", pts(&|e| e.val_loss)).color(VALIDATION_COLOUR));
            });
        Plot::new("accuracy")
            .height(height)
            // Accuracy climbs towards the top right: the legend goes below it.
            .legend(Legend::default().position(egui_plot::Corner::RightBottom))
            .x_axis_label("epoch")
            .y_axis_label("accuracy")
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(&mut cols[1], |p| {
                p.line(Line::new("train", pts(&|e| Some(e.train_acc))).color(TRAIN_COLOUR));
                p.line(Line::new("validation", pts(&|e| e.val_acc)).color(VALIDATION_COLOUR));
            });
    });
}

/// The normalisation's name in plain words.
pub fn normalise_name(n: Normalise) -> &'static str {
    match n {
        Normalise::Counts => "counts (tracks)",
        Normalise::True => "by true genre (recall)",
        Normalise::Pred => "by prediction (precision)",
        Normalise::All => "share of all tracks",
    }
}

/// A confusion-matrix value formatted for its normalisation.
pub fn format_cell(v: f64, how: Normalise) -> String {
    match how {
        Normalise::Counts => format!("{v:.0}"),
        Normalise::True | Normalise::Pred => format!("{:.0}%", v * 100.0),
        Normalise::All => format!("{:.1}%", v * 100.0),
    }
}

/// The cell at (`i`, `j`), 0 when absent.
fn at(m: &[Vec<f64>], i: usize, j: usize) -> f64 {
    m.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0)
}

/// Confusion-matrix heatmap coloured by the chosen normalisation, with full row and
/// (rotated) column labels and a colour bar; hovering a cell explains it next to the
/// pointer.
pub fn confusion(ui: &mut egui::Ui, labels: &[String], m: &Metrics, how: Normalise) {
    let k = labels.len().min(m.confusion.len());
    if k == 0 {
        ui.label("(no confusion matrix in this report)");
        return;
    }
    let font = egui::FontId::proportional(12.0);
    let text_colour = ui.visuals().text_color();
    let label_w = labels
        .iter()
        .map(|l| {
            ui.painter()
                .layout_no_wrap(l.clone(), font.clone(), text_colour)
                .size()
                .x
        })
        .fold(0.0f32, f32::max)
        + 10.0;
    let bar_w = 70.0;
    let cell = ((ui.available_width() - label_w - bar_w - 20.0) / k as f32).clamp(22.0, 48.0);
    let top = 4.0;
    ui.label(
        RichText::new(format!(
            "rows: true genre, columns: predicted genre; {}",
            normalise_name(how)
        ))
        .small(),
    );
    let size = Vec2::new(
        label_w + cell * k as f32 + bar_w,
        top + cell * k as f32 + label_w + 24.0,
    );
    let (rect, resp) = ui.allocate_exact_size(size, Sense::hover());
    let painter = ui.painter_at(rect);
    let origin = rect.min + Vec2::new(label_w, top);
    let values = m.normalised(how);
    let by_true = m.normalised(Normalise::True);
    let vmax = match how {
        Normalise::Counts => values.iter().flatten().copied().fold(1.0f64, f64::max),
        Normalise::All => values.iter().flatten().copied().fold(1e-9f64, f64::max),
        _ => 1.0,
    };
    let mut hovered = None;
    for i in 0..k {
        for j in 0..k {
            let r = Rect::from_min_size(
                origin + Vec2::new(j as f32 * cell, i as f32 * cell),
                Vec2::splat(cell - 1.0),
            );
            let s = (at(&values, i, j) / vmax).clamp(0.0, 1.0) as f32;
            let fill = colour(0.08 + 0.9 * s);
            painter.rect_filled(r, 2.0, fill);
            painter.text(
                r.center(),
                egui::Align2::CENTER_CENTER,
                format_cell(at(&values, i, j), how),
                egui::FontId::proportional((cell * 0.3).clamp(8.0, 12.0)),
                text_on(fill),
            );
            if resp.hover_pos().is_some_and(|p| r.contains(p)) {
                hovered = Some((i, j));
            }
        }
        let name = labels.get(i).map_or("?", String::as_str);
        painter.text(
            origin + Vec2::new(-6.0, i as f32 * cell + cell / 2.0),
            egui::Align2::RIGHT_CENTER,
            name,
            font.clone(),
            text_colour,
        );
        // Column labels in full, rotated a quarter turn.
        let g = painter.layout_no_wrap(name.to_string(), font.clone(), text_colour);
        let w = g.size().x;
        let pos = origin
            + Vec2::new(
                i as f32 * cell + cell / 2.0 - g.size().y / 2.0,
                k as f32 * cell + 6.0 + w,
            );
        painter.add(
            egui::epaint::TextShape::new(pos, g, text_colour)
                .with_angle(-std::f32::consts::FRAC_PI_2),
        );
    }
    // Colour bar.
    let bx = origin.x + k as f32 * cell + 14.0;
    let bh = cell * k as f32;
    let steps = 48;
    for s in 0..steps {
        let v = 1.0 - s as f32 / steps as f32;
        let r = Rect::from_min_size(
            Pos2::new(bx, origin.y + s as f32 * bh / steps as f32),
            Vec2::new(12.0, bh / steps as f32 + 0.5),
        );
        painter.rect_filled(r, 0.0, colour(0.08 + 0.9 * v));
    }
    for (frac, v) in [(0.0, vmax), (0.5, vmax / 2.0), (1.0, 0.0)] {
        painter.text(
            Pos2::new(bx + 16.0, origin.y + frac * bh),
            egui::Align2::LEFT_CENTER,
            format_cell(v, how),
            egui::FontId::proportional(11.0),
            text_colour,
        );
    }
    if let Some((i, j)) = hovered {
        let n = m
            .confusion
            .get(i)
            .and_then(|r| r.get(j))
            .copied()
            .unwrap_or(0);
        let row: usize = m.confusion.get(i).map_or(0, |r| r.iter().sum());
        let (li, lj) = (
            labels.get(i).map_or("?", String::as_str),
            labels.get(j).map_or("?", String::as_str),
        );
        resp.on_hover_text_at_pointer(format!(
            "true {li}, predicted {lj}: {n} of {row} {li} tracks ({:.0}%)",
            at(&by_true, i, j) * 100.0
        ));
    }
}

/// Per-class precision / recall / F1.
pub fn per_class_table(ui: &mut egui::Ui, m: &Metrics) {
    egui::Grid::new("per-class").striped(true).show(ui, |ui| {
        for h in ["genre", "precision", "recall", "F1", "support"] {
            ui.strong(h);
        }
        ui.end_row();
        for c in &m.per_class {
            ui.label(&c.label);
            ui.label(format!("{:.3}", c.precision));
            ui.label(format!("{:.3}", c.recall));
            ui.label(format!("{:.3}", c.f1));
            ui.label(c.support.to_string());
            ui.end_row();
        }
        ui.strong("macro");
        ui.label(format!("{:.3}", m.macro_precision));
        ui.label(format!("{:.3}", m.macro_recall));
        ui.label(format!("{:.3}", m.macro_f1));
        ui.label(m.n.to_string());
        ui.end_row();
    });
}

/// A p-value for people: scientific notation when small.
pub fn format_p(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        format!("{p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_p(0.2), "0.200");
        assert_eq!(format_p(1.2e-7), "1.20e-7");
        assert_eq!(format_cell(0.834, Normalise::True), "83%");
        assert_eq!(format_cell(12.0, Normalise::Counts), "12");
        assert_eq!(format_cell(0.0312, Normalise::All), "3.1%");
        assert_eq!(mmss(125.4), "2:05");
    }
}
