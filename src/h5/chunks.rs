//! Gzip-compressed float32 datasets, inflated on every core.
//!
//! nlb_tools writes submissions as chunked, gzip-compressed float32, and so does `langevin
//! submit`. A full-size mc_maze submission is a quarter of a gigabyte of floats, which barely
//! compress; HDF5 inflates its chunks one at a time under its global lock, which takes longer than
//! all of the evaluation's arithmetic. The chunks are independent, so here their raw bytes are
//! read straight from the file at the addresses HDF5 reports, and inflated, unshuffled and placed
//! on as many threads as there are cores. Any layout this does not cover (other filters, missing
//! chunks, big-endian data) is left to HDF5's own reader.

use std::fs::File;
use std::os::unix::fs::FileExt;

use hdf5::filters::Filter;

/// One stored chunk: where its first element sits in the dataset, which filters it skipped, and
/// where its bytes are in the file.
struct Chunk {
    offset: Vec<usize>,
    filter_mask: u32,
    addr: u64,
    size: usize,
}

/// The filter pipeline this reader handles: optional byte shuffle, then deflate.
struct Pipeline {
    shuffle: Option<usize>,
    deflate: usize,
}

fn pipeline(filters: &[Filter]) -> Option<Pipeline> {
    match filters {
        [Filter::Deflate(_)] => Some(Pipeline {
            shuffle: None,
            deflate: 0,
        }),
        [Filter::Shuffle, Filter::Deflate(_)] => Some(Pipeline {
            shuffle: Some(0),
            deflate: 1,
        }),
        _ => None,
    }
}

/// The dataset's values, or `None` when its layout is not one this reader covers.
pub(super) fn read_f32(
    file: &hdf5::File,
    path: &std::path::Path,
    ds: &hdf5::Dataset,
) -> Result<Option<Vec<f32>>, String> {
    let Some(plan) = plan(file, ds)? else {
        return Ok(None);
    };
    let shape = ds.shape();
    let n: usize = shape.iter().product();
    let mut out = vec![0f32; n];
    super::advise_huge_pages(&out);
    let os_file = File::open(path).map_err(|e| e.to_string())?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(plan.chunks.len());
    let dst = SharedOut(out.as_mut_ptr());
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (plan, shape, os_file, dst) = (&plan, &shape, &os_file, &dst);
                scope.spawn(move || {
                    let mut raw = Vec::new();
                    let mut values = Vec::new();
                    let mut scratch = Vec::new();
                    for chunk in plan.chunks.iter().skip(k).step_by(threads) {
                        decode(plan, os_file, chunk, &mut raw, &mut values, &mut scratch)?;
                        // SAFETY: the chunks of a dataset tile it without overlap, so no two
                        // threads write the same element, and `out` outlives the scope.
                        unsafe { place(dst, shape, &plan.chunk_shape, &chunk.offset, &values) };
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("chunk worker panicked"))
            .collect()
    });
    results.into_iter().collect::<Result<(), String>>()?;
    Ok(Some(out))
}

/// Everything needed to decode a dataset's chunks without HDF5.
struct Plan {
    pipeline: Pipeline,
    chunk_shape: Vec<usize>,
    chunks: Vec<Chunk>,
    /// Added to every chunk address: addresses are relative to the superblock, which a user block
    /// pushes back.
    base: u64,
}

fn plan(file: &hdf5::File, ds: &hdf5::Dataset) -> Result<Option<Plan>, String> {
    let little = cfg!(target_endian = "little");
    let dtype = ds.dtype().map_err(|e| e.to_string())?;
    let is_f32 = matches!(
        dtype.to_descriptor(),
        Ok(hdf5::types::TypeDescriptor::Float(
            hdf5::types::FloatSize::U4
        ))
    );
    if !little || !is_f32 || dtype.byte_order() != hdf5::datatype::ByteOrder::LittleEndian {
        return Ok(None);
    }
    let (Some(chunk_shape), Some(pipeline)) = (ds.chunk(), pipeline(&ds.filters())) else {
        return Ok(None);
    };
    let shape = ds.shape();
    if shape.is_empty() || shape.contains(&0) {
        return Ok(None);
    }
    let mut chunks = Vec::new();
    ds.chunks_visit(|c| {
        chunks.push(Chunk {
            offset: c.offset.iter().map(|&o| o as usize).collect(),
            filter_mask: c.filter_mask,
            addr: c.addr,
            size: c.size as usize,
        });
        0
    })
    .map_err(|e| e.to_string())?;
    let expected: usize = shape
        .iter()
        .zip(&chunk_shape)
        .map(|(&n, &c)| n.div_ceil(c))
        .product();
    // Unwritten chunks hold the fill value, which only HDF5 knows.
    if chunks.len() != expected {
        return Ok(None);
    }
    Ok(Some(Plan {
        pipeline,
        chunk_shape,
        chunks,
        base: file.userblock(),
    }))
}

