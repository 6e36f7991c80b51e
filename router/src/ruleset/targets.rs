//! The target model: [`Target`], what a rule does when it matches, and
//! the values its variants hold (REJECT's reply, LOG, NAT ranges and
//! flags, CONNMARK modes, CT and NFLOG options).

use super::ChainRef;

/// REJECT's `--reject-with`: ICMP codes (IPv4), ICMPv6 codes (IPv6), or a
/// TCP reset (both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectWith {
    NetUnreachable,
    HostUnreachable,
    PortUnreachable,
    ProtoUnreachable,
    NetProhibited,
    HostProhibited,
    AdminProhibited,
    TcpReset,
    Icmp6NoRoute,
    Icmp6AdmProhibited,
    Icmp6AddrUnreachable,
    Icmp6PortUnreachable,
    Icmp6PolicyFail,
    Icmp6RejectRoute,
}

impl RejectWith {
    /// IPv4's (iptables) replies and their saved names.
    pub const ALL: [(RejectWith, &'static str); 8] = [
        (RejectWith::NetUnreachable, "icmp-net-unreachable"),
        (RejectWith::HostUnreachable, "icmp-host-unreachable"),
        (RejectWith::PortUnreachable, "icmp-port-unreachable"),
        (RejectWith::ProtoUnreachable, "icmp-proto-unreachable"),
        (RejectWith::NetProhibited, "icmp-net-prohibited"),
        (RejectWith::HostProhibited, "icmp-host-prohibited"),
        (RejectWith::AdminProhibited, "icmp-admin-prohibited"),
        (RejectWith::TcpReset, "tcp-reset"),
    ];

    /// IPv6's (ip6tables) replies and their saved names.
    pub const ALL6: [(RejectWith, &'static str); 7] = [
        (RejectWith::Icmp6NoRoute, "icmp6-no-route"),
        (RejectWith::Icmp6AdmProhibited, "icmp6-adm-prohibited"),
        (RejectWith::Icmp6AddrUnreachable, "icmp6-addr-unreachable"),
        (RejectWith::Icmp6PortUnreachable, "icmp6-port-unreachable"),
        (RejectWith::Icmp6PolicyFail, "icmp6-policy-fail"),
        (RejectWith::Icmp6RejectRoute, "icmp6-reject-route"),
        (RejectWith::TcpReset, "tcp-reset"),
    ];

    pub fn name(self) -> &'static str {
        RejectWith::ALL
            .iter()
            .chain(RejectWith::ALL6.iter())
            .find(|(r, _)| *r == self)
            .map_or("tcp-reset", |(_, n)| n)
    }
}

/// HL target modes (`--hl-set`, `--hl-inc`, `--hl-dec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlMode {
    Set,
    Inc,
    Dec,
}

/// LOG target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub prefix: Option<String>,
    /// syslog level 0..=7; default 4 (warning).
    pub level: u8,
    /// Kernel `XT_LOG_*` flags: 1 tcp-sequence, 2 tcp-options, 4 ip-options,
    /// 8 uid.
    pub flags: u8,
}

/// `NF_NAT_RANGE_*` flags, the kernel's values.
pub mod nat_flags {
    pub const MAP_IPS: u32 = 1 << 0;
    pub const PROTO_SPECIFIED: u32 = 1 << 1;
    pub const PROTO_RANDOM: u32 = 1 << 2;
    pub const PERSISTENT: u32 = 1 << 3;
    pub const PROTO_RANDOM_FULLY: u32 = 1 << 4;
    pub const PROTO_OFFSET: u32 = 1 << 5;
    pub const PROTO_RANDOM_ALL: u32 = PROTO_RANDOM | PROTO_RANDOM_FULLY;
}

/// An address the model holds: host order, IPv4 zero-extended into the low
/// 32 bits (the family comes from the ruleset or the packet).
pub trait IntoAddr {
    fn into_addr(self) -> u128;
}

