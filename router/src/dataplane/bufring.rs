//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the buffers a
//! multishot read fills, chosen by the kernel.
//!
//! Ownership invariant (cited at every use as "BufRing invariant"): a buffer
//! whose id has been published in the ring belongs to the kernel until a
//! completion carrying that id arrives; from then on it belongs to the worker
//! that owns this ring, which may read and write it (process it in place,
//! hand it to a write SQE) and must not touch it after [`BufRing::give_back`]
//! publishes it again. A buffer in flight in a write SQE is neither in the
//! ring nor touched by the worker until the write completes.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// Bytes per buffer: a 64 KiB GSO frame plus the vnet header, with slack.
/// A smaller buffer silently truncates GSO frames and TCP stalls.
pub const BUF_SIZE: usize = 65_536 + 512;

pub struct BufRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    bufs: *mut u8,
    bufs_layout: Layout,
    entries: u16,
    mask: u16,
    /// Our copy of the tail; published with a release store.
    tail: u16,
    pub bgid: u16,
}

// SAFETY: the ring owns its allocations; it is created and used by one worker
// thread and only moved (never shared) between threads.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates `entries` (a power of two) buffers, registers the ring as
    /// group `bgid` on `submitter`'s io_uring and publishes every buffer.
    pub fn new(submitter: &Submitter<'_>, bgid: u16, entries: u16) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let ring_layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        let bufs_layout = Layout::from_size_align(usize::from(entries) * BUF_SIZE, 4096)
            .map_err(io::Error::other)?;
        // SAFETY: both layouts have non-zero size.
        let ring = unsafe { alloc_zeroed(ring_layout) } as *mut BufRingEntry;
        // SAFETY: as above.
        let bufs = unsafe { alloc_zeroed(bufs_layout) };
        if ring.is_null() || bufs.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut r = BufRing {
            ring,
            ring_layout,
            bufs,
            bufs_layout,
            entries,
            mask: entries - 1,
            tail: 0,
            bgid,
        };
        // SAFETY: `ring` is page aligned, zeroed and holds `entries` entries;
        // it stays allocated until Drop, and the owning worker unregisters the
        // group (or drops the io_uring) before dropping this BufRing.
        unsafe { submitter.register_buf_ring_with_flags(ring as u64, entries, bgid, 0)? };
        for bid in 0..entries {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & self.mask);
        // SAFETY: idx < entries; the entry at the tail is not visible to the
        // kernel until `publish` moves the tail past it. Entry 0's `resv`
        // doubles as the ring tail, which the kernel reads; the setters below
        // write only addr/len/bid, never `resv`, so there is no racing write.
        let e = unsafe { &mut *self.ring.add(idx) };
        e.set_addr(self.buf_ptr(bid) as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    pub fn publish(&mut self) {
        // SAFETY: `ring` points at the first entry of a registered ring; the
        // tail field overlays entry 0's `resv` and is only ever accessed
        // atomically by us (store) and the kernel (load).
        let tail = unsafe { &*(BufRingEntry::tail(self.ring) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    /// Returns buffer `bid` to the kernel (visible after the next `publish`).
    /// BufRing invariant: the caller must not touch the buffer afterwards.
    pub fn give_back(&mut self, bid: u16) {
        debug_assert!(bid < self.entries);
        self.push(bid);
    }

    pub fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: bid < entries, so the offset stays inside the allocation.
        unsafe { self.bufs.add(usize::from(bid) * BUF_SIZE) }
    }

    /// The first `len` bytes of buffer `bid`.
    ///
    /// # Safety
    /// BufRing invariant: the buffer must belong to the worker (its read
    /// completion arrived and it was not given back), `len <= BUF_SIZE`, and
    /// no other slice of the same buffer may be alive.
    pub unsafe fn buf_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        debug_assert!(bid < self.entries && len <= BUF_SIZE);
        // SAFETY: per the contract above the bytes are ours, initialised
        // (zeroed at allocation, or written by the kernel) and not aliased.
        unsafe { std::slice::from_raw_parts_mut(self.buf_ptr(bid), len) }
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts; the kernel no longer
        // uses them (the owning worker unregistered the group / closed the ring).
        unsafe {
            dealloc(self.ring as *mut u8, self.ring_layout);
            dealloc(self.bufs, self.bufs_layout);
        }
    }
}
