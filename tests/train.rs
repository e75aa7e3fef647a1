//! `train::run` on small synthetic split folders: learning, reproducibility, checkpoints, resume.
//!
//! The backend RNG is process-wide, so every test that trains or samples holds `RNG` while it
//! runs: seeded comparisons are only meaningful while nothing else draws from it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use langevin::model::Mode;
use langevin::nlb::DatasetName;
use langevin::quickstart;
use langevin::synth::Scale;
use langevin::train::{self, checkpoint, BackendKind, RunConfig, TrainOptions};

type Cpu = NdArray<f32>;

static RNG: Mutex<()> = Mutex::new(());

fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A synthetic mc_maze-like dataset preprocessed to its 20 ms val split.
fn split_home(scale: Scale) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let (_, prep_home, _) =
        quickstart::prepare_split(home.path(), DatasetName::McMaze, scale, 0, false).unwrap();
    (home, prep_home)
}

/// A model small enough to train in seconds on the debug build.
const TINY: &str = r#"
[data]
dataset = "mc_maze"
bin_width = 20
phase = "val"

[model]
hidden_size = 8
latent_size = 8
d_ff = 16
kl_ramp_epochs = 2
n_samples = 2

[train]
epochs = 4
batch_size = 8
lr = 1e-2
l2_ramp_epochs = 2
eval_every = 2
eval_samples = 2
plot_every = 0
"#;

fn options(config: &str, prep_home: &Path, runs_home: &Path, tag: &str) -> TrainOptions {
    TrainOptions {
        config: RunConfig::from_toml(config).unwrap(),
        run_tag: tag.into(),
        runs_home: runs_home.to_path_buf(),
        prep_home: prep_home.to_path_buf(),
        files: Default::default(),
        backend: BackendKind::NdArray,
        resume: false,
        progress: false,
        stop: None,
    }
}

fn with_epochs(mut opts: TrainOptions, epochs: usize) -> TrainOptions {
    opts.config.train.epochs = epochs;
    opts
}

/// Every parameter value of a checkpoint's model, in module order.
fn weights(path: &Path, config: &RunConfig, dims: (usize, usize)) -> Vec<Vec<f32>> {
    struct Values(Vec<Vec<f32>>);
    impl ModuleVisitor<Cpu> for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Cpu, D>>) {
            self.0.push(param.val().into_data().to_vec().unwrap());
        }
    }
    let (model, _) =
        checkpoint::load_model::<Cpu>(path, &config.model, dims, &Default::default()).unwrap();
    let mut v = Values(Vec::new());
    model.visit(&mut v);
    v.0
}

/// metrics.csv without the wall-time column, which differs between any two runs.
fn metrics_without_time(run_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let seconds = header.iter().position(|c| *c == "seconds").unwrap();
    text.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != seconds)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

const DIMS: (usize, usize) = (22, 30);

#[test]
fn training_lowers_the_loss_and_beats_constant_rates_on_held_out_neurons() {
    let _rng = rng_lock();
    let (_home, prep) = split_home(Scale::Small);
    let runs = tempfile::tempdir().unwrap();
    let config = TINY
        .replace("hidden_size = 8", "hidden_size = 16")
        .replace("batch_size = 8", "batch_size = 32")
        .replace("eval_every = 2", "eval_every = 0");
    let opts = with_epochs(options(&config, &prep, runs.path(), "learn"), 32);
    let summary = train::run(&opts).unwrap();
    assert!(summary.finished && summary.epochs_completed == 32);

    let csv = std::fs::read_to_string(summary.run_dir.join("metrics.csv")).unwrap();
    let nll: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect();
    let first = nll[0];
    let last = *nll.last().unwrap();
    assert!(last < 0.95 * first, "validation nll {first} -> {last}");
    // co-bps is the gain in bits per spike over each held-out neuron's constant mean rate.
    let best = summary.best_scores.expect("val phase has eval targets");
    assert!(best.co_bps > 0.0, "co-bps {}", best.co_bps);
    assert!(summary.last_scores.unwrap().co_bps > 0.0);
}

