//! The desktop app driven through egui_kittest: the real app state, real workers, a
//! real SQLite library, real decoding and tag writes on generated audio, and a model
//! trained here (one per test run). Each test works in its own temporary folder.
//!
//! Tests named `issue11_bugN_*` hold the first-time user's bugs of issue 11; the
//! `issue10_*` ones the app's part of issue 10.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use genretag::analysis::StoredAnalysis;
use genretag::gui::jobs::LibEvent;
use genretag::gui::state::{RowAnalysis, RowInit, SortKey};
use genretag::gui::{GenretagApp, Settings, StartOptions, Tab};
use genretag::library::policy::Proposal;
use genretag::model::Verdict;
use genretag::train::models::ModelKind;

use crate::training::{CLASSES, clip, dataset, write_wav};

type H = Harness<'static, GenretagApp>;

/// Step the app until `done` holds (the workers run on their own threads).
fn wait(h: &mut H, what: &str, secs: u64, done: impl Fn(&GenretagApp) -> bool) {
    let t0 = Instant::now();
    while !done(h.state()) {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; status: {}",
            h.state().status()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
}

/// Step at least three frames (panels settle their sizes) and until the library table
/// drew every cell (a frame lays out new cell texts only for a while and leaves the rest
/// to the next frames, so how many frames that takes depends on the machine's speed).
fn settle_cells(h: &mut H) {
    for frame in 0..100 {
        if frame >= 3 && h.state().cells_waiting() == 0 {
            return;
        }
        h.step();
    }
    panic!("the table's cells were still not all drawn after 100 frames");
}

/// Let a view settle ([`settle_cells`]) and compare it with its committed snapshot.
fn snapshot(h: &mut H, name: &str) {
    settle_cells(h);
    compare_snapshot(h, name);
}

/// Compare the frame drawn last (no step, so masks stay) with its committed snapshot
/// (`tests/snapshots/NAME.png`; regenerate deliberately with `UPDATE_SNAPSHOTS=1`).
/// Rendering needs a wgpu adapter (Mesa's software Vulkan is enough); without one the
/// comparison is skipped outside CI.
fn compare_snapshot(h: &mut H, name: &str) {
    let opts = egui_kittest::SnapshotOptions::new()
        .threshold(1.0)
        .max_failed_pixels(400);
    match h.try_snapshot_options(name, &opts) {
        Ok(()) => {}
        Err(egui_kittest::SnapshotError::RenderError { err }) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but the snapshot {name} could not be rendered: {err}"
            );
            crate::common::skip(&format!(
                "snapshot {name} not rendered (no wgpu adapter?): {err}"
            ));
        }
        Err(e) => panic!("snapshot {name} differs: {e:?}\n{}", describe_diff(h, name)),
    }
}

/// Where a failed snapshot differs from the committed one, in words: the bounding box
/// of the 16-pixel cells with a changed pixel, and the widgets there (so that a failure
/// on a machine we cannot look at still says what changed).
fn describe_diff(h: &H, name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let read = |f: String| image::open(dir.join(f)).map(|i| i.to_rgba8());
    let (Ok(old), Ok(new)) = (read(format!("{name}.png")), read(format!("{name}.new.png"))) else {
        return "(the snapshots could not be read back)".into();
    };
    if old.dimensions() != new.dimensions() {
        return format!(
            "sizes differ: {:?} vs {:?}",
            old.dimensions(),
            new.dimensions()
        );
    }
    const CELL: u32 = 16;
    let mut cells = std::collections::BTreeSet::new();
    for (x, y, p) in new.enumerate_pixels() {
        let q = old.get_pixel(x, y);
        if p.0.iter().zip(q.0).any(|(a, b)| a.abs_diff(b) > 32) {
            cells.insert((x / CELL, y / CELL));
        }
    }
    let cell_rect = |&(cx, cy): &(u32, u32)| {
        egui::Rect::from_min_size(
            egui::pos2((cx * CELL) as f32, (cy * CELL) as f32),
            egui::vec2(CELL as f32, CELL as f32),
        )
    };
    let bbox = cells
        .iter()
        .map(cell_rect)
        .reduce(|a, b| a.union(b))
        .unwrap_or(egui::Rect::NOTHING);
    let screen = (old.width() * old.height()) as f32;
    let mut widgets = std::collections::BTreeSet::new();
    for n in h.query_all_by(|n| n.bounding_box().is_some()) {
        let r = n.rect();
        if r.area() > screen / 8.0 || !cells.iter().any(|c| cell_rect(c).intersects(r)) {
            continue;
        }
        if let Some(l) = n.accesskit_node().label().or_else(|| n.value()) {
            widgets.insert(format!("{l:?} at {:?}", r.min));
        }
    }
    format!(
        "{} cells of {CELL} px differ, within {bbox:?}; widgets there: {widgets:?}",
        cells.len()
    )
}

