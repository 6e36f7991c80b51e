//! One packet's traversal of the hooks ([`Trav`]): PREROUTING, routing,
//! INPUT/FORWARD, OUTPUT for the packets the gateway originates,
//! POSTROUTING; table walks, NAT hooks, confirm, REJECT and ICMP errors,
//! local delivery.

use super::conn::nat_needed;
use super::*;

/// An ICMP error to send: type, code, and the 32-bit rest-of-header field.
#[derive(Clone, Copy)]
pub(super) struct IcmpSpec {
    ty: u8,
    code: u8,
    extra: u32,
}

/// Destination-unreachable codes (RFC 792, RFC 1812 5.2.7.1).
pub(super) mod unreach_code {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTO: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const NET_PROHIB: u8 = 9;
    pub const HOST_PROHIB: u8 = 10;
    pub const ADMIN_PROHIB: u8 = 13;
}

pub(super) const fn unreach(code: u8) -> IcmpSpec {
    IcmpSpec {
        ty: icmp::types::DEST_UNREACH,
        code,
        extra: 0,
    }
}

impl<'p: 'w, 'w> Trav<'p, 'w> {
    /// Walks `table` at `hook`; the packet's view of interfaces is the flow's
    /// (`in_name` is empty past routing, `out_name` before it).
    pub(super) fn walk(
        &mut self,
        table: TableKind,
        hook: Hook,
        pkt: &[u8],
        flow: &mut Flow<'p, '_>,
    ) -> TableVerdict<'w> {
        let rules = self.rules;
        // A built-in chain with no rules only counts its policy: skip the
        // parse and the connection lookup (most hooks of most rulesets).
        let h = rules.hook(table, hook);
        if h.chain.is_none() {
            return TableVerdict::Accept;
        }
        if h.empty {
            let len = flow.repr.total_len() as u64;
            rules.counters.bump(self.worker, h.policy_slot, len);
            return if h.policy_drop {
                TableVerdict::Drop { policy: true }
            } else {
                TableVerdict::Accept
            };
        }
        let in_if = if matches!(hook, Hook::Postrouting | Hook::Output) {
            ""
        } else {
            flow.in_name
        };
        let out_if = if matches!(hook, Hook::Prerouting | Hook::Input) {
            ""
        } else {
            flow.out_name
        };
        let f = PacketFields::from_repr(flow.repr, pkt, in_if, out_if);
        let now = self.now;
        let conn = &flow.conn;
        let make_full = || conn.info(now);
        let ct = LazyCt::with_state(conn.state_bits(), &make_full);
        let w = Walk {
            rs: rules,
            worker: self.worker,
            now: self.now,
            recent: &self.p.recent,
        };
        flow.marks.ctmark = flow.conn.mark();
        flow.marks.ctmark_changed = false;
        let mut env = PEnv {
            p: self.p,
            ws: &mut *self.ws,
        };
        let v = w.run(table, hook, &f, &ct, &mut flow.marks, &mut env);
        if flow.marks.ctmark_changed {
            flow.conn.set_mark(flow.marks.ctmark);
        }
        v
    }

    /// Runs a filter-like table; REJECT emits the answer.
    ///
    /// Most hooks of most rulesets are a built-in chain without rules and an
    /// ACCEPT policy, or no chain at all: those are decided here, inline,
    /// with the policy counter bumped as the walk would (an established
    /// flow passes seven such table/hook pairs per packet).
    #[inline(always)]
    pub(super) fn filter_step(
        &mut self,
        table: TableKind,
        hook: Hook,
        pkt: &mut [u8],
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        let h = self.rules.hook(table, hook);
        // A pending MSS clamp (left by a nat-table TCPMSS) is applied by
        // the next step's tail: take the full step then.
        if flow.marks.set_mss == 0 {
            if h.chain.is_none() {
                return Ok(());
            }
            if h.empty && !h.policy_drop {
                let len = flow.repr.total_len() as u64;
                self.rules.counters.bump(self.worker, h.policy_slot, len);
                return Ok(());
            }
        }
        self.filter_step_walk(table, hook, pkt, flow, out)
    }

    pub(super) fn filter_step_walk(
        &mut self,
        table: TableKind,
        hook: Hook,
        pkt: &mut [u8],
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        match self.walk(table, hook, pkt, flow) {
            TableVerdict::Accept | TableVerdict::Nat(_) => {
                if flow.marks.set_mss != 0 {
                    let mss = if flow.marks.set_mss == u16::MAX {
                        self.p
                            .routes
                            .lookup(flow.repr.v4().dst.into())
                            .forward_if()
                            .and_then(|i| self.p.ifaces.get(i.0 as usize))
                            .map_or(1460, |i| i.mtu.saturating_sub(40))
                    } else {
                        flow.marks.set_mss
                    };
                    let _ = crate::wire::tcp::clamp_mss(pkt, mss, flow.partial);
                    flow.marks.set_mss = 0;
                }
                Ok(())
            }
            TableVerdict::Drop { policy: true } => Err(DropReason::PolicyDrop),
            TableVerdict::Drop { policy: false } => Err(DropReason::RuleDrop),
            TableVerdict::Reject(with) => {
                self.reject(pkt, with, flow, out);
                Err(DropReason::RuleReject)
            }
        }
    }

    /// Runs several filter-like tables at one hook, in order.
    pub(super) fn filter_steps(
        &mut self,
        tables: &[TableKind],
        hook: Hook,
        pkt: &mut [u8],
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        for &t in tables {
            self.filter_step(t, hook, pkt, flow, out)?;
        }
        Ok(())
    }

    pub(super) fn reject(
        &mut self,
        pkt: &[u8],
        with: RejectWith,
        flow: &Flow<'p, '_>,
        out: &mut dyn Emit,
    ) {
        let attach = flow.conn.answer();
        if with == RejectWith::TcpReset {
            let mut buf = std::mem::take(&mut self.ws.scratch);
            if build::tcp_reset(pkt, &mut buf) {
                self.output(&mut buf, attach, out);
            }
            self.ws.scratch = buf;
            return;
        }
        let code = match with {
            RejectWith::NetUnreachable => unreach_code::NET,
            RejectWith::HostUnreachable => unreach_code::HOST,
            RejectWith::PortUnreachable => unreach_code::PORT,
            RejectWith::ProtoUnreachable => unreach_code::PROTO,
            RejectWith::NetProhibited => unreach_code::NET_PROHIB,
            RejectWith::HostProhibited => unreach_code::HOST_PROHIB,
            RejectWith::AdminProhibited | RejectWith::TcpReset => unreach_code::ADMIN_PROHIB,
            // ICMPv6 replies are ip6tables' only, and the IPv6 ruleset is
            // not evaluated yet: no IPv6 packet reaches a hook.
            RejectWith::Icmp6NoRoute
            | RejectWith::Icmp6AdmProhibited
            | RejectWith::Icmp6AddrUnreachable
            | RejectWith::Icmp6PortUnreachable
            | RejectWith::Icmp6PolicyFail
            | RejectWith::Icmp6RejectRoute => unreach_code::ADMIN_PROHIB,
        };
        self.icmp_error(pkt, unreach(code), flow.ingress, attach, out);
    }

    /// Sends an ICMP error about `pkt` through OUTPUT.
    pub(super) fn icmp_error(
        &mut self,
        pkt: &[u8],
        spec: IcmpSpec,
        ingress: Option<IfIndex>,
        attach: Option<Binding>,
        out: &mut dyn Emit,
    ) {
        // icmp_send picks the source from the route back to the sender; the
        // ingress interface's address is that here.
        let src = match ingress {
            Some(i) => self.p.iface_addr(i),
            None => self
                .p
                .routes
                .lookup(src_of(pkt).into())
                .forward_if()
                .map_or(0, |i| self.p.iface_addr(i)),
        };
        if src == 0 {
            return;
        }
        self.ws.ip_id = self.ws.ip_id.wrapping_add(1);
        let id = self.ws.ip_id;
        let mut buf = std::mem::take(&mut self.ws.scratch);
        let built = build::icmp_error(
            pkt,
            src.into(),
            (spec.ty, spec.code),
            spec.extra,
            id,
            &mut buf,
        );
        // Only errors that may be sent at all spend rate-limit credit.
        if built && self.p.icmp_allowed(self.now, src_of(pkt), spec.ty) {
            self.output(&mut buf, attach, out);
        }
        self.ws.scratch = buf;
    }

    /// The OUTPUT path for a packet the gateway originates. `attach`: the NAT
    /// binding of the connection this packet answers (nf_ct_attach); such a
    /// packet is RELATED to it and skips its own conntrack lookup.
    pub(super) fn output(&mut self, pkt: &mut [u8], attach: Option<Binding>, out: &mut dyn Emit) {
        // Built by the gateway: structurally sound, checksummed.
        let Ok(mut repr) = PacketRepr::parse(pkt) else {
            self.p.count_drop(DropReason::Malformed);
            return;
        };
        let mut flow = Flow::new(None, "", false, &mut repr);
        if let Err(r) = self.output_hooks(pkt, attach, &mut flow, out) {
            self.p.count_drop(r);
        }
    }

    pub(super) fn output_hooks(
        &mut self,
        pkt: &mut [u8],
        attach: Option<Binding>,
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<(), DropReason> {
        // Locally generated packets are routed before OUTPUT (so `-o`
        // matches there), and routed again after a DNAT in nat OUTPUT.
        let route = |p: &Pipeline, repr: &PacketRepr| {
            p.routes
                .lookup(repr.v4().dst.into())
                .forward_if()
                .ok_or(DropReason::NoRoute)
        };
        let mut egress = route(self.p, flow.repr)?;
        flow.out_name = self.p.iface_name(egress);
        self.filter_step(TableKind::Raw, Hook::Output, pkt, flow, out)?;
        if flow.marks.notrack {
            flow.set_conn(Conn::None { untracked: true });
        } else if attach.is_none() {
            flow.set_conn(self.track(pkt, flow.repr));
        }
        // mangle OUTPUT, nat OUTPUT (DNAT), filter, security.
        self.filter_step(TableKind::Mangle, Hook::Output, pkt, flow, out)?;
        match attach {
            Some(b) => b.apply(pkt, flow.repr, false, Manip::Dst),
            None => self.nat_hook(Hook::Output, Manip::Dst, pkt, None, flow)?,
        }
        egress = route(self.p, flow.repr)?;
        flow.out_name = self.p.iface_name(egress);
        self.filter_steps(
            &[TableKind::Filter, TableKind::Security],
            Hook::Output,
            pkt,
            flow,
            out,
        )?;
        self.filter_step(TableKind::Mangle, Hook::Postrouting, pkt, flow, out)?;
        match attach {
            Some(b) => b.apply(pkt, flow.repr, false, Manip::Src),
            None => {
                self.nat_hook(Hook::Postrouting, Manip::Src, pkt, Some(egress), flow)?;
                self.confirm(pkt, flow)?;
            }
        }
        self.p.stats.emitted.fetch_add(1, Ordering::Relaxed);
        let mtu = self.p.mtu(egress);
        if pkt.len() > mtu {
            // An echo reply to a reassembled large request: the kernel's
            // ICMP socket is IP_PMTUDISC_DONT, so the reply goes out without
            // DF, in fragments of the egress MTU.
            if pkt[6] & 0x40 != 0 {
                let old = u16::from_be_bytes([pkt[6], pkt[7]]);
                pkt[6] &= !0x40;
                let c = u16::from_be_bytes([pkt[10], pkt[11]]);
                let c = checksum::update16(c, old, old & !0x4000);
                pkt[10..12].copy_from_slice(&c.to_be_bytes());
            }
            return defrag::fragment(pkt, mtu, |f| out.emit(egress, f))
                .map(|_| ())
                .map_err(|_| DropReason::Fragment);
        }
        out.emit(egress, pkt);
        Ok(())
    }

    /// Conntrack lookup for a (reassembled) packet. Inlined: the `Conn`
    /// is built in place (returned through memory it cost a
    /// store-forwarding stall per packet).
    #[inline]
    pub(super) fn track(&mut self, pkt: &[u8], repr: &PacketRepr) -> Conn<'p> {
        let key = conntrack::classify_repr(repr, pkt);
        let len = repr.total_len() as u32;
        match self.p.conntrack.track(&key, len, self.now) {
            Tracked::Known { conn, state } => Conn::Known { conn, state },
            Tracked::Related(c) => Conn::Related(c),
            Tracked::New(nc) => Conn::New(nc),
            Tracked::Invalid => Conn::None { untracked: false },
            Tracked::Untracked => Conn::None { untracked: true },
        }
    }

    /// A nat hook: new connections walk the nat table (and get a binding),
    /// others are rewritten from their entry. `iface` is the interface
    /// MASQUERADE (egress) or REDIRECT (ingress) takes its address from.
    pub(super) fn nat_hook(
        &mut self,
        hook: Hook,
        manip: Manip,
        pkt: &mut [u8],
        iface: Option<IfIndex>,
        flow: &mut Flow<'p, '_>,
    ) -> Result<(), DropReason> {
        if let Conn::New(_) = flow.conn {
            let v = self.walk(TableKind::Nat, hook, pkt, flow);
            let range = match v {
                TableVerdict::Nat(t) => self.nat_range(t, iface),
                TableVerdict::Drop { policy: true } => return Err(DropReason::PolicyDrop),
                TableVerdict::Drop { policy: false } => return Err(DropReason::RuleDrop),
                _ => None,
            };
            if let (Some(range), Conn::New(nc)) = (range, &mut flow.conn) {
                nat::setup(
                    &self.p.conntrack,
                    nc,
                    &range,
                    manip,
                    &mut self.ws.rng,
                    self.now,
                )
                .map_err(|_| DropReason::NatExhausted)?;
                flow.binding = None;
            }
        }
        match &flow.conn {
            // A confirmed entry's tuples and NAT bits do not change while it
            // lives: read them at each hook, the tuple only when this hook
            // rewrites (caching a `Binding` in the flow cost a
            // store-forwarding stall: its 2-byte-aligned tuple was written
            // and read back in different widths).
            Conn::Known { conn, .. } | Conn::Related(conn) => {
                if nat_needed(conn.status(), conn.dir(), manip) {
                    let target = conn.nat_target();
                    let _ = nat::translate_repr(pkt, flow.repr, flow.partial, &target, manip);
                }
            }
            _ => {
                if let Some(b) = flow.binding() {
                    b.apply(pkt, flow.repr, flow.partial, manip);
                }
            }
        }
        Ok(())
    }

    /// The NAT range a nat-table target asks for: the rule's own, with the
    /// interface's address for MASQUERADE (egress) and REDIRECT (ingress).
    pub(super) fn nat_range(&self, t: &Target, iface: Option<IfIndex>) -> Option<NatRange> {
        match t {
            Target::Dnat(r) | Target::Snat(r) => Some(**r),
            Target::Masquerade(r) => {
                let addr = self.p.iface_addr(iface?);
                (addr != 0).then(|| r.with_addr(addr))
            }
            Target::Redirect(r) => Some(r.with_addr(self.p.iface_addr(iface?))),
            _ => None,
        }
    }

    /// conntrack confirm at the last hook.
    pub(super) fn confirm(
        &mut self,
        pkt: &mut [u8],
        flow: &mut Flow<'p, '_>,
    ) -> Result<(), DropReason> {
        let Conn::New(nc) = &flow.conn else {
            return Ok(());
        };
        match self.p.conntrack.confirm(nc, self.now) {
            Ok(c) => {
                if c.clash == Some(ClashKind::Retranslate) {
                    let target = c.conn.nat_target();
                    let _ = nat::translate_both_repr(pkt, flow.repr, flow.partial, &target);
                }
                flow.set_conn(Conn::Known {
                    conn: c.conn,
                    state: CtState::New,
                });
                Ok(())
            }
            Err(ConfirmError::Full) => Err(DropReason::ConntrackFull),
            Err(ConfirmError::ReplyTaken) => Err(DropReason::NatExhausted),
        }
    }

    /// Local delivery: the gateway answers as a Linux host with no listening
    /// sockets would (echo reply, TCP RST, ICMP port/protocol unreachable).
    pub(super) fn deliver_local(
        &mut self,
        pkt: &[u8],
        ingress: IfIndex,
        out: &mut dyn Emit,
    ) -> Verdict {
        let ihl = ((pkt[0] & 0x0f) as usize) * 4;
        match pkt[9] {
            1 if pkt.get(ihl) == Some(&icmp::types::ECHO_REQUEST) => {
                self.ws.ip_id = self.ws.ip_id.wrapping_add(1);
                let id = self.ws.ip_id;
                let mut buf = std::mem::take(&mut self.ws.scratch);
                if build::echo_reply(pkt, id, &mut buf) {
                    self.output(&mut buf, None, out);
                }
                self.ws.scratch = buf;
                Verdict::Consumed
            }
            1 => Verdict::Consumed,
            6 => {
                let mut buf = std::mem::take(&mut self.ws.scratch);
                if build::tcp_reset(pkt, &mut buf) {
                    self.output(&mut buf, None, out);
                }
                self.ws.scratch = buf;
                Verdict::Drop(DropReason::LocalNoListener)
            }
            17 => {
                self.icmp_error(pkt, unreach(unreach_code::PORT), Some(ingress), None, out);
                Verdict::Drop(DropReason::LocalNoListener)
            }
            _ => {
                self.icmp_error(pkt, unreach(unreach_code::PROTO), Some(ingress), None, out);
                Verdict::Drop(DropReason::LocalNoListener)
            }
        }
    }

    /// PREROUTING through POSTROUTING for a packet that arrived on `ingress`.
    pub(super) fn input(
        &mut self,
        ingress: IfIndex,
        pkt: &mut [u8],
        repr: &mut PacketRepr,
        vnet: &mut VnetHdr,
        out: &mut dyn Emit,
    ) -> Verdict {
        let name = self.p.iface_name(ingress);
        let mut flow = Flow::new(Some(ingress), name, vnet.needs_csum(), repr);
        match self.input_hooks(ingress, pkt, vnet, &mut flow, out) {
            Ok(v) => v,
            Err(r) => Verdict::Drop(r),
        }
    }

    pub(super) fn input_hooks(
        &mut self,
        ingress: IfIndex,
        pkt: &mut [u8],
        vnet: &VnetHdr,
        flow: &mut Flow<'p, '_>,
        out: &mut dyn Emit,
    ) -> Result<Verdict, DropReason> {
        // PREROUTING: raw, conntrack, mangle, nat (DNAT).
        self.filter_step(TableKind::Raw, Hook::Prerouting, pkt, flow, out)?;
        let conn = if flow.marks.notrack {
            Conn::None { untracked: true }
        } else if !l4_valid(pkt, flow.repr, vnet) {
            // nf_conntrack_checksum: conntrack leaves a packet with a bad
            // L4 checksum or length untracked (INVALID) at PREROUTING.
            Conn::None { untracked: false }
        } else {
            self.track(pkt, flow.repr)
        };
        flow.set_conn(conn);
        self.filter_step(TableKind::Mangle, Hook::Prerouting, pkt, flow, out)?;
        self.nat_hook(Hook::Prerouting, Manip::Dst, pkt, Some(ingress), flow)?;

        // Routing decision.
        let egress = match self.p.routes.lookup(flow.repr.v4().dst.into()) {
            RouteResult::Local(_) => None,
            RouteResult::Forward(i) => Some(i),
            RouteResult::Unreachable => {
                let attach = flow.conn.answer();
                self.icmp_error(pkt, unreach(unreach_code::NET), Some(ingress), attach, out);
                return Err(DropReason::NoRoute);
            }
        };

        let Some(egress) = egress else {
            // INPUT: mangle, filter, security, nat (SNAT), confirm, deliver.
            let tables = [TableKind::Mangle, TableKind::Filter, TableKind::Security];
            self.filter_steps(&tables, Hook::Input, pkt, flow, out)?;
            self.nat_hook(Hook::Input, Manip::Src, pkt, Some(ingress), flow)?;
            self.confirm(pkt, flow)?;
            return Ok(self.deliver_local(pkt, ingress, out));
        };

        // ip_forward: TTL and MTU checks come before the FORWARD hook.
        if flow.repr.v4().ttl <= 1 {
            let attach = flow.conn.answer();
            let spec = IcmpSpec {
                ty: icmp::types::TIME_EXCEEDED,
                code: 0,
                extra: 0,
            };
            self.icmp_error(pkt, spec, Some(ingress), attach, out);
            return Err(DropReason::TtlExceeded);
        }
        let mtu = self
            .p
            .ifaces
            .get(egress.0 as usize)
            .map_or(u16::MAX, |i| i.mtu) as usize;
        let wire_len = if vnet.is_gso() {
            vnet.hdr_len as usize + vnet.gso_size as usize
        } else {
            flow.repr.total_len()
        };
        if wire_len > mtu && (flow.repr.v4().dont_frag() || vnet.is_gso()) {
            let attach = flow.conn.answer();
            let spec = IcmpSpec {
                extra: mtu as u32,
                ..unreach(unreach_code::FRAG_NEEDED)
            };
            self.icmp_error(pkt, spec, Some(ingress), attach, out);
            return Err(DropReason::FragNeeded);
        }
        let ttl = Ipv4Packet::new_unchecked(&mut *pkt).decrement_ttl();
        flow.repr.set_ttl_or_hop_limit(ttl);
        flow.out_name = self.p.iface_name(egress);
        let tables = [TableKind::Mangle, TableKind::Filter, TableKind::Security];
        self.filter_steps(&tables, Hook::Forward, pkt, flow, out)?;
        // POSTROUTING: mangle, nat (SNAT/MASQUERADE), confirm.
        self.filter_step(TableKind::Mangle, Hook::Postrouting, pkt, flow, out)?;
        self.nat_hook(Hook::Postrouting, Manip::Src, pkt, Some(egress), flow)?;
        self.confirm(pkt, flow)?;
        Ok(Verdict::Forward(egress))
    }
}

pub(super) trait RouteResultExt {
    fn forward_if(self) -> Option<IfIndex>;
}

impl RouteResultExt for RouteResult {
    fn forward_if(self) -> Option<IfIndex> {
        match self {
            RouteResult::Forward(i) | RouteResult::Local(i) => Some(i),
            RouteResult::Unreachable => None,
        }
    }
}

pub(super) fn src_of(pkt: &[u8]) -> u32 {
    u32::from_be_bytes([pkt[12], pkt[13], pkt[14], pkt[15]])
}
