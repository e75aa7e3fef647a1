//! The wgpu backend against ndarray: the same weights and the same random draws give the same
//! losses and gradients, a few Adam steps stay together, and a checkpoint trained on wgpu submits
//! on ndarray. Built only with `--features wgpu`; without a GPU it runs on Mesa's lavapipe (Vulkan
//! on the CPU, Debian's `mesa-vulkan-drivers`), which `.ci/run` installs.
//!
//! Tolerances: both backends compute in f32 but sum in different orders (tiled GPU reductions
//! against sequential CPU loops), through 20 recurrent steps and their backward pass. Losses must
//! agree to 1e-4 relative, each parameter's gradient to 1e-3 of its L2 norm plus 1e-6: gradients
//! that are zero in exact arithmetic (the attention key bias, as softmax ignores a shift shared by
//! all keys) are rounding noise of ~1e-8 on both sides and agree only in that absolute sense.
#![cfg(feature = "wgpu")]

mod common;

use std::collections::HashMap;
use std::path::Path;

use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, TensorData};
use langevin::model::noise::Noise;
use langevin::model::LangevinFlow;
use langevin::train::{checkpoint, RunConfig};

type Cpu = Autodiff<NdArray<f32>>;
type Gpu = Autodiff<Wgpu>;

const CONFIG: &str = r#"
[data]
dataset = "mc_maze"
bin_width = 20
phase = "val"

[model]
hidden_size = 8
latent_size = 8
d_ff = 16
dropout = 0.0
cd_keep = 1.0
kl_ramp_epochs = 0

[train]
batch_size = 4
"#;

const B: usize = 4;
const T: usize = 15;
const TF: usize = 5;
const N_IN: usize = 6;
const N: usize = 9;
const D: usize = 8;

/// Counts and the draws of one pass (z0, v0 and every velocity kick), the same for both backends.
fn batch(seed: u64) -> (Vec<f32>, Vec<f32>, HashMap<String, TensorData>) {
    let dev = Default::default();
    NdArray::<f32>::seed(&dev, seed);
    let values = |t: Tensor<NdArray<f32>, 1>| t.into_data().to_vec::<f32>().unwrap();
    let counts = |n| values(Tensor::random([n], Distribution::Uniform(0.0, 4.0), &dev).floor());
    let x = counts(B * T * N_IN);
    let y = counts(B * (T + TF) * N);
    let mut draws = HashMap::new();
    let normal = |n| values(Tensor::random([n], Distribution::Normal(0.0, 1.0), &dev));
    draws.insert("z0".to_string(), TensorData::new(normal(B * D), [B, D]));
    draws.insert("v0".to_string(), TensorData::new(normal(B * D), [B, D]));
    for t in 1..T + TF {
        draws.insert(
            format!("velocity/{t}"),
            TensorData::new(normal(B * D), [B, D]),
        );
    }
    (x, y, draws)
}

struct Grads<'a, A: AutodiffBackend> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
    _b: std::marker::PhantomData<A>,
}

impl<A: AutodiffBackend> ModuleVisitor<A> for Grads<'_, A> {
    fn visit_float<const K: usize>(&mut self, param: &Param<Tensor<A, K>>) {
        let g = self.grads.get::<A::InnerBackend, K>(param.id);
        self.out.push(g.map_or_else(Vec::new, |g| {
            g.into_data().convert::<f32>().to_vec().unwrap()
        }));
    }
}

/// Loss terms and every parameter's gradient of one pass.
fn pass<A: AutodiffBackend>(
    model: &LangevinFlow<A>,
    (x, y, draws): &(Vec<f32>, Vec<f32>, HashMap<String, TensorData>),
    device: &A::Device,
) -> ([f64; 3], Vec<Vec<f32>>, GradientsParams) {
    let x = Tensor::<A, 3>::from_data(TensorData::new(x.clone(), [B, T, N_IN]), device);
    let y = Tensor::<A, 3>::from_data(TensorData::new(y.clone(), [B, T + TF, N]), device);
    let noise = Noise::replay(draws.clone());
    let loss = model.training_loss_with(x, y, 3, &noise);
    assert!(noise.unused().is_empty(), "{:?}", noise.unused());
    let scalar =
        |t: Tensor<A, 1>| f64::from(t.into_data().convert::<f32>().to_vec::<f32>().unwrap()[0]);
    let terms = [
        scalar(loss.total.clone()),
        scalar(loss.nll.clone()),
        scalar(loss.kl.clone()),
    ];
    let grads = GradientsParams::from_grads(loss.total.backward(), model);
    let mut visitor = Grads::<A> {
        grads: &grads,
        out: Vec::new(),
        _b: std::marker::PhantomData,
    };
    model.visit(&mut visitor);
    (terms, visitor.out, grads)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-8)
}

