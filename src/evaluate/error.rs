//! Error types of the evaluator, from one metric up to a pair of files.

use std::path::PathBuf;

use crate::h5::H5Error;

/// Why a metric could not be computed on in-memory arrays.
///
/// Array roles are the metric's own argument names (`rates`, `spikes`, …); the group evaluation
/// turns them into the HDF5 key names a user can look up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("{what}: shape {left:?} does not match {right:?}")]
    Shape {
        what: String,
        left: Vec<usize>,
        right: Vec<usize>,
    },
    #[error("NaN rate at index {index:?} where the spike count is defined")]
    NanRate { index: Vec<usize> },
    #[error("negative rate {value} at index {index:?}")]
    NegativeRate { index: Vec<usize>, value: f64 },
    #[error("{what} holds NaN or infinity at index {index:?}")]
    NonFinite {
        what: &'static str,
        index: Vec<usize>,
    },
    #[error("{what}: {n} rows, at least {need} needed")]
    TooFewRows {
        what: &'static str,
        n: usize,
        need: usize,
    },
    #[error(
        "condition {condition}: trial index {index} is out of range for {n_trials} eval trials"
    )]
    TrialIndex {
        condition: usize,
        index: i64,
        n_trials: usize,
    },
    #[error(
        "condition {condition}: the predicted PSTH is NaN or infinite at time bin {bin} where the target \
         PSTH is defined"
    )]
    NanPrediction { condition: usize, bin: usize },
    #[error(
        "condition {condition:?} (is_eye, theta, is_short) has {n} eval trial(s); \
         tp corr needs at least 2"
    )]
    TooFewTrials { condition: Vec<f64>, n: usize },
}

/// Which file of a target/submission pair a key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Target,
    Submission,
}

/// A key of one group, with the file it belongs to, so messages say where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub side: Side,
    pub name: String,
}

impl Key {
    pub(crate) fn target(name: impl Into<String>) -> Self {
        Self {
            side: Side::Target,
            name: name.into(),
        }
    }

    pub(crate) fn submission(name: impl Into<String>) -> Self {
        Self {
            side: Side::Submission,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = match self.side {
            Side::Target => "target",
            Side::Submission => "submission",
        };
        write!(f, "{side} `{}`", self.name)
    }
}

/// Why one dataset group could not be scored, naming the keys involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GroupError {
    #[error("{key} is required but missing")]
    Missing { key: Key },
    #[error("{key} has shape {shape:?}, which does not match {other} with shape {other_shape:?}")]
    Shape {
        key: Key,
        shape: Vec<usize>,
        other: Key,
        other_shape: Vec<usize>,
    },
    #[error("{key} has {ndim} dimensions (shape {shape:?}), expected {expected}")]
    Rank {
        key: Key,
        shape: Vec<usize>,
        ndim: usize,
        expected: usize,
    },
    #[error("{metric} on {key}: {source}")]
    Metric {
        metric: &'static str,
        key: Key,
        #[source]
        source: MetricError,
    },
}

/// Why a target/submission pair could not be evaluated, naming both files and the group.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    H5(#[from] H5Error),
    #[error("{}: group `{group}`: {source}", file.display())]
    InFile {
        file: PathBuf,
        group: String,
        #[source]
        source: Box<GroupError>,
    },
    #[error(
        "group `{group}` of submission {} scored against target {}: {source}",
        submission.display(),
        target.display()
    )]
    Group {
        target: PathBuf,
        submission: PathBuf,
        group: String,
        #[source]
        source: Box<GroupError>,
    },
}
