//! The app's state that outlives a frame, apart from drawing: preferences (persisted),
//! start options, and the library table — rows with a compact summary of their
//! analysis, a path -> row index, the visible order, the filter and the selection.
//!
//! Everything here is plain data and logic that tests drive without a window. Costs
//! are kept independent of the library's size per frame: the natural sort orders of
//! the text columns are computed once on the library worker ([`ColumnOrders`]), genres
//! and labels are interned so the other columns sort by small integers, counters are
//! kept up to date instead of counted, and re-sorting on analysis results is throttled.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::analysis::StoredAnalysis;
use crate::model::Verdict;

/// Which view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Tab {
    /// The library table and tagging.
    #[default]
    Library,
    /// Playback, spectrograms and probabilities of one track.
    Track,
    /// Training and evaluation.
    Training,
}

/// User preferences, persisted with eframe's storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Most recent first; the first is reopened at start.
    pub recent_folders: Vec<PathBuf>,
    /// Dark theme (else light).
    pub dark: bool,
    /// Playback volume.
    pub volume: f32,
    /// Last view.
    pub tab: Tab,
    /// Training dataset folder.
    pub dataset: String,
    /// Training output folder.
    pub runs_dir: String,
    /// The trained model the library is analysed with (`None`: the shipped model).
    pub model: Option<PathBuf>,
    /// Height of the tag preview panel, in points.
    pub preview_height: f32,
    /// Show the diagnostics panel (frame times).
    pub diagnostics: bool,
    /// Where playlists are written (empty: `<folder>/playlists`).
    pub playlist_dir: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            recent_folders: Vec::new(),
            dark: true,
            volume: 0.8,
            tab: Tab::Library,
            dataset: String::new(),
            runs_dir: std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join("genretag-runs"))
                .unwrap_or_else(|| PathBuf::from("genretag-runs"))
                .display()
                .to_string(),
            model: None,
            preview_height: 220.0,
            diagnostics: false,
            playlist_dir: String::new(),
        }
    }
}

/// What `--exercise` does (frame-time measurements act like a busy user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exercise {
    /// Nothing.
    #[default]
    Off,
    /// Scroll the table, select tracks and switch views continuously.
    Browse,
    /// Browse, and change the sort column every few seconds.
    Sort,
    /// Once every track is analysed: select all, preview, apply, then undo.
    Tag,
}

/// Start-up options (command line, tests).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Open this folder at start (and show the library).
    pub folder: Option<PathBuf>,
    /// Library database (default location if `None`).
    pub db: Option<PathBuf>,
    /// Start on this view.
    pub tab: Option<Tab>,
    /// Select the first track and play it once analysed.
    pub play_first: bool,
    /// Show this run's report in the training view.
    pub run: Option<PathBuf>,
    /// Write frame-time statistics here (every second and on exit).
    pub frame_log: Option<PathBuf>,
    /// Act like a busy user (frame-time measurements).
    pub exercise: Exercise,
    /// Hide machine-dependent text (frame times, audio device status) so snapshot
    /// images are reproducible.
    pub stable_ui: bool,
    /// Where models run (training and analysis); `None`: the CPU (burn-flex).
    pub device: Option<burn::tensor::Device>,
    /// Analyse the library with this trained model (and remember it).
    pub model: Option<PathBuf>,
    /// Do not reopen the last folder (tests).
    pub no_reopen: bool,
    /// Dark (true) or light theme for this run (remembered).
    pub dark: Option<bool>,
    /// Window size in points.
    pub window_size: Option<[f32; 2]>,
}

/// One library row as first listed (before analysis).
#[derive(Debug, Clone)]
pub struct RowInit {
    /// The file.
    pub path: PathBuf,
    /// Title tag (the file name when there is none).
    pub title: String,
    /// Artist tag.
    pub artist: String,
    /// Album tag.
    pub album: String,
    /// Recording year tag.
    pub year: Option<u32>,
    /// Genres in the file now.
    pub genres: Vec<String>,
    /// Why its tags could not be read.
    pub error: Option<String>,
    /// Lower-case title, artist, album and path, for the search field.
    pub search: Box<str>,
}

impl RowInit {
    /// A row; `title` falls back to the file name.
    pub fn new(
        path: PathBuf,
        title: Option<String>,
        artist: Option<String>,
        album: Option<String>,
        genres: Vec<String>,
        error: Option<String>,
    ) -> Self {
        let title = title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        });
        let artist = artist.unwrap_or_default();
        let album = album.unwrap_or_default();
        let search = format!(
            "{}\u{1}{}\u{1}{}\u{1}{}",
            title,
            artist,
            album,
            path.display()
        )
        .to_lowercase()
        .into_boxed_str();
        Self {
            path,
            title,
            artist,
            album,
            year: None,
            genres,
            error,
            search,
        }
    }

    /// The same row with a recording year.
    pub fn with_year(mut self, year: Option<u32>) -> Self {
        self.year = year;
        self
    }
}

/// Analysis state of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Waiting.
    Pending,
    /// Analysed.
    Done,
    /// Could not be analysed (or its tags read).
    Failed(String),
}

/// One segment of a row's analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, seconds.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
    /// Probabilities in label order.
    pub probs: Box<[f32]>,
}

