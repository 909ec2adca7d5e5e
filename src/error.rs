//! Crate-wide error types: one `thiserror` enum per area, wrapped by [`Error`].
//!
//! Messages put the file path last, so a batch report reads "reason: path".

use std::path::PathBuf;

/// Why an audio file could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened or read.
    #[error("cannot read file ({source}): {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The container or codec is not one we can decode.
    #[error("unsupported audio ({reason}): {}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// The file claims to be audio but its data is malformed beyond recovery.
    #[error("malformed audio ({reason}): {}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file decoded to no samples at all.
    #[error("no audio samples in file: {}", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl DecodeError {
    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            DecodeError::Io { path, .. }
            | DecodeError::Unsupported { path, .. }
            | DecodeError::Malformed { path, .. }
            | DecodeError::Empty { path } => path,
        }
    }
}

/// Why a model could not be loaded, converted or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model or weight file could not be read or written.
    #[error("cannot access model file ({source}): {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A model file is not in the expected format.
    #[error("invalid model file ({reason}): {}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Anything else that stops a model from working (bad config, shape mismatch).
    #[error("{0}")]
    Other(String),
}

/// Why reading or writing a file's tags failed. Nothing was changed on disk when a
/// write returns this.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// The file could not be read, copied or replaced.
    #[error("cannot access file ({source}): {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is marked read-only.
    #[error("file is read-only: {}", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// We do not write tags to this format.
    #[error("cannot write tags to this format ({reason}): {}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Which format.
        reason: String,
    },
    /// The tag library could not parse or write the file.
    #[error("tag error ({reason}): {}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What lofty said.
        reason: String,
    },
    /// The file has several names (hard links); writing would split or damage them.
    #[error(
        "not written: the file has {links} names (hard links), and a safe rewrite would leave \
         the other names with the old content; genretag leaves such files alone: {}",
        path.display()
    )]
    HardLinked {
        /// The file.
        path: PathBuf,
        /// How many names it has.
        links: u64,
    },
    /// Owner, group, mode or an extended attribute could not be kept; nothing was written.
    #[error("not written, to keep the file as it is ({reason}): {}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What could not be kept.
        reason: String,
    },
    /// The file is damaged (e.g. cut short); genretag does not write tags into it.
    #[error("not written: the file is damaged ({reason}): {}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The file's genres are no longer what the proposal was made from.
    #[error("not written: {reason}: {}", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// What changed.
        reason: String,
    },
    /// The written copy did not verify (tags or audio changed); the original was kept.
    #[error("verification failed, file left unchanged ({reason}): {}", path.display())]
    Verify {
        /// The file.
        path: PathBuf,
        /// What differed.
        reason: String,
    },
}

/// The crate error: any of the areas above.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Decoding failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Tag reading or writing failed.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// The library database failed.
    #[error(transparent)]
    Db(#[from] crate::library::db::DbError),
    /// A dataset or split could not be built.
    #[error(transparent)]
    Data(#[from] crate::train::dataset::SplitError),
    /// A report could not be read or written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A figure or table could not be drawn or exported.
    #[error(transparent)]
    Plot(#[from] crate::train::plots::PlotError),
    /// The compute device could not be chosen.
    #[error(transparent)]
    Device(#[from] crate::ml::device::DeviceError),
    /// A taxonomy file could not be read.
    #[error(transparent)]
    Taxonomy(#[from] crate::model::taxonomy::TaxonomyError),
    /// The work was cancelled by the user.
    #[error("cancelled")]
    Cancelled,
    /// A tool the work needs is not installed.
    #[error("{what} need {tool} (install it, e.g. `apt install {tool}`)")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// What needs it.
        what: &'static str,
    },
}

/// A training or evaluation report (`report.json` and its tables and plots) could not be
/// read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file or folder could not be read or written.
    #[error("cannot access the report ({source}): {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a report this genretag can read.
    #[error("not a genretag report ({reason}): {}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A plot could not be drawn.
    #[error("cannot draw the plot ({reason}): {}", path.display())]
    Plot {
        /// The image file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Crate result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
