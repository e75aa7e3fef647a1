//! The causal recurrent encoder (spec §1): a hand-written GRU cell stepped one bin at a time.
//!
//! The GRU is written out rather than taken from burn-nn so that the input projection of every
//! bin is computed once, before the loop, and only the hidden projection is stepped; the model
//! steps it in lock-step with the Langevin dynamics.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use super::{dropout, uniform_linear, Noise};

/// Which observed bin the encoder reads at step `t` (spec §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderInput {
    /// `x_t` at step `t`, as the paper describes.
    #[default]
    Current,
    /// `x_{t-1}` at step `t ≥ 1`, as the public release does.
    Previous,
}

impl EncoderInput {
    /// Index of the observed bin consumed at step `t` when `t_obs` bins are observed.
    ///
    /// Step 0 always reads `x_0` (it builds `h_0 = GRU(x_0, 0)`); in the forward window
    /// (`t ≥ t_obs`) the last observed bin `x_{t_obs − 1}` is read again, because no newer data
    /// exists there.
    pub fn bin(self, t: usize, t_obs: usize) -> usize {
        let last = t_obs - 1;
        if t == 0 || t >= t_obs {
            return t.min(last);
        }
        match self {
            EncoderInput::Current => t,
            EncoderInput::Previous => t - 1,
        }
    }
}

/// A GRU cell with PyTorch's `GRUCell` equations and initialisation.
///
/// Gate columns are ordered `[r | z | n]` in both projections:
///
/// ```text
/// r  = σ(W_ir x + b_ir + W_hr h + b_hr)
/// z  = σ(W_iz x + b_iz + W_hz h + b_hz)
/// n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
#[derive(Module, Debug)]
pub struct GruCell<B: Backend> {
    /// `N_in → 3H`, applied once per observed bin.
    pub input: Linear<B>,
    /// `H → 3H`, applied once per step.
    pub hidden: Linear<B>,
}

impl<B: Backend> GruCell<B> {
    /// Every weight and bias uniform in `±1/sqrt(H)`, the usual GRU default (spec §1).
    pub fn init(n_input: usize, hidden: usize, device: &B::Device) -> Self {
        let bound = 1.0 / (hidden as f64).sqrt();
        Self {
            input: uniform_linear(n_input, 3 * hidden, bound, Some(bound), device),
            hidden: uniform_linear(hidden, 3 * hidden, bound, Some(bound), device),
        }
    }

    /// State size `H`.
    pub fn hidden_size(&self) -> usize {
        self.hidden.weight.dims()[0]
    }

    /// Input projection `[B, N_in] → [B, 3H]` (input weights and biases of all three gates).
    pub fn project_input(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.input.forward(x)
    }

    /// One GRU update from a precomputed input projection `gi [B, 3H]` and the previous state
    /// (`None` for the zero state, which skips the hidden matmul).
    pub fn step(&self, gi: Tensor<B, 2>, h: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        let hidden = self.hidden_size();
        let gh = match &h {
            Some(h) => self.hidden.forward(h.clone()),
            None => {
                let bias = self.hidden.bias.as_ref().expect("GRU hidden bias").val();
                bias.unsqueeze_dim::<2>(0)
            }
        };
        let rz = sigmoid(
            gi.clone().slice(s![.., 0..2 * hidden]) + gh.clone().slice(s![.., 0..2 * hidden]),
        );
        let r = rz.clone().slice(s![.., 0..hidden]);
        let z = rz.slice(s![.., hidden..2 * hidden]);
        let n = (gi.slice(s![.., 2 * hidden..]) + r * gh.slice(s![.., 2 * hidden..])).tanh();
        match h {
            Some(h) => n.clone() + z * (h - n),
            None => n.clone() - z * n,
        }
    }
}

/// The encoder: GRU cell, input rule and state dropout.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// The recurrent cell.
    pub gru: GruCell<B>,
    /// Dropout probability on the state after every step (training only).
    #[module(skip)]
    pub dropout: f64,
    /// Which bin each step reads.
    #[module(skip)]
    pub input_rule: EncoderInput,
}

/// The encoder's view of one batch: the input projection of every observed bin.
pub struct EncoderInputs<B: Backend> {
    projected: Vec<Tensor<B, 2>>,
}

