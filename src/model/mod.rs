//! LangevinFlow (spec `model.md`): a GRU encoder and underdamped Langevin latent dynamics stepped
//! together bin by bin, decoded to Poisson log-rates by one Transformer layer.
//!
//! Generic over the Burn backend and free of any file handling: `train/` feeds tensors in and
//! saves records; this module only defines the model, its objective and its prediction rule.
//!
//! Reproducibility: every random draw (initial weights, the potential kernel, latent samples,
//! Langevin noise, dropout and coordinated-dropout masks) comes from the backend's RNG via
//! `Tensor::random`, and parameters are drawn eagerly in [`LangevinFlowConfig::init`]. Calling
//! `B::seed(&device, seed)` before `init` therefore makes initialisation and training
//! reproducible on a given backend (the RNG is per process, so only while nothing else draws
//! from it concurrently).

pub mod decoder;
pub mod encoder;
pub mod integrator;
pub mod loss;
pub mod noise;
pub mod potential;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

pub use decoder::{Decoder, DecoderSettings};
pub use encoder::{Encoder, EncoderInput, GruCell};
pub use integrator::Langevin;
pub use loss::{kl_beta, objective, CdMasks, CoordinatedDropout, Loss};
pub use noise::Noise;
pub use potential::Potential;

/// Every number of the model and its objective (spec §1–§6, §8), with the published defaults.
///
/// Training-loop settings (learning rate, epochs, batch size…) live with the training code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LangevinFlowConfig {
    /// Encoder state size `H` (280, as every training script of the release sets it).
    pub hidden_size: usize,
    /// Latent size `D`; `None` means `D = H`.
    pub latent_size: Option<usize>,
    /// Oscillator channels `C` of the potential (4); must divide `D`.
    pub channels: usize,
    /// Dropout probability in encoder and decoder (0.05).
    pub dropout: f64,
    /// Which bin the encoder reads at each step: "current" (paper) or "previous" (release).
    pub encoder_input: EncoderInput,
    /// Langevin step size (0.01).
    pub dt: f64,
    /// Langevin damping (0.55; 0.7 for dmfc_rsg).
    pub gamma: f64,
    /// Attention heads (2); must divide `d_model = 2D + H`.
    pub n_heads: usize,
    /// Feed-forward width of the decoder (512).
    pub d_ff: usize,
    /// Final KL weight (0.1).
    pub kl_weight: f64,
    /// Epochs over which the KL weight ramps up linearly from 0 (500).
    pub kl_ramp_epochs: usize,
    /// Coordinated-dropout keep probability (0.5 as for mc_maze; rtt 0.3, area2_bump 0.4,
    /// dmfc_rsg 0.6). 1.0 turns coordinated dropout off.
    pub cd_keep: f64,
    /// Variance of the per-step velocity prior `N(0, prior_v_var·I)` (0.1).
    pub prior_v_var: f64,
    /// Stochastic passes averaged for prediction (50).
    pub n_samples: usize,
    /// Dropout of the attention weights in training (0; the release drops 0.05).
    pub attention_dropout: f64,
    /// Whether T-Fixup scales the attention value projection (spec §5, true; the release's
    /// scaling never reaches it: false).
    pub tfixup_value: bool,
    /// Whether prediction passes keep dropout on (false; the release leaves the model in
    /// training mode: true).
    pub predict_dropout: bool,
    /// How the potential kernel starts: "normal" (N(0, 1), learned) or "zeros" (the release's,
    /// which the first Adam step turns into a frozen ±1/√3 pattern).
    pub potential_init: PotentialInit,
    /// The velocity prior's KL: "exact", or "release" (its log-variance slot holds the variance
    /// 2γ; the same gradient, a different constant).
    pub velocity_kl: VelocityKl,
    /// Starting log-variance of `q(z_0)` and `q(v_0)`: the bias of the two log-variance heads
    /// (`None`: drawn like every other bias, so the initial condition starts with unit-variance
    /// noise).
    pub initial_logvar: Option<f64>,
}

/// Start of the potential kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PotentialInit {
    Normal,
    Zeros,
}

/// Formula of the per-step velocity KL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VelocityKl {
    Exact,
    Release,
}

