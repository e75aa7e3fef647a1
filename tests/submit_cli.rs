//! `langevin submit` end to end through the real binary: runs trained for two epochs on the
//! reference fixtures' split folders are turned into one submission file, which `evaluate` scores.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::langevin;
use langevin::h5::H5File;
use predicates::prelude::*;

const FIXTURE_PREP: &str = "tests/fixtures/nlb/prep";

/// A tiny model config for `dataset` at 20 ms in `phase`.
fn config(dir: &Path, dataset: &str, phase: &str) -> PathBuf {
    let path = dir.join(format!("{dataset}-{phase}.toml"));
    std::fs::write(
        &path,
        format!(
            "[data]\ndataset = \"{dataset}\"\nbin_width = 20\nphase = \"{phase}\"\n\n\
             [model]\nhidden_size = 8\nd_ff = 16\nn_samples = 2\n\n\
             [train]\nepochs = 2\nbatch_size = 8\neval_every = 0\nplot_every = 0\n"
        ),
    )
    .unwrap();
    path
}

/// Trains `dataset`'s 20 ms split of `phase` into run `tag` (on the fixture split folders).
fn train(home: &Path, tag: &str, dataset: &str, phase: &str) {
    langevin()
        .arg("train")
        .arg("--config")
        .arg(config(home, dataset, phase))
        .arg("--run-tag")
        .arg(tag)
        .arg("--prep-home")
        .arg(FIXTURE_PREP)
        .arg("--runs-home")
        .arg(home.join("runs"))
        .assert()
        .success();
}

fn submit(home: &Path, tag: &str) -> Command {
    let mut cmd = langevin();
    cmd.arg("submit")
        .arg("--run-tag")
        .arg(tag)
        .arg("--runs-home")
        .arg(home.join("runs"))
        .arg("--prep-home")
        .arg(FIXTURE_PREP);
    cmd
}

const KEYS: [&str; 6] = [
    "eval_rates_heldin",
    "eval_rates_heldin_forward",
    "eval_rates_heldout",
    "eval_rates_heldout_forward",
    "train_rates_heldin",
    "train_rates_heldout",
];

/// The shape each submission array must have, from the split's own tensors.
fn expected_shape(split: &str, key: &str) -> Vec<usize> {
    let dir = Path::new(FIXTURE_PREP).join(split);
    let train = H5File::open(&dir.join("train_input.h5")).unwrap();
    let eval = H5File::open(&dir.join("eval_input.h5")).unwrap();
    let [n_train, t, n_in] = train.shape("train_spikes_heldin").unwrap()[..] else {
        panic!()
    };
    let n_out = train.shape("train_spikes_heldout").unwrap()[2];
    let t_fwd = train.shape("train_spikes_heldin_forward").unwrap()[1];
    let n_eval = eval.shape("eval_spikes_heldin").unwrap()[0];
    let n = if key.starts_with("train") {
        n_train
    } else {
        n_eval
    };
    let bins = if key.ends_with("forward") { t_fwd } else { t };
    let neurons = if key.contains("heldin") { n_in } else { n_out };
    vec![n, bins, neurons]
}

