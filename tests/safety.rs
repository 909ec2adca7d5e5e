//! Issue 14, "never lose a file, a link or an undo": each fault the hostile test run
//! found, reproduced with the real binary on real files (FIFOs, links, a second
//! process, a non-UTF-8 name, foreign owners and extended attributes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use genretag::library::db::state;
use genretag::library::{Library, TagWriteOptions, read_tags, write_genres};
use serde_json::Value;

use crate::common::{ffmpeg, genretag, have, write_au_sine, write_wav_sine};

/// Run a command, failing the test (instead of hanging it) if it takes over `limit`.
fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("waits").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            child.kill().expect("kill");
            let out = child.wait_with_output().expect("output");
            panic!(
                "hung for {limit:?}: {cmd:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A genre map writing `name` whatever the model says (with `--min-prob 0`, every file
/// gets exactly `[name]`).
fn map_all(dir: &Path, name: &str) -> PathBuf {
    let map = dir.join(format!("map_{name}.txt"));
    let lines: String = model_labels()
        .iter()
        .map(|k| format!("{k} = {name}\n"))
        .collect();
    std::fs::write(&map, lines).expect("map");
    map
}

/// Every label a model may answer with: the shipped taxonomy's keys and GTZAN's.
pub fn model_labels() -> Vec<String> {
    let mut keys: Vec<String> = genretag::model::taxonomy::Taxonomy::shipped()
        .genres
        .iter()
        .map(|g| g.key.to_lowercase())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `genretag tag --write --min-prob 0 --map <name> --db db paths...`
fn tag_write(db: &Path, map: &Path, paths: &[&Path]) -> Output {
    let mut cmd = genretag();
    cmd.args(["tag", "--write", "--min-prob", "0", "--map"])
        .arg(map)
        .arg("--db")
        .arg(db)
        .args(paths);
    run_with_deadline(&mut cmd, Duration::from_secs(300))
}

fn undo(db: &Path) -> Output {
    run_with_deadline(
        genretag().arg("undo").arg("--db").arg(db),
        Duration::from_secs(300),
    )
}

/// A 1.5 s FLAC with title "T" and genre "Old" (long enough for the model to answer:
/// under a second of sound it is "unsure" and nothing is written).
fn flac(dir: &Path, name: &str, freq: f32) -> PathBuf {
    let wav = dir.join(format!("{name}.src.wav"));
    write_wav_sine(&wav, freq, 22_050, 1.5);
    let out = dir.join(name);
    assert!(ffmpeg(
        &wav,
        &out,
        &["-metadata", "title=T", "-metadata", "genre=Old"]
    ));
    std::fs::remove_file(&wav).expect("rm");
    out
}

fn genres(p: &Path) -> Vec<String> {
    read_tags(p).expect("tags").genres
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn issue14_fifo_socket_and_device_never_hang_a_command() {
    let work = tempfile::tempdir().expect("tempdir");
    let d = work.path().join("d");
    std::fs::create_dir(&d).expect("mkdir");
    write_wav_sine(&d.join("ok.wav"), 440.0, 22_050, 1.0);
    mkfifo(&d.join("x.mp3"));
    std::os::unix::fs::symlink(d.join("x.mp3"), d.join("link_to_fifo.flac")).expect("link");
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.wav")).expect("link");
    let _socket = std::os::unix::net::UnixListener::bind(d.join("sock.ogg")).expect("unix socket");
    let db = work.path().join("lib.sqlite3");

    // The library calls return at once with the kind named.
    let err = genretag::audio::open(&d.join("x.mp3"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("named pipe"), "{err}");
    let err = read_tags(&d.join("link_to_fifo.flac")).expect_err("refused");
    assert!(err.to_string().contains("named pipe"), "{err}");
    let err = genretag::audio::open(&d.join("zero.wav"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("character device"), "{err}");

    let limit = Duration::from_secs(240);
    for args in [
        vec!["classify"],
        vec!["scan", "--db"],
        vec!["tag", "--db"],
        vec!["tag", "--write", "--db"],
    ] {
        let mut cmd = genretag();
        cmd.args(&args);
        if args.contains(&"--db") {
            cmd.arg(&db);
        }
        let out = run_with_deadline(cmd.arg(&d), limit);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        for name in ["x.mp3", "link_to_fifo.flac", "zero.wav", "sock.ogg"] {
            assert!(
                t.lines()
                    .any(|l| l.contains(name) && l.contains("not a regular file")),
                "{args:?}: {name} not reported as skipped: {t}"
            );
        }
    }
    // Named directly on the command line, too.
    let out = run_with_deadline(genretag().arg("classify").arg(d.join("x.mp3")), limit);
    assert!(text(&out).contains("named pipe"), "{}", text(&out));
}

#[test]
fn issue14_symlinks_are_written_through_and_hard_links_refused() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let (real, lib_dir, other) = (
        work.path().join("real"),
        work.path().join("lib"),
        work.path().join("other"),
    );
    for d in [&real, &lib_dir, &other] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let target = flac(&real, "a.flac", 330.0);
    let link = lib_dir.join("link.flac");
    std::os::unix::fs::symlink("../real/a.flac", &link).expect("symlink");
    let hard = flac(&lib_dir, "h.flac", 440.0);
    let hard2 = other.join("h2.flac");
    std::fs::hard_link(&hard, &hard2).expect("hard link");
    let hard_bytes = std::fs::read(&hard).expect("read");
    let db = work.path().join("lib.sqlite3");
    let map = map_all(work.path(), "Linked");

    let out = tag_write(&db, &map, &[&lib_dir]);
    let t = text(&out);
    // The link is still a link, to the same target, which now has the new genre.
    let meta = std::fs::symlink_metadata(&link).expect("link");
    assert!(meta.file_type().is_symlink(), "{t}");
    assert_eq!(
        std::fs::read_link(&link).expect("readlink"),
        Path::new("../real/a.flac")
    );
    assert_eq!(genres(&target), vec!["Linked"], "{t}");
    // The hard-linked file is left alone, both names, with the reason given.
    assert!(
        t.contains("h.flac") && t.contains("hard links"),
        "hard link not explained: {t}"
    );
    assert_eq!(std::fs::read(&hard).expect("read"), hard_bytes);
    assert_eq!(std::fs::read(&hard2).expect("read"), hard_bytes);
    {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            std::fs::metadata(&hard).expect("meta"),
            std::fs::metadata(&hard2).expect("meta"),
        );
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "the names were split");
    }
    // Undo goes through the link as well.
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(genres(&target), vec!["Old"]);
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    // No scratch copy anywhere.
    for d in [&real, &lib_dir, &other] {
        let stray = std::fs::read_dir(d)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".genretag-"))
            .count();
        assert_eq!(stray, 0, "{}", d.display());
    }
}

