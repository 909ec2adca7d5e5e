//! The music library: tags, genre policies, the SQLite library database with its
//! write journal, and journaled tagging with undo.
//!
//! Never imports egui; the GUI and the CLI both call in here.

pub mod db;
pub mod policy;
pub mod scan;
pub mod tagger;
pub mod tags;

pub use db::{Library, default_db_path};
pub use policy::{Mode, Proposal, TagPolicy};
pub use tags::{GenreChange, TagWriteOptions, TrackTags, read_tags, write_genres};
