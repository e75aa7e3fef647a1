//! Checkpoints: model, optimiser and training state in one file, written atomically.
//!
//! A checkpoint is one Burn record (named MessagePack, full precision) holding the model record,
//! the Adam state and a JSON string with the loop state (next epoch, learning rate, plateau
//! counters, best loss, seed). One file per checkpoint means a reader can never pair a model
//! with another epoch's optimiser state; it is written to a temporary name in the run folder
//! and renamed into place, so a crash or Ctrl-C leaves the previous checkpoint intact.
//!
//! No RNG state is stored: every epoch reseeds from `(seed, epoch)` (see
//! [`super::schedule::epoch_seed`]), so `seed` and `next_epoch` determine every later draw.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;

/// Which of a run's checkpoints predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// Lowest validation value of `train.monitor` (the default, as the spec says).
    Best,
    /// The last completed epoch (what the release submits).
    Last,
}

impl CheckpointKind {
    pub fn file_name(self) -> &'static str {
        match self {
            CheckpointKind::Best => BEST,
            CheckpointKind::Last => LAST,
        }
    }
}

/// The file `submit` predicts from for `kind`: a run with weight averaging submits its averaged
/// weights as "last" (`average.mpk`; its `best.mpk` already holds averaged weights).
pub fn submitted_file(run_dir: &Path, kind: CheckpointKind) -> PathBuf {
    let average = run_dir.join(AVERAGE);
    if kind == CheckpointKind::Last && average.is_file() {
        average
    } else {
        run_dir.join(kind.file_name())
    }
}

impl std::str::FromStr for CheckpointKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "best" => Ok(CheckpointKind::Best),
            "last" => Ok(CheckpointKind::Last),
            _ => Err(format!("unknown checkpoint `{s}` (expected best or last)")),
        }
    }
}
use super::metrics::NlbScores;
use super::optim::{adam, Optim};
use super::run::FinalEpoch;
use super::schedule::Plateau;
use super::TrainError;
use crate::model::{LangevinFlow, LangevinFlowConfig, LangevinFlowRecord};

/// The checkpoint of the epoch with the lowest validation loss.
pub const BEST: &str = "best.mpk";
/// The checkpoint of the last completed epoch.
pub const LAST: &str = "last.mpk";
/// The averaged weights after the last epoch (`train.ema_decay` > 0): what "last" submits.
pub const AVERAGE: &str = "average.mpk";

/// The training loop's own state at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch a resumed run starts with (= epochs completed).
    pub next_epoch: usize,
    /// Learning rate for `next_epoch`.
    pub lr: f64,
    /// ReduceLROnPlateau counters.
    pub plateau: Plateau,
    /// Lowest validation value of `train.monitor` so far, and its epoch.
    pub best_monitored: Option<f64>,
    /// Epoch (0-based) of `best_monitored`, whose weights are in `best.mpk`.
    pub best_epoch: Option<usize>,
    /// The training seed (`train.seed`) the run was started with.
    pub seed: u64,
    /// Training wall time summed over all sessions of this run.
    pub elapsed_seconds: f64,
    /// The most recent periodic NLB scores and their epoch, for the summary.
    pub last_scores: Option<(usize, NlbScores)>,
    /// Losses of the last completed epoch, for the summary.
    pub last_epoch: Option<FinalEpoch>,
    /// Optimizer steps in the weight average (`train.ema_decay`), 0 when it is off.
    #[serde(default)]
    pub average_steps: u64,
}

/// Everything a checkpoint file holds, on autodiff backend `B`.
#[derive(Record)]
pub struct CheckpointRecord<B: AutodiffBackend> {
    /// The weights.
    pub model: LangevinFlowRecord<B>,
    /// Adam's step counts and moment estimates, keyed by parameter id.
    pub optimizer: <Optim<B> as Optimizer<LangevinFlow<B>, B>>::Record,
    /// [`TrainState`] as JSON.
    pub state: String,
}

/// The model part of a checkpoint file, loadable on any backend (prediction needs no optimiser).
#[derive(Record)]
pub struct ModelRecord<B: Backend> {
    /// The weights.
    pub model: LangevinFlowRecord<B>,
    /// [`TrainState`] as JSON.
    pub state: String,
}

type Mpk = NamedMpkBytesRecorder<FullPrecisionSettings>;

