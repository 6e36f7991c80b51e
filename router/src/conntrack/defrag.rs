//! IPv4 reassembly before conntrack (netfilter's `nf_defrag_ipv4`) and
//! refragmentation at the egress MTU.
//!
//! Netfilter reassembles before connection tracking, so rules and NAT see
//! whole datagrams; we do the same (rather than tracking fragments through
//! their first fragment): NAT must rewrite L4 ports and checksums, which only
//! the first fragment carries, and a checksum over the whole datagram can
//! only be fixed incrementally when the rewrite sees the header it covers.
//!
//! Policy, following Linux `ip_fragment.c` / `inet_fragment.c`:
//! - queues keyed by (src, dst, id, protocol); a queue lives at most
//!   `timeout` (30 s, `ipfrag_time`) from its first fragment; expired queues
//!   are dropped lazily (oldest first, O(1) amortised per fragment);
//! - memory is bounded: new fragments are refused while the queued bytes
//!   exceed `max_bytes` (`ipfrag_high_thresh`, 4 MiB) or `max_queues` queues
//!   exist; refusals are counted;
//! - overlaps (RFC 5722 style, as Linux since 4.19 for IPv4): an exact
//!   duplicate of a received fragment is ignored; any other overlap discards
//!   the whole queue;
//! - a non-final fragment whose length is not a multiple of 8 is trimmed to
//!   one (as Linux); a second "last" fragment disagreeing on the total length,
//!   or data beyond the end, discards the queue; a datagram over 65535 bytes
//!   is discarded;
//! - the reassembled packet keeps the first fragment's header (options
//!   included), DF from it, MF and offset cleared, checksum recomputed, and
//!   reports the largest fragment seen (`max_frag_size`, the kernel's
//!   `frag_max_size`) so the egress can refragment no larger than it came.
//!
//! Sans-IO: time comes in as `now`. Shared by workers behind one mutex
//! (fragments are rare; whole datagrams never touch it).

use crate::clock::Timestamp;
use crate::wire::ipv4::{FLAG_DF, FLAG_MF};
use crate::wire::{checksum, Ipv4Packet};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

/// Limits (Linux sysctl names in parentheses).
#[derive(Debug, Clone, Copy)]
pub struct DefragConfig {
    /// Bytes held in all queues (`ipfrag_high_thresh`).
    pub max_bytes: usize,
    /// Number of datagrams being reassembled at once.
    pub max_queues: usize,
    /// Lifetime of a queue from its first fragment (`ipfrag_time`).
    pub timeout: Duration,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_bytes: 4 << 20,
            max_queues: 4096,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Fixed per-queue overhead charged against `max_bytes`.
const QUEUE_OVERHEAD: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    proto: u8,
}

#[derive(Debug)]
struct Queue {
    deadline: Timestamp,
    /// Header of the offset-0 fragment, once seen.
    header: Vec<u8>,
    data: Vec<u8>,
    /// Received `[start, end)` ranges, sorted, non-overlapping.
    ranges: Vec<(usize, usize)>,
    /// Payload length, known once the last fragment (MF=0) arrived.
    total: Option<usize>,
    max_frag: usize,
    charged: usize,
}

/// Why a fragment (or its whole datagram) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefragDrop {
    Malformed,
    /// Memory or queue limit reached.
    Limit,
    /// Overlapping fragment: the whole datagram was discarded.
    Overlap,
    /// Inconsistent lengths: the whole datagram was discarded.
    BadLength,
}

/// Result of feeding one packet.
#[derive(Debug, PartialEq, Eq)]
pub enum DefragOutcome {
    /// Not a fragment: process the packet as it is.
    NotFragment,
    /// Held until the datagram is complete (or the queue expires).
    Held,
    /// The datagram is complete.
    Complete {
        packet: Vec<u8>,
        max_frag_size: usize,
    },
    /// Dropped (count as `DropReason::Fragment`).
    Dropped(DefragDrop),
}

/// Counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DefragStats {
    pub reassembled: u64,
    pub timeouts: u64,
    pub overlaps: u64,
    pub limit_drops: u64,
    pub bad: u64,
}