/// What a row keeps of its analysis: probabilities in the model's label order (not
/// label strings per row), the top style tags as indices, the segments, the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAnalysis {
    /// Track probabilities in label order.
    pub probs: Box<[f32]>,
    /// The most likely label (index) and its probability.
    pub top: Option<(u16, f32)>,
    /// The model's decision.
    pub verdict: Verdict,
    /// The top style tags: (index into the musicnn tag list, probability).
    pub tags: Box<[(u16, f32)]>,
    /// Per-segment probabilities, in time order.
    pub segments: Box<[Segment]>,
    /// Decoded duration, seconds.
    pub duration_s: f32,
    /// Seconds the model listened to (0: unknown).
    pub listened_s: f32,
}

/// Style tags kept per row.
const TOP_TAGS: usize = 8;

impl RowAnalysis {
    /// Compact `a`, whose labels are `labels` (the model's, in probability order).
    pub fn from_stored(a: &StoredAnalysis, labels: &[String]) -> Self {
        let index: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let mut probs = vec![0.0f32; labels.len()];
        for (l, p) in &a.genres {
            if let Some(&i) = index.get(l.as_str()) {
                probs[i] = *p;
            }
        }
        let top = probs
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .map(|(i, p)| (i as u16, *p));
        let tags = a
            .tags
            .iter()
            .filter_map(|(t, p)| {
                crate::ml::musicnn::MSD_TAGS
                    .iter()
                    .position(|m| m == t)
                    .map(|i| (i as u16, *p))
            })
            .take(TOP_TAGS)
            .collect();
        let segments = a
            .segments
            .iter()
            .map(|s| Segment {
                start_s: s.start_s,
                end_s: s.end_s,
                probs: s.genre_probs.clone().into_boxed_slice(),
            })
            .collect();
        Self {
            probs: probs.into_boxed_slice(),
            top,
            verdict: a.verdict.clone(),
            tags,
            segments,
            duration_s: a.duration_s as f32,
            listened_s: a.listened_s as f32,
        }
    }

    /// `(label, probability)`, most likely first.
    pub fn ranked<'a>(&self, labels: &'a [String]) -> Vec<(&'a str, f32)> {
        let mut v: Vec<(&str, f32)> = labels
            .iter()
            .map(String::as_str)
            .zip(self.probs.iter().copied())
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// Whether the segments leave parts of the track unheard (the shipped model listens
    /// to at most 10 patches of long tracks): the track view then analyses the rest.
    pub fn partial(&self) -> bool {
        let heard: f32 = self
            .segments
            .iter()
            .map(|s| (s.end_s - s.start_s).max(0.0))
            .sum();
        self.duration_s > 0.0 && heard + 3.5 < self.duration_s
    }

    /// The segment playing at `pos_s`: the one containing it, else the nearest.
    pub fn segment_at(&self, pos_s: f32) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| s.start_s <= pos_s && pos_s < s.end_s)
            .or_else(|| {
                self.segments.iter().min_by(|a, b| {
                    let d = |s: &Segment| (s.start_s - pos_s).abs().min((s.end_s - pos_s).abs());
                    d(a).total_cmp(&d(b))
                })
            })
    }
}

/// One library row.
#[derive(Debug, Clone)]
pub struct Row {
    /// As listed.
    pub init: RowInit,
    /// Analysis, when done.
    pub analysis: Option<RowAnalysis>,
    /// State.
    pub status: Status,
    /// Interned genre string (sorting and grouping).
    genre_key: u32,
    /// Whether genretag wrote its genres (a batch not undone).
    pub changed_by_us: bool,
}

/// The parts of a row the Genre, Predicted and Status columns sort by.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SortFacts {
    genre_key: u32,
    top: Option<(u16, f32)>,
    /// 0 pending, 1 done, 2 done but unsure, 3 failed.
    status: u8,
}

impl SortFacts {
    fn of(r: &Row) -> Self {
        Self {
            genre_key: r.genre_key,
            top: r.analysis.as_ref().and_then(|a| a.top),
            status: match (&r.status, r.verdict()) {
                (Status::Done, Some(v)) if v.is_unsure() => 2,
                (Status::Done, _) => 1,
                (Status::Pending, _) => 0,
                (Status::Failed(_), _) => 3,
            },
        }
    }
}

impl Row {
    /// The model's decision, if analysed.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.analysis.as_ref().map(|a| &a.verdict)
    }
}

/// Table columns that sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// Title.
    Title,
    /// Artist.
    Artist,
    /// Album.
    Album,
    /// Recording year.
    Year,
    /// Sub-folder relative to the open folder.
    Folder,
    /// File name.
    File,
    /// Genres in the file.
    Genre,
    /// The model's top genre (then its probability, highest first).
    Predicted,
    /// Analysis state.
    Status,
}

/// Which rows to show besides the search text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Facet {
    /// Every row.
    #[default]
    All,
    /// Rows whose file has this genre.
    Genre(String),
    /// Rows the model puts in this genre (and is sure of).
    Predicted(String),
    /// Rows the model is unsure of.
    Unsure,
    /// Rows whose genres genretag wrote.
    Changed,
    /// Rows that could not be analysed.
    Failed,
    /// Rows with no genre tag.
    Untagged,
}

