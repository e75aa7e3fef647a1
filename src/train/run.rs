//! The training loop.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::ElementConversion;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Axis;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::average::WeightAverage;
use super::checkpoint::{self, TrainState, AVERAGE, BEST, LAST};
use super::config::{RunConfig, RESUMABLE_KEYS};
use super::curves::plot_learning_curve;
use super::data::{rows_to_tensor, to_array, SplitData};
use super::metrics::{nlb_scores, predict_rates, EpochRow, LossParts, MetricsCsv, NlbScores};
use super::optim::{adam, clip_grad_norm, with_weight_decay};
use super::plots::{plot_latents, plot_rates, PlotInfo};
use super::schedule::{epoch_seed, Plateau, Stream};
use super::TrainError;
use crate::model::{kl_beta, LangevinFlow, Mode};
use crate::nlb::files::SplitFiles;

/// Which Burn backend trains; only those compiled in (cargo features `wgpu`, `cuda`) can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// CPU, always available: burn-flex (SIMD kernels, `gemm` matrix products, rayon threads),
    /// the faster of Burn's two CPU backends on this model.
    Flex,
    /// CPU, always available: burn-ndarray.
    NdArray,
    /// Any GPU through WebGPU (feature `wgpu`).
    Wgpu,
    /// NVIDIA GPUs through CUDA (feature `cuda`).
    Cuda,
}

impl BackendKind {
    /// The backends this binary was built with.
    pub fn compiled() -> Vec<BackendKind> {
        let mut out = vec![BackendKind::Flex, BackendKind::NdArray];
        if cfg!(feature = "wgpu") {
            out.push(BackendKind::Wgpu);
        }
        if cfg!(feature = "cuda") {
            out.push(BackendKind::Cuda);
        }
        out
    }

    /// The name `--backend` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::NdArray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compiled = Self::compiled();
        let names = || {
            compiled
                .iter()
                .map(|b| b.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let kind = match s {
            "flex" | "cpu" => BackendKind::Flex,
            "ndarray" => BackendKind::NdArray,
            "wgpu" => BackendKind::Wgpu,
            "cuda" => BackendKind::Cuda,
            _ => {
                return Err(TrainError::Backend(format!(
                    "unknown backend `{s}` (this build has: {})",
                    names()
                )))
            }
        };
        if !compiled.contains(&kind) {
            return Err(TrainError::Backend(format!(
                "backend `{s}` is not compiled in (this build has: {}); rebuild with \
                 `cargo build --release --features {s}`",
                names()
            )));
        }
        Ok(kind)
    }
}

/// What to train and where; [`run`] does the rest.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The resolved configuration (file plus overrides), already validated.
    pub config: RunConfig,
    /// Names the run folder `runs_home/run_tag/…` (the CLI defaults it to the config file stem).
    pub run_tag: String,
    /// Root of all run folders (`RUNS_HOME` / `--runs-home`).
    pub runs_home: PathBuf,
    /// Where split folders live, unless `config.data.prep_home` says otherwise.
    pub prep_home: PathBuf,
    /// File names inside the split folder.
    pub files: SplitFiles,
    /// Backend to train on.
    pub backend: BackendKind,
    /// Continue from the run folder's `last.mpk` instead of starting fresh.
    pub resume: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Checked between minibatches; when it turns true the run returns after its last complete
    /// epoch (see [`super::stop_on_ctrl_c`]).
    pub stop: Option<Arc<AtomicBool>>,
}

/// One epoch's losses and learning rate, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FinalEpoch {
    /// 0-based epoch index.
    pub epoch: usize,
    /// Training losses (with dropout), averaged over the epoch.
    pub train: LossParts,
    /// Validation losses.
    pub valid: LossParts,
    /// Learning rate used in the epoch.
    pub lr: f64,
}

