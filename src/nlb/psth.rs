//! Peri-stimulus time histograms of the evaluation targets (reference §8, PSTH).
//!
//! The reference smooths a dense 1 ms copy of every spike column of the whole session. We only
//! need smoothed values inside PSTH windows, so each window's bins are computed straight from the
//! spikes near it: a spike adds its kernel mass to the bins it reaches. The sums are the same
//! (up to summation order, ~1e-16).

use std::collections::BTreeMap;

use super::dataset::PsthParams;
use super::session::{Intervals, UnitGroup};
use super::tensors::{Binned, Result, Tensor, TensorError};
use super::windows::{cut, MissingField, TrialWindow, WindowCut};

/// The PSTH tensor and each condition's trial positions in the train and eval tensors.
pub struct Psth {
    pub psth: Tensor<f32>,
    pub eval_cond_idx: Vec<Vec<i32>>,
    pub train_cond_idx: Vec<Vec<i32>>,
}

/// Gaussian smoothing kernel of nlb_tools: `M = trunc(6σ)` taps, centre between two samples.
struct Kernel {
    taps: Vec<f64>,
    /// "same"-mode offset `(M−1)//2`.
    offset: i64,
    /// `bin_sums[d + q − 1]` = Σ_{i<q} taps[d + i] (taps zero outside), for bins fully in one run.
    bin_sums: Vec<f64>,
    q: i64,
}

impl Kernel {
    fn new(sd_ms: i64, q: i64) -> Kernel {
        let sigma = sd_ms as f64;
        let m = (6.0 * sigma).trunc() as i64;
        let centre = (m - 1) as f64 / 2.0;
        let raw: Vec<f64> = (0..m)
            .map(|n| (-0.5 * ((n as f64 - centre) / sigma).powi(2)).exp())
            .collect();
        let sum: f64 = raw.iter().sum();
        let taps: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let tap = |i: i64| {
            if (0..m).contains(&i) {
                taps[i as usize]
            } else {
                0.0
            }
        };
        let bin_sums = (-(q - 1)..m)
            .map(|d| (0..q).map(|i| tap(d + i)).sum())
            .collect();
        Kernel {
            taps,
            offset: (m - 1) / 2,
            bin_sums,
            q,
        }
    }

    fn len(&self) -> i64 {
        self.taps.len() as i64
    }

    /// Smoothed value of 1 ms row `n` (which must be valid), from spikes in its run only.
    fn row(&self, spikes: &[i64], run: (i64, i64), n: i64) -> f64 {
        let lo = (n + self.offset - self.len() + 1).max(run.0);
        let hi = (n + self.offset).min(run.1 - 1);
        let from = spikes.partition_point(|&k| k < lo);
        spikes[from..]
            .iter()
            .take_while(|&&k| k <= hi)
            .map(|&k| self.taps[(n + self.offset - k) as usize])
            .sum()
    }

    /// Smoothed, resampled values of one unit over bins `first..first+out.len()`.
    fn bins(&self, spikes: &[i64], valid: &Intervals, len_ms: i64, first: i64, out: &mut [f64]) {
        let q = self.q;
        let last = first + out.len() as i64;
        // Fast path: every row of the bins and every spike that reaches them lie in one run.
        let lo = first * q + self.offset - self.len() + 1;
        let hi = last * q - 1 + self.offset;
        let need_lo = lo.max(0);
        let need_hi = (last * q).max((hi + 1).min(len_ms));
        let fast = last * q <= len_ms
            && valid
                .run(first * q)
                .is_some_and(|(a, b)| a <= need_lo && need_hi <= b);
        if fast {
            out.fill(0.0);
            let from = spikes.partition_point(|&k| k < lo);
            for &k in spikes[from..].iter().take_while(|&&k| k <= hi) {
                // Bins j with d = jq + offset − k in [−(q−1), M−1].
                let j_lo = super::time::ceil_div(k - self.offset - q + 1, q).max(first);
                let j_hi =
                    super::time::floor_div(k - self.offset + self.len() - 1, q).min(last - 1);
                for j in j_lo..=j_hi {
                    let d = j * q + self.offset - k;
                    out[(j - first) as usize] += self.bin_sums[(d + q - 1) as usize];
                }
            }
            return;
        }
        for (i, v) in out.iter_mut().enumerate() {
            let j = first + i as i64;
            if !valid.contains(j * q) {
                *v = f64::NAN;
                continue;
            }
            *v = (j * q..((j + 1) * q).min(len_ms))
                .filter_map(|n| valid.run(n).map(|run| self.row(spikes, run, n)))
                .sum();
        }
    }
}

