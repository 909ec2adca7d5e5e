//! Report figures fit for a paper, rendered without a display: the confusion matrix
//! (coloured and labelled in the chosen normalisation, with a colour bar, every tick
//! label in full, values formatted to the normalisation) and the training curves
//! (labelled axes, gridlines, the app's train / validation colours), each as PNG and
//! SVG; and [`export`], which writes them with the CSV tables into an export folder,
//! never over the run's own files.
//!
//! PNG text is laid out here with ab_glyph ([`Kerned`]): advance widths, kerning, and
//! each glyph's left side bearing. plotters' own ab_glyph text drawing ignores the
//! bearing, which glued "cl" into a "d" ("dassical"). SVG text is left to the viewer.

use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind, FontTransform,
};

use super::metrics::{Metrics, Normalise};
use super::report::{Report, confusion_csv, history_csv, per_class_csv};
use super::trainer::EpochStats;

/// Train curves: Okabe-Ito blue (the app uses the same).
pub const TRAIN_RGB: RGBColor = RGBColor(0, 114, 178);
/// Validation curves: Okabe-Ito vermillion (the app uses the same).
pub const VALIDATION_RGB: RGBColor = RGBColor(213, 94, 0);

/// PNG figures are drawn at this many pixels per point (sharp in print).
const PNG_SCALE: f64 = 2.0;

/// Image formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Raster, drawn at twice the nominal size.
    Png,
    /// Vector.
    Svg,
}

impl Format {
    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// Why a figure or an export failed.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Drawing failed.
    #[error("cannot draw the figure ({reason}): {}", path.display())]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file could not be written.
    #[error("cannot write ({source}): {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The export folder is the run's own folder.
    #[error("export into a folder of its own, not the run's folder (its files would be overwritten): {}", dir.display())]
    RunFolder {
        /// The folder asked for.
        dir: PathBuf,
    },
}

fn font() -> FontRef<'static> {
    // The font is compiled in (egui's); parsing these known-good bytes cannot fail.
    #[expect(clippy::expect_used, reason = "the compiled-in font is valid")]
    FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT).expect("egui's font parses")
}

fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // For the SVG backend's layout estimates; the bytes are valid (see `font`).
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// A drawing backend whose text is laid out with kerning and side bearings (see the
/// module doc); everything else goes to `B`.
pub struct Kerned<B> {
    inner: B,
    font: FontRef<'static>,
}

impl<B> Kerned<B> {
    /// Wrap `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            font: font(),
        }
    }

    /// Width and height (ascent + descent) of `text` at `size` pixels.
    fn measure(&self, text: &str, size: f32) -> (f32, f32) {
        let f = self.font.as_scaled(size);
        let mut w = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let g = f.glyph_id(c);
            if let Some(p) = prev {
                w += f.kern(p, g);
            }
            w += f.h_advance(g);
            prev = Some(g);
        }
        (w, f.ascent() - f.descent())
    }
}

