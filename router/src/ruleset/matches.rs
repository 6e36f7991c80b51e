//! The match model: [`Match`], one `-m` module in semantic form, and the
//! values its variants hold (ctstates and statuses, marks, conntrack
//! options, multiport kinds, statistic modes, address types, TTL
//! comparisons, recent lists), and the IPv6-only matches (`icmp6`, `frag`,
//! `ipv6header`, `hbh`/`dst` options, `rt`, `hl`, `eui64`).

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
    /// Host order, IPv4 in the low 32 bits.
    pub mask: u128,
}

/// `-m iprange`: (from, to, invert), host order (IPv4 in the low 32 bits).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IprangeMatch {
    pub src: Option<(u128, u128, bool)>,
    pub dst: Option<(u128, u128, bool)>,
}

/// `-m frag` (IPv6 fragment header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FragMatch {
    /// `--fragid lo[:hi]`, inclusive, with inversion.
    pub ids: Option<(u32, u32, bool)>,
    /// `--fraglen N` with inversion.
    pub len: Option<(u32, bool)>,
    pub res: bool,
    pub first: bool,
    pub more: bool,
    pub last: bool,
}

/// `-m hbh` / `-m dst` (IPv6 hop-by-hop and destination options headers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptsMatch {
    /// `--hbh-len N` / `--dst-len N` with inversion.
    pub len: Option<(u32, bool)>,
    /// `--hbh-opts type[:len],...`: option types, each with its length
    /// when given.
    pub opts: Vec<(u8, Option<u8>)>,
}

/// `-m rt` (IPv6 routing header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtMatch {
    /// `--rt-type N` with inversion.
    pub rt_type: Option<(u8, bool)>,
    /// `--rt-segsleft lo[:hi]` with inversion.
    pub segsleft: Option<(u32, u32, bool)>,
    /// `--rt-len N` with inversion.
    pub len: Option<(u32, bool)>,
    /// `--rt-0-res`.
    pub res: bool,
    /// `--rt-0-addrs a,b,...` (host order).
    pub addrs: Vec<u128>,
    /// `--rt-0-not-strict`.
    pub not_strict: bool,
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
    /// Boxed: two 128-bit ranges would double `Match`.
    Iprange(Box<IprangeMatch>),
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
    // IPv6 only (ip6tables' libip6t_ extensions). The pipeline sees no IPv6
    // packet yet, so these are parsed, printed and kept, never evaluated.
    /// `-m icmp6 --icmpv6-type` (also loaded by `-p ipv6-icmp`).
    Icmp6 {
        /// 255 = any.
        icmp_type: u8,
        code_lo: u8,
        code_hi: u8,
        invert: bool,
    },
    Frag(Box<FragMatch>),
    /// `-m ipv6header --header ...`: kernel `MASK_*` header bits.
    Ipv6Header {
        headers: u8,
        soft: bool,
        invert: bool,
    },
    Hbh(Box<OptsMatch>),
    Dst(Box<OptsMatch>),
    Rt(Box<RtMatch>),
    /// `--hl-eq/-lt/-gt` (and `! --hl-eq` = `Ne`).
    Hl {
        op: TtlOp,
        value: u8,
    },
    Eui64,
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
            Match::Icmp6 { .. } => "icmp6",
            Match::Frag(_) => "frag",
            Match::Ipv6Header { .. } => "ipv6header",
            Match::Hbh(_) => "hbh",
            Match::Dst(_) => "dst",
            Match::Rt(_) => "rt",
            Match::Hl { .. } => "hl",
            Match::Eui64 => "eui64",
        }
    }
}
