//! Reading NWB files (as DANDI lays them out) into plain typed records.
//!
//! Only what the NLB pipeline uses is read: the units table (spike times, observation intervals,
//! held-out flags), the trials table, and every TimeSeries in `/acquisition` and `/processing/*`.
//! Nothing here knows about bins or trials windows; that is `nlb`'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::h5::{AtomicH5, Data, H5Error, H5File};

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
    /// Spike times in seconds.
    pub spike_times: Vec<Vec<f64>>,
    /// Observation intervals `[start, end]` in seconds.
    pub obs_intervals: Vec<Vec<[f64; 2]>>,
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

/// Reads one NWB file.
pub fn read(path: &Path) -> Result<NwbFile> {
    let f = H5File::open(path)?;
    let units = read_units(&f)?;
    let trials = read_trials(&f)?;
    let series = read_series(&f)?;
    Ok(NwbFile {
        path: path.to_path_buf(),
        units,
        trials,
        series,
    })
}

fn field_err(f: &H5File, field: &str, msg: impl Into<String>) -> NwbError {
    NwbError::Field {
        path: f.path().to_path_buf(),
        field: field.to_string(),
        msg: msg.into(),
    }
}

/// Splits a flat NWB VectorData by its VectorIndex (cumulative end offsets).
fn ragged<T: Clone>(f: &H5File, field: &str, flat: &[T], ends: &[i64]) -> Result<Vec<Vec<T>>> {
    let mut out = Vec::with_capacity(ends.len());
    let mut start = 0usize;
    for &end in ends {
        let end = usize::try_from(end).map_err(|_| field_err(f, field, "negative index"))?;
        if end < start || end > flat.len() {
            return Err(field_err(
                f,
                field,
                format!("index {end} out of range 0..{}", flat.len()),
            ));
        }
        out.push(flat[start..end].to_vec());
        start = end;
    }
    Ok(out)
}

fn read_units(f: &H5File) -> Result<Units> {
    let ids = f.read_i64("units/id")?;
    let n = ids.len();
    let times = f.read_f64("units/spike_times")?;
    let times: Vec<f64> = times.iter().copied().collect();
    let times_idx = f.read_i64("units/spike_times_index")?;
    let spike_times = ragged(f, "units/spike_times_index", &times, &times_idx)?;
    let obs = f.read_f64("units/obs_intervals")?;
    if obs.ndim() != 2 || obs.shape()[1] != 2 {
        return Err(field_err(
            f,
            "units/obs_intervals",
            format!("expected shape [n, 2], found {:?}", obs.shape()),
        ));
    }
    let pairs: Vec<[f64; 2]> = obs
        .as_slice()
        .expect("standard layout")
        .chunks(2)
        .map(|c| [c[0], c[1]])
        .collect();
    let obs_idx = f.read_i64("units/obs_intervals_index")?;
    let obs_intervals = ragged(f, "units/obs_intervals_index", &pairs, &obs_idx)?;
    let heldout = if f.has("units/heldout") {
        f.read_bool("units/heldout")?
    } else {
        vec![false; n]
    };
    for (name, len) in [
        ("units/spike_times_index", spike_times.len()),
        ("units/obs_intervals_index", obs_intervals.len()),
        ("units/heldout", heldout.len()),
    ] {
        if len != n {
            return Err(field_err(
                f,
                name,
                format!("{len} rows but units/id has {n}"),
            ));
        }
    }
    Ok(Units {
        ids,
        spike_times,
        obs_intervals,
        heldout,
    })
}

fn read_trials(f: &H5File) -> Result<Trials> {
    let base = "intervals/trials";
    if !f.is_group(base) {
        return Err(field_err(f, base, "no trials table"));
    }
    let names = f.members(base)?;
    let ids = f.read_i64(&format!("{base}/id"))?;
    let len = ids.len();
    let mut columns = BTreeMap::new();
    for name in &names {
        let path = format!("{base}/{name}");
        let ragged_col = names.contains(&format!("{name}_index"));
        if name.ends_with("_index") || ragged_col || f.is_group(&path) {
            continue;
        }
        let shape = f.shape(&path)?;
        if shape.len() != 1 || shape[0] != len {
            continue;
        }
        let col = match f.read_f64(&path) {
            Ok(v) => Column::Num(v.iter().copied().collect()),
            Err(_) => Column::Str(f.read_strings(&path)?),
        };
        columns.insert(name.clone(), col);
    }
    for required in ["start_time", "stop_time"] {
        if !columns.contains_key(required) {
            return Err(field_err(
                f,
                &format!("{base}/{required}"),
                "missing trials column",
            ));
        }
    }
    Ok(Trials { len, columns })
}