impl<B: DrawingBackend> DrawingBackend for Kerned<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = self.measure(text, style.size() as f32);
        Ok((w.ceil() as u32, h.ceil() as u32))
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let size = style.size() as f32;
        let (w, h) = self.measure(text, size);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Right => -w,
            HPos::Center => -w / 2.0,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -h / 2.0,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let f = self.font.as_scaled(size);
        let ascent = f.ascent();
        let (width, height) = self.inner.get_size();
        let mut pen = 0.0f32;
        let mut prev = None;
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        for c in text.chars() {
            let id = f.glyph_id(c);
            if let Some(p) = prev {
                pen += f.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(size, ab_glyph::point(pen, ascent));
            pen += f.h_advance(id);
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue;
            };
            // px_bounds includes the side bearing: the glyph lands where the pen put it.
            let b = outline.px_bounds();
            outline.draw(|x, y, cov| {
                if cov > 0.0 {
                    pixels.push((
                        (b.min.x + x as f32 + dx).round() as i32,
                        (b.min.y + y as f32 + dy).round() as i32,
                        cov,
                    ));
                }
            });
        }
        for (x, y, cov) in pixels {
            let (x, y) = match trans {
                FontTransform::None => (x, y),
                FontTransform::Rotate90 => (-y, x),
                FontTransform::Rotate180 => (-x, -y),
                FontTransform::Rotate270 => (y, -x),
            };
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
                self.inner.draw_pixel(
                    (x, y),
                    BackendColor {
                        alpha: color.alpha * cov.min(1.0) as f64,
                        rgb: color.rgb,
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// A sequential colour map for print (ColorBrewer "Blues", light to dark).
pub fn blues(v: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (247, 251, 255),
        (222, 235, 247),
        (198, 219, 239),
        (158, 202, 225),
        (107, 174, 214),
        (66, 146, 198),
        (33, 113, 181),
        (8, 81, 156),
        (8, 48, 107),
    ];
    let t = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: u8, y: u8| (x as f64 + f * (y as f64 - x as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A confusion-matrix value formatted for its normalisation.
pub fn format_value(v: f64, how: Normalise) -> String {
    match how {
        Normalise::Counts => format!("{v:.0}"),
        Normalise::True | Normalise::Pred => format!("{:.0}%", v * 100.0),
        Normalise::All => format!("{:.1}%", v * 100.0),
    }
}

/// What the colours mean, for the colour bar's title.
pub fn normalise_title(how: Normalise) -> &'static str {
    match how {
        Normalise::Counts => "tracks",
        Normalise::True => "share of the true genre (recall)",
        Normalise::Pred => "share of the prediction (precision)",
        Normalise::All => "share of all test tracks",
    }
}

fn draw_err(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |reason| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    }
}

/// The confusion matrix of `m` normalised as `how`, to `path`.
pub fn confusion_figure(
    labels: &[String],
    m: &Metrics,
    how: Normalise,
    title: &str,
    path: &Path,
    format: Format,
) -> Result<(), PlotError> {
    register_fonts();
    let k = labels.len().min(m.confusion.len()).max(1);
    // Layout in points; PNGs are drawn at PNG_SCALE pixels per point.
    let f = font();
    let text_w = |t: &str, size: f32| {
        let s = f.as_scaled(size);
        t.chars().map(|c| s.h_advance(s.glyph_id(c))).sum::<f32>() as f64
    };
    let label_w = labels.iter().map(|l| text_w(l, 13.0)).fold(40.0, f64::max) + 12.0;
    let cell = (520.0 / k as f64).clamp(30.0, 56.0);
    let (left, top) = (label_w + 34.0, 54.0);
    let grid = cell * k as f64;
    let width = (left + grid + 110.0).max(text_w(title, 17.0) + 30.0);
    let height = top + grid + label_w + 46.0;
    let s = if format == Format::Png {
        PNG_SCALE
    } else {
        1.0
    };
    let size = ((width * s).ceil() as u32, (height * s).ceil() as u32);
    let layout = (left, top, cell, label_w);
    match format {
        Format::Png => {
            let root = Kerned::new(BitMapBackend::new(path, size)).into_drawing_area();
            draw_confusion(&root, labels, m, how, title, k, s, layout)
                .and_then(|_| root.present())
                .map_err(|e| e.to_string())
        }
        Format::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_confusion(&root, labels, m, how, title, k, s, layout)
                .and_then(|_| root.present())
                .map_err(|e| e.to_string())
        }
    }
    .map_err(draw_err(path))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one figure's layout, drawn on either backend"
)]
fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    labels: &[String],
    m: &Metrics,
    how: Normalise,
    title: &str,
    k: usize,
    s: f64,
    (left, top, cell, label_w): (f64, f64, f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let px = |v: f64| (v * s).round() as i32;
    let font = |size: f64| ("sans-serif", size * s).into_font();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        title.to_string(),
        (px(12.0), px(10.0)),
        font(17.0),
    ))?;
    let values = m.normalised(how);
    let at = |i: usize, j: usize| values.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0);
    let vmax = match how {
        Normalise::Counts | Normalise::All => {
            values.iter().flatten().copied().fold(1e-12, f64::max)
        }
        _ => 1.0,
    };
    let grey = RGBColor(200, 200, 200);
    for i in 0..k {
        for j in 0..k {
            let (x0, y0) = (left + j as f64 * cell, top + i as f64 * cell);
            let v = at(i, j);
            let fill = blues(v / vmax);
            root.draw(&Rectangle::new(
                [(px(x0), px(y0)), (px(x0 + cell), px(y0 + cell))],
                fill.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(px(x0), px(y0)), (px(x0 + cell), px(y0 + cell))],
                grey,
            ))?;
            // Dark text on light cells, white on dark ones.
            let light =
                (fill.0 as f64 * 0.299 + fill.1 as f64 * 0.587 + fill.2 as f64 * 0.114) > 140.0;
            let colour = if light { BLACK } else { WHITE };
            root.draw(&Text::new(
                format_value(v, how),
                (px(x0 + cell / 2.0), px(y0 + cell / 2.0)),
                font((cell * 0.28).clamp(10.0, 14.0))
                    .color(&colour)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
        let name = labels.get(i).cloned().unwrap_or_default();
        // Row label, right-aligned to the matrix.
        root.draw(&Text::new(
            name.clone(),
            (px(left - 6.0), px(top + i as f64 * cell + cell / 2.0)),
            TextStyle::from(font(13.0)).pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        // Column label, in full, reading upwards from under the matrix.
        root.draw(&Text::new(
            name,
            (
                px(left + i as f64 * cell + cell / 2.0),
                px(top + k as f64 * cell + 6.0),
            ),
            TextStyle::from(font(13.0).transform(FontTransform::Rotate270))
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    let grid = cell * k as f64;
    // Axis titles.
    root.draw(&Text::new(
        "predicted genre".to_string(),
        (px(left + grid / 2.0), px(top + grid + label_w + 16.0)),
        TextStyle::from(font(14.0)).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    root.draw(&Text::new(
        "true genre".to_string(),
        (px(12.0), px(top + grid / 2.0)),
        TextStyle::from(font(14.0).transform(FontTransform::Rotate270))
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    // Colour bar with ticks.
    let bx = left + grid + 18.0;
    let steps = 64;
    for st in 0..steps {
        let v = 1.0 - st as f64 / steps as f64;
        let y0 = top + st as f64 * grid / steps as f64;
        root.draw(&Rectangle::new(
            [
                (px(bx), px(y0)),
                (px(bx + 14.0), px(y0 + grid / steps as f64) + 1),
            ],
            blues(v).filled(),
        ))?;
    }
    root.draw(&Rectangle::new(
        [(px(bx), px(top)), (px(bx + 14.0), px(top + grid))],
        grey,
    ))?;
    // Ticks: whole numbers for counts (no "0, 0, 1, 2, 2"), quarters otherwise.
    let ticks: Vec<f64> = match how {
        Normalise::Counts => {
            let step = (vmax / 4.0).ceil().max(1.0);
            (0..)
                .map(|i| i as f64 * step)
                .take_while(|v| *v <= vmax + 1e-9)
                .map(|v| v / vmax)
                .collect()
        }
        _ => (0..=4).map(|t| t as f64 / 4.0).collect(),
    };
    for frac in ticks {
        let y = top + grid * (1.0 - frac);
        root.draw(&PathElement::new(
            vec![(px(bx + 14.0), px(y)), (px(bx + 18.0), px(y))],
            BLACK,
        ))?;
        root.draw(&Text::new(
            format_value(vmax * frac, how),
            (px(bx + 21.0), px(y)),
            TextStyle::from(font(11.0)).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    root.draw(&Text::new(
        normalise_title(how).to_string(),
        (px(bx + 62.0), px(top + grid / 2.0)),
        TextStyle::from(font(12.0).transform(FontTransform::Rotate90))
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(())
}

/// Loss and accuracy curves, train and validation, side by side, to `path`.
pub fn curves_figure(
    h: &[EpochStats],
    title: &str,
    path: &Path,
    format: Format,
) -> Result<(), PlotError> {
    register_fonts();
    let s = if format == Format::Png {
        PNG_SCALE
    } else {
        1.0
    };
    let size = ((1100.0 * s) as u32, (440.0 * s) as u32);
    match format {
        Format::Png => {
            let root = Kerned::new(BitMapBackend::new(path, size)).into_drawing_area();
            draw_curves(&root, h, title, s)
                .and_then(|_| root.present())
                .map_err(|e| e.to_string())
        }
        Format::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_curves(&root, h, title, s)
                .and_then(|_| root.present())
                .map_err(|e| e.to_string())
        }
    }
    .map_err(draw_err(path))
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    h: &[EpochStats],
    title: &str,
    s: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = |size: f64| ("sans-serif", size * s).into_font();
    let px = |v: f64| (v * s).round() as u32;
    root.fill(&WHITE)?;
    let root = root.titled(title, font(17.0))?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let last = h.iter().map(|e| e.epoch).max().unwrap_or(1).max(2) as f64;
    let loss_max = h
        .iter()
        .flat_map(|e| [Some(e.train_loss), e.val_loss])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.1f64, f64::max);
    let series = |f: &dyn Fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> {
        h.iter()
            .filter_map(|e| f(e).filter(|v| v.is_finite()).map(|v| (e.epoch as f64, v)))
            .collect()
    };
    for (area, name, ymax, tr, va) in [
        (
            &left,
            "loss (cross-entropy)",
            loss_max * 1.05,
            series(&|e| Some(e.train_loss)),
            series(&|e| e.val_loss),
        ),
        (
            &right,
            "accuracy",
            1.0,
            series(&|e| Some(e.train_acc)),
            series(&|e| e.val_acc),
        ),
    ] {
        let mut chart = ChartBuilder::on(area)
            .margin(px(14.0))
            .x_label_area_size(px(44.0))
            .y_label_area_size(px(58.0))
            .build_cartesian_2d(1f64..last, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(name)
            .x_labels(10.min(last as usize))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .axis_desc_style(font(14.0))
            .label_style(font(12.0))
            .bold_line_style(RGBColor(215, 215, 215).stroke_width(1))
            .light_line_style(RGBColor(238, 238, 238).stroke_width(1))
            .draw()?;
        let w = (2.0 * s) as u32;
        chart
            .draw_series(LineSeries::new(tr.clone(), TRAIN_RGB.stroke_width(w)))?
            .label("train")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], TRAIN_RGB.stroke_width(w))
            });
        if tr.len() <= 40 {
            chart.draw_series(
                tr.iter()
                    .map(|&p| Circle::new(p, w + 1, TRAIN_RGB.filled())),
            )?;
        }
        if !va.is_empty() {
            chart
                .draw_series(LineSeries::new(va.clone(), VALIDATION_RGB.stroke_width(w)))?
                .label("validation")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], VALIDATION_RGB.stroke_width(w))
                });
            if va.len() <= 40 {
                chart.draw_series(
                    va.iter()
                        .map(|&p| Circle::new(p, w + 1, VALIDATION_RGB.filled())),
                )?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font(font(12.0))
            .draw()?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), PlotError> {
    std::fs::write(path, text).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `report`'s figures (confusion matrix normalised as `how`, curves) as PNG and
/// SVG, and its tables as CSV, into `dir`. `dir` may not be the run folder `run_dir`
/// itself (its own report files would be overwritten). Returns the files written.
pub fn export(
    report: &Report,
    run_dir: &Path,
    dir: &Path,
    how: Normalise,
) -> Result<Vec<PathBuf>, PlotError> {
    let same = match (dir.canonicalize(), run_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => dir == run_dir,
    };
    if same || dir.as_os_str().is_empty() {
        return Err(PlotError::RunFolder {
            dir: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let norm = match how {
        Normalise::Counts => "counts",
        Normalise::True => "by_true",
        Normalise::Pred => "by_pred",
        Normalise::All => "overall",
    };
    let title = format!("{} - {}", report.model, report.split);
    let mut out = Vec::new();
    for format in [Format::Png, Format::Svg] {
        let p = dir.join(format!("confusion_{norm}.{}", format.ext()));
        confusion_figure(&report.labels, &report.track, how, &title, &p, format)?;
        out.push(p);
        if !report.history.is_empty() {
            let p = dir.join(format!("curves.{}", format.ext()));
            curves_figure(&report.history, &report.model, &p, format)?;
            out.push(p);
        }
    }
    for (name, text) in [
        (
            format!("confusion_{norm}.csv"),
            confusion_csv(&report.labels, &report.track, how),
        ),
        ("per_class.csv".to_string(), per_class_csv(&report.track)),
        ("history.csv".to_string(), history_csv(&report.history)),
    ] {
        let p = dir.join(name);
        write(&p, &text)?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_text_keeps_letters_apart() {
        // "cl" drawn by the kerned backend leaves a gap between the c and the l; the
        // old renderer pulled the l onto the c ("dassical").
        let (w, h) = (200u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root =
                Kerned::new(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
            root.draw(&Text::new(
                "cl".to_string(),
                (10, 5),
                ("sans-serif", 40.0).into_font(),
            ))
            .expect("text");
            root.present().expect("present");
        }
        let ink: Vec<bool> = (0..w)
            .map(|x| (0..h).any(|y| buf[((y * w + x) * 3) as usize] < 128))
            .collect();
        let starts = ink.windows(2).filter(|p| !p[0] && p[1]).count();
        assert_eq!(starts, 2, "c and l must be two separate shapes: {ink:?}");
    }

    #[test]
    fn figures_and_export_never_touch_the_run_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let labels: Vec<String> = ["classical", "hiphop", "reggae"].map(String::from).to_vec();
        let probs = vec![
            vec![0.8, 0.1, 0.1],
            vec![0.2, 0.7, 0.1],
            vec![0.1, 0.3, 0.6],
            vec![0.6, 0.3, 0.1],
        ];
        let m = Metrics::compute(&labels, &probs, &[0, 1, 2, 2]);
        for f in [Format::Png, Format::Svg] {
            let p = dir.path().join(format!("c.{}", f.ext()));
            confusion_figure(&labels, &m, Normalise::True, "t", &p, f).expect("figure");
            assert!(std::fs::metadata(&p).expect("written").len() > 1000);
        }
        let svg = std::fs::read_to_string(dir.path().join("c.svg")).expect("svg");
        // Full labels and values in the chosen normalisation.
        assert!(svg.contains("classical") && svg.contains("hiphop") && svg.contains("reggae"));
        assert!(svg.contains("50%"), "by-true values as percentages");
        let h: Vec<EpochStats> = (1..=3)
            .map(|e| EpochStats {
                epoch: e,
                train_loss: 1.0 / e as f64,
                train_acc: 0.5,
                val_loss: Some(1.2 / e as f64),
                val_acc: Some(0.4),
                lr: 1e-3,
                secs: 1.0,
            })
            .collect();
        let p = dir.path().join("curves.svg");
        curves_figure(&h, "t", &p, Format::Svg).expect("curves");
        let svg = std::fs::read_to_string(&p).expect("svg");
        assert!(svg.contains("epoch") && svg.contains("accuracy") && svg.contains("validation"));
    }
}
