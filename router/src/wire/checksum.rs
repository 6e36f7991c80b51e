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
//! (Linux `inet_proto_csum_replace4/2` with `pseudohdr`).

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
