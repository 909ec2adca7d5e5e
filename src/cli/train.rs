//! `genretag train`, `eval`, `compare` and `ensemble`: the training and evaluation
//! engine from the command line. Every command writes a report folder.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use burn::tensor::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{EXIT_OK, EXIT_PARTIAL};
use crate::model::Taxonomy;
use crate::train::features::{FeatureStore, Windowing};
use crate::train::fused::FusedOptions;
use crate::train::metrics::{argmax, mcnemar};
use crate::train::models::{Cell, ModelKind, ModelSpec};
use crate::train::report::Report;
use crate::train::run::{self, GroupBy, RunOptions, Source, SplitSpec};
use crate::train::saved::{Rule, SavedModel};
use crate::train::search::{self, Mode, Space};
use crate::train::trainer::{Augment, Event, Optim, Schedule, TrainConfig, Vote};

/// Where the labelled data comes from (one of them).
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// A folder with one sub-folder per genre (GTZAN layout).
    #[arg(long, conflicts_with_all = ["list", "library"])]
    pub data: Option<PathBuf>,
    /// A list file of `path<TAB>genre` lines.
    #[arg(long, conflicts_with = "library")]
    pub list: Option<PathBuf>,
    /// Use the genre tags already in these folders as labels.
    #[arg(long, num_args = 1..)]
    pub library: Vec<PathBuf>,
    /// With --library: genres with fewer tracks are left out.
    #[arg(long, default_value_t = 5)]
    pub min_tracks: usize,
    /// With --library: a `tag value = label` mapping file.
    #[arg(long)]
    pub map: Option<PathBuf>,
}

impl DataArgs {
    fn source(&self) -> anyhow::Result<Source> {
        Ok(match (&self.data, &self.list, self.library.is_empty()) {
            (Some(d), _, _) => Source::Folder(d.clone()),
            (_, Some(l), _) => Source::List(l.clone()),
            (_, _, false) => Source::Library {
                roots: self.library.clone(),
                min_tracks: self.min_tracks,
                map: self.map.clone(),
            },
            _ => Source::Folder(super::default_gtzan_dir()),
        })
    }
}

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    /// Stratified random by track.
    Stratified,
    /// Grouped (see --group).
    Grouped,
    /// Explicit lists (see --lists).
    Lists,
}

/// Split arguments.
#[derive(Debug, Args, Clone)]
pub struct SplitArgs {
    /// Split kind.
    #[arg(long, value_enum, default_value_t = SplitKind::Grouped)]
    pub split: SplitKind,
    /// Group key of a grouped split.
    #[arg(long, value_enum, default_value_t = GroupBy::Gtzan)]
    pub group: GroupBy,
    /// Test fraction (of tracks, or of groups).
    #[arg(long, default_value_t = 0.25)]
    pub test: f64,
    /// Validation fraction.
    #[arg(long, default_value_t = 0.15)]
    pub val: f64,
    /// Split seed.
    #[arg(long, default_value_t = 1)]
    pub split_seed: u64,
    /// Folder with `train*.txt`, optional `valid*.txt`, `test*.txt` (e.g. the
    /// fault-filtered GTZAN lists).
    #[arg(long)]
    pub lists: Option<PathBuf>,
}

fn find_list(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v.into_iter().next()
}

impl SplitArgs {
    fn spec(&self) -> anyhow::Result<SplitSpec> {
        Ok(match self.split {
            SplitKind::Stratified => SplitSpec::Stratified {
                test: self.test,
                val: self.val,
                seed: self.split_seed,
            },
            SplitKind::Grouped => SplitSpec::Grouped {
                by: self.group,
                test: self.test,
                val: self.val,
                seed: self.split_seed,
            },
            SplitKind::Lists => {
                let dir = self
                    .lists
                    .clone()
                    .context("--split lists needs --lists FOLDER")?;
                SplitSpec::Lists {
                    train: find_list(&dir, "train")
                        .with_context(|| format!("no train*.txt in {}", dir.display()))?,
                    val: find_list(&dir, "valid").or_else(|| find_list(&dir, "val")),
                    test: find_list(&dir, "test")
                        .with_context(|| format!("no test*.txt in {}", dir.display()))?,
                }
            }
        })
    }
}

