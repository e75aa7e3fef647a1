//! The spike-smoothing baseline against the reference's own outputs (`submission_smoothing.h5`
//! of the fixture val splits), and `langevin baseline` end to end.
//!
//! Measured on all 14 fixture val splits (the 7 kept here are a subset):
//! * held-in rates equal the reference's bit for bit (float32);
//! * held-out rates differ by a median 4e-4 (20 ms) to 7e-3 (5 ms) relative, at most 3.3e-3–2.8e-2
//!   (20 ms) and 7.8e-2–0.63 (5 ms), the worst on neurons firing ~0.005 spikes/bin;
//! * co-bps differs by at most 4.7e-4 at 20 ms and 8.0e-3 at 5 ms (area2_bump).
//!
//! The held-out gap is the reference's: sklearn's lbfgs stops once its largest gradient entry is
//! under 1e-4, and `reference_coefficients_are_a_tolerance_stop_on_our_objective` shows its
//! coefficients are exactly such a point of the objective we minimise, while ours sit at the
//! minimum itself.

mod common;

use std::path::{Path, PathBuf};

use common::{langevin, success_stdout};
use langevin::baseline::{
    self, fit_poisson, gradient, objective, BaselineOptions, Design, GaussianKernel, NewtonOptions,
};
use langevin::h5::H5File;
use langevin::nlb::files::SplitFiles;
use nalgebra::{DMatrix, DVector};
use ndarray::{Array2, Array3, Ix3};
use predicates::prelude::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Inputs and target of a fixture split (written by the reference pipeline).
fn prep(split: &str) -> PathBuf {
    root().join("tests/fixtures/nlb/prep").join(split)
}

/// The reference smoothing baseline's submission for a fixture split.
fn reference(split: &str) -> PathBuf {
    root()
        .join("tests/fixtures/evaluate")
        .join(split)
        .join("submission_smoothing.h5")
}

fn read3(path: &Path, name: &str) -> Array3<f64> {
    H5File::open(path)
        .unwrap()
        .read_f64(name)
        .unwrap()
        .into_dimensionality::<Ix3>()
        .unwrap()
}

fn rates_for(split: &str) -> baseline::SmoothingRates {
    let dir = prep(split);
    let opts = BaselineOptions::for_dir(&dir, None, None).unwrap();
    baseline::smoothing_rates(&dir, &SplitFiles::default(), &opts).unwrap()
}

/// `(median, max)` of `|ours − theirs| / theirs` (all reference rates are ≥ 1e-9).
fn relative_gap(ours: &Array3<f32>, theirs: &Array3<f64>) -> (f64, f64) {
    assert_eq!(ours.shape(), theirs.shape());
    let mut rel: Vec<f64> = ours
        .iter()
        .zip(theirs)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(1e-30))
        .collect();
    rel.sort_by(f64::total_cmp);
    (rel[rel.len() / 2], *rel.last().unwrap())
}

/// The seven splits with a reference submission in `tests/fixtures/evaluate`, with the measured
/// held-out bounds (median and max relative gap, |Δ co-bps|), 1.5–10× what was measured.
const SPLITS: [(&str, f64, f64, f64); 7] = [
    ("mc_maze-20ms-val", 1e-3, 0.045, 5e-4),
    ("mc_maze-05ms-val", 4e-3, 0.95, 1e-3),
    ("area2_bump-05ms-val", 4e-3, 0.25, 1.2e-2),
    ("dmfc_rsg-20ms-val", 1e-3, 0.015, 1e-4),
    ("mc_rtt-20ms-val", 1e-3, 0.01, 1e-4),
    ("mc_maze_medium-05ms-val", 3e-3, 0.2, 1e-3),
    ("mc_maze_small-20ms-val", 1e-3, 0.02, 1e-4),
];

#[test]
fn rates_match_the_reference_submission() {
    for (split, median_bound, max_bound, _) in SPLITS {
        let ours = rates_for(split);
        let file = reference(split);
        let group = H5File::open(&file).unwrap().members("/").unwrap();
        assert_eq!(group, vec![ours.group.clone()], "{split}: submission group");
        for (key, array) in ours.arrays() {
            let theirs = read3(&file, &format!("{}/{key}", ours.group));
            let (median, max) = relative_gap(array, &theirs);
            if key.ends_with("heldin") {
                assert_eq!(max, 0.0, "{split} {key}: smoothing is deterministic");
            } else {
                assert!(
                    median < median_bound && max < max_bound,
                    "{split} {key}: median {median:.2e}, max {max:.2e}"
                );
            }
        }
        assert!(
            ours.fits
                .iter()
                .all(|f| f.iterations < 40 && f.hessians <= 8),
            "{split}: {:?}",
            ours.fits
        );
    }
}

