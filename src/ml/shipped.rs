//! Where the shipped models live, and the one backbone every model shares.
//!
//! Looked for, in order: `$GENRETAG_MODELS`, a `models/` folder next to the executable
//! (or up to three folders above it: `target/release/genretag` finds the source tree's),
//! and then the copy compiled into the binary. A folder counts only if it holds the
//! backbone (`musicnn_msd.bpk`). That copy (the backbone and the default
//! model, 3.3 MB) is written once to the user's cache folder
//! (`$XDG_CACHE_HOME/genretag/models-<hash>/`) and loaded from there, so a binary
//! installed alone (`cargo install --path .`, `scripts/install.sh`) works from any
//! working directory.

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
        for anc in exe.ancestors().skip(1).take(3) {
            dirs.push(anc.join("models"));
        }
    }
    dirs
}

/// The shipped models compiled into the binary: (path under `models/`, bytes).
const EMBEDDED: [(&str, &[u8]); 3] = [
    (
        BACKBONE_FILE,
        include_bytes!("../../models/musicnn_msd.bpk"),
    ),
    (
        "default/model.json",
        include_bytes!("../../models/default/model.json"),
    ),
    (
        "default/net.bpk",
        include_bytes!("../../models/default/net.bpk"),
    ),
];

/// The folder holding the compiled-in models, written on first use (atomically: a
/// complete folder or none) under the user's cache folder.
pub fn embedded_dir() -> std::io::Result<PathBuf> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (name, bytes) in EMBEDDED {
        h.update(name.as_bytes());
        h.update(bytes);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("genretag");
    let dir = base.join(format!("models-{:016x}", h.digest()));
    // A complete copy: every file there with its full length (a cache cleaner or a
    // crash may have left less).
    let complete = |d: &Path| {
        EMBEDDED.iter().all(|(name, bytes)| {
            std::fs::metadata(d.join(name)).is_ok_and(|m| m.len() == bytes.len() as u64)
        })
    };
    if complete(&dir) {
        return Ok(dir);
    }
    let at = |e: std::io::Error, p: &Path| {
        std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
    };
    std::fs::create_dir_all(&base).map_err(|e| at(e, &base))?;
    let scratch = tempfile::Builder::new()
        .prefix(".models-")
        .tempdir_in(&base)
        .map_err(|e| at(e, &base))?;
    for (name, bytes) in EMBEDDED {
        let p = scratch.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| at(e, parent))?;
        }
        let mut f = std::fs::File::create(&p).map_err(|e| at(e, &p))?;
        std::io::Write::write_all(&mut f, bytes).map_err(|e| at(e, &p))?;
        f.sync_all().map_err(|e| at(e, &p))?;
    }
    let scratch = scratch.keep();
    if dir.exists() {
        // An incomplete copy: replaced by the complete one.
        let _ = std::fs::remove_dir_all(&dir);
    }
    match std::fs::rename(&scratch, &dir) {
        Ok(()) => Ok(dir),
        // Another process got there first: its copy is the same.
        Err(_) if complete(&dir) => {
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch);
            Err(at(e, &dir))
        }
    }
}

/// Find a shipped model file or folder by name: in [`model_dirs`], else the copy
/// compiled into the binary.
pub fn find_model(name: &str) -> Result<PathBuf, ModelError> {
    // A folder counts only if it holds the backbone: an unrelated `models/default`
    // (say `~/models` above `~/.local/bin`) is not ours.
    if let Some(p) = model_dirs()
        .into_iter()
        .filter(|d| d.join(BACKBONE_FILE).is_file())
        .map(|d| d.join(name))
        .find(|p| p.exists())
    {
        return Ok(p);
    }
    let embedded = EMBEDDED
        .iter()
        .any(|(n, _)| *n == name || n.starts_with(&format!("{name}/")));
    let not_found = |why: String| ModelError::Io {
        path: PathBuf::from(name),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, why),
    };
    if !embedded {
        return Err(not_found(
            "not found in GENRETAG_MODELS or a models/ folder next to the executable".into(),
        ));
    }
    embedded_dir()
        .map(|d| d.join(name))
        .map_err(|e| not_found(format!("cannot unpack the built-in models: {e}")))
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
