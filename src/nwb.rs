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
    let identifier = format!("langevin-{}", file.units.ids.len());
    let ids = ObjectIds::new(description, &identifier, file);
    typed(&mut w, &ids, "/", "core", "NWBFile")?;
    w.attr_str("/", "nwb_version", "2.5.0")?;
    let text = |v: &str| vec![v.to_string()];
    let scalar_text = |w: &mut AtomicH5, name: &str, v: &str| -> Result<()> {
        Ok(w.write(name, Data::StringScalar(v))?)
    };
    scalar_text(&mut w, "identifier", &identifier)?;
    scalar_text(&mut w, "session_description", description)?;
    scalar_text(&mut w, "session_start_time", START_TIME)?;
    scalar_text(&mut w, "timestamps_reference_time", START_TIME)?;
    w.write("file_create_date", Data::Strings(&text(START_TIME)))?;
    for g in [
        "acquisition",
        "analysis",
        "general",
        "processing",
        "stimulus/presentation",
        "stimulus/templates",
    ] {
        w.group(g)?;
    }
    write_units(&mut w, &ids, &file.units)?;
    write_trials(&mut w, &ids, &file.trials, bool_columns)?;
    if !file.series.is_empty() {
        let module = "processing/behavior";
        w.group(module)?;
        typed(&mut w, &ids, module, "core", "ProcessingModule")?;
        w.attr_str(module, "description", "Processed behavioral data")?;
    }
    for s in &file.series {
        let base = format!("processing/behavior/{}", s.name);
        let rows = s.times.len();
        let data = format!("{base}/data");
        w.write(&data, Data::F64(&s.data, vec![rows, s.n_channels()]))?;
        w.attr_f64(&data, "conversion", 1.0)?;
        w.attr_f64(&data, "offset", 0.0)?;
        w.attr_f64(&data, "resolution", -1.0)?;
        w.attr_str(&data, "unit", "a.u.")?;
        let stamps = format!("{base}/timestamps");
        w.write(&stamps, Data::F64(&s.times, vec![rows]))?;
        w.attr_i32(&stamps, "interval", 1)?;
        w.attr_str(&stamps, "unit", "seconds")?;
        w.attr_str(
            &base,
            "comments",
            &format!("columns=[{}]", s.channels.join(",")),
        )?;
        w.attr_str(&base, "description", &s.name)?;
        typed(&mut w, &ids, &base, "core", "TimeSeries")?;
    }
    Ok(w.commit()?)
}

/// Fixed session times, so that the same seed gives byte-identical files.
const START_TIME: &str = "2026-01-01T00:00:00+00:00";

/// Deterministic UUID4-shaped object ids: a hash of the file's identity and the object's path.
struct ObjectIds {
    seed: u64,
}

impl ObjectIds {
    fn new(description: &str, identifier: &str, file: &NwbFile) -> Self {
        let mut h = Fnv::new();
        h.bytes(description.as_bytes());
        h.bytes(identifier.as_bytes());
        h.u64(file.trials.len as u64);
        for &id in &file.units.ids {
            h.u64(id as u64);
        }
        for t in file.units.spike_times.iter().flatten() {
            h.u64(t.to_bits());
        }
        for s in &file.series {
            h.bytes(s.name.as_bytes());
            h.u64(s.times.len() as u64);
        }
        Self { seed: h.0 }
    }