#[test]
fn a_val_run_submits_one_file_that_evaluate_scores_and_resubmits_identically() {
    let home = tempfile::tempdir().unwrap();
    train(home.path(), "exp", "mc_maze", "val");
    train(home.path(), "exp", "area2_bump", "val");
    submit(home.path(), "exp")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "groups: mc_maze_20, area2_bump_20",
        ))
        .stdout(predicate::str::contains("co-bps"))
        .stdout(predicate::str::contains("area2_bump_20"));
    let path = home.path().join("runs/exp/submission-val.h5");
    let file = H5File::open(&path).unwrap();
    for (group, split) in [
        ("mc_maze_20", "mc_maze-20ms-val"),
        ("area2_bump_20", "area2_bump-20ms-val"),
    ] {
        for key in KEYS {
            let name = format!("{group}/{key}");
            assert_eq!(
                file.shape(&name).unwrap(),
                expected_shape(split, key),
                "{name}"
            );
            let values = file.read_f64(&name).unwrap();
            assert!(
                values.iter().all(|v| v.is_finite() && *v >= 0.0),
                "{name} has a NaN or negative rate"
            );
        }
    }
    // The reference's own submission for this split has exactly these groups and keys.
    let reference = H5File::open(Path::new(
        "tests/fixtures/evaluate/mc_maze-20ms-val/submission_truth.h5",
    ))
    .unwrap();
    for key in KEYS {
        assert!(reference.has(&format!("mc_maze_20/{key}")), "{key}");
    }
    drop(file);

    langevin()
        .arg("evaluate")
        .arg("--target")
        .arg(Path::new(FIXTURE_PREP).join("mc_maze-20ms-val/eval_target.h5"))
        .arg("--submission")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("mc_maze_20"));

    let first = std::fs::read(&path).unwrap();
    submit(home.path(), "exp").assert().success();
    assert!(
        std::fs::read(&path).unwrap() == first,
        "same seed, different file"
    );
    submit(home.path(), "exp")
        .arg("--seed")
        .arg("1")
        .assert()
        .success();
    assert!(
        std::fs::read(&path).unwrap() != first,
        "the seed does not reach the sampled passes"
    );
    let leftovers: Vec<_> = std::fs::read_dir(home.path().join("runs/exp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn broken_splits_are_skipped_listed_and_fail_the_command() {
    let home = tempfile::tempdir().unwrap();
    train(home.path(), "exp", "mc_maze", "test");
    train(home.path(), "exp", "mc_maze_small", "test");
    std::fs::remove_file(
        home.path()
            .join("runs/exp/mc_maze_small-20ms-test/best.mpk"),
    )
    .unwrap();
    submit(home.path(), "exp")
        .assert()
        .failure()
        .stdout(predicate::str::contains("groups: mc_maze_20"))
        .stdout(predicate::str::contains("mc_maze_small-20ms-test/best.mpk"))
        .stderr(predicate::str::contains("1 split(s) skipped"));
    let file = H5File::open(&home.path().join("runs/exp/submission-test.h5")).unwrap();
    assert!(file.has("mc_maze_20/eval_rates_heldout"));
    assert!(!file.has("mc_maze_small_20"));
    drop(file);

    // `last` still exists for the split whose best checkpoint is gone.
    submit(home.path(), "exp")
        .arg("--checkpoint")
        .arg("last")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "groups: mc_maze_20, mc_maze_small_20",
        ));
}

#[test]
fn tensors_that_no_longer_match_the_model_name_the_checkpoint() {
    let home = tempfile::tempdir().unwrap();
    train(home.path(), "exp", "mc_maze", "test");
    // A prep folder where mc_maze's split holds another dataset's (narrower) tensors.
    let prep = home.path().join("prep/mc_maze-20ms-test");
    std::fs::create_dir_all(&prep).unwrap();
    for f in ["train_input.h5", "eval_input.h5"] {
        std::fs::copy(
            Path::new(FIXTURE_PREP).join("area2_bump-20ms-test").join(f),
            prep.join(f),
        )
        .unwrap();
    }
    langevin()
        .arg("submit")
        .arg("--run-tag")
        .arg("exp")
        .arg("--runs-home")
        .arg(home.path().join("runs"))
        .arg("--prep-home")
        .arg(home.path().join("prep"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("no split could be submitted"))
        .stderr(predicate::str::contains("mc_maze-20ms-test/best.mpk"))
        .stderr(predicate::str::contains("do not match"));
    assert!(!home.path().join("runs/exp/submission-test.h5").exists());
}

#[test]
fn an_unknown_run_tag_names_the_folder() {
    let home = tempfile::tempdir().unwrap();
    submit(home.path(), "nope")
        .assert()
        .failure()
        .stderr(predicate::str::contains("runs/nope does not exist"));
}

#[test]
fn a_val_split_without_its_target_is_written_but_fails_the_command() {
    let home = tempfile::tempdir().unwrap();
    let prep = home.path().join("prep");
    let split = "mc_maze-20ms-val";
    std::fs::create_dir_all(prep.join(split)).unwrap();
    for f in ["train_input.h5", "eval_input.h5"] {
        std::fs::copy(
            Path::new(FIXTURE_PREP).join(split).join(f),
            prep.join(split).join(f),
        )
        .unwrap();
    }
    langevin()
        .arg("train")
        .arg("--config")
        .arg(config(home.path(), "mc_maze", "val"))
        .args(["--run-tag", "untargeted", "--prep-home"])
        .arg(&prep)
        .arg("--runs-home")
        .arg(home.path().join("runs"))
        .assert()
        .success();
    langevin()
        .args(["submit", "--run-tag", "untargeted", "--prep-home"])
        .arg(&prep)
        .arg("--runs-home")
        .arg(home.path().join("runs"))
        .assert()
        .failure()
        .stdout(predicate::str::contains("not scored"))
        .stderr(predicate::str::contains(
            "1 val split(s) could not be scored",
        ));
    assert!(home
        .path()
        .join("runs/untargeted/submission-val.h5")
        .is_file());
}