/// Window arguments.
#[derive(Debug, Args, Clone)]
pub struct WindowArgs {
    /// Window length in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub window: f32,
    /// Window overlap fraction.
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f32,
    /// Feature cache folder (default: ~/.cache/genretag/features).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Do not cache features.
    #[arg(long)]
    pub no_cache: bool,
}

impl WindowArgs {
    fn windowing(&self) -> Windowing {
        Windowing {
            seconds: self.window,
            overlap: self.overlap,
            centre_only: false,
        }
    }

    fn cache(&self) -> Option<PathBuf> {
        if self.no_cache {
            None
        } else {
            self.cache.clone().or_else(FeatureStore::default_cache)
        }
    }
}

/// Every `--model` name: the kinds of [`ModelKind`], and `fused`, the default model's
/// configuration (a transfer head fused with the backbone's tag evidence).
fn model_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
    v.push("fused");
    v
}

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model kind, or `fused`: the shipped default model's configuration (transfer head +
    /// backbone tag evidence, calibrated and thresholded by grouped cross-validation;
    /// `scripts/train_default.sh` is the exact command).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(model_names()))]
    pub model: String,
    /// With `--model fused`: the taxonomy file (default: models/taxonomy.txt).
    #[arg(long)]
    pub taxonomy: Option<PathBuf>,
    /// With `--model fused`: cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    split: SplitArgs,
    #[command(flatten)]
    windows: WindowArgs,
    /// Report and model folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue an interrupted run from OUT/checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// 2-D input of the spectrogram models.
    #[arg(long, value_parser = ["logmel", "mfcc"])]
    pub input: Option<String>,
    /// Recurrent cell (crnn, rnn).
    #[arg(long, value_enum)]
    pub cell: Option<Cell>,
    /// Channel multiplier of the convolutional models.
    #[arg(long)]
    pub width: Option<f32>,
    /// Dropout.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Hidden units (transfer MLP, recurrent layers; 0 = logistic regression).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Trees of the random forest.
    #[arg(long)]
    pub trees: Option<usize>,
    /// Maximum epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Optimiser.
    #[arg(long, value_enum)]
    pub optimizer: Option<Optim>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Warm-up epochs (cosine schedule).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Early-stopping patience in epochs (0 = off).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Do not weight classes by inverse frequency.
    #[arg(long)]
    pub no_class_weights: bool,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Enable the reports' augmentations (probabilities in the report's config).
    #[arg(long)]
    pub augment: bool,
    /// Set augmentation probabilities, e.g. `--aug freq_mask=0.5,reverse=0.2` (names:
    /// freq_mask, time_mask, reverse, salt_pepper, gaussian, poisson, wave_noise,
    /// wave_mask, feature_noise).
    #[arg(long, value_delimiter = ',')]
    pub aug: Vec<String>,
    /// Track-level decision.
    #[arg(long, value_enum, default_value_t = Vote::Mean)]
    pub vote: Vote,
    /// Score test tracks on their centre window only (fixed evaluation windows).
    #[arg(long)]
    pub eval_centre: bool,
    /// Hyperparameter search with this many trials (random) or over the full grid.
    #[arg(long)]
    pub search: Option<usize>,
    /// Search mode.
    #[arg(long, value_enum, default_value_t = Mode::Random)]
    pub search_mode: Mode,
    /// Search space: learning rates (comma-separated; a range for random search).
    #[arg(long, value_delimiter = ',', default_value = "0.0001,0.01")]
    pub search_lr: Vec<f64>,
    /// Search space: weight decays.
    #[arg(long, value_delimiter = ',', default_value = "0.00001,0.01")]
    pub search_wd: Vec<f64>,
    /// Search space: dropouts.
    #[arg(long, value_delimiter = ',', default_value = "0.0,0.5")]
    pub search_dropout: Vec<f64>,
}

