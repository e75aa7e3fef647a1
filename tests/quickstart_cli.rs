//! `langevin quickstart` end to end on a tiny budget: synthetic data → split → trained run.

use assert_cmd::Command;
use predicates::prelude::*;

#[test]
fn quickstart_runs_the_pipeline_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("langevin")
        .unwrap()
        .args(["quickstart", "--scale", "tiny", "--epochs", "2", "--dir"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(
            predicate::str::contains("mc_maze-20ms-val").and(predicate::str::contains("co-bps")),
        );
    assert!(dir
        .path()
        .join("data/000128/sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb")
        .exists());
    assert!(dir
        .path()
        .join("prep/mc_maze-20ms-val/eval_target.h5")
        .exists());
    let run = dir.path().join("runs/quickstart/mc_maze-20ms-val");
    for file in [
        "metrics.csv",
        "best.mpk",
        "last.mpk",
        "summary.json",
        "config.toml",
    ] {
        assert!(
            run.join(file).exists(),
            "{file} missing from the run folder"
        );
    }
    // A second quickstart replaces the first instead of refusing the existing run.
    Command::cargo_bin("langevin")
        .unwrap()
        .args(["quickstart", "--scale", "tiny", "--epochs", "1", "--dir"])
        .arg(dir.path())
        .assert()
        .success();
}