impl Facet {
    /// For the filter menu.
    pub fn name(&self) -> String {
        match self {
            Facet::All => "all tracks".into(),
            Facet::Genre(g) => format!("genre tag: {g}"),
            Facet::Predicted(g) => format!("predicted: {g}"),
            Facet::Unsure => "unsure".into(),
            Facet::Changed => "changed by genretag".into(),
            Facet::Failed => "could not be analysed".into(),
            Facet::Untagged => "no genre tag".into(),
        }
    }
}

/// Natural, case-insensitive order ("track9" < "Track10" < "track11"): digit runs
/// compare by value, everything else by lower-case character; ties fall back to the
/// plain byte order so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
                    let mut s = String::new();
                    while let Some(c) = it.peek().copied().filter(char::is_ascii_digit) {
                        s.push(c);
                        it.next();
                    }
                    s
                };
                let (p, q) = (run(&mut x), run(&mut y));
                let (pt, qt) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                let o = pt.len().cmp(&qt.len()).then_with(|| pt.cmp(qt));
                if o != Ordering::Equal {
                    return o;
                }
            }
            (Some(c), Some(d)) => {
                let o = c.to_lowercase().cmp(d.to_lowercase());
                if o != Ordering::Equal {
                    return o;
                }
                x.next();
                y.next();
            }
        }
    }
}

/// The rows' natural orders by each text column (indices into the rows), computed once
/// on the library worker so a click on a header costs a pass, not a sort.
#[derive(Debug, Clone, Default)]
pub struct ColumnOrders {
    title: Vec<u32>,
    artist: Vec<u32>,
    album: Vec<u32>,
    year: Vec<u32>,
    folder: Vec<u32>,
    file: Vec<u32>,
}

impl ColumnOrders {
    /// Sort `rows` (listed under `root`) by each column.
    pub fn compute(rows: &[RowInit], root: &Path) -> Self {
        let by = |key: &dyn Fn(&RowInit) -> String| -> Vec<u32> {
            let keys: Vec<String> = rows.iter().map(key).collect();
            let mut idx: Vec<u32> = (0..rows.len() as u32).collect();
            // Ties keep the path order the rows came in (stable sort).
            idx.sort_by(|&a, &b| natural_cmp(&keys[a as usize], &keys[b as usize]));
            idx
        };
        Self {
            title: by(&|r| r.title.clone()),
            artist: by(&|r| r.artist.clone()),
            album: by(&|r| r.album.clone()),
            // Zero-padded so the natural order is numeric; no year sorts first.
            year: by(&|r| r.year.map(|y| format!("{y:05}")).unwrap_or_default()),
            folder: by(&|r| relative_folder(&r.path, root)),
            file: by(&|r| file_name(&r.path)),
        }
    }

    fn get(&self, key: SortKey) -> Option<&[u32]> {
        match key {
            SortKey::Title => Some(&self.title),
            SortKey::Artist => Some(&self.artist),
            SortKey::Album => Some(&self.album),
            SortKey::Year => Some(&self.year),
            SortKey::Folder => Some(&self.folder),
            SortKey::File => Some(&self.file),
            _ => None,
        }
    }

    fn valid(&self, n: usize) -> bool {
        [
            &self.title,
            &self.artist,
            &self.album,
            &self.year,
            &self.folder,
            &self.file,
        ]
        .iter()
        .all(|v| v.len() == n)
    }
}

/// The file name of `path`.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The folder of `path` relative to `root` (empty at the top).
pub fn relative_folder(path: &Path, root: &Path) -> String {
    path.parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Interned strings with their natural rank (genre tags, model labels).
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    lower: Vec<String>,
    rank: Vec<u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(s.to_string(), i);
        self.names.push(s.to_string());
        self.lower.push(s.to_lowercase());
        // Few distinct values: re-rank all of them.
        let mut by: Vec<u32> = (0..self.names.len() as u32).collect();
        by.sort_by(|&a, &b| natural_cmp(&self.names[a as usize], &self.names[b as usize]));
        self.rank = vec![0; by.len()];
        for (r, &i) in by.iter().enumerate() {
            self.rank[i as usize] = r as u32;
        }
        i
    }
}

/// Re-sorting on analysis results waits at least this long (a 50 000-row table
/// re-sorted on every result would stutter; a second of lag is not noticed).
const RESORT_EVERY: Duration = Duration::from_millis(1000);

/// The library table.
#[derive(Debug)]
pub struct Table {
    /// The folder shown.
    pub folder: Option<PathBuf>,
    /// The rows, sorted by path.
    pub rows: Vec<Row>,
    /// What the small-key columns sort by, one compact entry per row (kept in step with
    /// `rows` by every method that changes them).
    facts: Vec<SortFacts>,
    /// Path -> row.
    index: HashMap<PathBuf, usize>,
    /// Labels of the model the analyses came from (probability order).
    pub labels: Arc<[String]>,
    orders: ColumnOrders,
    genres: Interner,
    /// Natural rank of each label.
    label_rank: Vec<u32>,
    /// Sort column and ascending.
    pub sort: (SortKey, bool),
    /// Search text.
    pub filter: String,
    /// Facet.
    pub facet: Facet,
    order: Vec<u32>,
    dirty: bool,
    /// Analysis results arrived since the last sort, at this time.
    analysis_changed: Option<Instant>,
    selected: Vec<bool>,
    selected_count: usize,
    anchor: Option<usize>,
    done: usize,
    failed: usize,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            folder: None,
            rows: Vec::new(),
            facts: Vec::new(),
            index: HashMap::new(),
            labels: Arc::from(Vec::new()),
            orders: ColumnOrders::default(),
            genres: Interner::default(),
            label_rank: Vec::new(),
            sort: (SortKey::Folder, true),
            filter: String::new(),
            facet: Facet::All,
            order: Vec::new(),
            dirty: true,
            analysis_changed: None,
            selected: Vec::new(),
            selected_count: 0,
            anchor: None,
            done: 0,
            failed: 0,
        }
    }
}

