//! Training and evaluation (issue 5), starting with datasets and honest splits.
//!
//! Nothing here knows about the GUI; the `train`/`eval` commands and the app's
//! training tab will drive it.

pub mod dataset;

pub use dataset::{Dataset, Item, Split, SplitError};
