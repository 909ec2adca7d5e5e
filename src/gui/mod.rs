//! The desktop app: a library view (scan, background analysis, a virtualised table,
//! filters, playlists, tagging with preview and undo), a track view (playback, live
//! and whole-track spectrograms, genre probabilities, the genre timeline, style tags)
//! and a training view (live curves, confusion matrix, per-class table, comparison,
//! export).
//!
//! - [`app`]: the app — state of the views, routing, the top and status bars.
//! - `events`: worker events drained in `logic` within a budget; `--exercise`.
//! - [`state`]: preferences and the library table (pure data and logic).
//! - [`library_view`], [`track_view`], [`training_view`]: one file per view; the library
//!   table is drawn by `grid` (a widget per row, painted cells) with its laid-out texts
//!   kept in `cell_texts`.
//! - [`diagnostics`]: frame times and memory, behind a toggle.
//! - [`jobs`]: the workers; [`player`]: playback; [`widgets`], [`palette`]: drawing.
//!
//! The UI thread draws and routes; the workers own the library, the model, decoding
//! and training.

pub mod app;
mod cell_texts;
pub mod diagnostics;
mod events;
mod grid;
pub mod jobs;
mod library_view;
pub mod palette;
pub mod player;
pub mod state;
mod track_view;
mod training_view;
pub mod widgets;

pub use app::GenretagApp;
pub use state::{Exercise, Settings, StartOptions, Tab};

/// Open the window and run until it is closed.
pub fn run(start: StartOptions) -> anyhow::Result<()> {
    // The compute pool (the backbone, training) works in the background: its threads run
    // at a lower priority than the UI thread. (Fails only if the pool already exists.)
    let _ = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| jobs::background_priority())
        .build_global();
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
            // The desktop entry's id (assets/io.github.genretag.genretag.desktop): lets
            // Wayland and X11 docks match the window to its menu entry and icon.
            .with_app_id(APP_ID)
            .with_icon(std::sync::Arc::new(window_icon()))
            .with_inner_size(start.window_size.unwrap_or([1200.0, 800.0]))
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        // Also the folder the app's settings live in (~/.local/share/genretag).
        "genretag",
        options,
        Box::new(move |cc| Ok(Box::new(GenretagApp::new(cc, start)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The app's id: the desktop entry's and AppStream file's name in `assets/`.
pub const APP_ID: &str = "io.github.genretag.genretag";

/// The window icon: `assets/icons/genretag-256.png`, rendered from `assets/genretag.svg`.
fn window_icon() -> eframe::egui::IconData {
    // The bytes are compiled in and checked by a test; an unreadable icon (impossible
    // short of a broken build) falls back to the platform's default icon.
    eframe::icon_data::from_png_bytes(ICON_PNG).unwrap_or_default()
}

const ICON_PNG: &[u8] = include_bytes!("../../assets/icons/genretag-256.png");

#[cfg(test)]
mod icon_tests {
    #[test]
    fn issue13_window_icon_decodes() {
        let icon = eframe::icon_data::from_png_bytes(super::ICON_PNG).expect("a valid PNG");
        assert_eq!((icon.width, icon.height), (256, 256));
        assert_eq!(icon.rgba.len(), 256 * 256 * 4);
    }
}
