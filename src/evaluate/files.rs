//! File-level evaluation: a target file and a submission file in, one result per scored group out.

use std::path::Path;

use ndarray::{Array2, Array3, ArrayD, Axis, Ix3};

use super::error::{EvalError, GroupError, Key, MetricError};
use super::group::{evaluate_with, fit_group_decoder, Dataset, GroupRates, Metrics, TargetGroup};
use super::rates::{Rate, RatePair};
use super::report::DatasetResult;
use super::ridge::VelocityDecoder;
use crate::h5::{Floats, H5File};

/// The bin widths the reference evaluator looks for, in its order (suffix `''`, then `_20`).
pub const BIN_WIDTHS: [u32; 2] = [5, 20];

/// Evaluates `submission` against `target` like nlb_tools' `evaluate(target, submission)`.
///
/// Groups are visited in [`Dataset::ALL`] order, then the synthetic datasets (`lorenz`, which
/// NLB files never hold, so NLB results are unchanged), 5 ms before 20 ms. A group is scored only
/// if the submission has it with `eval_rates_heldout` and the target has it with `eval_spikes_heldout`;
/// other groups are skipped with a warning, as the reference does. Any other missing key, a
/// shape that does not match the target, or a NaN/negative rate is an error.
pub fn evaluate_files(target: &Path, submission: &Path) -> Result<Vec<DatasetResult>, EvalError> {
    visit_files(target, submission, |_, _, _| Ok(()))
}

/// [`evaluate_files`], calling `each` on every result with the arrays it was scored from, so
/// extra scores (the truth scores) reuse them instead of reading the files again.
pub(super) fn visit_files<E: From<EvalError>>(
    target: &Path,
    submission: &Path,
    mut each: impl FnMut(&DatasetResult, &TargetGroup, &Submission) -> Result<(), E>,
) -> Result<Vec<DatasetResult>, E> {
    let tf = H5File::open(target).map_err(EvalError::from)?;
    let sf = H5File::open(submission).map_err(EvalError::from)?;
    let mut results = Vec::new();
    for dataset in Dataset::ALL.into_iter().chain(Dataset::SYNTHETIC) {
        for bin_ms in BIN_WIDTHS {
            let group = dataset.group(bin_ms);
            if !sf.has(&group) {
                continue;
            }
            if !sf.has(&format!("{group}/eval_rates_heldout")) {
                tracing::warn!(
                    "{}: group `{group}` has no `eval_rates_heldout`; skipped",
                    submission.display()
                );
                continue;
            }
            if !tf.has(&format!("{group}/eval_spikes_heldout")) {
                tracing::warn!(
                    "{}: no `{group}/eval_spikes_heldout` to score the submission's `{group}` against; skipped",
                    target.display()
                );
                continue;
            }
            let started = std::time::Instant::now();
            let in_group = |source: GroupError| EvalError::Group {
                target: target.to_path_buf(),
                submission: submission.to_path_buf(),
                group: group.clone(),
                source: Box::new(source),
            };
            let decodes = !dataset.is_dmfc() && dataset.has_behavior();
            let (t, s, metrics) = if decodes && tf.has(&format!("{group}/train_behavior")) {
                score_fitting_while_reading(&tf, &sf, dataset, &group).map_err(|e| match e {
                    Failure::Read(e) => e,
                    Failure::Score(e) => in_group(e),
                })?
            } else {
                let t = TargetGroup::read(&tf, &group)?;
                let fwd = t.eval_spikes_heldin_forward.is_some();
                let s = Submission::read(&sf, &group, fwd)?;
                let metrics = s.evaluate(dataset, &t, None).map_err(in_group)?;
                (t, s, metrics)
            };
            tracing::debug!(elapsed = ?started.elapsed(), "{group} evaluated");
            let result = DatasetResult {
                dataset,
                bin_ms,
                metrics,
            };
            each(&result, &t, &s)?;
            results.push(result);
        }
    }
    Ok(results)
}

/// Why a group could not be scored: a file problem (already naming the file) or a scoring one.
enum Failure {
    Read(EvalError),
    Score(GroupError),
}

impl From<EvalError> for Failure {
    fn from(e: EvalError) -> Self {
        Failure::Read(e)
    }
}

