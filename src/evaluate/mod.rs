//! NLB'21 evaluation, matching nlb_tools' `evaluate` (spec §10) to ~1e-14 on the fixtures.
//!
//! Three layers, each usable on its own:
//!
//! * [`metrics`] and [`velocity_r2`]: pure functions on arrays (bits/spike, vel R2, PSTH R2,
//!   tp corr), for a training loop that scores its own predictions in memory; rates come as a
//!   held-in/held-out [`RatePair`] of f32 or f64, so neither a model's nor a file's layout is
//!   copied;
//! * [`evaluate_group`]: one dataset group from a [`TargetGroup`] and a model's [`GroupRates`],
//!   checking shapes and naming the offending keys;
//! * [`evaluate_files`]: a target file and a submission file, visited and reported like the
//!   reference ([`Report`] for its JSON, [`format_table`] for people).
//!
//! For synthetic data, [`truth_scores`] and [`evaluate_files_with_truth`] add the submission's
//! R² against the true rates (`rate R2`) and the co-bps the true rates reach (`truth co-bps`).
//!
//! Files are read only through [`crate::h5`]; nothing here depends on the model.

mod error;
mod files;
mod group;
pub mod metrics;
mod rates;
mod report;
mod ridge;
mod truth;

pub use error::{EvalError, GroupError, Key, MetricError, Side};
pub use files::{evaluate_files, Submission, SubmissionGroup, BIN_WIDTHS};
pub use group::{
    evaluate_group, evaluate_group_with_decoder, fit_group_decoder, Dataset, GroupRates, Metrics,
    TargetGroup,
};
pub use metrics::{
    bits_per_spike, fp_bps, pearson_r, poisson_nll, psth_r2, r2_score, tp_corr, ZERO_RATE,
};
pub use rates::{Rate, RatePair};
pub use report::{format_table, format_table_with_truth, skipped_notes, DatasetResult, Report};
pub use ridge::{alphas, velocity_r2, DecodeSplit, VelocityDecoder, N_FOLDS};
pub use truth::{evaluate_files_with_truth, truth_scores, TruthError, TruthFileError, TruthScores};