impl IntoAddr for u128 {
    fn into_addr(self) -> u128 {
        self
    }
}
impl IntoAddr for u32 {
    fn into_addr(self) -> u128 {
        self as u128
    }
}
impl IntoAddr for std::net::Ipv4Addr {
    fn into_addr(self) -> u128 {
        self.to_bits() as u128
    }
}
impl IntoAddr for std::net::Ipv6Addr {
    fn into_addr(self) -> u128 {
        self.to_bits()
    }
}

/// A NAT range, the kernel's `nf_nat_range2`: what DNAT, SNAT, MASQUERADE
/// and REDIRECT carry. The parser builds it once (`--to-destination
/// a[-b][:p[-q][/base]]`, `--to-ports`, `--random`, `--random-fully`,
/// `--persistent`), the printers print from it, and `nat::setup` consumes it
/// as it is: MASQUERADE and REDIRECT add the interface's address
/// ([`NatRange::with_addr`]) when a connection is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NatRange {
    /// Address range (with [`nat_flags::MAP_IPS`]; otherwise the packet's
    /// address is kept, e.g. `--to-destination :80`).
    pub min_addr: u128,
    pub max_addr: u128,
    /// [`nat_flags`] bits.
    pub flags: u32,
    /// Port (or ICMP id) range, with [`nat_flags::PROTO_SPECIFIED`].
    pub min_port: u16,
    pub max_port: u16,
    /// `/base`, with [`nat_flags::PROTO_OFFSET`]: a port keeps its distance
    /// from this base inside the range.
    pub base_port: u16,
}

impl NatRange {
    /// One address, ports unchanged where possible.
    pub fn addr(a: impl IntoAddr) -> NatRange {
        let a = a.into_addr();
        NatRange::addrs(a, a)
    }
    /// No address and no ports yet (`--to-destination :80` adds the port).
    pub fn ports_only() -> NatRange {
        NatRange::default()
    }
    /// An address range.
    pub fn addrs(min: impl IntoAddr, max: impl IntoAddr) -> NatRange {
        NatRange {
            min_addr: min.into_addr(),
            max_addr: max.into_addr(),
            flags: nat_flags::MAP_IPS,
            ..NatRange::default()
        }
    }
    /// Adds a port range.
    pub fn with_ports(mut self, min: u16, max: u16) -> NatRange {
        self.flags |= nat_flags::PROTO_SPECIFIED;
        self.min_port = min.min(max);
        self.max_port = max.max(min);
        self
    }
    pub fn with_flags(mut self, f: u32) -> NatRange {
        self.flags |= f;
        self
    }
    /// This range mapped to one address (MASQUERADE: the egress interface's,
    /// REDIRECT: the ingress interface's), ports and flags kept, as
    /// `masquerade_tg` / `nf_nat_redirect` build theirs.
    pub fn with_addr(mut self, a: impl IntoAddr) -> NatRange {
        let a = a.into_addr();
        self.flags |= nat_flags::MAP_IPS;
        (self.min_addr, self.max_addr) = (a, a);
        self
    }
    /// MASQUERADE to `egress_addr`, with the rule's ports and flags.
    pub fn masquerade(egress_addr: impl IntoAddr, rule: Option<&NatRange>) -> NatRange {
        rule.copied().unwrap_or_default().with_addr(egress_addr)
    }
    /// REDIRECT to `ingress_addr`, ports from `--to-ports` when given.
    pub fn redirect(ingress_addr: impl IntoAddr, ports: Option<(u16, u16)>) -> NatRange {
        let r = NatRange::addr(ingress_addr);
        match ports {
            Some((a, b)) => r.with_ports(a, b),
            None => r,
        }
    }
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
    /// The address range, when the range maps addresses.
    pub fn addr_range(&self) -> Option<(u128, u128)> {
        self.has(nat_flags::MAP_IPS)
            .then_some((self.min_addr, self.max_addr))
    }
    /// The port range, when one is given.
    pub fn port_range(&self) -> Option<(u16, u16)> {
        self.has(nat_flags::PROTO_SPECIFIED)
            .then_some((self.min_port, self.max_port))
    }
}

