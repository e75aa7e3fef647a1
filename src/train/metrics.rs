//! What a run logs: one `metrics.csv` row per epoch, and the NLB scores it computes now and then
//! on the eval split for information.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use ndarray::{s, Array3, Axis};
use serde::{Deserialize, Serialize};

use super::data::{to_array, to_tensor, SplitData};
use super::TrainError;
use crate::evaluate::{evaluate_group, GroupRates, Metrics, RatePair};
use crate::model::{predict_log_rates, LangevinFlow};
use crate::nlb::DatasetName;

/// An objective and its parts, averaged over trials.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossParts {
    /// `nll + beta · kl`, the value that was differentiated.
    pub loss: f64,
    /// Poisson negative log-likelihood per entry.
    pub nll: f64,
    /// KL terms per trial.
    pub kl: f64,
}

impl LossParts {
    /// Adds a minibatch's values with weight `n` (its trial count).
    pub fn add(&mut self, other: LossParts, n: usize) {
        let w = n as f64;
        self.loss += other.loss * w;
        self.nll += other.nll * w;
        self.kl += other.kl * w;
    }

    /// The weighted sums divided by the total weight.
    pub fn mean(self, total: usize) -> LossParts {
        let w = total.max(1) as f64;
        LossParts {
            loss: self.loss / w,
            nll: self.nll / w,
            kl: self.kl / w,
        }
    }
}

/// NLB scores of one prediction (nlb_tools' keys in brackets); `None` where the dataset does
/// not define the metric.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NlbScores {
    /// `co-bps`: bits/spike on held-out neurons.
    pub co_bps: f64,
    /// `vel R2`: ridge-decoded velocity.
    pub vel_r2: Option<f64>,
    /// `psth R2`.
    pub psth_r2: Option<f64>,
    /// `fp-bps`: bits/spike of the forward prediction.
    pub fp_bps: Option<f64>,
    /// `tp corr` (dmfc_rsg).
    pub tp_corr: Option<f64>,
}

impl From<Metrics> for NlbScores {
    fn from(m: Metrics) -> Self {
        Self {
            co_bps: m.co_bps,
            vel_r2: m.vel_r2,
            psth_r2: m.psth_r2,
            fp_bps: m.fp_bps,
            tp_corr: m.tp_corr,
        }
    }
}

impl NlbScores {
    /// `co-bps 0.312 vel R2 0.901 …` for the progress line.
    pub fn short(&self) -> String {
        let mut out = format!("co-bps {:.4}", self.co_bps);
        for (name, v) in [
            ("vel R2", self.vel_r2),
            ("psth R2", self.psth_r2),
            ("fp-bps", self.fp_bps),
            ("tp corr", self.tp_corr),
        ] {
            if let Some(v) = v {
                out.push_str(&format!(" {name} {v:.4}"));
            }
        }
        out
    }
}

/// One epoch's line of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// 0-based epoch index.
    pub epoch: usize,
    /// Mean over the epoch's minibatches, weighted by trials (with dropout, as trained).
    pub train: LossParts,
    /// Over the validation trials, without dropout or coordinated dropout.
    pub valid: LossParts,
    /// The validation value of `train.monitor` (what selects and schedules).
    pub monitored: f64,
    /// KL weight used this epoch.
    pub beta: f64,
    /// Coupled L2 penalty used this epoch.
    pub weight_decay: f64,
    /// Learning rate used this epoch.
    pub lr: f64,
    /// Wall time of the epoch (training, validation and any evaluation or plots).
    pub seconds: f64,
    /// NLB scores, on evaluation epochs only.
    pub scores: Option<NlbScores>,
}

/// Column names of `metrics.csv`, in order.
pub const CSV_HEADER: &str = "epoch,train_loss,train_nll,train_kl,valid_loss,valid_nll,valid_kl,\
valid_monitored,beta,weight_decay,lr,seconds,co_bps,vel_r2,psth_r2,fp_bps,tp_corr";

