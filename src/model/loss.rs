//! The training objective (spec §6): Poisson likelihood, KL terms with a ramped weight, and
//! coordinated dropout.

use burn::prelude::*;

use super::{Noise, Output, VelocityKl};

/// The objective and its parts, kept apart so training can log each one.
#[derive(Debug, Clone)]
pub struct Loss<B: Backend> {
    /// `nll + beta · kl`, the scalar to differentiate.
    pub total: Tensor<B, 1>,
    /// Poisson negative log-likelihood, averaged over every `B·(T+Tf)·N` entry.
    pub nll: Tensor<B, 1>,
    /// All KL terms summed over dimensions and steps, divided by the batch size.
    pub kl: Tensor<B, 1>,
    /// The KL weight used for `total`.
    pub beta: f64,
}

/// `mean(exp(r) − y·r)`: Poisson NLL with log-rate input, without the `log(y!)` constant.
pub fn poisson_nll<B: Backend>(log_rates: Tensor<B, 3>, targets: Tensor<B, 3>) -> Tensor<B, 1> {
    (log_rates.clone().exp() - targets * log_rates).mean()
}

/// `KL(N(mean, exp(logvar)) ‖ N(0, I))`, summed over batch and dimensions.
pub fn kl_standard_normal<B: Backend>(mean: Tensor<B, 2>, logvar: Tensor<B, 2>) -> Tensor<B, 1> {
    (mean.powi_scalar(2) + logvar.clone().exp() - logvar)
        .sub_scalar(1.0)
        .sum()
        .mul_scalar(0.5)
}

/// `Σ KL(N(v, 2γ·I) ‖ N(0, prior_var·I))` over every entry of `velocities`, in closed form:
/// `½ · [(2γ + v²) / prior_var − 1 − ln(2γ / prior_var)]` per entry. `VelocityKl::Release` is
/// the release's formula, which puts the variance 2γ where a log-variance belongs:
/// `½ · [ln prior_var − 2γ − 1 + v² / prior_var + e^(2γ) / prior_var]`; same gradient, another
/// constant.
pub fn kl_velocity<B: Backend>(
    velocities: Tensor<B, 3>,
    gamma: f64,
    prior_var: f64,
    formula: VelocityKl,
) -> Tensor<B, 1> {
    let var = 2.0 * gamma;
    let constant = match formula {
        VelocityKl::Exact => var / prior_var - 1.0 - (var / prior_var).ln(),
        VelocityKl::Release => prior_var.ln() - var - 1.0 + var.exp() / prior_var,
    };
    let entries = velocities.shape().num_elements() as f64;
    velocities
        .powi_scalar(2)
        .sum()
        .mul_scalar(0.5 / prior_var)
        .add_scalar(0.5 * entries * constant)
}

/// All KL terms of spec §6 divided by the batch size: initial position and velocity against
/// `N(0, I)`, plus the velocity of every Langevin step (`t ≥ 1`) against `N(0, prior_var·I)`.
pub fn kl_divergence<B: Backend>(
    output: &Output<B>,
    gamma: f64,
    prior_var: f64,
    formula: VelocityKl,
) -> Tensor<B, 1> {
    let [batch, steps, _] = output.v.dims();
    let initial = kl_standard_normal(output.z0_mean.clone(), output.z0_logvar.clone())
        + kl_standard_normal(output.v0_mean.clone(), output.v0_logvar.clone());
    let total = if steps > 1 {
        initial
            + kl_velocity(
                output.v.clone().slice(s![.., 1.., ..]),
                gamma,
                prior_var,
                formula,
            )
    } else {
        initial
    };
    total.div_scalar(batch as f64)
}

/// `beta(epoch) = kl_weight · min(epoch / ramp_epochs, 1)`: the KL is phased in so the decoder
/// learns to explain the data before the prior pulls the latents in. A zero ramp means full
/// weight from the start.
pub fn kl_beta(epoch: usize, kl_weight: f64, ramp_epochs: usize) -> f64 {
    if ramp_epochs == 0 {
        return kl_weight;
    }
    kl_weight * (epoch as f64 / ramp_epochs as f64).min(1.0)
}

/// `x` with the same value but gradient multiplied entrywise by `mask`.
///
/// `x.detach() + mask · (x − x.detach())`: the bracket is exactly zero, so the value is `x` to
/// the bit, while the gradient reaches `x` only through the masked path.
pub fn gate_gradient<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    mask: Tensor<B, D>,
) -> Tensor<B, D> {
    let frozen = x.clone().detach();
    frozen.clone() + mask * (x - frozen)
}

/// The objective of spec §6 for one forward pass.
///
/// `targets [B, T+Tf, N]` are spike counts; `gradient_mask` (same shape, from
/// [`CoordinatedDropout::sample`]) gates which entries of the likelihood pass gradient without
/// changing its value.
pub fn objective<B: Backend>(
    output: &Output<B>,
    targets: Tensor<B, 3>,
    gradient_mask: Option<Tensor<B, 3>>,
    beta: f64,
    gamma: f64,
    prior_v_var: f64,
    formula: VelocityKl,
) -> Loss<B> {
    let log_rates = match gradient_mask {
        Some(mask) => gate_gradient(output.log_rates.clone(), mask),
        None => output.log_rates.clone(),
    };
    let nll = poisson_nll(log_rates, targets);
    let kl = kl_divergence(output, gamma, prior_v_var, formula);
    Loss {
        total: nll.clone() + kl.clone().mul_scalar(beta),
        nll,
        kl,
        beta,
    }
}

