//! `langevin preprocess`: DANDI NWB folders → NLB split folders, one dataset session at a time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::dataset::{Behavior, BinWidth, DatasetName, Phase, Split};
use super::files::{write_split, SplitFiles};
use super::session::{nwb_files, Session, SessionError};
use super::tensors::{build_split, TensorError};
use crate::h5::H5Error;

/// A file written beside each split from the session it was made from, once the split's own files
/// are in place: `langevin synth`'s true rates (`synth::truth::companion`), say. Returns the path
/// written, if any. `nlb` only calls it; what it writes belongs to the layer that passes it.
pub type Companion =
    fn(&Session, &Path, Split, &Path) -> std::result::Result<Option<PathBuf>, CompanionError>;

/// What a [`Companion`] reports when it fails.
pub type CompanionError = Box<dyn std::error::Error + Send + Sync>;

/// A split that could not be made, naming the dataset folder and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("DATA_HOME is not set: pass --data-home or set DATA_HOME in .env")]
    NoDataHome,
    #[error("{dataset}: {error}")]
    Session {
        dataset: DatasetName,
        error: SessionError,
    },
    #[error("{split} (from {folder}): {error}")]
    Tensor {
        split: String,
        folder: PathBuf,
        error: TensorError,
    },
    #[error(transparent)]
    Write(#[from] H5Error),
    #[error("{0}")]
    Companion(CompanionError),
}

/// What to preprocess and where.
#[derive(Debug, Clone)]
pub struct PreprocessOptions {
    pub data_home: PathBuf,
    pub prep_home: PathBuf,
    pub datasets: Vec<DatasetName>,
    pub bin_widths: Vec<BinWidth>,
    pub phases: Vec<Phase>,
    pub files: SplitFiles,
    pub progress: bool,
    /// Called for each split written (see [`Companion`]).
    pub companion: Option<Companion>,
}

/// One split written, for the summary table.
#[derive(Debug, Clone)]
pub struct SplitReport {
    pub split: Split,
    pub dir: PathBuf,
    pub train_trials: usize,
    pub eval_trials: usize,
    pub heldin: usize,
    pub heldout: usize,
    pub bins: usize,
    pub seconds: f64,
}

fn bar(progress: bool, len: u64, what: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// Preprocesses every requested split; each dataset folder is read once for all its splits.
pub fn run(opts: &PreprocessOptions) -> Result<Vec<SplitReport>, PreprocessError> {
    let mut reports = Vec::new();
    for &dataset in &opts.datasets {
        let folder = dataset.data_dir(&opts.data_home);
        let session = load(dataset, &folder, opts.progress)?;
        let splits: Vec<Split> = opts
            .bin_widths
            .iter()
            .flat_map(|&bin_width| {
                opts.phases.iter().map(move |&phase| Split {
                    dataset,
                    bin_width,
                    phase,
                })
            })
            .collect();
        let pb = bar(opts.progress, splits.len() as u64, "writing splits");
        for split in splits {
            pb.set_message(split.dir_name());
            reports.push(make_split(&session, &folder, split, opts)?);
            pb.inc(1);
        }
        pb.finish_and_clear();
    }
    Ok(reports)
}

fn load(dataset: DatasetName, folder: &Path, progress: bool) -> Result<Session, PreprocessError> {
    let session_err = |error| PreprocessError::Session { dataset, error };
    let files = nwb_files(folder).map_err(session_err)?;
    let pb = bar(progress, files.len() as u64, "reading NWB");
    let started = Instant::now();
    // Of the continuous series only the behaviour variable's values reach a tensor.
    let behaviour = match dataset.params().behavior {
        Behavior::Series(name) => Some(name),
        _ => None,
    };
    let keep = |name: &str| Some(name) == behaviour;
    let session = Session::load_with_progress(folder, &keep, |p| {
        pb.set_message(
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        pb.inc(1);
    })
    .map_err(session_err)?;
    pb.finish_and_clear();
    tracing::info!(
        "{dataset}: read {} files ({} held-in, {} held-out units, {} trials, {:.1} s of recording) in {:.2?}",
        files.len(),
        session.heldin.len(),
        session.heldout.len(),
        session.trials.len,
        session.len_ms as f64 / 1000.0,
        started.elapsed()
    );
    Ok(session)
}

fn make_split(
    session: &Session,
    folder: &Path,
    split: Split,
    opts: &PreprocessOptions,
) -> Result<SplitReport, PreprocessError> {
    let started = Instant::now();
    let tensors = build_split(
        session,
        &split.dataset.params(),
        split.bin_width,
        split.phase,
    )
    .map_err(|error| PreprocessError::Tensor {
        split: split.dir_name(),
        folder: folder.to_path_buf(),
        error,
    })?;
    let dir = split.dir(&opts.prep_home).0;
    write_split(&dir, &split, &tensors, &opts.files)?;
    if let Some(companion) = opts.companion {
        let written =
            companion(session, folder, split, &dir).map_err(PreprocessError::Companion)?;
        if let Some(path) = written {
            tracing::info!("{}: also wrote {}", split.dir_name(), path.display());
        }
    }
    let shape = &tensors.train.heldin.shape;
    let report = SplitReport {
        split,
        dir,
        train_trials: shape[0],
        eval_trials: tensors.eval.heldin.shape[0],
        heldin: shape[2],
        heldout: tensors.train.heldout.shape[2],
        bins: shape[1],
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!("{}: written in {:.2} s", split.dir_name(), report.seconds);
    Ok(report)
}

/// The summary table printed at the end of a run.
pub fn summary_table(reports: &[SplitReport]) -> String {
    let mut out = format!(
        "{:<26} {:>6} {:>6} {:>5} {:>6} {:>8} {:>7}\n",
        "split", "train", "eval", "bins", "heldin", "heldout", "seconds"
    );
    for r in reports {
        out.push_str(&format!(
            "{:<26} {:>6} {:>6} {:>5} {:>6} {:>8} {:>7.2}\n",
            r.split.dir_name(),
            r.train_trials,
            r.eval_trials,
            r.bins,
            r.heldin,
            r.heldout,
            r.seconds
        ));
    }
    out
}
