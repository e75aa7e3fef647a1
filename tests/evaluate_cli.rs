//! `langevin evaluate` through the real binary: the table, `--json` equal to the reference's
//! result list, and clear failures.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn split(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/evaluate")
        .join(name)
}

fn evaluate(split_name: &str, submission: &str) -> Command {
    let mut cmd = common::langevin();
    cmd.arg("evaluate")
        .arg("--target")
        .arg(split(split_name).join("eval_target.h5"))
        .arg("--submission")
        .arg(split(split_name).join(submission));
    cmd
}

#[test]
fn json_output_is_the_reference_result_list() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(split("reference_metrics.json")).unwrap())
            .unwrap();
    for (split_name, submission) in [
        ("mc_maze-20ms-val", "truth"),
        ("dmfc_rsg-20ms-val", "smoothing"),
        ("area2_bump-05ms-val", "random"),
    ] {
        let out = common::success_stdout(
            evaluate(split_name, &format!("submission_{submission}.h5")).arg("--json"),
        );
        let ours: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let want = &reference[split_name][submission];
        let (ours, want) = (ours.as_array().unwrap(), want.as_array().unwrap());
        assert_eq!(ours.len(), want.len());
        for (o, w) in ours.iter().zip(want) {
            let (o, w) = (o.as_object().unwrap(), w.as_object().unwrap());
            assert_eq!(o.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
            for (group, metrics) in w {
                let mine = o[group].as_object().unwrap();
                assert_eq!(
                    mine.keys().collect::<Vec<_>>(),
                    metrics.as_object().unwrap().keys().collect::<Vec<_>>(),
                    "metric keys and their order"
                );
                for (k, v) in metrics.as_object().unwrap() {
                    match (v.as_f64(), mine[k].as_f64()) {
                        (Some(a), Some(b)) => {
                            assert!((a - b).abs() < 1e-6, "{split_name} {k}: {a} vs {b}")
                        }
                        (a, b) => assert_eq!(a.is_none(), b.is_none(), "{split_name} {k}"),
                    }
                }
            }
        }
    }
}

#[test]
fn table_has_a_row_per_group_and_a_column_per_metric() {
    evaluate("mc_maze-20ms-val", "submission_truth.h5")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("mc_maze_20")
                .and(predicate::str::contains("co-bps"))
                .and(predicate::str::contains("vel R2"))
                .and(predicate::str::contains("psth R2"))
                .and(predicate::str::contains("fp-bps"))
                .and(predicate::str::contains("0.4276")),
        );
}

#[test]
fn missing_files_and_foreign_targets_fail_clearly() {
    let mut cmd = common::langevin();
    cmd.args([
        "evaluate",
        "--target",
        "/no/such/eval_target.h5",
        "--submission",
    ])
    .arg(split("mc_maze-20ms-val").join("submission_truth.h5"))
    .assert()
    .failure()
    .stderr(predicate::str::contains("/no/such/eval_target.h5"));
    // A 5 ms target with a 20 ms submission shares no group.
    let mut cmd = common::langevin();
    cmd.arg("evaluate")
        .arg("--target")
        .arg(split("mc_maze-05ms-val").join("eval_target.h5"))
        .arg("--submission")
        .arg(split("mc_maze-20ms-val").join("submission_truth.h5"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("no dataset group"));
}
