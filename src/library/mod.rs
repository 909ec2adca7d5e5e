//! The music library: reading tags, and writing genre tags safely.
//!
//! Never imports egui; the GUI and the CLI both call in here.

pub mod tags;

pub use tags::{GenreChange, TagWriteOptions, TrackTags, read_tags, write_genres};
