//! One recording session: the NWB files of a dataset folder merged onto one 1 ms timeline.
//!
//! The reference builds a dense 1 ms × channels table of the whole session. We keep spikes as
//! sorted 1 ms row indices per unit and validity (the NaN pattern) as interval lists, so memory
//! grows with the number of spikes, not with session length × neurons. Only the few continuous
//! behaviour channels are held densely at 1 ms, as they must be for the FIR decimator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::time::{ceil_div, floor_div, ms_rounded, seconds_to_ns, spike_row, NS_PER_MS};
use crate::nwb::{self, Column, NwbFile};

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

    /// The valid run holding row `k`, if any.
    pub fn run(&self, k: i64) -> Option<(i64, i64)> {
        self.index_of(k).map(|i| self.0[i])
    }

    fn shifted(&self, by: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().map(move |&(a, b)| (a + by, b + by))
    }

    /// Sets `out[i]` to NaN where row `(first + i)·q` is not in the set, walking the runs once.
    pub fn mask_unobserved(&self, first: i64, q: i64, out: &mut [f64]) {
        let runs = &self.0;
        let mut idx = runs.partition_point(|&(_, b)| b <= first * q);
        for (i, v) in out.iter_mut().enumerate() {
            let row = (first + i as i64) * q;
            while idx < runs.len() && runs[idx].1 <= row {
                idx += 1;
            }
            if idx == runs.len() || runs[idx].0 > row {
                *v = f64::NAN;
            }
        }
    }

    /// Normalises arbitrary ranges into sorted disjoint ones.
    fn from_ranges(mut ranges: Vec<(i64, i64)>) -> Self {
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

/// A continuous series on the 1 ms grid, NaN where it has no sample.
#[derive(Debug, Clone)]
pub struct FineSeries {
    pub name: String,
    pub channels: Vec<String>,
    /// Per channel, one value per 1 ms row.
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
    /// Loads every `.nwb` file of a folder and merges them (reference §3–§4).
    pub fn load(folder: &Path) -> Result<Session> {
        Self::load_with_progress(folder, |_| {})
    }

    /// As [`Session::load`], calling `on_file` after each file is read.
    pub fn load_with_progress(folder: &Path, mut on_file: impl FnMut(&Path)) -> Result<Session> {
        let mut blocks = Vec::new();
        for path in nwb_files(folder)? {
            let file = nwb::read(&path)?;
            blocks.push(Block::new(file)?);
            on_file(&path);
        }
        Ok(merge(folder, blocks))
    }
}

/// One file on its own grid, before merging.
struct Block {
    file: NwbFile,
    len_ms: i64,
    heldin_valid: Intervals,
    heldout_valid: Intervals,
    /// Per kept series: (index in file.series, row of each sample).
    series_rows: Vec<(usize, Vec<i64>)>,
}

impl Block {
    fn new(file: NwbFile) -> Result<Self> {
        let units = &file.units;
        let field_err = |field: &str, msg: String| SessionError::Field {
            path: file.path.clone(),
            field: field.to_string(),
            msg,
        };
        let len_ms = units
            .obs_intervals
            .iter()
            .filter_map(|iv| iv.last())
            .map(|iv| (iv[1] * 1000.0).round_ties_even() as i64)
            .max()
            .ok_or_else(|| field_err("units/obs_intervals", "no observation intervals".into()))?;
        let group_valid = |heldout: bool| -> Intervals {
            let first = units.heldout.iter().position(|&h| h == heldout);
            first
                .map(|u| {
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
                })
                .unwrap_or_default()
        };
        let heldin_valid = group_valid(false);
        let heldout_valid = group_valid(true);
        let mut series_rows = Vec::new();
        for (i, s) in file.series.iter().enumerate() {
            match on_grid_rows(&s.times, len_ms) {
                Some(rows) => series_rows.push((i, rows)),
                None => tracing::warn!(
                    "{}: series `{}` has samples off the 1 ms grid or past its end; dropped as the reference does",
                    file.path.display(),
                    s.name
                ),
            }
        }
        Ok(Block {
            file,
            len_ms,
            heldin_valid,
            heldout_valid,
            series_rows,
        })
    }
}

/// Grid rows of series samples, or `None` if any sample is off the 1 ms grid of `len_ms` rows.
fn on_grid_rows(times: &[f64], len_ms: i64) -> Option<Vec<i64>> {
    times
        .iter()
        .map(|&t| {
            let k = (t * 1000.0).round_ties_even();
            let on_grid = super::time::np_round(k / 1000.0, 6) == super::time::np_round(t, 6);
            (on_grid && k >= 0.0 && (k as i64) < len_ms).then_some(k as i64)
        })
        .collect()
}

/// Offset (ms) of each block: the next multiple of 100 ms at least 50 ms after the previous one.
fn block_offsets(lens: &[i64]) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(lens.len());
    let mut end = 0i64;
    for (i, &len) in lens.iter().enumerate() {
        let offset = if i == 0 {
            0
        } else {
            let last_row_s = (end - 1) as f64 / 1000.0;
            (((last_row_s + 0.05) * 10.0).ceil() * 100.0) as i64
        };
        offsets.push(offset);
        end = offset + len;
    }
    offsets
}

