//! Scoring one dataset group (one dataset at one bin width) from in-memory arrays.

use ndarray::{Array2, Array3, ArrayD, ArrayView2, ArrayView3, Axis, Ix2, Ix3};

use super::error::{GroupError, Key, MetricError, Side};
use super::metrics::{bits_per_spike, fp_bps, psth_r2, tp_corr, ZERO_RATE};
use super::rates::{Rate, RatePair};
use super::ridge::{DecodeSplit, VelocityDecoder};

/// The evaluator's datasets are the NLB datasets; the evaluation-specific facts (scaling
/// prefixes, dmfc's tp corr, group names per bin width) live on [`DatasetName`](crate::nlb::DatasetName) too.
pub use crate::nlb::DatasetName as Dataset;

/// The contents of one target group (`eval_target.h5`), as float64 where numeric.
///
/// Optional fields are the keys a target may lack; which ones a dataset needs is checked by
/// [`evaluate_group`], which names any missing key.
#[derive(Debug, Clone, Default)]
pub struct TargetGroup {
    /// `[trials, T, held-out neurons]`, NaN outside each trial's scored window.
    pub eval_spikes_heldout: Array3<f64>,
    /// `[trials, T, C]` velocities, or `[trials, 5]` task variables for dmfc_rsg.
    pub train_behavior: Option<ArrayD<f64>>,
    /// Same layout as `train_behavior`; dmfc_rsg's tp corr reads its `tp` column.
    pub eval_behavior: Option<ArrayD<f64>>,
    /// `[trials, masks]` (area2_bump: no bump, bump): each column is decoded and scored apart.
    pub train_decode_mask: Option<Array2<bool>>,
    pub eval_decode_mask: Option<Array2<bool>>,
    /// `[conditions, T, held-in + held-out neurons]`.
    pub psth: Option<Array3<f64>>,
    /// Eval trials of each PSTH condition.
    pub eval_cond_idx: Option<Vec<Vec<usize>>>,
    /// Per eval trial shift in bins (dmfc_rsg).
    pub eval_jitter: Option<Vec<i64>>,
    /// `[trials, forward bins, held-in neurons]`; without it there is no fp-bps.
    pub eval_spikes_heldin_forward: Option<Array3<f64>>,
    pub eval_spikes_heldout_forward: Option<Array3<f64>>,
}

/// Predicted rates for one group, each set as a held-in/held-out [`RatePair`].
///
/// A model's side-by-side output splits into pairs without copying ([`RatePair::split`]), and a
/// submission file's separate f32 arrays are borrowed as they were read.
#[derive(Debug)]
pub struct GroupRates<'a, R = f64> {
    /// `[eval trials, T, neurons]`.
    pub eval: RatePair<'a, R>,
    /// `[train trials, T, neurons]`; required except for dmfc_rsg and lorenz (no vel R2).
    pub train: Option<RatePair<'a, R>>,
    /// `[eval trials, forward bins, neurons]`; fp-bps is scored only when present.
    pub eval_forward: Option<RatePair<'a, R>>,
}

impl<R> Clone for GroupRates<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for GroupRates<'_, R> {}

impl<R: Rate> GroupRates<'_, R> {
    /// Where the held-out neurons begin in the joined neuron order.
    pub fn n_heldin(&self) -> usize {
        self.eval.n_heldin()
    }
}

/// A metric the dataset defines that the target could not support, and why.
///
/// Third-party targets for real recordings often hold only `eval_spikes_heldout`; those still
/// get co-bps, and each metric left out is named once instead of failing the whole group.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedMetric {
    /// nlb_tools' key name, e.g. `vel R2`.
    pub metric: &'static str,
    /// The target key it needs and lacks, e.g. ``target has no `train_behavior` ``.
    pub reason: String,
}

/// The metrics of one group; `None` where the dataset or the inputs do not define one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    /// Bits/spike of the held-out neurons: the headline co-smoothing score.
    pub co_bps: f64,
    /// Every dataset with behaviour but dmfc_rsg (so not lorenz).
    pub vel_r2: Option<f64>,
    /// dmfc_rsg only.
    pub tp_corr: Option<f64>,
    /// When the target has PSTHs (not mc_rtt).
    pub psth_r2: Option<f64>,
    /// When both the submission and the target have forward data.
    pub fp_bps: Option<f64>,
    /// Metrics the dataset defines but the target lacked the keys for (never in the JSON).
    pub skipped: Vec<SkippedMetric>,
}

