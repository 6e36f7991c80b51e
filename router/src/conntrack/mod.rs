//! Connection tracking: tuples, directions, states, the TCP/UDP/ICMP/generic
//! protocol trackers, the sharded connection table shared by all workers, and
//! IPv4 reassembly ([`defrag`]).
//!
//! # Per-packet protocol with the pipeline (netfilter's unconfirmed -> confirmed)
//!
//! ```text
//! // PREROUTING (or OUTPUT), after raw, unless NOTRACK (ctstate UNTRACKED):
//! //   reassemble first: defrag.process(pkt, now) -> NotFragment | Held | Complete
//! let key = conntrack::classify(pkt)?;                 // Err only for a bad IP header
//! match table.track(&key, pkt.len() as u32, now) {     // no allocation
//!     Tracked::Known { conn, state } => {              // state: NEW (no reply yet) / ESTABLISHED
//!         // rules read conn.status(), conn.mark(), conn.tuple(Dir::..), conn.dir()
//!         // PREROUTING/OUTPUT:   nat::translate(pkt, partial, &conn.nat_target(), Manip::Dst)
//!         // POSTROUTING/INPUT:   nat::translate(pkt, partial, &conn.nat_target(), Manip::Src)
//!     }
//!     Tracked::Related(conn) => { /* RELATED; same two translate calls (ICMP error aware) */ }
//!     Tracked::New(mut nc) => {                        // ctstate NEW, unconfirmed
//!         // nat PREROUTING/OUTPUT rule DNAT/REDIRECT:
//!         //   nat::setup(&table, &mut nc, &range, Manip::Dst, &mut rng, now)?;
//!         //   nat::translate(pkt, partial, &nc.nat_target(), Manip::Dst);
//!         // nat POSTROUTING/INPUT rule SNAT/MASQUERADE: the same with Manip::Src
//!         // CONNMARK --set-mark: nc.mark = ..
//!         // end of POSTROUTING (or INPUT for local delivery):
//!         match table.confirm(&nc, now) {
//!             Ok(c) if c.clash == Some(ClashKind::Retranslate) =>
//!                 nat::translate_both(pkt, partial, &c.conn.nat_target()),  // lost a race
//!             Ok(_) => ..., // deliver
//!             Err(ConfirmError::Full) => Drop(ConntrackFull),
//!             Err(ConfirmError::ReplyTaken) => Drop(NatExhausted),
//!         }
//!     }
//!     Tracked::Invalid => { /* ctstate INVALID, no entry */ }
//! }
//! ```
//! `partial` is `VnetHdr::needs_csum()`. The dataplane should also call
//! [`ConnTable::gc`] now and then when idle (confirm already sweeps a few
//! slots per new flow), so idle tables still shrink.
//!
//! The table design (sharded map from both tuples to a slab slot of
//! atomics, lazy and incremental expiry, early drop, clash resolution) is
//! described in [`table`]; the TCP tracker in [`tcp`].

mod bulk;
mod conn;
pub mod defrag;
mod event;
mod index;
pub(crate) mod slab;
mod snapshot;
pub mod table;
pub mod tcp;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;

use crate::wire::{
    exthdr, icmp, ipv6, Family, IcmpPacket, Icmpv6Packet, Ipv4Packet, Ipv6Packet, PacketRepr,
    TcpPacket, UdpPacket,
};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub use conn::{ConnRef, NewConn};
pub use event::{CtEvent, EventKind, EventLine, EventSubscription};
pub use slab::{Release, Slot};
pub use snapshot::{proto_name, ConnSnapshot, ConntrackLine};
pub use table::{ClashKind, ConfirmError, Confirmed, ConnTable, Stats, StatsSnapshot, Tracked};
pub use tcp::TcpState;

/// Protocol numbers conntrack treats specially.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
/// UDP-Lite (RFC 3828): ports like UDP, a checksum that is never optional.
pub const PROTO_UDPLITE: u8 = 136;

/// ICMPv6 (next header 58).
pub const PROTO_ICMPV6: u8 = 58;

/// Word-1 bit of a packed tuple ([`Tuple::pack`]) that marks an IPv6 tuple.
pub(crate) const PACK_V6: u64 = 1 << 40;

