//! Ground truth of a synthetic NWB file: the rates its spikes were drawn from.
//!
//! Every rate here is log-linear in a low-dimensional latent, so instead of a dense
//! 1 ms × neurons matrix the file keeps the latent trajectory and the per-unit readout:
//!
//! * `unit_ids` int64 `[U]`: the NWB units ids, in file order;
//! * `bias` float64 `[U]`, `readout` float64 `[U, D]`;
//! * `t0` float64 `[1]`: file-clock seconds where latent row 0 begins;
//! * `latents` float32 `[N_ms, D]` (gzip): row `k` is the state on `[t0 + k ms, t0 + (k+1) ms)`.
//!
//! The rate of unit `u` at time `t` is `exp(bias[u] + readout[u] · latents[floor((t − t0)·1000)])`
//! spikes/s: constant within each 1 ms bin, which is exactly how the spikes were drawn, so the
//! expected count of a bin is a sum over its milliseconds ([`Truth::expected_count`]). Outside the
//! latent timeline the state is taken as zero.

use std::path::{Path, PathBuf};

use super::{dot, Latents, Population, SynthError};
use crate::h5::{AtomicH5, Data, H5File};

/// `<stem>.truth.h5` beside `<stem>.nwb`; not `*.nwb`, so `preprocess` never reads it.
pub fn path_for(nwb: &Path) -> PathBuf {
    let stem = nwb
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    nwb.with_file_name(format!("{stem}.truth.h5"))
}

/// Writes the truth of the file holding `units` (indices into `pop`) with these latents.
pub(super) fn write(
    path: &Path,
    pop: &Population,
    units: &[usize],
    latents: &Latents,
) -> Result<(), SynthError> {
    let n = units.len();
    let ids: Vec<i64> = units.iter().map(|&u| pop.ids[u]).collect();
    let bias: Vec<f64> = units.iter().map(|&u| pop.bias[u]).collect();
    let readout: Vec<f64> = units
        .iter()
        .flat_map(|&u| pop.weights(u).iter().copied())
        .collect();
    let mut w = AtomicH5::create(path)?;
    w.write("unit_ids", Data::I64(&ids, vec![n]))?;
    w.write("bias", Data::F64(&bias, vec![n]))?;
    w.write("readout", Data::F64(&readout, vec![n, pop.dim]))?;
    w.write("t0", Data::F64(&[0.0], vec![1]))?;
    w.write(
        "latents",
        Data::F32(&latents.values, vec![latents.len_ms(), latents.dim]),
    )?;
    w.attr_str(
        "/",
        "description",
        "rate of unit u at t seconds = exp(bias[u] + readout[u] . latents[floor((t - t0) * 1000)]) \
         spikes/s; latent row k covers [t0 + k ms, t0 + (k + 1) ms)",
    )?;
    Ok(w.commit()?)
}

/// The true rates of one synthetic NWB file.
#[derive(Debug, Clone)]
pub struct Truth {
    /// NWB unit ids, in file order; unit indices below refer to this order.
    pub unit_ids: Vec<i64>,
    pub bias: Vec<f64>,
    /// Row-major `[units, dim]`.
    pub readout: Vec<f64>,
    pub dim: usize,
    /// File-clock seconds where latent row 0 begins.
    pub t0: f64,
    /// Row-major `[ms, dim]`.
    pub latents: Vec<f32>,
}

impl Truth {
    /// Reads a `.truth.h5` file, checking that its shapes agree.
    pub fn read(path: &Path) -> Result<Truth, SynthError> {
        let f = H5File::open(path)?;
        let bad = |field: &str, msg: String| SynthError::Truth {
            path: path.to_path_buf(),
            field: field.into(),
            msg,
        };
        let unit_ids = f.read_i64("unit_ids")?;
        let n = unit_ids.len();
        let bias: Vec<f64> = f.read_f64("bias")?.iter().copied().collect();
        let readout = f.read_f64("readout")?;
        let latents = f.read_f64("latents")?;
        let t0 = f
            .read_f64("t0")?
            .iter()
            .copied()
            .next()
            .ok_or_else(|| bad("t0", "empty".into()))?;
        let (&[rn, dim], &[_, ld]) = (readout.shape(), latents.shape()) else {
            return Err(bad(
                "readout",
                format!(
                    "expected [units, dim] readout and [ms, dim] latents, found {:?} and {:?}",
                    readout.shape(),
                    latents.shape()
                ),
            ));
        };
        if bias.len() != n || rn != n {
            return Err(bad(
                "bias",
                format!("{} biases and {rn} readout rows for {n} units", bias.len()),
            ));
        }
        if ld != dim {
            return Err(bad(
                "latents",
                format!("{ld} latent dimensions, readout has {dim}"),
            ));
        }
        Ok(Truth {
            unit_ids,
            bias,
            readout: readout.iter().copied().collect(),
            dim,
            t0,
            latents: latents.iter().map(|&v| v as f32).collect(),
        })
    }

