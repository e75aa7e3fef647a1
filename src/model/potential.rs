//! The potential `U(z)` of locally coupled oscillators (spec §3) and its closed-form gradient.
//!
//! The latent `z ∈ R^D` is read channel-major as `C` channels × `P = D / C` positions, so flat
//! index `c * P + i` holds `z[c, i]`. A learned kernel `K[C, C, 3]`, normalised per length-3
//! vector, couples each position to its two neighbours across all channels.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::conv1d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Distribution;

/// Floor on the L2 norm of each kernel vector, so normalising a (near-)zero vector stays finite.
const NORM_FLOOR: f64 = 1e-12;

/// Width of the coupling kernel: a position talks to itself and its two neighbours.
const KERNEL_WIDTH: usize = 3;

/// The learned coupling kernel of the oscillator potential.
///
/// Only the kernel is a parameter; the gradient is a fixed linear function of it, so the model
/// can assemble the gradient operator once per forward pass and reuse it at every step.
#[derive(Module, Debug)]
pub struct Potential<B: Backend> {
    /// Raw kernel `K[C, C, 3]`; the potential only ever sees its per-vector normalisation.
    pub kernel: Param<Tensor<B, 3>>,
}

impl<B: Backend> Potential<B> {
    /// Draws `K` from `N(0, 1)` with the backend's RNG (spec §3), so a seeded backend gives a
    /// reproducible kernel; `zeros` starts it at zero as the release does (its first gradient
    /// is then ~1e12 and Adam's first step sets every entry to ±1/√3 for good).
    pub fn init(channels: usize, zeros: bool, device: &B::Device) -> Self {
        let shape = [channels, channels, KERNEL_WIDTH];
        let kernel = if zeros {
            Tensor::zeros(shape, device)
        } else {
            Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
        };
        Self {
            kernel: Param::from_tensor(kernel),
        }
    }

    /// Number of channels `C`.
    pub fn channels(&self) -> usize {
        self.kernel.dims()[0]
    }

    /// `Kn`: each `K[c, c', :]` divided by its L2 norm (floored at 1e-12), which bounds the
    /// coupling strength whatever the optimiser does to `K`.
    ///
    /// The floor is applied to the squared norm before the root, which gives the same values
    /// and, below the floor, the gradient of `K / 1e-12` (PyTorch's `F.normalize`) rather than
    /// the `0 · ∞` of differentiating a root at zero.
    pub fn normalized_kernel(&self) -> Tensor<B, 3> {
        let kernel = self.kernel.val();
        let norm = kernel
            .clone()
            .powi_scalar(2)
            .sum_dim(2)
            .clamp_min(NORM_FLOOR * NORM_FLOOR)
            .sqrt();
        kernel / norm
    }

    /// `U(z)` for a batch `z [B, D]`, computed literally as in spec §3 (a zero-padded width-3
    /// convolution, channel sums, dot product), so it is an independent check of [`Self::grad`].
    /// Returns `[B]`.
    pub fn energy(&self, z: Tensor<B, 2>) -> Tensor<B, 1> {
        let [batch, latent] = z.dims();
        let channels = self.channels();
        let positions = latent / channels;
        let z = z.reshape([batch, channels, positions]);
        let y = conv1d(
            z.clone(),
            self.normalized_kernel(),
            None,
            ConvOptions::new([1], [1], [1], 1),
        );
        let y_sum = y.sum_dim(1);
        let s = z.sum_dim(1);
        (y_sum * s).sum_dim(2).reshape([batch])
    }

    /// `dU/dz` for a batch `z [B, D]` in closed form; see [`Self::grad_operator`].
    pub fn grad(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let latent = z.dims()[1];
        z.matmul(self.grad_operator(latent))
    }

