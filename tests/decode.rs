//! Decoding real files of every supported format, and bad input.

use genretag::audio::{self, read_mono};
use genretag::error::DecodeError;

use crate::common::{
    PACKET_FORMATS, dominant_hz, encode_all, ffmpeg, have, write_au_sine, write_wav_sine,
};

#[test]
fn every_format_decodes_to_the_right_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 44_100, 2.0);
    let au = dir.path().join("tone.au");
    write_au_sine(&au, 440.0, 22_050, 2.0, 2);
    let mut cases = vec![(wav.clone(), 2.0f64), (au, 2.0)];
    if have("ffmpeg") {
        for (name, args, secs) in [
            ("tone.flac", vec![], 2.0),
            ("tone.mp3", vec!["-c:a", "libmp3lame", "-b:a", "128k"], 2.0),
            ("tone.ogg", vec!["-c:a", "libvorbis"], 2.0),
            ("tone_f32.wav", vec!["-c:a", "pcm_f32le"], 2.0),
            ("tone.aiff", vec![], 2.0),
            ("tone.m4a", vec!["-c:a", "aac", "-b:a", "128k"], 2.0),
            ("tone_stereo.flac", vec!["-ac", "2"], 2.0),
        ] {
            let dst = dir.path().join(name);
            assert!(ffmpeg(&wav, &dst, &args), "ffmpeg could not make {name}");
            cases.push((dst, secs));
        }
    }
    for (path, secs) in cases {
        let (x, info) = read_mono(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let dur = x.len() as f64 / info.sample_rate_hz as f64;
        // AAC and MP3 carry encoder padding: allow a little extra.
        assert!((dur - secs).abs() < 0.12, "{}: {dur} s", path.display());
        let f = dominant_hz(&x, info.sample_rate_hz);
        assert!(
            (f - 440.0).abs() < 15.0,
            "{}: peak at {f} Hz",
            path.display()
        );
        assert!(x.iter().all(|v| v.is_finite() && v.abs() <= 1.01));
    }
}

#[test]
fn bad_input_gives_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.mp3");
    std::fs::write(
        &text,
        "this is not audio at all, just some words ".repeat(50),
    )
    .expect("write");
    let empty = dir.path().join("empty.flac");
    std::fs::write(&empty, b"").expect("write");
    let missing = dir.path().join("missing.wav");

    let err = read_mono(&text).expect_err("text is not audio");
    assert!(
        matches!(
            err,
            DecodeError::Unsupported { .. } | DecodeError::Malformed { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("notes.mp3"), "{err}");
    assert!(matches!(read_mono(&empty), Err(DecodeError::Empty { .. })));
    let err = read_mono(&missing).expect_err("missing");
    assert!(matches!(err, DecodeError::Io { .. }));
    assert!(err.to_string().ends_with("missing.wav"), "{err}");
    let err = read_mono(dir.path()).expect_err("a directory");
    assert!(err.to_string().contains("directory"), "{err}");
}

#[test]
fn truncated_files_keep_the_audio_before_the_cut() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 44_100, 4.0);
    for (name, bytes) in encode_all(&wav, dir.path(), &PACKET_FORMATS) {
        // Truncated at 60%: the first part still decodes.
        let cut = dir.path().join(format!("cut_{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).expect("write");
        let (x, info) = read_mono(&cut).unwrap_or_else(|e| panic!("{name} truncated: {e}"));
        let dur = x.len() as f64 / info.sample_rate_hz as f64;
        // As much as ffmpeg itself gets out of the cut file (Ogg's large headers mean 60% of
        // the bytes is well under 60% of the audio).
        let theirs = ffmpeg_decoded_secs(&cut, info.sample_rate_hz);
        assert!(
            dur > 0.9 * theirs && dur > 1.0,
            "{name} truncated: {dur} s, ffmpeg decodes {theirs} s"
        );
    }
}

#[test]
fn corrupt_bytes_mid_file_lose_only_the_damaged_part() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("long.wav");
    write_wav_sine(&wav, 440.0, 44_100, 20.0);
    for (name, mut bytes) in encode_all(&wav, dir.path(), &PACKET_FORMATS) {
        // 300 bytes of garbage in the middle: the packets before and after it survive.
        let mid = bytes.len() / 2;
        bytes[mid..mid + 300].fill(0x5a);
        let corrupt = dir.path().join(format!("corrupt_{name}"));
        std::fs::write(&corrupt, &bytes).expect("write");
        let (x, info) = read_mono(&corrupt).unwrap_or_else(|e| panic!("{name} corrupt: {e}"));
        let dur = x.len() as f64 / info.sample_rate_hz as f64;
        assert!(dur > 17.0, "{name} corrupt: only {dur} s of 20 s survived");
        assert!(x.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn opus_is_reported_as_unsupported() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 48_000, 1.0);
    let opus = dir.path().join("tone.opus");
    if !ffmpeg(&wav, &opus, &["-c:a", "libopus"]) {
        crate::common::skip("ffmpeg has no libopus");
        return;
    }
    let err = audio::open(&opus).err().expect("opus is not decodable");
    assert!(matches!(err, DecodeError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("Opus"), "{err}");
}

/// Seconds of audio ffmpeg decodes from a file (resampled to `rate`, mono).
fn ffmpeg_decoded_secs(path: &std::path::Path, rate: u32) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "quiet", "-i"])
        .arg(path)
        .args(["-ac", "1", "-ar", &rate.to_string(), "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg runs");
    out.stdout.len() as f64 / 4.0 / rate as f64
}

