//! `langevin train` end to end through the real binary on a tiny synthetic split.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::langevin;
use langevin::nlb::DatasetName;
use langevin::quickstart;
use langevin::synth::Scale;
use predicates::prelude::*;

/// A temp folder with `prep/mc_maze-20ms-val` and a tiny config at `tiny.toml`.
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let (_, prep, _) =
        quickstart::prepare_split(home.path(), DatasetName::McMaze, Scale::Tiny, 1, false).unwrap();
    let config = home.path().join("tiny.toml");
    std::fs::write(
        &config,
        "[data]\ndataset = \"mc_maze\"\nbin_width = 20\nphase = \"val\"\n\n\
         [model]\nhidden_size = 8\nd_ff = 16\nn_samples = 2\n\n\
         [train]\nepochs = 2\nbatch_size = 8\neval_every = 1\neval_samples = 2\nplot_every = 1\n",
    )
    .unwrap();
    (home, prep, config)
}

fn train(config: &Path, prep: &Path, runs: &Path) -> Command {
    let mut cmd = langevin();
    cmd.arg("train")
        .arg("--config")
        .arg(config)
        .arg("--prep-home")
        .arg(prep)
        .arg("--runs-home")
        .arg(runs);
    cmd
}

#[test]
fn trains_resumes_and_writes_the_run_folder() {
    let (home, prep, config) = workspace();
    let runs = home.path().join("runs");
    train(&config, &prep, &runs)
        .assert()
        .success()
        .stdout(predicate::str::contains("epochs:       2/2 (finished)"))
        .stdout(predicate::str::contains("NLB, best:    co-bps"));
    let dir = runs.join("tiny/mc_maze-20ms-val");
    for f in [
        "config.toml",
        "metrics.csv",
        "best.mpk",
        "last.mpk",
        "summary.json",
        "plots/epoch_00001_rates.png",
        "plots/epoch_00001_latents.png",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.lines().nth(2).unwrap().split(',').nth(12).unwrap() != "");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs_completed"], 2);
    let resolved = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(resolved.contains("hidden_size = 8") && resolved.contains("weight_decay"));

    // Starting again over a run is refused; resuming with more epochs continues it.
    train(&config, &prep, &runs)
        .assert()
        .failure()
        .stderr(predicate::str::contains("--resume"));
    train(&config, &prep, &runs)
        .args(["--resume", "--set", "train.epochs=3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("3/3 (finished)"));
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);

    // --run-tag and --set pick another folder and settings.
    train(&config, &prep, &runs)
        .args(["--run-tag", "other", "--set", "train.epochs=1"])
        .assert()
        .success();
    assert!(runs.join("other/mc_maze-20ms-val/last.mpk").is_file());
}

#[test]
fn bad_configs_and_missing_folders_fail_with_a_reason() {
    let (home, prep, config) = workspace();
    let runs = home.path().join("runs");
    let fails = |args: &[&str], prep: &Path, message: &str| {
        train(&config, prep, &runs)
            .args(args)
            .assert()
            .failure()
            .stderr(predicate::str::contains(message));
    };
    fails(&["--set", "model.hiden_size=3"], &prep, "hiden_size");
    fails(
        &["--set", "model.n_heads=5"],
        &prep,
        "n_heads (5) must divide d_model",
    );
    fails(
        &["--set", "model.latent_size=6"],
        &prep,
        "channels (4) must divide latent_size (6)",
    );
    fails(&["--backend", "tpu"], &prep, "unknown backend `tpu`");
    fails(&[], &home.path().join("nowhere"), "langevin preprocess");
    langevin()
        .args(["train", "--config"])
        .arg(home.path().join("absent.toml"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("absent.toml"));
}
