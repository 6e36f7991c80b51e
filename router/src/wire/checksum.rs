//! Internet checksums: RFC 1071 full sum, RFC 1624 incremental update.
//!
//! Two representations of an L4 checksum field are handled:
//! - *complete*: the field holds `!sum` (the usual on-wire value);
//! - *partial* (CHECKSUM_PARTIAL, virtio `NEEDS_CSUM`): the field holds the
//!   folded, **non-complemented** pseudo-header sum; the receiver (or the NIC)
//!   adds the L4 header and payload. Addresses are part of the pseudo header,
//!   ports are not: a port rewrite must leave a partial field alone.
//!
//! The `update*` helpers take a `partial` flag and do the right thing for both
//! (Linux `inet_proto_csum_replace4/2/16` with `pseudohdr`).
//!
//! Both families: an L4 checksum is the sum of the family's pseudo header
//! ([`pseudo_header_sum`] for IPv4, [`pseudo_header_sum_v6`] for IPv6, or
//! [`pseudo_sum`] with the family from context) and the L4 bytes:
//! [`l4_checksum`] / [`l4_verify`] take that sum. NAT66 changes a 128-bit
//! address: [`update128`] / [`update_addr6`].

use std::net::Ipv4Addr;

/// Ones'-complement sum of `data` (16-bit big-endian words; an odd last byte is
/// padded with zero), added to `initial`, not folded.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc: u64 = initial as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Two 32-bit words: 2^16 = 1 in ones' complement arithmetic, so
        // the fold below gives the sum of the four 16-bit words.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u16::from_be_bytes([p[0], p[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        acc += (*last as u64) << 8;
    }
    // Fold to 32 bits without losing carries.
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit ones'-complement accumulator to 16 bits (not complemented).
#[inline]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// RFC 1071 checksum of `data`: the complemented folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Sum of the IPv4 pseudo header (RFC 793 section 3.1 / RFC 768).
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u16::from_be_bytes([s[0], s[1]]) as u32
        + u16::from_be_bytes([s[2], s[3]]) as u32
        + u16::from_be_bytes([d[0], d[1]]) as u32
        + u16::from_be_bytes([d[2], d[3]]) as u32
        + proto as u32
        + l4_len as u32
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1): source, destination,
/// the upper-layer packet length as 32 bits, three zero bytes and the next
/// header (the upper-layer protocol, not an extension header's number).
/// Not folded.
pub fn pseudo_header_sum_v6(src: u128, dst: u128, next_header: u8, upper_len: u32) -> u32 {
    words128(src) + words128(dst) + (upper_len >> 16) + (upper_len & 0xffff) + next_header as u32
}

/// The pseudo-header sum of either family; `src`/`dst` are IPv4 addresses
/// zero-extended for [`Family::V4`](super::Family::V4) (whose length field
/// is 16 bits: `l4_len` must fit, as it does in any IPv4 packet).
#[inline]
pub fn pseudo_sum(family: super::Family, src: u128, dst: u128, proto: u8, l4_len: u32) -> u32 {
    match family {
        super::Family::V4 => pseudo_header_sum(
            Ipv4Addr::from(src as u32),
            Ipv4Addr::from(dst as u32),
            proto,
            l4_len as u16,
        ),
        super::Family::V6 => pseudo_header_sum_v6(src, dst, proto, l4_len),
    }
}

/// The checksum to store in an L4 header (its checksum field zero in `l4`)
/// given the family's pseudo-header sum.
#[inline]
pub fn l4_checksum(pseudo: u32, l4: &[u8]) -> u16 {
    !fold(sum(l4, pseudo))
}

/// True if `l4` (checksum field included) sums to all-ones with the
/// family's pseudo-header sum.
#[inline]
pub fn l4_verify(pseudo: u32, l4: &[u8]) -> bool {
    fold(sum(l4, pseudo)) == 0xffff
}

/// The sum of the eight 16-bit words of a 128-bit value (at most 8 * 0xffff).
#[inline]
fn words128(v: u128) -> u32 {
    (0..8).map(|i| ((v >> (16 * i)) & 0xffff) as u32).sum()
}

/// The sum of the complements of the eight 16-bit words (`~m` of RFC 1624).
#[inline]
fn not_words128(v: u128) -> u32 {
    words128(!v)
}

/// RFC 1624 eqn. 3 for a 128-bit field (an IPv6 address: eight words).
#[inline]
pub fn update128(hc: u16, old: u128, new: u128) -> u16 {
    !fold(!hc as u32 + not_words128(old) + words128(new))
}

/// Partial (non-complemented) field, 128-bit change: `S' = S - m + m'`.
#[inline]
pub fn update128_partial(s: u16, old: u128, new: u128) -> u16 {
    fold(s as u32 + not_words128(old) + words128(new))
}

/// Updates an L4 checksum field (TCP, UDP, ICMPv6: all cover the IPv6
/// pseudo header) for an IPv6 address change. `partial`: the field holds a
/// CHECKSUM_PARTIAL pseudo-header sum.
#[inline]
pub fn update_addr6(field: u16, old: u128, new: u128, partial: bool) -> u16 {
    if partial {
        update128_partial(field, old, new)
    } else {
        update128(field, old, new)
    }
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for a 16-bit field change.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold(!hc as u32 + !old as u32 + new as u32)
}

