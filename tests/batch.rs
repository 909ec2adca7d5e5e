//! Issue 13: batches at any scale. `--files-from` (lines and NUL-separated, from stdin),
//! `--jsonl` streaming that survives kill -9, the analysis cache across runs, `--shard`
//! parts that are disjoint and cover the whole, `tag --from-jsonl` with undo, the
//! installed binary finding its models from anywhere, and the beets plugin round trip.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{ffmpeg, genretag, have, write_wav_sine};

/// Tones long enough for the model to listen (1.5 s each).
fn tones(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let p = dir.join(n);
            write_wav_sine(&p, 220.0 + 55.0 * i as f32, 22_050, 1.5);
            p
        })
        .collect()
}

/// Run `genretag args` with `stdin` fed; (exit code, stdout lines parsed as JSON).
fn run_jsonl(args: &[&str], extra: &[&Path], stdin: &[u8]) -> (i32, Vec<Value>) {
    let mut child = genretag()
        .args(args)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("feed stdin");
    let out = child.wait_with_output().expect("finishes");
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect();
    if !out.status.success() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), lines)
}

fn track_paths(lines: &[Value]) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| l["type"] == "track")
        .map(|l| l["path"].as_str().expect("path").to_string())
        .collect()
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().expect("a summary line");
    assert_eq!(last["type"], "summary", "{last}");
    assert_eq!(last["schema"], "genretag.classify/2");
    &last["summary"]
}

#[test]
fn issue13_files_from_stdin_with_odd_names_lines_and_nul() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tones(
        dir.path(),
        &["a b.wav", "ünïcødé ♫.wav", "-dash.wav", "new\nline.wav"],
    );
    // Lines: the name with a newline cannot be given this way; the others can.
    let list: String = files[..3]
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    let (code, lines) = run_jsonl(
        &["classify", "--jsonl", "--no-cache", "--files-from", "-"],
        &[],
        list.as_bytes(),
    );
    assert_eq!(code, 0, "{lines:?}");
    let want: BTreeSet<String> = files[..3].iter().map(|p| p.display().to_string()).collect();
    assert_eq!(track_paths(&lines), want);
    for l in lines.iter().filter(|l| l["type"] == "track") {
        assert_eq!(l["ok"], true, "{l}");
        assert_eq!(l["schema"], "genretag.classify/2");
        assert!(l["model"].as_str().is_some_and(|m| !m.is_empty()), "{l}");
        let kind = l["decision"]["kind"].as_str().expect("decision");
        assert!(kind == "genre" || kind == "unsure", "{l}");
    }
    assert_eq!(summary(&lines)["ok"], 3);

    // NUL-separated (`find -print0`), every name, with -0.
    let mut nul = Vec::new();
    for p in &files {
        nul.extend_from_slice(p.as_os_str().as_encoded_bytes());
        nul.push(0);
    }
    let (code, lines) = run_jsonl(
        &[
            "classify",
            "--jsonl",
            "--no-cache",
            "--files-from",
            "-",
            "-0",
        ],
        &[],
        &nul,
    );
    assert_eq!(code, 0, "{lines:?}");
    let want: BTreeSet<String> = files.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(track_paths(&lines), want);
    assert_eq!(summary(&lines)["ok"], 4);

    // A list naming a missing file: reported with its name, the rest goes on.
    let list = format!(
        "{}\n{}\n",
        files[0].display(),
        dir.path().join("gone.mp3").display()
    );
    let (code, lines) = run_jsonl(
        &["classify", "--jsonl", "--no-cache", "--files-from", "-"],
        &[],
        list.as_bytes(),
    );
    assert_eq!(code, 1);
    let failed: Vec<&Value> = lines.iter().filter(|l| l["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("gone.mp3")),
        "{:?}",
        failed[0]
    );
    assert_eq!(summary(&lines)["failed"], 1);
}

#[test]
fn issue13_jsonl_lines_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = (0..60).map(|i| format!("t{i:02}.wav")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    tones(dir.path(), &refs);
    let mut child = genretag()
        .args(["classify", "--jsonl", "--no-cache"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut raw = Vec::new();
    // Read a few lines as they come (they are flushed one by one), then kill -9.
    for _ in 0..3 {
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).expect("read");
        assert!(line.ends_with(b"\n"), "a line arrives whole: {line:?}");
        raw.extend(line);
    }
    child.kill().expect("kill -9");
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut rest).expect("read rest");
    child.wait().expect("reaped");
    raw.extend(rest);
    let text = String::from_utf8(raw).expect("utf-8");
    let mut whole = 0;
    for line in text.split_inclusive('\n') {
        // Every line printed before the kill is complete, valid JSON.
        assert!(line.ends_with('\n'), "partial line after kill: {line:?}");
        let v: Value = serde_json::from_str(line).expect("valid JSON line");
        assert_eq!(v["type"], "track");
        whole += 1;
    }
    assert!(
        (3..60).contains(&whole),
        "{whole} lines before the kill (a kill mid-run must leave fewer than 60)"
    );
}

