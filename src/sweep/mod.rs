//! `langevin sweep`: one config trained over grid values, random draws, seeds and splits, on this
//! machine ([`pool`]) or as a Slurm job array ([`slurm`]), resumable, with one results table.
//!
//! A sweep folder `RUNS_HOME/{tag}/` holds the config it started from (`sweep.toml`), its
//! expanded plan (`sweep.json`, [`plan::Plan`]) and one run tag per point, `{tag}/{point}`, whose
//! split folders are ordinary `langevin train` runs (so `submit`, `evaluate` and `ensemble` take
//! them as they are). Beside each run are its output (`{split}.log`) and, after a failure, the
//! error (`{split}.failed`). Every worker, local or on a cluster, runs one planned run through
//! [`run_task`]: a finished run is skipped, an interrupted one resumed from its `last.mpk`.

pub mod plan;
pub mod pool;
pub mod results;
pub mod slurm;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use plan::{Plan, PlannedRun, SweepSpec};
pub use results::{RunState, RunStatus};

use crate::nlb::files::SplitFiles;
use crate::train::{self, BackendKind, ConfigError, RunConfig, TrainError, TrainOptions};

/// Why a sweep could not be planned or run, naming the flag or file involved.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Spec(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {msg}", path.display())]
    Io { path: PathBuf, msg: String },
    #[error(transparent)]
    Train(#[from] TrainError),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> SweepError {
    SweepError::Io {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// The folders and files of one sweep.
#[derive(Debug, Clone)]
pub struct SweepDir {
    pub runs_home: PathBuf,
    pub tag: String,
}

impl SweepDir {
    pub fn new(runs_home: &Path, tag: &str) -> Self {
        Self {
            runs_home: runs_home.to_path_buf(),
            tag: tag.to_string(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.runs_home.join(&self.tag)
    }

    pub fn config(&self) -> PathBuf {
        self.root().join("sweep.toml")
    }

    pub fn plan(&self) -> PathBuf {
        self.root().join("sweep.json")
    }

    pub fn results(&self) -> PathBuf {
        self.root().join("results.csv")
    }

    /// The run tag of one point, as `train` and `submit` take it.
    pub fn run_tag(&self, run: &PlannedRun) -> String {
        format!("{}/{}", self.tag, run.point)
    }

    /// `RUNS_HOME/{tag}/{point}/{split}/`, the `train` run folder.
    pub fn run_dir(&self, run: &PlannedRun) -> PathBuf {
        self.root().join(&run.point).join(&run.split)
    }

    pub fn log(&self, run: &PlannedRun) -> PathBuf {
        self.root()
            .join(&run.point)
            .join(format!("{}.log", run.split))
    }

    pub fn failed_marker(&self, run: &PlannedRun) -> PathBuf {
        self.root()
            .join(&run.point)
            .join(format!("{}.failed", run.split))
    }

    /// Reads the saved plan (`sweep.json`).
    pub fn read_plan(&self) -> Result<Plan, SweepError> {
        let path = self.plan();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            io_err(
                &path,
                format!(
                    "{e} (is `{}` a sweep? start it with `langevin sweep --config …`)",
                    self.tag
                ),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| io_err(&path, e))
    }
}

/// Plans the sweep and saves its config and plan, or checks that a sweep already in the folder is
/// this one (so rerunning the same command resumes it, and a changed command cannot silently mix
/// two sweeps in one table).
pub fn prepare(dir: &SweepDir, config: &Path, spec: &SweepSpec) -> Result<Plan, SweepError> {
    let plan = Plan::expand(config, spec)?;
    let text = std::fs::read_to_string(config).map_err(|e| io_err(config, e))?;
    if dir.plan().is_file() {
        let saved = dir.read_plan()?;
        let saved_text =
            std::fs::read_to_string(dir.config()).map_err(|e| io_err(&dir.config(), e))?;
        if saved != plan || saved_text != text {
            return Err(SweepError::Spec(format!(
                "{} holds a different sweep (another config or other swept values): choose a \
                 new --run-tag, or rerun that sweep's own command to resume it",
                dir.root().display()
            )));
        }
        return Ok(plan);
    }
    std::fs::create_dir_all(dir.root()).map_err(|e| io_err(&dir.root(), e))?;
    crate::atomic::write(&dir.config(), text.as_bytes()).map_err(|e| io_err(&dir.config(), e))?;
    let json = serde_json::to_string_pretty(&plan).expect("a plan is plain data");
    crate::atomic::write(&dir.plan(), json.as_bytes()).map_err(|e| io_err(&dir.plan(), e))?;
    Ok(plan)
}

/// How a worker trains a planned run.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    pub prep_home: PathBuf,
    pub files: SplitFiles,
    pub backend: BackendKind,
    pub progress: bool,
    pub stop: Option<Arc<AtomicBool>>,
}

/// What [`run_task`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The run had finished before; nothing was done.
    AlreadyFinished,
    /// Trained to its last epoch (fresh or resumed).
    Finished,
    /// Stopped early (Ctrl-C); the next sweep resumes it.
    Stopped,
}

/// Trains planned run `index` of the sweep: skipped when finished, resumed from `last.mpk` when
/// interrupted. A failure is recorded beside the run (`{split}.failed`) for `sweep status`.
pub fn run_task(
    dir: &SweepDir,
    index: usize,
    opts: &TaskOptions,
) -> Result<TaskOutcome, SweepError> {
    let plan = dir.read_plan()?;
    let run = plan.runs.get(index).ok_or_else(|| {
        SweepError::Spec(format!(
            "{} has {} runs; there is no run {index}",
            dir.plan().display(),
            plan.runs.len()
        ))
    })?;
    let marker = dir.failed_marker(run);
    let _ = std::fs::remove_file(&marker);
    let result = train_planned(dir, run, opts);
    if let Err(e) = &result {
        let _ = crate::atomic::write(&marker, format!("{e}\n").as_bytes());
    }
    result
}

fn train_planned(
    dir: &SweepDir,
    run: &PlannedRun,
    opts: &TaskOptions,
) -> Result<TaskOutcome, SweepError> {
    let run_dir = dir.run_dir(run);
    if results::finished(dir, run) {
        return Ok(TaskOutcome::AlreadyFinished);
    }
    let config = RunConfig::load(&dir.config(), &run.sets)?;
    let summary = train::run(&TrainOptions {
        config,
        run_tag: dir.run_tag(run),
        runs_home: dir.runs_home.clone(),
        prep_home: opts.prep_home.clone(),
        files: opts.files.clone(),
        backend: opts.backend,
        resume: run_dir.join("last.mpk").is_file(),
        progress: opts.progress,
        stop: opts.stop.clone(),
    })?;
    print!("{}", train::summary_text(&summary));
    Ok(if summary.finished {
        TaskOutcome::Finished
    } else {
        TaskOutcome::Stopped
    })
}
