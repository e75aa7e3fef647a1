//! Synthetic recordings in the DANDI layout with known firing rates.
//!
//! Spikes are Poisson draws from log-linear rates of a latent dynamical system: for the maze
//! datasets, condition-dependent rotations that start at movement onset; behaviour is a noisy
//! linear readout of the latents at the dataset's lag. The files go through `preprocess` like
//! the real ones, which is what the preprocessing benchmark and the quickstart need.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, Normal};

use crate::nlb::DatasetName;
use crate::nwb::{self, Column, NwbFile, Series, Trials, Units};

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

/// A synthesis request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(
        "synth makes maze-family datasets (mc_maze, mc_maze_large/medium/small) so far, not {0}"
    )]
    Unsupported(DatasetName),
    #[error(transparent)]
    Nwb(#[from] nwb::NwbError),
    #[error("{path}: {msg}")]
    Io { path: PathBuf, msg: String },
}

/// Counts of a maze-like dataset at a scale: (train, val, test trials, held-in, held-out units).
fn maze_counts(dataset: DatasetName, scale: Scale) -> (usize, usize, usize, usize, usize) {
    match (scale, dataset) {
        (Scale::Tiny, _) => (24, 8, 8, 22, 8),
        (Scale::Small, _) => (180, 60, 60, 60, 20),
        (Scale::Full, DatasetName::McMazeLarge) => (375, 125, 100, 122, 40),
        (Scale::Full, DatasetName::McMazeMedium) => (188, 62, 100, 114, 38),
        (Scale::Full, DatasetName::McMazeSmall) => (75, 25, 100, 107, 35),
        (Scale::Full, _) => (1721, 574, 574, 137, 45),
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct SynthReport {
    pub files: Vec<PathBuf>,
    pub trials: usize,
    pub units: usize,
}

struct Trial {
    start: f64,
    stop: f64,
    onset: f64,
    cond: usize,
    split: &'static str,
}

/// Latent state (4-D) at time `t` seconds after movement onset for a condition.
fn latent(cond: usize, n_cond: usize, t: f64) -> [f64; 4] {
    let angle = std::f64::consts::TAU * cond as f64 / n_cond as f64;
    let freq = 1.5 + 0.5 * (cond % 3) as f64;
    let env = (-((t - 0.15) / 0.2).powi(2)).exp();
    let prep = (-((t + 0.2) / 0.25).powi(2)).exp();
    let phase = std::f64::consts::TAU * freq * t + angle;
    [
        env * phase.cos(),
        env * phase.sin(),
        prep * angle.cos(),
        prep * angle.sin(),
    ]
}

/// Writes a maze-like dataset under `data_home` in the DANDI layout.
pub fn synth(
    data_home: &Path,
    dataset: DatasetName,
    scale: Scale,
    seed: u64,
) -> Result<SynthReport, SynthError> {
    if !dataset.is_maze() {
        return Err(SynthError::Unsupported(dataset));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (n_train, n_val, n_test, n_in, n_out) = maze_counts(dataset, scale);
    let n_units = n_in + n_out;
    let n_cond = 12;
    let normal = Normal::new(0.0, 1.0).expect("valid normal");
    let readout: Vec<[f64; 4]> = (0..n_units)
        .map(|_| std::array::from_fn(|_| 0.8 * normal.sample(&mut rng)))
        .collect();
    let base: Vec<f64> = (0..n_units)
        .map(|_| (5.0 + 25.0 * rng.random::<f64>()).ln())
        .collect();
    let lag = dataset.params().lag as f64 / 1000.0;

    let mut splits: Vec<&'static str> = [("train", n_train), ("val", n_val), ("test", n_test)]
        .iter()
        .flat_map(|&(s, n)| std::iter::repeat_n(s, n))
        .collect();
    // Interleave splits as NLB does, deterministically from the seed.
    for i in (1..splits.len()).rev() {
        let j = rng.random_range(0..=i);
        splits.swap(i, j);
    }
    let mut trials_by_file: [Vec<Trial>; 2] = [Vec::new(), Vec::new()];
    let mut clocks = [0.0f64; 2];
    for split in splits {
        let f = usize::from(split != "test");
        let start = clocks[f];
        let duration = 1.3 + 0.3 * rng.random::<f64>();
        let onset = start + 0.45 + 0.15 * rng.random::<f64>();
        let stop = ((start + duration) * 1000.0).round() / 1000.0;
        trials_by_file[f].push(Trial {
            start,
            stop,
            onset: (onset * 1000.0).round() / 1000.0,
            cond: rng.random_range(0..n_cond),
            split,
        });
        clocks[f] = ((stop + 0.05 + 0.1 * rng.random::<f64>()) * 1000.0).round() / 1000.0;
    }

    let (set, subject) = dataset.dandi_folder();
    let dir = data_home.join(set).join(subject);
    std::fs::create_dir_all(&dir).map_err(|e| SynthError::Io {
        path: dir.clone(),
        msg: e.to_string(),
    })?;
    let session = match dataset {
        DatasetName::McMaze => "full",
        DatasetName::McMazeLarge => "large",
        DatasetName::McMazeMedium => "medium",
        _ => "small",
    };
    let mut files = Vec::new();
    for (f, trials) in trials_by_file.iter().enumerate() {
        let is_train = f == 1;
        let units_here = if is_train { n_units } else { n_in };
        let mut units = Units::default();
        for u in 0..units_here {
            units.ids.push(u as i64);
            units.heldout.push(u >= n_in);
            units
                .obs_intervals
                .push(trials.iter().map(|t| [t.start, t.stop]).collect());
            let mut times = Vec::new();
            for t in trials {
                let rate = |time: f64| {
                    let x = latent(t.cond, n_cond, time - t.onset);
                    let drive: f64 = readout[u].iter().zip(&x).map(|(w, v)| w * v).sum();
                    (base[u] + drive).exp()
                };
                // Time rescaling: spikes where the integrated rate crosses Exp(1) draws.
                let mut need: f64 = Exp1.sample(&mut rng);
                let steps = ((t.stop - t.start) * 1000.0).round() as usize;
                for ms in 0..steps {
                    let time = t.start + ms as f64 / 1000.0;
                    need -= rate(time) / 1000.0;
                    while need <= 0.0 {
                        times.push(((time + rng.random::<f64>() / 1000.0) * 1e6).round() / 1e6);
                        need += Distribution::<f64>::sample(&Exp1, &mut rng);
                    }
                }
            }
            units.spike_times.push(times);
        }
        let mut columns = BTreeMap::new();
        let col = |f: &dyn Fn(&Trial) -> f64| Column::Num(trials.iter().map(f).collect());
        columns.insert("start_time".into(), col(&|t| t.start));
        columns.insert("stop_time".into(), col(&|t| t.stop));
        columns.insert("move_onset_time".into(), col(&|t| t.onset));
        columns.insert(
            "split".into(),
            Column::Str(trials.iter().map(|t| t.split.to_string()).collect()),
        );
        let mut series = Vec::new();
        if is_train {
            columns.insert("trial_type".into(), col(&|t| (t.cond / 3) as f64));
            columns.insert("trial_version".into(), col(&|t| (t.cond % 3) as f64));
            series = behaviour(trials, n_cond, lag, &mut rng);
        }
        let file = NwbFile {
            path: PathBuf::new(),
            units,
            trials: Trials {
                len: trials.len(),
                columns,
            },
            series,
        };
        let name = if is_train {
            format!("{subject}_ses-{session}_desc-train_behavior+ecephys.nwb")
        } else {
            format!("{subject}_ses-{session}_desc-test_ecephys.nwb")
        };
        let path = dir.join(name);
        nwb::write(&path, &file, &format!("langevin synthetic {dataset}"), &[])?;
        files.push(path);
    }
    Ok(SynthReport {
        files,
        trials: n_train + n_val + n_test,
        units: n_units,
    })
}

/// Hand velocity (a noisy readout of the latents `lag` earlier) and its integral, at 1 kHz over
/// each trial.
fn behaviour(trials: &[Trial], n_cond: usize, lag: f64, rng: &mut impl Rng) -> Vec<Series> {
    let noise = Normal::new(0.0, 0.05).expect("valid normal");
    let (mut times, mut vel, mut pos) = (Vec::new(), Vec::new(), Vec::new());
    let (mut px, mut py) = (0.0, 0.0);
    for t in trials {
        let steps = ((t.stop - t.start) * 1000.0).round() as usize;
        for ms in 0..steps {
            let time = ((t.start * 1000.0).round() + ms as f64) / 1000.0;
            let x = latent(t.cond, n_cond, time - t.onset - lag);
            let (vx, vy) = (
                100.0 * (x[0] + noise.sample(rng)),
                100.0 * (x[1] + noise.sample(rng)),
            );
            px += vx / 1000.0;
            py += vy / 1000.0;
            times.push(time);
            vel.extend([vx, vy]);
            pos.extend([px, py]);
        }
    }
    let xy = vec!["x".to_string(), "y".to_string()];
    vec![
        Series {
            name: "hand_pos".into(),
            channels: xy.clone(),
            times: times.clone(),
            data: pos,
        },
        Series {
            name: "hand_vel".into(),
            channels: xy,
            times,
            data: vel,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlb::preprocess::{run, PreprocessOptions};
    use crate::nlb::{BinWidth, Phase};

    #[test]
    fn tiny_maze_goes_through_preprocess() {
        let home = tempfile::tempdir().unwrap();
        let report = synth(home.path(), DatasetName::McMaze, Scale::Tiny, 7).unwrap();
        assert_eq!(report.files.len(), 2);
        let prep = tempfile::tempdir().unwrap();
        let reports = run(&PreprocessOptions {
            data_home: home.path().to_path_buf(),
            prep_home: prep.path().to_path_buf(),
            datasets: vec![DatasetName::McMaze],
            bin_widths: BinWidth::ALL.to_vec(),
            phases: Phase::ALL.to_vec(),
            files: Default::default(),
            progress: false,
        })
        .unwrap();
        let val20 = reports
            .iter()
            .find(|r| r.split.dir_name() == "mc_maze-20ms-val")
            .unwrap();
        assert_eq!((val20.train_trials, val20.eval_trials), (24, 8));
        assert_eq!((val20.heldin, val20.heldout, val20.bins), (22, 8, 35));
    }

    #[test]
    fn same_seed_same_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ra = synth(a.path(), DatasetName::McMazeSmall, Scale::Tiny, 3).unwrap();
        let rb = synth(b.path(), DatasetName::McMazeSmall, Scale::Tiny, 3).unwrap();
        for (x, y) in ra.files.iter().zip(&rb.files) {
            assert!(std::fs::read(x).unwrap() == std::fs::read(y).unwrap());
        }
    }
}
