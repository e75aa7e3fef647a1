//! One recording session: the NWB files of a dataset folder merged onto one 1 ms timeline.
//!
//! The reference builds a dense 1 ms × channels table of the whole session. We keep spikes as
//! sorted 1 ms row indices per unit and validity (the NaN pattern) as interval lists, so memory
//! grows with the number of spikes, not with session length × neurons. Only the few continuous
//! behaviour channels are held densely at 1 ms, as they must be for the FIR decimator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::merge::Merger;
use super::time::{ceil_div, floor_div};
use crate::nwb::{self, NwbReader};

/// A problem loading a dataset folder, naming the folder, file and field.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("data folder {0} does not exist (set DATA_HOME or --data-home to where `dandi download` put the files)")]
    NoFolder(PathBuf),
    #[error("no .nwb files in {0}")]
    NoFiles(PathBuf),
    #[error(transparent)]
    Nwb(#[from] nwb::NwbError),
    #[error("{path}: field `{field}`: {msg}")]
    Field {
        path: PathBuf,
        field: String,
        msg: String,
    },
}

pub type Result<T> = std::result::Result<T, SessionError>;

/// Sorted, disjoint half-open ranges `[a, b)` of 1 ms rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Intervals(pub Vec<(i64, i64)>);

impl Intervals {
    fn index_of(&self, k: i64) -> Option<usize> {
        let i = self.0.partition_point(|&(_, b)| b <= k);
        (i < self.0.len() && self.0[i].0 <= k).then_some(i)
    }

    pub fn contains(&self, k: i64) -> bool {
        self.index_of(k).is_some()
    }

    /// As [`Intervals::contains`] for rows asked in ascending order: `run` remembers where the
    /// last answer was found, so a sorted walk costs one step per run instead of a search per
    /// row. Any order still gives the right answer.
    pub fn contains_near(&self, k: i64, run: &mut usize) -> bool {
        let runs = &self.0;
        if *run > 0 && runs.get(*run - 1).is_some_and(|&(_, b)| b > k) {
            *run = runs.partition_point(|&(_, b)| b <= k);
        }
        while *run < runs.len() && runs[*run].1 <= k {
            *run += 1;
        }
        *run < runs.len() && runs[*run].0 <= k
    }

    /// The valid run holding row `k`, if any.
    pub fn run(&self, k: i64) -> Option<(i64, i64)> {
        self.index_of(k).map(|i| self.0[i])
    }

    pub(super) fn shifted(&self, by: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().map(move |&(a, b)| (a + by, b + by))
    }

    /// Sets `out[i]` to NaN where row `(first + i)·q` is not in the set: a search for the first
    /// run, then one walk.
    pub fn mask_unobserved(&self, first: i64, q: i64, out: &mut [f64]) {
        let mut run = self.0.partition_point(|&(_, b)| b <= first * q);
        self.mask_unobserved_near(first, q, out, &mut run);
    }

    /// As [`Intervals::mask_unobserved`], starting the walk at `run` (where the last call ended)
    /// when the rows come after it, so ascending calls never search.
    pub fn mask_unobserved_near(&self, first: i64, q: i64, out: &mut [f64], run: &mut usize) {
        let runs = &self.0;
        let start = first * q;
        let behind = *run > runs.len() || (*run > 0 && runs[*run - 1].1 > start);
        let mut idx = if behind {
            runs.partition_point(|&(_, b)| b <= start)
        } else {
            *run
        };
        for (i, v) in out.iter_mut().enumerate() {
            let row = (first + i as i64) * q;
            while idx < runs.len() && runs[idx].1 <= row {
                idx += 1;
            }
            if idx == runs.len() || runs[idx].0 > row {
                *v = f64::NAN;
            }
        }
        *run = idx;
    }

    /// Normalises arbitrary ranges into sorted disjoint ones.
    pub(super) fn from_ranges(mut ranges: Vec<(i64, i64)>) -> Self {
        ranges.retain(|&(a, b)| a < b);
        ranges.sort_unstable();
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Intervals(out)
    }
}