/// `(|a − b|, |a|)` in L2 norm.
fn l2(a: &[f32], b: &[f32]) -> (f64, f64) {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
    (diff.sqrt(), norm.sqrt())
}

/// The same model on both backends: initialised on ndarray, written to a checkpoint, read on wgpu.
fn models(dir: &Path) -> (RunConfig, LangevinFlow<Cpu>, LangevinFlow<Gpu>) {
    let config = RunConfig::from_toml(CONFIG).unwrap();
    let cpu_dev = Default::default();
    Cpu::seed(&cpu_dev, 5);
    let cpu = config.model.init::<Cpu>(N_IN, N, &cpu_dev).unwrap();
    let optim = langevin::train::optim::adam::<Cpu>(&config.train, 0.0);
    let path = dir.join("start.mpk");
    let state = checkpoint::TrainState {
        next_epoch: 0,
        lr: 1e-3,
        plateau: langevin::train::schedule::Plateau::new(0.95, 10, 0.0, 1e-5),
        best_monitored: None,
        best_epoch: None,
        seed: 0,
        elapsed_seconds: 0.0,
        last_scores: None,
        last_epoch: None,
        average_steps: 0,
    };
    checkpoint::save(&path, &cpu, &optim, &state).unwrap();
    let (gpu, _, _) = checkpoint::load::<Gpu>(
        &path,
        &config.model,
        &config.train,
        0.0,
        (N_IN, N),
        &Default::default(),
    )
    .unwrap();
    (config, cpu, gpu)
}

#[test]
fn losses_gradients_and_adam_steps_match_ndarray() {
    let dir = tempfile::tempdir().unwrap();
    let (config, mut cpu, mut gpu) = models(dir.path());
    let (cpu_dev, gpu_dev) = (Default::default(), Default::default());
    let first = batch(1);
    let (cpu_terms, cpu_grads, _) = pass(&cpu, &first, &cpu_dev);
    let (gpu_terms, gpu_grads, _) = pass(&gpu, &first, &gpu_dev);
    for (c, g) in cpu_terms.iter().zip(&gpu_terms) {
        assert!(
            close(*c, *g, 1e-4),
            "loss terms {cpu_terms:?} vs {gpu_terms:?}"
        );
    }
    assert_eq!(cpu_grads.len(), gpu_grads.len());
    for (i, (c, g)) in cpu_grads.iter().zip(&gpu_grads).enumerate() {
        assert_eq!(c.len(), g.len(), "parameter {i}");
        let (diff, norm) = l2(c, g);
        assert!(
            diff <= 1e-3 * norm + 1e-6,
            "parameter {i}: |cpu - gpu| {diff:e}, |cpu| {norm:e}"
        );
    }

    let mut cpu_opt = langevin::train::optim::adam::<Cpu>(&config.train, 0.0);
    let mut gpu_opt = langevin::train::optim::adam::<Gpu>(&config.train, 0.0);
    for step in 0..5 {
        let b = batch(10 + step);
        let (c, _, cg) = pass(&cpu, &b, &cpu_dev);
        let (g, _, gg) = pass(&gpu, &b, &gpu_dev);
        assert!(
            close(c[0], g[0], 1e-3),
            "step {step}: loss {} vs {}",
            c[0],
            g[0]
        );
        cpu = cpu_opt.step(1e-2, cpu, cg);
        gpu = gpu_opt.step(1e-2, gpu, gg);
    }
}

#[test]
fn a_checkpoint_trained_on_wgpu_submits_on_ndarray() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("tiny.toml");
    std::fs::write(
        &config,
        "[data]\ndataset = \"mc_maze\"\nbin_width = 20\nphase = \"val\"\n\n\
         [model]\nhidden_size = 8\nd_ff = 16\nn_samples = 2\n\n\
         [train]\nepochs = 2\nbatch_size = 8\neval_every = 1\nplot_every = 0\n",
    )
    .unwrap();
    let runs = home.path().join("runs");
    let prep = "tests/fixtures/nlb/prep";
    common::langevin()
        .args([
            "train",
            "--backend",
            "wgpu",
            "--run-tag",
            "gpu",
            "--prep-home",
            prep,
            "--config",
        ])
        .arg(&config)
        .arg("--runs-home")
        .arg(&runs)
        .assert()
        .success()
        .stdout(predicates::str::contains("epochs:       2/2 (finished)"));
    for backend in ["ndarray", "wgpu"] {
        common::langevin()
            .args([
                "submit",
                "--run-tag",
                "gpu",
                "--backend",
                backend,
                "--prep-home",
                prep,
            ])
            .arg("--runs-home")
            .arg(&runs)
            .assert()
            .success()
            .stdout(predicates::str::contains("mc_maze_20"));
    }
}
