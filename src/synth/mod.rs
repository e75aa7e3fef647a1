//! Synthetic recordings in the DANDI layout with known firing rates.
//!
//! Every dataset is a latent dynamical system sampled once per millisecond; each unit fires as a
//! Poisson process with the log-linear rate `exp(bias + readout · latent)`, and behaviour is a
//! noisy linear readout of the same latents at the dataset's lag. The files go through
//! `preprocess` like the real ones, which is what the benchmarks, the quickstart and the tests
//! need; the `.truth.h5` file beside each NWB file holds the latents and the readout, so the true
//! rate of any unit at any time can be recomputed exactly (see [`truth`]).
//!
//! Each dataset module only plans its files (trials, observation intervals, latents, behaviour);
//! drawing spikes and writing files is shared here so that all datasets get the same guarantees:
//! spikes come from exactly the rates the truth file describes, and a seed gives byte-identical
//! files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, Normal};

use crate::h5::H5Error;
use crate::nlb::DatasetName;
use crate::nwb::{self, Column, NwbFile, Series, Trials, Units};

mod bump;
mod lorenz;
mod maze;
mod rsg;
mod rtt;
pub mod truth;

pub use truth::Truth;

/// How large a dataset to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A few dozen trials: tests.
    Tiny,
    /// A few hundred trials: the quickstart.
    Small,
    /// The real dataset's neuron and trial counts: benchmarks.
    Full,
}

impl std::str::FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tiny" => Ok(Scale::Tiny),
            "small" => Ok(Scale::Small),
            "full" => Ok(Scale::Full),
            _ => Err(format!("unknown scale `{s}` (expected tiny, small, full)")),
        }
    }
}

/// A synthetic dataset that could not be written or a truth file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Nwb(#[from] nwb::NwbError),
    #[error(transparent)]
    H5(#[from] H5Error),
    #[error("{path}: {msg}")]
    Io { path: PathBuf, msg: String },
    #[error("{path}: truth field `{field}`: {msg}")]
    Truth {
        path: PathBuf,
        field: String,
        msg: String,
    },
}

/// What was written.
#[derive(Debug, Clone)]
pub struct SynthReport {
    /// The NWB files, in the order written (test file first).
    pub files: Vec<PathBuf>,
    /// The ground-truth file of each NWB file, same order.
    pub truth: Vec<PathBuf>,
    /// Trials over all files, `none` trials included.
    pub trials: usize,
    pub units: usize,
}

/// Trial and unit counts of a dataset at a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub train: usize,
    pub val: usize,
    pub test: usize,
    /// Trials in neither split (`split == "none"`), as the real files have.
    pub none: usize,
    pub heldin: usize,
    pub heldout: usize,
}

impl Counts {
    const fn new(trials: [usize; 4], heldin: usize, heldout: usize) -> Self {
        let [train, val, test, none] = trials;
        Counts {
            train,
            val,
            test,
            none,
            heldin,
            heldout,
        }
    }

    /// Every trial of the dataset, `none` trials included.
    pub fn trials(&self) -> usize {
        self.train + self.val + self.test + self.none
    }
}

/// What [`synth`] makes for `dataset` at `scale`, without making it.
pub fn counts(dataset: DatasetName, scale: Scale) -> Counts {
    match dataset {
        DatasetName::McMaze
        | DatasetName::McMazeLarge
        | DatasetName::McMazeMedium
        | DatasetName::McMazeSmall => maze::counts(dataset, scale),
        DatasetName::McRtt => rtt::counts(scale),
        DatasetName::Area2Bump => bump::counts(scale),
        DatasetName::DmfcRsg => rsg::counts(scale),
        DatasetName::Lorenz => lorenz::counts(scale),
    }
}

/// The recorded neurons, shared by a dataset's train and test files.
struct Population {
    /// Ascending, as in the DANDI files (file order is id order).
    ids: Vec<i64>,
    heldout: Vec<bool>,
    bias: Vec<f64>,
    /// Row-major `[units, dim]`.
    readout: Vec<f64>,
    dim: usize,
}