#[derive(Debug, Default)]
struct Inner {
    queues: HashMap<Key, Queue>,
    /// Creation order for expiry (deadlines are monotone: one timeout).
    order: VecDeque<(Timestamp, Key)>,
    bytes: usize,
    stats: DefragStats,
}

/// The reassembler.
#[derive(Debug, Default)]
pub struct Defrag {
    cfg: DefragConfig,
    inner: Mutex<Inner>,
}

impl Inner {
    fn remove(&mut self, k: &Key) {
        if let Some(q) = self.queues.remove(k) {
            self.bytes -= q.charged;
        }
    }
    fn expire(&mut self, now: Timestamp) {
        while let Some(&(d, k)) = self.order.front() {
            if d > now {
                break;
            }
            self.order.pop_front();
            if self.queues.get(&k).is_some_and(|q| q.deadline == d) {
                self.remove(&k);
                self.stats.timeouts += 1;
            }
        }
    }
    fn recharge(&mut self, k: &Key) {
        if let Some(q) = self.queues.get_mut(k) {
            let c =
                QUEUE_OVERHEAD + q.data.capacity() + q.header.capacity() + q.ranges.capacity() * 16;
            self.bytes = self.bytes + c - q.charged;
            q.charged = c;
        }
    }
}

impl Defrag {
    pub fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            cfg,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn stats(&self) -> DefragStats {
        self.lock().stats
    }

    /// Bytes currently charged to queues.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn queues(&self) -> usize {
        self.lock().queues.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops expired queues (also done on every fragment).
    pub fn expire(&self, now: Timestamp) {
        self.lock().expire(now);
    }

    /// Feeds one IPv4 packet.
    pub fn process(&self, pkt: &[u8], now: Timestamp) -> DefragOutcome {
        let Ok(ip) = Ipv4Packet::new_checked(pkt) else {
            return DefragOutcome::Dropped(DefragDrop::Malformed);
        };
        if !ip.is_fragment() {
            return DefragOutcome::NotFragment;
        }
        let mut g = self.lock();
        g.expire(now);
        let key = Key {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            id: ip.ident(),
            proto: ip.protocol_raw(),
        };
        let payload = ip.payload();
        let start = ip.frag_offset();
        let last = !ip.more_frags();
        let mut end = start + payload.len();
        if !last {
            end &= !7;
        }
        if end <= start || end > 65535 - ip.header_len() {
            g.stats.bad += 1;
            if end > start {
                g.remove(&key);
            }
            return DefragOutcome::Dropped(DefragDrop::BadLength);
        }
        if !g.queues.contains_key(&key) {
            if g.queues.len() >= self.cfg.max_queues
                || g.bytes + QUEUE_OVERHEAD + end > self.cfg.max_bytes
            {
                g.stats.limit_drops += 1;
                return DefragOutcome::Dropped(DefragDrop::Limit);
            }
            let deadline = now + self.cfg.timeout;
            g.queues.insert(
                key,
                Queue {
                    deadline,
                    header: Vec::new(),
                    data: Vec::new(),
                    ranges: Vec::new(),
                    total: None,
                    max_frag: 0,
                    charged: 0,
                },
            );
            g.order.push_back((deadline, key));
        } else if g.bytes + end.saturating_sub(g.queues[&key].data.len()) > self.cfg.max_bytes {
            g.stats.limit_drops += 1;
            return DefragOutcome::Dropped(DefragDrop::Limit);
        }
        let q = g.queues.get_mut(&key).expect("present");
        // Length consistency with a known end.
        let bad_len = match q.total {
            Some(t) => end > t || (last && end != t),
            None => last && q.ranges.last().is_some_and(|r| r.1 > end),
        };
        if bad_len {
            g.remove(&key);
            g.stats.bad += 1;
            return DefragOutcome::Dropped(DefragDrop::BadLength);
        }
        // Overlaps.
        let pos = q.ranges.partition_point(|r| r.1 <= start);
        if let Some(&(s, e)) = q.ranges.get(pos) {
            if s < end {
                if s == start && e == end {
                    return DefragOutcome::Held; // exact duplicate: ignored
                }
                g.remove(&key);
                g.stats.overlaps += 1;
                return DefragOutcome::Dropped(DefragDrop::Overlap);
            }
        }
        if last {
            q.total = Some(end);
        }
        if q.data.len() < end {
            q.data.resize(end, 0);
        }
        q.data[start..end].copy_from_slice(&payload[..end - start]);
        q.ranges.insert(pos, (start, end));
        // Merge neighbours to keep the list short.
        let mut i = pos.saturating_sub(1);
        while i + 1 < q.ranges.len() {
            if q.ranges[i].1 == q.ranges[i + 1].0 {
                q.ranges[i].1 = q.ranges[i + 1].1;
                q.ranges.remove(i + 1);
            } else {
                i += 1;
            }
        }
        q.max_frag = q.max_frag.max(ip.total_len() as usize);
        if start == 0 {
            q.header = ip.header().to_vec();
        }
        let complete = matches!(q.total, Some(t) if q.ranges.len() == 1 && q.ranges[0] == (0, t))
            && !q.header.is_empty();
        if !complete {
            g.recharge(&key);
            return DefragOutcome::Held;
        }
        let q = g.queues.remove(&key).expect("present");
        g.bytes -= q.charged;
        g.stats.reassembled += 1;
        let total = q.header.len() + q.data.len();
        if total > 65535 {
            g.stats.bad += 1;
            return DefragOutcome::Dropped(DefragDrop::BadLength);
        }
        let mut out = q.header;
        out.extend_from_slice(&q.data);
        let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
        let df = p.flags_offset() & FLAG_DF;
        p.set_flags_offset(df);
        p.set_total_len(total as u16);
        p.fill_checksum();
        DefragOutcome::Complete {
            packet: out,
            max_frag_size: q.max_frag,
        }
    }
}

