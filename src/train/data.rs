//! A split folder's arrays as the model consumes them, and the seeded train/validation partition.
//!
//! Inputs are the held-in spikes over observed bins; targets are held-in and held-out spikes over
//! observed and forward bins, joined on the neuron axis (held-in first, as the readout orders
//! them) and then on the time axis. Eval-split data is loaded only for the informational NLB
//! metrics and never reaches model selection.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use ndarray::{concatenate, Array3, ArrayD, Axis, Ix3};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::config::DataConfig;
use super::TrainError;
use crate::evaluate::TargetGroup;
use crate::h5::H5File;
use crate::nlb::files::SplitFiles;
use crate::nlb::Split;

/// The eval split of a val-phase folder: inputs to predict from and the target to score against.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// `eval_spikes_heldin` `[eval trials, T, N_in]`.
    pub inputs: Array3<f32>,
    /// The split's group of `eval_target.h5`.
    pub target: TargetGroup,
}

/// One split folder, loaded and partitioned.
#[derive(Debug, Clone)]
pub struct SplitData {
    /// The folder it came from, for messages.
    pub dir: PathBuf,
    /// `train_spikes_heldin` `[trials, T, N_in]`, every training trial in file order.
    pub inputs: Array3<f32>,
    /// Held-in ‖ held-out over observed ‖ forward bins `[trials, T + Tf, N]`.
    pub targets: Array3<f32>,
    /// Training trials that train (sorted).
    pub train_idx: Vec<usize>,
    /// Training trials held back for the validation loss (sorted).
    pub valid_idx: Vec<usize>,
    /// The eval split with its target, when the folder has one (val phase).
    pub eval: Option<EvalSet>,
    /// Bin width in ms, for time axes.
    pub bin_ms: f64,
}

impl SplitData {
    /// Reads `split`'s folder under `prep_home` and partitions its training trials.
    ///
    /// NaN spike counts (bins outside a recording) are replaced by zero, with a warning: the
    /// objective has no mask, and a NaN would poison every gradient.
    pub fn load(
        prep_home: &Path,
        split: &Split,
        files: &SplitFiles,
        data: &DataConfig,
    ) -> Result<Self, TrainError> {
        let dir = split.dir(prep_home).path().to_path_buf();
        if !dir.is_dir() {
            return Err(TrainError::MissingSplit {
                path: dir,
                split: *split,
            });
        }
        let train = H5File::open(&dir.join(&files.train_input))?;
        let read = |name: &str| read3(&train, name);
        let heldin = read("train_spikes_heldin")?;
        let heldout = read("train_spikes_heldout")?;
        let heldin_fwd = read("train_spikes_heldin_forward")?;
        let heldout_fwd = read("train_spikes_heldout_forward")?;
        let bad = |msg: String| TrainError::Data {
            path: train.path().to_path_buf(),
            msg,
        };
        let n = heldin.len_of(Axis(0));
        if n < 2 {
            return Err(bad(format!(
                "{n} training trial(s): need at least 2 to hold one back"
            )));
        }
        let observed = concatenate(Axis(2), &[heldin.view(), heldout.view()]).map_err(|_| {
            bad(format!(
                "train_spikes_heldin {:?} and train_spikes_heldout {:?} differ in trials or bins",
                heldin.shape(),
                heldout.shape()
            ))
        })?;
        let forward =
            concatenate(Axis(2), &[heldin_fwd.view(), heldout_fwd.view()]).map_err(|_| {
                bad(format!(
                    "train_spikes_heldin_forward {:?} and train_spikes_heldout_forward {:?} differ",
                    heldin_fwd.shape(),
                    heldout_fwd.shape()
                ))
            })?;
        let targets = concatenate(Axis(1), &[observed.view(), forward.view()]).map_err(|_| {
            bad(format!(
                "observed {:?} and forward {:?} spikes differ in trials or neurons",
                observed.shape(),
                forward.shape()
            ))
        })?;
        let mut inputs = heldin;
        let mut targets = targets;
        let nans = zero_nans(&mut inputs) + zero_nans(&mut targets);
        if nans > 0 {
            tracing::warn!(
                "{}: {nans} NaN spike counts in training data replaced by 0",
                dir.display()
            );
        }
        let (train_idx, valid_idx) = partition(n, data.valid_ratio, data.seed);
        let eval = load_eval(&dir, split, files, inputs.dim())?;
        Ok(Self {
            dir,
            inputs,
            targets,
            train_idx,
            valid_idx,
            eval,
            bin_ms: split.bin_width.ms() as f64,
        })
    }

