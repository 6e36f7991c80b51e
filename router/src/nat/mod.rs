//! NAT: ranges, the unique-tuple allocator and in-place header rewriting.
//!
//! As in netfilter, the nat table decides once per connection, on the
//! unconfirmed [`NewConn`]: [`setup`] picks the translated tuple (the
//! kernel's `get_unique_tuple`) and stores it as the connection's REPLY
//! tuple. Every packet of the connection (both directions, and ICMP errors
//! about it) is then rewritten by [`translate`] towards
//! `ConnRef::nat_target()`: destination part in PREROUTING/OUTPUT
//! ([`Manip::Dst`]), source part in POSTROUTING/INPUT ([`Manip::Src`]).
//!
//! Rewrites use RFC 1624 incremental checksum updates for the IPv4 header
//! and the L4 checksum, and keep a CHECKSUM_PARTIAL L4 field partial (it
//! follows address changes, not port changes); see `wire::checksum`.
//!
//! Not implemented from nf_nat_core: zones.
//! `find_appropriate_src` is: a source keeps its existing mapping across
//! destinations when that mapping is in the range and free.

use crate::clock::Timestamp;
use crate::conntrack::{
    ConnTable, NewConn, Status, Tuple, PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE,
};
use crate::wire::checksum::{update_addr, update_port};
use crate::wire::{get_u16, icmp, set_u16, Family, IcmpPacket, Ipv4Packet, PacketRepr, WireError};

/// Which half of the tuple a NAT step changes (`enum nf_nat_manip_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Manip {
    /// SNAT / MASQUERADE (POSTROUTING, INPUT).
    Src,
    /// DNAT / REDIRECT (PREROUTING, OUTPUT).
    Dst,
}

impl Manip {
    pub fn other(self) -> Manip {
        match self {
            Manip::Src => Manip::Dst,
            Manip::Dst => Manip::Src,
        }
    }
}

/// `NF_NAT_RANGE_*` flags (the ruleset's [`crate::ruleset::nat_flags`]).
pub use crate::ruleset::nat_flags as flags;
/// The NAT range: the ruleset's, as the rule holds it (`nf_nat_range2`).
pub use crate::ruleset::NatRange;

/// A small seedable PRNG (SplitMix64) for `--random-fully` and port offsets;
/// one per worker, no locking.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// NAT setup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatError {
    /// No free tuple in the range (the packet is dropped: `NatExhausted`).
    Exhausted,
}

/// `NF_NAT_MAX_ATTEMPTS`.
const MAX_ATTEMPTS: u32 = 128;

/// The kernel's `jhash2` (include/linux/jhash.h, Bob Jenkins' lookup3).
fn jhash2(k: &[u32], initval: u32) -> u32 {
    let mut a = 0xdead_beefu32
        .wrapping_add((k.len() as u32) << 2)
        .wrapping_add(initval);
    let (mut b, mut c) = (a, a);
    let mut k = k;
    while k.len() > 3 {
        a = a.wrapping_add(k[0]);
        b = b.wrapping_add(k[1]);
        c = c.wrapping_add(k[2]);
        // __jhash_mix
        mix(&mut a, &mut c, b, 4);
        mix(&mut b, &mut a, c, 6);
        mix(&mut c, &mut b, a, 8);
        mix(&mut a, &mut c, b, 16);
        mix(&mut b, &mut a, c, 19);
        mix(&mut c, &mut b, a, 4);
        k = &k[3..];
    }
    if k.is_empty() {
        return c;
    }
    if k.len() == 3 {
        c = c.wrapping_add(k[2]);
    }
    if k.len() >= 2 {
        b = b.wrapping_add(k[1]);
    }
    a = a.wrapping_add(k[0]);
    // __jhash_final
    c = fin(c, b, 14);
    a = fin(a, c, 11);
    b = fin(b, a, 25);
    c = fin(c, b, 16);
    a = fin(a, c, 4);
    b = fin(b, a, 14);
    fin(c, b, 24)
}

