//! The parsed command line ([`Request`]) and its filters: which entries
//! and events a command addresses, as conntrack and libnetfilter_conntrack
//! decide it.

use super::option::{Cmd, CtTable};
use crate::conntrack::{
    ConnSnapshot, EventKind, Status, TcpState, Tuple, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP,
    PROTO_UDP,
};
use crate::wire::Family;

/// An address filter: `addr` under `mask` (`ADDR/LEN`, or `--mask-src`
/// / `--mask-dst` for the original addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrFilter {
    /// Host order; IPv4 in the low 32 bits (the request's family says which).
    pub addr: u128,
    pub mask: u128,
}

impl AddrFilter {
    fn matches(&self, a: u128) -> bool {
        a & self.mask == self.addr & self.mask
    }
}

/// A NAT filter argument (`-n`, `-g`, `-j`): optional address, optional port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatArg {
    pub addr: Option<u128>,
    pub port: Option<u16>,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub cmd: Cmd,
    pub table: CtTable,
    /// `-f ipv6` or an IPv6 address: the request is about IPv6 entries
    /// (otherwise IPv4 ones).
    pub ipv6: bool,
    pub src: Option<AddrFilter>,
    pub dst: Option<AddrFilter>,
    pub reply_src: Option<AddrFilter>,
    pub reply_dst: Option<AddrFilter>,
    pub proto: Option<u8>,
    pub orig_sport: Option<u16>,
    pub orig_dport: Option<u16>,
    pub reply_sport: Option<u16>,
    pub reply_dport: Option<u16>,
    pub tcp_state: Option<TcpState>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub icmp_id: Option<u16>,
    /// Status bits that must all be set.
    pub status: u32,
    /// `-u UNREPLIED`: SEEN_REPLY must be clear.
    pub unreplied: bool,
    /// `-u` named no status bit at all (`UNSET`, `SRC_NAT`, `DST_NAT`):
    /// `-L` is refused ("invalid parameters"), `-D` ignores the filter.
    pub status_invalid: bool,
    /// Lines the tool prints on stderr before anything else.
    pub warnings: Vec<String>,
    /// `-m value[/mask]`: `mark & mask == value` (with `-U`: the new mark
    /// is `(mark & !mask) ^ value`).
    pub mark: Option<(u32, u32)>,
    /// `-t` (only legal with `-U`, `-D`, `-I`).
    pub timeout: Option<u32>,
    pub zone: Option<u16>,
    pub src_nat: Option<NatArg>,
    pub dst_nat: Option<NatArg>,
    pub any_nat: Option<NatArg>,
    /// `-e`: bit 0 NEW, 1 UPDATE, 2 DESTROY.
    pub event_mask: u32,
    pub extended: bool,
    pub show_id: bool,
    pub xml: bool,
}

pub(super) const EV_NEW: u32 = 1;
pub(super) const EV_UPDATE: u32 = 2;
pub(super) const EV_DESTROY: u32 = 4;

impl Request {
    /// The command with no filter, every event kind, the default table
    /// and output format.
    pub(super) fn new(cmd: Cmd) -> Request {
        Request {
            cmd,
            event_mask: EV_NEW | EV_UPDATE | EV_DESTROY,
            ..Request::default()
        }
    }

