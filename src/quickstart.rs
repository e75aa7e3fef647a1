//! `langevin quickstart`: the pipeline on data the tool makes itself, so a newcomer without the
//! DANDI downloads sees it work in a minute. Today it synthesizes a small mc_maze-like dataset
//! and preprocesses every split of it; training, submission and scoring join as they land.

use std::path::{Path, PathBuf};

use crate::nlb::preprocess::{self, PreprocessOptions, SplitReport};
use crate::nlb::{BinWidth, DatasetName, Phase};
use crate::synth::{self, Scale};

/// Where the quickstart put things.
pub struct QuickstartReport {
    pub data_home: PathBuf,
    pub prep_home: PathBuf,
    pub splits: Vec<SplitReport>,
}

/// Runs the quickstart inside `dir` (created if needed; earlier results are replaced).
pub fn run(dir: &Path, scale: Scale, progress: bool) -> anyhow::Result<QuickstartReport> {
    let data_home = dir.join("data");
    let prep_home = dir.join("prep");
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
        bin_widths: BinWidth::ALL.to_vec(),
        phases: Phase::ALL.to_vec(),
        files: Default::default(),
        progress,
    })?;
    Ok(QuickstartReport {
        data_home,
        prep_home,
        splits,
    })
}