/// `v` sorted by each value's upper 32 bits, stably (values with equal upper halves keep
/// their order): a byte-wise radix sort, skipping the bytes where all values agree. At
/// 50 000 rows it takes a fraction of a comparison sort's time, which matters on the UI
/// thread.
fn sort_by_high_half(mut v: Vec<u64>) -> Vec<u64> {
    let mut out = vec![0u64; v.len()];
    for shift in [32u32, 40, 48, 56] {
        let digit = |x: u64| ((x >> shift) & 0xff) as usize;
        let mut count = [0usize; 256];
        for &x in &v {
            count[digit(x)] += 1;
        }
        if count.contains(&v.len()) {
            continue; // every value has the same byte here
        }
        let mut start = [0usize; 256];
        for d in 1..256 {
            start[d] = start[d - 1] + count[d - 1];
        }
        for &x in &v {
            let d = digit(x);
            out[start[d]] = x;
            start[d] += 1;
        }
        std::mem::swap(&mut v, &mut out);
    }
    v
}

impl Table {
    /// Show `rows` of `folder`; `orders` from [`ColumnOrders::compute`] (recomputed here
    /// when missing); `changed` are rows whose genres genretag wrote.
    pub fn set_rows(
        &mut self,
        folder: PathBuf,
        rows: Vec<RowInit>,
        orders: Option<ColumnOrders>,
        changed: &[usize],
    ) {
        let orders = orders
            .filter(|o| o.valid(rows.len()))
            .unwrap_or_else(|| ColumnOrders::compute(&rows, &folder));
        self.genres = Interner::default();
        self.genres.id("");
        self.index = HashMap::with_capacity(rows.len());
        self.done = 0;
        self.failed = 0;
        self.rows = rows
            .into_iter()
            .enumerate()
            .map(|(i, init)| {
                self.index.insert(init.path.clone(), i);
                let status = match &init.error {
                    Some(e) => Status::Failed(e.clone()),
                    None => Status::Pending,
                };
                Row {
                    genre_key: self.genres.id(&init.genres.join("; ")),
                    init,
                    analysis: None,
                    status,
                    changed_by_us: false,
                }
            })
            .collect();
        self.failed = self
            .rows
            .iter()
            .filter(|r| matches!(r.status, Status::Failed(_)))
            .count();
        for &i in changed {
            if let Some(r) = self.rows.get_mut(i) {
                r.changed_by_us = true;
            }
        }
        self.facts = self.rows.iter().map(SortFacts::of).collect();
        self.orders = orders;
        self.folder = Some(folder);
        self.selected = vec![false; self.rows.len()];
        self.selected_count = 0;
        self.anchor = None;
        self.analysis_changed = None;
        self.dirty = true;
    }

    /// The row of `path`.
    pub fn index_of(&self, path: &Path) -> Option<usize> {
        self.index.get(path).copied()
    }

    /// Use `labels` for the analyses that follow (a new model).
    pub fn set_labels(&mut self, labels: Arc<[String]>) {
        if Arc::ptr_eq(&self.labels, &labels) || *self.labels == *labels {
            return;
        }
        let mut by: Vec<u32> = (0..labels.len() as u32).collect();
        by.sort_by(|&a, &b| natural_cmp(&labels[a as usize], &labels[b as usize]));
        self.label_rank = vec![0; labels.len()];
        for (r, &i) in by.iter().enumerate() {
            self.label_rank[i as usize] = r as u32;
        }
        self.labels = labels;
        self.dirty = true;
    }

    /// A table of `rows`, made off the UI thread (a 50 000-row table takes tens of
    /// milliseconds to index); the UI takes it over with [`Table::adopt`].
    pub fn prepared(
        folder: PathBuf,
        rows: Vec<RowInit>,
        orders: Option<ColumnOrders>,
        changed: &[usize],
    ) -> Self {
        let mut t = Self::default();
        t.set_rows(folder, rows, orders, changed);
        t
    }

    /// Show `new`'s rows with this table's sort, search and facet; returns the old
    /// table (drop it off the UI thread when it is large).
    pub fn adopt(&mut self, mut new: Table) -> Table {
        new.sort = self.sort;
        new.filter = std::mem::take(&mut self.filter);
        new.facet = std::mem::take(&mut self.facet);
        new.labels = self.labels.clone();
        new.label_rank = self.label_rank.clone();
        new.dirty = true;
        std::mem::replace(self, new)
    }

