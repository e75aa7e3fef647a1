//! `langevin sweep` and `langevin ensemble` end to end through the real binary, on the synthetic
//! reference split folders: a grid × seeds sweep in a local pool, its results table, resuming
//! (finished runs skipped, an interrupted run continued), a failed run that does not stop the
//! others, the Slurm batch script, and an ensemble of seeds against its members.

mod common;

use std::path::{Path, PathBuf};

use common::langevin;

const FIXTURE_PREP: &str = "tests/fixtures/nlb/prep";

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        "[data]\ndataset = \"mc_maze\"\nbin_width = 20\nphase = \"val\"\n\n\
         [model]\nhidden_size = 8\nd_ff = 16\nn_samples = 2\n\n\
         [train]\nepochs = 2\nbatch_size = 8\neval_every = 1\nplot_every = 0\n",
    )
    .unwrap();
    path
}

fn sweep(home: &Path, prep: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = langevin();
    cmd.arg("--threads")
        .arg("1")
        .arg("sweep")
        .arg("--config")
        .arg(config(home))
        .arg("--runs-home")
        .arg(home.join("runs"))
        .arg("--prep-home")
        .arg(prep)
        .args(extra);
    cmd
}

fn results(home: &Path, tag: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(home.join("runs").join(tag).join("results.csv")).unwrap();
    text.lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

fn column(rows: &[Vec<String>], name: &str) -> Vec<String> {
    let c = rows[0].iter().position(|h| h == name).expect(name);
    rows[1..].iter().map(|r| r[c].clone()).collect()
}

#[test]
fn grid_by_seeds_runs_all_points_writes_results_and_resumes() {
    let home = tempfile::tempdir().unwrap();
    let args = [
        "--run-tag",
        "s",
        "--grid",
        "train.lr=1e-3,3e-3",
        "--seeds",
        "0-1",
        "--jobs",
        "2",
    ];
    let out = sweep(home.path(), Path::new(FIXTURE_PREP), &args)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("| lr-3e-3_seed-1 | mc_maze-20ms-val | 3e-3 | 1 | finished |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| train.lr=1e-3 | mc_maze-20ms-val | 2 |"),
        "{stdout}"
    );
    let rows = results(home.path(), "s");
    assert_eq!(rows.len(), 5);
    assert_eq!(column(&rows, "state"), ["finished"; 4]);
    assert_eq!(column(&rows, "epochs"), ["2"; 4]);
    assert!(column(&rows, "co_bps")
        .iter()
        .all(|v| v.parse::<f64>().is_ok()));
    // Each run folder holds its resolved config.
    let resolved = std::fs::read_to_string(
        home.path()
            .join("runs/s/lr-3e-3_seed-1/mc_maze-20ms-val/config.toml"),
    )
    .unwrap();
    assert!(
        resolved.contains("lr = 0.003") && resolved.contains("seed = 1"),
        "{resolved}"
    );

    // The same command again trains nothing.
    let again = sweep(home.path(), Path::new(FIXTURE_PREP), &args)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&again.get_output().stderr).into_owned();
    assert!(!stderr.contains(": finished"), "{stderr}");
    assert_eq!(results(home.path(), "s"), rows);

    // Another sweep under the same tag is refused.
    let other = ["--run-tag", "s", "--grid", "train.lr=1e-2"];
    sweep(home.path(), Path::new(FIXTURE_PREP), &other)
        .assert()
        .failure()
        .stderr(predicates::str::contains("holds a different sweep"));
}

#[test]
fn an_interrupted_run_is_resumed_from_its_last_checkpoint() {
    let home = tempfile::tempdir().unwrap();
    let args = ["--run-tag", "r", "--seeds", "3"];
    // Plan the sweep with a run that cannot start (no split folders), then train its run for one
    // epoch by hand, as a sweep stopped after one epoch would have.
    let empty = home.path().join("no-prep");
    std::fs::create_dir_all(&empty).unwrap();
    sweep(home.path(), &empty, &args).assert().failure();
    langevin()
        .arg("train")
        .arg("--config")
        .arg(home.path().join("runs/r/sweep.toml"))
        .args([
            "--run-tag",
            "r/seed-3",
            "--set",
            "train.seed=3",
            "--set",
            "train.epochs=1",
        ])
        .arg("--runs-home")
        .arg(home.path().join("runs"))
        .arg("--prep-home")
        .arg(FIXTURE_PREP)
        .assert()
        .success();
    let status = langevin()
        .args(["sweep", "status", "--run-tag", "r", "--runs-home"])
        .arg(home.path().join("runs"))
        .assert()
        .success();
    let text = String::from_utf8_lossy(&status.get_output().stdout).into_owned();
    assert!(
        text.contains("failed    seed-3/mc_maze-20ms-val: 1 epochs"),
        "{text}"
    );

    sweep(home.path(), Path::new(FIXTURE_PREP), &args)
        .assert()
        .success();
    let rows = results(home.path(), "r");
    assert_eq!(column(&rows, "state"), ["finished"]);
    assert_eq!(column(&rows, "epochs"), ["2"]);
    let log =
        std::fs::read_to_string(home.path().join("runs/r/seed-3/mc_maze-20ms-val.log")).unwrap();
    assert!(log.contains("epochs:       2/2 (finished)"), "{log}");
}