#[test]
fn issue14_owner_group_mode_and_xattrs_survive_write_and_undo() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use xattr::FileExt;
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let f = flac(&dir, "a.flac", 330.0);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (uid, gid) = if root {
        (4321, 8765)
    } else {
        crate::common::skip("(part) not root, so the foreign-owner case cannot be set up");
        let m = std::fs::metadata(&f).expect("meta");
        (m.uid(), m.gid())
    };
    std::os::unix::fs::chown(&f, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let file = std::fs::File::open(&f).expect("open");
    file.set_xattr("user.genretag_test", b"keep me")
        .expect("user xattr (filesystem without xattrs?)");
    // A POSIX ACL granting user 1000 read access (the kernel's binary ACL format).
    let acl: Vec<u8> = [
        2u32.to_le_bytes().to_vec(),
        acl_entry(0x01, 6, u32::MAX),
        acl_entry(0x02, 4, 1000),
        acl_entry(0x04, 4, u32::MAX),
        acl_entry(0x10, 4, u32::MAX),
        acl_entry(0x20, 0, u32::MAX),
    ]
    .concat();
    file.set_xattr("system.posix_acl_access", &acl)
        .expect("ACL (filesystem without ACLs?)");
    drop(file);
    let snapshot = |p: &Path| {
        let m = std::fs::metadata(p).expect("meta");
        let file = std::fs::File::open(p).expect("open");
        (
            m.uid(),
            m.gid(),
            m.mode() & 0o7777,
            file.get_xattr("user.genretag_test").expect("xattr"),
            file.get_xattr("system.posix_acl_access").expect("acl"),
        )
    };
    let before = snapshot(&f);
    assert_eq!(
        (before.0, before.1, before.3.as_deref()),
        (uid, gid, Some(&b"keep me"[..]))
    );
    let db = work.path().join("lib.sqlite3");
    let out = tag_write(&db, &map_all(work.path(), "Owned"), &[&dir]);
    assert_eq!(genres(&f), vec!["Owned"], "{}", text(&out));
    assert_eq!(snapshot(&f), before, "metadata lost by the write");
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(genres(&f), vec!["Old"]);
    assert_eq!(snapshot(&f), before, "metadata lost by the undo");
}