    /// Row `i` was analysed (with the model of [`Table::labels`]).
    pub fn set_analysis(&mut self, i: usize, summary: RowAnalysis) {
        let Some(r) = self.rows.get_mut(i) else {
            return;
        };
        match r.status {
            Status::Done => {}
            Status::Failed(_) => {
                self.failed -= 1;
                self.done += 1;
            }
            Status::Pending => self.done += 1,
        }
        r.analysis = Some(summary);
        r.status = Status::Done;
        self.facts[i] = SortFacts::of(r);
        self.analysis_changed.get_or_insert_with(Instant::now);
    }

    /// Row `i` could not be analysed.
    pub fn set_failed(&mut self, i: usize, error: String) {
        let Some(r) = self.rows.get_mut(i) else {
            return;
        };
        match r.status {
            Status::Done => {
                self.done -= 1;
                self.failed += 1;
            }
            Status::Pending => self.failed += 1,
            Status::Failed(_) => {}
        }
        r.status = Status::Failed(error);
        self.facts[i] = SortFacts::of(r);
        self.analysis_changed.get_or_insert_with(Instant::now);
    }

    /// The file at `path` now has `genres`; `ours`: genretag wrote them (else restored).
    /// Returns false if no row shows that file.
    pub fn set_genres(&mut self, path: &Path, genres: Vec<String>, ours: bool) -> bool {
        let Some(i) = self.index_of(path) else {
            return false;
        };
        let key = self.genres.id(&genres.join("; "));
        let r = &mut self.rows[i];
        r.init.genres = genres;
        r.genre_key = key;
        r.changed_by_us = ours;
        self.facts[i] = SortFacts::of(r);
        if matches!(self.sort.0, SortKey::Genre)
            || matches!(
                self.facet,
                Facet::Genre(_) | Facet::Changed | Facet::Untagged
            )
            || !self.filter.is_empty()
        {
            self.dirty = true;
        }
        true
    }

    /// (analysed, failed, total), kept up to date (no count per frame).
    pub fn progress(&self) -> (usize, usize, usize) {
        (self.done, self.failed, self.rows.len())
    }

    /// Sort by `key`; the same key again flips the direction.
    pub fn sort_by(&mut self, key: SortKey) {
        self.sort = if self.sort.0 == key {
            (key, !self.sort.1)
        } else {
            (key, true)
        };
        self.dirty = true;
    }

    /// The search text or facet changed.
    pub fn filter_changed(&mut self) {
        self.dirty = true;
    }

    fn depends_on_analysis(&self) -> bool {
        matches!(self.sort.0, SortKey::Predicted | SortKey::Status)
            || matches!(
                self.facet,
                Facet::Predicted(_) | Facet::Unsure | Facet::Failed
            )
            || !self.filter.is_empty()
    }

    /// Bring the visible order up to date. `force`: do not wait to batch analysis
    /// results (e.g. the analysis just finished). Returns whether it changed.
    pub fn refresh(&mut self, force: bool) -> bool {
        if let Some(t) = self.analysis_changed
            && self.depends_on_analysis()
            && (force || t.elapsed() >= RESORT_EVERY)
        {
            self.dirty = true;
        }
        if !self.dirty {
            return false;
        }
        self.analysis_changed = None;
        self.dirty = false;
        let f = self.filter.to_lowercase();
        let visible = |i: u32| self.visible(i as usize, &f);
        let (key, asc) = self.sort;
        let mut order: Vec<u32> = match self.orders.get(key) {
            Some(o) => o.iter().copied().filter(|&i| visible(i)).collect(),
            None => {
                // Small integer keys from the rows' compact sort facts (reading 50 000
                // whole rows takes milliseconds); the folder order breaks ties: one u64
                // per row, key then position in folder order.
                let folder = self.orders.get(SortKey::Folder).unwrap_or(&[]);
                let packed: Vec<u64> = folder
                    .iter()
                    .enumerate()
                    .filter(|&(_, &i)| visible(i))
                    .map(|(pos, &i)| ((self.small_key(key, i as usize) as u64) << 32) | pos as u64)
                    .collect();
                let packed = sort_by_high_half(packed);
                packed
                    .into_iter()
                    .map(|k| folder[(k & 0xffff_ffff) as usize])
                    .collect()
            }
        };
        if !asc {
            order.reverse();
        }
        self.order = order;
        true
    }

    /// The sort key of the columns that are not text.
    fn small_key(&self, key: SortKey, i: usize) -> u32 {
        let f = self.facts.get(i).copied().unwrap_or_default();
        match key {
            SortKey::Genre => {
                // Untagged rows last.
                let k = f.genre_key as usize;
                if k == 0 {
                    u32::MAX
                } else {
                    self.genres.rank[k].min(u32::MAX - 1)
                }
            }
            SortKey::Predicted => match f.top {
                // Label by name, then the most probable first.
                // (Label ranks beyond 4 094 share one key: no model has that many labels.)
                Some((l, p)) => {
                    let rank = self.label_rank.get(l as usize).copied().unwrap_or(4094);
                    (rank.min(4094) << 20) | (1_000_000 - (p.clamp(0.0, 1.0) * 1e6) as u32)
                }
                None => u32::MAX,
            },
            SortKey::Status => f.status as u32,
            _ => 0,
        }
    }