/// One line of `__jhash_mix`: `x -= y; x ^= rol32(y, r); y += z;`.
#[inline(always)]
fn mix(x: &mut u32, y: &mut u32, z: u32, r: u32) {
    *x = x.wrapping_sub(*y) ^ y.rotate_left(r);
    *y = y.wrapping_add(z);
}

/// One line of `__jhash_final`: `x ^= y; x -= rol32(y, r);`.
#[inline(always)]
fn fin(x: u32, y: u32, r: u32) -> u32 {
    (x ^ y).wrapping_sub(y.rotate_left(r))
}

/// An address as the kernel's `nf_inet_addr` words (host-order values,
/// most significant first; IPv4 in the first word, the rest 0).
fn addr_words(a: u128, family: Family) -> [u32; 4] {
    match family {
        Family::V4 => [a as u32, 0, 0, 0],
        Family::V6 => [
            (a >> 96) as u32,
            (a >> 64) as u32,
            (a >> 32) as u32,
            a as u32,
        ],
    }
}

/// A word as the kernel reads a `__be32` natively (jhash2 input).
fn raw(w: u32) -> u32 {
    u32::from_ne_bytes(w.to_be_bytes())
}

/// `find_best_ips_proto`: the address, by `jhash2` of the source address
/// (16 bytes, as the kernel stores it) seeded with the destination's last
/// word (0 with PERSISTENT), scaled into the range word by word as the
/// kernel does for either family.
fn pick_addr(t: &mut Tuple, range: &NatRange, manip: Manip) {
    let Some((min, max)) = range.addr_range() else {
        return;
    };
    let v = if min == max {
        min
    } else {
        let n = if t.family == Family::V6 { 4 } else { 1 };
        let persistent = range.has(flags::PERSISTENT);
        let (sw, dw) = (addr_words(t.src, t.family), addr_words(t.dst, t.family));
        let mut j = jhash2(&sw.map(raw), if persistent { 0 } else { raw(dw[n - 1]) });
        let (minw, maxw) = (addr_words(min, t.family), addr_words(max, t.family));
        let mut out = [0u32; 4];
        let mut full = false;
        for i in 0..n {
            let (lo, dist) = if full {
                (0, u32::MAX)
            } else {
                (minw[i], maxw[i].wrapping_sub(minw[i]).wrapping_add(1))
            };
            out[i] = lo.wrapping_add(((j as u64 * dist as u64) >> 32) as u32);
            full |= out[i] != maxw[i];
            if !persistent {
                j ^= raw(dw[i]);
            }
        }
        match t.family {
            Family::V4 => out[0] as u128,
            Family::V6 => out.iter().fold(0u128, |acc, &w| acc << 32 | w as u128),
        }
    };
    match manip {
        Manip::Src => t.src = v,
        Manip::Dst => t.dst = v,
    }
}

fn in_range(t: &Tuple, range: &NatRange, manip: Manip) -> bool {
    let (a, p) = match manip {
        Manip::Src => (t.src, t.sport),
        Manip::Dst => (t.dst, t.dport),
    };
    if let Some((min, max)) = range.addr_range() {
        if !(min <= a && a <= max) {
            return false;
        }
    }
    match range.port_range() {
        Some((min, max)) if t.has_ports() => {
            let key = if t.proto == PROTO_ICMP { t.sport } else { p };
            min <= key && key <= max
        }
        _ => true,
    }
}

