//! The `conntrack` tool (conntrack-tools 1.4.7) emulated against tungate's
//! connection table: `-L`, `-D`, `-F`, `-C`, `-S`, `-G`, `-U` (mark),
//! `-E`, `-V`, `-h`, plain, `-o extended`, `-o id` and `-o xml` output,
//! with the real tool's option parser (getopt_long: bundled short options,
//! attached arguments, unique prefixes of long options, protocol options
//! that exist only after `-p`), its command/option legality table, its
//! filters (including the NAT filters of libnetfilter_conntrack), its line
//! formats and its error texts and exit statuses (2 for a parameter problem,
//! 1 for an operation that failed or deleted nothing).
//!
//! The formats and messages were taken from the real 1.4.7 binary run
//! against kernel entries in a scratch network namespace, quirks included
//! (an attached `-n`/`-g`/`-j` argument is ignored, `-U` prints only the
//! first updated entry, `-D` of nothing exits 1); `tests/conntrack_cli.rs`
//! keeps comparing with that binary when it is available.
//!
//! Not emulated: `-I` (tungate creates entries from packets only), `-U` of
//! the status or timeout, `-z` (accepted, counters are not zeroed), zones
//! and labels (nothing matches `-w N`, N != 0; `-l` is an unknown label),
//! the `[USERSPACE] portid=` suffix of events, one `-S` line per CPU.
//!
//! Entry points: [`run`] for the one-shot commands and [`EventStream`] /
//! [`events`] for `-E`. Nothing here reads a clock: time is an argument.
#![forbid(unsafe_code)]

use crate::clock::Timestamp;
use crate::conntrack::{
    ConnSnapshot, ConnTable, CtEvent, EventKind, Status, TcpState, Tuple, PROTO_ICMP, PROTO_TCP,
    PROTO_UDP,
};
use crate::syntax::Output;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Prefix of every message the tool writes to stderr.
pub const PROG: &str = "conntrack v1.4.7 (conntrack-tools)";

/// Exit status of a parameter problem (`PARAMETER_PROBLEM`).
pub const EXIT_PARAMETER: i32 = 2;
/// Exit status of an operation that failed (`OTHER_PROBLEM`).
pub const EXIT_FAILURE: i32 = 1;

const USAGE: &str = "Command line interface for the connection tracking system. Version 1.4.7
Usage: conntrack [commands] [options]

Commands:
  -L [table] [options]\t\tList conntrack or expectation table
  -G [table] parameters\t\tGet conntrack or expectation
  -D [table] parameters\t\tDelete conntrack or expectation
  -I [table] parameters\t\tCreate a conntrack or expectation
  -U [table] parameters\t\tUpdate a conntrack
  -E [table] [options]\t\tShow events
  -F [table]\t\t\tFlush table
  -C [table]\t\t\tShow counter
  -S\t\t\t\tShow statistics

Tables: conntrack, expect, dying, unconfirmed

Conntrack parameters and options:
  -n, --src-nat ip\t\t\tsource NAT ip
  -g, --dst-nat ip\t\t\tdestination NAT ip
  -j, --any-nat ip\t\t\tsource or destination NAT ip
  -m, --mark mark\t\t\tSet mark
  -c, --secmark secmark\t\t\tSet selinux secmark
  -e, --event-mask eventmask\t\tEvent mask, eg. NEW,DESTROY
  -z, --zero \t\t\t\tZero counters while listing
  -o, --output type[,...]\t\tOutput format, eg. xml
  -l, --label label[,...]\t\tconntrack labels

Expectation parameters and options:
  --tuple-src ip\tSource address in expect tuple
  --tuple-dst ip\tDestination address in expect tuple

Updating parameters and options:
  --label-add label\tAdd label
  --label-del label\tDelete label

Common parameters and options:
  -s, --src, --orig-src ip\t\tSource address from original direction
  -d, --dst, --orig-dst ip\t\tDestination address from original direction
  -r, --reply-src ip\t\tSource addres from reply direction
  -q, --reply-dst ip\t\tDestination address from reply direction
  -p, --protonum proto\t\tLayer 4 Protocol, eg. 'tcp'
  -f, --family proto\t\tLayer 3 Protocol, eg. 'ipv6'
  -t, --timeout timeout\t\tSet timeout
  -u, --status status\t\tSet status, eg. ASSURED
  -w, --zone value\t\tSet conntrack zone
  --orig-zone value\t\tSet zone for original direction
  --reply-zone value\t\tSet zone for reply direction
  -b, --buffer-size\t\tNetlink socket buffer size
  --mask-src ip\t\t\tSource mask address
  --mask-dst ip\t\t\tDestination mask address

";