/// Scores a group with vel R2, fitting its decoders on a second thread from the training data,
/// which is read first, while this thread reads the eval data and the rest of the target (mostly
/// gzip inflation). Errors come in the order of a plain read-then-score.
fn score_fitting_while_reading(
    tf: &H5File,
    sf: &H5File,
    dataset: Dataset,
    group: &str,
) -> Result<(TargetGroup, Submission, Metrics), Failure> {
    let decoding = TargetGroup::read_decoding(tf, group)?;
    let train = [
        read_floats3(sf, group, "train_rates_heldin")?,
        read_floats3(sf, group, "train_rates_heldout")?,
    ];
    let (read, decoder) = std::thread::scope(|scope| {
        let fit = scope.spawn(|| fit_decoder(&decoding, &train));
        let read = || -> Result<_, EvalError> {
            let t = TargetGroup::read_scoring(tf, group)?;
            let fwd = t.eval_spikes_heldin_forward.is_some();
            let s = Submission::read(sf, group, fwd)?;
            Ok((t, s))
        };
        let read = read();
        let decoder = fit.join().expect("decoder fitting panicked");
        (read, decoder)
    });
    let (t, s) = read?;
    let t = TargetGroup {
        train_behavior: decoding.train_behavior,
        train_decode_mask: decoding.train_decode_mask,
        ..t
    };
    let decoder = decoder.map_err(Failure::Score)?;
    let metrics = s
        .evaluate(dataset, &t, Some(&decoder))
        .map_err(Failure::Score)?;
    Ok((t, s, metrics))
}

fn fit_decoder(
    target: &TargetGroup,
    [hi, ho]: &[Floats3; 2],
) -> Result<VelocityDecoder, GroupError> {
    match (hi, ho) {
        (Floats3::F32(hi), Floats3::F32(ho)) => fit_group_decoder(target, RatePair::of(hi, ho)),
        _ => {
            let (hi, ho) = (hi.to_f64(), ho.to_f64());
            fit_group_decoder(target, RatePair::of(&hi, &ho))
        }
    }
}

fn in_file(file: &H5File, group: &str, source: GroupError) -> EvalError {
    EvalError::InFile {
        file: file.path().to_path_buf(),
        group: group.to_string(),
        source: Box::new(source),
    }
}

/// A target's `[trials, T, neurons]` array as f64.
fn read3(file: &H5File, group: &str, key: &str) -> Result<Array3<f64>, EvalError> {
    let a = file.read_f64(&format!("{group}/{key}"))?;
    rank3(file, group, Key::target(key), a)
}

/// `a` (read from `key`) as a 3-D array, or an error naming the key and its shape.
fn rank3<T>(file: &H5File, group: &str, key: Key, a: ArrayD<T>) -> Result<Array3<T>, EvalError> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<Ix3>().map_err(|_| {
        in_file(
            file,
            group,
            GroupError::Rank {
                key,
                ndim: shape.len(),
                shape,
                expected: 3,
            },
        )
    })
}

fn read_opt(file: &H5File, group: &str, key: &str) -> Result<Option<ArrayD<f64>>, EvalError> {
    let name = format!("{group}/{key}");
    Ok(if file.has(&name) {
        Some(file.read_f64(&name)?)
    } else {
        None
    })
}

fn read_mask(file: &H5File, group: &str, key: &str) -> Result<Option<Array2<bool>>, EvalError> {
    let name = format!("{group}/{key}");
    if !file.has(&name) {
        return Ok(None);
    }
    let shape = file.shape(&name)?;
    let flat = file.read_bool(&name)?;
    let rank_err = || {
        in_file(
            file,
            group,
            GroupError::Rank {
                key: Key::target(key),
                shape: shape.clone(),
                ndim: shape.len(),
                expected: 2,
            },
        )
    };
    let &[n, k] = shape.as_slice() else {
        return Err(rank_err());
    };
    Array2::from_shape_vec((n, k), flat)
        .map(Some)
        .map_err(|_| rank_err())
}