/// Spiking units of one signal type (held-in `spikes` or `heldout_spikes`), ascending unit id.
#[derive(Debug, Clone, Default)]
pub struct UnitGroup {
    pub ids: Vec<i64>,
    /// Per unit: sorted 1 ms rows of its spikes, only at rows where the unit is observed.
    pub spikes: Vec<Vec<i64>>,
    /// Per unit: rows where the unit is observed (not NaN).
    pub valid: Vec<Intervals>,
}

impl UnitGroup {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A continuous series on the 1 ms grid.
#[derive(Debug, Clone)]
pub struct FineSeries {
    pub name: String,
    pub channels: Vec<String>,
    /// Per channel, the rows that hold a sample (not NaN): what a row's validity needs.
    pub valid: Vec<Intervals>,
    /// Per channel, one value per 1 ms row, rows without a sample filled by linear interpolation
    /// (as the reference does before filtering; `valid` still says which rows were sampled);
    /// held only for the series whose values were asked for (the behaviour variable), else empty.
    pub values: Vec<Vec<f64>>,
}

/// The merged trials table. Times are ns on the session timeline.
#[derive(Debug, Clone, Default)]
pub struct TrialTable {
    pub len: usize,
    pub times: BTreeMap<String, Vec<Option<i64>>>,
    pub nums: BTreeMap<String, Vec<f64>>,
    pub strs: BTreeMap<String, Vec<String>>,
}

impl TrialTable {
    pub fn time(&self, name: &str) -> Option<&[Option<i64>]> {
        self.times.get(name).map(Vec::as_slice)
    }

    pub fn num(&self, name: &str) -> Option<&[f64]> {
        self.nums.get(name).map(Vec::as_slice)
    }

    pub fn split(&self) -> &[String] {
        self.strs.get("split").map(Vec::as_slice).unwrap_or(&[])
    }

