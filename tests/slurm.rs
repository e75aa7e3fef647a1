//! `langevin sweep --slurm` against a real single-node Slurm cluster that the test starts itself
//! (munged, slurmctld and slurmd from Debian's `munge` and `slurm-wlm`, in the foreground, on
//! their own socket, ports and state folder, stopped at the end). Ignored by default: it needs
//! root and those packages; `.ci/run` installs them where it can and runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::langevin;

const FIXTURE_PREP: &str = "tests/fixtures/nlb/prep";

/// The daemons, killed when the test ends however it ends.
struct Cluster {
    children: Vec<Child>,
    conf: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn daemon(program: &str, args: &[&str], log: &Path) -> Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e} (install munge and slurm-wlm)"))
}

fn slurm_conf(dir: &Path, socket: &Path) -> String {
    let host = hostname();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let d = dir.display();
    format!(
        "ClusterName=langevintest\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\n\
         AuthType=auth/munge\nAuthInfo=socket={}\nCredType=cred/munge\n\
         ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n\
         SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
         StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/ctld.log\nSlurmdLogFile={d}/slurmd.log\n\
         SlurmctldPort=16917\nSlurmdPort=16918\nReturnToService=2\n\
         JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
         NodeName={host} CPUs={cpus} State=UNKNOWN\n\
         PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
        socket.display()
    )
}

fn start(dir: &Path) -> Cluster {
    for sub in ["state", "spool"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let socket = dir.join("munge.socket");
    let conf = dir.join("slurm.conf");
    std::fs::write(&conf, slurm_conf(dir, &socket)).unwrap();
    let s = |p: &Path| p.display().to_string();
    let munge = daemon(
        "munged",
        &[
            "--foreground",
            "--force",
            &format!("--socket={}", s(&socket)),
            &format!("--pid-file={}", s(&dir.join("munged.pid"))),
            &format!("--log-file={}", s(&dir.join("munged.log"))),
            &format!("--seed-file={}", s(&dir.join("munged.seed"))),
        ],
        &dir.join("munged.out"),
    );
    let mut cluster = Cluster {
        children: vec![munge],
        conf: conf.clone(),
    };
    wait_for(Duration::from_secs(20), || socket.exists());
    let c = s(&conf);
    cluster.children.push(daemon(
        "slurmctld",
        &["-D", "-f", &c],
        &dir.join("ctld.out"),
    ));
    cluster
        .children
        .push(daemon("slurmd", &["-D", "-f", &c], &dir.join("slurmd.out")));
    wait_for(Duration::from_secs(60), || {
        let out = Command::new("sinfo")
            .args(["-h", "-o", "%t"])
            .env("SLURM_CONF", &conf)
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
    });
    cluster
}

fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "not ready after {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
#[ignore = "needs root, munge and slurm-wlm; .ci/run installs them and runs it"]
fn a_sweep_runs_as_a_slurm_job_array() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = start(&tmp.path().join("slurm"));
    let config = tmp.path().join("tiny.toml");
    std::fs::write(
        &config,
        "[data]\ndataset = \"mc_maze\"\nbin_width = 20\nphase = \"val\"\n\n\
         [model]\nhidden_size = 8\nd_ff = 16\nn_samples = 2\n\n\
         [train]\nepochs = 2\nbatch_size = 8\neval_every = 1\nplot_every = 0\n",
    )
    .unwrap();
    let runs = tmp.path().join("runs");
    let prep = std::path::absolute(FIXTURE_PREP).unwrap();
    langevin()
        .env("SLURM_CONF", &cluster.conf)
        .arg("sweep")
        .arg("--config")
        .arg(&config)
        .args([
            "--run-tag",
            "sl",
            "--grid",
            "train.lr=1e-3,3e-3",
            "--seeds",
            "0,1",
        ])
        .args([
            "--slurm",
            "--threads-per-job",
            "1",
            "--slurm-opt=--time=00:10:00",
        ])
        .arg("--runs-home")
        .arg(&runs)
        .arg("--prep-home")
        .arg(&prep)
        .assert()
        .success()
        .stdout(predicates::str::contains("submitted Slurm job"));
    let status = || {
        let out = langevin()
            .args(["sweep", "status", "--run-tag", "sl", "--runs-home"])
            .arg(&runs)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for(Duration::from_secs(300), || {
        status().contains("4 runs: 4 finished")
    });
    let text = status();
    assert!(
        text.contains("| lr-3e-3_seed-1 | mc_maze-20ms-val | 3e-3 | 1 | finished | 2 |"),
        "{text}"
    );
    let logs = std::fs::read_dir(runs.join("sl/slurm")).unwrap().count();
    assert_eq!(logs, 4, "one output file per array task");
}
