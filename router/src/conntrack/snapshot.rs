//! [`ConnSnapshot`], a copy of one entry (for listings, deletion filters
//! and events), taken from its slot by the table, and its `conntrack -L`
//! line, which is also the `/proc/net/nf_conntrack` format.

use super::slab::Slot;
use super::table::ConnTable;
use super::tcp::{TcpBits, TcpState};
use super::{Dir, Status, Tuple, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE};
use crate::clock::Timestamp;
use std::fmt;
use std::sync::atomic::Ordering::*;

/// A copy of one entry, for listings, deletion filters and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSnapshot {
    pub id: u32,
    pub orig: Tuple,
    pub reply: Tuple,
    pub status: Status,
    pub tcp_state: Option<TcpState>,
    pub mark: u32,
    pub deadline: Timestamp,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

impl ConnSnapshot {
    /// Seconds left, as `conntrack -L` prints them.
    pub fn timeout_secs(&self, now: Timestamp) -> u64 {
        self.deadline.0.saturating_sub(now.0) / 1_000_000_000
    }

    /// One `conntrack -L` line. `acct`: print packet/byte counters
    /// (`nf_conntrack_acct=1`).
    pub fn display(&self, now: Timestamp, acct: bool) -> ConntrackLine<'_> {
        ConntrackLine {
            s: self,
            now,
            acct,
            event: false,
        }
    }
}

/// Formatter returned by [`ConnSnapshot::display`].
pub struct ConntrackLine<'a> {
    pub(super) s: &'a ConnSnapshot,
    pub(super) now: Timestamp,
    pub(super) acct: bool,
    /// `conntrack -E` body: no `use=`, `mark=` only when set.
    pub(super) event: bool,
}

/// The protocol name conntrack-tools prints for a tuple's protocol.
pub fn proto_name(p: u8) -> &'static str {
    match p {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        PROTO_UDPLITE => "udplite",
        PROTO_ICMP => "icmp",
        PROTO_ICMPV6 => "icmpv6",
        _ => "unknown",
    }
}

impl fmt::Display for ConntrackLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        write!(
            f,
            "{:<8} {} {} ",
            proto_name(s.orig.proto),
            s.orig.proto,
            s.timeout_secs(self.now)
        )?;
        if let Some(st) = s.tcp_state {
            write!(f, "{} ", st.name())?;
        }
        write!(f, "{} ", s.orig)?;
        if self.acct {
            write!(f, "packets={} bytes={} ", s.packets[0], s.bytes[0])?;
        }
        if !s.status.seen_reply() {
            write!(f, "[UNREPLIED] ")?;
        }
        write!(f, "{} ", s.reply)?;
        if self.acct {
            write!(f, "packets={} bytes={} ", s.packets[1], s.bytes[1])?;
        }
        if s.status.assured() {
            write!(f, "[ASSURED] ")?;
        }
        if self.event {
            if s.mark != 0 {
                write!(f, "mark={} ", s.mark)?;
            }
            return Ok(());
        }
        write!(f, "mark={} use=1", s.mark)
    }
}

impl ConnTable {
    /// A copy of the entry in slot `s` (the caller checks that it is live).
    pub(super) fn snapshot_raw(&self, idx: u32, s: &Slot) -> ConnSnapshot {
        let orig = self.slab.tuple(idx, s, Dir::Original);
        ConnSnapshot {
            id: s.id.load(Relaxed),
            orig,
            reply: self.slab.tuple(idx, s, Dir::Reply),
            status: Status(s.status.load(Relaxed)),
            tcp_state: (orig.proto == PROTO_TCP).then(|| TcpBits(s.proto.load(Relaxed)).state()),
            mark: s.mark.load(Relaxed),
            deadline: Timestamp(s.deadline.load(Relaxed)),
            packets: [s.packets[0].load(Relaxed), s.packets[1].load(Relaxed)],
            bytes: [s.bytes[0].load(Relaxed), s.bytes[1].load(Relaxed)],
        }
    }

    /// A copy of the entry in slot `idx`.
    pub(super) fn snapshot_slot(&self, idx: u32) -> ConnSnapshot {
        self.snapshot_raw(idx, self.slab.get(idx))
    }
}
