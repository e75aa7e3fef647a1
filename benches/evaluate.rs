//! Evaluation cost at full mc_maze size (val phase): 1721 train / 574 eval trials, T = 140 at
//! 5 ms, 137 held-in + 45 held-out neurons, 2-D hand velocity, 100 PSTH conditions, 40 forward
//! bins. Training scores itself every few epochs, so the whole group should take well under a
//! second. Data are synthetic (seeded): smooth low-dimensional latents, log-linear rates, Poisson
//! spikes, velocity linear in the latents plus noise.
//!
//! `files` is what `langevin evaluate` does: the same group written as a gzip target file and a
//! float32 submission file (uncompressed, as `langevin submit` writes it), read and scored.

use std::path::PathBuf;
use std::sync::LazyLock;

use langevin::evaluate::{
    bits_per_spike, evaluate_files, evaluate_group, psth_r2, velocity_r2, Dataset, DecodeSplit,
    GroupRates, RatePair, TargetGroup,
};
use langevin::h5::{AtomicH5, Data};
use ndarray::{s, Array2, Array3, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, Poisson};

const N_TRAIN: usize = 1721;
const N_EVAL: usize = 574;
const T: usize = 140;
const T_FWD: usize = 40;
const N_IN: usize = 137;
const N_OUT: usize = 45;
const N_COND: usize = 100;
const LATENTS: usize = 8;

struct Group {
    target: TargetGroup,
    train_rates: Array3<f64>,
    eval_rates: Array3<f64>,
    eval_forward_rates: Array3<f64>,
}

impl Group {
    fn rates(&self) -> GroupRates<'_> {
        GroupRates {
            eval: RatePair::split(self.eval_rates.view(), N_IN),
            train: Some(RatePair::split(self.train_rates.view(), N_IN)),
            eval_forward: Some(RatePair::split(self.eval_forward_rates.view(), N_IN)),
        }
    }
}

/// Latents of trial `i` (its condition sets the phase) at bins `0..len` from `start`.
fn latents(cond: usize, jitter: f64, start: usize, len: usize) -> Array2<f64> {
    Array2::from_shape_fn((len, LATENTS), |(t, k)| {
        let time = (start + t) as f64 * 0.005;
        let freq = 1.0 + k as f64 * 0.7;
        (std::f64::consts::TAU * freq * time + cond as f64 * 0.37 * (k + 1) as f64 + jitter).sin()
    })
}

