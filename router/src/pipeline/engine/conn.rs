//! The connection a packet belongs to during its traversal ([`Conn`]), what
//! rules see of it (state bits, `CtInfo`), the NAT binding a new
//! connection carries until it is confirmed, and the per-packet [`Flow`].

use super::*;

pub(super) fn pack(t: &Tuple) -> (u32, u32, u16, u16) {
    (
        t.src as u32,
        t.dst as u32,
        t.sport,
        if t.proto == conntrack::PROTO_ICMP {
            0
        } else {
            t.dport
        },
    )
}

pub(super) fn nat_bits(s: Status) -> u16 {
    let mut b = 0;
    if s.src_nat() {
        b |= CtStateSet::SNAT.0;
    }
    if s.dst_nat() {
        b |= CtStateSet::DNAT.0;
    }
    b
}

pub(super) fn cs_bits(state: CtState) -> CtStateSet {
    match state {
        CtState::New => CtStateSet::NEW,
        CtState::Established => CtStateSet::ESTABLISHED,
        CtState::Related => CtStateSet::RELATED,
        CtState::Invalid => CtStateSet::INVALID,
        CtState::Untracked => CtStateSet::UNTRACKED,
    }
}

pub(super) fn known_info(conn: &ConnRef<'_>, state: CtState, now: Timestamp) -> CtInfo {
    let st = cs_bits(state);
    let status = conn.status();
    CtInfo {
        state: CtStateSet(st.0 | nat_bits(status)),
        status: status.0,
        proto: conn.orig().proto,
        orig: pack(&conn.orig()),
        reply: pack(&conn.reply()),
        dir_reply: conn.dir() == Dir::Reply,
        expires: conn.deadline().as_secs().saturating_sub(now.as_secs()) as u32,
    }
}

impl Conn<'_> {
    /// The state bits rules test (`--ctstate`, `--state`), without the
    /// tuples; `None` for no connection (INVALID).
    pub(super) fn state_bits(&self) -> Option<CtStateSet> {
        Some(match self {
            Conn::None { untracked: true } => CtStateSet::UNTRACKED,
            Conn::None { untracked: false } => return None,
            Conn::New(nc) => CtStateSet(CtStateSet::NEW.0 | nat_bits(nc.status)),
            Conn::Known { conn, state } => CtStateSet(cs_bits(*state).0 | nat_bits(conn.status())),
            Conn::Related(conn) => CtStateSet(CtStateSet::RELATED.0 | nat_bits(conn.status())),
        })
    }

    pub(super) fn info(&self, now: Timestamp) -> Option<CtInfo> {
        match self {
            Conn::None { untracked: true } => Some(CtInfo {
                state: CtStateSet::UNTRACKED,
                ..CtInfo::default()
            }),
            Conn::None { untracked: false } => None,
            Conn::New(nc) => Some(CtInfo {
                state: CtStateSet(CtStateSet::NEW.0 | nat_bits(nc.status)),
                status: nc.status.0,
                proto: nc.orig.proto,
                orig: pack(&nc.orig),
                reply: pack(&nc.reply),
                dir_reply: false,
                expires: 0,
            }),
            Conn::Known { conn, state } => Some(known_info(conn, *state, now)),
            Conn::Related(conn) => Some(known_info(conn, CtState::Related, now)),
        }
    }

    pub(super) fn mark(&self) -> u32 {
        match self {
            Conn::New(nc) => nc.mark,
            Conn::Known { conn, .. } | Conn::Related(conn) => conn.mark(),
            Conn::None { .. } => 0,
        }
    }

    pub(super) fn set_mark(&mut self, m: u32) {
        match self {
            Conn::New(nc) => nc.mark = m,
            Conn::Known { conn, .. } | Conn::Related(conn) => conn.set_mark(m),
            Conn::None { .. } => {}
        }
    }

    /// NAT binding for packets the gateway sends in answer to this one (in
    /// the opposite direction), as `nf_ct_attach` gives them.
    pub(super) fn answer(&self) -> Option<Binding> {
        match self {
            Conn::New(nc) => Some(Binding {
                target: nc.orig.inverse(),
                status: nc.status,
                dir: Dir::Reply,
            }),
            Conn::Known { conn, .. } | Conn::Related(conn) => Some(Binding {
                target: conn.tuple(conn.dir()).inverse(),
                status: conn.status(),
                dir: conn.dir().other(),
            }),
            Conn::None { .. } => None,
        }
    }

    /// NAT binding of this packet itself.
    pub(super) fn binding(&self) -> Option<Binding> {
        match self {
            Conn::New(nc) => Some(Binding {
                target: nc.nat_target(),
                status: nc.status,
                dir: Dir::Original,
            }),
            Conn::Known { conn, .. } | Conn::Related(conn) => Some(Binding {
                target: conn.nat_target(),
                status: conn.status(),
                dir: conn.dir(),
            }),
            Conn::None { .. } => None,
        }
    }
}

impl Binding {
    /// nf_nat_packet / nf_nat_icmp_reply_translation: rewrite the `manip`
    /// half if the connection has that kind of NAT in this direction (an
    /// ORIGINAL packet's SRC manip needs SRC_NAT; a REPLY packet's SRC manip
    /// undoes DST_NAT). ICMP errors get outer and embedded headers rewritten.
    pub(super) fn apply(&self, pkt: &mut [u8], repr: &mut PacketRepr, partial: bool, manip: Manip) {
        if nat_needed(self.status, self.dir, manip) {
            let _ = nat::translate_repr(pkt, repr, partial, &self.target, manip);
        }
    }
}

/// Whether a packet in `dir` of a connection with `status` has its `manip`
/// half rewritten (see [`Binding::apply`]).
#[inline]
pub(super) fn nat_needed(status: Status, dir: Dir, manip: Manip) -> bool {
    if matches!(manip, Manip::Src) != (dir == Dir::Reply) {
        status.src_nat()
    } else {
        status.dst_nat()
    }
}

impl<'p, 'r> Flow<'p, 'r> {
    pub(super) fn set_conn(&mut self, conn: Conn<'p>) {
        self.conn = conn;
        self.binding = None;
    }

    /// The connection's NAT binding, read from the entry once per packet.
    pub(super) fn binding(&mut self) -> Option<Binding> {
        if self.binding.is_none() {
            self.binding = self.conn.binding();
        }
        self.binding
    }

    pub(super) fn new(
        ingress: Option<IfIndex>,
        in_name: &'p str,
        partial: bool,
        repr: &'r mut PacketRepr,
    ) -> Self {
        Flow {
            conn: Conn::None { untracked: false },
            binding: None,
            repr,
            marks: PacketMarks::default(),
            ingress,
            in_name,
            out_name: "",
            partial,
        }
    }
}