impl Population {
    /// Baselines of 5–30 spikes/s and Gaussian readout weights of s.d. `gain`; held-out units are
    /// scattered among the held-in ones as in the real files, not appended.
    fn draw(n_in: usize, n_out: usize, dim: usize, gain: f64, rng: &mut StdRng) -> Self {
        let n = n_in + n_out;
        let normal = Normal::new(0.0, gain).expect("valid normal");
        let ids = (0..n as i64)
            .map(|u| 10 * (u + 1) + rng.random_range(0..10))
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, rng);
        let mut heldout = vec![false; n];
        for &u in &order[..n_out] {
            heldout[u] = true;
        }
        let readout = (0..n * dim).map(|_| normal.sample(rng)).collect();
        let bias = (0..n)
            .map(|_| (5.0 + 25.0 * rng.random::<f64>()).ln())
            .collect();
        Population {
            ids,
            heldout,
            bias,
            readout,
            dim,
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn weights(&self, u: usize) -> &[f64] {
        &self.readout[u * self.dim..(u + 1) * self.dim]
    }
}

/// A file's latent trajectory: row `k` holds the state on `[k, k+1)` ms of the file clock.
///
/// Stored as f32 because that is what the truth file keeps; spikes and behaviour read these very
/// values, so the truth reproduces the generating rates exactly.
struct Latents {
    dim: usize,
    values: Vec<f32>,
}

impl Latents {
    fn zeros(len_ms: usize, dim: usize) -> Self {
        Latents {
            dim,
            values: vec![0.0; len_ms * dim],
        }
    }

    fn len_ms(&self) -> usize {
        self.values.len() / self.dim
    }

    fn row(&self, k: usize) -> &[f32] {
        &self.values[k * self.dim..(k + 1) * self.dim]
    }

    /// Row `k`, or `None` off the timeline (lagged readouts near the ends).
    fn get(&self, k: i64) -> Option<&[f32]> {
        usize::try_from(k)
            .ok()
            .filter(|&k| k < self.len_ms())
            .map(|k| self.row(k))
    }

    fn add(&mut self, k: usize, x: &[f64]) {
        for (v, x) in self.values[k * self.dim..(k + 1) * self.dim]
            .iter_mut()
            .zip(x)
        {
            *v += *x as f32;
        }
    }
}

/// One NWB file to write, as a dataset module plans it.
struct FilePlan {
    name: String,
    trials: Trials,
    /// Trial columns stored as HDF5 booleans.
    bool_columns: &'static [&'static str],
    /// Observation intervals in whole ms of the file clock, `[a, b)`; every unit shares them.
    observed: Vec<(i64, i64)>,
    latents: Latents,
    /// The train file records the held-out units; the test file does not.
    with_heldout: bool,
    series: Vec<Series>,
}

/// A dataset: its neurons and files (test file first, as the reference's name sort reads them).
struct Plan {
    population: Population,
    files: Vec<FilePlan>,
}

/// Writes a synthetic `dataset` under `data_home` in the DANDI layout, with a `.truth.h5` file
/// beside each NWB file.
pub fn synth(
    data_home: &Path,
    dataset: DatasetName,
    scale: Scale,
    seed: u64,
) -> Result<SynthReport, SynthError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let c = counts(dataset, scale);
    let plan = match dataset {
        DatasetName::McMaze
        | DatasetName::McMazeLarge
        | DatasetName::McMazeMedium
        | DatasetName::McMazeSmall => maze::plan(dataset, c, &mut rng),
        DatasetName::McRtt => rtt::plan(c, &mut rng),
        DatasetName::Area2Bump => bump::plan(c, &mut rng),
        DatasetName::DmfcRsg => rsg::plan(c, &mut rng),
        DatasetName::Lorenz => lorenz::plan(c, &mut rng),
    };
    let dir = dataset.data_dir(data_home);
    std::fs::create_dir_all(&dir).map_err(|e| SynthError::Io {
        path: dir.clone(),
        msg: e.to_string(),
    })?;
    let mut report = SynthReport {
        files: Vec::new(),
        truth: Vec::new(),
        trials: c.trials(),
        units: plan.population.len(),
    };
    let description = format!("langevin synthetic {dataset}");
    for (index, file) in plan.files.into_iter().enumerate() {
        let path = dir.join(&file.name);
        let truth_path = truth::path_for(&path);
        let seeds = unit_seed_base(seed, index);
        write_file(
            &path,
            &truth_path,
            &description,
            &plan.population,
            file,
            seeds,
        )?;
        report.files.push(path);
        report.truth.push(truth_path);
    }
    Ok(report)
}

