//! vel R2: cross-validated ridge regression from rates to behaviour, as sklearn's
//! `GridSearchCV(Ridge(), {"alpha": logspace(-4, 0, 9)})` with its default 5-fold `KFold`.
//!
//! The rows never live in one big matrix: they are streamed in chunks from the trial tensors, and
//! each fold's centred Gram matrix is assembled from per-fold sums taken around a common shift.
//! One pass over the training rows serves all five folds, their scores and the final refit: a
//! fold's residual sum of squares under any model follows from the fold's own centred moments
//! (see [`score_from_sums`]), so the rows are not visited again. Folds run on their own threads.

use nalgebra::{Cholesky, DMatrix};
use ndarray::{s, Array1, Array2, ArrayView2, ArrayView3, ArrayViewMut2, Axis};

use super::error::MetricError;
use super::metrics::{r2_from_sums, Spread};
use super::rates::{Rate, RatePair};

/// The ridge penalties searched, `numpy.logspace(-4, 0, 9)`.
pub fn alphas() -> [f64; 9] {
    std::array::from_fn(|i| 10f64.powf(-4.0 + 0.5 * i as f64))
}

/// Number of contiguous, unshuffled cross-validation folds (sklearn's default `cv=5`).
pub const N_FOLDS: usize = 5;

const CHUNK: usize = 1024;

/// A table of regression rows that can be copied out in chunks.
pub(crate) trait RowSource: Sync {
    fn n_rows(&self) -> usize;
    fn n_features(&self) -> usize;
    fn n_outputs(&self) -> usize;
    /// Copies rows `start .. start + x.nrows()` into `x` (features) and `y` (outputs), each minus
    /// its shift.
    fn fill(
        &self,
        start: usize,
        x_shift: &[f64],
        y_shift: &[f64],
        x: ArrayViewMut2<'_, f64>,
        y: ArrayViewMut2<'_, f64>,
    );
    /// The error for a NaN or infinite feature at (`row`, `col`), saying where it came from.
    fn non_finite(&self, row: usize, col: usize) -> MetricError;
}

/// One ridge model: `y ≈ x·coef + intercept`, in coordinates shifted by the fit's shifts.
type Model = (Array2<f64>, Array1<f64>);

/// A fitted ridge model, in coordinates shifted by `x_shift` / `y_shift` for numerical accuracy.
#[derive(Debug, Clone)]
pub(crate) struct RidgeFit {
    pub alpha: f64,
    model: Model,
    x_shift: Vec<f64>,
    y_shift: Vec<f64>,
}

/// Means `x̄`, `ȳ` and centred moments `Σ(x − x̄)(x − x̄)ᵀ`, `Σ(x − x̄)(y − ȳ)ᵀ` of a set of rows.
struct Centred {
    mx: Array1<f64>,
    my: Array1<f64>,
    cxx: Array2<f64>,
    cxy: Array2<f64>,
}

/// Sums over a set of rows, all taken after subtracting the common shift.
#[derive(Clone)]
struct Sums {
    n: usize,
    xx: Array2<f64>,
    x: Array1<f64>,
    xy: Array2<f64>,
    y: Array1<f64>,
}

impl Sums {
    fn zeros(p: usize, q: usize) -> Self {
        Self {
            n: 0,
            xx: Array2::zeros((p, p)),
            x: Array1::zeros(p),
            xy: Array2::zeros((p, q)),
            y: Array1::zeros(q),
        }
    }

    fn add(&mut self, other: &Sums) {
        self.n += other.n;
        self.xx += &other.xx;
        self.x += &other.x;
        self.xy += &other.xy;
        self.y += &other.y;
    }

    /// The rows' means and their moments around those means.
    fn centred(&self) -> Centred {
        let n = self.n as f64;
        let mx = &self.x / n;
        let my = &self.y / n;
        Centred {
            cxx: &self.xx - &(outer(&mx, &mx) * n),
            cxy: &self.xy - &(outer(&mx, &my) * n),
            mx,
            my,
        }
    }