/// How a run ended; also written to `summary.json` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// The run folder holding checkpoints, metrics and plots.
    pub run_dir: PathBuf,
    /// `{dataset}-{bw:02}ms-{phase}`.
    pub split: String,
    /// Backend it trained on.
    pub backend: String,
    /// Epochs configured.
    pub epochs: usize,
    /// Epochs completed so far, over all sessions of the run.
    pub epochs_completed: usize,
    /// Whether all configured epochs are done (false after Ctrl-C).
    pub finished: bool,
    /// Epoch (0-based) with the lowest validation value of `train.monitor`, whose weights are
    /// in `best.mpk`, and that value.
    pub best_epoch: Option<usize>,
    /// Best value of the monitored validation quantity.
    pub best_monitored: Option<f64>,
    /// The last completed epoch.
    pub last_epoch: Option<FinalEpoch>,
    /// NLB scores on the eval split (val phase) of the last and of the best model, for
    /// information; computed when the run finishes.
    pub last_scores: Option<NlbScores>,
    /// As `last_scores`, for the weights in `best.mpk`.
    pub best_scores: Option<NlbScores>,
    /// Wall time of this invocation.
    pub wall_seconds: f64,
    /// Training time summed over every session of the run.
    pub train_seconds: f64,
}

/// The summary as a few aligned lines for the terminal.
pub fn summary_text(s: &TrainSummary) -> String {
    let mut out = format!("run folder:   {}\n", s.run_dir.display());
    let status = if s.finished {
        "finished".to_string()
    } else {
        "stopped; `--resume` continues".to_string()
    };
    out += &format!(
        "epochs:       {}/{} ({status})\n",
        s.epochs_completed, s.epochs
    );
    if let (Some(e), Some(l)) = (s.best_epoch, s.best_monitored) {
        out += &format!("best epoch:   {e} (monitored validation value {l:.5}) in best.mpk\n");
    }
    if let Some(f) = s.last_epoch {
        out += &format!(
            "last epoch:   {} (train loss {:.5}, valid loss {:.5}, lr {:.2e})\n",
            f.epoch, f.train.loss, f.valid.loss, f.lr
        );
    }
    if let Some(b) = s.best_scores {
        out += &format!("NLB, best:    {}\n", b.short());
    }
    if let Some(l) = s.last_scores {
        out += &format!("NLB, last:    {}\n", l.short());
    }
    out += &format!(
        "time:         {:.1} s now, {:.1} s of training in all\n",
        s.wall_seconds, s.train_seconds
    );
    out
}

/// Trains as `opts` says, on the chosen backend, and returns the run's summary.
pub fn run(opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    match opts.backend {
        BackendKind::Flex => train::<burn::backend::Flex>(opts, &Default::default()),
        BackendKind::NdArray => {
            train::<burn::backend::NdArray<f32>>(opts, &burn::backend::ndarray::NdArrayDevice::Cpu)
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => train::<burn::backend::Wgpu>(opts, &Default::default()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => train::<burn::backend::Cuda>(opts, &Default::default()),
        #[allow(unreachable_patterns)]
        other => Err(TrainError::Backend(format!(
            "backend `{other}` is not compiled in"
        ))),
    }
}

/// The run folder of `opts`: `runs_home/run_tag/{dataset}-{bw:02}ms-{phase}`.
pub fn run_dir(opts: &TrainOptions) -> PathBuf {
    opts.runs_home
        .join(&opts.run_tag)
        .join(opts.config.data.split().dir_name())
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Checks that a run folder may be started or resumed with this config, before any data is read.
fn check_run_dir(opts: &TrainOptions, dir: &Path) -> Result<(), TrainError> {
    let last = dir.join(LAST);
    if !opts.resume {
        if last.exists() {
            return Err(TrainError::Resume(format!(
                "{} already holds a run (last.mpk): pass --resume to continue it, or choose \
                 another --run-tag",
                dir.display()
            )));
        }
        return Ok(());
    }
    if !last.is_file() {
        return Err(TrainError::Resume(format!(
            "nothing to resume: {} does not exist (start without --resume)",
            last.display()
        )));
    }
    let saved_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&saved_path).map_err(|e| io_err(&saved_path, e))?;
    let saved = RunConfig::from_toml(&text)
        .map_err(|e| io_err(&saved_path, format!("saved config: {e}")))?;
    let changed: Vec<String> = saved
        .differing_keys(&opts.config)
        .into_iter()
        .filter(|k| !RESUMABLE_KEYS.contains(&k.as_str()))
        .collect();
    if !changed.is_empty() {
        return Err(TrainError::Resume(format!(
            "cannot resume {}: {} differ from the run's config.toml (only {} may change)",
            dir.display(),
            changed.join(", "),
            RESUMABLE_KEYS.join(", ")
        )));
    }
    Ok(())
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}

fn indices<B: Backend>(idx: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let data: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [idx.len()]), device)
}

fn every(n: usize, epoch: usize) -> bool {
    n > 0 && epoch.is_multiple_of(n)
}

