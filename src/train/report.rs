//! Report folders: `report.json` (every number, the config, the split, the curves and
//! the test predictions), CSV tables, and the figures (drawn by [`super::plots`]).

use crate::error::ReportError;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::{Metrics, Normalise};
use super::plots;
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
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ReportError::Io {
            path: file.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ReportError::Format {
            path: file,
            reason: e.to_string(),
        })
    }

    /// Write the whole folder: JSON, CSVs, PNGs.
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        let io = |p: &Path| {
            let path = p.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        let plot = |p: &Path, err: &dyn std::fmt::Display| ReportError::Plot {
            path: p.to_path_buf(),
            reason: err.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| ReportError::Format {
            path: json.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&json, text + "\n").map_err(io(&json))?;
        for (name, how) in [
            ("confusion.csv", Normalise::Counts),
            ("confusion_by_true.csv", Normalise::True),
            ("confusion_by_pred.csv", Normalise::Pred),
            ("confusion_overall.csv", Normalise::All),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, confusion_csv(&self.labels, &self.track, how)).map_err(io(&p))?;
        }
        let p = dir.join("per_class.csv");
        std::fs::write(&p, per_class_csv(&self.track)).map_err(io(&p))?;
        let p = dir.join("history.csv");
        std::fs::write(&p, history_csv(&self.history)).map_err(io(&p))?;
        if !self.history.is_empty() {
            let p = dir.join("curves.png");
            plots::curves_figure(&self.history, &self.model, &p, plots::Format::Png)
                .map_err(|err| plot(&p, &err))?;
        }
        if let Some(c) = &self.calibration {
            let p = dir.join("reliability.png");
            super::reliability::plot_reliability(
                c,
                &format!("{} - {}", self.model, self.split),
                &p,
            )
            .map_err(|err| plot(&p, &err))?;
        }
        if !self.robustness.is_empty() {
            let p = dir.join("robustness.md");
            std::fs::write(&p, robustness_markdown(&self.robustness)).map_err(io(&p))?;
        }
        let p = dir.join("confusion.png");
        plots::confusion_figure(
            &self.labels,
            &self.track,
            Normalise::Counts,
            &format!("{} - {}", self.model, self.split),
            &p,
            plots::Format::Png,
        )
        .map_err(|err| plot(&p, &err))?;
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
