//! The match model: [`Match`], one `-m` module in semantic form, and the
//! values its variants hold (ctstates and statuses, marks, conntrack
//! options, multiport kinds, statistic modes, address types, TTL
//! comparisons, recent lists).

use super::{AddrMask, Range16};

/// A set of connection tracking states, as `--ctstate` and `--state` name
/// them: bit values as the kernel's `XT_CONNTRACK_STATE_BIT` (plus
/// SNAT/DNAT/UNTRACKED). The state of one connection is
/// `conntrack::CtState`; the pipeline maps one to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CtStateSet(pub u16);

impl CtStateSet {
    pub const INVALID: CtStateSet = CtStateSet(1 << 0);
    pub const ESTABLISHED: CtStateSet = CtStateSet(1 << 1);
    pub const RELATED: CtStateSet = CtStateSet(1 << 2);
    pub const NEW: CtStateSet = CtStateSet(1 << 3);
    pub const UNTRACKED: CtStateSet = CtStateSet(1 << 8);
    pub const SNAT: CtStateSet = CtStateSet(1 << 9);
    pub const DNAT: CtStateSet = CtStateSet(1 << 10);

    /// Names in the order iptables prints them.
    pub const NAMES: [(CtStateSet, &'static str); 7] = [
        (CtStateSet::INVALID, "INVALID"),
        (CtStateSet::NEW, "NEW"),
        (CtStateSet::RELATED, "RELATED"),
        (CtStateSet::ESTABLISHED, "ESTABLISHED"),
        (CtStateSet::UNTRACKED, "UNTRACKED"),
        (CtStateSet::SNAT, "SNAT"),
        (CtStateSet::DNAT, "DNAT"),
    ];

    pub fn contains(self, o: CtStateSet) -> bool {
        self.0 & o.0 == o.0
    }

    pub fn intersects(self, o: CtStateSet) -> bool {
        self.0 & o.0 != 0
    }
}

/// Conntrack status bits (`--ctstatus`), kernel `IPS_*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CtStatus(pub u32);

impl CtStatus {
    pub const NONE: CtStatus = CtStatus(0);
    pub const EXPECTED: CtStatus = CtStatus(1 << 0);
    pub const SEEN_REPLY: CtStatus = CtStatus(1 << 1);
    pub const ASSURED: CtStatus = CtStatus(1 << 2);
    pub const CONFIRMED: CtStatus = CtStatus(1 << 3);

    pub const NAMES: [(CtStatus, &'static str); 4] = [
        (CtStatus::EXPECTED, "EXPECTED"),
        (CtStatus::SEEN_REPLY, "SEEN_REPLY"),
        (CtStatus::ASSURED, "ASSURED"),
        (CtStatus::CONFIRMED, "CONFIRMED"),
    ];
}

/// Value/mask pair; matches when `(x & mask) == value` (mark, connmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkMask {
    pub value: u32,
    pub mask: u32,
    pub invert: bool,
}

/// A `--ctorigsrc`-style address with mask and inversion.
pub type CtAddr = AddrMask;

/// `-m conntrack`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConntrackMatch {
    pub state: Option<(CtStateSet, bool)>,
    pub proto: Option<(u8, bool)>,
    pub orig_src: Option<CtAddr>,
    pub orig_dst: Option<CtAddr>,
    pub repl_src: Option<CtAddr>,
    pub repl_dst: Option<CtAddr>,
    pub orig_src_port: Option<Range16>,
    pub orig_dst_port: Option<Range16>,
    pub repl_src_port: Option<Range16>,
    pub repl_dst_port: Option<Range16>,
    pub status: Option<(CtStatus, bool)>,
    /// `(lo, hi, invert)` seconds.
    pub expire: Option<(u32, u32, bool)>,
    /// `Some(true)` = `--ctdir REPLY`, `Some(false)` = `ORIGINAL`.
    pub dir_reply: Option<bool>,
}

/// Which ports `-m multiport` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiportKind {
    Src,
    Dst,
    Any,
}

/// `-m statistic` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatisticMode {
    /// iptables stores `round(probability * 2^31)`; the kernel matches when
    /// `(random_u32() & 0x7FFF_FFFF) < threshold` (then applies `invert`).
    Random { threshold: u32 },
    /// Kernel values: `every` is the user's `--every` minus one. The kernel
    /// keeps a counter `c` per rule: `c = if c + 1 > every { 0 } else { c + 1 }`,
    /// and matches when `c == packet` (then applies `invert`).
    Nth { every: u32, packet: u32 },
}

