//! Drawing helpers: spectrogram images, probability bars, the segment timeline,
//! training curves, the confusion-matrix heatmap and the per-class table.
//! Pure drawing over data the workers produced.

use eframe::egui::{self, Color32, Pos2, Rect, RichText, Sense, Stroke, Vec2};

use crate::analysis::StoredAnalysis;
use crate::dsp::features::MUSICNN_N_MELS;
use crate::train::metrics::{Metrics, Normalise};
use crate::train::trainer::EpochStats;

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
                s += mel[f * h + m];
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
            pixels[(h - 1 - m) * span + x] = colour(norm(mel[f * h + m]));
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

/// A white vertical line at `frac` (0..1) of `rect`'s width.
fn playhead(painter: &egui::Painter, rect: Rect, frac: f32) {
    let x = rect.left() + frac * rect.width();
    painter.line_segment(
        [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
        Stroke::new(2.0, Color32::WHITE),
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

/// A stable colour per genre label.
pub fn genre_colour(label: &str) -> Color32 {
    let h = label
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    egui::ecolor::Hsva::new((h % 360) as f32 / 360.0, 0.55, 0.8, 1.0).into()
}

/// Per-segment genre blocks under the spectrogram; returns a seek time when clicked.
pub fn timeline(
    ui: &mut egui::Ui,
    a: &StoredAnalysis,
    labels: &[String],
    pos_s: f64,
    dur_s: f64,
) -> Option<f64> {
    let (rect, resp) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), 22.0), Sense::click());
    let painter = ui.painter_at(rect);
    let total = if dur_s > 0.0 {
        dur_s as f32
    } else {
        a.segments.last().map_or(1.0, |s| s.end_s)
    };
    for s in &a.segments {
        let best = crate::train::metrics::argmax(&s.genre_probs);
        let Some(label) = labels.get(best) else {
            continue;
        };
        let x0 = rect.left() + s.start_s / total * rect.width();
        let x1 = rect.left() + s.end_s.min(total) / total * rect.width();
        let r = Rect::from_min_max(Pos2::new(x0, rect.top()), Pos2::new(x1, rect.bottom()));
        painter.rect_filled(r, 0.0, genre_colour(label));
        if r.width() > 40.0 {
            painter.text(
                r.left_center() + Vec2::new(3.0, 0.0),
                egui::Align2::LEFT_CENTER,
                label,
                egui::FontId::proportional(11.0),
                Color32::BLACK,
            );
        }
    }
    playhead(&painter, rect, pos_s as f32 / total);
    seek_target(&resp, rect, total as f64, false)
}

/// Horizontal probability bars, most likely first.
pub fn prob_bars(ui: &mut egui::Ui, items: &[(String, f32)]) {
    for (label, p) in items {
        ui.horizontal(|ui| {
            ui.add_sized([90.0, 16.0], egui::Label::new(label.as_str()).truncate());
            ui.add(
                egui::ProgressBar::new(*p)
                    .desired_width((ui.available_width() - 50.0).clamp(60.0, 200.0))
                    .fill(genre_colour(label)),
            );
            ui.label(RichText::new(format!("{:.0}%", p * 100.0)).monospace());
        });
    }
}

/// Loss and accuracy curves, train and validation.
pub fn curves(ui: &mut egui::Ui, h: &[EpochStats]) {
    use egui_plot::{Legend, Line, Plot, PlotPoints};
    if h.is_empty() {
        ui.label("Curves appear here after the first epoch.");
        return;
    }
    let pts = |f: &dyn Fn(&EpochStats) -> Option<f64>| -> PlotPoints {
        h.iter()
            .filter_map(|e| f(e).map(|v| [e.epoch as f64, v]))
            .collect()
    };
    ui.columns(2, |cols| {
        Plot::new("loss")
            .height(200.0)
            .legend(Legend::default())
            .x_axis_label("epoch")
            .show(&mut cols[0], |p| {
                p.line(Line::new("train loss", pts(&|e| Some(e.train_loss))));
                p.line(Line::new("validation loss", pts(&|e| e.val_loss)));
            });
        Plot::new("accuracy")
            .height(200.0)
            .legend(Legend::default())
            .x_axis_label("epoch")
            .include_y(0.0)
            .include_y(1.0)
            .show(&mut cols[1], |p| {
                p.line(Line::new("train accuracy", pts(&|e| Some(e.train_acc))));
                p.line(Line::new("validation accuracy", pts(&|e| e.val_acc)));
            });
    });
}

/// Confusion-matrix heatmap with labels; hovering a cell shows its count and shares.
pub fn confusion(ui: &mut egui::Ui, labels: &[String], m: &Metrics, how: Normalise) {
    let k = labels.len().max(1);
    let cell = ((ui.available_width() - 100.0) / k as f32).clamp(18.0, 46.0);
    let size = Vec2::new(100.0 + cell * k as f32, 24.0 + cell * k as f32 + 70.0);
    let (rect, resp) = ui.allocate_exact_size(size, Sense::hover());
    let painter = ui.painter_at(rect);
    let origin = rect.min + Vec2::new(100.0, 24.0);
    let values = m.normalised(how);
    let by_true = m.normalised(Normalise::True);
    let text_colour = ui.visuals().text_color();
    painter.text(
        rect.min + Vec2::new(100.0, 4.0),
        egui::Align2::LEFT_TOP,
        "predicted ->",
        egui::FontId::proportional(12.0),
        text_colour,
    );
    let mut hovered = None;
    for i in 0..k {
        for j in 0..k {
            let r = Rect::from_min_size(
                origin + Vec2::new(j as f32 * cell, i as f32 * cell),
                Vec2::splat(cell - 1.0),
            );
            let s = by_true[i][j].clamp(0.0, 1.0) as f32;
            painter.rect_filled(r, 2.0, colour(0.1 + 0.85 * s));
            let v = values[i][j];
            let t = if how == Normalise::Counts {
                format!("{v}")
            } else {
                format!("{v:.2}")
            };
            painter.text(
                r.center(),
                egui::Align2::CENTER_CENTER,
                t,
                egui::FontId::proportional((cell * 0.33).clamp(8.0, 13.0)),
                if s > 0.55 {
                    Color32::BLACK
                } else {
                    Color32::WHITE
                },
            );
            if resp.hover_pos().is_some_and(|p| r.contains(p)) {
                hovered = Some((i, j));
            }
        }
        painter.text(
            origin + Vec2::new(-6.0, i as f32 * cell + cell / 2.0),
            egui::Align2::RIGHT_CENTER,
            &labels[i],
            egui::FontId::proportional(12.0),
            text_colour,
        );
        painter.text(
            origin + Vec2::new(i as f32 * cell + cell / 2.0, k as f32 * cell + 4.0),
            egui::Align2::CENTER_TOP,
            labels[i].chars().take(5).collect::<String>(),
            egui::FontId::proportional(11.0),
            text_colour,
        );
    }
    if let Some((i, j)) = hovered {
        let n = m.confusion[i][j];
        let row: usize = m.confusion[i].iter().sum();
        resp.on_hover_text(format!(
            "true {} -> predicted {}: {n} of {row} ({:.0}% of the true class)",
            labels[i],
            labels[j],
            by_true[i][j] * 100.0
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