#[test]
fn damaged_files_never_panic() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 22_050, 3.0);
    let mut sources = vec![std::fs::read(&wav).expect("read")];
    for (name, args) in [
        ("t.mp3", vec!["-c:a", "libmp3lame"]),
        ("t.flac", vec![]),
        ("t.ogg", vec!["-c:a", "libvorbis"]),
        ("t.m4a", vec!["-c:a", "aac"]),
        ("t.aiff", vec![]),
    ] {
        let enc = dir.path().join(name);
        assert!(ffmpeg(&wav, &enc, &args));
        sources.push(std::fs::read(&enc).expect("read"));
    }
    let exts = ["wav", "mp3", "flac", "ogg", "m4a", "aiff"];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let opts = genretag::listen::ListenOptions::default();
    let mut outcomes = [0usize; 2];
    for (bytes, ext) in sources.iter().zip(exts) {
        for trial in 0..12 {
            let mut b = bytes.clone();
            if trial % 2 == 0 {
                b.truncate((next() as usize) % b.len());
            }
            for _ in 0..(trial * 3) {
                let i = (next() as usize) % b.len().max(1);
                if let Some(x) = b.get_mut(i) {
                    *x = next() as u8;
                }
            }
            let path = dir.path().join(format!("damaged_{trial}.{ext}"));
            std::fs::write(&path, &b).expect("write");
            // Either outcome is fine; a panic (or a hang) is not.
            match genretag::listen::listen(&path, &opts) {
                Ok(_) => outcomes[0] += 1,
                Err(e) => {
                    assert!(e.to_string().contains("damaged_"), "{e}");
                    outcomes[1] += 1;
                }
            }
        }
    }
    eprintln!(
        "damaged files: {} decoded, {} clean errors",
        outcomes[0], outcomes[1]
    );
}

/// Seconds our decoder gets out of a file.
fn our_secs(path: &std::path::Path) -> f64 {
    let (x, info) = read_mono(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    x.len() as f64 / info.sample_rate_hz as f64
}

#[test]
fn issue14_truncated_aiff_m4a_and_wav_decode_what_is_there() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 22_050, 6.0);
    let aiff = dir.path().join("tone.aiff");
    let m4a = dir.path().join("fast.m4a");
    assert!(ffmpeg(&wav, &aiff, &[]));
    assert!(ffmpeg(
        &wav,
        &m4a,
        &["-c:a", "aac", "-movflags", "+faststart"]
    ));
    for src in [&wav, &aiff, &m4a] {
        let bytes = std::fs::read(src).expect("read");
        for pct in [50usize, 99] {
            let name = src.file_name().expect("name").to_string_lossy();
            let cut = dir.path().join(format!("cut{pct}_{name}"));
            std::fs::write(&cut, &bytes[..bytes.len() * pct / 100]).expect("write");
            let theirs = ffmpeg_decoded_secs(&cut, 22_050);
            let ours = our_secs(&cut);
            assert!(
                ours > theirs - 0.1 && theirs > 0.5,
                "{name} cut at {pct}%: we decode {ours:.2} s, ffmpeg {theirs:.2} s"
            );
        }
    }
    // An M4A whose index (moov) sat at the end is lost with it: say so in words.
    let late = dir.path().join("late.m4a");
    assert!(ffmpeg(&wav, &late, &["-c:a", "aac"]));
    let bytes = std::fs::read(&late).expect("read");
    let cut = dir.path().join("cut_late.m4a");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let err = read_mono(&cut).expect_err("nothing decodable");
    assert!(
        err.to_string().contains("cut short") && err.to_string().contains("moov"),
        "{err}"
    );
}