fn build() -> Group {
    let mut rng = StdRng::seed_from_u64(0);
    let n_all = N_IN + N_OUT;
    let normal = Normal::new(0.0, 1.0).expect("valid normal");
    let readout = Array2::from_shape_fn((LATENTS, n_all), |_| 0.4 * normal.sample(&mut rng));
    let bias: Vec<f64> = (0..n_all).map(|_| rng.random_range(-3.0..-0.5)).collect();
    let decoder = Array2::from_shape_fn((LATENTS, 2), |_| normal.sample(&mut rng));

    let make = |conds: &[usize], start: usize, len: usize, rng: &mut StdRng| {
        let n = conds.len();
        let mut rates = Array3::<f64>::zeros((n, len, n_all));
        let mut behavior = Array3::<f64>::zeros((n, len, 2));
        for (i, &cond) in conds.iter().enumerate() {
            let z = latents(cond, 0.2 * normal.sample(rng), start, len);
            let mut logr = z.dot(&readout);
            for mut row in logr.rows_mut() {
                for (v, b) in row.iter_mut().zip(&bias) {
                    *v = (*v + b).exp();
                }
            }
            rates.slice_mut(s![i, .., ..]).assign(&logr);
            let mut vel = z.dot(&decoder);
            vel.mapv_inplace(|v| v + 0.3 * normal.sample(rng));
            behavior.slice_mut(s![i, .., ..]).assign(&vel);
        }
        (rates, behavior)
    };
    let train_conds: Vec<usize> = (0..N_TRAIN).map(|i| i % N_COND).collect();
    let eval_conds: Vec<usize> = (0..N_EVAL).map(|i| (i * 7) % N_COND).collect();
    let (train_rates, train_behavior) = make(&train_conds, 0, T, &mut rng);
    let (eval_rates, eval_behavior) = make(&eval_conds, 0, T, &mut rng);
    let (eval_forward_rates, _) = make(&eval_conds, T, T_FWD, &mut rng);

    let mut spikes = |rates: &Array3<f64>| {
        rates.mapv(|r| Poisson::new(r).expect("positive rate").sample(&mut rng))
    };
    let eval_spikes = spikes(&eval_rates);
    let fwd_spikes = spikes(&eval_forward_rates);

    let mut eval_cond_idx = vec![Vec::new(); N_COND];
    for (i, &c) in eval_conds.iter().enumerate() {
        eval_cond_idx[c].push(i);
    }
    let mut psth = Array3::<f64>::zeros((N_COND, T, n_all));
    for (c, trials) in eval_cond_idx.iter().enumerate() {
        for &i in trials {
            let mut p = psth.slice_mut(s![c, .., ..]);
            p += &eval_rates.slice(s![i, .., ..]);
        }
        psth.slice_mut(s![c, .., ..])
            .mapv_inplace(|v| v / trials.len().max(1) as f64);
    }

    let noisy = |a: &Array3<f64>, rng: &mut StdRng| {
        a.mapv(|r| (r * (1.0 + 0.2 * normal.sample(rng))).max(1e-4))
    };
    let train_pred = noisy(&train_rates, &mut rng);
    let eval_pred = noisy(&eval_rates, &mut rng);
    let fwd_pred = noisy(&eval_forward_rates, &mut rng);

    Group {
        target: TargetGroup {
            eval_spikes_heldout: eval_spikes.slice(s![.., .., N_IN..]).to_owned(),
            train_behavior: Some(train_behavior.into_dyn()),
            eval_behavior: Some(eval_behavior.into_dyn()),
            psth: Some(psth),
            eval_cond_idx: Some(eval_cond_idx),
            eval_spikes_heldin_forward: Some(fwd_spikes.slice(s![.., .., ..N_IN]).to_owned()),
            eval_spikes_heldout_forward: Some(fwd_spikes.slice(s![.., .., N_IN..]).to_owned()),
            ..TargetGroup::default()
        },
        train_rates: train_pred,
        eval_rates: eval_pred,
        eval_forward_rates: fwd_pred,
    }
}

static DATA: LazyLock<Group> = LazyLock::new(build);

/// `eval_target.h5` and `submission.h5` holding [`DATA`], in a folder kept for the whole run.
static FILES: LazyLock<(tempfile::TempDir, PathBuf, PathBuf)> = LazyLock::new(|| {
    let data = &*DATA;
    let dir = tempfile::tempdir().expect("temporary folder");
    let (target, submission) = (dir.path().join("eval_target.h5"), dir.path().join("sub.h5"));
    let f32s = |a: &Array3<f64>| -> (Vec<f32>, Vec<usize>) {
        (a.iter().map(|&v| v as f32).collect(), a.shape().to_vec())
    };
    let mut t = AtomicH5::create(&target).expect("target file");
    let tg = &data.target;
    let behavior = |b: &Option<ndarray::ArrayD<f64>>| {
        b.as_ref()
            .expect("behaviour built")
            .view()
            .into_dimensionality()
            .expect("3-D behaviour")
            .to_owned()
    };
    for (key, a) in [
        ("eval_spikes_heldout", tg.eval_spikes_heldout.clone()),
        ("train_behavior", behavior(&tg.train_behavior)),
        ("eval_behavior", behavior(&tg.eval_behavior)),
        ("psth", tg.psth.clone().expect("psth built")),
        (
            "eval_spikes_heldin_forward",
            tg.eval_spikes_heldin_forward
                .clone()
                .expect("forward built"),
        ),
        (
            "eval_spikes_heldout_forward",
            tg.eval_spikes_heldout_forward
                .clone()
                .expect("forward built"),
        ),
    ] {
        let (v, shape) = f32s(&a);
        t.write(&format!("mc_maze/{key}"), Data::F32(&v, shape))
            .expect("target key");
    }
    let cond: Vec<Vec<i32>> = tg
        .eval_cond_idx
        .as_ref()
        .expect("conditions built")
        .iter()
        .map(|c| c.iter().map(|&i| i as i32).collect())
        .collect();
    t.write("mc_maze/eval_cond_idx", Data::VlenI32(&cond))
        .expect("conditions");
    t.commit().expect("target written");
    let mut sub = AtomicH5::create(&submission).expect("submission file");
    for (prefix, suffix, a) in [
        ("train_rates", "", &data.train_rates),
        ("eval_rates", "", &data.eval_rates),
        ("eval_rates", "_forward", &data.eval_forward_rates),
    ] {
        for (part, range) in [("heldin", 0..N_IN), ("heldout", N_IN..N_IN + N_OUT)] {
            let (v, shape) = f32s(&a.slice(s![.., .., range]).to_owned());
            sub.write_uncompressed(
                &format!("mc_maze/{prefix}_{part}{suffix}"),
                Data::F32(&v, shape),
            )
            .expect("rates");
        }
    }
    sub.commit().expect("submission written");
    (dir, target, submission)
});

