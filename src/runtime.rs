//! Process-wide settings: how many threads every parallel part uses, and how the allocator
//! treats the large, short-lived buffers training makes.
//!
//! [`configure`] runs once at start-up, before any work (the command line calls it from
//! `--threads` / `LANGEVIN_THREADS`); everything that splits work across threads asks
//! [`threads`], so one number governs training kernels, HDF5 compression, preprocessing and
//! evaluation alike.

use std::sync::OnceLock;

static THREADS: OnceLock<usize> = OnceLock::new();

/// The cores this machine offers.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads each parallel part of the crate may use: what [`configure`] set, else every core.
pub fn threads() -> usize {
    *THREADS.get().unwrap_or(&available())
}

/// What a command spends its time on, which decides how the allocator is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Training or running the model: many short-lived tensors of tens to hundreds of MB.
    Model,
    /// Reading, reshaping and writing arrays once (preprocess, evaluate, baseline, ...).
    Files,
}

/// Sets the thread count for the rest of the process (`None`: every core) and, for the model's
/// workload, tunes the allocator. Later calls change nothing.
pub fn configure(threads: Option<usize>, workload: Workload) {
    let n = threads.unwrap_or_else(available).max(1);
    if THREADS.set(n).is_err() {
        return;
    }
    // Burn's CPU kernels (burn-flex, burn-ndarray) run on rayon's global pool; a second call
    // (a test harness that already built it) keeps whatever pool exists.
    flush_subnormals();
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .start_handler(|_| flush_subnormals())
        .build_global();
    // The HDF5 layer and ndarray's matrix multiply read their own variables, once, on first use.
    // Commands on files share their work out among threads themselves (evaluate fits decoders
    // beside reading, the baseline fits neurons on every core), so a threaded matrix product
    // there only competes with them: evaluating a full-size submission took 0.70 s instead of
    // 0.50 s with it.
    let matmul = match workload {
        Workload::Model => n,
        Workload::Files => 1,
    };
    for (var, value) in [("RUST_HDF5_IO_THREADS", n), ("MATMUL_NUM_THREADS", matmul)] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value.to_string());
        }
    }
    match workload {
        Workload::Model => keep_freed_memory(),
        Workload::Files => map_only_large_blocks(),
    }
}

/// Reading a chunked HDF5 dataset allocates a buffer of a hundred-odd kilobytes per chunk,
/// thousands of times, on several threads. glibc maps blocks above its mmap threshold straight
/// from the kernel, and raises that threshold only as mapped blocks are freed, so many of these
/// buffers are mapped, faulted in and unmapped again. A fixed 32 MiB threshold keeps them on the
/// heap, where they are reused, while whole arrays are still mapped and handed back when freed
/// (evaluating a full-size gzip submission: 61k → 31k page faults, 1.03 s → 0.95 s).
fn map_only_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as in `keep_freed_memory`.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// A training step allocates and frees hundreds of tensors of tens to hundreds of megabytes.
/// glibc hands every allocation above its mmap threshold (at most 32 MiB) straight to the kernel
/// and back, and returns freed heap tops to it, so each tensor is faulted in and zeroed page by
/// page again: a fifth of a step at 20 ms, more at 5 ms. Never mapping blocks separately and
/// trimming only above 1 GiB makes freed blocks reusable; the heap then stays near the step's
/// peak (measured: 20 ms step on 2 threads 3.18 s → 2.80 s, 5 ms step 16.5 s → 13.4 s).
/// Commands that read and write each array once gain nothing from it and pay in memory: freed
/// read buffers stay resident, and every large allocation comes from the heap, which the kernel
/// cannot hand back already zeroed (evaluating a full-size gzip submission: 0.82 s → 1.08 s).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called at start-up, before other
    // threads allocate, and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Makes this thread's float arithmetic treat subnormal numbers as zero (x86-64: MXCSR's FTZ and
/// DAZ bits; aarch64: FPCR.FZ). Late in training some weights, Adam moments and attention
/// products fall below f32's normal range (1.2e-38), and x86 cores take a microcode assist of
/// ~100 cycles for every operation on such a value: measured on real MC_Maze_Small, epochs slowed
/// from 0.37 s to 2.4 s after ~1,000 epochs. Values that small are zero to every loss and metric
/// here, and the mode is fixed per process, so runs stay reproducible.
pub fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads and writes this thread's MXCSR only, setting two mode bits (FTZ 15, DAZ 6);
    // no memory besides the local word is touched.
    unsafe {
        let mut csr: u32 = 0;
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        csr |= (1 << 15) | (1 << 6);
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads and writes this thread's FPCR only, setting the flush-to-zero bit (24).
    unsafe {
        let mut fpcr: u64;
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
        fpcr |= 1 << 24;
        std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack, preserves_flags));
    }
}

#[cfg(test)]
mod tests {
    use super::flush_subnormals;

    /// After the switch, arithmetic yielding a subnormal gives zero, and a subnormal input reads as zero.
    #[test]
    fn subnormals_flush_to_zero() {
        let handle = std::thread::spawn(|| {
            let tiny = std::hint::black_box(f32::MIN_POSITIVE);
            let before = tiny / std::hint::black_box(4.0f32);
            flush_subnormals();
            let after = tiny / std::hint::black_box(4.0f32);
            let read = std::hint::black_box(before) * std::hint::black_box(1.0f32);
            (before, after, read)
        });
        let (before, after, read) = handle.join().unwrap();
        assert!(before > 0.0 && before < f32::MIN_POSITIVE);
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert_eq!(after, 0.0);
            if cfg!(target_arch = "x86_64") {
                assert_eq!(read, 0.0);
            }
        }
    }
}
