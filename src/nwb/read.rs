//! The reader: one NWB file opened once, its parts read on request.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Column, NwbError, NwbFile, Ragged, Result, Series, Trials, Units};
use crate::h5::H5File;

/// Reads one NWB file whole.
pub fn read(path: &Path) -> Result<NwbFile> {
    let r = NwbReader::open(path)?;
    let series = r
        .series_paths()?
        .iter()
        .map(|(path, name)| r.series(path, name))
        .collect::<Result<_>>()?;
    Ok(NwbFile {
        path: path.to_path_buf(),
        units: r.units()?,
        trials: r.trials()?,
        series,
    })
}

/// One open NWB file. Each part (units, trials, each series) is read when asked for, so that a
/// caller holding a session of several files can convert and drop each before reading the next.
pub struct NwbReader {
    f: H5File,
}

impl NwbReader {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(NwbReader {
            f: H5File::open(path)?,
        })
    }

    pub fn path(&self) -> &Path {
        self.f.path()
    }

    /// The units table.
    pub fn units(&self) -> Result<Units> {
        read_units(&self.f)
    }

    /// The trials table.
    pub fn trials(&self) -> Result<Trials> {
        read_trials(&self.f)
    }

    /// `(path, name)` of every TimeSeries in `/acquisition` and each processing module; one
    /// inside a container is named `<container>_<series>`.
    pub fn series_paths(&self) -> Result<Vec<(String, String)>> {
        series_paths(&self.f)
    }

    /// The TimeSeries at `path`, called `name`.
    pub fn series(&self, path: &str, name: &str) -> Result<Series> {
        read_one_series(&self.f, path, name)
    }
}

fn field_err(f: &H5File, field: &str, msg: impl Into<String>) -> NwbError {
    NwbError::Field {
        path: f.path().to_path_buf(),
        field: field.to_string(),
        msg: msg.into(),
    }
}

/// A flat NWB VectorData split by its VectorIndex (cumulative end offsets).
fn ragged<T>(f: &H5File, field: &str, flat: Vec<T>, ends: &[i64]) -> Result<Ragged<T>> {
    let ends = ends
        .iter()
        .map(|&e| usize::try_from(e).map_err(|_| field_err(f, field, "negative index")))
        .collect::<Result<Vec<usize>>>()?;
    Ragged::new(flat, ends).map_err(|msg| field_err(f, field, msg))
}

fn read_units(f: &H5File) -> Result<Units> {
    let ids = f.read_i64("units/id")?;
    let n = ids.len();
    let times = f.read_f64("units/spike_times")?;
    let times = times.into_raw_vec_and_offset().0;
    let times_idx = f.read_i64("units/spike_times_index")?;
    let spike_times = ragged(f, "units/spike_times_index", times, &times_idx)?;
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
    let obs_intervals = ragged(f, "units/obs_intervals_index", pairs, &obs_idx)?;
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

/// Walks `/acquisition` and each processing module for TimeSeries.
fn series_paths(f: &H5File) -> Result<Vec<(String, String)>> {
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
fn collect_series(
    f: &H5File,
    path: &str,
    name: &str,
    out: &mut Vec<(String, String)>,
) -> Result<()> {
    if is_series(f, path) {
        out.push((path.to_string(), name.to_string()));
    } else if f.is_group(path) {
        for child in f.members(path)? {
            let cpath = format!("{path}/{child}");
            if is_series(f, &cpath) {
                out.push((cpath, format!("{name}_{child}")));
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
            .into_raw_vec_and_offset()
            .0
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
        data: data.into_raw_vec_and_offset().0,
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

#[cfg(test)]
mod tests {
    use super::channel_names;

    #[test]
    fn channel_names_follow_comments() {
        assert_eq!(channel_names(Some("columns=[x,y]"), 2), vec!["x", "y"]);
        assert_eq!(channel_names(None, 2), vec!["0000", "0001"]);
        assert_eq!(channel_names(Some("no columns here"), 1), vec!["0000"]);
    }
}
