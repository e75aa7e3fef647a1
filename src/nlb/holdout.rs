//! `langevin holdout`: a val-phase split folder made from the training trials alone.
//!
//! The benchmark keeps its evaluation trials to itself, so a recipe can only be developed and
//! checked on trials one holds back from the training file oneself. This takes an nlb_tools
//! `train_input.h5` (held-in, held-out and forward spikes, behaviour), draws a seeded share of
//! its trials as the evaluation trials, optionally sums bins into wider ones (5 ms → 20 ms), and
//! writes a split folder that `train`, `baseline`, `submit` and `evaluate` use like a real one.
//! Its `eval_target.h5` holds the held-out and forward spikes and the behaviour, so co-bps, vel
//! R2 and fp-bps are scored; there are no conditions in a training file, so no PSTH R2.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dataset::{BinWidth, DatasetName, Phase, Split};
use super::files::{write_split, SplitFiles};
use super::tensors::{EvalInput, EvalTarget, SplitTensors, Tensor, TrainInput};
use crate::h5::{H5Error, H5File};

/// A split that could not be made, naming the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum HoldoutError {
    #[error(transparent)]
    H5(#[from] H5Error),
    #[error("{path}: {msg}")]
    Input { path: PathBuf, msg: String },
}

/// What to hold back and where to write the split.
#[derive(Debug, Clone)]
pub struct HoldoutOptions {
    /// An nlb_tools `train_input.h5`.
    pub input: PathBuf,
    /// Bin width of the input in ms.
    pub input_bin_ms: u32,
    /// Dataset the trials come from (names the target group and the split folder).
    pub dataset: DatasetName,
    /// Bin width of the split; a whole multiple of the input's.
    pub bin_width: BinWidth,
    /// Share of the trials held back as evaluation trials.
    pub eval_fraction: f64,
    /// Seed of the draw.
    pub seed: u64,
    pub prep_home: PathBuf,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct HoldoutReport {
    pub dir: PathBuf,
    pub train_trials: usize,
    pub eval_trials: usize,
    /// Input trial indices of the evaluation trials, ascending.
    pub eval_indices: Vec<usize>,
}

/// A `[trials, bins, channels]` array as read.
struct Array {
    data: Vec<f32>,
    shape: [usize; 3],
}

impl Array {
    fn read(f: &H5File, key: &str) -> Result<Self, HoldoutError> {
        let a = f.read_f32(key)?;
        let shape: [usize; 3] = a.shape().try_into().map_err(|_| HoldoutError::Input {
            path: f.path().to_path_buf(),
            msg: format!(
                "`{key}` has shape {:?}; expected [trials, bins, channels]",
                a.shape()
            ),
        })?;
        Ok(Array {
            data: a.into_raw_vec_and_offset().0,
            shape,
        })
    }

