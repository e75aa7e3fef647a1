//! `langevin quickstart`: the pipeline on data the tool makes itself, so a newcomer without the
//! DANDI downloads sees it work in minutes: synthesize a small mc_maze-like dataset, preprocess
//! its 20 ms val split, and train `configs/quick.toml` on it with NLB scores along the way.
//! Submission and the reference baselines join as those commands land.

use std::path::{Path, PathBuf};

use crate::nlb::preprocess::{self, PreprocessOptions, SplitReport};
use crate::nlb::{BinWidth, DatasetName, Phase};
use crate::synth::{self, Scale};
use crate::train::{self, BackendKind, RunConfig, TrainOptions, TrainSummary};

/// The embedded quick config, so the quickstart needs no file from the source tree.
const QUICK_CONFIG: &str = include_str!("../configs/quick.toml");

/// Where the quickstart put things, and how training went.
pub struct QuickstartReport {
    pub data_home: PathBuf,
    pub prep_home: PathBuf,
    pub splits: Vec<SplitReport>,
    pub train: TrainSummary,
}

/// Runs the quickstart inside `dir` (created if needed; an earlier quickstart run is replaced).
/// `epochs` shortens training (tests); `None` keeps the config's.
pub fn run(
    dir: &Path,
    scale: Scale,
    epochs: Option<usize>,
    progress: bool,
) -> anyhow::Result<QuickstartReport> {
    let data_home = dir.join("data");
    let prep_home = dir.join("prep");
    let runs_home = dir.join("runs");
    let dataset = DatasetName::McMaze;
    let synth = synth::synth(&data_home, dataset, scale, 0)?;
    tracing::info!(
        "synthesized {} trials of {} units",
        synth.trials,
        synth.units
    );
    let splits = preprocess::run(&PreprocessOptions {
        data_home: data_home.clone(),
        prep_home: prep_home.clone(),
        datasets: vec![dataset],
        bin_widths: vec![BinWidth::ALL[1]],
        phases: vec![Phase::Val],
        files: Default::default(),
        progress,
    })?;
    let mut config = RunConfig::from_toml(QUICK_CONFIG)?;
    if let Some(epochs) = epochs {
        config.train.epochs = epochs;
    }
    let run_tag = "quickstart".to_string();
    let stale = runs_home.join(&run_tag);
    if stale.exists() {
        std::fs::remove_dir_all(&stale)?;
    }
    let train = train::run(&TrainOptions {
        config,
        run_tag,
        runs_home,
        prep_home: prep_home.clone(),
        files: Default::default(),
        backend: BackendKind::NdArray,
        resume: false,
        progress,
        stop: None,
    })?;
    Ok(QuickstartReport {
        data_home,
        prep_home,
        splits,
        train,
    })
}
