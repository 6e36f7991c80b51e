//! Housekeeping between packets: the conntrack sweep and defragmentation
//! expiry (`Pipeline::maintain`), and returning freed memory to the kernel
//! after a large release. `tungate run`'s main loop calls [`Housekeeping::tick`]
//! every 200 ms.

use std::sync::Arc;

use crate::clock::Timestamp;
use crate::pipeline::engine::Pipeline;

/// Conntrack bytes released (accounting, `ConnTable::memory_usage`) after
/// which the allocator's free pages go back to the kernel
/// (`sys::mem::collect`).
const COLLECT_AFTER_RELEASE: usize = 1 << 20;

/// The state of the housekeeping loop.
pub struct Housekeeping {
    pipeline: Arc<Pipeline>,
    /// Entries examined per tick. Expired conntrack entries are removed
    /// lazily by lookups; this sweep returns their memory when traffic
    /// stops: the whole table every ~10 s.
    gc_budget: usize,
    /// The table's accounted size, peak since the last collect: after a
    /// large release (a mass expiry shrank the conntrack index) the
    /// allocator is asked to return its free pages.
    ct_mem_peak: usize,
}

impl Housekeeping {
    /// For a table of at most `max_entries`.
    pub fn new(pipeline: Arc<Pipeline>, max_entries: usize) -> Housekeeping {
        Housekeeping {
            pipeline,
            gc_budget: (max_entries / 50).max(4096),
            ct_mem_peak: 0,
        }
    }

    /// One round: sweep part of the table, expire reassembly queues, and
    /// collect freed memory if a megabyte or more was released.
    pub fn tick(&mut self) {
        self.pipeline
            .maintain(Timestamp::now_monotonic(), self.gc_budget);
        let used = self.pipeline.conntrack().memory_usage();
        self.ct_mem_peak = self.ct_mem_peak.max(used);
        if self.ct_mem_peak - used >= COLLECT_AFTER_RELEASE {
            crate::sys::mem::collect(true);
            self.ct_mem_peak = used;
        }
    }
}
