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

#[test]
fn a_target_with_only_heldout_spikes_scores_co_bps_and_names_what_it_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("eval_target.h5");
    std::fs::copy(split("mc_maze-20ms-val").join("eval_target.h5"), &target).unwrap();
    let file = rust_hdf5::H5File::open_rw(&target).unwrap();
    for key in [
        "train_behavior",
        "eval_behavior",
        "psth",
        "eval_cond_idx",
        "train_cond_idx",
        "eval_spikes_heldin_forward",
        "eval_spikes_heldout_forward",
    ] {
        file.delete_dataset(&format!("mc_maze_20/{key}")).unwrap();
    }
    file.close().unwrap();
    let run = |json: bool| {
        let mut cmd = common::langevin();
        cmd.arg("evaluate")
            .arg("--target")
            .arg(&target)
            .arg("--submission");
        cmd.arg(split("mc_maze-20ms-val").join("submission_smoothing.h5"));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.assert().success().get_output().clone();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(&out.stdout), text(&out.stderr))
    };
    let (table, _) = run(false);
    let header = table.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["dataset", "co-bps"],
        "{table}"
    );
    for line in [
        "note: mc_maze_20: vel R2 not scored (target has no `train_behavior`)",
        "note: mc_maze_20: psth R2 not scored (target has no `psth`)",
        "note: mc_maze_20: fp-bps not scored (target has no `eval_spikes_heldin_forward`)",
    ] {
        assert_eq!(table.matches(line).count(), 1, "{table}");
    }
    let (json, notes) = run(true);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let split = &v[0]["mc_maze_20_split"];
    assert_eq!(split.as_object().unwrap().len(), 1, "only co-bps: {json}");
    assert!(split["co-bps"].as_f64().unwrap().is_finite());
    assert_eq!(notes.matches("note:").count(), 3, "{notes}");
}
