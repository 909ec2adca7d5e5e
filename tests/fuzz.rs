//! Fuzzing the decoder entry point (`audio::open`, decoding to the end) and the tag
//! reader (`read_tags`) with mutated copies of generated files of every format.
//!
//! Bounded in the suite: `GENRETAG_FUZZ_ITERS` inputs (default 300), from a fixed seed
//! (`GENRETAG_FUZZ_SEED`), so a run is repeatable. A finding is an input that
//! - escapes as a panic (the decoder and tag library are guarded; this fails the test),
//! - takes longer than [`LIMIT`] (a hang; fails the test), or
//! - trips a guard (a library panicked on it and the guard turned that into an error:
//!   not a failure, but worth keeping).
//!
//! With `GENRETAG_FUZZ_SAVE=1` findings are written to `tests/fuzz_regressions/`; the
//! files there (generated audio, mutated) are replayed by
//! `fuzz_regressions_stay_clean_errors` on every run.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use genretag::library::read_tags;

use crate::common::{ffmpeg, have, write_au_sine, write_wav_sine};

/// Longest time one input may take (decoding plus tag reading).
const LIMIT: Duration = Duration::from_secs(30);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What happened to one input.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Decoded (possibly with errors) and tags read or refused: all clean. Says whether
    /// any audio came out and whether the tags could be read, to show how deep the
    /// inputs got.
    Clean {
        /// At least one sample decoded.
        audio: bool,
        /// `read_tags` succeeded.
        tags: bool,
    },
    /// A library panicked and a guard turned it into an error.
    GuardTripped(String),
}

/// Decode `path` to the end and read its tags; a panic escaping either is an `Err`.
fn exercise(path: &Path) -> Outcome {
    let mut tripped = Vec::new();
    let mut audio = false;
    match genretag::audio::open(path) {
        Ok(mut s) => loop {
            match s.next_chunk() {
                Ok(Some(c)) => audio |= !c.is_empty(),
                Ok(None) => break,
                Err(e) => {
                    if e.to_string().contains("crashed") {
                        tripped.push(e.to_string());
                    }
                    break;
                }
            }
        },
        Err(e) if e.to_string().contains("crashed") => tripped.push(e.to_string()),
        Err(_) => {}
    }
    let tags = read_tags(path);
    if let Err(e) = &tags
        && e.to_string().contains("crashed")
    {
        tripped.push(e.to_string());
    }
    if tripped.is_empty() {
        Outcome::Clean {
            audio,
            tags: tags.is_ok(),
        }
    } else {
        Outcome::GuardTripped(tripped.join("; "))
    }
}

/// Run [`exercise`] on a thread: `Ok(outcome)`, or `Err` for a panic or a hang.
fn exercise_bounded(path: &Path) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| exercise(&p));
        // The receiver is gone only if we already reported a hang.
        let _receiver_gone = tx.send(r);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(_)) => Err("a panic escaped the guards".into()),
        Err(_) => Err(format!("no result after {LIMIT:?} (hang)")),
    }
}

/// Generated seed files: (extension, bytes).
fn seeds(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let wav = dir.join("seed.wav");
    write_wav_sine(&wav, 440.0, 22_050, 0.3);
    let au = dir.join("seed.au");
    write_au_sine(&au, 440.0, 8_000, 0.3, 2);
    let mut out = vec![
        ("wav".to_string(), std::fs::read(&wav).expect("read")),
        ("au".to_string(), std::fs::read(&au).expect("read")),
    ];
    if have("ffmpeg") {
        for (ext, args) in [
            ("mp3", vec!["-c:a", "libmp3lame"]),
            ("flac", vec![]),
            ("ogg", vec!["-c:a", "libvorbis"]),
            ("m4a", vec!["-c:a", "aac"]),
            ("aiff", vec!["-write_id3v2", "1"]),
            ("wav", vec!["-write_id3v2", "1"]),
            (
                "mp3",
                vec!["-c:a", "libmp3lame", "-id3v2_version", "3", "-ac", "2"],
            ),
            ("m4a", vec!["-c:a", "aac", "-movflags", "+faststart"]),
            ("ogg", vec!["-c:a", "libvorbis", "-ar", "44100"]),
        ] {
            let p = dir.join(format!("seed_ffmpeg.{ext}"));
            let mut all = args.clone();
            all.extend(["-metadata", "title=Fuzz", "-metadata", "genre=Seed"]);
            assert!(ffmpeg(&wav, &p, &all), "{ext}");
            out.push((ext.to_string(), std::fs::read(&p).expect("read")));
        }
    }
    out
}

