//! `langevin submit`: one EvalAI submission file for every trained split of a run.
//!
//! Each split's checkpoint predicts rates for the split's training and eval trials (spec §8:
//! `exp` of the mean log-rate over stochastic passes, dropout off), sliced into the six arrays
//! the benchmark reads. The whole file is rebuilt from all the run's models on every call and
//! renamed into place, so a crash or a concurrent call never leaves a broken submission.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use ndarray::{s, Array3, Axis};

use crate::evaluate::{evaluate_group, DatasetResult, GroupRates, RatePair, TargetGroup};
use crate::h5::{AtomicH5, Data, H5File};
use crate::nlb::files::SplitFiles;
use crate::nlb::{Phase, Split};
use crate::train::checkpoint;
pub use crate::train::checkpoint::CheckpointKind;
use crate::train::metrics::predict_rates;
use crate::train::{BackendKind, RunConfig, TrainError};

/// What to submit.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Root of all run folders (`RUNS_HOME`).
    pub runs_home: PathBuf,
    /// The run: `runs_home/run_tag/{split}/` folders, each written by `langevin train`.
    pub run_tag: String,
    /// Which phase's splits to submit; `None` takes it from the run (an error if it has both).
    pub phase: Option<Phase>,
    /// Which checkpoint predicts; `None` takes each run's `train.submit_checkpoint`.
    pub checkpoint: Option<CheckpointKind>,
    /// Stochastic passes per trial; `None` uses each run's `model.n_samples`.
    pub samples: Option<usize>,
    /// Seeds the latent samples and Langevin noise, so a resubmission is byte-identical.
    pub seed: u64,
    /// Where split folders live, unless a run's `data.prep_home` says otherwise.
    pub prep_home: PathBuf,
    pub files: SplitFiles,
    pub backend: BackendKind,
    /// Trials per forward pass.
    pub batch: usize,
}

/// Why nothing could be submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("run folder {} does not exist (is RUNS_HOME or --run-tag right?)", .0.display())]
    UnknownRun(PathBuf),
    #[error("{}: no trained split folders ({{dataset}}-{{bw:02}}ms-{{phase}} with a config.toml){}",
        path.display(), phase.map(|p| format!(" for phase {p}")).unwrap_or_default())]
    NoSplits { path: PathBuf, phase: Option<Phase> },
    #[error("{}: the run has both val and test splits; choose one with --phase", .0.display())]
    MixedPhases(PathBuf),
    #[error("no split could be submitted:\n{}", skipped_lines(.0))]
    NothingWritten(Vec<Skipped>),
    #[error(transparent)]
    H5(#[from] crate::h5::H5Error),
    #[error("{}: {msg}", path.display())]
    Io { path: PathBuf, msg: String },
}

/// A split left out of the file, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub run_dir: PathBuf,
    pub reason: String,
}