/// A metric's result with a missing *target* key turned into a skip: the target cannot support
/// it, which is a property of the file, not an error in the submission.
fn or_skip<T: Default>(
    metric: &'static str,
    result: Result<T, GroupError>,
    skipped: &mut Vec<SkippedMetric>,
) -> Result<T, GroupError> {
    match result {
        Err(GroupError::Missing { key }) if key.side == Side::Target => {
            skipped.push(SkippedMetric {
                metric,
                reason: format!("target has no `{}`", key.name),
            });
            Ok(T::default())
        }
        other => other,
    }
}

impl Metrics {
    /// `(key, value)` pairs with nlb_tools' key names, in its order.
    pub fn entries(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![("co-bps", self.co_bps)];
        out.extend(self.tp_corr.map(|v| ("tp corr", v)));
        out.extend(self.vel_r2.map(|v| ("vel R2", v)));
        out.extend(self.psth_r2.map(|v| ("psth R2", v)));
        out.extend(self.fp_bps.map(|v| ("fp-bps", v)));
        out
    }
}

/// Scores one group exactly as nlb_tools' `evaluate` scores `<dataset><suffix>`.
///
/// Shapes are checked up front against the target so that errors name the keys involved.
/// One quirk of the reference is reproduced on purpose: its co-bps step turns exact zeros of the
/// held-out eval rates into 1e-9 *in place* whenever the held-out spikes hold no NaN, and the
/// altered rates then feed vel R2, tp corr and PSTH R2.
pub fn evaluate_group<R: Rate>(
    dataset: Dataset,
    target: &TargetGroup,
    rates: &GroupRates<'_, R>,
) -> Result<Metrics, GroupError> {
    evaluate_with(dataset, target, rates, None)
}

/// [`evaluate_group`] with vel R2's decoders already fitted by [`fit_group_decoder`]; the
/// training rates in `rates` are then not needed.
pub fn evaluate_group_with_decoder<R: Rate>(
    dataset: Dataset,
    target: &TargetGroup,
    rates: &GroupRates<'_, R>,
    decoder: &VelocityDecoder,
) -> Result<Metrics, GroupError> {
    evaluate_with(dataset, target, rates, Some(decoder))
}

/// [`evaluate_group`] with vel R2's decoders, if already fitted.
pub(super) fn evaluate_with<R: Rate>(
    dataset: Dataset,
    target: &TargetGroup,
    rates: &GroupRates<'_, R>,
    decoder: Option<&VelocityDecoder>,
) -> Result<Metrics, GroupError> {
    let spikes = target.eval_spikes_heldout.view();
    let heldout = rates.eval.heldout;
    if heldout.shape() != spikes.shape() {
        return Err(GroupError::Shape {
            key: Key::submission("eval_rates_heldout"),
            shape: heldout.shape().to_vec(),
            other: Key::target("eval_spikes_heldout"),
            other_shape: spikes.shape().to_vec(),
        });
    }
    check_pairs(rates)?;
    let co_bps = bits_per_spike(heldout, spikes).map_err(|e| GroupError::Metric {
        metric: "co-bps",
        key: Key::submission("eval_rates_heldout"),
        source: e,
    })?;
    let zero = |v: &R| (*v).into() == 0.0;
    let patch = heldout.iter().any(zero) && !spikes.iter().any(|v| v.is_nan());
    let metrics = if patch {
        let patched = heldout.mapv(|v| {
            let v: f64 = v.into();
            if v == 0.0 {
                ZERO_RATE
            } else {
                v
            }
        });
        let heldin = rates.eval.heldin.mapv(Into::<f64>::into);
        let eval = RatePair {
            heldin: heldin.view(),
            heldout: patched.view(),
        };
        score_after_co_bps(dataset, target, rates, eval, decoder)?
    } else {
        score_after_co_bps(dataset, target, rates, rates.eval, decoder)?
    };
    Ok(Metrics { co_bps, ..metrics })
}

