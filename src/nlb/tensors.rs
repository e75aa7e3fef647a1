//! Trial tensors (nlb_tools `make_train_input_tensors`, `make_eval_input_tensors`,
//! `make_eval_target_tensors`), built straight from spike rows at the target bin width.

use super::dataset::{Behavior, BinWidth, DatasetParams, Phase, Window, FP_LEN_MS};
use super::jitter::dmfc_jitter;
use super::psth::{self, Psth};
use super::resample::Decimator;
use super::session::{bin_unit, n_bins, Cursor, Session, UnitGroup};
use super::time::NS_PER_MS;
use super::windows::{cut, MissingField, TrialWindow, WindowCut};

/// A tensor that cannot be built from this session, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error(transparent)]
    MissingField(#[from] MissingField),
    #[error("behaviour series `{0}` is missing from the NWB files (or was dropped for samples off the 1 ms grid)")]
    MissingSeries(String),
    #[error("trials differ in length after removing NaN rows ({0}); the reference cannot stack them either")]
    Ragged(String),
    #[error("trial {trial} has no `{field}`, so its {what} window cannot be cut")]
    NoWindow {
        trial: usize,
        field: String,
        what: &'static str,
    },
}

pub type Result<T> = std::result::Result<T, TensorError>;

/// A dense row-major array with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T> {
    pub data: Vec<T>,
    pub shape: Vec<usize>,
}

impl<T> Tensor<T> {
    pub fn new(data: Vec<T>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor { data, shape }
    }
}

/// Each trial's window and the bins of it that are kept.
type TrialBins = Vec<(TrialWindow, Vec<i64>)>;

/// The session seen at one bin width.
pub struct Binned<'s> {
    pub session: &'s Session,
    pub bw: BinWidth,
    pub n_bins: i64,
    frame_valid: Vec<bool>,
}

impl<'s> Binned<'s> {
    pub fn new(session: &'s Session, bw: BinWidth) -> Self {
        let q = bw.ms();
        let n = n_bins(session.len_ms, q);
        Binned {
            session,
            bw,
            n_bins: n,
            frame_valid: frame_validity(session, q, n),
        }
    }

    fn q(&self) -> i64 {
        self.bw.ms()
    }

    /// Windows for a cut; with `allow_nans` false, bins where any frame column is NaN are dropped.
    fn rows(
        &self,
        spec: &WindowCut<'_>,
        mask: &[bool],
        allow_nans: bool,
    ) -> Result<Vec<(TrialWindow, Vec<i64>)>> {
        let windows = cut(&self.session.trials, spec, mask, self.bw.ns(), self.n_bins)?;
        Ok(windows
            .into_iter()
            .map(|w| {
                let rows = w
                    .bins()
                    .filter(|&j| allow_nans || self.frame_valid[j as usize])
                    .collect();
                (w, rows)
            })
            .collect())
    }

