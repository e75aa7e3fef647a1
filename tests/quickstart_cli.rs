//! `langevin quickstart` end to end: synthetic data → split → trained run → submission, scored
//! beside the smoothing baseline and the ground truth.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn quickstart(dir: &Path, scale: &str, epochs: usize) -> assert_cmd::assert::Assert {
    Command::cargo_bin("langevin")
        .unwrap()
        .env_remove("RUST_LOG")
        .args(["quickstart", "--scale", scale, "--epochs"])
        .arg(epochs.to_string())
        .arg("--dir")
        .arg(dir)
        .assert()
}

/// The co-bps column of the row named `name` in the closing table.
fn co_bps(stdout: &str, name: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(name) && !l.contains(':'))
        .unwrap_or_else(|| panic!("no `{name}` row in:\n{stdout}"));
    line[name.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no co-bps in `{line}`"))
}

#[test]
fn the_trained_model_beats_the_smoothing_baseline_and_the_truth_beats_both() {
    let dir = tempfile::tempdir().unwrap();
    // 80 of the quick config's 200 epochs: past the KL and L2 ramps, about a minute and a half.
    let out = quickstart(dir.path(), "small", 80).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let model = co_bps(&stdout, "LangevinFlow");
    let smoothing = co_bps(&stdout, "smoothing baseline");
    let truth = co_bps(&stdout, "ground truth");
    assert!(
        model > smoothing,
        "LangevinFlow co-bps {model} does not beat the smoothing baseline's {smoothing}"
    );
    assert!(
        truth > model,
        "ground truth {truth} should bound the model {model}"
    );

    let run = dir.path().join("runs/quickstart");
    for file in [
        "submission-val.h5",
        "mc_maze-20ms-val/metrics.csv",
        "mc_maze-20ms-val/best.mpk",
        "mc_maze-20ms-val/last.mpk",
        "mc_maze-20ms-val/summary.json",
        "mc_maze-20ms-val/config.toml",
    ] {
        assert!(run.join(file).exists(), "{file} missing from the run");
    }
    let split = dir.path().join("prep/mc_maze-20ms-val");
    for file in ["eval_target.h5", "truth.h5", "submission_smoothing.h5"] {
        assert!(split.join(file).exists(), "{file} missing from the split");
    }
    assert!(dir
        .path()
        .join("data/000128/sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb")
        .exists());
}

#[test]
fn a_second_quickstart_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        quickstart(dir.path(), "tiny", 1).success().stdout(
            predicate::str::contains("mc_maze-20ms-val")
                .and(predicate::str::contains("LangevinFlow"))
                .and(predicate::str::contains("smoothing baseline")),
        );
    }
}
