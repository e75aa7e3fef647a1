//! The decoder (spec §5): one post-norm Transformer encoder layer over `[z, v, h]` and a linear
//! readout to log-rates.
//!
//! Attention is written from Linear layers rather than taken from burn-nn's
//! `MultiHeadAttention`: that one drops out attention scores whenever the backend tracks
//! gradients, while spec §5 places dropout elsewhere and this model switches dropout by an
//! explicit mode.

use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};

use super::{dropout, uniform_linear, Noise};

/// LayerNorm epsilon, PyTorch's default.
const LAYER_NORM_EPS: f64 = 1e-5;

/// T-Fixup gain for a one-layer encoder: `0.67 · N^(-1/4)` with `N = 3`.
fn t_fixup_gain() -> f64 {
    0.67 * 3f64.powf(-0.25)
}

/// Sizes and switches of a [`Decoder`].
#[derive(Debug, Clone, Copy)]
pub struct DecoderSettings {
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_neurons: usize,
    pub dropout: f64,
    /// Dropout of the attention weights (the release drops 5 %).
    pub attention_dropout: f64,
    /// Whether T-Fixup scales the value projection too (spec §5; the release means to but
    /// never does).
    pub scale_value: bool,
}

/// One Transformer encoder layer and the readout.
///
/// Full (non-causal) attention and no positional encoding: time enters only through the latent
/// trajectory, so the layer mixes information across all observed and forward bins.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Query projection `d_model → d_model`.
    pub query: Linear<B>,
    /// Key projection `d_model → d_model`.
    pub key: Linear<B>,
    /// Value projection `d_model → d_model` (T-Fixup scaled by an extra `sqrt(2)`).
    pub value: Linear<B>,
    /// Attention output projection `d_model → d_model` (T-Fixup scaled).
    pub output: Linear<B>,
    /// LayerNorm after the attention residual.
    pub norm_attention: LayerNorm<B>,
    /// Feed-forward expansion `d_model → d_ff` (T-Fixup scaled).
    pub ff_in: Linear<B>,
    /// Feed-forward contraction `d_ff → d_model` (T-Fixup scaled).
    pub ff_out: Linear<B>,
    /// LayerNorm after the feed-forward residual.
    pub norm_ff: LayerNorm<B>,
    /// Readout `d_model → N` giving log-rates.
    pub readout: Linear<B>,
    /// Number of attention heads; divides `d_model`.
    #[module(skip)]
    pub n_heads: usize,
    /// Dropout after attention, inside and after the feed-forward (training only).
    #[module(skip)]
    pub dropout: f64,
    /// Dropout of the attention weights (training only; 0 by default, 0.05 in the release).
    #[module(skip)]
    pub attention_dropout: f64,
}

impl<B: Backend> Decoder<B> {
    /// PyTorch's `TransformerEncoderLayer` default init (packed Xavier-uniform `q,k,v` with zero
    /// biases, zero output-projection bias, `±1/sqrt(fan_in)` elsewhere), then the T-Fixup
    /// scaling of spec §5, which lets a post-norm layer train without learning-rate warm-up.
    pub fn init(settings: DecoderSettings, device: &B::Device) -> Self {
        let DecoderSettings {
            d_model,
            n_heads,
            d_ff,
            n_neurons,
            dropout,
            attention_dropout,
            scale_value,
        } = settings;
        let gain = t_fixup_gain();
        let fan_in = |n: usize| 1.0 / (n as f64).sqrt();
        // PyTorch draws q, k, v as one [3·d, d] Xavier-uniform matrix.
        let packed = (6.0 / (4 * d_model) as f64).sqrt();
        // The scaled tensor must become the leaf parameter itself, not an op on the drawn one.
        let scaled = |linear: Linear<B>, factor: f64| Linear {
            weight: linear
                .weight
                .map(|w| w.mul_scalar(factor).detach().require_grad()),
            bias: linear.bias,
        };
        Self {
            query: uniform_linear(d_model, d_model, packed, None, device),
            key: uniform_linear(d_model, d_model, packed, None, device),
            value: scaled(
                uniform_linear(d_model, d_model, packed, None, device),
                if scale_value { gain * 2f64.sqrt() } else { 1.0 },
            ),
            output: scaled(
                uniform_linear(d_model, d_model, fan_in(d_model), None, device),
                gain,
            ),
            norm_attention: LayerNormConfig::new(d_model)
                .with_epsilon(LAYER_NORM_EPS)
                .init(device),
            ff_in: scaled(
                uniform_linear(
                    d_model,
                    d_ff,
                    fan_in(d_model),
                    Some(fan_in(d_model)),
                    device,
                ),
                gain,
            ),
            ff_out: scaled(
                uniform_linear(d_ff, d_model, fan_in(d_ff), Some(fan_in(d_ff)), device),
                gain,
            ),
            norm_ff: LayerNormConfig::new(d_model)
                .with_epsilon(LAYER_NORM_EPS)
                .init(device),
            readout: uniform_linear(
                d_model,
                n_neurons,
                fan_in(d_model),
                Some(fan_in(d_model)),
                device,
            ),
            n_heads,
            dropout,
            attention_dropout,
        }
    }