impl Default for LangevinFlowConfig {
    fn default() -> Self {
        Self {
            hidden_size: 280,
            latent_size: None,
            channels: 4,
            dropout: 0.05,
            encoder_input: EncoderInput::Current,
            dt: 0.01,
            gamma: 0.55,
            n_heads: 2,
            d_ff: 512,
            kl_weight: 0.1,
            kl_ramp_epochs: 500,
            cd_keep: 0.5,
            prior_v_var: 0.1,
            n_samples: 50,
            attention_dropout: 0.0,
            tfixup_value: true,
            predict_dropout: false,
            potential_init: PotentialInit::Normal,
            velocity_kl: VelocityKl::Exact,
            initial_logvar: None,
        }
    }
}

/// A model configuration that cannot be built, with the reason spelled out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct ConfigError(String);

impl LangevinFlowConfig {
    /// Latent size `D` (defaults to `H`).
    pub fn latent(&self) -> usize {
        self.latent_size.unwrap_or(self.hidden_size)
    }

    /// Decoder width `2D + H`: position, velocity and encoder state side by side.
    pub fn d_model(&self) -> usize {
        2 * self.latent() + self.hidden_size
    }

    /// Rejects configurations the model cannot represent, before any tensor is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        let (h, d) = (self.hidden_size, self.latent());
        if h == 0 || d == 0 {
            return fail(format!(
                "hidden_size ({h}) and latent_size ({d}) must be positive"
            ));
        }
        if self.channels == 0 || !d.is_multiple_of(self.channels) {
            return fail(format!(
                "channels ({}) must divide latent_size ({d}): the potential views z as \
                 channels × latent_size/channels positions",
                self.channels
            ));
        }
        if self.n_heads == 0 || !self.d_model().is_multiple_of(self.n_heads) {
            return fail(format!(
                "n_heads ({}) must divide d_model = 2·latent_size + hidden_size = {}",
                self.n_heads,
                self.d_model()
            ));
        }
        if self.d_ff == 0 {
            return fail("d_ff must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout ({}) must be in [0, 1)", self.dropout));
        }
        if !(0.0..1.0).contains(&self.attention_dropout) {
            return fail(format!(
                "attention_dropout ({}) must be in [0, 1)",
                self.attention_dropout
            ));
        }
        if !(self.cd_keep > 0.0 && self.cd_keep <= 1.0) {
            return fail(format!("cd_keep ({}) must be in (0, 1]", self.cd_keep));
        }
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return fail(format!("dt ({}) must be positive", self.dt));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return fail(format!("gamma ({}) must be in (0, 1]", self.gamma));
        }
        if !(self.prior_v_var.is_finite() && self.prior_v_var > 0.0) {
            return fail(format!(
                "prior_v_var ({}) must be positive",
                self.prior_v_var
            ));
        }
        if !(self.kl_weight.is_finite() && self.kl_weight >= 0.0) {
            return fail(format!(
                "kl_weight ({}) must be non-negative",
                self.kl_weight
            ));
        }
        if self.n_samples == 0 {
            return fail("n_samples must be at least 1".into());
        }
        Ok(())
    }

    /// Validates, then builds a model reading `n_heldin` neurons and predicting `n_neurons`
    /// (held-in first, then held-out). All parameters are drawn now, in a fixed order, from the
    /// backend RNG; seed it first for a reproducible model.
    pub fn init<B: Backend>(
        &self,
        n_heldin: usize,
        n_neurons: usize,
        device: &B::Device,
    ) -> Result<LangevinFlow<B>, ConfigError> {
        self.validate()?;
        if n_heldin == 0 || n_neurons < n_heldin {
            return Err(ConfigError(format!(
                "need 0 < n_heldin ({n_heldin}) <= n_neurons ({n_neurons})"
            )));
        }
        let (h, d) = (self.hidden_size, self.latent());
        let bound = 1.0 / (h as f64).sqrt();
        Ok(LangevinFlow {
            encoder: Encoder::init(n_heldin, h, self.dropout, self.encoder_input, device),
            initial: initial_heads(h, d, bound, self.initial_logvar, device),
            potential: Potential::init(
                self.channels,
                self.potential_init == PotentialInit::Zeros,
                device,
            ),
            decoder: Decoder::init(
                DecoderSettings {
                    d_model: self.d_model(),
                    n_heads: self.n_heads,
                    d_ff: self.d_ff,
                    n_neurons,
                    dropout: self.dropout,
                    attention_dropout: self.attention_dropout,
                    scale_value: self.tfixup_value,
                },
                device,
            ),
            config: self.clone(),
        })
    }
}

/// Whether dropout is active. Latent sampling and Langevin noise are on in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dropout on (training).
    Train,
    /// Dropout off (validation and prediction).
    Eval,
}