#[test]
fn issue14_wav_with_placeholder_or_oversized_lengths_decodes_fully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("tone.wav");
    write_wav_sine(&wav, 440.0, 8_000, 3.0);
    let good = std::fs::read(&wav).expect("read");
    let data_at = good
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk");
    for (name, riff, data) in [
        ("streamed.wav", Some(u32::MAX), u32::MAX),
        ("zero.wav", Some(0), 0),
        ("claims_4gb.wav", None, u32::MAX - 1),
    ] {
        let mut b = good.clone();
        if let Some(r) = riff {
            b[4..8].copy_from_slice(&r.to_le_bytes());
        }
        b[data_at + 4..data_at + 8].copy_from_slice(&data.to_le_bytes());
        let p = dir.path().join(name);
        std::fs::write(&p, &b).expect("write");
        let secs = our_secs(&p);
        assert!((secs - 3.0).abs() < 0.01, "{name}: {secs} s of 3 s");
    }
}

#[test]
fn issue14_corrupt_packets_are_counted_for_every_format() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("long.wav");
    write_wav_sine(&wav, 440.0, 44_100, 20.0);
    let formats: Vec<(&str, &[&str])> = vec![
        ("t.mp3", &["-c:a", "libmp3lame"]),
        ("t.flac", &[]),
        ("t.ogg", &["-c:a", "libvorbis"]),
        ("t.m4a", &["-c:a", "aac"]),
    ];
    for (name, mut bytes) in encode_all(&wav, dir.path(), &formats) {
        let intact = dir.path().join(format!("intact_{name}"));
        std::fs::write(&intact, &bytes).expect("write");
        let mid = bytes.len() / 2;
        bytes[mid..mid + 300].fill(0x5a);
        let corrupt = dir.path().join(format!("corrupt_{name}"));
        std::fs::write(&corrupt, &bytes).expect("write");
        let skipped = |p: &std::path::Path| {
            let mut s = audio::open(p).unwrap_or_else(|e| panic!("{name}: {e}"));
            while s
                .next_chunk()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .is_some()
            {}
            s.skipped_packets()
        };
        assert_eq!(skipped(&intact), 0, "{name}: intact file reported damaged");
        assert!(skipped(&corrupt) > 0, "{name}: corrupt packets not counted");
        // ...and the user sees the warning.
        let out = crate::common::genretag()
            .args(["classify"])
            .arg(&corrupt)
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("corrupt packet"), "{name}: {text}");
    }
}

/// A two-minute signal that changes over time (a melody of tones over a beat of noise
/// bursts, its timbre drifting), so every patch of it looks different.
fn changing_music(rate: u32, secs: f32) -> Vec<f32> {
    let n = (rate as f32 * secs) as usize;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let note = 220.0 * 2f32.powf(((t * 2.0) as usize % 12) as f32 / 12.0);
            let drift = 1.0 + (t / 40.0).sin();
            let tone = 0.3 * (std::f32::consts::TAU * note * t).sin()
                + 0.1 * drift * (std::f32::consts::TAU * 3.0 * note * t).sin();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let beat = if (t * 4.0).fract() < 0.1 { 0.4 } else { 0.02 };
            tone + beat * noise
        })
        .collect()
}

/// Largest and mean absolute difference of two equally long slices.
fn differences(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs());
    let worst = d.clone().fold(0.0f32, f32::max);
    (worst, d.sum::<f32>() / a.len().max(1) as f32)
}

