//! The writer: NWB files in the DANDI NLB layout, for `synth`.

use std::path::Path;

use super::{Column, NwbFile, Result, Trials, Units};
use crate::h5::{AtomicH5, Data};

/// Writes an NWB file in the layout of the DANDI NLB files (units, trials, `processing/behavior`),
/// atomically. Bool-valued trial columns are listed in `bool_columns` so they are stored as bools.
/// Datasets are contiguous and uncompressed, as pynwb writes them by default and as the genuine
/// DANDI file in `tests/fixtures` stores them, so that reading a synthetic session costs what
/// reading a real one does (a gzip-compressed full-size session spends most of a preprocess
/// inflating behaviour series).
pub fn write(path: &Path, file: &NwbFile, description: &str, bool_columns: &[&str]) -> Result<()> {
    let mut w = AtomicH5::create(path)?;
    let identifier = format!("langevin-{}", file.units.ids.len());
    let ids = ObjectIds::new(description, &identifier, file);
    typed(&mut w, &ids, "/", "core", "NWBFile")?;
    w.attr_str("/", "nwb_version", "2.5.0")?;
    let text = |v: &str| vec![v.to_string()];
    let scalar_text = |w: &mut AtomicH5, name: &str, v: &str| -> Result<()> {
        Ok(w.write_uncompressed(name, Data::StringScalar(v))?)
    };
    scalar_text(&mut w, "identifier", &identifier)?;
    scalar_text(&mut w, "session_description", description)?;
    scalar_text(&mut w, "session_start_time", START_TIME)?;
    scalar_text(&mut w, "timestamps_reference_time", START_TIME)?;
    w.write_uncompressed("file_create_date", Data::Strings(&text(START_TIME)))?;
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
        w.write_uncompressed(&data, Data::F64(&s.data, vec![rows, s.n_channels()]))?;
        w.attr_f64(&data, "conversion", 1.0)?;
        w.attr_f64(&data, "offset", 0.0)?;
        w.attr_f64(&data, "resolution", -1.0)?;
        w.attr_str(&data, "unit", "a.u.")?;
        let stamps = format!("{base}/timestamps");
        w.write_uncompressed(&stamps, Data::F64(&s.times, vec![rows]))?;
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
    w.write_uncompressed("units/id", Data::I64(&u.ids, vec![n]))?;
    typed(w, ids, "units/id", "hdmf-common", "ElementIdentifiers")?;
    w.write_uncompressed("units/spike_times", Data::F64(&times, vec![times.len()]))?;
    vector_data(w, ids, "units/spike_times", "the spike times for each unit")?;
    let idx = ends(u.spike_times.iter().map(<[f64]>::len));
    w.write_uncompressed("units/spike_times_index", Data::U64(&idx, vec![n]))?;
    vector_index(w, ids, "units", "spike_times")?;
    w.write_uncompressed(
        "units/obs_intervals",
        Data::F64(&obs, vec![obs.len() / 2, 2]),
    )?;
    vector_data(
        w,
        ids,
        "units/obs_intervals",
        "the observation intervals for each unit",
    )?;
    let idx = ends(u.obs_intervals.iter().map(<[[f64; 2]]>::len));
    w.write_uncompressed("units/obs_intervals_index", Data::U64(&idx, vec![n]))?;
    vector_index(w, ids, "units", "obs_intervals")?;
    w.write_uncompressed("units/heldout", Data::Bool(&u.heldout, vec![n]))?;
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
    w.write_uncompressed(&format!("{base}/id"), Data::I64(&rows, vec![t.len]))?;
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
                w.write_uncompressed(&path, Data::Bool(&b, vec![t.len]))?;
            }
            Column::Num(v) => w.write_uncompressed(&path, Data::F64(v, vec![t.len]))?,
            Column::Str(v) => w.write_uncompressed(&path, Data::Strings(v))?,
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
    use std::path::PathBuf;

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
}
