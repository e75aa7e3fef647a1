//! Where each run of a sweep stands, read from its folder alone (so `sweep status` sees runs a
//! Slurm cluster trains as well as local ones), and the results table: `results.csv` and the
//! markdown table printed at the end.

use std::fmt::Write as _;
use std::path::Path;

use super::{io_err, Plan, PlannedRun, SweepDir, SweepError};
use crate::train::{NlbScores, TrainSummary};

/// A run's state on disk.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Nothing trained yet.
    Pending,
    /// Some epochs done, not finished (stopped, killed, or training now).
    Started,
    /// Every configured epoch done.
    Finished,
    /// The last attempt failed; the error as recorded.
    Failed(String),
}

impl RunState {
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Started => "started",
            RunState::Finished => "finished",
            RunState::Failed(_) => "failed",
        }
    }
}

/// One run's progress and scores.
#[derive(Debug, Clone)]
pub struct RunStatus {
    pub state: RunState,
    /// Epochs logged in `metrics.csv`.
    pub epochs_done: usize,
    /// Best co-bps logged during training (eval epochs of a val split), for progress lines.
    pub best_logged_co_bps: Option<f64>,
    /// The run's `summary.json` (written when a session of it ends).
    pub summary: Option<TrainSummary>,
}

/// Whether the run's summary says all its planned epochs are done (a run trained by hand for
/// fewer epochs is not finished for the sweep).
pub fn finished(dir: &SweepDir, run: &PlannedRun) -> bool {
    read_summary(&dir.run_dir(run)).is_some_and(|s| is_done(&s, run))
}

fn is_done(s: &TrainSummary, run: &PlannedRun) -> bool {
    s.finished && s.epochs_completed >= run.epochs
}

fn read_summary(run_dir: &Path) -> Option<TrainSummary> {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Epochs logged and the best co-bps among them, from `metrics.csv` (its header names columns).
fn logged_progress(run_dir: &Path) -> (usize, Option<f64>) {
    let Ok(text) = std::fs::read_to_string(run_dir.join("metrics.csv")) else {
        return (0, None);
    };
    let mut lines = text.lines();
    let column = lines
        .next()
        .and_then(|h| h.split(',').position(|c| c == "co_bps"));
    let mut epochs = 0;
    let mut best: Option<f64> = None;
    for line in lines.filter(|l| !l.is_empty()) {
        epochs += 1;
        let value = column.and_then(|c| line.split(',').nth(c)?.parse::<f64>().ok());
        if let Some(v) = value.filter(|v| v.is_finite()) {
            best = Some(best.map_or(v, |b| b.max(v)));
        }
    }
    (epochs, best)
}

/// Reads one run's state from its folder.
pub fn status(dir: &SweepDir, run: &PlannedRun) -> RunStatus {
    let run_dir = dir.run_dir(run);
    let summary = read_summary(&run_dir);
    let (epochs_done, best_logged_co_bps) = logged_progress(&run_dir);
    let failed = std::fs::read_to_string(dir.failed_marker(run)).ok();
    let state = if summary.as_ref().is_some_and(|s| is_done(s, run)) {
        RunState::Finished
    } else if let Some(msg) = failed {
        RunState::Failed(msg.trim().to_string())
    } else if epochs_done > 0 {
        RunState::Started
    } else {
        RunState::Pending
    };
    RunStatus {
        state,
        epochs_done,
        best_logged_co_bps,
        summary,
    }
}

/// Every run's status, in plan order.
pub fn statuses(dir: &SweepDir, plan: &Plan) -> Vec<RunStatus> {
    plan.runs.iter().map(|r| status(dir, r)).collect()
}

const SCORE_COLUMNS: [&str; 5] = ["co_bps", "vel_r2", "psth_r2", "fp_bps", "tp_corr"];

fn scores(s: &RunStatus) -> Option<NlbScores> {
    s.summary.as_ref().and_then(|s| s.best_scores)
}

fn score_cells(scores: Option<NlbScores>, digits: usize) -> Vec<String> {
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    match scores {
        None => vec![String::new(); SCORE_COLUMNS.len()],
        Some(s) => vec![
            cell(Some(s.co_bps)),
            cell(s.vel_r2),
            cell(s.psth_r2),
            cell(s.fp_bps),
            cell(s.tp_corr),
        ],
    }
}

/// One row per run: point, split, the swept values, state, epochs, the best checkpoint's epoch
/// and NLB scores (what `submit` sends by default for a monitored run), training seconds.
fn rows(plan: &Plan, statuses: &[RunStatus], digits: usize) -> Vec<Vec<String>> {
    plan.runs
        .iter()
        .zip(statuses)
        .map(|(run, s)| {
            let mut row = vec![run.point.clone(), run.split.clone()];
            row.extend(run.values.iter().map(|(_, v)| v.clone()));
            row.push(s.state.label().to_string());
            row.push(s.epochs_done.to_string());
            let summary = s.summary.as_ref();
            row.push(
                summary
                    .and_then(|s| s.best_epoch)
                    .map_or(String::new(), |e| e.to_string()),
            );
            row.extend(score_cells(scores(s), digits));
            row.push(summary.map_or(String::new(), |s| format!("{:.1}", s.train_seconds)));
            row
        })
        .collect()
}

fn header(plan: &Plan) -> Vec<String> {
    let mut h = vec!["point".to_string(), "split".to_string()];
    h.extend(plan.keys.iter().cloned());
    h.extend(["state", "epochs", "best_epoch"].map(String::from));
    h.extend(SCORE_COLUMNS.map(String::from));
    h.push("train_seconds".into());
    h
}

/// `results.csv`: full precision, written atomically.
pub fn write_csv(dir: &SweepDir, plan: &Plan, statuses: &[RunStatus]) -> Result<(), SweepError> {
    let mut text = header(plan).join(",") + "\n";
    for row in rows(plan, statuses, 6) {
        text += &row.join(",");
        text.push('\n');
    }
    let path = dir.results();
    crate::atomic::write(&path, text.as_bytes()).map_err(|e| io_err(&path, e))
}

/// The results as a markdown table, runs sorted by co-bps (best first; unscored runs last), then
/// the mean and spread over seeds of each point when seeds were swept.
pub fn markdown(plan: &Plan, statuses: &[RunStatus]) -> String {
    let header = header(plan);
    let mut order: Vec<usize> = (0..plan.runs.len()).collect();
    let co_bps = |i: usize| scores(&statuses[i]).map(|s| s.co_bps);
    order.sort_by(|&a, &b| {
        co_bps(b)
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&co_bps(a).unwrap_or(f64::NEG_INFINITY))
    });
    let all = rows(plan, statuses, 4);
    let mut out = table_line(&header);
    out += &table_line(&vec!["---".to_string(); header.len()]);
    for i in order {
        out += &table_line(&all[i]);
    }
    if plan.keys.iter().any(|k| k == "train.seed") {
        out += "\n";
        out += &seed_means(plan, statuses);
    }
    out
}