    /// Ridge with intercept on these rows: centre with their own means, then solve
    /// `(XcᵀXc + αI) W = XcᵀYc` for each α, as sklearn's Cholesky solver does.
    fn solve(&self, alphas: &[f64]) -> Vec<Model> {
        let Centred {
            mx,
            my,
            cxx: xx_c,
            cxy: xy_c,
        } = self.centred();
        let p = mx.len();
        let rhs = to_na(&xy_c);
        alphas
            .iter()
            .map(|&alpha| {
                let mut a = to_na(&xx_c);
                for i in 0..p {
                    a[(i, i)] += alpha;
                }
                let w = solve_spd(a, &rhs);
                let coef = Array2::from_shape_fn((p, rhs.ncols()), |(i, j)| w[(i, j)]);
                let intercept = &my - &coef.t().dot(&mx);
                (coef, intercept)
            })
            .collect()
    }
}

/// R² (uniform over outputs) of each model on the rows summarised by `test` and `spread`,
/// without visiting the rows.
///
/// With the rows' own means `x̄`, `ȳ` and centred moments `Cxx`, `Cxy`, the residual of output
/// `j` under `ŷ = x·w + b` splits into a centred part and the mean residual
/// `e = ȳ − x̄·w − b`, whose cross terms vanish:
/// `Σ(y − ŷ)² = Σ(y − ȳ)² − 2·wᵀCxy + wᵀCxx·w + n·e²`.
/// Only outputs that vary are scored this way; the caller scores constant ones on the rows,
/// where sklearn's exact-zero conventions apply.
fn score_from_sums(test: &Sums, spread: &Spread, models: &[Model]) -> Vec<f64> {
    if test.n < 2 {
        return vec![f64::NAN; models.len()];
    }
    let n = test.n as f64;
    let Centred { mx, my, cxx, cxy } = test.centred();
    let q = my.len();
    models
        .iter()
        .map(|(w, b)| {
            let cw = cxx.dot(w);
            let e = &my - &w.t().dot(&mx) - b;
            (0..q)
                .map(|j| {
                    let wj = w.column(j);
                    let ss_res = spread.m2[j] - 2.0 * wj.dot(&cxy.column(j))
                        + wj.dot(&cw.column(j))
                        + n * e[j] * e[j];
                    r2_from_sums(ss_res.max(0.0), spread.ss_tot(j))
                })
                .sum::<f64>()
                / q as f64
        })
        .collect()
}

fn outer(a: &Array1<f64>, b: &Array1<f64>) -> Array2<f64> {
    Array2::from_shape_fn((a.len(), b.len()), |(i, j)| a[i] * b[j])
}

fn to_na(a: &Array2<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

/// Cholesky solve of a symmetric positive definite system, falling back to an SVD least-squares
/// solve when rounding makes the matrix indefinite (sklearn falls back the same way).
fn solve_spd(a: DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    match Cholesky::new(a.clone()) {
        Some(chol) => chol.solve(b),
        None => a
            .svd(true, true)
            .solve(b, f64::EPSILON)
            .expect("SVD with both factors computed"),
    }
}

/// `[start, end)` of each of the `k` contiguous folds of `n` rows; the first `n mod k` folds get
/// one extra row (sklearn `KFold(shuffle=False)`).
pub(crate) fn fold_bounds(n: usize, k: usize) -> Vec<(usize, usize)> {
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = n / k + usize::from(i < n % k);
            let b = (start, start + len);
            start += len;
            b
        })
        .collect()
}

/// Streams rows `[start, end)` in shifted chunks to `f`, checking the features for NaN and
/// infinity when `check` (the first pass over a set of rows).
fn for_chunks(
    src: &dyn RowSource,
    (start, end): (usize, usize),
    (x_shift, y_shift): (&[f64], &[f64]),
    check: bool,
    mut f: impl FnMut(ArrayView2<'_, f64>, ArrayView2<'_, f64>),
) -> Result<(), MetricError> {
    let (p, q) = (src.n_features(), src.n_outputs());
    let mut xb = Array2::<f64>::zeros((CHUNK, p));
    let mut yb = Array2::<f64>::zeros((CHUNK, q));
    let mut at = start;
    while at < end {
        let m = CHUNK.min(end - at);
        let mut x = xb.slice_mut(s![..m, ..]);
        let mut y = yb.slice_mut(s![..m, ..]);
        src.fill(at, x_shift, y_shift, x.view_mut(), y.view_mut());
        if check {
            if let Some(k) = x.iter().position(|v| !v.is_finite()) {
                return Err(src.non_finite(at + k / p.max(1), k % p.max(1)));
            }
        }
        f(x.view(), y.view());
        at += m;
    }
    Ok(())
}

