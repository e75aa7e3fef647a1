//! The Neural Latents Benchmark data path: datasets and their parameters, the merged session
//! timeline, resampling, trial windows, tensors, PSTHs, and the split files.

pub mod dataset;
pub mod jitter;
mod merge;
pub mod psth;
pub mod resample;
pub mod session;
pub mod tensors;
pub mod time;
pub mod windows;

pub use dataset::{BinWidth, DatasetName, Phase, Split, SplitDir};
pub use session::Session;
pub mod files;
pub mod holdout;
pub mod preprocess;