/// Coordinated dropout: hide some held-in inputs and learn only from the hidden ones, so the
/// model cannot pass spikes from input to output unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoordinatedDropout {
    /// Probability that an input entry is kept.
    pub keep: f64,
}

/// Masks of one coordinated-dropout draw.
#[derive(Debug, Clone)]
pub struct CdMasks<B: Backend> {
    /// `[B, T, N_in]`: `1/keep` where the input entry is kept, `0` where dropped; multiply the
    /// held-in input by it.
    pub input: Tensor<B, 3>,
    /// `[B, T+Tf, N]`, 0/1: which likelihood entries pass gradient. Held-in neurons are the
    /// first `N_in` columns.
    pub gradient: Tensor<B, 3>,
}

impl CoordinatedDropout {
    /// Draws fresh masks for a batch of `batch` trials with `t_obs` observed bins of `n_heldin`
    /// neurons and `targets = [t_obs + t_fwd, n_neurons]` bins × neurons to learn from.
    ///
    /// Gradient passes through held-in observed entries that were dropped, plus a fresh
    /// Bernoulli(`1 − keep`) share of the kept ones; held-out neurons and forward bins always
    /// pass gradient.
    pub fn sample<B: Backend>(
        &self,
        [batch, t_obs, n_heldin]: [usize; 3],
        [steps, n_neurons]: [usize; 2],
        device: &B::Device,
        noise: &Noise,
    ) -> CdMasks<B> {
        let shape = [batch, t_obs, n_heldin];
        let kept = noise.keep::<B, 3>(&|| "cd_keep".into(), shape, self.keep, device);
        let also_learn = noise.keep::<B, 3>(&|| "cd_pass".into(), shape, 1.0 - self.keep, device);
        let blocked = kept.clone() * (also_learn.neg().add_scalar(1.0));
        let gradient = Tensor::<B, 3>::ones([batch, steps, n_neurons], device)
            .slice_assign(s![.., 0..t_obs, 0..n_heldin], blocked.neg().add_scalar(1.0));
        CdMasks {
            input: kept.mul_scalar(1.0 / self.keep),
            gradient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type Cpu = NdArray<f32>;
    type Ad = Autodiff<Cpu>;

    fn scalar(t: Tensor<Cpu, 1>) -> f64 {
        f64::from(t.into_scalar())
    }

    fn output(v: Tensor<Cpu, 3>, mean: [[f32; 2]; 1], logvar: [[f32; 2]; 1]) -> Output<Cpu> {
        let device = Default::default();
        let [batch, steps, _] = v.dims();
        let t = |a: [[f32; 2]; 1]| Tensor::<Cpu, 2>::from_floats(a, &device);
        Output {
            log_rates: Tensor::zeros([batch, steps, 3], &device),
            z: v.clone(),
            h: v.clone(),
            v,
            z0_mean: t(mean),
            z0_logvar: t(logvar),
            v0_mean: t([[0.0, 0.0]]),
            v0_logvar: t([[0.0, 0.0]]),
        }
    }

    #[test]
    fn kl_terms_match_closed_form_scalars() {
        let device = Default::default();
        // KL(N(1, e^0.5) ‖ N(0,1)) = ½(1 + e^0.5 − 1 − 0.5); KL(N(−2, e^−1) ‖ N(0,1)) = ½(4 + e^−1 − 1 + 1).
        let kl_z = 0.5 * (0.5f64.exp() - 0.5) + 0.5 * (4.0 + (-1.0f64).exp());
        let mean = Tensor::<Cpu, 2>::from_floats([[1.0, -2.0]], &device);
        let logvar = Tensor::<Cpu, 2>::from_floats([[0.5, -1.0]], &device);
        assert!((scalar(kl_standard_normal(mean, logvar)) - kl_z).abs() < 1e-6);

        // KL(N(v, 2γ) ‖ N(0, 0.1)) with γ = 0.55: ½[(1.1 + v²)/0.1 − 1 − ln 11].
        let per = |v: f64| 0.5 * ((1.1 + v * v) / 0.1 - 1.0 - 11f64.ln());
        let v = Tensor::<Cpu, 3>::from_floats([[[0.3, -1.0], [2.0, 0.0]]], &device);
        let want = per(0.3) + per(-1.0) + per(2.0) + per(0.0);
        assert!((scalar(kl_velocity(v.clone(), 0.55, 0.1, VelocityKl::Exact)) - want).abs() < 1e-4);

        // The full KL skips v_0 (its own term is the N(0, I) prior) and divides by B = 1.
        let out = output(v, [[1.0, -2.0]], [[0.5, -1.0]]);
        let want = kl_z + per(2.0) + per(0.0);
        assert!((scalar(kl_divergence(&out, 0.55, 0.1, VelocityKl::Exact)) - want).abs() < 1e-4);
    }

    #[test]
    fn kl_beta_ramps_then_saturates() {
        assert_eq!(kl_beta(0, 0.1, 500), 0.0);
        assert!((kl_beta(250, 0.1, 500) - 0.05).abs() < 1e-12);
        assert_eq!(kl_beta(500, 0.1, 500), 0.1);
        assert_eq!(kl_beta(9000, 0.1, 500), 0.1);
        assert_eq!(kl_beta(0, 0.1, 0), 0.1);
    }

    #[test]
    fn poisson_nll_is_mean_of_exp_minus_y_r() {
        let device = Default::default();
        let r = Tensor::<Cpu, 3>::from_floats([[[0.0, 1.0]], [[-1.0, 2.0]]], &device);
        let y = Tensor::<Cpu, 3>::from_floats([[[1.0, 0.0]], [[3.0, 2.0]]], &device);
        let e = std::f64::consts::E;
        let want = (1.0 + e + (1.0 / e + 3.0) + (e * e - 4.0)) / 4.0;
        assert!((scalar(poisson_nll(r, y)) - want).abs() < 1e-5);
    }

    #[test]
    fn cd_masks_have_spec_shapes_and_structure() {
        let device = Default::default();
        let (batch, t_obs, n_in, t_fwd, n) = (8, 10, 5, 4, 7);
        let cd = CoordinatedDropout { keep: 0.5 };
        let masks = cd.sample::<Cpu>(
            [batch, t_obs, n_in],
            [t_obs + t_fwd, n],
            &device,
            &Noise::random(),
        );
        assert_eq!(masks.input.dims(), [batch, t_obs, n_in]);
        assert_eq!(masks.gradient.dims(), [batch, t_obs + t_fwd, n]);

        let input = masks.input.clone().into_data().to_vec::<f32>().unwrap();
        assert!(input.iter().all(|&m| m == 0.0 || m == 2.0));
        let grad_in = masks
            .gradient
            .clone()
            .slice(s![.., 0..t_obs, 0..n_in])
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // Dropped inputs always pass gradient; kept ones sometimes.
        assert!(input
            .iter()
            .zip(&grad_in)
            .all(|(&m, &g)| m == 2.0 || g == 1.0));
        let kept_learning = input
            .iter()
            .zip(&grad_in)
            .filter(|(&m, &g)| m == 2.0 && g == 1.0);
        assert!(kept_learning.count() > 0);
        assert!(input
            .iter()
            .zip(&grad_in)
            .any(|(&m, &g)| m == 2.0 && g == 0.0));
        // Held-out neurons and forward bins: all ones.
        let held_out = masks.gradient.clone().slice(s![.., .., n_in..]);
        let forward = masks.gradient.slice(s![.., t_obs.., ..]);
        assert_eq!(held_out.min().into_scalar(), 1.0);
        assert_eq!(forward.min().into_scalar(), 1.0);
    }

    #[test]
    fn gradient_gating_keeps_value_and_zeroes_gradient_exactly_where_masked() {
        let device = Default::default();
        let (batch, t_obs, n_in, t_fwd, n) = (4, 6, 3, 2, 5);
        let cd = CoordinatedDropout { keep: 0.4 };
        let masks = cd.sample::<Ad>(
            [batch, t_obs, n_in],
            [t_obs + t_fwd, n],
            &device,
            &Noise::random(),
        );
        let steps = t_obs + t_fwd;
        let r = Tensor::<Ad, 3>::random(
            [batch, steps, n],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let y = Tensor::<Ad, 3>::random(
            [batch, steps, n],
            burn::tensor::Distribution::Uniform(0.0, 4.0),
            &device,
        )
        .floor();

        let plain = poisson_nll(r.clone(), y.clone());
        let gated = poisson_nll(gate_gradient(r.clone(), masks.gradient.clone()), y.clone());
        assert_eq!(
            plain.clone().into_scalar(),
            gated.clone().into_scalar(),
            "gating must not change the loss value"
        );

        let grad_plain = plain.backward();
        let grad_gated = gated.backward();
        let g_plain = r.grad(&grad_plain).unwrap();
        let g_gated = r.grad(&grad_gated).unwrap();
        let mask = masks.gradient.inner();
        // Where the mask is 1 the gradient is untouched; where it is 0 it is exactly zero.
        let expected = g_plain * mask.clone();
        assert_eq!(
            g_gated.clone().into_data().to_vec::<f32>().unwrap(),
            expected.into_data().to_vec::<f32>().unwrap()
        );
        let blocked = mask.clone().neg().add_scalar(1.0);
        assert_eq!((g_gated.clone() * blocked).abs().max().into_scalar(), 0.0);
        // The plain gradient is (e^r − y)/numel, nonzero almost surely, so zeros come from the mask.
        let open = g_gated.abs().greater_elem(0.0).float();
        assert_eq!(
            open.into_data().to_vec::<f32>().unwrap(),
            mask.into_data().to_vec::<f32>().unwrap()
        );
    }
}
