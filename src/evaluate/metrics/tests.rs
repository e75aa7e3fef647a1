use super::*;
use ndarray::{array, Array3};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Side-by-side rates as a pair, split in the middle of the neuron axis.
fn whole(a: &Array3<f64>) -> RatePair<'_, f64> {
    RatePair::split(a.view(), a.shape()[2] / 2)
}

#[test]
fn fp_bps_of_the_two_groups_is_bits_per_spike_of_them_joined() {
    let rates = Array3::from_shape_fn((3, 4, 5), |(i, t, j)| 0.2 + 0.1 * ((i + t * j) % 4) as f32);
    let spikes = Array3::from_shape_fn((3, 4, 5), |(i, t, j)| ((i * 3 + t + j) % 3) as f64);
    let (sp_in, sp_out) = spikes.view().split_at(Axis(2), 2);
    let got = fp_bps(RatePair::split(rates.view(), 2), sp_in, sp_out).unwrap();
    let want = bits_per_spike(rates.view(), spikes.view()).unwrap();
    assert!(close(got, want, 1e-14), "{got} vs {want}");
    // A bad held-out rate is located in the joined neuron order.
    let mut bad = rates.clone();
    bad[[1, 2, 3]] = -1.0;
    assert_eq!(
        fp_bps(RatePair::split(bad.view(), 2), sp_in, sp_out),
        Err(MetricError::NegativeRate {
            index: vec![1, 2, 3],
            value: -1.0
        })
    );
}

#[test]
fn ln_gamma_matches_known_values() {
    assert_eq!(ln_gamma(1.0), 0.0);
    assert_eq!(ln_gamma(2.0), 0.0);
    assert!(close(ln_gamma(11.0), 3_628_800f64.ln(), 1e-12));
    assert!(close(
        ln_gamma(0.5),
        std::f64::consts::PI.sqrt().ln(),
        1e-14
    ));
    assert!(close(ln_gamma(101.0), 363.739_375_555_563_5, 1e-10));
    assert!(close(
        ln_gamma(3.5),
        (3.323_350_970_447_842_6f64).ln(),
        1e-14
    ));
}

#[test]
fn nll_by_hand() {
    let r = array![[0.5, 2.0]];
    let n = array![[1.0, 3.0]];
    let want = (0.5 - 0.5f64.ln()) + (2.0 - 3.0 * 2f64.ln() + 6f64.ln());
    assert!(close(poisson_nll(r.view(), n.view()).unwrap(), want, 1e-14));
}

#[test]
fn bps_of_the_null_model_is_zero_and_of_truth_positive() {
    let spikes = array![[[0.0, 1.0], [2.0, 1.0]], [[0.0, 3.0], [2.0, 1.0]]];
    let null = array![[[1.0, 1.5], [1.0, 1.5]], [[1.0, 1.5], [1.0, 1.5]]];
    assert!(close(
        bits_per_spike(null.view(), spikes.view()).unwrap(),
        0.0,
        1e-15
    ));
    let better = array![[[0.1, 1.0], [1.9, 1.0]], [[0.1, 2.9], [1.9, 1.0]]];
    assert!(bits_per_spike(better.view(), spikes.view()).unwrap() > 0.0);
}

#[test]
fn bps_by_hand_matches_the_nll_difference() {
    let spikes = array![[1.0, 0.0], [3.0, 2.0], [0.0, 1.0]];
    let rates = array![[0.7, 0.2], [2.5, 1.5], [0.3, 0.9]];
    let lam = array![[4.0 / 3.0, 1.0], [4.0 / 3.0, 1.0], [4.0 / 3.0, 1.0]];
    let want = (poisson_nll(lam.view(), spikes.view()).unwrap()
        - poisson_nll(rates.view(), spikes.view()).unwrap())
        / 7.0
        / std::f64::consts::LN_2;
    let got = bits_per_spike(rates.view(), spikes.view()).unwrap();
    assert!(close(got, want, 1e-14), "{got} vs {want}");
}