/// A connection tuple (`nf_conntrack_tuple`), either family.
///
/// Addresses are host order, IPv4 zero-extended in the low 32 bits
/// (`family` says which). TCP/UDP: ports. ICMP and ICMPv6 queries: `sport`
/// is the identifier (in both directions, as the kernel keeps
/// `src.u.icmp.id`) and `dport` is `type << 8 | code`. Other protocols:
/// both ports are 0 ("generic").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tuple {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: Family,
}

impl Hash for Tuple {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (a, b) = self.pack();
        if self.family == Family::V6 {
            state.write_u128(self.src);
            state.write_u128(self.dst);
        }
        state.write_u64(a);
        state.write_u64(b);
    }
}

impl Tuple {
    /// An IPv4 tuple.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, sport: u16, dport: u16) -> Tuple {
        Tuple {
            src: src.to_bits() as u128,
            dst: dst.to_bits() as u128,
            sport,
            dport,
            proto,
            family: Family::V4,
        }
    }

    /// An IPv6 tuple.
    pub fn new6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, sport: u16, dport: u16) -> Tuple {
        Tuple {
            src: src.to_bits(),
            dst: dst.to_bits(),
            sport,
            dport,
            proto,
            family: Family::V6,
        }
    }

    /// A tuple of `family` from `u128` addresses.
    pub fn of(family: Family, src: u128, dst: u128, proto: u8, sport: u16, dport: u16) -> Tuple {
        Tuple {
            src,
            dst,
            sport,
            dport,
            proto,
            family,
        }
    }

    /// An ICMP query tuple.
    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, id: u16) -> Tuple {
        Tuple::new(src, dst, PROTO_ICMP, id, (ty as u16) << 8 | code as u16)
    }

    /// An ICMPv6 query tuple.
    pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, code: u8, id: u16) -> Tuple {
        Tuple::new6(src, dst, PROTO_ICMPV6, id, (ty as u16) << 8 | code as u16)
    }

    /// The source address (IPv4 or IPv6).
    pub fn src_ip(&self) -> IpAddr {
        self.family.ip(self.src)
    }
    pub fn dst_ip(&self) -> IpAddr {
        self.family.ip(self.dst)
    }
    /// The IPv4 source address (meaningful for `Family::V4` only).
    pub fn src_v4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src as u32)
    }
    pub fn dst_v4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst as u32)
    }

    /// ICMP or ICMPv6: the ports hold id and type/code.
    #[inline]
    pub fn is_icmp(&self) -> bool {
        self.proto == PROTO_ICMP || self.proto == PROTO_ICMPV6
    }

    pub fn icmp_type(&self) -> u8 {
        (self.dport >> 8) as u8
    }
    pub fn icmp_code(&self) -> u8 {
        self.dport as u8
    }
    pub fn icmp_id(&self) -> u16 {
        self.sport
    }

    /// The tuple of the answer (`nf_ct_invert_tuple`): addresses and ports
    /// swapped; ICMP keeps the id and maps request type to reply type.
    /// `None` for an ICMP type without a reply (the kernel's `invmap`).
    pub fn invert(&self) -> Option<Tuple> {
        let swapped = |sport, dport| Tuple {
            src: self.dst,
            dst: self.src,
            sport,
            dport,
            ..*self
        };
        if self.is_icmp() {
            let inv = if self.proto == PROTO_ICMP {
                icmp_invert(self.icmp_type())?
            } else {
                icmpv6_invert(self.icmp_type())?
            };
            return Some(swapped(
                self.sport,
                (inv as u16) << 8 | self.icmp_code() as u16,
            ));
        }
        Some(swapped(self.dport, self.sport))
    }

    /// Inversion for tuples known to be invertible (TCP, UDP, generic, ICMP
    /// queries); falls back to a plain swap otherwise.
    pub fn inverse(&self) -> Tuple {
        self.invert().unwrap_or(Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        })
    }

    /// True if the protocol has ports (or an ICMP id) NAT can change.
    pub fn has_ports(&self) -> bool {
        matches!(
            self.proto,
            PROTO_TCP | PROTO_UDP | PROTO_UDPLITE | PROTO_ICMP | PROTO_ICMPV6
        )
    }

    /// Two words. IPv4: `src << 32 | dst`, `sport << 24 | dport << 8 |
    /// proto`: the whole tuple. IPv6: a fold of the addresses and the same
    /// second word with [`PACK_V6`] set; the addresses themselves are kept
    /// beside (the slab's IPv6 words), so an IPv4 entry does not pay for them.
    #[inline]
    pub fn pack(&self) -> (u64, u64) {
        let b = (self.sport as u64) << 24 | (self.dport as u64) << 8 | self.proto as u64;
        match self.family {
            Family::V4 => ((self.src as u64) << 32 | self.dst as u64, b),
            Family::V6 => {
                let fold = |a: u128| (a as u64) ^ ((a >> 64) as u64);
                (fold(self.src) ^ fold(self.dst).rotate_left(32), b | PACK_V6)
            }
        }
    }

    /// An IPv4 tuple from its two words.
    pub fn unpack(a: u64, b: u64) -> Tuple {
        Tuple {
            src: (a >> 32) as u128,
            dst: a as u32 as u128,
            sport: (b >> 24) as u16,
            dport: (b >> 8) as u16,
            proto: b as u8,
            family: Family::V4,
        }
    }

    /// An IPv6 tuple from its second word and its addresses.
    pub fn unpack6(b: u64, src: u128, dst: u128) -> Tuple {
        Tuple {
            src,
            dst,
            family: Family::V6,
            ..Tuple::unpack(0, b)
        }
    }
}

