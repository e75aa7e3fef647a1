//! The NLB metrics on in-memory arrays: Poisson likelihood, bits/spike, R², PSTH R² and tp corr.
//!
//! Every function takes views and leaves its inputs untouched, so a training loop can score its
//! own predictions without writing files. Rates may be f32 or f64 ([`Rate`]); all arithmetic is
//! float64, as in nlb_tools' evaluator, whose semantics these follow (spec §10).

use ndarray::{ArrayView, ArrayView2, ArrayView3, Axis, Dimension, Zip};

use super::error::MetricError;
use super::rates::{Rate, RatePair};

/// The rate that replaces an exact zero, so a zero prediction costs a large but finite penalty.
pub const ZERO_RATE: f64 = 1e-9;

/// Poisson negative log-likelihood `Σ r − n·ln r + lnΓ(n+1)` over the elements whose spike count
/// is not NaN, with zero rates replaced by [`ZERO_RATE`].
///
/// NaN spike counts mark bins outside a trial's window, so they are skipped rather than rejected;
/// a NaN or negative rate where the count is defined is a broken prediction and is an error.
pub fn poisson_nll<D: Dimension, R: Rate>(
    rates: ArrayView<'_, R, D>,
    spikes: ArrayView<'_, f64, D>,
) -> Result<f64, MetricError> {
    check_same_shape("rates vs spikes", rates.shape(), spikes.shape())?;
    let mut sum = 0.0;
    let mut bad = false;
    Zip::from(&rates).and(&spikes).for_each(|&r, &n| {
        if n.is_nan() {
            return;
        }
        let r: f64 = r.into();
        if r.is_nan() || r < 0.0 {
            bad = true;
            return;
        }
        let r = if r == 0.0 { ZERO_RATE } else { r };
        sum += r - n * r.ln() + ln_gamma(n + 1.0);
    });
    if bad {
        return Err(first_bad_rate(&rates, &spikes));
    }
    Ok(sum)
}

/// Bits per spike: how much better than a per-neuron constant rate the prediction explains the
/// spikes, `(NLL(λ) − NLL(rates)) / Σn / ln 2`.
///
/// The null rate `λ` of each neuron (last axis) is the NaN-ignoring mean of the very spikes being
/// scored, as in nlb_tools: the score is the gain over the best constant rate for these trials.
/// The `lnΓ(n+1)` terms of the two likelihoods cancel and are left out of both sums.
pub fn bits_per_spike<D: Dimension, R: Rate>(
    rates: ArrayView<'_, R, D>,
    spikes: ArrayView<'_, f64, D>,
) -> Result<f64, MetricError> {
    Ok(bps_sums(rates, spikes)?.bits_per_spike())
}

/// The sums bits/spike is made of. Every term is per neuron, so the sums of two neuron groups
/// add up to the sums of the groups joined on the neuron axis.
#[derive(Debug, Clone, Copy, Default)]
struct BpsSums {
    nll_null: f64,
    nll_model: f64,
    spikes: f64,
}

impl BpsSums {
    fn add(self, o: BpsSums) -> BpsSums {
        BpsSums {
            nll_null: self.nll_null + o.nll_null,
            nll_model: self.nll_model + o.nll_model,
            spikes: self.spikes + o.spikes,
        }
    }

    fn bits_per_spike(self) -> f64 {
        (self.nll_null - self.nll_model) / self.spikes / std::f64::consts::LN_2
    }
}

fn bps_sums<D: Dimension, R: Rate>(
    rates: ArrayView<'_, R, D>,
    spikes: ArrayView<'_, f64, D>,
) -> Result<BpsSums, MetricError> {
    check_same_shape("rates vs spikes", rates.shape(), spikes.shape())?;
    let Some(last) = spikes.ndim().checked_sub(1) else {
        return Err(MetricError::Shape {
            what: "bits/spike needs a neuron axis".into(),
            left: vec![],
            right: vec![],
        });
    };
    let n_neurons = spikes.len_of(Axis(last));
    // Per neuron: number of defined counts and their sum, which give both the null rate and the
    // whole null likelihood `Σ λ − n·ln λ = count·λ − sum·ln λ` without a logarithm per element.
    let mut sums = vec![0.0; n_neurons];
    let mut counts = vec![0usize; n_neurons];
    for lane in spikes.lanes(Axis(last)) {
        for (j, &n) in lane.iter().enumerate() {
            if !n.is_nan() {
                sums[j] += n;
                counts[j] += 1;
            }
        }
    }
    let mut out = BpsSums::default();
    for (&s, &c) in sums.iter().zip(&counts) {
        if c == 0 {
            continue;
        }
        let mean = s / c as f64;
        let lam = if mean == 0.0 { ZERO_RATE } else { mean };
        out.nll_null += c as f64 * lam - s * lam.ln();
        out.spikes += s;
    }

    let mut bad = false;
    Zip::from(rates.lanes(Axis(last)))
        .and(spikes.lanes(Axis(last)))
        .for_each(|r_lane, n_lane| {
            let mut lane_nll = 0.0;
            for (&r, &n) in r_lane.iter().zip(n_lane.iter()) {
                if n.is_nan() {
                    continue;
                }
                let r: f64 = r.into();
                if r.is_nan() || r < 0.0 {
                    bad = true;
                    continue;
                }
                let r = if r == 0.0 { ZERO_RATE } else { r };
                // Most bins hold no spike; skip the logarithm there.
                lane_nll += if n == 0.0 { r } else { r - n * r.ln() };
            }
            out.nll_model += lane_nll;
        });
    if bad {
        return Err(first_bad_rate(&rates, &spikes));
    }
    Ok(out)
}

