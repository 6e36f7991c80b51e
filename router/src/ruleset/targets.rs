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

/// NAT range of DNAT/SNAT (`--to-destination a[-b][:p[-q][/base]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatRange {
    /// None: keep the address (only ports given, e.g. `:80`).
    pub addrs: Option<(u32, u32)>,
    pub ports: Option<(u16, u16)>,
    /// `/base` (port offset base, kernel NF_NAT_RANGE_PROTO_OFFSET).
    pub base_port: Option<u16>,
}

/// NAT flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatFlags {
    pub random: bool,
    pub random_fully: bool,
    pub persistent: bool,
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
    Dnat {
        range: NatRange,
        flags: NatFlags,
    },
    Snat {
        range: NatRange,
        flags: NatFlags,
    },
    Masquerade {
        ports: Option<(u16, u16)>,
        flags: NatFlags,
    },
    Redirect {
        ports: Option<(u16, u16)>,
        flags: NatFlags,
    },
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
            Target::Dnat { .. } => "DNAT",
            Target::Snat { .. } => "SNAT",
            Target::Masquerade { .. } => "MASQUERADE",
            Target::Redirect { .. } => "REDIRECT",
            Target::Notrack => "NOTRACK",
            Target::Ct(_) => "CT",
            Target::TcpmssSet(_) | Target::TcpmssClamp => "TCPMSS",
            Target::Nflog(_) => "NFLOG",
            Target::ChecksumFill => "CHECKSUM",
            Target::Hl { .. } => "HL",
        }
    }
}
