//! Every random draw of a forward pass: from the backend's RNG, or replayed from given tensors.
//!
//! Training and prediction draw from the backend ([`Noise::random`]). Feeding the same draws to
//! this model and to another implementation ([`Noise::replay`]) is what makes a line-by-line
//! numerical comparison possible: the release's PyTorch model is checked against ours that way
//! (`tests/release_reference.rs`). Each draw has a name that says where it is used:
//!
//! | name | shape | law |
//! |---|---|---|
//! | `cd_keep`, `cd_pass` | `[B, T, N_in]` | keep masks of coordinated dropout (§6) |
//! | `z0`, `v0` | `[B, D]` | N(0, 1) of the initial-condition samples (§2) |
//! | `hidden_dropout/{t}` | `[B, H]` | keep mask of the encoder state at step `t` (§1) |
//! | `velocity/{t}` | `[B, D]` | N(0, 1) Langevin kick of step `t ≥ 1` (§4) |
//! | `attention_weights` | `[B, heads, T', T']` | keep mask of attention weights (release switch) |
//! | `attention_out`, `ff_inner`, `ff_out` | `[B·T', ·]` | keep masks of the decoder's dropouts (§5) |

use std::cell::RefCell;
use std::collections::HashMap;

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

/// Where a forward pass's random draws come from.
#[derive(Debug, Default)]
pub struct Noise {
    given: Option<RefCell<HashMap<String, TensorData>>>,
}

impl Noise {
    /// Draws from the backend's seeded RNG.
    pub fn random() -> Self {
        Noise { given: None }
    }

    /// Hands out the given draws by name; every draw the pass makes must be there.
    pub fn replay(draws: HashMap<String, TensorData>) -> Self {
        Noise {
            given: Some(RefCell::new(draws)),
        }
    }

    /// Names of given draws no pass has asked for yet.
    pub fn unused(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .given
            .as_ref()
            .map(|g| g.borrow().keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// # Panics
    /// In replay mode, if the draw is missing or has another shape: a harness error.
    fn take<B: Backend, const D: usize>(
        &self,
        name: &dyn Fn() -> String,
        shape: [usize; D],
        device: &B::Device,
    ) -> Option<Tensor<B, D>> {
        let given = self.given.as_ref()?;
        let name = name();
        let data = given
            .borrow_mut()
            .remove(&name)
            .unwrap_or_else(|| panic!("replayed noise has no draw `{name}`"));
        assert_eq!(
            data.shape.as_slice(),
            &shape[..],
            "replayed draw `{name}` has the wrong shape"
        );
        Some(Tensor::from_data(data, device))
    }

    /// Standard normal draws.
    pub fn normal<B: Backend, const D: usize>(
        &self,
        name: &dyn Fn() -> String,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        self.take(name, shape, device)
            .unwrap_or_else(|| Tensor::random(shape, Distribution::Normal(0.0, 1.0), device))
    }

    /// A 0/1 mask whose entries are 1 with probability `keep`.
    pub fn keep<B: Backend, const D: usize>(
        &self,
        name: &dyn Fn() -> String,
        shape: [usize; D],
        keep: f64,
        device: &B::Device,
    ) -> Tensor<B, D> {
        self.take(name, shape, device)
            .unwrap_or_else(|| Tensor::random(shape, Distribution::Bernoulli(keep), device))
    }
}