    /// Trials whose `split` is one of `splits`.
    pub fn split_mask(&self, splits: &[&str]) -> Vec<bool> {
        let split = self.split();
        (0..self.len)
            .map(|i| split.get(i).is_some_and(|s| splits.contains(&s.as_str())))
            .collect()
    }
}

/// A whole dataset folder on one 1 ms timeline.
#[derive(Debug, Clone)]
pub struct Session {
    pub folder: PathBuf,
    /// The merged NWB files in merge order (sorted by path, so the test file first), each with
    /// its block offset: file row `k` (1 ms, file clock) is session row `k + offset`.
    pub files: Vec<(PathBuf, i64)>,
    /// Number of 1 ms rows.
    pub len_ms: i64,
    pub heldin: UnitGroup,
    pub heldout: UnitGroup,
    pub series: Vec<FineSeries>,
    pub trials: TrialTable,
}

/// The `.nwb` files of a folder, sorted by full path as the reference does (test before train).
pub fn nwb_files(folder: &Path) -> Result<Vec<PathBuf>> {
    if !folder.is_dir() {
        return Err(SessionError::NoFolder(folder.to_path_buf()));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|_| SessionError::NoFolder(folder.to_path_buf()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "nwb"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(SessionError::NoFiles(folder.to_path_buf()));
    }
    Ok(files)
}

impl Session {
    /// Loads every `.nwb` file of a folder and merges them (reference §3–§4), keeping the
    /// values of every series.
    pub fn load(folder: &Path) -> Result<Session> {
        Self::load_with_progress(folder, &|_| true, |_| {})
    }

    /// As [`Session::load`], keeping the 1 ms values only of the series `keep_values` names
    /// (every series still marks the rows it covers), and calling `on_file` after each file.
    pub fn load_with_progress(
        folder: &Path,
        keep_values: &dyn Fn(&str) -> bool,
        mut on_file: impl FnMut(&Path),
    ) -> Result<Session> {
        let mut merger = Merger::default();
        for path in nwb_files(folder)? {
            merger.add(&NwbReader::open(&path)?, keep_values)?;
            on_file(&path);
        }
        Ok(merger.finish(folder))
    }
}

/// Where the last binning of a unit ended (its next spike and observed run), so that trials
/// binned in time order walk each unit's spikes once instead of searching them per trial.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    pub(super) spike: usize,
    pub(super) run: usize,
}

/// `sorted.partition_point(below)`, searched forward from `from` in doubling steps: a few
/// probes when the answer is near `from` (the next trial of a time-ordered walk), where a
/// binary search of the whole slice would miss the cache at every step. Falls back to that
/// search when `from` is past the answer.
pub fn seek<T>(sorted: &[T], from: usize, below: impl Fn(&T) -> bool) -> usize {
    if from > sorted.len() || (from > 0 && !below(&sorted[from - 1])) {
        return sorted.partition_point(below);
    }
    let tail = &sorted[from..];
    let mut step = 1;
    while step < tail.len() && below(&tail[step - 1]) {
        step *= 2;
    }
    let (lo, hi) = (step / 2, step.min(tail.len()));
    from + lo + tail[lo..hi].partition_point(below)
}

/// Spike counts of one unit in bins of `q` rows over bins `first..first+out.len()`:
/// NaN where the bin's first row is unobserved (the reference's resampling rule).
/// `at` is updated to where this call ended; any order of calls gives the same counts.
pub fn bin_unit(
    spikes: &[i64],
    valid: &Intervals,
    q: i64,
    first: i64,
    out: &mut [f64],
    at: &mut Cursor,
) {
    out.fill(0.0);
    let start = first * q;
    let end = (first + out.len() as i64) * q;
    let mut from = at.spike.min(spikes.len());
    if from > 0 && spikes[from - 1] >= start {
        from = spikes.partition_point(|&k| k < start);
    }
    while from < spikes.len() && spikes[from] < start {
        from += 1;
    }
    let mut next = from;
    while next < spikes.len() && spikes[next] < end {
        out[(floor_div(spikes[next], q) - first) as usize] += 1.0;
        next += 1;
    }
    at.spike = next;
    valid.mask_unobserved_near(first, q, out, &mut at.run);
}

/// Number of bins of width `q` rows covering `len_ms` rows (the last may be partial).
pub fn n_bins(len_ms: i64, q: i64) -> i64 {
    ceil_div(len_ms, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_finds_the_partition_point_from_any_start() {
        let sorted: Vec<i64> = vec![1, 3, 3, 5, 8, 13, 21, 34, 55, 89];
        for x in -1..92 {
            let want = sorted.partition_point(|&k| k < x);
            for from in 0..=sorted.len() + 1 {
                assert_eq!(seek(&sorted, from, |&k| k < x), want, "x {x} from {from}");
            }
        }
        assert_eq!(seek(&[] as &[i64], 0, |&k| k < 3), 0);
    }

    #[test]
    fn intervals_merge_and_query() {
        let iv = Intervals::from_ranges(vec![(5, 10), (0, 3), (9, 12), (20, 20)]);
        assert_eq!(iv.0, vec![(0, 3), (5, 12)]);
        let mut run = 0;
        for k in [-1, 0, 2, 3, 4, 5, 11, 12, 30, 1, 6, 0, 13] {
            assert_eq!(iv.contains_near(k, &mut run), iv.contains(k), "{k}");
        }
        assert!(iv.contains(0) && !iv.contains(3) && iv.contains(11) && !iv.contains(12));
        assert_eq!(iv.run(7), Some((5, 12)));
        assert_eq!(iv.run(4), None);
    }

    #[test]
    fn binning_sums_rows_and_takes_nan_from_the_first_row() {
        let valid = Intervals(vec![(2, 9)]);
        let spikes = vec![2, 3, 3, 4, 8];
        let mut out = vec![0.0; 3];
        bin_unit(&spikes, &valid, 3, 0, &mut out, &mut Cursor::default());
        assert!(out[0].is_nan(), "row 0 unobserved");
        assert_eq!(out[1], 3.0);
        assert_eq!(out[2], 1.0);
    }
}