#[test]
fn nan_spikes_are_removed_with_their_rates() {
    let spikes = array![[1.0, f64::NAN], [3.0, 2.0], [0.0, 1.0]];
    let rates = array![[0.7, f64::NAN], [2.5, 1.5], [0.3, 0.9]];
    // Null rates: neuron 0 averages three counts, neuron 1 only its two defined ones.
    let lam = [4.0 / 3.0, 1.5];
    let mut gain = 0.0;
    for (r, n, j) in [
        (0.7, 1.0, 0),
        (2.5, 3.0, 0),
        (0.3, 0.0, 0),
        (1.5, 2.0, 1),
        (0.9, 1.0, 1),
    ] {
        let l: f64 = lam[j];
        gain += (l - n * l.ln()) - (r - n * f64::ln(r));
    }
    let want = gain / 7.0 / std::f64::consts::LN_2;
    let got = bits_per_spike(rates.view(), spikes.view()).unwrap();
    assert!(close(got, want, 1e-14), "{got} vs {want}");
    assert!(poisson_nll(rates.view(), spikes.view())
        .unwrap()
        .is_finite());
}

#[test]
fn zero_rates_become_1e_minus_9() {
    let spikes = array![[0.0], [1.0]];
    let zero = array![[0.0], [1.0]];
    let tiny = array![[ZERO_RATE], [1.0]];
    assert_eq!(
        bits_per_spike(zero.view(), spikes.view()).unwrap(),
        bits_per_spike(tiny.view(), spikes.view()).unwrap()
    );
    assert_eq!(
        poisson_nll(zero.view(), spikes.view()).unwrap(),
        poisson_nll(tiny.view(), spikes.view()).unwrap()
    );
    // A silent neuron's null rate is zero and is floored the same way: finite result.
    let silent = array![[0.0, 1.0], [0.0, 2.0]];
    let rates = array![[0.1, 1.0], [0.1, 2.0]];
    assert!(bits_per_spike(rates.view(), silent.view())
        .unwrap()
        .is_finite());
}

#[test]
fn negative_and_nan_rates_are_rejected_with_their_index() {
    let spikes = array![[1.0, 0.0], [2.0, 1.0]];
    let neg = array![[1.0, 0.5], [-0.25, 1.0]];
    assert_eq!(
        bits_per_spike(neg.view(), spikes.view()),
        Err(MetricError::NegativeRate {
            index: vec![1, 0],
            value: -0.25
        })
    );
    let nan = array![[1.0, f64::NAN], [2.0, 1.0]];
    assert_eq!(
        poisson_nll(nan.view(), spikes.view()),
        Err(MetricError::NanRate { index: vec![0, 1] })
    );
    // …but a NaN rate where the spike count is NaN is fine.
    let spikes = array![[1.0, f64::NAN], [2.0, 1.0]];
    assert!(bits_per_spike(nan.view(), spikes.view()).is_ok());
}

#[test]
fn shape_mismatch_is_an_error() {
    let a = Array3::<f64>::zeros((2, 3, 4));
    let b = Array3::<f64>::zeros((2, 3, 5));
    let err = bits_per_spike(a.view(), b.view()).unwrap_err();
    assert!(err.to_string().contains("[2, 3, 4]") && err.to_string().contains("[2, 3, 5]"));
}

#[test]
fn r2_uniform_average_and_zero_variance_outputs() {
    let t = array![[1.0, 5.0, 2.0], [2.0, 5.0, 2.0], [3.0, 5.0, 2.0]];
    let p = array![[1.0, 5.0, 2.0], [2.0, 5.0, 2.5], [4.0, 5.0, 2.0]];
    // Column 0: 1 − 1/2; column 1 constant and exact: 1; column 2 constant, missed: 0.
    assert!(close(
        r2_score(t.view(), p.view()),
        (0.5 + 1.0 + 0.0) / 3.0,
        1e-15
    ));
    assert!(r2_score(t.slice(ndarray::s![..1, ..]), p.slice(ndarray::s![..1, ..])).is_nan());
}