fn acl_entry(tag: u16, perm: u16, id: u32) -> Vec<u8> {
    [
        tag.to_le_bytes().to_vec(),
        perm.to_le_bytes().to_vec(),
        id.to_le_bytes().to_vec(),
    ]
    .concat()
}

#[test]
fn issue14_undo_walks_back_batch_by_batch_and_decides_by_content() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let files: Vec<PathBuf> = (0..6)
        .map(|i| flac(&dir, &format!("f{i}.flac"), 200.0 + 50.0 * i as f32))
        .collect();
    let db = work.path().join("lib.sqlite3");
    let (a, b, c) = (
        map_all(work.path(), "First"),
        map_all(work.path(), "Second"),
        map_all(work.path(), "Third"),
    );
    assert!(tag_write(&db, &a, &[&dir]).status.success());
    assert!(tag_write(&db, &b, &[&dir]).status.success());
    assert!(files.iter().all(|f| genres(f) == vec!["Second"]));
    // A `touch` is not a change.
    for f in &files {
        std::fs::File::options()
            .write(true)
            .open(f)
            .expect("open")
            .set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
            .expect("touch");
    }
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(files.iter().all(|f| genres(f) == vec!["First"]));
    // The previous batch can be undone too: the original genres come back.
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "second undo: {}", text(&out));
    assert!(files.iter().all(|f| genres(f) == vec!["Old"]));

    // A partial refusal does not wedge `undo`: it moves on to the previous batch.
    assert!(tag_write(&db, &a, &[&dir]).status.success());
    assert!(tag_write(&db, &c, &[&dir]).status.success());
    write_genres(
        &files[0],
        &["Hand Edit".to_string()],
        &TagWriteOptions::default(),
    )
    .expect("edit by hand");
    let out = undo(&db);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("refused") && t.contains("f0.flac"), "{t}");
    assert!(
        t.contains("changed since genretag"),
        "the refusal says why: {t}"
    );
    assert!(files[1..].iter().all(|f| genres(f) == vec!["First"]));
    let out = undo(&db);
    let t = text(&out);
    // Batch "First" (not "Third" again): f0 was written over by the refused batch.
    assert!(t.contains("5 reverted, 1 refused"), "{t}");
    assert!(t.contains("wrote this file again later"), "{t}");
    assert!(files[1..].iter().all(|f| genres(f) == vec!["Old"]));
    assert_eq!(genres(&files[0]), vec!["Hand Edit"]);
    let out = undo(&db);
    assert!(text(&out).contains("nothing to undo"), "{}", text(&out));
    let out = run_with_deadline(
        genretag().arg("history").arg("--db").arg(&db),
        Duration::from_secs(60),
    );
    assert!(text(&out).contains("1 refused"), "{}", text(&out));
}