/// Everything one forward pass produces; `T' = T + Tf` steps.
#[derive(Debug, Clone)]
pub struct Output<B: Backend> {
    /// Log firing rates `[B, T', N]`, held-in neurons first.
    pub log_rates: Tensor<B, 3>,
    /// Latent positions `[B, T', D]`.
    pub z: Tensor<B, 3>,
    /// Latent velocities `[B, T', D]`.
    pub v: Tensor<B, 3>,
    /// Encoder states `[B, T', H]` (after dropout in training).
    pub h: Tensor<B, 3>,
    /// Mean of `q(z_0)` `[B, D]`.
    pub z0_mean: Tensor<B, 2>,
    /// Log-variance of `q(z_0)` `[B, D]`.
    pub z0_logvar: Tensor<B, 2>,
    /// Mean of `q(v_0)` `[B, D]`.
    pub v0_mean: Tensor<B, 2>,
    /// Log-variance of `q(v_0)` `[B, D]`.
    pub v0_logvar: Tensor<B, 2>,
}

/// The LangevinFlow model.
#[derive(Module, Debug)]
pub struct LangevinFlow<B: Backend> {
    /// Causal GRU encoder.
    pub encoder: Encoder<B>,
    /// The four initial-condition heads on `h_0` as one `H → 4D` layer, columns
    /// `[z0 mean | z0 logvar | v0 mean | v0 logvar]` (same init as four separate heads).
    pub initial: Linear<B>,
    /// Oscillator potential driving the dynamics.
    pub potential: Potential<B>,
    /// Transformer decoder and readout.
    pub decoder: Decoder<B>,
    /// The configuration it was built from (not a parameter; not saved in records).
    #[module(skip)]
    pub config: LangevinFlowConfig,
}

impl<B: Backend> LangevinFlow<B> {
    /// Held-in neurons `N_in` the encoder reads.
    pub fn n_heldin(&self) -> usize {
        self.encoder.gru.input.weight.dims()[0]
    }

    /// All neurons `N` the readout predicts.
    pub fn n_neurons(&self) -> usize {
        self.decoder.readout.weight.dims()[1]
    }

    /// This model with the readout's bias replaced by `bias` (one value per neuron): a start at
    /// the neurons' log mean rates instead of rates near 1 per bin.
    ///
    /// # Panics
    /// If `bias` does not hold one value per neuron.
    pub fn with_readout_bias(mut self, bias: Tensor<B, 1>) -> Self {
        assert_eq!(bias.dims(), [self.n_neurons()], "one bias per neuron");
        self.decoder.readout.bias = Some(Param::from_tensor(bias));
        self
    }

    /// The integrator with this model's step size and damping.
    pub fn dynamics(&self) -> Langevin {
        Langevin {
            dt: self.config.dt,
            gamma: self.config.gamma,
        }
    }

    /// Runs encoder and dynamics over `T` observed bins of `x_heldin [B, T, N_in]` and `t_fwd`
    /// forward bins, then decodes all `T + t_fwd` steps.
    ///
    /// Each step `t ≥ 1` does one GRU update and one Langevin step from the previous state, so
    /// the latent path never sees bins after `t`; only the decoder looks across time.
    pub fn forward(&self, x_heldin: Tensor<B, 3>, t_fwd: usize, mode: Mode) -> Output<B> {
        self.forward_with(x_heldin, t_fwd, mode, &Noise::random())
    }