/// Reads, inflates and unshuffles one chunk into `values` (the whole chunk, C order).
fn decode(
    plan: &Plan,
    file: &File,
    chunk: &Chunk,
    raw: &mut Vec<u8>,
    values: &mut Vec<f32>,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    let n: usize = plan.chunk_shape.iter().product();
    let at = || format!("chunk at {:?}", chunk.offset);
    raw.resize(chunk.size, 0);
    file.read_exact_at(raw, plan.base + chunk.addr)
        .map_err(|e| format!("{}: {e}", at()))?;
    let skipped = |position: usize| chunk.filter_mask & (1 << position) != 0;
    let shuffled = plan.pipeline.shuffle.is_some_and(|p| !skipped(p));
    values.resize(n, 0.0);
    // Little-endian f32 bytes are the values themselves: unshuffled chunks inflate straight
    // into `values`, shuffled ones into `scratch` first.
    let bytes: &mut [u8] = if shuffled {
        scratch.resize(n * 4, 0);
        scratch
    } else {
        as_bytes(values)
    };
    if skipped(plan.pipeline.deflate) {
        if raw.len() != bytes.len() {
            return Err(format!(
                "{}: {} stored bytes, expected {}",
                at(),
                raw.len(),
                bytes.len()
            ));
        }
        bytes.copy_from_slice(raw);
    } else {
        inflate(raw, bytes).map_err(|e| format!("{}: {e}", at()))?;
    }
    if shuffled {
        // HDF5's shuffle stores byte 0 of every element, then byte 1, and so on.
        let planes: Vec<&[u8]> = scratch.chunks_exact(n).collect();
        for (i, v) in values.iter_mut().enumerate() {
            *v = f32::from_le_bytes([planes[0][i], planes[1][i], planes[2][i], planes[3][i]]);
        }
    }
    Ok(())
}

/// Inflates a whole zlib stream into `out`, which it must fill exactly.
fn inflate(raw: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut z = flate2::Decompress::new(true);
    let status = z
        .decompress(raw, out, flate2::FlushDecompress::Finish)
        .map_err(|e| format!("corrupt deflate stream: {e}"))?;
    if status != flate2::Status::StreamEnd || z.total_out() as usize != out.len() {
        return Err(format!(
            "deflate stream ends after {} of {} bytes",
            z.total_out(),
            out.len()
        ));
    }
    Ok(())
}

fn as_bytes(values: &mut [f32]) -> &mut [u8] {
    let len = std::mem::size_of_val(values);
    // SAFETY: any byte pattern is a valid f32 and u8 has alignment 1, so viewing the floats'
    // memory as bytes is sound; the borrow keeps `values` exclusive.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), len) }
}

/// The output buffer, shared by the chunk workers.
struct SharedOut(*mut f32);

// SAFETY: workers write disjoint elements (see `place`); the pointer outlives them.
unsafe impl Sync for SharedOut {}

