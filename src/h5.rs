//! Every HDF5 access of the crate goes through this module, so the HDF5 backend stays swappable.
//!
//! We use the C bindings `hdf5-metno` with HDF5 built from source and linked statically: the
//! pure-Rust `hdf5-pure` 0.47 reads our files but has no public API to write or read the
//! variable-length int32 sequences (`eval_cond_idx`) that NLB target files hold (see README).
//!
//! Reads accept any stored float width (f16, f32, f64) and any integer width; writes use the dtypes
//! of the current nlb_tools: float32, int32, HDF5 boolean enums, vlen int32 lists, gzip level 4.

#[cfg(unix)]
mod chunks;

use std::path::{Path, PathBuf};

use hdf5::types::{TypeDescriptor, VarLenArray, VarLenAscii, VarLenUnicode};
use ndarray::{Array3, ArrayD, Ix3, IxDyn};

/// An HDF5 problem, always naming the file and the object so a user can find it.
#[derive(Debug, thiserror::Error)]
pub enum H5Error {
    #[error("{path}: not a readable HDF5 file ({msg})")]
    Open { path: PathBuf, msg: String },
    #[error("{path}: missing `{name}`")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: cannot read `{name}`: {msg}")]
    Read {
        path: PathBuf,
        name: String,
        msg: String,
    },
    #[error("{path}: cannot write `{name}`: {msg}")]
    Write {
        path: PathBuf,
        name: String,
        msg: String,
    },
}

pub type Result<T> = std::result::Result<T, H5Error>;

/// A float array as stored: f32 files (every NLB tensor and submission) or f64.
pub enum Floats {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

impl Floats {
    pub fn shape(&self) -> &[usize] {
        match self {
            Floats::F32(a) => a.shape(),
            Floats::F64(a) => a.shape(),
        }
    }
}

/// Asks Linux to back a large, not yet touched buffer with 2 MiB pages (a hint only).
fn advise_huge_pages<T>(v: &[T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let (lo, hi) = ((start + HUGE - 1) & !(HUGE - 1), end & !(HUGE - 1));
        if hi > lo {
            // SAFETY: the range lies inside the slice's own allocation; MADV_HUGEPAGE changes
            // no contents.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
}

/// A read-only HDF5 file that remembers its path for error messages.
pub struct H5File {
    file: hdf5::File,
    path: PathBuf,
}

impl H5File {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(H5Error::Open {
                path: path.to_path_buf(),
                msg: "no such file".into(),
            });
        }
        let file = hdf5::File::open(path).map_err(|e| H5Error::Open {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a link exists at `name`, checking each parent first (HDF5 fails on a missing parent).
    pub fn has(&self, name: &str) -> bool {
        let mut prefix = String::new();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !self.file.link_exists(&prefix) {
                return false;
            }
        }
        !prefix.is_empty()
    }

    pub fn is_group(&self, name: &str) -> bool {
        self.has(name) && self.file.group(name).is_ok()
    }

    /// Names of the direct members of a group, sorted.
    pub fn members(&self, group: &str) -> Result<Vec<String>> {
        let g = self.group(group)?;
        let mut names = g.member_names().map_err(|e| self.read_err(group, e))?;
        names.sort();
        Ok(names)
    }

    fn group(&self, name: &str) -> Result<hdf5::Group> {
        if !self.has(name) && name != "/" {
            return Err(self.missing(name));
        }
        self.file.group(name).map_err(|e| self.read_err(name, e))
    }

    fn dataset(&self, name: &str) -> Result<hdf5::Dataset> {
        if !self.has(name) {
            return Err(self.missing(name));
        }
        self.file.dataset(name).map_err(|e| self.read_err(name, e))
    }

    fn missing(&self, name: &str) -> H5Error {
        H5Error::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        }
    }

    fn read_err(&self, name: &str, e: impl std::fmt::Display) -> H5Error {
        H5Error::Read {
            path: self.path.clone(),
            name: name.to_string(),
            msg: e.to_string(),
        }
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.dataset(name)?.shape())
    }

    fn descriptor(&self, name: &str, ds: &hdf5::Dataset) -> Result<TypeDescriptor> {
        ds.dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(|e| self.read_err(name, e))
    }

    /// Any numeric or boolean dataset as f64 (f16/f32/f64, ints, bool enums).
    pub fn read_f64(&self, name: &str) -> Result<ArrayD<f64>> {
        let ds = self.dataset(name)?;
        let shape = ds.shape();
        let desc = self.descriptor(name, &ds)?;
        let flat: Vec<f64> = match desc {
            TypeDescriptor::Float(hdf5::types::FloatSize::U2) => ds
                .read_raw::<half::f16>()
                .map(|v| v.into_iter().map(f64::from).collect()),
            // HDF5's own f32 → f64 conversion runs element by element through a type-conversion
            // path several times slower than reading the stored type and widening here.
            TypeDescriptor::Float(hdf5::types::FloatSize::U4) => {
                return match self.read_floats(name)? {
                    Floats::F32(a) => Ok(a.mapv(f64::from)),
                    Floats::F64(a) => Ok(a),
                };
            }
            TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                ds.read_raw::<f64>()
            }
            TypeDescriptor::Boolean => ds
                .read_raw::<bool>()
                .map(|v| v.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect()),
            TypeDescriptor::Enum(_) => ds
                .read_raw::<i64>()
                .map(|v| v.into_iter().map(|x| x as f64).collect()),
            other => {
                return Err(self.read_err(name, format!("expected numbers, found {other:?}")));
            }
        }
        .map_err(|e| self.read_err(name, e))?;
        ArrayD::from_shape_vec(IxDyn(&shape), flat).map_err(|e| self.read_err(name, e))
    }

