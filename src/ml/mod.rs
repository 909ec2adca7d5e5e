//! Models: the musicnn backbone, genre heads on its embedding, and their I/O.
//!
//! Nothing here knows about files' audio or the GUI; [`crate::analysis`] ties
//! decoding, features and models together.

pub mod cv;
pub mod device;
pub mod frontend;
pub mod head;
pub mod midend;
pub mod musicnn;
pub mod npy;
pub mod precision;
pub mod quant;
pub mod tf_checkpoint;

pub use device::DeviceChoice;
pub use head::{GenreHead, HeadConfig, HeadKind};
pub use musicnn::{Backbone, Musicnn, StageTimes};
pub use precision::Precision;
