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
use crate::h5::{AtomicH5, Data, H5Error, H5File};
use crate::nlb::preprocess::CompanionError;
use crate::nlb::tensors::{expected_counts, RowRates, Tensor, TensorError};
use crate::nlb::{Phase, Session, Split};

/// Name of the true rates file `preprocess` writes into a synthetic dataset's val split folder.
pub const SPLIT_TRUTH_FILE: &str = "truth.h5";

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

/// One file's truth placed on the session timeline.
#[derive(Debug, Clone)]
struct FileTruth {
    /// Session row of the file's row 0.
    offset: i64,
    /// File row of latent row 0: `round(t0 · 1000)`.
    t0_ms: i64,
    truth: Truth,
    /// Per session held-in unit: its index in `truth`, if the file records it.
    heldin: Vec<Option<usize>>,
    heldout: Vec<Option<usize>>,
}

/// The true rates of a whole session: the truth file of each of its NWB files, on the session's
/// 1 ms timeline.
///
/// A session row belongs to the last file whose block starts at or before it (rows in the gap
/// after a file read that file's latents past their end, i.e. the baseline rate). A unit the
/// row's file does not record has no rate there: NaN, as its spikes are.
#[derive(Debug, Clone)]
pub struct SessionTruth {
    files: Vec<FileTruth>,
}

impl SessionTruth {
    /// Reads the `.truth.h5` file beside every NWB file of `session`; `None` when no file has
    /// one (real data) or, with a warning, when only some do. An error when a truth file cannot
    /// be read or a unit of the session is in none of them.
    pub fn load(session: &Session) -> Result<Option<SessionTruth>, SynthError> {
        let paths: Vec<PathBuf> = session.files.iter().map(|(p, _)| path_for(p)).collect();
        let present = paths.iter().filter(|p| p.is_file()).count();
        if present == 0 {
            return Ok(None);
        }
        if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
            tracing::warn!(
                "{}: missing while {present} other NWB file(s) of {} have a truth file; \
                 no true rates for this session",
                missing.display(),
                session.folder.display()
            );
            return Ok(None);
        }
        let mut files = Vec::with_capacity(paths.len());
        for (path, &(_, offset)) in paths.iter().zip(&session.files) {
            let truth = Truth::read(path)?;
            let map = |ids: &[i64]| ids.iter().map(|&id| truth.unit_index(id)).collect();
            files.push(FileTruth {
                offset,
                t0_ms: (truth.t0 * 1000.0).round() as i64,
                heldin: map(&session.heldin.ids),
                heldout: map(&session.heldout.ids),
                truth,
            });
        }
        for (heldout, ids) in [(false, &session.heldin.ids), (true, &session.heldout.ids)] {
            for (u, &id) in ids.iter().enumerate() {
                if files.iter().all(|f| f.index(heldout, u).is_none()) {
                    return Err(SynthError::Truth {
                        path: paths[0].clone(),
                        field: "unit_ids".into(),
                        msg: format!(
                            "unit {id} of {} is in none of the session's truth files",
                            session.folder.display()
                        ),
                    });
                }
            }
        }
        files.sort_by_key(|f| f.offset);
        Ok(Some(SessionTruth { files }))
    }

    /// Rate of a session unit at a session row, in spikes/s (NaN where its file lacks it).
    pub fn rate_hz(&self, heldout: bool, unit: usize, row: i64) -> f64 {
        let i = self
            .files
            .partition_point(|f| f.offset <= row)
            .saturating_sub(1);
        let f = &self.files[i];
        match f.index(heldout, unit) {
            Some(t) => f.truth.log_rate_at(t, row - f.offset - f.t0_ms).exp(),
            None => f64::NAN,
        }
    }
}

impl FileTruth {
    fn index(&self, heldout: bool, unit: usize) -> Option<usize> {
        let map = if heldout { &self.heldout } else { &self.heldin };
        map[unit]
    }
}

impl RowRates for SessionTruth {
    /// The rate is constant within each millisecond, so a row's expected count is rate / 1000.
    fn expected(&self, heldout: bool, unit: usize, row: i64) -> f64 {
        self.rate_hz(heldout, unit, row) / 1000.0
    }
}

