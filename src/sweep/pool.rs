//! The local pool: `jobs` planned runs at a time, each a child process of this binary
//! (`langevin --threads K sweep task …`), so one run's crash or bad split cannot take the others
//! down and every run keeps its own thread pool. One progress line per running run (epoch, best
//! co-bps so far), one permanent line per run that ends.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::results::{self, RunState};
use super::{io_err, Plan, SweepDir, SweepError};

/// How the local pool runs a sweep.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Runs trained at once.
    pub jobs: usize,
    /// `--threads` of each run.
    pub threads_per_job: usize,
    /// `--backend` of each run.
    pub backend: String,
    pub prep_home: PathBuf,
    /// The `langevin` binary the runs execute (normally this one).
    pub exe: PathBuf,
    pub progress: bool,
    /// When it turns true, no further run starts (running ones stop at their epoch's end on the
    /// same Ctrl-C, which reaches the children too).
    pub stop: Option<Arc<AtomicBool>>,
}

/// How each run of this invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// Finished before this invocation; not started again.
    Skipped,
    Finished,
    /// Exited early (Ctrl-C) or not started because of it.
    Stopped,
    /// The run's error, as the child printed it.
    Failed(String),
}

/// Trains every run of `plan` that is not finished, `jobs` at a time; returns each run's end in
/// plan order. A failed run is reported and the others go on.
pub fn run(dir: &SweepDir, plan: &Plan, opts: &PoolOptions) -> Result<Vec<Ended>, SweepError> {
    let mut ended = vec![Ended::Stopped; plan.runs.len()];
    let queue: VecDeque<usize> = (0..plan.runs.len())
        .filter(|&i| {
            let done = results::status(dir, &plan.runs[i]).state == RunState::Finished;
            if done {
                ended[i] = Ended::Skipped;
            }
            !done
        })
        .collect();
    let bars = Bars::new(opts.progress, queue.len());
    let queue = Mutex::new(queue);
    let ended = Mutex::new(ended);
    let active: Mutex<Vec<(usize, ProgressBar)>> = Mutex::new(Vec::new());
    let all_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..opts.jobs.max(1))
            .map(|_| scope.spawn(|| worker(dir, plan, opts, &queue, &ended, &active, &bars)))
            .collect();
        scope.spawn(|| refresh(dir, plan, &active, &all_done));
        for w in workers {
            let _ = w.join();
        }
        all_done.store(true, Ordering::Relaxed);
    });
    bars.overall.finish_and_clear();
    Ok(ended
        .into_inner()
        .expect("no worker panics holding the lock"))
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    visible: bool,
}

impl Bars {
    fn new(visible: bool, todo: usize) -> Self {
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::new(todo as u64));
        overall.set_style(
            ProgressStyle::with_template("sweep {bar:30} {pos}/{len} runs  {elapsed_precise}")
                .expect("a valid template"),
        );
        Self {
            multi,
            overall,
            visible,
        }
    }

    fn line(&self, text: String) {
        if self.visible && !self.multi.is_hidden() {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

fn worker(
    dir: &SweepDir,
    plan: &Plan,
    opts: &PoolOptions,
    queue: &Mutex<VecDeque<usize>>,
    ended: &Mutex<Vec<Ended>>,
    active: &Mutex<Vec<(usize, ProgressBar)>>,
    bars: &Bars,
) {
    loop {
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            return;
        }
        let Some(index) = queue.lock().expect("queue lock").pop_front() else {
            return;
        };
        let run = &plan.runs[index];
        let bar = bars
            .multi
            .insert_before(&bars.overall, ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("  {spinner} {msg}").expect("a valid template"));
        bar.set_message(format!("{}/{}: starting", run.point, run.split));
        bar.enable_steady_tick(Duration::from_millis(250));
        active
            .lock()
            .expect("active lock")
            .push((index, bar.clone()));
        let end = run_child(dir, index, opts).unwrap_or_else(|e| Ended::Failed(e.to_string()));
        active
            .lock()
            .expect("active lock")
            .retain(|(i, _)| *i != index);
        bar.finish_and_clear();
        bars.multi.remove(&bar);
        bars.line(end_line(dir, plan, index, &end));
        bars.overall.inc(1);
        ended.lock().expect("ended lock")[index] = end;
    }
}

/// Runs one planned run as `langevin sweep task`, output appended to the run's log.
fn run_child(dir: &SweepDir, index: usize, opts: &PoolOptions) -> Result<Ended, SweepError> {
    let plan_run = &dir.read_plan()?.runs[index];
    let log_path = dir.log(plan_run);
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_err(&log_path, e))?;
    let err_log = log.try_clone().map_err(|e| io_err(&log_path, e))?;
    let status = Command::new(&opts.exe)
        .arg("--threads")
        .arg(opts.threads_per_job.to_string())
        .args([
            "sweep",
            "task",
            "--run-tag",
            &dir.tag,
            "--index",
            &index.to_string(),
        ])
        .arg("--runs-home")
        .arg(&dir.runs_home)
        .arg("--prep-home")
        .arg(&opts.prep_home)
        .args(["--backend", &opts.backend])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .status()
        .map_err(|e| io_err(&opts.exe, e))?;
    if status.success() {
        let finished = results::finished(dir, plan_run);
        return Ok(if finished {
            Ended::Finished
        } else {
            Ended::Stopped
        });
    }
    let reason = std::fs::read_to_string(dir.failed_marker(plan_run))
        .ok()
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| format!("{status}; see {}", log_path.display()));
    Ok(Ended::Failed(reason))
}

fn end_line(dir: &SweepDir, plan: &Plan, index: usize, end: &Ended) -> String {
    let run = &plan.runs[index];
    let s = results::status(dir, run);
    let scores = s
        .summary
        .as_ref()
        .and_then(|s| s.best_scores)
        .map_or(String::new(), |b| {
            format!(", best checkpoint {}", b.short())
        });
    let what = match end {
        Ended::Skipped => "skipped".to_string(),
        Ended::Finished => "finished".to_string(),
        Ended::Stopped => "stopped".to_string(),
        Ended::Failed(msg) => format!("FAILED ({msg}; log {})", dir.log(run).display()),
    };
    format!(
        "{}/{}: {what}, {} epochs{scores}",
        run.point, run.split, s.epochs_done
    )
}

/// Every second, each running run's line: epochs logged and the best co-bps logged so far.
fn refresh(
    dir: &SweepDir,
    plan: &Plan,
    active: &Mutex<Vec<(usize, ProgressBar)>>,
    all_done: &AtomicBool,
) {
    while !all_done.load(Ordering::Relaxed) {
        let running: Vec<(usize, ProgressBar)> = active.lock().expect("active lock").clone();
        for (index, bar) in running {
            let run = &plan.runs[index];
            let s = results::status(dir, run);
            let best = s
                .best_logged_co_bps
                .map_or(String::new(), |b| format!(", best co-bps {b:.4}"));
            bar.set_message(format!(
                "{}/{}: epoch {}{best}",
                run.point, run.split, s.epochs_done
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
