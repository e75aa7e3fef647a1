//! What the end-to-end tests share: the real binary, isolated from the caller's environment.

use assert_cmd::Command;

/// `langevin` without the path variables a developer's shell may set, with quiet logs.
pub fn langevin() -> Command {
    let mut cmd = Command::cargo_bin("langevin").unwrap();
    for var in [
        "DATA_HOME",
        "PREP_HOME",
        "RUNS_HOME",
        "TRAIN_INPUT_FILE",
        "EVAL_INPUT_FILE",
        "EVAL_TARGET_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Runs `cmd`, asserting that it succeeds, and returns its standard output.
#[allow(dead_code)] // not every test binary that shares this module reads output
pub fn success_stdout(cmd: &mut Command) -> Vec<u8> {
    cmd.assert().success().get_output().stdout.clone()
}