/// fp-bps: bits/spike of the forward prediction (the bins after the observed window) over all
/// neurons, held-in then held-out, as nlb_tools scores it.
///
/// A bad rate's index counts held-out neurons after the held-in ones, as in the joined array the
/// reference scores.
pub fn fp_bps<R: Rate>(
    rates_forward: RatePair<'_, R>,
    spikes_heldin_forward: ArrayView3<'_, f64>,
    spikes_heldout_forward: ArrayView3<'_, f64>,
) -> Result<f64, MetricError> {
    let (a, b) = (
        spikes_heldin_forward.shape(),
        spikes_heldout_forward.shape(),
    );
    if a[..2] != b[..2] {
        return Err(MetricError::Shape {
            what: "spikes_heldin_forward vs spikes_heldout_forward".into(),
            left: a.to_vec(),
            right: b.to_vec(),
        });
    }
    let nh = rates_forward.n_heldin();
    let heldin = bps_sums(rates_forward.heldin, spikes_heldin_forward)?;
    let heldout = bps_sums(rates_forward.heldout, spikes_heldout_forward).map_err(|e| match e {
        MetricError::NanRate { mut index } => {
            index[2] += nh;
            MetricError::NanRate { index }
        }
        MetricError::NegativeRate { mut index, value } => {
            index[2] += nh;
            MetricError::NegativeRate { index, value }
        }
        other => other,
    })?;
    Ok(heldin.add(heldout).bits_per_spike())
}

/// Locates the first NaN or negative rate (in logical order) for the error message; only called
/// once the fast pass has seen one.
fn first_bad_rate<D: Dimension, R: Rate>(
    rates: &ArrayView<'_, R, D>,
    spikes: &ArrayView<'_, f64, D>,
) -> MetricError {
    let mut nan = None;
    for ((idx, &r), &n) in rates.indexed_iter().zip(spikes.iter()) {
        if n.is_nan() {
            continue;
        }
        let index = idx.into_pattern_vec();
        let r: f64 = r.into();
        if r.is_nan() {
            nan.get_or_insert(index);
        } else if r < 0.0 && nan.is_none() {
            return MetricError::NegativeRate { index, value: r };
        }
    }
    MetricError::NanRate {
        index: nan.unwrap_or_default(),
    }
}

trait PatternVec {
    fn into_pattern_vec(self) -> Vec<usize>;
}

impl<P: ndarray::IntoDimension> PatternVec for P {
    fn into_pattern_vec(self) -> Vec<usize> {
        self.into_dimension().slice().to_vec()
    }
}

fn dim_vec((a, b, c): (usize, usize, usize)) -> Vec<usize> {
    vec![a, b, c]
}

fn check_same_shape(what: &str, left: &[usize], right: &[usize]) -> Result<(), MetricError> {
    if left == right {
        Ok(())
    } else {
        Err(MetricError::Shape {
            what: what.into(),
            left: left.to_vec(),
            right: right.to_vec(),
        })
    }
}