/// Issue 12: a long file is heard by seeking to each analysed patch, and what is heard is
/// what a decode from the start hears, in every format that can seek; formats that
/// cannot fall back to a whole decode; adaptive listening's first look leaves the rest
/// for later and hears the same patches then.
#[test]
fn issue12_seeking_hears_what_a_whole_decode_hears() {
    use genretag::listen::{ListenOptions, SEEK_MIN_PATCHES, listen};
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("long.wav");
    crate::common::write_wav(&wav, &changing_music(44_100, 120.0), 44_100);
    // Largest and mean difference of the log-mel patches allowed. (Measured: zero for
    // all but AAC, whose decoder fills some high bands with random noise (perceptual
    // noise substitution): a decode that starts elsewhere draws other noise there, so
    // single values differ by up to about 1 while the mean stays below 1e-3.)
    let mut cases = vec![(wav.clone(), 1e-3f32, 1e-4f32)];
    if have("ffmpeg") {
        for (name, args, worst, mean) in [
            ("long.flac", vec![], 1e-3f32, 1e-4f32),
            (
                "long.mp3",
                vec!["-c:a", "libmp3lame", "-b:a", "192k"],
                0.05,
                1e-3,
            ),
            ("long.ogg", vec!["-c:a", "libvorbis"], 0.05, 1e-3),
            (
                "long.m4a",
                vec!["-c:a", "aac", "-b:a", "192k"],
                f32::INFINITY,
                2e-3,
            ),
            ("long_48k.flac", vec!["-ar", "48000"], 1e-3, 1e-4),
        ] {
            let dst = dir.path().join(name);
            assert!(ffmpeg(&wav, &dst, &args), "ffmpeg could not make {name}");
            cases.push((dst, worst, mean));
        }
    } else {
        crate::common::skip("issue12 seeking: ffmpeg missing, WAV only");
    }
    let whole = ListenOptions {
        seek: false,
        ..ListenOptions::default()
    };
    for (path, worst_ok, mean_ok) in &cases {
        let a = listen(path, &whole).expect("whole decode");
        let b = listen(path, &ListenOptions::default()).expect("seeking decode");
        assert!(a.total_patches >= SEEK_MIN_PATCHES, "{}", a.total_patches);
        assert_eq!(a.indices, b.indices, "{}", path.display());
        assert_eq!(a.total_patches, b.total_patches, "{}", path.display());
        assert!(
            b.activity.is_some(),
            "{} was not heard by seeking",
            path.display()
        );
        let (worst, mean) = differences(&a.patches, &b.patches);
        assert!(
            worst <= *worst_ok && mean <= *mean_ok,
            "{}: log-mel differs by {worst} worst, {mean} mean",
            path.display()
        );
        for (x, y) in a.kept_db.iter().zip(&b.kept_db) {
            assert!((x - y).abs() < 0.05, "{}: {x} vs {y} dB", path.display());
        }
        assert!(
            (a.duration_s - b.duration_s).abs() < 0.1,
            "{} vs {}",
            a.duration_s,
            b.duration_s
        );
        assert!((a.active_s - b.active_s).abs() < 0.05 * a.duration_s);

        // Adaptive listening's first look: 4 patches now, 6 later, the same in the end.
        let first = listen(
            path,
            &ListenOptions {
                first_look: Some(4),
                ..ListenOptions::default()
            },
        )
        .expect("first look");
        assert_eq!((first.len(), first.pending.len()), (4, 6));
        let rest = first.hear_rest().expect("the rest");
        assert_eq!(rest.indices, b.indices);
        let (worst, mean) = differences(&rest.patches, &b.patches);
        assert!(
            worst <= *worst_ok && mean <= *mean_ok,
            "{}: heard in two steps, log-mel differs by {worst} worst, {mean} mean",
            path.display()
        );
        assert!(rest.pending.is_empty());
    }

    // A format that cannot seek here (Sun .au): decoded whole, the same as without seeking.
    let au = dir.path().join("long.au");
    if ffmpeg(&wav, &au, &["-c:a", "pcm_s16be"]) {
        let a = listen(&au, &whole).expect("au");
        let b = listen(&au, &ListenOptions::default()).expect("au");
        assert!(b.activity.is_none());
        assert_eq!(differences(&a.patches, &b.patches), (0.0, 0.0));
        assert_eq!(a.indices, b.indices);
    }
}