fn train<B: Backend>(opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary, TrainError> {
    let started = Instant::now();
    let cfg = &opts.config;
    let tc = &cfg.train;
    let split = cfg.data.split();
    let dir = run_dir(opts);
    check_run_dir(opts, &dir)?;

    let prep_home = cfg.data.prep_home_or(&opts.prep_home);
    let data = SplitData::load(&prep_home, &split, &opts.files, &cfg.data)?;
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let dims = (data.n_heldin(), data.n_neurons());
    let t_fwd = data.t_fwd();
    let seed = tc.seed;

    let (mut model, mut optim, mut state, csv) = if opts.resume {
        // The penalty is set for each epoch in the loop, before the first step.
        let (model, optim, state) =
            checkpoint::load::<Autodiff<B>>(&dir.join(LAST), &cfg.model, tc, 0.0, dims, device)?;
        let csv = MetricsCsv::resume(&dir.join("metrics.csv"), state.next_epoch)?;
        (model, optim, state, csv)
    } else {
        Autodiff::<B>::seed(device, epoch_seed(seed, 0, Stream::Init));
        let mut model = cfg.model.init::<Autodiff<B>>(dims.0, dims.1, device)?;
        if tc.mean_rate_bias {
            let logs = data.log_mean_rates();
            model = model.with_readout_bias(Tensor::from_floats(logs.as_slice(), device));
        }
        let best = dir.join(BEST);
        if best.exists() {
            std::fs::remove_file(&best).map_err(|e| io_err(&best, e))?;
        }
        let state = TrainState {
            next_epoch: 0,
            lr: tc.lr,
            plateau: Plateau::new(
                tc.plateau_factor,
                tc.plateau_patience,
                tc.plateau_threshold,
                tc.min_lr,
            ),
            best_monitored: None,
            best_epoch: None,
            seed,
            elapsed_seconds: 0.0,
            last_scores: None,
            last_epoch: None,
            average_steps: 0,
        };
        let csv = MetricsCsv::create(&dir.join("metrics.csv"))?;
        (model, adam::<Autodiff<B>>(tc, 0.0), state, csv)
    };
    checkpoint::write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    let mut average = WeightAverage::<B>::resume_or_start(
        tc.ema_decay,
        opts.resume.then(|| dir.join(AVERAGE)),
        &model.valid(),
        state.average_steps,
        (&cfg.model, dims, device),
    )?;

    let x_train = rows_to_tensor::<Autodiff<B>>(&data.inputs, &data.train_idx, device);
    let y_train = rows_to_tensor::<Autodiff<B>>(&data.targets, &data.train_idx, device);
    let x_valid = rows_to_tensor::<B>(&data.inputs, &data.valid_idx, device);
    let y_valid = rows_to_tensor::<B>(&data.targets, &data.valid_idx, device);
    let n_train = data.train_idx.len();
    if tc.batch_size >= n_train {
        tracing::warn!(
            "train.batch_size ({}) ≥ the {n_train} training trials: one optimizer step per epoch, \
             so schedules in epochs run in steps this slowly; a smaller batch learns faster",
            tc.batch_size
        );
    }
    let stop = || opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));

    let bar = progress_bar(
        opts.progress,
        tc.epochs,
        state.next_epoch,
        &split.dir_name(),
    );
    tracing::info!(
        "training {} on {} ({} train / {} valid trials, T = {}, Tf = {t_fwd}, N = {} + {}) in {}",
        split.dir_name(),
        opts.backend,
        n_train,
        data.valid_idx.len(),
        data.t_obs(),
        dims.0,
        dims.1 - dims.0,
        dir.display()
    );

    let mut interrupted = false;
    for epoch in state.next_epoch..tc.epochs {
        let t0 = Instant::now();
        let weight_decay = tc.l2_at(epoch);
        optim = with_weight_decay(&optim, tc, weight_decay);
        Autodiff::<B>::seed(device, epoch_seed(seed, epoch, Stream::Backend));
        let mut order: Vec<usize> = (0..n_train).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(epoch_seed(
            seed,
            epoch,
            Stream::Shuffle,
        )));

        let mut sums = LossParts::default();
        for chunk in order.chunks(tc.batch_size) {
            if stop() {
                interrupted = true;
                break;
            }
            let idx = indices::<Autodiff<B>>(chunk, device);
            let x = x_train.clone().select(0, idx.clone());
            let y = y_train.clone().select(0, idx);
            let loss = model.training_loss(x, y, epoch);
            let parts = LossParts {
                loss: scalar(loss.total.clone()),
                nll: scalar(loss.nll.clone()),
                kl: scalar(loss.kl.clone()),
            };
            let mut grads = GradientsParams::from_grads(loss.total.backward(), &model);
            if let Some(max_norm) = tc.grad_clip {
                clip_grad_norm(&model, &mut grads, max_norm);
            }
            model = optim.step(state.lr, model, grads);
            if let Some(avg) = average.as_mut() {
                avg.update(&model.valid());
            }
            sums.add(parts, chunk.len());
        }
        if interrupted {
            break;
        }
        let train_parts = sums.mean(n_train);
        let valid_model = average
            .as_ref()
            .map_or_else(|| model.valid(), |a| a.model.clone());
        let (valid_parts, heldout_nll) =
            validation_loss(&valid_model, &x_valid, &y_valid, epoch, tc.batch_size);
        let monitored = tc.monitor.value(
            valid_parts.nll,
            valid_parts.kl,
            valid_parts.loss,
            heldout_nll,
            cfg.model.kl_weight,
        );
        let lr_used = state.lr;
        state.lr = state.plateau.step(monitored, state.lr);

        let scores = if every(tc.eval_every, epoch) {
            let s = informational(
                &bar,
                nlb_scores(
                    &valid_model,
                    &data,
                    split.dataset,
                    tc.eval_samples,
                    tc.batch_size,
                    device,
                ),
            );
            if let Some(s) = s {
                state.last_scores = Some((epoch, s));
                bar.println(format!("epoch {epoch}: {}", s.short()));
            }
            s
        } else {
            None
        };
        if every(tc.plot_every, epoch) {
            informational(
                &bar,
                write_plots(&valid_model, &data, &dir, epoch, tc.eval_samples, device),
            );
        }

        let seconds = t0.elapsed().as_secs_f64();
        state.next_epoch = epoch + 1;
        state.elapsed_seconds += seconds;
        state.last_epoch = Some(FinalEpoch {
            epoch,
            train: train_parts,
            valid: valid_parts,
            lr: lr_used,
        });
        csv.append(&EpochRow {
            epoch,
            train: train_parts,
            valid: valid_parts,
            monitored,
            beta: kl_beta(epoch, cfg.model.kl_weight, cfg.model.kl_ramp_epochs),
            weight_decay,
            lr: lr_used,
            seconds,
            scores,
        })?;
        if every(tc.plot_every, epoch) {
            informational(&bar, plot_learning_curve(&dir));
        }
        let improved = state.best_monitored.is_none_or(|best| monitored < best);
        state.average_steps = average.as_ref().map_or(0, |a| a.steps);
        let validated = average
            .as_ref()
            .map(|a| LangevinFlow::<Autodiff<B>>::from_inner(a.model.clone()));
        if improved && monitored.is_finite() {
            state.best_monitored = Some(monitored);
            state.best_epoch = Some(epoch);
            checkpoint::save(
                &dir.join(BEST),
                validated.as_ref().unwrap_or(&model),
                &optim,
                &state,
            )?;
        }
        if let Some(avg) = &validated {
            checkpoint::save(&dir.join(AVERAGE), avg, &optim, &state)?;
        }
        checkpoint::save(&dir.join(LAST), &model, &optim, &state)?;
        bar.set_position(epoch as u64 + 1);
        bar.set_message(format!(
            "train {:.4} valid {:.4} (nll {:.4}, kl {:.1}) lr {:.2e}",
            train_parts.loss, valid_parts.loss, valid_parts.nll, valid_parts.kl, state.lr
        ));
    }
    bar.finish_and_clear();
    if tc.plot_every > 0 {
        informational(&bar, plot_learning_curve(&dir));
    }

    let finished = state.next_epoch >= tc.epochs;
    let (mut last_scores, mut best_scores) = (None, None);
    if finished && data.eval.is_some() {
        let final_seed = epoch_seed(seed, tc.epochs, Stream::Backend);
        last_scores = match state.last_scores {
            Some((e, s)) if e + 1 == tc.epochs => Some(s),
            _ => {
                B::seed(device, final_seed);
                let m = average
                    .as_ref()
                    .map_or_else(|| model.valid(), |a| a.model.clone());
                informational(
                    &bar,
                    nlb_scores(
                        &m,
                        &data,
                        split.dataset,
                        tc.eval_samples,
                        tc.batch_size,
                        device,
                    ),
                )
            }
        };
        let best_path = dir.join(BEST);
        if best_path.is_file() {
            let (best, _) = checkpoint::load_model::<B>(&best_path, &cfg.model, dims, device)?;
            B::seed(device, final_seed);
            best_scores = informational(
                &bar,
                nlb_scores(
                    &best,
                    &data,
                    split.dataset,
                    tc.eval_samples,
                    tc.batch_size,
                    device,
                ),
            );
        }
    }
    let summary = TrainSummary {
        run_dir: dir.clone(),
        split: split.dir_name(),
        backend: opts.backend.to_string(),
        epochs: tc.epochs,
        epochs_completed: state.next_epoch,
        finished,
        best_epoch: state.best_epoch,
        best_monitored: state.best_monitored,
        last_epoch: state.last_epoch,
        last_scores,
        best_scores,
        wall_seconds: started.elapsed().as_secs_f64(),
        train_seconds: state.elapsed_seconds,
    };
    let json = serde_json::to_string_pretty(&summary).expect("summary is plain data");
    checkpoint::write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    if interrupted {
        tracing::info!("stopped after epoch {}", state.next_epoch);
    }
    Ok(summary)
}

