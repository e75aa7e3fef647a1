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

mod config;
pub mod decoder;
pub mod encoder;
pub mod integrator;
pub mod loss;
pub mod noise;
pub mod potential;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use config::uniform_linear;
pub use config::{ConfigError, LangevinFlowConfig, PotentialInit, VelocityKl};
pub use decoder::{Decoder, DecoderSettings};
pub use encoder::{Encoder, EncoderInput, GruCell};
pub use integrator::Langevin;
pub use loss::{kl_beta, objective, CdMasks, CoordinatedDropout, Loss};
pub use noise::Noise;
pub use potential::Potential;

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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;
    use burn::tensor::Distribution;
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