/// RFC 1624 eqn. 3 for a 32-bit field (two 16-bit words).
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let s = !hc as u32 + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(s)
}

/// Partial (non-complemented) field: `S' = S - m + m'`.
#[inline]
pub fn update32_partial(s: u16, old: u32, new: u32) -> u16 {
    fold(s as u32 + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff))
}

/// Updates an L4 checksum field for an address change (pseudo-header part).
/// `partial`: the field holds a CHECKSUM_PARTIAL pseudo-header sum.
#[inline]
pub fn update_addr(field: u16, old: Ipv4Addr, new: Ipv4Addr, partial: bool) -> u16 {
    let (o, n) = (u32::from(old), u32::from(new));
    if partial {
        update32_partial(field, o, n)
    } else {
        update32(field, o, n)
    }
}

/// Updates an L4 checksum field for a port (or ICMP id) change. A partial
/// field is unchanged: the port lies in the part the receiver sums.
#[inline]
pub fn update_port(field: u16, old: u16, new: u16, partial: bool) -> u16 {
    if partial {
        field
    } else {
        update16(field, old, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length pads with zero.
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00);
    }

    #[test]
    fn incremental_matches_full() {
        let mut data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let c0 = checksum(&data);
        let old = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
        let new = 0xc0a8_0a01u32;
        data[12..16].copy_from_slice(&new.to_be_bytes());
        assert_eq!(update32(c0, old, new), checksum(&data));
        let old16 = u16::from_be_bytes([data[20], data[21]]);
        data[20..22].copy_from_slice(&0xffffu16.to_be_bytes());
        let c1 = checksum(&data);
        let c1i = update16(update32(c0, old, new), old16, 0xffff);
        // 0x0000 and 0xffff are the same value in ones' complement.
        assert!(c1i == c1 || (c1i ^ c1) == 0xffff && (c1 == 0 || c1 == 0xffff));
    }

    /// The word-at-a-time sum equals RFC 1071's 16-bit sum, for every
    /// length (odd ones too), initial value, and data up to 64 KiB.
    #[test]
    fn sum_matches_sixteen_bit_reference() {
        fn reference(data: &[u8], initial: u32) -> u16 {
            let mut s = initial as u64;
            for p in data.chunks(2) {
                s += u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]) as u64;
            }
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..65_535)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in (0..200).chain([1499, 1500, 9000, 65_535]) {
            for initial in [0, 1, 0xffff, 0x1_2345, u32::MAX >> 1] {
                assert_eq!(
                    fold(sum(&data[..len], initial)),
                    reference(&data[..len], initial),
                    "len {len} initial {initial:#x}"
                );
            }
        }
        let ones = vec![0xffu8; 65_535];
        assert_eq!(
            fold(sum(&ones, u32::MAX >> 1)),
            reference(&ones, u32::MAX >> 1)
        );
    }

    /// The IPv6 pseudo-header sum and the 128-bit update against
    /// etherparse's TCP checksum over the IPv6 pseudo header.
    #[test]
    fn ipv6_pseudo_header_and_128_bit_update() {
        use etherparse::TcpHeader;
        let a: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
        let b: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_00ff;
        let c: u128 = 0xffff_ffff_ffff_ffff_ffff_ffff_ffff_fffe;
        let mut t = TcpHeader::new(40000, 443, 7, 1024);
        t.syn = true;
        let payload = b"hello, v6";
        let want = t
            .calc_checksum_ipv6_raw(a.to_be_bytes(), b.to_be_bytes(), payload)
            .unwrap();
        let mut seg = t.to_bytes().to_vec();
        seg.extend_from_slice(payload);
        seg[16] = 0;
        seg[17] = 0;
        let ps = pseudo_header_sum_v6(a, b, 6, seg.len() as u32);
        assert_eq!(
            ps,
            pseudo_sum(crate::wire::Family::V6, a, b, 6, seg.len() as u32)
        );
        let got = l4_checksum(ps, &seg);
        assert_eq!(got, want);
        seg[16..18].copy_from_slice(&got.to_be_bytes());
        assert!(l4_verify(ps, &seg));
        // NAT66: rewrite the source, update incrementally, compare.
        let inc = update_addr6(got, a, c, false);
        let full = t
            .calc_checksum_ipv6_raw(c.to_be_bytes(), b.to_be_bytes(), payload)
            .unwrap();
        assert_eq!(inc, full);
        // Partial field: tracks the folded pseudo-header sum.
        let p = fold(ps);
        let q = fold(pseudo_header_sum_v6(c, b, 6, seg.len() as u32));
        assert_eq!(update_addr6(p, a, c, true), q);
        // IPv4 through the family-generic sum.
        let (x, y) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            pseudo_sum(
                crate::wire::Family::V4,
                u32::from(x).into(),
                u32::from(y).into(),
                17,
                9
            ),
            pseudo_header_sum(x, y, 17, 9)
        );
    }

    #[test]
    fn partial_update_tracks_pseudo_header() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let c = Ipv4Addr::new(192, 168, 7, 9);
        let p = fold(pseudo_header_sum(a, b, 6, 40));
        let q = fold(pseudo_header_sum(c, b, 6, 40));
        assert_eq!(update_addr(p, a, c, true), q);
        assert_eq!(update_port(p, 80, 8080, true), p);
    }
}