/// Condition tuples: sorted, unique, over trials not ignored, without NaN fields.
fn conditions(fields: &[&[f64]], ignore: &[bool]) -> Vec<Vec<f64>> {
    let mut conds: Vec<Vec<f64>> = (0..ignore.len())
        .filter(|&r| !ignore[r])
        .map(|r| fields.iter().map(|f| f[r]).collect::<Vec<f64>>())
        .filter(|c| c.iter().all(|v| !v.is_nan()))
        .collect();
    conds.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    conds.dedup();
    conds
}

/// Positions, within the list of `mask` trials that have an align time, of the given trials.
fn positions(mask: &[bool], has_align: &[bool], members: &[usize]) -> Vec<i32> {
    let mut pos = vec![-1i32; mask.len()];
    let mut next = 0;
    for r in 0..mask.len() {
        if mask[r] && has_align[r] {
            pos[r] = next;
            next += 1;
        }
    }
    let mut out: Vec<i32> = members
        .iter()
        .filter(|&&r| pos[r] >= 0)
        .map(|&r| pos[r])
        .collect();
    out.sort_unstable();
    out
}

/// Builds the PSTHs and condition indices of a split's target.
pub fn build(
    binned: &Binned<'_>,
    params: &PsthParams,
    train_mask: &[bool],
    eval_mask: &[bool],
    ignore: &[bool],
) -> Result<Psth> {
    let session = binned.session;
    let table = &session.trials;
    let q = binned.bw.ms();
    let fields = params
        .cond_fields
        .iter()
        .map(|f| table.num(f).ok_or_else(|| MissingField(f.to_string())))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let skipped: Vec<bool> = if params.skip_outliers {
        let o = table
            .num("is_outlier")
            .ok_or_else(|| MissingField("is_outlier".into()))?;
        o.iter().map(|&v| v == 1.0).collect()
    } else {
        vec![false; table.len]
    };
    let align_field = params
        .window
        .align_field
        .unwrap_or(params.window.start_field);
    let has_align: Vec<bool> = table
        .time(align_field)
        .ok_or_else(|| MissingField(align_field.into()))?
        .iter()
        .map(Option::is_some)
        .collect();
    let kernel = Kernel::new(params.kern_sd, q);
    let groups = [&session.heldin, &session.heldout];
    let n_cols = session.heldin.len() + session.heldout.len();

    let mut psths: Vec<Vec<f64>> = Vec::new();
    let mut eval_idx = Vec::new();
    let mut train_idx = Vec::new();
    for cond in conditions(&fields, ignore) {
        let member: Vec<bool> = (0..table.len)
            .map(|r| !ignore[r] && !skipped[r] && fields.iter().zip(&cond).all(|(f, &c)| f[r] == c))
            .collect();
        if !member.iter().any(|&m| m) {
            continue;
        }
        let spec = WindowCut {
            window: params.window,
            align_override: None,
            range_override: None,
        };
        let windows = cut(table, &spec, &member, binned.bw.ns(), binned.n_bins)?;
        if windows.is_empty() {
            continue;
        }
        let mean_len = windows.iter().map(|w| w.len as f64).sum::<f64>() / windows.len() as f64;
        let kept: Vec<TrialWindow> = windows
            .into_iter()
            .filter(|w| w.len as f64 >= 0.8 * mean_len)
            .collect();
        let min_len = kept.iter().map(|w| w.len).min().unwrap_or(0) as usize;
        let rows = mean_by_align_time(&kernel, &groups, session.len_ms, &kept, q, n_cols);
        let take = min_len.min(rows.len());
        let rows = if params.pad_front {
            rows[rows.len() - take..].to_vec()
        } else {
            rows[..take].to_vec()
        };
        psths.push(rows.concat());
        let members: Vec<usize> = kept.iter().map(|w| w.trial).collect();
        eval_idx.push(positions(eval_mask, &has_align, &members));
        train_idx.push(positions(train_mask, &has_align, &members));
    }
    let lmax = match params.seg_len {
        Some(ms) => (ms as f64 / q as f64).round_ties_even() as usize,
        None => psths
            .iter()
            .map(|p| p.len() / n_cols.max(1))
            .max()
            .unwrap_or(0),
    };
    let mut data = vec![f32::NAN; psths.len() * lmax * n_cols];
    for (c, p) in psths.iter().enumerate() {
        let len = (p.len() / n_cols.max(1)).min(lmax);
        let start = if params.pad_front { lmax - len } else { 0 };
        for (i, &v) in p.iter().take(len * n_cols).enumerate() {
            data[(c * lmax + start) * n_cols + i] = v as f32;
        }
    }
    if psths.is_empty() {
        return Err(TensorError::Ragged(
            "no PSTH condition has any trial".into(),
        ));
    }
    Ok(Psth {
        psth: Tensor::new(data, vec![psths.len(), lmax, n_cols]),
        eval_cond_idx: eval_idx,
        train_cond_idx: train_idx,
    })
}