fn skipped_lines(skipped: &[Skipped]) -> String {
    skipped
        .iter()
        .map(|s| format!("  {}: {}", s.run_dir.display(), s.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The six submission arrays of one split, `[trials, bins, neurons]`.
#[derive(Debug, Clone)]
pub struct SplitRates {
    pub split: Split,
    /// The split folder the inputs came from, which also holds its eval target.
    pub split_dir: PathBuf,
    pub train_heldin: Array3<f32>,
    pub train_heldout: Array3<f32>,
    pub eval_heldin: Array3<f32>,
    pub eval_heldout: Array3<f32>,
    pub eval_heldin_forward: Array3<f32>,
    pub eval_heldout_forward: Array3<f32>,
}

impl SplitRates {
    /// `(key, array)` in the order the reference's submissions list them.
    pub fn arrays(&self) -> [(&'static str, &Array3<f32>); 6] {
        [
            ("eval_rates_heldin", &self.eval_heldin),
            ("eval_rates_heldin_forward", &self.eval_heldin_forward),
            ("eval_rates_heldout", &self.eval_heldout),
            ("eval_rates_heldout_forward", &self.eval_heldout_forward),
            ("train_rates_heldin", &self.train_heldin),
            ("train_rates_heldout", &self.train_heldout),
        ]
    }
}

/// What a submission wrote and what it had to leave out.
#[derive(Debug)]
pub struct SubmitReport {
    /// `runs_home/run_tag/submission-{phase}.h5`.
    pub path: PathBuf,
    pub phase: Phase,
    /// The splits in the file.
    pub written: Vec<Split>,
    /// Splits that could not be submitted.
    pub skipped: Vec<Skipped>,
    /// Val phase: the NLB metrics of each written split against its `eval_target.h5`.
    pub scores: Vec<DatasetResult>,
    /// Splits whose scores could not be computed (e.g. no eval target), with the reason.
    pub unscored: Vec<Skipped>,
}

/// Builds the run's submission file.
///
/// Splits that fail (a missing checkpoint, tensors that no longer match the model) are skipped
/// and listed; the file holds every split that worked. If none did, nothing is written.
pub fn run(opts: &SubmitOptions) -> Result<SubmitReport, SubmitError> {
    match opts.backend {
        BackendKind::Flex => submit::<burn::backend::Flex>(opts, &Default::default()),
        BackendKind::NdArray => {
            submit::<burn::backend::NdArray<f32>>(opts, &burn::backend::ndarray::NdArrayDevice::Cpu)
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => submit::<burn::backend::Wgpu>(opts, &Default::default()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => submit::<burn::backend::Cuda>(opts, &Default::default()),
        #[allow(unreachable_patterns)]
        other => Err(SubmitError::Io {
            path: opts.runs_home.clone(),
            msg: format!("backend `{other}` is not compiled in"),
        }),
    }
}

fn submit<B: Backend>(
    opts: &SubmitOptions,
    device: &B::Device,
) -> Result<SubmitReport, SubmitError> {
    let run_root = opts.runs_home.join(&opts.run_tag);
    if !run_root.is_dir() {
        return Err(SubmitError::UnknownRun(run_root));
    }
    let (phase, splits) = trained_splits(&run_root, opts.phase)?;
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    for (split, dir) in splits {
        tracing::info!("predicting {} from {}", split.dir_name(), dir.display());
        match predict_split::<B>(opts, &split, &dir, device) {
            Ok(rates) => written.push(rates),
            Err(e) => {
                tracing::warn!("skipping {}: {e}", dir.display());
                skipped.push(Skipped {
                    run_dir: dir,
                    reason: e.to_string(),
                });
            }
        }
    }
    if written.is_empty() {
        return Err(SubmitError::NothingWritten(skipped));
    }
    let path = run_root.join(format!("submission-{phase}.h5"));
    write_submission(&path, &written)?;
    let (scores, unscored) = if phase == Phase::Val {
        score_splits(opts, &written)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(SubmitReport {
        path,
        phase,
        written: written.iter().map(|r| r.split).collect(),
        skipped,
        scores,
        unscored,
    })
}

/// The run's split folders of one phase (named `{dataset}-{bw:02}ms-{phase}` and holding the
/// `config.toml` that `train` writes), sorted in the evaluator's dataset order.
fn trained_splits(
    run_root: &Path,
    phase: Option<Phase>,
) -> Result<(Phase, Vec<(Split, PathBuf)>), SubmitError> {
    let entries = std::fs::read_dir(run_root).map_err(|e| SubmitError::Io {
        path: run_root.to_path_buf(),
        msg: e.to_string(),
    })?;
    let mut found: Vec<(Split, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let split: Split = name.parse().ok()?;
            let dir = e.path();
            dir.join("config.toml").is_file().then_some((split, dir))
        })
        .collect();
    found.sort_by_key(|(s, _)| (s.dataset, s.bin_width.ms(), s.phase.as_str()));
    let phase = match phase {
        Some(p) => p,
        None => {
            let mut phases: Vec<Phase> = found.iter().map(|(s, _)| s.phase).collect();
            phases.dedup();
            match phases.as_slice() {
                [p] => *p,
                [] => {
                    return Err(SubmitError::NoSplits {
                        path: run_root.to_path_buf(),
                        phase: None,
                    })
                }
                _ => return Err(SubmitError::MixedPhases(run_root.to_path_buf())),
            }
        }
    };
    found.retain(|(s, _)| s.phase == phase);
    if found.is_empty() {
        return Err(SubmitError::NoSplits {
            path: run_root.to_path_buf(),
            phase: Some(phase),
        });
    }
    Ok((phase, found))
}

/// The held-in inputs a split's model reads, and the held-out width it must predict.
struct SplitInputs {
    train: Array3<f32>,
    eval: Array3<f32>,
    n_heldout: usize,
    t_fwd: usize,
}

fn read_inputs(dir: &Path, files: &SplitFiles) -> Result<SplitInputs, TrainError> {
    let train_file = H5File::open(&dir.join(&files.train_input))?;
    let eval_file = H5File::open(&dir.join(&files.eval_input))?;
    let train = train_file.read_counts("train_spikes_heldin")?;
    let eval = eval_file.read_counts("eval_spikes_heldin")?;
    let heldout = train_file.shape("train_spikes_heldout")?;
    let forward = train_file.shape("train_spikes_heldin_forward")?;
    let (_, t, n_in) = train.dim();
    let (_, t_eval, n_in_eval) = eval.dim();
    if (t, n_in) != (t_eval, n_in_eval) {
        return Err(TrainError::Data {
            path: eval_file.path().to_path_buf(),
            msg: format!(
                "eval_spikes_heldin has {t_eval} bins × {n_in_eval} neurons, \
                 train_spikes_heldin {t} × {n_in}"
            ),
        });
    }
    let bad_shape = |key: &str, shape: &[usize]| TrainError::Data {
        path: train_file.path().to_path_buf(),
        msg: format!("`{key}` has shape {shape:?}, expected [trials, bins, neurons]"),
    };
    let &[_, _, n_heldout] = heldout.as_slice() else {
        return Err(bad_shape("train_spikes_heldout", &heldout));
    };
    let &[_, t_fwd, _] = forward.as_slice() else {
        return Err(bad_shape("train_spikes_heldin_forward", &forward));
    };
    Ok(SplitInputs {
        train,
        eval,
        n_heldout,
        t_fwd,
    })
}

fn predict_split<B: Backend>(
    opts: &SubmitOptions,
    split: &Split,
    run_dir: &Path,
    device: &B::Device,
) -> Result<SplitRates, TrainError> {
    let config = RunConfig::load(&run_dir.join("config.toml"), &[])?;
    let prep_home = config.data.prep_home_or(&opts.prep_home);
    let split_dir = split.dir(&prep_home).path().to_path_buf();
    if !split_dir.is_dir() {
        return Err(TrainError::MissingSplit {
            path: split_dir,
            split: *split,
        });
    }
    let inputs = read_inputs(&split_dir, &opts.files)?;
    let n_in = inputs.train.len_of(Axis(2));
    let kind = opts.checkpoint.unwrap_or(config.train.submit_checkpoint);
    let ckpt = checkpoint::submitted_file(run_dir, kind);
    if !ckpt.is_file() {
        return Err(TrainError::Checkpoint {
            path: ckpt,
            msg: "missing (has the run finished an epoch?)".into(),
        });
    }
    let (model, _) = checkpoint::load_model::<B>(
        &ckpt,
        &config.model,
        (n_in, n_in + inputs.n_heldout),
        device,
    )
    .map_err(|e| match e {
        TrainError::Checkpoint { path, msg } => TrainError::Checkpoint {
            path,
            msg: format!("{msg} (split folder {})", split_dir.display()),
        },
        other => other,
    })?;
    let samples = opts.samples.unwrap_or(config.model.n_samples).max(1);
    B::seed(device, opts.seed);
    // f32 rates widened to f64 and back: exact, so the file holds the model's own values.
    let predict = |x: &Array3<f32>| -> Array3<f32> {
        predict_rates(&model, x, inputs.t_fwd, samples, opts.batch, device).mapv(|v| v as f32)
    };
    let train = predict(&inputs.train);
    let eval = predict(&inputs.eval);
    let t = inputs.train.len_of(Axis(1));
    let cut = |a: &Array3<f32>, bins: std::ops::Range<usize>, neurons: std::ops::Range<usize>| {
        a.slice(s![.., bins, neurons]).to_owned()
    };
    let all = n_in + inputs.n_heldout;
    let total = t + inputs.t_fwd;
    Ok(SplitRates {
        split: *split,
        split_dir,
        train_heldin: cut(&train, 0..t, 0..n_in),
        train_heldout: cut(&train, 0..t, n_in..all),
        eval_heldin: cut(&eval, 0..t, 0..n_in),
        eval_heldout: cut(&eval, 0..t, n_in..all),
        eval_heldin_forward: cut(&eval, t..total, 0..n_in),
        eval_heldout_forward: cut(&eval, t..total, n_in..all),
    })
}

/// Writes every split's group into one file, atomically.
///
/// Rates are float32 like nlb_tools' but stored uncompressed (as the nlb_tools version that
/// nlb-lightning pins stores them): predicted rates shrink only about 12 % under gzip, while
/// inflating them is most of the cost of evaluating a full-size submission.
pub fn write_submission(path: &Path, splits: &[SplitRates]) -> Result<(), SubmitError> {
    let mut file = AtomicH5::create(path)?;
    for rates in splits {
        let group = rates.split.group();
        file.group(&group)?;
        for (key, array) in rates.arrays() {
            let flat: Vec<f32> = array.iter().copied().collect();
            file.write_uncompressed(
                &format!("{group}/{key}"),
                Data::F32(&flat, array.shape().to_vec()),
            )?;
        }
    }
    file.commit()?;
    Ok(())
}

/// Scores each written split against its `eval_target.h5`, from the f32 values in the file.
fn score_splits(
    opts: &SubmitOptions,
    written: &[SplitRates],
) -> (Vec<DatasetResult>, Vec<Skipped>) {
    let mut scores = Vec::new();
    let mut unscored = Vec::new();
    for rates in written {
        match score_split(&opts.files, rates) {
            Ok(result) => scores.push(result),
            Err(reason) => unscored.push(Skipped {
                run_dir: opts
                    .runs_home
                    .join(&opts.run_tag)
                    .join(rates.split.dir_name()),
                reason,
            }),
        }
    }
    (scores, unscored)
}

/// Scores one split's rates against the `eval_target.h5` in its split folder, from the f32 values
/// a submission file holds; the error says why it could not be scored.
pub fn score_split(files: &SplitFiles, rates: &SplitRates) -> Result<DatasetResult, String> {
    let target_path = rates.split_dir.join(&files.eval_target);
    let file = H5File::open(&target_path).map_err(|e| e.to_string())?;
    let group = rates.split.group();
    let target = TargetGroup::read(&file, &group).map_err(|e| e.to_string())?;
    let pair = RatePair::of;
    let has_forward = target.eval_spikes_heldin_forward.is_some()
        && rates.eval_heldin_forward.len_of(Axis(1)) > 0;
    // The f32 values the file holds, which are what `langevin evaluate` will score.
    let group_rates = GroupRates {
        eval: pair(&rates.eval_heldin, &rates.eval_heldout),
        train: Some(pair(&rates.train_heldin, &rates.train_heldout)),
        eval_forward: has_forward
            .then(|| pair(&rates.eval_heldin_forward, &rates.eval_heldout_forward)),
    };
    let metrics = evaluate_group(rates.split.dataset, &target, &group_rates)
        .map_err(|e| format!("{}: {e}", target_path.display()))?;
    Ok(DatasetResult {
        dataset: rates.split.dataset,
        bin_ms: rates.split.bin_width.ms() as u32,
        metrics,
    })
}

/// What the terminal shows: where the file is, what is in it, what was skipped, and (val) the
/// metrics table.
pub fn summary_text(report: &SubmitReport) -> String {
    let mut out = format!("wrote {}\n", report.path.display());
    let groups: Vec<String> = report.written.iter().map(|s| s.group()).collect();
    out += &format!("groups: {}\n", groups.join(", "));
    for s in &report.skipped {
        out += &format!("skipped {}: {}\n", s.run_dir.display(), s.reason);
    }
    for s in &report.unscored {
        out += &format!("not scored {}: {}\n", s.run_dir.display(), s.reason);
    }
    if !report.scores.is_empty() {
        out += &crate::evaluate::format_table(&report.scores);
    }
    out
}
