//! `lorenz`: the paper's synthetic benchmark (model spec §9), laid out as an NLB dataset.
//!
//! Each trial is a stretch of the Lorenz attractor (σ 10, ρ 28, β 8/3) from its own random initial
//! condition, settled onto the attractor first. The three coordinates are z-scored over all
//! trials and read out through the population's random linear map to log-rates. Trials last
//! 800 ms (the 600 ms window plus the 200 ms forward window) and are recorded one by one.

use rand::rngs::StdRng;
use rand::Rng;

use super::{
    deal, ms, ms_index, uniform_ms, Counts, FilePlan, Latents, Plan, Population, Scale,
    TableBuilder,
};
use crate::nlb::DatasetName;

const DIM: usize = 3;
const TRIAL_MS: usize = 800;
/// Lorenz time per ms of recording: about three turns of the attractor per trial.
const STEP: f64 = 0.0025;
/// Integration step while settling onto the attractor.
const SETTLE_STEP: f64 = 0.005;

pub(super) fn counts(scale: Scale) -> Counts {
    match scale {
        Scale::Tiny => Counts::new([24, 8, 8, 0], 22, 8),
        Scale::Small => Counts::new([180, 60, 60, 0], 30, 10),
        Scale::Full => Counts::new([1000, 250, 250, 0], 40, 10),
    }
}

fn lorenz(s: [f64; 3]) -> [f64; 3] {
    let [x, y, z] = s;
    [10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z]
}

/// One classical Runge–Kutta step.
fn rk4(s: [f64; 3], h: f64) -> [f64; 3] {
    let add = |a: [f64; 3], b: [f64; 3], f: f64| std::array::from_fn(|i| a[i] + f * b[i]);
    let k1 = lorenz(s);
    let k2 = lorenz(add(s, k1, h / 2.0));
    let k3 = lorenz(add(s, k2, h / 2.0));
    let k4 = lorenz(add(s, k3, h));
    std::array::from_fn(|i| s[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

/// A trial's trajectory, one state per ms, from a random point settled onto the attractor.
fn trajectory(rng: &mut StdRng) -> Vec<[f64; 3]> {
    let mut s = [
        40.0 * rng.random::<f64>() - 20.0,
        40.0 * rng.random::<f64>() - 20.0,
        45.0 * rng.random::<f64>(),
    ];
    for _ in 0..1000 + rng.random_range(0..1000) {
        s = rk4(s, SETTLE_STEP);
    }
    (0..TRIAL_MS)
        .map(|_| {
            let out = s;
            s = rk4(s, STEP);
            out
        })
        .collect()
}

/// Per-coordinate mean and standard deviation over every sample of every trial.
fn moments(trajectories: &[Vec<[f64; 3]>]) -> ([f64; 3], [f64; 3]) {
    let n = trajectories.iter().map(Vec::len).sum::<usize>().max(1) as f64;
    let samples = || trajectories.iter().flatten();
    let mean: [f64; 3] = std::array::from_fn(|i| samples().map(|s| s[i]).sum::<f64>() / n);
    let sd = std::array::from_fn(|i| {
        (samples().map(|s| (s[i] - mean[i]).powi(2)).sum::<f64>() / n)
            .sqrt()
            .max(1e-9)
    });
    (mean, sd)
}

struct Trial {
    start: f64,
    split: &'static str,
}

/// Trial starts with short unrecorded gaps between trials.
fn schedule(splits: &[&'static str], rng: &mut StdRng) -> Vec<Trial> {
    let mut clock = 0.0;
    splits
        .iter()
        .map(|&split| {
            let start = clock;
            clock = ms(start + TRIAL_MS as f64 / 1000.0 + uniform_ms(rng, 0.1, 0.2));
            Trial { start, split }
        })
        .collect()
}

fn file(
    name: String,
    trials: &[Trial],
    paths: &[Vec<[f64; 3]>],
    (mean, sd): ([f64; 3], [f64; 3]),
    with_heldout: bool,
) -> FilePlan {
    let observed: Vec<(i64, i64)> = trials
        .iter()
        .map(|t| (ms_index(t.start), ms_index(t.start) + TRIAL_MS as i64))
        .collect();
    let len = observed.last().map_or(0, |o| o.1) as usize;
    let mut latents = Latents::zeros(len, DIM);
    for (&(a, _), path) in observed.iter().zip(paths) {
        for (i, s) in path.iter().enumerate() {
            let z: [f64; 3] = std::array::from_fn(|d| (s[d] - mean[d]) / sd[d]);
            latents.add(a as usize + i, &z);
        }
    }
    let mut table = TableBuilder::new(trials.len());
    table
        .num("start_time", trials.iter().map(|t| t.start).collect())
        .num(
            "stop_time",
            observed.iter().map(|o| o.1 as f64 / 1000.0).collect(),
        )
        .text(
            "split",
            trials.iter().map(|t| t.split.to_string()).collect(),
        );
    FilePlan {
        name,
        trials: table.build(),
        bool_columns: &[],
        observed,
        latents,
        with_heldout,
        series: Vec::new(),
    }
}

pub(super) fn plan(c: Counts, rng: &mut StdRng) -> Plan {
    let population = Population::draw(c.heldin, c.heldout, DIM, 0.5, rng);
    let (_, subject) = DatasetName::Lorenz.dandi_folder();
    let labels = |dealt: Vec<(&'static str, usize)>| -> Vec<&'static str> {
        dealt.into_iter().map(|(s, _)| s).collect()
    };
    let test = schedule(&labels(deal(&[("test", c.test)], 1, rng)), rng);
    let train = schedule(
        &labels(deal(&[("train", c.train), ("val", c.val)], 1, rng)),
        rng,
    );
    let paths: Vec<Vec<[f64; 3]>> = (0..test.len() + train.len())
        .map(|_| trajectory(rng))
        .collect();
    let norm = moments(&paths);
    let (test_paths, train_paths) = paths.split_at(test.len());
    let files = vec![
        file(
            format!("{subject}_desc-test_ecephys.nwb"),
            &test,
            test_paths,
            norm,
            false,
        ),
        file(
            format!("{subject}_desc-train_ecephys.nwb"),
            &train,
            train_paths,
            norm,
            true,
        ),
    ];
    Plan { population, files }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn trajectories_stay_on_the_attractor() {
        let mut rng = StdRng::seed_from_u64(0);
        let paths: Vec<_> = (0..16).map(|_| trajectory(&mut rng)).collect();
        let (mean, sd) = moments(&paths);
        assert!(paths
            .iter()
            .flatten()
            .all(|s| s.iter().all(|v| v.abs() < 60.0)));
        assert!(
            mean[0].abs() < 10.0 && (15.0..35.0).contains(&mean[2]),
            "{mean:?}"
        );
        assert!(sd.iter().all(|&s| (3.0..15.0).contains(&s)), "{sd:?}");
    }
}