    /// The given trials with every `k` bins combined by `combine` (sum for spikes, mean for
    /// behaviour); a partial last group is dropped, as NLB's wider bins do.
    fn take(&self, trials: &[usize], k: usize, mean: bool) -> Tensor<f32> {
        let [_, bins, ch] = self.shape;
        let out_bins = bins / k;
        let mut data = Vec::with_capacity(trials.len() * out_bins * ch);
        for &t in trials {
            for b in 0..out_bins {
                for c in 0..ch {
                    let sum: f32 = (0..k)
                        .map(|i| self.data[(t * bins + b * k + i) * ch + c])
                        .sum();
                    data.push(if mean { sum / k as f32 } else { sum });
                }
            }
        }
        Tensor::new(data, vec![trials.len(), out_bins, ch])
    }
}

/// Seeded Fisher–Yates draw of `n_eval` of `n` trials, returned ascending with the rest.
fn draw(n: usize, n_eval: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut eval = order[..n_eval].to_vec();
    let mut train = order[n_eval..].to_vec();
    eval.sort_unstable();
    train.sort_unstable();
    (train, eval)
}

/// Makes the split folder `prep_home/{dataset}-{bw:02}ms-val`.
pub fn holdout(opts: &HoldoutOptions) -> Result<HoldoutReport, HoldoutError> {
    let input_err = |msg: String| HoldoutError::Input {
        path: opts.input.clone(),
        msg,
    };
    let bw = opts.bin_width.ms() as u32;
    if opts.input_bin_ms == 0 || !bw.is_multiple_of(opts.input_bin_ms) {
        return Err(input_err(format!(
            "a {bw} ms split cannot be made from {} ms bins",
            opts.input_bin_ms
        )));
    }
    let k = (bw / opts.input_bin_ms) as usize;
    let f = H5File::open(&opts.input)?;
    let heldin = Array::read(&f, "train_spikes_heldin")?;
    let heldout = Array::read(&f, "train_spikes_heldout")?;
    let heldin_fwd = Array::read(&f, "train_spikes_heldin_forward")?;
    let heldout_fwd = Array::read(&f, "train_spikes_heldout_forward")?;
    let behavior = if f.has("train_behavior") {
        Some(Array::read(&f, "train_behavior")?)
    } else {
        None
    };
    let n = heldin.shape[0];
    for (key, a) in [
        ("train_spikes_heldout", &heldout),
        ("train_spikes_heldin_forward", &heldin_fwd),
        ("train_spikes_heldout_forward", &heldout_fwd),
    ] {
        if a.shape[0] != n {
            return Err(input_err(format!(
                "`{key}` has {} trials, held-in spikes {n}",
                a.shape[0]
            )));
        }
    }
    let n_eval = (opts.eval_fraction * n as f64).round() as usize;
    if !(1..n).contains(&n_eval) {
        return Err(input_err(format!(
            "eval fraction {} of {n} trials leaves no train or no eval trials",
            opts.eval_fraction
        )));
    }
    let (train, eval) = draw(n, n_eval, opts.seed);
    let tensors = SplitTensors {
        train: TrainInput {
            heldin: heldin.take(&train, k, false),
            heldout: heldout.take(&train, k, false),
            behavior: behavior.as_ref().map(|b| b.take(&train, k, true)),
            heldin_forward: heldin_fwd.take(&train, k, false),
            heldout_forward: heldout_fwd.take(&train, k, false),
        },
        eval: EvalInput {
            heldin: heldin.take(&eval, k, false),
            heldout: None,
        },
        target: Some(EvalTarget {
            eval_spikes_heldout: heldout.take(&eval, k, false),
            train_behavior: behavior.as_ref().map(|b| b.take(&train, k, true)),
            eval_behavior: behavior.as_ref().map(|b| b.take(&eval, k, true)),
            eval_spikes_heldin_forward: heldin_fwd.take(&eval, k, false),
            eval_spikes_heldout_forward: heldout_fwd.take(&eval, k, false),
            decode_masks: None,
            psth: None,
            jitter: None,
        }),
    };
    let split = Split {
        dataset: opts.dataset,
        bin_width: opts.bin_width,
        phase: Phase::Val,
    };
    let dir = opts.prep_home.join(split.dir_name());
    write_split(&dir, &split, &tensors, &SplitFiles::default())?;
    Ok(HoldoutReport {
        dir,
        train_trials: train.len(),
        eval_trials: eval.len(),
        eval_indices: eval,
    })
}

/// The folder [`holdout`] writes for these options.
pub fn holdout_dir(prep_home: &Path, dataset: DatasetName, bin_width: BinWidth) -> PathBuf {
    prep_home.join(
        Split {
            dataset,
            bin_width,
            phase: Phase::Val,
        }
        .dir_name(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_seeded_disjoint_and_complete() {
        let (train, eval) = draw(75, 15, 0);
        assert_eq!((train.len(), eval.len()), (60, 15));
        let mut all: Vec<usize> = train.iter().chain(&eval).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..75).collect::<Vec<_>>());
        assert_eq!(draw(75, 15, 0), (train, eval.clone()));
        assert_ne!(draw(75, 15, 1).1, eval);
    }

    #[test]
    fn bins_are_summed_and_behaviour_averaged() {
        let a = Array {
            data: (0..16).map(|v| v as f32).collect(),
            shape: [2, 4, 2],
        };
        let s = a.take(&[1], 2, false);
        assert_eq!(s.shape, vec![1, 2, 2]);
        assert_eq!(
            s.data,
            vec![8.0 + 10.0, 9.0 + 11.0, 12.0 + 14.0, 13.0 + 15.0]
        );
        assert_eq!(a.take(&[0], 2, true).data, vec![1.0, 2.0, 5.0, 6.0]);
    }
}
