//! Handles on connections: [`NewConn`], a connection not yet in the table
//! (plain data, built for a flow's first packet and inserted by
//! [`ConnTable::confirm`]), and [`ConnRef`], a handle on a confirmed entry
//! whose [`update`](ConnRef::update) feeds each later packet to the
//! protocol tracker (state, SEEN_REPLY/ASSURED, counters, timeout).

use super::event::EventKind;
use super::slab::{Slot, BUSY, GEN_SHIFT, LIVE};
use super::snapshot::ConnSnapshot;
use super::table::{ConnTable, KillReason};
use super::tcp::{self, TcpBits, TcpState, TcpVerdict};
use super::{
    CtState, Dir, Status, Tuple, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE,
};
use crate::clock::Timestamp;
use std::fmt;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

/// A connection not yet in the table (netfilter's unconfirmed conntrack):
/// built for the first packet, NATed by the nat table, inserted by
/// [`ConnTable::confirm`] at the end of POSTROUTING. Plain data, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewConn {
    pub orig: Tuple,
    /// Starts as `orig.inverse()`; NAT setup changes it.
    pub reply: Tuple,
    pub status: Status,
    /// Protocol state word (TCP: `TcpBits`; UDP: stream millisecond).
    pub proto_state: u32,
    /// TCP window tracking after the first packet.
    pub tcp_win: tcp::Window,
    pub mark: u32,
    /// Size of the first packet (counted in ORIGINAL at confirm).
    pub len: u32,
    pub created: Timestamp,
}

impl NewConn {
    /// What the packet (ORIGINAL direction) must look like after NAT.
    pub fn nat_target(&self) -> Tuple {
        self.reply.inverse()
    }
    pub fn ctstate(&self) -> CtState {
        CtState::New
    }
    pub fn tcp_state(&self) -> Option<TcpState> {
        (self.orig.proto == PROTO_TCP).then(|| TcpBits(self.proto_state).state())
    }
}

/// A handle to a confirmed entry plus the direction of the current packet.
/// Cheap to copy; valid while the entry lives (operations on an entry that
/// was deleted meanwhile are ignored, guarded by the slot generation).
#[derive(Clone, Copy)]
pub struct ConnRef<'a> {
    pub(super) table: &'a ConnTable,
    /// `table.slab.get(idx)`, resolved once (a chunk lookup and a `OnceLock`
    /// check per field read otherwise).
    pub(super) slot: &'a Slot,
    pub(super) idx: u32,
    pub(super) gen: u32,
    pub(super) dir: Dir,
}

impl fmt::Debug for ConnRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnRef")
            .field("idx", &self.idx)
            .field("dir", &self.dir)
            .field("orig", &self.tuple(Dir::Original))
            .field("reply", &self.tuple(Dir::Reply))
            .finish()
    }
}

