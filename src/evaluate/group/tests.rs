use super::*;
use ndarray::{s, Array2, Array3};

/// A small maze-like group: 6 train / 4 eval trials, T = 5, 3 held-in + 2 held-out neurons.
fn target() -> TargetGroup {
    let spikes = Array3::from_shape_fn((4, 5, 2), |(i, t, j)| ((i + 2 * t + j) % 3) as f64);
    let behavior = |n: usize| {
        ArrayD::from_shape_fn(ndarray::IxDyn(&[n, 5, 2]), |d| {
            ((d[0] * 3 + d[1] * 2 + d[2]) % 7) as f64 - 3.0
        })
    };
    TargetGroup {
        eval_spikes_heldout: spikes,
        train_behavior: Some(behavior(6)),
        eval_behavior: Some(behavior(4)),
        psth: Some(Array3::from_elem((2, 5, 5), 1.0)),
        eval_cond_idx: Some(vec![vec![0, 2], vec![1, 3]]),
        ..TargetGroup::default()
    }
}

fn pair(a: &Array3<f64>, n_heldin: usize) -> RatePair<'_> {
    RatePair::split(a.view(), n_heldin)
}

fn rates(n: usize, t: usize) -> Array3<f64> {
    Array3::from_shape_fn((n, t, 5), |(i, t, j)| {
        0.5 + ((i * 7 + t * 3 + j) % 5) as f64 * 0.3
    })
}

#[test]
fn scores_without_optional_keys_leave_those_metrics_out() {
    let (train, eval) = (rates(6, 5), rates(4, 5));
    let r = GroupRates {
        eval: pair(&eval, 3),
        train: Some(pair(&train, 3)),
        eval_forward: None,
    };
    let mut t = target();
    let m = evaluate_group(Dataset::McMaze, &t, &r).unwrap();
    assert!(m.vel_r2.is_some() && m.psth_r2.is_some() && m.fp_bps.is_none());
    t.psth = None;
    let m = evaluate_group(Dataset::McRtt, &t, &r).unwrap();
    let keys: Vec<&str> = m.entries().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["co-bps", "vel R2"]);
    // Forward rates without forward spikes in the target: no fp-bps either.
    let fwd = rates(4, 2);
    let r = GroupRates {
        eval_forward: Some(pair(&fwd, 3)),
        ..r
    };
    assert!(evaluate_group(Dataset::McRtt, &t, &r)
        .unwrap()
        .fp_bps
        .is_none());
    t.eval_spikes_heldin_forward = Some(Array3::ones((4, 2, 3)));
    t.eval_spikes_heldout_forward = Some(Array3::ones((4, 2, 2)));
    assert!(evaluate_group(Dataset::McRtt, &t, &r)
        .unwrap()
        .fp_bps
        .is_some());
}

#[test]
fn a_missing_needed_key_is_named() {
    let eval = rates(4, 5);
    let r = GroupRates {
        eval: pair(&eval, 3),
        train: None,
        eval_forward: None,
    };
    let err = evaluate_group(Dataset::McMaze, &target(), &r).unwrap_err();
    assert_eq!(
        err.to_string(),
        "submission `train_rates_heldin` is required but missing"
    );
    let mut t = target();
    t.eval_cond_idx = None;
    let train = rates(6, 5);
    let r = GroupRates {
        train: Some(pair(&train, 3)),
        ..r
    };
    let m = evaluate_group(Dataset::McMaze, &t, &r).unwrap();
    assert!(m.psth_r2.is_none() && m.vel_r2.is_some());
    assert_eq!(
        m.skipped,
        [
            SkippedMetric {
                metric: "psth R2",
                reason: "target has no `eval_cond_idx`".into()
            },
            SkippedMetric {
                metric: "fp-bps",
                reason: "target has no `eval_spikes_heldin_forward`".into()
            }
        ]
    );
}

#[test]
fn a_target_with_only_heldout_spikes_gets_co_bps_and_names_the_rest() {
    let (train, eval) = (rates(6, 5), rates(4, 5));
    let r = GroupRates {
        eval: pair(&eval, 3),
        train: Some(pair(&train, 3)),
        eval_forward: Some(pair(&eval, 3)),
    };
    let full = target();
    let partial = TargetGroup {
        eval_spikes_heldout: full.eval_spikes_heldout.clone(),
        ..TargetGroup::default()
    };
    let m = evaluate_group(Dataset::McMaze, &partial, &r).unwrap();
    let want = evaluate_group(Dataset::McMaze, &full, &r).unwrap().co_bps;
    assert_eq!(m.co_bps, want);
    assert_eq!(m.entries(), [("co-bps", want)]);
    let named: Vec<_> = m
        .skipped
        .iter()
        .map(|s| (s.metric, s.reason.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("vel R2", "target has no `train_behavior`"),
            ("psth R2", "target has no `psth`"),
            ("fp-bps", "target has no `eval_spikes_heldin_forward`"),
        ]
    );
}

#[test]
fn shape_mismatch_names_both_keys_and_shapes() {
    let (train, eval) = (rates(6, 5), rates(4, 5));
    let r = GroupRates {
        eval: pair(&eval, 2),
        train: Some(pair(&train, 2)),
        eval_forward: None,
    };
    let err = evaluate_group(Dataset::McMaze, &target(), &r).unwrap_err();
    assert_eq!(
        err.to_string(),
        "submission `eval_rates_heldout` has shape [4, 5, 3], which does not match \
         target `eval_spikes_heldout` with shape [4, 5, 2]"
    );
    let short_train = rates(6, 4);
    let r = GroupRates {
        eval: pair(&eval, 3),
        train: Some(pair(&short_train, 3)),
        ..r
    };
    let msg = evaluate_group(Dataset::McMaze, &target(), &r)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[6, 4, 5]") && msg.contains("`train_behavior`") && msg.contains("[6, 5, 2]"),
        "{msg}"
    );
}

