//! Returning memory to the kernel.
//!
//! The allocator (mimalloc, `main.rs`) keeps pages it got from the kernel
//! for reuse; after a mass release (a million conntrack entries expiring
//! and the index shrinking) that memory would stay resident. [`collect`]
//! asks it to give back what the calling thread's heap no longer uses.
//! mimalloc heaps are per thread, and a block freed by another thread goes
//! back to the heap that allocated it: each thread that may have allocated
//! (the workers, the housekeeping loop) calls it itself.
//!
//! Memory that stays allocated but is no longer used, while other threads
//! may still hold references into it (a conntrack slab chunk whose slots are
//! all free: its slots are read without locks), is given back with
//! [`discard`]: its pages are dropped (`MADV_DONTNEED`) and read back as
//! zero. That is sound only for types made of atomics whose all-zero value
//! is valid ([`ZeroableAtomics`]): to another thread the discard then looks
//! like relaxed atomic stores of zero.

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

/// Types made only of atomics (every byte of a value inside an atomic, so
/// inside an `UnsafeCell`) for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for such types: [`discard`] replaces their bytes with
/// zeros while other threads may hold shared references to them.
pub unsafe trait ZeroableAtomics: Sync {}

// SAFETY: all-zero is a valid atomic integer, and its bytes are inside an
// UnsafeCell.
unsafe impl ZeroableAtomics for std::sync::atomic::AtomicU32 {}
// SAFETY: as above.
unsafe impl ZeroableAtomics for std::sync::atomic::AtomicU64 {}
// SAFETY: `conntrack::slab::Slot` is a struct of `AtomicU32`, `AtomicU64`
// and arrays of them only (its docs say so and require it of new fields),
// with no padding-only or non-atomic bytes that code reads non-atomically;
// all-zero is its `Default` (a free slot of generation 0).
unsafe impl ZeroableAtomics for crate::conntrack::slab::Slot {}

/// Gives the memory pages that lie wholly inside `items` back to the kernel
/// (`madvise(MADV_DONTNEED)`); the next access finds them zero-filled (a
/// read maps the shared zero page, a write a fresh page). Items on the
/// partial pages at both ends keep their bytes. Returns the bytes released.
///
/// To every thread this is the same as relaxed atomic stores of zero to the
/// atomics on those pages, racing with its own accesses; the caller uses it
/// on items nobody uses any more (stale readers must then see a zero as
/// "free"). Atomics are naturally aligned, so no atomic straddles a page.
pub fn discard<T: ZeroableAtomics>(items: &[T]) -> usize {
    let page = page_size();
    let start = items.as_ptr() as usize;
    let end = start + std::mem::size_of_val(items);
    let first = start.next_multiple_of(page);
    let last = end / page * page;
    if last <= first {
        return 0;
    }
    // SAFETY: [first, last) lies inside the allocation of `items` (rounded
    // inwards to pages), so no other object's bytes are dropped; T is
    // ZeroableAtomics, so zero-filled bytes are valid values and the change
    // is an atomic-level race (see above), not undefined behaviour.
    let r = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_DONTNEED,
        )
    };
    if r == 0 {
        last - first
    } else {
        0
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn discard_zeroes_whole_pages_inside_and_keeps_the_edges() {
        let words: Vec<AtomicU64> = (0..4 * 4096).map(|_| AtomicU64::new(7)).collect();
        let released = super::discard(&words[..]);
        let page = super::page_size();
        assert!(released >= 2 * page, "{released}");
        let zero = words.iter().filter(|w| w.load(Relaxed) == 0).count();
        assert_eq!(zero * 8, released);
        // The zeroed words are one run; the items still work.
        let first = words.iter().position(|w| w.load(Relaxed) == 0).unwrap();
        assert!(words[first..first + zero]
            .iter()
            .all(|w| w.load(Relaxed) == 0));
        assert!(words.iter().all(|w| matches!(w.load(Relaxed), 0 | 7)));
        words[first].store(9, Relaxed);
        assert_eq!(words[first].load(Relaxed), 9);
    }
    #[test]
    fn collect_after_a_large_release_keeps_the_allocator_usable() {
        let v: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 16]).collect();
        drop(v);
        super::collect(true);
        let w = vec![7u8; 1 << 20];
        assert!(w.iter().all(|&b| b == 7));
    }
}
