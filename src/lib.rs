//! genretag: listen to a music library and tag each track's genre.
//!
//! - [`audio`]: decode any supported file to mono f32 and resample (symphonia, rubato).
//! - [`dsp`]: STFT, mel filterbank, log-mel, MFCC, chroma.
//! - [`ml`]: the musicnn backbone in burn, genre heads, cross-validation.
//! - [`analysis`]: file -> patches -> embeddings -> genres.
//! - [`cli`]: the `genretag` subcommands. `gui` (feature `gui`): the desktop app.

pub mod analysis;
pub mod audio;
pub mod cli;
pub mod dsp;
pub mod error;
pub mod genre;
#[cfg(feature = "gui")]
pub mod gui;
pub mod library;
pub mod ml;
pub mod train;

pub use error::{Error, Result};
pub use genre::Genre;