    /// `[trials, rows, units]` from a per-unit binning: `fill(u, first, out)` writes unit `u`'s
    /// values for bins `first..first + out.len()`, which cover each trial's rows.
    ///
    /// With `threads > 1` the trials are shared among that many threads; each trial's slice of
    /// the output is contiguous and filled alone, so the result does not depend on the split.
    fn per_unit(
        &self,
        n_units: usize,
        trials: &[(TrialWindow, Vec<i64>)],
        len: usize,
        threads: usize,
        fill: impl Fn(usize, i64, &mut [f64], &mut Cursor) + Sync,
    ) -> Tensor<f32> {
        let mut data = vec![f32::NAN; trials.len() * len * n_units];
        let stride = (len * n_units).max(1);
        let run = |trials: &[(TrialWindow, Vec<i64>)], data: &mut [f32]| {
            let mut buf = Vec::new();
            let mut cursors = vec![Cursor::default(); n_units];
            for ((_, rows), out) in trials.iter().zip(data.chunks_mut(stride)) {
                let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
                    continue;
                };
                buf.resize((last - first + 1) as usize, 0.0);
                for (u, cursor) in cursors.iter_mut().enumerate() {
                    fill(u, first, &mut buf, cursor);
                    for (i, &j) in rows.iter().enumerate() {
                        out[i * n_units + u] = buf[(j - first) as usize] as f32;
                    }
                }
            }
        };
        if threads <= 1 || trials.len() <= 1 {
            run(trials, &mut data);
        } else {
            let chunk = trials.len().div_ceil(threads);
            std::thread::scope(|scope| {
                for (part, out) in trials.chunks(chunk).zip(data.chunks_mut(chunk * stride)) {
                    scope.spawn(|| run(part, out));
                }
            });
        }
        Tensor::new(data, vec![trials.len(), len, n_units])
    }

    /// Spike counts `[trials, rows, units]` for one unit group.
    fn spikes(
        &self,
        group: &UnitGroup,
        trials: &[(TrialWindow, Vec<i64>)],
        len: usize,
    ) -> Tensor<f32> {
        let q = self.q();
        let threads = crate::runtime::threads();
        self.per_unit(group.len(), trials, len, threads, |u, first, buf, at| {
            bin_unit(&group.spikes[u], &group.valid[u], q, first, buf, at)
        })
    }

    /// Expected counts `[trials, rows, units]` of one unit group: each bin sums the expectations
    /// of its `q` session rows.
    fn expected(
        &self,
        rates: &dyn RowRates,
        heldout: bool,
        n_units: usize,
        trials: &[(TrialWindow, Vec<i64>)],
        len: usize,
    ) -> Tensor<f32> {
        let q = self.q();
        let threads = crate::runtime::threads();
        self.per_unit(n_units, trials, len, threads, |u, first, buf, _| {
            for (i, v) in buf.iter_mut().enumerate() {
                let start = (first + i as i64) * q;
                *v = (start..start + q)
                    .map(|row| rates.expected(heldout, u, row))
                    .sum();
            }
        })
    }

    /// The trials of a stacked array with the bins of each, and the (common) bins per trial.
    fn stacked_rows(
        &self,
        spec: &WindowCut<'_>,
        mask: &[bool],
        allow_nans: bool,
    ) -> Result<(TrialBins, usize)> {
        let trials = self.rows(spec, mask, allow_nans)?;
        let len = trials.first().map_or(0, |(_, r)| r.len());
        if let Some((w, r)) = trials.iter().find(|(_, r)| r.len() != len) {
            return Err(TensorError::Ragged(format!(
                "trial {} has {} bins, trial {} has {len}",
                w.trial,
                r.len(),
                trials[0].0.trial
            )));
        }
        Ok((trials, len))
    }

    /// nlb_tools `make_stacked_array` for held-in and held-out spikes.
    fn stacked(
        &self,
        spec: &WindowCut<'_>,
        mask: &[bool],
        allow_nans: bool,
    ) -> Result<(Tensor<f32>, Tensor<f32>)> {
        let (trials, len) = self.stacked_rows(spec, mask, allow_nans)?;
        let heldin = self.spikes(&self.session.heldin, &trials, len);
        let heldout = self.spikes(&self.session.heldout, &trials, len);
        Ok((heldin, heldout))
    }

    /// Both groups' expected counts on exactly the trials and bins of [`Binned::stacked`].
    fn stacked_expected(
        &self,
        rates: &dyn RowRates,
        spec: &WindowCut<'_>,
        mask: &[bool],
        allow_nans: bool,
    ) -> Result<(Tensor<f32>, Tensor<f32>)> {
        let (trials, len) = self.stacked_rows(spec, mask, allow_nans)?;
        let s = self.session;
        let heldin = self.expected(rates, false, s.heldin.len(), &trials, len);
        let heldout = self.expected(rates, true, s.heldout.len(), &trials, len);
        Ok((heldin, heldout))
    }

    /// Behaviour of the masked trials: `[n, T, C]` for series (NaN-padded), `[n, 5]` for dmfc,
    /// nothing for a dataset without behaviour.
    fn behavior(
        &self,
        params: &DatasetParams,
        mask: &[bool],
        jitter: Option<&[Option<i64>]>,
    ) -> Result<Option<Tensor<f32>>> {
        let table = &self.session.trials;
        match params.behavior {
            Behavior::None => Ok(None),
            Behavior::TrialTable(fields) => {
                let outlier = table
                    .num("is_outlier")
                    .ok_or_else(|| MissingField("is_outlier".into()))?;
                let cols = fields
                    .iter()
                    .map(|f| table.num(f).ok_or_else(|| MissingField(f.to_string())))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let rows: Vec<usize> = (0..table.len).filter(|&r| mask[r]).collect();
                let data = rows
                    .iter()
                    .flat_map(|&r| {
                        let keep = outlier[r] == 0.0;
                        cols.iter()
                            .map(move |c| if keep { c[r] as f32 } else { f32::NAN })
                    })
                    .collect();
                Ok(Some(Tensor::new(data, vec![rows.len(), fields.len()])))
            }
            Behavior::Series(name) => {
                let series = self
                    .session
                    .series
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| TensorError::MissingSeries(name.to_string()))?;
                let (a, b) = params.make.range.expect("series datasets use a range");
                let spec = WindowCut {
                    window: params.make,
                    align_override: jitter,
                    range_override: Some((a + params.lag, b + params.lag)),
                };
                let windows = cut(&self.session.trials, &spec, mask, self.bw.ns(), self.n_bins)?;
                require_all(&windows, mask, params.make, "behaviour")?;
                let lmax = windows.iter().map(|w| w.len).max().unwrap_or(0) as usize;
                let nc = series.channels.len();
                let decimators: Vec<Decimator> = series
                    .values
                    .iter()
                    .zip(&series.valid)
                    .map(|(v, sampled)| Decimator::new(v, sampled, self.q()))
                    .collect();
                let mut data = vec![f32::NAN; windows.len() * lmax * nc];
                for (t, w) in windows.iter().enumerate() {
                    for (i, j) in w.bins().enumerate() {
                        for (c, d) in decimators.iter().enumerate() {
                            data[(t * lmax + i) * nc + c] = d.value(j) as f32;
                        }
                    }
                }
                Ok(Some(Tensor::new(data, vec![windows.len(), lmax, nc])))
            }
        }
    }
}

