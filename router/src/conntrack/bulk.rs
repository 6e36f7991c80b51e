//! Operations over the whole table for the `conntrack` command: listing
//! (`-L`), deleting with filters (`-D`, `-F`) and setting marks (`-U`). Each
//! walks every slot handed out so far, without stopping the workers: an
//! entry confirmed or removed meanwhile may or may not be seen.

use super::conn::ConnRef;
use super::slab::{BUSY, GEN_SHIFT, LIVE};
use super::snapshot::ConnSnapshot;
use super::table::{ConnTable, KillReason};
use super::Dir;
use crate::clock::Timestamp;
use std::sync::atomic::Ordering::*;

impl ConnTable {
    /// Calls `f` for every live, unexpired entry (for `conntrack -L`).
    pub fn for_each(&self, now: Timestamp, mut f: impl FnMut(&ConnSnapshot)) {
        let high = self.slab.high.load(Acquire);
        for idx in 0..high {
            let s = self.slab.get(idx);
            if s.gen_live.load(Acquire) & (LIVE | BUSY) == LIVE && s.deadline.load(Relaxed) > now.0
            {
                f(&self.snapshot_raw(idx, s));
            }
        }
    }

    /// All live entries, ordered by id.
    pub fn list(&self, now: Timestamp) -> Vec<ConnSnapshot> {
        let mut v = Vec::new();
        self.for_each(now, |s| v.push(*s));
        v.sort_by_key(|s| s.id);
        v
    }

    /// Deletes every entry for which `pred` holds (`conntrack -D` with
    /// filters); returns how many.
    pub fn delete_where(&self, mut pred: impl FnMut(&ConnSnapshot) -> bool) -> usize {
        let high = self.slab.high.load(Acquire);
        let mut n = 0;
        for idx in 0..high {
            let s = self.slab.get(idx);
            let gl = s.gen_live.load(Acquire);
            if gl & (LIVE | BUSY) == LIVE
                && pred(&self.snapshot_raw(idx, s))
                && self.kill(idx, gl >> GEN_SHIFT, KillReason::Deleted)
            {
                n += 1;
            }
        }
        n
    }

    /// Sets `mark = (mark & !mask) ^ value` on every entry for which `pred`
    /// holds (`conntrack -U --mark value[/mask]`); returns how many.
    pub fn set_mark_where(
        &self,
        value: u32,
        mask: u32,
        mut pred: impl FnMut(&ConnSnapshot) -> bool,
    ) -> usize {
        let high = self.slab.high.load(Acquire);
        let mut n = 0;
        for idx in 0..high {
            let s = self.slab.get(idx);
            let gl = s.gen_live.load(Acquire);
            if gl & (LIVE | BUSY) == LIVE && pred(&self.snapshot_raw(idx, s)) {
                let c = ConnRef {
                    table: self,
                    slot: s,
                    idx,
                    gen: gl >> GEN_SHIFT,
                    dir: Dir::Original,
                };
                c.set_mark((c.mark() & !mask) ^ value);
                n += 1;
            }
        }
        n
    }

    /// Removes everything (`conntrack -F`).
    pub fn flush(&self) -> usize {
        self.delete_where(|_| true)
    }
}