/// A snapshot with every text that shows a temporary path masked (the folders' names
/// change from run to run).
fn snapshot_masked(h: &mut H, name: &str, tmp: &Path, run: &Path) {
    settle_cells(h);
    // The trained model's folder holds the run and the dataset.
    let model_dir = run.parent().unwrap_or(run);
    let prefixes = [tmp.display().to_string(), model_dir.display().to_string()];
    let rects: Vec<egui::Rect> = h
        .query_all_by(|n| {
            let has = |s: Option<String>| {
                s.is_some_and(|s| prefixes.iter().any(|p| s.contains(p.as_str())))
            };
            has(n.label()) || has(n.value())
        })
        .map(|n| n.rect())
        .collect();
    for r in rects {
        h.mask(r);
    }
    compare_snapshot(h, name);
}

/// An app on a library database in `dir`, not reopening any folder.
fn app(dir: &Path, settings: Settings, start: StartOptions, size: [f32; 2]) -> H {
    let start = StartOptions {
        db: Some(dir.join("library.sqlite3")),
        stable_ui: true,
        no_reopen: true,
        ..start
    };
    let theme = if settings.dark {
        egui::Theme::Dark
    } else {
        egui::Theme::Light
    };
    let mut h = Harness::builder()
        .with_size(size)
        .with_theme(theme)
        .build_eframe(move |cc| GenretagApp::with_settings(cc.egui_ctx.clone(), settings, start));
    h.step();
    h
}

fn settings(dir: &Path) -> Settings {
    Settings {
        runs_dir: dir.join("runs").display().to_string(),
        ..Settings::default()
    }
}

fn genres(p: &Path) -> Vec<String> {
    genretag::library::tags::read_tags(p).expect("tags").genres
}

/// A transfer model (reads musicnn patches, like the shipped one) trained once per
/// test run on the generated three-class dataset: (run folder, dataset folder).
fn trained() -> &'static (PathBuf, PathBuf) {
    static RUN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        // Kept for the whole test run (a static is never dropped): under target/, not
        // the system's temporary folder.
        let dir = tempfile::Builder::new()
            .prefix("gui-model")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir")
            .keep();
        let data = dataset(&dir);
        let run = dir.join("run");
        let o = crate::common::genretag()
            .args(["train", "--model", "transfer", "--data"])
            .arg(&data)
            .args(["--split", "stratified", "--test", "0.34", "--val", "0.17"])
            .arg("--out")
            .arg(&run)
            .output()
            .expect("runs");
        assert!(
            o.status.success(),
            "training the test model failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (run, data)
    })
}

fn row(path: &Path, title: &str, genres: &[&str], error: Option<&str>) -> RowInit {
    RowInit::new(
        path.to_path_buf(),
        Some(title.into()),
        Some("Artist".into()),
        None,
        genres.iter().map(|g| g.to_string()).collect(),
        error.map(String::from),
    )
}

fn labels() -> Arc<[String]> {
    Arc::from(CLASSES.map(String::from).to_vec())
}

/// An analysis over the test labels: `top` first with probability `p`.
fn analysis(top: &str, p: f32, verdict: Verdict) -> RowAnalysis {
    let rest = (1.0 - p) / 2.0;
    let stored = StoredAnalysis {
        genres: CLASSES
            .iter()
            .map(|l| (l.to_string(), if *l == top { p } else { rest }))
            .collect(),
        tags: Vec::new(),
        segments: Vec::new(),
        duration_s: 4.0,
        verdict,
        listened_s: 4.0,
        active_s: 4.0,
        novelty: None,
        total_patches: 1,
        warnings: Vec::new(),
    };
    RowAnalysis::from_stored(&stored, &labels())
}

fn analysed(generation: u64, index: usize, a: RowAnalysis) -> LibEvent {
    LibEvent::Analysed {
        generation,
        index,
        analysis: Box::new(a),
        labels: labels(),
    }
}

