//! Cutting trial windows out of the binned timeline: the core rule of nlb_tools (reference §6).

use super::dataset::Window;
use super::session::TrialTable;
use super::time::{ceil_div, ceil_to, floor_div, NS_PER_MS, NS_PER_US};

/// A trials-table field a window needs is missing.
#[derive(Debug, thiserror::Error)]
#[error("trials table has no column `{0}`")]
pub struct MissingField(pub String);

/// The bins of one trial: `first .. first + len`, and its alignment time snapped up to the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialWindow {
    pub trial: usize,
    pub first: i64,
    pub len: i64,
    /// `ceil_bw(align)` in ns; a bin `j`'s align time is `j·bw − align_ceil`.
    pub align_ceil: i64,
}

impl TrialWindow {
    pub fn bins(&self) -> std::ops::Range<i64> {
        self.first..self.first + self.len
    }
}

/// Resolved inputs of one window cut.
pub struct WindowCut<'a> {
    pub window: Window,
    /// Replaces the align field (dmfc's jittered go time).
    pub align_override: Option<&'a [Option<i64>]>,
    /// Extra ms added to both ends of the range (behaviour lag, forward windows).
    pub range_override: Option<(i64, i64)>,
}

fn column<'t>(table: &'t TrialTable, name: &str) -> Result<&'t [Option<i64>], MissingField> {
    table
        .time(name)
        .ok_or_else(|| MissingField(name.to_string()))
}

/// Windows of the `include`d trials, in table order; trials missing a needed time vanish.
pub fn cut(
    table: &TrialTable,
    spec: &WindowCut<'_>,
    include: &[bool],
    bw_ns: i64,
    n_bins: i64,
) -> Result<Vec<TrialWindow>, MissingField> {
    let w = spec.window;
    let start = column(table, w.start_field)?;
    let end = column(table, w.end_field)?;
    let table_start = column(table, "start_time")?;
    let align = match (spec.align_override, w.align_field) {
        (Some(a), _) => Some(a),
        (None, Some(f)) => Some(column(table, f)?),
        (None, None) => None,
    };
    let range = spec.range_override.or(w.range);
    let kept: Vec<usize> = (0..table.len).filter(|&r| include[r]).collect();

    let left = |r: usize| align.map_or(start[r], |a| a[r]);
    let right = |r: usize| align.map_or(end[r], |a| a[r]);
    let window_start = |r: usize| match range {
        Some((a, _)) => left(r).map(|t| t + a * NS_PER_MS),
        None => start[r],
    };
    let window_end = |r: usize| match range {
        Some((_, b)) => right(r).map(|t| t + b * NS_PER_MS - NS_PER_US),
        None => end[r].map(|t| t - NS_PER_US),
    };

    let mut out = Vec::with_capacity(kept.len());
    for (i, &r) in kept.iter().enumerate() {
        let bound = kept.get(i + 1).and_then(|&next| {
            let next_start = table_start.get(next + 1).copied().flatten();
            [next_start, window_start(next)].into_iter().flatten().min()
        });
        let (Some(s), Some(x), Some(_), Some(al)) =
            (window_start(r), window_end(r), start[r], left(r))
        else {
            continue;
        };
        let endpoint = match bound {
            Some(b) if x > b && !w.allow_overlap => b - NS_PER_US,
            _ => x,
        };
        let first = ceil_div(s, bw_ns).max(0);
        let last = floor_div(endpoint, bw_ns).min(n_bins - 1);
        out.push(TrialWindow {
            trial: r,
            first,
            len: (last - first + 1).max(0),
            align_ceil: ceil_to(al, bw_ns),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(starts: &[i64], ends: &[i64], onsets: &[Option<i64>]) -> TrialTable {
        let ms = |v: &[i64]| v.iter().map(|&t| Some(t * NS_PER_MS)).collect::<Vec<_>>();
        let mut t = TrialTable {
            len: starts.len(),
            ..Default::default()
        };
        t.times.insert("start_time".into(), ms(starts));
        t.times.insert("end_time".into(), ms(ends));
        t.times.insert(
            "move_onset_time".into(),
            onsets.iter().map(|o| o.map(|v| v * NS_PER_MS)).collect(),
        );
        t
    }

    fn around(a: i64, b: i64, allow_overlap: bool) -> Window {
        Window {
            start_field: "start_time",
            end_field: "end_time",
            align_field: Some("move_onset_time"),
            range: Some((a, b)),
            allow_overlap,
        }
    }

    #[test]
    fn window_starts_on_first_bin_at_or_after_align_plus_a() {
        let t = table(&[0, 2000], &[1000, 3000], &[Some(503), Some(2500)]);
        let spec = WindowCut {
            window: around(-250, 450, false),
            align_override: None,
            range_override: None,
        };
        let w = cut(&t, &spec, &[true, true], 20 * NS_PER_MS, 1000).unwrap();
        // 503 - 250 = 253 ms -> first bin starting at or after it is 260 ms (bin 13).
        assert_eq!(w[0].first, 13);
        assert_eq!(w[0].len, 35);
        assert_eq!(w[0].align_ceil, 520 * NS_PER_MS);
    }

    #[test]
    fn overlap_truncates_at_the_next_included_window() {
        let t = table(
            &[0, 400, 800],
            &[400, 800, 1200],
            &[Some(100), Some(500), Some(900)],
        );
        let spec = WindowCut {
            window: around(0, 600, false),
            align_override: None,
            range_override: None,
        };
        // Trial 1 excluded: trial 0 is bounded by trial 2's window start (900) and the start
        // of the trial after it (none), not by trial 1.
        let w = cut(&t, &spec, &[true, false, true], 5 * NS_PER_MS, 1000).unwrap();
        assert_eq!(w[0].len, 120);
        let w = cut(&t, &spec, &[true, true, true], 5 * NS_PER_MS, 1000).unwrap();
        // bound = min(start of trial 2 = 800, window start of trial 1 = 500) -> rows up to 499 ms.
        assert_eq!(w[0].first, 20);
        assert_eq!(w[0].len, 80);
        let spec = WindowCut {
            window: around(0, 600, true),
            ..spec
        };
        let w = cut(&t, &spec, &[true, true, true], 5 * NS_PER_MS, 1000).unwrap();
        assert_eq!(w[0].len, 120);
    }

    #[test]
    fn trials_without_alignment_vanish() {
        let t = table(&[0, 400], &[400, 800], &[None, Some(500)]);
        let spec = WindowCut {
            window: around(0, 100, true),
            align_override: None,
            range_override: None,
        };
        let w = cut(&t, &spec, &[true, true], 5 * NS_PER_MS, 1000).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].trial, 1);
    }
}