    /// The symmetric `[D, D]` matrix `M` with `dU/dz = z · M`, built from `Kn` with
    /// differentiable ops so training reaches `K` through it.
    ///
    /// `U` is a quadratic form, so spec §3's closed form
    /// `dU/dz[c2, j] = Y[j] + Σ_k A[c2, k] · s[j − k + 1]` (with `A[c', k] = Σ_c Kn[c, c', k]`)
    /// is linear in `z`. Writing `Y = z · W` with `W[(c', m), j] = A[c', m − j + 1]` and
    /// `s = z · S` with `S[(c, i), j] = δ(i, j)`, both terms together are
    /// `z · (W Sᵀ + S Wᵀ)`. Assembling that matrix once per forward pass turns each Langevin
    /// step's gradient into one `[B, D] × [D, D]` matmul, the cheapest form in the recurrent loop.
    pub fn grad_operator(&self, latent: usize) -> Tensor<B, 2> {
        let channels = self.channels();
        let positions = latent / channels;
        let device = self.kernel.device();
        let column_sums = self
            .normalized_kernel()
            .sum_dim(0)
            .reshape([channels, KERNEL_WIDTH]);
        let w = column_sums
            .matmul(shift_stack::<B>(positions, &device))
            .reshape([latent, positions]);
        let q = w.matmul(channel_sum::<B>(channels, positions, &device).transpose());
        q.clone() + q.transpose()
    }
}

/// Constant `[3, P·P]` with row `k` the flattened `P × P` matrix `[m == j + k − 1]`: it places
/// kernel tap `k` on the diagonal it couples (zero padding falls out of the missing entries).
fn shift_stack<B: Backend>(positions: usize, device: &B::Device) -> Tensor<B, 2> {
    let mut data = vec![0.0f32; KERNEL_WIDTH * positions * positions];
    for k in 0..KERNEL_WIDTH {
        for j in 0..positions {
            if let Some(m) = (j + k).checked_sub(1).filter(|&m| m < positions) {
                data[k * positions * positions + m * positions + j] = 1.0;
            }
        }
    }
    Tensor::from_data(
        TensorData::new(data, [KERNEL_WIDTH, positions * positions]),
        device,
    )
}