/// NaN-skipping mean over trials of the smoothed rates, per align time (ascending).
fn mean_by_align_time(
    kernel: &Kernel,
    groups: &[&UnitGroup],
    len_ms: i64,
    windows: &[TrialWindow],
    q: i64,
    n_cols: usize,
) -> Vec<Vec<f64>> {
    let mut acc: BTreeMap<i64, (Vec<f64>, Vec<u32>)> = BTreeMap::new();
    let mut buf = Vec::new();
    for w in windows {
        buf.resize(w.len as usize, 0.0);
        let mut col = 0;
        for group in groups {
            for u in 0..group.len() {
                kernel.bins(&group.spikes[u], &group.valid[u], len_ms, w.first, &mut buf);
                for (i, &v) in buf.iter().enumerate() {
                    let t = (w.first + i as i64) * q * super::time::NS_PER_MS - w.align_ceil;
                    let (sum, count) = acc
                        .entry(t)
                        .or_insert_with(|| (vec![0.0; n_cols], vec![0; n_cols]));
                    if !v.is_nan() {
                        sum[col] += v;
                        count[col] += 1;
                    }
                }
                col += 1;
            }
        }
    }
    acc.into_values()
        .map(|(sum, count)| {
            sum.iter()
                .zip(&count)
                .map(|(&s, &c)| if c == 0 { f64::NAN } else { s / f64::from(c) })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_reference_shape() {
        let k = Kernel::new(50, 5);
        assert_eq!(k.len(), 300);
        assert_eq!(k.offset, 149);
        assert!((k.taps.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Centre falls between taps 149 and 150.
        assert!((k.taps[149] - k.taps[150]).abs() < 1e-15);
    }

    #[test]
    fn fast_path_equals_row_by_row_smoothing() {
        let k = Kernel::new(10, 5);
        let spikes = vec![100, 130, 131, 200, 260, 400];
        let valid = Intervals(vec![(0, 1000)]);
        let mut fast = vec![0.0; 20];
        k.bins(&spikes, &valid, 1000, 20, &mut fast);
        for (i, v) in fast.iter().enumerate() {
            let j = 20 + i as i64;
            let slow: f64 = (j * 5..j * 5 + 5)
                .map(|n| k.row(&spikes, (0, 1000), n))
                .sum();
            assert!((v - slow).abs() < 1e-14, "bin {j}: {v} vs {slow}");
        }
    }

    #[test]
    fn smoothing_stays_inside_observed_runs() {
        let k = Kernel::new(10, 5);
        let spikes = vec![95, 105];
        let valid = Intervals(vec![(0, 100), (100, 1000)]);
        let merged = Intervals(vec![(0, 1000)]);
        let mut split = vec![0.0; 4];
        let mut whole = vec![0.0; 4];
        k.bins(&spikes, &valid, 1000, 20, &mut split);
        k.bins(&spikes, &merged, 1000, 20, &mut whole);
        // Row 100's run starts at 100, so the spike at 95 does not reach it.
        assert!(split[0] < whole[0]);
    }

    #[test]
    fn conditions_sorted_unique_without_nan() {
        let a = [2.0, 1.0, 2.0, f64::NAN, 1.0];
        let b = [0.0, 1.0, 0.0, 0.0, 1.0];
        let c = conditions(&[&a, &b], &[false, false, false, false, true]);
        assert_eq!(c, vec![vec![1.0, 1.0], vec![2.0, 0.0]]);
    }
}
