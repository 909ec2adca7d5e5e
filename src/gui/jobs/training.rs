//! The training worker: one run of [`crate::train::run::train`] on its own thread,
//! stopped through the run's cancel flag (the best epoch so far is kept and evaluated).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use eframe::egui;

use super::panic_message;
use crate::train::report::Report;
use crate::train::run::{RunOptions, train};
use crate::train::trainer::{EpochStats, Event};

/// Facts from a training run. Order: `Preparing`*, `Started`, (`Step`* `Epoch`)*,
/// then `Done` or `Failed`; `Log` anywhere.
#[derive(Debug)]
pub enum TrainEvent {
    /// Features ready for `done` of `total` tracks.
    Preparing(usize, usize),
    /// Training starts: at most this many epochs, of this many steps.
    Started {
        /// Maximum epochs.
        epochs: usize,
        /// Steps per epoch.
        steps: usize,
    },
    /// Progress inside an epoch (at most ten a second).
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step.
        step: usize,
    },
    /// An epoch ended.
    Epoch(EpochStats),
    /// A log line.
    Log(String),
    /// The run ended with its report (also written to its folder).
    Done(Box<Report>),
    /// The run failed.
    Failed(String),
}

/// The UI's side of a training run.
pub struct TrainingHandle {
    /// Events.
    pub rx: Receiver<TrainEvent>,
    cancel: Arc<AtomicBool>,
}

impl TrainingHandle {
    /// Start a run on a thread. A thread that cannot start or that panics ends the run
    /// with `Failed`.
    pub fn spawn(ctx: egui::Context, opts: RunOptions) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let (tx2, ctx2) = (tx.clone(), ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("training".into())
            .spawn(move || {
                super::background_priority();
                let send = |e: TrainEvent| {
                    let _ = tx.send(e);
                    ctx.request_repaint();
                };
                let mut last_step = Instant::now() - Duration::from_secs(1);
                let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    train(&opts, &c, &mut |e: &Event| match e {
                        Event::Preparing { done, total } => {
                            send(TrainEvent::Preparing(*done, *total))
                        }
                        Event::Started { epochs, steps, .. } => send(TrainEvent::Started {
                            epochs: *epochs,
                            steps: *steps,
                        }),
                        Event::Step { epoch, step, .. } => {
                            if last_step.elapsed() >= Duration::from_millis(100) {
                                last_step = Instant::now();
                                send(TrainEvent::Step {
                                    epoch: *epoch,
                                    step: *step,
                                });
                            }
                        }
                        Event::Epoch(s) => send(TrainEvent::Epoch(s.clone())),
                        Event::Log(l) => send(TrainEvent::Log(l.clone())),
                    })
                }));
                match r {
                    Ok(Ok(rep)) => send(TrainEvent::Done(Box::new(rep))),
                    Ok(Err(e)) => send(TrainEvent::Failed(e.to_string())),
                    Err(p) => send(TrainEvent::Failed(format!(
                        "training crashed: {}",
                        panic_message(&p)
                    ))),
                }
            });
        if let Err(e) = spawned {
            let _ = tx2.send(TrainEvent::Failed(format!(
                "cannot start the training thread: {e}"
            )));
            ctx2.request_repaint();
        }
        Self { rx, cancel }
    }

    /// Ask the run to stop after the current step.
    pub fn stop(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked.
    pub fn stopping(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}