/// The sums and the target spread of rows `bounds`, in one pass.
fn fold_sums(
    src: &dyn RowSource,
    bounds: (usize, usize),
    shifts: (&[f64], &[f64]),
) -> Result<(Sums, Spread), MetricError> {
    let mut sums = Sums::zeros(src.n_features(), src.n_outputs());
    let mut spread = Spread::new(src.n_outputs());
    for_chunks(src, bounds, shifts, true, |x, y| {
        sums.n += x.nrows();
        add_gram_upper(x, &mut sums.xx);
        ndarray::linalg::general_mat_mul(1.0, &x.t(), &y, 1.0, &mut sums.xy);
        sums.x += &x.sum_axis(Axis(0));
        sums.y += &y.sum_axis(Axis(0));
        spread.push(y);
    })?;
    let p = sums.xx.nrows();
    for i in 0..p {
        for j in 0..i {
            sums.xx[[i, j]] = sums.xx[[j, i]];
        }
    }
    Ok((sums, spread))
}

/// Adds the upper block triangle of `xᵀx` to `g`: the Gram matrix is symmetric, and skipping the
/// blocks below the diagonal nearly halves the dominant cost of vel R2.
fn add_gram_upper(x: ArrayView2<'_, f64>, g: &mut Array2<f64>) {
    // 64 measured best on AVX2: smaller blocks lose more to packing than they save.
    const BLOCK: usize = 64;
    let p = x.ncols();
    for i in (0..p).step_by(BLOCK) {
        let bi = i..(i + BLOCK).min(p);
        let xi = x.slice(s![.., bi.clone()]);
        for j in (i..p).step_by(BLOCK) {
            let bj = j..(j + BLOCK).min(p);
            let mut gij = g.slice_mut(s![bi.clone(), bj.clone()]);
            ndarray::linalg::general_mat_mul(1.0, &xi.t(), &x.slice(s![.., bj]), 1.0, &mut gij);
        }
    }
}

/// R² (uniform over outputs) of each model on rows `bounds`, in one pass.
///
/// Residual sums are accumulated chunk by chunk; the truth's sum of squares around its own mean
/// comes from per-chunk means merged with Chan's update, so no second pass over the rows is needed.
fn score_models(
    src: &dyn RowSource,
    bounds: (usize, usize),
    shifts: (&[f64], &[f64]),
    models: &[Model],
    check: bool,
) -> Result<Vec<f64>, MetricError> {
    let q = src.n_outputs();
    let views: Vec<_> = models.iter().map(|(w, _)| w.view()).collect();
    let coef = ndarray::concatenate(Axis(1), &views).expect("same feature count");
    let views: Vec<_> = models.iter().map(|(_, b)| b.view()).collect();
    let intercept = ndarray::concatenate(Axis(0), &views).expect("1-D intercepts");
    let mut pred = Array2::<f64>::zeros((CHUNK, coef.ncols()));
    let mut ss_res = vec![0.0; coef.ncols()];
    let mut spread = Spread::new(q);
    for_chunks(src, bounds, shifts, check, |x, y| {
        let m = x.nrows();
        let mut out = pred.slice_mut(s![..m, ..]);
        out.assign(&intercept);
        ndarray::linalg::general_mat_mul(1.0, &x, &coef, 1.0, &mut out);
        for (yr, pr) in y.rows().into_iter().zip(out.rows()) {
            for (k, (res, &pv)) in ss_res.iter_mut().zip(pr.iter()).enumerate() {
                let d = yr[k % q] - pv;
                *res += d * d;
            }
        }
        spread.push(y);
    })?;
    if spread.n < 2 {
        return Ok(vec![f64::NAN; models.len()]);
    }
    Ok(ss_res
        .chunks(q)
        .map(|res| {
            (0..q)
                .map(|j| r2_from_sums(res[j], spread.ss_tot(j)))
                .sum::<f64>()
                / q as f64
        })
        .collect())
}