fn table_line(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// Mean ± standard deviation of the best checkpoints' co-bps over the seeds of each point.
fn seed_means(plan: &Plan, statuses: &[RunStatus]) -> String {
    let mut groups: Vec<(String, String, Vec<f64>)> = Vec::new();
    for (run, s) in plan.runs.iter().zip(statuses) {
        let values: Vec<String> = run
            .values
            .iter()
            .filter(|(k, _)| k != "train.seed")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let key = if values.is_empty() {
            "(config)".to_string()
        } else {
            values.join(" ")
        };
        let pos = match groups
            .iter()
            .position(|(k, sp, _)| *k == key && *sp == run.split)
        {
            Some(p) => p,
            None => {
                groups.push((key, run.split.clone(), Vec::new()));
                groups.len() - 1
            }
        };
        if let Some(sc) = scores(s) {
            groups[pos].2.push(sc.co_bps);
        }
    }
    let mut out = String::from("| values | split | seeds scored | co_bps mean | co_bps sd |\n");
    out += "| --- | --- | --- | --- | --- |\n";
    for (key, split, v) in groups {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        let (m, s) = if v.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("{mean:.4}"), format!("{sd:.4}"))
        };
        let _ = writeln!(out, "| {key} | {split} | {} | {m} | {s} |", v.len());
    }
    out
}

/// `sweep status`: one line per run (state, epochs, best logged co-bps, the error of a failed
/// run) and a count per state.
pub fn status_text(plan: &Plan, statuses: &[RunStatus]) -> String {
    let mut out = String::new();
    for (run, s) in plan.runs.iter().zip(statuses) {
        let best = s
            .best_logged_co_bps
            .map_or(String::new(), |b| format!(", best co-bps {b:.4}"));
        let _ = write!(
            out,
            "{:<9} {}/{}: {} epochs{best}",
            s.state.label(),
            run.point,
            run.split,
            s.epochs_done
        );
        if let RunState::Failed(msg) = &s.state {
            let _ = write!(out, " ({})", msg.lines().last().unwrap_or(""));
        }
        out.push('\n');
    }
    let count = |label: &str| statuses.iter().filter(|s| s.state.label() == label).count();
    let _ = writeln!(
        out,
        "{} runs: {} finished, {} started, {} failed, {} pending",
        statuses.len(),
        count("finished"),
        count("started"),
        count("failed"),
        count("pending")
    );
    out
}
