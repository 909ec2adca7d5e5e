//! Diagnostics: how long the UI code takes per frame, for developers (behind a
//! toggle, not in the status bar) and for `--frame-log` measurements.
//!
//! Times go into a fixed histogram (10 µs buckets up to 50 ms), so recording a frame
//! is one increment and a percentile is one pass over the buckets — nothing is copied
//! or sorted per frame.

use std::path::PathBuf;
use std::time::Instant;

use eframe::egui::{self, RichText};

/// Bucket width, milliseconds.
const BUCKET_MS: f32 = 0.01;
/// Buckets (the last one holds everything above 50 ms).
const BUCKETS: usize = 5001;

/// A histogram of durations in milliseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    n: u64,
    max_ms: f32,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            max_ms: 0.0,
        }
    }
}

impl Histogram {
    /// Record one duration.
    pub fn record(&mut self, ms: f32) {
        let b = ((ms.max(0.0) / BUCKET_MS) as usize).min(BUCKETS - 1);
        self.counts[b] += 1;
        self.n += 1;
        self.max_ms = self.max_ms.max(ms);
    }

    /// Durations recorded.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Nothing recorded yet.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `q` quantile (upper edge of its bucket), 0 when empty.
    pub fn quantile(&self, q: f32) -> f32 {
        if self.n == 0 {
            return 0.0;
        }
        // f32 -> f64 turns 0.99 into 0.990000009...: round before taking the ceiling.
        let want = ((self.n as f64 * q as f64 - 1e-6).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= want {
                return ((b + 1) as f32 * BUCKET_MS).min(self.max_ms);
            }
        }
        self.max_ms
    }

    /// The longest duration.
    pub fn max(&self) -> f32 {
        self.max_ms
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.n = 0;
        self.max_ms = 0.0;
    }
}

/// How many of the slowest frames are kept.
const SLOWEST: usize = 8;

/// One of the slowest frames and what happened in it.
#[derive(Debug, Clone)]
pub struct SlowFrame {
    /// Its number (0: the first frame).
    pub frame: u64,
    /// UI code, wall time, ms.
    pub ms: f32,
    /// UI code, this thread's CPU time, ms (NaN where unknown).
    pub cpu_ms: f32,
    /// What it did ([`Diagnostics::mark`]), in order, each once.
    pub what: Vec<&'static str>,
    /// The UI thread's page faults in it (Linux; else 0): many point at memory.
    pub faults: u64,
    /// The UI thread's context switches in it (Linux; else 0): waiting or pre-empted.
    pub switches: u64,
    /// Of those, the times it blocked (voluntary switches: a lock, I/O, a sleep). A frame
    /// with none whose wall time is far above its CPU time and `waited_ms` lost that time
    /// without being switched out: to the hypervisor, on a virtual machine (steal time).
    pub blocked: u64,
    /// Of its wall time, how long the UI thread was ready to run but waiting for a CPU
    /// (Linux's run-queue delay; NaN where unknown).
    pub waited_ms: f32,
    /// Of its CPU time, the part before drawing: draining the workers' events and
    /// re-sorting (`logic`).
    pub logic_cpu_ms: f32,
    /// The table's cell texts it laid out anew, and those it left for the next frame.
    pub texts_laid_out: u64,
    /// See `texts_laid_out`.
    pub texts_deferred: u64,
}

impl SlowFrame {
    fn rank(&self) -> f32 {
        rank(self.ms, self.cpu_ms)
    }

    /// The frame as a JSON object (unknown times as `null`).
    fn json(&self) -> String {
        format!(
            "{{\"frame\": {}, \"ms\": {}, \"cpu_ms\": {}, \"logic_cpu_ms\": {}, \"waited_ms\": {}, \"faults\": {}, \"switches\": {}, \"blocked\": {}, \"texts_laid_out\": {}, \"texts_deferred\": {}, \"what\": \"{}\"}}",
            self.frame,
            json_ms(self.ms),
            json_ms(self.cpu_ms),
            json_ms(self.logic_cpu_ms),
            json_ms(self.waited_ms),
            self.faults,
            self.switches,
            self.blocked,
            self.texts_laid_out,
            self.texts_deferred,
            self.what.join(", ")
        )
    }
}

