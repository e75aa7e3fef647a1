//! One training step (forward + backward + Adam) of the published MC_Maze model
//! (`configs/maze.toml`: H = 64, D = 64, 4 channels, 2 heads, d_ff 512, coordinated dropout) on
//! a batch of 256 trials with 137 held-in and 182 neurons, on Burn's ndarray backend:
//! at 20 ms (T + Tf = 35 + 10 = 45 bins) and at 5 ms (T + Tf = 140 + 40 = 180 bins).
//!
//! Before the timings it prints the peak heap in use during one step of each size, measured by
//! a counting global allocator (the baseline of the model, data and optimiser state is
//! subtracted, so the number is what the step itself needs on top).
//!
//!     cargo bench --bench train_step

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::backend::{Autodiff, NdArray};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use langevin::model::LangevinFlow;
use langevin::train::optim::{adam, Optim};
use langevin::train::RunConfig;

type B = Autodiff<NdArray<f32>>;

const MAZE: &str = include_str!("../configs/maze.toml");
const BATCH: usize = 256;
const N_HELDIN: usize = 137;
const N_NEURONS: usize = 182;
/// (observed, forward) bins at 20 ms and at 5 ms.
const SIZES: [(usize, usize); 2] = [(35, 10), (140, 40)];

struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                let grow = new_size - layout.size();
                let now = IN_USE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Setup {
    model: LangevinFlow<B>,
    optim: Optim<B>,
    x: Tensor<B, 3>,
    y: Tensor<B, 3>,
    lr: f64,
}

fn setup((t_obs, t_fwd): (usize, usize)) -> Setup {
    let config = RunConfig::from_toml(MAZE).expect("configs/maze.toml parses");
    let device = Default::default();
    B::seed(&device, 0);
    let model = config
        .model
        .init::<B>(N_HELDIN, N_NEURONS, &device)
        .expect("published model is valid");
    let rates = Distribution::Uniform(0.0, 2.0);
    let counts = |dims: [usize; 3]| Tensor::<B, 3>::random(dims, rates, &device).floor();
    let y = counts([BATCH, t_obs + t_fwd, N_NEURONS]);
    let x = y.clone().slice([0..BATCH, 0..t_obs, 0..N_HELDIN]);
    Setup {
        model,
        optim: adam::<B>(&config.train, config.train.weight_decay),
        x,
        y,
        lr: config.train.lr,
    }
}

/// The body of the training loop for one minibatch (as `train::run` does it, minus logging).
fn step(s: Setup) -> LangevinFlow<B> {
    let Setup {
        model,
        mut optim,
        x,
        y,
        lr,
    } = s;
    let loss = model.training_loss(x, y, 10);
    let grads = GradientsParams::from_grads(loss.total.backward(), &model);
    optim.step(lr, model, grads)
}

fn main() {
    for size in SIZES {
        let s = setup(size);
        let base = IN_USE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        drop(step(s));
        let peak = PEAK.load(Ordering::Relaxed) - base;
        println!(
            "peak heap of one step, batch {BATCH}, T + Tf = {}: {:.0} MiB",
            size.0 + size.1,
            peak as f64 / (1 << 20) as f64
        );
    }
    divan::main();
}

#[divan::bench(args = [45, 180], sample_count = 5, sample_size = 1)]
fn maze_step(bencher: divan::Bencher, total_bins: usize) {
    let size = SIZES
        .into_iter()
        .find(|(t, f)| t + f == total_bins)
        .expect("a benchmarked size");
    bencher.with_inputs(|| setup(size)).bench_local_values(step);
}
