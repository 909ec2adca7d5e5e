//! genretag: listen to a music library and tag each track's genre.
//!
//! - [`audio`]: decode any supported file to mono f32 and resample (symphonia, rubato).
//! - [`dsp`]: STFT, mel filterbank, log-mel, MFCC, chroma.
//! - [`ml`]: the musicnn backbone in burn, its fast CPU kernels, shipped-model files.
//! - [`listen`]: what a model hears of a file (decode -> 16 kHz -> log-mel patches).
//! - [`library`]: the library database, tags, safe tag writes, undo.
//! - [`model`]: the one genre-model interface, taxonomy, calibration, "unsure".
//! - [`train`]: datasets, every model kind, training, evaluation, reports.
//! - [`analysis`]: the one analysis service (file -> model -> decision, cached).
//! - [`cli`]: the `genretag` subcommands. `gui` (feature `gui`): the desktop app.

pub mod analysis;
pub mod audio;
pub mod cli;
pub mod dsp;
pub mod error;
pub mod eval;
#[cfg(feature = "gui")]
pub mod gui;
pub mod library;
pub mod listen;
pub mod ml;
pub mod model;
pub mod shift;
pub mod train;

pub use error::{Error, Result};

/// Keep freed memory in the process instead of handing every large block back to the
/// kernel: the CPU backend allocates and frees tens of megabytes per layer, and with
/// glibc's defaults each of those becomes a fresh `mmap` whose pages fault in one by
/// one (measured: a training step of the benchmark CNN went from 1.21 s to 0.69 s).
///
/// `GENRETAG_GLIBC_MALLOC_DEFAULTS=1` keeps glibc's defaults (to measure the difference).
pub fn tune_allocator() {
    if std::env::var_os("GENRETAG_GLIBC_MALLOC_DEFAULTS").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; called before any
    // other thread exists.
    unsafe {
        // The largest threshold glibc accepts on 64-bit (half its 64 MiB heap size);
        // setting it also turns off the dynamic threshold adjustment.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
