//! Every HDF5 access of the crate goes through this module, so the HDF5 backend stays swappable.
//!
//! The backend is `rust-hdf5`, a pure-Rust implementation: building the crate needs only a Rust
//! toolchain (no CMake, no C library). It reads every layout the NLB files use (chunked gzip,
//! shuffle, float16, bool enums, vlen int32 index lists, object references, soft links), and
//! writes files that h5py, pynwb and nlb_tools read, with the earliest library-version bound.
//!
//! Reads accept any stored float width (f16, f32, f64) and any integer width; writes use the dtypes
//! of the current nlb_tools: float32, int32, HDF5 boolean enums, vlen int32 lists, gzip level 4.

mod decode;
mod deflate;
mod read;
mod write;

use std::path::PathBuf;

use ndarray::ArrayD;

pub use read::H5File;
pub use write::{AtomicH5, Data};

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

#[cfg(test)]
mod tests;