/// Unwraps the result of an informational step (NLB scores, plots), turning a failure into a
/// warning: neither chooses a model, so neither may end a long run.
fn informational<T: Default>(bar: &ProgressBar, result: Result<T, TrainError>) -> T {
    result.unwrap_or_else(|e| {
        bar.suspend(|| tracing::warn!("{e}"));
        T::default()
    })
}

/// The validation objective over all held-back trials, `batch` at a time, weighted by trials,
/// and the held-out neurons' likelihood (see [`super::config::Monitor::HeldoutNll`]).
fn validation_loss<B: Backend>(
    model: &LangevinFlow<B>,
    x: &Tensor<B, 3>,
    y: &Tensor<B, 3>,
    epoch: usize,
    batch: usize,
) -> (LossParts, f64) {
    let n = x.dims()[0];
    let mut sums = LossParts::default();
    let mut heldout = 0.0;
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let (loss, heldout_nll) = model.validation_parts(
            x.clone().slice(s![start..end, .., ..]),
            y.clone().slice(s![start..end, .., ..]),
            epoch,
        );
        sums.add(
            LossParts {
                loss: scalar(loss.total),
                nll: scalar(loss.nll),
                kl: scalar(loss.kl),
            },
            end - start,
        );
        heldout += scalar(heldout_nll) * (end - start) as f64;
    }
    (sums.mean(n), heldout / n.max(1) as f64)
}

