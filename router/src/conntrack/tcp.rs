//! The TCP connection-tracking state machine and window tracking,
//! transcribed from Linux `net/netfilter/nf_conntrack_proto_tcp.c` (6.x:
//! `tcp_conntracks`, `tcp_valid_flags`, `get_conntrack_index`, `tcp_new`,
//! `nf_conntrack_tcp_packet`, `tcp_in_window`, `tcp_options`, `tcp_sack`).
//!
//! Window tracking is Guido van Rooij's, as the kernel does it with
//! `nf_conntrack_tcp_be_liberal=0`: per direction the highest sequence end
//! sent (`td_end`), the highest right edge the peer allowed (`td_maxend`),
//! the largest window seen (`td_maxwin`) and the highest ACK sent
//! (`td_maxack`). A segment whose sequence is beyond what the receiver
//! allowed (I), or that acknowledges data never sent (III), is INVALID;
//! old retransmissions (II) and very old ACKs (IV) are let through
//! unrecorded (the kernel's `NFCT_TCP_IGNORE`). RST segments are checked
//! against the peer's highest ACK (RFC 5961). Connections picked up
//! mid-stream (`nf_conntrack_tcp_loose`) are tracked liberally in both
//! directions, as the kernel marks them `IP_CT_TCP_FLAG_BE_LIBERAL`.
//!
//! Everything is plain data: [`TcpBits`] (one `u32`: state, last packet,
//! scale and per-direction flags) and [`Window`] (nine `u32`s); the table
//! stores them in its slot and serializes updates with a lock bit in the
//! `TcpBits` word ([`LOCKED`]).
//!
//! What the kernel keeps and this does not (to keep a slot at 128 bytes):
//! `last_seq`/`last_ack`/`last_win` and the retransmission counter. They only
//! shorten timeouts (`timeout_max_retrans`, `timeout_unacknowledged`, not
//! modelled) except in two corners: an ignored SYN that a SYN-ACK later
//! confirms re-syncs the SYN's direction with `td_maxwin = 1` instead of
//! the SYN's window (it grows with that side's next segment), and a RST
//! answering a challenge ACK in SYN_SENT is window-checked instead of
//! being let through.

use crate::wire::tcp::flags as f;

/// TCP conntrack states, in the kernel's order (`enum tcp_conntrack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    SynSent = 1,
    SynRecv = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
    /// SYN_SENT2: simultaneous open (SYN seen in both directions).
    SynSent2 = 9,
}

impl TcpState {
    pub fn from_u8(v: u8) -> TcpState {
        match v {
            1 => TcpState::SynSent,
            2 => TcpState::SynRecv,
            3 => TcpState::Established,
            4 => TcpState::FinWait,
            5 => TcpState::CloseWait,
            6 => TcpState::LastAck,
            7 => TcpState::TimeWait,
            8 => TcpState::Close,
            9 => TcpState::SynSent2,
            _ => TcpState::None,
        }
    }

    /// Name as `conntrack -L` prints it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }
}

/// One cell of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    To(TcpState),
    /// sIV: the packet is INVALID, state unchanged.
    Invalid,
    /// sIG: the packet is let through, state unchanged.
    Ignore,
}

/// Packet class (`get_conntrack_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Index {
    Syn = 0,
    SynAck = 1,
    Fin = 2,
    Ack = 3,
    Rst = 4,
    None = 5,
}

pub fn index(flags: u8) -> Index {
    if flags & f::RST != 0 {
        Index::Rst
    } else if flags & f::SYN != 0 {
        if flags & f::ACK != 0 {
            Index::SynAck
        } else {
            Index::Syn
        }
    } else if flags & f::FIN != 0 {
        Index::Fin
    } else if flags & f::ACK != 0 {
        Index::Ack
    } else {
        Index::None
    }
}

/// `tcp_valid_flags`: the flag combinations (ignoring ECE, CWR, PSH) the
/// kernel accepts; anything else is INVALID.
pub fn valid_flags(flags: u8) -> bool {
    let t = flags & !(f::ECE | f::CWR | f::PSH);
    matches!(
        t,
        x if x == f::SYN
            || x == f::SYN | f::URG
            || x == f::SYN | f::ACK
            || x == f::RST
            || x == f::RST | f::ACK
            || x == f::FIN | f::ACK
            || x == f::FIN | f::ACK | f::URG
            || x == f::ACK
            || x == f::ACK | f::URG
    )
}

use TcpState as S;
use Transition::{Ignore as IG, Invalid as IV};
const SS: Transition = Transition::To(S::SynSent);
const SR: Transition = Transition::To(S::SynRecv);
const ES: Transition = Transition::To(S::Established);
const FW: Transition = Transition::To(S::FinWait);
const CW: Transition = Transition::To(S::CloseWait);
const LA: Transition = Transition::To(S::LastAck);
const TW: Transition = Transition::To(S::TimeWait);
const CL: Transition = Transition::To(S::Close);
const S2: Transition = Transition::To(S::SynSent2);