/// The ICMP reply type of a query type (the kernel's `invmap`).
pub fn icmp_invert(ty: u8) -> Option<u8> {
    use icmp::types::*;
    Some(match ty {
        ECHO_REQUEST => ECHO_REPLY,
        ECHO_REPLY => ECHO_REQUEST,
        TIMESTAMP => TIMESTAMP_REPLY,
        TIMESTAMP_REPLY => TIMESTAMP,
        INFO_REQUEST => INFO_REPLY,
        INFO_REPLY => INFO_REQUEST,
        ADDRESS_MASK => ADDRESS_MASK_REPLY,
        ADDRESS_MASK_REPLY => ADDRESS_MASK,
        _ => return None,
    })
}

/// The ICMPv6 reply type of a query type (`nf_conntrack_proto_icmpv6`'s
/// `invmap`): echo and node information.
pub fn icmpv6_invert(ty: u8) -> Option<u8> {
    Some(match ty {
        128 => 129,
        129 => 128,
        139 => 140,
        140 => 139,
        _ => return None,
    })
}

impl fmt::Display for Tuple {
    /// `conntrack -L` form: `src=A dst=B sport=P dport=Q` (ICMP: `type= code= id=`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "src={} dst={}", self.src_ip(), self.dst_ip())?;
        match self.proto {
            PROTO_TCP | PROTO_UDP | PROTO_UDPLITE => {
                write!(f, " sport={} dport={}", self.sport, self.dport)
            }
            PROTO_ICMP | PROTO_ICMPV6 => write!(
                f,
                " type={} code={} id={}",
                self.icmp_type(),
                self.icmp_code(),
                self.sport
            ),
            _ => Ok(()),
        }
    }
}

/// Direction of a packet relative to the connection (`enum ip_conntrack_dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dir {
    Original = 0,
    Reply = 1,
}

