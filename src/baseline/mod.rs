//! The NLB spike-smoothing baseline (spec §12): a floor any latent model has to beat, and a
//! known-good submission for checking the scoring path end to end.
//!
//! Held-in rates are the held-in spikes smoothed with a Gaussian; held-out rates come from one
//! Poisson GLM per held-out neuron on `ln(smoothed held-in + 1e-4)`. The inputs are the split
//! folder's `train_input.h5` / `eval_input.h5`: the reference builds its tensors with the same
//! `make_train_input_tensors` / `make_eval_input_tensors` calls that wrote them, so reading the
//! NWB files again would only reproduce the same arrays.
//!
//! On the 14 fixture val splits, held-in rates equal the reference's bit for bit. Held-out rates
//! cannot: the reference's sklearn lbfgs stops once its largest gradient entry is under 1e-4,
//! short of the minimiser that [`fit_poisson`] reaches, so they differ by a median 4e-4 (20 ms) to
//! 7e-3 (5 ms) relative (up to 0.6 on neurons firing ~0.005 spikes/bin), and co-bps by at most
//! 8e-3 (see `tests/baseline.rs`).
//!
//! Cost is in the GLMs: a full-size mc_maze 5 ms split (321k rows × 138 columns, 45 neurons)
//! takes ~40 s on two cores in a release build, the neurons spread over the cores.

mod glm;
mod smoothing;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ndarray::{Array2, Array3, ArrayView1, ArrayView2};

pub use glm::{fit_poisson, gradient, objective, Design, GlmError, NewtonOptions, PoissonFit};
pub use smoothing::{GaussianKernel, KernelError};

use crate::h5::{AtomicH5, Data, H5Error, H5File};
use crate::nlb::files::SplitFiles;
use crate::nlb::{DatasetName, Split};

/// Added before the log so silent bins give a finite feature (`ln 1e-4 ≈ −9.2`).
pub const LOG_OFFSET: f64 = 1e-4;
/// The reference clips GLM predictions to this range, so no rate is exactly 0 or infinite.
pub const RATE_CLIP: (f64, f64) = (1e-9, 1e20);
/// The submission file `langevin baseline` writes into the split folder by default.
pub const DEFAULT_FILE: &str = "submission_smoothing.h5";

/// The reference's cross-validated `(kern_sd in ms, α)` for each NLB dataset (spec §12 step 7),
/// the same at 5 and 20 ms; `None` for datasets the reference never tuned (lorenz).
pub fn tuned(dataset: DatasetName) -> Option<(f64, f64)> {
    match dataset {
        DatasetName::McMaze => Some((50.0, 0.01)),
        DatasetName::McRtt => Some((30.0, 0.1)),
        DatasetName::Area2Bump => Some((30.0, 0.01)),
        DatasetName::DmfcRsg => Some((60.0, 0.001)),
        DatasetName::McMazeLarge => Some((40.0, 0.1)),
        DatasetName::McMazeMedium => Some((60.0, 0.1)),
        DatasetName::McMazeSmall => Some((60.0, 0.1)),
        DatasetName::Lorenz => None,
    }
}

/// Why the baseline could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(transparent)]
    H5(#[from] H5Error),
    #[error("{path}: the split folder's name must be {{dataset}}-{{bw:02}}ms-{{phase}} (e.g. mc_maze-05ms-val) to know the dataset and bin width: {source}")]
    SplitName {
        path: PathBuf,
        source: crate::nlb::dataset::ParseError,
    },
    #[error("{path}: {msg}")]
    Shape { path: PathBuf, msg: String },
    #[error(
        "the reference has no tuned {what} for {dataset}; give one (--kern-sd MS / --alpha A)"
    )]
    NotTuned {
        dataset: DatasetName,
        what: &'static str,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("trials are {bins} bins long, shorter than the {taps}-tap smoothing kernel (kern_sd {kern_sd_ms} ms); use a smaller --kern-sd")]
    KernelTooLong {
        bins: usize,
        taps: usize,
        kern_sd_ms: f64,
    },
    #[error("held-in features ln(smoothed + 1e-4) (negative spike counts?): {0}")]
    Features(GlmError),
    #[error("GLM for held-out neuron {neuron}: {source}")]
    Fit { neuron: usize, source: GlmError },
}