#[test]
fn issue14_non_utf8_names_are_journaled_exactly() {
    use std::os::unix::ffi::OsStrExt;
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let made = flac(&dir, "plain.flac", 330.0);
    let latin1 = dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9 \\x.flac"));
    std::fs::rename(&made, &latin1).expect("rename");
    let db = work.path().join("lib.sqlite3");
    let map = map_all(work.path(), "Bytes");
    let mut cmd = genretag();
    cmd.args(["tag", "--write", "--json", "--min-prob", "0", "--map"])
        .arg(&map)
        .arg("--db")
        .arg(&db)
        .arg(&dir);
    let out = run_with_deadline(&mut cmd, Duration::from_secs(300));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let file = &v["files"][0];
    assert_eq!(file["status"], "tagged", "{v}");
    let hex: String = latin1
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(file["path_bytes"], hex.as_str(), "{v}");
    assert!(
        file["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("caf\\xe9 \\x.flac")),
        "{v}"
    );
    assert_eq!(genres(&latin1), vec!["Bytes"]);
    let lib = Library::open(&db).expect("db");
    assert_eq!(lib.journal(Some(1)).expect("journal")[0].path, latin1);
    drop(lib);
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("caf\\xe9"), "{}", text(&out));
    assert_eq!(genres(&latin1), vec!["Old"]);
}

#[test]
fn issue14_two_writers_on_one_library_take_turns() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let files: Vec<PathBuf> = (0..30)
        .map(|i| flac(&dir, &format!("f{i:02}.flac"), 200.0 + 10.0 * i as f32))
        .collect();
    let db = work.path().join("lib.sqlite3");
    let map = map_all(work.path(), "Once");
    let spawn = || {
        genretag()
            .args(["tag", "--write", "--min-prob", "0", "--map"])
            .arg(&map)
            .arg("--db")
            .arg(&db)
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns")
    };
    let (first, second) = (spawn(), spawn());
    let outs = [first, second].map(|c| c.wait_with_output().expect("waits"));
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", text(o));
    }
    assert!(files.iter().all(|f| genres(f) == vec!["Once"]));
    let lib = Library::open(&db).expect("db");
    let mut done = 0;
    for b in lib.batches().expect("batches") {
        done += lib
            .journal(Some(b.id))
            .expect("journal")
            .iter()
            .filter(|e| e.state == state::DONE)
            .count();
    }
    assert_eq!(done, 30, "each file written once, not twice");
    drop(lib);
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("30 reverted, 0 refused"),
        "{}",
        text(&out)
    );
    assert!(files.iter().all(|f| genres(f) == vec!["Old"]));
}

#[test]
fn issue14_scratch_copies_are_removed_at_the_next_start() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let f = flac(&dir, "a.flac", 330.0);
    let db = work.path().join("lib.sqlite3");
    // What a kill -9 mid-write leaves: a pending journal row and its scratch copy.
    let dead = dir.join(".genretag-999999-a.flac");
    std::fs::copy(&f, &dead).expect("scratch");
    // A scratch copy of a live writer (this process holds its lock) must survive.
    let live = dir.join(".genretag-1-a.flac");
    std::fs::copy(&f, &live).expect("scratch");
    let holder = std::fs::File::open(&live).expect("open");
    holder.lock().expect("lock");
    {
        let lib = Library::open(&db).expect("db");
        let b = lib.begin_batch("killed").expect("batch");
        let hash = genretag::library::files::content_hash(&f).expect("hash");
        lib.journal_pending(
            b,
            &f,
            &["Old".into()],
            &["New".into()],
            Some(&hash),
            Some(&dead),
        )
        .expect("pending");
        lib.journal_pending(
            b,
            &f,
            &["Old".into()],
            &["New".into()],
            Some(&hash),
            Some(&live),
        )
        .expect("pending");
    }
    // Every command that opens the library recovers first; `history` is the lightest.
    let out = run_with_deadline(
        genretag().arg("history").arg("--db").arg(&db),
        Duration::from_secs(60),
    );
    let t = text(&out);
    assert!(t.contains("settled 2 interrupted"), "{t}");
    assert!(t.contains("removed 1 scratch"), "{t}");
    assert!(!dead.exists(), "dead writer's scratch copy left");
    assert!(live.exists(), "a live writer's scratch copy was removed");
    let lib = Library::open(&db).expect("db");
    let rows = lib.journal(Some(1)).expect("journal");
    assert!(rows.iter().all(|e| e.state == state::FAILED), "{rows:?}");
    assert_eq!(genres(&f), vec!["Old"]);
}

