//! Signal processing: STFT, mel filterbanks, log compression, MFCC and chroma.
//!
//! Pure functions over `f32` slices; no I/O and no model code.

pub mod features;
pub mod mel;
pub mod stft;

pub use features::{LogMelStream, chroma, mfcc, musicnn_log, power_to_db};
pub use mel::MelFilterbank;
pub use stft::PowerStft;
