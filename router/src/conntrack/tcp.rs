//! The TCP connection-tracking state machine, transcribed from Linux
//! `net/netfilter/nf_conntrack_proto_tcp.c` (`tcp_conntracks`, `tcp_valid_flags`,
//! `get_conntrack_index`).
//!
//! Window tracking is simplified to the kernel's "be liberal" mode
//! (`nf_conntrack_tcp_be_liberal=1`): sequence and window numbers are not
//! checked, so out-of-window segments are not classed INVALID; everything else
//! (flag combinations, the state table, IGNORE/INVALID transitions, reopening
//! from TIME_WAIT/CLOSE) follows the kernel.
#![forbid(unsafe_code)]

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

/// Packed per-connection TCP state kept in one `u32` (so it can be updated
/// with a compare-and-swap): bits 0..4 state, bits 4..8 last index,
/// bit 8 last direction, bits 9/10 "close initiated" per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpBits(pub u32);

pub const CLOSE_INIT_ORIG: u32 = 1 << 9;

impl TcpBits {
    pub fn state(self) -> TcpState {
        TcpState::from_u8((self.0 & 0xf) as u8)
    }
    pub fn last_index(self) -> u8 {
        ((self.0 >> 4) & 0xf) as u8
    }
    pub fn last_reply(self) -> bool {
        self.0 & (1 << 8) != 0
    }
    pub fn close_init(self, reply: bool) -> bool {
        self.0 & (CLOSE_INIT_ORIG << reply as u32) != 0
    }
    pub fn with(self, state: TcpState, idx: Index, reply: bool) -> TcpBits {
        let keep = self.0 & (CLOSE_INIT_ORIG | CLOSE_INIT_ORIG << 1);
        TcpBits(keep | state as u32 | (idx as u32) << 4 | (reply as u32) << 8)
    }
    pub fn with_close_init(self, reply: bool) -> TcpBits {
        TcpBits(self.0 | CLOSE_INIT_ORIG << reply as u32)
    }
}

/// Result of feeding one segment to the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpVerdict {
    /// Accepted; the new packed state (possibly unchanged).
    Ok(TcpBits),
    /// sIG: let through without a state change; the kernel returns before
    /// refreshing the timeout or the counters. Carries the updated
    /// last-packet bits.
    Ignored(TcpBits),
    /// INVALID: state unchanged, the packet has no conntrack entry.
    Invalid,
    /// A SYN in a closed (TIME_WAIT/CLOSE) connection that the kernel treats
    /// as a reopening: the old entry must be destroyed and the packet
    /// tracked as a new connection.
    Reopen,
}

/// `tcp_packet` without window tracking.
pub fn track(bits: TcpBits, reply: bool, flags: u8) -> TcpVerdict {
    if !valid_flags(flags) {
        return TcpVerdict::Invalid;
    }
    let old = bits.state();
    let idx = index(flags);
    match transition(reply, flags, old) {
        Transition::Invalid => TcpVerdict::Invalid,
        Transition::Ignore => TcpVerdict::Ignored(bits.with(old, idx, reply)),
        Transition::To(new) => {
            if new == S::SynSent && old >= S::TimeWait && old != S::SynSent2 {
                // RFC 1122 TIME-WAIT reopen (kernel: CLOSE_INIT seen in this
                // direction or the last packet was its own RST): destroy and
                // look up again; otherwise the SYN is ignored.
                if bits.close_init(reply)
                    || (bits.last_reply() == reply && bits.last_index() == Index::Rst as u8)
                {
                    return TcpVerdict::Reopen;
                }
                return TcpVerdict::Ignored(bits.with(old, idx, reply));
            }
            let mut b = bits.with(new, idx, reply);
            if old != new && new == S::FinWait {
                b = b.with_close_init(reply);
            }
            TcpVerdict::Ok(b)
        }
    }
}

/// `tcp_new`: the state for the first packet of a connection, or `None` if it
/// cannot start one (INVALID). `loose` is `nf_conntrack_tcp_loose`: pick up
/// established connections from a bare ACK.
pub fn new_state(flags: u8, loose: bool) -> Option<TcpBits> {
    if !valid_flags(flags) {
        return None;
    }
    let idx = index(flags);
    match transition(false, flags, S::None) {
        Transition::To(S::SynSent) => Some(TcpBits::default().with(S::SynSent, idx, false)),
        Transition::To(s) if loose => Some(TcpBits::default().with(s, idx, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(bool, u8)]) -> TcpState {
        let mut b = new_state(steps[0].1, true).unwrap();
        for &(reply, fl) in &steps[1..] {
            match track(b, reply, fl) {
                TcpVerdict::Ok(n) | TcpVerdict::Ignored(n) => b = n,
                v => panic!("unexpected {v:?} in {:?}", b.state()),
            }
        }
        b.state()
    }

    #[test]
    fn handshake_and_close() {
        use f::*;
        assert_eq!(run(&[(false, SYN)]), S::SynSent);
        assert_eq!(run(&[(false, SYN), (true, SYN | ACK)]), S::SynRecv);
        assert_eq!(
            run(&[(false, SYN), (true, SYN | ACK), (false, ACK)]),
            S::Established
        );
        let full = [
            (false, SYN),
            (true, SYN | ACK),
            (false, ACK),
            (false, FIN | ACK),
            (true, ACK),
            (true, FIN | ACK),
            (false, ACK),
        ];
        assert_eq!(run(&full[..4]), S::FinWait);
        assert_eq!(run(&full[..5]), S::CloseWait);
        assert_eq!(run(&full[..6]), S::LastAck);
        assert_eq!(run(&full), S::TimeWait);
    }

    #[test]
    fn invalid_flags_and_transitions() {
        use f::*;
        assert!(!valid_flags(SYN | FIN));
        assert!(!valid_flags(SYN | RST));
        assert!(!valid_flags(0));
        assert!(!valid_flags(FIN)); // FIN without ACK
        assert!(valid_flags(SYN | ECE | CWR));
        assert!(valid_flags(ACK | PSH));
        // A SYN-ACK cannot start a connection; a bare ACK can only when loose.
        assert!(new_state(SYN | ACK, true).is_none());
        assert_eq!(new_state(ACK, true).unwrap().state(), S::Established);
        assert!(new_state(ACK, false).is_none());
        assert!(new_state(RST, true).is_none());
        // ORIGINAL SYN-ACK in SYN_SENT is invalid; REPLY ACK there is ignored.
        let b = new_state(SYN, true).unwrap();
        assert_eq!(track(b, false, SYN | ACK), TcpVerdict::Invalid);
        assert!(matches!(track(b, true, ACK), TcpVerdict::Ignored(x) if x.state() == S::SynSent));
        assert!(matches!(track(b, true, RST | ACK), TcpVerdict::Ok(x) if x.state() == S::Close));
    }
}