/// Refragmentation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragError {
    /// DF set and larger than the MTU: answer ICMP fragmentation-needed
    /// (type 3 code 4) with this next-hop MTU.
    DontFragment {
        mtu: u16,
    },
    /// The MTU cannot carry the header plus 8 bytes of data.
    MtuTooSmall,
    Malformed,
}

/// Splits `pkt` into fragments of at most `mtu` bytes (RFC 791 section 3.2,
/// "fragmentation procedure"), calling `emit` with each one, in order. A
/// packet that fits is emitted unchanged. Options without the "copied" flag
/// go only into the first fragment. Works on a packet that is itself a
/// fragment (offsets and the final MF are kept). Returns the fragment count.
pub fn fragment(pkt: &[u8], mtu: usize, mut emit: impl FnMut(&[u8])) -> Result<usize, FragError> {
    let ip = Ipv4Packet::new_checked(pkt).map_err(|_| FragError::Malformed)?;
    let total = ip.total_len() as usize;
    if total <= mtu {
        emit(&pkt[..total]);
        return Ok(1);
    }
    if ip.dont_frag() {
        return Err(FragError::DontFragment {
            mtu: mtu.min(65535) as u16,
        });
    }
    let hl = ip.header_len();
    // Header for the later fragments: copied options only, padded to 4.
    let mut later = ip.header()[..20].to_vec();
    let opts = &ip.header()[20..];
    let mut i = 0;
    while i < opts.len() {
        let ty = opts[i];
        match ty {
            0 => break,
            1 => i += 1,
            _ => {
                let len = *opts.get(i + 1).unwrap_or(&0) as usize;
                if len < 2 || i + len > opts.len() {
                    break;
                }
                if ty & 0x80 != 0 {
                    later.extend_from_slice(&opts[i..i + len]);
                }
                i += len;
            }
        }
    }
    while later.len() % 4 != 0 {
        later.push(0);
    }
    let data = ip.payload();
    let base = ip.frag_offset();
    let orig_mf = ip.more_frags();
    let flags_keep = ip.flags_offset() & !(FLAG_MF | crate::wire::ipv4::OFFSET_MASK);
    let mut buf = Vec::with_capacity(mtu);
    let mut off = 0;
    let mut n = 0;
    while off < data.len() {
        let h: &[u8] = if off == 0 { &pkt[..hl] } else { &later };
        let room = mtu.checked_sub(h.len()).ok_or(FragError::MtuTooSmall)? & !7;
        if room == 0 {
            return Err(FragError::MtuTooSmall);
        }
        let take = room.min(data.len() - off);
        let more = off + take < data.len() || orig_mf;
        buf.clear();
        buf.extend_from_slice(h);
        buf.extend_from_slice(&data[off..off + take]);
        let hlen = h.len();
        buf[0] = 0x40 | (hlen / 4) as u8;
        let mut f = Ipv4Packet::new_unchecked(&mut buf[..]);
        f.set_total_len((hlen + take) as u16);
        let fo = ((base + off) / 8) as u16 | flags_keep | if more { FLAG_MF } else { 0 };
        f.set_flags_offset(fo);
        f.set_checksum(0);
        let c = checksum::checksum(&buf[..hlen]);
        Ipv4Packet::new_unchecked(&mut buf[..]).set_checksum(c);
        emit(&buf);
        off += take;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{self, assert_checksums};

    fn big_udp(len: usize) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut p = testutil::udp("10.0.0.1", "10.0.0.2", 1111, 2222, &payload);
        p[4..6].copy_from_slice(&0x4242u16.to_be_bytes()); // IP id
        p[6] = 0; // clear DF
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    fn frags(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        fragment(p, mtu, |f| v.push(f.to_vec())).unwrap();
        v
    }

    /// A 3000-byte UDP datagram and its three fragments at MTU 1280.
    fn datagram_in_three() -> (Vec<u8>, Vec<Vec<u8>>) {
        let p = big_udp(3000);
        let fs = frags(&p, 1280);
        (p, fs)
    }

    fn t(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn fragment_then_reassemble_in_order_and_out_of_order() {
        let (p, fs) = datagram_in_three();
        assert_eq!(fs.len(), 3);
        for f in &fs {
            assert!(f.len() <= 1280);
            let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert!(ip.verify_checksum() && ip.is_fragment());
        }
        assert!(!Ipv4Packet::new_checked(&fs[2][..]).unwrap().more_frags());
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let d = Defrag::default();
            let mut out = None;
            for (k, &i) in order.iter().enumerate() {
                match d.process(&fs[i], t(1)) {
                    DefragOutcome::Held => assert!(k < 2),
                    DefragOutcome::Complete {
                        packet,
                        max_frag_size,
                    } => {
                        assert_eq!(k, 2);
                        assert_eq!(max_frag_size, 1276);
                        out = Some(packet);
                    }
                    o => panic!("{o:?}"),
                }
            }
            let out = out.unwrap();
            assert_eq!(out, p, "order {order:?}");
            assert_checksums(&out);
            assert_eq!((d.queues(), d.bytes()), (0, 0));
        }
        assert_eq!(
            Defrag::default().process(&p, t(1)),
            DefragOutcome::NotFragment
        );
    }

    #[test]
    fn overlaps_duplicates_and_bad_lengths() {
        let (p, fs) = datagram_in_three();
        // Exact duplicate: ignored, reassembly still completes.
        let d = Defrag::default();
        assert_eq!(d.process(&fs[0], t(1)), DefragOutcome::Held);
        assert_eq!(d.process(&fs[0], t(1)), DefragOutcome::Held);
        assert_eq!(d.process(&fs[1], t(1)), DefragOutcome::Held);
        assert!(matches!(
            d.process(&fs[2], t(1)),
            DefragOutcome::Complete { .. }
        ));
        // A fragment overlapping another partially discards the datagram.
        let d = Defrag::default();
        let small = frags(&p, 604); // 584-byte pieces, overlapping the 1256-byte ones
        assert_eq!(d.process(&fs[0], t(1)), DefragOutcome::Held);
        assert_eq!(
            d.process(&small[2], t(1)),
            DefragOutcome::Dropped(DefragDrop::Overlap)
        );
        assert_eq!(d.queues(), 0);
        assert_eq!(d.process(&fs[1], t(1)), DefragOutcome::Held);
        assert_eq!(d.stats().overlaps, 1);
        // Two different "last" fragments.
        let d = Defrag::default();
        assert_eq!(d.process(&fs[2], t(1)), DefragOutcome::Held);
        let mut short_last = fs[1].clone();
        let fo = Ipv4Packet::new_unchecked(&short_last[..]).flags_offset() & !FLAG_MF;
        Ipv4Packet::new_unchecked(&mut short_last[..]).set_flags_offset(fo);
        assert_eq!(
            d.process(&short_last, t(1)),
            DefragOutcome::Dropped(DefragDrop::BadLength)
        );
        assert_eq!(d.queues(), 0);
    }

    #[test]
    fn never_completed_queue_expires_at_30s() {
        let (_, fs) = datagram_in_three();
        let d = Defrag::default();
        assert_eq!(d.process(&fs[0], t(10)), DefragOutcome::Held);
        assert!(d.bytes() > 0);
        d.expire(t(39));
        assert_eq!(d.queues(), 1);
        d.expire(t(40));
        assert_eq!((d.queues(), d.bytes(), d.stats().timeouts), (0, 0, 1));
        // A late fragment starts a new queue, which cannot complete.
        assert_eq!(d.process(&fs[1], t(41)), DefragOutcome::Held);
        assert_eq!(d.process(&fs[2], t(41)), DefragOutcome::Held);
    }

    #[test]
    fn memory_and_queue_limits_are_enforced() {
        let cfg = DefragConfig {
            max_bytes: 64 * 1024,
            max_queues: 8,
            timeout: Duration::from_secs(30),
        };
        let d = Defrag::new(cfg);
        let mut held = 0;
        let mut refused = 0;
        for id in 0..200u16 {
            let mut p = big_udp(3000);
            p[4..6].copy_from_slice(&id.to_be_bytes());
            Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            let fs = frags(&p, 1280);
            match d.process(&fs[0], t(1)) {
                DefragOutcome::Held => held += 1,
                DefragOutcome::Dropped(DefragDrop::Limit) => refused += 1,
                o => panic!("{o:?}"),
            }
            assert!(d.bytes() <= cfg.max_bytes);
            assert!(d.queues() <= cfg.max_queues);
        }
        assert_eq!(held, 8);
        assert_eq!(refused, 192);
        assert_eq!(d.stats().limit_drops, 192);
        // Limits apply to memory too: one queue with a huge offset.
        let d = Defrag::new(DefragConfig {
            max_bytes: 16 * 1024,
            ..cfg
        });
        let p = big_udp(40000);
        let fs = frags(&p, 1500);
        let mut limited = false;
        for f in fs.iter().rev() {
            if d.process(f, t(1)) == DefragOutcome::Dropped(DefragDrop::Limit) {
                limited = true;
            }
            assert!(d.bytes() <= 16 * 1024);
        }
        assert!(limited);
    }

    #[test]
    fn refragment_respects_mtu_df_and_copied_options() {
        let mut p = big_udp(2000);
        p[6] = 0x40; // DF
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        assert_eq!(
            fragment(&p, 1500, |_| {}),
            Err(FragError::DontFragment { mtu: 1500 })
        );
        let mut n = 0;
        assert_eq!(fragment(&p, 3000, |f| { n += f.len() }), Ok(1));
        assert_eq!(n, p.len());
        // A header with options: a copied one (0x83 LSRR, 7 bytes) and a
        // non-copied one (0x07 record route, 7 bytes) + padding: IHL 9.
        let q = big_udp(1000);
        let mut with_opts = q[..20].to_vec();
        with_opts.extend_from_slice(&[0x83, 7, 4, 1, 2, 3, 4, 0x07, 7, 4, 0, 0, 0, 0, 0, 0]);
        with_opts.extend_from_slice(&q[20..]);
        with_opts[0] = 0x49;
        let tl = with_opts.len() as u16;
        let mut ip = Ipv4Packet::new_unchecked(&mut with_opts[..]);
        ip.set_total_len(tl);
        ip.fill_checksum();
        let fs = frags(&with_opts, 576);
        assert!(fs.len() >= 2);
        assert_eq!(Ipv4Packet::new_unchecked(&fs[0][..]).header_len(), 36);
        let h1 = Ipv4Packet::new_unchecked(&fs[1][..]);
        assert_eq!(h1.header_len(), 28);
        assert_eq!(&fs[1][20..27], &[0x83, 7, 4, 1, 2, 3, 4]);
        let d = Defrag::default();
        let mut out = None;
        for f in &fs {
            assert!(f.len() <= 576);
            if let DefragOutcome::Complete { packet, .. } = d.process(f, t(1)) {
                out = Some(packet);
            }
        }
        assert_eq!(out.unwrap(), with_opts);
    }
}