    pub fn read_f32(&self, name: &str) -> Result<ArrayD<f32>> {
        match self.read_floats(name)? {
            Floats::F32(a) => Ok(a),
            Floats::F64(a) => Ok(a.mapv(|x| x as f32)),
        }
    }

    /// A spike-count tensor `[trials, bins, neurons]`, NaN counts (bins outside a recording) set
    /// to 0 with a warning: training, prediction and the smoothing baseline all need finite
    /// counts, since a NaN poisons a gradient, a kernel's width of smoothed bins or a GLM fit.
    pub fn read_counts(&self, name: &str) -> Result<Array3<f32>> {
        let a = self.read_f32(name)?;
        let shape = a.shape().to_vec();
        let mut a = a.into_dimensionality::<Ix3>().map_err(|_| {
            self.read_err(
                name,
                format!("shape {shape:?}; expected [trials, bins, neurons]"),
            )
        })?;
        let mut nans = 0usize;
        a.mapv_inplace(|v| {
            if v.is_nan() {
                nans += 1;
                0.0
            } else {
                v
            }
        });
        if nans > 0 {
            tracing::warn!(
                "{}: {nans} NaN spike counts in `{name}` replaced by 0",
                self.path.display()
            );
        }
        Ok(a)
    }

    /// A float dataset in its stored precision (f32 stays f32, anything else becomes f64), so
    /// that big rate arrays are read without a widened copy the caller would copy again.
    pub fn read_floats(&self, name: &str) -> Result<Floats> {
        let ds = self.dataset(name)?;
        if let TypeDescriptor::Float(hdf5::types::FloatSize::U4) = self.descriptor(name, &ds)? {
            let flat = match self.read_chunked_f32(name, &ds)? {
                Some(flat) => flat,
                None => {
                    // Zeroed memory straight from the OS, backed by huge pages before HDF5 first
                    // touches it: a full-size submission is a quarter of a gigabyte, and faulting
                    // that in 4 KiB at a time costs as much as reading it.
                    let mut flat = vec![0f32; ds.size()];
                    advise_huge_pages(&flat);
                    ds.read_into_raw(&mut flat)
                        .map_err(|e| self.read_err(name, e))?;
                    flat
                }
            };
            return ArrayD::from_shape_vec(IxDyn(&ds.shape()), flat)
                .map(Floats::F32)
                .map_err(|e| self.read_err(name, e));
        }
        self.read_f64(name).map(Floats::F64)
    }