impl<B: Backend> Encoder<B> {
    /// Builds an encoder reading `n_input` held-in neurons into a state of size `hidden`.
    pub fn init(
        n_input: usize,
        hidden: usize,
        dropout: f64,
        input_rule: EncoderInput,
        device: &B::Device,
    ) -> Self {
        Self {
            gru: GruCell::init(n_input, hidden, device),
            dropout,
            input_rule,
        }
    }

    /// Projects each observed bin of `x [B, T, N_in]` once, so steps that reread a bin (the
    /// forward window, the first steps under "previous") reuse its projection.
    ///
    /// One small matmul per bin rather than one `[B, T, N_in] → [B, T, 3H]` matmul and slicing:
    /// the FLOPs are the same, but Burn's autodiff turns every slice of a tracked tensor into a
    /// full-size zero tensor in the backward pass, which made the encoder's backward on a 180-bin
    /// batch three to four times slower on ndarray. Slicing the untracked spike input is free.
    pub fn prepare(&self, x: Tensor<B, 3>) -> EncoderInputs<B> {
        let [batch, bins, n_input] = x.dims();
        let projected = (0..bins)
            .map(|t| {
                let bin = x
                    .clone()
                    .slice(s![.., t..t + 1, ..])
                    .reshape([batch, n_input]);
                self.gru.project_input(bin)
            })
            .collect();
        EncoderInputs { projected }
    }

    /// Step `t` (0-based over observed and forward bins): one GRU update, then dropout on the
    /// new state when `train`. `h` is `None` at `t = 0`.
    pub fn step(
        &self,
        inputs: &EncoderInputs<B>,
        t: usize,
        h: Option<Tensor<B, 2>>,
        train: bool,
        noise: &Noise,
    ) -> Tensor<B, 2> {
        let bin = self.input_rule.bin(t, inputs.projected.len());
        let h = self.gru.step(inputs.projected[bin].clone(), h);
        dropout(h, self.dropout, train, noise, &|| {
            format!("hidden_dropout/{t}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Param;

    type Cpu = NdArray<f32>;

    #[test]
    fn input_rule_picks_bins_as_spec() {
        let current: Vec<_> = (0..7).map(|t| EncoderInput::Current.bin(t, 4)).collect();
        let previous: Vec<_> = (0..7).map(|t| EncoderInput::Previous.bin(t, 4)).collect();
        assert_eq!(current, vec![0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(previous, vec![0, 0, 1, 2, 3, 3, 3]);
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn gru_step_matches_pytorch_equations() {
        let device = Default::default();
        // H = 1, N_in = 1: weights [w_r, w_z, w_n] as row vectors.
        let linear = |w: [f32; 3], b: [f32; 3]| Linear {
            weight: Param::from_tensor(Tensor::<Cpu, 2>::from_floats([w], &device)),
            bias: Some(Param::from_tensor(Tensor::<Cpu, 1>::from_floats(
                b, &device,
            ))),
        };
        let cell = GruCell {
            input: linear([0.5, -0.3, 0.8], [0.1, 0.2, -0.1]),
            hidden: linear([0.7, 0.4, -0.6], [-0.2, 0.3, 0.05]),
        };
        let (x, h) = (1.5f64, -0.4f64);
        let gi = cell.project_input(Tensor::<Cpu, 2>::from_floats([[x as f32]], &device));
        let h_t = Tensor::<Cpu, 2>::from_floats([[h as f32]], &device);
        let got = cell.step(gi.clone(), Some(h_t)).into_scalar();
        let got_zero = cell.step(gi, None).into_scalar();

        let gates = |h: f64| {
            let r = sig(0.5 * x + 0.1 + 0.7 * h - 0.2);
            let z = sig(-0.3 * x + 0.2 + 0.4 * h + 0.3);
            let n = (0.8 * x - 0.1 + r * (-0.6 * h + 0.05)).tanh();
            (1.0 - z) * n + z * h
        };
        assert!((f64::from(got) - gates(h)).abs() < 1e-6);
        assert!((f64::from(got_zero) - gates(0.0)).abs() < 1e-6);
    }

    #[test]
    fn gru_init_respects_bound() {
        let device = Default::default();
        let cell = GruCell::<Cpu>::init(5, 16, &device);
        let bound = 0.25 + 1e-6;
        for t in [
            cell.input.weight.val().abs().max(),
            cell.hidden.weight.val().abs().max(),
            cell.input.bias.as_ref().unwrap().val().abs().max(),
            cell.hidden.bias.as_ref().unwrap().val().abs().max(),
        ] {
            assert!(t.into_scalar() <= bound);
        }
    }
}