#[test]
fn held_in_and_held_out_arrays_that_disagree_are_named() {
    let (train, eval) = (rates(6, 5), rates(4, 5));
    let fewer = rates(5, 5);
    let r = GroupRates {
        eval: pair(&eval, 3),
        train: Some(RatePair {
            heldin: train.slice(s![.., .., ..3]),
            heldout: fewer.slice(s![.., .., 3..]),
        }),
        eval_forward: None,
    };
    assert_eq!(
        evaluate_group(Dataset::McMaze, &target(), &r)
            .unwrap_err()
            .to_string(),
        "submission `train_rates_heldout` has shape [5, 5, 2], which does not match \
         submission `train_rates_heldin` with shape [6, 5, 3]"
    );
    let fwd = rates(4, 2);
    let r = GroupRates {
        train: Some(pair(&train, 3)),
        eval_forward: Some(pair(&fwd, 2)),
        ..r
    };
    assert_eq!(
        evaluate_group(Dataset::McMaze, &target(), &r)
            .unwrap_err()
            .to_string(),
        "submission `eval_rates_heldin_forward` has shape [4, 2, 2], which does not match \
         submission `eval_rates_heldin` with shape [4, 5, 3]"
    );
}

#[test]
fn negative_heldout_rates_are_rejected_naming_the_key() {
    let (train, mut eval) = (rates(6, 5), rates(4, 5));
    eval[[1, 2, 4]] = -1.0;
    let r = GroupRates {
        eval: pair(&eval, 3),
        train: Some(pair(&train, 3)),
        eval_forward: None,
    };
    let err = evaluate_group(Dataset::McMaze, &target(), &r).unwrap_err();
    assert_eq!(
        err.to_string(),
        "co-bps on submission `eval_rates_heldout`: negative rate -1 at index [1, 2, 1]"
    );
}

/// The reference floors zero held-out rates in place during co-bps, so later metrics see 1e-9
/// unless the held-out spikes hold NaN (then it worked on a copy).
#[test]
fn zero_heldout_rates_reach_later_metrics_as_1e_minus_9() {
    let (train, mut eval) = (rates(6, 5), rates(4, 5));
    eval.slice_mut(s![.., .., 4]).fill(0.0);
    let mut floored = eval.clone();
    floored.mapv_inplace(|v| if v == 0.0 { ZERO_RATE } else { v });
    let score = |e: &Array3<f64>, t: &TargetGroup| {
        let r = GroupRates {
            eval: pair(e, 3),
            train: Some(pair(&train, 3)),
            eval_forward: None,
        };
        evaluate_group(Dataset::McMaze, t, &r).unwrap()
    };
    // A PSTH whose last neuron is silent: predicted exactly (R² 1 for that neuron) only by
    // rates that stayed exactly zero.
    let mut t = target();
    let mut psth = Array3::from_elem((2, 5, 5), 1.0);
    psth[[0, 1, 0]] = 0.5;
    psth.slice_mut(s![.., .., 4]).fill(0.0);
    t.psth = Some(psth);
    assert_eq!(score(&eval, &t), score(&floored, &t));

    // NaN-padded spikes (EvalAI dmfc-style targets): the reference floored a copy, so the
    // PSTH prediction keeps its exact zeros.
    t.eval_spikes_heldout[[3, 4, 0]] = f64::NAN;
    let raw = score(&eval, &t);
    let fl = score(&floored, &t);
    assert_eq!(raw.co_bps, fl.co_bps);
    assert!(raw.psth_r2.unwrap() > fl.psth_r2.unwrap());
}

#[test]
fn dmfc_uses_tp_corr_on_nan_padded_targets() {
    // Front-padded target: the last bins of trial i are NaN (outside set→go).
    let n = 6;
    let mut spikes = Array3::from_shape_fn((n, 6, 2), |(i, t, j)| ((i + t + j) % 2) as f64);
    for i in 0..n {
        for t in 6 - i % 3..6 {
            spikes.slice_mut(s![i, t, ..]).fill(f64::NAN);
        }
    }
    let behavior = Array2::from_shape_fn((n, 5), |(i, c)| match c {
        0 => (i % 2) as f64,
        4 => 100.0 + (i * 37 % 11) as f64,
        _ => 0.0,
    });
    let t = TargetGroup {
        eval_spikes_heldout: spikes,
        eval_behavior: Some(behavior.into_dyn()),
        ..TargetGroup::default()
    };
    let eval = Array3::from_shape_fn((n, 6, 4), |(i, t, j)| {
        0.1 + ((i * 5 + t * t + j) % 7) as f64
    });
    let r = GroupRates {
        eval: pair(&eval, 2),
        train: None,
        eval_forward: None,
    };
    let m = evaluate_group(Dataset::DmfcRsg, &t, &r).unwrap();
    let keys: Vec<&str> = m.entries().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["co-bps", "tp corr"]);
    assert!(m.co_bps.is_finite() && m.tp_corr.unwrap().abs() <= 1.0);
}