impl<'a> ConnRef<'a> {
    #[inline]
    pub(super) fn slot(&self) -> &'a Slot {
        self.slot
    }
    #[inline]
    pub(super) fn alive(&self) -> bool {
        self.slot().gen_live.load(Acquire) & !BUSY == self.gen << GEN_SHIFT | LIVE
    }
    /// Direction of the packet that found this entry.
    pub fn dir(&self) -> Dir {
        self.dir
    }
    /// The same entry seen from the other direction.
    pub fn with_dir(self, dir: Dir) -> ConnRef<'a> {
        ConnRef { dir, ..self }
    }
    pub fn tuple(&self, d: Dir) -> Tuple {
        self.table.slab.tuple(self.idx, self.slot, d)
    }
    pub fn orig(&self) -> Tuple {
        self.tuple(Dir::Original)
    }
    pub fn reply(&self) -> Tuple {
        self.tuple(Dir::Reply)
    }
    pub fn status(&self) -> Status {
        Status(self.slot().status.load(Relaxed))
    }
    pub fn id(&self) -> u32 {
        self.slot().id.load(Relaxed)
    }
    pub fn mark(&self) -> u32 {
        self.slot().mark.load(Relaxed)
    }
    pub fn set_mark(&self, m: u32) {
        if self.alive() && self.slot().mark.swap(m, Relaxed) != m {
            self.table.event(EventKind::Update, self.idx);
        }
    }
    pub fn deadline(&self) -> Timestamp {
        Timestamp(self.slot().deadline.load(Relaxed))
    }
    pub fn tcp_state(&self) -> Option<TcpState> {
        (self.orig().proto == PROTO_TCP).then(|| TcpBits(self.slot().proto.load(Relaxed)).state())
    }
    pub fn counters(&self, d: Dir) -> (u64, u64) {
        let s = self.slot();
        (
            s.packets[d.index()].load(Relaxed),
            s.bytes[d.index()].load(Relaxed),
        )
    }
    /// The ctstate of a packet in this entry's direction, from the status
    /// alone (ORIGINAL before any reply is still NEW, as in the kernel).
    pub fn ctstate(&self) -> CtState {
        if self.dir == Dir::Reply || self.status().seen_reply() {
            CtState::Established
        } else {
            CtState::New
        }
    }
    /// What a packet in `self.dir()` must look like after NAT: the inverse
    /// of the other direction's tuple.
    pub fn nat_target(&self) -> Tuple {
        self.tuple(self.dir.other()).inverse()
    }
    pub fn snapshot(&self) -> ConnSnapshot {
        self.table.snapshot_slot(self.idx)
    }

    /// Feeds one packet (in `self.dir()`) to the protocol tracker: updates
    /// state, SEEN_REPLY/ASSURED, counters and the timeout. Returns the
    /// packet's ctstate; `Invalid` leaves the entry untouched (no counters),
    /// as the kernel does. `New` with the entry gone (TCP reopen, or deleted
    /// meanwhile): the caller must treat the packet as a new connection
    /// ([`ConnTable::track`] does).
    pub fn update(&self, seg: &tcp::Segment, len: u32, now: Timestamp) -> CtState {
        let t = self.table;
        let s = self.slot();
        if !self.alive() {
            // Deleted (and maybe reused) since the lookup: a new connection.
            // (A deletion racing with the rest of this call can still credit
            // one packet to the slot's next tenant: the window is a few
            // instructions and the kernel's refcount is what closes it.)
            return CtState::New;
        }
        let reply = self.dir == Dir::Reply;
        let proto = self.orig().proto;
        let to = &t.cfg.timeouts;
        let mut changed = false;
        let mut timeout: Duration;
        match proto {
            PROTO_TCP => {
                // The entry lock (the kernel's spin_lock_bh(&ct->lock)):
                // window tracking reads and writes ten words together.
                let mut cur = s.proto.load(Relaxed);
                loop {
                    if cur & tcp::LOCKED != 0 {
                        std::hint::spin_loop();
                        cur = s.proto.load(Relaxed);
                        continue;
                    }
                    match s
                        .proto
                        .compare_exchange_weak(cur, cur | tcp::LOCKED, Acquire, Relaxed)
                    {
                        Ok(_) => break,
                        Err(x) => cur = x,
                    }
                }
                let mut words = [0u32; tcp::Window::WORDS];
                for (v, a) in words.iter_mut().zip(&s.tcp_win) {
                    *v = a.load(Relaxed);
                }
                let mut win = tcp::Window::from_words(words);
                let mut bits = TcpBits(cur);
                let st = Status(s.status.load(Relaxed));
                let ctx = tcp::Ctx {
                    be_liberal: t.cfg.tcp_be_liberal,
                    seen_reply: st.seen_reply(),
                    assured: st.assured(),
                };
                // No panics between lock and unlock: plain wrapping arithmetic.
                let verdict = tcp::packet(&mut bits, &mut win, reply, seg, &ctx);
                for (a, (v, old)) in s.tcp_win.iter().zip(win.to_words().into_iter().zip(words)) {
                    if v != old {
                        a.store(v, Relaxed);
                    }
                }
                s.proto.store(bits.0 & !tcp::LOCKED, Release);
                match verdict {
                    TcpVerdict::Invalid => {
                        t.stats.invalid.fetch_add(1, Relaxed);
                        return CtState::Invalid;
                    }
                    TcpVerdict::Reopen => {
                        t.kill(self.idx, self.gen, KillReason::Reopen);
                        return CtState::New;
                    }
                    TcpVerdict::Ignored => {
                        if reply && st.0 & Status::SEEN_REPLY == 0 {
                            s.status.fetch_or(Status::SEEN_REPLY, Relaxed);
                        }
                        return self.ctstate_after(reply);
                    }
                    TcpVerdict::Accept => {
                        let (old, new) = (TcpBits(cur).state(), bits.state());
                        changed = old != new;
                        let rst = tcp::index(seg.flags) == tcp::Index::Rst;
                        timeout = if rst { to.tcp_close } else { to.tcp(new) };
                        if rst && !st.seen_reply() {
                            // "If only reply is a RST ... delete the conntrack
                            // immediately": expire it now; the next lookup or
                            // the sweep removes it (this packet still uses it).
                            timeout = Duration::ZERO;
                        }
                        // ASSURED after a valid ACK moves SYN_RECV (or a
                        // picked-up flow's answer) to ESTABLISHED.
                        if new == TcpState::Established
                            && matches!(old, TcpState::SynRecv | TcpState::Established)
                            && (st.seen_reply() || reply)
                            && !st.assured()
                        {
                            s.status.fetch_or(Status::ASSURED, Relaxed);
                            changed = true;
                        }
                    }
                }
            }
            PROTO_UDP | PROTO_UDPLITE => {
                // As udp_packet: SEEN_REPLY is the status *before* this packet
                // (the core sets it afterwards), so the first reply still
                // gets the unreplied timeout.
                let st = Status(s.status.load(Relaxed));
                if st.seen_reply() {
                    // time_after(now, stream_ts) on a wrapping millisecond
                    // clock; an ASSURED flow already is a stream.
                    let stream_at = s.proto.load(Relaxed);
                    let now_ms = (now.as_nanos() / 1_000_000) as u32;
                    if st.assured() || (now_ms.wrapping_sub(stream_at) as i32) > 0 {
                        timeout = to.udp_stream;
                        if !st.assured() && !st.has(Status::NAT_CLASH) {
                            s.status.fetch_or(Status::ASSURED, Relaxed);
                            changed = true;
                        }
                    } else {
                        timeout = to.udp_unreplied;
                    }
                } else {
                    timeout = to.udp_unreplied;
                }
            }
            PROTO_ICMP => timeout = to.icmp,
            PROTO_ICMPV6 => timeout = to.icmpv6,
            // generic_packet / icmp_packet only refresh the timeout (never ASSURED).
            _ => timeout = to.generic,
        }
        // Load first: an atomic read-modify-write on every reply packet would
        // take the line exclusive even when the bit is long set.
        if reply
            && s.status.load(Relaxed) & Status::SEEN_REPLY == 0
            && s.status.fetch_or(Status::SEEN_REPLY, Relaxed) & Status::SEEN_REPLY == 0
        {
            changed = true;
        }
        let d = self.dir.index();
        s.packets[d].fetch_add(1, Relaxed);
        s.bytes[d].fetch_add(len as u64, Relaxed);
        s.deadline.store((now + timeout).0, Relaxed);
        if changed {
            t.event(EventKind::Update, self.idx);
        }
        if reply || Status(s.status.load(Relaxed)).seen_reply() {
            CtState::Established
        } else {
            CtState::New
        }
    }

    fn ctstate_after(&self, reply: bool) -> CtState {
        if reply || self.status().seen_reply() {
            CtState::Established
        } else {
            CtState::New
        }
    }

    /// Removes this entry (`conntrack -D` of one entry).
    pub fn delete(&self) -> bool {
        self.table.kill(self.idx, self.gen, KillReason::Deleted)
    }
}