    /// A chunked gzip float32 dataset inflated on every core ([`chunks`]), or `None` for any
    /// other layout.
    #[cfg_attr(not(unix), allow(unused_variables))]
    fn read_chunked_f32(&self, name: &str, ds: &hdf5::Dataset) -> Result<Option<Vec<f32>>> {
        #[cfg(unix)]
        return chunks::read_f32(&self.file, &self.path, ds).map_err(|e| self.read_err(name, e));
        #[cfg(not(unix))]
        return Ok(None);
    }

    /// Integer dataset (any width) as i64.
    pub fn read_i64(&self, name: &str) -> Result<Vec<i64>> {
        let ds = self.dataset(name)?;
        match self.descriptor(name, &ds)? {
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                ds.read_raw::<i64>().map_err(|e| self.read_err(name, e))
            }
            TypeDescriptor::Boolean => {
                Ok(self.read_bool(name)?.into_iter().map(i64::from).collect())
            }
            other => Err(self.read_err(name, format!("expected integers, found {other:?}"))),
        }
    }

    pub fn read_bool(&self, name: &str) -> Result<Vec<bool>> {
        let ds = self.dataset(name)?;
        match self.descriptor(name, &ds)? {
            TypeDescriptor::Boolean => ds.read_raw::<bool>().map_err(|e| self.read_err(name, e)),
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Enum(_) => {
                Ok(ds
                    .read_raw::<i64>()
                    .map_err(|e| self.read_err(name, e))?
                    .into_iter()
                    .map(|x| x != 0)
                    .collect())
            }
            other => Err(self.read_err(name, format!("expected booleans, found {other:?}"))),
        }
    }

    /// A 1-D string dataset, fixed or variable length, ASCII or UTF-8.
    pub fn read_strings(&self, name: &str) -> Result<Vec<String>> {
        let ds = self.dataset(name)?;
        let e = |e| self.read_err(name, e);
        match self.descriptor(name, &ds)? {
            TypeDescriptor::VarLenUnicode => Ok(ds
                .read_raw::<VarLenUnicode>()
                .map_err(e)?
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect()),
            TypeDescriptor::VarLenAscii => Ok(ds
                .read_raw::<VarLenAscii>()
                .map_err(e)?
                .into_iter()
                .map(|s| s.as_str().to_string())
                .collect()),
            TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
                let bytes = ds.as_byte_reader().map_err(e)?;
                let raw: Vec<u8> = std::io::Read::bytes(bytes)
                    .collect::<std::io::Result<_>>()
                    .map_err(|err| self.read_err(name, err))?;
                Ok(raw
                    .chunks(n.max(1))
                    .map(|c| {
                        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                        String::from_utf8_lossy(&c[..end]).into_owned()
                    })
                    .collect())
            }
            other => Err(self.read_err(name, format!("expected strings, found {other:?}"))),
        }
    }

    /// A 1-D variable-length integer dataset (per-condition index lists).
    pub fn read_vlen_i64(&self, name: &str) -> Result<Vec<Vec<i64>>> {
        let ds = self.dataset(name)?;
        match self.descriptor(name, &ds)? {
            TypeDescriptor::VarLenArray(_) => Ok(ds
                .read_raw::<VarLenArray<i64>>()
                .map_err(|e| self.read_err(name, e))?
                .into_iter()
                .map(|a| a.as_slice().to_vec())
                .collect()),
            other => Err(self.read_err(name, format!("expected vlen ints, found {other:?}"))),
        }
    }

    /// A string attribute of an object, if present.
    pub fn attr_string(&self, object: &str, attr: &str) -> Option<String> {
        let loc = self.location(object)?;
        let a = loc.attr(attr).ok()?;
        if let Ok(s) = a.read_scalar::<VarLenUnicode>() {
            return Some(s.as_str().to_string());
        }
        if let Ok(s) = a.read_scalar::<VarLenAscii>() {
            return Some(s.as_str().to_string());
        }
        None
    }

    /// A numeric scalar attribute of an object, if present.
    pub fn attr_f64(&self, object: &str, attr: &str) -> Option<f64> {
        let loc = self.location(object)?;
        loc.attr(attr).ok()?.read_scalar::<f64>().ok()
    }

    fn location(&self, object: &str) -> Option<hdf5::Location> {
        if !self.has(object) {
            return None;
        }
        if let Ok(ds) = self.file.dataset(object) {
            let loc: &hdf5::Location = &ds;
            return Some(loc.clone());
        }
        let group = self.file.group(object).ok()?;
        let loc: &hdf5::Location = &group;
        Some(loc.clone())
    }
}