/// A time in ms for JSON: two decimals, `null` where unknown (NaN).
fn json_ms(ms: f32) -> String {
    if ms.is_nan() {
        "null".into()
    } else {
        format!("{ms:.2}")
    }
}

/// The run-queue delay of the thread whose `schedstat` this is (its second field, in ns),
/// in ms: how long it has been ready to run but waiting for a CPU, in all.
fn run_delay_ms(schedstat: &std::fs::File) -> Option<f64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt as _;
        let mut buf = [0u8; 128];
        let n = schedstat.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let ns: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        Some(ns as f64 * 1e-6)
    }
    #[cfg(not(unix))]
    {
        let _ = schedstat;
        None
    }
}

/// How slow a frame counts as: its UI code's CPU time where known, else its wall time
/// (which also counts whatever the scheduler ran instead of the UI thread).
fn rank(ms: f32, cpu_ms: f32) -> f32 {
    if cpu_ms.is_nan() { ms } else { cpu_ms }
}

/// Where the current frame's UI code began: the time, and this thread's CPU time, page
/// faults, context switches and run-queue delay so far, and the table's
/// cell-text counts.
#[derive(Debug)]
struct FrameStart {
    at: Instant,
    cpu_ms: Option<f64>,
    usage: ThreadUsage,
    waited_ms: Option<f64>,
    texts: CellTextCounts,
    /// This thread's CPU time when `logic` ended ([`Diagnostics::logic_done`]).
    logic_end_cpu_ms: Option<f64>,
}

/// The library table's cell texts: drawn from its cache, laid out anew, kept now, and the
/// bytes those kept hold.
#[derive(Debug, Default, Clone, Copy)]
pub struct CellTextCounts {
    /// Drawn from the cache.
    pub hits: u64,
    /// Laid out anew.
    pub misses: u64,
    /// Galleys kept now.
    pub kept: usize,
    /// Their bytes.
    pub kept_bytes: usize,
    /// Cells drawn a frame late (a frame's layout time was spent).
    pub deferred: u64,
}

/// Frame-time bookkeeping.
#[derive(Debug, Default)]
pub struct Diagnostics {
    /// Time in the app's code per frame (event draining + drawing).
    pub ui: Histogram,
    /// Time between the starts of consecutive frames (includes egui's tessellation and
    /// the renderer, and idle time when nothing repaints).
    pub interval: Histogram,
    /// UI-code time of frames while a tag batch was being applied.
    pub tagging: Histogram,
    /// UI-code time of frames right after a sort or filter change.
    pub sorting: Histogram,
    /// CPU time the UI thread itself spent in the app's code per frame: the wall
    /// time above less the time the scheduler gave other threads (on a busy machine
    /// the two differ by whatever pre-empted the UI thread).
    pub ui_cpu: Histogram,
    /// The same for sort frames.
    pub sorting_cpu: Histogram,
    /// The wall time of the app's code per frame less the time the UI thread spent
    /// waiting for a CPU (ready to run, others running): its own work, page faults and
    /// any blocking, without the pre-emption that a busy machine adds.
    pub ui_ran: Histogram,
    /// The slowest frames (UI code's CPU time, else wall time) with what they did,
    /// slowest first.
    pub slowest: Vec<SlowFrame>,
    /// The frame with the most wall time, and what it did.
    pub longest: Option<SlowFrame>,
    /// The library table's cell texts, as its cache counts them.
    pub cell_texts: CellTextCounts,
    /// The view the last frame showed (a change is marked).
    pub last_tab: Option<super::state::Tab>,
    /// What the current frame did so far (see [`Diagnostics::mark`]).
    marks: Vec<&'static str>,
    frames_begun: u64,
    last_start: Option<Instant>,
    frame_start: Option<FrameStart>,
    /// The UI thread's `/proc/thread-self/schedstat` (Linux), opened at the first frame and
    /// read at each frame's start and end for the run-queue delay (`None` where missing).
    schedstat: std::cell::OnceCell<Option<std::fs::File>>,
    /// Where `--frame-log` writes (JSON).
    pub log: Option<PathBuf>,
    last_log: Option<Instant>,
    rss: Option<(Instant, f32)>,
    /// `--exercise` finished its script (the measurement can stop).
    pub exercise_done: bool,
    /// Write the log at the next frame whatever the time (a milestone happened).
    pub log_now: bool,
}