/// CONNMARK target modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnmarkTarget {
    /// ctmark = (ctmark & !mask) ^ value.
    SetXmark { value: u32, mask: u32 },
    /// ctmark = (ctmark & !ctmask) ^ (nfmark & nfmask).
    Save { nfmask: u32, ctmask: u32 },
    /// nfmark = (nfmark & !nfmask) ^ (ctmark & ctmask).
    Restore { nfmask: u32, ctmask: u32 },
}

/// CT target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtTarget {
    pub notrack: bool,
    /// `--helper NAME`.
    pub helper: Option<String>,
    /// `--timeout NAME` (a timeout policy name).
    pub timeout: Option<String>,
    pub zone: Option<u16>,
    /// Event bits in the order of `CT_EVENT_NAMES`.
    pub ctevents: u32,
    pub expevents: u32,
}

pub const CT_EVENT_NAMES: [&str; 8] = [
    "new",
    "related",
    "destroy",
    "reply",
    "assured",
    "protoinfo",
    "helper",
    "mark",
];

/// A rule's target.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// No `-j`: the rule only counts, evaluation continues.
    None,
    Accept,
    Drop,
    Return,
    /// `-j CHAIN`: call a user chain.
    Jump(ChainRef),
    /// `-g CHAIN`: go to a user chain (RETURN from it returns to the caller
    /// of the current chain).
    Goto(ChainRef),
    Reject(RejectWith),
    Log(LogTarget),
    /// MARK: nfmark = (nfmark & !mask) ^ value.
    Mark {
        value: u32,
        mask: u32,
    },
    Connmark(ConnmarkTarget),
    /// The NAT targets hold their range boxed: 48 bytes, and most rules
    /// have another target.
    Dnat(Box<NatRange>),
    Snat(Box<NatRange>),
    /// The range's ports and flags; the address is the egress interface's.
    Masquerade(Box<NatRange>),
    /// The range's ports and flags; the address is the ingress interface's.
    Redirect(Box<NatRange>),
    Notrack,
    /// Boxed, as the rare large variants are: keeps `Target` (and so
    /// every rule of a 140,000-rule ruleset) small.
    Ct(Box<CtTarget>),
    /// `--set-mss N`.
    TcpmssSet(u16),
    /// `--clamp-mss-to-pmtu`.
    TcpmssClamp,
    /// NFLOG: hand the packet to a netlink log group.
    Nflog(Box<NflogTarget>),
    /// `CHECKSUM --checksum-fill`: complete a partial checksum.
    ChecksumFill,
    /// HL (IPv6 only): set, increment or decrement the hop limit.
    Hl {
        mode: HlMode,
        value: u8,
    },
}

/// NFLOG target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NflogTarget {
    pub group: u16,
    pub prefix: Option<String>,
    /// `--nflog-range` / `--nflog-size` (copy length); `size` flag says which.
    pub len: Option<(u32, bool)>,
    /// Default 1.
    pub threshold: u16,
}

impl Target {
    /// The chain a jump or goto names.
    pub fn chain_ref(&self) -> Option<&ChainRef> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// [`Target::chain_ref`], to set its hint or rename it.
    pub fn chain_ref_mut(&mut self) -> Option<&mut ChainRef> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// Name printed after `-j`/`-g` (empty for none).
    pub fn name(&self) -> &str {
        match self {
            Target::None => "",
            Target::Accept => "ACCEPT",
            Target::Drop => "DROP",
            Target::Return => "RETURN",
            Target::Jump(c) | Target::Goto(c) => c,
            Target::Reject(_) => "REJECT",
            Target::Log(_) => "LOG",
            Target::Mark { .. } => "MARK",
            Target::Connmark(_) => "CONNMARK",
            Target::Dnat(_) => "DNAT",
            Target::Snat(_) => "SNAT",
            Target::Masquerade(_) => "MASQUERADE",
            Target::Redirect(_) => "REDIRECT",
            Target::Notrack => "NOTRACK",
            Target::Ct(_) => "CT",
            Target::TcpmssSet(_) | Target::TcpmssClamp => "TCPMSS",
            Target::Nflog(_) => "NFLOG",
            Target::ChecksumFill => "CHECKSUM",
            Target::Hl { .. } => "HL",
        }
    }
}
