//! The music library: finding audio files, tags, genre policies, the SQLite library
//! database with its write journal, and journaled tagging with undo.
//!
//! Safety rules for everything here are in `docs/safety.md`: only regular files are
//! opened, writes go through a verified copy-and-rename that keeps links, owner, mode
//! and extended attributes ([`replace`]), one writer per library at a time ([`lock`]),
//! paths are kept as exact bytes ([`paths`]).
//!
//! Never imports egui; the GUI and the CLI both call in here.

pub mod db;
pub mod files;
pub mod lock;
pub mod paths;
pub mod policy;
pub mod replace;
pub mod scan;
pub mod schema;
pub mod tagger;
pub mod tags;

pub use db::{DbError, Library, default_db_path};
pub use policy::{Mode, Proposal, TagPolicy};
pub use tags::{GenreChange, TagWriteOptions, TrackTags, read_tags, write_genres};
