//! NWB files (as DANDI lays them out) as plain typed records, read and written.
//!
//! Only what the NLB pipeline uses is read: the units table (spike times, observation intervals,
//! held-out flags), the trials table, and every TimeSeries in `/acquisition` and `/processing/*`.
//! [`NwbReader`] reads them one part at a time, so a caller can turn each into its own form and
//! drop it before the next is read; [`read`] reads a whole file. Nothing here knows about bins or
//! trial windows; that is `nlb`'s job.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::h5::H5Error;

mod read;
mod write;

pub use read::{read, NwbReader};
pub use write::write;

/// A problem with one NWB file, naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum NwbError {
    #[error(transparent)]
    H5(#[from] H5Error),
    #[error("{path}: field `{field}`: {msg}")]
    Field {
        path: PathBuf,
        field: String,
        msg: String,
    },
}

pub type Result<T> = std::result::Result<T, NwbError>;

/// The units table: one entry per unit, in file order.
#[derive(Debug, Clone, Default)]
pub struct Units {
    pub ids: Vec<i64>,
    /// Spike times in seconds, per unit.
    pub spike_times: Ragged<f64>,
    /// Observation intervals `[start, end]` in seconds, per unit.
    pub obs_intervals: Ragged<[f64; 2]>,
    pub heldout: Vec<bool>,
}

/// One trials-table column. Bools and integers are kept as numbers so that files where a
/// column is missing (NaN) can be merged the way pandas does.
#[derive(Debug, Clone)]
pub enum Column {
    Num(Vec<f64>),
    Str(Vec<String>),
}

/// The trials table: `id`, `start_time`, `stop_time` and every other 1-D column.
#[derive(Debug, Clone, Default)]
pub struct Trials {
    pub len: usize,
    pub columns: BTreeMap<String, Column>,
}

impl Trials {
    pub fn num(&self, name: &str) -> Option<&[f64]> {
        match self.columns.get(name) {
            Some(Column::Num(v)) => Some(v),
            _ => None,
        }
    }
}

/// A TimeSeries: samples in seconds and row-major `[samples, channels]` values.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub channels: Vec<String>,
    pub times: Vec<f64>,
    pub data: Vec<f64>,
}

impl Series {
    pub fn n_channels(&self) -> usize {
        self.channels.len()
    }
}

/// Everything the NLB pipeline reads from one NWB file.
#[derive(Debug, Clone)]
pub struct NwbFile {
    pub path: PathBuf,
    pub units: Units,
    pub trials: Trials,
    pub series: Vec<Series>,
}

/// One list per row, stored as NWB stores a ragged column: all values in one vector and each
/// row's end offset, so a table of millions of spike times is one allocation, not one per unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Ragged<T> {
    values: Vec<T>,
    ends: Vec<usize>,
}

impl<T> Default for Ragged<T> {
    fn default() -> Self {
        Ragged {
            values: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl<T> Ragged<T> {
    /// From the flat values and each row's end offset (ascending, at most `values.len()`).
    pub fn new(values: Vec<T>, ends: Vec<usize>) -> std::result::Result<Self, String> {
        let mut start = 0;
        for &end in &ends {
            if end < start || end > values.len() {
                return Err(format!(
                    "index {end} out of range {start}..{}",
                    values.len()
                ));
            }
            start = end;
        }
        Ok(Ragged { values, ends })
    }

    pub fn from_rows(rows: Vec<Vec<T>>) -> Self {
        let mut ends = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.iter().map(Vec::len).sum());
        for row in rows {
            values.extend(row);
            ends.push(values.len());
        }
        Ragged { values, ends }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every value, row after row.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    pub fn iter(&self) -> impl Iterator<Item = &[T]> + '_ {
        (0..self.len()).map(|i| &self[i])
    }
}

impl<T> std::ops::Index<usize> for Ragged<T> {
    type Output = [T];
    fn index(&self, row: usize) -> &[T] {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        &self.values[start..self.ends[row]]
    }
}

impl<T: Clone> From<Vec<Vec<T>>> for Ragged<T> {
    fn from(rows: Vec<Vec<T>>) -> Self {
        Ragged::from_rows(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::Ragged;

    #[test]
    fn ragged_rows_and_bad_offsets() {
        let r = Ragged::from_rows(vec![vec![1, 2], vec![], vec![3]]);
        assert_eq!(
            (r.len(), &r[0], &r[1], &r[2]),
            (3, &[1, 2][..], &[][..], &[3][..])
        );
        assert_eq!(r.iter().flatten().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(Ragged::new(vec![1, 2], vec![1, 3]).is_err());
        assert!(Ragged::new(vec![1, 2], vec![2, 1]).is_err());
    }
}