/// Whether every column of the resampled frame (all units and behaviour channels) is non-NaN
/// at each bin, i.e. at the bin's first 1 ms row.
fn frame_validity(session: &Session, q: i64, n: i64) -> Vec<bool> {
    let mut valid = vec![true; n as usize];
    let mut probe = vec![0.0; n as usize];
    let mut seen = std::collections::HashSet::new();
    for iv in session.heldin.valid.iter().chain(&session.heldout.valid) {
        if seen.insert(iv) {
            iv.mask_unobserved(0, q, &mut probe);
        }
    }
    for (v, p) in valid.iter_mut().zip(&probe) {
        *v = !p.is_nan();
    }
    for iv in session.series.iter().flat_map(|s| &s.valid) {
        probe.fill(0.0);
        iv.mask_unobserved(0, q, &mut probe);
        for (v, p) in valid.iter_mut().zip(&probe) {
            *v &= !p.is_nan();
        }
    }
    valid
}

/// The jagged builder looks trials up by id and fails on one whose window could not be cut.
fn require_all(
    windows: &[TrialWindow],
    mask: &[bool],
    window: Window,
    what: &'static str,
) -> Result<()> {
    let mut have = windows.iter().map(|w| w.trial).peekable();
    for (r, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
        if have.peek() == Some(&r) {
            have.next();
        } else {
            return Err(TensorError::NoWindow {
                trial: r,
                field: window.align_field.unwrap_or(window.start_field).to_string(),
                what,
            });
        }
    }
    Ok(())
}

/// `train_input.h5` contents.
pub struct TrainInput {
    pub heldin: Tensor<f32>,
    pub heldout: Tensor<f32>,
    /// `None` for a dataset without behaviour (lorenz).
    pub behavior: Option<Tensor<f32>>,
    pub heldin_forward: Tensor<f32>,
    pub heldout_forward: Tensor<f32>,
}

/// `eval_input.h5` contents.
pub struct EvalInput {
    pub heldin: Tensor<f32>,
    pub heldout: Option<Tensor<f32>>,
}