/// Walks `/acquisition` and each processing module, keeping every TimeSeries.
fn read_series(f: &H5File) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    if f.is_group("acquisition") {
        for name in f.members("acquisition")? {
            collect_series(f, &format!("acquisition/{name}"), &name, &mut out)?;
        }
    }
    if f.is_group("processing") {
        for module in f.members("processing")? {
            let mpath = format!("processing/{module}");
            if !f.is_group(&mpath) {
                continue;
            }
            for name in f.members(&mpath)? {
                collect_series(f, &format!("{mpath}/{name}"), &name, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn is_series(f: &H5File, path: &str) -> bool {
    f.is_group(path)
        && f.has(&format!("{path}/data"))
        && (f.has(&format!("{path}/timestamps")) || f.has(&format!("{path}/starting_time")))
}

/// A TimeSeries is named by itself; one inside a container is named `<container>_<series>`.
fn collect_series(f: &H5File, path: &str, name: &str, out: &mut Vec<Series>) -> Result<()> {
    if is_series(f, path) {
        out.push(read_one_series(f, path, name)?);
    } else if f.is_group(path) {
        for child in f.members(path)? {
            let cpath = format!("{path}/{child}");
            if is_series(f, &cpath) {
                out.push(read_one_series(f, &cpath, &format!("{name}_{child}"))?);
            }
        }
    }
    Ok(())
}

fn read_one_series(f: &H5File, path: &str, name: &str) -> Result<Series> {
    let data = f.read_f64(&format!("{path}/data"))?;
    let (rows, cols) = match data.ndim() {
        1 => (data.shape()[0], 1),
        2 => (data.shape()[0], data.shape()[1]),
        _ => {
            return Err(field_err(
                f,
                &format!("{path}/data"),
                format!("expected 1-D or 2-D data, found {:?}", data.shape()),
            ))
        }
    };
    let times: Vec<f64> = if f.has(&format!("{path}/timestamps")) {
        f.read_f64(&format!("{path}/timestamps"))?
            .iter()
            .copied()
            .collect()
    } else {
        let start_path = format!("{path}/starting_time");
        let start = f
            .read_f64(&start_path)?
            .iter()
            .copied()
            .next()
            .unwrap_or(0.0);
        let rate = f
            .attr_f64(&start_path, "rate")
            .ok_or_else(|| field_err(f, &start_path, "missing `rate` attribute"))?;
        (0..rows).map(|i| start + i as f64 / rate).collect()
    };
    if times.len() != rows {
        return Err(field_err(
            f,
            &format!("{path}/timestamps"),
            format!("{} timestamps for {rows} samples", times.len()),
        ));
    }
    Ok(Series {
        name: name.to_string(),
        channels: channel_names(f.attr_string(path, "comments").as_deref(), cols),
        times,
        data: data.iter().copied().collect(),
    })
}

/// Channel names from a `columns=[x,y]` comment, else `0000`, `0001`, ….
fn channel_names(comments: Option<&str>, cols: usize) -> Vec<String> {
    if let Some(c) = comments {
        if c.contains("columns=") {
            if let Some(open) = c.rfind('[') {
                if let Some(len) = c[open + 1..].find(']') {
                    let names: Vec<String> = c[open + 1..open + 1 + len]
                        .split(',')
                        .map(str::to_string)
                        .collect();
                    if names.len() == cols {
                        return names;
                    }
                }
            }
        }
    }
    (0..cols).map(|i| format!("{i:04}")).collect()
}

/// Writes an NWB file in the layout of the DANDI NLB files (units, trials, `processing/behavior`),
/// atomically. Bool-valued trial columns are listed in `bool_columns` so they are stored as bools.
pub fn write(path: &Path, file: &NwbFile, description: &str, bool_columns: &[&str]) -> Result<()> {
    let mut w = AtomicH5::create(path)?;
    w.attr_str("/", "namespace", "core")?;
    w.attr_str("/", "neurodata_type", "NWBFile")?;
    w.attr_str("/", "nwb_version", "2.5.0")?;
    let text = |v: &str| vec![v.to_string()];
    w.write(
        "identifier",
        Data::Strings(&text(&format!("langevin-{}", file.units.ids.len()))),
    )?;
    w.write("session_description", Data::Strings(&text(description)))?;
    w.write(
        "session_start_time",
        Data::Strings(&text("2026-01-01T00:00:00+00:00")),
    )?;
    w.write(
        "timestamps_reference_time",
        Data::Strings(&text("2026-01-01T00:00:00+00:00")),
    )?;
    for g in [
        "acquisition",
        "analysis",
        "processing",
        "stimulus/presentation",
        "stimulus/templates",
    ] {
        w.group(g)?;
    }
    write_units(&mut w, &file.units)?;
    write_trials(&mut w, &file.trials, bool_columns)?;
    for s in &file.series {
        let base = format!("processing/behavior/{}", s.name);
        let rows = s.times.len();
        w.write(
            &format!("{base}/data"),
            Data::F64(&s.data, vec![rows, s.n_channels()]),
        )?;
        w.write(
            &format!("{base}/timestamps"),
            Data::F64(&s.times, vec![rows]),
        )?;
        w.attr_str(
            &base,
            "comments",
            &format!("columns=[{}]", s.channels.join(",")),
        )?;
        w.attr_str(&base, "neurodata_type", "TimeSeries")?;
        w.attr_str(&base, "description", &s.name)?;
    }
    if !file.series.is_empty() {
        w.attr_str("processing/behavior", "neurodata_type", "ProcessingModule")?;
        w.attr_str(
            "processing/behavior",
            "description",
            "Processed behavioral data",
        )?;
    }
    Ok(w.commit()?)
}

fn ends(lens: impl Iterator<Item = usize>) -> Vec<i64> {
    lens.scan(0i64, |acc, n| {
        *acc += n as i64;
        Some(*acc)
    })
    .collect()
}

fn write_units(w: &mut AtomicH5, u: &Units) -> Result<()> {
    let n = u.ids.len();
    let times: Vec<f64> = u.spike_times.iter().flatten().copied().collect();
    let obs: Vec<f64> = u
        .obs_intervals
        .iter()
        .flatten()
        .flatten()
        .copied()
        .collect();
    w.write("units/id", Data::I64(&u.ids, vec![n]))?;
    w.write("units/spike_times", Data::F64(&times, vec![times.len()]))?;
    let idx = ends(u.spike_times.iter().map(Vec::len));
    w.write("units/spike_times_index", Data::I64(&idx, vec![n]))?;
    w.write(
        "units/obs_intervals",
        Data::F64(&obs, vec![obs.len() / 2, 2]),
    )?;
    let idx = ends(u.obs_intervals.iter().map(Vec::len));
    w.write("units/obs_intervals_index", Data::I64(&idx, vec![n]))?;
    w.write("units/heldout", Data::Bool(&u.heldout, vec![n]))?;
    w.attr_str("units", "neurodata_type", "Units")?;
    w.attr_str("units", "description", "Autogenerated by langevin synth")?;
    Ok(())
}

fn write_trials(w: &mut AtomicH5, t: &Trials, bool_columns: &[&str]) -> Result<()> {
    let ids: Vec<i64> = (0..t.len as i64).collect();
    w.write("intervals/trials/id", Data::I64(&ids, vec![t.len]))?;
    for (name, col) in &t.columns {
        let path = format!("intervals/trials/{name}");
        match col {
            Column::Num(v) if bool_columns.contains(&name.as_str()) => {
                let b: Vec<bool> = v.iter().map(|&x| x != 0.0).collect();
                w.write(&path, Data::Bool(&b, vec![t.len]))?;
            }
            Column::Num(v) => w.write(&path, Data::F64(v, vec![t.len]))?,
            Column::Str(v) => w.write(&path, Data::Strings(v))?,
        }
    }
    w.attr_str("intervals/trials", "neurodata_type", "TimeIntervals")?;
    w.attr_str("intervals/trials", "description", "experimental trials")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_follow_comments() {
        assert_eq!(channel_names(Some("columns=[x,y]"), 2), vec!["x", "y"]);
        assert_eq!(channel_names(None, 2), vec!["0000", "0001"]);
        assert_eq!(channel_names(Some("no columns here"), 1), vec!["0000"]);
    }
}