impl Diagnostics {
    /// A frame starts (call first thing in `logic`).
    pub fn begin(&mut self) {
        // Opened on the UI thread: "thread-self" is the thread that opens it.
        let schedstat = self
            .schedstat
            .get_or_init(|| std::fs::File::open("/proc/thread-self/schedstat").ok());
        // Read before the clock starts, so that reading them is not counted.
        let waited_ms = schedstat.as_ref().and_then(run_delay_ms);
        let usage = thread_usage();
        let now = Instant::now();
        if let Some(prev) = self.last_start.replace(now) {
            self.interval.record((now - prev).as_secs_f32() * 1e3);
        }
        self.frame_start = Some(FrameStart {
            at: now,
            cpu_ms: thread_cpu_ms(),
            usage,
            waited_ms,
            texts: self.cell_texts,
            logic_end_cpu_ms: None,
        });
        self.marks.clear();
        if self.frames_begun == 0 {
            self.marks.push("first frame");
        }
        self.frames_begun += 1;
    }

    /// `logic` (events, re-sorting) ended; drawing follows.
    pub fn logic_done(&mut self) {
        if let Some(start) = &mut self.frame_start {
            start.logic_end_cpu_ms = thread_cpu_ms();
        }
    }

    /// Note what the current frame does (an event kind, a view, a sort), so the slowest
    /// frames in the log say why they were slow. Cheap: a static string, kept once.
    pub fn mark(&mut self, what: &'static str) {
        if !self.marks.contains(&what) {
            self.marks.push(what);
        }
    }

    /// The frame's UI code ended; `tagging` / `sorting`: what the frame did.
    pub fn end(&mut self, tagging: bool, sorting: bool) {
        if let Some(start) = self.frame_start.take() {
            let ms = start.at.elapsed().as_secs_f32() * 1e3;
            self.ui.record(ms);
            if tagging {
                self.tagging.record(ms);
            }
            if sorting {
                self.sorting.record(ms);
            }
            let cpu = match (start.cpu_ms, thread_cpu_ms()) {
                (Some(c0), Some(c1)) => {
                    let cpu = (c1 - c0) as f32;
                    self.ui_cpu.record(cpu);
                    if sorting {
                        self.sorting_cpu.record(cpu);
                    }
                    cpu
                }
                _ => f32::NAN,
            };
            // Read after the clock stopped, so that reading it is not counted.
            let waited = match (
                start.waited_ms,
                self.schedstat
                    .get()
                    .and_then(|f| f.as_ref())
                    .and_then(run_delay_ms),
            ) {
                (Some(w0), Some(w1)) => ((w1 - w0) as f32).max(0.0),
                _ => f32::NAN,
            };
            if !waited.is_nan() {
                self.ui_ran.record((ms - waited).max(0.0));
            }
            let rank = rank(ms, cpu);
            let slowest = self.slowest.len() < SLOWEST
                || self.slowest.last().is_some_and(|s| s.rank() < rank);
            let longest = self.longest.as_ref().is_none_or(|l| l.ms < ms);
            if slowest || longest {
                if sorting {
                    self.mark("sort");
                }
                if tagging {
                    self.mark("tagging");
                }
                let usage = thread_usage();
                let frame = SlowFrame {
                    frame: self.frames_begun - 1,
                    ms,
                    cpu_ms: cpu,
                    what: self.marks.clone(),
                    faults: usage.faults.saturating_sub(start.usage.faults),
                    switches: usage.switches.saturating_sub(start.usage.switches),
                    blocked: usage.blocked.saturating_sub(start.usage.blocked),
                    waited_ms: waited,
                    logic_cpu_ms: match (start.cpu_ms, start.logic_end_cpu_ms) {
                        (Some(c0), Some(c1)) => (c1 - c0) as f32,
                        _ => f32::NAN,
                    },
                    texts_laid_out: self.cell_texts.misses - start.texts.misses,
                    texts_deferred: self.cell_texts.deferred - start.texts.deferred,
                };
                if longest {
                    self.longest = Some(frame.clone());
                }
                if slowest {
                    let at = self.slowest.partition_point(|s| s.rank() >= rank);
                    self.slowest.insert(at, frame);
                    self.slowest.truncate(SLOWEST);
                }
            }
        }
    }