#[test]
fn issue11_bug1_undecodable_track_shows_why_and_stops_the_old_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let music = tmp.path().join("music");
    std::fs::create_dir_all(&music).expect("mkdir");
    write_wav(&music.join("a good.wav"), &clip(0, 1));
    // A file with an audio name that no decoder can read.
    std::fs::write(music.join("b broken.mp3"), vec![0x5au8; 40_000]).expect("write");
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions::default(),
        [1200.0, 800.0],
    );
    h.state_mut().open_folder(music.clone());
    wait(&mut h, "rows", 60, |a| a.progress().2 == 2);
    h.state_mut().select_track(0);
    h.state_mut().settings.tab = Tab::Track;
    wait(&mut h, "decoding", 60, |a| a.track_loaded());
    h.get_by_label("Play").click_accesskit();
    h.step();
    assert!(h.state().player.is_playing());
    // Now the broken one.
    h.state_mut().select_track(1);
    h.step();
    assert!(
        !h.state().player.is_playing(),
        "the previous track still plays"
    );
    assert!(
        !h.state().player.is_loaded(),
        "the previous track is still loaded"
    );
    wait(&mut h, "the decode error", 60, |a| {
        a.track_error().is_some()
    });
    let err = h.state().track_error().unwrap_or_default().to_string();
    assert!(
        err.contains("b broken.mp3"),
        "the error names the file: {err}"
    );
    h.get_by_label("This track cannot be played.");
    assert!(
        h.query_by_label("decoding...").is_none(),
        "spinner left running"
    );
    assert!(
        h.get_by_label("Play").accesskit_node().is_disabled(),
        "Play must be disabled"
    );
    assert_eq!(h.state_mut().player.position_s(), 0.0);
    h.get_by_label("b broken");
}

#[test]
fn issue11_bug2_long_track_gets_a_full_timeline_that_follows_the_playhead() {
    let (run, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let music = tmp.path().join("music");
    std::fs::create_dir_all(&music).expect("mkdir");
    // 90 s: tones, then noise, then clicks (30 s each).
    let mut long = Vec::new();
    for class in [0, 1, 2] {
        for k in 0..7 {
            long.extend(clip(class, k));
        }
        long.truncate(30 * 16_000 * (class + 1));
    }
    write_wav(&music.join("long.wav"), &long);
    let s = Settings {
        model: Some(run.join("model")),
        ..settings(tmp.path())
    };
    let mut h = app(tmp.path(), s, StartOptions::default(), [1200.0, 800.0]);
    h.state_mut().open_folder(music.clone());
    wait(&mut h, "analysis", 180, |a| a.analysis_finished());
    assert_eq!(h.state().progress(), (1, 0, 1), "{}", h.state().status());
    let row = h.state().table.rows[0].analysis.clone().expect("analysed");
    assert!(
        row.partial(),
        "the library's analysis hears 10 patches of 90 s"
    );
    h.state_mut().select_track(0);
    h.state_mut().settings.tab = Tab::Track;
    wait(&mut h, "the whole-track analysis", 180, |a| {
        a.track_analysis().is_some_and(|x| !x.partial())
    });
    let full = h.state().track_analysis().cloned().expect("analysis");
    assert!(
        full.segments.len() >= 28,
        "{} segments",
        full.segments.len()
    );
    h.get_by_label_contains("every 3 s patch of the track analysed");
    // "Now playing" follows the playhead, including at the very start.
    for t in [2.0, 45.0, 80.0] {
        let s = full.segment_at(t as f32).expect("segment");
        assert!(
            s.start_s <= t as f32 && (t as f32) < s.end_s,
            "at {t}: {s:?}"
        );
        h.state_mut().player.seek(t);
        h.step();
        h.get_by_label_contains(&genretag::gui::widgets::span(s.start_s, s.end_s));
    }
    // The timeline is hoverable: its tooltip names the genres of the part.
    let rect = h.get_by_label_contains("Genres over time").rect();
    h.hover_at(egui::pos2(rect.left() + 40.0, rect.bottom() + 14.0));
    h.step();
    h.step();
    assert!(
        CLASSES
            .iter()
            .any(|c| h.query_all_by_label_contains(&format!("{c} ")).count() > 0),
        "no tooltip with genres over the timeline"
    );
}

#[test]
fn issue11_bug5_progress_after_pause_and_cancel_says_so_without_a_time_left() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions::default(),
        [1200.0, 800.0],
    );
    let rows: Vec<RowInit> = (0..10)
        .map(|i| {
            row(
                &tmp.path().join(format!("{i}.wav")),
                &format!("t{i}"),
                &[],
                None,
            )
        })
        .collect();
    let g = h.state_mut().show_rows(tmp.path().to_path_buf(), rows);
    for i in 0..5 {
        h.state_mut()
            .apply_library_event(analysed(g, i, analysis("tones", 0.9, Verdict::Unknown)));
    }
    h.step();
    h.get_by_label("Pause").click_accesskit();
    wait(&mut h, "paused", 30, |a| {
        a.progress_text().starts_with("paused")
    });
    assert!(!h.state().progress_text().contains("left"));
    h.get_by_label_contains("paused: 5/10 analysed");
    h.get_by_label("Resume").click_accesskit();
    wait(&mut h, "resumed", 30, |a| {
        !a.progress_text().starts_with("paused")
    });
    h.get_by_label("Cancel").click_accesskit();
    wait(&mut h, "cancelled", 30, |a| a.analysis_finished());
    let text = h.state().progress_text();
    assert_eq!(text, "analysis cancelled: 5/10 analysed, 0 failed");
    h.get_by_label_contains("analysis cancelled: 5/10");
    assert!(
        h.query_by_label("Cancel").is_none(),
        "Cancel stays after cancelling"
    );
}