/// Every key pair's halves must cover the same trials and bins, and every set must have the eval
/// set's held-in and held-out widths.
fn check_pairs<R: Rate>(rates: &GroupRates<'_, R>) -> Result<(), GroupError> {
    let sets = [
        ("eval_rates_heldin", "eval_rates_heldout", Some(rates.eval)),
        ("train_rates_heldin", "train_rates_heldout", rates.train),
        (
            "eval_rates_heldin_forward",
            "eval_rates_heldout_forward",
            rates.eval_forward,
        ),
    ];
    for (hi_key, ho_key, pair) in sets {
        let Some(pair) = pair else { continue };
        if !pair.is_aligned() {
            return Err(GroupError::Shape {
                key: Key::submission(ho_key),
                shape: pair.heldout.shape().to_vec(),
                other: Key::submission(hi_key),
                other_shape: pair.heldin.shape().to_vec(),
            });
        }
        for (key, width, other_key, other) in [
            (hi_key, pair.heldin, "eval_rates_heldin", rates.eval.heldin),
            (
                ho_key,
                pair.heldout,
                "eval_rates_heldout",
                rates.eval.heldout,
            ),
        ] {
            if width.len_of(Axis(2)) != other.len_of(Axis(2)) {
                return Err(GroupError::Shape {
                    key: Key::submission(key),
                    shape: width.shape().to_vec(),
                    other: Key::submission(other_key),
                    other_shape: other.shape().to_vec(),
                });
            }
        }
    }
    Ok(())
}

/// Every metric after co-bps, on `eval`: the eval rates after the reference's zero patch.
///
/// The behaviour metric (vel R2's cross-validated decoder is most of the work) runs on its own
/// thread while PSTH R2 and fp-bps run on this one; errors are reported in the order the
/// reference would meet them.
fn score_after_co_bps<R: Rate, S: Rate>(
    dataset: Dataset,
    target: &TargetGroup,
    rates: &GroupRates<'_, R>,
    eval: RatePair<'_, S>,
    decoder: Option<&VelocityDecoder>,
) -> Result<Metrics, GroupError> {
    let (behaviour, psth, fp) = std::thread::scope(|scope| {
        let behaviour = scope.spawn(|| behaviour_metric(dataset, target, rates, eval, decoder));
        let psth = psth_metric(target, eval);
        let fp = forward_metric(target, rates);
        let behaviour = behaviour.join().expect("behaviour metric worker panicked");
        (behaviour, psth, fp)
    });
    let mut skipped = Vec::new();
    let behaviour_key = if dataset.is_dmfc() {
        "tp corr"
    } else {
        "vel R2"
    };
    let (tp_corr, vel_r2) = or_skip(behaviour_key, behaviour, &mut skipped)?;
    let psth_r2 = or_skip("psth R2", psth, &mut skipped)?;
    if target.psth.is_none() && dataset != Dataset::McRtt {
        skipped.push(SkippedMetric {
            metric: "psth R2",
            reason: "target has no `psth`".into(),
        });
    }
    let fp_bps = or_skip("fp-bps", fp, &mut skipped)?;
    if target.eval_spikes_heldin_forward.is_none() {
        skipped.push(SkippedMetric {
            metric: "fp-bps",
            reason: "target has no `eval_spikes_heldin_forward`".into(),
        });
    }
    Ok(Metrics {
        co_bps: f64::NAN,
        tp_corr,
        vel_r2,
        psth_r2,
        fp_bps,
        skipped,
    })
}

/// `(tp corr, vel R2)`: whichever the dataset defines.
fn behaviour_metric<R: Rate, S: Rate>(
    dataset: Dataset,
    target: &TargetGroup,
    rates: &GroupRates<'_, R>,
    eval: RatePair<'_, S>,
    decoder: Option<&VelocityDecoder>,
) -> Result<(Option<f64>, Option<f64>), GroupError> {
    if dataset.is_dmfc() {
        let behavior = behavior_2d(target, eval.dim().0)?;
        let r = tp_corr(target.eval_spikes_heldout.view(), eval, behavior).map_err(|e| {
            GroupError::Metric {
                metric: "tp corr",
                key: Key::submission("eval_rates_heldin/eval_rates_heldout"),
                source: e,
            }
        })?;
        Ok((Some(r), None))
    } else if dataset.has_behavior() {
        let started = std::time::Instant::now();
        let fitted;
        if target.train_behavior.is_none() && decoder.is_none() {
            return Err(GroupError::Missing {
                key: Key::target("train_behavior"),
            });
        }
        let decoder = match decoder {
            Some(d) => d,
            None => {
                let train = rates.train.ok_or(GroupError::Missing {
                    key: Key::submission("train_rates_heldin"),
                })?;
                fitted = fit_group_decoder(target, train)?;
                &fitted
            }
        };
        let r2 = vel_r2(target, decoder, eval)?;
        tracing::debug!(elapsed = ?started.elapsed(), "vel R2");
        Ok((None, Some(r2)))
    } else {
        Ok((None, None))
    }
}