    pub fn n_units(&self) -> usize {
        self.unit_ids.len()
    }

    /// Number of 1 ms latent rows.
    pub fn n_ms(&self) -> usize {
        self.latents.len() / self.dim.max(1)
    }

    /// Index of the unit with NWB id `id`.
    pub fn unit_index(&self, id: i64) -> Option<usize> {
        self.unit_ids.iter().position(|&u| u == id)
    }

    /// Log-rate (spikes/s) of `unit` on latent row `k`, the row's state zero off the timeline.
    pub fn log_rate_at(&self, unit: usize, k: i64) -> f64 {
        let w = &self.readout[unit * self.dim..(unit + 1) * self.dim];
        match usize::try_from(k).ok().filter(|&k| k < self.n_ms()) {
            Some(k) => self.bias[unit] + dot(w, &self.latents[k * self.dim..(k + 1) * self.dim]),
            None => self.bias[unit],
        }
    }

    /// The latent row holding file time `t` seconds. A nanosecond of slack keeps a time written
    /// as `k/1000` in the row it names despite float rounding.
    pub fn row_at(&self, t: f64) -> i64 {
        ((t - self.t0) * 1000.0 + 1e-6).floor() as i64
    }

    /// True rate of `unit` (index, not id) at file time `t`, in spikes/s.
    pub fn rate_hz(&self, unit: usize, t: f64) -> f64 {
        self.log_rate_at(unit, self.row_at(t)).exp()
    }

    /// Expected spike count of `unit` over `[start, end)` seconds: the integral of its rate,
    /// exact for any bounds since the rate is constant within each millisecond.
    pub fn expected_count(&self, unit: usize, start: f64, end: f64) -> f64 {
        if end <= start {
            return 0.0;
        }
        let (a, b) = ((start - self.t0) * 1000.0, (end - self.t0) * 1000.0);
        let (first, last) = (self.row_at(start), self.row_at(end - 1e-9));
        (first..=last)
            .map(|k| {
                let overlap = (b.min((k + 1) as f64) - a.max(k as f64)).max(0.0);
                overlap / 1000.0 * self.log_rate_at(unit, k).exp()
            })
            .sum()
    }

    /// Expected counts of `unit` in `n` consecutive bins of `bin_s` seconds from `start`.
    pub fn expected_counts(&self, unit: usize, start: f64, bin_s: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let a = start + i as f64 * bin_s;
                self.expected_count(unit, a, a + bin_s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn round_trip_and_bin_sums() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let pop = Population::draw(3, 1, 2, 0.5, &mut rng);
        let mut latents = Latents::zeros(50, 2);
        for k in 0..50 {
            latents.add(k, &[(k as f64 / 10.0).sin(), 0.3]);
        }
        let dir = tempfile::tempdir().unwrap();
        let nwb = dir.path().join("sub-X_desc-train_ecephys.nwb");
        let path = path_for(&nwb);
        assert!(path
            .to_string_lossy()
            .ends_with("sub-X_desc-train_ecephys.truth.h5"));
        write(&path, &pop, &[0, 2, 3], &latents).unwrap();
        let t = Truth::read(&path).unwrap();
        assert_eq!(t.unit_ids, vec![pop.ids[0], pop.ids[2], pop.ids[3]]);
        assert_eq!((t.n_units(), t.n_ms(), t.dim), (3, 50, 2));
        let want = super::super::log_rate(&pop, 2, latents.row(7)).exp();
        assert_eq!(t.rate_hz(1, 0.007), want);
        assert_eq!(t.rate_hz(1, 0.0079), want);
        // A 5 ms bin is the sum of its five milliseconds; half a bin is half of one.
        let sum: f64 = (5..10).map(|k| t.log_rate_at(1, k).exp() / 1000.0).sum();
        assert!((t.expected_count(1, 0.005, 0.010) - sum).abs() < 1e-12);
        let half = t.log_rate_at(1, 5).exp() / 2000.0;
        assert!((t.expected_count(1, 0.0055, 0.006) - half).abs() < 1e-12);
        assert_eq!(
            t.expected_counts(1, 0.005, 0.005, 2)[0],
            t.expected_count(1, 0.005, 0.010)
        );
        // Off the timeline: the baseline rate.
        assert_eq!(t.rate_hz(0, 10.0), pop.bias[0].exp());
    }

    #[test]
    fn unreadable_truth_names_the_file() {
        let err = Truth::read(Path::new("/no/such.truth.h5")).unwrap_err();
        assert!(err.to_string().contains("/no/such.truth.h5"));
    }
}