    /// Peak resident memory in MB, read at most once a second (a /proc read).
    pub fn peak_rss(&mut self) -> Option<f32> {
        match self.rss {
            Some((t, v)) if t.elapsed().as_secs_f32() < 1.0 => Some(v),
            _ => {
                let v = peak_rss_mb()?;
                self.rss = Some((Instant::now(), v));
                Some(v)
            }
        }
    }

    /// The JSON the frame log holds.
    pub fn json(&mut self, tracks: usize, analysed: usize) -> String {
        let rss = self.peak_rss().unwrap_or(0.0);
        // Wall less run-queue wait is unknown (null) where the wait could not be read.
        let ran = |ms: f32| json_ms(if self.ui_ran.is_empty() { f32::NAN } else { ms });
        format!(
            "{{\"frames\": {}, \"ui_p50_ms\": {:.3}, \"ui_p99_ms\": {:.3}, \"ui_max_ms\": {:.3}, \"interval_p50_ms\": {:.3}, \"interval_p99_ms\": {:.3}, \"tag_frames\": {}, \"tag_max_ms\": {:.3}, \"sort_frames\": {}, \"sort_max_ms\": {:.3}, \"ui_cpu_p50_ms\": {:.3}, \"ui_cpu_p99_ms\": {:.3}, \"ui_cpu_max_ms\": {:.3}, \"sort_cpu_max_ms\": {:.3}, \"tracks\": {tracks}, \"analysed\": {analysed}, \"rss_peak_mb\": {:.1}, \"exercise_done\": {}, \"cell_texts\": {{\"hits\": {}, \"misses\": {}, \"deferred\": {}, \"kept\": {}, \"kept_mb\": {:.1}}}, \"ui_ran_p99_ms\": {}, \"ui_ran_max_ms\": {}, \"longest\": {}, \"slowest\": [{}]}}\n",
            self.ui.len(),
            self.ui.quantile(0.5),
            self.ui.quantile(0.99),
            self.ui.max(),
            self.interval.quantile(0.5),
            self.interval.quantile(0.99),
            self.tagging.len(),
            self.tagging.max(),
            self.sorting.len(),
            self.sorting.max(),
            self.ui_cpu.quantile(0.5),
            self.ui_cpu.quantile(0.99),
            self.ui_cpu.max(),
            self.sorting_cpu.max(),
            rss,
            self.exercise_done,
            self.cell_texts.hits,
            self.cell_texts.misses,
            self.cell_texts.deferred,
            self.cell_texts.kept,
            self.cell_texts.kept_bytes as f64 / (1 << 20) as f64,
            ran(self.ui_ran.quantile(0.99)),
            ran(self.ui_ran.max()),
            self.longest.as_ref().map_or("null".into(), SlowFrame::json),
            self.slowest
                .iter()
                .map(SlowFrame::json)
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// Write the frame log if one was asked for; at most once a second unless `now`.
    pub fn write_log(&mut self, tracks: usize, analysed: usize, now: bool) {
        let now = now || std::mem::take(&mut self.log_now);
        if self.log.is_none()
            || (!now
                && self
                    .last_log
                    .is_some_and(|t| t.elapsed().as_secs_f32() < 1.0))
        {
            return;
        }
        self.last_log = Some(Instant::now());
        let text = self.json(tracks, analysed);
        let Some(p) = &self.log else { return };
        // A measurement aid: a failed write only loses the figures, say so on stderr.
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("cannot write the frame log {}: {e}", p.display());
        }
    }

    /// The diagnostics panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, tracks: usize) {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Diagnostics").strong());
            ui.label(format!(
                "UI code per frame: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} frames",
                self.ui.quantile(0.5),
                self.ui.quantile(0.99),
                self.ui.max(),
                self.ui.len()
            ));
            if !self.ui_cpu.is_empty() {
                ui.label(format!(
                    "of it on the CPU: p99 {:.2} ms, max {:.2} ms",
                    self.ui_cpu.quantile(0.99),
                    self.ui_cpu.max()
                ));
            }
            if !self.ui_ran.is_empty() {
                ui.label(format!(
                    "less waiting for a CPU: max {:.2} ms",
                    self.ui_ran.max()
                ));
            }
            ui.label(format!(
                "frame interval p50 {:.1} ms; {tracks} rows; peak memory {}",
                self.interval.quantile(0.5),
                self.peak_rss().map_or("?".into(), |m| format!("{m:.0} MB"))
            ));
            if ui.button("Reset").clicked() {
                self.ui.clear();
                self.interval.clear();
                self.tagging.clear();
                self.sorting.clear();
                self.ui_cpu.clear();
                self.sorting_cpu.clear();
                self.slowest.clear();
                self.ui_ran.clear();
                self.longest = None;
            }
        });
    }
}