#[test]
fn issue11_bug6_preview_lists_every_selected_file_with_its_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions::default(),
        [1200.0, 800.0],
    );
    let p = |n: &str| tmp.path().join(n);
    let g = h.state_mut().show_rows(
        tmp.path().to_path_buf(),
        vec![
            row(&p("a.wav"), "sure", &[], None),
            row(&p("b.mp3"), "broken", &[], Some("cannot read the tags")),
            row(&p("c.wav"), "doubtful", &["Jazz"], None),
            row(&p("d.wav"), "later", &[], None),
        ],
    );
    h.state_mut().apply_library_event(analysed(
        g,
        0,
        analysis(
            "tones",
            0.9,
            Verdict::Genre {
                label: "tones".into(),
                probability: 0.9,
            },
        ),
    ));
    h.state_mut().apply_library_event(analysed(
        g,
        2,
        analysis(
            "noise",
            0.45,
            Verdict::Unsure {
                reason: "top genre only 45 %".into(),
            },
        ),
    ));
    h.state_mut().table.select(0..4);
    h.step();
    h.get_by_label("Preview").click_accesskit();
    wait(&mut h, "preview", 30, |a| !a.preview.is_empty());
    let pv = &h.state().preview;
    assert_eq!(pv.len(), 4, "{pv:?}");
    let by = |n: &str| &pv.iter().find(|(q, _)| q.ends_with(n)).expect("row").1;
    assert!(by("a.wav").changes && !by("a.wav").skipped);
    assert!(by("b.mp3").skipped && by("b.mp3").reason.contains("cannot read the tags"));
    assert!(by("c.wav").skipped && by("c.wav").reason.contains("unsure"));
    assert!(by("d.wav").skipped && by("d.wav").reason.contains("not analysed"));
    // The table says "unsure" for the unsure row.
    h.get_by_label_contains("unsure (noise 45%)");
    h.get_by_label("Apply 1");
}

#[test]
fn issue11_bug7_opening_a_folder_lands_on_the_library() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = Settings {
        tab: Tab::Training,
        ..settings(tmp.path())
    };
    let h = app(
        tmp.path(),
        s,
        StartOptions {
            folder: Some(tmp.path().to_path_buf()),
            ..StartOptions::default()
        },
        [1200.0, 800.0],
    );
    assert_eq!(h.state().settings.tab, Tab::Library);
    // Without a folder the last view is kept.
    let tmp2 = tempfile::tempdir().expect("tempdir");
    let s = Settings {
        tab: Tab::Training,
        ..settings(tmp2.path())
    };
    let h = app(tmp2.path(), s, StartOptions::default(), [1200.0, 800.0]);
    assert_eq!(h.state().settings.tab, Tab::Training);
}

#[test]
fn issue11_bug8_the_chosen_model_survives_a_restart_and_is_shown() {
    let (run, data) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let music = tmp.path().join("music");
    std::fs::create_dir_all(&music).expect("mkdir");
    for k in 0..2 {
        let name = format!("tones.{k:05}.wav");
        std::fs::copy(data.join("tones").join(&name), music.join(&name)).expect("copy");
    }
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions::default(),
        [1200.0, 800.0],
    );
    h.state_mut().settings.tab = Tab::Training;
    h.state_mut().open_run(run);
    wait(&mut h, "the run", 60, |a| a.report().is_some());
    h.get_by_label("Use this model for my library")
        .click_accesskit();
    wait(&mut h, "the model", 60, |a| {
        a.model_path() == Some(run.join("model").as_path())
    });
    let saved = serde_json::to_string(&h.state().settings).expect("settings");
    assert!(h.state().settings.model.is_some());
    drop(h);
    // Restart with what eframe persisted.
    let restored: Settings = serde_json::from_str(&saved).expect("settings");
    let mut h = app(
        tmp.path(),
        restored,
        StartOptions::default(),
        [1200.0, 800.0],
    );
    h.state_mut().open_folder(music);
    wait(&mut h, "analysis", 120, |a| a.analysis_finished());
    assert_eq!(h.state().model_path(), Some(run.join("model").as_path()));
    assert_eq!(h.state().progress(), (2, 0, 2), "{}", h.state().status());
    // The library view says which model is active.
    h.state_mut().settings.tab = Tab::Library;
    h.run_steps(2);
    h.get_by_label("Genres by:");
    assert!(
        h.query_all_by_label_contains("(run run)").count() >= 2,
        "the model is named in the library view and the status bar"
    );
    let top = h.state().table.rows[0]
        .analysis
        .as_ref()
        .and_then(|a| a.top);
    assert_eq!(
        top.map(|(l, _)| h.state().table.label(l).to_string()),
        Some("tones".into())
    );
}

