//! Returning freed memory to the kernel.
//!
//! The allocator (mimalloc, `main.rs`) keeps pages it got from the kernel
//! for reuse; after a mass release (a million conntrack entries expiring
//! and the index shrinking) that memory would stay resident. [`collect`]
//! asks it to give back what the calling thread's heap no longer uses.
//! mimalloc heaps are per thread, and a block freed by another thread goes
//! back to the heap that allocated it: each thread that may have allocated
//! (the workers, the housekeeping loop) calls it itself.

// Links the C library (libmimalloc-sys) also where nothing else names it.
use mimalloc as _;

extern "C" {
    /// mimalloc.h: `void mi_collect(bool force)`. Linked by the `mimalloc`
    /// crate (libmimalloc-sys builds the C library into every binary of
    /// this crate, whichever allocator is global).
    fn mi_collect(force: bool);
}

/// Frees the calling thread's unused allocator pages and returns them to
/// the kernel (`force`: also pages kept for quick reuse, and abandoned
/// segments of exited threads). A few hundred microseconds at most;
/// call it after a large release, not per packet.
pub fn collect(force: bool) {
    // SAFETY: mi_collect takes no pointer and only touches the allocator's
    // own bookkeeping; it is thread safe and may be called at any time.
    unsafe { mi_collect(force) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn collect_after_a_large_release_keeps_the_allocator_usable() {
        let v: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 16]).collect();
        drop(v);
        super::collect(true);
        let w = vec![7u8; 1 << 20];
        assert!(w.iter().all(|&b| b == 7));
    }
}