#[test]
fn same_seed_gives_the_same_weights_and_another_seed_does_not() {
    let _rng = rng_lock();
    let (_home, prep) = split_home(Scale::Tiny);
    let runs = tempfile::tempdir().unwrap();
    let run = |tag: &str, seed: u64| {
        let mut opts = with_epochs(options(TINY, &prep, runs.path(), tag), 2);
        opts.config.train.seed = seed;
        opts.config.train.eval_every = 0;
        let dir = train::run(&opts).unwrap().run_dir;
        weights(&dir.join(checkpoint::LAST), &opts.config, DIMS)
    };
    let a = run("a", 5);
    let b = run("b", 5);
    let c = run("c", 6);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn saved_checkpoints_load_to_identical_outputs() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let config = RunConfig::from_toml(TINY).unwrap();
    let device = Default::default();
    Cpu::seed(&device, 11);
    let model = config.model.init::<Autodiff<Cpu>>(5, 7, &device).unwrap();
    let optim = train::optim::adam::<Autodiff<Cpu>>(&config.train, 0.0);
    let state = checkpoint::TrainState {
        next_epoch: 3,
        lr: 1e-3,
        plateau: train::schedule::Plateau::new(0.95, 10, 0.0, 1e-5),
        best_monitored: Some(0.5),
        best_epoch: Some(2),
        seed: 1,
        elapsed_seconds: 1.5,
        last_scores: None,
        last_epoch: None,
        average_steps: 12,
    };
    let path = dir.path().join("x.mpk");
    checkpoint::save(&path, &model, &optim, &state).unwrap();
    assert_eq!(checkpoint::read_state(&path).unwrap(), state);

    let x = Tensor::<Cpu, 3>::random(
        [3, 6, 5],
        burn::tensor::Distribution::Uniform(0.0, 3.0),
        &device,
    )
    .floor();
    let original = burn::module::AutodiffModule::valid(&model);
    let (loaded, loaded_state) =
        checkpoint::load_model::<Cpu>(&path, &config.model, (5, 7), &device).unwrap();
    assert_eq!(loaded_state, state);
    Cpu::seed(&device, 3);
    let a = original.forward(x.clone(), 2, Mode::Eval).log_rates;
    Cpu::seed(&device, 3);
    let b = loaded.forward(x, 2, Mode::Eval).log_rates;
    assert_eq!(a.into_data(), b.into_data());

    // The training load restores the optimiser state as well, keyed by the same parameters.
    let (_, optim_back, _) = checkpoint::load::<Autodiff<Cpu>>(
        &path,
        &config.model,
        &config.train,
        0.0,
        (5, 7),
        &device,
    )
    .unwrap();
    use burn::optim::Optimizer;
    assert_eq!(optim_back.to_record().len(), optim.to_record().len());

    // A checkpoint read with another model shape is refused with a reason.
    let err = checkpoint::load_model::<Cpu>(&path, &config.model, (6, 7), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("parameter shapes"), "{err}");
}

#[test]
fn resumed_runs_continue_exactly_where_an_uninterrupted_run_would_be() {
    let _rng = rng_lock();
    let (_home, prep) = split_home(Scale::Tiny);
    let runs = tempfile::tempdir().unwrap();
    let config = TINY.replace("plot_every = 0", "plot_every = 3");

    let straight = train::run(&options(&config, &prep, runs.path(), "straight")).unwrap();

    let first = with_epochs(options(&config, &prep, runs.path(), "split"), 2);
    let dir = train::run(&first).unwrap().run_dir;
    // A stop request before the first minibatch leaves the run where it was.
    let mut stopped = options(&config, &prep, runs.path(), "split");
    stopped.resume = true;
    stopped.stop = Some(Arc::new(AtomicBool::new(true)));
    let summary = train::run(&stopped).unwrap();
    assert!(!summary.finished && summary.epochs_completed == 2);
    let mut resumed = options(&config, &prep, runs.path(), "split");
    resumed.resume = true;
    let summary = train::run(&resumed).unwrap();
    assert!(summary.finished && summary.epochs_completed == 4);

    let rows = metrics_without_time(&dir);
    assert_eq!(rows.len(), 5, "{rows:#?}");
    assert_eq!(rows, metrics_without_time(&straight.run_dir));
    let config = RunConfig::from_toml(&config).unwrap();
    assert_eq!(
        weights(&dir.join(checkpoint::LAST), &config, DIMS),
        weights(&straight.run_dir.join(checkpoint::LAST), &config, DIMS)
    );
    assert_eq!(summary.best_epoch, straight.best_epoch);
    assert_eq!(summary.best_monitored, straight.best_monitored);
    assert!(dir.join("plots/epoch_00003_rates.png").is_file());
    assert!(dir.join("plots/epoch_00000_latents.png").is_file());
    assert!(dir.join("summary.json").is_file());
}

