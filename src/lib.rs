//! langevin: from raw Neural Latents Benchmark recordings to a scored LangevinFlow model.
//!
//! The data path is one straight line:
//! `nwb::read → nlb::Session → nlb::resample → nlb::tensors → h5 files → train → submit → evaluate`.

pub mod atomic;
pub mod baseline;
pub mod ensemble;
pub mod evaluate;
pub mod h5;
pub mod model;
pub mod nlb;
pub mod nwb;
pub mod quickstart;
pub mod runtime;
pub mod submit;
pub mod sweep;
pub mod synth;
pub mod train;
