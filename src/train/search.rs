//! Hyperparameter search: grid or random over a declared space of learning rate,
//! weight decay and dropout. Every trial is a full run in `out/trials/NNN`, chosen by
//! validation loss (never by test numbers); all trials are recorded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::report::Report;
use super::run::{RunOptions, train};
use super::trainer::Event;
use crate::error::{Error, ModelError};
use crate::ml::cv::SplitMix;

/// Grid or random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every combination of the listed values.
    Grid,
    /// Draws within each parameter's range (log-uniform for positive rates).
    Random,
}

/// The declared space: candidate values per parameter (a single value fixes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// Learning rates.
    pub lr: Vec<f64>,
    /// Weight decays.
    pub weight_decay: Vec<f64>,
    /// Dropout probabilities.
    pub dropout: Vec<f64>,
}

/// One trial's settings and outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 1-based number.
    pub index: usize,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Dropout.
    pub dropout: f64,
    /// Best validation loss.
    pub val_loss: Option<f64>,
    /// Validation accuracy at the best epoch.
    pub val_acc: Option<f64>,
    /// Test accuracy (recorded, not used for choosing).
    pub test_acc: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Training seconds.
    pub secs: f64,
    /// Its run folder.
    pub dir: PathBuf,
}

fn draw(rng: &mut SplitMix, values: &[f64]) -> f64 {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    if lo > 0.0 && hi / lo > 10.0 {
        (lo.ln() + u * (hi.ln() - lo.ln())).exp()
    } else {
        lo + u * (hi - lo)
    }
}

/// The settings of each trial.
pub fn plan(space: &Space, mode: Mode, trials: usize, seed: u64) -> Vec<(f64, f64, f64)> {
    match mode {
        Mode::Grid => {
            let mut out = Vec::new();
            for &lr in &space.lr {
                for &wd in &space.weight_decay {
                    for &d in &space.dropout {
                        out.push((lr, wd, d));
                    }
                }
            }
            out
        }
        Mode::Random => {
            let mut rng = SplitMix::new(seed);
            (0..trials)
                .map(|_| {
                    (
                        draw(&mut rng, &space.lr),
                        draw(&mut rng, &space.weight_decay),
                        draw(&mut rng, &space.dropout),
                    )
                })
                .collect()
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Run the search. The best trial's model and report are copied to `base.out`;
/// `trials.json` and `trials.csv` record every trial.
pub fn search(
    base: &RunOptions,
    space: &Space,
    mode: Mode,
    trials: usize,
    cancel: &AtomicBool,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<(Vec<Trial>, usize), Error> {
    let settings = plan(space, mode, trials, base.config.seed);
    let mut done = Vec::new();
    for (i, &(lr, wd, dropout)) in settings.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        on_event(&Event::Log(format!(
            "trial {}/{}: lr {lr:.2e}, weight decay {wd:.2e}, dropout {dropout:.2}",
            i + 1,
            settings.len()
        )));
        let mut opts = base.clone();
        opts.config.lr = lr;
        opts.config.weight_decay = wd;
        opts.spec.dropout = dropout;
        opts.out = base.out.join("trials").join(format!("{:03}", i + 1));
        let r: Report = train(&opts, cancel, on_event)?;
        let best = r.history.iter().find(|e| e.epoch == r.best_epoch);
        done.push(Trial {
            index: i + 1,
            lr,
            weight_decay: wd,
            dropout,
            val_loss: best.and_then(|e| e.val_loss),
            val_acc: best.and_then(|e| e.val_acc),
            test_acc: r.track.accuracy,
            epochs: r.history.len(),
            secs: r.train_secs,
            dir: opts.out.clone(),
        });
    }
    let Some(best) = done
        .iter()
        .enumerate()
        .min_by(|a, b| {
            let key = |t: &Trial| t.val_loss.unwrap_or(f64::INFINITY);
            key(a.1).total_cmp(&key(b.1))
        })
        .map(|(i, _)| i)
    else {
        return Err(ModelError::Other("no trial finished".into()).into());
    };
    let io = |p: &Path, e: std::io::Error| ModelError::Io {
        path: p.to_path_buf(),
        source: e,
    };
    let b = &done[best].dir;
    copy_dir(&b.join("model"), &base.out.join("model")).map_err(|e| io(b, e))?;
    let mut report = Report::load(b)?;
    report.kind = format!("search(best of {} trials: {})", done.len(), b.display());
    report.write(&base.out)?;
    let json = base.out.join("trials.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "mode": mode,
        "space": space,
        "chosen_by": "lowest validation loss",
        "best": done[best].index,
        "trials": done,
    }))
    .map_err(|e| ModelError::Other(e.to_string()))?;
    std::fs::write(&json, text + "\n").map_err(|e| io(&json, e))?;
    let mut csv =
        String::from("trial,lr,weight_decay,dropout,val_loss,val_acc,test_acc,epochs,secs\n");
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    for t in &done {
        csv += &format!(
            "{},{:.3e},{:.3e},{:.3},{},{},{:.4},{},{:.1}\n",
            t.index,
            t.lr,
            t.weight_decay,
            t.dropout,
            opt(t.val_loss),
            opt(t.val_acc),
            t.test_acc,
            t.epochs,
            t.secs
        );
    }
    let p = base.out.join("trials.csv");
    std::fs::write(&p, csv).map_err(|e| io(&p, e))?;
    Ok((done, best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_and_random_plans() {
        let space = Space {
            lr: vec![1e-4, 1e-2],
            weight_decay: vec![0.0, 1e-3],
            dropout: vec![0.1],
        };
        assert_eq!(plan(&space, Mode::Grid, 0, 1).len(), 4);
        let r = plan(&space, Mode::Random, 20, 1);
        assert_eq!(r.len(), 20);
        assert!(r.iter().all(|&(lr, wd, d)| (1e-4..=1e-2).contains(&lr)
            && (0.0..=1e-3).contains(&wd)
            && d == 0.1));
        // Log-uniform: about half the draws below the geometric mean 1e-3.
        let below = r.iter().filter(|t| t.0 < 1e-3).count();
        assert!((4..=16).contains(&below), "{below}");
    }
}