/// Draws the file's spikes and writes the NWB file and its truth.
fn write_file(
    path: &Path,
    truth_path: &Path,
    description: &str,
    pop: &Population,
    file: FilePlan,
    unit_seeds: u64,
) -> Result<(), SynthError> {
    let units: Vec<usize> = (0..pop.len())
        .filter(|&u| file.with_heldout || !pop.heldout[u])
        .collect();
    let spike_times = draw_spikes(pop, &units, &file, unit_seeds);
    let obs: Vec<[f64; 2]> = file
        .observed
        .iter()
        .map(|&(a, b)| [a as f64 / 1000.0, b as f64 / 1000.0])
        .collect();
    let nwb_file = NwbFile {
        path: PathBuf::new(),
        units: Units {
            ids: units.iter().map(|&u| pop.ids[u]).collect(),
            spike_times: spike_times.into(),
            obs_intervals: vec![obs; units.len()].into(),
            heldout: units.iter().map(|&u| pop.heldout[u]).collect(),
        },
        trials: file.trials,
        series: file.series,
    };
    nwb::write(path, &nwb_file, description, file.bool_columns)?;
    truth::write(truth_path, pop, &units, &file.latents)
}

/// Spike times (seconds) of `units`, drawn in parallel: each unit has its own random stream,
/// seeded from the dataset seed, the file and the unit, so the result does not depend on the
/// number of threads.
fn draw_spikes(pop: &Population, units: &[usize], file: &FilePlan, base: u64) -> Vec<Vec<f64>> {
    let threads = crate::runtime::threads();
    let chunk = units.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = units
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&u| {
                            let mut rng = StdRng::seed_from_u64(splitmix(base ^ u as u64));
                            let log_rate = |k: usize| log_rate(pop, u, file.latents.row(k));
                            poisson_times(log_rate, &file.observed, &mut rng)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("spike drawing panicked"))
            .collect()
    })
}

/// The generating log-rate of unit `u` at a latent state; [`Truth`] recomputes it the same way.
fn log_rate(pop: &Population, u: usize, x: &[f32]) -> f64 {
    pop.bias[u] + dot(pop.weights(u), x)
}

/// `w · x` with x widened to f64, summed in index order (the truth reader sums identically).
pub(crate) fn dot(w: &[f64], x: &[f32]) -> f64 {
    w.iter().zip(x).map(|(w, &v)| w * f64::from(v)).sum()
}

/// Poisson spike times (seconds, on the µs grid) for a rate constant within each 1 ms bin, by
/// time rescaling: a spike falls where the integrated rate has grown by an Exp(1) draw.
///
/// Times are floored to the µs and kept inside their bin, so a spike drawn in bin `k` is counted
/// in row `k` by the reference's spike binning and the truth's per-bin rates match the counts.
fn poisson_times(
    log_rate: impl Fn(usize) -> f64,
    observed: &[(i64, i64)],
    rng: &mut StdRng,
) -> Vec<f64> {
    let mut times = Vec::new();
    let mut need: f64 = Exp1.sample(rng);
    for &(a, b) in observed {
        for k in a..b {
            let per_ms = log_rate(k as usize).exp() / 1000.0;
            let mut pos = 0.0;
            while need <= per_ms * (1.0 - pos) {
                pos += need / per_ms;
                let us = k * 1000 + ((pos * 1000.0) as i64).min(999);
                times.push(us as f64 / 1e6);
                need = Exp1.sample(rng);
            }
            need -= per_ms * (1.0 - pos);
        }
    }
    times
}

