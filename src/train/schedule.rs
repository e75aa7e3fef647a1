//! Learning-rate schedule and per-epoch random streams.
//!
//! Both are small pure pieces of state, so a checkpoint can hold them as plain numbers and a
//! resumed run continues exactly where it stopped.

use serde::{Deserialize, Serialize};

/// PyTorch's `ReduceLROnPlateau` in `min` mode with a relative threshold and no cooldown:
/// after more than `patience` epochs without a loss below `best · (1 − threshold)`, the
/// learning rate is multiplied by `factor`, never going below `min_lr`.
///
/// Written here rather than taken from Burn because Burn's schedulers are functions of the step
/// count and cannot react to a validation loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Multiplier applied to the learning rate on a plateau.
    pub factor: f64,
    /// Epochs without improvement tolerated before reducing.
    pub patience: usize,
    /// Relative improvement needed to count as better.
    pub threshold: f64,
    /// Floor of the learning rate.
    pub min_lr: f64,
    /// Best loss seen so far (`None` before the first epoch; JSON has no infinity).
    pub best: Option<f64>,
    /// Epochs since `best` last improved.
    pub bad_epochs: usize,
}

/// Reductions smaller than this are ignored, as in PyTorch, so `min_lr` is reached exactly.
const MIN_CHANGE: f64 = 1e-8;

impl Plateau {
    /// A schedule that has seen no epoch yet.
    pub fn new(factor: f64, patience: usize, threshold: f64, min_lr: f64) -> Self {
        Self {
            factor,
            patience,
            threshold,
            min_lr,
            best: None,
            bad_epochs: 0,
        }
    }

    /// Records one epoch's validation loss and returns the learning rate for the next epoch.
    ///
    /// A NaN loss never counts as an improvement.
    pub fn step(&mut self, loss: f64, lr: f64) -> f64 {
        let improved = match self.best {
            None => !loss.is_nan(),
            Some(best) => loss < best * (1.0 - self.threshold),
        };
        if improved {
            self.best = Some(loss);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.bad_epochs > self.patience {
            self.bad_epochs = 0;
            let reduced = (lr * self.factor).max(self.min_lr);
            if lr - reduced > MIN_CHANGE {
                return reduced;
            }
        }
        lr
    }
}

/// What a per-epoch seed is for; each purpose gets its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Initial weights.
    Init = 1,
    /// The backend RNG during an epoch: dropout, coordinated dropout, latent samples, noise.
    Backend = 2,
    /// Minibatch order.
    Shuffle = 3,
}

/// The seed of `stream` in `epoch` for a run seeded with `seed`.
///
/// Every epoch reseeds from `(seed, epoch)` instead of continuing one long stream, so the random
/// draws of epoch `e` do not depend on how many numbers earlier epochs, evaluations or plots
/// consumed: a run resumed at epoch `e` draws exactly what the uninterrupted run drew.
pub fn epoch_seed(seed: u64, epoch: usize, stream: Stream) -> u64 {
    let mut x = splitmix(seed ^ splitmix(stream as u64));
    x = splitmix(x ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    x
}

/// SplitMix64's output function: a bijective mixer, so distinct inputs give distinct seeds.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_reduces_after_more_than_patience_bad_epochs() {
        let mut p = Plateau::new(0.5, 2, 0.0, 0.01);
        let mut lr = 1.0;
        // Improvements keep the rate.
        for loss in [3.0, 2.0, 1.0] {
            lr = p.step(loss, lr);
        }
        assert_eq!((lr, p.best, p.bad_epochs), (1.0, Some(1.0), 0));
        // Equal is not better with threshold 0; two bad epochs are tolerated, the third reduces.
        lr = p.step(1.0, lr);
        lr = p.step(1.5, lr);
        assert_eq!(lr, 1.0);
        lr = p.step(1.2, lr);
        assert_eq!((lr, p.bad_epochs), (0.5, 0));
        // The count restarts after a reduction.
        for _ in 0..2 {
            lr = p.step(9.0, lr);
        }
        assert_eq!(lr, 0.5);
        lr = p.step(9.0, lr);
        assert_eq!(lr, 0.25);
    }

    #[test]
    fn plateau_respects_min_lr_and_threshold() {
        let mut p = Plateau::new(0.1, 0, 0.0, 0.05);
        let mut lr = p.step(1.0, 1.0);
        lr = p.step(2.0, lr);
        assert_eq!(lr, 0.1);
        lr = p.step(2.0, lr);
        assert_eq!(lr, 0.05);
        lr = p.step(2.0, lr);
        assert_eq!(lr, 0.05);

        // A relative threshold of 10 % needs loss < 0.9 · best to count.
        let mut p = Plateau::new(0.5, 0, 0.1, 0.0);
        p.step(1.0, 1.0);
        assert_eq!(p.step(0.95, 1.0), 0.5);
        assert_eq!(p.best, Some(1.0));
        assert_eq!(p.step(0.85, 1.0), 1.0);
        assert_eq!(p.best, Some(0.85));
    }

    #[test]
    fn plateau_treats_nan_as_no_improvement_and_round_trips() {
        let mut p = Plateau::new(0.5, 0, 0.0, 0.0);
        assert_eq!(p.step(f64::NAN, 1.0), 0.5);
        assert_eq!(p.best, None);
        p.step(1.0, 1.0);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Plateau>(&json).unwrap(), p);
    }

    #[test]
    fn epoch_seeds_differ_by_seed_epoch_and_stream() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..4 {
            for epoch in 0..50 {
                for stream in [Stream::Init, Stream::Backend, Stream::Shuffle] {
                    assert!(seen.insert(epoch_seed(seed, epoch, stream)));
                }
            }
        }
        assert_eq!(
            epoch_seed(7, 3, Stream::Backend),
            epoch_seed(7, 3, Stream::Backend)
        );
    }
}
