//! Command-line interface: argument parsing and dispatch to one module per subcommand.
//!
//! Exit codes: 0 all files fine, 1 some files failed (the batch went on), 2 fatal.

mod bench;
mod choices;
mod classify;
mod convert;
mod inputs;
mod scan;
mod tag;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::ml::{DeviceChoice, Precision};

/// Exit code: every file processed.
pub const EXIT_OK: u8 = 0;
/// Exit code: some files failed; the others were processed.
pub const EXIT_PARTIAL: u8 = 1;
/// Exit code: nothing could be done (bad arguments, missing model).
pub const EXIT_FATAL: u8 = 2;

/// genretag: listen to a music library and tag each track's genre.
///
/// With no subcommand, opens the desktop app.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Where models run: `cpu` (burn-flex) or `gpu` (burn-wgpu).
    #[arg(long, global = true, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Backbone precision on the CPU: `auto` (int16 where the CPU has AVX-512 VNNI, else
    /// fp32), `fp32` (exact), `int16`, or `int8` (fastest, approximate).
    #[arg(long, global = true, value_enum, default_value_t = Precision::Auto)]
    pub precision: Precision,
    /// Subcommand; none opens the desktop app.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify the genre of audio files (folders are searched recursively).
    Classify(classify::ClassifyArgs),
    /// Convert the musicnn MSD TensorFlow checkpoint into our burn record.
    ConvertMusicnn(convert::ConvertArgs),
    /// Measure decoding, features, backbone and end-to-end speed.
    Bench(bench::BenchArgs),
    /// Preview genre tags for files (and write them with --write), journaled for undo.
    Tag(tag::TagArgs),
    /// Revert the last batch of tag writes (or --batch N).
    Undo(tag::UndoArgs),
    /// List the batches of tag writes.
    History(tag::HistoryArgs),
    /// Scan folders into the library database (tags, durations, content hashes).
    Scan(scan::ScanArgs),
    /// Measure library scan speed and memory on a synthetic library of tiny files.
    BenchScan(scan::BenchScanArgs),
    /// Measure training speed on the benchmark CNN (beside a TensorFlow reference).
    BenchTrain(bench::BenchTrainArgs),
    /// Train a genre model (any kind) on a labelled dataset and report on its test split.
    Train(Box<train::TrainArgs>),
    /// Evaluate a model (default: the shipped one) on labelled music: accuracy, precision
    /// and coverage at its threshold, calibration; optionally robustness and long files.
    Eval(train::EvalArgs),
    /// Render a run's report (tables, plots, reliability diagram) into another folder.
    Report(train::ReportArgs),
    /// Compare runs side by side, with McNemar's test on their common test tracks.
    Compare(train::CompareArgs),
    /// Open the desktop app (the default with no subcommand), optionally on a folder.
    App(AppArgs),
    /// Combine trained models into an ensemble (sum, product, agree-else-most-confident).
    Ensemble(train::EnsembleArgs),
}

/// How a command prints JSON, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonMode {
    /// Text for people.
    Off,
    /// One document at the end (`--json`).
    Document,
    /// One object per line as results come (`--jsonl`).
    Lines,
}

impl JsonMode {
    fn of(json: bool, jsonl: bool) -> Self {
        match (json, jsonl) {
            (true, _) => Self::Document,
            (false, true) => Self::Lines,
            (false, false) => Self::Off,
        }
    }
}

