//! The NWB files of a dataset folder merged onto one 1 ms session timeline (reference §3–§4),
//! one file and one part of a file at a time.
//!
//! Each file's units are turned into spike rows, then dropped; each behaviour series is placed
//! on the 1 ms grid, then dropped; so the memory held is the session being built plus the one
//! part being read, never the raw files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::resample::interpolate_nans;
use super::session::{FineSeries, Intervals, Result, Session, SessionError, TrialTable, UnitGroup};
use super::time::{ms_rounded, seconds_to_ns, spike_row, NS_PER_MS};
use crate::nwb::{Column, NwbReader, Series, Trials, Units};

/// One unit of the merged session, before its spikes are sorted and its ranges normalised.
#[derive(Default)]
struct MergedUnit {
    spikes: Vec<i64>,
    ranges: Vec<(i64, i64)>,
}

/// The session as built so far.
#[derive(Default)]
pub(super) struct Merger {
    files: Vec<(PathBuf, i64)>,
    /// Rows of the timeline so far: the last file's offset plus its length.
    end: i64,
    /// Held-in and held-out units by id.
    groups: [BTreeMap<i64, MergedUnit>; 2],
    series: Vec<FineSeries>,
    /// Per series and channel: the rows with a sample so far, on the session timeline.
    series_ranges: Vec<Vec<Vec<(i64, i64)>>>,
    trials: TrialTable,
}

impl Merger {
    /// Appends one file: units, trials, then each series; the 1 ms values of a series are kept
    /// only where `keep_values(name)` (the behaviour variable), the rows it covers always.
    pub(super) fn add(&mut self, r: &NwbReader, keep_values: &dyn Fn(&str) -> bool) -> Result<()> {
        let started = std::time::Instant::now();
        let units = r.units()?;
        let read = started.elapsed();
        let len_ms = recording_len(r.path(), &units)?;
        let offset = self.next_offset();
        self.add_units(&units, len_ms, offset);
        drop(units);
        let merged = started.elapsed();
        self.add_trials(&r.trials()?, offset);
        for (path, name) in r.series_paths()? {
            let series = r.series(&path, &name)?;
            match GridRows::check(&series.times, len_ms) {
                Some(rows) => {
                    let keep = keep_values(&series.name);
                    self.add_series(&series, rows, offset, len_ms, keep);
                }
                None => tracing::warn!(
                    "{}: series `{}` has samples off the 1 ms grid or past its end; dropped as the reference does",
                    r.path().display(),
                    series.name
                ),
            }
        }
        tracing::debug!(
            "{}: units read in {read:.2?}, merged at {merged:.2?}, all merged at {:.2?}",
            r.path().display(),
            started.elapsed()
        );
        self.files.push((r.path().to_path_buf(), offset));
        self.end = offset + len_ms;
        Ok(())
    }

    /// The next file starts on the next multiple of 100 ms at least 50 ms after the last row.
    fn next_offset(&self) -> i64 {
        if self.files.is_empty() {
            return 0;
        }
        let last_row_s = (self.end - 1) as f64 / 1000.0;
        (((last_row_s + 0.05) * 10.0).ceil() * 100.0) as i64
    }

    fn add_units(&mut self, units: &Units, len_ms: i64, offset: i64) {
        for heldout in [false, true] {
            let valid = group_valid(units, heldout, len_ms);
            let members: Vec<usize> = (0..units.ids.len())
                .filter(|&u| units.heldout[u] == heldout)
                .collect();
            let rows = parallel_map(&members, |&u| {
                spike_rows(&units.spike_times[u], &valid, offset)
            });
            let group = &mut self.groups[usize::from(heldout)];
            for (&u, rows) in members.iter().zip(rows) {
                let merged = group.entry(units.ids[u]).or_default();
                merged.ranges.extend(valid.shifted(offset));
                if merged.spikes.is_empty() {
                    merged.spikes = rows;
                } else {
                    merged.spikes.extend(rows);
                }
            }
        }
    }