    fn uuid(&self, object: &str) -> String {
        let mut a = Fnv(self.seed);
        a.bytes(object.as_bytes());
        let hi = splitmix(a.0);
        let lo = splitmix(hi ^ 0x9e37_79b9_7f4a_7c15);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hi.to_be_bytes());
        b[8..].copy_from_slice(&lo.to_be_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Marks `object` as an NWB/HDMF type: `namespace`, `neurodata_type` and `object_id`.
fn typed(w: &mut AtomicH5, ids: &ObjectIds, object: &str, ns: &str, ty: &str) -> Result<()> {
    w.attr_str(object, "namespace", ns)?;
    w.attr_str(object, "neurodata_type", ty)?;
    w.attr_str(object, "object_id", &ids.uuid(object))?;
    Ok(())
}

/// A `VectorData` column with its description.
fn vector_data(w: &mut AtomicH5, ids: &ObjectIds, path: &str, description: &str) -> Result<()> {
    typed(w, ids, path, "hdmf-common", "VectorData")?;
    w.attr_str(path, "description", description)?;
    Ok(())
}

/// A `VectorIndex` for the ragged column `target` of the same table.
fn vector_index(w: &mut AtomicH5, ids: &ObjectIds, table: &str, target: &str) -> Result<()> {
    let path = format!("{table}/{target}_index");
    typed(w, ids, &path, "hdmf-common", "VectorIndex")?;
    w.attr_str(
        &path,
        "description",
        &format!("Index for VectorData '{target}'"),
    )?;
    w.attr_ref(&path, "target", &format!("{table}/{target}"))?;
    Ok(())
}

fn ends(lens: impl Iterator<Item = usize>) -> Vec<u64> {
    lens.scan(0u64, |acc, n| {
        *acc += n as u64;
        Some(*acc)
    })
    .collect()
}

fn write_units(w: &mut AtomicH5, ids: &ObjectIds, u: &Units) -> Result<()> {
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
    typed(w, ids, "units/id", "hdmf-common", "ElementIdentifiers")?;
    w.write("units/spike_times", Data::F64(&times, vec![times.len()]))?;
    vector_data(w, ids, "units/spike_times", "the spike times for each unit")?;
    let idx = ends(u.spike_times.iter().map(Vec::len));
    w.write("units/spike_times_index", Data::U64(&idx, vec![n]))?;
    vector_index(w, ids, "units", "spike_times")?;
    w.write(
        "units/obs_intervals",
        Data::F64(&obs, vec![obs.len() / 2, 2]),
    )?;
    vector_data(
        w,
        ids,
        "units/obs_intervals",
        "the observation intervals for each unit",
    )?;
    let idx = ends(u.obs_intervals.iter().map(Vec::len));
    w.write("units/obs_intervals_index", Data::U64(&idx, vec![n]))?;
    vector_index(w, ids, "units", "obs_intervals")?;
    w.write("units/heldout", Data::Bool(&u.heldout, vec![n]))?;
    vector_data(
        w,
        ids,
        "units/heldout",
        "Whether the unit is held out in the test data (True) or not (False)",
    )?;
    typed(w, ids, "units", "core", "Units")?;
    w.attr_str("units", "description", "Autogenerated by langevin synth")?;
    let colnames = ["heldout", "spike_times", "obs_intervals"].map(String::from);
    w.attr_strs("units", "colnames", &colnames)?;
    Ok(())
}

fn write_trials(
    w: &mut AtomicH5,
    ids: &ObjectIds,
    t: &Trials,
    bool_columns: &[&str],
) -> Result<()> {
    let base = "intervals/trials";
    let rows: Vec<i64> = (0..t.len as i64).collect();
    w.write(&format!("{base}/id"), Data::I64(&rows, vec![t.len]))?;
    typed(
        w,
        ids,
        &format!("{base}/id"),
        "hdmf-common",
        "ElementIdentifiers",
    )?;
    // TimeIntervals wants start_time and stop_time first.
    let mut colnames: Vec<String> = ["start_time", "stop_time"]
        .iter()
        .filter(|c| t.columns.contains_key(**c))
        .map(|c| c.to_string())
        .collect();
    colnames.extend(
        t.columns
            .keys()
            .filter(|k| k.as_str() != "start_time" && k.as_str() != "stop_time")
            .cloned(),
    );
    for name in &colnames {
        let path = format!("{base}/{name}");
        match &t.columns[name] {
            Column::Num(v) if bool_columns.contains(&name.as_str()) => {
                let b: Vec<bool> = v.iter().map(|&x| x != 0.0).collect();
                w.write(&path, Data::Bool(&b, vec![t.len]))?;
            }
            Column::Num(v) => w.write(&path, Data::F64(v, vec![t.len]))?,
            Column::Str(v) => w.write(&path, Data::Strings(v))?,
        }
        let description = match name.as_str() {
            "start_time" => "Start time of epoch, in seconds",
            "stop_time" => "Stop time of epoch, in seconds",
            other => other,
        };
        vector_data(w, ids, &path, description)?;
    }
    typed(w, ids, base, "core", "TimeIntervals")?;
    w.attr_str(base, "description", "experimental trials")?;
    w.attr_strs(base, "colnames", &colnames)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_stable_uuid4s() {
        let file = NwbFile {
            path: PathBuf::new(),
            units: Units::default(),
            trials: Trials::default(),
            series: Vec::new(),
        };
        let ids = ObjectIds::new("d", "i", &file);
        let a = ids.uuid("units");
        assert_eq!(a, ObjectIds::new("d", "i", &file).uuid("units"));
        assert_ne!(a, ids.uuid("units/id"));
        assert_ne!(a, ObjectIds::new("e", "i", &file).uuid("units"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!("89ab".contains(&parts[3][..1]));
    }

    #[test]
    fn channel_names_follow_comments() {
        assert_eq!(channel_names(Some("columns=[x,y]"), 2), vec!["x", "y"]);
        assert_eq!(channel_names(None, 2), vec!["0000", "0001"]);
        assert_eq!(channel_names(Some("no columns here"), 1), vec!["0000"]);
    }
}