/// Per-condition trial lists: variable-length (current nlb_tools) or, when every condition has
/// the same number of trials, a 2-D integer array.
fn read_cond_idx(
    file: &H5File,
    group: &str,
    n_trials: usize,
) -> Result<Option<Vec<Vec<usize>>>, EvalError> {
    let name = format!("{group}/eval_cond_idx");
    if !file.has(&name) {
        return Ok(None);
    }
    let lists = match file.read_vlen_i64(&name) {
        Ok(l) => l,
        Err(vlen_err) => {
            let shape = file.shape(&name)?;
            let flat = file.read_i64(&name).map_err(|_| vlen_err)?;
            let width = shape.get(1).copied().unwrap_or(1);
            flat.chunks(width.max(1)).map(<[i64]>::to_vec).collect()
        }
    };
    lists
        .into_iter()
        .enumerate()
        .map(|(c, l)| {
            l.into_iter()
                .map(|i| {
                    usize::try_from(i).map_err(|_| {
                        in_file(
                            file,
                            group,
                            GroupError::Metric {
                                metric: "psth R2",
                                key: Key::target("eval_cond_idx"),
                                source: MetricError::TrialIndex {
                                    condition: c,
                                    index: i,
                                    n_trials,
                                },
                            },
                        )
                    })
                })
                .collect()
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl TargetGroup {
    /// Reads group `group` (e.g. `mc_maze_20`) of an NLB target file, converting to float64.
    ///
    /// Only `eval_spikes_heldout` is required here; what else a dataset needs is checked when it
    /// is scored, so a training loop can load a target once and score against it repeatedly.
    pub fn read(file: &H5File, group: &str) -> Result<Self, EvalError> {
        let decoding = Self::read_decoding(file, group)?;
        Ok(Self {
            train_behavior: decoding.train_behavior,
            train_decode_mask: decoding.train_decode_mask,
            ..Self::read_scoring(file, group)?
        })
    }

    /// Only what fitting vel R2's decoders reads: `train_behavior` and `train_decode_mask`.
    fn read_decoding(file: &H5File, group: &str) -> Result<Self, EvalError> {
        Ok(Self {
            train_behavior: read_opt(file, group, "train_behavior")?,
            train_decode_mask: read_mask(file, group, "train_decode_mask")?,
            ..Self::default()
        })
    }

    /// Everything but what [`Self::read_decoding`] reads.
    fn read_scoring(file: &H5File, group: &str) -> Result<Self, EvalError> {
        let eval_spikes_heldout = read3(file, group, "eval_spikes_heldout")?;
        let n_trials = eval_spikes_heldout.len_of(Axis(0));
        let opt3 = |key: &str| -> Result<Option<Array3<f64>>, EvalError> {
            if file.has(&format!("{group}/{key}")) {
                read3(file, group, key).map(Some)
            } else {
                Ok(None)
            }
        };
        let jitter_name = format!("{group}/eval_jitter");
        Ok(Self {
            train_behavior: None,
            eval_behavior: read_opt(file, group, "eval_behavior")?,
            train_decode_mask: None,
            eval_decode_mask: read_mask(file, group, "eval_decode_mask")?,
            psth: opt3("psth")?,
            eval_cond_idx: read_cond_idx(file, group, n_trials)?,
            eval_jitter: if file.has(&jitter_name) {
                Some(file.read_i64(&jitter_name)?)
            } else {
                None
            },
            eval_spikes_heldin_forward: opt3("eval_spikes_heldin_forward")?,
            eval_spikes_heldout_forward: opt3("eval_spikes_heldout_forward")?,
            eval_spikes_heldout,
        })
    }
}

/// A submission group's eval-side rate arrays (`A`: one `[trials, T, neurons]` array) as the file
/// stores them: held-in and held-out apart. The training rates serve only vel R2's decoders and are
/// read on their own, so that fitting can start before the rest is read.
#[derive(Debug, Clone)]
pub struct SubmissionGroup<A = Array3<f64>> {
    /// `eval_rates_heldin`, `eval_rates_heldout`.
    pub eval: [A; 2],
    /// `eval_rates_heldin_forward`, `eval_rates_heldout_forward`, if read.
    pub eval_forward: Option<[A; 2]>,
}

impl<A> SubmissionGroup<A> {
    fn map<B>(self, f: impl Fn(A) -> B) -> SubmissionGroup<B> {
        let f = &f;
        let both = |[hi, ho]: [A; 2]| [f(hi), f(ho)];
        SubmissionGroup {
            eval: both(self.eval),
            eval_forward: self.eval_forward.map(both),
        }
    }

    fn arrays(&self) -> impl Iterator<Item = &A> {
        self.eval.iter().chain(self.eval_forward.iter().flatten())
    }
}

impl<R: Rate> SubmissionGroup<Array3<R>> {
    /// Views for [`super::evaluate_group_with_decoder`] (no training rates).
    pub fn rates(&self) -> GroupRates<'_, R> {
        fn pair<R: Rate>([hi, ho]: &[Array3<R>; 2]) -> RatePair<'_, R> {
            RatePair::of(hi, ho)
        }
        GroupRates {
            eval: pair(&self.eval),
            train: None,
            eval_forward: self.eval_forward.as_ref().map(pair),
        }
    }
}

/// A submission group in the precision it was written.
///
/// Submissions are float32 (nlb_tools and `langevin submit` write them so) and are scored as
/// read, each value widened as it is used; a file holding any other float type is widened to f64
/// whole, which is exact.
#[derive(Debug, Clone)]
pub enum Submission {
    F32(SubmissionGroup<Array3<f32>>),
    F64(SubmissionGroup<Array3<f64>>),
}

impl Submission {
    /// Reads the eval-side rate arrays of `group`. Eval rates are required; forward rates are read
    /// when the submission has `eval_rates_heldin_forward` and `target_has_forward`, as the
    /// reference does.
    pub fn read(file: &H5File, group: &str, target_has_forward: bool) -> Result<Self, EvalError> {
        let pair = |prefix: &str, suffix: &str| -> Result<[Floats3; 2], EvalError> {
            Ok([
                read_floats3(file, group, &format!("{prefix}_heldin{suffix}"))?,
                read_floats3(file, group, &format!("{prefix}_heldout{suffix}"))?,
            ])
        };
        let eval = pair("eval_rates", "")?;
        let has_fwd = file.has(&format!("{group}/eval_rates_heldin_forward"));
        let eval_forward = (has_fwd && target_has_forward)
            .then(|| pair("eval_rates", "_forward"))
            .transpose()?;
        let stored = SubmissionGroup { eval, eval_forward };
        let all_f32 = stored.arrays().all(|a| matches!(a, Floats3::F32(_)));
        Ok(if all_f32 {
            Submission::F32(stored.map(|a| match a {
                Floats3::F32(a) => a,
                Floats3::F64(_) => unreachable!("all arrays are f32"),
            }))
        } else {
            Submission::F64(stored.map(|a| match a {
                Floats3::F32(a) => a.mapv(f64::from),
                Floats3::F64(a) => a,
            }))
        })
    }

    /// Scores this group in its stored precision, with vel R2's decoders from
    /// [`fit_group_decoder`] (needed wherever the dataset has vel R2).
    pub fn evaluate(
        &self,
        dataset: Dataset,
        target: &TargetGroup,
        decoder: Option<&VelocityDecoder>,
    ) -> Result<Metrics, GroupError> {
        match self {
            Submission::F32(g) => evaluate_with(dataset, target, &g.rates(), decoder),
            Submission::F64(g) => evaluate_with(dataset, target, &g.rates(), decoder),
        }
    }

    /// The rates widened to f64 (exact).
    pub fn into_f64(self) -> SubmissionGroup {
        match self {
            Submission::F32(g) => g.map(|a| a.mapv(f64::from)),
            Submission::F64(g) => g,
        }
    }
}

/// A `[trials, T, neurons]` float array as stored.
#[derive(Debug, Clone)]
enum Floats3 {
    F32(Array3<f32>),
    F64(Array3<f64>),
}

impl Floats3 {
    fn to_f64(&self) -> std::borrow::Cow<'_, Array3<f64>> {
        match self {
            Floats3::F32(a) => std::borrow::Cow::Owned(a.mapv(f64::from)),
            Floats3::F64(a) => std::borrow::Cow::Borrowed(a),
        }
    }
}

fn read_floats3(file: &H5File, group: &str, key: &str) -> Result<Floats3, EvalError> {
    let key_of = || Key::submission(key);
    Ok(match file.read_floats(&format!("{group}/{key}"))? {
        Floats::F32(a) => Floats3::F32(rank3(file, group, key_of(), a)?),
        Floats::F64(a) => Floats3::F64(rank3(file, group, key_of(), a)?),
    })
}