    fn add_series(&mut self, s: &Series, rows: GridRows, offset: i64, len_ms: i64, keep: bool) {
        let idx = match self.series.iter().position(|f| f.name == s.name) {
            Some(idx) => idx,
            None => {
                let n = s.n_channels();
                self.series.push(FineSeries {
                    name: s.name.clone(),
                    channels: s.channels.clone(),
                    valid: vec![Intervals::default(); n],
                    values: if keep {
                        vec![Vec::new(); n]
                    } else {
                        Vec::new()
                    },
                });
                self.series_ranges.push(vec![Vec::new(); n]);
                self.series.len() - 1
            }
        };
        let target = &mut self.series[idx];
        let n = s.n_channels();
        let nc = n.min(target.channels.len());
        for c in 0..nc {
            let value = |sample: usize| s.data[sample * n + c];
            let runs = sampled_runs(rows, value, len_ms);
            self.series_ranges[idx][c]
                .extend(runs.into_iter().map(|(a, b)| (a + offset, b + offset)));
            if let Some(values) = target.values.get_mut(c) {
                values.resize((offset + len_ms) as usize, f64::NAN);
                for (sample, row) in rows.iter().enumerate() {
                    values[(row + offset) as usize] = value(sample);
                }
            }
        }
    }

    fn add_trials(&mut self, trials: &Trials, offset: i64) {
        let table = &mut self.trials;
        let before = table.len;
        for (name, col) in &trials.columns {
            if name == "id" {
                continue;
            }
            let name = if name == "stop_time" {
                "end_time"
            } else {
                name.as_str()
            };
            match col {
                Column::Num(v) if name.ends_with("_time") => {
                    let dst = table.times.entry(name.to_string()).or_default();
                    dst.resize(before, None);
                    dst.extend(
                        v.iter()
                            .map(|&t| seconds_to_ns(t).map(|ns| ns + offset * NS_PER_MS)),
                    );
                }
                Column::Num(v) => {
                    let dst = table.nums.entry(name.to_string()).or_default();
                    dst.resize(before, f64::NAN);
                    dst.extend_from_slice(v);
                }
                Column::Str(v) => {
                    let dst = table.strs.entry(name.to_string()).or_default();
                    dst.resize(before, String::new());
                    dst.extend(v.iter().cloned());
                }
            }
        }
        table.len += trials.len;
        for v in table.times.values_mut() {
            v.resize(table.len, None);
        }
        for v in table.nums.values_mut() {
            v.resize(table.len, f64::NAN);
        }
        for v in table.strs.values_mut() {
            v.resize(table.len, String::new());
        }
    }

    /// The merged session: spikes sorted, validity normalised, series padded to the timeline.
    pub(super) fn finish(self, folder: &Path) -> Session {
        let [heldin, heldout] = self.groups.map(unit_group);
        let mut series = self.series;
        for (s, ranges) in series.iter_mut().zip(self.series_ranges) {
            for v in &mut s.values {
                v.resize(self.end as usize, f64::NAN);
                interpolate_nans(v);
            }
            s.valid = ranges.into_iter().map(Intervals::from_ranges).collect();
        }
        series.sort_by(|a, b| a.name.cmp(&b.name));
        Session {
            folder: folder.to_path_buf(),
            files: self.files,
            len_ms: self.end,
            heldin,
            heldout,
            series,
            trials: self.trials,
        }
    }
}

fn unit_group(units: BTreeMap<i64, MergedUnit>) -> UnitGroup {
    let mut group = UnitGroup::default();
    for (id, mut unit) in units {
        unit.spikes.sort_unstable();
        unit.spikes.shrink_to_fit();
        group.ids.push(id);
        group.spikes.push(unit.spikes);
        group.valid.push(Intervals::from_ranges(unit.ranges));
    }
    group
}

/// The session rows of a unit's spikes that fall where its group is observed.
fn spike_rows(times: &[f64], valid: &Intervals, offset: i64) -> Vec<i64> {
    let mut rows = Vec::with_capacity(times.len());
    let mut run = 0;
    for &t in times {
        let k = spike_row(t);
        if valid.contains_near(k, &mut run) {
            rows.push(k + offset);
        }
    }
    rows
}

/// `f` of every item, the items shared among the cores; the result is in item order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = crate::runtime::threads();
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker panicked"))
            .collect()
    })
}

/// A file's length in 1 ms rows: the end of its last observation interval.
fn recording_len(path: &Path, units: &Units) -> Result<i64> {
    units
        .obs_intervals
        .iter()
        .filter_map(|iv| iv.last())
        .map(|iv| (iv[1] * 1000.0).round_ties_even() as i64)
        .max()
        .ok_or_else(|| SessionError::Field {
            path: path.to_path_buf(),
            field: "units/obs_intervals".into(),
            msg: "no observation intervals".into(),
        })
}