/// PSTH R2, when the target has PSTHs.
fn psth_metric<S: Rate>(
    target: &TargetGroup,
    eval: RatePair<'_, S>,
) -> Result<Option<f64>, GroupError> {
    let Some(psth) = &target.psth else {
        return Ok(None);
    };
    let cond_idx = target.eval_cond_idx.as_ref().ok_or(GroupError::Missing {
        key: Key::target("eval_cond_idx"),
    })?;
    check_dims(
        ("eval_rates_heldin/eval_rates_heldout", &joined_shape(&eval)),
        ("psth", psth.shape()),
        &[(1, 1), (2, 2)],
    )?;
    if let Some(j) = &target.eval_jitter {
        if j.len() != eval.dim().0 {
            return Err(GroupError::Shape {
                key: Key::target("eval_jitter"),
                shape: vec![j.len()],
                other: Key::submission("eval_rates_heldout"),
                other_shape: eval.heldout.shape().to_vec(),
            });
        }
    }
    psth_r2(psth.view(), eval, cond_idx, target.eval_jitter.as_deref())
        .map(Some)
        .map_err(|e| GroupError::Metric {
            metric: "psth R2",
            key: Key::submission("eval_rates_heldin/eval_rates_heldout"),
            source: e,
        })
}

/// fp-bps, when both the submission and the target have forward data.
fn forward_metric<R: Rate>(
    target: &TargetGroup,
    rates: &GroupRates<'_, R>,
) -> Result<Option<f64>, GroupError> {
    let (Some(fwd), Some(sp_in)) = (rates.eval_forward, &target.eval_spikes_heldin_forward) else {
        return Ok(None);
    };
    let sp_out = target
        .eval_spikes_heldout_forward
        .as_ref()
        .ok_or(GroupError::Missing {
            key: Key::target("eval_spikes_heldout_forward"),
        })?;
    for (key, part, spk_key, spk) in [
        (
            "eval_rates_heldin_forward",
            fwd.heldin,
            "eval_spikes_heldin_forward",
            sp_in,
        ),
        (
            "eval_rates_heldout_forward",
            fwd.heldout,
            "eval_spikes_heldout_forward",
            sp_out,
        ),
    ] {
        if part.shape() != spk.shape() {
            return Err(GroupError::Shape {
                key: Key::submission(key),
                shape: part.shape().to_vec(),
                other: Key::target(spk_key),
                other_shape: spk.shape().to_vec(),
            });
        }
    }
    let nh = fwd.n_heldin();
    fp_bps(fwd, sp_in.view(), sp_out.view())
        .map(Some)
        .map_err(|e| GroupError::Metric {
            metric: "fp-bps",
            key: Key::submission(forward_key(&e, nh)),
            source: e,
        })
}

/// Which forward key a bad-rate index points into (the arrays are scored concatenated).
fn forward_key(e: &MetricError, nh: usize) -> &'static str {
    match e {
        MetricError::NanRate { index } | MetricError::NegativeRate { index, .. }
            if index.get(2).is_some_and(|&j| j >= nh) =>
        {
            "eval_rates_heldout_forward"
        }
        _ => "eval_rates_heldin_forward",
    }
}

/// vel R2's decoders for one group, fitted on its training rates against the target's
/// `train_behavior` (and `train_decode_mask`): the expensive half of vel R2, which needs nothing
/// from the eval split. Pass the result to [`evaluate_group_with_decoder`].
pub fn fit_group_decoder<R: Rate>(
    target: &TargetGroup,
    train: RatePair<'_, R>,
) -> Result<VelocityDecoder, GroupError> {
    let split = decode_split(
        [
            "train_rates_heldin",
            "train_rates_heldout",
            "train_behavior",
            "train_decode_mask",
        ],
        target.train_behavior.as_ref(),
        target.train_decode_mask.as_ref(),
        &train,
    )?;
    VelocityDecoder::fit(split).map_err(vel_r2_error)
}

fn vel_r2<S: Rate>(
    target: &TargetGroup,
    decoder: &VelocityDecoder,
    eval: RatePair<'_, S>,
) -> Result<f64, GroupError> {
    let split = decode_split(
        [
            "eval_rates_heldin",
            "eval_rates_heldout",
            "eval_behavior",
            "eval_decode_mask",
        ],
        target.eval_behavior.as_ref(),
        target.eval_decode_mask.as_ref(),
        &eval,
    )?;
    decoder.score(split).map_err(vel_r2_error)
}