    fn visible(&self, i: usize, f: &str) -> bool {
        let r = &self.rows[i];
        let label = |a: &RowAnalysis| -> Option<&str> {
            a.top
                .and_then(|(l, _)| self.labels.get(l as usize))
                .map(String::as_str)
        };
        let facet = match &self.facet {
            Facet::All => true,
            Facet::Genre(g) => r.init.genres.iter().any(|x| x.eq_ignore_ascii_case(g)),
            Facet::Predicted(g) => r
                .analysis
                .as_ref()
                .is_some_and(|a| !a.verdict.is_unsure() && label(a) == Some(g.as_str())),
            Facet::Unsure => r.verdict().is_some_and(Verdict::is_unsure),
            Facet::Changed => r.changed_by_us,
            Facet::Failed => matches!(r.status, Status::Failed(_)),
            Facet::Untagged => r.init.genres.is_empty(),
        };
        facet
            && (f.is_empty()
                || r.init.search.contains(f)
                || self.genres.lower[r.genre_key as usize].contains(f)
                || r.analysis
                    .as_ref()
                    .and_then(label)
                    .is_some_and(|l| l.to_lowercase().contains(f)))
    }

    /// The visible rows in display order.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Genre tags present (for the filter menu), in natural order.
    pub fn genre_values(&self) -> Vec<String> {
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for r in &self.rows {
            for g in &r.init.genres {
                names.entry(g.to_lowercase()).or_insert_with(|| g.clone());
            }
        }
        let mut v: Vec<String> = names.into_values().collect();
        v.sort_by(|a, b| natural_cmp(a, b));
        v
    }

    /// Whether row `i` is selected.
    pub fn is_selected(&self, i: usize) -> bool {
        self.selected.get(i).copied().unwrap_or(false)
    }

    /// Selected rows in row order.
    pub fn selected(&self) -> Vec<usize> {
        self.selected
            .iter()
            .enumerate()
            .filter_map(|(i, &s)| s.then_some(i))
            .collect()
    }

    /// How many rows are selected.
    pub fn selected_count(&self) -> usize {
        self.selected_count
    }

    /// Select exactly `rows`.
    pub fn select(&mut self, rows: impl IntoIterator<Item = usize>) {
        self.selected.iter_mut().for_each(|s| *s = false);
        self.selected_count = 0;
        for i in rows {
            if let Some(s) = self.selected.get_mut(i)
                && !*s
            {
                *s = true;
                self.selected_count += 1;
            }
        }
    }

    /// Select row `i` alone (and make it the anchor of Shift-clicks).
    pub fn select_one(&mut self, i: usize) {
        self.select([i]);
        self.anchor = Some(i);
    }

    /// Select every visible row (Ctrl+A).
    pub fn select_all_visible(&mut self) {
        let order = std::mem::take(&mut self.order);
        self.select(order.iter().map(|&i| i as usize));
        self.order = order;
    }

    /// A click on row `i`: plain (select it alone), Ctrl/Cmd (toggle), Shift (extend
    /// from the anchor over the visible order).
    pub fn click(&mut self, i: usize, ctrl: bool, shift: bool) {
        if shift && let Some(a) = self.anchor {
            let pos = |x: usize| self.order.iter().position(|&o| o as usize == x);
            if let (Some(pa), Some(pi)) = (pos(a), pos(i)) {
                let (lo, hi) = (pa.min(pi), pa.max(pi));
                let range: Vec<usize> = self.order[lo..=hi].iter().map(|&o| o as usize).collect();
                for r in range {
                    if let Some(s) = self.selected.get_mut(r)
                        && !*s
                    {
                        *s = true;
                        self.selected_count += 1;
                    }
                }
                return;
            }
        }
        if ctrl {
            if let Some(s) = self.selected.get_mut(i) {
                *s = !*s;
                if *s {
                    self.selected_count += 1;
                } else {
                    self.selected_count -= 1;
                }
            }
        } else {
            self.select([i]);
        }
        self.anchor = Some(i);
    }

    /// The row after (or before) `current` in the visible order.
    pub fn neighbour(&self, current: Option<usize>, down: bool) -> Option<usize> {
        let pos = current.and_then(|c| self.order.iter().position(|&i| i as usize == c));
        let next = match (pos, down) {
            (Some(p), true) => (p + 1).min(self.order.len().saturating_sub(1)),
            (Some(p), false) => p.saturating_sub(1),
            (None, _) => 0,
        };
        self.order.get(next).map(|&i| i as usize)
    }

    /// The display name of label `i`.
    pub fn label(&self, i: u16) -> &str {
        self.labels.get(i as usize).map_or("?", String::as_str)
    }
}

/// Which genre a playlist groups tracks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistBy {
    /// The model's sure answer (unsure and unanalysed tracks are left out).
    Predicted,
    /// The genres written in the files (a track with two genres is in both lists).
    Written,
}

