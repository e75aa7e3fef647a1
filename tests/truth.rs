//! Ground-truth rates of a synthetic split: `preprocess` writes `truth.h5` on the grid of the
//! split's submission arrays, and `langevin evaluate --truth` scores a submission against it.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use langevin::evaluate::evaluate_files_with_truth;
use langevin::h5::{AtomicH5, Data, H5File};
use langevin::nlb::preprocess::{self, PreprocessOptions};
use langevin::nlb::{BinWidth, DatasetName, Phase};
use langevin::synth::{synth, Scale};
use predicates::prelude::*;
use rand::{Rng, SeedableRng};

const GROUP: &str = "mc_maze_20";

/// The six arrays of a submission, with the spike tensor (file, key) each is predicted from.
const ARRAYS: [(&str, &str, &str); 6] = [
    ("eval_rates_heldin", "eval_input.h5", "eval_spikes_heldin"),
    (
        "eval_rates_heldin_forward",
        "eval_target.h5",
        "mc_maze_20/eval_spikes_heldin_forward",
    ),
    ("eval_rates_heldout", "eval_input.h5", "eval_spikes_heldout"),
    (
        "eval_rates_heldout_forward",
        "eval_target.h5",
        "mc_maze_20/eval_spikes_heldout_forward",
    ),
    (
        "train_rates_heldin",
        "train_input.h5",
        "train_spikes_heldin",
    ),
    (
        "train_rates_heldout",
        "train_input.h5",
        "train_spikes_heldout",
    ),
];

/// A tiny synthetic mc_maze preprocessed at 20 ms (both phases); returns the val split folder.
fn prepared(home: &Path) -> PathBuf {
    let data_home = home.join("data");
    synth(&data_home, DatasetName::McMaze, Scale::Tiny, 3).unwrap();
    let prep_home = home.join("prep");
    preprocess::run(&PreprocessOptions {
        data_home,
        prep_home: prep_home.clone(),
        datasets: vec![DatasetName::McMaze],
        bin_widths: vec!["20".parse::<BinWidth>().unwrap()],
        phases: Phase::ALL.to_vec(),
        files: Default::default(),
        progress: false,
        companion: Some(langevin::synth::truth::companion),
    })
    .unwrap();
    assert!(
        !prep_home.join("mc_maze-20ms-test/truth.h5").exists(),
        "test splits have no held-out units to score: no truth"
    );
    prep_home.join("mc_maze-20ms-val")
}

fn read(path: &Path, key: &str) -> (Vec<f64>, Vec<usize>) {
    let a = H5File::open(path).unwrap().read_f64(key).unwrap();
    (a.iter().copied().collect(), a.shape().to_vec())
}

#[test]
fn truth_lies_on_the_split_grid_and_predicts_the_counts() {
    let home = tempfile::tempdir().unwrap();
    let dir = prepared(home.path());
    let truth = dir.join("truth.h5");
    let f = H5File::open(&truth).unwrap();
    for (key, file, spikes) in ARRAYS {
        let want = H5File::open(&dir.join(file))
            .unwrap()
            .shape(spikes)
            .unwrap();
        let name = format!("{GROUP}/{key}");
        assert_eq!(f.shape(&name).unwrap(), want, "{key} vs {file}:{spikes}");
        let (values, _) = read(&truth, &name);
        assert!(
            values.iter().all(|v| v.is_finite() && *v > 0.0),
            "{key}: every true rate is a positive expected count"
        );
    }
    // Over every eval held-out bin, the spikes sum to the truth's total within Poisson noise;
    // so do they on every other grid (a shifted window would miss by far more here, the rates
    // change quickly around movement onset).
    for (key, file, spikes) in ARRAYS {
        let (spikes, _) = read(&dir.join(file), spikes);
        let (rates, _) = read(&truth, &format!("{GROUP}/{key}"));
        let (mut observed, mut expected, mut bins) = (0.0, 0.0, 0usize);
        for (&n, &r) in spikes.iter().zip(&rates) {
            if !n.is_nan() {
                observed += n;
                expected += r;
                bins += 1;
            }
        }
        assert!(bins > 500, "{key}: {bins} bins");
        assert!(
            (observed - expected).abs() < 5.0 * expected.sqrt(),
            "{key}: {observed} spikes in {bins} bins, the truth expects {expected:.1}"
        );
    }
}