#[test]
fn issue14_schema_versions_newer_and_unrelated_databases_are_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let newer = work.path().join("newer.sqlite3");
    {
        let lib = Library::open(&newer).expect("create");
        drop(lib);
        let conn = rusqlite::Connection::open(&newer).expect("sqlite");
        conn.pragma_update(None, "user_version", 999)
            .expect("pragma");
    }
    let out = run_with_deadline(
        genretag().arg("history").arg("--db").arg(&newer),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("newer genretag"), "{}", text(&out));

    let unrelated = work.path().join("invoices.sqlite3");
    rusqlite::Connection::open(&unrelated)
        .expect("sqlite")
        .execute_batch("CREATE TABLE invoices (id INTEGER, total REAL)")
        .expect("create");
    let out = run_with_deadline(
        genretag().arg("history").arg("--db").arg(&unrelated),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not a genretag library") && text(&out).contains("invoices"),
        "{}",
        text(&out)
    );
    // With --json a fatal error is still one JSON document.
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    write_wav_sine(&dir.join("a.wav"), 440.0, 22_050, 0.5);
    let out = run_with_deadline(
        genretag()
            .args(["tag", "--json", "--db"])
            .arg(&unrelated)
            .arg(&dir),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert_eq!(v["schema"], "genretag.tag/2");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a genretag library")),
        "{v}"
    );
}

#[test]
fn issue14_version_1_database_migrates_and_keeps_its_journal() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let f = flac(&dir, "a.flac", 330.0);
    write_genres(&f, &["Written".to_string()], &TagWriteOptions::default()).expect("write");
    let db = work.path().join("old.sqlite3");
    // The schema genretag 0.1 created (no user_version), with one done write.
    let conn = rusqlite::Connection::open(&db).expect("sqlite");
    conn.execute_batch(
        "CREATE TABLE tracks (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,
           size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, title TEXT, artist TEXT,
           album TEXT, genres TEXT NOT NULL DEFAULT '[]', duration_s REAL, error TEXT,
           scanned_at INTEGER NOT NULL);
         CREATE TABLE analyses (track_id INTEGER NOT NULL, model TEXT NOT NULL,
           size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, result TEXT NOT NULL,
           analyzed_at INTEGER NOT NULL, PRIMARY KEY (track_id, model));
         CREATE TABLE batches (id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL,
           command TEXT NOT NULL, undone_at INTEGER);
         CREATE TABLE tag_writes (id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL,
           path TEXT NOT NULL, old_genres TEXT NOT NULL, new_genres TEXT NOT NULL,
           state TEXT NOT NULL, size_after INTEGER, mtime_after_ns INTEGER,
           written_at INTEGER NOT NULL);
         INSERT INTO batches VALUES (1, 0, 'tag old', NULL);",
    )
    .expect("legacy schema");
    conn.execute(
        "INSERT INTO tag_writes VALUES (1, 1, ?1, '[\"Old\"]', '[\"Written\"]', 'done', 0, 0, 0)",
        [f.to_str().expect("utf-8 temp path")],
    )
    .expect("row");
    conn.execute(
        "INSERT INTO tracks (path, size, mtime_ns, scanned_at) VALUES (?1, 1, 1, 0)",
        [f.to_str().expect("utf-8 temp path")],
    )
    .expect("row");
    drop(conn);
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(genres(&f), vec!["Old"]);
    let conn = rusqlite::Connection::open(&db).expect("sqlite");
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, genretag::library::schema::LATEST);
    let kind: String = conn
        .query_row("SELECT typeof(path) FROM tracks", [], |r| r.get(0))
        .expect("row");
    assert_eq!(kind, "blob");
}

#[test]
fn issue14_au_files_are_skipped_with_the_reason() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let au = dir.join("a.au");
    write_au_sine(&au, 330.0, 22_050, 3.0, 1);
    let before = std::fs::read(&au).expect("read");
    let db = work.path().join("lib.sqlite3");
    for write in [false, true] {
        let mut cmd = genretag();
        cmd.args(["tag", "--json", "--min-prob", "0", "--db"])
            .arg(&db);
        if write {
            cmd.arg("--write");
        }
        let out = run_with_deadline(cmd.arg(&dir), Duration::from_secs(120));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        let f = &v["files"][0];
        assert_eq!(f["status"], "skipped", "{v}");
        assert!(
            f["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot write tags into .au files")),
            "{v}"
        );
    }
    assert_eq!(std::fs::read(&au).expect("read"), before);
}