    /// Observed bins `T`.
    pub fn t_obs(&self) -> usize {
        self.inputs.len_of(Axis(1))
    }

    /// Forward bins `Tf`.
    pub fn t_fwd(&self) -> usize {
        self.targets.len_of(Axis(1)) - self.t_obs()
    }

    /// Held-in neurons `N_in`.
    pub fn n_heldin(&self) -> usize {
        self.inputs.len_of(Axis(2))
    }

    /// All neurons `N`.
    pub fn n_neurons(&self) -> usize {
        self.targets.len_of(Axis(2))
    }

    /// Each neuron's log mean count per bin over the training trials' observed and forward bins,
    /// floored at a tenth of a spike per trial so that a silent neuron does not start at −∞.
    ///
    /// Why: the readout's bias starts near 0, a rate of one spike per bin, while real MC_Maze_Small
    /// neurons fire a median 0.063 spikes per 20 ms bin (0.016 per 5 ms bin). Adam moves a bias by
    /// about the learning rate per step, so at 3e-3 the model spent its first 1,200–1,800 steps
    /// lowering rates (the "mean-rate plateau" of real data) before it learned about the trials.
    pub fn log_mean_rates(&self) -> Vec<f32> {
        let [_, steps, n] = *self.targets.shape() else {
            unreachable!("targets are 3-D")
        };
        let mut sums = vec![0.0f64; n];
        for &i in &self.train_idx {
            for row in self.targets.index_axis(Axis(0), i).rows() {
                for (s, &c) in sums.iter_mut().zip(row) {
                    *s += f64::from(c);
                }
            }
        }
        let bins = (self.train_idx.len() * steps).max(1) as f64;
        let floor = 0.1 / steps as f64;
        sums.iter()
            .map(|s| (s / bins).max(floor).ln() as f32)
            .collect()
    }
}

/// Reads the eval inputs and the target group when the folder has a target file.
fn load_eval(
    dir: &Path,
    split: &Split,
    files: &SplitFiles,
    (_, t_obs, n_heldin): (usize, usize, usize),
) -> Result<Option<EvalSet>, TrainError> {
    let target_path = dir.join(&files.eval_target);
    if !target_path.is_file() {
        return Ok(None);
    }
    let eval_input = H5File::open(&dir.join(&files.eval_input))?;
    let inputs = read3(&eval_input, "eval_spikes_heldin")?;
    let (_, t, n) = inputs.dim();
    if (t, n) != (t_obs, n_heldin) {
        return Err(TrainError::Data {
            path: eval_input.path().to_path_buf(),
            msg: format!(
                "eval_spikes_heldin has {t} bins × {n} neurons, training data {t_obs} × {n_heldin}"
            ),
        });
    }
    let target_file = H5File::open(&target_path)?;
    let target = TargetGroup::read(&target_file, &split.group()).map_err(|e| TrainError::Data {
        path: target_path.clone(),
        msg: e.to_string(),
    })?;
    Ok(Some(EvalSet { inputs, target }))
}

fn read3(file: &H5File, name: &str) -> Result<Array3<f32>, TrainError> {
    let array: ArrayD<f32> = file.read_f32(name)?;
    let shape = array.shape().to_vec();
    array
        .into_dimensionality::<Ix3>()
        .map_err(|_| TrainError::Data {
            path: file.path().to_path_buf(),
            msg: format!("`{name}` has shape {shape:?}, expected [trials, bins, neurons]"),
        })
}

fn zero_nans(a: &mut Array3<f32>) -> usize {
    let mut count = 0;
    a.mapv_inplace(|v| {
        if v.is_nan() {
            count += 1;
            0.0
        } else {
            v
        }
    });
    count
}