    /// [`Self::forward`] with its random draws taken from `noise`.
    pub fn forward_with(
        &self,
        x_heldin: Tensor<B, 3>,
        t_fwd: usize,
        mode: Mode,
        noise: &Noise,
    ) -> Output<B> {
        let [batch, t_obs, _] = x_heldin.dims();
        let steps = t_obs + t_fwd;
        let train = mode == Mode::Train;
        let latent = self.config.latent();
        let device = x_heldin.device();
        let dynamics = self.dynamics();

        let inputs = self.encoder.prepare(x_heldin);
        let mut h = self.encoder.step(&inputs, 0, None, train, noise);
        let heads = self.initial.forward(h.clone()).split(latent, 1);
        let [z0_mean, z0_logvar, v0_mean, v0_logvar]: [Tensor<B, 2>; 4] =
            heads.try_into().expect("four initial-condition heads");
        let sample = |mean: &Tensor<B, 2>, logvar: &Tensor<B, 2>, name: &str| {
            let eps = noise.normal(&|| name.to_string(), [batch, latent], &device);
            mean.clone() + logvar.clone().mul_scalar(0.5).exp() * eps
        };
        let mut z = sample(&z0_mean, &z0_logvar, "z0");
        let mut v = sample(&v0_mean, &v0_logvar, "v0");

        let grad_operator = self.potential.grad_operator(latent);
        let (mut zs, mut vs, mut hs) = (
            Vec::with_capacity(steps),
            Vec::with_capacity(steps),
            Vec::with_capacity(steps),
        );
        zs.push(z.clone());
        vs.push(v.clone());
        hs.push(h.clone());
        for t in 1..steps {
            h = self.encoder.step(&inputs, t, Some(h), train, noise);
            let grad_u = z.clone().matmul(grad_operator.clone());
            let eps = noise.normal(&|| format!("velocity/{t}"), [batch, latent], &device);
            (z, v) = dynamics.step(z, v, grad_u, eps);
            zs.push(z.clone());
            vs.push(v.clone());
            hs.push(h.clone());
        }
        let z = Tensor::stack::<3>(zs, 1);
        let v = Tensor::stack::<3>(vs, 1);
        let h = Tensor::stack::<3>(hs, 1);
        let features = Tensor::cat(vec![z.clone(), v.clone(), h.clone()], 2);
        let log_rates = self.decoder.forward(features, train, noise);
        Output {
            log_rates,
            z,
            v,
            h,
            z0_mean,
            z0_logvar,
            v0_mean,
            v0_logvar,
        }
    }

    /// The training objective of spec §6 at `epoch`: coordinated dropout (unless
    /// `cd_keep = 1`), dropout on, KL weight `beta(epoch)`.
    ///
    /// `targets [B, T + Tf, N]` holds held-in then held-out spikes over observed and forward
    /// bins; `Tf` is read from its length.
    ///
    /// # Panics
    /// If `targets` has fewer steps than `x_heldin` or not `N` neurons.
    pub fn training_loss(
        &self,
        x_heldin: Tensor<B, 3>,
        targets: Tensor<B, 3>,
        epoch: usize,
    ) -> Loss<B> {
        self.training_loss_with(x_heldin, targets, epoch, &Noise::random())
    }

    /// [`Self::training_loss`] with its random draws taken from `noise`.
    pub fn training_loss_with(
        &self,
        x_heldin: Tensor<B, 3>,
        targets: Tensor<B, 3>,
        epoch: usize,
        noise: &Noise,
    ) -> Loss<B> {
        self.training_pass(x_heldin, targets, epoch, noise).1
    }

    /// One training pass: the forward pass (on the coordinated-dropout input) and its loss.
    pub fn training_pass(
        &self,
        x_heldin: Tensor<B, 3>,
        targets: Tensor<B, 3>,
        epoch: usize,
        noise: &Noise,
    ) -> (Output<B>, Loss<B>) {
        let [batch, t_obs, n_heldin] = x_heldin.dims();
        let [_, steps, n_neurons] = targets.dims();
        let t_fwd = self.forward_bins(t_obs, steps, n_neurons);
        let masks = (self.config.cd_keep < 1.0).then(|| {
            CoordinatedDropout {
                keep: self.config.cd_keep,
            }
            .sample::<B>(
                [batch, t_obs, n_heldin],
                [steps, n_neurons],
                &x_heldin.device(),
                noise,
            )
        });
        let (x_heldin, gradient_mask) = match masks {
            Some(m) => (x_heldin * m.input, Some(m.gradient)),
            None => (x_heldin, None),
        };
        let output = self.forward_with(x_heldin, t_fwd, Mode::Train, noise);
        let loss = self.objective(&output, targets, gradient_mask, epoch);
        (output, loss)
    }

    /// The validation objective: the same loss without dropout or coordinated dropout (spec §7);
    /// latent sampling and Langevin noise stay on, so it is itself a one-sample estimate.
    ///
    /// # Panics
    /// As [`Self::training_loss`].
    pub fn validation_loss(
        &self,
        x_heldin: Tensor<B, 3>,
        targets: Tensor<B, 3>,
        epoch: usize,
    ) -> Loss<B> {
        self.validation_parts(x_heldin, targets, epoch).0
    }