#[test]
fn a_failed_run_is_reported_and_the_others_go_on() {
    let home = tempfile::tempdir().unwrap();
    let prep = home.path().join("prep");
    let split = "mc_maze-20ms-val";
    std::fs::create_dir_all(prep.join(split)).unwrap();
    for f in std::fs::read_dir(Path::new(FIXTURE_PREP).join(split)).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), prep.join(split).join(f.file_name())).unwrap();
    }
    let args = [
        "--run-tag",
        "f",
        "--splits",
        "mc_maze-20ms-val,mc_rtt-20ms-val",
    ];
    sweep(home.path(), &prep, &args)
        .assert()
        .failure()
        .stderr(predicates::str::contains("1 of 2 runs failed"))
        .stderr(predicates::str::contains("mc_rtt-20ms-val does not exist"));
    let rows = results(home.path(), "f");
    assert_eq!(column(&rows, "state"), ["finished", "failed"]);
}

#[test]
fn slurm_dry_run_writes_one_array_task_per_run() {
    let home = tempfile::tempdir().unwrap();
    let args = [
        "--run-tag",
        "cluster",
        "--random",
        "3",
        "--range",
        "train.lr=1e-4:1e-2:log",
        "--seeds",
        "0,1",
        "--slurm",
        "--dry-run",
        "--jobs",
        "2",
        "--threads-per-job",
        "4",
        "--slurm-opt=--time=00:30:00",
    ];
    let out = sweep(home.path(), Path::new(FIXTURE_PREP), &args)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("#SBATCH --array=0-5%2"), "{stdout}");
    assert!(stdout.contains("#SBATCH --cpus-per-task=4"));
    assert!(stdout.contains("#SBATCH --time=00:30:00"));
    assert!(stdout.contains("sweep task --run-tag 'cluster' --index \"$SLURM_ARRAY_TASK_ID\""));
    assert!(home.path().join("runs/cluster/sweep.sbatch").is_file());
    let plan = std::fs::read_to_string(home.path().join("runs/cluster/sweep.json")).unwrap();
    assert_eq!(plan.matches("\"point\"").count(), 6);
}

/// Parses the co-bps column of `ensemble`'s table: members, their mean, the ensemble.
fn co_bps_rows(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            let rest: Vec<&str> = parts.collect();
            let (label, value) = if name == "members'" {
                ("mean".to_string(), rest.get(1)?)
            } else {
                (name.to_string(), rest.first()?)
            };
            Some((label, value.parse().ok()?))
        })
        .collect()
}

#[test]
fn an_ensemble_of_seeds_scores_at_least_its_members_mean() {
    let home = tempfile::tempdir().unwrap();
    let args = ["--run-tag", "e", "--seeds", "0-2", "--jobs", "2"];
    sweep(home.path(), Path::new(FIXTURE_PREP), &args)
        .assert()
        .success();
    let out = langevin()
        .args([
            "ensemble",
            "--run-tags",
            "e/seed-0,e/seed-1,e/seed-2",
            "--out",
            "ens",
        ])
        .arg("--runs-home")
        .arg(home.path().join("runs"))
        .arg("--prep-home")
        .arg(FIXTURE_PREP)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let rows = co_bps_rows(&stdout);
    assert_eq!(rows.len(), 5, "{stdout}");
    let mean = rows.iter().find(|(n, _)| n == "mean").unwrap().1;
    let ens = rows.iter().find(|(n, _)| n == "ensemble").unwrap().1;
    assert!(
        ens >= mean - 1e-4,
        "ensemble {ens} below the members' mean {mean}\n{stdout}"
    );
    let file = home.path().join("runs/ens/submission-val.h5");
    assert!(file.is_file());
    // The file `langevin evaluate` reads gives the same co-bps as the table.
    let eval = langevin()
        .arg("evaluate")
        .arg("--target")
        .arg(Path::new(FIXTURE_PREP).join("mc_maze-20ms-val/eval_target.h5"))
        .arg("--submission")
        .arg(&file)
        .assert()
        .success();
    let table = String::from_utf8_lossy(&eval.get_output().stdout).into_owned();
    assert!(table.contains(&format!("{ens:.4}")), "{table}\n{stdout}");
}