fn main() {
    divan::main();
}

/// Everything `evaluate` computes for one mc_maze group: co-bps, vel R2, psth R2, fp-bps.
#[divan::bench(sample_count = 10)]
fn full_group(bencher: divan::Bencher) {
    let data = &*DATA;
    bencher.bench(|| evaluate_group(Dataset::McMaze, &data.target, &data.rates()).unwrap());
}

/// `langevin evaluate` on the group's files: reading and scoring.
#[divan::bench(sample_count = 10)]
fn files(bencher: divan::Bencher) {
    let (_, target, submission) = &*FILES;
    bencher.bench(|| evaluate_files(target, submission).unwrap());
}

#[divan::bench(sample_count = 10)]
fn co_bps(bencher: divan::Bencher) {
    let data = &*DATA;
    let heldout = data.eval_rates.slice(s![.., .., N_IN..]);
    bencher.bench(|| bits_per_spike(heldout, data.target.eval_spikes_heldout.view()).unwrap());
}

fn split<'a>(
    rates: &'a Array3<f64>,
    behavior: &'a Option<ndarray::ArrayD<f64>>,
) -> DecodeSplit<'a> {
    DecodeSplit {
        rates: RatePair::split(rates.view(), N_IN),
        behavior: behavior
            .as_ref()
            .expect("behaviour built")
            .view()
            .into_dimensionality()
            .expect("3-D behaviour"),
        decode_mask: None,
    }
}

#[divan::bench(sample_count = 10)]
fn vel_r2(bencher: divan::Bencher) {
    let data = &*DATA;
    bencher.bench(|| {
        velocity_r2(
            split(&data.train_rates, &data.target.train_behavior),
            split(&data.eval_rates, &data.target.eval_behavior),
        )
        .unwrap()
    });
}

#[divan::bench(sample_count = 10)]
fn psth(bencher: divan::Bencher) {
    let data = &*DATA;
    let t = &data.target;
    bencher.bench(|| {
        psth_r2(
            t.psth.as_ref().expect("psth built").view(),
            RatePair::split(data.eval_rates.view(), N_IN),
            t.eval_cond_idx.as_ref().expect("conditions built"),
            None,
        )
        .unwrap()
    });
}

/// Sanity check of the synthetic data, so a broken generator cannot make the timings meaningless.
#[divan::bench(sample_count = 1)]
fn scores_are_plausible() -> f64 {
    let data = &*DATA;
    let m = evaluate_group(Dataset::McMaze, &data.target, &data.rates()).unwrap();
    assert!(m.co_bps > 0.0, "{m:?}");
    assert!(m.vel_r2.unwrap() > 0.5, "{m:?}");
    assert!(m.psth_r2.unwrap() > 0.5, "{m:?}");
    assert_eq!(data.eval_rates.len_of(Axis(0)), N_EVAL);
    m.co_bps
}