/// One `eval_target.h5` group.
pub struct EvalTarget {
    pub eval_spikes_heldout: Tensor<f32>,
    /// `None` (with `eval_behavior`) for a dataset without behaviour (lorenz).
    pub train_behavior: Option<Tensor<f32>>,
    pub eval_behavior: Option<Tensor<f32>>,
    pub eval_spikes_heldin_forward: Tensor<f32>,
    pub eval_spikes_heldout_forward: Tensor<f32>,
    pub decode_masks: Option<(Tensor<bool>, Tensor<bool>)>,
    pub psth: Option<Psth>,
    pub jitter: Option<(Vec<i32>, Vec<i32>)>,
}

/// Everything one split writes.
pub struct SplitTensors {
    pub train: TrainInput,
    pub eval: EvalInput,
    pub target: Option<EvalTarget>,
}

/// dmfc's jitter of the masked trials: the jittered align column (go time + jitter, ns, per
/// table row) and the jitter itself (ms, per masked trial).
struct Jitter {
    align: Vec<Option<i64>>,
    ms: Vec<Option<i64>>,
}

/// The jittered align column (go time + jitter) for dmfc, or `None` for other datasets.
fn jittered_align(
    binned: &Binned<'_>,
    params: &DatasetParams,
    mask: &[bool],
) -> Result<Option<Jitter>> {
    if !params.jitter {
        return Ok(None);
    }
    let table = &binned.session.trials;
    let tp = table.num("tp").ok_or_else(|| MissingField("tp".into()))?;
    let field = params.make.align_field.unwrap_or(params.make.start_field);
    let align = table
        .time(field)
        .ok_or_else(|| MissingField(field.into()))?;
    let jit = dmfc_jitter(tp, table.split(), mask, binned.bw.ms());
    let mut column = vec![None; table.len];
    let mut it = jit.iter();
    for r in (0..table.len).filter(|&r| mask[r]) {
        let j = *it.next().expect("one jitter per masked trial");
        column[r] = align[r].zip(j).map(|(t, j)| t + j * NS_PER_MS);
    }
    Ok(Some(Jitter {
        align: column,
        ms: jit,
    }))
}

fn forward_cut<'a>(window: Window, align: Option<&'a [Option<i64>]>) -> WindowCut<'a> {
    let (_, b) = window
        .range
        .expect("forward windows follow a ranged window");
    WindowCut {
        window: Window {
            allow_overlap: true,
            ..window
        },
        align_override: align,
        range_override: Some((b, b + FP_LEN_MS)),
    }
}

fn decode_masks(binned: &Binned<'_>, mask: &[bool]) -> Result<Tensor<bool>> {
    let bump = binned
        .session
        .trials
        .num("ctr_hold_bump")
        .ok_or_else(|| MissingField("ctr_hold_bump".into()))?;
    let rows: Vec<usize> = (0..mask.len()).filter(|&r| mask[r]).collect();
    let data = rows
        .iter()
        .flat_map(|&r| [bump[r] == 0.0, bump[r] == 1.0])
        .collect();
    Ok(Tensor::new(data, vec![rows.len(), 2]))
}

fn jitter_bins(jit: &[Option<i64>], bw_ms: i64) -> Vec<i32> {
    jit.iter()
        .map(|j| j.map_or(i32::MIN, |v| (v / bw_ms) as i32))
        .collect()
}

/// The train/eval trial masks of a phase and the dmfc jitter of each (if any).
struct Masks {
    train: Vec<bool>,
    eval: Vec<bool>,
    train_jit: Option<Jitter>,
    eval_jit: Option<Jitter>,
}

impl Masks {
    fn new(binned: &Binned<'_>, params: &DatasetParams, phase: Phase) -> Result<Masks> {
        let table = &binned.session.trials;
        let train = table.split_mask(phase.train_splits());
        let eval = table.split_mask(&[phase.eval_split()]);
        let train_jit = jittered_align(binned, params, &train)?;
        let eval_jit = jittered_align(binned, params, &eval)?;
        Ok(Masks {
            train,
            eval,
            train_jit,
            eval_jit,
        })
    }

    fn train_align(&self) -> Option<&[Option<i64>]> {
        self.train_jit.as_ref().map(|j| j.align.as_slice())
    }