/// CPU time this thread has used, in milliseconds (None where the platform has no
/// per-thread clock).
fn thread_cpu_ms() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec for the call to fill.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        (rc == 0).then_some(t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 * 1e-6)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// This thread's use of the machine so far (Linux; zeros where unknown).
#[derive(Debug, Default, Clone, Copy)]
struct ThreadUsage {
    /// Page faults, minor and major.
    faults: u64,
    /// Context switches, voluntary and not.
    switches: u64,
    /// The voluntary ones alone.
    blocked: u64,
}

fn thread_usage() -> ThreadUsage {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: rusage is plain integers, for which all zeros are valid.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes only into `u`, which outlives the call.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
        if rc == 0 {
            let n = |v: libc::c_long| u64::try_from(v).unwrap_or(0);
            return ThreadUsage {
                faults: n(u.ru_minflt) + n(u.ru_majflt),
                switches: n(u.ru_nvcsw) + n(u.ru_nivcsw),
                blocked: n(u.ru_nvcsw),
            };
        }
    }
    ThreadUsage::default()
}

/// Peak resident memory of this process (Linux: VmHWM), in MB.
pub fn peak_rss_mb() -> Option<f32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f32 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        for i in 1..=100 {
            h.record(i as f32 * 0.1);
        }
        assert!((h.quantile(0.5) - 5.0).abs() < 0.02, "{}", h.quantile(0.5));
        assert!(
            (h.quantile(0.99) - 9.9).abs() < 0.02,
            "{}",
            h.quantile(0.99)
        );
        assert_eq!(h.max(), 10.0);
        h.record(80.0);
        assert_eq!(h.max(), 80.0);
        assert_eq!(h.len(), 101);
    }

    /// A slow frame that touches fresh memory is logged with the page faults it took, and
    /// one that sleeps with a context switch.
    #[cfg(target_os = "linux")]
    #[test]
    fn slow_frames_say_their_page_faults_and_switches() {
        let mut d = Diagnostics::default();
        d.begin();
        let mut v = vec![0u8; 64 << 20];
        // Touch one byte a page: each first touch is a fault.
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
        d.end(false, false);
        d.begin();
        std::thread::sleep(std::time::Duration::from_millis(5));
        d.end(false, false);
        let touched = d.slowest.iter().find(|f| f.faults > 0).expect("a frame");
        // 16 384 pages: a fault each, or one per 2 MB where huge pages are always on.
        assert!(touched.faults >= 16, "{} faults", touched.faults);
        assert!(
            d.slowest.iter().any(|f| f.switches > 0 && f.blocked > 0),
            "the sleep blocks"
        );
        assert!(d.json(0, 0).contains("\"faults\": "));
    }

    /// A slow frame says how much of its CPU time went before drawing (`logic`), and the
    /// cell texts it laid out and left for the next frame.
    #[test]
    fn slow_frames_say_where_their_cpu_time_went() {
        // Spin for `ms` of this thread's CPU time (wall time where that is unknown), so
        // that other busy threads do not change the proportions.
        let spin = |ms: u64| {
            let t0 = Instant::now();
            let c0 = thread_cpu_ms();
            loop {
                let spent = match (c0, thread_cpu_ms()) {
                    (Some(c0), Some(c1)) => c1 - c0,
                    _ => t0.elapsed().as_secs_f64() * 1e3,
                };
                if spent >= ms as f64 {
                    break;
                }
                std::hint::spin_loop();
            }
        };
        let mut d = Diagnostics::default();
        // 120 ms in logic, 40 ms drawing that lays out 30 texts and leaves 7.
        d.begin();
        spin(120);
        d.logic_done();
        spin(40);
        d.cell_texts.misses += 30;
        d.cell_texts.deferred += 7;
        d.end(false, false);
        // All of it drawing.
        d.begin();
        d.logic_done();
        spin(60);
        d.end(false, false);
        let both = d.slowest.iter().find(|f| f.frame == 0).expect("frame 0");
        if !both.cpu_ms.is_nan() {
            // 120 of 160 ms (and the clock reads between).
            assert!((119.0..130.0).contains(&both.logic_cpu_ms), "{both:?}");
            assert!((159.0..175.0).contains(&both.cpu_ms), "{both:?}");
            let drawing = d.slowest.iter().find(|f| f.frame == 1).expect("frame 1");
            assert!(drawing.logic_cpu_ms < 1.0, "{drawing:?}");
        }
        assert_eq!((both.texts_laid_out, both.texts_deferred), (30, 7));
        let json = d.json(0, 0);
        for key in [
            "\"logic_cpu_ms\": ",
            "\"texts_laid_out\": 30",
            "\"texts_deferred\": 7",
            "\"deferred\": 7",
        ] {
            assert!(json.contains(key), "{key} in {json}");
        }
    }

    /// A frame whose thread is kept from a CPU by busier threads says how long it waited
    /// for one, and its time less that wait is logged apart from its wall time; a frame
    /// that sleeps is not waiting for a CPU, and the longest frame is kept whatever its
    /// CPU time.
    #[cfg(target_os = "linux")]
    #[test]
    fn frames_say_how_long_they_waited_for_a_cpu() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;
        let mut d = Diagnostics::default();
        // Sleeping: blocked, so not waiting for a CPU (the wake-up may wait a little).
        d.begin();
        std::thread::sleep(Duration::from_millis(60));
        d.end(false, false);
        let slept = d.longest.clone().expect("the longest frame");
        assert!(slept.ms >= 60.0, "{slept:?}");
        assert!(slept.waited_ms < 0.5 * slept.ms, "{slept:?}");
        assert!(slept.blocked > 0, "{slept:?}");
        assert!(d.ui_ran.max() >= 30.0, "a sleep is time the frame took");
        // Spinning beside twice as many spinning threads as there are CPUs.
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let n = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
        let spinners: Vec<_> = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        d.begin();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(200) {
            std::hint::spin_loop();
        }
        d.end(false, false);
        stop.store(true, Ordering::Relaxed);
        spinners
            .into_iter()
            .for_each(|s| s.join().expect("spinner"));
        let crowded = d.longest.clone().expect("the longest frame");
        assert!(crowded.ms >= 200.0, "{crowded:?}");
        assert!(
            crowded.waited_ms >= 20.0,
            "it waited for a CPU: {crowded:?}"
        );
        assert!(crowded.cpu_ms < crowded.ms - 10.0, "{crowded:?}");
        let json = d.json(0, 0);
        assert!(json.contains("\"longest\": {\"frame\": 1"), "{json}");
        assert!(json.contains("\"waited_ms\": "), "{json}");
        assert!(json.contains("\"ui_ran_max_ms\": "), "{json}");
    }
}