/// One dataset to write: values, shape and on-disk type.
pub enum Data<'a> {
    F64(&'a [f64], Vec<usize>),
    I64(&'a [i64], Vec<usize>),
    U64(&'a [u64], Vec<usize>),
    Strings(&'a [String]),
    /// A scalar (0-D) string dataset.
    StringScalar(&'a str),
    F32(&'a [f32], Vec<usize>),
    I32(&'a [i32], Vec<usize>),
    Bool(&'a [bool], Vec<usize>),
    VlenI32(&'a [Vec<i32>]),
}

/// Writes a new HDF5 file next to its destination and renames it into place on `commit`,
/// so a crash never leaves a half-written file where a good one was.
pub struct AtomicH5 {
    file: Option<hdf5::File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicH5 {
    pub fn create(dest: &Path) -> Result<Self> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let mut options = hdf5::File::with_options();
        options.with_fcpl(|p| p.obj_track_times(false));
        let file = options.create(&tmp).map_err(|e| H5Error::Write {
            path: dest.to_path_buf(),
            name: "/".into(),
            msg: e.to_string(),
        })?;
        Ok(Self {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
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
    /// would then have to inflate.
    pub fn write_uncompressed(&mut self, name: &str, data: Data<'_>) -> Result<()> {
        self.write_with(name, data, false)
    }

    fn write_with(&mut self, name: &str, data: Data<'_>, deflate: bool) -> Result<()> {
        let file = self.file.as_ref().expect("file open until commit");
        let (parent, key) = match name.rsplit_once('/') {
            Some((g, k)) => {
                self.group(g)?;
                let file = self.file.as_ref().expect("file open until commit");
                (file.group(g).map_err(|e| self.write_err(name, e))?, k)
            }
            None => (file.as_group().map_err(|e| self.write_err(name, e))?, name),
        };
        let builder = parent.new_dataset_builder();
        let result = match data {
            Data::F64(v, shape) => self.numeric(builder, name, key, v, &shape, deflate)?,
            Data::I64(v, shape) => self.numeric(builder, name, key, v, &shape, deflate)?,
            Data::U64(v, shape) => self.numeric(builder, name, key, v, &shape, deflate)?,
            Data::F32(v, shape) => self.numeric(builder, name, key, v, &shape, deflate)?,
            Data::I32(v, shape) => self.numeric(builder, name, key, v, &shape, deflate)?,
            Data::Bool(v, shape) => self.numeric(builder, name, key, v, &shape, deflate)?,
            Data::Strings(v) => {
                let vl = v
                    .iter()
                    .map(|s| s.parse::<VarLenUnicode>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| self.write_err(name, e))?;
                builder.with_data(&vl).create(key)
            }
            Data::StringScalar(v) => {
                let vl: VarLenUnicode = v.parse().map_err(|e| self.write_err(name, e))?;
                builder
                    .with_data(&ndarray::Array0::from_elem((), vl))
                    .create(key)
            }
            Data::VlenI32(lists) => {
                let vl: Vec<VarLenArray<i32>> =
                    lists.iter().map(|l| VarLenArray::from_slice(l)).collect();
                builder.deflate(4).with_data(&vl).create(key)
            }
        };
        result.map(|_| ()).map_err(|e| self.write_err(name, e))
    }

    /// A dataset of `shape`, gzip-4 (the reference's compression) when `deflate`, created but not
    /// yet checked.
    fn numeric<T: hdf5::H5Type + Clone>(
        &self,
        builder: hdf5::DatasetBuilder,
        name: &str,
        key: &str,
        values: &[T],
        shape: &[usize],
        deflate: bool,
    ) -> Result<hdf5::Result<hdf5::Dataset>> {
        let array = self.shaped(name, values, shape)?;
        Ok(if deflate {
            builder.deflate(4).with_data(&array).create(key)
        } else {
            builder.with_data(&array).create(key)
        })
    }

    /// Creates an (empty) group, so that containers exist even without datasets.
    pub fn group(&mut self, name: &str) -> Result<()> {
        let file = self.file.as_ref().expect("file open until commit");
        let mut path = String::new();
        for part in name.split('/').filter(|p| !p.is_empty()) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            if !file.link_exists(&path) {
                // Created level by level: intermediate groups made by HDF5 itself would record
                // creation times and break byte-identical reruns.
                file.create_group_builder()
                    .obj_track_times(false)
                    .create(path.as_str())
                    .map_err(|e| self.write_err(name, e))?;
            }
        }
        Ok(())
    }

    /// Sets a string attribute on an existing group or dataset (`/` for the root).
    pub fn attr_str(&mut self, object: &str, attr: &str, value: &str) -> Result<()> {
        let loc = self.location(object)?;
        let v: VarLenUnicode = value.parse().map_err(|e| self.write_err(object, e))?;
        loc.new_attr::<VarLenUnicode>()
            .create(attr)
            .and_then(|a| a.write_scalar(&v))
            .map_err(|e| self.write_err(&format!("{object}@{attr}"), e))
    }

    /// Sets a float attribute on an existing group or dataset.
    pub fn attr_f64(&mut self, object: &str, attr: &str, value: f64) -> Result<()> {
        let loc = self.location(object)?;
        loc.new_attr::<f64>()
            .create(attr)
            .and_then(|a| a.write_scalar(&value))
            .map_err(|e| self.write_err(&format!("{object}@{attr}"), e))
    }

    /// Sets an int32 attribute on an existing group or dataset.
    pub fn attr_i32(&mut self, object: &str, attr: &str, value: i32) -> Result<()> {
        let loc = self.location(object)?;
        loc.new_attr::<i32>()
            .create(attr)
            .and_then(|a| a.write_scalar(&value))
            .map_err(|e| self.write_err(&format!("{object}@{attr}"), e))
    }

    /// Sets a 1-D string-array attribute (e.g. a table's `colnames`).
    pub fn attr_strs(&mut self, object: &str, attr: &str, values: &[String]) -> Result<()> {
        let loc = self.location(object)?;
        let vl = values
            .iter()
            .map(|s| s.parse::<VarLenUnicode>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.write_err(object, e))?;
        loc.new_attr_builder()
            .with_data(&vl)
            .create(attr)
            .map(|_| ())
            .map_err(|e| self.write_err(&format!("{object}@{attr}"), e))
    }

    /// Sets an object-reference attribute on `object` pointing at `target` (both existing).
    pub fn attr_ref(&mut self, object: &str, attr: &str, target: &str) -> Result<()> {
        let file = self.file.as_ref().expect("file open until commit");
        let r: hdf5::ObjectReference1 = file
            .reference(target)
            .map_err(|e| self.write_err(target, e))?;
        let loc = self.location(object)?;
        loc.new_attr::<hdf5::ObjectReference1>()
            .create(attr)
            .and_then(|a| a.write_scalar(&r))
            .map_err(|e| self.write_err(&format!("{object}@{attr}"), e))
    }

    fn location(&self, object: &str) -> Result<hdf5::Location> {
        let file = self.file.as_ref().expect("file open until commit");
        if object == "/" {
            let loc: &hdf5::Location = file;
            return Ok(loc.clone());
        }
        if let Ok(ds) = file.dataset(object) {
            let loc: &hdf5::Location = &ds;
            return Ok(loc.clone());
        }
        let g = file.group(object).map_err(|e| self.write_err(object, e))?;
        let loc: &hdf5::Location = &g;
        Ok(loc.clone())
    }

    fn shaped<T: Clone>(&self, name: &str, v: &[T], shape: &[usize]) -> Result<ArrayD<T>> {
        ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).map_err(|e| self.write_err(name, e))
    }

    /// Closes the temporary file and renames it over the destination.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("file open until commit");
        file.close().map_err(|e| self.write_err("/", e))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| self.write_err("/", e))
    }
}

impl Drop for AtomicH5 {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            drop(file);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_written_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        let mut w = AtomicH5::create(&path).unwrap();
        w.write("g/f", Data::F32(&[1.5, f32::NAN, 3.0, 4.0], vec![2, 2]))
            .unwrap();
        w.write("g/i", Data::I32(&[1, -2], vec![2])).unwrap();
        w.write("g/b", Data::Bool(&[true, false, true], vec![3]))
            .unwrap();
        w.write("top", Data::VlenI32(&[vec![0, 2], vec![], vec![5]]))
            .unwrap();
        assert!(!path.exists(), "nothing at the destination before commit");
        w.commit().unwrap();

        let r = H5File::open(&path).unwrap();
        let f = r.read_f64("g/f").unwrap();
        assert_eq!(f.shape(), &[2, 2]);
        assert_eq!(f[[0, 0]], 1.5);
        assert!(f[[0, 1]].is_nan());
        assert_eq!(r.read_i64("g/i").unwrap(), vec![1, -2]);
        assert_eq!(r.read_bool("g/b").unwrap(), vec![true, false, true]);
        assert_eq!(
            r.read_vlen_i64("top").unwrap(),
            vec![vec![0, 2], vec![], vec![5]]
        );
        assert!(r.has("g/f") && !r.has("g/zz") && !r.has("nope/zz"));
        assert_eq!(r.members("g").unwrap(), vec!["b", "f", "i"]);
    }

    #[test]
    fn reads_half_and_double_floats_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.h5");
        let f = hdf5::File::create(&path).unwrap();
        let halves: Vec<half::f16> = [0.0f32, 1.0, 3.0, f32::NAN]
            .iter()
            .map(|&v| half::f16::from_f32(v))
            .collect();
        f.new_dataset_builder()
            .with_data(&halves)
            .create("spikes")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&[0.25f64, -1.5])
            .create("behavior")
            .unwrap();
        f.close().unwrap();
        let r = H5File::open(&path).unwrap();
        let spikes = r.read_f64("spikes").unwrap();
        assert_eq!(&spikes.as_slice().unwrap()[..3], &[0.0, 1.0, 3.0]);
        assert!(spikes[[3]].is_nan());
        assert_eq!(
            r.read_f32("behavior").unwrap().as_slice().unwrap(),
            &[0.25, -1.5]
        );
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        {
            let mut w = AtomicH5::create(&path).unwrap();
            w.write("a", Data::I32(&[1], vec![1])).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_file_and_key_name_the_path() {
        let err = H5File::open(Path::new("/no/such.h5")).err().unwrap();
        assert!(err.to_string().contains("/no/such.h5"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        let mut w = AtomicH5::create(&path).unwrap();
        w.write("a", Data::I32(&[1], vec![1])).unwrap();
        w.commit().unwrap();
        let err = H5File::open(&path).unwrap().read_f64("b").unwrap_err();
        assert!(err.to_string().contains("missing `b`"));
    }
}
