//! The musicnn backbone (in burn, with fast CPU kernels), its weight files and
//! conversion, cross-validation folds.
//!
//! Nothing here knows about files' audio or the GUI; [`crate::analysis`] ties
//! decoding, features and models together.

pub mod cv;
pub mod device;
pub mod frontend;
pub mod midend;
pub mod musicnn;
pub mod npy;
pub mod precision;
pub mod quant;
pub mod shipped;
pub mod tf_checkpoint;

pub use device::DeviceChoice;
pub use musicnn::{Backbone, Musicnn, StageTimes};
pub use precision::Precision;