/// A problem with the command line, worded as conntrack 1.4.7 words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtError {
    #[error("unknown option `{token}'")]
    UnknownOption { token: String },
    #[error("option `{token}' requires an argument")]
    MissingArgument { token: String },
    #[error("Invalid commands combination")]
    CommandCombination,
    #[error("Illegal option `--{option}' with this command")]
    IllegalOption { option: &'static str },
    #[error("You need to supply the `--{option}' option for this command")]
    RequiredOption { option: &'static str },
    #[error("Invalid IP address `{token}'")]
    BadAddress { token: String },
    #[error("`{token}' unsupported protocol")]
    BadProtocol { token: String },
    #[error("Bad parameter `{token}'")]
    BadParameter { token: String },
    #[error("unknown TCP state `{token}'")]
    BadTcpState { token: String },
    #[error("unknown type `{token}'")]
    UnknownTable { token: String },
    #[error("Invalid netmask")]
    BadNetmask,
    #[error("Can't do that command with tables `dying' and `unconfirmed'")]
    DyingTable,
    #[error("cannot specify `--src-nat' or `--dst-nat' with `--any-nat'")]
    AnyNatWith,
    #[error("Can't use -z with filtering parameters")]
    ZeroWithFilter,
    #[error("CIDR notation unavailable for `--{0}'")]
    NoCidr(&'static str),
    #[error("Can't use --mask-{0} without --{0}")]
    MaskWithout(&'static str),
    #[error("mismatched address family")]
    FamilyMismatch,
    #[error("unknown label '{token}'")]
    UnknownLabel { token: String },
    #[error("Invalid port `{token}'")]
    BadPort { token: String },
    #[error("you have to specify `--{0}' and `--{1}'")]
    NeedPair(&'static str, &'static str),
    /// Accepted by the parser, refused by the (emulated) kernel: exit 1.
    #[error("Operation failed: {0}")]
    OperationFailed(&'static str),
}

impl CtError {
    /// The tool's exit status for this error.
    pub fn status(&self) -> i32 {
        match self {
            CtError::OperationFailed(_) => EXIT_FAILURE,
            _ => EXIT_PARAMETER,
        }
    }

    /// stderr as the tool writes it (with the "Try ..." line for
    /// parameter problems).
    pub fn to_stderr(&self) -> String {
        let mut s = format!("{PROG}: {self}\n");
        if self.status() == EXIT_PARAMETER {
            s.push_str("Try `conntrack -h' or 'conntrack --help' for more information.\n");
        }
        s
    }
}

/// Commands, in the order of conntrack's command bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    List,
    Create,
    Update,
    Delete,
    Get,
    Flush,
    Event,
    Version,
    Help,
    Count,
    Stats,
}

/// The table a command addresses (`-L expect`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtTable {
    Conntrack,
    Expect,
    Dying,
    Unconfirmed,
}

/// Option bits, in conntrack's order (the order legality errors follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Opt {
    Src = 0,
    Dst,
    ReplySrc,
    ReplyDst,
    Proto,
    Timeout,
    Status,
    Zero,
    EventMask,
    TupleSrc,
    TupleDst,
    MaskSrc,
    MaskDst,
    NatRange,
    Mark,
    Id,
    Family,
    SrcNat,
    DstNat,
    Output,
    Secmark,
    BufferSize,
    AnyNat,
    Zone,
    Label,
    LabelAdd,
    LabelDel,
    OrigZone,
    ReplyZone,
}

const OPT_NAMES: [&str; 29] = [
    "src",
    "dst",
    "reply-src",
    "reply-dst",
    "protonum",
    "timeout",
    "status",
    "zero",
    "event-mask",
    "tuple-src",
    "tuple-dst",
    "mask-src",
    "mask-dst",
    "nat-range",
    "mark",
    "id",
    "family",
    "src-nat",
    "dst-nat",
    "output",
    "secmark",
    "buffer-size",
    "any-nat",
    "zone",
    "label",
    "label-add",
    "label-del",
    "orig-zone",
    "reply-zone",
];

/// `commands_v_options` of conntrack 1.4.7: 0 illegal, 1 required,
/// 2 optional, 3 decided by the command.
const LEGAL: [(Cmd, [u8; 29]); 11] = [
    //             s d r q p t u z e [ ] { } a m i f n g o c b j w l < > ( )
    (
        Cmd::List,
        [
            2, 2, 2, 2, 2, 0, 2, 2, 0, 0, 0, 2, 2, 0, 2, 0, 2, 2, 2, 2, 2, 0, 2, 2, 2, 0, 0, 2, 2,
        ],
    ),
    (
        Cmd::Create,
        [
            3, 3, 3, 3, 1, 1, 2, 0, 0, 0, 0, 0, 0, 2, 2, 0, 0, 2, 2, 0, 0, 0, 0, 2, 0, 2, 0, 2, 2,
        ],
    ),
    (
        Cmd::Update,
        [
            2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 0, 0,
        ],
    ),
    (
        Cmd::Delete,
        [
            2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 2, 2, 0, 0, 2, 2,
        ],
    ),
    (
        Cmd::Get,
        [
            3, 3, 3, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0,
        ],
    ),
    (
        Cmd::Flush,
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    ),
    (
        Cmd::Event,
        [
            2, 2, 2, 2, 2, 0, 0, 0, 2, 0, 0, 2, 2, 0, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 2, 2,
        ],
    ),
    (Cmd::Version, [0; 29]),
    (
        Cmd::Help,
        [
            0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    ),
    (Cmd::Count, [0; 29]),
    (Cmd::Stats, [0; 29]),
];

/// The same for the expectation table (`-L expect`: only `-i -f -o`;
/// `-D/-G expect` need `-s -d -p`).
const EXP_LIST: [u8; 29] = {
    let mut a = [0; 29];
    a[Opt::Id as usize] = 2;
    a[Opt::Family as usize] = 2;
    a[Opt::Output as usize] = 2;
    a
};
const EXP_DELETE: [u8; 29] = {
    let mut a = [0; 29];
    a[Opt::Src as usize] = 1;
    a[Opt::Dst as usize] = 1;
    a[Opt::ReplySrc as usize] = 2;
    a[Opt::ReplyDst as usize] = 2;
    a[Opt::Proto as usize] = 1;
    a
};

/// How a long or short option takes its argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    No,
    Required,
    /// Attached (`-n1.2.3.4`, `--src-nat=...`), or the next word when it
    /// does not start with `-` (what conntrack does by hand for -n/-g/-j).
    Optional,
}

/// What an option token stands for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Cmd(Cmd),
    Opt(Opt),
    /// A protocol-specific option (after `-p`).
    Proto(ProtoOpt),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ProtoOpt {
    OrigPortSrc,
    OrigPortDst,
    ReplyPortSrc,
    ReplyPortDst,
    MaskPortSrc,
    MaskPortDst,
    TuplePortSrc,
    TuplePortDst,
    State,
    IcmpType,
    IcmpCode,
    IcmpId,
}

const LONG_OPTS: &[(&str, Arg, Key)] = &[
    ("dump", Arg::Optional, Key::Cmd(Cmd::List)),
    ("create", Arg::Optional, Key::Cmd(Cmd::Create)),
    ("delete", Arg::Optional, Key::Cmd(Cmd::Delete)),
    ("update", Arg::Optional, Key::Cmd(Cmd::Update)),
    ("get", Arg::Optional, Key::Cmd(Cmd::Get)),
    ("flush", Arg::Optional, Key::Cmd(Cmd::Flush)),
    ("event", Arg::Optional, Key::Cmd(Cmd::Event)),
    ("counter", Arg::Optional, Key::Cmd(Cmd::Count)),
    ("stats", Arg::No, Key::Cmd(Cmd::Stats)),
    ("version", Arg::No, Key::Cmd(Cmd::Version)),
    ("help", Arg::No, Key::Cmd(Cmd::Help)),
    ("orig-src", Arg::Required, Key::Opt(Opt::Src)),
    ("src", Arg::Required, Key::Opt(Opt::Src)),
    ("orig-dst", Arg::Required, Key::Opt(Opt::Dst)),
    ("dst", Arg::Required, Key::Opt(Opt::Dst)),
    ("reply-src", Arg::Required, Key::Opt(Opt::ReplySrc)),
    ("reply-dst", Arg::Required, Key::Opt(Opt::ReplyDst)),
    ("protonum", Arg::Required, Key::Opt(Opt::Proto)),
    ("timeout", Arg::Required, Key::Opt(Opt::Timeout)),
    ("status", Arg::Required, Key::Opt(Opt::Status)),
    ("zero", Arg::No, Key::Opt(Opt::Zero)),
    ("event-mask", Arg::Required, Key::Opt(Opt::EventMask)),
    ("tuple-src", Arg::Required, Key::Opt(Opt::TupleSrc)),
    ("tuple-dst", Arg::Required, Key::Opt(Opt::TupleDst)),
    ("mask-src", Arg::Required, Key::Opt(Opt::MaskSrc)),
    ("mask-dst", Arg::Required, Key::Opt(Opt::MaskDst)),
    ("nat-range", Arg::Required, Key::Opt(Opt::NatRange)),
    ("mark", Arg::Required, Key::Opt(Opt::Mark)),
    ("secmark", Arg::Required, Key::Opt(Opt::Secmark)),
    ("id", Arg::Optional, Key::Opt(Opt::Id)),
    ("family", Arg::Required, Key::Opt(Opt::Family)),
    ("src-nat", Arg::Optional, Key::Opt(Opt::SrcNat)),
    ("dst-nat", Arg::Optional, Key::Opt(Opt::DstNat)),
    ("output", Arg::Required, Key::Opt(Opt::Output)),
    ("buffer-size", Arg::Required, Key::Opt(Opt::BufferSize)),
    ("any-nat", Arg::Optional, Key::Opt(Opt::AnyNat)),
    ("zone", Arg::Required, Key::Opt(Opt::Zone)),
    ("label", Arg::Required, Key::Opt(Opt::Label)),
    ("label-add", Arg::Required, Key::Opt(Opt::LabelAdd)),
    ("label-del", Arg::Optional, Key::Opt(Opt::LabelDel)),
    ("orig-zone", Arg::Required, Key::Opt(Opt::OrigZone)),
    ("reply-zone", Arg::Required, Key::Opt(Opt::ReplyZone)),
];

const PORT_OPTS: &[(&str, Arg, Key)] = &[
    (
        "orig-port-src",
        Arg::Required,
        Key::Proto(ProtoOpt::OrigPortSrc),
    ),
    (
        "orig-port-dst",
        Arg::Required,
        Key::Proto(ProtoOpt::OrigPortDst),
    ),
    (
        "reply-port-src",
        Arg::Required,
        Key::Proto(ProtoOpt::ReplyPortSrc),
    ),
    (
        "reply-port-dst",
        Arg::Required,
        Key::Proto(ProtoOpt::ReplyPortDst),
    ),
    (
        "mask-port-src",
        Arg::Required,
        Key::Proto(ProtoOpt::MaskPortSrc),
    ),
    (
        "mask-port-dst",
        Arg::Required,
        Key::Proto(ProtoOpt::MaskPortDst),
    ),
    (
        "tuple-port-src",
        Arg::Required,
        Key::Proto(ProtoOpt::TuplePortSrc),
    ),
    (
        "tuple-port-dst",
        Arg::Required,
        Key::Proto(ProtoOpt::TuplePortDst),
    ),
    ("sport", Arg::Required, Key::Proto(ProtoOpt::OrigPortSrc)),
    ("dport", Arg::Required, Key::Proto(ProtoOpt::OrigPortDst)),
];

const TCP_STATE_OPT: (&str, Arg, Key) = ("state", Arg::Required, Key::Proto(ProtoOpt::State));

const ICMP_OPTS: &[(&str, Arg, Key)] = &[
    ("icmp-type", Arg::Required, Key::Proto(ProtoOpt::IcmpType)),
    ("icmp-code", Arg::Required, Key::Proto(ProtoOpt::IcmpCode)),
    ("icmp-id", Arg::Required, Key::Proto(ProtoOpt::IcmpId)),
];

fn short_opt(c: char) -> Option<(Arg, Key)> {
    Some(match c {
        'L' => (Arg::Optional, Key::Cmd(Cmd::List)),
        'I' => (Arg::Optional, Key::Cmd(Cmd::Create)),
        'U' => (Arg::Optional, Key::Cmd(Cmd::Update)),
        'D' => (Arg::Optional, Key::Cmd(Cmd::Delete)),
        'G' => (Arg::Optional, Key::Cmd(Cmd::Get)),
        'E' => (Arg::Optional, Key::Cmd(Cmd::Event)),
        'F' => (Arg::Optional, Key::Cmd(Cmd::Flush)),
        'C' => (Arg::Optional, Key::Cmd(Cmd::Count)),
        'S' => (Arg::Optional, Key::Cmd(Cmd::Stats)),
        'h' => (Arg::Optional, Key::Cmd(Cmd::Help)),
        'V' => (Arg::Optional, Key::Cmd(Cmd::Version)),
        's' => (Arg::Required, Key::Opt(Opt::Src)),
        'd' => (Arg::Required, Key::Opt(Opt::Dst)),
        'r' => (Arg::Required, Key::Opt(Opt::ReplySrc)),
        'q' => (Arg::Required, Key::Opt(Opt::ReplyDst)),
        'p' => (Arg::Required, Key::Opt(Opt::Proto)),
        't' => (Arg::Required, Key::Opt(Opt::Timeout)),
        'u' => (Arg::Required, Key::Opt(Opt::Status)),
        'e' => (Arg::Required, Key::Opt(Opt::EventMask)),
        'a' => (Arg::Required, Key::Opt(Opt::NatRange)),
        'z' => (Arg::No, Key::Opt(Opt::Zero)),
        '[' => (Arg::Required, Key::Opt(Opt::TupleSrc)),
        ']' => (Arg::Required, Key::Opt(Opt::TupleDst)),
        '{' => (Arg::Required, Key::Opt(Opt::MaskSrc)),
        '}' => (Arg::Required, Key::Opt(Opt::MaskDst)),
        'm' => (Arg::Required, Key::Opt(Opt::Mark)),
        'i' => (Arg::Required, Key::Opt(Opt::Id)),
        'f' => (Arg::Required, Key::Opt(Opt::Family)),
        'o' => (Arg::Required, Key::Opt(Opt::Output)),
        'n' => (Arg::Optional, Key::Opt(Opt::SrcNat)),
        'g' => (Arg::Optional, Key::Opt(Opt::DstNat)),
        'j' => (Arg::Optional, Key::Opt(Opt::AnyNat)),
        'c' => (Arg::Required, Key::Opt(Opt::Secmark)),
        'b' => (Arg::Required, Key::Opt(Opt::BufferSize)),
        'w' => (Arg::Required, Key::Opt(Opt::Zone)),
        'l' => (Arg::Required, Key::Opt(Opt::Label)),
        _ => return None,
    })
}

/// An address filter: `addr` under `mask` (`ADDR/LEN`, or `--mask-src`
/// / `--mask-dst` for the original addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrFilter {
    pub addr: Ipv4Addr,
    pub mask: u32,
}

impl AddrFilter {
    fn matches(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask == u32::from(self.addr) & self.mask
    }
}

/// A NAT filter argument (`-n`, `-g`, `-j`): optional address, optional port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatArg {
    pub addr: Option<Ipv4Addr>,
    pub port: Option<u16>,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cmd: Cmd,
    pub table: CtTable,
    /// `-f ipv6` or an IPv6 address: tungate tracks IPv4 only, nothing matches.
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

const EV_NEW: u32 = 1;
const EV_UPDATE: u32 = 2;
const EV_DESTROY: u32 = 4;

impl Request {
    fn new(cmd: Cmd) -> Request {
        Request {
            cmd,
            table: CtTable::Conntrack,
            ipv6: false,
            src: None,
            dst: None,
            reply_src: None,
            reply_dst: None,
            proto: None,
            orig_sport: None,
            orig_dport: None,
            reply_sport: None,
            reply_dport: None,
            tcp_state: None,
            icmp_type: None,
            icmp_code: None,
            icmp_id: None,
            status: 0,
            unreplied: false,
            status_invalid: false,
            warnings: Vec::new(),
            mark: None,
            timeout: None,
            zone: None,
            src_nat: None,
            dst_nat: None,
            any_nat: None,
            event_mask: EV_NEW | EV_UPDATE | EV_DESTROY,
            extended: false,
            show_id: false,
            xml: false,
        }
    }

    /// True if the entry passes every filter of the command line.
    pub fn matches(&self, c: &ConnSnapshot) -> bool {
        if self.ipv6 {
            return false;
        }
        let (o, r) = (&c.orig, &c.reply);
        let addr_ok = |f: &Option<AddrFilter>, a: Ipv4Addr| f.is_none_or(|f| f.matches(a));
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
        let has = |arg: NatArg, is_nat: bool, is_pat: bool, ip: Ipv4Addr, port: u16| -> bool {
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

/// `strtoul(s, &end, 0)`: the value of the longest numeric prefix (0 when
/// none) and the rest of the string.
fn strtoul(s: &str) -> (u64, &str) {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, body) = if (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].chars().next().is_some_and(|c| c.is_ascii_hexdigit())
    {
        (16, &t[2..])
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !c.is_digit(radix))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return (0, s);
    }
    let mut v: u64 = 0;
    for c in body[..end].chars() {
        v = v
            .saturating_mul(radix as u64)
            .saturating_add(c.to_digit(radix).unwrap_or(0) as u64);
    }
    let v = if neg { v.wrapping_neg() } else { v };
    (v, &body[end..])
}

/// `atoi` truncated to 16 bits, as conntrack stores ports.
fn atoi_u16(s: &str) -> u16 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for c in t.chars() {
        match c.to_digit(10) {
            Some(d) => v = v.wrapping_mul(10).wrapping_add(d as i64),
            None => break,
        }
    }
    (if neg { -v } else { v }) as u16
}

/// `inet_aton`: one to four parts, each decimal, octal (`0`) or hex (`0x`).
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        let (radix, body) = if p.starts_with("0x") || p.starts_with("0X") {
            (16, &p[2..])
        } else if p.len() > 1 && p.starts_with('0') {
            (8, &p[1..])
        } else {
            (10, *p)
        };
        if p.is_empty() || (radix != 16 && body.is_empty() && radix != 8) {
            return None;
        }
        let v = if body.is_empty() {
            0
        } else {
            u64::from_str_radix(body, radix).ok()?
        };
        vals.push(v);
    }
    let n = vals.len();
    let last_max: u64 = [0xffff_ffff, 0xff_ffff, 0xffff, 0xff][n - 1];
    if vals[..n - 1].iter().any(|&v| v > 0xff) || vals[n - 1] > last_max {
        return None;
    }
    let mut a: u32 = vals[n - 1] as u32;
    for (i, v) in vals[..n - 1].iter().enumerate() {
        a |= (*v as u32) << (24 - 8 * i);
    }
    Some(Ipv4Addr::from(a))
}