#[test]
fn issue13_shards_are_disjoint_cover_the_whole_and_reuse_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = (0..12).map(|i| format!("s{i}.wav")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    tones(dir.path(), &refs);
    let db = dir.path().join("lib.sqlite3");
    let db_s = db.display().to_string();
    let root = dir.path().display().to_string();

    let (code, whole) = run_jsonl(&["classify", "--jsonl", "--db", &db_s], &[dir.path()], b"");
    assert_eq!(code, 0);
    let all = track_paths(&whole);
    assert_eq!(all.len(), 12);
    assert_eq!(summary(&whole)["analysed"], 12);
    assert_eq!(summary(&whole)["cached"], 0);

    let mut union = BTreeSet::new();
    let mut cached = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let (code, part) = run_jsonl(
            &[
                "classify",
                "--jsonl",
                "--db",
                &db_s,
                "--shard",
                &shard,
                "--shard-root",
                &root,
            ],
            &[dir.path()],
            b"",
        );
        assert_eq!(code, 0);
        let paths = track_paths(&part);
        assert!(union.is_disjoint(&paths), "shard {shard} overlaps");
        union.extend(paths);
        // A re-run analyses nothing: every answer comes from the cache.
        assert_eq!(summary(&part)["analysed"], 0, "{shard}");
        cached += summary(&part)["cached"].as_u64().expect("count");
        // Answers from the cache are the answers of the first run.
        for l in part.iter().filter(|l| l["type"] == "track") {
            assert_eq!(l["cached"], true);
            let first = whole
                .iter()
                .find(|w| w["path"] == l["path"])
                .expect("in the whole run");
            assert_eq!(first["decision"], l["decision"]);
        }
    }
    assert_eq!(union, all, "the shards' union is the whole");
    assert_eq!(cached, 12);

    // A bad shard is refused with the reason.
    let out = genretag()
        .args(["classify", "--shard", "4/3"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 <= K <= N"));
}

fn ffprobe_genre(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format_tags=genre"])
        .args(["-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn issue13_tag_from_jsonl_writes_what_was_classified_and_undoes() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tones(dir.path(), &["src1.wav", "src2.wav"]);
    let music = dir.path().join("music");
    std::fs::create_dir(&music).expect("mkdir");
    let mut flacs = Vec::new();
    for (i, s) in src.iter().enumerate() {
        // The second name is not UTF-8 (Latin-1 "café"): it must survive the JSON lines.
        let f = if i == 0 {
            music.join("t0.flac")
        } else {
            use std::os::unix::ffi::OsStrExt;
            music.join(std::ffi::OsStr::from_bytes(b"caf\xe9.flac"))
        };
        assert!(ffmpeg(s, &f, &["-metadata", "genre=Old"]));
        flacs.push(f);
    }
    // Silence: the model is always unsure of it, whatever the threshold.
    let quiet = music.join("quiet.flac");
    let silent = dir.path().join("silent.wav");
    crate::common::write_wav(&silent, &vec![0.0; 22_050 * 2], 22_050);
    assert!(ffmpeg(&silent, &quiet, &["-metadata", "genre=Old"]));

    // Classify (anywhere: here, on this machine); --min-prob 0 makes the tones sure.
    let (code, lines) = run_jsonl(
        &["classify", "--jsonl", "--no-cache", "--min-prob", "0"],
        &[&music],
        b"",
    );
    assert_eq!(code, 0);
    let results = dir.path().join("results.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&results, &text).expect("write results");
    // The exact path of a line: path_bytes (hex) when the name is not UTF-8.
    let line_path = |l: &Value| -> PathBuf {
        genretag::library::paths::from_json(
            l["path"].as_str().expect("path"),
            l["path_bytes"].as_str(),
        )
        .expect("valid path_bytes")
    };
    let expect = |p: &Path| -> Option<String> {
        let l = lines
            .iter()
            .find(|l| l["type"] == "track" && line_path(l) == p)
            .expect("classified");
        let label = l["decision"]["label"].as_str()?;
        l["genres"]
            .as_array()?
            .iter()
            .find(|g| g["label"] == label)
            .and_then(|g| g["name"].as_str())
            .map(str::to_string)
    };

    let db = dir.path().join("lib.sqlite3");
    // A preview from a pipe (standard input), and one with a stricter --min-prob: the
    // tones' recorded decisions are below 0.9999, so they become unsure.
    let db_arg = db.to_str().expect("utf-8 temporary path");
    let preview = |extra: &[&str]| -> Value {
        let args: Vec<&str> = ["tag", "--jsonl", "--from-jsonl", "-", "--db", db_arg]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let (code, lines) = run_jsonl(&args, &[], text.as_bytes());
        assert_eq!(code, 0);
        lines.last().expect("a summary")["summary"].clone()
    };
    assert_eq!(preview(&[])["would_tag"], 2);
    let strict = preview(&["--min-prob", "0.9999"]);
    assert_eq!(strict["would_tag"], 0, "{strict}");
    assert_eq!(strict["unsure"], 3, "{strict}");

    let out = genretag()
        .args(["tag", "--write", "--jsonl", "--from-jsonl"])
        .arg(&results)
        .arg("--db")
        .arg(&db)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let last = report.last().expect("summary");
    assert_eq!(last["type"], "summary");
    assert_eq!(last["summary"]["tagged"], 2, "{last}");
    assert_eq!(last["summary"]["unsure"], 1, "{last}");
    for f in &flacs {
        let name = expect(f).expect("a tone is answered at --min-prob 0");
        assert_eq!(ffprobe_genre(f), name, "{}", f.display());
    }
    assert_eq!(ffprobe_genre(&quiet), "Old", "unsure: left alone");

    let undo = genretag()
        .arg("undo")
        .arg("--db")
        .arg(&db)
        .output()
        .expect("runs");
    assert!(undo.status.success());
    for f in flacs.iter().chain([&quiet]) {
        assert_eq!(ffprobe_genre(f), "Old", "{}", f.display());
    }

    // A results file whose last line was cut (a killed classify): the whole lines are
    // used and the cut one is reported; a bad line in the middle is an error naming it.
    let first_line = text.find('\n').expect("lines") + 1;
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &text[..first_line + 10]).expect("write");
    let out = genretag()
        .args(["tag", "--json", "--from-jsonl"])
        .arg(&cut)
        .arg("--db")
        .arg(&db)
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete last line"));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(1), "{doc}");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{{oops\n{text}")).expect("write");
    let out = genretag()
        .args(["tag", "--from-jsonl"])
        .arg(&bad)
        .arg("--db")
        .arg(&db)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:1"));
}

#[test]
fn issue13_installed_binary_finds_its_models_from_any_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A binary alone in a bin/ folder, as `cargo install` leaves it: no models/ beside it.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let exe = bin.join("genretag");
    // A hard link where the file system allows (the debug binary is large), else a copy.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_genretag"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_genretag"), &exe).expect("copy binary");
    }
    let cache = dir.path().join("cache");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let tone = tones(&elsewhere, &["x.wav"]).remove(0);
    let run = || {
        Command::new(&exe)
            .current_dir(&elsewhere)
            .env("XDG_CACHE_HOME", &cache)
            .env_remove("GENRETAG_MODELS")
            .args(["classify", "--json", "--no-cache", "x.wav"])
            .output()
            .expect("runs")
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["summary"]["ok"], 1, "{doc}");
    // The built-in models were unpacked once into the cache folder ...
    let unpacked: Vec<PathBuf> = std::fs::read_dir(cache.join("genretag"))
        .expect("cache folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    assert!(unpacked[0].join("default/model.json").is_file());
    assert!(unpacked[0].join("musicnn_msd.bpk").is_file());
    // ... and give the same model and answer as the source tree's.
    let here = genretag()
        .args(["classify", "--json", "--no-cache"])
        .arg(&tone)
        .output()
        .expect("runs");
    let here: Value = serde_json::from_slice(&here.stdout).expect("json");
    assert_eq!(doc["model"]["id"], here["model"]["id"]);
    assert_eq!(doc["tracks"][0]["decision"], here["tracks"][0]["decision"]);
    // A second run reuses the unpacked copy.
    assert!(run().status.success());
    assert_eq!(
        std::fs::read_dir(cache.join("genretag"))
            .expect("cache")
            .count(),
        1
    );
}