/// Picks the translated tuple for `nc` (the kernel's `get_unique_tuple` +
/// `nf_nat_l4proto_unique_tuple`) and records it: `nc.reply` becomes its
/// inverse and SRC_NAT/DST_NAT (+ `_DONE`) are set in `nc.status`.
///
/// Source NAT keeps the original port when the resulting reply tuple is free
/// (unless `--random`/`--random-fully`); otherwise it searches from a random
/// offset within the port's class (1-511, 600-1023, 1024-65535) or the given
/// port range, up to 128 attempts, then halves the window from a new random
/// offset, as the kernel does.
pub fn setup(
    table: &ConnTable,
    nc: &mut NewConn,
    range: &NatRange,
    manip: Manip,
    rng: &mut Rng,
    now: Timestamp,
) -> Result<(), NatError> {
    let orig = nc.reply.inverse();
    // nf_nat_used_tuple: is the reply tuple this choice implies taken? (The
    // unconfirmed connection itself is not in the table.)
    let used = |t: &Tuple| -> bool { table.tuple_taken(&t.inverse(), now) };
    let done = |nc: &mut NewConn, t: Tuple| {
        nc.reply = t.inverse();
        let (bit, done) = match manip {
            Manip::Src => (Status::SRC_NAT, Status::SRC_NAT_DONE),
            Manip::Dst => (Status::DST_NAT, Status::DST_NAT_DONE),
        };
        nc.status.0 |= done;
        if t != orig {
            nc.status.0 |= bit;
        }
    };
    let random_all = range.flags & flags::PROTO_RANDOM_ALL != 0;
    if manip == Manip::Src && !random_all {
        // Try the original tuple first, else the mapping this source already
        // has (find_appropriate_src), if it is in the range and free.
        if in_range(&orig, range, manip) {
            if !used(&orig) {
                done(nc, orig);
                return Ok(());
            }
        } else if let Some((addr, port)) = table.find_src_mapping(&orig, now) {
            let mut t = orig;
            t.src = addr;
            t.sport = port;
            if in_range(&t, range, manip) && !used(&t) {
                done(nc, t);
                return Ok(());
            }
        }
    }
    let mut t = orig;
    pick_addr(&mut t, range, manip);
    if !random_all {
        if range.has(flags::PROTO_SPECIFIED) {
            // With PROTO_OFFSET the port is always recomputed from its base.
            if !range.has(flags::PROTO_OFFSET)
                && in_range(&t, range, manip)
                && (range.min_port == range.max_port || !used(&t))
            {
                done(nc, t);
                return Ok(());
            }
        } else if !used(&t) {
            done(nc, t);
            return Ok(());
        }
    }
    // nf_nat_l4proto_unique_tuple.
    let (min, size): (u32, u32);
    let icmp = t.proto == PROTO_ICMP;
    if !matches!(t.proto, PROTO_TCP | PROTO_UDP | PROTO_UDPLITE | PROTO_ICMP) {
        if used(&t) {
            return Err(NatError::Exhausted);
        }
        done(nc, t);
        return Ok(());
    }
    let key = |t: &mut Tuple| -> u16 { *key_of(t, icmp, manip) };
    if range.flags & flags::PROTO_SPECIFIED != 0 {
        min = range.min_port as u32;
        size = range.max_port as u32 - min + 1;
    } else if icmp {
        min = 0;
        size = 65536;
    } else {
        if manip == Manip::Dst {
            // A destination rewrite without ports cannot change the port.
            if used(&t) {
                return Err(NatError::Exhausted);
            }
            done(nc, t);
            return Ok(());
        }
        let p = key(&mut t);
        (min, size) = if p < 512 {
            (1, 511)
        } else if p < 1024 {
            (600, 1023 - 600 + 1)
        } else {
            (1024, 65535 - 1024 + 1)
        };
    }
    // The kernel draws a u16 offset; a u32 one avoids the modulo bias that
    // makes the first ports of a 64512-port class twice as likely.
    let mut off: u32 = if range.has(flags::PROTO_OFFSET) {
        // `/base`: the port keeps its distance from the base (modulo the
        // range), as nf_nat_l4proto_unique_tuple does.
        key(&mut t).wrapping_sub(range.base_port) as u32
    } else if random_all || manip != Manip::Dst {
        rng.next_u32()
    } else {
        0
    };
    let mut attempts = size.min(MAX_ATTEMPTS);
    loop {
        for _ in 0..attempts {
            *key_of(&mut t, icmp, manip) = (min + off % size) as u16;
            off = off.wrapping_add(1);
            if !used(&t) {
                done(nc, t);
                return Ok(());
            }
        }
        if attempts >= size || attempts < 16 {
            return Err(NatError::Exhausted);
        }
        attempts /= 2;
        off = rng.next_u32();
    }
}

