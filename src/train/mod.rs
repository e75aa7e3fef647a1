//! `langevin train`: fits LangevinFlow to one split folder and keeps everything a run produces in
//! `RUNS_HOME/{run_tag}/{dataset}-{bw:02}ms-{phase}/`.
//!
//! The loop ([`run`]) reads top to bottom: load the split ([`data`]), build or restore model and
//! Adam ([`checkpoint`], [`optim`]), then per epoch reseed, shuffle, step through minibatches,
//! compute the validation loss, step the plateau schedule ([`schedule`]), log a row
//! ([`metrics`]), plot now and then ([`plots`]) and checkpoint. Model selection uses only the
//! validation trials held back from the training split; the NLB scores computed on the eval
//! split are logged for information.

pub mod average;
pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod data;
pub mod metrics;
pub mod optim;
pub mod plots;
mod run;
pub mod schedule;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use config::{ConfigError, DataConfig, Monitor, RunConfig, TrainConfig};
pub use metrics::{LossParts, NlbScores};
pub use run::{run, run_dir, summary_text, BackendKind, FinalEpoch, TrainOptions, TrainSummary};

use crate::nlb::Split;

/// Why a training run could not start or go on, naming the file or setting involved.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] crate::model::ConfigError),
    #[error(
        "split folder {} does not exist: make it with `langevin preprocess --dataset {} \
         --bin-width {} --phase {}` (PREP_HOME, --prep-home or data.prep_home says where split \
         folders live)",
        path.display(), split.dataset, split.bin_width, split.phase
    )]
    MissingSplit { path: PathBuf, split: Split },
    #[error(transparent)]
    H5(#[from] crate::h5::H5Error),
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Io { path: PathBuf, msg: String },
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },
    #[error("{0}")]
    Resume(String),
    #[error("{0}")]
    Backend(String),
    #[error("NLB metrics on the eval split of {}: {msg}", path.display())]
    Metrics { path: PathBuf, msg: String },
    #[error("plot {}: {msg}", path.display())]
    Plot { path: PathBuf, msg: String },
}

/// A flag that turns true on the first Ctrl-C, for [`TrainOptions::stop`]; a second Ctrl-C
/// exits at once.
///
/// Training checks the flag between minibatches and returns without touching the checkpoints,
/// whose `last` already holds the last completed epoch, so `--resume` picks up from there.
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>, TrainError> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&flag);
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\nstopping: the last completed epoch is in `last.mpk` (Ctrl-C again quits at once)"
        );
    })
    .map_err(|e| TrainError::Backend(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}