/// `beet` from the venv `scripts/setup.sh --test` makes, or from PATH.
fn beet() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv-beets/bin/beet");
    if venv.is_file() {
        return Some(venv);
    }
    if Command::new("beet").arg("version").output().is_ok() {
        return Some(PathBuf::from("beet"));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but beets is not installed (scripts/setup.sh --test installs it)");
    }
    crate::common::skip("beets not installed (scripts/setup.sh --test installs it)");
    None
}

#[test]
fn issue13_beets_plugin_round_trip() {
    let Some(beet) = beet() else {
        return;
    };
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let incoming = dir.path().join("incoming");
    std::fs::create_dir(&incoming).expect("mkdir");
    let src = tones(dir.path(), &["a.wav", "b.wav"]);
    for (i, s) in src.iter().enumerate() {
        let f = incoming.join(format!("song{i}.mp3"));
        assert!(ffmpeg(
            s,
            &f,
            &[
                "-c:a",
                "libmp3lame",
                "-metadata",
                &format!("title=Song {i}"),
                "-metadata",
                "artist=Tester",
                "-metadata",
                "album=Tones",
            ]
        ));
    }
    let silent = dir.path().join("silent.wav");
    crate::common::write_wav(&silent, &vec![0.0; 22_050 * 2], 22_050);
    assert!(ffmpeg(
        &silent,
        &incoming.join("quiet.mp3"),
        &[
            "-c:a",
            "libmp3lame",
            "-metadata",
            "title=Quiet",
            "-metadata",
            "artist=Tester",
            "-metadata",
            "album=Tones",
            "-metadata",
            "genre=Old",
        ]
    ));
    let beetsdir = dir.path().join("beets");
    std::fs::create_dir(&beetsdir).expect("mkdir");
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/beets/beetsplug");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_genretag"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    std::fs::write(
        beetsdir.join("config.yaml"),
        format!(
            "directory: {lib}\nlibrary: {db}\npluginpath: [{plugin}]\nplugins: [genretag]\n\
             import:\n  copy: yes\n  write: yes\n  quiet: yes\n\
             genretag:\n  binary: {bin}\n  min_prob: 0.0\n  force: yes\n",
            lib = dir.path().join("lib").display(),
            db = dir.path().join("beets.db").display(),
            plugin = plugin.display(),
            bin = bin_dir.join("genretag").display(),
        ),
    )
    .expect("config");
    let beet_cmd = |args: &[&str]| {
        let out = Command::new(&beet)
            .env("BEETSDIR", &beetsdir)
            .env("XDG_DATA_HOME", dir.path().join("xdg"))
            .args(args)
            .output()
            .expect("beet runs");
        assert!(
            out.status.success(),
            "beet {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let incoming_s = incoming.display().to_string();
    beet_cmd(&["import", "-A", &incoming_s]);
    // beets 2.14+ keeps genres in the list field `genres`, earlier ones in `genre`: an
    // unknown field is printed as written, so take the one that is not.
    let list = || -> Vec<String> {
        let out = beet_cmd(&["ls", "-f", "$title|$genres|$genre|$genretag_confidence"]);
        let mut rows: Vec<String> = out
            .lines()
            .map(|row| {
                let p: Vec<&str> = row.split('|').collect();
                assert_eq!(p.len(), 4, "{row}");
                let genre = if p[1].starts_with('$') { p[2] } else { p[1] };
                format!("{}|{}|{}", p[0], genre, p[3])
            })
            .collect();
        rows.sort();
        rows
    };
    let rows = list();
    let names: Vec<String> = genretag::model::Taxonomy::shipped()
        .genres
        .iter()
        .map(|g| g.name.clone())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        let parts: Vec<&str> = row.split('|').collect();
        if parts[0] == "Quiet" {
            // genretag is unsure of silence: beets keeps the file's genre.
            assert_eq!(parts[1], "Old", "{row}");
        } else {
            assert!(names.iter().any(|n| n == parts[1]), "{row}");
            let conf: f32 = parts[2].parse().expect("confidence");
            assert!((0.0..=1.0).contains(&conf), "{row}");
        }
    }
    // The genre beets stored was also written into the library's copy (import.write),
    // and the source file of the copy-mode import was left alone.
    if have("ffprobe") {
        let copy = beet_cmd(&["ls", "-p", "title:Song 0"]);
        let g = ffprobe_genre(Path::new(copy.trim()));
        assert!(names.contains(&g), "{g} in {copy}");
        assert!(
            copy.trim()
                .starts_with(&dir.path().join("lib").display().to_string())
        );
        assert_eq!(
            ffprobe_genre(&incoming.join("song0.mp3")),
            "",
            "source untouched"
        );
        assert_eq!(ffprobe_genre(&incoming.join("quiet.mp3")), "Old");
    }
    // `beet genretag` (forced by the config) gives the same answers again.
    beet_cmd(&["genretag"]);
    assert_eq!(list(), rows);
}
