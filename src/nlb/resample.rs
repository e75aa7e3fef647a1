//! Resampling continuous behaviour from 1 ms to the bin width, as nlb_tools `resample` does:
//! linear interpolation across every NaN run, then scipy's zero-phase 501-tap Hamming FIR
//! decimator with zero padding at the recording ends, then NaN put back where row `jq` was NaN.
//!
//! Spikes need no code here: binning straight from spike rows gives the same sums
//! (see `session::bin_unit`).

use super::session::Intervals;

/// Taps of scipy's `decimate(ftype='fir')` filter for factor `q`, normalised to sum 1.
pub fn fir_taps(q: i64) -> Vec<f64> {
    let q = q as f64;
    let sinc = |x: f64| {
        if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        }
    };
    let raw: Vec<f64> = (0..=500)
        .map(|k| {
            let k = k as f64;
            let hamming = 0.54 - 0.46 * (2.0 * std::f64::consts::PI * k / 500.0).cos();
            (1.0 / q) * sinc((k - 250.0) / q) * hamming
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.into_iter().map(|h| h / sum).collect()
}

/// Linear interpolation by position across NaN runs, in place; leading and trailing NaNs take
/// the nearest valid value (pandas `interpolate(limit_direction='both')`).
pub fn interpolate_nans(x: &mut [f64]) {
    let mut last: Option<usize> = None;
    for i in 0..x.len() {
        if x[i].is_nan() {
            continue;
        }
        match last {
            None => {
                let v = x[i];
                x[..i].fill(v);
            }
            Some(a) if i > a + 1 => {
                let (ya, yb) = (x[a], x[i]);
                for (k, v) in x.iter_mut().enumerate().take(i).skip(a + 1) {
                    *v = ya + (yb - ya) * ((k - a) as f64 / (i - a) as f64);
                }
            }
            Some(_) => {}
        }
        last = Some(i);
    }
    if let Some(a) = last {
        let v = x[a];
        x[a + 1..].fill(v);
    }
}

/// A behaviour channel read at any bin: its 1 ms values with NaN runs already interpolated
/// (see [`interpolate_nans`]), and the rows that held a sample; filtered on demand.
pub struct Decimator<'a> {
    filled: &'a [f64],
    sampled: &'a Intervals,
    taps: Vec<f64>,
    q: i64,
}

impl<'a> Decimator<'a> {
    pub fn new(filled: &'a [f64], sampled: &'a Intervals, q: i64) -> Self {
        Decimator {
            filled,
            sampled,
            taps: fir_taps(q),
            q,
        }
    }

    /// The decimated value of bin `j`, NaN if bin `j` is outside the data or its first row had
    /// no sample.
    pub fn value(&self, j: i64) -> f64 {
        let n = self.filled.len() as i64;
        let centre = j * self.q;
        if j < 0 || centre >= n || !self.sampled.contains(centre) {
            return f64::NAN;
        }
        let lo = (centre - 250).max(0);
        let hi = (centre + 250).min(n - 1);
        let taps = &self.taps[(lo - centre + 250) as usize..=(hi - centre + 250) as usize];
        dot(taps, &self.filled[lo as usize..=hi as usize])
    }
}

/// Σ a·b over equal-length slices, in four interleaved partial sums so the multiply-adds do
/// not wait on one another (within 1e-15 relative of the sequential sum; stored as float32).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_sequential_sum() {
        for n in [0, 1, 3, 4, 7, 251, 501] {
            let a: Vec<f64> = (0..n).map(|i| ((i * 7 % 13) as f64 - 6.0) / 3.0).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - want).abs() <= 1e-13 * want.abs().max(1.0),
                "n {n}"
            );
        }
    }

    #[test]
    fn taps_are_symmetric_and_sum_to_one() {
        for q in [5, 20] {
            let h = fir_taps(q);
            assert_eq!(h.len(), 501);
            assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for k in 0..250 {
                assert!((h[k] - h[500 - k]).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn interpolation_fills_gaps_and_ends() {
        let mut x = [f64::NAN, 1.0, f64::NAN, f64::NAN, 4.0, f64::NAN];
        interpolate_nans(&mut x);
        assert_eq!(x, [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]);
        let mut none = [f64::NAN; 3];
        interpolate_nans(&mut none);
        assert!(none.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn constant_signal_passes_away_from_the_edges() {
        let x = vec![2.0; 2000];
        let sampled = Intervals(vec![(0, 2000)]);
        let d = Decimator::new(&x, &sampled, 5);
        assert!((d.value(200) - 2.0).abs() < 1e-12);
        assert!(d.value(0) < 2.0, "zero padding at the start");
        assert!(d.value(400).is_nan(), "past the end");
    }
}