fn merge(folder: &Path, blocks: Vec<Block>) -> Session {
    let offsets = block_offsets(&blocks.iter().map(|b| b.len_ms).collect::<Vec<_>>());
    let len_ms = offsets.last().copied().unwrap_or(0) + blocks.last().map_or(0, |b| b.len_ms);
    let heldin = merge_group(&blocks, &offsets, false);
    let heldout = merge_group(&blocks, &offsets, true);
    let series = merge_series(&blocks, &offsets, len_ms);
    let trials = merge_trials(&blocks, &offsets);
    let files = blocks
        .iter()
        .zip(&offsets)
        .map(|(b, &offset)| (b.file.path.clone(), offset))
        .collect();
    Session {
        folder: folder.to_path_buf(),
        files,
        len_ms,
        heldin,
        heldout,
        series,
        trials,
    }
}

fn merge_group(blocks: &[Block], offsets: &[i64], heldout: bool) -> UnitGroup {
    let ids: BTreeSet<i64> = blocks
        .iter()
        .flat_map(|b| {
            let u = &b.file.units;
            u.ids
                .iter()
                .zip(&u.heldout)
                .filter(move |(_, &h)| h == heldout)
                .map(|(&id, _)| id)
        })
        .collect();
    let ids: Vec<i64> = ids.into_iter().collect();
    let mut spikes = vec![Vec::new(); ids.len()];
    let mut ranges = vec![Vec::new(); ids.len()];
    for (block, &offset) in blocks.iter().zip(offsets) {
        let valid = if heldout {
            &block.heldout_valid
        } else {
            &block.heldin_valid
        };
        let units = &block.file.units;
        for (u, &id) in units.ids.iter().enumerate() {
            if units.heldout[u] != heldout {
                continue;
            }
            let slot = ids.binary_search(&id).expect("id collected above");
            ranges[slot].extend(valid.shifted(offset));
            spikes[slot].extend(
                units.spike_times[u]
                    .iter()
                    .map(|&t| spike_row(t))
                    .filter(|&k| valid.contains(k))
                    .map(|k| k + offset),
            );
        }
    }
    for s in &mut spikes {
        s.sort_unstable();
    }
    UnitGroup {
        ids,
        spikes,
        valid: ranges.into_iter().map(Intervals::from_ranges).collect(),
    }
}

fn merge_series(blocks: &[Block], offsets: &[i64], len_ms: i64) -> Vec<FineSeries> {
    let mut out: Vec<FineSeries> = Vec::new();
    for (block, &offset) in blocks.iter().zip(offsets) {
        for (i, rows) in &block.series_rows {
            let s = &block.file.series[*i];
            let idx = match out.iter().position(|f| f.name == s.name) {
                Some(idx) => idx,
                None => {
                    out.push(FineSeries {
                        name: s.name.clone(),
                        channels: s.channels.clone(),
                        values: vec![vec![f64::NAN; len_ms as usize]; s.n_channels()],
                    });
                    out.len() - 1
                }
            };
            let target = &mut out[idx];
            let nc = s.n_channels().min(target.channels.len());
            for (sample, &row) in rows.iter().enumerate() {
                for c in 0..nc {
                    target.values[c][(row + offset) as usize] = s.data[sample * s.n_channels() + c];
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn merge_trials(blocks: &[Block], offsets: &[i64]) -> TrialTable {
    let mut table = TrialTable::default();
    for (block, &offset) in blocks.iter().zip(offsets) {
        let trials = &block.file.trials;
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
    table
}

/// Spike counts of one unit in bins of `q` rows over bins `first..first+out.len()`:
/// NaN where the bin's first row is unobserved (the reference's resampling rule).
pub fn bin_unit(spikes: &[i64], valid: &Intervals, q: i64, first: i64, out: &mut [f64]) {
    out.fill(0.0);
    let start = first * q;
    let end = (first + out.len() as i64) * q;
    let from = spikes.partition_point(|&k| k < start);
    for &k in spikes[from..].iter().take_while(|&&k| k < end) {
        out[(floor_div(k, q) - first) as usize] += 1.0;
    }
    valid.mask_unobserved(first, q, out);
}

/// Number of bins of width `q` rows covering `len_ms` rows (the last may be partial).
pub fn n_bins(len_ms: i64, q: i64) -> i64 {
    ceil_div(len_ms, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_query() {
        let iv = Intervals::from_ranges(vec![(5, 10), (0, 3), (9, 12), (20, 20)]);
        assert_eq!(iv.0, vec![(0, 3), (5, 12)]);
        assert!(iv.contains(0) && !iv.contains(3) && iv.contains(11) && !iv.contains(12));
        assert_eq!(iv.run(7), Some((5, 12)));
        assert_eq!(iv.run(4), None);
    }

    #[test]
    fn later_blocks_start_on_the_next_100ms_at_least_50ms_later() {
        assert_eq!(block_offsets(&[1000, 500]), vec![0, 1100]);
        assert_eq!(block_offsets(&[1061, 10, 10]), vec![0, 1200, 1300]);
    }

    #[test]
    fn binning_sums_rows_and_takes_nan_from_the_first_row() {
        let valid = Intervals(vec![(2, 9)]);
        let spikes = vec![2, 3, 3, 4, 8];
        let mut out = vec![0.0; 3];
        bin_unit(&spikes, &valid, 3, 0, &mut out);
        assert!(out[0].is_nan(), "row 0 unobserved");
        assert_eq!(out[1], 3.0);
        assert_eq!(out[2], 1.0);
    }

    #[test]
    fn series_samples_must_sit_on_the_grid() {
        assert_eq!(on_grid_rows(&[0.0, 0.001, 0.002], 3), Some(vec![0, 1, 2]));
        assert_eq!(on_grid_rows(&[0.0, 0.0015], 3), None);
        assert_eq!(on_grid_rows(&[0.003], 3), None);
    }
}
