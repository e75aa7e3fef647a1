//! PNG plots written during training: spikes beside inferred rates, and latent trajectories.
//!
//! Text uses DejaVu Sans embedded in the binary (`assets/fonts`, Bitstream Vera licence), so
//! plots render on machines without any system fonts.

use std::path::Path;
use std::sync::Once;

use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{s, Array2, Array3, ArrayView2, Axis};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::TrainError;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// What the plots annotate: epoch, time base, where observation ends and held-out neurons start.
#[derive(Debug, Clone)]
pub struct PlotInfo {
    pub epoch: usize,
    pub bin_ms: f64,
    /// Observed bins `T`; later bins are forward predictions.
    pub t_obs: usize,
    /// Held-in neurons `N_in`; later neurons are held out.
    pub n_heldin: usize,
    /// Trial numbers (in the training file) of the plotted trials, for the titles.
    pub trials: Vec<usize>,
}

pub(super) fn font() {
    REGISTER.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("embedded DejaVu Sans is a valid TrueType font"));
    });
}

pub(super) fn plot_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Plot {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Spike counts (left) beside inferred rates (right), one row per trial, `[trials, T + Tf, N]`.
///
/// A red vertical line marks the end of the observed window, a red horizontal line the first
/// held-out neuron. Rates are scaled per neuron to that neuron's maximum in the trial, so quiet
/// and busy neurons are equally visible.
pub fn plot_rates(
    path: &Path,
    spikes: &Array3<f32>,
    rates: &Array3<f64>,
    info: &PlotInfo,
) -> Result<(), TrainError> {
    atomically(path, |tmp| draw_rates(tmp, spikes, rates, info))
}

/// Runs `draw` on a temporary file beside `path` and renames it into place; a failed drawing
/// leaves the previous plot and no temporary file, and its error names `path`.
pub(super) fn atomically(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let tmp = crate::atomic::temp_path(path);
    let drawn = draw(&tmp).map_err(|e| match e {
        TrainError::Plot { msg, .. } => std::io::Error::other(msg),
        other => std::io::Error::other(other.to_string()),
    });
    crate::atomic::commit(&tmp, path, drawn).map_err(|e| plot_err(path, e))
}

fn draw_rates(
    path: &Path,
    spikes: &Array3<f32>,
    rates: &Array3<f64>,
    info: &PlotInfo,
) -> Result<(), TrainError> {
    font();
    let (n_trials, steps, n) = rates.dim();
    let root = BitMapBackend::new(path, (1400, 420 * n_trials as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let rows = root.split_evenly((n_trials, 2));
    for trial in 0..n_trials {
        let counts = spikes.slice(s![trial, .., ..]);
        let max_count = counts.iter().fold(1.0f32, |m, &c| m.max(c));
        let id = info.trials.get(trial).copied().unwrap_or(trial);
        heatmap(
            &rows[2 * trial],
            &format!("trial {id}: spikes (epoch {})", info.epoch),
            steps,
            n,
            info,
            |t, j| 1.0 - f64::from(counts[[t, j]] / max_count),
            grey,
        )
        .map_err(|e| plot_err(path, e))?;
        let r = rates.slice(s![trial, .., ..]);
        let peaks: Vec<f64> = (0..n)
            .map(|j| r.column(j).iter().fold(1e-12f64, |m, &v| m.max(v)))
            .collect();
        heatmap(
            &rows[2 * trial + 1],
            &format!("trial {id}: inferred rates (per-neuron max)"),
            steps,
            n,
            info,
            |t, j| r[[t, j]] / peaks[j],
            viridis,
        )
        .map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// One time × neuron panel with the observed/forward and held-in/held-out boundaries.
fn heatmap(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    steps: usize,
    n: usize,
    info: &PlotInfo,
    value: impl Fn(usize, usize) -> f64,
    color: fn(f64) -> RGBColor,
) -> DrawResult {
    let t_max = steps as f64 * info.bin_ms;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..t_max, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time (ms)")
        .y_desc("neuron")
        .draw()?;
    chart.draw_series((0..steps).flat_map(|t| {
        let value = &value;
        (0..n).map(move |j| {
            let x0 = t as f64 * info.bin_ms;
            Rectangle::new(
                [(x0, j as f64), (x0 + info.bin_ms, j as f64 + 1.0)],
                color(value(t, j).clamp(0.0, 1.0)).filled(),
            )
        })
    }))?;
    let t_obs = info.t_obs as f64 * info.bin_ms;
    let boundary = RED.stroke_width(2);
    chart.draw_series(LineSeries::new([(t_obs, 0.0), (t_obs, n as f64)], boundary))?;
    chart.draw_series(LineSeries::new(
        [(0.0, info.n_heldin as f64), (t_max, info.n_heldin as f64)],
        boundary,
    ))?;
    Ok(())
}

fn grey(v: f64) -> RGBColor {
    let g = (255.0 * v) as u8;
    RGBColor(g, g, g)
}

/// A five-stop approximation of matplotlib's viridis.
fn viridis(v: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = v * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + f * (q - p)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The top `k` principal components of `points` `[samples, dims]`: the projections
/// `[samples, k]` and each component's share of the total variance. Missing components (when
/// `dims < k`) are zero.
pub fn top_pcs(points: ArrayView2<'_, f64>, k: usize) -> (Array2<f64>, Vec<f64>) {
    let (rows, dims) = points.dim();
    let mean = points.mean_axis(Axis(0)).expect("at least one point");
    let centred = &points - &mean;
    let x = DMatrix::from_row_iterator(rows, dims, centred.iter().copied());
    let cov = x.transpose() * &x / (rows.max(2) - 1) as f64;
    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..dims).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let total: f64 = eig.eigenvalues.iter().map(|v| v.max(0.0)).sum();
    let mut proj = Array2::zeros((rows, k));
    let mut shares = vec![0.0; k];
    for (c, &idx) in order.iter().take(k).enumerate() {
        let v = eig.eigenvectors.column(idx);
        // Make the largest entry positive so the plots do not flip between epochs.
        let peak = v
            .iter()
            .copied()
            .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        let sign = if peak < 0.0 { -1.0 } else { 1.0 };
        for r in 0..rows {
            proj[[r, c]] = sign * (0..dims).map(|d| centred[[r, d]] * v[d]).sum::<f64>();
        }
        shares[c] = if total > 0.0 {
            eig.eigenvalues[idx].max(0.0) / total
        } else {
            0.0
        };
    }
    (proj, shares)
}

/// Latent positions `z` `[trials, T + Tf, D]` projected on their top three principal
/// components: a 3-D view of the trajectories (left) and each component over time (right).
pub fn plot_latents(path: &Path, z: &Array3<f64>, info: &PlotInfo) -> Result<(), TrainError> {
    atomically(path, |tmp| draw_latent_pcs(tmp, z, info))
}

fn draw_latent_pcs(path: &Path, z: &Array3<f64>, info: &PlotInfo) -> Result<(), TrainError> {
    font();
    let (n_trials, steps, dims) = z.dim();
    let flat = z
        .to_shape((n_trials * steps, dims))
        .expect("contiguous latents")
        .to_owned();
    let (pcs, shares) = top_pcs(flat.view(), 3);
    let pcs = pcs
        .into_shape_with_order((n_trials, steps, 3))
        .expect("same element count");
    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (left, right) = root.split_horizontally(700);
    draw_latents(&left, &right, &pcs, &shares, info).map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

fn draw_latents(
    left: &DrawingArea<BitMapBackend<'_>, Shift>,
    right: &DrawingArea<BitMapBackend<'_>, Shift>,
    pcs: &Array3<f64>,
    shares: &[f64],
    info: &PlotInfo,
) -> DrawResult {
    let (n_trials, steps, _) = pcs.dim();
    let range = |c: usize| {
        let col = pcs.slice(s![.., .., c]);
        let lo = col.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad)..(hi + pad)
    };
    let mut chart = ChartBuilder::on(left)
        .caption(
            format!(
                "latent z, top 3 PCs ({:.0}% of variance), epoch {}",
                100.0 * shares.iter().sum::<f64>(),
                info.epoch
            ),
            ("sans-serif", 18),
        )
        .margin(20)
        .build_cartesian_3d(range(0), range(1), range(2))?;
    chart.with_projection(|mut p| {
        p.yaw = 0.6;
        p.pitch = 0.35;
        p.scale = 0.85;
        p.into_matrix()
    });
    chart
        .configure_axes()
        .label_style(("sans-serif", 12))
        .draw()?;
    for trial in 0..n_trials {
        let color = Palette99::pick(trial).stroke_width(2);
        chart.draw_series(LineSeries::new(
            (0..steps).map(|t| (pcs[[trial, t, 0]], pcs[[trial, t, 1]], pcs[[trial, t, 2]])),
            color,
        ))?;
        chart.draw_series(std::iter::once(Circle::new(
            (pcs[[trial, 0, 0]], pcs[[trial, 0, 1]], pcs[[trial, 0, 2]]),
            4,
            Palette99::pick(trial).filled(),
        )))?;
    }

    let t_max = steps as f64 * info.bin_ms;
    let t_obs = info.t_obs as f64 * info.bin_ms;
    for (c, panel) in right.split_evenly((3, 1)).iter().enumerate() {
        let r = range(c);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("PC{} ({:.0}%)", c + 1, 100.0 * shares[c]),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t_max, r.clone())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(if c == 2 { "time (ms)" } else { "" })
            .draw()?;
        for trial in 0..n_trials {
            chart.draw_series(LineSeries::new(
                (0..steps).map(|t| ((t as f64 + 0.5) * info.bin_ms, pcs[[trial, t, c]])),
                Palette99::pick(trial).stroke_width(1),
            ))?;
        }
        chart.draw_series(LineSeries::new(
            [(t_obs, r.start), (t_obs, r.end)],
            RED.stroke_width(2),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PlotInfo {
        PlotInfo {
            epoch: 3,
            bin_ms: 20.0,
            t_obs: 6,
            n_heldin: 4,
            trials: vec![10, 11],
        }
    }

    #[test]
    fn pcs_recover_a_dominant_direction() {
        // Points along (1, 1, 0) with a little spread in the third dimension.
        let pts = Array2::from_shape_fn((50, 3), |(i, d)| match d {
            0 | 1 => i as f64,
            _ => (i % 2) as f64 * 0.1,
        });
        let (proj, shares) = top_pcs(pts.view(), 3);
        assert!(shares[0] > 0.99, "{shares:?}");
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // The first projection is the centred position along the diagonal.
        let expect = (0.0 - 24.5) * 2f64.sqrt();
        assert!((proj[[0, 0]].abs() - expect.abs()).abs() < 1e-3 * expect.abs());
        // Fewer dimensions than components: the extra ones are zero.
        let (proj, shares) = top_pcs(pts.slice(s![.., ..2]), 3);
        assert_eq!(proj.column(2).iter().map(|v| v.abs()).sum::<f64>(), 0.0);
        assert_eq!(shares[2], 0.0);
    }

    #[test]
    fn plots_are_written_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let spikes = Array3::from_shape_fn((2, 8, 6), |(i, t, j)| ((i + t + j) % 3) as f32);
        let rates = spikes.mapv(|v| f64::from(v) + 0.5);
        let path = dir.path().join("rates.png");
        plot_rates(&path, &spikes, &rates, &info()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");

        let z = Array3::from_shape_fn((3, 8, 5), |(i, t, d)| {
            ((t as f64) * 0.3 + d as f64 + i as f64).sin()
        });
        let path = dir.path().join("latents.png");
        plot_latents(&path, &z, &info()).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
    }
}
