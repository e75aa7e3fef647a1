//! One step of underdamped Langevin dynamics (spec §4).

use burn::prelude::*;

/// Step size and damping of the latent dynamics.
///
/// Kept as plain numbers next to the step so the update reads exactly as the spec writes it;
/// the model draws the noise and computes the potential gradient, which keeps this testable
/// with fixed tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Langevin {
    /// Integration step `dt`.
    pub dt: f64,
    /// Damping `gamma`: the share of velocity lost per step, which also sets the noise scale.
    pub gamma: f64,
}

impl Langevin {
    /// Standard deviation of the velocity kick, `sqrt(2·gamma)` (fluctuation–dissipation).
    pub fn noise_scale(&self) -> f64 {
        (2.0 * self.gamma).sqrt()
    }

    /// Advances `(z_{t-1}, v_{t-1})` by one step, given `grad_u = dU/dz(z_{t-1})` and standard
    /// normal noise `eps`, all `[B, D]`:
    ///
    /// ```text
    /// z_t = z_{t-1} + dt · v_{t-1}
    /// v'  = v_{t-1} − dt · grad_u
    /// v_t = (1 − gamma) · v' + sqrt(2·gamma) · eps
    /// ```
    ///
    /// Both updates read the previous state, so position and velocity stay in lock-step.
    pub fn step<B: Backend>(
        &self,
        z: Tensor<B, 2>,
        v: Tensor<B, 2>,
        grad_u: Tensor<B, 2>,
        eps: Tensor<B, 2>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let z_next = z + v.clone().mul_scalar(self.dt);
        let v_half = v - grad_u.mul_scalar(self.dt);
        let v_next = v_half.mul_scalar(1.0 - self.gamma) + eps.mul_scalar(self.noise_scale());
        (z_next, v_next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type Cpu = NdArray<f32>;

    #[test]
    fn one_step_matches_hand_computation() {
        let device = Default::default();
        let t = |rows: [[f32; 2]; 1]| Tensor::<Cpu, 2>::from_floats(rows, &device);
        let langevin = Langevin {
            dt: 0.1,
            gamma: 0.5,
        };
        let (z, v) = langevin.step(
            t([[1.0, -2.0]]),
            t([[3.0, 4.0]]),
            t([[10.0, -20.0]]),
            t([[1.0, -1.0]]),
        );
        // z = [1 + 0.3, −2 + 0.4]; v' = [3 − 1, 4 + 2]; v = 0.5·v' + 1·eps = [2, 2].
        let z = z.into_data().to_vec::<f32>().unwrap();
        let v = v.into_data().to_vec::<f32>().unwrap();
        for (got, want) in z.iter().chain(&v).zip([1.3, -1.6, 2.0, 2.0]) {
            assert!((got - want).abs() < 1e-6, "z {z:?} v {v:?}");
        }
    }

    #[test]
    fn noise_scale_is_sqrt_two_gamma() {
        let langevin = Langevin {
            dt: 0.01,
            gamma: 0.55,
        };
        assert!((langevin.noise_scale() - 1.1f64.sqrt()).abs() < 1e-12);
    }
}
