//! `genretag scan` (folders into the library database) and `genretag bench-scan`
//! (scan speed and memory on a synthetic library of tiny files).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::{EXIT_OK, EXIT_PARTIAL};
use crate::library::paths::escaped;
use crate::library::{Library, default_db_path};

/// Arguments of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Folders (or files) to scan.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Library database (default: the XDG data directory).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench-scan`.
#[derive(Debug, Args)]
pub struct BenchScanArgs {
    /// Synthetic tracks to create.
    #[arg(long, default_value_t = 50_000)]
    pub files: usize,
    /// Where to create them (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Run `scan`. With `--json`, a fatal error still prints one JSON document.
pub fn run(args: ScanArgs) -> anyhow::Result<u8> {
    let json = args.json;
    super::tag::report_fatal(
        run_scan(args),
        super::JsonMode::of(json, false),
        "genretag.scan/1",
        &[],
        None,
    )
}

fn run_scan(args: ScanArgs) -> anyhow::Result<u8> {
    let lib = Library::open(&args.db.unwrap_or_else(default_db_path))?;
    let bar = indicatif::ProgressBar::new_spinner();
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = lib.scan(&args.paths, |n| bar.set_message(format!("{n} files")))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (p, e) in &report.errors {
            let shown = escaped(p);
            if e.ends_with(&shown) {
                println!("error: {e}");
            } else {
                println!("error: {e}: {shown}");
            }
        }
        println!(
            "{} files: {} new, {} changed, {} unchanged; {} removed; {} errors",
            report.files,
            report.new,
            report.changed,
            report.unchanged,
            report.removed,
            report.errors.len()
        );
    }
    Ok(if report.errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A 0.05 s mono 8 kHz 16-bit WAV (tiny, valid).
fn tiny_wav(i: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    // Writing to memory cannot fail.
    if let Ok(mut w) = hound::WavWriter::new(&mut out, spec) {
        for k in 0..400usize {
            let _ = w.write_sample(((k * (i % 7 + 1)) % 200) as i16 * 50);
        }
        let _ = w.finalize();
    }
    out.into_inner()
}

/// Run `bench-scan`.
pub fn run_bench(args: BenchScanArgs) -> anyhow::Result<u8> {
    let tmp = tempfile_dir(args.dir)?;
    let root = tmp.0.join("library");
    let t = Instant::now();
    for i in 0..args.files {
        let dir = root.join(format!("artist{:03}/album{:02}", i / 500, (i / 20) % 25));
        if i % 20 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        std::fs::write(dir.join(format!("track{i:06}.wav")), tiny_wav(i))?;
    }
    println!(
        "created {} tiny WAV files in {:.1} s",
        args.files,
        t.elapsed().as_secs_f64()
    );
    let db = tmp.0.join("library.sqlite3");
    let lib = Library::open(&db)?;
    let t = Instant::now();
    let first = lib.scan(std::slice::from_ref(&root), |_| {})?;
    let first_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let again = lib.scan(std::slice::from_ref(&root), |_| {})?;
    let cached_s = t.elapsed().as_secs_f64();
    println!(
        "first scan  {:>7.2} s  ({} new, {} errors)",
        first_s,
        first.new,
        first.errors.len()
    );
    println!(
        "cached scan {:>7.2} s  ({} unchanged; target: well under 60 s for 50 000)",
        cached_s, again.unchanged
    );
    println!("tracks in library: {}", lib.track_count()?);
    if let Some(mib) = peak_rss_mib() {
        println!("peak resident memory: {mib:.1} MiB");
    }
    Ok(EXIT_OK)
}

/// A folder that is removed on drop unless the user named it.
struct TempDir(PathBuf, bool);

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.1
            && let Err(e) = std::fs::remove_dir_all(&self.0)
        {
            eprintln!("warning: cannot remove {} ({e})", self.0.display());
        }
    }
}

fn tempfile_dir(dir: Option<PathBuf>) -> std::io::Result<TempDir> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            Ok(TempDir(d, false))
        }
        None => {
            let d =
                std::env::temp_dir().join(format!("genretag-bench-scan-{}", std::process::id()));
            std::fs::create_dir_all(&d)?;
            Ok(TempDir(d, true))
        }
    }
}
