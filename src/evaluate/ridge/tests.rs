use super::*;
use ndarray::{array, Array3};

struct Dense {
    x: Array2<f64>,
    y: Array2<f64>,
}

impl RowSource for Dense {
    fn n_rows(&self) -> usize {
        self.x.nrows()
    }
    fn n_features(&self) -> usize {
        self.x.ncols()
    }
    fn n_outputs(&self) -> usize {
        self.y.ncols()
    }
    fn fill(
        &self,
        start: usize,
        x_shift: &[f64],
        y_shift: &[f64],
        mut x: ArrayViewMut2<'_, f64>,
        mut y: ArrayViewMut2<'_, f64>,
    ) {
        let m = x.nrows();
        x.assign(&self.x.slice(s![start..start + m, ..]));
        y.assign(&self.y.slice(s![start..start + m, ..]));
        x -= &ndarray::aview1(x_shift);
        y -= &ndarray::aview1(y_shift);
    }
    fn non_finite(&self, row: usize, col: usize) -> MetricError {
        MetricError::NonFinite {
            what: "x",
            index: vec![row, col],
        }
    }
}

#[test]
fn alpha_grid_is_numpy_logspace() {
    let a = alphas();
    assert_eq!(a[0], 1e-4);
    assert_eq!(a[2], 1e-3);
    assert_eq!(a[8], 1.0);
    assert!((a[1] - 10f64.powf(-3.5)).abs() < 1e-20);
}

#[test]
fn folds_are_contiguous_and_the_first_ones_larger() {
    assert_eq!(
        fold_bounds(13, 5),
        vec![(0, 3), (3, 6), (6, 9), (9, 11), (11, 13)]
    );
    assert_eq!(fold_bounds(10, 5)[4], (8, 10));
}