/// What to fit: the split, and the two hyperparameters the reference tuned per dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineOptions {
    /// Dataset and bin width decide the kernel in bins and the submission group.
    pub split: Split,
    /// Gaussian kernel SD in ms.
    pub kern_sd_ms: f64,
    /// L2 penalty of each held-out neuron's GLM (sklearn's `alpha`).
    pub alpha: f64,
    pub newton: NewtonOptions,
}

impl BaselineOptions {
    /// Settings for `split`: the reference's tuned value wherever one is not given.
    pub fn new(
        split: Split,
        kern_sd_ms: Option<f64>,
        alpha: Option<f64>,
    ) -> Result<Self, BaselineError> {
        let tuned = tuned(split.dataset);
        let missing = |what| BaselineError::NotTuned {
            dataset: split.dataset,
            what,
        };
        Ok(Self {
            split,
            kern_sd_ms: kern_sd_ms
                .or(tuned.map(|t| t.0))
                .ok_or_else(|| missing("kern_sd"))?,
            alpha: alpha
                .or(tuned.map(|t| t.1))
                .ok_or_else(|| missing("alpha"))?,
            newton: NewtonOptions::default(),
        })
    }

    /// Settings for a split folder, whose name gives the dataset and bin width.
    pub fn for_dir(
        dir: &Path,
        kern_sd_ms: Option<f64>,
        alpha: Option<f64>,
    ) -> Result<Self, BaselineError> {
        // Canonicalised first so that `.` or `prep/mc_maze-05ms-val/` still have a name.
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let split = name.parse().map_err(|source| BaselineError::SplitName {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::new(split, kern_sd_ms, alpha)
    }
}

/// Convergence of one held-out neuron's GLM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitStats {
    pub iterations: usize,
    pub hessians: usize,
    /// `λ²/2` at the last Newton step: how far the objective may still be from its minimum.
    pub decrement: f64,
}

/// The baseline's four rate arrays, `[trials, bins, neurons]` in spikes per bin.
#[derive(Debug, Clone)]
pub struct SmoothingRates {
    /// Submission group: `<dataset>` at 5 ms, `<dataset>_20` at 20 ms.
    pub group: String,
    pub kernel: GaussianKernel,
    pub alpha: f64,
    pub train_rates_heldin: Array3<f32>,
    pub train_rates_heldout: Array3<f32>,
    pub eval_rates_heldin: Array3<f32>,
    pub eval_rates_heldout: Array3<f32>,
    /// One per held-out neuron, in neuron order.
    pub fits: Vec<FitStats>,
}

impl SmoothingRates {
    /// `(key, array)` in the order they are written.
    pub fn arrays(&self) -> [(&'static str, &Array3<f32>); 4] {
        [
            ("train_rates_heldin", &self.train_rates_heldin),
            ("train_rates_heldout", &self.train_rates_heldout),
            ("eval_rates_heldin", &self.eval_rates_heldin),
            ("eval_rates_heldout", &self.eval_rates_heldout),
        ]
    }
}

/// Computes the baseline's rates from the split folder `dir`.
pub fn smoothing_rates(
    dir: &Path,
    files: &SplitFiles,
    opts: &BaselineOptions,
) -> Result<SmoothingRates, BaselineError> {
    let train_path = dir.join(&files.train_input);
    let eval_path = dir.join(&files.eval_input);
    let train = H5File::open(&train_path)?;
    let eval = H5File::open(&eval_path)?;
    let train_in = train.read_counts("train_spikes_heldin")?;
    let train_out = train.read_counts("train_spikes_heldout")?;
    let eval_in = eval.read_counts("eval_spikes_heldin")?;
    let (n_train, bins, n_in) = train_in.dim();
    let (n_eval, eval_bins, eval_n_in) = eval_in.dim();
    let n_out = train_out.dim().2;
    if train_out.dim().0 != n_train || train_out.dim().1 != bins {
        return Err(BaselineError::Shape {
            path: train_path,
            msg: format!(
                "train_spikes_heldin {:?} and train_spikes_heldout {:?} differ in trials or bins",
                train_in.shape(),
                train_out.shape()
            ),
        });
    }
    if eval_n_in != n_in {
        return Err(BaselineError::Shape {
            path: eval_path,
            msg: format!("eval_spikes_heldin has {eval_n_in} neurons, train_spikes_heldin {n_in}"),
        });
    }

    let bin_ms = opts.split.bin_width.ms() as f64;
    let kernel = GaussianKernel::new(opts.kern_sd_ms, bin_ms)?;
    if bins.min(eval_bins) < kernel.len() {
        return Err(BaselineError::KernelTooLong {
            bins: bins.min(eval_bins),
            taps: kernel.len(),
            kern_sd_ms: opts.kern_sd_ms,
        });
    }
    let group = opts.split.group();
    tracing::info!(
        "{group}: {n_train} train / {n_eval} eval trials × {bins} bins, {n_in} held-in / {n_out} held-out neurons; kernel {} taps, σ = {} bins; α = {}",
        kernel.len(),
        kernel.sigma_bins,
        opts.alpha
    );

    // The f64 smoothings only live long enough to build the designs: at full size each is as
    // big as its design (~350 MB for mc_maze at 5 ms).
    let features = |spikes: &Array3<f32>, trials: usize, bins: usize| {
        let smooth = kernel.smooth(slice(spikes), bins, n_in);
        let design = Design::from_rows(trials * bins, n_in, |r, dst| {
            for (d, &s) in dst.iter_mut().zip(&smooth[r * n_in..(r + 1) * n_in]) {
                *d = (s + LOG_OFFSET).ln();
            }
        })
        .map_err(BaselineError::Features)?;
        let rates = Array3::from_shape_vec(
            (trials, bins, n_in),
            smooth.into_iter().map(|x| x as f32).collect(),
        )
        .expect("smoothing keeps the shape");
        Ok::<_, BaselineError>((design, rates))
    };
    let (train_x, train_rates_heldin) = features(&train_in, n_train, bins)?;
    let (eval_x, eval_rates_heldin) = features(&eval_in, n_eval, eval_bins)?;
    drop((train_in, eval_in));
    let targets = train_out
        .view()
        .into_shape_with_order((n_train * bins, n_out))
        .expect("standard layout");

    let started = std::time::Instant::now();
    let fits = fit_neurons(&train_x, &eval_x, targets, opts)?;
    tracing::info!(
        "{group}: {n_out} GLMs on {} rows fitted in {:.2} s",
        train_x.n_rows(),
        started.elapsed().as_secs_f64()
    );
    let mut train_heldout = Array2::<f32>::zeros((n_train * bins, n_out));
    let mut eval_heldout = Array2::<f32>::zeros((n_eval * eval_bins, n_out));
    let mut stats = Vec::with_capacity(n_out);
    for (j, (fit, train_pred, eval_pred)) in fits.into_iter().enumerate() {
        train_heldout
            .column_mut(j)
            .assign(&ArrayView1::from(&train_pred));
        eval_heldout
            .column_mut(j)
            .assign(&ArrayView1::from(&eval_pred));
        stats.push(FitStats {
            iterations: fit.iterations,
            hessians: fit.hessians,
            decrement: fit.decrement,
        });
    }
    let reshape = |a: Array2<f32>, trials: usize, bins: usize| {
        let n = a.ncols();
        a.into_shape_with_order((trials, bins, n))
            .expect("rows are trials × bins")
    };
    Ok(SmoothingRates {
        group,
        alpha: opts.alpha,
        train_rates_heldin,
        eval_rates_heldin,
        train_rates_heldout: reshape(train_heldout, n_train, bins),
        eval_rates_heldout: reshape(eval_heldout, n_eval, eval_bins),
        kernel,
        fits: stats,
    })
}

/// The reference's clip, then float32 as submissions store it.
fn clipped(rates: Vec<f64>) -> Vec<f32> {
    rates
        .into_iter()
        .map(|r| r.clamp(RATE_CLIP.0, RATE_CLIP.1) as f32)
        .collect()
}

/// A neuron's fit with its clipped train and eval rates.
type NeuronResult = (PoissonFit, Vec<f32>, Vec<f32>);

/// Fits every held-out neuron, spread over the cores: the fits share the designs read-only and
/// are otherwise independent, so the result does not depend on the scheduling.
fn fit_neurons(
    train_x: &Design,
    eval_x: &Design,
    targets: ArrayView2<'_, f32>,
    opts: &BaselineOptions,
) -> Result<Vec<NeuronResult>, BaselineError> {
    let n_out = targets.ncols();
    let threads = crate::runtime::threads().min(n_out).max(1);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<NeuronResult, GlmError>>>> =
        (0..n_out).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= n_out {
                    break;
                }
                let y: Vec<f64> = targets.column(j).iter().map(|&v| f64::from(v)).collect();
                let result = fit_poisson(train_x, &y, opts.alpha, &opts.newton).map(|fit| {
                    let train = clipped(fit.predict(train_x));
                    let eval = clipped(fit.predict(eval_x));
                    (fit, train, eval)
                });
                if let Ok((fit, ..)) = &result {
                    let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::info!(
                        "held-out neuron {j}: {} Newton steps, {} Hessians ({k}/{n_out} done)",
                        fit.iterations,
                        fit.hessians
                    );
                }
                *slots[j].lock().expect("no panics while held") = Some(result);
            });
        }
    });
    slots
        .into_iter()
        .enumerate()
        .map(|(neuron, slot)| {
            slot.into_inner()
                .expect("no panics while held")
                .expect("every neuron is fitted")
                .map_err(|source| BaselineError::Fit { neuron, source })
        })
        .collect()
}