const INTERESTING_U32: [u32; 8] = [0, 1, 4, 0x7f, 0x8000, 0x7fff_ffff, 0xffff_fffe, 0xffff_ffff];

/// One mutation of `bytes`.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(0);
        }
        match rng.below(7) {
            0 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(b.len());
                b[i] = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
            }
            2 => {
                // A length/count field in the headers.
                let i = rng.below(b.len().min(512).saturating_sub(4).max(1));
                let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                for (k, x) in bytes.iter().enumerate() {
                    if let Some(slot) = b.get_mut(i + k) {
                        *slot = *x;
                    }
                }
            }
            3 => {
                let n = rng.below(b.len());
                b.truncate(n.max(1));
            }
            4 => {
                // Duplicate a span somewhere else.
                let start = rng.below(b.len());
                let len = rng.below(256).min(b.len() - start);
                let span = b[start..start + len].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, span);
            }
            5 => {
                let at = rng.below(b.len());
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
            _ => {
                // Garbage over a run of bytes in the middle.
                let start = rng.below(b.len());
                let end = (start + rng.below(400)).min(b.len());
                for x in &mut b[start..end] {
                    *x = rng.next() as u8;
                }
            }
        }
    }
    b
}

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions")
}

#[test]
fn issue14_fuzz_decoder_and_tag_reader() {
    let iters = env_u64("GENRETAG_FUZZ_ITERS", 300);
    let mut rng = Rng(env_u64("GENRETAG_FUZZ_SEED", 0x5eed_f00d_dead_beef) | 1);
    let save = std::env::var("GENRETAG_FUZZ_SAVE").is_ok_and(|v| v == "1");
    let work = tempfile::tempdir().expect("tempdir");
    let seeds = seeds(work.path());
    let (mut clean, mut tripped, mut failures) = (0usize, Vec::new(), Vec::new());
    let (mut with_audio, mut with_tags) = (0usize, 0usize);
    for i in 0..iters {
        let (ext, seed) = &seeds[i as usize % seeds.len()];
        let input = mutate(seed, &mut rng);
        // Now and then under another extension: the sniffing paths get fuzzed too.
        let ext = if rng.below(8) == 0 {
            "mp3"
        } else {
            ext.as_str()
        };
        let path = work.path().join(format!("in{i}.{ext}"));
        std::fs::write(&path, &input).expect("write");
        let outcome = exercise_bounded(&path);
        let keep = |what: &str| {
            let name = format!(
                "{what}-{}.{ext}",
                &genretag::library::files::bytes_hash(&input)[..16]
            );
            if save {
                std::fs::create_dir_all(regressions_dir()).expect("mkdir");
                std::fs::write(regressions_dir().join(&name), &input).expect("save");
            }
            name
        };
        match outcome {
            Ok(Outcome::Clean { audio, tags }) => {
                clean += 1;
                with_audio += usize::from(audio);
                with_tags += usize::from(tags);
            }
            Ok(Outcome::GuardTripped(why)) => tripped.push((keep("guard"), why)),
            Err(why) => failures.push((keep("crash"), why)),
        }
        std::fs::remove_file(&path).expect("rm");
    }
    eprintln!(
        "fuzz: {iters} inputs from {} seeds: {clean} clean ({with_audio} still gave audio, \
         {with_tags} still gave tags), {} tripped a guard, {} failures",
        seeds.len(),
        tripped.len(),
        failures.len()
    );
    for (name, why) in &tripped {
        eprintln!("  guard: {name}: {why}");
    }
    assert!(
        failures.is_empty(),
        "inputs that crash or hang (rerun with GENRETAG_FUZZ_SAVE=1 to keep them): {failures:?}"
    );
    assert_eq!(clean + tripped.len(), iters as usize);
}

#[test]
fn fuzz_regressions_stay_clean_errors() {
    let dir = regressions_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no saved fuzz findings in {}", dir.display());
        return;
    };
    let mut n = 0;
    for e in entries {
        let path = e.expect("entry").path();
        let outcome = exercise_bounded(&path);
        assert!(outcome.is_ok(), "{}: {outcome:?}", path.display());
        n += 1;
    }
    eprintln!("replayed {n} saved fuzz findings");
}
