//! The baseline's spike smoothing: nlb_tools' `smooth_spk` at the split's bin width.

/// A kernel the baseline cannot use, with the numbers that made it so.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error("kern_sd {kern_sd_ms} ms is under one {bin_ms} ms bin: the reference truncates σ to whole bins, which would be 0")]
    TooNarrow { kern_sd_ms: f64, bin_ms: f64 },
    #[error("kern_sd must be a positive number of ms, got {0}")]
    Invalid(f64),
}

/// The reference's Gaussian smoothing window in bins.
///
/// Built as nlb_tools builds it, quirks included, because held-in rates are compared with the
/// reference's to float32 precision: the length is `trunc(6·kern_sd/bw)` but σ is truncated on its
/// own (`trunc(kern_sd/bw)`, so 50 ms at 20 ms gives 15 taps with σ = 2, not 2.5), and an even
/// length puts the centre between two taps.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianKernel {
    /// Normalised to sum 1, so smoothing keeps spikes per bin.
    pub weights: Vec<f64>,
    /// σ in bins after truncation.
    pub sigma_bins: f64,
}

impl GaussianKernel {
    pub fn new(kern_sd_ms: f64, bin_ms: f64) -> Result<Self, KernelError> {
        if !(kern_sd_ms.is_finite() && kern_sd_ms > 0.0) {
            return Err(KernelError::Invalid(kern_sd_ms));
        }
        let len = ((6.0 * kern_sd_ms) / bin_ms).trunc() as usize;
        let sigma = (kern_sd_ms / bin_ms).trunc();
        if sigma < 1.0 || len == 0 {
            return Err(KernelError::TooNarrow { kern_sd_ms, bin_ms });
        }
        // scipy.signal.windows.gaussian(M, std): exp(−n²/(2σ²)) for n = k − (M−1)/2.
        let centre = (len as f64 - 1.0) / 2.0;
        let sig2 = 2.0 * sigma * sigma;
        let mut weights: Vec<f64> = (0..len)
            .map(|k| {
                let n = k as f64 - centre;
                (-(n * n) / sig2).exp()
            })
            .collect();
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Ok(Self {
            weights,
            sigma_bins: sigma,
        })
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Smooths every trial × neuron of a `[trials, bins, neurons]` row-major tensor along time,
    /// in numpy's `convolve(x, w, 'same')` mode: `y[n] = Σ_k x[k]·w[n + (M−1)//2 − k]`.
    ///
    /// Requires `bins ≥ M` (true of every NLB config): numpy would otherwise return `M` samples,
    /// which no longer line up with the trial. Spike counts are mostly zero, so the sum is
    /// scattered from the non-zero inputs; each output still adds its terms in ascending `k`,
    /// the order of the direct sum.
    pub fn smooth(&self, x: &[f32], bins: usize, neurons: usize) -> Vec<f64> {
        assert!(
            bins >= self.len(),
            "trial shorter than the smoothing kernel"
        );
        let w = &self.weights;
        let off = (w.len() - 1) / 2;
        let mut out = vec![0.0f64; x.len()];
        let trial_len = bins * neurons;
        if trial_len == 0 {
            return out;
        }
        for (src, dst) in x.chunks(trial_len).zip(out.chunks_mut(trial_len)) {
            for k in 0..bins {
                // Outputs n with 0 ≤ n + off − k < M.
                let lo = k.saturating_sub(off);
                let hi = (k + w.len() - off).min(bins);
                for (j, &v) in src[k * neurons..(k + 1) * neurons].iter().enumerate() {
                    if v == 0.0 {
                        continue;
                    }
                    let v = f64::from(v);
                    for n in lo..hi {
                        dst[n * neurons + j] += v * w[n + off - k];
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_the_reference_quirks() {
        let k = GaussianKernel::new(50.0, 20.0).unwrap();
        assert_eq!((k.len(), k.sigma_bins), (15, 2.0));
        let k = GaussianKernel::new(50.0, 5.0).unwrap();
        assert_eq!((k.len(), k.sigma_bins), (60, 10.0));
        assert!((k.weights.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // Even length: symmetric about the gap between taps 29 and 30.
        assert_eq!(k.weights[29], k.weights[30]);
        assert_eq!(k.weights[0], k.weights[59]);
        let k = GaussianKernel::new(30.0, 20.0).unwrap();
        assert_eq!((k.len(), k.sigma_bins), (9, 1.0));
        assert!(matches!(
            GaussianKernel::new(10.0, 20.0),
            Err(KernelError::TooNarrow { .. })
        ));
        assert!(GaussianKernel::new(f64::NAN, 5.0).is_err());
    }

    #[test]
    fn same_mode_matches_numpy() {
        // np.convolve([0,0,0,0,0,1,0,0,0,0], [1,2,3,4], 'same') = [0,0,0,0,1,2,3,4,0,0]
        let k = GaussianKernel {
            weights: vec![1.0, 2.0, 3.0, 4.0],
            sigma_bins: 1.0,
        };
        let mut x = vec![0.0f32; 10];
        x[5] = 1.0;
        assert_eq!(
            k.smooth(&x, 10, 1),
            vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]
        );
        // np.convolve([1,0,0,0,0,0,0,2], [1,2,3], 'same') = [2,3,0,0,0,0,2,4]: edges are cut.
        let k = GaussianKernel {
            weights: vec![1.0, 2.0, 3.0],
            sigma_bins: 1.0,
        };
        let x = [1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        assert_eq!(
            k.smooth(&x, 8, 1),
            vec![2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 2.0, 4.0]
        );
    }

    #[test]
    fn neurons_and_trials_are_smoothed_separately() {
        let k = GaussianKernel {
            weights: vec![0.25, 0.5, 0.25],
            sigma_bins: 1.0,
        };
        // 2 trials × 3 bins × 2 neurons; neuron 1 of trial 0 fires in bin 1 only.
        let x = [
            0.0, 0.0, 0.0, 4.0, 0.0, 0.0, /* trial 1 */ 8.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let y = k.smooth(&x, 3, 2);
        assert_eq!(&y[..6], &[0.0, 1.0, 0.0, 2.0, 0.0, 1.0]);
        assert_eq!(&y[6..], &[4.0, 0.0, 2.0, 0.0, 0.0, 0.0]);
    }
}