/// Runs `f` for every fold on its own thread, returning the results in fold order (the first
/// error in fold order wins, so errors do not depend on scheduling).
fn per_fold<T: Send>(
    bounds: &[(usize, usize)],
    f: impl Fn(usize, (usize, usize)) -> Result<T, MetricError> + Sync,
) -> Result<Vec<T>, MetricError> {
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = bounds
            .iter()
            .enumerate()
            .map(|(k, &b)| scope.spawn(move || f(k, b)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fold worker panicked"))
            .collect()
    })
}

/// Grid-searched ridge fit: mean 5-fold R² per α, the best α (first on ties), refit on all rows.
pub(crate) fn fit_ridge_cv(src: &dyn RowSource, alphas: &[f64]) -> Result<RidgeFit, MetricError> {
    let n = src.n_rows();
    if n < N_FOLDS {
        return Err(MetricError::TooFewRows {
            what: "vel R2 training rows (5-fold cross-validation)",
            n,
            need: N_FOLDS,
        });
    }
    let (p, q) = (src.n_features(), src.n_outputs());
    // Any shift near the data's centre avoids cancellation in XᵀX − n·mmᵀ; the first chunk's mean
    // is close enough and costs no extra pass.
    let (x_shift, y_shift) = {
        let m = CHUNK.min(n);
        let mut x = Array2::<f64>::zeros((m, p));
        let mut y = Array2::<f64>::zeros((m, q));
        src.fill(0, &vec![0.0; p], &vec![0.0; q], x.view_mut(), y.view_mut());
        // A NaN feature is reported by the first pass; it must not poison the shift before.
        let mean = |a: Array2<f64>| -> Vec<f64> {
            let m = a.mean_axis(Axis(0)).expect("m ≥ 1");
            m.iter()
                .map(|&v| if v.is_finite() { v } else { 0.0 })
                .collect()
        };
        (mean(x), mean(y))
    };
    let shifts = (x_shift.as_slice(), y_shift.as_slice());
    let bounds = fold_bounds(n, N_FOLDS);
    let folds = per_fold(&bounds, |_, b| fold_sums(src, b, shifts))?;
    let fold_scores = per_fold(&bounds, |k, b| {
        let mut train = Sums::zeros(p, q);
        for (j, (s, _)) in folds.iter().enumerate() {
            if j != k {
                train.add(s);
            }
        }
        let models = train.solve(alphas);
        let (test, spread) = &folds[k];
        if spread.constant.iter().any(|&c| c) {
            score_models(src, b, shifts, &models, false)
        } else {
            Ok(score_from_sums(test, spread, &models))
        }
    })?;
    let mean_scores: Vec<f64> = (0..alphas.len())
        .map(|a| fold_scores.iter().map(|s| s[a]).sum::<f64>() / N_FOLDS as f64)
        .collect();
    // First maximum wins, as GridSearchCV's rank-then-argmin does.
    let mut best = 0;
    for (a, &score) in mean_scores.iter().enumerate() {
        if score > mean_scores[best] {
            best = a;
        }
    }
    let mut all = Sums::zeros(p, q);
    for (s, _) in &folds {
        all.add(s);
    }
    let model = all
        .solve(&alphas[best..=best])
        .pop()
        .expect("one model per α");
    Ok(RidgeFit {
        alpha: alphas[best],
        model,
        x_shift,
        y_shift,
    })
}

impl RidgeFit {
    /// R² (uniform over outputs) of this model on every row of `src`.
    pub(crate) fn score(&self, src: &dyn RowSource) -> Result<f64, MetricError> {
        let scores = score_models(
            src,
            (0, src.n_rows()),
            (&self.x_shift, &self.y_shift),
            std::slice::from_ref(&self.model),
            true,
        )?;
        Ok(scores[0])
    }
}