#[test]
fn pearson_conventions() {
    assert!(close(
        pearson_r(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]),
        0.993_399_267_798_783,
        1e-14
    ));
    assert_eq!(pearson_r(&[1.0, 2.0], &[5.0, 3.0]), -1.0);
    assert!(pearson_r(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
}

#[test]
fn psth_r2_undoes_jitter_and_skips_padding() {
    // One condition, two trials, T = 4, one neuron; the PSTH is padded (NaN) in its last row.
    let psth = Array3::from_shape_vec((1, 4, 1), vec![1.0, 2.0, 3.0, f64::NAN]).unwrap();
    // Trial 0 is unjittered; trial 1 lags by one bin and has jitter −1, which moves it back.
    let rates =
        Array3::from_shape_vec((2, 4, 1), vec![1.0, 2.0, 3.0, 9.0, 9.0, 1.0, 2.0, 3.0]).unwrap();
    let exact = psth_r2(psth.view(), whole(&rates), &[vec![0, 1]], Some(&[0, -1])).unwrap();
    assert_eq!(exact, 1.0);
    // Without undoing the jitter the fit is worse.
    let raw = psth_r2(psth.view(), whole(&rates), &[vec![0, 1]], None).unwrap();
    assert!(raw < 1.0);
    // A positive jitter shifts NaN into the first scored row: an error, as in nlb_tools.
    let err = psth_r2(psth.view(), whole(&rates), &[vec![0, 1]], Some(&[0, 1])).unwrap_err();
    assert_eq!(
        err,
        MetricError::NanPrediction {
            condition: 0,
            bin: 0
        }
    );
    // Conditions without eval trials are skipped; out-of-range trials are errors.
    let two = ndarray::concatenate![Axis(0), psth, psth];
    assert_eq!(
        psth_r2(
            two.view(),
            whole(&rates),
            &[vec![], vec![0, 1]],
            Some(&[0, -1])
        )
        .unwrap(),
        1.0
    );
    assert!(matches!(
        psth_r2(psth.view(), whole(&rates), &[vec![2]], None),
        Err(MetricError::TrialIndex { index: 2, .. })
    ));
}

#[test]
fn tp_corr_by_hand() {
    // Four trials, two conditions of two trials each (so each r is ±1), one outlier (NaN row).
    let t_len = 3;
    let mut rates = Array3::<f64>::zeros((5, t_len, 1));
    let mut spikes = Array3::<f64>::zeros((5, t_len, 1));
    for (i, step) in [1.0, 2.0, 3.0, 1.0, 7.0].iter().enumerate() {
        for t in 0..t_len {
            rates[[i, t, 0]] = step * t as f64;
        }
    }
    // Trial 1's last bin is padding: its speed comes from the first step only.
    spikes[[1, 2, 0]] = f64::NAN;
    rates[[1, 2, 0]] = 1e6;
    let nan = f64::NAN;
    let behavior = array![
        [0.0, 1.0, 1.0, 0.0, 10.0],
        [0.0, 1.0, 1.0, 0.0, 20.0],
        [1.0, 0.0, 0.0, 0.0, 30.0],
        [1.0, 0.0, 0.0, 0.0, 20.0],
        [nan, nan, nan, nan, nan],
    ];
    let r = tp_corr(spikes.view(), whole(&rates), behavior.view()).unwrap();
    // Condition A: speeds 1, 2 vs tp 10, 20 → +1; condition B: speeds 3, 1 vs 30, 20 → +1.
    assert_eq!(r, 1.0);
    let lone = behavior.slice(ndarray::s![..3, ..]).to_owned();
    let err = tp_corr(
        spikes.slice(ndarray::s![..3, .., ..]),
        RatePair::split(rates.slice(ndarray::s![..3, .., ..]), 0),
        lone.view(),
    )
    .unwrap_err();
    assert!(matches!(err, MetricError::TooFewTrials { n: 1, .. }));
}