    /// `[z, v, h]` features `[B, T', d_model]` → log-rates `[B, T', N]`.
    ///
    /// Everything but the attention scores is per step, so it runs on `[B·T', ·]` matrices:
    /// one large matmul per layer instead of `B` small batched ones.
    pub fn forward(&self, x: Tensor<B, 3>, train: bool, noise: &Noise) -> Tensor<B, 3> {
        let [batch, steps, d_model] = x.dims();
        let x = x.reshape([batch * steps, d_model]);
        let attended = self.attention(x.clone(), batch, steps, train, noise);
        let drop = |x, name: &'static str| dropout(x, self.dropout, train, noise, &|| name.into());
        let x = self
            .norm_attention
            .forward(x + drop(attended, "attention_out"));
        let ff = relu(self.ff_in.forward(x.clone()));
        let ff = self.ff_out.forward(drop(ff, "ff_inner"));
        let x = self.norm_ff.forward(x + drop(ff, "ff_out"));
        let log_rates = self.readout.forward(x);
        let n_neurons = log_rates.dims()[1];
        log_rates.reshape([batch, steps, n_neurons])
    }

    /// Multi-head scaled dot-product self-attention over all steps of each trial; `x` is
    /// `[B·T', d_model]`, trial-major.
    fn attention(
        &self,
        x: Tensor<B, 2>,
        batch: usize,
        steps: usize,
        train: bool,
        noise: &Noise,
    ) -> Tensor<B, 2> {
        let d_model = x.dims()[1];
        let d_head = d_model / self.n_heads;
        let heads = |y: Tensor<B, 2>| {
            y.reshape([batch, steps, self.n_heads, d_head])
                .swap_dims(1, 2)
        };
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (d_head as f64).sqrt());
        let weights = dropout(
            softmax(scores, 3),
            self.attention_dropout,
            train,
            noise,
            &|| "attention_weights".into(),
        );
        let context = weights
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch * steps, d_model]);
        self.output.forward(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, Int};

    type Cpu = NdArray<f32>;

    fn settings(d: usize, heads: usize, d_ff: usize, n: usize, dropout: f64) -> DecoderSettings {
        DecoderSettings {
            d_model: d,
            n_heads: heads,
            d_ff,
            n_neurons: n,
            dropout,
            attention_dropout: 0.0,
            scale_value: true,
        }
    }

    fn max_abs<const D: usize>(t: Tensor<Cpu, D>) -> f32 {
        t.abs().max().into_scalar()
    }

    #[test]
    fn t_fixup_scales_value_output_and_feed_forward() {
        let device = Default::default();
        let (d, d_ff) = (24, 40);
        let decoder = Decoder::<Cpu>::init(settings(d, 2, d_ff, 7, 0.0), &device);
        let gain = t_fixup_gain() as f32;
        let packed = (6.0f32 / (4 * d) as f32).sqrt();
        let tol = 1e-6;
        assert!(max_abs(decoder.query.weight.val()) <= packed + tol);
        assert!(max_abs(decoder.value.weight.val()) <= packed * gain * 2f32.sqrt() + tol);
        // The scaled value weights really are scaled down, not just bounded.
        assert!(max_abs(decoder.value.weight.val()) > 0.5 * packed * gain * 2f32.sqrt());
        assert!(max_abs(decoder.output.weight.val()) <= gain / (d as f32).sqrt() + tol);
        assert!(max_abs(decoder.ff_in.weight.val()) <= gain / (d as f32).sqrt() + tol);
        assert!(max_abs(decoder.ff_out.weight.val()) <= gain / (d_ff as f32).sqrt() + tol);
        assert_eq!(max_abs(decoder.query.bias.as_ref().unwrap().val()), 0.0);
        assert_eq!(max_abs(decoder.output.bias.as_ref().unwrap().val()), 0.0);
    }

    #[test]
    fn attention_has_no_positional_information() {
        // Without positional encoding, permuting steps permutes the output the same way.
        let device = Default::default();
        let decoder = Decoder::<Cpu>::init(settings(12, 3, 16, 5, 0.05), &device);
        let x = Tensor::<Cpu, 3>::random([2, 6, 12], Distribution::Normal(0.0, 1.0), &device);
        let perm = Tensor::<Cpu, 1, Int>::from_ints([3, 0, 5, 1, 4, 2], &device);
        let out = decoder.forward(x.clone(), false, &Noise::random());
        assert_eq!(out.dims(), [2, 6, 5]);
        let out_of_permuted = decoder.forward(x.select(1, perm.clone()), false, &Noise::random());
        assert!(max_abs(out.select(1, perm) - out_of_permuted) < 1e-5);
    }
}
