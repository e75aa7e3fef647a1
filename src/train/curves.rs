//! The learning curve of a run, `learning_curve.png` in the run folder: the loss terms and the
//! NLB scores against epoch, and co-bps against training seconds, drawn from `metrics.csv` so a
//! resumed run's curve covers all its epochs.

use std::path::Path;

use plotters::prelude::*;

use super::plots::{atomically, font, plot_err};
use super::TrainError;

/// One `metrics.csv` row: what the curve shows of an epoch.
#[derive(Debug, Clone, Default)]
struct Row {
    epoch: f64,
    train_nll: f64,
    valid_nll: f64,
    train_kl: f64,
    beta: f64,
    lr: f64,
    seconds: f64,
    co_bps: Option<f64>,
    vel_r2: Option<f64>,
    fp_bps: Option<f64>,
}

fn parse(csv: &str) -> Vec<Row> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let col: Vec<&str> = header.split(',').collect();
    let at = |name: &str| col.iter().position(|c| *c == name);
    let idx = [
        "epoch",
        "train_nll",
        "valid_nll",
        "train_kl",
        "beta",
        "lr",
        "seconds",
        "co_bps",
        "vel_r2",
        "fp_bps",
    ]
    .map(at);
    let mut elapsed = 0.0;
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: Option<usize>| i.and_then(|i| f.get(i)?.parse::<f64>().ok());
            let seconds = num(idx[6]).unwrap_or(0.0);
            elapsed += seconds;
            Some(Row {
                epoch: num(idx[0])?,
                train_nll: num(idx[1]).unwrap_or(f64::NAN),
                valid_nll: num(idx[2]).unwrap_or(f64::NAN),
                train_kl: num(idx[3]).unwrap_or(f64::NAN),
                beta: num(idx[4]).unwrap_or(f64::NAN),
                lr: num(idx[5]).unwrap_or(f64::NAN),
                seconds: elapsed,
                co_bps: num(idx[7]),
                vel_r2: num(idx[8]),
                fp_bps: num(idx[9]),
            })
        })
        .collect()
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn range(series: &[Series<'_>]) -> Option<((f64, f64), (f64, f64))> {
    let pts = series
        .iter()
        .flat_map(|s| s.2.iter())
        .filter(|p| p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return None;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    Some(((x0, x1.max(x0 + 1.0)), (y0 - pad, y1 + pad)))
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    series: &[Series<'_>],
) -> Result<(), String> {
    let Some(((x0, x1), (y0, y1))) = range(series) else {
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, color, pts) in series {
        let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1.is_finite()).collect();
        let color = *color;
        chart
            // One pixel wide: plotters 0.3 draws wider lines past the panel wherever a
            // segment is steep (a one-epoch loss spike ran down through the panel below).
            .draw_series(LineSeries::new(pts, color.stroke_width(1)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

fn points(rows: &[Row], x: fn(&Row) -> f64, y: fn(&Row) -> Option<f64>) -> Vec<(f64, f64)> {
    rows.iter().filter_map(|r| Some((x(r), y(r)?))).collect()
}

/// Lowest score the score panels show. An untrained model scores −10 co-bps or worse at the
/// first evaluation; on a linear axis that one point would flatten the whole curve of scores
/// between −0.2 and 0.4 that a user reads, so lower scores are drawn on the floor.
const SCORE_FLOOR: f64 = -1.0;

/// A score series with every value below [`SCORE_FLOOR`] raised to it.
fn floored(pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.into_iter()
        .map(|(x, y)| (x, y.max(SCORE_FLOOR)))
        .collect()
}

/// Draws `learning_curve.png` in `dir` from `dir/metrics.csv`, through a temporary file that is
/// renamed into place, so a reader never sees half a PNG.
pub fn plot_learning_curve(dir: &Path) -> Result<(), TrainError> {
    let csv_path = dir.join("metrics.csv");
    let csv = std::fs::read_to_string(&csv_path).map_err(|e| plot_err(&csv_path, e))?;
    let rows = parse(&csv);
    let path = dir.join("learning_curve.png");
    font();
    atomically(&path, |tmp| draw(tmp, &rows).map_err(|e| plot_err(tmp, e)))
}

fn draw(path: &Path, rows: &[Row]) -> Result<(), String> {
    let root = BitMapBackend::new(path, (1400, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((2, 2));
    let epoch = |r: &Row| r.epoch;
    panel(
        &areas[0],
        "Poisson NLL per entry",
        "epoch",
        &[
            ("train", BLUE, points(rows, epoch, |r| Some(r.train_nll))),
            (
                "validation",
                RED,
                points(rows, epoch, |r| Some(r.valid_nll)),
            ),
        ],
    )?;
    panel(
        &areas[1],
        "KL per trial (log10) and its weight",
        "epoch",
        &[
            (
                "log10 KL",
                BLUE,
                points(rows, epoch, |r| Some(r.train_kl.max(1e-12).log10())),
            ),
            (
                "log10 beta",
                RED,
                points(rows, epoch, |r| Some(r.beta.max(1e-12).log10())),
            ),
            (
                "log10 lr",
                GREEN,
                points(rows, epoch, |r| Some(r.lr.max(1e-12).log10())),
            ),
        ],
    )?;
    panel(
        &areas[2],
        "NLB scores on the eval trials (below -1 drawn at -1)",
        "epoch",
        &[
            ("co-bps", BLUE, floored(points(rows, epoch, |r| r.co_bps))),
            ("fp-bps", RED, floored(points(rows, epoch, |r| r.fp_bps))),
            ("vel R2", GREEN, floored(points(rows, epoch, |r| r.vel_r2))),
        ],
    )?;
    panel(
        &areas[3],
        "co-bps against training time (below -1 drawn at -1)",
        "seconds",
        &[(
            "co-bps",
            BLUE,
            floored(points(rows, |r| r.seconds, |r| r.co_bps)),
        )],
    )?;
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "epoch,train_loss,train_nll,train_kl,valid_loss,valid_nll,valid_kl,valid_monitored,beta,weight_decay,lr,seconds,co_bps,vel_r2,psth_r2,fp_bps,tp_corr\n\
        0,1,0.5,100,1,0.6,90,0.6,0,0,0.003,1.5,-0.1,0.2,,-0.2,\n\
        1,1,0.4,120,1,0.5,95,0.5,0.1,0,0.003,1.5,,,,,\n";

    #[test]
    fn rows_keep_scores_only_where_computed_and_add_up_time() {
        let rows = parse(CSV);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].co_bps, Some(-0.1));
        assert_eq!(rows[1].co_bps, None);
        assert_eq!(rows[1].seconds, 3.0);
    }

    #[test]
    fn scores_below_the_floor_are_drawn_on_it() {
        let pts = floored(vec![(0.0, -10.3), (50.0, -0.2), (100.0, 0.15)]);
        assert_eq!(pts, vec![(0.0, SCORE_FLOOR), (50.0, -0.2), (100.0, 0.15)]);
        let ((_, _), (y0, y1)) = range(&[("co-bps", BLUE, pts)]).unwrap();
        assert!(
            y0 > -1.1 && y1 < 0.3,
            "the axis spans the scores a user reads"
        );
    }

    #[test]
    fn the_curve_is_written_as_png() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.csv"), CSV).unwrap();
        plot_learning_curve(dir.path()).unwrap();
        let png = std::fs::read(dir.path().join("learning_curve.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary file left"
        );
    }
}