#[test]
fn issue11_bug9_compare_says_what_happens_and_shows_the_result_where_asked() {
    let (run, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    // A second run: the same report in another folder.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::copy(run.join("report.json"), other.join("report.json")).expect("copy");
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions {
            tab: Some(Tab::Training),
            ..StartOptions::default()
        },
        [1200.0, 800.0],
    );
    h.state_mut().open_run(run);
    wait(&mut h, "the run", 60, |a| a.report().is_some());
    // Empty field: say so.
    h.get_by_label("Compare").click_accesskit();
    h.run_steps(2);
    h.get_by_label("type or choose another run's folder to compare with");
    // The run itself: refused, not compared with itself.
    h.state_mut().compare_runs_with(run);
    wait(&mut h, "refusal", 30, |a| {
        a.compare_message()
            .is_some_and(|m| m.contains("already shown"))
    });
    assert!(h.state().comparison().is_none());
    // Another run: the result appears, with McNemar's test.
    h.state_mut().compare_runs_with(&other);
    wait(&mut h, "comparison", 30, |a| a.comparison().is_some());
    h.get_by_label("Comparison");
    h.get_by_label_contains("McNemar's exact test on");
}

#[test]
fn issue10_malformed_report_is_refused_with_the_reason_not_a_panic() {
    let (run, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).expect("read"))
            .expect("json");
    // One label fewer than the matrix has rows.
    v["labels"].as_array_mut().expect("labels").pop();
    std::fs::write(bad.join("report.json"), v.to_string()).expect("write");
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions {
            tab: Some(Tab::Training),
            run: Some(bad.clone()),
            ..StartOptions::default()
        },
        [1200.0, 800.0],
    );
    wait(&mut h, "the refusal", 30, |a| a.run_error().is_some());
    assert!(
        h.state()
            .run_error()
            .unwrap_or_default()
            .contains("malformed report")
    );
    assert!(h.state().report().is_none());
    // Not JSON at all.
    std::fs::write(bad.join("report.json"), "{ not json").expect("write");
    h.state_mut().open_run(&bad);
    wait(&mut h, "the refusal", 30, |a| {
        a.run_error().is_some_and(|e| e.contains("report.json"))
    });
}

#[test]
fn issue11_bug14_sorting_is_natural_and_case_insensitive() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let titles = [
        "track10",
        "Genre Journey",
        "block_party",
        "track9",
        "Track2",
    ];
    let mut h = app_with_rows(tmp.path(), &titles, [1200.0, 800.0]);
    h.get_by_label("Title").click();
    h.step();
    h.step();
    assert_eq!(h.state().table.sort.0, SortKey::Title);
    let shown: Vec<&str> = h
        .state()
        .table
        .order()
        .iter()
        .map(|&i| h.state().table.rows[i as usize].init.title.as_str())
        .collect();
    assert_eq!(
        shown,
        vec![
            "block_party",
            "Genre Journey",
            "Track2",
            "track9",
            "track10"
        ]
    );
}

/// The app of `size` showing one row per title (files 0.wav, 1.wav, ... in `dir`, not
/// read).
fn app_with_rows<T: AsRef<str>>(dir: &Path, titles: &[T], size: [f32; 2]) -> H {
    let mut h = app(dir, settings(dir), StartOptions::default(), size);
    let rows = (titles.iter().enumerate())
        .map(|(i, t)| row(&dir.join(format!("{i}.wav")), t.as_ref(), &[], None))
        .collect();
    h.state_mut().show_rows(dir.to_path_buf(), rows);
    h.step();
    h
}

/// Titles t0, t1, ... t(n-1).
fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i}")).collect()
}

#[test]
fn issue11_bug16_ctrl_a_selects_every_row() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut h = app_with_rows(tmp.path(), &numbered(7), [1200.0, 800.0]);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    h.step();
    assert_eq!(h.state().table.selected_count(), 7);
    h.get_by_label("7 shown, 7 selected");
}