#[test]
fn co_bps_matches_the_reference_score() {
    let dir = tempfile::tempdir().unwrap();
    for (split, _, _, bps_bound) in SPLITS {
        let out = dir.path().join(format!("{split}.h5"));
        baseline::write_submission(&out, &rates_for(split)).unwrap();
        let target = prep(split).join("eval_target.h5");
        let ours = langevin::evaluate::evaluate_files(&target, &out).unwrap();
        let theirs = langevin::evaluate::evaluate_files(&target, &reference(split)).unwrap();
        let (a, b) = (&ours[0].metrics, &theirs[0].metrics);
        assert!(
            (a.co_bps - b.co_bps).abs() < bps_bound,
            "{split}: co-bps {} vs {}",
            a.co_bps,
            b.co_bps
        );
        // Held-in rates are identical, so the behaviour decoders see almost the same inputs.
        for (x, y) in [(a.vel_r2, b.vel_r2), (a.tp_corr, b.tp_corr)] {
            assert_eq!(x.is_some(), y.is_some());
            if let (Some(x), Some(y)) = (x, y) {
                assert!((x - y).abs() < 1e-3, "{split}: {x} vs {y}");
            }
        }
    }
}

/// Recovers the reference's GLM coefficients from its train rates (`ln r = X̃β` is linear, so a
/// least-squares fit returns β up to float32 rounding) and checks them on our objective: their
/// gradient is under sklearn's 1e-4 stopping tolerance, ours is ~0, and ours is no worse.
#[test]
fn reference_coefficients_are_a_tolerance_stop_on_our_objective() {
    for split in [
        "mc_maze-05ms-val",
        "area2_bump-05ms-val",
        "dmfc_rsg-20ms-val",
    ] {
        let dir = prep(split);
        let opts = BaselineOptions::for_dir(&dir, None, None).unwrap();
        let heldin = read3(&dir.join("train_input.h5"), "train_spikes_heldin");
        let heldout = read3(&dir.join("train_input.h5"), "train_spikes_heldout");
        let ref_rates = read3(
            &reference(split),
            &format!("{}/train_rates_heldout", opts.split.group()),
        );
        let (trials, bins, n_in) = heldin.dim();
        let n = trials * bins;
        let kernel =
            GaussianKernel::new(opts.kern_sd_ms, opts.split.bin_width.ms() as f64).unwrap();
        let spikes: Vec<f32> = heldin.iter().map(|&v| v as f32).collect();
        let smooth = kernel.smooth(&spikes, bins, n_in);
        let x = Array2::from_shape_fn((n, n_in), |(r, c)| (smooth[r * n_in + c] + 1e-4).ln());
        let design = Design::from_features(x.view()).unwrap();
        let xt = DMatrix::from_fn(n, n_in + 1, |r, c| if c < n_in { x[[r, c]] } else { 1.0 });
        let normal = (xt.transpose() * &xt).cholesky().unwrap();
        let n_out = heldout.dim().2;
        let y_all = heldout.into_shape_with_order((n, n_out)).unwrap();
        for j in 0..y_all.ncols() {
            let y: Vec<f64> = y_all.column(j).to_vec();
            let log_rates =
                DVector::from_iterator(n, (0..n).map(|r| ref_rates[[r / bins, r % bins, j]].ln()));
            let theirs: Vec<f64> = normal
                .solve(&(xt.transpose() * log_rates))
                .iter()
                .copied()
                .collect();
            let fit = fit_poisson(&design, &y, opts.alpha, &NewtonOptions::default()).unwrap();
            let ours = fit.beta();
            let max_abs = |g: Vec<f64>| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let g_theirs = max_abs(gradient(&design, &y, opts.alpha, &theirs));
            let g_ours = max_abs(gradient(&design, &y, opts.alpha, &ours));
            assert!(
                g_theirs < 1.05e-4,
                "{split} neuron {j}: reference |g|∞ {g_theirs:e}"
            );
            assert!(g_ours < 1e-12, "{split} neuron {j}: our |g|∞ {g_ours:e}");
            let (f_ours, f_theirs) = (
                objective(&design, &y, opts.alpha, &ours),
                objective(&design, &y, opts.alpha, &theirs),
            );
            assert!(
                f_ours <= f_theirs,
                "{split} neuron {j}: {f_ours} > {f_theirs}"
            );
        }
    }
}

/// Copies a fixture split folder, keeping its name (which carries dataset and bin width).
fn copy_split(split: &str) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let dst = home.path().join(split);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["train_input.h5", "eval_input.h5", "eval_target.h5"] {
        std::fs::copy(prep(split).join(f), dst.join(f)).unwrap();
    }
    (home, dst)
}

#[test]
fn cli_writes_a_submission_that_evaluate_scores() {
    let (_home, dir) = copy_split("mc_maze-20ms-val");
    langevin()
        .arg("baseline")
        .arg("--split")
        .arg(&dir)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("group mc_maze_20")
                .and(predicate::str::contains(
                    "kernel 15 taps (σ = 2 bins), α = 0.01",
                ))
                .and(predicate::str::contains("submission_smoothing.h5")),
        );
    let submission = dir.join("submission_smoothing.h5");
    let out = success_stdout(
        langevin()
            .arg("evaluate")
            .arg("--target")
            .arg(dir.join("eval_target.h5"))
            .arg("--submission")
            .arg(&submission)
            .arg("--json"),
    );
    let ours: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let co_bps = ours[0]["mc_maze_20_split"]["co-bps"].as_f64().unwrap();
    // The reference scores 0.024830717201703236 (reference_metrics.json).
    assert!((co_bps - 0.024830717201703236).abs() < 5e-4, "{co_bps}");
    // Float32 rate arrays under the one group, like the reference's submission.
    let f = H5File::open(&submission).unwrap();
    assert_eq!(
        f.members("mc_maze_20").unwrap(),
        vec![
            "eval_rates_heldin",
            "eval_rates_heldout",
            "train_rates_heldin",
            "train_rates_heldout"
        ]
    );
}