impl EpochRow {
    /// The CSV line (no newline). Floats print in Rust's shortest round-trip form, so a value
    /// read back is the value logged.
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let s = self.scores;
        [
            self.epoch.to_string(),
            self.train.loss.to_string(),
            self.train.nll.to_string(),
            self.train.kl.to_string(),
            self.valid.loss.to_string(),
            self.valid.nll.to_string(),
            self.valid.kl.to_string(),
            self.monitored.to_string(),
            self.beta.to_string(),
            self.weight_decay.to_string(),
            self.lr.to_string(),
            format!("{:.3}", self.seconds),
            opt(s.map(|s| s.co_bps)),
            opt(s.and_then(|s| s.vel_r2)),
            opt(s.and_then(|s| s.psth_r2)),
            opt(s.and_then(|s| s.fp_bps)),
            opt(s.and_then(|s| s.tp_corr)),
        ]
        .join(",")
    }
}

/// `metrics.csv` of a run folder, appended to once per epoch.
#[derive(Debug, Clone)]
pub struct MetricsCsv {
    path: PathBuf,
}

impl MetricsCsv {
    /// Starts a new file with just the header.
    pub fn create(path: &Path) -> Result<Self, TrainError> {
        std::fs::write(path, format!("{CSV_HEADER}\n")).map_err(|e| io_err(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Reopens the file of a resumed run, dropping rows of epochs at or after `next_epoch`
    /// (logged after the checkpoint that is being resumed from), so every epoch appears once.
    pub fn resume(path: &Path, next_epoch: usize) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        let mut kept = format!("{CSV_HEADER}\n");
        for line in text.lines().skip(1) {
            let epoch = line.split(',').next().and_then(|e| e.parse::<usize>().ok());
            match epoch {
                Some(e) if e < next_epoch => {
                    kept.push_str(line);
                    kept.push('\n');
                }
                Some(_) => {}
                None => {
                    return Err(io_err(path, format!("unreadable row `{line}`")));
                }
            }
        }
        super::checkpoint::write_atomic(path, kept.as_bytes())?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Appends one row, so the file is current even if the run is killed. A row that cannot be
    /// written whole (a full disk) is cut off again, so the file never ends in half a line.
    pub fn append(&self, row: &EpochRow) -> Result<(), TrainError> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, e))?;
        let len = f.metadata().map_err(|e| io_err(&self.path, e))?.len();
        let line = format!("{}\n", row.to_csv());
        f.write_all(line.as_bytes()).map_err(|e| {
            let _ = f.set_len(len);
            io_err(&self.path, e)
        })
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Rates (`exp` of the mean log-rate over `samples` passes, spec §8) for every trial of
/// `inputs` `[trials, T, N_in]`, over `T + t_fwd` bins, computed `batch` trials at a time.
pub fn predict_rates<B: Backend>(
    model: &LangevinFlow<B>,
    inputs: &Array3<f32>,
    t_fwd: usize,
    samples: usize,
    batch: usize,
    device: &B::Device,
) -> Array3<f64> {
    let n = inputs.len_of(Axis(0));
    let mut parts = Vec::new();
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        let x = to_tensor::<B>(&inputs.slice(s![start..end, .., ..]).to_owned(), device);
        parts.push(to_array(predict_log_rates(model, x, t_fwd, samples).exp()));
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("batches share bins and neurons")
}

/// Scores `model` on the eval split of `data` with nlb_tools' metrics, for information.
///
/// Training-trial rates (all training trials, file order, as the NLB ridge decoder expects) are
/// predicted too, except for dmfc_rsg, which does not use them.
pub fn nlb_scores<B: Backend>(
    model: &LangevinFlow<B>,
    data: &SplitData,
    dataset: DatasetName,
    samples: usize,
    batch: usize,
    device: &B::Device,
) -> Result<Option<NlbScores>, TrainError> {
    let Some(eval) = &data.eval else {
        return Ok(None);
    };
    let (t_obs, t_fwd) = (data.t_obs(), data.t_fwd());
    let eval_rates = predict_rates(model, &eval.inputs, t_fwd, samples, batch, device);
    let train_rates = (!dataset.is_dmfc())
        .then(|| predict_rates(model, &data.inputs, t_fwd, samples, batch, device));
    let nh = data.n_heldin();
    let rates = GroupRates {
        eval: RatePair::split(eval_rates.slice(s![.., ..t_obs, ..]), nh),
        train: train_rates
            .as_ref()
            .map(|r| RatePair::split(r.slice(s![.., ..t_obs, ..]), nh)),
        eval_forward: (t_fwd > 0)
            .then(|| RatePair::split(eval_rates.slice(s![.., t_obs.., ..]), nh)),
    };
    let metrics =
        evaluate_group(dataset, &eval.target, &rates).map_err(|e| TrainError::Metrics {
            path: data.dir.clone(),
            msg: e.to_string(),
        })?;
    note_skipped_once(&data.dir, &metrics);
    Ok(Some(metrics.into()))
}

/// Logs the metrics a split's target cannot support the first time that split is scored in
/// this process, so a partial target gives one message rather than one per eval epoch.
fn note_skipped_once(dir: &std::path::Path, metrics: &Metrics) {
    static NOTED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    if metrics.skipped.is_empty() {
        return;
    }
    let mut noted = NOTED.lock().unwrap_or_else(|e| e.into_inner());
    if noted.iter().any(|d| d == dir) {
        return;
    }
    noted.push(dir.to_path_buf());
    for s in &metrics.skipped {
        tracing::warn!("{}: {} not scored ({})", dir.display(), s.metric, s.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, scores: Option<NlbScores>) -> EpochRow {
        EpochRow {
            epoch,
            train: LossParts {
                loss: 0.1 + epoch as f64,
                nll: 0.1,
                kl: 3.0,
            },
            valid: LossParts::default(),
            monitored: 0.5,
            beta: 0.0,
            weight_decay: 2e-5,
            lr: 3e-3,
            seconds: 1.23456,
            scores,
        }
    }

    #[test]
    fn csv_rows_have_one_field_per_column() {
        let cols = CSV_HEADER.split(',').count();
        let plain = row(0, None).to_csv();
        assert_eq!(plain.split(',').count(), cols);
        assert!(plain.ends_with("1.235,,,,,"), "{plain}");
        let scored = row(
            3,
            Some(NlbScores {
                co_bps: 0.25,
                vel_r2: Some(0.5),
                ..Default::default()
            }),
        )
        .to_csv();
        assert_eq!(scored.split(',').count(), cols);
        assert!(scored.ends_with(",0.25,0.5,,,"), "{scored}");
    }

    #[test]
    fn resume_drops_rows_from_the_resumed_epoch_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let csv = MetricsCsv::create(&path).unwrap();
        for e in 0..5 {
            csv.append(&row(e, None)).unwrap();
        }
        let csv = MetricsCsv::resume(&path, 3).unwrap();
        csv.append(&row(3, None)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let epochs: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(epochs, ["0", "1", "2", "3"]);
        assert!(text.starts_with(CSV_HEADER));
    }

    #[test]
    fn loss_parts_average_by_trial_count() {
        let mut acc = LossParts::default();
        acc.add(
            LossParts {
                loss: 1.0,
                nll: 2.0,
                kl: 3.0,
            },
            3,
        );
        acc.add(
            LossParts {
                loss: 3.0,
                nll: 4.0,
                kl: 5.0,
            },
            1,
        );
        assert_eq!(
            acc.mean(4),
            LossParts {
                loss: 1.5,
                nll: 2.5,
                kl: 3.5
            }
        );
    }
}
