//! Background workers and the messages between them and the UI.
//!
//! - [`library`]: the library worker owns the SQLite library and the genre model; it
//!   scans, analyses, tags and undoes, and keeps serving tags and undo while paused.
//! - [`loader`]: the track loader decodes the selected track and analyses all of a long
//!   track; newest request wins, stale work stops.
//! - [`training`]: one training run.
//! - [`tasks`]: one-off jobs (reports, comparison, export, playlists, tag preview).
//!
//! Every worker wakes the UI with `request_repaint` after each event it sends, and
//! every failure — a thread that cannot start, a panic, an error — ends as an event
//! the UI shows, never as silence.

pub mod library;
pub mod loader;
pub mod tasks;
pub mod training;

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use eframe::egui;

pub use library::{LibCommand, LibEvent, LibraryHandle, ModelInfo};
pub use loader::{LoadedTrack, LoaderEvent, TrackLoader};
pub use training::{TrainEvent, TrainingHandle};

/// The text of a caught panic.
pub fn panic_message(p: &Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Why a one-off job (see [`tasks`]) gave no result. The UI shows it as it reads.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A run's report could not be read, is malformed, or its figures not written.
    #[error(transparent)]
    Report(#[from] crate::error::ReportError),
    /// Figures or tables could not be exported.
    #[error(transparent)]
    Export(#[from] crate::train::plots::PlotError),
    /// Compare was asked for without another run.
    #[error("choose another run's folder to compare with")]
    NoOtherRun,
    /// Compare was asked for with the run already shown.
    #[error("that is the run already shown ({}); choose another", path.display())]
    SameRun {
        /// The folder given.
        path: PathBuf,
    },
    /// Playlists were asked for, but no selected track has a genre.
    #[error("no track in the selection has a genre to group by")]
    NothingToGroup,
    /// A file genretag did not write is where a playlist would go.
    #[error("a playlist genretag did not write is in the way: {}", path.display())]
    InTheWay {
        /// The file left alone.
        path: PathBuf,
    },
    /// A file or folder could not be written.
    #[error("cannot write {} ({source})", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The job panicked (a bug); the app goes on.
    #[error("{task} crashed: {message}")]
    Crashed {
        /// The job's name.
        task: &'static str,
        /// The panic's message.
        message: String,
    },
    /// No thread could be started for the job.
    #[error("cannot start a thread for {task}: {source}")]
    CannotStart {
        /// The job's name.
        task: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The job's thread ended without sending anything.
    #[error("the job ended without a result")]
    Vanished,
}

/// Run `f` on a thread named `name`; its result arrives on the returned receiver. A
/// thread that cannot start, or that panics, delivers an error instead.
pub fn spawn_task<T: Send + 'static>(
    ctx: egui::Context,
    name: &'static str,
    f: impl FnOnce() -> Result<T, TaskError> + Send + 'static,
) -> Receiver<Result<T, TaskError>> {
    let (tx, rx) = channel();
    let tx_err = tx.clone();
    let c = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
                Err(TaskError::Crashed {
                    task: name,
                    message: panic_message(&p),
                })
            });
            let _ = tx.send(r);
            c.request_repaint();
        });
    if let Err(source) = spawned {
        let _ = tx_err.send(Err(TaskError::CannotStart { task: name, source }));
        ctx.request_repaint();
    }
    rx
}

// Messages cross between the UI thread and the workers.
const _: () = {
    const fn send<T: Send>() {}
    send::<LibCommand>();
    send::<LibEvent>();
    send::<LoaderEvent>();
    send::<TrainEvent>();
    send::<tasks::Comparison>();
    send::<tasks::LoadedRun>();
};

/// Run the calling thread (and the threads it starts) at a lower CPU priority: background
/// work (analysis, training) then never delays the UI thread on a machine whose cores it
/// keeps busy. Linux (`nice 10` for this thread); elsewhere nothing.
pub fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; setpriority on a thread id changes
    // only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}
