//! Report folders: `report.json` (every number, the config, the split, the curves and
//! the test predictions), CSV tables, and PNG plots rendered without a display.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::metrics::{Metrics, Normalise};
use super::trainer::EpochStats;
use crate::model::calibration::CalibrationSummary;

/// One test track's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The file.
    pub path: PathBuf,
    /// True label index.
    pub truth: usize,
    /// Track probabilities.
    pub probs: Vec<f32>,
    /// Per-window probabilities.
    pub windows: Vec<Vec<f32>>,
}

/// Everything a run or an evaluation reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Format tag: `genretag.report/1`.
    pub schema: String,
    /// What made it: `train`, `eval`, `ensemble`.
    pub kind: String,
    /// Model name (kind and input).
    pub model: String,
    /// Model and training configuration.
    pub config: serde_json::Value,
    /// Dataset origin.
    pub dataset: String,
    /// The split's name (every number below is on its test part).
    pub split: String,
    /// Listed files of explicit split lists that were not found.
    pub missing: Vec<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Tracks per part: train, validation, test.
    pub sizes: [usize; 3],
    /// Per-epoch curves (empty for evaluation-only reports).
    pub history: Vec<EpochStats>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// How training ended.
    pub stop: String,
    /// Training seconds.
    pub train_secs: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Track-level test metrics.
    pub track: Metrics,
    /// Window-level test metrics.
    pub segment: Metrics,
    /// Test predictions.
    pub predictions: Vec<Prediction>,
    /// Calibration and the "unsure" decision, on the test part (absent in old reports).
    #[serde(default)]
    pub calibration: Option<CalibrationSummary>,
    /// Accuracy under simulated recording differences (`eval --robustness`).
    #[serde(default)]
    pub robustness: Vec<ShiftScore>,
    /// Further findings, one paragraph or table (Markdown) each.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// How a model does on tracks heard through one [`crate::shift::Shift`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftScore {
    /// The shift's name.
    pub shift: String,
    /// Tracks scored.
    pub tracks: usize,
    /// Accuracy of the top genre.
    pub accuracy: f32,
    /// Precision of the answered tracks at the model's threshold.
    pub precision: Option<f32>,
    /// Share answered (not "unsure").
    pub coverage: f32,
    /// Whether this shift was also used to augment training (on other tracks).
    pub in_training: bool,
}

/// The robustness table as Markdown.
pub fn robustness_markdown(rows: &[ShiftScore]) -> String {
    let mut s = String::from(
        "| shift | tracks | accuracy | precision at threshold | coverage |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {}{} | {} | {:.3} | {} | {:.2} |\n",
            r.shift,
            if r.in_training {
                " (augmented in training)"
            } else {
                ""
            },
            r.tracks,
            r.accuracy,
            r.precision.map_or("-".into(), |p| format!("{p:.3}")),
            r.coverage
        );
    }
    s
}

impl Report {
    /// Read `report.json` from a run folder (or the file itself).
    pub fn load(path: &Path) -> Result<Self, String> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// Write the whole folder: JSON, CSVs, PNGs.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let e = |p: &Path, err: &dyn std::fmt::Display| format!("{}: {err}", p.display());
        std::fs::create_dir_all(dir).map_err(|err| e(dir, &err))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).map_err(|err| e(&json, &err))?;
        std::fs::write(&json, text + "\n").map_err(|err| e(&json, &err))?;
        for (name, how) in [
            ("confusion.csv", Normalise::Counts),
            ("confusion_by_true.csv", Normalise::True),
            ("confusion_by_pred.csv", Normalise::Pred),
            ("confusion_overall.csv", Normalise::All),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, confusion_csv(&self.labels, &self.track, how))
                .map_err(|err| e(&p, &err))?;
        }
        let p = dir.join("per_class.csv");
        std::fs::write(&p, per_class_csv(&self.track)).map_err(|err| e(&p, &err))?;
        let p = dir.join("history.csv");
        std::fs::write(&p, history_csv(&self.history)).map_err(|err| e(&p, &err))?;
        if !self.history.is_empty() {
            let p = dir.join("curves.png");
            plot_curves(&self.history, &self.model, &p).map_err(|err| e(&p, &err))?;
        }
        if let Some(c) = &self.calibration {
            let p = dir.join("reliability.png");
            super::reliability::plot_reliability(
                c,
                &format!("{} - {}", self.model, self.split),
                &p,
            )
            .map_err(|err| e(&p, &err))?;
        }
        if !self.robustness.is_empty() {
            let p = dir.join("robustness.md");
            std::fs::write(&p, robustness_markdown(&self.robustness)).map_err(|err| e(&p, &err))?;
        }
        let p = dir.join("confusion.png");
        plot_confusion(
            &self.labels,
            &self.track,
            Normalise::Counts,
            &format!("{} - {}", self.model, self.split),
            &p,
        )
        .map_err(|err| e(&p, &err))?;
        Ok(())
    }
}