fn kind_of(name: &str) -> ModelKind {
    ModelKind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .unwrap_or(ModelKind::Transfer)
}

fn spec_and_config(a: &TrainArgs) -> (ModelSpec, TrainConfig) {
    let kind = kind_of(&a.model);
    let mut spec = ModelSpec::new(kind);
    if let Some(i) = &a.input {
        spec.image = if i == "mfcc" {
            crate::train::features::Repr::Mfcc
        } else {
            crate::train::features::Repr::Logmel
        };
    }
    spec.cell = a.cell.unwrap_or(spec.cell);
    spec.width = a.width.unwrap_or(spec.width);
    spec.dropout = a.dropout.unwrap_or(spec.dropout);
    spec.hidden = a.hidden.unwrap_or(spec.hidden);
    spec.trees = a.trees.unwrap_or(spec.trees);
    let mut cfg = TrainConfig::for_kind(kind);
    cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
    cfg.batch = a.batch.unwrap_or(cfg.batch);
    cfg.lr = a.lr.unwrap_or(cfg.lr);
    cfg.weight_decay = a.weight_decay.unwrap_or(cfg.weight_decay);
    cfg.optimizer = a.optimizer.unwrap_or(cfg.optimizer);
    cfg.schedule = a.schedule.unwrap_or(cfg.schedule);
    cfg.warmup = a.warmup.unwrap_or(cfg.warmup.min(cfg.epochs / 4));
    cfg.patience = a.patience.unwrap_or(cfg.patience);
    cfg.class_weights = !a.no_class_weights;
    cfg.seed = a.seed;
    cfg.vote = a.vote;
    if a.augment {
        cfg.augment = Augment::reports();
    }
    (spec, cfg)
}

/// Progress bar and log lines for training events.
pub struct Progress {
    bar: ProgressBar,
    steps: usize,
}

impl Progress {
    /// A hidden-until-needed bar.
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self { bar, steps: 0 }
    }

    /// A log line above the bar, or on stderr when the bar is hidden (not a terminal).
    fn line(&self, s: impl AsRef<str>) {
        if self.bar.is_hidden() {
            eprintln!("{}", s.as_ref());
        } else {
            self.bar.println(s);
        }
    }

    /// Show one event.
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Preparing { done, total } => {
                self.bar.set_prefix("features");
                self.bar.set_length(*total as u64);
                self.bar.set_position(*done as u64);
            }
            Event::Started {
                epochs,
                steps,
                parameters,
            } => {
                self.steps = *steps;
                self.line(format!(
                    "training {parameters} parameters: up to {epochs} epochs of {steps} steps"
                ));
                self.bar.set_length(*steps as u64);
                self.bar.set_position(0);
            }
            Event::Step { epoch, step, loss } => {
                self.bar.set_prefix(format!("epoch {epoch}"));
                self.bar.set_length(self.steps as u64);
                self.bar.set_position(*step as u64);
                self.bar.set_message(format!("loss {loss:.4}"));
            }
            Event::Epoch(s) => {
                let v = match (s.val_loss, s.val_acc) {
                    (Some(l), Some(a)) => format!(" | val loss {l:.4} acc {a:.3}"),
                    _ => String::new(),
                };
                self.line(format!(
                    "epoch {:>3}: train loss {:.4} acc {:.3}{v} | lr {:.2e} | {:.1} s",
                    s.epoch, s.train_loss, s.train_acc, s.lr, s.secs
                ));
            }
            Event::Log(l) => self.line(l),
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

