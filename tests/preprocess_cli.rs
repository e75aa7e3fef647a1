//! `langevin preprocess` end to end through the real binary: outputs, idempotence, bad input.

mod common;

use std::path::{Path, PathBuf};

use common::langevin;
use predicates::prelude::*;

fn data_home() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nlb/data")
}

/// Copies one fixture dataset folder into a fresh DATA_HOME so a test can damage it.
fn copy_dataset(set: &str, subject: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dst = home.path().join(set).join(subject);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(data_home().join(set).join(subject)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
    home
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn writes_split_folders_from_env_paths() {
    let prep = tempfile::tempdir().unwrap();
    langevin()
        .args([
            "preprocess",
            "--dataset",
            "mc_maze_small",
            "--bin-width",
            "20",
        ])
        .env("DATA_HOME", data_home())
        .env("PREP_HOME", prep.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("mc_maze_small-20ms-val"));
    assert_eq!(
        files_in(&prep.path().join("mc_maze_small-20ms-val")),
        vec!["eval_input.h5", "eval_target.h5", "train_input.h5"]
    );
    assert_eq!(
        files_in(&prep.path().join("mc_maze_small-20ms-test")),
        vec!["eval_input.h5", "train_input.h5"]
    );
    assert!(!prep.path().join("mc_maze_small-05ms-val").exists());
}

#[test]
fn running_twice_gives_identical_bytes() {
    let prep = tempfile::tempdir().unwrap();
    let run = || {
        langevin()
            .args([
                "preprocess",
                "--dataset",
                "dmfc_rsg",
                "--bin-width",
                "5",
                "--phase",
                "val",
            ])
            .args(["--data-home".as_ref(), data_home().as_os_str()])
            .args(["--prep-home".as_ref(), prep.path().as_os_str()])
            .assert()
            .success();
        let dir = prep.path().join("dmfc_rsg-05ms-val");
        files_in(&dir)
            .into_iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect::<Vec<_>>()
    };
    let first = run();
    let second = run();
    assert_eq!(first.len(), 3);
    assert!(first == second, "preprocess is not idempotent");
}

#[test]
fn unknown_names_are_rejected() {
    for (flag, value, shown) in [
        ("--dataset", "mc_mazes", "unknown dataset `mc_mazes`"),
        ("--bin-width", "10", "unknown bin width `10`"),
        ("--phase", "train", "unknown phase `train`"),
    ] {
        let mut args = vec!["preprocess", "--dataset", "mc_maze", flag, value];
        if flag == "--dataset" {
            args = vec!["preprocess", flag, value];
        }
        langevin()
            .args(&args)
            .env("DATA_HOME", data_home())
            .assert()
            .failure()
            .stderr(predicate::str::contains(shown));
    }
}

#[test]
fn missing_data_home_and_folders_are_named() {
    let prep = tempfile::tempdir().unwrap();
    langevin()
        .args(["preprocess", "--dataset", "mc_maze"])
        .env("PREP_HOME", prep.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("DATA_HOME"));
    let empty = tempfile::tempdir().unwrap();
    langevin()
        .args(["preprocess", "--dataset", "mc_rtt"])
        .env("DATA_HOME", empty.path())
        .env("PREP_HOME", prep.path())
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("000129/sub-Indy")
                .and(predicate::str::contains("does not exist")),
        );
    std::fs::create_dir_all(empty.path().join("000129/sub-Indy")).unwrap();
    langevin()
        .args(["preprocess", "--dataset", "mc_rtt"])
        .env("DATA_HOME", empty.path())
        .env("PREP_HOME", prep.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("no .nwb files"));
    assert!(
        files_in(prep.path()).is_empty(),
        "nothing written on failure"
    );
}

#[test]
fn truncated_nwb_file_is_named_and_nothing_is_lost() {
    let home = copy_dataset("000140", "sub-Jenkins");
    let prep = tempfile::tempdir().unwrap();
    let args = [
        "preprocess",
        "--dataset",
        "mc_maze_small",
        "--bin-width",
        "20",
        "--phase",
        "val",
    ];
    langevin()
        .args(args)
        .env("DATA_HOME", home.path())
        .env("PREP_HOME", prep.path())
        .assert()
        .success();
    let split = prep.path().join("mc_maze_small-20ms-val");
    let before: Vec<Vec<u8>> = files_in(&split)
        .iter()
        .map(|f| std::fs::read(split.join(f)).unwrap())
        .collect();

    let train = home
        .path()
        .join("000140/sub-Jenkins/sub-Jenkins_ses-small_desc-train_behavior+ecephys.nwb");
    let bytes = std::fs::read(&train).unwrap();
    std::fs::write(&train, &bytes[..bytes.len() / 3]).unwrap();
    langevin()
        .args(args)
        .env("DATA_HOME", home.path())
        .env("PREP_HOME", prep.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("desc-train_behavior+ecephys.nwb"));
    let after: Vec<Vec<u8>> = files_in(&split)
        .iter()
        .map(|f| std::fs::read(split.join(f)).unwrap())
        .collect();
    assert!(before == after, "existing split changed by a failed run");
}

/// A copy of the mc_maze fixture with one object removed from its train file, preprocessed.
fn preprocess_without(object: &str, prep: &Path) -> assert_cmd::assert::Assert {
    let home = copy_dataset("000128", "sub-Jenkins");
    let train = home
        .path()
        .join("000128/sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb");
    let file = rust_hdf5::H5File::open_rw(&train).unwrap();
    file.delete_dataset(object)
        .or_else(|_| file.delete_group(object))
        .unwrap();
    file.close().unwrap();
    langevin()
        .args([
            "preprocess",
            "--dataset",
            "mc_maze",
            "--bin-width",
            "5",
            "--phase",
            "val",
        ])
        .env("DATA_HOME", home.path())
        .env("PREP_HOME", prep)
        .assert()
}

#[test]
fn missing_trials_column_and_behaviour_are_named() {
    let prep = tempfile::tempdir().unwrap();
    preprocess_without("processing/behavior/hand_vel", prep.path())
        .failure()
        .stderr(predicate::str::contains("hand_vel"));
    assert!(
        files_in(&prep.path().join("mc_maze-05ms-val"))
            .iter()
            .all(|f| !f.starts_with('.')),
        "no temporary files left behind"
    );
    preprocess_without("units/obs_intervals", prep.path())
        .failure()
        .stderr(
            predicate::str::contains("desc-train_behavior+ecephys.nwb")
                .and(predicate::str::contains("units/obs_intervals")),
        );
    preprocess_without("intervals/trials/move_onset_time", prep.path())
        .failure()
        .stderr(predicate::str::contains("move_onset_time"));
}