/// `tcp_conntracks[dir][index][state]`, states in the order
/// NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK,
/// TIME_WAIT, CLOSE, SYN_SENT2.
#[rustfmt::skip]
const TABLE: [[[Transition; 10]; 6]; 2] = [
    [ // ORIGINAL
        /* syn    */ [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        /* synack */ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ack    */ [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    [ // REPLY
        /* syn    */ [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        /* synack */ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ack    */ [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

/// The table lookup: `reply` selects the REPLY half.
pub fn transition(reply: bool, flags: u8, state: TcpState) -> Transition {
    TABLE[reply as usize][index(flags) as usize][state as usize]
}

/// Packed per-connection TCP state kept in one `u32`:
///
/// | bits | field |
/// |---|---|
/// | 0..4 | state |
/// | 4..7 | last index ([`Index`]) |
/// | 7 | last direction was REPLY |
/// | 8, 9 | CLOSE_INIT, ORIGINAL / REPLY |
/// | 10..14, 14..18 | window scale, ORIGINAL / REPLY ([`NO_WSCALE`]: no option seen) |
/// | 18..21, 21..24 | SACK_PERM, MAXACK_SET, BE_LIBERAL, ORIGINAL / REPLY |
/// | 24..28 | last ignored SYN's window scale ([`NO_WSCALE`]: none) |
/// | 28 | last ignored SYN had SACK_PERM |
/// | 29 | simultaneous open seen |
/// | 30 | RFC 5961 challenge ACK expected |
/// | 31 | [`LOCKED`] (owned by the table while it updates the entry) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpBits(pub u32);

pub const CLOSE_INIT_ORIG: u32 = 1 << 8;
/// The table's per-entry lock bit in the `TcpBits` word.
pub const LOCKED: u32 = 1 << 31;
/// Scale value meaning "no window scale option" (the kernel's
/// `IP_CT_TCP_FLAG_WINDOW_SCALE` clear); counts as scale 0.
pub const NO_WSCALE: u8 = 15;
/// RFC 7323 section 2.3.
const MAX_WSCALE: u8 = 14;
/// The kernel's `MAXACKWINCONST` (condition IV).
const MAXACKWINCONST: u32 = 66000;

const SCALE_SHIFT: u32 = 10;
const FLAG_SHIFT: u32 = 18;
const F_SACK_PERM: u32 = 1;
const F_MAXACK_SET: u32 = 2;
const F_BE_LIBERAL: u32 = 4;
const LAST_WSCALE_SHIFT: u32 = 24;
const LAST_SACK_PERM: u32 = 1 << 28;
const SIMULTANEOUS_OPEN: u32 = 1 << 29;
const EXP_CHALLENGE_ACK: u32 = 1 << 30;

impl TcpBits {
    pub fn state(self) -> TcpState {
        TcpState::from_u8((self.0 & 0xf) as u8)
    }
    pub fn last_index(self) -> u8 {
        ((self.0 >> 4) & 0x7) as u8
    }
    pub fn last_reply(self) -> bool {
        self.0 & (1 << 7) != 0
    }
    pub fn close_init(self, reply: bool) -> bool {
        self.0 & (CLOSE_INIT_ORIG << reply as u32) != 0
    }
    /// Sets state, last index and last direction, keeping the rest.
    pub fn with(self, state: TcpState, idx: Index, reply: bool) -> TcpBits {
        TcpBits(self.0 & !0xff | state as u32 | (idx as u32) << 4 | (reply as u32) << 7)
    }
    pub fn with_close_init(self, reply: bool) -> TcpBits {
        TcpBits(self.0 | CLOSE_INIT_ORIG << reply as u32)
    }
    fn set_last(&mut self, idx: Index, reply: bool) {
        self.0 = self.0 & !0xf0 | (idx as u32) << 4 | (reply as u32) << 7;
    }
    fn set_state(&mut self, s: TcpState) {
        self.0 = self.0 & !0xf | s as u32;
    }
    /// Raw scale nibble of direction `d` (`NO_WSCALE` if no option).
    fn wscale_raw(self, d: usize) -> u8 {
        ((self.0 >> (SCALE_SHIFT + 4 * d as u32)) & 0xf) as u8
    }
    /// Window scale of direction `d` (`td_scale`).
    pub fn wscale(self, d: usize) -> u8 {
        match self.wscale_raw(d) {
            NO_WSCALE => 0,
            s => s,
        }
    }
    fn set_wscale_raw(&mut self, d: usize, v: u8) {
        let sh = SCALE_SHIFT + 4 * d as u32;
        self.0 = self.0 & !(0xf << sh) | ((v as u32 & 0xf) << sh);
    }
    fn flag(self, d: usize, f: u32) -> bool {
        self.0 & (f << (FLAG_SHIFT + 3 * d as u32)) != 0
    }
    fn set_flag(&mut self, d: usize, f: u32, on: bool) {
        let m = f << (FLAG_SHIFT + 3 * d as u32);
        if on {
            self.0 |= m
        } else {
            self.0 &= !m
        }
    }
    /// Direction `d` is tracked liberally (`IP_CT_TCP_FLAG_BE_LIBERAL`).
    pub fn be_liberal(self, d: usize) -> bool {
        self.flag(d, F_BE_LIBERAL)
    }
    pub fn sack_perm(self, d: usize) -> bool {
        self.flag(d, F_SACK_PERM)
    }
    /// `flags &= IP_CT_TCP_FLAG_BE_LIBERAL` for direction `d` (scale kept).
    fn keep_only_liberal(&mut self, d: usize) {
        self.set_flag(d, F_SACK_PERM, false);
        self.set_flag(d, F_MAXACK_SET, false);
        self.0 &= !(CLOSE_INIT_ORIG << d as u32);
    }
    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    fn set(&mut self, bit: u32, on: bool) {
        if on {
            self.0 |= bit
        } else {
            self.0 &= !bit
        }
    }
}

/// What window tracking reads from a segment, parsed once by
/// `conntrack::classify` ([`Segment::parse`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    /// `seq + payload length + SYN + FIN` (`segment_seq_plus_len`).
    pub end: u32,
    /// `tcp_sack`: the highest right edge of the first SACK option's blocks
    /// if it is after `ack`, else `ack`.
    pub sack: u32,
    /// Window scale option, clamped to 14; [`NO_WSCALE`] if absent.
    pub wscale: u8,
    pub sack_perm: bool,
    /// The header has option bytes (`tcp_options` resets scale and flags
    /// only then).
    pub has_options: bool,
}

impl Segment {
    /// Reads a TCP header plus payload whose data offset was checked
    /// (`20 <= offset <= tcp.len()`); shorter input yields a default
    /// segment rather than a panic.
    pub fn parse(tcp: &[u8]) -> Segment {
        if tcp.len() < 20 {
            return Segment::default();
        }
        let off = ((tcp[12] >> 4) as usize * 4).clamp(20, tcp.len());
        let be32 = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
        let flags = tcp[13];
        let seq = be32(4);
        let ack = be32(8);
        let payload = (tcp.len() - off) as u32;
        let mut seg = Segment {
            flags,
            seq,
            ack,
            win: u16::from_be_bytes([tcp[14], tcp[15]]),
            end: seq
                .wrapping_add(payload)
                .wrapping_add((flags & f::SYN != 0) as u32)
                .wrapping_add((flags & f::FIN != 0) as u32),
            sack: ack,
            wscale: NO_WSCALE,
            sack_perm: false,
            has_options: off > 20,
        };
        seg.read_options(&tcp[20..off]);
        seg
    }

    /// `tcp_options` and `tcp_sack` in one pass (RFC 9293 section 3.1
    /// option layout; window scale RFC 7323 section 2; SACK RFC 2018).
    fn read_options(&mut self, mut o: &[u8]) {
        let mut sack_done = false;
        while let Some(&kind) = o.first() {
            match kind {
                0 => return,
                1 => o = &o[1..],
                _ => {
                    if o.len() < 2 {
                        return;
                    }
                    let len = o[1] as usize;
                    if len < 2 || len > o.len() {
                        return;
                    }
                    match (kind, len) {
                        (4, 2) => self.sack_perm = true,
                        (3, 3) => self.wscale = o[2].min(MAX_WSCALE),
                        (5, _) if !sack_done && len >= 10 && (len - 2).is_multiple_of(8) => {
                            for b in o[2..len].chunks_exact(8) {
                                let right = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                                if after(right, self.sack) {
                                    self.sack = right;
                                }
                            }
                            sack_done = true;
                        }
                        _ => {}
                    }
                    o = &o[len..];
                }
            }
        }
    }
}

/// One direction's window data (`struct ip_ct_tcp_state` without the
/// scale and flags, which live in [`TcpBits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// `td_end`: highest `seq + len` sent.
    pub end: u32,
    /// `td_maxend`: highest `ack + window` the peer allowed.
    pub maxend: u32,
    /// `td_maxwin`: largest (scaled) window sent; 0 = nothing seen yet.
    pub maxwin: u32,
    /// `td_maxack`: highest ACK sent.
    pub maxack: u32,
}

/// Window-tracking data of one connection: both directions plus the end
/// of the last ignored (or in-window ACK) segment (`last_end`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub seen: [Seen; 2],
    pub last_end: u32,
}

impl Window {
    pub const WORDS: usize = 9;

    pub fn to_words(&self) -> [u32; Self::WORDS] {
        let [a, b] = self.seen;
        [
            a.end,
            a.maxend,
            a.maxwin,
            a.maxack,
            b.end,
            b.maxend,
            b.maxwin,
            b.maxack,
            self.last_end,
        ]
    }

    pub fn from_words(w: [u32; Self::WORDS]) -> Window {
        let seen = |i: usize| Seen {
            end: w[i],
            maxend: w[i + 1],
            maxwin: w[i + 2],
            maxack: w[i + 3],
        };
        Window {
            seen: [seen(0), seen(4)],
            last_end: w[8],
        }
    }
}

/// Sequence-space comparisons (RFC 9293 section 3.4; the kernel's
/// `before`/`after`).
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
pub fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// Connection facts the tracker reads but does not own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ctx {
    /// `nf_conntrack_tcp_be_liberal`.
    pub be_liberal: bool,
    /// The entry's SEEN_REPLY and ASSURED status bits.
    pub seen_reply: bool,
    pub assured: bool,
}

/// Result of feeding one segment to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpVerdict {
    /// In window: state (maybe) advanced; refresh timeout and counters.
    Accept,
    /// Let through without a state change (sIG, or `NFCT_TCP_IGNORE`); the
    /// kernel returns before refreshing the timeout or the counters.
    Ignored,
    /// INVALID: the packet gets no conntrack entry.
    Invalid,
    /// A SYN in a closed (TIME_WAIT/CLOSE) connection that the kernel treats
    /// as a reopening: the old entry must be destroyed and the packet
    /// tracked as a new connection.
    Reopen,
}

/// `tcp_new`: the state for the first packet of a connection (then fed to
/// [`packet`] like any other), or `None` if it cannot start one (INVALID).
/// `loose` is `nf_conntrack_tcp_loose`: pick up established connections from
/// a bare ACK (tracked liberally in both directions from then on).
pub fn new_conn(seg: &Segment, loose: bool) -> Option<(TcpBits, Window)> {
    if !valid_flags(seg.flags) {
        return None;
    }
    let mut bits = TcpBits(0);
    let mut w = Window::default();
    bits.set_wscale_raw(0, NO_WSCALE);
    bits.set_wscale_raw(1, NO_WSCALE);
    let maxwin = (seg.win as u32).max(1);
    match transition(false, seg.flags, S::None) {
        Transition::To(S::SynSent) => {
            w.seen[0] = Seen {
                end: seg.end,
                maxend: seg.end,
                maxwin,
                maxack: 0,
            };
            options(&mut bits, 0, seg);
        }
        Transition::To(_) if loose => {
            w.seen[0] = Seen {
                end: seg.end,
                maxend: seg.end.wrapping_add(maxwin),
                maxwin,
                maxack: 0,
            };
            for d in 0..2 {
                bits.set_flag(d, F_SACK_PERM | F_BE_LIBERAL, true);
            }
        }
        _ => return None,
    }
    bits.set_last(Index::None, false);
    Some((bits, w))
}

/// The first packet of a connection: [`new_conn`] then [`packet`], as the
/// kernel runs `tcp_new` and then `tcp_packet` on it.
pub fn first(seg: &Segment, loose: bool, be_liberal: bool) -> Option<(TcpBits, Window)> {
    let (mut bits, mut w) = new_conn(seg, loose)?;
    let ctx = Ctx {
        be_liberal,
        ..Ctx::default()
    };
    match packet(&mut bits, &mut w, false, seg, &ctx) {
        TcpVerdict::Accept => Some((bits, w)),
        _ => None,
    }
}

/// `tcp_options` into direction `d`: only when the header has options.
fn options(bits: &mut TcpBits, d: usize, seg: &Segment) {
    if !seg.has_options {
        return;
    }
    bits.keep_only_liberal(d);
    bits.set_wscale_raw(d, seg.wscale);
    bits.set_flag(d, F_SACK_PERM, seg.sack_perm);
}

/// `tcp_init_sender`: a SYN-ACK answering a SYN, or a SYN from REPLY in a
/// simultaneous open, (re)starts direction `d`.
fn init_sender(bits: &mut TcpBits, w: &mut Window, d: usize, seg: &Segment) {
    let s = &mut w.seen[d];
    s.end = seg.end;
    s.maxend = seg.end;
    s.maxwin = (seg.win as u32).max(1);
    options(bits, d, seg);
    // RFC 7323 section 1.3: scaling only if both sides sent the option.
    if d == 1 && (bits.wscale_raw(0) == NO_WSCALE || bits.wscale_raw(1) == NO_WSCALE) {
        for x in 0..2 {
            if bits.wscale_raw(x) != NO_WSCALE {
                bits.set_wscale_raw(x, 0);
            }
        }
    }
}

fn maxackwindow(s: &Seen) -> u32 {
    s.maxwin.max(MAXACKWINCONST)
}

/// `tcp_in_window`. `state` is the entry's state before this packet.
fn in_window(
    bits: &mut TcpBits,
    w: &mut Window,
    reply: bool,
    idx: Index,
    seg: &Segment,
    state: TcpState,
    global_liberal: bool,
) -> TcpVerdict {
    let (d, r) = (reply as usize, !reply as usize);
    let syn = seg.flags & f::SYN != 0;
    let has_ack = seg.flags & f::ACK != 0;
    let rst = seg.flags & f::RST != 0;
    let mut seq = seg.seq;
    let mut end = seg.end;
    let mut ack = seg.ack;
    let mut sack = if bits.sack_perm(r) { seg.sack } else { seg.ack };
    let mut win = seg.win as u32;

    if w.seen[d].maxwin == 0 {
        if syn {
            init_sender(bits, w, d, seg);
            if !has_ack {
                // Simultaneous open.
                return TcpVerdict::Accept;
            }
        } else {
            // Mid-connection: its history is lost; use this packet's data.
            let swin = win << bits.wscale(d);
            let s = &mut w.seen[d];
            s.end = end;
            s.maxwin = swin.max(1);
            s.maxend = end.wrapping_add(s.maxwin);
            let rcv = &mut w.seen[r];
            if rcv.maxwin == 0 {
                // Nothing seen the other way yet: pass III and IV until then.
                rcv.end = sack;
                rcv.maxend = sack;
            } else if sack == rcv.end.wrapping_add(1) {
                // Likely a reply to a keepalive (needed for III).
                rcv.end = rcv.end.wrapping_add(1);
            }
        }
    } else if syn && after(end, w.seen[d].end) && matches!(state, S::SynSent | S::SynRecv) {
        // RFC 9293 section 3.4.1: a reinitialized TCP may reuse the
        // connection with larger sequence numbers; re-init this direction.
        init_sender(bits, w, d, seg);
        if reply && !has_ack {
            return TcpVerdict::Accept;
        }
    }

    if !has_ack || (rst && ack == 0) {
        // No ACK (or a broken stack's RST|ACK with ack 0): pretend it acks
        // everything seen.
        ack = w.seen[r].end;
        sack = ack;
    }
    if rst && seq == 0 && state == S::SynSent {
        // RST answering a SYN.
        seq = w.seen[d].end;
        end = seq;
    }

    let liberal = global_liberal || bits.be_liberal(d);
    let verdict = |v: TcpVerdict| if liberal { TcpVerdict::Accept } else { v };
    let (snd, rcv) = (w.seen[d], w.seen[r]);

    // I: seq <= sender.td_maxend.
    if !before(seq, snd.maxend.wrapping_add(1)) {
        let overshot = end.wrapping_sub(snd.maxend).wrapping_add(1);
        let ack_ok = after(
            sack,
            rcv.end.wrapping_sub(maxackwindow(&snd)).wrapping_sub(1),
        );
        let in_recv_win =
            rcv.maxwin != 0 && after(end, snd.end.wrapping_sub(rcv.maxwin).wrapping_sub(1));
        if in_recv_win && ack_ok && overshot <= rcv.maxwin && before(sack, rcv.end.wrapping_add(1))
        {
            // A sender exceeding the window a little: record the data so
            // the ACK for it is not over the bound (III) later.
            w.seen[d].end = end;
            return verdict(TcpVerdict::Ignored);
        }
        return verdict(TcpVerdict::Invalid);
    }
    // III: sack <= receiver.td_end.
    if !before(sack, rcv.end.wrapping_add(1)) {
        return verdict(TcpVerdict::Invalid);
    }
    // II: seq + len >= sender.td_end - receiver.td_maxwin (else an old
    // retransmission, let through unrecorded).
    if rcv.maxwin != 0 && !after(end, snd.end.wrapping_sub(rcv.maxwin).wrapping_sub(1)) {
        return verdict(TcpVerdict::Ignored);
    }
    // IV: sack >= receiver.td_end - MAXACKWINDOW (else an overly delayed ACK).
    if !after(
        sack,
        rcv.end.wrapping_sub(maxackwindow(&snd)).wrapping_sub(1),
    ) {
        return verdict(TcpVerdict::Ignored);
    }

    // RFC 7323 section 2.2: the window of a SYN is never scaled.
    if !syn {
        win <<= bits.wscale(d);
    }
    let snd = &mut w.seen[d];
    let swin = win.wrapping_add(sack.wrapping_sub(ack));
    if snd.maxwin < swin {
        snd.maxwin = swin;
    }
    if after(end, snd.end) {
        snd.end = end;
    }
    if has_ack {
        if !bits.flag(d, F_MAXACK_SET) {
            snd.maxack = ack;
            bits.set_flag(d, F_MAXACK_SET, true);
        } else if after(ack, snd.maxack) {
            snd.maxack = ack;
        }
    }
    let snd_maxend = snd.maxend;
    let rcv = &mut w.seen[r];
    if rcv.maxwin != 0 && after(end, snd_maxend) {
        rcv.maxwin = rcv.maxwin.wrapping_add(end.wrapping_sub(snd_maxend));
    }
    if after(sack.wrapping_add(win), rcv.maxend.wrapping_sub(1)) {
        rcv.maxend = sack.wrapping_add(win);
        if win == 0 {
            rcv.maxend = rcv.maxend.wrapping_add(1);
        }
    }
    if idx == Index::Ack {
        // The kernel's retransmission bookkeeping (`last_end`, read by the
        // RST checks); the counter itself is not kept.
        w.last_end = end;
    }
    TcpVerdict::Accept
}

/// The kernel's `nf_conntrack_tcp_established`.
fn established(bits: TcpBits, ctx: &Ctx) -> bool {
    bits.state() == S::Established && ctx.assured
}

/// `tcp_can_early_drop`: closing states.
fn closing(s: TcpState) -> bool {
    matches!(
        s,
        S::FinWait | S::LastAck | S::TimeWait | S::Close | S::CloseWait
    )
}

/// `nf_conntrack_tcp_packet` for a confirmed entry: updates `bits` and `w`
/// in place (the caller stores them back whatever the verdict: the kernel
/// also keeps what it learned from a packet it then ignores).
pub fn packet(
    bits: &mut TcpBits,
    w: &mut Window,
    reply: bool,
    seg: &Segment,
    ctx: &Ctx,
) -> TcpVerdict {
    if !valid_flags(seg.flags) {
        return TcpVerdict::Invalid;
    }
    let d = reply as usize;
    let mut old = bits.state();
    let idx = index(seg.flags);
    let mut new = match transition(reply, seg.flags, old) {
        Transition::Invalid => return TcpVerdict::Invalid,
        Transition::Ignore => None,
        Transition::To(s) => Some(s),
    };
    let mut skip_window = false;
    match new {
        Some(S::SynSent) if old >= S::TimeWait => {
            // RFC 1122 4.2.2.13 TIME-WAIT reopen: when either side began
            // the close, or this side's last packet was a RST, destroy
            // and look up again; otherwise ignore the SYN.
            if bits.close_init(false)
                || bits.close_init(true)
                || (bits.last_reply() == reply && bits.last_index() == Index::Rst as u8)
            {
                return TcpVerdict::Reopen;
            }
            new = None;
        }
        Some(S::TimeWait)
            if old == S::LastAck
                && idx == Index::Ack
                && bits.last_reply() != reply
                && bits.last_index() == Index::Syn as u8
                && bits.has(EXP_CHALLENGE_ACK) =>
        {
            // RFC 5961 challenge ACK answering a SYN: not the last ACK.
            bits.set(EXP_CHALLENGE_ACK, false);
            return TcpVerdict::Ignored;
        }
        Some(S::SynSent2) => bits.set(SIMULTANEOUS_OPEN, true),
        Some(S::SynRecv) if reply && idx == Index::Ack && bits.has(SIMULTANEOUS_OPEN) => {
            new = Some(S::Established)
        }
        Some(S::Close) if idx == Index::Rst => {
            if closing(old) {
                // The tuple may already be reused: no checks.
                skip_window = true;
            } else {
                let r = 1 - d;
                let mut checked = false;
                if bits.flag(r, F_MAXACK_SET) && bits.last_index() != Index::Syn as u8 {
                    let seq = seg.seq;
                    let maxack = w.seen[r].maxack;
                    if seq == 0 && !established(*bits, ctx) {
                        // Answer to a SYN we let through.
                        checked = true;
                    } else if before(seq, maxack) {
                        // RFC 5961 section 3.2: before the window: invalid.
                        return TcpVerdict::Invalid;
                    } else if !established(*bits, ctx)
                        || seq == maxack
                        || (bits.last_index() == Index::Ack as u8
                            && bits.last_reply() == reply
                            && seq == w.last_end)
                    {
                        // Exact, or the end of a train of this side's data.
                        checked = true;
                    } else {
                        // In the window but not exact: keep the state so a
                        // challenge ACK can follow.
                        new = Some(old);
                    }
                }
                if !checked
                    && ((ctx.seen_reply && bits.last_index() == Index::Syn as u8)
                        || (!ctx.assured && bits.last_index() == Index::Ack as u8))
                    && seg.ack == w.last_end
                {
                    // RST to a SYN or ACK we let through as ignored: delete
                    // without window checks (it may ack what we ignored).
                    skip_window = true;
                }
            }
        }
        _ => {}
    }
    let Some(new) = new else {
        if idx == Index::SynAck
            && bits.last_index() == Index::Syn as u8
            && bits.last_reply() != reply
            && seg.ack == w.last_end
        {
            // This SYN-ACK answers a SYN we ignored: client and server are
            // in sync, we are not. Re-sync from the recorded SYN.
            let ld = bits.last_reply() as usize;
            let lws = ((bits.0 >> LAST_WSCALE_SHIFT) & 0xf) as u8;
            w.seen[ld] = Seen {
                end: w.last_end,
                maxend: w.last_end,
                // The kernel uses the SYN's window (`last_win`, not kept).
                maxwin: 1,
                maxack: w.seen[ld].maxack,
            };
            bits.set_wscale_raw(ld, lws);
            bits.set_flag(ld, F_SACK_PERM, bits.has(LAST_SACK_PERM));
            bits.set_flag(ld, F_MAXACK_SET | F_BE_LIBERAL, false);
            bits.0 &= !(CLOSE_INIT_ORIG << ld as u32);
            bits.set(EXP_CHALLENGE_ACK, false);
            // nf_ct_tcp_state_reset of this direction.
            w.seen[d] = Seen::default();
            bits.keep_only_liberal(d);
            bits.set_wscale_raw(d, NO_WSCALE);
            old = S::SynSent;
            return finish(bits, w, reply, idx, seg, ctx, old, S::SynRecv, false);
        }
        bits.set_last(idx, reply);
        w.last_end = seg.end;
        if idx == Index::Syn && !reply {
            // The SYN's options, for the re-sync above.
            bits.0 &= !(0xf << LAST_WSCALE_SHIFT
                | LAST_SACK_PERM
                | SIMULTANEOUS_OPEN
                | EXP_CHALLENGE_ACK);
            let ws = if seg.has_options {
                seg.wscale
            } else {
                NO_WSCALE
            };
            bits.0 |= (ws as u32 & 0xf) << LAST_WSCALE_SHIFT;
            bits.set(LAST_SACK_PERM, seg.has_options && seg.sack_perm);
            bits.set(EXP_CHALLENGE_ACK, old == S::LastAck);
        }
        return TcpVerdict::Ignored;
    };
    finish(bits, w, reply, idx, seg, ctx, old, new, skip_window)
}

/// The window check and the in-window bookkeeping of `tcp_packet`.
#[allow(clippy::too_many_arguments)]
fn finish(
    bits: &mut TcpBits,
    w: &mut Window,
    reply: bool,
    idx: Index,
    seg: &Segment,
    ctx: &Ctx,
    old: TcpState,
    new: TcpState,
    skip_window: bool,
) -> TcpVerdict {
    if !skip_window {
        let state = bits.state();
        match in_window(bits, w, reply, idx, seg, state, ctx.be_liberal) {
            TcpVerdict::Accept => {}
            TcpVerdict::Invalid => {
                // nf_tcp_handle_invalid (its timeout cut is not modelled).
                if ctx.assured
                    && matches!(idx, Index::Rst | Index::Fin)
                    && !(bits.last_reply() != reply
                        && matches!(bits.last_index(), x if x == Index::Fin as u8 || x == Index::Rst as u8))
                {
                    bits.set_last(idx, reply);
                }
                return TcpVerdict::Invalid;
            }
            v => return v,
        }
    }
    bits.set_last(idx, reply);
    bits.set_state(new);
    if old != new && new == S::FinWait {
        *bits = bits.with_close_init(reply);
    }
    TcpVerdict::Accept
}

#[cfg(test)]
mod tests {
    use super::*;
    use f::*;

    /// A segment with `len` payload bytes and no options.
    fn seg(flags: u8, seq: u32, ack: u32, win: u16, len: u32) -> Segment {
        let end = seq
            .wrapping_add(len)
            .wrapping_add((flags & SYN != 0) as u32)
            .wrapping_add((flags & FIN != 0) as u32);
        Segment {
            flags,
            seq,
            ack,
            win,
            end,
            sack: ack,
            wscale: NO_WSCALE,
            sack_perm: false,
            has_options: false,
        }
    }

    struct Conn {
        bits: TcpBits,
        w: Window,
        ctx: Ctx,
    }

    impl Conn {
        fn new(s: Segment) -> Conn {
            let (bits, w) = first(&s, true, false).expect("starts a connection");
            Conn {
                bits,
                w,
                ctx: Ctx::default(),
            }
        }
        fn step(&mut self, reply: bool, s: Segment) -> TcpVerdict {
            let v = packet(&mut self.bits, &mut self.w, reply, &s, &self.ctx);
            if reply && v != TcpVerdict::Invalid {
                self.ctx.seen_reply = true;
            }
            if v == TcpVerdict::Accept && self.bits.state() == S::Established && self.ctx.seen_reply
            {
                self.ctx.assured = true;
            }
            v
        }
        fn state(&self) -> TcpState {
            self.bits.state()
        }
    }

    /// Client ISN 1000, server ISN 5000, windows 1000.
    fn established() -> Conn {
        let mut c = Conn::new(seg(SYN, 1000, 0, 1000, 0));
        assert_eq!(
            c.step(true, seg(SYN | ACK, 5000, 1001, 1000, 0)),
            TcpVerdict::Accept
        );
        assert_eq!(
            c.step(false, seg(ACK, 1001, 5001, 1000, 0)),
            TcpVerdict::Accept
        );
        assert_eq!(c.state(), S::Established);
        c
    }

    #[test]
    fn handshake_and_close() {
        let mut c = established();
        let steps = [
            (false, seg(FIN | ACK, 1001, 5001, 1000, 0), S::FinWait),
            (true, seg(ACK, 5001, 1002, 1000, 0), S::CloseWait),
            (true, seg(FIN | ACK, 5001, 1002, 1000, 0), S::LastAck),
            (false, seg(ACK, 1002, 5002, 1000, 0), S::TimeWait),
        ];
        for (reply, s, want) in steps {
            assert_eq!(c.step(reply, s), TcpVerdict::Accept);
            assert_eq!(c.state(), want);
        }
        assert!(c.bits.close_init(false) && !c.bits.close_init(true));
    }

    #[test]
    fn simultaneous_open_reaches_established() {
        let mut c = Conn::new(seg(SYN, 1000, 0, 1000, 0));
        assert_eq!(c.step(true, seg(SYN, 5000, 0, 1000, 0)), TcpVerdict::Accept);
        assert_eq!(c.state(), S::SynSent2);
        assert_eq!(
            c.step(false, seg(SYN | ACK, 1000, 5001, 1000, 0)),
            TcpVerdict::Accept
        );
        assert_eq!(c.state(), S::SynRecv);
        // The kernel's IP_CT_TCP_SIMULTANEOUS_OPEN: the REPLY ACK establishes.
        assert_eq!(
            c.step(true, seg(ACK, 5001, 1001, 1000, 0)),
            TcpVerdict::Accept
        );
        assert_eq!(c.state(), S::Established);
    }

    #[test]
    fn challenge_ack_to_a_syn_in_last_ack_is_not_the_last_ack() {
        let mut c = established();
        for (reply, s) in [
            (false, seg(FIN | ACK, 1001, 5001, 1000, 0)),
            (true, seg(ACK, 5001, 1002, 1000, 0)),
            (true, seg(FIN | ACK, 5001, 1002, 1000, 0)),
        ] {
            assert_eq!(c.step(reply, s), TcpVerdict::Accept);
        }
        assert_eq!(c.state(), S::LastAck);
        // A new SYN is ignored; the server's RFC 5961 challenge ACK to it
        // must not move LAST_ACK to TIME_WAIT.
        assert_eq!(
            c.step(false, seg(SYN, 77_000, 0, 1000, 0)),
            TcpVerdict::Ignored
        );
        assert_eq!(
            c.step(true, seg(ACK, 5002, 1002, 1000, 0)),
            TcpVerdict::Ignored
        );
        assert_eq!(c.state(), S::LastAck);
        // The client's real last ACK does.
        assert_eq!(
            c.step(false, seg(ACK, 1002, 5002, 1000, 0)),
            TcpVerdict::Accept
        );
        assert_eq!(c.state(), S::TimeWait);
    }

    #[test]
    fn invalid_flags_and_transitions() {
        assert!(!valid_flags(SYN | FIN));
        assert!(!valid_flags(SYN | RST));
        assert!(!valid_flags(0));
        assert!(!valid_flags(FIN)); // FIN without ACK
        assert!(valid_flags(SYN | ECE | CWR));
        assert!(valid_flags(ACK | PSH));
        // A SYN-ACK cannot start a connection; a bare ACK can only when loose.
        assert!(first(&seg(SYN | ACK, 1, 1, 1, 0), true, false).is_none());
        let (b, _) = first(&seg(ACK, 1, 1, 1, 0), true, false).unwrap();
        assert_eq!(b.state(), S::Established);
        assert!(b.be_liberal(0) && b.be_liberal(1));
        assert!(first(&seg(ACK, 1, 1, 1, 0), false, false).is_none());
        assert!(first(&seg(RST, 1, 0, 1, 0), true, false).is_none());
        // ORIGINAL SYN-ACK in SYN_SENT is invalid; REPLY ACK there is ignored.
        let mut c = Conn::new(seg(SYN, 1000, 0, 1000, 0));
        assert_eq!(
            c.step(false, seg(SYN | ACK, 1000, 1, 1000, 0)),
            TcpVerdict::Invalid
        );
        assert_eq!(
            c.step(true, seg(ACK, 7, 1001, 1000, 0)),
            TcpVerdict::Ignored
        );
        assert_eq!(c.state(), S::SynSent);
        assert_eq!(
            c.step(true, seg(RST | ACK, 0, 1001, 0, 0)),
            TcpVerdict::Accept
        );
        assert_eq!(c.state(), S::Close);
    }

    #[test]
    fn options_and_sack_are_parsed() {
        // SYN: MSS, SACK_PERM, timestamps, NOP, window scale 20 (clamped to 14).
        let mut h = vec![0u8; 20];
        h[4..8].copy_from_slice(&77u32.to_be_bytes());
        h[13] = SYN;
        h[14..16].copy_from_slice(&64240u16.to_be_bytes());
        h.extend_from_slice(&[
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 20,
        ]);
        h[12] = ((h.len() / 4) as u8) << 4;
        let s = Segment::parse(&h);
        assert_eq!((s.seq, s.end, s.win), (77, 78, 64240));
        assert_eq!((s.wscale, s.sack_perm, s.has_options), (14, true, true));
        // ACK 100 with two SACK blocks; the highest right edge counts.
        let mut h = vec![0u8; 20];
        h[8..12].copy_from_slice(&100u32.to_be_bytes());
        h[13] = ACK;
        h.extend_from_slice(&[1, 1, 5, 18]);
        for (l, r) in [(200u32, 300u32), (400, 500)] {
            h.extend_from_slice(&l.to_be_bytes());
            h.extend_from_slice(&r.to_be_bytes());
        }
        h[12] = ((h.len() / 4) as u8) << 4;
        h.extend_from_slice(b"abc");
        let s = Segment::parse(&h);
        assert_eq!((s.ack, s.sack, s.end), (100, 500, 3));
        assert_eq!(s.wscale, NO_WSCALE);
        // Truncated and silly options stop the parse without a panic.
        for bad in [&[3u8][..], &[3, 0], &[3, 9, 1], &[5, 10, 0, 0]] {
            let mut h = vec![0u8; 20];
            h.extend_from_slice(bad);
            while !h.len().is_multiple_of(4) {
                h.push(0);
            }
            h[12] = ((h.len() / 4) as u8) << 4;
            let s = Segment::parse(&h);
            assert_eq!(s.wscale, NO_WSCALE);
        }
        assert_eq!(Segment::parse(&[0u8; 7]), Segment::default());
    }

    /// Arbitrary state and segments: the tracker never panics (the table
    /// calls it holding the entry lock) and never sets the lock bit.
    #[test]
    fn arbitrary_segments_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        };
        let interesting = [0u32, 1, 0x7fff_ffff, 0x8000_0000, u32::MAX, 1000, 66000];
        for i in 0..200_000u32 {
            let pick = |r: u32, n: u32| {
                if r.is_multiple_of(4) {
                    interesting[(r as usize / 4) % interesting.len()]
                } else {
                    n
                }
            };
            let mut bits = TcpBits(pick(next(), next()) & !LOCKED);
            let mut words = [0u32; Window::WORDS];
            for w in &mut words {
                *w = pick(next(), next());
            }
            let mut w = Window::from_words(words);
            let r = next();
            let s = Segment {
                flags: r as u8,
                seq: pick(next(), next()),
                ack: pick(next(), next()),
                win: (r >> 8) as u16,
                end: pick(next(), next()),
                sack: pick(next(), next()),
                wscale: (r >> 24) as u8,
                sack_perm: r & (1 << 28) != 0,
                has_options: r & (1 << 29) != 0,
            };
            let ctx = Ctx {
                be_liberal: i % 7 == 0,
                seen_reply: r & (1 << 30) != 0,
                assured: r & (1 << 31) != 0,
            };
            let _ = packet(&mut bits, &mut w, i % 2 == 0, &s, &ctx);
            assert_eq!(bits.0 & LOCKED, 0);
            let _ = first(&s, i % 3 != 0, ctx.be_liberal);
        }
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(before(u32::MAX, 0) && after(0, u32::MAX));
        assert!(before(1, 2) && !before(2, 2) && !after(2, 2));
    }
}