/// Why the true rates of a split could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SplitTruthError {
    #[error(transparent)]
    Truth(#[from] SynthError),
    #[error("{split} (from {folder}): true rates: {error}")]
    Tensor {
        split: String,
        folder: PathBuf,
        error: TensorError,
    },
    #[error(transparent)]
    Write(#[from] H5Error),
}

/// [`write_split_truth`] as `preprocess`'s companion of every split.
pub fn companion(
    session: &Session,
    folder: &Path,
    split: Split,
    dir: &Path,
) -> Result<Option<PathBuf>, CompanionError> {
    Ok(write_split_truth(session, folder, split, dir)?)
}

/// Writes `<dir>/truth.h5`: the expected counts of a synthetic session on the grid of `split`'s
/// submission arrays, in submission layout (group `split.group()`, `eval_rates_heldin`, …,
/// `train_rates_heldout`, float32), so `langevin evaluate` scores it like any submission: the
/// ceiling a model can reach.
///
/// Returns the path written, or `None` for the test phase (its eval trials have no held-out
/// units to score) and for folders without truth files (real data).
pub fn write_split_truth(
    session: &Session,
    folder: &Path,
    split: Split,
    dir: &Path,
) -> Result<Option<PathBuf>, SplitTruthError> {
    if split.phase != Phase::Val {
        return Ok(None);
    }
    let Some(truth) = SessionTruth::load(session)? else {
        return Ok(None);
    };
    let params = split.dataset.params();
    let c = expected_counts(session, &params, split.bin_width, split.phase, &truth).map_err(
        |error| SplitTruthError::Tensor {
            split: split.dir_name(),
            folder: folder.to_path_buf(),
            error,
        },
    )?;
    std::fs::create_dir_all(dir).map_err(|e| H5Error::Write {
        path: dir.to_path_buf(),
        name: "/".into(),
        msg: e.to_string(),
    })?;
    let path = dir.join(SPLIT_TRUTH_FILE);
    let group = split.group();
    let mut f = AtomicH5::create(&path)?;
    let arrays: [(&str, &Tensor<f32>); 6] = [
        ("eval_rates_heldin", &c.eval_heldin),
        ("eval_rates_heldin_forward", &c.eval_heldin_forward),
        ("eval_rates_heldout", &c.eval_heldout),
        ("eval_rates_heldout_forward", &c.eval_heldout_forward),
        ("train_rates_heldin", &c.train_heldin),
        ("train_rates_heldout", &c.train_heldout),
    ];
    for (key, t) in arrays {
        f.write(
            &format!("{group}/{key}"),
            Data::F32(&t.data, t.shape.clone()),
        )?;
    }
    f.attr_str(
        &group,
        "description",
        "expected spike counts per bin under the rates the synthetic spikes were drawn from \
         (langevin synth ground truth), in submission layout",
    )?;
    f.commit()?;
    Ok(Some(path))
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
    fn session_truth_reads_each_row_from_its_file() {
        use crate::nlb::session::{Intervals, UnitGroup};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let pop = Population::draw(2, 1, 2, 0.5, &mut rng);
        let dir = tempfile::tempdir().unwrap();
        let (test_nwb, train_nwb) = (
            dir.path().join("a-test.nwb"),
            dir.path().join("b-train.nwb"),
        );
        // The test file records the held-in units only, the train file all three.
        let heldin: Vec<usize> = (0..3).filter(|&u| !pop.heldout[u]).collect();
        let ho = (0..3).find(|&u| pop.heldout[u]).unwrap();
        let mut a = Latents::zeros(100, 2);
        let mut b = Latents::zeros(100, 2);
        for k in 0..100 {
            a.add(k, &[k as f64 / 50.0, -0.5]);
            b.add(k, &[0.3, k as f64 / -40.0]);
        }
        write(&path_for(&test_nwb), &pop, &heldin, &a).unwrap();
        write(&path_for(&train_nwb), &pop, &[0, 1, 2], &b).unwrap();
        let group = |units: &[usize]| UnitGroup {
            ids: units.iter().map(|&u| pop.ids[u]).collect(),
            spikes: vec![Vec::new(); units.len()],
            valid: vec![Intervals::default(); units.len()],
        };
        let session = Session {
            folder: dir.path().to_path_buf(),
            files: vec![(test_nwb.clone(), 0), (train_nwb, 200)],
            len_ms: 300,
            heldin: group(&heldin),
            heldout: group(&[ho]),
            series: Vec::new(),
            trials: Default::default(),
        };
        let truth = SessionTruth::load(&session).unwrap().unwrap();
        let rate = |u: usize, x: &[f32]| super::super::log_rate(&pop, u, x).exp();
        // Row 30: the test file's latent row 30; row 230: the train file's row 30.
        assert_eq!(truth.rate_hz(false, 1, 30), rate(heldin[1], a.row(30)));
        assert_eq!(truth.rate_hz(false, 1, 230), rate(heldin[1], b.row(30)));
        assert_eq!(truth.rate_hz(true, 0, 230), rate(ho, b.row(30)));
        assert_eq!(truth.expected(true, 0, 230), rate(ho, b.row(30)) / 1000.0);
        // Past the test file's latents (the gap before the train file): the baseline rate.
        assert_eq!(truth.rate_hz(false, 0, 150), pop.bias[heldin[0]].exp());
        // The test file has no held-out unit: no rate there.
        assert!(truth.rate_hz(true, 0, 30).is_nan());

        // Without truth files, no truth; with some missing, none either.
        std::fs::remove_file(path_for(&test_nwb)).unwrap();
        assert!(SessionTruth::load(&session).unwrap().is_none());
        let real = Session {
            files: vec![(dir.path().join("c.nwb"), 0)],
            ..session
        };
        assert!(SessionTruth::load(&real).unwrap().is_none());
    }

    #[test]
    fn unreadable_truth_names_the_file() {
        let err = Truth::read(Path::new("/no/such.truth.h5")).unwrap_err();
        assert!(err.to_string().contains("/no/such.truth.h5"));
    }
}
