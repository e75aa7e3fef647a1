//! Scoring against known rates: for a synthetic split, `preprocess` writes the expected counts of
//! the generating model (`truth.h5`, in submission layout), and these scores read a submission
//! against them.
//!
//! * `rate R2`: how close the submission's eval rates are to the true ones, over eval trials ×
//!   observed bins, held-in and held-out neurons together;
//! * `truth co-bps`: the co-bps the true rates themselves reach on the same held-out spikes, the
//!   ceiling to read a submission's co-bps against (Poisson noise keeps it well below "perfect").

use std::path::{Path, PathBuf};

use ndarray::{s, ArrayView3, Axis};

use super::error::{EvalError, Key, MetricError};
use super::files::{visit_files, Submission};
use super::group::{GroupRates, TargetGroup};
use super::metrics::{bits_per_spike, r2_from_sums};
use super::rates::Rate;
use super::report::DatasetResult;
use crate::h5::H5File;

/// The truth scores of one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruthScores {
    /// R² of the submission's eval rates against the true rates (uniform over neurons, neurons
    /// whose true rate is constant left out).
    pub rate_r2: f64,
    /// co-bps of the true rates on the target's eval held-out spikes.
    pub truth_co_bps: f64,
}

impl TruthScores {
    /// `(key, value)` pairs, as they extend the report and the table.
    pub fn entries(&self) -> [(&'static str, f64); 2] {
        [
            ("rate R2", self.rate_r2),
            ("truth co-bps", self.truth_co_bps),
        ]
    }
}

/// Why truth scores could not be computed on in-memory arrays.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TruthError {
    #[error("{key} has shape {shape:?}, which does not match {other} with shape {other_shape:?}")]
    Shape {
        key: String,
        shape: Vec<usize>,
        other: String,
        other_shape: Vec<usize>,
    },
    #[error("truth co-bps on truth `eval_rates_heldout`: {0}")]
    CoBps(#[source] MetricError),
}

/// Why a submission could not be scored against a truth file, naming the file and group.
#[derive(Debug, thiserror::Error)]
pub enum TruthFileError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("truth file {}: group `{group}`: {source}", file.display())]
    Truth {
        file: PathBuf,
        group: String,
        #[source]
        source: Box<TruthError>,
    },
}

fn shape_err(key: String, shape: &[usize], other: String, other_shape: &[usize]) -> TruthError {
    TruthError::Shape {
        key,
        shape: shape.to_vec(),
        other,
        other_shape: other_shape.to_vec(),
    }
}

/// Truth scores of one group: `rates` (a submission's) and `truth` (the true rates, same
/// layout) against the target's eval held-out spikes, whose non-NaN bins are the observed ones.
///
/// Shapes are checked against the target first, naming the keys involved.
pub fn truth_scores<R: Rate, S: Rate>(
    target: &TargetGroup,
    rates: &GroupRates<'_, R>,
    truth: &GroupRates<'_, S>,
) -> Result<TruthScores, TruthError> {
    let spikes = target.eval_spikes_heldout.view();
    let target_key = || Key::target("eval_spikes_heldout").to_string();
    for (side, heldout) in [
        ("submission", rates.eval.heldout.shape()),
        ("truth", truth.eval.heldout.shape()),
    ] {
        if heldout != spikes.shape() {
            return Err(shape_err(
                format!("{side} `eval_rates_heldout`"),
                heldout,
                target_key(),
                spikes.shape(),
            ));
        }
    }
    let (held_in, truth_held_in) = (rates.eval.heldin.shape(), truth.eval.heldin.shape());
    if truth_held_in != held_in {
        return Err(shape_err(
            "truth `eval_rates_heldin`".into(),
            truth_held_in,
            "submission `eval_rates_heldin`".into(),
            held_in,
        ));
    }
    let truth_co_bps = bits_per_spike(truth.eval.heldout, spikes).map_err(TruthError::CoBps)?;
    Ok(TruthScores {
        // Only eval rates, and only with `--truth`: a joined f64 copy keeps this simple.
        rate_r2: rate_r2(
            spikes,
            rates.eval.to_joined_f64().view(),
            truth.eval.to_joined_f64().view(),
        ),
        truth_co_bps,
    })
}

/// sklearn's `r2_score(truth, pred)` with rows = (trial, bin) where every held-out spike count
/// is defined and columns = neurons, averaged uniformly over the neurons whose truth varies.
/// NaN with fewer than two rows or no varying neuron.
fn rate_r2(
    spikes: ArrayView3<'_, f64>,
    pred: ArrayView3<'_, f64>,
    truth: ArrayView3<'_, f64>,
) -> f64 {
    let n_cols = truth.len_of(Axis(2));
    let observed = |i: usize, j: usize| spikes.slice(s![i, j, ..]).iter().all(|v| !v.is_nan());
    let rows: Vec<(usize, usize)> = (0..truth.len_of(Axis(0)))
        .flat_map(|i| (0..truth.len_of(Axis(1))).map(move |j| (i, j)))
        .filter(|&(i, j)| observed(i, j))
        .collect();
    if rows.len() < 2 || n_cols == 0 {
        return f64::NAN;
    }
    let mut sum = vec![0.0; n_cols];
    let mut ss_res = vec![0.0; n_cols];
    let mut constant = vec![true; n_cols];
    let (i0, j0) = rows[0];
    for &(i, j) in &rows {
        for c in 0..n_cols {
            let (a, b) = (truth[[i, j, c]], pred[[i, j, c]]);
            sum[c] += a;
            ss_res[c] += (a - b) * (a - b);
            constant[c] &= a == truth[[i0, j0, c]];
        }
    }
    let n = rows.len() as f64;
    let mut ss_tot = vec![0.0; n_cols];
    for &(i, j) in &rows {
        for c in 0..n_cols {
            let d = truth[[i, j, c]] - sum[c] / n;
            ss_tot[c] += d * d;
        }
    }
    let scores: Vec<f64> = (0..n_cols)
        .filter(|&c| !constant[c] && ss_tot[c] != 0.0)
        .map(|c| r2_from_sums(ss_res[c], ss_tot[c]))
        .collect();
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().sum::<f64>() / scores.len() as f64
}