/// The library table draws each row as one widget and paints its cells, which must still
/// read as labels (screen readers, these tests), keep every column in a narrow window, and
/// resize when a column line is dragged.
#[test]
fn issue10_table_cells_are_labels_columns_fit_and_resize() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let width = 700.0;
    let mut h = app_with_rows(tmp.path(), &numbered(3), [width, 500.0]);
    h.step();
    let title = h.get_by_label("t0").rect();
    assert!(title.width() > 60.0, "the title column: {title:?}");
    let status = |h: &H| {
        let rect = (h.get_all_by_label("pending").next())
            .expect("a status cell")
            .rect();
        assert!(
            rect.right() <= width + 0.5 && rect.width() >= 59.0,
            "the last column stays in the window, at least 60 wide: {rect:?}"
        );
    };
    status(&h);

    // Drag the line after the title column: it follows the pointer (the other columns
    // give way, not the one dragged) until the others are at their narrowest.
    let drag = |h: &mut H, from: egui::Pos2, to: f32| {
        h.hover_at(from);
        h.step();
        h.drag_at(from);
        h.step();
        for k in 1..=4 {
            h.hover_at(from + egui::vec2(to * k as f32 / 4.0, 0.0));
            h.step();
        }
        h.drop_at(from + egui::vec2(to, 0.0));
        h.step();
        h.step();
        h.get_by_label("t0").rect()
    };
    let wider = drag(
        &mut h,
        egui::pos2(title.right() + 4.0, title.center().y),
        60.0,
    );
    assert!(
        (wider.width() - title.width() - 60.0).abs() < 0.5,
        "dragged 60 wider: {title:?} -> {wider:?}"
    );
    status(&h);
    let widest = drag(
        &mut h,
        egui::pos2(wider.right() + 4.0, wider.center().y),
        300.0,
    );
    assert!(
        widest.width() > wider.width() && widest.width() < wider.width() + 100.0,
        "stopped where the window ends: {wider:?} -> {widest:?}"
    );
    status(&h);
    // A click on a painted cell selects its row.
    h.get_by_label("t1").click();
    h.step();
    h.step();
    h.get_by_label("3 shown, 1 selected");
}

#[test]
fn issue11_bug17_a_missing_folder_keeps_the_table_and_says_why_by_the_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let music = tmp.path().join("music");
    std::fs::create_dir_all(&music).expect("mkdir");
    write_wav(&music.join("one.wav"), &clip(0, 0));
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions::default(),
        [1200.0, 800.0],
    );
    h.state_mut().open_folder(music.clone());
    wait(&mut h, "rows", 60, |a| {
        a.progress().2 == 1 && a.analysis_finished()
    });
    let missing = tmp.path().join("no such folder");
    h.state_mut().folder_input = missing.display().to_string();
    h.get_by_label("Open").click_accesskit();
    wait(&mut h, "the refusal", 30, |a| a.open_error().is_some());
    let e = h.state().open_error().unwrap_or_default().to_string();
    assert!(
        e.contains("no such folder") && e.contains("still showing"),
        "{e}"
    );
    assert_eq!(h.state().folder(), Some(music.as_path()));
    assert_eq!(h.state().progress().2, 1);
    h.get_by_label_contains("still showing");
}

#[test]
fn issue10_tags_and_undo_are_served_while_the_analysis_is_paused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let music = tmp.path().join("music");
    std::fs::create_dir_all(&music).expect("mkdir");
    for k in 0..4 {
        write_wav(&music.join(format!("t{k}.wav")), &clip(0, k));
    }
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions::default(),
        [1200.0, 800.0],
    );
    assert!(!h.state().can_undo());
    assert!(
        h.state_mut().folder_input.is_empty(),
        "first start has no folder"
    );
    h.get_by_label_contains("Open a music folder in one of three ways");
    // Paused before the folder is opened: its analysis waits from the start.
    h.state_mut().pause(true);
    h.state_mut().open_folder(music.clone());
    wait(&mut h, "paused rows", 60, |a| {
        a.progress().2 == 4 && a.progress_text().starts_with("paused")
    });
    let target = music.join("t1.wav");
    h.state_mut().preview = vec![(
        target.clone(),
        Proposal {
            existing: vec![],
            proposed: vec!["Ambient".into()],
            changes: true,
            skipped: false,
            reason: "test".into(),
        },
    )];
    h.step();
    h.get_by_label("Apply 1").click_accesskit();
    wait(&mut h, "the write while paused", 60, |a| {
        a.status().starts_with("wrote genres")
    });
    assert_eq!(genres(&target), vec!["Ambient".to_string()]);
    assert!(
        h.state().progress_text().starts_with("paused"),
        "still paused"
    );
    assert!(!h.state().analysis_finished());
    wait(&mut h, "undo enabled", 30, |a| a.can_undo());
    h.get_by_label("Undo last batch").click_accesskit();
    wait(&mut h, "undo while paused", 60, |a| {
        a.status().starts_with("undid batch")
    });
    assert!(genres(&target).is_empty());
    assert!(h.state().progress_text().starts_with("paused"));
}

#[test]
fn issue10_unfinished_writes_of_a_crash_are_settled_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("x.wav");
    write_wav(&f, &clip(0, 0));
    {
        let lib =
            genretag::library::Library::open(&tmp.path().join("library.sqlite3")).expect("library");
        let b = lib.begin_batch("crashed").expect("batch");
        lib.journal_pending(b, &f, &[], &["Rock".to_string()], None, None)
            .expect("pending");
    }
    let mut h = app(
        tmp.path(),
        settings(tmp.path()),
        StartOptions::default(),
        [1200.0, 800.0],
    );
    wait(&mut h, "reconcile", 30, |a| {
        a.status().starts_with("settled 1")
    });
}