fn slice(a: &Array3<f32>) -> &[f32] {
    a.as_slice().expect("standard layout")
}

/// Writes the rates as a submission file with one group, replacing `path` atomically.
pub fn write_submission(path: &Path, rates: &SmoothingRates) -> Result<(), H5Error> {
    let mut f = AtomicH5::create(path)?;
    for (key, array) in rates.arrays() {
        f.write(
            &format!("{}/{key}", rates.group),
            Data::F32(
                array.as_slice().expect("standard layout"),
                array.shape().to_vec(),
            ),
        )?;
    }
    f.commit()
}

/// A few lines for people: what was fitted, how the fits converged, where it went.
pub fn summary_text(rates: &SmoothingRates, out: &Path) -> String {
    let steps = rates.fits.iter().map(|f| f.iterations);
    let (lo, hi) = (steps.clone().min().unwrap_or(0), steps.max().unwrap_or(0));
    let mut s = format!(
        "group {}: kernel {} taps (σ = {} bins), α = {}\n",
        rates.group,
        rates.kernel.len(),
        rates.kernel.sigma_bins,
        rates.alpha
    );
    for (key, a) in rates.arrays() {
        s.push_str(&format!("  {key:<20} {:?}\n", a.shape()));
    }
    s.push_str(&format!(
        "{} held-out GLMs converged in {lo}–{hi} Newton steps\nwrote {}\n",
        rates.fits.len(),
        out.display()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_the_tuned_table_and_take_overrides() {
        let split: Split = "mc_maze-20ms-val".parse().unwrap();
        let o = BaselineOptions::new(split, None, None).unwrap();
        assert_eq!((o.kern_sd_ms, o.alpha), (50.0, 0.01));
        let o = BaselineOptions::new(split, Some(30.0), None).unwrap();
        assert_eq!((o.kern_sd_ms, o.alpha), (30.0, 0.01));
        let lorenz: Split = "lorenz-05ms-val".parse().unwrap();
        let err = BaselineOptions::new(lorenz, Some(30.0), None).unwrap_err();
        assert!(
            err.to_string().contains("no tuned alpha for lorenz"),
            "{err}"
        );
        assert!(BaselineOptions::new(lorenz, Some(30.0), Some(0.1)).is_ok());
    }

    #[test]
    fn the_split_comes_from_the_folder_name() {
        let dir = tempfile::tempdir().unwrap();
        let split = dir.path().join("dmfc_rsg-05ms-test");
        std::fs::create_dir(&split).unwrap();
        let o = BaselineOptions::for_dir(&split.join("."), None, None).unwrap();
        assert_eq!(o.split.group(), "dmfc_rsg");
        assert_eq!((o.kern_sd_ms, o.alpha), (60.0, 0.001));
        let err = BaselineOptions::for_dir(dir.path(), None, None).unwrap_err();
        assert!(
            err.to_string().contains("{dataset}-{bw:02}ms-{phase}"),
            "{err}"
        );
    }
}