/// [`super::evaluate_files`], plus, with `truth`, the truth scores of every scored group that
/// the truth file (`truth.h5` of a synthetic val split) also has: one entry per result, `None`
/// where there is none. Without `truth` the results are exactly `evaluate_files`'.
pub fn evaluate_files_with_truth(
    target: &Path,
    submission: &Path,
    truth: Option<&Path>,
) -> Result<(Vec<DatasetResult>, Vec<Option<TruthScores>>), TruthFileError> {
    let truth_file = truth
        .map(|p| H5File::open(p).map_err(EvalError::from))
        .transpose()?;
    let mut scores = Vec::new();
    let results = visit_files(target, submission, |result, t, s| {
        let group = result.group();
        let Some(tf) = truth_file.as_ref().filter(|f| f.has(&group)) else {
            scores.push(None);
            return Ok(());
        };
        let truth_rates = Submission::read(tf, &group, false)?.into_f64();
        let truth_rates = truth_rates.rates();
        let score = match s {
            Submission::F32(s) => truth_scores(t, &s.rates(), &truth_rates),
            Submission::F64(s) => truth_scores(t, &s.rates(), &truth_rates),
        }
        .map_err(|source| TruthFileError::Truth {
            file: tf.path().to_path_buf(),
            group: group.clone(),
            source: Box::new(source),
        })?;
        scores.push(Some(score));
        Ok::<(), TruthFileError>(())
    })?;
    if let Some(tf) = &truth_file {
        if !results.is_empty() && scores.iter().all(Option::is_none) {
            tracing::warn!(
                "{}: none of the scored groups is in the truth file; no truth scores",
                tf.path().display()
            );
        }
    }
    Ok((results, scores))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::RatePair;
    use ndarray::Array3;

    fn target(spikes: Array3<f64>) -> TargetGroup {
        TargetGroup {
            eval_spikes_heldout: spikes,
            ..Default::default()
        }
    }

    fn rates(a: &Array3<f64>, n_heldin: usize) -> GroupRates<'_> {
        GroupRates {
            eval: RatePair::split(a.view(), n_heldin),
            train: None,
            eval_forward: None,
        }
    }

    #[test]
    fn truth_scores_itself_one_and_its_co_bps_matches_bits_per_spike() {
        // 2 trials × 3 bins × (1 held-in + 2 held-out); bin 2 of trial 1 unobserved.
        let truth = Array3::from_shape_fn((2, 3, 3), |(i, j, c)| 0.5 + (i + 2 * j + c) as f64);
        let mut spikes = Array3::from_shape_fn((2, 3, 2), |(i, j, c)| ((i + j + c) % 3) as f64);
        spikes[[1, 2, 0]] = f64::NAN;
        spikes[[1, 2, 1]] = f64::NAN;
        let t = target(spikes.clone());
        let s = truth_scores(&t, &rates(&truth, 1), &rates(&truth, 1)).unwrap();
        assert_eq!(s.rate_r2, 1.0);
        let want = bits_per_spike(truth.slice(s![.., .., 1..]), spikes.view()).unwrap();
        assert_eq!(s.truth_co_bps, want);
    }

    #[test]
    fn rate_r2_is_sklearn_r2_over_observed_bins_skipping_flat_neurons() {
        // One trial, 3 bins, 2 neurons: neuron 1's truth is flat and is left out.
        let truth = Array3::from_shape_vec((1, 3, 2), vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0]).unwrap();
        let pred = Array3::from_shape_vec((1, 3, 2), vec![1.0, 0.0, 2.0, 0.0, 4.0, 0.0]).unwrap();
        let spikes = Array3::zeros((1, 3, 1));
        // Neuron 0: ss_res = 1, ss_tot = 2 → 0.5.
        assert_eq!(rate_r2(spikes.view(), pred.view(), truth.view()), 0.5);
        // Bin 2 unobserved: the two remaining bins predict exactly.
        let mut spikes = spikes;
        spikes[[0, 2, 0]] = f64::NAN;
        assert_eq!(rate_r2(spikes.view(), pred.view(), truth.view()), 1.0);
    }

    #[test]
    fn mismatched_truth_shapes_name_the_keys() {
        let spikes = Array3::zeros((2, 3, 2));
        let sub = Array3::ones((2, 3, 3));
        let short = Array3::ones((2, 2, 3));
        let err = truth_scores(&target(spikes.clone()), &rates(&sub, 1), &rates(&short, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("truth `eval_rates_heldout`")
                && err.contains("[2, 2, 2]")
                && err.contains("target `eval_spikes_heldout`")
                && err.contains("[2, 3, 2]"),
            "{err}"
        );
        let wide = Array3::ones((2, 3, 4));
        let err = truth_scores(&target(spikes), &rates(&sub, 1), &rates(&wide, 2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("truth `eval_rates_heldin`"), "{err}");
    }
}