/// One split's decoding inputs, checked: `keys` name its held-in and held-out rates, behaviour
/// and decode mask.
fn decode_split<'a, R: Rate>(
    [hi_key, ho_key, behavior_key, mask_key]: [&'static str; 4],
    behavior: Option<&'a ArrayD<f64>>,
    decode_mask: Option<&'a Array2<bool>>,
    rates: &'a RatePair<'_, R>,
) -> Result<DecodeSplit<'a, R>, GroupError> {
    let behavior = behavior_3d(behavior, behavior_key)?;
    let decode_mask = decode_mask.map(|m| m.view());
    check_decode_split(
        (hi_key, ho_key),
        (behavior_key, mask_key),
        rates,
        behavior,
        decode_mask,
    )?;
    Ok(DecodeSplit {
        rates: rates.reborrow(),
        behavior,
        decode_mask,
    })
}

/// Rates, behaviour and decode mask of one split must agree on trials (and bins), naming the
/// keys if not.
fn check_decode_split<R: Rate>(
    (hi_key, ho_key): (&str, &str),
    (behavior_key, mask_key): (&'static str, &'static str),
    rates: &RatePair<'_, R>,
    behavior: ArrayView3<'_, f64>,
    decode_mask: Option<ArrayView2<'_, bool>>,
) -> Result<(), GroupError> {
    check_dims(
        (&format!("{hi_key}/{ho_key}"), &joined_shape(rates)),
        (behavior_key, behavior.shape()),
        &[(0, 0), (1, 1)],
    )?;
    match decode_mask {
        Some(m) if m.nrows() != rates.dim().0 => Err(GroupError::Shape {
            key: Key::target(mask_key),
            shape: m.shape().to_vec(),
            other: Key::submission(hi_key),
            other_shape: vec![rates.dim().0],
        }),
        _ => Ok(()),
    }
}

fn vel_r2_error(e: MetricError) -> GroupError {
    GroupError::Metric {
        metric: "vel R2",
        key: Key::submission(match &e {
            MetricError::NonFinite { what, .. } if what.starts_with("train") => {
                "train_rates_heldin/train_rates_heldout"
            }
            _ => "eval_rates_heldin/eval_rates_heldout",
        }),
        source: e,
    }
}

fn behavior_3d<'a>(
    b: Option<&'a ArrayD<f64>>,
    key: &'static str,
) -> Result<ArrayView3<'a, f64>, GroupError> {
    let b = b.ok_or(GroupError::Missing {
        key: Key::target(key),
    })?;
    b.view()
        .into_dimensionality::<Ix3>()
        .map_err(|_| GroupError::Rank {
            key: Key::target(key),
            shape: b.shape().to_vec(),
            ndim: b.ndim(),
            expected: 3,
        })
}

fn behavior_2d(target: &TargetGroup, n_eval: usize) -> Result<ArrayView2<'_, f64>, GroupError> {
    let key = "eval_behavior";
    let b = target.eval_behavior.as_ref().ok_or(GroupError::Missing {
        key: Key::target(key),
    })?;
    let v = b
        .view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| GroupError::Rank {
            key: Key::target(key),
            shape: b.shape().to_vec(),
            ndim: b.ndim(),
            expected: 2,
        })?;
    if v.nrows() != n_eval || v.ncols() < 5 {
        return Err(GroupError::Shape {
            key: Key::target(key),
            shape: v.shape().to_vec(),
            other: Key::submission("eval_rates_heldout"),
            other_shape: vec![n_eval],
        });
    }
    Ok(v)
}

/// The shape of a pair's two arrays joined on the neuron axis, as error messages name it.
fn joined_shape<R: Rate>(pair: &RatePair<'_, R>) -> Vec<usize> {
    let (n, t, k) = pair.dim();
    vec![n, t, k]
}

/// Checks that axis `a` of the submission array equals axis `b` of the target array, for each pair.
fn check_dims(
    (sub_key, sub): (&str, &[usize]),
    (tgt_key, tgt): (&str, &[usize]),
    axes: &[(usize, usize)],
) -> Result<(), GroupError> {
    let ok = axes
        .iter()
        .all(|&(a, b)| sub.get(a).is_some() && sub.get(a) == tgt.get(b));
    if ok {
        Ok(())
    } else {
        Err(GroupError::Shape {
            key: Key::submission(sub_key),
            shape: sub.to_vec(),
            other: Key::target(tgt_key),
            other_shape: tgt.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests;
