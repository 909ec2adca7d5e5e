//! The desktop app: a library view (scan, background analysis, a virtualised table,
//! tagging with preview and undo), a track view (playback, live and whole-track
//! spectrograms, genre probabilities, segment timeline, style tags) and a training
//! view (live curves, confusion matrix, per-class table, comparison).
//!
//! The UI thread draws and routes; [`jobs`] holds the workers.

pub mod app;
pub mod jobs;
pub mod player;
pub mod widgets;

pub use app::{GenretagApp, Settings, StartOptions, Tab};

/// Open the window and run until it is closed.
pub fn run(start: StartOptions) -> anyhow::Result<()> {
    // OpenGL (glow) by default: on this GPU-less machine Mesa's software OpenGL draws a
    // frame in ~16 ms where wgpu on its software Vulkan takes ~75 ms (measured with
    // scripts/frame_times.sh). GENRETAG_RENDERER=wgpu picks wgpu.
    let renderer = match std::env::var("GENRETAG_RENDERER").as_deref() {
        Ok("wgpu") => eframe::Renderer::Wgpu,
        _ => eframe::Renderer::Glow,
    };
    let options = eframe::NativeOptions {
        renderer,
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("genretag")
            .with_inner_size([1200.0, 800.0])
            .with_min_inner_size([720.0, 480.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "genretag",
        options,
        Box::new(move |cc| Ok(Box::new(GenretagApp::new(cc, start)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
