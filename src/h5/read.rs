//! Reading: one open file, its objects looked up by path, values decoded to the few Rust types
//! the crate works in (f64 and f32 arrays, i64, bool, strings, vlen index lists).

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayD, Ix3, IxDyn};
use rust_hdf5::{FileLocking, H5Dataset, H5Group};

use super::decode::{self, Element, Kind};
use super::{advise_huge_pages, Floats, H5Error, Result};

/// A read-only HDF5 file that remembers its path for error messages.
pub struct H5File {
    file: rust_hdf5::H5File,
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
        // A shared lock where the file system offers one, as HDF5 takes; a file system without
        // locks (NFS, some containers) must not stop a read.
        let file = rust_hdf5::H5File::options()
            .locking(FileLocking::BestEffort)
            .open(path)
            .map_err(|e| H5Error::Open {
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

    /// Whether a link (to a group or a dataset) exists at `name`.
    pub fn has(&self, name: &str) -> bool {
        let name = name.trim_matches('/');
        if name.is_empty() {
            return false;
        }
        let (parent, leaf) = name.rsplit_once('/').unwrap_or(("", name));
        self.group_at(parent)
            .and_then(|g| g.link_names().ok())
            .is_some_and(|links| links.iter().any(|l| l == leaf))
    }

    pub fn is_group(&self, name: &str) -> bool {
        self.has(name) && self.group_at(name).is_some()
    }

    fn group_at(&self, name: &str) -> Option<H5Group> {
        let name = name.trim_matches('/');
        let root = self.file.root_group();
        if name.is_empty() {
            return Some(root);
        }
        root.group(name).ok()
    }

    /// Names of the direct members of a group, sorted.
    pub fn members(&self, group: &str) -> Result<Vec<String>> {
        let g = self.group_at(group).ok_or_else(|| self.missing(group))?;
        let mut names = g.link_names().map_err(|e| self.read_err(group, e))?;
        names.sort();
        Ok(names)
    }

    fn dataset(&self, name: &str) -> Result<H5Dataset> {
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

    fn kind(&self, name: &str, ds: &H5Dataset) -> Result<Kind> {
        ds.datatype()
            .map(|dt| decode::kind(&dt))
            .map_err(|e| self.read_err(name, e))
    }

    fn raw(&self, name: &str, ds: &H5Dataset) -> Result<Vec<u8>> {
        ds.read_raw_bytes().map_err(|e| self.read_err(name, e))
    }

    fn shaped<T>(&self, name: &str, shape: &[usize], flat: Vec<T>) -> Result<ArrayD<T>> {
        ArrayD::from_shape_vec(IxDyn(shape), flat).map_err(|e| self.read_err(name, e))
    }

    /// Any numeric or boolean dataset as f64 (f16/f32/f64, ints, bool and integer enums).
    pub fn read_f64(&self, name: &str) -> Result<ArrayD<f64>> {
        let ds = self.dataset(name)?;
        let e = match self.kind(name, &ds)? {
            Kind::Number(Element::F32 { .. }) => {
                return match self.read_floats(name)? {
                    Floats::F32(a) => Ok(a.mapv(f64::from)),
                    Floats::F64(a) => Ok(a),
                };
            }
            Kind::Number(Element::F64 { little: true }) => {
                // Stored as the host's f64 (spike times, behaviour): read straight into place.
                let shape = ds.shape();
                let mut flat = vec![0f64; shape.iter().product()];
                self.read_into(name, &ds, &shape, &mut flat)?;
                return self.shaped(name, &shape, flat);
            }
            Kind::Number(e) | Kind::Bool(e) | Kind::Enum(e) => e,
            other => return Err(self.read_err(name, format!("expected numbers, found {other:?}"))),
        };
        let flat = decode::to_f64(e, &self.raw(name, &ds)?).map_err(|m| self.read_err(name, m))?;
        self.shaped(name, &ds.shape(), flat)
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
        if !matches!(self.kind(name, &ds)?, Kind::Number(Element::F32 { .. })) {
            return self.read_f64(name).map(Floats::F64);
        }
        // Zeroed memory straight from the OS, backed by huge pages before the first touch: a
        // full-size submission is a quarter of a gigabyte, and faulting that in 4 KiB at a time
        // costs as much as reading it. Chunks are inflated on the HDF5 layer's own threads.
        let shape = ds.shape();
        let mut flat = vec![0f32; shape.iter().product()];
        advise_huge_pages(&flat);
        self.read_into(name, &ds, &shape, &mut flat)?;
        self.shaped(name, &shape, flat).map(Floats::F32)
    }

    /// The whole dataset into `out`: in slabs on every core where it is chunked, else in one read.
    fn read_into<T: rust_hdf5::H5Type + Send>(
        &self,
        name: &str,
        ds: &H5Dataset,
        shape: &[usize],
        out: &mut [T],
    ) -> Result<()> {
        if !self.read_slabs(name, ds, shape, out)? {
            ds.read_raw_into(out).map_err(|e| self.read_err(name, e))?;
        }
        Ok(())
    }

    /// Reads a chunked dataset on every core, one file handle per thread: the dataset is cut
    /// along its first axis into slabs of whole chunks, each a contiguous stretch of `out`, and
    /// each thread reads its slabs straight into their stretch. Read whole, the HDF5 layer
    /// inflates chunks in parallel but then copies each one into place on the calling thread,
    /// holding every inflated chunk until then (a full-size gzip submission: a quarter of a
    /// gigabyte more in memory, and slower than the HDF5 C library was).
    /// `false` when there is nothing to share out (not chunked, one slab, one thread).
    fn read_slabs<T: rust_hdf5::H5Type + Send>(
        &self,
        name: &str,
        ds: &H5Dataset,
        shape: &[usize],
        out: &mut [T],
    ) -> Result<bool> {
        let threads = crate::runtime::threads();
        let Some(chunk_rows) = ds.chunk_dims().and_then(|c| c.first().copied()) else {
            return Ok(false);
        };
        let row_len: usize = shape.iter().skip(1).product();
        let n_chunk_rows = shape.first().map_or(0, |&n| n.div_ceil(chunk_rows.max(1)));
        if threads < 2 || n_chunk_rows < 2 || row_len == 0 {
            return Ok(false);
        }
        // Eight slabs per thread, each a whole number of chunk rows: every slab read walks the
        // dataset's chunk index once, so a long 1-D dataset (spike times) must not become
        // thousands of one-chunk slabs, and the HDF5 layer holds a slab's inflated chunks until
        // they are placed (a full-size gzip submission: 385 MB peak with four, 360 MB with eight,
        // equally fast).
        let rows = n_chunk_rows.div_ceil(8 * threads) * chunk_rows;
        let mut parts: Vec<Vec<(usize, &mut [T])>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, slab) in out.chunks_mut(rows * row_len).enumerate() {
            parts[i % threads].push((i * rows, slab));
        }
        let path = self.path.as_path();
        let read_part = |part: Vec<(usize, &mut [T])>| -> Result<()> {
            let file = H5File::open(path)?;
            let ds = file.dataset(name)?;
            for (first, slab) in part {
                let mut counts = shape.to_vec();
                counts[0] = slab.len() / row_len;
                let mut starts = vec![0; shape.len()];
                starts[0] = first;
                ds.read_slice_into(slab, &starts, &counts)
                    .map_err(|e| file.read_err(name, e))?;
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| scope.spawn(|| read_part(part)))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("slab reader panicked"))
        })?;
        Ok(true)
    }