/// The rows of one split for vel R2: every (trial, time bin) of the selected trials whose
/// behaviour channel 0 is defined.
struct TrialRows<'a, R> {
    rates: RatePair<'a, R>,
    behavior: ArrayView3<'a, f64>,
    rows: Vec<(usize, usize)>,
    what: &'static str,
}

impl<R: Rate> RowSource for TrialRows<'_, R> {
    fn n_rows(&self) -> usize {
        self.rows.len()
    }
    fn n_features(&self) -> usize {
        self.rates.dim().2
    }
    fn n_outputs(&self) -> usize {
        self.behavior.len_of(Axis(2))
    }
    fn fill(
        &self,
        start: usize,
        x_shift: &[f64],
        y_shift: &[f64],
        mut x: ArrayViewMut2<'_, f64>,
        mut y: ArrayViewMut2<'_, f64>,
    ) {
        let rows = &self.rows[start..start + x.nrows()];
        for (r, &(i, t)) in rows.iter().enumerate() {
            let mut dst = x.row_mut(r);
            match dst.as_slice_mut() {
                Some(dst) => self.rates.fill_row(i, t, x_shift, dst),
                None => {
                    let mut row = vec![0.0; x_shift.len()];
                    self.rates.fill_row(i, t, x_shift, &mut row);
                    dst.assign(&ndarray::aview1(&row));
                }
            }
            for (j, m) in y_shift.iter().enumerate() {
                y[[r, j]] = self.behavior[[i, t, j]] - m;
            }
        }
    }
    fn non_finite(&self, row: usize, col: usize) -> MetricError {
        let (i, t) = self.rows[row];
        MetricError::NonFinite {
            what: self.what,
            index: vec![i, t, col],
        }
    }
}

/// One split's inputs to [`velocity_r2`].
#[derive(Debug, Clone, Copy)]
pub struct DecodeSplit<'a, R = f64> {
    /// `[trials, T, neurons]`, held-in then held-out.
    pub rates: RatePair<'a, R>,
    /// `[trials, T, C]`: the decoded signal (hand or finger velocity), NaN where undefined.
    pub behavior: ArrayView3<'a, f64>,
    /// `[trials, masks]` (area2_bump: no bump, bump): each column selects a separately scored
    /// subset of trials; `None` scores all trials as one subset.
    pub decode_mask: Option<ArrayView2<'a, bool>>,
}

/// vel R2: how linearly decodable behaviour is from the predicted rates.
///
/// For each decode-mask column a ridge decoder is grid-searched on the train split (see the module
/// docs) and scored with R² on the eval split; the columns' scores are averaged. Rows whose
/// behaviour channel 0 is NaN are dropped; NaN rates or NaN in another behaviour channel of a kept
/// row are errors, as sklearn refuses them.
pub fn velocity_r2<R: Rate, S: Rate>(
    train: DecodeSplit<'_, R>,
    eval: DecodeSplit<'_, S>,
) -> Result<f64, MetricError> {
    check_split("eval", &eval)?;
    VelocityDecoder::fit(train)?.score(eval)
}

/// vel R2's decoders, fitted on a training split: one per decode-mask column.
///
/// Fitting is nearly all of vel R2's cost and needs only training data, so it is its own step: a
/// caller reading files can fit while it reads the eval data and the rest of the target.
#[derive(Debug, Clone)]
pub struct VelocityDecoder {
    fits: Vec<RidgeFit>,
    /// `[trials, T, neurons]` and `[trials, T, C]` of the training split, for the shape checks
    /// against an eval split.
    rates_shape: [usize; 3],
    behavior_shape: Vec<usize>,
    mask_shape: Vec<usize>,
}

