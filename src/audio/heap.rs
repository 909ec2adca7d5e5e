//! Keeping a long batch's memory flat: handing back heap pages fragmentation has left
//! free.
//!
//! [`crate::tune_allocator`] makes glibc keep large blocks on the heap instead of
//! mapping them afresh (much faster training). The price: when every file of a batch
//! allocates large temporaries (decoding, the network's activations) and something
//! small but long-lived (a result, a report line) lands between them, the freed blocks
//! left behind are each slightly too small for the next file's temporaries, and the
//! heap grows by a few hundred KiB per file (measured: 1 000 clips of 0.5 s reached
//! 412 MB, 4 000 reached 1.5 GB). The memory is free, just not returned.
//!
//! [`release_free_pages`] runs once per file (from the decoding front door, the one
//! place every batch passes per file) and, when the process's resident memory beyond
//! what the allocator has in use has grown by more than [`SLACK_BYTES`] since it last
//! acted, asks glibc (`malloc_trim`) to give the pages of free blocks back to the
//! kernel. Peak RSS then stays flat however many files a batch has, at the cost of one
//! `malloc_trim` every few dozen short files.
//!
//! (The large per-file temporaries measured here are the front end's per-call
//! `Scratch` buffers in `ml::frontend`, about 500 KB per rayon split; reusing them
//! across calls would remove the holes at their source.)

use std::sync::atomic::{AtomicUsize, Ordering};

/// Growth of resident-but-unused memory tolerated between two trims.
pub const SLACK_BYTES: usize = 32 << 20;

/// Resident bytes beyond those in use right after the last trim (0: never trimmed).
static SLACK_AFTER_TRIM: AtomicUsize = AtomicUsize::new(0);

/// Resident set size of this process, bytes (Linux `/proc/self/statm`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * usize::try_from(page).ok()?)
}

/// Resident bytes not held by live allocations (free heap pages, and everything that
/// is not heap: code, mapped model files, stacks).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn unused_resident() -> Option<usize> {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    Some(resident_bytes()?.saturating_sub(info.uordblks + info.hblkhd))
}

/// Give free heap pages back to the kernel if resident-but-unused memory has grown by
/// more than [`SLACK_BYTES`] since the last time. Returns whether it trimmed.
pub fn release_free_pages() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let Some(unused) = unused_resident() else {
            return false;
        };
        let base = SLACK_AFTER_TRIM.load(Ordering::Relaxed);
        if base != 0 && unused <= base + SLACK_BYTES {
            return false;
        }
        // SAFETY: malloc_trim is thread-safe; it only releases pages of free blocks.
        unsafe { libc::malloc_trim(0) };
        let after = unused_resident().unwrap_or(unused).max(1);
        SLACK_AFTER_TRIM.store(after, Ordering::Relaxed);
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn issue14_fragmented_free_pages_are_given_back() {
        // The allocator settings the binaries use (large blocks stay on the heap).
        crate::tune_allocator();
        // The ratchet in miniature: large blocks with a small survivor after each.
        let mut survivors = Vec::new();
        let mut large = Vec::new();
        for i in 0..160 {
            large.push(vec![i as u8; 500_000]);
            survivors.push(vec![i as u8; 64]);
        }
        release_free_pages();
        drop(large);
        let before = unused_resident().expect("statm");
        assert!(
            release_free_pages(),
            "70 MB of free pages did not trigger a trim"
        );
        let after = unused_resident().expect("statm");
        assert!(
            after + SLACK_BYTES < before,
            "trim gave back too little: {before} -> {after} bytes"
        );
        assert_eq!(survivors.len(), 160);
    }
}