impl Dir {
    pub fn other(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The `-m conntrack --ctstate` / `-m state` classes of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtState {
    New,
    Established,
    Related,
    Invalid,
    Untracked,
}

impl CtState {
    pub fn name(self) -> &'static str {
        match self {
            CtState::New => "NEW",
            CtState::Established => "ESTABLISHED",
            CtState::Related => "RELATED",
            CtState::Invalid => "INVALID",
            CtState::Untracked => "UNTRACKED",
        }
    }
}

/// Connection status bits, with the kernel's values (`enum ip_conntrack_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Status(pub u32);

impl Status {
    pub const EXPECTED: u32 = 1 << 0;
    pub const SEEN_REPLY: u32 = 1 << 1;
    pub const ASSURED: u32 = 1 << 2;
    pub const CONFIRMED: u32 = 1 << 3;
    pub const SRC_NAT: u32 = 1 << 4;
    pub const DST_NAT: u32 = 1 << 5;
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    pub const DST_NAT_DONE: u32 = 1 << 8;
    pub const DYING: u32 = 1 << 9;
    /// The entry lost a confirm race and was merged into another (kernel's NAT_CLASH).
    pub const NAT_CLASH: u32 = 1 << 12;

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    pub fn seen_reply(self) -> bool {
        self.has(Self::SEEN_REPLY)
    }
    pub fn assured(self) -> bool {
        self.has(Self::ASSURED)
    }
    pub fn src_nat(self) -> bool {
        self.has(Self::SRC_NAT)
    }
    pub fn dst_nat(self) -> bool {
        self.has(Self::DST_NAT)
    }
}

/// Protocol timeouts, the kernel's defaults (`nf_conntrack_*_timeout*` sysctls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn_sent: Duration,
    pub tcp_syn_recv: Duration,
    pub tcp_established: Duration,
    pub tcp_fin_wait: Duration,
    pub tcp_close_wait: Duration,
    pub tcp_last_ack: Duration,
    pub tcp_time_wait: Duration,
    pub tcp_close: Duration,
    pub udp_unreplied: Duration,
    pub udp_stream: Duration,
    pub icmp: Duration,
    /// `nf_conntrack_icmpv6_timeout`.
    pub icmpv6: Duration,
    pub generic: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            tcp_syn_sent: s(120),
            tcp_syn_recv: s(60),
            tcp_established: s(432_000),
            tcp_fin_wait: s(120),
            tcp_close_wait: s(60),
            tcp_last_ack: s(30),
            tcp_time_wait: s(120),
            tcp_close: s(10),
            udp_unreplied: s(30),
            udp_stream: s(120),
            icmp: s(30),
            icmpv6: s(30),
            generic: s(600),
        }
    }
}

/// A timeout name that [`Timeouts::set`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown conntrack timeout `{0}`; expected one of: {names}", names = Timeouts::NAMES.join(", "))]
pub struct UnknownTimeout(pub String);

impl Timeouts {
    /// The settable names: the kernel's sysctls without the
    /// `net.netfilter.nf_conntrack_` prefix.
    pub const NAMES: [&'static str; 13] = [
        "tcp_timeout_syn_sent",
        "tcp_timeout_syn_recv",
        "tcp_timeout_established",
        "tcp_timeout_fin_wait",
        "tcp_timeout_close_wait",
        "tcp_timeout_last_ack",
        "tcp_timeout_time_wait",
        "tcp_timeout_close",
        "udp_timeout",
        "udp_timeout_stream",
        "icmp_timeout",
        "icmpv6_timeout",
        "generic_timeout",
    ];

    /// Sets one timeout by its sysctl name, with or without the
    /// `net.netfilter.nf_conntrack_` prefix (`udp_timeout_stream`, ...).
    pub fn set(&mut self, name: &str, secs: u64) -> Result<(), UnknownTimeout> {
        let short = name
            .strip_prefix("net.netfilter.nf_conntrack_")
            .unwrap_or(name);
        let d = Duration::from_secs(secs);
        let slot = match short {
            "tcp_timeout_syn_sent" => &mut self.tcp_syn_sent,
            "tcp_timeout_syn_recv" => &mut self.tcp_syn_recv,
            "tcp_timeout_established" => &mut self.tcp_established,
            "tcp_timeout_fin_wait" => &mut self.tcp_fin_wait,
            "tcp_timeout_close_wait" => &mut self.tcp_close_wait,
            "tcp_timeout_last_ack" => &mut self.tcp_last_ack,
            "tcp_timeout_time_wait" => &mut self.tcp_time_wait,
            "tcp_timeout_close" => &mut self.tcp_close,
            "udp_timeout" => &mut self.udp_unreplied,
            "udp_timeout_stream" => &mut self.udp_stream,
            "icmp_timeout" => &mut self.icmp,
            "icmpv6_timeout" => &mut self.icmpv6,
            "generic_timeout" => &mut self.generic,
            _ => return Err(UnknownTimeout(name.to_string())),
        };
        *slot = d;
        Ok(())
    }

    pub fn tcp(&self, st: TcpState) -> Duration {
        match st {
            TcpState::None | TcpState::SynSent | TcpState::SynSent2 => self.tcp_syn_sent,
            TcpState::SynRecv => self.tcp_syn_recv,
            TcpState::Established => self.tcp_established,
            TcpState::FinWait => self.tcp_fin_wait,
            TcpState::CloseWait => self.tcp_close_wait,
            TcpState::LastAck => self.tcp_last_ack,
            TcpState::TimeWait => self.tcp_time_wait,
            TcpState::Close => self.tcp_close,
        }
    }
}

