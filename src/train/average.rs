//! An exponential moving average of the weights (Polyak–Ruppert averaging, as in "EMA" models):
//! after every optimizer step, `avg ← d·avg + (1 − d)·θ`.
//!
//! On small datasets the weights after each step wander around a good region: on real
//! MC_Maze_Small, co-bps of checkpoints 50 epochs apart differs by 0.03–0.05 and the best and
//! last checkpoints of one run by 0.02–0.04. The average over the last ~1/(1 − d) steps sits
//! nearer the middle of that region, which is what an ensemble of those checkpoints would give
//! at the cost of one model. The model stays LangevinFlow; only which weights are validated,
//! checkpointed as best, and submitted changes (`train.ema_decay`, off by default).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use std::path::PathBuf;

use super::{checkpoint, TrainError};
use crate::model::{LangevinFlow, LangevinFlowConfig};

/// The averaged model and how many steps it has seen.
#[derive(Debug, Clone)]
pub struct WeightAverage<B: Backend> {
    pub model: LangevinFlow<B>,
    decay: f64,
    /// Optimizer steps averaged so far (kept in the checkpoint, so a resumed run continues).
    pub steps: u64,
}

impl<B: Backend> WeightAverage<B> {
    /// Starts from `model`'s weights, `steps` updates in (0 for a new run).
    pub fn new(model: LangevinFlow<B>, decay: f64, steps: u64) -> Self {
        Self {
            model,
            decay,
            steps,
        }
    }

    /// The average of `train.ema_decay` (`None` when it is 0): read from `saved` (a resumed run's
    /// `average.mpk`) once steps were averaged, else started from `start`.
    pub fn resume_or_start(
        decay: f64,
        saved: Option<PathBuf>,
        start: &LangevinFlow<B>,
        steps: u64,
        (config, dims, device): (&LangevinFlowConfig, (usize, usize), &B::Device),
    ) -> Result<Option<Self>, TrainError> {
        if decay <= 0.0 {
            return Ok(None);
        }
        match saved {
            Some(path) if steps > 0 => {
                let (model, _) = checkpoint::load_model::<B>(&path, config, dims, device)?;
                Ok(Some(Self::new(model, decay, steps)))
            }
            _ => Ok(Some(Self::new(start.clone(), decay, 0))),
        }
    }

    /// The weight of the old average at update `steps`: the configured decay, lowered during the
    /// first steps (`(1 + t)/(10 + t)`) so the average is not anchored to the random start.
    fn decay_at(&self) -> f64 {
        let t = self.steps as f64;
        self.decay.min((1.0 + t) / (10.0 + t))
    }

    /// Folds the weights after one optimizer step into the average.
    pub fn update(&mut self, current: &LangevinFlow<B>) {
        let d = self.decay_at();
        let mut collect = Collect::<B> {
            tensors: Vec::new(),
        };
        current.visit(&mut collect);
        let mut lerp = Lerp::<B> {
            tensors: collect.tensors.into_iter(),
            keep: d,
        };
        self.model = self.model.clone().map(&mut lerp);
        self.steps += 1;
    }
}

/// Every float parameter, flattened, in visiting order (the same order [`Lerp`] maps them in,
/// as both walk one module type).
struct Collect<B: Backend> {
    tensors: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.tensors.push(value.reshape([n]));
    }
}

struct Lerp<B: Backend> {
    tensors: std::vec::IntoIter<Tensor<B, 1>>,
    keep: f64,
}

impl<B: Backend> ModuleMapper<B> for Lerp<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, avg, mapper) = param.consume();
        let current = self
            .tensors
            .next()
            .expect("the averaged and the trained model have the same parameters");
        let current: Tensor<B, D> = current.reshape(avg.shape());
        let mixed = avg.mul_scalar(self.keep) + current.mul_scalar(1.0 - self.keep);
        Param::from_mapped_value(id, mixed, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    fn first_weight(m: &LangevinFlow<B>) -> Vec<f32> {
        let mut c = Collect::<B> {
            tensors: Vec::new(),
        };
        m.visit(&mut c);
        c.tensors
            .into_iter()
            .flat_map(|t| t.into_data().to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn average_is_the_exponentially_weighted_mean_of_the_steps() {
        let device = Default::default();
        let config = crate::model::LangevinFlowConfig {
            hidden_size: 4,
            d_ff: 8,
            ..Default::default()
        };
        let a = config.init::<B>(3, 4, &device).unwrap();
        let b = config.init::<B>(3, 4, &device).unwrap();
        let (wa, wb) = (first_weight(&a), first_weight(&b));
        // Late in a run (steps large) the configured decay applies: avg = 0.9·a + 0.1·b.
        let mut avg = WeightAverage::new(a.clone(), 0.9, 1000);
        avg.update(&b);
        let got = first_weight(&avg.model);
        assert_eq!(got.len(), wa.len());
        for ((g, x), y) in got.iter().zip(&wa).zip(&wb) {
            assert!((g - (0.9 * x + 0.1 * y)).abs() < 1e-6);
        }
        assert_eq!(avg.steps, 1001);
        // At the first step the warm-up decay 1/10 applies: mostly the new weights.
        let mut fresh = WeightAverage::new(a, 0.999, 0);
        fresh.update(&b);
        for ((g, x), y) in first_weight(&fresh.model).iter().zip(&wa).zip(&wb) {
            assert!((g - (0.1 * x + 0.9 * y)).abs() < 1e-6);
        }
    }
}