/// Parses an address option value: IPv4 (with an optional `/len`), or an
/// IPv6 address (accepted, sets the family). Errors name the token.
fn parse_addr(token: &str, ipv6: &mut Option<bool>) -> Result<Option<AddrFilter>, CtError> {
    let (a, len) = match token.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (token, None),
    };
    let bad = || CtError::BadAddress {
        token: token.to_string(),
    };
    if let Some(addr) = inet_aton(a) {
        set_family(ipv6, false)?;
        let mask = match len {
            None => u32::MAX,
            Some(l) => match l.parse::<u8>() {
                Ok(0) => 0,
                Ok(p) if p <= 32 => u32::MAX << (32 - p as u32),
                _ => return Err(CtError::BadNetmask),
            },
        };
        return Ok(Some(AddrFilter { addr, mask }));
    }
    if a.parse::<std::net::Ipv6Addr>().is_ok() {
        if let Some(l) = len {
            if !matches!(l.parse::<u8>(), Ok(p) if p <= 128) {
                return Err(CtError::BadNetmask);
            }
        }
        set_family(ipv6, true)?;
        return Ok(None);
    }
    Err(bad())
}

fn set_family(cur: &mut Option<bool>, v6: bool) -> Result<(), CtError> {
    match *cur {
        None => {
            *cur = Some(v6);
            Ok(())
        }
        Some(c) if c == v6 => Ok(()),
        Some(_) => Err(CtError::FamilyMismatch),
    }
}

/// `-p` value: a protocol name conntrack knows or a number.
fn parse_proto(s: &str) -> Result<u8, CtError> {
    let n = match s.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "udplite" => 136,
        "sctp" => 132,
        "dccp" => 33,
        "gre" => 47,
        "icmpv6" | "ipv6-icmp" => 58,
        "esp" => 50,
        "ah" => 51,
        "ip" => 0,
        "igmp" => 2,
        "ipip" => 4,
        "ipv6" => 41,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        other => match other.parse::<u32>() {
            Ok(n) if n <= 255 => n as u8,
            _ => {
                return Err(CtError::BadProtocol {
                    token: s.to_string(),
                })
            }
        },
    };
    Ok(n)
}

/// conntrack's comma-separated parameter lists: every item may be a
/// case-insensitive prefix of a known name (`strncasecmp`).
fn parse_list(
    arg: &str,
    names: &[(&str, u32)],
    mut special: impl FnMut(&str) -> Option<Result<(), CtError>>,
) -> Result<u32, CtError> {
    let mut v = 0;
    let items: Vec<&str> = arg.split(',').collect();
    for (i, item) in items.iter().enumerate() {
        // The real tool names the rest of the list from the bad item on.
        let rest = items[i..].join(",");
        let bad = || CtError::BadParameter {
            token: if i + 1 == items.len() {
                item.to_string()
            } else {
                rest.clone()
            },
        };
        // A leading '!' (negation, meaningless here) is dropped first.
        let item = item.strip_prefix('!').unwrap_or(item);
        if item.is_empty() {
            return Err(CtError::BadParameter {
                token: items[i..].join(",").trim_start_matches('!').to_string(),
            });
        }
        if let Some(r) = special(item) {
            r?;
            continue;
        }
        let up = item.to_ascii_uppercase();
        match names.iter().find(|(n, _)| n.starts_with(&up)) {
            Some((_, bit)) => v |= bit,
            None => return Err(bad()),
        }
    }
    Ok(v)
}

const UNREPLIED_BIT: u32 = 1 << 31;
const STATUS_NAMES: &[(&str, u32)] = &[
    ("ASSURED", Status::ASSURED),
    ("SEEN_REPLY", Status::SEEN_REPLY),
    ("UNSET", 0),
    ("FIXED_TIMEOUT", 1 << 10),
    ("EXPECTED", Status::EXPECTED),
    ("OFFLOAD", 1 << 14),
    ("HW_OFFLOAD", 1 << 15),
    ("UNREPLIED", UNREPLIED_BIT),
];

const EVENT_NAMES: &[(&str, u32)] = &[
    ("ALL", EV_NEW | EV_UPDATE | EV_DESTROY),
    ("NEW", EV_NEW),
    ("UPDATES", EV_UPDATE),
    ("DESTROY", EV_DESTROY),
];

const O_XML: u32 = 1;
const O_EXT: u32 = 2;
const O_ID: u32 = 4;
const OUTPUT_NAMES: &[(&str, u32)] = &[
    ("XML", O_XML),
    ("EXTENDED", O_EXT),
    ("TIMESTAMP", 0),
    ("ID", O_ID),
    ("KTIMESTAMP", 0),
    ("LABELS", 0),
    ("USERSPACE", 0),
];

fn tcp_state(s: &str) -> Result<TcpState, CtError> {
    use TcpState::*;
    let all = [
        None,
        SynSent,
        SynRecv,
        Established,
        FinWait,
        CloseWait,
        LastAck,
        TimeWait,
        Close,
        SynSent2,
    ];
    if s == "LISTEN" {
        return Ok(SynSent2);
    }
    all.into_iter()
        .find(|st| st.name() == s)
        .ok_or_else(|| CtError::BadTcpState {
            token: s.to_string(),
        })
}

/// Parses `conntrack` arguments (without the program name) the way
/// conntrack 1.4.7 does, including its legality checks.
pub fn parse(args: &[String]) -> Result<Request, CtError> {
    parse_warn(args).1
}

/// [`parse`], also returning the warnings the tool prints while parsing
/// (they precede an error message too).
pub fn parse_warn(args: &[String]) -> (Vec<String>, Result<Request, CtError>) {
    let mut warnings = Vec::new();
    let r = parse_inner(args, &mut warnings);
    (
        warnings.clone(),
        r.map(|mut req| {
            req.warnings = warnings;
            req
        }),
    )
}

