//! `langevin quickstart`: the whole pipeline on data the tool makes itself, so a newcomer without
//! the DANDI downloads sees it work in minutes: synthesize a small mc_maze-like dataset, preprocess
//! its 20 ms val split, train `configs/quick.toml`, submit, and score the model beside the two
//! references computed on the same split: the spike-smoothing baseline (the floor) and the true
//! rates the spikes were drawn from (the ceiling).

use std::path::{Path, PathBuf};

use crate::baseline::{self, BaselineOptions};
use crate::evaluate::{evaluate_files, Metrics};
use crate::nlb::files::SplitFiles;
use crate::nlb::preprocess::{self, PreprocessOptions, SplitReport};
use crate::nlb::{BinWidth, DatasetName, Phase, Split};
use crate::submit::{self, CheckpointKind, SubmitOptions};
use crate::synth::{self, Scale};
use crate::train::{self, BackendKind, RunConfig, TrainOptions, TrainSummary};

/// The embedded quick config, so the quickstart needs no file from the source tree.
const QUICK_CONFIG: &str = include_str!("../configs/quick.toml");

/// The split the quickstart works on.
pub const SPLIT: Split = Split {
    dataset: DatasetName::McMaze,
    bin_width: BinWidth::ALL[1],
    phase: Phase::Val,
};

/// One row of the closing table: a set of rates and its NLB metrics on the eval trials.
#[derive(Debug, Clone)]
pub struct ScoreRow {
    pub name: &'static str,
    pub submission: PathBuf,
    pub metrics: Metrics,
}

/// Where the quickstart put things, and how the model compares with the references.
pub struct QuickstartReport {
    pub data_home: PathBuf,
    pub prep_home: PathBuf,
    pub splits: Vec<SplitReport>,
    pub train: TrainSummary,
    /// LangevinFlow, smoothing baseline, ground truth (when the split has `truth.h5`).
    pub scores: Vec<ScoreRow>,
}

/// Synthesizes `dataset` into `dir/data` and preprocesses its 20 ms val split into `dir/prep`:
/// the data every quick end-to-end run starts from (the quickstart and the tests).
pub fn prepare_split(
    dir: &Path,
    dataset: DatasetName,
    scale: Scale,
    seed: u64,
    progress: bool,
) -> anyhow::Result<(PathBuf, PathBuf, Vec<SplitReport>)> {
    let data_home = dir.join("data");
    let prep_home = dir.join("prep");
    let synth = synth::synth(&data_home, dataset, scale, seed)?;
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
        files: SplitFiles::default(),
        progress,
        companion: Some(crate::synth::truth::companion),
    })?;
    Ok((data_home, prep_home, splits))
}

/// Runs the quickstart inside `dir` (created if needed; an earlier quickstart run is replaced).
/// `epochs` shortens training (tests); `None` keeps the config's.
pub fn run(
    dir: &Path,
    scale: Scale,
    epochs: Option<usize>,
    progress: bool,
) -> anyhow::Result<QuickstartReport> {
    let (data_home, prep_home, splits) = prepare_split(dir, SPLIT.dataset, scale, 0, progress)?;
    let runs_home = dir.join("runs");
    let mut config = RunConfig::from_toml(QUICK_CONFIG)?;
    if let Some(epochs) = epochs {
        config.train.epochs = epochs;
    }
    let run_tag = "quickstart".to_string();
    let stale = runs_home.join(&run_tag);
    if stale.exists() {
        std::fs::remove_dir_all(&stale)?;
    }
    let files = SplitFiles::default();
    let train = train::run(&TrainOptions {
        config,
        run_tag: run_tag.clone(),
        runs_home: runs_home.clone(),
        prep_home: prep_home.clone(),
        files: files.clone(),
        backend: BackendKind::Flex,
        resume: false,
        progress,
        stop: None,
    })?;
    let submitted = submit::run(&SubmitOptions {
        runs_home,
        run_tag,
        phase: Some(SPLIT.phase),
        checkpoint: Some(CheckpointKind::Best),
        samples: None,
        seed: 0,
        prep_home: prep_home.clone(),
        files: files.clone(),
        backend: BackendKind::Flex,
        batch: 64,
    })?;
    let split_dir = SPLIT.dir(&prep_home).path().to_path_buf();
    let smoothing = split_dir.join(baseline::DEFAULT_FILE);
    let rates = baseline::smoothing_rates(
        &split_dir,
        &files,
        &BaselineOptions::new(SPLIT, None, None)?,
    )?;
    baseline::write_submission(&smoothing, &rates)?;

    let target = split_dir.join(&files.eval_target);
    let mut candidates = vec![
        ("LangevinFlow", submitted.path),
        ("smoothing baseline", smoothing),
    ];
    let truth = split_dir.join("truth.h5");
    if truth.is_file() {
        candidates.push(("ground truth", truth));
    }
    let mut scores = Vec::new();
    for (name, submission) in candidates {
        let results = evaluate_files(&target, &submission)?;
        let result = results
            .into_iter()
            .find(|r| r.dataset == SPLIT.dataset && r.bin_ms == SPLIT.bin_width.ms() as u32)
            .ok_or_else(|| {
                anyhow::anyhow!("{} has no {} group", submission.display(), SPLIT.group())
            })?;
        scores.push(ScoreRow {
            name,
            submission,
            metrics: result.metrics,
        });
    }
    Ok(QuickstartReport {
        data_home,
        prep_home,
        splits,
        train,
        scores,
    })
}

/// The closing table: one row per set of rates, one column per NLB metric.
pub fn scores_table(rows: &[ScoreRow]) -> String {
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut out = format!(
        "{:<20} {:>8} {:>8} {:>8} {:>8}\n",
        "rates", "co-bps", "vel R2", "psth R2", "fp-bps"
    );
    for r in rows {
        let m = &r.metrics;
        out += &format!(
            "{:<20} {:>8} {:>8} {:>8} {:>8}\n",
            r.name,
            cell(Some(m.co_bps)),
            cell(m.vel_r2),
            cell(m.psth_r2),
            cell(m.fp_bps)
        );
    }
    out
}