    fn eval_align(&self) -> Option<&[Option<i64>]> {
        self.eval_jit.as_ref().map(|j| j.align.as_slice())
    }
}

fn make_cut<'a>(params: &DatasetParams, align: Option<&'a [Option<i64>]>) -> WindowCut<'a> {
    WindowCut {
        window: params.make,
        align_override: align,
        range_override: None,
    }
}

fn train_input(binned: &Binned<'_>, params: &DatasetParams, masks: &Masks) -> Result<TrainInput> {
    let align = masks.train_align();
    let (heldin, heldout) = binned.stacked(&make_cut(params, align), &masks.train, false)?;
    let behavior = binned.behavior(params, &masks.train, align)?;
    let (heldin_forward, heldout_forward) =
        binned.stacked(&forward_cut(params.make, align), &masks.train, false)?;
    Ok(TrainInput {
        heldin,
        heldout,
        behavior,
        heldin_forward,
        heldout_forward,
    })
}

fn eval_input_of(binned: &Binned<'_>, params: &DatasetParams, masks: &Masks) -> Result<EvalInput> {
    let (heldin, heldout) =
        binned.stacked(&make_cut(params, masks.eval_align()), &masks.eval, true)?;
    let any_test = binned
        .session
        .trials
        .split()
        .iter()
        .zip(&masks.eval)
        .any(|(s, &m)| m && s == "test");
    Ok(EvalInput {
        heldin,
        heldout: (!any_test).then_some(heldout),
    })
}

/// `eval_input.h5` alone: all a test-phase file without held-out units or behaviour supports.
pub fn eval_input(
    session: &Session,
    params: &DatasetParams,
    bw: BinWidth,
    phase: Phase,
) -> Result<EvalInput> {
    let binned = Binned::new(session, bw);
    let masks = Masks::new(&binned, params, phase)?;
    eval_input_of(&binned, params, &masks)
}

/// The window of the eval target's arrays: nlb-lightning builds dmfc targets with make_params
/// (full jittered windows), the others with the eval params.
fn target_window(params: &DatasetParams) -> Window {
    if params.jitter {
        params.make
    } else {
        params.eval_make
    }
}

fn eval_target(binned: &Binned<'_>, params: &DatasetParams, masks: &Masks) -> Result<EvalTarget> {
    let bw = binned.bw;
    let eval_align = masks.eval_align();
    let window = target_window(params);
    let target_cut = WindowCut {
        window,
        align_override: eval_align,
        range_override: None,
    };
    let (_, eval_spikes_heldout) = binned.stacked(&target_cut, &masks.eval, false)?;
    let (fwd_in, fwd_out) = binned.stacked(&forward_cut(window, eval_align), &masks.eval, false)?;
    let decode = if params.decode_masks {
        Some((
            decode_masks(binned, &masks.train)?,
            decode_masks(binned, &masks.eval)?,
        ))
    } else {
        None
    };
    let ignore: Vec<bool> = masks
        .train
        .iter()
        .zip(&masks.eval)
        .map(|(&t, &e)| !(t || e))
        .collect();
    let timer = std::time::Instant::now();
    let psth = match &params.psth {
        Some(p) => Some(psth::build(binned, p, &masks.train, &masks.eval, &ignore)?),
        None => None,
    };
    tracing::debug!("PSTHs in {:.2?}", timer.elapsed());
    let jitter = match (&masks.train_jit, &masks.eval_jit) {
        (Some(Jitter { ms: tj, .. }), Some(Jitter { ms: ej, .. })) => {
            Some((jitter_bins(tj, bw.ms()), jitter_bins(ej, bw.ms())))
        }
        _ => None,
    };
    Ok(EvalTarget {
        eval_spikes_heldout,
        // The train input's behaviour (same trials, same alignment): filled by `build_split`.
        train_behavior: None,
        eval_behavior: binned.behavior(params, &masks.eval, eval_align)?,
        eval_spikes_heldin_forward: fwd_in,
        eval_spikes_heldout_forward: fwd_out,
        decode_masks: decode,
        psth,
        jitter,
    })
}