/// Closed-form ridge with intercept on a tiny problem, solved by hand.
#[test]
fn ridge_matches_the_centred_normal_equations() {
    // One feature: W = Σxc·yc / (Σxc² + α), b = ȳ − W·x̄.
    let x = array![[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]];
    let y = array![[1.0], [2.9], [5.2], [7.1], [8.8], [11.0]];
    let src = Dense {
        x: x.clone(),
        y: y.clone(),
    };
    let alpha = 0.5;
    let xm = 2.5;
    let ym = y.sum() / 6.0;
    let sxy: f64 = (0..6).map(|i| (x[[i, 0]] - xm) * (y[[i, 0]] - ym)).sum();
    let sxx: f64 = (0..6).map(|i| (x[[i, 0]] - xm).powi(2)).sum();
    let w = sxy / (sxx + alpha);
    let b = ym - w * xm;
    let fit = fit_ridge_cv(&src, &[alpha]).unwrap();
    let (coef, intercept) = &fit.model;
    for i in 0..6 {
        let want = w * x[[i, 0]] + b;
        let got = (x[[i, 0]] - fit.x_shift[0]) * coef[[0, 0]] + intercept[0] + fit.y_shift[0];
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}

/// The one-pass chunked scoring equals sklearn's r2_score on materialised predictions.
#[test]
fn chunked_scores_match_r2_score() {
    let n = 2 * CHUNK + 77;
    let x = Array2::from_shape_fn((n, 3), |(i, j)| {
        ((i * (j + 2)) % 17) as f64 * 0.3 + j as f64
    });
    let y = Array2::from_shape_fn((n, 2), |(i, j)| {
        x[[i, 0]] * (j as f64 + 1.0) - x[[i, 2]] + ((i * 7) % 5) as f64 + 40.0
    });
    let src = Dense { x, y };
    let models: Vec<Model> = [0.5, -1.0]
        .iter()
        .map(|&c| {
            (
                Array2::from_elem((3, 2), c),
                Array1::from_vec(vec![0.1, -0.2]),
            )
        })
        .collect();
    let shifts = (vec![1.0, 2.0, 3.0], vec![40.0, 41.0]);
    let got = score_models(&src, (0, n), (&shifts.0, &shifts.1), &models, true).unwrap();
    for ((coef, b), got) in models.iter().zip(got) {
        let xs = &src.x - &ndarray::aview1(&shifts.0);
        let ys = &src.y - &ndarray::aview1(&shifts.1);
        let pred = xs.dot(coef) + b;
        let want = super::super::metrics::r2_score(ys.view(), pred.view());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}

/// A fold's scores from its sums equal the scores of its materialised predictions, for
/// well-fitting and badly-fitting models alike, on data far from the shift.
#[test]
fn scores_from_sums_match_scores_on_the_rows() {
    let n = 2 * CHUNK + 77;
    let x = Array2::from_shape_fn((n, 4), |(i, j)| {
        ((i * (j + 2)) % 17) as f64 * 0.3 + j as f64 + 0.01 * (i % 5) as f64
    });
    let y = Array2::from_shape_fn((n, 2), |(i, j)| {
        x[[i, 0]] * (j as f64 + 1.0) - x[[i, 2]] + 0.05 * ((i * 7) % 5) as f64 + 40.0
    });
    let src = Dense { x, y };
    let shifts = (vec![1.0, 2.0, 3.0, 4.0], vec![30.0, 55.0]);
    let (sums, spread) = fold_sums(&src, (0, n), (&shifts.0, &shifts.1)).unwrap();
    let mut models = sums.solve(&alphas());
    models.push((
        Array2::from_elem((4, 2), 0.7),
        Array1::from_vec(vec![3.0, -2.0]),
    ));
    let want = score_models(&src, (0, n), (&shifts.0, &shifts.1), &models, true).unwrap();
    let got = score_from_sums(&sums, &spread, &models);
    assert!(want[0] > 0.99 && want[models.len() - 1] < 0.0, "{want:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn cv_prefers_small_alpha_on_clean_data_and_first_alpha_on_ties() {
    let n = 40;
    let x = Array2::from_shape_fn((n, 2), |(i, j)| ((i * (j + 3)) % 7) as f64 + 0.1 * i as f64);
    let y = Array2::from_shape_fn((n, 1), |(i, _)| 2.0 * x[[i, 0]] - x[[i, 1]] + 0.5);
    let src = Dense { x, y };
    let fit = fit_ridge_cv(&src, &alphas()).unwrap();
    assert_eq!(fit.alpha, 1e-4);
    assert!((fit.score(&src).unwrap() - 1.0).abs() < 1e-9);
    // A constant target: every α predicts it exactly, all tie at R² = 1, the first α wins.
    let flat = Dense {
        x: src.x.clone(),
        y: Array2::from_elem((n, 1), 3.0),
    };
    let fit = fit_ridge_cv(&flat, &[0.5, 0.1]).unwrap();
    assert_eq!(fit.alpha, 0.5);
    assert_eq!(fit.score(&flat).unwrap(), 1.0);
}

#[test]
fn too_few_rows_for_five_folds() {
    let src = Dense {
        x: Array2::zeros((4, 1)),
        y: Array2::zeros((4, 1)),
    };
    assert!(matches!(
        fit_ridge_cv(&src, &alphas()),
        Err(MetricError::TooFewRows { n: 4, need: 5, .. })
    ));
}

fn split<'a>(
    rates: &'a Array3<f64>,
    behavior: &'a Array3<f64>,
    mask: Option<&'a Array2<bool>>,
) -> DecodeSplit<'a> {
    DecodeSplit {
        rates: RatePair::split(rates.view(), rates.shape()[2] / 2),
        behavior: behavior.view(),
        decode_mask: mask.map(|m| m.view()),
    }
}

#[test]
fn velocity_r2_drops_nan_behaviour_rows_and_rejects_nan_rates() {
    let (n, t_len) = (6, 5);
    let rates = Array3::from_shape_fn((n, t_len, 3), |(i, t, j)| {
        ((i * 7 + t * 3 + j * 5) % 11) as f64 * 0.1 + 0.05 * j as f64
    });
    let mut behavior = Array3::from_shape_fn((n, t_len, 2), |(i, t, c)| {
        let r = |j| rates[[i, t, j]];
        if c == 0 {
            r(0) - 2.0 * r(1) + 0.3
        } else {
            r(2) * 1.5 - 1.0
        }
    });
    let r2 = velocity_r2(
        split(&rates, &behavior, None),
        split(&rates, &behavior, None),
    )
    .unwrap();
    assert!((r2 - 1.0).abs() < 1e-6, "{r2}");

    // Rows with NaN behaviour channel 0 are dropped, even where the rates are NaN too.
    let mut rates_nan = rates.clone();
    behavior[[2, 1, 0]] = f64::NAN;
    behavior[[2, 1, 1]] = f64::NAN;
    rates_nan[[2, 1, 0]] = f64::NAN;
    let r2 = velocity_r2(
        split(&rates_nan, &behavior, None),
        split(&rates, &behavior, None),
    );
    assert!((r2.unwrap() - 1.0).abs() < 1e-6);

    // A NaN rate in a kept row is an error naming the split and index.
    rates_nan[[3, 4, 2]] = f64::NAN;
    let err = velocity_r2(
        split(&rates_nan, &behavior, None),
        split(&rates, &behavior, None),
    )
    .unwrap_err();
    assert_eq!(
        err,
        MetricError::NonFinite {
            what: "train rates",
            index: vec![3, 4, 2]
        }
    );
}

#[test]
fn decode_masks_are_scored_separately_and_averaged() {
    let (n, t_len) = (8, 6);
    let rates = Array3::from_shape_fn((n, t_len, 2), |(i, t, j)| {
        ((i * 5 + t * 3 + j * 7) % 13) as f64 * 0.2
    });
    // Mask 0 trials follow one linear map, mask 1 trials another: a single decoder could not
    // fit both, the per-mask decoders fit each exactly.
    let mask = Array2::from_shape_fn((n, 2), |(i, c)| (i % 2 == 0) == (c == 0));
    let behavior = Array3::from_shape_fn((n, t_len, 1), |(i, t, _)| {
        if i % 2 == 0 {
            rates[[i, t, 0]] + 1.0
        } else {
            -3.0 * rates[[i, t, 1]]
        }
    });
    let masked = velocity_r2(
        split(&rates, &behavior, Some(&mask)),
        split(&rates, &behavior, Some(&mask)),
    )
    .unwrap();
    assert!((masked - 1.0).abs() < 1e-6, "{masked}");
    let pooled = velocity_r2(
        split(&rates, &behavior, None),
        split(&rates, &behavior, None),
    )
    .unwrap();
    assert!(pooled < 0.99, "{pooled}");
}