/// Constant `[C·P, P]` that sums channels: `z · S = s`.
fn channel_sum<B: Backend>(channels: usize, positions: usize, device: &B::Device) -> Tensor<B, 2> {
    let mut data = vec![0.0f32; channels * positions * positions];
    for c in 0..channels {
        for i in 0..positions {
            data[(c * positions + i) * positions + i] = 1.0;
        }
    }
    Tensor::from_data(
        TensorData::new(data, [channels * positions, positions]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type Cpu = NdArray<f32>;

    fn potential(kernel: Vec<f32>, channels: usize) -> Potential<Cpu> {
        let device = Default::default();
        let kernel = Tensor::<Cpu, 1>::from_floats(kernel.as_slice(), &device).reshape([
            channels,
            channels,
            KERNEL_WIDTH,
        ]);
        Potential {
            kernel: Param::from_tensor(kernel),
        }
    }

    fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// Spec §3's gradient formula with plain loops in f64, as a reference for the tensor code.
    fn reference_grad(kn: &[f64], z: &[f64], channels: usize) -> Vec<f64> {
        let positions = z.len() / channels;
        let at = |c: usize, i: isize| -> f64 {
            if i < 0 || i >= positions as isize {
                0.0
            } else {
                z[c * positions + i as usize]
            }
        };
        let s = |i: isize| (0..channels).map(|c| at(c, i)).sum::<f64>();
        let kn_at = |c: usize, c2: usize, k: usize| kn[(c * channels + c2) * KERNEL_WIDTH + k];
        let y_sum = |j: isize| {
            let mut total = 0.0;
            for c in 0..channels {
                for c2 in 0..channels {
                    for k in 0..KERNEL_WIDTH {
                        total += kn_at(c, c2, k) * at(c2, j + k as isize - 1);
                    }
                }
            }
            total
        };
        let mut grad = vec![0.0; z.len()];
        for c2 in 0..channels {
            for j in 0..positions {
                let ji = j as isize;
                let mut g = y_sum(ji);
                for k in 0..KERNEL_WIDTH {
                    let a: f64 = (0..channels).map(|c| kn_at(c, c2, k)).sum();
                    g += a * s(ji - k as isize + 1);
                }
                grad[c2 * positions + j] = g;
            }
        }
        grad
    }

    #[test]
    fn energy_matches_hand_quadratic_form_single_channel() {
        // Kn = [0.6, 0, 0.8]: U = 1.4·z0·z1 + 1.4·z1·z2 = 11.2 at z = [1, 2, 3].
        let p = potential(vec![3.0, 0.0, 4.0], 1);
        let device = Default::default();
        let z = Tensor::<Cpu, 2>::from_floats([[1.0, 2.0, 3.0]], &device);
        let u = values(p.energy(z.clone()));
        assert!((u[0] - 11.2).abs() < 1e-5, "U = {}", u[0]);
        let g = values(p.grad(z));
        for (got, want) in g.iter().zip([2.8, 5.6, 2.8]) {
            assert!((got - want).abs() < 1e-5, "grad {g:?}");
        }
    }

    #[test]
    fn energy_matches_hand_quadratic_form_two_channels() {
        // Every Kn vector is [0, 1, 0]: y[c, i] = s[i], Y = 2s, U = 2·Σ s², dU/dz[c, j] = 4·s[j].
        let p = potential([0.0, 5.0, 0.0].repeat(4), 2);
        let device = Default::default();
        let z = Tensor::<Cpu, 2>::from_floats([[1.0, 2.0, 3.0, 4.0]], &device);
        let u = values(p.energy(z.clone()));
        assert!((u[0] - 104.0).abs() < 1e-4, "U = {}", u[0]);
        let g = values(p.grad(z));
        assert_eq!(g, vec![16.0, 24.0, 16.0, 24.0]);
    }

    #[test]
    fn kernel_vectors_have_unit_norm() {
        let device = Default::default();
        let p = Potential::<Cpu>::init(4, false, &device);
        let norms = values(p.normalized_kernel().powi_scalar(2).sum_dim(2));
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
    }

    #[test]
    fn grad_matches_spec_formula_and_finite_differences() {
        let device = Default::default();
        let (channels, latent, batch) = (4, 24, 3);
        let p = Potential::<Cpu>::init(channels, false, &device);
        let z = Tensor::<Cpu, 2>::random([batch, latent], Distribution::Normal(0.0, 1.0), &device);
        let grad = values(p.grad(z.clone()));

        let kn: Vec<f64> = values(p.normalized_kernel())
            .into_iter()
            .map(f64::from)
            .collect();
        let z_host = values(z.clone());
        for b in 0..batch {
            let row: Vec<f64> = z_host[b * latent..(b + 1) * latent]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let want = reference_grad(&kn, &row, channels);
            for (i, w) in want.iter().enumerate() {
                let got = f64::from(grad[b * latent + i]);
                assert!(
                    (got - w).abs() < 1e-4 * (1.0 + w.abs()),
                    "b{b} i{i}: {got} vs {w}"
                );
            }
        }

        // Central differences of the literal energy. U is quadratic, so the central difference
        // is exact up to f32 rounding of U (|U| ~ 10, eps 1e-2 → error ~ 1e-6·10/1e-2 = 1e-3).
        let eps = 1e-2f32;
        for i in 0..latent {
            let mut bump = vec![0.0f32; batch * latent];
            for b in 0..batch {
                bump[b * latent + i] = eps;
            }
            let bump =
                Tensor::<Cpu, 1>::from_floats(bump.as_slice(), &device).reshape([batch, latent]);
            let up = values(p.energy(z.clone() + bump.clone()));
            let down = values(p.energy(z.clone() - bump));
            for b in 0..batch {
                let fd = (up[b] - down[b]) / (2.0 * eps);
                let got = grad[b * latent + i];
                assert!(
                    (fd - got).abs() < 1e-2 * (1.0 + got.abs()),
                    "b{b} i{i}: finite difference {fd} vs closed form {got}"
                );
            }
        }
    }

    #[test]
    fn grad_operator_is_symmetric() {
        let device = Default::default();
        let p = Potential::<Cpu>::init(4, false, &device);
        let m = p.grad_operator(16);
        let diff = values((m.clone() - m.transpose()).abs().max());
        assert!(diff[0] < 1e-6);
    }

    #[test]
    fn a_zero_kernel_has_the_releases_finite_first_gradient() {
        use burn::backend::Autodiff;
        type Ad = Autodiff<Cpu>;
        let device = Default::default();
        let p = Potential::<Ad>::init(4, true, &device);
        let kn = p.normalized_kernel();
        assert_eq!(kn.clone().abs().max().into_scalar(), 0.0);
        let w = Tensor::<Ad, 3>::random([4, 4, 3], Distribution::Normal(0.0, 1.0), &device);
        let grads = (kn * w).sum().backward();
        let g = p.kernel.grad(&grads).unwrap();
        let g_max = g.abs().max().into_scalar();
        assert!(g_max.is_finite() && g_max > 1e10, "{g_max}");
    }
}
