//! A sweep as a Slurm job array: one array task per planned run, each running
//! `langevin sweep task --index $SLURM_ARRAY_TASK_ID`, so a cluster trains exactly what the local
//! pool would, resumes the same way, and `sweep status` reads its progress from the same folders.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, SweepDir, SweepError};

/// What the batch script runs and asks Slurm for.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The `langevin` binary, as the compute nodes see it (absolute).
    pub exe: PathBuf,
    /// CPUs per task, also the run's `--threads`.
    pub threads_per_job: usize,
    pub backend: String,
    pub prep_home: PathBuf,
    /// At most this many tasks at once (`--array=…%J`); 0 = no limit.
    pub jobs: usize,
    /// Passed through as `#SBATCH` lines, e.g. `--partition=gpu`, `--time=02:00:00`.
    pub sbatch_opts: Vec<String>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The batch script for a plan of `runs` runs. Paths are made absolute, as array tasks start in
/// whatever folder the cluster gives them.
pub fn script(dir: &SweepDir, runs: usize, opts: &SlurmOptions) -> String {
    let root = absolute(&dir.root());
    let limit = if opts.jobs > 0 {
        format!("%{}", opts.jobs)
    } else {
        String::new()
    };
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "#SBATCH --job-name={}\n",
        quote(&format!("langevin-{}", dir.tag))
    );
    s += &format!("#SBATCH --array=0-{}{limit}\n", runs.saturating_sub(1));
    s += &format!("#SBATCH --cpus-per-task={}\n", opts.threads_per_job.max(1));
    s += &format!(
        "#SBATCH --output={}\n",
        root.join("slurm").join("%A_%a.out").display()
    );
    for opt in &opts.sbatch_opts {
        s += &format!("#SBATCH {opt}\n");
    }
    s += "set -euo pipefail\n";
    s += &format!(
        "exec {} --threads {} sweep task --run-tag {} --index \"$SLURM_ARRAY_TASK_ID\" \
         --runs-home {} --prep-home {} --backend {}\n",
        quote(&absolute(&opts.exe).display().to_string()),
        opts.threads_per_job.max(1),
        quote(&dir.tag),
        quote(&absolute(&dir.runs_home).display().to_string()),
        quote(&absolute(&opts.prep_home).display().to_string()),
        quote(&opts.backend),
    );
    s
}

/// Writes the script to `{sweep}/sweep.sbatch` (and the folder Slurm writes task output to);
/// returns its path.
pub fn write_script(
    dir: &SweepDir,
    runs: usize,
    opts: &SlurmOptions,
) -> Result<PathBuf, SweepError> {
    let out = dir.root().join("slurm");
    std::fs::create_dir_all(&out).map_err(|e| io_err(&out, e))?;
    let path = dir.root().join("sweep.sbatch");
    crate::atomic::write(&path, script(dir, runs, opts).as_bytes())
        .map_err(|e| io_err(&path, e))?;
    Ok(path)
}

/// Submits the script with `sbatch --parsable` and returns the job id.
pub fn submit(script: &Path) -> Result<String, SweepError> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| {
            io_err(
                Path::new("sbatch"),
                format!("{e} (is Slurm installed here?)"),
            )
        })?;
    if !out.status.success() {
        return Err(io_err(
            script,
            format!(
                "sbatch failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(id.split(';').next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_asks_for_one_task_per_run_and_passes_options() {
        let dir = SweepDir::new(Path::new("/data/runs"), "s1");
        let opts = SlurmOptions {
            exe: "/opt/bin/langevin".into(),
            threads_per_job: 4,
            backend: "flex".into(),
            prep_home: "/data/prep".into(),
            jobs: 2,
            sbatch_opts: vec!["--time=01:00:00".into()],
        };
        let s = script(&dir, 6, &opts);
        assert!(s.contains("#SBATCH --array=0-5%2\n"), "{s}");
        assert!(s.contains("#SBATCH --cpus-per-task=4\n"));
        assert!(s.contains("#SBATCH --time=01:00:00\n"));
        assert!(s.contains("#SBATCH --output=/data/runs/s1/slurm/%A_%a.out\n"));
        assert!(s.contains(
            "exec '/opt/bin/langevin' --threads 4 sweep task --run-tag 's1' --index \"$SLURM_ARRAY_TASK_ID\" \
             --runs-home '/data/runs' --prep-home '/data/prep' --backend 'flex'"
        ));
    }
}