/// The whole round trip on real files, at the three views, with snapshots.
#[test]
fn issue4_app_library_track_tagging_and_training() {
    let (run, data) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let music = tmp.path().join("tones");
    std::fs::create_dir_all(&music).expect("mkdir");
    for k in 0..6 {
        let name = format!("tones.{k:05}.wav");
        std::fs::copy(data.join("tones").join(&name), music.join(&name)).expect("copy");
    }
    // The dataset through a link in this test's own temporary folder: its path then has
    // the same length wherever the repository is checked out (the snapshot masks the
    // path, and a text field's mask is as wide as its text).
    let data_link = tmp.path().join("data");
    std::os::unix::fs::symlink(data, &data_link).expect("link the dataset");
    let s = Settings {
        dataset: data_link.display().to_string(),
        model: Some(run.join("model")),
        ..settings(tmp.path())
    };
    let mut h = app(tmp.path(), s, StartOptions::default(), [1200.0, 800.0]);
    h.state_mut().folder_input = music.display().to_string();
    h.get_by_label("Open").click_accesskit();
    wait(&mut h, "analysis", 180, |a| a.analysis_finished());
    let (done, failed, total) = h.state().progress();
    assert_eq!((done, failed, total), (6, 0, 6), "{}", h.state().status());
    assert!(h.state().settings.recent_folders.first() == Some(&music));
    h.get_by_label("tones.00002");
    assert!(h.get_all_by_label_contains("%").count() >= 6);
    snapshot_masked(&mut h, "library", tmp.path(), run);

    h.get_by_label("tones.00002").click();
    h.step();
    assert_eq!(h.state().current_track(), Some(2));
    h.get_by_label("Track").click_accesskit();
    wait(&mut h, "decoding", 60, |a| a.track_loaded());
    h.get_by_label("Live mel spectrogram");
    h.get_by_label("Whole track");
    h.get_by_label("Now playing");
    snapshot_masked(&mut h, "track", tmp.path(), run);
    h.get_by_label("Play").click_accesskit();
    h.step();
    assert!(h.state().player.is_playing());
    std::thread::sleep(Duration::from_millis(300));
    h.step();
    assert!(h.state_mut().player.position_s() > 0.1);
    h.get_by_label("Pause").click_accesskit();
    h.step();
    assert!(!h.state().player.is_playing());

    // Tag the whole folder: preview, apply, read back, undo.
    h.get_by_label("Library").click_accesskit();
    h.step();
    h.state_mut().table.select(0..6);
    // Synthetic tones are not music the model is sure of: the user lowers the threshold.
    h.state_mut().policy.min_prob = 0.0;
    h.get_by_label("Preview").click_accesskit();
    wait(&mut h, "preview", 30, |a| a.preview.len() == 6);
    let changes = h
        .state()
        .preview
        .iter()
        .filter(|(_, p)| p.changes && !p.skipped)
        .count();
    assert!(changes > 0, "{:?}", h.state().preview);
    h.get_by_label(&format!("Apply {changes}"))
        .click_accesskit();
    wait(&mut h, "tag write", 60, |a| {
        a.status().starts_with("wrote genres")
    });
    assert!(h.state().preview.is_empty());
    let tagged = h
        .state()
        .table
        .rows
        .iter()
        .filter(|r| !genres(&r.init.path).is_empty())
        .count();
    assert_eq!(tagged, changes);
    assert!(h.state().table.rows.iter().any(|r| r.changed_by_us));
    wait(&mut h, "undo enabled", 30, |a| a.can_undo());
    h.get_by_label("Undo last batch").click_accesskit();
    wait(&mut h, "undo", 60, |a| {
        a.status().starts_with("undid batch")
    });
    assert!(
        h.state()
            .table
            .rows
            .iter()
            .all(|r| genres(&r.init.path).is_empty())
    );
    assert!(h.state().table.rows.iter().all(|r| !r.changed_by_us));

    // Playlists of the folder by predicted genre.
    let lists = tmp.path().join("lists");
    h.state_mut().settings.playlist_dir = lists.display().to_string();
    let written = genretag::gui::state::playlists(
        &h.state().table,
        &(0..6).collect::<Vec<_>>(),
        genretag::gui::state::PlaylistBy::Predicted,
    );
    genretag::gui::jobs::tasks::write_playlists(&lists, &written).expect("playlists");
    let m3u = std::fs::read_to_string(lists.join("tones.m3u8")).expect("playlist");
    assert_eq!(m3u.matches(".wav").count(), 6);

    // Train a small model on the generated dataset and see curves and the matrix.
    h.get_by_label("Training").click_accesskit();
    h.step();
    h.state_mut().set_training_form(ModelKind::Logreg, 40);
    h.get_by_label("Start").click_accesskit();
    h.step();
    assert!(h.state().training_running(), "{}", h.state().status());
    wait(&mut h, "training", 240, |a| !a.training_running());
    let r = h
        .state()
        .report()
        .cloned()
        .unwrap_or_else(|| panic!("no report; status: {}", h.state().status()));
    assert_eq!(r.labels, CLASSES);
    assert!(!h.state().curves().is_empty());
    h.get_by_label(&format!(
        "{}: test accuracy {:.3}",
        r.model, r.track.accuracy
    ));
    h.get_by_label("precision");
    let run_dir = tmp.path().join("runs/run");
    assert!(run_dir.join("report.json").exists());
    assert_eq!(h.state().settings.tab, Tab::Training);
    h.step();
    snapshot_masked(&mut h, "training", tmp.path(), run);

    // Export: never into the run folder; into an export folder, PNG + SVG + CSV.
    let before = std::fs::metadata(run_dir.join("confusion.png"))
        .and_then(|m| m.modified())
        .expect("png");
    h.state_mut().export_to(&run_dir);
    wait(&mut h, "refusal", 30, |a| a.export_message().is_some());
    assert!(h.state().export_message().is_some_and(|m| m.is_err()));
    h.state_mut().export_to(&tmp.path().join("figures"));
    wait(&mut h, "export", 60, |a| a.export_message().is_some());
    assert!(
        h.state().export_message().is_some_and(|m| m.is_ok()),
        "{:?}",
        h.state().export_message()
    );
    for f in [
        "confusion_by_true.png",
        "confusion_by_true.svg",
        "curves.png",
        "curves.svg",
        "per_class.csv",
    ] {
        assert!(tmp.path().join("figures").join(f).exists(), "{f}");
    }
    assert_eq!(
        std::fs::metadata(run_dir.join("confusion.png"))
            .and_then(|m| m.modified())
            .expect("png"),
        before
    );

    // One click: the library is analysed again with the newly trained model.
    h.get_by_label("Use this model for my library")
        .click_accesskit();
    h.step();
    wait(&mut h, "re-analysis", 120, |a| {
        a.model_path() == Some(run_dir.join("model").as_path())
            && a.analysis_finished()
            && a.progress() == (6, 0, 6)
    });
}