fn print_summary(r: &Report, out: &Path) {
    println!("model   {}", r.model);
    println!("data    {}", r.dataset);
    println!(
        "split   {} (train {}, validation {}, test {} tracks)",
        r.split, r.sizes[0], r.sizes[1], r.sizes[2]
    );
    if !r.missing.is_empty() {
        println!(
            "        {} listed files missing (see report.json)",
            r.missing.len()
        );
    }
    if !r.history.is_empty() {
        println!(
            "trained {:.1} s, {} epochs ({}), kept epoch {}",
            r.train_secs,
            r.history.len(),
            r.stop,
            r.best_epoch
        );
    }
    let windows = if r.segment.n == 0 {
        String::new()
    } else {
        format!(
            "; window accuracy {:.3} over {} windows",
            r.segment.accuracy, r.segment.n
        )
    };
    println!(
        "test    track accuracy {:.3} (balanced {:.3}, macro F1 {:.3}, top-2 {:.3}){windows}",
        r.track.accuracy, r.track.balanced_accuracy, r.track.macro_f1, r.track.top2,
    );
    println!(
        "{:<12} {:>9} {:>7} {:>6} {:>8}",
        "genre", "precision", "recall", "F1", "support"
    );
    for c in &r.track.per_class {
        println!(
            "{:<12} {:>9.3} {:>7.3} {:>6.3} {:>8}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
    if let Some(c) = &r.calibration {
        println!(
            "decide  threshold {:.2}: precision {} on the {:.0} % of tracks answered (the rest: unsure)",
            c.threshold,
            c.precision
                .map_or("-".into(), |p| format!("{:.1} %", p * 100.0)),
            c.coverage * 100.0
        );
        println!(
            "calib.  ECE {:.3} (before calibration {:.3}, temperature {:.2}; {})",
            c.ece_after, c.ece_before, c.temperature, c.source
        );
    }
    for n in &r.notes {
        println!("\n{n}");
    }
    println!("report  {}", out.display());
}

fn failed_tracks(r: &Report) -> usize {
    r.config
        .get("failed_tracks")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len)
}

/// Set by the first Ctrl+C: training stops after the current step, keeps the best
/// epoch, evaluates it and writes the report. A second Ctrl+C exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn catch_interrupt() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl+C again to quit at once)");
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl+C will stop at once, without a report ({e})");
    }
}

/// Apply `--aug name=p,...` overrides to augmentation probabilities.
fn parse_aug(base: Augment, spec: &[String]) -> anyhow::Result<Augment> {
    let mut a = base;
    for item in spec {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("--aug expects name=probability, got {item:?}"))?;
        let p: f32 = v
            .trim()
            .parse()
            .with_context(|| format!("--aug {item:?}: not a number"))?;
        if !(0.0..=1.0).contains(&p) {
            bail!("--aug {item:?}: probability must be in [0, 1]");
        }
        let slot = match k.trim() {
            "freq_mask" => &mut a.freq_mask,
            "time_mask" => &mut a.time_mask,
            "reverse" => &mut a.reverse,
            "salt_pepper" => &mut a.salt_pepper,
            "gaussian" => &mut a.gaussian,
            "poisson" => &mut a.poisson,
            "wave_noise" => &mut a.wave_noise,
            "wave_mask" => &mut a.wave_mask,
            "feature_noise" => &mut a.feature_noise,
            other => bail!(
                "--aug: unknown augmentation {other:?} (freq_mask, time_mask, reverse, salt_pepper, gaussian, poisson, wave_noise, wave_mask, feature_noise)"
            ),
        };
        *slot = p;
    }
    Ok(a)
}

