//! conntrack 1.4.7's option table: commands, option bits and their legality
//! per command, long and short option names with how each takes its argument.

/// Commands, in the order of conntrack's command bits (`List` until the
/// command line names one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cmd {
    #[default]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CtTable {
    #[default]
    Conntrack,
    Expect,
    Dying,
    Unconfirmed,
}

/// Option bits, in conntrack's order (the order legality errors follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Opt {
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

pub(super) const OPT_NAMES: [&str; 29] = [
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

/// `commands_v_options` of conntrack 1.4.7, a row per [`Cmd`] in its order
/// (`LEGAL[cmd as usize]`), a column per [`Opt`]: 0 illegal, 1 required,
/// 2 optional, 3 decided by the command.
#[rustfmt::skip]
pub(super) const LEGAL: [[u8; 29]; 11] = [
    //             s  d  r  q  p  t  u  z  e  [  ]  {  }  a  m  i  f  n  g  o  c  b  j  w  l  <  >  (  )
    /* list    */ [2, 2, 2, 2, 2, 0, 2, 2, 0, 0, 0, 2, 2, 0, 2, 0, 2, 2, 2, 2, 2, 0, 2, 2, 2, 0, 0, 2, 2],
    /* create  */ [3, 3, 3, 3, 1, 1, 2, 0, 0, 0, 0, 0, 0, 2, 2, 0, 0, 2, 2, 0, 0, 0, 0, 2, 0, 2, 0, 2, 2],
    /* update  */ [2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 0, 0],
    /* delete  */ [2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 0, 2, 2, 2, 2, 2, 2, 0, 0, 0, 2, 2, 0, 0, 2, 2],
    /* get     */ [3, 3, 3, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0],
    /* flush   */ [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    /* event   */ [2, 2, 2, 2, 2, 0, 0, 0, 2, 0, 0, 2, 2, 0, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 2, 2],
    /* version */ [0; 29],
    /* help    */ [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    /* count   */ [0; 29],
    /* stats   */ [0; 29],
];

/// The same for the expectation table (`-L expect`: only `-i -f -o`;
/// `-D/-G expect` need `-s -d -p`).
pub(super) const EXP_LIST: [u8; 29] = {
    let mut a = [0; 29];
    a[Opt::Id as usize] = 2;
    a[Opt::Family as usize] = 2;
    a[Opt::Output as usize] = 2;
    a
};
pub(super) const EXP_DELETE: [u8; 29] = {
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
pub(super) enum Arg {
    No,
    Required,
    /// Attached (`-n1.2.3.4`, `--src-nat=...`), or the next word when it
    /// does not start with `-` (what conntrack does by hand for -n/-g/-j).
    Optional,
}

/// What an option token stands for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Key {
    Cmd(Cmd),
    Opt(Opt),
    /// A protocol-specific option (after `-p`).
    Proto(ProtoOpt),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ProtoOpt {
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

pub(super) const LONG_OPTS: &[(&str, Arg, Key)] = &[
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

/// A protocol-specific option: each takes an argument.
const fn proto(name: &'static str, opt: ProtoOpt) -> (&'static str, Arg, Key) {
    (name, Arg::Required, Key::Proto(opt))
}

pub(super) const PORT_OPTS: &[(&str, Arg, Key)] = &[
    proto("orig-port-src", ProtoOpt::OrigPortSrc),
    proto("orig-port-dst", ProtoOpt::OrigPortDst),
    proto("reply-port-src", ProtoOpt::ReplyPortSrc),
    proto("reply-port-dst", ProtoOpt::ReplyPortDst),
    proto("mask-port-src", ProtoOpt::MaskPortSrc),
    proto("mask-port-dst", ProtoOpt::MaskPortDst),
    proto("tuple-port-src", ProtoOpt::TuplePortSrc),
    proto("tuple-port-dst", ProtoOpt::TuplePortDst),
    proto("sport", ProtoOpt::OrigPortSrc),
    proto("dport", ProtoOpt::OrigPortDst),
];

pub(super) const TCP_STATE_OPT: (&str, Arg, Key) = proto("state", ProtoOpt::State);

pub(super) const ICMP_OPTS: &[(&str, Arg, Key)] = &[
    proto("icmp-type", ProtoOpt::IcmpType),
    proto("icmp-code", ProtoOpt::IcmpCode),
    proto("icmp-id", ProtoOpt::IcmpId),
];

pub(super) fn short_opt(c: char) -> Option<(Arg, Key)> {
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
