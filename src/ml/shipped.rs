//! Where the shipped models live, and the one backbone every model shares.
//!
//! Looked for, in order: `$GENRETAG_MODELS`, a `models/` folder next to the executable
//! (or up to four folders above it: `target/release/genretag` finds the source tree's),
//! the source tree's `models/` (compiled in), and `./models`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::tensor::Device;

use super::Backbone;
use super::precision::{Precision, default_precision};
use crate::error::ModelError;

/// File name of the converted backbone.
pub const BACKBONE_FILE: &str = "musicnn_msd.bpk";
/// Folder name of the default genre model.
pub const DEFAULT_MODEL_DIR: &str = "default";

/// Where shipped models are looked for, in order.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("GENRETAG_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(4) {
            dirs.push(anc.join("models"));
        }
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs.push(PathBuf::from("models"));
    dirs
}

/// Find a shipped model file or folder by name.
pub fn find_model(name: &str) -> Result<PathBuf, ModelError> {
    model_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| ModelError::Io {
            path: PathBuf::from(name),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found in GENRETAG_MODELS, next to the executable, or the source tree's models/",
            ),
        })
}

/// The backbone at `path` on `device`, at the process's default precision
/// ([`super::precision::default_precision`]), loaded once per process and shared (every
/// model that needs it, ensembles included, runs the same weights). Keyed by precision
/// too, so that `genretag bench` can load the model at fp32 and at the reduced precision.
pub fn backbone_at(path: &Path, device: &Device) -> Result<Arc<Backbone>, ModelError> {
    type Cache = Mutex<Vec<(PathBuf, Device, Precision, Arc<Backbone>)>>;
    static LOADED: Cache = Mutex::new(Vec::new());
    let precision = default_precision().resolve();
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, _, b)) = loaded
        .iter()
        .find(|(p, d, q, _)| p == path && d == device && *q == precision)
    {
        return Ok(b.clone());
    }
    let b = Arc::new(Backbone::load(path, device)?);
    loaded.push((path.to_path_buf(), device.clone(), precision, b.clone()));
    Ok(b)
}

/// The shipped backbone on `device`, shared.
pub fn backbone(device: &Device) -> Result<Arc<Backbone>, ModelError> {
    backbone_at(&find_model(BACKBONE_FILE)?, device)
}