/// Builds every tensor of one split, as nlb-lightning's preprocessing does: inputs in both
/// phases, the target (with PSTHs) in the val phase only.
pub fn build_split(
    session: &Session,
    params: &DatasetParams,
    bw: BinWidth,
    phase: Phase,
) -> Result<SplitTensors> {
    let timer = std::time::Instant::now();
    let binned = Binned::new(session, bw);
    let masks = Masks::new(&binned, params, phase)?;
    tracing::debug!("binned view and masks in {:.2?}", timer.elapsed());
    // The target (PSTHs mostly) is the longest part: build it beside the inputs.
    let (train, eval, target) = std::thread::scope(|scope| {
        let target = scope.spawn(|| match phase {
            Phase::Val => eval_target(&binned, params, &masks).map(Some),
            Phase::Test => Ok(None),
        });
        let train = train_input(&binned, params, &masks);
        tracing::debug!("train input at {:.2?}", timer.elapsed());
        let eval = eval_input_of(&binned, params, &masks);
        tracing::debug!("eval input at {:.2?}", timer.elapsed());
        let target = target.join().expect("target builder panicked");
        tracing::debug!("eval target at {:.2?}", timer.elapsed());
        (train, eval, target)
    });
    let (train, eval, mut target) = (train?, eval?, target?);
    if let Some(t) = &mut target {
        t.train_behavior = train.behavior.clone();
    }
    Ok(SplitTensors {
        train,
        eval,
        target,
    })
}

/// Expected spike counts per session row, from any source of rates (a generating model's
/// ground truth, say); [`expected_counts`] bins them like the spikes.
pub trait RowRates: Sync {
    /// Expected spikes of unit `unit` (index into the session's held-in or, with `heldout`,
    /// held-out group, in session order) in 1 ms session row `row`.
    fn expected(&self, heldout: bool, unit: usize, row: i64) -> f64;
}

/// Expected counts on the grid of a split's submission arrays: each array has the trials, bins
/// and shape of the spike tensor a model predicts it from, so a [`RowRates`] source can be
/// written and scored as a submission (`train_rates_*`, `eval_rates_*`).
#[derive(Debug, Clone)]
pub struct ExpectedCounts {
    /// Observed bins of the train trials (`train_spikes_heldin`'s grid).
    pub train_heldin: Tensor<f32>,
    pub train_heldout: Tensor<f32>,
    /// Every bin of the eval trials (`eval_spikes_heldin`'s grid); bins where the spikes are NaN
    /// (unobserved) still hold their expectation.
    pub eval_heldin: Tensor<f32>,
    pub eval_heldout: Tensor<f32>,
    /// The eval target's forward bins (`eval_spikes_heldin_forward`'s grid).
    pub eval_heldin_forward: Tensor<f32>,
    pub eval_heldout_forward: Tensor<f32>,
}

/// Bins `rates` on the submission grid of one split: the same masks, cuts and NaN handling as
/// `train_input`, `eval_input` and the eval target's forward arrays, so trials and bins match
/// the spike tensors by construction. A bin's value is the sum of its `q` rows' expectations.
pub fn expected_counts(
    session: &Session,
    params: &DatasetParams,
    bw: BinWidth,
    phase: Phase,
    rates: &dyn RowRates,
) -> Result<ExpectedCounts> {
    let binned = Binned::new(session, bw);
    let masks = Masks::new(&binned, params, phase)?;
    let (train_heldin, train_heldout) = binned.stacked_expected(
        rates,
        &make_cut(params, masks.train_align()),
        &masks.train,
        false,
    )?;
    let eval_align = masks.eval_align();
    let (eval_heldin, eval_heldout) =
        binned.stacked_expected(rates, &make_cut(params, eval_align), &masks.eval, true)?;
    let (eval_heldin_forward, eval_heldout_forward) = binned.stacked_expected(
        rates,
        &forward_cut(target_window(params), eval_align),
        &masks.eval,
        false,
    )?;
    Ok(ExpectedCounts {
        train_heldin,
        train_heldout,
        eval_heldin,
        eval_heldout,
        eval_heldin_forward,
        eval_heldout_forward,
    })
}

#[cfg(test)]
mod tests;