/// Per-file base of the per-unit seeds.
fn unit_seed_base(seed: u64, file: usize) -> u64 {
    splitmix(splitmix(seed) ^ (file as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// SplitMix64's finaliser: decorrelates nearby seeds.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher–Yates, so that orders depend only on the seed.
fn shuffle<T>(v: &mut [T], rng: &mut StdRng) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

/// Split labels with balanced condition indices, interleaved at random as NLB's splits are:
/// every condition appears in every split large enough, which the PSTH and tp corr need.
fn deal(
    splits: &[(&'static str, usize)],
    n_cond: usize,
    rng: &mut StdRng,
) -> Vec<(&'static str, usize)> {
    let mut out = Vec::new();
    for &(split, n) in splits {
        let mut conds: Vec<usize> = (0..n).map(|i| i % n_cond).collect();
        shuffle(&mut conds, rng);
        out.extend(conds.into_iter().map(|c| (split, c)));
    }
    shuffle(&mut out, rng);
    out
}

/// Seconds rounded to the ms grid the files' times live on.
fn ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// Whole ms of a ms-grid time in seconds.
fn ms_index(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// Uniform draw in `[lo, hi)` seconds, rounded to the ms.
fn uniform_ms(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    ms(lo + (hi - lo) * rng.random::<f64>())
}

/// A trials table under construction: columns by name, all of one length.
struct TableBuilder {
    len: usize,
    columns: BTreeMap<String, Column>,
}

impl TableBuilder {
    fn new(len: usize) -> Self {
        TableBuilder {
            len,
            columns: BTreeMap::new(),
        }
    }

    fn num(&mut self, name: &str, values: Vec<f64>) -> &mut Self {
        assert_eq!(values.len(), self.len, "column `{name}` length");
        self.columns.insert(name.into(), Column::Num(values));
        self
    }

    fn text(&mut self, name: &str, values: Vec<String>) -> &mut Self {
        assert_eq!(values.len(), self.len, "column `{name}` length");
        self.columns.insert(name.into(), Column::Str(values));
        self
    }

    /// The columns a dataset's test file shares with its train file: each trial's bounds, the
    /// event trials are aligned to (column `align`) and its split; `row` gives
    /// `(start, stop, align, split)` of a trial.
    fn shared_columns<T>(
        trials: &[T],
        align: &str,
        row: impl Fn(&T) -> (f64, f64, f64, &str),
    ) -> Self {
        let rows: Vec<_> = trials.iter().map(row).collect();
        let mut table = TableBuilder::new(trials.len());
        table
            .num("start_time", rows.iter().map(|r| r.0).collect())
            .num("stop_time", rows.iter().map(|r| r.1).collect())
            .num(align, rows.iter().map(|r| r.2).collect())
            .text("split", rows.iter().map(|r| r.3.to_string()).collect());
        table
    }

    fn build(&mut self) -> Trials {
        Trials {
            len: self.len,
            columns: std::mem::take(&mut self.columns),
        }
    }
}

/// Hand (or finger) kinematics sampled every ms of `ranges`: velocity read out of latents 0 and
/// 1 at `lag_ms` before each sample, with Gaussian noise, and its running integral.
struct Kinematics {
    times: Vec<f64>,
    /// Row-major `[samples, 2]`.
    vel: Vec<f64>,
    pos: Vec<f64>,
}

impl Kinematics {
    /// Hand kinematics sampled every millisecond from the start of the recording to the end of
    /// its last observed block, gaps between trials included, as real behaviour channels are:
    /// a reader that builds its time base from the series (nlb_tools joins every series on its
    /// own timestamps) then sees one sorted, gap-free clock.
    fn read_out(
        latents: &Latents,
        observed: &[(i64, i64)],
        lag_ms: i64,
        gain: f64,
        rng: &mut StdRng,
    ) -> Self {
        let end = observed.last().map_or(0, |&(_, b)| b);
        let noise = Normal::new(0.0, 0.05).expect("valid normal");
        let mut out = Kinematics {
            times: Vec::new(),
            vel: Vec::new(),
            pos: Vec::new(),
        };
        let (mut px, mut py) = (0.0, 0.0);
        for k in 0..end {
            let x = latents.get(k - lag_ms).unwrap_or(&[0.0, 0.0]);
            let vx = gain * (f64::from(x[0]) + noise.sample(rng));
            let vy = gain * (f64::from(x[1]) + noise.sample(rng));
            px += vx / 1000.0;
            py += vy / 1000.0;
            out.times.push(k as f64 / 1000.0);
            out.vel.extend([vx, vy]);
            out.pos.extend([px, py]);
        }
        out
    }

    fn series(&self, name: &str, channels: &[&str], data: Vec<f64>) -> Series {
        Series {
            name: name.into(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            times: self.times.clone(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spikes_stay_in_the_bin_they_were_drawn_in() {
        let mut rng = StdRng::seed_from_u64(1);
        // 2000 spikes/s: several per bin, some drawn near the bin's end.
        let times = poisson_times(|_| 2000f64.ln(), &[(3, 503)], &mut rng);
        let n = times.len() as f64;
        assert!((n - 1000.0).abs() < 5.0 * 1000f64.sqrt(), "{n} spikes");
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted");
        for &t in &times {
            let row = (t * 1000.0 * 1e6).round() / 1e6;
            assert!((3.0..503.0).contains(&row.trunc()), "{t}");
        }
    }

    #[test]
    fn deal_balances_conditions_per_split() {
        let mut rng = StdRng::seed_from_u64(0);
        let dealt = deal(&[("train", 20), ("val", 8)], 4, &mut rng);
        for split in ["train", "val"] {
            let mut counts = [0; 4];
            for &(s, c) in &dealt {
                if s == split {
                    counts[c] += 1;
                }
            }
            let want = if split == "train" { 5 } else { 2 };
            assert_eq!(counts, [want; 4], "{split}");
        }
    }

    #[test]
    fn populations_scatter_heldout_units_and_sort_ids() {
        let mut rng = StdRng::seed_from_u64(4);
        let p = Population::draw(20, 10, 3, 0.5, &mut rng);
        assert!(p.ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(p.heldout.iter().filter(|&&h| h).count(), 10);
        assert!(p.heldout[..20].iter().any(|&h| h), "not simply appended");
    }
}