/// A submission of independent random rates around the truth's mean: no information.
fn write_random_submission(truth: &Path, out: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut f = AtomicH5::create(out).unwrap();
    for (key, _, _) in ARRAYS {
        let name = format!("{GROUP}/{key}");
        let (values, shape) = read(truth, &name);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let random: Vec<f32> = values
            .iter()
            .map(|_| (mean * rng.random_range(0.2..1.8)) as f32)
            .collect();
        f.write(&name, Data::F32(&random, shape)).unwrap();
    }
    f.commit().unwrap();
}

fn evaluate(dir: &Path, submission: &Path, truth: &Path) -> Command {
    let mut cmd = common::langevin();
    cmd.env("RUST_LOG", "warn")
        .arg("evaluate")
        .arg("--target")
        .arg(dir.join("eval_target.h5"))
        .arg("--submission")
        .arg(submission)
        .arg("--truth")
        .arg(truth);
    cmd
}

#[test]
fn evaluate_scores_submissions_against_the_truth() {
    let home = tempfile::tempdir().unwrap();
    let dir = prepared(home.path());
    let truth = dir.join("truth.h5");

    // The truth as a submission: R² 1, and its co-bps is the ceiling column.
    evaluate(&dir, &truth, &truth).assert().success().stdout(
        predicate::str::contains("rate R2")
            .and(predicate::str::contains("truth co-bps"))
            .and(predicate::str::contains("fp-bps")),
    );
    let out = common::success_stdout(evaluate(&dir, &truth, &truth).arg("--json"));
    // The NLB keys in their order, then the truth's (serde_json's map would sort them).
    let text = String::from_utf8(out.clone()).unwrap();
    let at = |k: &str| {
        text.find(&format!("\"{k}\""))
            .unwrap_or_else(|| panic!("{k}: {text}"))
    };
    let order = [
        "co-bps",
        "vel R2",
        "psth R2",
        "fp-bps",
        "rate R2",
        "truth co-bps",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let scores = &json[0]["mc_maze_20_split"];
    assert_eq!(scores.as_object().unwrap().len(), order.len());
    assert_eq!(scores["rate R2"].as_f64(), Some(1.0));
    let ceiling = scores["truth co-bps"].as_f64().unwrap();
    assert_eq!(scores["co-bps"].as_f64(), Some(ceiling));
    assert!(
        ceiling > 0.0,
        "the true rates beat the mean rate: {ceiling}"
    );

    // Random rates: below the ceiling on both counts.
    let random = home.path().join("random.h5");
    write_random_submission(&truth, &random);
    let (results, scores) =
        evaluate_files_with_truth(&dir.join("eval_target.h5"), &random, Some(&truth)).unwrap();
    let score = scores[0].unwrap();
    assert_eq!(score.truth_co_bps, ceiling);
    assert!(
        results[0].metrics.co_bps < ceiling - 0.05,
        "random co-bps {} vs truth {ceiling}",
        results[0].metrics.co_bps
    );
    assert!(score.rate_r2 < 0.5, "random rate R2 {}", score.rate_r2);

    // A truth file of the wrong shape is named, with its group, key and shape.
    let bad = home.path().join("bad_truth.h5");
    let mut f = AtomicH5::create(&bad).unwrap();
    for key in ["eval_rates_heldin", "eval_rates_heldout"] {
        let (values, shape) = read(&truth, &format!("{GROUP}/{key}"));
        let (n, t, k) = (shape[0], shape[1] - 1, shape[2]);
        let cut: Vec<f32> = values
            .chunks(shape[1] * k)
            .flat_map(|trial| trial[..t * k].iter().map(|&v| v as f32))
            .collect();
        f.write(&format!("{GROUP}/{key}"), Data::F32(&cut, vec![n, t, k]))
            .unwrap();
    }
    f.commit().unwrap();
    evaluate(&dir, &truth, &bad).assert().failure().stderr(
        predicate::str::contains("bad_truth.h5")
            .and(predicate::str::contains(GROUP))
            .and(predicate::str::contains("truth `eval_rates_heldout`"))
            .and(predicate::str::contains("target `eval_spikes_heldout`")),
    );
}