    /// [`Self::validation_loss`] and, from the same pass, the Poisson NLL of the held-out
    /// neurons over the observed bins alone: the quantity co-bps scores, so a monitor that
    /// tracks what the benchmark rewards rather than the held-in reconstruction that dominates
    /// the full NLL.
    ///
    /// # Panics
    /// As [`Self::training_loss`].
    pub fn validation_parts(
        &self,
        x_heldin: Tensor<B, 3>,
        targets: Tensor<B, 3>,
        epoch: usize,
    ) -> (Loss<B>, Tensor<B, 1>) {
        self.validation_parts_with(x_heldin, targets, epoch, &Noise::random())
    }

    /// [`Self::validation_parts`] with its random draws taken from `noise`.
    pub fn validation_parts_with(
        &self,
        x_heldin: Tensor<B, 3>,
        targets: Tensor<B, 3>,
        epoch: usize,
        noise: &Noise,
    ) -> (Loss<B>, Tensor<B, 1>) {
        let [batch, t_obs, n_heldin] = x_heldin.dims();
        let [_, steps, n_neurons] = targets.dims();
        let t_fwd = self.forward_bins(t_obs, steps, n_neurons);
        let output = self.forward_with(x_heldin, t_fwd, Mode::Eval, noise);
        let heldout = if n_neurons > n_heldin {
            let cut = |t: Tensor<B, 3>| t.slice([0..batch, 0..t_obs, n_heldin..n_neurons]);
            loss::poisson_nll(cut(output.log_rates.clone()), cut(targets.clone()))
        } else {
            Tensor::zeros([1], &output.log_rates.device())
        };
        (self.objective(&output, targets, None, epoch), heldout)
    }

    /// Spec §6's objective for an existing forward pass, with this model's KL settings.
    pub fn objective(
        &self,
        output: &Output<B>,
        targets: Tensor<B, 3>,
        gradient_mask: Option<Tensor<B, 3>>,
        epoch: usize,
    ) -> Loss<B> {
        let c = &self.config;
        objective(
            output,
            targets,
            gradient_mask,
            kl_beta(epoch, c.kl_weight, c.kl_ramp_epochs),
            c.gamma,
            c.prior_v_var,
            c.velocity_kl,
        )
    }

    fn forward_bins(&self, t_obs: usize, steps: usize, n_neurons: usize) -> usize {
        assert!(
            steps >= t_obs && n_neurons == self.n_neurons(),
            "targets must be [B, T + Tf, {}] with T = {t_obs}, got {steps} steps × {n_neurons} neurons",
            self.n_neurons()
        );
        steps - t_obs
    }
}

/// Log-rates for prediction (spec §8): the mean over `n_samples` stochastic passes (dropout off
/// unless `predict_dropout`, the release's behaviour; latent samples and Langevin noise on), `[B, T + t_fwd, N]`. Rates are `exp` of this.
///
/// Averaging in log space gives the geometric mean of the sampled rates. Run it on a
/// non-autodiff backend (`model.valid()`) to avoid building graphs.
///
/// # Panics
/// If `n_samples` is 0.
pub fn predict_log_rates<B: Backend>(
    model: &LangevinFlow<B>,
    x_heldin: Tensor<B, 3>,
    t_fwd: usize,
    n_samples: usize,
) -> Tensor<B, 3> {
    assert!(n_samples > 0, "predict_log_rates needs at least one sample");
    let mode = if model.config.predict_dropout {
        Mode::Train
    } else {
        Mode::Eval
    };
    let mut total = model
        .forward(x_heldin.clone(), t_fwd, mode)
        .log_rates
        .detach();
    for _ in 1..n_samples {
        total = total
            + model
                .forward(x_heldin.clone(), t_fwd, mode)
                .log_rates
                .detach();
    }
    total.div_scalar(n_samples as f64)
}

/// Inverted dropout: zero entries with probability `prob` and rescale the rest by
/// `1/(1 − prob)`, only when `train`. Unlike burn-nn's `Dropout`, it follows the explicit
/// [`Mode`] rather than whether the backend tracks gradients; the mask is the draw `name`.
fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    prob: f64,
    train: bool,
    noise: &Noise,
    name: &dyn Fn() -> String,
) -> Tensor<B, D> {
    if !train || prob == 0.0 {
        return x;
    }
    let keep = 1.0 - prob;
    let mask = noise
        .keep(name, x.dims(), keep, &x.device())
        .mul_scalar(1.0 / keep);
    x * mask
}