/// Validation trials plotted: two for spikes and rates, up to this many for latent trajectories.
const LATENT_TRIALS: usize = 24;

fn write_plots<B: Backend>(
    model: &LangevinFlow<B>,
    data: &SplitData,
    dir: &Path,
    epoch: usize,
    samples: usize,
    device: &B::Device,
) -> Result<(), TrainError> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| io_err(&plots, e))?;
    let shown: Vec<usize> = data.valid_idx.iter().take(2).copied().collect();
    let info = PlotInfo {
        epoch,
        bin_ms: data.bin_ms,
        t_obs: data.t_obs(),
        n_heldin: data.n_heldin(),
        trials: shown.clone(),
    };
    let inputs = data.inputs.select(Axis(0), &shown);
    let rates = predict_rates(model, &inputs, data.t_fwd(), samples, shown.len(), device);
    let spikes = data.targets.select(Axis(0), &shown);
    plot_rates(
        &plots.join(format!("epoch_{epoch:05}_rates.png")),
        &spikes,
        &rates,
        &info,
    )?;
    let traced: Vec<usize> = data.valid_idx.iter().take(LATENT_TRIALS).copied().collect();
    let x = rows_to_tensor::<B>(&data.inputs, &traced, device);
    let z = to_array(model.forward(x, data.t_fwd(), Mode::Eval).z);
    plot_latents(
        &plots.join(format!("epoch_{epoch:05}_latents.png")),
        &z,
        &info,
    )
}

fn progress_bar(show: bool, epochs: usize, start: usize, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(epochs as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:25}] {pos}/{len} epochs [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar.set_position(start as u64);
    bar.reset_eta();
    bar
}