/// Rows as CSV text (the `csv` crate quotes labels with commas, quotes or newlines).
fn csv_text(rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Writing to memory cannot fail.
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Confusion matrix as CSV: header of predicted labels, one row per true label.
pub fn confusion_csv(labels: &[String], m: &Metrics, how: Normalise) -> String {
    let header = std::iter::once("true\\pred".to_string()).chain(labels.iter().cloned());
    let rows = labels.iter().zip(m.normalised(how)).map(|(l, row)| {
        std::iter::once(l.clone())
            .chain(row.iter().map(|v| {
                if how == Normalise::Counts {
                    format!("{v}")
                } else {
                    format!("{v:.4}")
                }
            }))
            .collect()
    });
    csv_text(std::iter::once(header.collect()).chain(rows))
}

/// Per-class table as CSV.
pub fn per_class_csv(m: &Metrics) -> String {
    let header = ["label", "precision", "recall", "f1", "support"].map(String::from);
    let row = |label: &str, p: f64, r: f64, f: f64, n: usize| {
        vec![
            label.to_string(),
            format!("{p:.4}"),
            format!("{r:.4}"),
            format!("{f:.4}"),
            n.to_string(),
        ]
    };
    csv_text(
        std::iter::once(header.to_vec())
            .chain(
                m.per_class
                    .iter()
                    .map(|c| row(&c.label, c.precision, c.recall, c.f1, c.support)),
            )
            .chain(std::iter::once(row(
                "macro",
                m.macro_precision,
                m.macro_recall,
                m.macro_f1,
                m.n,
            ))),
    )
}

/// Per-epoch curves as CSV.
pub fn history_csv(h: &[EpochStats]) -> String {
    let header = [
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "secs",
    ]
    .map(String::from);
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.5}")).unwrap_or_default();
    csv_text(std::iter::once(header.to_vec()).chain(h.iter().map(|e| {
        vec![
            e.epoch.to_string(),
            format!("{:.5}", e.train_loss),
            format!("{:.5}", e.train_acc),
            opt(e.val_loss),
            opt(e.val_acc),
            format!("{:.3e}", e.lr),
            format!("{:.2}", e.secs),
        ]
    })))
}

fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; registering it cannot fail for valid bytes.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Loss and accuracy curves, train and validation, side by side.
pub fn plot_curves(h: &[EpochStats], title: &str, path: &Path) -> PlotResult {
    fonts();
    let root = BitMapBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let n = h.len().max(2) as f64;
    let loss_max = h
        .iter()
        .flat_map(|e| [Some(e.train_loss), e.val_loss])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.1f64, f64::max);
    let series = |f: &dyn Fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> {
        h.iter()
            .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
            .collect()
    };
    for (area, name, ymax, tr, va) in [
        (
            &left,
            "loss",
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
            .caption(format!("{title}: {name}"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(1f64..n, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(name)
            .label_style(("sans-serif", 14))
            .draw()?;
        chart
            .draw_series(LineSeries::new(tr, BLUE.stroke_width(2)))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        if !va.is_empty() {
            chart
                .draw_series(LineSeries::new(va, RED.stroke_width(2)))?
                .label("validation")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Confusion-matrix heatmap with labels and the value in each cell.
pub fn plot_confusion(
    labels: &[String],
    m: &Metrics,
    how: Normalise,
    title: &str,
    path: &Path,
) -> PlotResult {
    fonts();
    let k = labels.len().max(1);
    let cell = (560 / k).clamp(24, 64) as i32;
    let (ox, oy) = (120i32, 60i32);
    let w = (ox + cell * k as i32 + 30) as u32;
    let h = (oy + cell * k as i32 + 110) as u32;
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        title.to_string(),
        (10, 12),
        ("sans-serif", 18).into_font(),
    ))?;
    let norm = m.normalised(how);
    let row_norm = m.normalised(Normalise::True);
    let text_size = (cell / 3).clamp(10, 18);
    for i in 0..k {
        for j in 0..k {
            // Colour by share of the true class, so small classes show as clearly.
            let s = row_norm[i][j].clamp(0.0, 1.0);
            let shade = RGBColor(
                (255.0 * (1.0 - 0.85 * s)) as u8,
                (255.0 * (1.0 - 0.6 * s)) as u8,
                255,
            );
            let (x0, y0) = (ox + j as i32 * cell, oy + i as i32 * cell);
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell, y0 + cell)],
                shade.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell, y0 + cell)],
                RGBColor(200, 200, 200),
            ))?;
            let v = norm[i][j];
            let label = if how == Normalise::Counts {
                format!("{v}")
            } else {
                format!("{v:.2}")
            };
            let colour = if s > 0.6 { WHITE } else { BLACK };
            root.draw(&Text::new(
                label,
                (x0 + cell / 2 - text_size / 2, y0 + cell / 2 - text_size / 2),
                ("sans-serif", text_size).into_font().color(&colour),
            ))?;
        }
        let name: String = labels.get(i).cloned().unwrap_or_default();
        root.draw(&Text::new(
            name.clone(),
            (8, oy + i as i32 * cell + cell / 2 - 7),
            ("sans-serif", 14).into_font(),
        ))?;
        root.draw(&Text::new(
            name,
            (ox + i as i32 * cell + 2, oy + cell * k as i32 + 8),
            ("sans-serif", 13)
                .into_font()
                .transform(FontTransform::Rotate90),
        ))?;
    }
    root.draw(&Text::new(
        "rows: true genre, columns: predicted".to_string(),
        (ox, h as i32 - 22),
        ("sans-serif", 14).into_font(),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue10_csv_quotes_user_labels() {
        let labels = vec!["rock, indie".to_string(), "say \"hi\"".to_string()];
        let m = Metrics::compute(
            &labels,
            &[vec![0.9, 0.1], vec![0.2, 0.8], vec![0.6, 0.4]],
            &[0, 1, 1],
        );
        let text = confusion_csv(&labels, &m, Normalise::Counts);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = r
            .headers()
            .expect("header")
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(header, ["true\\pred", "rock, indie", "say \"hi\""]);
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[1][0], "say \"hi\"");
        assert_eq!(&rows[1][1], "1");
        let per_class = per_class_csv(&m);
        let mut r = csv::Reader::from_reader(per_class.as_bytes());
        let first = r.records().next().expect("a row").expect("valid");
        assert_eq!(&first[0], "rock, indie");
        assert_eq!(r.records().count(), 2, "the second class and the macro row");
    }
}