    /// True if the entry passes every filter of the command line.
    pub fn matches(&self, c: &ConnSnapshot) -> bool {
        if (c.orig.family == Family::V6) != self.ipv6 {
            return false;
        }
        let (o, r) = (&c.orig, &c.reply);
        let addr_ok = |f: &Option<AddrFilter>, a: u128| f.is_none_or(|f| f.matches(a));
        let eq = |f: Option<u16>, v: u16| f.is_none_or(|f| f == v);
        if !(addr_ok(&self.src, o.src)
            && addr_ok(&self.dst, o.dst)
            && addr_ok(&self.reply_src, r.src)
            && addr_ok(&self.reply_dst, r.dst))
        {
            return false;
        }
        if self.proto.is_some_and(|p| p != o.proto) {
            return false;
        }
        if !(eq(self.orig_sport, o.sport)
            && eq(self.orig_dport, o.dport)
            && eq(self.reply_sport, r.sport)
            && eq(self.reply_dport, r.dport))
        {
            return false;
        }
        if let Some(st) = self.tcp_state {
            if c.tcp_state != Some(st) {
                return false;
            }
        }
        if o.proto == PROTO_ICMP {
            if self.icmp_type.is_some_and(|t| t != o.icmp_type())
                || self.icmp_code.is_some_and(|t| t != o.icmp_code())
                || self.icmp_id.is_some_and(|t| t != o.icmp_id())
            {
                return false;
            }
        } else if self.icmp_type.is_some() || self.icmp_code.is_some() || self.icmp_id.is_some() {
            return false;
        }
        if c.status.0 & self.status != self.status {
            return false;
        }
        if self.unreplied && c.status.seen_reply() {
            return false;
        }
        if let Some((v, m)) = self.mark {
            if c.mark & m != v {
                return false;
            }
        }
        if self.zone.is_some_and(|z| z != 0) {
            return false;
        }
        self.nat_matches(c)
    }

    /// `filter_nat` of conntrack 1.4.7 with libnetfilter_conntrack's
    /// `NFCT_GOPT_IS_{SNAT,SPAT,DNAT,DPAT}`.
    fn nat_matches(&self, c: &ConnSnapshot) -> bool {
        let (check_src, check_dst) = if self.any_nat.is_some() {
            (true, true)
        } else {
            (self.src_nat.is_some(), self.dst_nat.is_some())
        };
        if !check_src && !check_dst {
            return true;
        }
        let (o, r, st) = (&c.orig, &c.reply, c.status);
        let is_snat = st.has(Status::SRC_NAT_DONE) && r.dst != o.src;
        let is_spat = st.has(Status::SRC_NAT_DONE) && r.dport != o.sport;
        let is_dnat = st.has(Status::DST_NAT_DONE) && r.src != o.dst;
        let is_dpat = st.has(Status::DST_NAT_DONE) && r.sport != o.dport;
        let has = |arg: NatArg, is_nat: bool, is_pat: bool, ip: u128, port: u16| -> bool {
            let mut has = false;
            if let Some(a) = arg.addr {
                has = is_nat && a == ip;
            }
            if let Some(p) = arg.port {
                let ret = is_pat && p == port;
                if arg.addr.is_some() && has && !ret {
                    has = false;
                }
                if arg.addr.is_none() && ret {
                    has = true;
                }
            }
            if arg.addr.is_none() && arg.port.is_none() && (is_nat || is_pat) {
                has = true;
            }
            has
        };
        let sarg = self.any_nat.or(self.src_nat).unwrap_or_default();
        let darg = self.any_nat.or(self.dst_nat).unwrap_or_default();
        let has_src = check_src && has(sarg, is_snat, is_spat, r.dst, r.dport);
        let has_dst = check_dst && has(darg, is_dnat, is_dpat, r.src, r.sport);
        if self.any_nat.is_some() {
            has_src || has_dst
        } else if check_src && check_dst {
            has_src && has_dst
        } else if check_src {
            has_src
        } else {
            has_dst
        }
    }

    /// True if the event kind is selected by `-e`.
    pub fn wants_event(&self, kind: EventKind) -> bool {
        let bit = match kind {
            EventKind::New => EV_NEW,
            EventKind::Update => EV_UPDATE,
            EventKind::Destroy => EV_DESTROY,
        };
        self.event_mask & bit != 0
    }
}

