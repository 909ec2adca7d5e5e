//! The desktop app. For now a window that says what works and points at the CLI;
//! the full app (library, playback, spectrogram, training) is issue 4.

/// Open the window and run until it is closed.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("genretag")
            .with_inner_size([640.0, 360.0]),
        ..Default::default()
    };
    eframe::run_native(
        "genretag",
        options,
        Box::new(|_cc| Ok(Box::new(PlaceholderApp))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

struct PlaceholderApp;

impl eframe::App for PlaceholderApp {
    fn ui(&mut self, ui: &mut eframe::egui::Ui, _frame: &mut eframe::Frame) {
        eframe::egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("genretag");
            ui.label("The library view, playback and training tab are on their way.");
            ui.add_space(8.0);
            ui.label("Today, classify music from a terminal:");
            ui.code("genretag classify ~/Music --segments");
        });
    }
}