fn ckpt_err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Writes a checkpoint atomically at `path`.
pub fn save<B: AutodiffBackend>(
    path: &Path,
    model: &LangevinFlow<B>,
    optim: &Optim<B>,
    state: &TrainState,
) -> Result<(), TrainError> {
    let record = CheckpointRecord::<B> {
        model: model.clone().into_record(),
        optimizer: optim.to_record(),
        state: serde_json::to_string(state).expect("train state is plain data"),
    };
    let bytes =
        Recorder::<B>::record(&Mpk::default(), record, ()).map_err(|e| ckpt_err(path, e))?;
    write_atomic(path, &bytes)
}

/// Loads a checkpoint to continue training: a model built from `config` for `n_heldin` /
/// `n_neurons` with the saved weights, Adam with the saved moments under `weight_decay`, and
/// the loop state.
///
/// Building the model draws from the backend RNG; reseed afterwards if that matters.
pub fn load<B: AutodiffBackend>(
    path: &Path,
    config: &LangevinFlowConfig,
    train: &TrainConfig,
    weight_decay: f64,
    (n_heldin, n_neurons): (usize, usize),
    device: &B::Device,
) -> Result<(LangevinFlow<B>, Optim<B>, TrainState), TrainError> {
    let bytes = std::fs::read(path).map_err(|e| ckpt_err(path, e))?;
    let record: CheckpointRecord<B> =
        Recorder::<B>::load(&Mpk::default(), bytes, device).map_err(|e| ckpt_err(path, e))?;
    let state = parse_state(path, &record.state)?;
    let model = config.init::<B>(n_heldin, n_neurons, device)?;
    let model = load_weights(path, model, record.model)?;
    let optim = adam::<B>(train, weight_decay).load_record(record.optimizer);
    Ok((model, optim, state))
}

/// Loads only the model and loop state of a checkpoint, on any backend: what prediction and
/// submission need.
///
/// Building the model draws from the backend RNG; reseed afterwards if that matters.
pub fn load_model<B: Backend>(
    path: &Path,
    config: &LangevinFlowConfig,
    (n_heldin, n_neurons): (usize, usize),
    device: &B::Device,
) -> Result<(LangevinFlow<B>, TrainState), TrainError> {
    let bytes = std::fs::read(path).map_err(|e| ckpt_err(path, e))?;
    let record: ModelRecord<B> =
        Recorder::<B>::load(&Mpk::default(), bytes, device).map_err(|e| ckpt_err(path, e))?;
    let state = parse_state(path, &record.state)?;
    let model = config.init::<B>(n_heldin, n_neurons, device)?;
    Ok((load_weights(path, model, record.model)?, state))
}

/// Reads only the loop state of a checkpoint (for `--resume` checks and summaries).
pub fn read_state(path: &Path) -> Result<TrainState, TrainError> {
    type Cpu = burn::backend::NdArray<f32>;
    let bytes = std::fs::read(path).map_err(|e| ckpt_err(path, e))?;
    #[derive(Record)]
    struct StateOnly {
        state: String,
    }
    let record: StateOnly = Recorder::<Cpu>::load(&Mpk::default(), bytes, &Default::default())
        .map_err(|e| ckpt_err(path, e))?;
    parse_state(path, &record.state)
}

fn parse_state(path: &Path, json: &str) -> Result<TrainState, TrainError> {
    serde_json::from_str(json).map_err(|e| ckpt_err(path, format!("training state: {e}")))
}

/// Puts saved weights into a model, refusing a record whose shapes differ (Burn would accept it
/// and fail later inside a matmul).
fn load_weights<B: Backend>(
    path: &Path,
    model: LangevinFlow<B>,
    record: LangevinFlowRecord<B>,
) -> Result<LangevinFlow<B>, TrainError> {
    let expected = shapes(&model);
    let loaded = model.load_record(record);
    let found = shapes(&loaded);
    if found != expected {
        return Err(ckpt_err(
            path,
            format!(
                "parameter shapes {found:?} do not match the configured model {expected:?}: \
                 was it trained with another [model] section or split?"
            ),
        ));
    }
    Ok(loaded)
}

fn shapes<B: Backend>(model: &LangevinFlow<B>) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            self.0.push(param.val().dims().to_vec());
        }
    }
    let mut s = Shapes(Vec::new());
    model.visit(&mut s);
    s.0
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk and renames it over
/// `path`: readers see the old file or the new one, never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    crate::atomic::write(path, bytes).map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mpk");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("no/such/x"), b"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no/such/x"), "{err}");
    }
}