impl VelocityDecoder {
    /// Grid-searches one ridge decoder per decode-mask column of `train` (see the module docs).
    pub fn fit<R: Rate>(train: DecodeSplit<'_, R>) -> Result<Self, MetricError> {
        check_split("train", &train)?;
        let train_masks = masks(&train)?;
        let alphas = alphas();
        let fits = (0..train_masks.ncols())
            .map(|c| {
                let rows = select_rows(
                    &train,
                    train_masks.column(c),
                    ("train rates", "train behavior"),
                )?;
                fit_ridge_cv(&rows, &alphas)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (n, t, k) = train.rates.dim();
        Ok(Self {
            fits,
            rates_shape: [n, t, k],
            behavior_shape: train.behavior.shape().to_vec(),
            mask_shape: train_masks.shape().to_vec(),
        })
    }

    /// vel R2 on `eval`: each decoder's R² on its mask column's rows, averaged over the columns.
    pub fn score<S: Rate>(&self, eval: DecodeSplit<'_, S>) -> Result<f64, MetricError> {
        check_split("eval", &eval)?;
        let (n, t, k) = eval.rates.dim();
        for (what, a, b) in [
            ("neurons", &self.rates_shape[..], &[n, t, k][..]),
            (
                "behaviour channels",
                &self.behavior_shape[..],
                eval.behavior.shape(),
            ),
        ] {
            if a[2] != b[2] {
                return Err(MetricError::Shape {
                    what: format!("train vs eval {what}"),
                    left: a.to_vec(),
                    right: b.to_vec(),
                });
            }
        }
        let eval_masks = masks(&eval)?;
        if self.fits.len() != eval_masks.ncols() {
            return Err(MetricError::Shape {
                what: "train vs eval decode_mask columns".into(),
                left: self.mask_shape.clone(),
                right: eval_masks.shape().to_vec(),
            });
        }
        let mut total = 0.0;
        for (c, fit) in self.fits.iter().enumerate() {
            let eval_rows =
                select_rows(&eval, eval_masks.column(c), ("eval rates", "eval behavior"))?;
            if eval_rows.n_rows() == 0 {
                return Err(MetricError::TooFewRows {
                    what: "vel R2 eval rows",
                    n: 0,
                    need: 1,
                });
            }
            let score = fit.score(&eval_rows)?;
            tracing::debug!(mask = c, alpha = fit.alpha, score, "vel R2 decoder");
            total += score;
        }
        Ok(total / self.fits.len() as f64)
    }
}

fn check_split<R: Rate>(name: &str, split: &DecodeSplit<'_, R>) -> Result<(), MetricError> {
    let (n, t, k) = split.rates.dim();
    let (r, b) = (&[n, t, k][..], split.behavior.shape());
    if split.rates.is_aligned() && r[..2] == b[..2] {
        Ok(())
    } else {
        Err(MetricError::Shape {
            what: format!("{name} rates [trials, T, neurons] vs {name} behavior [trials, T, C]"),
            left: r.to_vec(),
            right: b.to_vec(),
        })
    }
}

fn masks<R: Rate>(split: &DecodeSplit<'_, R>) -> Result<Array2<bool>, MetricError> {
    let n = split.rates.dim().0;
    match split.decode_mask {
        None => Ok(Array2::from_elem((n, 1), true)),
        Some(m) if m.nrows() == n => Ok(m.to_owned()),
        Some(m) => Err(MetricError::Shape {
            what: "decode_mask [trials, masks] vs rates [trials, T, neurons]".into(),
            left: m.shape().to_vec(),
            right: vec![n],
        }),
    }
}

fn select_rows<'a, R: Rate>(
    split: &DecodeSplit<'a, R>,
    mask: ndarray::ArrayView1<'_, bool>,
    (rates_name, behavior_name): (&'static str, &'static str),
) -> Result<TrialRows<'a, R>, MetricError> {
    let (n, t_len, _) = split.rates.dim();
    let mut rows = Vec::new();
    for i in (0..n).filter(|&i| mask[i]) {
        for t in 0..t_len {
            let b = split.behavior.slice(s![i, t, ..]);
            if b.is_empty() || b[0].is_nan() {
                continue;
            }
            if let Some(j) = b.iter().position(|v| !v.is_finite()) {
                return Err(MetricError::NonFinite {
                    what: behavior_name,
                    index: vec![i, t, j],
                });
            }
            rows.push((i, t));
        }
    }
    Ok(TrialRows {
        rates: split.rates,
        behavior: split.behavior,
        rows,
        what: rates_name,
    })
}

#[cfg(test)]
mod tests;