/// Table configuration.
#[derive(Debug, Clone)]
pub struct ConntrackConfig {
    /// `nf_conntrack_max`.
    pub max_entries: usize,
    pub timeouts: Timeouts,
    /// `nf_conntrack_tcp_loose`: pick up established TCP flows from an ACK
    /// (kernel default on; such flows are window-tracked liberally).
    pub tcp_loose: bool,
    /// `nf_conntrack_tcp_be_liberal`: out-of-window segments are not
    /// INVALID (kernel default off); out-of-window RSTs still are.
    pub tcp_be_liberal: bool,
    /// Capacity of the event queue (`conntrack -E`); 0 disables events.
    pub event_queue: usize,
    /// Slots examined by the incremental expiry sweep on each confirm.
    pub gc_budget: usize,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_entries: 262_144,
            timeouts: Timeouts::default(),
            tcp_loose: true,
            tcp_be_liberal: false,
            event_queue: 0,
            gc_budget: 16,
        }
    }
}

/// What conntrack makes of a packet before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKey {
    /// A trackable packet: its tuple; `tcp_flags` is 0 for non-TCP; `tcp`
    /// the segment's sequence data for window tracking (default for
    /// non-TCP and for the quoted segment of an ICMP error).
    Flow {
        tuple: Tuple,
        tcp_flags: u8,
        tcp: tcp::Segment,
    },
    /// An ICMP error; `embedded` is the tuple of the quoted packet as it was
    /// sent. Look it up with [`ConnTable::lookup_related`].
    IcmpError { embedded: Tuple },
    /// Conntrack cannot track it (unknown ICMP type, truncated L4 header of
    /// TCP/UDP, an ICMP error quoting something unparsable): INVALID.
    Untrackable,
    /// Conntrack leaves it alone on purpose (ICMPv6 neighbour and router
    /// discovery, MLD): ctstate UNTRACKED, as after NOTRACK.
    NoTrack,
}

/// Reads the tuple of the packet (an IPv4 packet, not a fragment: reassemble
/// first). `Err` only when the IP header itself is malformed.
#[inline]
pub fn classify(packet: &[u8]) -> Result<PacketKey, crate::wire::WireError> {
    let ip = Ipv4Packet::new_checked(packet)?;
    if ip.frag_offset() != 0 {
        // A non-first fragment has no L4 header.
        return Ok(PacketKey::Untrackable);
    }
    let net = Net::v4(ip.src_addr(), ip.dst_addr(), ip.protocol_raw());
    Ok(l4_key(net, ip.payload(), true))
}

/// [`classify`] for a packet already described by the pipeline's one
/// parse, either family: the IP header is not read again (its fields come
/// from `repr`), only the transport header (the TCP segment for window
/// tracking, the quoted packet of an ICMP or ICMPv6 error). `repr` must
/// describe `packet`.
#[inline]
pub fn classify_repr(repr: &PacketRepr, packet: &[u8]) -> PacketKey {
    if repr.later_fragment() {
        // A non-first fragment has no L4 header.
        return PacketKey::Untrackable;
    }
    let net = Net {
        family: repr.family(),
        src: repr.src_addr(),
        dst: repr.dst_addr(),
        proto: repr.proto(),
    };
    l4_key(net, repr.l4_bytes(packet), true)
}

/// The network part of a tuple, as [`l4_key`] takes it.
#[derive(Clone, Copy)]
struct Net {
    family: Family,
    src: u128,
    dst: u128,
    proto: u8,
}

impl Net {
    fn v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Net {
        Net {
            family: Family::V4,
            src: src.to_bits() as u128,
            dst: dst.to_bits() as u128,
            proto,
        }
    }
    fn tuple(&self, sport: u16, dport: u16) -> Tuple {
        Tuple::of(self.family, self.src, self.dst, self.proto, sport, dport)
    }
}

/// The ICMPv6 types conntrack leaves untracked (`noct_valid_new`): MLD,
/// router and neighbour discovery. They pass the hooks with ctstate
/// UNTRACKED.
fn icmpv6_untracked(ty: u8) -> bool {
    use crate::wire::icmpv6::types::*;
    matches!(
        ty,
        MLD_QUERY
            | MLD_REPORT
            | MLD_DONE
            | ROUTER_SOLICIT
            | ROUTER_ADVERT
            | NEIGHBOUR_SOLICIT
            | NEIGHBOUR_ADVERT
            | MLD2_REPORT
    )
}