#[test]
fn runs_refuse_to_overwrite_or_resume_inconsistently() {
    let _rng = rng_lock();
    let (_home, prep) = split_home(Scale::Tiny);
    let runs = tempfile::tempdir().unwrap();
    let mut opts = with_epochs(options(TINY, &prep, runs.path(), "r"), 1);
    opts.config.train.eval_every = 0;
    let err = {
        let mut r = opts.clone();
        r.resume = true;
        train::run(&r).unwrap_err().to_string()
    };
    assert!(err.contains("nothing to resume"), "{err}");
    train::run(&opts).unwrap();
    let err = train::run(&opts).unwrap_err().to_string();
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    let mut changed = opts.clone();
    changed.resume = true;
    changed.config.train.lr = 0.5;
    changed.config.model.dropout = 0.1;
    let err = train::run(&changed).unwrap_err().to_string();
    assert!(
        err.contains("model.dropout, train.lr") && err.contains("train.epochs"),
        "{err}"
    );
}

#[test]
fn a_missing_split_folder_says_how_to_make_it() {
    let runs = tempfile::tempdir().unwrap();
    let prep = tempfile::tempdir().unwrap();
    let err = train::run(&options(TINY, prep.path(), runs.path(), "m"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mc_maze-20ms-val")
            && err.contains("langevin preprocess --dataset mc_maze --bin-width 20 --phase val"),
        "{err}"
    );
}

#[test]
fn weight_averaging_validates_the_average_and_resumes_exactly() {
    let _rng = rng_lock();
    let (_home, prep) = split_home(Scale::Tiny);
    let runs = tempfile::tempdir().unwrap();
    let config = TINY.replace("plot_every = 0", "plot_every = 0\nema_decay = 0.9");

    let plain = train::run(&options(TINY, &prep, runs.path(), "plain")).unwrap();
    let straight = train::run(&options(&config, &prep, runs.path(), "ema")).unwrap();
    let first = with_epochs(options(&config, &prep, runs.path(), "ema-split"), 2);
    let dir = train::run(&first).unwrap().run_dir;
    let mut resumed = options(&config, &prep, runs.path(), "ema-split");
    resumed.resume = true;
    let summary = train::run(&resumed).unwrap();
    assert!(summary.finished);

    // The same training steps; only the validated weights differ.
    let train_cols = |rows: Vec<String>| -> Vec<String> {
        rows.iter()
            .map(|r| r.split(',').take(4).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(
        train_cols(metrics_without_time(&straight.run_dir)),
        train_cols(metrics_without_time(&plain.run_dir))
    );
    assert_ne!(straight.best_monitored, plain.best_monitored);
    // Resuming restores the average: the same rows and averaged weights as one straight run.
    assert_eq!(
        metrics_without_time(&dir),
        metrics_without_time(&straight.run_dir)
    );
    let parsed = RunConfig::from_toml(&config).unwrap();
    let average = |d: &Path| weights(&d.join(checkpoint::AVERAGE), &parsed, DIMS);
    assert_eq!(average(&dir), average(&straight.run_dir));
    assert_ne!(
        average(&straight.run_dir),
        weights(&straight.run_dir.join(checkpoint::LAST), &parsed, DIMS)
    );
    assert_eq!(
        checkpoint::submitted_file(&dir, checkpoint::CheckpointKind::Last),
        dir.join(checkpoint::AVERAGE)
    );
}