/// `genretag train`.
pub fn run(a: TrainArgs, device: &Device) -> anyhow::Result<u8> {
    catch_interrupt();
    let (spec, mut config) = spec_and_config(&a);
    config.augment = parse_aug(config.augment, &a.aug)?;
    let opts = RunOptions {
        source: a.data.source()?,
        split: a.split.spec()?,
        spec,
        config,
        windowing: a.windows.windowing(),
        out: a.out.clone(),
        resume: a.resume,
        cache: a.windows.cache(),
        device: device.clone(),
        eval_centre: a.eval_centre,
    };
    let cancel = &INTERRUPTED;
    let mut progress = Progress::new();
    let mut on_event = |e: &Event| progress.event(e);
    let report = if a.model == "fused" {
        let taxonomy = match &a.taxonomy {
            Some(p) => Taxonomy::load(p)?,
            None => Taxonomy::shipped(),
        };
        let fo = FusedOptions {
            folds: a.folds.max(2),
            seed: a.split.split_seed,
            ..FusedOptions::default()
        };
        crate::train::fused::train_fused(&opts, &fo, &taxonomy, cancel, &mut on_event)?
    } else if let Some(trials) = a.search {
        let space = Space {
            lr: a.search_lr.clone(),
            weight_decay: a.search_wd.clone(),
            dropout: a.search_dropout.clone(),
        };
        let (done, best) =
            search::search(&opts, &space, a.search_mode, trials, cancel, &mut on_event)?;
        println!(
            "{:<6} {:>9} {:>9} {:>7} {:>9} {:>7} {:>8}",
            "trial", "lr", "wd", "dropout", "val loss", "val acc", "test acc"
        );
        for t in &done {
            println!(
                "{:<6} {:>9.2e} {:>9.2e} {:>7.2} {:>9.4} {:>7.3} {:>8.3}{}",
                t.index,
                t.lr,
                t.weight_decay,
                t.dropout,
                t.val_loss.unwrap_or(f64::NAN),
                t.val_acc.unwrap_or(f64::NAN),
                t.test_acc,
                if t.index == done[best].index {
                    "  <- chosen (lowest validation loss)"
                } else {
                    ""
                }
            );
        }
        Report::load(&a.out)?
    } else {
        run::train(&opts, cancel, &mut on_event)?
    };
    progress.finish();
    print_summary(&report, &a.out);
    Ok(if failed_tracks(&report) > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}

/// Arguments of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A model made by `genretag train` (run folder, `model/` folder or `model.json`);
    /// default: the shipped model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    split: SplitArgs,
    /// Evaluate on every track instead of the split's test part (the default for a
    /// folder the model was not trained on).
    #[arg(long)]
    pub all: bool,
    /// Also measure accuracy under simulated recording differences (MP3/AAC
    /// re-encoding, band limits, EQ tilt, level; needs ffmpeg for the encodings).
    #[arg(long)]
    pub robustness: bool,
    /// Also check decisions on long files built from 6 clips of one genre.
    #[arg(long)]
    pub stability: bool,
    /// Decide with this threshold instead of the model's (0-1).
    #[arg(long)]
    pub min_prob: Option<f32>,
    /// Analyse every 3 s patch (default: at most 10, as classify does).
    #[arg(long)]
    pub all_patches: bool,
    /// Adaptive listening, as `classify` does by default (eval listens to every kept
    /// patch unless given this).
    #[arg(long)]
    pub adaptive: bool,
    /// Report folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// `genretag eval`.
pub fn run_eval(a: EvalArgs, device: &Device) -> anyhow::Result<u8> {
    let model = crate::analysis::load_model(a.model.as_deref(), device)
        .context("while loading the genre model")?;
    let split = if a.all { None } else { Some(a.split.spec()?) };
    let mut progress = Progress::new();
    let opts = crate::eval::EvalOptions {
        robustness: a.robustness,
        stability: a.stability,
        min_prob: a.min_prob,
        max_patches: (!a.all_patches).then_some(crate::analysis::DEFAULT_MAX_PATCHES),
        adaptive: a.adaptive,
    };
    let report =
        crate::eval::evaluate(model, &a.data.source()?, split.as_ref(), &opts, &mut |e| {
            progress.event(e)
        })?;
    progress.finish();
    report.write(&a.out)?;
    print_summary(&report, &a.out);
    Ok(if failed_tracks(&report) > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run or report folder (or its report.json).
    pub run: PathBuf,
    /// Where to write the tables and plots (never over the run's own files).
    #[arg(long)]
    pub out: PathBuf,
}

/// `genretag report`: render a run's report (CSVs, plots, reliability diagram) again, into
/// another folder.
pub fn run_report(a: ReportArgs) -> anyhow::Result<u8> {
    let r = Report::load(&a.run)?;
    let own = if a.run.is_dir() {
        a.run.clone()
    } else {
        a.run.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    if std::path::absolute(&a.out).ok() == std::path::absolute(&own).ok() {
        bail!("--out must not be the run's own folder ({})", own.display());
    }
    r.write(&a.out)?;
    print_summary(&r, &a.out);
    Ok(EXIT_OK)
}

/// Arguments of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run or report folders (at least two).
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
    /// Also write the table as CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also write the table as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Per-track correctness keyed by path.
fn correctness(r: &Report) -> std::collections::BTreeMap<PathBuf, bool> {
    r.predictions
        .iter()
        .map(|p| (p.path.clone(), argmax(&p.probs) == p.truth))
        .collect()
}

/// `genretag compare`.
pub fn run_compare(a: CompareArgs) -> anyhow::Result<u8> {
    let reports: Vec<Report> = a
        .runs
        .iter()
        .map(|r| Report::load(r).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<_>>()?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "run",
        "model",
        "split",
        "test_tracks",
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "top2",
        "window_accuracy",
        "train_secs",
        "parameters",
    ])?;
    println!(
        "{:<4} {:<24} {:>6} {:>8} {:>8} {:>8} {:>6} {:>8} {:>9}",
        "#", "model", "tracks", "accuracy", "balanced", "macro F1", "top-2", "window", "train s"
    );
    // Ensembles combine track probabilities only: no window-level number.
    let window = |r: &Report| {
        if r.segment.n == 0 {
            "-".to_string()
        } else {
            format!("{:.3}", r.segment.accuracy)
        }
    };
    for (i, r) in reports.iter().enumerate() {
        println!(
            "{:<4} {:<24} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>6.3} {:>8} {:>9.1}",
            i + 1,
            r.model,
            r.track.n,
            r.track.accuracy,
            r.track.balanced_accuracy,
            r.track.macro_f1,
            r.track.top2,
            window(r),
            r.train_secs
        );
        csv.write_record([
            a.runs[i].display().to_string(),
            r.model.clone(),
            r.split.clone(),
            r.track.n.to_string(),
            format!("{:.4}", r.track.accuracy),
            format!("{:.4}", r.track.balanced_accuracy),
            format!("{:.4}", r.track.macro_f1),
            format!("{:.4}", r.track.top2),
            format!("{:.4}", r.segment.accuracy),
            format!("{:.1}", r.train_secs),
            r.parameters.to_string(),
        ])?;
    }
    let splits: std::collections::BTreeSet<&str> =
        reports.iter().map(|r| r.split.as_str()).collect();
    if splits.len() > 1 {
        println!("note: the runs used different splits: {splits:?}");
    }
    println!("\nMcNemar's exact test on the test tracks both runs scored:");
    for i in 0..reports.len() {
        for j in i + 1..reports.len() {
            let (ca, cb) = (correctness(&reports[i]), correctness(&reports[j]));
            let common: Vec<&PathBuf> = ca.keys().filter(|k| cb.contains_key(*k)).collect();
            if common.is_empty() {
                println!("  {} vs {}: no common test tracks", i + 1, j + 1);
                continue;
            }
            let a_ok: Vec<bool> = common.iter().map(|k| ca[*k]).collect();
            let b_ok: Vec<bool> = common.iter().map(|k| cb[*k]).collect();
            let t = mcnemar(&a_ok, &b_ok);
            println!(
                "  {} vs {}: {} tracks, only {} right {}, only {} right {}, p = {:.4}{}",
                i + 1,
                j + 1,
                common.len(),
                i + 1,
                t.only_a,
                j + 1,
                t.only_b,
                t.p_value,
                if t.p_value < 0.05 {
                    " (significant at 0.05)"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(p) = a.csv {
        let bytes = csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = a.markdown {
        let mut md = String::from(
            "| run | model | test tracks | accuracy | balanced acc. | macro F1 | top-2 | window acc. | epochs | train s | parameters |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for (run, r) in a.runs.iter().zip(&reports) {
            md += &format!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {:.0} | {} |\n",
                run.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                r.model,
                r.track.n,
                r.track.accuracy,
                r.track.balanced_accuracy,
                r.track.macro_f1,
                r.track.top2,
                window(r),
                if r.history.is_empty() {
                    "-".to_string()
                } else {
                    r.history.len().to_string()
                },
                r.train_secs,
                r.parameters
            );
        }
        std::fs::write(&p, md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(EXIT_OK)
}

/// Arguments of `ensemble`.
#[derive(Debug, Args)]
pub struct EnsembleArgs {
    /// Member runs or model folders.
    #[arg(required = true, num_args = 2..)]
    pub members: Vec<PathBuf>,
    /// Combination rule.
    #[arg(long, value_enum, default_value_t = Rule::Sum)]
    pub rule: Rule,
    /// Output folder (the ensemble model goes to OUT/model).
    #[arg(long)]
    pub out: PathBuf,
}

/// A run or model folder as given: its model folder when it has one.
fn model_dir(p: &Path) -> PathBuf {
    SavedModel::find_dir(p).unwrap_or_else(|| p.to_path_buf())
}

/// `genretag ensemble`: combine trained models; if every member is a run with a test
/// report on the same split, also report the ensemble on that test set.
pub fn run_ensemble(a: EnsembleArgs, device: &Device) -> anyhow::Result<u8> {
    let dirs: Vec<PathBuf> = a.members.iter().map(|m| model_dir(m)).collect();
    let model = SavedModel::ensemble(&dirs, a.rule, device)?;
    model.save(&a.out.join("model"))?;
    println!(
        "saved {} of {} members to {}",
        model.name(),
        dirs.len(),
        a.out.join("model").display()
    );
    let reports: Vec<Report> = a
        .members
        .iter()
        .filter_map(|m| Report::load(m).ok())
        .collect();
    if reports.len() != a.members.len() {
        println!(
            "(not every member has a test report: use `genretag eval --model {}`)",
            a.out.display()
        );
        return Ok(EXIT_OK);
    }
    if reports.iter().any(|r| r.split != reports[0].split) {
        bail!(
            "members were tested on different splits; evaluate the ensemble with `genretag eval`"
        );
    }
    // Combine the members' stored test predictions track by track.
    let mut preds = Vec::new();
    let mut tracks = Vec::new();
    for p in &reports[0].predictions {
        let rows: Vec<Vec<f32>> = reports
            .iter()
            .filter_map(|r| {
                r.predictions
                    .iter()
                    .find(|q| q.path == p.path)
                    .map(|q| q.probs.clone())
            })
            .collect();
        if rows.len() != reports.len() {
            continue;
        }
        preds.push(crate::train::saved::TrackPrediction {
            windows: Vec::new(),
            track: crate::train::saved::combine(a.rule, &rows),
        });
        tracks.push(crate::train::trainer::TrackData {
            path: p.path.clone(),
            label: p.truth,
            inputs: Vec::new(),
        });
    }
    let refs: Vec<_> = tracks.iter().collect();
    let (track, segment, predictions) = run::score(&model.file.labels, &refs, preds);
    let report = Report {
        schema: "genretag.report/1".into(),
        kind: "ensemble".into(),
        model: format!(
            "{}[{}]",
            model.name(),
            reports
                .iter()
                .map(|r| r.model.clone())
                .collect::<Vec<_>>()
                .join("+")
        ),
        config: serde_json::json!({ "rule": a.rule, "members": a.members }),
        dataset: reports[0].dataset.clone(),
        split: reports[0].split.clone(),
        missing: reports[0].missing.clone(),
        labels: model.file.labels.clone(),
        sizes: [reports[0].sizes[0], reports[0].sizes[1], tracks.len()],
        history: Vec::new(),
        best_epoch: 0,
        stop: String::new(),
        train_secs: reports.iter().map(|r| r.train_secs).sum(),
        parameters: reports.iter().map(|r| r.parameters).sum(),
        track,
        segment,
        predictions,
        calibration: None,
        robustness: Vec::new(),
        notes: Vec::new(),
    };
    report.write(&a.out)?;
    print_summary(&report, &a.out);
    Ok(EXIT_OK)
}