/// Splits `0..n` into (train, valid) with `round(ratio · n)` validation trials (at least one,
/// and at least one left to train), drawn by a seeded shuffle; both lists come back sorted.
pub fn partition(n: usize, ratio: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_valid = ((ratio * n as f64).round() as usize).clamp(1, n.saturating_sub(1).max(1));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut valid = order[..n_valid].to_vec();
    let mut train = order[n_valid..].to_vec();
    valid.sort_unstable();
    train.sort_unstable();
    (train, valid)
}

/// A host array as a backend tensor.
pub fn to_tensor<B: Backend>(a: &Array3<f32>, device: &B::Device) -> Tensor<B, 3> {
    let (x, y, z) = a.dim();
    let data: Vec<f32> = a.iter().copied().collect();
    Tensor::from_data(TensorData::new(data, [x, y, z]), device)
}

/// The rows `idx` of a host array, as a tensor.
pub fn rows_to_tensor<B: Backend>(
    a: &Array3<f32>,
    idx: &[usize],
    device: &B::Device,
) -> Tensor<B, 3> {
    to_tensor(&a.select(Axis(0), idx), device)
}

/// A backend tensor back on the host as `f64`, the precision the NLB metrics use.
pub fn to_array<B: Backend>(t: Tensor<B, 3>) -> Array3<f64> {
    let [x, y, z] = t.dims();
    let values: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("float tensor data");
    Array3::from_shape_vec((x, y, z), values.into_iter().map(f64::from).collect())
        .expect("shape matches data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mean_rates_average_the_training_trials_and_floor_silent_neurons() {
        // 3 trials × 2 bins × 3 neurons; trial 1 is held back and must not count.
        let targets = Array3::from_shape_vec(
            (3, 2, 3),
            vec![
                1.0, 0.0, 0.0, 3.0, 2.0, 0.0, //
                9.0, 9.0, 9.0, 9.0, 9.0, 9.0, //
                0.0, 2.0, 0.0, 0.0, 0.0, 0.0,
            ],
        )
        .unwrap();
        let data = SplitData {
            dir: PathBuf::from("split"),
            inputs: Array3::zeros((3, 2, 2)),
            targets,
            train_idx: vec![0, 2],
            valid_idx: vec![1],
            eval: None,
            bin_ms: 20.0,
        };
        let logs = data.log_mean_rates();
        let expected = [
            (4.0f32 / 4.0).ln(),
            (4.0f32 / 4.0).ln(),
            (0.1f32 / 2.0).ln(),
        ];
        for (got, want) in logs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{logs:?}");
        }
    }

    #[test]
    fn partition_is_seeded_disjoint_and_complete() {
        let (train, valid) = partition(50, 0.1, 3);
        assert_eq!(valid.len(), 5);
        assert_eq!(train.len(), 45);
        let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(partition(50, 0.1, 3), (train.clone(), valid.clone()));
        assert_ne!(partition(50, 0.1, 4).1, valid);
        assert!(valid.windows(2).all(|w| w[0] < w[1]));
        // Tiny sets still keep one trial on each side.
        let (t, v) = partition(3, 0.1, 0);
        assert_eq!((t.len(), v.len()), (2, 1));
        let (t, v) = partition(2, 0.9, 0);
        assert_eq!((t.len(), v.len()), (1, 1));
    }

    #[test]
    fn nans_become_zero_and_are_counted() {
        let mut a = Array3::from_shape_vec((1, 2, 2), vec![1.0, f32::NAN, f32::NAN, 2.0]).unwrap();
        assert_eq!(zero_nans(&mut a), 2);
        assert_eq!(
            a.iter().copied().collect::<Vec<_>>(),
            vec![1.0, 0.0, 0.0, 2.0]
        );
    }

    #[test]
    fn missing_split_folder_names_the_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let data = super::super::config::RunConfig::from_toml(
            "[data]\ndataset = \"mc_maze\"\nbin_width = 20\nphase = \"val\"\n",
        )
        .unwrap()
        .data;
        let err = SplitData::load(dir.path(), &data.split(), &SplitFiles::default(), &data)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mc_maze-20ms-val") && err.contains("langevin preprocess"),
            "{err}"
        );
    }
}