/// Address types for `-m addrtype` (kernel `XT_ADDRTYPE_*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct AddrTypes(pub u16);

impl AddrTypes {
    pub const NAMES: [&'static str; 12] = [
        "UNSPEC",
        "UNICAST",
        "LOCAL",
        "BROADCAST",
        "ANYCAST",
        "MULTICAST",
        "BLACKHOLE",
        "UNREACHABLE",
        "PROHIBIT",
        "THROW",
        "NAT",
        "XRESOLVE",
    ];
    pub const LOCAL: AddrTypes = AddrTypes(1 << 2);
}

/// `--ttl-eq/-lt/-gt` (and `! --ttl-eq` = `Ne`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlOp {
    Eq,
    Ne,
    Lt,
    Gt,
}

/// `-m recent` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentCmd {
    Set,
    Rcheck,
    Update,
    Remove,
}

/// `-m recent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMatch {
    pub cmd: RecentCmd,
    pub invert: bool,
    pub seconds: u32,
    pub reap: bool,
    pub hit_count: u32,
    pub rttl: bool,
    pub name: String,
    /// true = `--rdest` (default `--rsource`).
    pub rdest: bool,
    pub mask: u32,
}

/// One `-m` match, semantic form.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Tcp {
        sport: Option<Range16>,
        dport: Option<Range16>,
        /// (mask, compare, invert): matches when `flags & mask == compare`.
        flags: Option<(u8, u8, bool)>,
        /// (option kind, invert).
        option: Option<(u8, bool)>,
    },
    Udp {
        sport: Option<Range16>,
        dport: Option<Range16>,
    },
    Icmp {
        /// 255 = any.
        icmp_type: u8,
        code_lo: u8,
        code_hi: u8,
        invert: bool,
    },
    Multiport {
        kind: MultiportKind,
        /// Up to 15 ports; a range counts as two.
        ports: Vec<(u16, u16)>,
        invert: bool,
    },
    Conntrack(Box<ConntrackMatch>),
    State {
        states: CtStateSet,
        invert: bool,
    },
    Comment(String),
    Mark(MarkMask),
    Connmark(MarkMask),
    Statistic {
        mode: StatisticMode,
        invert: bool,
    },
    Addrtype {
        src: Option<(AddrTypes, bool)>,
        dst: Option<(AddrTypes, bool)>,
        limit_iface_in: bool,
        limit_iface_out: bool,
    },
    Iprange {
        /// (from, to, invert), host order.
        src: Option<(u32, u32, bool)>,
        dst: Option<(u32, u32, bool)>,
    },
    Limit {
        /// Average interval in 1/10000 s: `10000 * unit_seconds / n` for
        /// `--limit n/unit`.
        avg: u32,
        burst: u32,
    },
    Length(Range16),
    Ttl {
        op: TtlOp,
        value: u8,
    },
    Tcpmss(Range16),
    Recent(Box<RecentMatch>),
    /// `-m mac --mac-source`: source MAC (no Ethernet header on a TUN
    /// device, so it never matches there; kept for ruleset compatibility).
    Mac {
        addr: [u8; 6],
        invert: bool,
    },
}

impl Match {
    /// The module name printed after `-m`.
    pub fn name(&self) -> &'static str {
        match self {
            Match::Tcp { .. } => "tcp",
            Match::Udp { .. } => "udp",
            Match::Icmp { .. } => "icmp",
            Match::Multiport { .. } => "multiport",
            Match::Conntrack(_) => "conntrack",
            Match::State { .. } => "state",
            Match::Comment(_) => "comment",
            Match::Mark(_) => "mark",
            Match::Connmark(_) => "connmark",
            Match::Statistic { .. } => "statistic",
            Match::Addrtype { .. } => "addrtype",
            Match::Iprange { .. } => "iprange",
            Match::Limit { .. } => "limit",
            Match::Length(_) => "length",
            Match::Ttl { .. } => "ttl",
            Match::Tcpmss(_) => "tcpmss",
            Match::Recent(_) => "recent",
            Match::Mac { .. } => "mac",
        }
    }
}
