//! Gzip-compressed chunked datasets, compressed on every core.
//!
//! The HDF5 layer compresses a dataset's chunks one after another on the calling thread, and at
//! the reference's level 4 that is most of what writing a split costs. The chunks are
//! independent, so here each chunk's image (edge chunks padded with zeros, as HDF5 stores them)
//! is deflated into a zlib stream, exactly what HDF5's deflate filter stores, on as many threads
//! as there are cores, and the finished chunks are handed to the layer's direct chunk write.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use rust_hdf5::{H5Dataset, H5Type};

/// The bytes of a slice of plain numbers (f32, f64, i32, i64, u64, HDF5 booleans).
fn as_bytes<T: H5Type>(values: &[T]) -> &[u8] {
    // SAFETY: every `H5Type` this module is called with is a plain number or a
    // `repr(transparent)` byte (HBool): no padding, no pointers, every byte initialised.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

/// Row-major coordinates of every chunk of the grid.
fn chunk_coords(shape: &[usize], chunk: &[usize]) -> Vec<Vec<usize>> {
    let grid: Vec<usize> = shape
        .iter()
        .zip(chunk)
        .map(|(&s, &c)| s.div_ceil(c))
        .collect();
    let total: usize = grid.iter().product();
    (0..total)
        .map(|mut i| {
            let mut c = vec![0; grid.len()];
            for d in (0..grid.len()).rev() {
                c[d] = i % grid[d];
                i /= grid[d];
            }
            c
        })
        .collect()
}

/// One chunk's image: its elements in row-major order, zeros past the dataset's edge.
fn chunk_image(src: &[u8], shape: &[usize], chunk: &[usize], at: &[usize], size: usize) -> Vec<u8> {
    let rank = shape.len();
    let mut out = vec![0u8; chunk.iter().product::<usize>() * size];
    let start: Vec<usize> = at.iter().zip(chunk).map(|(&a, &c)| a * c).collect();
    let extent: Vec<usize> = (0..rank)
        .map(|d| chunk[d].min(shape[d] - start[d]))
        .collect();
    let run = extent[rank - 1] * size;
    // Walk every index of the chunk but the last axis, copying one contiguous run per index.
    let mut idx = vec![0usize; rank - 1];
    loop {
        let (mut src_off, mut dst_off) = (0, 0);
        for d in 0..rank {
            let i = if d < rank - 1 { idx[d] } else { 0 };
            src_off = src_off * shape[d] + start[d] + i;
            dst_off = dst_off * chunk[d] + i;
        }
        out[dst_off * size..dst_off * size + run]
            .copy_from_slice(&src[src_off * size..src_off * size + run]);
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < extent[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

fn deflate(image: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut z = ZlibEncoder::new(Vec::with_capacity(image.len() / 4), Compression::new(level));
    z.write_all(image)?;
    z.finish()
}

/// Writes `values` (row-major, `shape`) into the chunked, deflate-filtered `ds` with chunks of
/// `chunk`, compressing them in parallel.
pub(super) fn write_chunks<T: H5Type>(
    ds: &H5Dataset,
    values: &[T],
    shape: &[usize],
    chunk: &[usize],
    level: u32,
) -> Result<(), String> {
    let src = as_bytes(values);
    let size = T::element_size();
    let coords = chunk_coords(shape, chunk);
    let threads = crate::runtime::threads();
    let per = coords.len().div_ceil(threads).max(1);
    let compressed: Vec<std::io::Result<Vec<u8>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = coords
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|at| deflate(&chunk_image(src, shape, chunk, at, size), level))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("compression thread panicked"))
            .collect()
    });
    for (at, bytes) in coords.iter().zip(compressed) {
        let bytes = bytes.map_err(|e| e.to_string())?;
        ds.write_chunk_raw_at(at, &bytes, 0)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_chunks_are_padded_with_zeros() {
        // A 3 × 5 array of bytes in 2 × 2 chunks: the grid is 2 × 3.
        let src: Vec<u8> = (1..=15).collect();
        let coords = chunk_coords(&[3, 5], &[2, 2]);
        assert_eq!(coords.len(), 6);
        assert_eq!(
            chunk_image(&src, &[3, 5], &[2, 2], &[0, 0], 1),
            [1, 2, 6, 7]
        );
        assert_eq!(
            chunk_image(&src, &[3, 5], &[2, 2], &[0, 2], 1),
            [5, 0, 10, 0]
        );
        assert_eq!(
            chunk_image(&src, &[3, 5], &[2, 2], &[1, 1], 1),
            [13, 14, 0, 0]
        );
        assert_eq!(
            chunk_image(&src, &[3, 5], &[2, 2], &[1, 2], 1),
            [15, 0, 0, 0]
        );
    }

    #[test]
    fn one_dimensional_chunks() {
        let src: Vec<u8> = (0..10).collect();
        assert_eq!(chunk_image(&src, &[10], &[4], &[2], 1), [8, 9, 0, 0]);
    }
}