fn key_of(t: &mut Tuple, icmp: bool, manip: Manip) -> &mut u16 {
    if icmp {
        &mut t.sport
    } else {
        match manip {
            Manip::Src => &mut t.sport,
            Manip::Dst => &mut t.dport,
        }
    }
}

/// Rewrites the `manip` half (addresses, ports / ICMP id) of `packet` to
/// `target`, with incremental checksum updates. ICMP errors are handled as
/// the kernel's `nf_nat_icmp_reply_translation`: the outer address follows
/// `manip`, the embedded packet gets the inverse tuple with the opposite
/// manip, and the ICMP checksum is recomputed. `partial`: the L4 checksum
/// is CHECKSUM_PARTIAL (`VnetHdr::needs_csum()`).
///
/// Returns whether anything changed. Never panics on a malformed packet.
pub fn translate(
    packet: &mut [u8],
    partial: bool,
    target: &Tuple,
    manip: Manip,
) -> Result<bool, WireError> {
    let ip = Ipv4Packet::new_checked(&*packet)?;
    let end = ip.total_len() as usize;
    let hl = ip.header_len();
    let is_err = ip.protocol_raw() == PROTO_ICMP
        && ip.frag_offset() == 0
        && end >= hl + icmp::HEADER_LEN
        && icmp::is_error(packet[hl]);
    if !is_err {
        return Ok(manip_pkt(&mut packet[..end], partial, target, manip, false));
    }
    // Embedded packet: check it before touching anything.
    let inner_ok = IcmpPacket::new_unchecked(&packet[hl..end])
        .embedded()
        .is_ok();
    if !inner_ok {
        return Err(WireError::BadLength);
    }
    let inner_target = target.inverse();
    let start = hl + icmp::HEADER_LEN;
    let mut changed = manip_pkt(
        &mut packet[start..end],
        false,
        &inner_target,
        manip.other(),
        true,
    );
    changed |= manip_pkt(&mut packet[..end], false, target, manip, true);
    if changed {
        let mut ic = IcmpPacket::new_unchecked(&mut packet[hl..end]);
        ic.fill_checksum();
    }
    Ok(changed)
}

/// [`translate`] for a packet the pipeline describes with `repr`: the
/// rewrite is mirrored into the description (the `manip` half's address,
/// and the port or ICMP query id where [`manip_pkt`] writes them), so the
/// hooks after this one see the translated packet without parsing it
/// again. `repr` must describe `packet`; on `Err` nothing was rewritten.
#[inline]
pub fn translate_repr(
    packet: &mut [u8],
    repr: &mut PacketRepr,
    partial: bool,
    target: &Tuple,
    manip: Manip,
) -> Result<bool, WireError> {
    let changed = translate(packet, partial, target, manip)?;
    note_translated(repr, target, manip);
    Ok(changed)
}

/// [`translate_both`] with the description kept in step.
pub fn translate_both_repr(
    packet: &mut [u8],
    repr: &mut PacketRepr,
    partial: bool,
    target: &Tuple,
) -> Result<bool, WireError> {
    let a = translate_repr(packet, repr, partial, target, Manip::Dst)?;
    let b = translate_repr(packet, repr, partial, target, Manip::Src)?;
    Ok(a || b)
}

/// What a successful [`translate`] did to the outer header, in the
/// description: the address always; past it, as [`manip_pkt`] on the outer
/// packet, nothing for a later fragment, the TCP/UDP port when the header
/// is there (its length covers the port), the id of an ICMP query with its
/// 8-byte header (an ICMP error's outer type, code and id are untouched).
#[inline]
fn note_translated(repr: &mut PacketRepr, target: &Tuple, manip: Manip) {
    match manip {
        Manip::Src => repr.set_src_addr(target.src),
        Manip::Dst => repr.set_dst_addr(target.dst),
    }
    let (proto, later) = (repr.proto(), repr.later_fragment());
    let l4 = &mut repr.l4;
    if later || !l4.present {
        return;
    }
    match (proto, manip) {
        (PROTO_TCP | PROTO_UDP, Manip::Src) => l4.sport = target.sport,
        (PROTO_TCP | PROTO_UDP, Manip::Dst) => l4.dport = target.dport,
        (PROTO_ICMP, _)
            if usize::from(l4.len) >= icmp::HEADER_LEN && icmp::is_query(l4.icmp_type) =>
        {
            l4.icmp_id = target.sport;
        }
        _ => {}
    }
}