/// Natural log of the gamma function (Lanczos, g = 7, 9 terms; relative error ≈ 1e-15).
///
/// Rust's `f64::ln_gamma` is still unstable, and the Poisson likelihood needs `lnΓ(n+1)` for
/// possibly non-integer counts (smoothed or averaged spikes).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin().abs()).ln() - ln_gamma(1.0 - x);
    }
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// sklearn's `r2_score` with uniform averaging over outputs (columns).
///
/// Uniform, not variance-weighted, averaging is what sklearn ≥ 0.23 and therefore the leaderboard
/// use. An output whose truth is constant scores 1 if predicted exactly and 0 otherwise, so a flat
/// channel neither crashes nor dominates the mean. Fewer than two rows give NaN, as in sklearn.
pub fn r2_score(y_true: ArrayView2<'_, f64>, y_pred: ArrayView2<'_, f64>) -> f64 {
    assert_eq!(y_true.shape(), y_pred.shape(), "r2_score: shape mismatch");
    let (n, q) = y_true.dim();
    if n < 2 || q == 0 {
        return f64::NAN;
    }
    // Row-major accumulation: the inputs are row-major and can be large (stacked PSTHs).
    let first = y_true.row(0);
    let mut sum = vec![0.0; q];
    let mut ss_res = vec![0.0; q];
    let mut constant = vec![true; q];
    for (t, p) in y_true.rows().into_iter().zip(y_pred.rows()) {
        for j in 0..q {
            let (a, b) = (t[j], p[j]);
            sum[j] += a;
            ss_res[j] += (a - b) * (a - b);
            constant[j] &= a == first[j];
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
    let mut ss_tot = vec![0.0; q];
    for t in y_true.rows() {
        for j in 0..q {
            ss_tot[j] += (t[j] - mean[j]) * (t[j] - mean[j]);
        }
    }
    (0..q)
        .map(|j| r2_from_sums(ss_res[j], if constant[j] { 0.0 } else { ss_tot[j] }))
        .sum::<f64>()
        / q as f64
}

/// One output's R² from its residual and total sums of squares, with sklearn's `force_finite`.
pub(crate) fn r2_from_sums(ss_res: f64, ss_tot: f64) -> f64 {
    match (ss_res != 0.0, ss_tot != 0.0) {
        (_, true) => 1.0 - ss_res / ss_tot,
        (true, false) => 0.0,
        (false, false) => 1.0,
    }
}

/// Per-output spread of a set of targets around their own mean, merged chunk by chunk with
/// Chan's update so it needs no second pass: the denominator of R².
#[derive(Clone)]
pub(crate) struct Spread {
    pub(crate) n: usize,
    mean: Vec<f64>,
    pub(crate) m2: Vec<f64>,
    first: Option<Vec<f64>>,
    pub(crate) constant: Vec<bool>,
}

impl Spread {
    pub(crate) fn new(q: usize) -> Self {
        Self {
            n: 0,
            mean: vec![0.0; q],
            m2: vec![0.0; q],
            first: None,
            constant: vec![true; q],
        }
    }

    pub(crate) fn push(&mut self, y: ArrayView2<'_, f64>) {
        let m = y.nrows();
        if m == 0 {
            return;
        }
        let first = self.first.get_or_insert_with(|| y.row(0).to_vec());
        for (j, (col, &first)) in y.columns().into_iter().zip(first.iter()).enumerate() {
            let c_mean = col.sum() / m as f64;
            let c_m2: f64 = col.iter().map(|v| (v - c_mean) * (v - c_mean)).sum();
            self.constant[j] &= col.iter().all(|&v| v == first);
            let total = (self.n + m) as f64;
            let delta = c_mean - self.mean[j];
            self.mean[j] += delta * m as f64 / total;
            self.m2[j] += c_m2 + delta * delta * self.n as f64 * m as f64 / total;
        }
        self.n += m;
    }

    /// R²'s denominator for output `j`: exactly zero for a constant output, as sklearn has it.
    pub(crate) fn ss_tot(&self, j: usize) -> f64 {
        if self.constant[j] {
            0.0
        } else {
            self.m2[j]
        }
    }
}

/// Pearson's r with scipy 1.7 `pearsonr` conventions: NaN if either input is constant, the sign
/// product for two points, and the result clipped to [−1, 1].
///
/// Panics if the inputs differ in length or hold fewer than two points; callers check that.
pub fn pearson_r(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson_r: length mismatch");
    let n = x.len();
    assert!(n >= 2, "pearson_r needs at least two points");
    if x.iter().all(|&v| v == x[0]) || y.iter().all(|&v| v == y[0]) {
        return f64::NAN;
    }
    if n == 2 {
        return (x[1] - x[0]).signum() * (y[1] - y[0]).signum();
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let nx = x.iter().map(|v| (v - mx) * (v - mx)).sum::<f64>().sqrt();
    let ny = y.iter().map(|v| (v - my) * (v - my)).sum::<f64>().sqrt();
    let r: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| ((a - mx) / nx) * ((b - my) / ny))
        .sum();
    r.clamp(-1.0, 1.0)
}

/// PSTH R²: how well the condition-averaged predicted rates match the true PSTHs.
///
/// * `psth` `[conditions, T, neurons]`: the target PSTH; NaN in neuron 0 marks padding rows.
/// * `eval_rates`: held-in then held-out neurons, in the PSTH's column order.
/// * `eval_cond_idx[c]`: the eval trials of condition `c`; conditions without trials are skipped.
/// * `eval_jitter`: per-trial shift in bins (dmfc), undone before averaging; `None` means 0.
///
/// Predicted means propagate NaN (a jitter that shifts padding into a scored row is an error),
/// while the target PSTH was built with NaN-skipping means.
pub fn psth_r2<R: Rate>(
    psth: ArrayView3<'_, f64>,
    eval_rates: RatePair<'_, R>,
    eval_cond_idx: &[Vec<usize>],
    eval_jitter: Option<&[i64]>,
) -> Result<f64, MetricError> {
    let (n_trials, t_len, n_neurons) = eval_rates.dim();
    if psth.len_of(Axis(1)) != t_len || psth.len_of(Axis(2)) != n_neurons {
        return Err(MetricError::Shape {
            what: "psth [conditions, T, neurons] vs eval_rates [trials, T, neurons]".into(),
            left: psth.shape().to_vec(),
            right: dim_vec(eval_rates.dim()),
        });
    }
    if eval_cond_idx.len() != psth.len_of(Axis(0)) {
        return Err(MetricError::Shape {
            what: "eval_cond_idx [conditions] vs psth [conditions, T, neurons]".into(),
            left: vec![eval_cond_idx.len()],
            right: psth.shape().to_vec(),
        });
    }
    if let Some(j) = eval_jitter {
        if j.len() != n_trials {
            return Err(MetricError::Shape {
                what: "eval_jitter [trials] vs eval_rates [trials, T, neurons]".into(),
                left: vec![j.len()],
                right: dim_vec(eval_rates.dim()),
            });
        }
    }
    // r2_score over the stacked (condition, bin) rows, accumulated condition by condition
    // instead of stacking: the residuals directly, the truth's spread merged block by block.
    let mut spread = Spread::new(n_neurons);
    let mut ss_res = vec![0.0; n_neurons];
    let mut truth = ndarray::Array2::<f64>::zeros((t_len, n_neurons));
    let mut mean = ndarray::Array2::<f64>::zeros((t_len, n_neurons));
    let mut undefined = vec![false; t_len];
    for (c, trials) in eval_cond_idx.iter().enumerate() {
        if trials.is_empty() {
            continue;
        }
        mean.fill(0.0);
        undefined.fill(false);
        for &i in trials {
            if i >= n_trials {
                return Err(MetricError::TrialIndex {
                    condition: c,
                    index: i as i64,
                    n_trials,
                });
            }
            // Row t of the shifted trial is row t − J of the original; rows shifted in from
            // outside the trial are NaN, which the plain mean propagates.
            let jit = eval_jitter.map_or(0, |j| j[i]);
            let lo = jit.clamp(0, t_len as i64) as usize;
            let hi = (t_len as i64 + jit).clamp(0, t_len as i64) as usize;
            undefined[..lo].fill(true);
            undefined[hi..].fill(true);
            if lo < hi {
                let src_lo = (lo as i64 - jit) as usize;
                for t in lo..hi {
                    let mut dst = mean.row_mut(t);
                    let dst = dst
                        .as_slice_mut()
                        .expect("a fresh array's rows are contiguous");
                    eval_rates.add_row_to(i, src_lo + t - lo, dst);
                }
            }
        }
        for (t, _) in undefined.iter().enumerate().filter(|(_, &u)| u) {
            mean.row_mut(t).fill(f64::NAN);
        }
        mean /= trials.len() as f64;
        let mut rows = 0;
        for t in 0..t_len {
            let target_row = psth.slice(ndarray::s![c, t, ..]);
            if target_row[0].is_nan() {
                continue;
            }
            if let Some(j) = target_row.iter().position(|v| !v.is_finite()) {
                return Err(MetricError::NonFinite {
                    what: "psth",
                    index: vec![c, t, j],
                });
            }
            let pred_row = mean.row(t);
            if pred_row.iter().any(|v| !v.is_finite()) {
                return Err(MetricError::NanPrediction {
                    condition: c,
                    bin: t,
                });
            }
            for ((res, &a), &b) in ss_res.iter_mut().zip(&target_row).zip(&pred_row) {
                *res += (a - b) * (a - b);
            }
            truth.row_mut(rows).assign(&target_row);
            rows += 1;
        }
        spread.push(truth.slice(ndarray::s![..rows, ..]));
    }
    if spread.n == 0 {
        return Err(MetricError::TooFewRows {
            what: "psth R2 (PSTH rows of conditions with eval trials)",
            n: 0,
            need: 1,
        });
    }
    if spread.n < 2 || n_neurons == 0 {
        return Ok(f64::NAN);
    }
    Ok((0..n_neurons)
        .map(|j| r2_from_sums(ss_res[j], spread.ss_tot(j)))
        .sum::<f64>()
        / n_neurons as f64)
}

/// tp corr (dmfc_rsg): the mean over conditions of the correlation between a trial's neural speed
/// and its produced interval `tp`.
///
/// * `eval_spikes_heldout` `[trials, T, held-out neurons]`: only its neuron 0 is used, as the mask
///   of valid time bins (the NaN padding outside set→go).
/// * `eval_rates`: all neurons, held-in then held-out.
/// * `eval_behavior` `[trials, ≥5]`: columns is_eye, theta, is_short, ts, tp; all-NaN rows are
///   outlier trials and are ignored.
///
/// Speed is the mean Euclidean norm of the rate change between consecutive valid bins. Conditions
/// are the distinct (is_eye, theta, is_short) rows; each needs at least two trials.
pub fn tp_corr<R: Rate>(
    eval_spikes_heldout: ArrayView3<'_, f64>,
    eval_rates: RatePair<'_, R>,
    eval_behavior: ArrayView2<'_, f64>,
) -> Result<f64, MetricError> {
    let (n_trials, t_len, _) = eval_rates.dim();
    let sp = eval_spikes_heldout.shape();
    if sp[0] != n_trials || sp[1] != t_len || sp[2] == 0 {
        return Err(MetricError::Shape {
            what: "eval_spikes_heldout [trials, T, ≥1] vs eval_rates [trials, T, neurons]".into(),
            left: sp.to_vec(),
            right: dim_vec(eval_rates.dim()),
        });
    }
    let bp = eval_behavior.shape();
    if bp[0] != n_trials || bp[1] < 5 {
        return Err(MetricError::Shape {
            what: "eval_behavior [trials, ≥5] vs eval_rates [trials, T, neurons]".into(),
            left: bp.to_vec(),
            right: dim_vec(eval_rates.dim()),
        });
    }
    let speeds: Vec<f64> = (0..n_trials)
        .map(|i| {
            let valid: Vec<usize> = (0..t_len)
                .filter(|&t| !eval_spikes_heldout[[i, t, 0]].is_nan())
                .collect();
            let steps = valid.len().saturating_sub(1);
            let total: f64 = valid
                .windows(2)
                .map(|w| {
                    let (a_in, a_out) = eval_rates.row(i, w[0]);
                    let (b_in, b_out) = eval_rates.row(i, w[1]);
                    a_in.iter()
                        .chain(a_out.iter())
                        .zip(b_in.iter().chain(b_out.iter()))
                        .map(|(&x, &y)| {
                            let d = y.into() - x.into();
                            d * d
                        })
                        .sum::<f64>()
                        .sqrt()
                })
                .sum();
            total / steps as f64
        })
        .collect();

    let key = |i: usize| -> [f64; 3] {
        [
            eval_behavior[[i, 0]],
            eval_behavior[[i, 1]],
            eval_behavior[[i, 2]],
        ]
    };
    let mut conditions: Vec<[f64; 3]> = Vec::new();
    for i in 0..n_trials {
        let k = key(i);
        if k.iter().all(|v| v.is_nan()) {
            continue;
        }
        if k.iter().any(|v| v.is_nan()) {
            return Err(MetricError::TooFewTrials {
                condition: k.to_vec(),
                n: 0,
            });
        }
        if !conditions.contains(&k) {
            conditions.push(k);
        }
    }
    conditions.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut corrs = Vec::with_capacity(conditions.len());
    for cond in &conditions {
        let members: Vec<usize> = (0..n_trials).filter(|&i| key(i) == *cond).collect();
        if members.len() < 2 {
            return Err(MetricError::TooFewTrials {
                condition: cond.to_vec(),
                n: members.len(),
            });
        }
        let x: Vec<f64> = members.iter().map(|&i| speeds[i]).collect();
        let y: Vec<f64> = members.iter().map(|&i| eval_behavior[[i, 4]]).collect();
        corrs.push(pearson_r(&x, &y));
    }
    Ok(corrs.iter().sum::<f64>() / corrs.len() as f64)
}

#[cfg(test)]
mod tests;
