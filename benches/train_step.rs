//! One training step (forward + backward + Adam) of the published model: `configs/maze.toml`
//! (H = D = 280, d_model 840, 4 channels, 2 heads, d_ff 512, coordinated dropout; 4.5 M
//! parameters) on a batch of 256 MC_Maze trials with 137 held-in of 182 neurons, at 20 ms
//! (T + Tf = 35 + 10 = 45 bins) and 5 ms (140 + 40 = 180 bins), and `configs/maze_small.toml` on
//! MC_Maze_Small at 5 ms (batch 75, 107 + 35 neurons), on the default CPU backend (burn-flex) at
//! one thread and at every core; the 20 ms step also on burn-ndarray.
//!
//! Before the timings it prints the peak heap in use during one step of each size, measured by
//! a counting global allocator (the model, data and optimiser state are subtracted, so the
//! number is what the step itself needs on top).
//!
//!     cargo bench --bench train_step

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::backend::{Autodiff, Flex, NdArray};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use langevin::model::LangevinFlow;
use langevin::train::optim::{adam, Optim};
use langevin::train::RunConfig;

const MAZE: &str = include_str!("../configs/maze.toml");
const MAZE_SMALL: &str = include_str!("../configs/maze_small.toml");

/// A benchmarked shape: config, batch, held-in and all neurons, observed and forward bins.
#[derive(Clone, Copy)]
struct Shape {
    config: &'static str,
    batch: usize,
    heldin: usize,
    neurons: usize,
    bins: (usize, usize),
}

const MAZE_20: Shape = Shape {
    config: MAZE,
    batch: 256,
    heldin: 137,
    neurons: 182,
    bins: (35, 10),
};
const MAZE_5: Shape = Shape {
    bins: (140, 40),
    ..MAZE_20
};
const SMALL_5: Shape = Shape {
    config: MAZE_SMALL,
    batch: 75,
    heldin: 107,
    neurons: 142,
    bins: (140, 40),
};

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

struct Setup<B: AutodiffBackend> {
    model: LangevinFlow<B>,
    optim: Optim<B>,
    x: Tensor<B, 3>,
    y: Tensor<B, 3>,
    lr: f64,
}

fn setup<B: AutodiffBackend>(shape: Shape) -> Setup<B> {
    let config = RunConfig::from_toml(shape.config).expect("published config parses");
    let device = Default::default();
    B::seed(&device, 0);
    let model = config
        .model
        .init::<B>(shape.heldin, shape.neurons, &device)
        .expect("published model is valid");
    let (t_obs, t_fwd) = shape.bins;
    let rates = Distribution::Uniform(0.0, 1.2);
    let y =
        Tensor::<B, 3>::random([shape.batch, t_obs + t_fwd, shape.neurons], rates, &device).floor();
    let x = y.clone().slice([0..shape.batch, 0..t_obs, 0..shape.heldin]);
    Setup {
        model,
        optim: adam::<B>(&config.train, config.train.weight_decay),
        x,
        y,
        lr: config.train.lr,
    }
}

/// The body of the training loop for one minibatch (as `train::run` does it, minus logging).
fn step<B: AutodiffBackend>(s: Setup<B>) -> LangevinFlow<B> {
    let Setup {
        model,
        mut optim,
        x,
        y,
        lr,
    } = s;
    let loss = model.training_loss(x, y, 250);
    let grads = GradientsParams::from_grads(loss.total.backward(), &model);
    optim.step(lr, model, grads)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn peak_mib<B: AutodiffBackend>(shape: Shape) -> f64 {
    let s = setup::<B>(shape);
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    drop(step(s));
    (PEAK.load(Ordering::Relaxed) - base) as f64 / (1 << 20) as f64
}

fn main() {
    langevin::runtime::configure(None, langevin::runtime::Workload::Model);
    for (name, shape) in [("maze", MAZE_20), ("maze", MAZE_5), ("maze_small", SMALL_5)] {
        let (t, f) = shape.bins;
        println!(
            "peak heap of one step, {name} batch {}, T + Tf = {}: {:.0} MiB (flex)",
            shape.batch,
            t + f,
            peak_mib::<Autodiff<Flex>>(shape)
        );
    }
    println!(
        "peak heap of one step, maze batch 256, T + Tf = 45: {:.0} MiB (ndarray)",
        peak_mib::<Autodiff<NdArray<f32>>>(MAZE_20)
    );
    divan::main();
}

fn shape_of(total_bins: usize) -> Shape {
    [MAZE_20, MAZE_5]
        .into_iter()
        .find(|s| s.bins.0 + s.bins.1 == total_bins)
        .expect("a benchmarked size")
}

fn bench_on<B: AutodiffBackend>(bencher: divan::Bencher, shape: Shape, threads: usize) {
    let pool = pool(threads);
    bencher
        .with_inputs(|| setup::<B>(shape))
        .bench_local_values(|s| pool.install(|| step(s)));
}

/// MC_Maze, every core, burn-flex.
#[divan::bench(args = [45, 180], sample_count = 3, sample_size = 1)]
fn maze_step(bencher: divan::Bencher, total_bins: usize) {
    bench_on::<Autodiff<Flex>>(bencher, shape_of(total_bins), langevin::runtime::threads());
}

/// MC_Maze, one thread, burn-flex.
#[divan::bench(args = [45, 180], sample_count = 3, sample_size = 1)]
fn maze_step_1_thread(bencher: divan::Bencher, total_bins: usize) {
    bench_on::<Autodiff<Flex>>(bencher, shape_of(total_bins), 1);
}

/// MC_Maze at 20 ms, every core, burn-ndarray.
#[divan::bench(args = [45], sample_count = 3, sample_size = 1)]
fn maze_step_ndarray(bencher: divan::Bencher, total_bins: usize) {
    bench_on::<Autodiff<NdArray<f32>>>(bencher, shape_of(total_bins), langevin::runtime::threads());
}

/// MC_Maze_Small at 5 ms, every core and one thread, burn-flex.
#[divan::bench(args = [1, 0], sample_count = 3, sample_size = 1)]
fn maze_small_step(bencher: divan::Bencher, threads: usize) {
    let threads = if threads == 0 {
        langevin::runtime::threads()
    } else {
        threads
    };
    bench_on::<Autodiff<Flex>>(bencher, SMALL_5, threads);
}