/// Parse arguments and run. Returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::ml::precision::set_default_precision(cli.precision);
    let device = match cli.device.device() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let result = match cli.command {
        None => run_gui(AppArgs::default(), &device),
        Some(Command::App(args)) => run_gui(args, &device),
        Some(Command::Classify(args)) => classify::run(args, &device),
        Some(Command::ConvertMusicnn(args)) => convert::run(args, &device),
        Some(Command::Bench(args)) => bench::run(args, &device),
        Some(Command::Tag(args)) => tag::run(args, &device),
        Some(Command::Undo(args)) => tag::run_undo(args),
        Some(Command::History(args)) => tag::run_history(args),
        Some(Command::Scan(args)) => scan::run(args),
        Some(Command::BenchScan(args)) => scan::run_bench(args),
        Some(Command::BenchTrain(args)) => bench::run_train(args, &device),
        Some(Command::Train(args)) => train::run(*args, &device),
        Some(Command::Eval(args)) => train::run_eval(args, &device),
        Some(Command::Compare(args)) => train::run_compare(args),
        Some(Command::Report(args)) => train::run_report(args),
        Some(Command::Ensemble(args)) => train::run_ensemble(args, &device),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

/// Arguments of `app`.
#[derive(Debug, Default, clap::Args)]
pub struct AppArgs {
    /// Music folder to open.
    pub folder: Option<PathBuf>,
    /// Library database (default: ~/.local/share/genretag/library.sqlite3).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Start on this view: library, track or training.
    #[arg(long)]
    pub view: Option<String>,
    /// Select the first track and play it as soon as it is analysed.
    #[arg(long)]
    pub play_first: bool,
    /// Show this training run's report in the training view.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Write UI frame-time statistics (JSON: p50, p99, max ms) to this file.
    #[arg(long)]
    pub frame_log: Option<PathBuf>,
    /// Act like a busy user for frame-time measurements: `browse` (scroll, select,
    /// switch views), `sort` (browse and change the sort column), `tag` (select all,
    /// preview, apply and undo once the folder is analysed).
    #[arg(long, num_args = 0..=1, default_missing_value = "browse")]
    pub exercise: Option<String>,
    /// Analyse the library with this trained model (a run folder of `genretag train`);
    /// remembered for the next start.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Theme: `dark` or `light` (remembered).
    #[arg(long)]
    pub theme: Option<String>,
    /// Window size in points, e.g. `900x600`.
    #[arg(long)]
    pub window_size: Option<String>,
}

#[cfg(feature = "gui")]
fn run_gui(a: AppArgs, device: &burn::tensor::Device) -> anyhow::Result<u8> {
    use crate::gui::{Exercise, StartOptions, Tab};
    let tab = match a.view.as_deref() {
        None => None,
        Some("library") => Some(Tab::Library),
        Some("track") => Some(Tab::Track),
        Some("training") => Some(Tab::Training),
        Some(v) => anyhow::bail!("unknown view {v:?} (library, track or training)"),
    };
    let dark = match a.theme.as_deref() {
        None => None,
        Some("dark") => Some(true),
        Some("light") => Some(false),
        Some(v) => anyhow::bail!("unknown theme {v:?} (dark or light)"),
    };
    let window_size = match a.window_size.as_deref() {
        None => None,
        Some(s) => {
            let parse = |v: &str| v.trim().parse::<f32>().ok().filter(|x| *x >= 100.0);
            match s.split_once('x').map(|(w, h)| (parse(w), parse(h))) {
                Some((Some(w), Some(h))) => Some([w, h]),
                _ => anyhow::bail!("--window-size wants WIDTHxHEIGHT, e.g. 900x600, not {s:?}"),
            }
        }
    };
    let exercise = match a.exercise.as_deref() {
        None => Exercise::Off,
        Some("browse") => Exercise::Browse,
        Some("sort") => Exercise::Sort,
        Some("tag") => Exercise::Tag,
        Some(v) => anyhow::bail!("unknown exercise {v:?} (browse, sort or tag)"),
    };
    crate::gui::run(StartOptions {
        folder: a.folder,
        db: a.db,
        tab,
        play_first: a.play_first,
        run: a.run,
        frame_log: a.frame_log,
        exercise,
        stable_ui: false,
        device: Some(device.clone()),
        model: a.model,
        no_reopen: false,
        dark,
        window_size,
    })?;
    Ok(EXIT_OK)
}

#[cfg(not(feature = "gui"))]
fn run_gui(_: AppArgs, _: &burn::tensor::Device) -> anyhow::Result<u8> {
    anyhow::bail!(
        "this build has no desktop app (built without the `gui` feature); see `genretag --help`"
    )
}

/// Default location of the shared development data, relative to the repository.
pub fn default_gtzan_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/gtzan")
}