#[test]
fn cli_flags_override_the_tuned_settings() {
    let (_home, dir) = copy_split("mc_rtt-20ms-val");
    let out = dir.join("mine.h5");
    langevin()
        .args(["baseline", "--kern-sd", "60", "--alpha", "0.5", "--split"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "kernel 18 taps (σ = 3 bins), α = 0.5",
        ));
    assert!(out.is_file());
    assert!(!dir.join("submission_smoothing.h5").exists());
}

#[test]
fn cli_failures_say_what_to_fix() {
    let (home, dir) = copy_split("mc_maze-20ms-val");
    langevin()
        .args(["baseline", "--kern-sd", "10", "--split"])
        .arg(&dir)
        .assert()
        .failure()
        .stderr(predicate::str::contains("under one 20 ms bin"));
    let renamed = home.path().join("my-split");
    std::fs::rename(&dir, &renamed).unwrap();
    langevin()
        .args(["baseline", "--split"])
        .arg(&renamed)
        .assert()
        .failure()
        .stderr(predicate::str::contains("{dataset}-{bw:02}ms-{phase}"));
    let empty = home.path().join("mc_maze-05ms-val");
    std::fs::create_dir_all(&empty).unwrap();
    langevin()
        .args(["baseline", "--split"])
        .arg(&empty)
        .assert()
        .failure()
        .stderr(predicate::str::contains("train_input.h5"));
    assert!(!empty.join("submission_smoothing.h5").exists());
}

/// Full-size timing: a synthetic split shaped like mc_maze at 5 ms, test phase (2,295 train and
/// 574 eval trials × 140 bins, 137 held-in and 45 held-out neurons, so 321,300 GLM rows).
/// `cargo test --test baseline -- --ignored --nocapture full_size` prints the time.
#[test]
#[ignore = "slow: fits 45 GLMs on 321k rows"]
fn full_size_mc_maze_5ms_timing() {
    use langevin::h5::{AtomicH5, Data};
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Poisson};

    let (train, eval, bins, n_in, n_out) = (2295, 574, 140, 137, 45);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("mc_maze-05ms-test");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let n = n_in + n_out;
    let loadings: Vec<[f64; 3]> = (0..n)
        .map(|_| {
            [
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            ]
        })
        .collect();
    let base: Vec<f64> = (0..n).map(|_| rng.random_range(-4.5..-1.5)).collect();
    let mut spikes = |trials: usize| {
        let (mut held_in, mut held_out) = (Vec::new(), Vec::new());
        for _ in 0..trials {
            let phase: [f64; 3] = [rng.random(), rng.random(), rng.random()];
            for t in 0..bins {
                let z: Vec<f64> = (0..3)
                    .map(|k| {
                        ((t as f64 / 20.0) * (k + 1) as f64 + std::f64::consts::TAU * phase[k])
                            .sin()
                    })
                    .collect();
                for c in 0..n {
                    let rate = (base[c] + (0..3).map(|k| loadings[c][k] * z[k]).sum::<f64>()).exp();
                    let count = Poisson::new(rate).unwrap().sample(&mut rng) as f32;
                    if c < n_in {
                        held_in.push(count)
                    } else {
                        held_out.push(count)
                    }
                }
            }
        }
        (held_in, held_out)
    };
    let (train_in, train_out) = spikes(train);
    let (eval_in, _) = spikes(eval);
    let mut f = AtomicH5::create(&dir.join("train_input.h5")).unwrap();
    f.write(
        "train_spikes_heldin",
        Data::F32(&train_in, vec![train, bins, n_in]),
    )
    .unwrap();
    f.write(
        "train_spikes_heldout",
        Data::F32(&train_out, vec![train, bins, n_out]),
    )
    .unwrap();
    f.commit().unwrap();
    let mut f = AtomicH5::create(&dir.join("eval_input.h5")).unwrap();
    f.write(
        "eval_spikes_heldin",
        Data::F32(&eval_in, vec![eval, bins, n_in]),
    )
    .unwrap();
    f.commit().unwrap();

    let opts = BaselineOptions::for_dir(&dir, None, None).unwrap();
    let start = std::time::Instant::now();
    let rates = baseline::smoothing_rates(&dir, &SplitFiles::default(), &opts).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let steps: Vec<(usize, usize)> = rates
        .fits
        .iter()
        .map(|f| (f.iterations, f.hessians))
        .collect();
    println!(
        "full-size mc_maze 5 ms: {seconds:.1} s on {} threads; (Newton steps, Hessians) {steps:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    assert_eq!(rates.train_rates_heldout.dim(), (train, bins, n_out));
}