    /// Integer dataset (any width, or a bool / integer enum) as i64.
    pub fn read_i64(&self, name: &str) -> Result<Vec<i64>> {
        let ds = self.dataset(name)?;
        match self.kind(name, &ds)? {
            Kind::Number(e @ Element::Int { .. }) | Kind::Bool(e) | Kind::Enum(e) => {
                decode::to_i64(e, &self.raw(name, &ds)?).map_err(|m| self.read_err(name, m))
            }
            other => Err(self.read_err(name, format!("expected integers, found {other:?}"))),
        }
    }

    /// A boolean dataset, or integers read as `!= 0`.
    pub fn read_bool(&self, name: &str) -> Result<Vec<bool>> {
        let ds = self.dataset(name)?;
        match self.kind(name, &ds)? {
            Kind::Number(e @ Element::Int { .. }) | Kind::Bool(e) | Kind::Enum(e) => {
                Ok(decode::to_i64(e, &self.raw(name, &ds)?)
                    .map_err(|m| self.read_err(name, m))?
                    .into_iter()
                    .map(|x| x != 0)
                    .collect())
            }
            other => Err(self.read_err(name, format!("expected booleans, found {other:?}"))),
        }
    }

    /// A 1-D string dataset, fixed or variable length, ASCII or UTF-8 (bytes that are not valid
    /// in the declared character set become U+FFFD rather than failing the whole file).
    pub fn read_strings(&self, name: &str) -> Result<Vec<String>> {
        let ds = self.dataset(name)?;
        match self.kind(name, &ds)? {
            Kind::Text => ds.read_strings_lossy().map_err(|e| self.read_err(name, e)),
            other => Err(self.read_err(name, format!("expected strings, found {other:?}"))),
        }
    }

    /// A 1-D variable-length integer dataset (per-condition index lists).
    pub fn read_vlen_i64(&self, name: &str) -> Result<Vec<Vec<i64>>> {
        let ds = self.dataset(name)?;
        let e = match self.kind(name, &ds)? {
            Kind::Sequence(e @ Element::Int { .. }) => e,
            other => {
                return Err(self.read_err(name, format!("expected vlen ints, found {other:?}")));
            }
        };
        ds.read_vlen_bytes()
            .map_err(|err| self.read_err(name, err))?
            .iter()
            .map(|raw| decode::to_i64(e, raw).map_err(|m| self.read_err(name, m)))
            .collect()
    }

    /// A string attribute of a group or dataset, if present.
    pub fn attr_string(&self, object: &str, attr: &str) -> Option<String> {
        if !self.has(object) {
            return None;
        }
        if let Ok(ds) = self.file.dataset(object) {
            return ds.attr(attr).ok()?.read_string().ok();
        }
        self.group_at(object)?.attr_string(attr).ok()
    }

    /// A numeric scalar attribute of a dataset, if present.
    pub fn attr_f64(&self, object: &str, attr: &str) -> Option<f64> {
        if !self.has(object) {
            return None;
        }
        let a = self.file.dataset(object).ok()?.attr(attr).ok()?;
        let e = match decode::kind(&a.datatype().ok()?) {
            Kind::Number(e) => e,
            _ => return None,
        };
        decode::to_f64(e, &a.read_raw().ok()?)
            .ok()?
            .first()
            .copied()
    }
}
