//! Training and evaluation: datasets and honest splits, the inputs models read
//! (cached on disk), every model of the reports we build on, the training loop,
//! metrics, report folders, ensembles and hyperparameter search.
//!
//! Nothing here knows about the GUI; the `train`/`eval`/`compare` commands and the
//! app's training tab drive it through [`run`].

pub mod bench;
pub mod conv_block;
pub mod conv_kernels;
pub mod dataset;
pub mod features;
pub mod forest;
pub mod fused;
pub mod fusion;
pub mod metrics;
pub mod models;
pub mod plots;
pub mod reliability;
pub mod report;
pub mod run;
pub mod saved;
pub mod search;
pub mod simd;
pub mod trainer;

pub use dataset::{Dataset, Item, Split, SplitError};