/// Tracks grouped into playlists: genre -> files, in the given row order.
pub fn playlists(
    table: &Table,
    rows: &[usize],
    by: PlaylistBy,
) -> BTreeMap<String, Vec<(PathBuf, String, f32)>> {
    let mut out: BTreeMap<String, Vec<(PathBuf, String, f32)>> = BTreeMap::new();
    for &i in rows {
        let Some(r) = table.rows.get(i) else { continue };
        let entry = |r: &Row| {
            let who = if r.init.artist.is_empty() {
                r.init.title.clone()
            } else {
                format!("{} - {}", r.init.artist, r.init.title)
            };
            let dur = r.analysis.as_ref().map_or(-1.0, |a| a.duration_s);
            (r.init.path.clone(), who, dur)
        };
        match by {
            PlaylistBy::Predicted => {
                let Some(a) = &r.analysis else { continue };
                let label = match &a.verdict {
                    Verdict::Unsure { .. } => continue,
                    Verdict::Genre { label, .. } => label.clone(),
                    Verdict::Unknown => match a.top {
                        Some((l, _)) => table.label(l).to_string(),
                        None => continue,
                    },
                };
                out.entry(label).or_default().push(entry(r));
            }
            PlaylistBy::Written => {
                for g in &r.init.genres {
                    out.entry(g.clone()).or_default().push(entry(r));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::StoredSegment;

    fn row(path: &str, title: &str, genres: &[&str]) -> RowInit {
        RowInit::new(
            PathBuf::from(path),
            Some(title.into()),
            None,
            None,
            genres.iter().map(|g| g.to_string()).collect(),
            None,
        )
    }

    fn ra(a: &StoredAnalysis) -> RowAnalysis {
        RowAnalysis::from_stored(a, &["jazz".to_string(), "zz".to_string()])
    }

    fn analysis(top: &str, p: f32, unsure: bool) -> StoredAnalysis {
        StoredAnalysis {
            genres: vec![(top.into(), p), ("zz".into(), 1.0 - p)],
            tags: vec![("rock".into(), 0.5)],
            segments: vec![StoredSegment {
                start_s: 0.0,
                end_s: 3.0,
                genre_probs: vec![p, 1.0 - p],
            }],
            duration_s: 30.0,
            verdict: if unsure {
                Verdict::Unsure {
                    reason: "top genre only 41 %".into(),
                }
            } else {
                Verdict::Genre {
                    label: top.into(),
                    probability: p,
                }
            },
            listened_s: 30.0,
            active_s: 30.0,
            novelty: None,
            total_patches: 10,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn natural_order_is_case_insensitive_and_numeric() {
        let mut v = vec![
            "track10",
            "Genre Journey",
            "block_party",
            "track9",
            "Track2",
            "a",
            "B",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec![
                "a",
                "B",
                "block_party",
                "Genre Journey",
                "Track2",
                "track9",
                "track10"
            ]
        );
        assert_eq!(natural_cmp("x007", "x7"), "x007".cmp("x7"));
        assert_eq!(natural_cmp("abc", "abc"), Ordering::Equal);
    }

    #[test]
    fn table_sorts_filters_and_indexes() {
        let mut t = Table::default();
        let rows = vec![
            row("/m/a/1.mp3", "track10", &["Rock"]),
            row("/m/a/2.mp3", "Genre Journey", &[]),
            row("/m/b/3.mp3", "block_party", &["jazz"]),
            row("/m/b/4.mp3", "track9", &["Rock"]),
        ];
        t.set_rows(PathBuf::from("/m"), rows, None, &[2]);
        t.set_labels(Arc::from(vec!["jazz".to_string(), "zz".to_string()]));
        t.sort_by(SortKey::Title);
        t.refresh(true);
        assert_eq!(t.order(), &[2, 1, 3, 0]);
        t.sort_by(SortKey::Title);
        t.refresh(true);
        assert_eq!(t.order(), &[0, 3, 1, 2]);
        assert_eq!(t.index_of(Path::new("/m/b/4.mp3")), Some(3));
        // Genre: by name, untagged last.
        t.sort_by(SortKey::Genre);
        t.refresh(true);
        assert_eq!(t.order(), &[2, 0, 3, 1]);
        // Analyses; predicted sort and the unsure facet.
        t.set_analysis(0, ra(&analysis("jazz", 0.9, false)));
        t.set_analysis(1, ra(&analysis("jazz", 0.6, true)));
        t.set_failed(2, "cannot decode".into());
        assert_eq!(t.progress(), (2, 1, 4));
        t.sort_by(SortKey::Predicted);
        t.refresh(true);
        assert_eq!(&t.order()[..2], &[0, 1]);
        t.facet = Facet::Unsure;
        t.filter_changed();
        t.refresh(true);
        assert_eq!(t.order(), &[1]);
        t.facet = Facet::Changed;
        t.filter_changed();
        t.refresh(true);
        assert_eq!(t.order(), &[2]);
        t.facet = Facet::All;
        t.filter = "ROCK".into();
        t.filter_changed();
        t.refresh(true);
        assert_eq!(t.order().len(), 2);
        // Genres written by genretag.
        assert!(t.set_genres(Path::new("/m/a/2.mp3"), vec!["Pop".into()], true));
        t.filter.clear();
        t.facet = Facet::Changed;
        t.filter_changed();
        t.refresh(true);
        assert_eq!(t.order(), &[1, 2]);
    }

    #[test]
    fn radix_sort_by_the_upper_half_is_stable() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let v: Vec<u64> = (0..5000u64)
            .map(|pos| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Few distinct keys in some bytes, many in others.
                let key = (x & 0x0300_00ff) as u32 | ((x >> 40) as u32 & 0x00ff_0000);
                ((key as u64) << 32) | pos
            })
            .collect();
        let mut expected = v.clone();
        expected.sort_by_key(|k| k >> 32); // stable
        assert_eq!(sort_by_high_half(v), expected);
        assert!(sort_by_high_half(Vec::new()).is_empty());
    }

    #[test]
    fn sort_facts_follow_every_change() {
        let mut t = Table::default();
        t.set_rows(
            PathBuf::from("/m"),
            (0..6)
                .map(|i| row(&format!("/m/{i}.mp3"), "t", &["rock"]))
                .collect(),
            None,
            &[],
        );
        t.set_labels(Arc::from(vec!["jazz".to_string(), "zz".to_string()]));
        t.set_analysis(1, ra(&analysis("jazz", 0.9, false)));
        t.set_analysis(2, ra(&analysis("zz", 0.4, true)));
        t.set_failed(3, "bad".into());
        t.set_analysis(3, ra(&analysis("jazz", 0.7, false)));
        t.set_failed(4, "bad".into());
        assert!(t.set_genres(Path::new("/m/5.mp3"), vec!["Jazz".into()], true));
        let now: Vec<SortFacts> = t.rows.iter().map(SortFacts::of).collect();
        assert_eq!(t.facts, now);
        for key in [SortKey::Genre, SortKey::Predicted, SortKey::Status] {
            t.sort_by(key);
            t.refresh(true);
            let mut expected: Vec<u32> = (0..6).collect();
            expected.sort_by_key(|&i| t.small_key(key, i as usize));
            assert_eq!(t.order(), expected, "{key:?}");
        }
    }

    #[test]
    fn analysis_results_resort_at_most_once_a_second() {
        let mut t = Table::default();
        t.set_rows(
            PathBuf::from("/m"),
            (0..3)
                .map(|i| row(&format!("/m/{i}.mp3"), "t", &[]))
                .collect(),
            None,
            &[],
        );
        t.set_labels(Arc::from(vec!["jazz".to_string(), "zz".to_string()]));
        t.sort_by(SortKey::Predicted);
        assert!(t.refresh(false));
        t.set_analysis(2, ra(&analysis("jazz", 0.9, false)));
        assert!(!t.refresh(false), "re-sorted at once");
        assert!(t.refresh(true));
        assert_eq!(t.order()[0], 2);
    }

    #[test]
    fn selection_clicks_and_select_all() {
        let mut t = Table::default();
        t.set_rows(
            PathBuf::from("/m"),
            (0..5)
                .map(|i| row(&format!("/m/{i}.mp3"), &format!("t{i}"), &[]))
                .collect(),
            None,
            &[],
        );
        t.refresh(true);
        t.click(1, false, false);
        t.click(3, false, true);
        assert_eq!(t.selected(), vec![1, 2, 3]);
        t.click(2, true, false);
        assert_eq!(t.selected(), vec![1, 3]);
        assert_eq!(t.selected_count(), 2);
        t.select_all_visible();
        assert_eq!(t.selected_count(), 5);
    }

    #[test]
    fn row_analysis_finds_the_playing_segment_and_partial_listening() {
        let labels = vec!["jazz".to_string(), "zz".to_string()];
        let mut a = analysis("jazz", 0.7, false);
        a.duration_s = 240.0;
        a.segments = (0..10)
            .map(|k| StoredSegment {
                start_s: 12.0 + k as f32 * 21.0,
                end_s: 15.0 + k as f32 * 21.0,
                genre_probs: vec![0.5, 0.5],
            })
            .collect();
        let r = RowAnalysis::from_stored(&a, &labels);
        assert!(r.partial());
        // At 0:02 the nearest segment is the first, not a later one.
        assert_eq!(r.segment_at(2.0).map(|s| s.start_s), Some(12.0));
        assert_eq!(r.segment_at(35.0).map(|s| s.start_s), Some(33.0));
        assert_eq!(r.top, Some((0, 0.7)));
        assert_eq!(r.tags.len(), 1);
    }

    #[test]
    fn playlists_group_by_prediction_or_tag() {
        let mut t = Table::default();
        t.set_rows(
            PathBuf::from("/m"),
            vec![
                row("/m/1.mp3", "a", &["Rock", "Pop"]),
                row("/m/2.mp3", "b", &[]),
                row("/m/3.mp3", "c", &[]),
            ],
            None,
            &[],
        );
        t.set_labels(Arc::from(vec!["jazz".to_string(), "zz".to_string()]));
        t.set_analysis(0, ra(&analysis("jazz", 0.9, false)));
        t.set_analysis(1, ra(&analysis("jazz", 0.5, true)));
        let p = playlists(&t, &[0, 1, 2], PlaylistBy::Predicted);
        assert_eq!(p.len(), 1);
        assert_eq!(p["jazz"].len(), 1);
        let w = playlists(&t, &[0, 1, 2], PlaylistBy::Written);
        assert_eq!(w.keys().collect::<Vec<_>>(), vec!["Pop", "Rock"]);
    }
}
