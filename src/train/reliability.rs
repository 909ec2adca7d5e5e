//! The reliability diagram of a report: how often the top genre is right against how
//! sure the model said it was, bin by bin, with the decision threshold marked.

use std::path::Path;

use plotters::prelude::*;

use crate::model::calibration::CalibrationSummary;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Draw `c`'s reliability bins (bars: accuracy; line: perfect calibration) to a PNG.
pub fn plot_reliability(c: &CalibrationSummary, title: &str, path: &Path) -> PlotResult {
    // The same font the other report plots register (egui's, compiled in).
    let _ = plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        epaint_default_fonts::UBUNTU_LIGHT,
    );
    let root = BitMapBackend::new(path, (680, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    // Two lines above the chart: what it is, then the numbers.
    let (head, body) = root.split_vertically(52);
    let shorten = |s: &str, n: usize| -> String {
        if s.chars().count() <= n {
            s.to_string()
        } else {
            format!("{}…", s.chars().take(n - 1).collect::<String>())
        }
    };
    head.draw(&Text::new(
        shorten(&format!("Reliability: {title}"), 80),
        (12, 6),
        ("sans-serif", 16),
    ))?;
    head.draw(&Text::new(
        format!(
            "ECE {:.3} -> {:.3} (T = {:.2}); threshold {:.2}: precision {}, coverage {:.0} %; {} tracks",
            c.ece_before,
            c.ece_after,
            c.temperature,
            c.threshold,
            c.precision.map_or("-".into(), |p| format!("{:.1} %", p * 100.0)),
            c.coverage * 100.0,
            c.tracks
        ),
        (12, 28),
        ("sans-serif", 13),
    ))?;
    let mut chart = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(54)
        .build_cartesian_2d(0f32..1f32, 0f32..1f32)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("confidence (calibrated top probability)")
        .y_desc("accuracy")
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .draw()?;
    let blue = RGBColor(0, 114, 178);
    chart.draw_series(c.bins.iter().filter(|b| b.count > 0).map(|b| {
        Rectangle::new(
            [(b.lo + 0.005, 0.0), (b.hi - 0.005, b.accuracy)],
            blue.mix(0.75).filled(),
        )
    }))?;
    chart.draw_series(c.bins.iter().filter(|b| b.count > 0).map(|b| {
        Text::new(
            format!("{}", b.count),
            ((b.lo + b.hi) / 2.0 - 0.015, (b.accuracy + 0.03).min(0.97)),
            ("sans-serif", 11),
        )
    }))?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            BLACK.stroke_width(1),
        ))?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
    let orange = RGBColor(213, 94, 0);
    chart
        .draw_series(LineSeries::new(
            [(c.threshold, 0.0), (c.threshold, 1.0)],
            orange.stroke_width(2),
        ))?
        .label("decision threshold (below: unsure)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], orange.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