/// The tuple of the IPv6 packet an ICMPv6 error quotes (its extension
/// headers walked over the quoted bytes).
fn quoted_v6(inner: &[u8]) -> PacketKey {
    let ip = Ipv6Packet::new_unchecked(inner);
    let Ok(ext) = exthdr::walk_from(ip.next_header(), inner, ipv6::HEADER_LEN) else {
        return PacketKey::Untrackable;
    };
    if ext.later_fragment() {
        return PacketKey::Untrackable;
    }
    let net = Net {
        family: Family::V6,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto: ext.proto,
    };
    match l4_key(net, &inner[usize::from(ext.proto_offset)..], false) {
        PacketKey::Flow { tuple, .. } => PacketKey::IcmpError { embedded: tuple },
        _ => PacketKey::Untrackable,
    }
}

fn l4_key(net: Net, l4: &[u8], outer: bool) -> PacketKey {
    let flow = |tuple: Tuple, tcp_flags: u8, tcp: tcp::Segment| PacketKey::Flow {
        tuple,
        tcp_flags,
        tcp,
    };
    match (net.proto, net.family) {
        (PROTO_TCP, _) => {
            // The quoted segment in an ICMP error has only 8 bytes.
            if outer {
                match TcpPacket::new_checked(l4) {
                    Ok(t) => flow(
                        net.tuple(t.src_port(), t.dst_port()),
                        t.flags(),
                        tcp::Segment::parse(l4),
                    ),
                    Err(_) => PacketKey::Untrackable,
                }
            } else if l4.len() >= 4 {
                let t = TcpPacket::new_unchecked(l4);
                flow(
                    net.tuple(t.src_port(), t.dst_port()),
                    0,
                    tcp::Segment::default(),
                )
            } else {
                PacketKey::Untrackable
            }
        }
        (PROTO_UDP | PROTO_UDPLITE, _) => match UdpPacket::new_checked(l4) {
            Ok(u) => flow(
                net.tuple(u.src_port(), u.dst_port()),
                0,
                tcp::Segment::default(),
            ),
            Err(_) => PacketKey::Untrackable,
        },
        (PROTO_ICMP, Family::V4) => {
            let Ok(ic) = IcmpPacket::new_checked(l4) else {
                return PacketKey::Untrackable;
            };
            let ty = ic.msg_type();
            if icmp::is_query(ty) {
                let t = net.tuple(ic.ident(), (ty as u16) << 8 | ic.code() as u16);
                flow(t, 0, tcp::Segment::default())
            } else if outer && icmp::is_error(ty) {
                let Ok(inner) = ic.embedded() else {
                    return PacketKey::Untrackable;
                };
                let iip = Ipv4Packet::new_unchecked(inner);
                let h = iip.header_len();
                let inet = Net::v4(iip.src_addr(), iip.dst_addr(), iip.protocol_raw());
                match l4_key(inet, &inner[h..], false) {
                    PacketKey::Flow { tuple, .. } => PacketKey::IcmpError { embedded: tuple },
                    _ => PacketKey::Untrackable,
                }
            } else {
                PacketKey::Untrackable
            }
        }
        (PROTO_ICMPV6, Family::V6) => {
            let Ok(ic) = Icmpv6Packet::new_checked(l4) else {
                return PacketKey::Untrackable;
            };
            let ty = ic.msg_type();
            if outer && icmpv6_untracked(ty) {
                PacketKey::NoTrack
            } else if ty >= 128 {
                // Informational: the identifier and type/code, as
                // icmpv6_pkt_to_tuple keeps them; types without a reply
                // (invmap) cannot open a connection.
                let t = net.tuple(ic.ident(), (ty as u16) << 8 | ic.code() as u16);
                flow(t, 0, tcp::Segment::default())
            } else if outer {
                match ic.embedded() {
                    Ok(inner) => quoted_v6(inner),
                    Err(_) => PacketKey::Untrackable,
                }
            } else {
                PacketKey::Untrackable
            }
        }
        _ => flow(net.tuple(0, 0), 0, tcp::Segment::default()),
    }
}
