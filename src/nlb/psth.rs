//! Peri-stimulus time histograms of the evaluation targets (reference §8, PSTH).
//!
//! The reference smooths a dense 1 ms copy of every spike column of the whole session. We only
//! need smoothed values inside PSTH windows, so each window's bins are computed straight from the
//! spikes near it: a spike adds its kernel mass to the bins it reaches. The sums are the same
//! (up to summation order, ~1e-16).

use super::dataset::PsthParams;
use super::session::{seek, Cursor, Intervals, UnitGroup};
use super::tensors::{Binned, Result, Tensor, TensorError};
use super::time::{ceil_div, floor_div};
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
    /// `strided[r][i]` = `bin_sums[r + i·q]`, where `bin_sums[d + q − 1]` = Σ_{i<q} taps[d + i]
    /// (taps zero outside): a bin's mass from one spike when the bin lies wholly in one run; the
    /// bins one spike reaches read consecutive entries of one phase `r`.
    strided: Vec<Vec<f64>>,
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
        let bin_sums: Vec<f64> = (-(q - 1)..m)
            .map(|d| (0..q).map(|i| tap(d + i)).sum())
            .collect();
        let strided = (0..q as usize)
            .map(|r| {
                bin_sums
                    .iter()
                    .skip(r)
                    .step_by(q as usize)
                    .copied()
                    .collect()
            })
            .collect();
        Kernel {
            taps,
            offset: (m - 1) / 2,
            strided,
            q,
        }
    }

    fn len(&self) -> i64 {
        self.taps.len() as i64
    }

    /// Smoothed value of 1 ms row `n` (which must be valid), from spikes in its run only:
    /// the reference's definition, row by row.
    #[cfg(test)]
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
    ///
    /// Each observed run is smoothed on its own (zero outside it), as the reference does per
    /// NaN-free stretch; a spike adds its kernel mass to every bin it reaches within its run.
    ///
    /// `at` remembers where the last call's search ended, so windows taken in time order find
    /// their spikes and runs in a few steps; any order gives the same values.
    fn bins(
        &self,
        unit: (&[i64], &Intervals),
        len_ms: i64,
        first: i64,
        out: &mut [f64],
        at: &mut Cursor,
    ) {
        let (spikes, valid) = unit;
        let m = self.len();
        out.fill(0.0);
        let win_lo = first * self.q;
        let win_hi = ((first + out.len() as i64) * self.q).min(len_ms);
        let runs = &valid.0;
        let first_run = seek(runs, at.run, |&(_, b)| b <= win_lo);
        let mut i = first_run;
        while i < runs.len() && runs[i].0 < win_hi {
            let (a, b) = runs[i];
            let (s, e) = (a.max(win_lo), b.min(win_hi));
            let k_lo = a.max(s + self.offset - m + 1);
            let k_hi = (b - 1).min(e - 1 + self.offset);
            at.spike = seek(spikes, at.spike, |&k| k < k_lo);
            for &k in spikes[at.spike..].iter().take_while(|&&k| k <= k_hi) {
                self.spread(k, (s, e), first, out);
            }
            i += 1;
        }
        at.run = first_run;
        valid.mask_unobserved_near(first, self.q, out, &mut at.run);
    }

    /// Adds spike `k`'s kernel mass to the bins it reaches among rows `s..e` (one run's part of
    /// the window). Bins wholly inside the rows take one contiguous slice of a per-phase kernel
    /// (`strided`), which the compiler vectorises; at most two bins cut by the run's ends sum
    /// their rows one by one. Each bin gets one addition per spike, in spike order, as before.
    fn spread(&self, k: i64, (s, e): (i64, i64), first: i64, out: &mut [f64]) {
        let (q, m) = (self.q, self.len());
        let reach = (k - self.offset, k - self.offset + m - 1);
        let j_lo = ceil_div(s, q).max(floor_div(reach.0, q));
        let j_hi = (floor_div(e, q) - 1).min(floor_div(reach.1, q));
        if j_lo <= j_hi {
            // `bin_sums` index of bin j is j·q + c: one phase r, consecutive entries from i0.
            let idx = j_lo * q + self.offset - k + q - 1;
            let (r, i0) = ((idx % q) as usize, (idx / q) as usize);
            let len = (j_hi - j_lo + 1) as usize;
            let at = (j_lo - first) as usize;
            for (o, w) in out[at..at + len]
                .iter_mut()
                .zip(&self.strided[r][i0..i0 + len])
            {
                *o += w;
            }
        }
        let (n_lo, n_hi) = (s.max(reach.0), (e - 1).min(reach.1));
        let cut_first = (s % q != 0).then(|| floor_div(s, q));
        let cut_last = (e % q != 0).then(|| floor_div(e - 1, q));
        let cut_last = cut_last.filter(|&j| Some(j) != cut_first);
        for j in cut_first.into_iter().chain(cut_last) {
            let (r0, r1) = ((j * q).max(n_lo), (j * q + q - 1).min(n_hi));
            if r0 <= r1 {
                out[(j - first) as usize] += (r0..=r1)
                    .map(|n| self.taps[(n + self.offset - k) as usize])
                    .sum::<f64>();
            }
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
///
/// Align times are multiples of the bin width (windows start on the grid and alignments are
/// snapped up to it), so they index a dense table directly.
fn mean_by_align_time(
    kernel: &Kernel,
    groups: &[&UnitGroup],
    len_ms: i64,
    windows: &[TrialWindow],
    q: i64,
    n_cols: usize,
) -> Vec<Vec<f64>> {
    let bw_ns = q * super::time::NS_PER_MS;
    let offset = |w: &TrialWindow| (w.first * bw_ns - w.align_ceil) / bw_ns;
    let (Some(lo), Some(hi)) = (
        windows.iter().map(offset).min(),
        windows.iter().map(|w| offset(w) + w.len).max(),
    ) else {
        return Vec::new();
    };
    let slots = (hi - lo) as usize;
    let mut covered = vec![false; slots];
    for w in windows {
        let base = (offset(w) - lo) as usize;
        covered[base..base + w.len as usize].fill(true);
    }
    // Units are independent: share them out over the cores.
    let units: Vec<(&UnitGroup, usize)> = groups
        .iter()
        .flat_map(|g| (0..g.len()).map(move |u| (*g, u)))
        .collect();
    let threads = crate::runtime::threads();
    let chunk = units.len().div_ceil(threads).max(1);
    let mut sum = vec![0.0; slots * n_cols];
    let mut count = vec![0u32; slots * n_cols];
    std::thread::scope(|scope| {
        let handles: Vec<_> = units
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    let first_col = c * chunk;
                    let width = part.len();
                    let mut sum = vec![0.0; slots * width];
                    let mut count = vec![0u32; slots * width];
                    let mut buf = Vec::new();
                    // Unit by unit, so one unit's spikes stay in cache across the windows.
                    for (col, &(group, u)) in part.iter().enumerate() {
                        let mut at = Cursor::default();
                        for w in windows {
                            buf.resize(w.len as usize, 0.0);
                            let base = (offset(w) - lo) as usize;
                            let unit = (&group.spikes[u][..], &group.valid[u]);
                            kernel.bins(unit, len_ms, w.first, &mut buf, &mut at);
                            for (i, &v) in buf.iter().enumerate() {
                                if !v.is_nan() {
                                    let k = (base + i) * width + col;
                                    sum[k] += v;
                                    count[k] += 1;
                                }
                            }
                        }
                    }
                    (first_col, width, sum, count)
                })
            })
            .collect();
        for h in handles {
            let (first_col, width, s, c) = h.join().expect("PSTH worker panicked");
            for t in 0..slots {
                for col in 0..width {
                    sum[t * n_cols + first_col + col] = s[t * width + col];
                    count[t * n_cols + first_col + col] = c[t * width + col];
                }
            }
        }
    });
    (0..slots)
        .filter(|&t| covered[t])
        .map(|t| {
            (0..n_cols)
                .map(|c| {
                    let k = t * n_cols + c;
                    if count[k] == 0 {
                        f64::NAN
                    } else {
                        sum[k] / f64::from(count[k])
                    }
                })
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

    /// `n` smoothed bins of one unit from bin `first`, searched from the start.
    fn smoothed(
        k: &Kernel,
        unit: (&[i64], &Intervals),
        len: i64,
        first: i64,
        n: usize,
    ) -> Vec<f64> {
        let mut out = vec![0.0; n];
        k.bins(unit, len, first, &mut out, &mut Cursor::default());
        out
    }

    /// The reference's definition: smooth each 1 ms row from its own run, sum rows per bin,
    /// NaN where the bin's first row is unobserved.
    fn row_by_row(k: &Kernel, spikes: &[i64], valid: &Intervals, len: i64, j: i64) -> f64 {
        if !valid.contains(j * k.q) {
            return f64::NAN;
        }
        (j * k.q..((j + 1) * k.q).min(len))
            .filter_map(|n| valid.run(n).map(|run| k.row(spikes, run, n)))
            .sum()
    }

    #[test]
    fn binned_smoothing_equals_row_by_row_definition() {
        let spikes = vec![3, 100, 130, 131, 200, 203, 260, 261, 262, 400, 590, 598];
        let layouts = [
            Intervals(vec![(0, 600)]),
            Intervals(vec![(0, 201), (203, 380), (390, 600)]),
            Intervals(vec![(2, 97), (101, 102), (150, 599)]),
        ];
        for q in [5, 20] {
            let k = Kernel::new(10, q);
            for valid in &layouts {
                for first in [0, 3, 7] {
                    let n_bins = (600 / q - first) as usize;
                    let got = smoothed(&k, (&spikes, valid), 600, first, n_bins);
                    for (i, v) in got.iter().enumerate() {
                        let j = first + i as i64;
                        let want = row_by_row(&k, &spikes, valid, 600, j);
                        assert!(
                            (v.is_nan() && want.is_nan()) || (v - want).abs() < 1e-14,
                            "q {q} runs {:?} bin {j}: {v} vs {want}",
                            valid.0
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn smoothing_stays_inside_observed_runs() {
        let k = Kernel::new(10, 5);
        let spikes = vec![95, 105];
        let valid = Intervals(vec![(0, 100), (100, 1000)]);
        let merged = Intervals(vec![(0, 1000)]);
        let split = smoothed(&k, (&spikes, &valid), 1000, 20, 4);
        let whole = smoothed(&k, (&spikes, &merged), 1000, 20, 4);
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