/// The four initial-condition heads `H → 4D`, the log-variance columns' bias set to `logvar`
/// when given (drawn after the default init, so the other parameters do not change).
fn initial_heads<B: Backend>(
    h: usize,
    d: usize,
    bound: f64,
    logvar: Option<f64>,
    device: &B::Device,
) -> Linear<B> {
    let heads = uniform_linear(h, 4 * d, bound, Some(bound), device);
    let Some(logvar) = logvar else {
        return heads;
    };
    let bias = heads.bias.as_ref().expect("heads have a bias").val();
    let columns = |from: usize| from..from + d;
    let fill = Tensor::full([d], logvar, device);
    let bias = bias
        .slice_assign([columns(d)], fill.clone())
        .slice_assign([columns(3 * d)], fill)
        .detach();
    Linear {
        weight: heads.weight,
        bias: Some(Param::from_tensor(bias)),
    }
}

/// A `d_in → d_out` layer with weights uniform in `±weight_bound` and biases uniform in
/// `±bias_bound` (zero when `None`), drawn now rather than lazily so the RNG order is fixed.
fn uniform_linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    weight_bound: f64,
    bias_bound: Option<f64>,
    device: &B::Device,
) -> Linear<B> {
    let weight = Tensor::random(
        [d_in, d_out],
        Distribution::Uniform(-weight_bound, weight_bound),
        device,
    );
    let bias = match bias_bound {
        Some(b) => Tensor::random([d_out], Distribution::Uniform(-b, b), device),
        None => Tensor::zeros([d_out], device),
    };
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;
    use burn::tensor::TensorData;

    type Cpu = NdArray<f32>;
    type Ad = Autodiff<Cpu>;

    fn small() -> LangevinFlowConfig {
        LangevinFlowConfig {
            hidden_size: 8,
            d_ff: 16,
            ..Default::default()
        }
    }

    fn spikes<Bk: Backend>(shape: [usize; 3], device: &Bk::Device) -> Tensor<Bk, 3> {
        Tensor::random(shape, Distribution::Uniform(0.0, 3.0), device).floor()
    }

    #[test]
    fn config_defaults_round_trip_and_reject_unknown_fields() {
        let cfg: LangevinFlowConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, LangevinFlowConfig::default());
        assert_eq!(cfg.latent(), 280);
        assert_eq!(cfg.d_model(), 840);
        let cfg: LangevinFlowConfig =
            toml::from_str("encoder_input = \"previous\"\ngamma = 0.7\nlatent_size = 32").unwrap();
        assert_eq!(cfg.encoder_input, EncoderInput::Previous);
        assert_eq!(cfg.d_model(), 344);
        let back: LangevinFlowConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        assert!(toml::from_str::<LangevinFlowConfig>("hiden_size = 3").is_err());
    }

    #[test]
    fn initial_logvar_sets_only_the_log_variance_biases() {
        let device = Default::default();
        let build = |logvar| {
            Cpu::seed(&device, 5);
            LangevinFlowConfig {
                hidden_size: 8,
                initial_logvar: logvar,
                ..LangevinFlowConfig::default()
            }
            .init::<Cpu>(3, 4, &device)
            .unwrap()
        };
        let (plain, narrow) = (build(None), build(Some(-5.0)));
        let bias = |m: &LangevinFlow<Cpu>| -> Vec<f32> {
            let b = m.initial.bias.as_ref().unwrap().val();
            b.into_data().to_vec().unwrap()
        };
        let (plain_b, narrow_b) = (bias(&plain), bias(&narrow));
        for (i, (p, n)) in plain_b.iter().zip(&narrow_b).enumerate() {
            match i / 8 {
                1 | 3 => assert_eq!(*n, -5.0, "log-variance bias {i}"),
                _ => assert_eq!(p, n, "mean bias {i} must keep its draw"),
            }
        }
        let w = |m: &LangevinFlow<Cpu>| m.initial.weight.val().into_data();
        assert_eq!(w(&plain), w(&narrow));
    }

    #[test]
    fn with_readout_bias_replaces_the_readout_bias() {
        let device = Default::default();
        let model = LangevinFlowConfig {
            hidden_size: 8,
            ..LangevinFlowConfig::default()
        }
        .init::<Cpu>(3, 4, &device)
        .unwrap();
        let bias = Tensor::<Cpu, 1>::from_floats([-1.0, -2.0, -3.0, -4.0], &device);
        let model = model.with_readout_bias(bias);
        let got: Vec<f32> = model
            .decoder
            .readout
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(got, vec![-1.0, -2.0, -3.0, -4.0]);
    }

    #[test]
    fn validate_names_the_broken_constraint() {
        let heads = LangevinFlowConfig {
            n_heads: 11,
            ..Default::default()
        };
        let msg = heads.validate().unwrap_err().to_string();
        assert!(msg.contains("n_heads (11)") && msg.contains("840"), "{msg}");
        let channels = LangevinFlowConfig {
            latent_size: Some(30),
            n_heads: 1,
            ..Default::default()
        };
        let msg = channels.validate().unwrap_err().to_string();
        assert!(msg.contains("channels (4)") && msg.contains("30"), "{msg}");
        assert!(LangevinFlowConfig::default().validate().is_ok());
    }

    #[test]
    fn forward_shapes_cover_observed_and_forward_bins() {
        let device = Default::default();
        let model = small().init::<Cpu>(5, 7, &device).unwrap();
        let x = spikes::<Cpu>([3, 6, 5], &device);
        for mode in [Mode::Train, Mode::Eval] {
            let out = model.forward(x.clone(), 4, mode);
            assert_eq!(out.log_rates.dims(), [3, 10, 7]);
            assert_eq!(out.z.dims(), [3, 10, 8]);
            assert_eq!(out.v.dims(), [3, 10, 8]);
            assert_eq!(out.h.dims(), [3, 10, 8]);
            assert_eq!(out.z0_mean.dims(), [3, 8]);
            assert_eq!(out.v0_logvar.dims(), [3, 8]);
        }
        assert_eq!(predict_log_rates(&model, x, 0, 3).dims(), [3, 6, 7]);
    }

    #[test]
    fn latent_path_is_causal() {
        // No step before t may depend on a bin at or after t ("current" rule); only the decoder
        // looks across time. Checked through gradients, which do not depend on the noise drawn.
        let device = Default::default();
        let model = small().init::<Ad>(5, 7, &device).unwrap();
        let x = spikes::<Ad>([2, 6, 5], &device).require_grad();
        let out = model.forward(x.clone(), 2, Mode::Eval);
        let early = |t: Tensor<Ad, 3>| t.slice(s![.., 0..4, ..]).sum();
        let grads = (early(out.z) + early(out.v) + early(out.h)).backward();
        let g = x.grad(&grads).unwrap();
        let late = g.clone().slice(s![.., 4.., ..]).abs().max().into_scalar();
        let last_seen = g.slice(s![.., 3..4, ..]).abs().max().into_scalar();
        assert_eq!(late, 0.0);
        assert!(last_seen > 0.0);
    }

    /// Runs the calling test alone in a fresh test process and returns `false`; returns `true`
    /// inside that process, where the body should run. The backend RNG is process-wide, so a
    /// seeded comparison is only meaningful while no concurrently running test draws from it.
    fn run_isolated(name: &str) -> bool {
        const CHILD: &str = "LANGEVIN_ISOLATED_TEST";
        if std::env::var(CHILD).as_deref() == Ok(name) {
            return true;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([name, "--exact", "--test-threads=1"])
            .env(CHILD, name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        false
    }

    #[test]
    fn training_is_reproducible_from_the_seed() {
        if !run_isolated("model::tests::training_is_reproducible_from_the_seed") {
            return;
        }
        let device = Default::default();
        let run = |seed: u64| {
            Ad::seed(&device, seed);
            let model = small().init::<Ad>(5, 7, &device).unwrap();
            let x = spikes::<Ad>([3, 6, 5], &device);
            let y = spikes::<Ad>([3, 8, 7], &device);
            let loss = model.training_loss(x, y, 100);
            let grads = loss.total.backward();
            let g = model.potential.kernel.val().grad(&grads).unwrap();
            (loss.total.into_scalar(), g.into_data())
        };
        let (loss_a, grad_a) = run(42);
        let (loss_b, grad_b) = run(42);
        let (loss_c, _) = run(43);
        assert_eq!(loss_a, loss_b);
        assert_eq!(grad_a, grad_b);
        assert_ne!(loss_a, loss_c);
    }

    #[test]
    fn prediction_is_the_mean_of_eval_passes() {
        if !run_isolated("model::tests::prediction_is_the_mean_of_eval_passes") {
            return;
        }
        let device = Default::default();
        let model = small().init::<Cpu>(5, 7, &device).unwrap();
        let x = spikes::<Cpu>([2, 6, 5], &device);
        Cpu::seed(&device, 3);
        let predicted = predict_log_rates(&model, x.clone(), 2, 3);
        Cpu::seed(&device, 3);
        let passes: Vec<_> = (0..3)
            .map(|_| model.forward(x.clone(), 2, Mode::Eval).log_rates)
            .collect();
        let mean = (passes[0].clone() + passes[1].clone() + passes[2].clone()).div_scalar(3.0);
        let diff: f32 = (predicted - mean.clone()).abs().max().into_scalar();
        assert!(diff < 1e-6);
        // The passes are stochastic (latent samples and Langevin noise stay on).
        let spread: f32 = (passes[0].clone() - passes[1].clone())
            .abs()
            .max()
            .into_scalar();
        assert!(spread > 0.0);
    }

    #[test]
    fn every_parameter_receives_gradient() {
        let device = Default::default();
        let model = small().init::<Ad>(5, 7, &device).unwrap();
        let x = spikes::<Ad>([4, 6, 5], &device);
        let y = spikes::<Ad>([4, 9, 7], &device);
        let loss = model.training_loss(x, y, 600);
        assert!(loss.beta == 0.1 && loss.total.clone().into_scalar().is_finite());
        let grads = loss.total.backward();
        let norm =
            |p: &Param<Tensor<Ad, 2>>| p.val().grad(&grads).unwrap().abs().sum().into_scalar();
        assert!(norm(&model.encoder.gru.input.weight) > 0.0);
        assert!(norm(&model.encoder.gru.hidden.weight) > 0.0);
        assert!(norm(&model.initial.weight) > 0.0);
        assert!(norm(&model.decoder.value.weight) > 0.0);
        assert!(norm(&model.decoder.readout.weight) > 0.0);
        let kernel = model.potential.kernel.val().grad(&grads).unwrap();
        assert!(kernel.abs().sum().into_scalar() > 0.0);
    }

    #[test]
    fn validation_loss_runs_on_inner_backend() {
        let device = Default::default();
        let model = small().init::<Ad>(5, 7, &device).unwrap().valid();
        let x = spikes::<Cpu>([2, 6, 5], &device);
        let y = spikes::<Cpu>([2, 8, 7], &device);
        let loss = model.validation_loss(x, y, 0);
        assert_eq!(loss.beta, 0.0);
        let (total, nll) = (loss.total.into_scalar(), loss.nll.into_scalar());
        assert_eq!(total, nll);
        assert!(loss.kl.into_scalar() > 0.0);
    }

    #[test]
    fn heldout_nll_scores_only_heldout_neurons_on_observed_bins() {
        let device = Default::default();
        let model = small().init::<Cpu>(5, 7, &device).unwrap();
        let x = spikes::<Cpu>([2, 6, 5], &device);
        let y = spikes::<Cpu>([2, 8, 7], &device);
        // Changing held-in targets or forward bins leaves it alone; held-out observed bins move it.
        let d = model.forward(x.clone(), 2, Mode::Eval).z.dims()[2];
        let noise = || {
            let draw = |k: usize| {
                let v: Vec<f32> = (0..2 * d)
                    .map(|i| ((i * 7 + k * 3) % 11) as f32 / 11.0 - 0.5)
                    .collect();
                TensorData::new(v, [2, d])
            };
            let mut m = std::collections::HashMap::from([
                ("z0".to_string(), draw(0)),
                ("v0".to_string(), draw(1)),
            ]);
            for t in 1..8 {
                m.insert(format!("velocity/{t}"), draw(t + 1));
            }
            Noise::replay(m)
        };
        let (_, base) = model.validation_parts_with(x.clone(), y.clone(), 0, &noise());
        let mut other = y.clone().into_data().to_vec::<f32>().unwrap();
        for (i, v) in other.iter_mut().enumerate() {
            let (t, n) = ((i / 7) % 8, i % 7);
            if n < 5 || t >= 6 {
                *v += 3.0;
            }
        }
        let y2 = Tensor::<Cpu, 1>::from_floats(other.as_slice(), &device).reshape([2, 8, 7]);
        let (_, same) = model.validation_parts_with(x.clone(), y2, 0, &noise());
        let out = model.forward_with(x.clone(), 2, Mode::Eval, &noise());
        let r = out.log_rates.slice([0..2, 0..6, 5..7]);
        let want = loss::poisson_nll(r, y.slice([0..2, 0..6, 5..7])).into_scalar();
        let (b, s) = (base.into_scalar(), same.into_scalar());
        assert!(
            (b - s).abs() < 1e-5 && (b - want).abs() < 1e-5,
            "{b} {s} {want}"
        );
    }
}