/// Rows where a group (held-in or held-out units) is observed: the first such unit's intervals,
/// as the reference masks every unit of a group by its first unit's.
fn group_valid(units: &Units, heldout: bool, len_ms: i64) -> Intervals {
    let Some(u) = units.heldout.iter().position(|&h| h == heldout) else {
        return Intervals::default();
    };
    Intervals::from_ranges(
        units.obs_intervals[u]
            .iter()
            .map(|iv| {
                let a = ms_rounded(iv[0]).ceil() as i64;
                let b = ms_rounded(iv[1]).floor() as i64;
                (a.max(0), b.min(len_ms))
            })
            .collect(),
    )
}

/// Runs `[a, b)` of rows that hold a sample that is not NaN, where a row sampled twice takes its
/// last sample (as writing the samples into a dense 1 ms column would).
fn sampled_runs(rows: GridRows, value: impl Fn(usize) -> f64, len_ms: i64) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    let mut push = |row: i64| match runs.last_mut() {
        Some(last) if last.1 == row => last.1 += 1,
        _ => runs.push((row, row + 1)),
    };
    if rows.ascending {
        for (sample, row) in rows.iter().enumerate() {
            if !value(sample).is_nan() {
                push(row);
            }
        }
    } else {
        let mut dense = vec![false; len_ms as usize];
        for (sample, row) in rows.iter().enumerate() {
            dense[row as usize] = !value(sample).is_nan();
        }
        for (row, _) in dense.iter().enumerate().filter(|(_, &ok)| ok) {
            push(row as i64);
        }
    }
    runs
}

/// The 1 ms grid rows of a series' samples, computed from their times when asked: a full-size
/// session's series hold millions of samples, and a row vector beside their times would add a
/// third to the memory a series takes while it is merged.
#[derive(Clone, Copy)]
struct GridRows<'a> {
    times: &'a [f64],
    /// Whether every sample is on a later row than the one before (the usual case).
    ascending: bool,
}

/// The 1 ms row a time in seconds rounds to (ties to even, as numpy), still as a float.
fn grid_ms(t: f64) -> f64 {
    super::time::round_ties_even(t * 1000.0)
}

impl<'a> GridRows<'a> {
    /// The rows of `times`, or `None` if any sample is off the 1 ms grid of `len_ms` rows.
    fn check(times: &'a [f64], len_ms: i64) -> Option<Self> {
        let mut ascending = true;
        let mut last = i64::MIN;
        for &t in times {
            let k = grid_ms(t);
            let on_grid = super::time::np_round(k / 1000.0, 6) == super::time::np_round(t, 6);
            if !(on_grid && k >= 0.0 && (k as i64) < len_ms) {
                return None;
            }
            ascending &= k as i64 > last;
            last = k as i64;
        }
        Some(GridRows { times, ascending })
    }

    fn iter(self) -> impl Iterator<Item = i64> + 'a {
        self.times.iter().map(|&t| grid_ms(t) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_start_on_the_next_100ms_at_least_50ms_later() {
        let offsets = |lens: &[i64]| {
            let mut m = Merger::default();
            lens.iter()
                .map(|&len| {
                    let offset = m.next_offset();
                    m.files.push((PathBuf::new(), offset));
                    m.end = offset + len;
                    offset
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(offsets(&[1000, 500]), vec![0, 1100]);
        assert_eq!(offsets(&[1061, 10, 10]), vec![0, 1200, 1300]);
    }

    #[test]
    fn sampled_runs_skip_nan_and_take_the_last_sample_of_a_row() {
        let v = [1.0, f64::NAN, 2.0, 3.0, 4.0];
        assert_eq!(
            sampled_runs(
                GridRows::check(&[0.0, 0.001, 0.002, 0.003, 0.007], 8).unwrap(),
                |i| v[i],
                8
            ),
            [(0, 1), (2, 4), (7, 8)]
        );
        let v = [1.0, 2.0, f64::NAN, 5.0];
        let rows = GridRows::check(&[0.0, 0.001, 0.001, 0.002], 3).unwrap();
        assert_eq!(sampled_runs(rows, |i| v[i], 3), [(0, 1), (2, 3)]);
    }

    #[test]
    fn series_samples_must_sit_on_the_grid() {
        let rows = |t: &[f64], len| GridRows::check(t, len).map(|r| r.iter().collect::<Vec<_>>());
        assert_eq!(rows(&[0.0, 0.001, 0.002], 3), Some(vec![0, 1, 2]));
        assert_eq!(rows(&[0.0, 0.0015], 3), None);
        assert_eq!(rows(&[0.003], 3), None);
    }
}