#[test]
fn issue14_bad_arguments_are_rejected() {
    let work = tempfile::tempdir().expect("tempdir");
    let wav = work.path().join("a.wav");
    write_wav_sine(&wav, 440.0, 22_050, 0.5);
    for args in [
        vec!["tag", "--top-k", "0"],
        vec!["tag", "--min-prob", "1.5"],
        vec!["classify", "--top-k", "0"],
        vec!["classify", "--max-patches", "0"],
    ] {
        let out = run_with_deadline(genretag().args(&args).arg(&wav), Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} accepted: {}",
            text(&out)
        );
        assert!(text(&out).contains(args[1]), "{args:?}: {}", text(&out));
    }
}

#[test]
fn issue14_scan_reports_undecodable_files() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    write_wav_sine(&dir.join("good.wav"), 440.0, 22_050, 0.5);
    // An ID3 tag (so the tag reader is happy) followed by no decodable audio.
    let mut bad = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    bad.extend(std::iter::repeat_n(0x42u8, 4000));
    std::fs::write(dir.join("bad.mp3"), &bad).expect("write");
    let db = work.path().join("lib.sqlite3");
    for round in 0..2 {
        let out = run_with_deadline(
            genretag()
                .args(["scan", "--json", "--db"])
                .arg(&db)
                .arg(&dir),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(1), "round {round}: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        let errors = v["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "round {round}: {v}");
        assert!(
            errors[0]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("bad.mp3")),
            "{v}"
        );
    }
}

#[test]
fn issue14_full_database_disk_lists_the_files_already_written() {
    if !have("ffmpeg") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    let files: Vec<PathBuf> = (0..12)
        .map(|i| flac(&dir, &format!("f{i:02}.flac"), 200.0 + 20.0 * i as f32))
        .collect();
    let db = work.path().join("lib.sqlite3");
    let map = map_all(work.path(), "Full");
    // Fill the analysis cache first, so the limited run only journals.
    let out = run_with_deadline(
        genretag().args(["tag", "--db"]).arg(&db).arg(&dir),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", text(&out));
    // The database's write-ahead log may grow only 48 KiB: like a full disk, SQLite's
    // writes fail part-way through the batch (audio files are well under the limit).
    let run_limited = |json: bool| {
        let mut cmd = genretag();
        cmd.args(["tag", "--write", "--min-prob", "0", "--map"])
            .arg(&map)
            .arg("--db")
            .arg(&db)
            .arg(&dir);
        if json {
            cmd.arg("--json");
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: 48 << 10,
                    rlim_max: 48 << 10,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                Ok(())
            });
        }
        run_with_deadline(&mut cmd, Duration::from_secs(300))
    };
    let out = run_limited(true);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    let written: Vec<&str> = v["written"]
        .as_array()
        .expect("written list")
        .iter()
        .filter_map(|w| w["path"].as_str())
        .collect();
    let changed: Vec<&PathBuf> = files.iter().filter(|f| genres(f) == vec!["Full"]).collect();
    assert!(
        !changed.is_empty() && changed.len() < files.len(),
        "the limit did not strike mid-batch: {v}"
    );
    // Every file reported written was written; a file in flight may or may not be.
    for w in &written {
        assert!(changed.iter().any(|c| c.to_str() == Some(*w)), "{w}: {v}");
    }
    let maybe = v["maybe_written"]["path"].as_str();
    assert!(
        changed
            .iter()
            .all(|c| written.contains(&c.to_str().unwrap_or_default()) || maybe == c.to_str()),
        "a written file is missing from the report: {v}"
    );
    // Once there is room again, the interrupted write is settled and undo reverts all.
    let out = undo(&db);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        files.iter().all(|f| genres(f) == vec!["Old"]),
        "{}",
        text(&out)
    );
}
