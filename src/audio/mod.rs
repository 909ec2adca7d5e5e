//! Audio input: decoding any supported file to mono f32, and resampling.
//!
//! Everything here streams: a multi-hour file is never held in memory at once.
//! Feature extraction lives in [`crate::dsp`].

pub mod au;
pub mod decode;
pub mod front;
pub mod heap;
pub mod resample;
pub mod source;

pub use decode::{AudioInfo, AudioStream, open, read_mono};
pub use front::{DecodedAudio, Resampled, read_resampled};
pub use resample::StreamResampler;

/// File extensions we try to decode (lower case).
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "mp3", "flac", "ogg", "oga", "wav", "wave", "aif", "aiff", "aifc", "m4a", "mp4", "aac", "au",
    "snd", "opus",
];
