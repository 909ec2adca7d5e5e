//! Shared helpers: the shared data folder, generated fixtures, tools.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `genretag` binary under test.
pub fn genretag() -> Command {
    Command::new(env!("CARGO_BIN_EXE_genretag"))
}

/// Report a skipped test (or part of one): printed, and appended to
/// `target/tmp/test-skips.txt`, which `scripts/test.sh` counts and lists after the run
/// (cargo's output capture would otherwise hide the message).
pub fn skip(why: &str) {
    eprintln!("SKIP: {why}");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-skips.txt");
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_string();
    let line = format!("{test}: {why}\n");
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}

/// `../shared` beside the repository, or `None` (with a skip message) outside CI.
/// Under CI (`CI=true`) a missing folder is a failure.
pub fn shared(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(sub);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the shared data folder is missing: {}",
            p.display()
        );
    }
    skip(&format!(
        "{} not found (tests that need ../shared are skipped outside CI)",
        p.display()
    ));
    None
}

/// True if `tool` runs; under CI a missing tool is a failure.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("-version").output().is_ok();
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but {tool} is not installed");
        }
        skip(&format!("{tool} not installed"));
    }
    ok
}

/// A mono 16-bit WAV of `samples` at `rate` (the one WAV writer of the tests: hound).
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .expect("write sample");
    }
    w.finalize().expect("finish wav");
}

/// A mono sine at `freq` Hz, `secs` long, 16-bit WAV.
pub fn write_wav_sine(path: &Path, freq: f32, rate: u32, secs: f32) {
    let n = (rate as f32 * secs) as usize;
    let x: Vec<f32> = (0..n)
        .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
        .collect();
    write_wav(path, &x, rate);
}

/// A Sun .au file (16-bit big-endian PCM) with a sine.
pub fn write_au_sine(path: &Path, freq: f32, rate: u32, secs: f32, channels: u32) {
    let n = (rate as f32 * secs) as usize;
    let mut data = Vec::new();
    data.extend_from_slice(b".snd");
    for w in [24u32, (2 * n * channels as usize) as u32, 3, rate, channels] {
        data.extend_from_slice(&w.to_be_bytes());
    }
    for i in 0..n {
        let v = (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5;
        for _ in 0..channels {
            data.extend_from_slice(&((v * 32767.0) as i16).to_be_bytes());
        }
    }
    std::fs::write(path, data).expect("write au");
}

/// Encode `src` to `dst` with ffmpeg and extra codec args.
pub fn ffmpeg(src: &Path, dst: &Path, args: &[&str]) -> bool {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(src)
        .args(args)
        .arg(dst)
        .status();
    status.is_ok_and(|s| s.success())
}

/// Dominant frequency of a mono signal (Hz), via a plain DFT scan over a window.
pub fn dominant_hz(x: &[f32], rate: u32) -> f32 {
    let n = 4096.min(x.len());
    let start = (x.len() - n) / 2;
    let w = &x[start..start + n];
    let mut best = (0.0f32, 0usize);
    for k in 1..n / 2 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &v) in w.iter().enumerate() {
            let a = 2.0 * std::f64::consts::PI * k as f64 * i as f64 / n as f64;
            re += v as f64 * a.cos();
            im -= v as f64 * a.sin();
        }
        let p = (re * re + im * im) as f32;
        if p > best.0 {
            best = (p, k);
        }
    }
    best.1 as f32 * rate as f32 / n as f32
}

/// The packet-based encodings the damage tests exercise: file name and ffmpeg arguments.
pub const PACKET_FORMATS: [(&str, &[&str]); 3] = [
    ("t.mp3", &["-c:a", "libmp3lame"]),
    ("t.flac", &[]),
    ("t.ogg", &["-c:a", "libvorbis"]),
];

/// Encode `src` into each format in `dir`; returns (file name, encoded bytes).
pub fn encode_all(src: &Path, dir: &Path, formats: &[(&str, &[&str])]) -> Vec<(String, Vec<u8>)> {
    formats
        .iter()
        .map(|(name, args)| {
            let dst = dir.join(name);
            assert!(ffmpeg(src, &dst, args), "ffmpeg could not make {name}");
            (
                name.to_string(),
                std::fs::read(&dst).expect("read encoded file"),
            )
        })
        .collect()
}