impl Request {
    /// The tuple `-G` looks up: from `-s/-d` and the original ports, or
    /// from `-r/-q` and the reply ports.
    pub fn get_tuple(&self) -> Option<Tuple> {
        let proto = self.proto?;
        let (src, dst, sp, dp) = match (self.src, self.dst, self.reply_src, self.reply_dst) {
            (Some(s), Some(d), _, _) => (s.addr, d.addr, self.orig_sport, self.orig_dport),
            (_, _, Some(s), Some(d)) => (s.addr, d.addr, self.reply_sport, self.reply_dport),
            _ => return None,
        };
        let family = if self.ipv6 { Family::V6 } else { Family::V4 };
        let (sp, dp) = if proto == PROTO_ICMP || proto == PROTO_ICMPV6 {
            let ty = self.icmp_type.unwrap_or(0) as u16;
            (
                self.icmp_id,
                Some(ty << 8 | self.icmp_code.unwrap_or(0) as u16),
            )
        } else if matches!(proto, PROTO_TCP | PROTO_UDP) {
            (sp, dp)
        } else {
            (None, None)
        };
        Some(Tuple::of(
            family,
            src,
            dst,
            proto,
            sp.unwrap_or(0),
            dp.unwrap_or(0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::conntrack_cli::fixture::*;
    use crate::nat::{self, Manip, NatRange, Rng};
    use crate::wire::testutil::{self, a};

    #[test]
    fn address_filters_original_and_reply() {
        let t = fixture();
        let cases: &[(&str, &[&str])] = &[
            ("-L -s 10.9.0.1", &[L_TCP, L_UDP42, L_UDP, L_SYN]),
            ("-L --orig-src 127.0.0.1", &[L_ICMP]),
            ("-L -d 10.9.0.99", &[L_TCP]),
            ("-L --dst=10.9.0.99", &[L_TCP]),
            ("-L -r 127.0.0.1", &[L_TCP, L_ICMP]),
            ("-L -q 10.9.0.1", &[L_TCP, L_UDP42, L_UDP, L_SYN]),
            ("-L -s 10.0.0.0/8", &[L_TCP, L_UDP42, L_UDP, L_SYN]),
            ("-L -s 127.1", &[L_ICMP]),
            ("-L -s 127.2", &[]),
            (
                "-L -s 127.0.0.1/8 -s 10.9.0.1",
                &[L_TCP, L_UDP42, L_UDP, L_SYN],
            ),
            ("-L -s10.9.0.1 -d10.9.0.99", &[L_TCP]),
            (
                "-L -s 10.0.0.0 --mask-src 255.0.0.0",
                &[L_TCP, L_UDP42, L_UDP, L_SYN],
            ),
            ("-L -s 10.0.0.0/8 --mask-src 255.255.0.0", &[]),
            (
                "-L -d 10.9.0.0 --mask-dst 255.255.255.0",
                &[L_TCP, L_UDP42, L_UDP, L_SYN],
            ),
            ("-L -s 10.9.0.7/29", &[L_TCP, L_UDP42, L_UDP, L_SYN]),
            ("-L -s 10.9.0.7/0", &[L_TCP, L_UDP42, L_UDP, L_ICMP, L_SYN]),
            ("-L -d ::1", &[]),
            ("-L -f ipv6", &[]),
            ("-L -f ipv4 -p icmp", &[L_ICMP]),
        ];
        for (cmd, want) in cases {
            let o = ct(&t, cmd);
            assert_eq!(o.stdout, lines(want), "{cmd}");
            assert_eq!(o.stderr, shown(want.len()), "{cmd}");
            assert_eq!(o.status, 0, "{cmd}");
        }
    }

    #[test]
    fn protocol_port_state_status_and_mark_filters() {
        let t = fixture();
        let cases: &[(&str, &[&str])] = &[
            ("-L -p tcp", &[L_TCP, L_SYN]),
            // "-Lz": L swallows an attached argument, so this is no -z.
            ("-Lz -p tcp", &[L_TCP, L_SYN]),
            ("-L -z", &[L_TCP, L_UDP42, L_UDP, L_ICMP, L_SYN]),
            ("-L -p 6", &[L_TCP, L_SYN]),
            ("-L -p ICMP", &[L_ICMP]),
            ("-L -p 47", &[]),
            ("-L -p udp --sport 7778", &[L_UDP]),
            ("-L -p udp --orig-port-src 7778", &[L_UDP]),
            ("-L -p udp --sp 7778", &[L_UDP]),
            ("-L -p udp --dport 4444", &[L_UDP42]),
            ("-L -p udp --reply-port-src 4444", &[L_UDP42]),
            ("-L -p udp --reply-port-dst 7778", &[L_UDP]),
            ("-L -p tcp --dport foo", &[]),
            ("-L -p tcp --reply-port-src 8080", &[L_TCP]),
            ("-L -p tcp --state ESTABLISHED", &[L_TCP]),
            ("-L -p tcp --state SYN_SENT", &[L_SYN]),
            ("-L -p icmp --icmp-type 8 --icmp-id 4660", &[L_ICMP]),
            ("-L -p icmp --icmp-id 1", &[]),
            ("-L -u ASSURED", &[L_TCP]),
            ("-L -u ass", &[L_TCP]),
            ("-L -u UNREPLIED", &[L_UDP42, L_SYN]),
            ("-L -u SEEN_REPLY", &[L_TCP, L_UDP, L_ICMP]),
            ("-L -u SEEN_REPLY,ASSURED", &[L_TCP]),
            ("-L -u ASSURED,UNREPLIED", &[]),
            ("-L -m 42", &[L_UDP42]),
            ("-L -m 0x2a", &[L_UDP42]),
            ("-L -m 40/0xf8", &[L_UDP42]),
            ("-L -m 1/2/3", &[]),
            ("-L -m foo", &[L_TCP, L_UDP, L_ICMP, L_SYN]),
            ("-L -w 1", &[]),
        ];
        for (cmd, want) in cases {
            let o = ct(&t, cmd);
            assert_eq!(o.stdout, lines(want), "{cmd}");
            assert_eq!(o.stderr, shown(want.len()), "{cmd}");
            assert_eq!(o.status, 0, "{cmd}");
        }
    }

    #[test]
    fn nat_filters_follow_libnetfilter_conntrack() {
        let t = fixture();
        // An SNATed flow: 192.168.1.5:5000 -> 8.8.8.8:53 leaves as 203.0.113.1.
        feed(
            &t,
            &testutil::udp("192.168.1.5", "8.8.8.8", 5000, 53, b"q"),
            T0,
            |nc| {
                let r = NatRange::addr(a("203.0.113.1"));
                nat::setup(&t, nc, &r, Manip::Src, &mut Rng::new(1), T0).unwrap();
            },
        );
        let snat = "udp      17 29 src=192.168.1.5 dst=8.8.8.8 sport=5000 dport=53 [UNREPLIED] src=8.8.8.8 dst=203.0.113.1 sport=53 dport=5000 mark=0 use=1";
        let cases: &[(&str, &[&str])] = &[
            ("-L -g", &[L_TCP]),
            ("-L --dst-nat", &[L_TCP]),
            ("-L -g 127.0.0.1", &[L_TCP]),
            ("-L -g 127.0.0.1:8080", &[L_TCP]),
            ("-L -g 127.0.0.1:8081", &[]),
            ("-L -g 10.9.0.99", &[]),
            ("-L -n", &[snat]),
            ("-L --src-nat=203.0.113.1", &[snat]),
            ("-L -n 1.2.3.4", &[]),
            ("-L -j", &[L_TCP, snat]),
            ("-L --any-nat", &[L_TCP, snat]),
            ("-L -j 127.0.0.1", &[L_TCP]),
            ("-L -n -g", &[]),
            // An attached argument is ignored by conntrack 1.4.7.
            ("-L -n1.2.3.4", &[snat]),
            ("-L --dst-nat=1.2.3.4", &[L_TCP]),
            ("-L -n 203.0.113.1:5000", &[]),
            ("-L -n 1.2.3.4:0", &[]),
        ];
        for (cmd, want) in cases {
            let o = ct(&t, cmd);
            assert_eq!(o.stdout, lines(want), "{cmd}");
            assert_eq!(o.stderr, shown(want.len()), "{cmd}");
        }
    }
}
