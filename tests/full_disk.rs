//! A full disk, simulated without mounts: the binary runs with `RLIMIT_FSIZE` set and `SIGXFSZ`
//! ignored, so a write past the limit fails with `EFBIG` as a write to a full disk fails with
//! `ENOSPC`. Every writer must then exit non-zero with a message naming the file and the cause,
//! remove its temporary file and leave the previous output as it was.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tiny model every training here uses: seconds per run on one core.
const TINY: &str = r#"
[data]
dataset = "mc_maze"
bin_width = 20
phase = "val"
[model]
hidden_size = 16
latent_size = 8
n_samples = 2
[train]
epochs = 2
batch_size = 16
eval_every = 1
plot_every = 1
eval_samples = 2
"#;

/// File-size limits (bytes): the first write, early in a file, and mid-way through the larger
/// outputs (checkpoints and splits are tens to hundreds of kB).
const LIMITS: [u64; 3] = [0, 4_096, 40_000];

fn langevin(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("langevin"));
    cmd.current_dir(dir).args(["--threads", "1"]).args(args);
    for var in ["DATA_HOME", "PREP_HOME", "RUNS_HOME"] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "error");
    cmd
}

fn run_ok(dir: &Path, args: &[&str]) {
    let out = langevin(dir, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs with writes beyond `limit` bytes failing as on a full disk.
fn run_limited(dir: &Path, args: &[&str], limit: u64) -> Output {
    let mut cmd = langevin(dir, args);
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// Every file under `dir` with its bytes, temporary files included (so leftovers show).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn names(files: &[(PathBuf, Vec<u8>)]) -> Vec<String> {
    files.iter().map(|(p, _)| p.display().to_string()).collect()
}

/// The run failed with exit 1 (not a crash, not success) and named the cause; its stderr.
fn failed_cleanly(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: a clear failure: {stderr}"
    );
    assert!(
        stderr.contains("File too large"),
        "{what}: names the cause: {stderr}"
    );
    stderr
}

fn assert_no_temporaries(files: &[(PathBuf, Vec<u8>)]) {
    assert!(
        !names(files).iter().any(|n| n.contains(".tmp-")),
        "no temporary file left: {:?}",
        names(files)
    );
}

/// Data, a val split, a trained run, its submission and the baseline's, all written unlimited.
fn workspace() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("tiny.toml"), TINY).unwrap();
    run_ok(
        d,
        &[
            "synth",
            "--dataset",
            "mc_maze",
            "--scale",
            "tiny",
            "--out",
            "data",
        ],
    );
    run_ok(d, &preprocess_args());
    run_ok(d, &train_args("t"));
    run_ok(d, &submit_args());
    run_ok(d, &["baseline", "--split", "prep/mc_maze-20ms-val"]);
    tmp
}

/// The ensemble of runs `t` and `u` (`u`'s submission is made by the first call).
fn ensemble_args() -> Vec<&'static str> {
    vec![
        "ensemble",
        "--run-tags",
        "t,u",
        "--out",
        "e",
        "--runs-home",
        "runs",
        "--prep-home",
        "prep",
    ]
}

fn preprocess_args() -> Vec<&'static str> {
    vec![
        "preprocess",
        "--dataset",
        "mc_maze",
        "--bin-width",
        "20",
        "--phase",
        "val",
        "--data-home",
        "data",
        "--prep-home",
        "prep",
    ]
}

fn train_args(tag: &str) -> Vec<&str> {
    vec![
        "train",
        "--config",
        "tiny.toml",
        "--prep-home",
        "prep",
        "--runs-home",
        "runs",
        "--run-tag",
        tag,
    ]
}

fn submit_args() -> Vec<&'static str> {
    vec![
        "submit",
        "--run-tag",
        "t",
        "--runs-home",
        "runs",
        "--prep-home",
        "prep",
    ]
}

/// Runs `args` at every limit; each run must fail cleanly and leave `dir`'s files as they were.
fn fails_cleanly(root: &Path, args: &[&str], dir: &str, file_hint: &str) {
    let before = snapshot(&root.join(dir));
    for limit in LIMITS {
        let out = run_limited(root, args, limit);
        let stderr = failed_cleanly(&out, &format!("{args:?} at {limit} B"));
        assert!(
            stderr.contains(file_hint),
            "{args:?} at {limit} B: the message names the file: {stderr}"
        );
        let after = snapshot(&root.join(dir));
        assert_eq!(
            names(&after),
            names(&before),
            "{args:?} at {limit} B: no temporary file left, nothing removed"
        );
        assert!(
            after == before,
            "{args:?} at {limit} B: previous outputs unchanged"
        );
    }
}

#[test]
fn every_writer_fails_cleanly_on_a_full_disk() {
    let tmp = workspace();
    let root = tmp.path();
    fails_cleanly(root, &preprocess_args(), "prep", "prep/mc_maze-20ms-val/");
    fails_cleanly(
        root,
        &["baseline", "--split", "prep/mc_maze-20ms-val"],
        "prep",
        "submission_smoothing.h5",
    );
    fails_cleanly(root, &submit_args(), "runs", "submission-val.h5");
    // Only this test needs an ensemble: a second seed and its ensemble with `t`.
    let mut second = train_args("u");
    second.extend(["--set", "train.seed=1"]);
    run_ok(root, &second);
    run_ok(root, &ensemble_args());
    fails_cleanly(root, &ensemble_args(), "runs", "runs/e/submission-val.h5");
    fails_cleanly(
        root,
        &[
            "synth",
            "--dataset",
            "mc_maze",
            "--scale",
            "tiny",
            "--out",
            "data",
        ],
        "data",
        "data/000128/",
    );
    // A resumed run that cannot write its checkpoints keeps the ones it resumed from.
    let mut resume = train_args("t");
    resume.extend(["--resume", "--set", "train.epochs=4"]);
    let before = snapshot(&root.join("runs/t/mc_maze-20ms-val"));
    for limit in LIMITS {
        failed_cleanly(
            &run_limited(root, &resume, limit),
            &format!("resume at {limit} B"),
        );
        let after = snapshot(&root.join("runs/t/mc_maze-20ms-val"));
        for (path, bytes) in &before {
            let name = path.file_name().unwrap().to_string_lossy();
            if name.ends_with(".mpk") || name == "summary.json" {
                let now = after.iter().find(|(p, _)| p == path).map(|(_, b)| b);
                assert_eq!(now, Some(bytes), "{name} unchanged at {limit} B");
            }
        }
        assert_no_temporaries(&after);
    }
}

#[test]
fn a_new_run_on_a_full_disk_fails_with_the_file_named() {
    let tmp = workspace();
    let root = tmp.path();
    for (i, limit) in LIMITS.into_iter().enumerate() {
        let tag = format!("full{i}");
        let out = run_limited(root, &train_args(&tag), limit);
        let stderr = failed_cleanly(&out, &format!("train at {limit} B"));
        assert!(
            stderr.contains(&format!("runs/{tag}/mc_maze-20ms-val/")),
            "{stderr}"
        );
        assert_no_temporaries(&snapshot(&root.join("runs").join(&tag)));
    }
}

#[test]
fn temporaries_of_a_killed_run_are_removed_by_the_next() {
    let tmp = workspace();
    let root = tmp.path();
    let split = root.join("prep/mc_maze-20ms-val");
    // What `kill -9` during a write leaves: a temporary file of a process that no longer runs.
    let stale = split.join(".train_input.h5.tmp-999999999.h5");
    std::fs::write(&stale, b"half a file").unwrap();
    run_ok(root, &preprocess_args());
    assert!(!stale.exists(), "the next run on the folder removes it");
}
