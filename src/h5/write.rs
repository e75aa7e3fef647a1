//! Writing: a new file built under a temporary name beside its destination and renamed into
//! place, holding the dataset types and attributes NLB and NWB files use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rust_hdf5::{
    DatatypeMessage, FileLocking, H5Dataset, H5Group, H5Type, HBool, LibverBound, VarLenUnicode,
};

use super::{H5Error, Result};

/// One dataset to write: values, shape and on-disk type.
pub enum Data<'a> {
    F64(&'a [f64], Vec<usize>),
    I64(&'a [i64], Vec<usize>),
    U64(&'a [u64], Vec<usize>),
    Strings(&'a [String]),
    /// A scalar (0-D) string dataset, stored as fixed-length UTF-8 (what h5py writes for
    /// `numpy.bytes_`; pynwb and nlb_tools read it as a string).
    StringScalar(&'a str),
    F32(&'a [f32], Vec<usize>),
    I32(&'a [i32], Vec<usize>),
    Bool(&'a [bool], Vec<usize>),
    VlenI32(&'a [Vec<i32>]),
}

/// Writes a new HDF5 file next to its destination and renames it into place on `commit`,
/// so a crash never leaves a half-written file where a good one was.
pub struct AtomicH5 {
    file: Option<rust_hdf5::H5File>,
    tmp: PathBuf,
    dest: PathBuf,
    groups: HashSet<String>,
    datasets: HashSet<String>,
}

/// Where an attribute goes.
enum Location {
    Root,
    Group(H5Group),
    Dataset(H5Dataset),
}

/// h5py's boolean: an enum FALSE = 0, TRUE = 1 over a signed byte.
fn h5py_bool() -> DatatypeMessage {
    match DatatypeMessage::bool_type() {
        DatatypeMessage::Enum { members, .. } => DatatypeMessage::Enum {
            base: Box::new(DatatypeMessage::i8_type()),
            members,
        },
        other => other,
    }
}

/// h5py's chunk shape for a dataset of `shape` (`h5py._hl.filters.guess_chunk`): halve the
/// axes in turn until a chunk is near a target that grows with the dataset, 8 KiB to 1 MiB.
fn guess_chunk(shape: &[usize], type_size: usize) -> Vec<usize> {
    const BASE: f64 = 16.0 * 1024.0;
    const MIN: f64 = 8.0 * 1024.0;
    const MAX: f64 = 1024.0 * 1024.0;
    let mut chunks: Vec<f64> = shape.iter().map(|&d| d.max(1) as f64).collect();
    let bytes = |c: &[f64]| c.iter().product::<f64>() * type_size as f64;
    let target = (BASE * 2f64.powf((bytes(&chunks) / MAX).log10())).clamp(MIN, MAX);
    let mut axis = 0;
    loop {
        let size = bytes(&chunks);
        let near = size < target || (size - target).abs() / target < 0.5;
        if (near && size < MAX) || chunks.iter().product::<f64>() == 1.0 {
            break;
        }
        let i = axis % chunks.len();
        chunks[i] = (chunks[i] / 2.0).ceil();
        axis += 1;
    }
    chunks.into_iter().map(|c| c as usize).collect()
}

impl AtomicH5 {
    pub fn create(dest: &Path) -> Result<Self> {
        let tmp = crate::atomic::temp_path(dest);
        // The earliest format bound keeps the file readable by every HDF5 1.8+ reader; no
        // object times, so reruns give identical bytes.
        let file = rust_hdf5::H5File::options()
            .libver(LibverBound::Earliest)
            .track_times(false)
            .locking(FileLocking::BestEffort)
            .create(&tmp)
            .map_err(|e| H5Error::Write {
                path: dest.to_path_buf(),
                name: "/".into(),
                msg: e.to_string(),
            })?;
        Ok(Self {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
            groups: HashSet::new(),
            datasets: HashSet::new(),
        })
    }

    fn file(&self) -> &rust_hdf5::H5File {
        self.file.as_ref().expect("file open until commit")
    }

    fn write_err(&self, name: &str, e: impl std::fmt::Display) -> H5Error {
        H5Error::Write {
            path: self.dest.clone(),
            name: name.to_string(),
            msg: e.to_string(),
        }
    }

    /// Writes `data` at `name` ("group/key" creates the group if needed), gzip level 4.
    pub fn write(&mut self, name: &str, data: Data<'_>) -> Result<()> {
        self.write_with(name, data, true)
    }

    /// Writes `data` at `name` contiguous and uncompressed: for large float arrays that gzip
    /// barely shrinks (predicted rates: 12 % on a full-size submission) but that every reader
    /// would then have to inflate, and for NWB files, stored as pynwb and DANDI store them.
    pub fn write_uncompressed(&mut self, name: &str, data: Data<'_>) -> Result<()> {
        self.write_with(name, data, false)
    }

    fn write_with(&mut self, name: &str, data: Data<'_>, deflate: bool) -> Result<()> {
        let name = name.trim_start_matches('/');
        let (parent, key) = name.rsplit_once('/').unwrap_or(("", name));
        let group = self.group_handle(parent)?;
        let e = |e| self.write_err(name, e);
        match data {
            Data::F64(v, shape) => self.numeric(&group, name, key, v, &shape, deflate),
            Data::I64(v, shape) => self.numeric(&group, name, key, v, &shape, deflate),
            Data::U64(v, shape) => self.numeric(&group, name, key, v, &shape, deflate),
            Data::F32(v, shape) => self.numeric(&group, name, key, v, &shape, deflate),
            Data::I32(v, shape) => self.numeric(&group, name, key, v, &shape, deflate),
            Data::Bool(v, shape) => {
                let v: Vec<HBool> = v.iter().map(|&b| b.into()).collect();
                self.dataset(&group, name, key, &v, &shape, deflate, Some(h5py_bool()))
            }
            // String datasets stay uncompressed: compressed vlen strings are not portable.
            Data::Strings(v) => {
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                group.write_vlen_strings(key, &v).map(drop).map_err(e)
            }
            Data::StringScalar(v) => {
                let bytes = if v.is_empty() {
                    &[0u8][..]
                } else {
                    v.as_bytes()
                };
                let string = DatatypeMessage::FixedString {
                    size: bytes.len() as u32,
                    padding: 1,
                    charset: 1,
                };
                group
                    .new_dataset::<u8>()
                    .datatype(string)
                    .scalar()
                    .create(key)
                    .and_then(|ds| ds.write_raw_bytes(bytes))
                    .map_err(e)
            }
            Data::VlenI32(lists) => {
                let lists: Vec<&[i32]> = lists.iter().map(Vec::as_slice).collect();
                group.write_vlen_numeric(key, &lists).map(drop).map_err(e)
            }
        }?;
        self.datasets.insert(name.to_string());
        Ok(())
    }

    fn numeric<T: H5Type>(
        &self,
        group: &H5Group,
        name: &str,
        key: &str,
        values: &[T],
        shape: &[usize],
        deflate: bool,
    ) -> Result<()> {
        self.dataset(group, name, key, values, shape, deflate, None)
    }

    /// A dataset of `shape`: chunked as h5py would and gzip-4 (the reference's compression)
    /// when `deflate`, else contiguous. Scalars and empty arrays are never chunked.
    #[allow(clippy::too_many_arguments)]
    fn dataset<T: H5Type>(
        &self,
        group: &H5Group,
        name: &str,
        key: &str,
        values: &[T],
        shape: &[usize],
        deflate: bool,
        datatype: Option<DatatypeMessage>,
    ) -> Result<()> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            let msg = format!("{} values for shape {shape:?}", values.len());
            return Err(self.write_err(name, msg));
        }
        let mut builder = group.new_dataset::<T>().shape(shape);
        if let Some(dt) = datatype {
            builder = builder.datatype(dt);
        }
        let e = |e| self.write_err(name, e);
        if !deflate || n == 0 || shape.is_empty() {
            return builder
                .create(key)
                .and_then(|ds| ds.write_raw(values))
                .map_err(e);
        }
        let chunk = guess_chunk(shape, T::element_size());
        let ds = builder.chunk(&chunk).deflate(4).create(key).map_err(e)?;
        super::deflate::write_chunks(&ds, values, shape, &chunk, 4)
            .map_err(|m| self.write_err(name, m))
    }

    /// Creates an (empty) group, so that containers exist even without datasets.
    pub fn group(&mut self, name: &str) -> Result<()> {
        self.group_handle(name).map(drop)
    }

    /// The group at `name`, created level by level where missing.
    fn group_handle(&mut self, name: &str) -> Result<H5Group> {
        let mut group = self.file().root_group();
        let mut path = String::new();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            group = if self.groups.contains(&path) {
                group.group(part)
            } else {
                group.create_group(part)
            }
            .map_err(|e| self.write_err(name, e))?;
            self.groups.insert(path.clone());
        }
        Ok(group)
    }

    fn location(&self, object: &str) -> Result<Location> {
        let object = object.trim_matches('/');
        if object.is_empty() {
            return Ok(Location::Root);
        }
        let e = |e| self.write_err(object, e);
        if self.datasets.contains(object) {
            return self
                .file()
                .dataset_writer(object)
                .map(Location::Dataset)
                .map_err(e);
        }
        if self.groups.contains(object) {
            return self
                .file()
                .root_group()
                .group(object)
                .map(Location::Group)
                .map_err(e);
        }
        Err(self.write_err(object, "no such group or dataset written yet"))
    }

    fn attr_err(&self, object: &str, attr: &str, e: impl std::fmt::Display) -> H5Error {
        self.write_err(&format!("{object}@{attr}"), e)
    }

    /// Sets a string attribute on an existing group or dataset (`/` for the root).
    pub fn attr_str(&mut self, object: &str, attr: &str, value: &str) -> Result<()> {
        match self.location(object)? {
            Location::Root => self.file().set_attr_string(attr, value),
            Location::Group(g) => g.set_attr_string(attr, value),
            Location::Dataset(d) => d
                .new_attr::<VarLenUnicode>()
                .shape(())
                .create(attr)
                .and_then(|a| a.write_string(value)),
        }
        .map_err(|e| self.attr_err(object, attr, e))
    }

    /// Sets a float attribute on an existing group or dataset.
    pub fn attr_f64(&mut self, object: &str, attr: &str, value: f64) -> Result<()> {
        self.attr_number(object, attr, &value)
    }

    /// Sets an int32 attribute on an existing group or dataset.
    pub fn attr_i32(&mut self, object: &str, attr: &str, value: i32) -> Result<()> {
        self.attr_number(object, attr, &value)
    }

    fn attr_number<T: H5Type + 'static>(&self, object: &str, attr: &str, value: &T) -> Result<()> {
        match self.location(object)? {
            Location::Root => self.file().set_attr_numeric(attr, value),
            Location::Group(g) => g.set_attr_numeric(attr, value),
            Location::Dataset(d) => d
                .new_attr::<T>()
                .shape(())
                .create(attr)
                .and_then(|a| a.write_numeric(value)),
        }
        .map_err(|e| self.attr_err(object, attr, e))
    }

    /// Sets a 1-D string-array attribute (e.g. a table's `colnames`).
    pub fn attr_strs(&mut self, object: &str, attr: &str, values: &[String]) -> Result<()> {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        match self.location(object)? {
            Location::Root => self.file().set_attr_string_array(attr, &values),
            Location::Group(g) => g.set_attr_string_array(attr, &values),
            Location::Dataset(d) => d
                .new_attr::<VarLenUnicode>()
                .shape([values.len()])
                .create(attr)
                .and_then(|a| a.write_string_array(&values)),
        }
        .map_err(|e| self.attr_err(object, attr, e))
    }

    /// Sets an object-reference attribute on `object` pointing at `target` (both existing).
    pub fn attr_ref(&mut self, object: &str, attr: &str, target: &str) -> Result<()> {
        let target = format!("/{}", target.trim_start_matches('/'));
        match self.location(object)? {
            Location::Root => self.file().set_attr_object_reference(attr, &target),
            Location::Group(g) => g.set_attr_object_reference(attr, &target),
            Location::Dataset(d) => d
                .new_attr::<u64>()
                .shape(())
                .create(attr)
                .and_then(|a| a.write_object_references(&[target.as_str()])),
        }
        .map_err(|e| self.attr_err(object, attr, e))
    }

    /// Closes the temporary file and renames it over the destination; on failure the temporary
    /// file is removed and the destination is left as it was.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("file open until commit");
        let done = file
            .close()
            .map_err(|e| self.write_err("/", e))
            .and_then(|()| {
                std::fs::rename(&self.tmp, &self.dest).map_err(|e| self.write_err("/", e))
            });
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done
    }
}

impl Drop for AtomicH5 {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.close_no_sync();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::guess_chunk;

    #[test]
    fn chunks_as_h5py_guesses_them() {
        // What h5py 3.x's `guess_chunk` returns for these shapes (float32, and int64).
        assert_eq!(guess_chunk(&[100], 4), vec![100]);
        assert_eq!(guess_chunk(&[1721, 140, 182], 4), vec![108, 9, 23]);
        assert_eq!(guess_chunk(&[75, 140, 107], 4), vec![10, 35, 27]);
        assert_eq!(guess_chunk(&[1_000_000], 8), vec![3907]);
    }
}