/// Rewrites one (outer or embedded) IPv4 packet in `buf`. For an embedded
/// packet (`inner`) the L4 part may be only 8 bytes: a TCP checksum outside
/// them is left alone, as the kernel does; the caller fixes the ICMP checksum.
fn manip_pkt(buf: &mut [u8], partial: bool, target: &Tuple, manip: Manip, inner: bool) -> bool {
    let mut ip = Ipv4Packet::new_unchecked(&mut *buf);
    let hl = ip.header_len();
    let proto = ip.protocol_raw();
    let (old_addr, new_addr) = match manip {
        Manip::Src => (ip.src_addr(), target.src_v4()),
        Manip::Dst => (ip.dst_addr(), target.dst_v4()),
    };
    let mut changed = false;
    if old_addr != new_addr {
        match manip {
            Manip::Src => ip.rewrite_src_addr(new_addr),
            Manip::Dst => ip.rewrite_dst_addr(new_addr),
        }
        changed = true;
    }
    if ip.frag_offset() != 0 {
        return changed;
    }
    let l4 = &mut buf[hl..];
    let (port_at, new_port) = match manip {
        Manip::Src => (0, target.sport),
        Manip::Dst => (2, target.dport),
    };
    match proto {
        PROTO_TCP => {
            if l4.len() < 4 {
                return changed;
            }
            let old_port = set_port(l4, port_at, new_port, &mut changed);
            if l4.len() >= 20 && !(inner && l4.len() < 20) {
                let mut c = get_u16(l4, 16);
                c = update_addr(c, old_addr, new_addr, partial);
                c = update_port(c, old_port, new_port, partial);
                set_u16(l4, 16, c);
            }
        }
        PROTO_UDP | PROTO_UDPLITE => {
            if l4.len() < 8 {
                return changed;
            }
            let old_port = set_port(l4, port_at, new_port, &mut changed);
            let c = get_u16(l4, 6);
            if c != 0 || partial || proto == PROTO_UDPLITE {
                let mut n = update_addr(c, old_addr, new_addr, partial);
                n = update_port(n, old_port, new_port, partial);
                if n == 0 && !partial {
                    n = 0xffff;
                }
                set_u16(l4, 6, n);
            }
        }
        PROTO_ICMP => {
            if l4.len() < 8 || !icmp::is_query(l4[0]) {
                return changed;
            }
            // The id is the "port" in both directions (tuple sport).
            let old_id = get_u16(l4, 4);
            if old_id != target.sport {
                let c = update_port(get_u16(l4, 2), old_id, target.sport, partial);
                set_u16(l4, 4, target.sport);
                set_u16(l4, 2, c);
                changed = true;
            }
        }
        _ => {}
    }
    changed
}

/// Writes `new` over the port at `at` of `l4` (noting in `changed` whether
/// it differed); returns the old port.
#[inline]
fn set_port(l4: &mut [u8], at: usize, new: u16, changed: &mut bool) -> u16 {
    let old = get_u16(l4, at);
    if old != new {
        set_u16(l4, at, new);
        *changed = true;
    }
    old
}

/// Applies both halves (used after a confirm clash with `Retranslate`, where
/// the packet already carries the losing binding).
pub fn translate_both(packet: &mut [u8], partial: bool, target: &Tuple) -> Result<bool, WireError> {
    let a = translate(packet, partial, target, Manip::Dst)?;
    let b = translate(packet, partial, target, Manip::Src)?;
    Ok(a || b)
}

#[cfg(test)]
mod tests;