/// Copies the in-bounds part of a chunk (`values`, C order over `chunk_shape`) to `offset` of the
/// dataset `shape`, one run along the last axis at a time.
///
/// # Safety
/// `dst` must point to `shape.iter().product()` elements, and no other thread may write the
/// elements this chunk covers.
unsafe fn place(
    dst: &SharedOut,
    shape: &[usize],
    chunk_shape: &[usize],
    offset: &[usize],
    values: &[f32],
) {
    let rank = shape.len();
    let last = rank - 1;
    let run = chunk_shape[last].min(shape[last] - offset[last]);
    let extent: Vec<usize> = (0..rank)
        .map(|d| chunk_shape[d].min(shape[d] - offset[d]))
        .collect();
    let mut index = vec![0usize; last];
    loop {
        let (mut src, mut at) = (0usize, 0usize);
        for d in 0..last {
            src = src * chunk_shape[d] + index[d];
            at = at * shape[d] + offset[d] + index[d];
        }
        let src = src * chunk_shape[last];
        let at = at * shape[last] + offset[last];
        // SAFETY: `at + run` stays inside the dataset (the extents are clipped to it), and the
        // caller guarantees no other writer of these elements.
        unsafe {
            std::ptr::copy_nonoverlapping(values[src..src + run].as_ptr(), dst.0.add(at), run)
        };
        let mut d = last;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            if index[d] < extent[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `values` of `shape` with the given chunking and filters, then checks that this
    /// reader returns exactly what HDF5 itself reads.
    fn round_trip(shape: &[usize], chunk: &[usize], shuffle: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunked.h5");
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        {
            let file = hdf5::File::create(&path).unwrap();
            let array =
                ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), values.clone()).unwrap();
            let mut builder = file.new_dataset_builder().chunk(chunk.to_vec());
            if shuffle {
                builder = builder.shuffle();
            }
            builder.deflate(4).with_data(&array).create("x").unwrap();
        }
        let file = hdf5::File::open(&path).unwrap();
        let ds = file.dataset("x").unwrap();
        let got = read_f32(&file, &path, &ds)
            .unwrap()
            .expect("layout covered");
        assert_eq!(got, ds.read_raw::<f32>().unwrap());
        assert_eq!(got, values);
    }

    #[test]
    fn chunks_that_overhang_the_edges_are_clipped() {
        round_trip(&[7, 5, 9], &[3, 2, 4], false);
        round_trip(&[7, 5, 9], &[7, 5, 9], false);
        round_trip(&[10], &[3], false);
        round_trip(&[4, 6], &[4, 1], false);
    }

    #[test]
    fn shuffled_chunks_are_unshuffled() {
        round_trip(&[7, 5, 9], &[2, 5, 3], true);
    }

    #[test]
    fn other_layouts_are_left_to_hdf5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.h5");
        {
            let file = hdf5::File::create(&path).unwrap();
            let a = ndarray::Array2::<f32>::ones((3, 4));
            file.new_dataset_builder()
                .with_data(&a)
                .create("contiguous")
                .unwrap();
            let d = ndarray::Array2::<f64>::ones((3, 4));
            file.new_dataset_builder()
                .chunk((1, 4))
                .deflate(4)
                .with_data(&d)
                .create("double")
                .unwrap();
            file.new_dataset_builder()
                .chunk((1, 4))
                .fletcher32()
                .deflate(4)
                .with_data(&a)
                .create("checksummed")
                .unwrap();
        }
        let file = hdf5::File::open(&path).unwrap();
        for name in ["contiguous", "double", "checksummed"] {
            let ds = file.dataset(name).unwrap();
            assert!(read_f32(&file, &path, &ds).unwrap().is_none(), "{name}");
        }
    }

    #[test]
    fn a_corrupt_chunk_is_an_error_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt.h5");
        let values: Vec<f32> = (0..4000).map(|i| i as f32).collect();
        {
            let file = hdf5::File::create(&path).unwrap();
            let a = ndarray::Array1::from_vec(values);
            file.new_dataset_builder()
                .chunk(1000)
                .deflate(4)
                .with_data(&a)
                .create("x")
                .unwrap();
        }
        let addr = {
            let file = hdf5::File::open(&path).unwrap();
            let ds = file.dataset("x").unwrap();
            ds.chunk_info(1).unwrap().addr
        };
        let mut bytes = std::fs::read(&path).unwrap();
        for b in &mut bytes[addr as usize + 2..addr as usize + 40] {
            *b ^= 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
        let file = hdf5::File::open(&path).unwrap();
        let ds = file.dataset("x").unwrap();
        let err = read_f32(&file, &path, &ds).unwrap_err();
        assert!(err.contains("chunk at [1000]"), "{err}");
    }
}