/// The three views at the smallest window size, light theme (the views scroll or
/// reflow instead of cutting things off).
#[test]
fn issue11_bug4_views_fit_the_minimum_window_in_the_light_theme() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = Settings {
        dark: false,
        ..settings(tmp.path())
    };
    let mut h = app(tmp.path(), s, StartOptions::default(), [900.0, 600.0]);
    snapshot(&mut h, "welcome_light_900");
    let rows = (0..30)
        .map(|i| {
            row(
                &tmp.path()
                    .join(format!("album {}/{i:02} song.flac", i / 10)),
                &format!("Song {i}"),
                if i % 3 == 0 { &["Rock"] } else { &[] },
                None,
            )
        })
        .collect();
    let g = h.state_mut().show_rows(tmp.path().to_path_buf(), rows);
    for i in 0..20 {
        let (l, p) = [("tones", 0.8), ("noise", 0.55), ("clicks", 0.7)][i % 3];
        let v = if i % 7 == 3 {
            Verdict::Unsure {
                reason: "top genre only 40 %".into(),
            }
        } else {
            Verdict::Genre {
                label: l.into(),
                probability: p,
            }
        };
        h.state_mut()
            .apply_library_event(analysed(g, i, analysis(l, p, v)));
    }
    h.state_mut().folder_input = "music".into();
    h.state_mut().table.refresh(true);
    h.step();
    assert!(h.query_all_by_label_contains("unsure (").count() >= 1);
    snapshot(&mut h, "library_light_900");
}

#[test]
fn issue11_last_folder_is_reopened_and_undo_starts_disabled() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let music = tmp.path().join("music");
    std::fs::create_dir_all(&music).expect("mkdir");
    write_wav(&music.join("one.wav"), &clip(1, 0));
    let s = Settings {
        recent_folders: vec![music.clone()],
        ..settings(tmp.path())
    };
    let start = StartOptions {
        db: Some(tmp.path().join("library.sqlite3")),
        stable_ui: true,
        ..StartOptions::default()
    };
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| GenretagApp::with_settings(cc.egui_ctx.clone(), s, start));
    wait(&mut h, "the last folder", 60, |a| a.progress().2 == 1);
    assert_eq!(h.state().folder(), Some(music.as_path()));
    wait(&mut h, "the journal", 30, |a| {
        a.status().contains("analysed") || a.status().contains("model")
    });
    assert!(!h.state().can_undo());
    assert!(
        h.get_by_label("Undo last batch")
            .accesskit_node()
            .is_disabled()
    );
}