fn parse_inner(args: &[String], warnings: &mut Vec<String>) -> Result<Request, CtError> {
    let mut cmd: Option<Cmd> = None;
    let mut table = CtTable::Conntrack;
    let mut used = [false; 29];
    let mut family: Option<bool> = None;
    let mut req = Request::new(Cmd::List);
    // Protocol options become known once `-p` has been seen.
    let mut proto_opts: Vec<(&'static str, Arg, Key)> = Vec::new();
    let (mut mask_src, mut mask_dst): (Option<u32>, Option<u32>) = (None, None);
    let mut i = 0;
    while i < args.len() {
        let tok = args[i].as_str();
        i += 1;
        // (key, attached argument, token for messages, arg kind)
        // (key, attached argument, argument kind, last option of its word)
        let mut items: Vec<(Key, Option<String>, Arg, bool)> = Vec::new();
        if let Some(long) = tok.strip_prefix("--") {
            if long.is_empty() {
                // "--" ends the options; the rest are operands (ignored).
                break;
            }
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let all = LONG_OPTS.iter().chain(proto_opts.iter());
            let exact: Vec<_> = all.clone().filter(|(n, _, _)| *n == name).collect();
            let found = if let Some(e) = exact.first() {
                Some(**e)
            } else {
                let pre: Vec<_> = all.filter(|(n, _, _)| n.starts_with(name)).collect();
                match pre.first() {
                    Some(first) if pre.iter().all(|p| p.2 == first.2 && p.1 == first.1) => {
                        Some(**first)
                    }
                    _ => None,
                }
            };
            let Some((_, kind, key)) = found else {
                return Err(CtError::UnknownOption {
                    token: tok.to_string(),
                });
            };
            if kind == Arg::No && attached.is_some() {
                return Err(CtError::UnknownOption {
                    token: tok.to_string(),
                });
            }
            items.push((key, attached, kind, true));
        } else if tok.len() > 1 && tok.starts_with('-') {
            let chars: Vec<char> = tok[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let Some((kind, key)) = short_opt(chars[k]) else {
                    return Err(CtError::UnknownOption {
                        token: tok.to_string(),
                    });
                };
                let rest: String = chars[k + 1..].iter().collect();
                if kind != Arg::No && !rest.is_empty() {
                    items.push((key, Some(rest), kind, true));
                    break;
                }
                items.push((key, None, kind, k + 1 == chars.len()));
                k += 1;
            }
        } else {
            // Operands are ignored (getopt moves them to the end).
            continue;
        }
        for (key, attached, kind, last) in items {
            let arg = match (kind, attached) {
                (Arg::No, _) => None,
                // conntrack 1.4.7 parses only a separate NAT argument; an
                // attached one (`-n1.2.3.4`, `--src-nat=...`) is ignored
                // and the option filters on "any address".
                (Arg::Optional, Some(_))
                    if matches!(key, Key::Opt(Opt::SrcNat | Opt::DstNat | Opt::AnyNat)) =>
                {
                    None
                }
                // A command's attached argument (`-Lz`, `--dump=x`) is
                // swallowed and ignored; a separate one is the table,
                // read below.
                (Arg::Optional, Some(_)) if matches!(key, Key::Cmd(_)) => Some(String::new()),
                (Arg::Optional, None) if matches!(key, Key::Cmd(_)) => None,
                (_, Some(a)) => Some(a),
                (Arg::Required, None) => match args.get(i) {
                    Some(a) => {
                        i += 1;
                        Some(a.clone())
                    }
                    None => {
                        return Err(CtError::MissingArgument {
                            token: tok.to_string(),
                        })
                    }
                },
                (Arg::Optional, None) => match args.get(i) {
                    Some(a) if last && !a.starts_with('-') && !a.starts_with('!') => {
                        i += 1;
                        Some(a.clone())
                    }
                    _ => None,
                },
            };
            match key {
                Key::Cmd(c) => {
                    // The table operand is read first (conntrack's
                    // check_type), and only after the last option of a word.
                    {
                        let t = match arg {
                            Some(_) => None,
                            None => match args.get(i) {
                                Some(a) if last && !a.starts_with('-') && !a.starts_with('!') => {
                                    i += 1;
                                    Some(a.clone())
                                }
                                _ => None,
                            },
                        };
                        if let Some(t) = t {
                            table = if t.starts_with("expect") {
                                CtTable::Expect
                            } else if t.starts_with("conntrack") {
                                CtTable::Conntrack
                            } else if t.starts_with("dying") {
                                CtTable::Dying
                            } else if t.starts_with("unconfirmed") {
                                CtTable::Unconfirmed
                            } else {
                                return Err(CtError::UnknownTable { token: t });
                            };
                            if matches!(table, CtTable::Dying | CtTable::Unconfirmed)
                                && c != Cmd::List
                            {
                                return Err(CtError::DyingTable);
                            }
                        }
                    }
                    if cmd.is_some() {
                        return Err(CtError::CommandCombination);
                    }
                    cmd = Some(c);
                }
                Key::Opt(Opt::NatRange) => {
                    warnings.push("WARNING: ignoring -a, deprecated option.\n".to_string());
                }
                Key::Opt(o) => {
                    used[o as usize] = true;
                    let a = arg.unwrap_or_default();
                    match o {
                        Opt::Src => req.src = parse_addr(&a, &mut family)?,
                        Opt::Dst => req.dst = parse_addr(&a, &mut family)?,
                        // Only -s/-d take ADDR/LEN.
                        Opt::ReplySrc | Opt::ReplyDst | Opt::MaskSrc | Opt::MaskDst
                            if a.contains('/') =>
                        {
                            return Err(CtError::NoCidr(OPT_NAMES[o as usize]));
                        }
                        Opt::ReplySrc => req.reply_src = parse_addr(&a, &mut family)?,
                        Opt::ReplyDst => req.reply_dst = parse_addr(&a, &mut family)?,
                        Opt::MaskSrc | Opt::MaskDst => {
                            let m = match inet_aton(&a) {
                                Some(m) => {
                                    set_family(&mut family, false)?;
                                    Some(u32::from(m))
                                }
                                None if a.parse::<std::net::Ipv6Addr>().is_ok() => {
                                    set_family(&mut family, true)?;
                                    None
                                }
                                None => return Err(CtError::BadAddress { token: a }),
                            };
                            if o == Opt::MaskSrc {
                                mask_src = m;
                            } else {
                                mask_dst = m;
                            }
                        }
                        Opt::TupleSrc | Opt::TupleDst => {
                            parse_addr(&a, &mut family)?;
                        }
                        Opt::Proto => {
                            let p = parse_proto(&a)?;
                            req.proto = Some(p);
                            proto_opts.clear();
                            match p {
                                PROTO_TCP => {
                                    proto_opts.extend_from_slice(PORT_OPTS);
                                    proto_opts.push(TCP_STATE_OPT);
                                }
                                PROTO_UDP | 136 | 132 | 33 => {
                                    proto_opts.extend_from_slice(PORT_OPTS)
                                }
                                PROTO_ICMP => proto_opts.extend_from_slice(ICMP_OPTS),
                                _ => {}
                            }
                        }
                        Opt::Status => {
                            let v = parse_list(&a, STATUS_NAMES, |item| {
                                let up = item.to_ascii_uppercase();
                                for (name, opt) in [("SRC_NAT", "src-nat"), ("DST_NAT", "dst-nat")]
                                {
                                    if name.starts_with(&up) {
                                        warnings.push(format!(
                                            "WARNING: ignoring {name}, use --{opt} instead\n"
                                        ));
                                        return Some(Ok(()));
                                    }
                                }
                                if !"ASSURED".starts_with(&up)
                                    && !"SEEN_REPLY".starts_with(&up)
                                    && "UNSET".starts_with(&up)
                                {
                                    return Some(Ok(()));
                                }
                                None
                            })?;
                            req.unreplied = v & UNREPLIED_BIT != 0;
                            req.status = v & !UNREPLIED_BIT;
                            req.status_invalid = req.status == 0 && !req.unreplied;
                        }
                        Opt::EventMask => req.event_mask = parse_list(&a, EVENT_NAMES, |_| None)?,
                        Opt::Output => {
                            let v = parse_list(&a, OUTPUT_NAMES, |_| None)?;
                            req.xml = v & O_XML != 0;
                            req.extended = v & O_EXT != 0;
                            req.show_id = v & O_ID != 0;
                        }
                        Opt::Mark => {
                            let (v, rest) = strtoul(&a);
                            let m = match rest.strip_prefix('/') {
                                Some(m) => strtoul(m).0 as u32,
                                None => u32::MAX,
                            };
                            req.mark = Some((v as u32, m));
                        }
                        Opt::Family => match a.as_str() {
                            "ipv4" => set_family(&mut family, false)?,
                            "ipv6" => set_family(&mut family, true)?,
                            _ => return Err(CtError::BadProtocol { token: a }),
                        },
                        Opt::SrcNat | Opt::DstNat | Opt::AnyNat => {
                            let mut n = NatArg::default();
                            if a.parse::<std::net::Ipv6Addr>().is_ok() {
                                // An IPv6 NAT address: no IPv4 entry has it.
                                set_family(&mut family, true)?;
                            } else if !a.is_empty() {
                                let (addr, port) = match a.split_once(':') {
                                    Some((_, p)) if p.contains(':') => {
                                        return Err(CtError::BadAddress { token: a });
                                    }
                                    Some((ad, p)) => match p.parse::<u16>() {
                                        Ok(port) => (ad, Some(port)),
                                        Err(_) => {
                                            return Err(CtError::BadPort {
                                                token: p.to_string(),
                                            })
                                        }
                                    },
                                    None => (a.as_str(), None),
                                };
                                if addr.contains('/') {
                                    return Err(CtError::NoCidr(OPT_NAMES[o as usize]));
                                }
                                n.port = port;
                                n.addr = parse_addr(addr, &mut family)?.map(|f| f.addr);
                            }
                            match o {
                                Opt::SrcNat => req.src_nat = Some(n),
                                Opt::DstNat => req.dst_nat = Some(n),
                                _ => req.any_nat = Some(n),
                            }
                        }
                        Opt::Zone => req.zone = Some(strtoul(&a).0 as u16),
                        Opt::Timeout => req.timeout = Some(strtoul(&a).0 as u32),
                        Opt::Label => {
                            return Err(CtError::UnknownLabel {
                                token: a.split(',').next().unwrap_or_default().to_string(),
                            })
                        }
                        _ => {}
                    }
                }
                Key::Proto(p) => {
                    let a = arg.unwrap_or_default();
                    match p {
                        ProtoOpt::OrigPortSrc => req.orig_sport = Some(atoi_u16(&a)),
                        ProtoOpt::OrigPortDst => req.orig_dport = Some(atoi_u16(&a)),
                        ProtoOpt::ReplyPortSrc => req.reply_sport = Some(atoi_u16(&a)),
                        ProtoOpt::ReplyPortDst => req.reply_dport = Some(atoi_u16(&a)),
                        ProtoOpt::State => req.tcp_state = Some(tcp_state(&a)?),
                        ProtoOpt::IcmpType => req.icmp_type = Some(atoi_u16(&a) as u8),
                        ProtoOpt::IcmpCode => req.icmp_code = Some(atoi_u16(&a) as u8),
                        ProtoOpt::IcmpId => req.icmp_id = Some(atoi_u16(&a)),
                        ProtoOpt::MaskPortSrc
                        | ProtoOpt::MaskPortDst
                        | ProtoOpt::TuplePortSrc
                        | ProtoOpt::TuplePortDst => {
                            if cmd != Some(Cmd::Create) {
                                return Err(CtError::IllegalOption {
                                    option: match p {
                                        ProtoOpt::MaskPortSrc => "mask-port-src",
                                        ProtoOpt::MaskPortDst => "mask-port-dst",
                                        ProtoOpt::TuplePortSrc => "tuple-port-src",
                                        _ => "tuple-port-dst",
                                    },
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    if used[Opt::AnyNat as usize] && (used[Opt::SrcNat as usize] || used[Opt::DstNat as usize]) {
        return Err(CtError::AnyNatWith);
    }
    let Some(cmd) = cmd else {
        if let Some(first) = used.iter().position(|u| *u) {
            return Err(CtError::IllegalOption {
                option: OPT_NAMES[first],
            });
        }
        let mut r = Request::new(Cmd::Help);
        r.table = table;
        return Ok(r);
    };
    let legal = match (table, cmd) {
        (CtTable::Expect, Cmd::List) => &EXP_LIST,
        (CtTable::Expect, Cmd::Delete | Cmd::Get) => &EXP_DELETE,
        (CtTable::Expect, Cmd::Flush | Cmd::Event | Cmd::Count | Cmd::Update) => &[0; 29],
        _ => {
            &LEGAL
                .iter()
                .find(|(c, _)| *c == cmd)
                .expect("all commands")
                .1
        }
    };
    for (k, &l) in legal.iter().enumerate() {
        if used[k] && l == 0 {
            return Err(CtError::IllegalOption {
                option: OPT_NAMES[k],
            });
        }
        if !used[k] && l == 1 {
            return Err(CtError::RequiredOption {
                option: OPT_NAMES[k],
            });
        }
    }
    for (mask, opt, addr_opt, f, name) in [
        (mask_src, Opt::MaskSrc, Opt::Src, &mut req.src, "src"),
        (mask_dst, Opt::MaskDst, Opt::Dst, &mut req.dst, "dst"),
    ] {
        if used[opt as usize] && !used[addr_opt as usize] {
            return Err(CtError::MaskWithout(name));
        }
        if let (Some(m), Some(f)) = (mask, f.as_mut()) {
            f.mask = m;
        }
    }
    if used[Opt::Zero as usize]
        && [
            Opt::Src,
            Opt::Dst,
            Opt::ReplySrc,
            Opt::ReplyDst,
            Opt::Proto,
            Opt::Mark,
            Opt::Status,
            Opt::Zone,
            Opt::Secmark,
            Opt::OrigZone,
            Opt::ReplyZone,
        ]
        .iter()
        .any(|o| used[*o as usize])
    {
        return Err(CtError::ZeroWithFilter);
    }
    if cmd == Cmd::Get && table == CtTable::Conntrack {
        // The tuple to look up must be complete (conntrack's "3" options).
        let has = |o: Opt| used[o as usize];
        let orig = if has(Opt::Src) || has(Opt::Dst) {
            if !(has(Opt::Src) && has(Opt::Dst)) {
                return Err(CtError::NeedPair("src", "dst"));
            }
            true
        } else if has(Opt::ReplySrc) || has(Opt::ReplyDst) {
            if !(has(Opt::ReplySrc) && has(Opt::ReplyDst)) {
                return Err(CtError::NeedPair("reply-src", "reply-dst"));
            }
            false
        } else {
            return Err(CtError::NeedPair("src", "dst"));
        };
        if matches!(req.proto, Some(PROTO_TCP | PROTO_UDP | 33 | 132 | 136)) {
            let ports = if orig {
                (req.orig_sport, req.orig_dport)
            } else {
                (req.reply_sport, req.reply_dport)
            };
            if ports.0.is_none() || ports.1.is_none() {
                return Err(CtError::NeedPair("sport", "dport"));
            }
        }
    }
    req.cmd = cmd;
    req.table = table;
    req.ipv6 = family == Some(true);
    Ok(req)
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
        Some(if proto == PROTO_ICMP {
            Tuple::icmp(
                src,
                dst,
                self.icmp_type.unwrap_or(0),
                self.icmp_code.unwrap_or(0),
                self.icmp_id.unwrap_or(0),
            )
        } else if matches!(proto, PROTO_TCP | PROTO_UDP) {
            Tuple::new(src, dst, proto, sp.unwrap_or(0), dp.unwrap_or(0))
        } else {
            Tuple::new(src, dst, proto, 0, 0)
        })
    }
}

/// How entries are printed (`nf_conntrack_acct` in the kernel decides
/// whether counters appear).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CliOptions {
    /// Print `packets= bytes=` after each tuple.
    pub acct: bool,
}

/// One entry as `conntrack -L` prints it (without the newline).
pub fn format_entry(c: &ConnSnapshot, now: Timestamp, req: &Request, opts: CliOptions) -> String {
    if req.xml {
        return format_xml(c, now, opts);
    }
    let mut s = String::with_capacity(200);
    if req.extended {
        s.push_str("ipv4     2 ");
    }
    let _ = write!(s, "{}", c.display(now, opts.acct));
    if req.show_id {
        let _ = write!(s, " id={}", c.id);
    }
    s
}

/// One event line as `conntrack -E` prints it (without the newline).
/// The kernel omits `mark=` when it is 0 and never sends `use=`; a
/// DESTROY of an expired entry carries no timeout.
pub fn format_event(ev: &CtEvent, now: Timestamp, req: &Request, opts: CliOptions) -> String {
    let c = &ev.conn;
    let tag = match ev.kind {
        EventKind::New => "[NEW]",
        EventKind::Update => "[UPDATE]",
        EventKind::Destroy => "[DESTROY]",
    };
    let mut s = format!("{tag:>9} ");
    if req.extended {
        s.push_str("ipv4     2 ");
    }
    let _ = write!(s, "{:<8} {} ", proto_name(c.orig.proto), c.orig.proto);
    let secs = c.timeout_secs(now);
    if !(ev.kind == EventKind::Destroy && secs == 0) {
        let _ = write!(s, "{secs} ");
    }
    if let Some(st) = c.tcp_state {
        let _ = write!(s, "{} ", st.name());
    }
    write_tuple(&mut s, &c.orig);
    if opts.acct && ev.kind == EventKind::Destroy {
        let _ = write!(s, " packets={} bytes={}", c.packets[0], c.bytes[0]);
    }
    if !c.status.seen_reply() {
        s.push_str(" [UNREPLIED]");
    }
    s.push(' ');
    write_tuple(&mut s, &c.reply);
    if opts.acct && ev.kind == EventKind::Destroy {
        let _ = write!(s, " packets={} bytes={}", c.packets[1], c.bytes[1]);
    }
    if c.status.assured() {
        s.push_str(" [ASSURED]");
    }
    if c.mark != 0 {
        let _ = write!(s, " mark={}", c.mark);
    }
    if req.show_id {
        let _ = write!(s, " id={}", c.id);
    }
    s
}

/// First and last lines of `-o xml` output (printed only around entries).
pub const XML_HEADER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>\n";
pub const XML_FOOTER: &str = "</conntrack>\n";

/// One entry as `conntrack -L -o xml` prints it (one `<flow>` line without
/// the newline); ICMP and portless protocols have an empty `<layer4>`.
pub fn format_xml(c: &ConnSnapshot, now: Timestamp, opts: CliOptions) -> String {
    let mut s = String::with_capacity(600);
    s.push_str("<flow>");
    for (i, (dir, t)) in [("original", &c.orig), ("reply", &c.reply)]
        .into_iter()
        .enumerate()
    {
        let name = proto_name(t.proto);
        let _ = write!(
            s,
            "<meta direction=\"{dir}\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>{}</src><dst>{}</dst></layer3><layer4 protonum=\"{}\" protoname=\"{name}\">",
            t.src, t.dst, t.proto
        );
        if matches!(t.proto, PROTO_TCP | PROTO_UDP) {
            let _ = write!(s, "<sport>{}</sport><dport>{}</dport>", t.sport, t.dport);
        }
        s.push_str("</layer4>");
        if opts.acct {
            let _ = write!(
                s,
                "<counters><packets>{}</packets><bytes>{}</bytes></counters>",
                c.packets[i], c.bytes[i]
            );
        }
        s.push_str("</meta>");
    }
    s.push_str("<meta direction=\"independent\">");
    if let Some(st) = c.tcp_state {
        let _ = write!(s, "<state>{}</state>", st.name());
    }
    let _ = write!(
        s,
        "<timeout>{}</timeout><mark>{}</mark><use>1</use><id>{}</id>",
        c.timeout_secs(now),
        c.mark,
        c.id
    );
    if c.status.assured() {
        s.push_str("<assured/>");
    }
    if !c.status.seen_reply() {
        s.push_str("<unreplied/>");
    }
    s.push_str("</meta></flow>");
    s
}

fn write_tuple(s: &mut String, t: &Tuple) {
    let _ = write!(s, "{t}");
}

fn proto_name(p: u8) -> &'static str {
    match p {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        PROTO_ICMP => "icmp",
        _ => "unknown",
    }
}

fn summary(s: &mut String, what: &str) {
    let _ = writeln!(s, "{PROG}: {what}");
}

fn ok(stdout: String, stderr: String, status: i32) -> Output {
    Output {
        stdout,
        stderr,
        status,
    }
}

/// True if `args` is a valid `-E` command line: the caller streams it with
/// [`EventStream`] instead of calling [`run`]. (An invalid one goes to
/// [`run`], which prints the error.)
pub fn is_event_stream(args: &[String]) -> bool {
    matches!(parse(args), Ok(r) if r.cmd == Cmd::Event)
}

/// Runs `conntrack` with `args` (without the program name) against
/// `table`, returning what conntrack-tools 1.4.7 would print and its exit
/// status. `-E` is not a one-shot command: use [`EventStream`].
pub fn run(table: &ConnTable, args: &[String], now: Timestamp) -> Output {
    run_with(table, args, now, CliOptions::default())
}

/// [`run`] with explicit print options.
pub fn run_with(table: &ConnTable, args: &[String], now: Timestamp, opts: CliOptions) -> Output {
    let req = match parse_warn(args) {
        (_, Ok(r)) => r,
        (w, Err(e)) => return ok(String::new(), w.concat() + &e.to_stderr(), e.status()),
    };
    execute(table, &req, now, opts)
}

/// Executes a parsed request (everything but `-E`).
pub fn execute(table: &ConnTable, req: &Request, now: Timestamp, opts: CliOptions) -> Output {
    let mut out = execute_inner(table, req, now, opts);
    if !req.warnings.is_empty() {
        out.stderr.insert_str(0, &req.warnings.concat());
    }
    out
}

fn execute_inner(table: &ConnTable, req: &Request, now: Timestamp, opts: CliOptions) -> Output {
    let mut out = String::new();
    let mut err = String::new();
    if req.status_invalid && req.cmd == Cmd::List {
        let e = CtError::OperationFailed("invalid parameters");
        return ok(out, e.to_stderr(), e.status());
    }
    let (head, foot) = if req.xml {
        (XML_HEADER, XML_FOOTER)
    } else {
        ("", "")
    };
    match req.cmd {
        Cmd::Help => {
            out.push_str(USAGE);
            ok(out, err, 0)
        }
        Cmd::Version => {
            let _ = writeln!(out, "{PROG}");
            ok(out, err, 0)
        }
        Cmd::List | Cmd::Get if req.table == CtTable::Expect => {
            summary(&mut err, "0 expectations have been shown.");
            ok(out, err, 0)
        }
        Cmd::List => {
            let mut n = 0;
            if req.table == CtTable::Conntrack {
                for c in table.list(now).iter().filter(|c| req.matches(c)) {
                    if n == 0 {
                        out.push_str(head);
                    }
                    out.push_str(&format_entry(c, now, req, opts));
                    out.push('\n');
                    n += 1;
                }
            }
            if n > 0 {
                out.push_str(foot);
            }
            summary(&mut err, &format!("{n} flow entries have been shown."));
            ok(out, err, 0)
        }
        Cmd::Get => {
            // An exact lookup (either direction), as the kernel's GET; the
            // kernel holds a reference while answering, hence `use=2`.
            let found = req
                .get_tuple()
                .filter(|_| !req.ipv6)
                .and_then(|t| table.lookup(&t, now))
                .map(|c| c.snapshot());
            match found {
                Some(c) => {
                    let line = format_entry(&c, now, req, opts);
                    let line = if req.xml {
                        line.replace("<use>1</use>", "<use>2</use>")
                    } else {
                        line.replacen(" use=1", " use=2", 1)
                    };
                    out.push_str(head);
                    out.push_str(&line);
                    out.push('\n');
                    summary(&mut err, "1 flow entries have been shown.");
                    ok(out, err, 0)
                }
                None => {
                    let e = CtError::OperationFailed("such conntrack doesn't exist");
                    ok(out, e.to_stderr(), e.status())
                }
            }
        }
        Cmd::Delete if req.table == CtTable::Expect => {
            summary(&mut err, "0 expectations have been deleted.");
            ok(out, err, EXIT_FAILURE)
        }
        Cmd::Delete => {
            let mut lines = Vec::new();
            let n = if req.table == CtTable::Conntrack {
                table.delete_where(|c| {
                    // An expired entry awaiting collection is not listed, so
                    // it is not "deleted" either (the sweep removes it).
                    let m = c.deadline > now && req.matches(c);
                    if m {
                        lines.push((c.id, format_entry(c, now, req, opts)));
                    }
                    m
                })
            } else {
                0
            };
            lines.sort_by_key(|l| l.0);
            // Deleted entries are printed without the XML header/footer.
            for (_, l) in lines.iter().take(n) {
                out.push_str(l);
                out.push('\n');
            }
            summary(&mut err, &format!("{n} flow entries have been deleted."));
            ok(out, err, if n == 0 { EXIT_FAILURE } else { 0 })
        }
        Cmd::Flush => {
            if req.table == CtTable::Expect {
                summary(&mut err, "expectation table has been emptied.");
            } else {
                if req.table == CtTable::Conntrack {
                    table.flush();
                }
                summary(&mut err, "connection tracking table has been emptied.");
            }
            ok(out, err, 0)
        }
        Cmd::Count => {
            let mut n = 0usize;
            if req.table == CtTable::Conntrack {
                table.for_each(now, |_| n += 1);
            }
            let _ = writeln!(out, "{n}");
            ok(out, err, 0)
        }
        Cmd::Stats if req.table == CtTable::Expect => {
            out.push_str("cpu=0   \texpect_new=0 expect_create=0 expect_delete=0 \n");
            ok(out, err, 0)
        }
        Cmd::Stats => {
            out.push_str(&format_stats(table));
            ok(out, err, 0)
        }
        Cmd::Update if req.table == CtTable::Conntrack => update(table, req, now, opts),
        Cmd::Create | Cmd::Update => {
            let e = CtError::OperationFailed("Operation not supported");
            ok(out, e.to_stderr(), e.status())
        }
        Cmd::Event => {
            let e = CtError::OperationFailed(
                "Operation not supported (events stream through the control socket)",
            );
            ok(out, e.to_stderr(), e.status())
        }
    }
}

/// `conntrack -U`: sets the mark of every entry passing the other filters
/// (`-m` is the new mark here, not a filter). Like 1.4.7, it prints only
/// the first updated entry (with `use=2`) and counts them all; nothing to
/// change is "0 flow entries have been updated." and exit 1. Changing the
/// status or the timeout is refused: the table has no API for either.
fn update(table: &ConnTable, req: &Request, now: Timestamp, opts: CliOptions) -> Output {
    let unsupported = || {
        let e = CtError::OperationFailed("Operation not supported");
        let msg = "Operation failed: Operation not supported\n";
        ok(String::new(), format!("{msg}{}", e.to_stderr()), e.status())
    };
    let mut filter = req.clone();
    filter.mark = None;
    let targets: Vec<ConnSnapshot> = table
        .list(now)
        .into_iter()
        .filter(|c| filter.matches(c))
        .collect();
    // The kernel refuses an update without an address in the request,
    // and tungate cannot change the status or the timeout.
    let no_addr = req.src.is_none()
        && req.dst.is_none()
        && req.reply_src.is_none()
        && req.reply_dst.is_none();
    let refused =
        no_addr || req.status != 0 || req.unreplied || req.status_invalid || req.timeout.is_some();
    if refused && !targets.is_empty() {
        return unsupported();
    }
    let mut n = 0;
    let mut first = None;
    if let Some((value, mask)) = req.mark.filter(|_| !refused) {
        for c in &targets {
            let Some(conn) = table.lookup(&c.orig, now) else {
                continue;
            };
            if conn.id() != c.id {
                continue;
            }
            conn.set_mark((conn.mark() & !mask) ^ value);
            n += 1;
            if first.is_none() {
                first = Some(conn.snapshot());
            }
        }
    }
    let mut out = String::new();
    if let Some(c) = first {
        let line = format_entry(&c, now, req, opts);
        out.push_str(&if req.xml {
            line.replace("<use>1</use>", "<use>2</use>")
        } else {
            line.replacen(" use=1", " use=2", 1)
        });
        out.push('\n');
    }
    let mut err = String::new();
    summary(&mut err, &format!("{n} flow entries have been updated."));
    ok(out, err, if n == 0 { EXIT_FAILURE } else { 0 })
}

/// `conntrack -S`: tungate's counters in the kernel's per-cpu line
/// (one line, `cpu=0`). `found`, `error`, `search_restart` and
/// `chaintoolong` have no counterpart and are 0; `drop` counts the packets
/// refused because the table was full (= `insert_failed`).
pub fn format_stats(table: &ConnTable) -> String {
    let s = table.stats();
    format!(
        "cpu={:<4}\tfound={} invalid={} insert={} insert_failed={} drop={} early_drop={} error={} search_restart={} clash_resolve={} chaintoolong={} \n",
        0,
        0,
        s.invalid,
        s.inserted,
        s.insert_failed,
        s.insert_failed,
        s.early_drop,
        0,
        0,
        s.clash_resolved,
        0
    )
}

/// A running `conntrack -E`: the parsed filters and how many events were
/// shown. The server owns the loop and its lifetime; see [`events`].
#[derive(Debug)]
pub struct EventStream {
    req: Request,
    opts: CliOptions,
    shown: u64,
    buf: Vec<CtEvent>,
}

impl EventStream {
    /// Parses the arguments. `Err` carries what the tool prints for a bad
    /// command line (or for a command other than `-E`).
    pub fn new(args: &[String], opts: CliOptions) -> Result<EventStream, Output> {
        let req = match parse_warn(args) {
            (_, Ok(r)) => r,
            (w, Err(e)) => return Err(ok(String::new(), w.concat() + &e.to_stderr(), e.status())),
        };
        if req.cmd != Cmd::Event {
            return Err(ok(
                String::new(),
                format!("{PROG}: events need -E\n"),
                EXIT_PARAMETER,
            ));
        }
        if req.xml {
            let e = CtError::OperationFailed("Operation not supported (tungate prints no XML)");
            return Err(ok(String::new(), e.to_stderr(), e.status()));
        }
        Ok(EventStream {
            req,
            opts,
            shown: 0,
            buf: Vec::new(),
        })
    }

    /// Drains the table's event queue once and emits the lines that pass
    /// the filters (with their newline). Returns false as soon as `emit`
    /// does (the client went away). Note that the table has one queue:
    /// two concurrent streams share its events.
    pub fn pump(
        &mut self,
        table: &ConnTable,
        now: Timestamp,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> bool {
        self.buf.clear();
        table.drain_events(&mut self.buf);
        self.emit_events(now, emit)
    }

    /// Formats and emits already drained events (for a server that fans
    /// one queue out to several streams).
    pub fn feed(
        &mut self,
        events: &[CtEvent],
        now: Timestamp,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> bool {
        self.buf.clear();
        self.buf.extend_from_slice(events);
        self.emit_events(now, emit)
    }

    fn emit_events(&mut self, now: Timestamp, emit: &mut dyn FnMut(&str) -> bool) -> bool {
        if self.req.table != CtTable::Conntrack {
            // `-E expect`: tungate has no expectations, nothing to say.
            return true;
        }
        for ev in &self.buf {
            if !self.req.wants_event(ev.kind) || !self.req.matches_event(&ev.conn) {
                continue;
            }
            let mut line = format_event(ev, now, &self.req, self.opts);
            line.push('\n');
            self.shown += 1;
            if !emit(&line) {
                return false;
            }
        }
        true
    }

    /// Warnings the tool prints on stderr before streaming (`-a`, ...).
    pub fn warnings(&self) -> String {
        self.req.warnings.concat()
    }

    /// Events shown so far.
    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// The line the tool prints on stderr when it stops.
    pub fn summary(&self) -> String {
        format!("{PROG}: {} flow events have been shown.\n", self.shown)
    }
}

impl Request {
    /// Filters for events: as for listings, except that an expired entry
    /// (a DESTROY) is still matched.
    fn matches_event(&self, c: &ConnSnapshot) -> bool {
        self.matches(c)
    }
}

/// Runs `conntrack -E`: polls the table every `poll`, emitting event lines
/// until `emit` returns false or `stop_after` events were shown. `now` is
/// the caller's clock (the control server passes
/// `Timestamp::now_monotonic`). Returns the exit output: the summary on
/// stderr, status 0 (or the parse error).
///
/// `emit` is only called when an event arrives, so a client that went
/// away is noticed at the next event; a server that must notice sooner
/// drives [`EventStream::pump`] itself and checks its socket in between.
/// Events are drained from the table's single queue: two concurrent
/// streams would split them (fan one drain out with [`EventStream::feed`]).
pub fn events(
    table: &ConnTable,
    args: &[String],
    emit: &mut dyn FnMut(&str) -> bool,
    stop_after: Option<usize>,
    poll: std::time::Duration,
    now: &mut dyn FnMut() -> Timestamp,
) -> Output {
    let mut st = match EventStream::new(args, CliOptions::default()) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // The table builds events only while someone listens.
    let _sub = table.subscribe_events();
    let limit = stop_after.map(|n| n as u64);
    let mut emitted: u64 = 0;
    while limit != Some(0) {
        let mut sink = |l: &str| {
            emitted += 1;
            emit(l) && limit.is_none_or(|lim| emitted < lim)
        };
        if !st.pump(table, now(), &mut sink) {
            break;
        }
        std::thread::sleep(poll);
    }
    ok(String::new(), st.warnings() + &st.summary(), 0)
}

#[cfg(test)]
mod tests {
    //! Expected lines are in the exact form conntrack 1.4.7 printed for the
    //! same flows created in a kernel (scratch network namespace).
    use super::*;
    use crate::conntrack::{classify, ConntrackConfig, Tracked};
    use crate::nat::{self, Manip, NatRange, Rng};
    use crate::wire::tcp::flags::{ACK, SYN};
    use crate::wire::testutil::{self, a};

    const T0: Timestamp = Timestamp::from_secs(100);
    const T1: Timestamp = Timestamp::from_secs(101);

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn ct(t: &ConnTable, s: &str) -> Output {
        run(t, &args(s), T1)
    }

    /// Feeds one packet through conntrack; a new flow is confirmed after
    /// `prep` (NAT, mark) has had its say.
    fn feed(
        t: &ConnTable,
        pkt: &[u8],
        now: Timestamp,
        prep: impl FnOnce(&mut crate::conntrack::NewConn),
    ) {
        let key = classify(pkt).unwrap();
        match t.track(&key, pkt.len() as u32, now) {
            Tracked::New(mut nc) => {
                prep(&mut nc);
                t.confirm(&nc, now).unwrap();
            }
            Tracked::Known { .. } | Tracked::Related(_) => {}
            Tracked::Invalid => panic!("invalid packet in fixture"),
        }
    }

    /// The five flows of the kernel run: a DNATed, assured TCP connection,
    /// an unreplied UDP flow with mark 42, a replied UDP flow, an answered
    /// ping and a TCP SYN without answer.
    fn fixture() -> ConnTable {
        let t = ConnTable::new(ConntrackConfig {
            event_queue: 256,
            ..Default::default()
        });
        let none = |_: &mut crate::conntrack::NewConn| {};
        // 1. 10.9.0.1:50236 -> 10.9.0.99:80, DNAT to 127.0.0.1:8080.
        feed(
            &t,
            &testutil::tcp("10.9.0.1", "10.9.0.99", 50236, 80, SYN, b""),
            T0,
            |nc| {
                let r = NatRange::addr(a("127.0.0.1")).with_ports(8080, 8080);
                nat::setup(&t, nc, &r, Manip::Dst, &mut Rng::new(1), T0).unwrap();
            },
        );
        feed(
            &t,
            &testutil::tcp("127.0.0.1", "10.9.0.1", 8080, 50236, SYN | ACK, b""),
            T0,
            none,
        );
        feed(
            &t,
            &testutil::tcp("10.9.0.1", "10.9.0.99", 50236, 80, ACK, b""),
            T0,
            none,
        );
        // 2. UDP without answer, connmark 42.
        feed(
            &t,
            &testutil::udp("10.9.0.1", "10.9.0.1", 56211, 4444, b"z"),
            T0,
            |nc| nc.mark = 42,
        );
        // 3. UDP with an answer.
        feed(
            &t,
            &testutil::udp("10.9.0.1", "10.9.0.1", 7778, 7777, b"a"),
            T0,
            none,
        );
        feed(
            &t,
            &testutil::udp("10.9.0.1", "10.9.0.1", 7777, 7778, b"b"),
            T0,
            none,
        );
        // 4. ping 127.0.0.1, id 4660, answered.
        feed(
            &t,
            &testutil::echo_request("127.0.0.1", "127.0.0.1", 4660, 1),
            T0,
            none,
        );
        feed(
            &t,
            &testutil::echo_reply("127.0.0.1", "127.0.0.1", 4660, 1),
            T0,
            none,
        );
        // 5. a SYN nobody answers.
        feed(
            &t,
            &testutil::tcp("10.9.0.1", "10.9.0.1", 54746, 9999, SYN, b""),
            T0,
            none,
        );
        t
    }

    const L_TCP: &str = "tcp      6 431999 ESTABLISHED src=10.9.0.1 dst=10.9.0.99 sport=50236 dport=80 src=127.0.0.1 dst=10.9.0.1 sport=8080 dport=50236 [ASSURED] mark=0 use=1";
    const L_UDP42: &str = "udp      17 29 src=10.9.0.1 dst=10.9.0.1 sport=56211 dport=4444 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=4444 dport=56211 mark=42 use=1";
    const L_UDP: &str = "udp      17 29 src=10.9.0.1 dst=10.9.0.1 sport=7778 dport=7777 src=10.9.0.1 dst=10.9.0.1 sport=7777 dport=7778 mark=0 use=1";
    const L_ICMP: &str = "icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=4660 src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=4660 mark=0 use=1";
    const L_SYN: &str = "tcp      6 119 SYN_SENT src=10.9.0.1 dst=10.9.0.1 sport=54746 dport=9999 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=9999 dport=54746 mark=0 use=1";

    fn lines(ls: &[&str]) -> String {
        ls.iter().map(|l| format!("{l}\n")).collect()
    }

    fn shown(n: usize) -> String {
        format!("conntrack v1.4.7 (conntrack-tools): {n} flow entries have been shown.\n")
    }

    #[test]
    fn list_prints_the_real_tools_lines_and_summary() {
        let t = fixture();
        let o = ct(&t, "-L");
        assert_eq!(o.stdout, lines(&[L_TCP, L_UDP42, L_UDP, L_ICMP, L_SYN]));
        assert_eq!(o.stderr, shown(5));
        assert_eq!(o.status, 0);
        // Long form, and the table name as operand.
        assert_eq!(ct(&t, "--dump conntrack").stdout, o.stdout);
        // Time passes: the timeout column counts down, expired entries go.
        let later = run(&t, &args("-L -p udp"), Timestamp::from_secs(125));
        assert_eq!(
            later.stdout,
            lines(&[
                &L_UDP42.replace(" 29 ", " 5 "),
                &L_UDP.replace(" 29 ", " 5 ")
            ])
        );
        let gone = run(&t, &args("-L -p udp"), Timestamp::from_secs(131));
        assert_eq!((gone.stdout.as_str(), gone.stderr), ("", shown(0)));
    }

    #[test]
    fn extended_and_id_output() {
        let t = fixture();
        let o = ct(&t, "-L -o extended -p icmp");
        assert_eq!(o.stdout, format!("ipv4     2 {L_ICMP}\n"));
        let id = t.list(T1).iter().find(|c| c.orig.proto == 1).unwrap().id;
        let o = ct(&t, "-L -o id,extended -p icmp");
        assert_eq!(o.stdout, format!("ipv4     2 {L_ICMP} id={id}\n"));
        assert_eq!(ct(&t, "-L -o extended,id -p icmp").stdout, o.stdout);
        // Options without an effect here are accepted, as by the tool.
        assert_eq!(
            ct(&t, "-L -o timestamp,ktimestamp,userspace -p icmp").stdout,
            lines(&[L_ICMP])
        );
    }

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

    #[test]
    fn delete_prints_removes_and_fails_when_nothing_matched() {
        let t = fixture();
        let o = ct(&t, "-D -d 10.9.0.99");
        assert_eq!(o.stdout, lines(&[L_TCP]));
        assert_eq!(
            o.stderr,
            "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n"
        );
        assert_eq!(o.status, 0);
        // Both tuples of the connection are gone from the table.
        let orig = Tuple::new(a("10.9.0.1"), a("10.9.0.99"), PROTO_TCP, 50236, 80);
        let reply = Tuple::new(a("127.0.0.1"), a("10.9.0.1"), PROTO_TCP, 8080, 50236);
        assert!(t.lookup(&orig, T1).is_none());
        assert!(t.lookup(&reply, T1).is_none());
        assert_eq!(ct(&t, "-C").stdout, "4\n");
        // Nothing left to match: the tool exits 1.
        let again = ct(&t, "-D -d 10.9.0.99");
        assert_eq!(again.stdout, "");
        assert_eq!(
            again.stderr,
            "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"
        );
        assert_eq!(again.status, 1);
        // Filters and output options work as for -L.
        let o = ct(&t, "-D -p udp --dport 4444 -o extended");
        assert_eq!(o.stdout, format!("ipv4     2 {L_UDP42}\n"));
        let o = ct(&t, "-D -m 0");
        assert_eq!(o.stdout, lines(&[L_UDP, L_ICMP, L_SYN]));
        assert_eq!(o.status, 0);
        assert!(t.list(T1).is_empty());
        assert_eq!(t.stats().deleted, 5);
    }

    #[test]
    fn delete_with_a_status_naming_no_bit_deletes_everything() {
        let t = fixture();
        let o = ct(&t, "-D -u SRC_NAT");
        assert_eq!(o.stdout, lines(&[L_TCP, L_UDP42, L_UDP, L_ICMP, L_SYN]));
        assert_eq!(
            o.stderr,
            "WARNING: ignoring SRC_NAT, use --src-nat instead\nconntrack v1.4.7 (conntrack-tools): 5 flow entries have been deleted.\n"
        );
        assert!(t.is_empty());
    }

    #[test]
    fn flush_count_and_stats() {
        let t = fixture();
        assert_eq!(
            ct(&t, "-C"),
            Output {
                stdout: "5\n".into(),
                stderr: String::new(),
                status: 0
            }
        );
        assert_eq!(ct(&t, "--count conntrack").stdout, "5\n");
        let s = ct(&t, "-S");
        assert_eq!(
            s.stdout,
            "cpu=0   \tfound=0 invalid=0 insert=5 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n"
        );
        let f = ct(&t, "-F");
        assert_eq!(
            (f.stdout.as_str(), f.stderr.as_str(), f.status),
            (
                "",
                "conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied.\n",
                0
            )
        );
        assert!(t.is_empty());
        assert_eq!(ct(&t, "-C").stdout, "0\n");
        assert_eq!(ct(&t, "-L").stderr, shown(0));
        // The expectation table is always empty.
        assert_eq!(
            ct(&t, "-L expect").stderr,
            "conntrack v1.4.7 (conntrack-tools): 0 expectations have been shown.\n"
        );
        assert_eq!(
            ct(&t, "-F expect").stderr,
            "conntrack v1.4.7 (conntrack-tools): expectation table has been emptied.\n"
        );
    }

    #[test]
    fn update_sets_the_mark_of_matching_entries() {
        let t = fixture();
        let o = ct(&t, "-U -s 10.9.0.1 -p udp --dport 4444 -m 0x10/0xf0");
        // 42 = 0x2a: (0x2a & !0xf0) ^ 0x10 = 0x1a.
        assert_eq!(
            o.stdout,
            lines(&[&L_UDP42.replace("mark=42 use=1", "mark=26 use=2")])
        );
        assert_eq!(
            o.stderr,
            "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been updated.\n"
        );
        assert_eq!(
            ct(&t, "-L -m 26").stdout,
            lines(&[L_UDP42.replace("mark=42", "mark=26").as_str()])
        );
        // -m is the new value, not a filter: all four 10.9.0.1 flows change,
        // the first one is printed.
        let o = ct(&t, "-U -s 10.9.0.1 -m 7");
        assert_eq!(
            o.stdout,
            lines(&[&L_TCP.replace("mark=0 use=1", "mark=7 use=2")])
        );
        assert!(o.stderr.contains(" 4 flow entries have been updated."));
        assert_eq!(ct(&t, "-L -m 7").stderr, shown(4));
        // Nothing matched or nothing to set: exit 1.
        for cmd in ["-U -s 10.9.0.5 -m 1", "-U -s 10.9.0.1"] {
            let o = ct(&t, cmd);
            assert_eq!(o.status, 1, "{cmd}");
            assert!(
                o.stderr.contains(" 0 flow entries have been updated."),
                "{cmd}"
            );
        }
        // No address in the request, status or timeout changes: refused
        // (when something matched).
        for cmd in [
            "-U -p udp -m 3/0x1",
            "-U -m 5",
            "-U -s 10.9.0.1 -m 5 -u ASSURED",
            "-U -s 10.9.0.1 -t 100",
        ] {
            let o = ct(&t, cmd);
            assert_eq!(
                (o.stdout.as_str(), o.stderr.as_str(), o.status),
                ("", "Operation failed: Operation not supported\nconntrack v1.4.7 (conntrack-tools): Operation failed: Operation not supported\n", 1),
                "{cmd}"
            );
        }
        assert_eq!(
            ct(&t, "-U -p 47 -m 5").stderr,
            "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been updated.\n"
        );
        assert_eq!(ct(&t, "-L -m 7").stderr, shown(4));
    }

    fn err(msg: &str) -> String {
        format!(
            "conntrack v1.4.7 (conntrack-tools): {msg}\nTry `conntrack -h' or 'conntrack --help' for more information.\n"
        )
    }

    #[test]
    fn bad_command_lines_as_the_real_tool() {
        let t = fixture();
        let cases: &[(&str, &str)] = &[
            ("-L -s foo", "Invalid IP address `foo'"),
            ("-L -d 10.1.2.300", "Invalid IP address `10.1.2.300'"),
            ("-L -s", "option `-s' requires an argument"),
            ("-L -p tcp --sport", "option `--sport' requires an argument"),
            ("-X", "unknown option `-X'"),
            ("--bogus", "unknown option `--bogus'"),
            ("-L --sport 7778", "unknown option `--sport'"),
            ("-L --state ESTABLISHED -p tcp", "unknown option `--state'"),
            ("-L -p udp --state ESTABLISHED", "unknown option `--state'"),
            ("-L --s 1.1.1.1", "unknown option `--s'"),
            ("-L --sr 1.1.1.1", "unknown option `--sr'"),
            ("-L -p foo", "`foo' unsupported protocol"),
            ("-L -p tcp --state FOO", "unknown TCP state `FOO'"),
            (
                "-L -p tcp --state established",
                "unknown TCP state `established'",
            ),
            ("-L -u FOO", "Bad parameter `FOO'"),
            ("-L -u SEEN_REPLY,", "Bad parameter `'"),
            ("-L -o foo", "Bad parameter `foo'"),
            ("-L -o extended,foo", "Bad parameter `foo'"),
            ("-E -e FOO", "Bad parameter `FOO'"),
            ("-L -f inet", "`inet' unsupported protocol"),
            ("-L -f ipv4 -d ::1", "mismatched address family"),
            ("-L -L", "Invalid commands combination"),
            ("-L -D", "Invalid commands combination"),
            ("-L --dump", "Invalid commands combination"),
            ("-S -S", "Invalid commands combination"),
            ("-F -s 1.2.3.4", "Illegal option `--src' with this command"),
            (
                "-F -p tcp -s 1.2.3.4",
                "Illegal option `--src' with this command",
            ),
            ("-C -s 1.2.3.4", "Illegal option `--src' with this command"),
            ("-S -p tcp", "Illegal option `--protonum' with this command"),
            (
                "-L -e NEW",
                "Illegal option `--event-mask' with this command",
            ),
            ("-L -t 10", "Illegal option `--timeout' with this command"),
            ("-D -j", "Illegal option `--any-nat' with this command"),
            ("-j", "Illegal option `--any-nat' with this command"),
            ("-p tcp", "Illegal option `--protonum' with this command"),
            (
                "-G -s 1.2.3.4",
                "You need to supply the `--protonum' option for this command",
            ),
            ("-L extra", "unknown type `extra'"),
            ("-L -n :5000", "Invalid IP address `'"),
            (
                "-L --mask-src 255.0.0.0",
                "Can't use --mask-src without --src",
            ),
            (
                "-L -r 10.0.0.0/8",
                "CIDR notation unavailable for `--reply-src'",
            ),
            (
                "-D dying",
                "Can't do that command with tables `dying' and `unconfirmed'",
            ),
            (
                "-V unconfirmed",
                "Can't do that command with tables `dying' and `unconfirmed'",
            ),
            ("-S foo", "unknown type `foo'"),
            ("-h 0", "unknown type `0'"),
            (
                "-L expect -s 1.1.1.1",
                "Illegal option `--src' with this command",
            ),
            ("-L -u !", "Bad parameter `'"),
            (
                "-L -s 1.1.1.1 --mask-src 255.0.0.0/8",
                "CIDR notation unavailable for `--mask-src'",
            ),
            (
                "-L -n 10.0.0.0/8",
                "CIDR notation unavailable for `--src-nat'",
            ),
            (
                "-L -j -g",
                "cannot specify `--src-nat' or `--dst-nat' with `--any-nat'",
            ),
            (
                "-L -n -j",
                "cannot specify `--src-nat' or `--dst-nat' with `--any-nat'",
            ),
            ("-L -z -p tcp", "Can't use -z with filtering parameters"),
            ("-L -s 1.1.1.1 -z", "Can't use -z with filtering parameters"),
            ("-L -n ::1 -f ipv4", "mismatched address family"),
            (
                "-L --mask-dst 255.0.0.0 -s 1.1.1.1",
                "Can't use --mask-dst without --dst",
            ),
            ("-L -s 10.0.0.0 --mask-src foo", "Invalid IP address `foo'"),
            ("-L -s 10.0.0.0 --mask-src ::1", "mismatched address family"),
            ("-L -s 10.1.1.1/33", "Invalid netmask"),
            ("-L -s 10.1.1.1/x", "Invalid netmask"),
            ("-L -s 10.1.1.1/255.0.0.0", "Invalid netmask"),
            ("-L -n 1.2.3.4:abc", "Invalid port `abc'"),
            ("-L -n 1.2.3.4:1:2", "Invalid IP address `1.2.3.4:1:2'"),
            (
                "-L -p tcp --tuple-port-src 1",
                "Illegal option `--tuple-port-src' with this command",
            ),
        ];
        for (cmd, msg) in cases {
            let o = ct(&t, cmd);
            assert_eq!(o.stderr, err(msg), "{cmd}");
            assert_eq!(o.stdout, "", "{cmd}");
            assert_eq!(o.status, 2, "{cmd}");
        }
        // Refused by the "kernel": exit 1, no hint line.
        let o = ct(&t, "-L -u UNSET");
        assert_eq!(
            (o.stderr.as_str(), o.status),
            (
                "conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters\n",
                1
            )
        );
        // -a is deprecated: a warning, also before an error.
        let o = ct(&t, "-a 1.2.3.4 -L -s foo");
        assert_eq!(
            o.stderr,
            format!(
                "WARNING: ignoring -a, deprecated option.\n{}",
                err("Invalid IP address `foo'")
            )
        );
        let o = ct(&t, "-L -a 1.2.3.4 -p icmp");
        assert_eq!(
            (o.stdout, o.stderr),
            (
                lines(&[L_ICMP]),
                format!("WARNING: ignoring -a, deprecated option.\n{}", shown(1))
            )
        );
        assert_eq!(
            ct(&t, "-S expect").stdout,
            "cpu=0   \texpect_new=0 expect_create=0 expect_delete=0 \n"
        );
        assert_eq!(ct(&t, "-L dying").stderr, shown(0));
        // SRC_NAT/DST_NAT are not status filters: a warning, then as if absent.
        let o = ct(&t, "-L -u SRC_NAT,ASSURED");
        assert_eq!(o.stdout, lines(&[L_TCP]));
        assert_eq!(
            o.stderr,
            format!(
                "WARNING: ignoring SRC_NAT, use --src-nat instead\n{}",
                shown(1)
            )
        );
        let o = ct(&t, "-L -u D");
        assert_eq!(
            (o.stderr.as_str(), o.status),
            ("WARNING: ignoring DST_NAT, use --dst-nat instead\nconntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters\n", 1)
        );
        // UNSET adds no bit.
        assert_eq!(ct(&t, "-L -u UNSET,ASSURED").stdout, lines(&[L_TCP]));
        // Nothing was changed by any of them.
        assert_eq!(t.list(T1).len(), 5);
    }

    #[test]
    fn help_version_and_get() {
        let t = fixture();
        let h = ct(&t, "-h");
        assert!(h.stdout.starts_with(
            "Command line interface for the connection tracking system. Version 1.4.7\nUsage: conntrack [commands] [options]\n"
        ));
        assert_eq!(h.status, 0);
        assert_eq!(run(&t, &[], T1).stdout, h.stdout);
        assert_eq!(ct(&t, "-V").stdout, "conntrack v1.4.7 (conntrack-tools)\n");
        // -G looks the tuple up (either direction); the kernel holds a
        // reference while answering, so it says use=2.
        let g = ct(
            &t,
            "-G -p udp -s 10.9.0.1 -d 10.9.0.1 --sport 7778 --dport 7777",
        );
        assert_eq!(
            (g.stdout, g.stderr),
            (lines(&[&L_UDP.replace("use=1", "use=2")]), shown(1))
        );
        let g = ct(
            &t,
            "-G -p tcp -s 127.0.0.1 -d 10.9.0.1 --sport 8080 --dport 50236",
        );
        assert_eq!(g.stdout, lines(&[&L_TCP.replace("use=1", "use=2")]));
        for (cmd, msg) in [
            (
                "-G -p udp -s 10.9.0.1",
                "you have to specify `--src' and `--dst'",
            ),
            (
                "-G -p udp -r 10.9.0.1",
                "you have to specify `--reply-src' and `--reply-dst'",
            ),
            (
                "-G -p udp -s 10.9.0.1 -d 10.9.0.1 --dport 7777",
                "you have to specify `--sport' and `--dport'",
            ),
            (
                "-G -p udp -s 10.9.0.1 -d 10.9.0.1 -m 5",
                "Illegal option `--mark' with this command",
            ),
        ] {
            assert_eq!(ct(&t, cmd).stderr, err(msg), "{cmd}");
        }
        let g = ct(
            &t,
            "-G -p udp -s 10.9.0.2 -d 10.9.0.1 --sport 7778 --dport 7777",
        );
        assert_eq!(g.status, 1);
        assert_eq!(
            g.stderr,
            "conntrack v1.4.7 (conntrack-tools): Operation failed: such conntrack doesn't exist\n"
        );
    }

    /// Arbitrary command lines never panic and always end in one of the
    /// tool's statuses, with a message when they fail.
    #[test]
    fn arbitrary_command_lines_do_not_panic() {
        const POOL: &[&str] = &[
            "-L",
            "-D",
            "-E",
            "-G",
            "-U",
            "-C",
            "-F",
            "-S",
            "-h",
            "-V",
            "-I",
            "-s",
            "-d",
            "-r",
            "-q",
            "1.2.3.4",
            "10.9.0.1",
            "::1",
            "-p",
            "tcp",
            "udp",
            "icmp",
            "47",
            "--sport",
            "--dport",
            "--state",
            "ESTABLISHED",
            "--icmp-id",
            "80",
            "-m",
            "0x1/0x",
            "42/",
            "-u",
            "ASSURED,",
            "UNSET",
            "S",
            "-o",
            "xml,id",
            "extended",
            "-n",
            "-g",
            "-j",
            ":",
            "1:2:3",
            "1.2.3.4:",
            "--",
            "-",
            "expect",
            "--src=",
            "-Lz",
            "-s1",
            "-\u{f1}",
            "\u{e9}",
            "",
            "--orig-src=1.1.1.1",
            "-e",
            "NEW,",
            "-f",
            "ipv6",
            "-w",
            "-t",
            "99999999999999999999",
            "--s",
            "--sp",
            "-nfoo",
            "--src-nat=1.1.1.1:0",
            "-Sx",
            "-c",
            "-l",
            "a,b",
            "-b",
            "--reply-port-src",
            "0x",
            "010.1",
            "1.2.3.4/33",
            "1.2.3.4/-1",
            "-zz",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5000 {
            let t = fixture();
            let n = (next() % 8) as usize;
            let argv: Vec<String> = (0..n)
                .map(|_| POOL[(next() % POOL.len() as u64) as usize].to_string())
                .collect();
            let o = run(&t, &argv, T1);
            assert!(matches!(o.status, 0..=2), "{argv:?}: {o:?}");
            if o.status == 2 {
                assert!(o.stderr.contains("Try `conntrack -h'"), "{argv:?}: {o:?}");
            }
            if let Ok(mut st) = EventStream::new(&argv, CliOptions::default()) {
                st.pump(&t, T1, &mut |_| true);
            }
        }
    }

    #[test]
    fn address_parsing_is_inet_aton() {
        assert_eq!(inet_aton("1.2.3"), Some(a("1.2.0.3")));
        assert_eq!(inet_aton("10"), Some(a("0.0.0.10")));
        assert_eq!(inet_aton("0x7f.1"), Some(a("127.0.0.1")));
        assert_eq!(inet_aton("010.0.0.1"), Some(a("8.0.0.1")));
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("1..2"), None);
        assert_eq!(inet_aton("foo"), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(strtoul("0x2a/0xf8"), (42, "/0xf8"));
        assert_eq!(strtoul("foo"), (0, "foo"));
        assert_eq!(atoi_u16("99999"), 34463);
    }

    fn ev_args(s: &str) -> Vec<String> {
        args(s)
    }

    #[test]
    fn events_stream_in_the_real_format() {
        let t = ConnTable::new(ConntrackConfig {
            event_queue: 256,
            ..Default::default()
        });
        let mut all = EventStream::new(&ev_args("-E"), CliOptions::default()).unwrap();
        let mut nd = EventStream::new(
            &ev_args("-E -e NEW,DESTROY -o extended,id -p tcp"),
            CliOptions::default(),
        )
        .unwrap();
        let none = |_: &mut crate::conntrack::NewConn| {};
        feed(
            &t,
            &testutil::udp("10.9.0.1", "10.9.0.1", 7788, 7787, b"a"),
            T0,
            none,
        );
        feed(
            &t,
            &testutil::udp("10.9.0.1", "10.9.0.1", 7787, 7788, b"b"),
            T0,
            none,
        );
        feed(
            &t,
            &testutil::tcp("127.0.0.1", "127.0.0.1", 41420, 8090, SYN, b""),
            T0,
            none,
        );
        feed(
            &t,
            &testutil::tcp("127.0.0.1", "127.0.0.1", 8090, 41420, SYN | ACK, b""),
            T0,
            none,
        );
        feed(
            &t,
            &testutil::tcp("127.0.0.1", "127.0.0.1", 41420, 8090, ACK, b""),
            T0,
            none,
        );
        let o = ct(&t, "-D -p udp --dport 7787");
        assert_eq!(o.status, 0);
        let mut evs = Vec::new();
        t.drain_events(&mut evs);
        let mut got = String::new();
        assert!(all.feed(&evs, T0, &mut |l| {
            got.push_str(l);
            true
        }));
        assert_eq!(
            got,
            "    [NEW] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=7788 dport=7787 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=7787 dport=7788
 [UPDATE] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=7788 dport=7787 src=10.9.0.1 dst=10.9.0.1 sport=7787 dport=7788
    [NEW] tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420
 [UPDATE] tcp      6 60 SYN_RECV src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420
 [UPDATE] tcp      6 432000 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420 [ASSURED]
[DESTROY] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=7788 dport=7787 src=10.9.0.1 dst=10.9.0.1 sport=7787 dport=7788
"
        );
        assert_eq!(all.shown(), 6);
        assert_eq!(
            all.summary(),
            "conntrack v1.4.7 (conntrack-tools): 6 flow events have been shown.\n"
        );
        let mut got = String::new();
        nd.feed(&evs, T0, &mut |l| {
            got.push_str(l);
            true
        });
        let id = t.list(T0)[0].id;
        assert_eq!(
            got,
            format!("    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420 id={id}\n")
        );
        // A sink that refuses stops the stream at once.
        let mut n = 0;
        assert!(!all.feed(&evs, T0, &mut |_| {
            n += 1;
            false
        }));
        assert_eq!(n, 1);
    }

    #[test]
    fn event_commands_are_recognised() {
        assert!(is_event_stream(&args("-E")));
        assert!(is_event_stream(&args("--event -e NEW -p tcp")));
        assert!(!is_event_stream(&args("-E -e FOO")));
        assert!(!is_event_stream(&args("-L")));
        let st = EventStream::new(&args("-E -a x"), CliOptions::default()).unwrap();
        assert_eq!(st.warnings(), "WARNING: ignoring -a, deprecated option.\n");
        let e = EventStream::new(&args("-L"), CliOptions::default()).unwrap_err();
        assert_eq!(e.status, 2);
        // Without the event queue nothing arrives, and nothing breaks.
        let t = fixture_without_events();
        let mut st = EventStream::new(&args("-E"), CliOptions::default()).unwrap();
        assert!(st.pump(&t, T1, &mut |_| panic!("no events expected")));
    }

    fn fixture_without_events() -> ConnTable {
        let t = ConnTable::new(ConntrackConfig::default());
        feed(
            &t,
            &testutil::udp("10.0.0.1", "10.0.0.2", 1, 2, b"x"),
            T0,
            |_| {},
        );
        t
    }

    #[test]
    fn destroy_of_an_expired_entry_has_no_timeout_and_shows_a_mark() {
        let t = ConnTable::new(ConntrackConfig {
            event_queue: 16,
            ..Default::default()
        });
        feed(
            &t,
            &testutil::udp("10.9.0.1", "10.9.0.1", 58295, 4545, b"z"),
            T0,
            |nc| nc.mark = 7,
        );
        let mut st = EventStream::new(&args("-E"), CliOptions::default()).unwrap();
        let mut got = String::new();
        // The stream pumps when the entry is created, and after it expired.
        st.pump(&t, T0, &mut |l| {
            got.push_str(l);
            true
        });
        let later = Timestamp::from_secs(200);
        assert_eq!(t.gc(later, 1024), 1);
        st.pump(&t, later, &mut |l| {
            got.push_str(l);
            true
        });
        assert_eq!(
            got,
            "    [NEW] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=58295 dport=4545 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=4545 dport=58295 mark=7
[DESTROY] udp      17 src=10.9.0.1 dst=10.9.0.1 sport=58295 dport=4545 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=4545 dport=58295 mark=7
"
        );
    }

    #[test]
    fn events_loop_stops_after_n_and_on_parse_error() {
        let t = ConnTable::new(ConntrackConfig {
            event_queue: 16,
            ..Default::default()
        });
        for p in 1..=3u16 {
            feed(
                &t,
                &testutil::udp("10.0.0.1", "10.0.0.2", p, 53, b"q"),
                T0,
                |_| {},
            );
        }
        let mut got = Vec::new();
        let o = events(
            &t,
            &args("-E -e NEW"),
            &mut |l| {
                got.push(l.to_string());
                true
            },
            Some(2),
            std::time::Duration::from_millis(1),
            &mut || T0,
        );
        assert_eq!(got.len(), 2);
        assert!(got[1].contains("sport=2 dport=53"));
        assert_eq!(
            (o.stderr.as_str(), o.status),
            (
                "conntrack v1.4.7 (conntrack-tools): 2 flow events have been shown.\n",
                0
            )
        );
        let bad = events(
            &t,
            &args("-E -s nope"),
            &mut |_| true,
            None,
            std::time::Duration::ZERO,
            &mut || T0,
        );
        assert_eq!(
            (bad.stderr, bad.status),
            (err("Invalid IP address `nope'"), 2)
        );
    }
}
