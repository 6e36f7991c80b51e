use super::*;
use crate::wire::ipv6::nexthdr as nh;
use crate::wire::testutil::{self, with_exts};

fn tcp() -> Vec<u8> {
    testutil::tcp6("2001:db8::1", "2001:db8::2", 40000, 80, 0x02, b"data")
}

/// The walk agrees with etherparse on the upper-layer protocol and where it
/// starts, for chains each header appears in at most once (its limit).
#[test]
fn walk_matches_etherparse() {
    let chains: &[&[(u8, usize)]] = &[
        &[],
        &[(nh::HOPOPTS, 8)],
        &[(nh::HOPOPTS, 16), (nh::DSTOPTS, 8), (nh::ROUTING, 24)],
        &[
            (nh::HOPOPTS, 8),
            (nh::ROUTING, 8),
            (nh::FRAGMENT, 8),
            (nh::AH, 12),
        ],
        &[(nh::AH, 24), (nh::DSTOPTS, 8)],
        &[(nh::FRAGMENT, 8)],
    ];
    for chain in chains {
        let p = with_exts(&tcp(), chain);
        let e = walk(&p).unwrap();
        let (_, next, rest) = etherparse::Ipv6Extensions::from_slice(
            etherparse::IpNumber(chain.first().map_or(nh::TCP, |c| c.0)),
            &p[40..],
        )
        .unwrap();
        assert_eq!(e.proto, next.0, "{chain:?}");
        assert_eq!(
            usize::from(e.proto_offset),
            p.len() - rest.len(),
            "{chain:?}"
        );
        assert_eq!(e.proto, nh::TCP);
        assert!(e.has(mask::PROTO));
        let t = crate::wire::TcpPacket::new_checked(&p[usize::from(e.proto_offset)..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 80));
    }
}

#[test]
fn records_positions_mask_and_fragment() {
    let chain = [
        (nh::HOPOPTS, 8),
        (nh::DSTOPTS, 16),
        (nh::ROUTING, 24),
        (nh::FRAGMENT, 8),
        (nh::AH, 16),
        (nh::DSTOPTS, 8),
    ];
    let mut p = with_exts(&tcp(), &chain);
    // First fragment with M set, identification 0xdeadbeef.
    p[88 + 2..88 + 4].copy_from_slice(&1u16.to_be_bytes());
    p[88 + 4..88 + 8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let e = walk(&p).unwrap();
    assert_eq!(
        (e.hbh, e.dst, e.routing, e.frag, e.ah),
        (40, 48, 64, 88, 96)
    );
    assert_eq!(e.proto_offset, 120);
    assert_eq!(
        e.mask,
        mask::HOPOPTS | mask::DSTOPTS | mask::ROUTING | mask::FRAGMENT | mask::AH | mask::PROTO
    );
    assert!(e.has_frag_header() && e.is_fragment() && !e.later_fragment());
    assert_eq!(
        (e.frag_offset, e.more_frags, e.frag_ident),
        (0, true, 0xdead_beef)
    );

    // A later fragment: the walk stops after the fragment header.
    p[88 + 2..88 + 4].copy_from_slice(&(185u16 << 3).to_be_bytes());
    let e = walk(&p).unwrap();
    assert!(e.later_fragment() && e.is_fragment());
    assert_eq!((e.frag_offset, e.more_frags), (185, false));
    assert_eq!((e.proto, e.proto_offset), (nh::AH, 96));
    assert_eq!(e.ah, 0, "not walked past a later fragment's header");

    // An atomic fragment (RFC 6946) is whole.
    p[88 + 2..88 + 4].copy_from_slice(&0u16.to_be_bytes());
    let e = walk(&p).unwrap();
    assert!(e.has_frag_header() && !e.is_fragment());
}

#[test]
fn ends_at_none_esp_and_unknown() {
    let mut p = with_exts(&tcp(), &[(nh::DSTOPTS, 8)]);
    p[40] = nh::NONE;
    let e = walk(&p).unwrap();
    assert_eq!((e.proto, e.mask), (nh::NONE, mask::DSTOPTS | mask::NONE));
    p[40] = nh::ESP;
    let e = walk(&p).unwrap();
    assert_eq!((e.proto, e.mask), (nh::ESP, mask::DSTOPTS | mask::ESP));
    p[40] = nh::MH;
    let e = walk(&p).unwrap();
    assert_eq!(
        (e.proto, e.proto_offset, e.mask),
        (nh::MH, 48, mask::DSTOPTS | mask::PROTO)
    );
    let mut q = tcp();
    q[6] = nh::NONE;
    assert_eq!(walk(&q).unwrap().mask, mask::NONE);
}

#[test]
fn refuses_malformed_chains() {
    let p = with_exts(&tcp(), &[(nh::HOPOPTS, 8), (nh::ROUTING, 16)]);
    // Cut inside the routing header; cut right after the fixed header.
    assert_eq!(walk(&p[..60]).unwrap_err(), WireError::BadExtHeader);
    assert_eq!(walk(&p[..40]).unwrap_err(), WireError::BadExtHeader);
    assert_eq!(walk(&p[..41]).unwrap_err(), WireError::BadExtHeader);
    assert_eq!(walk(&p[..20]).unwrap_err(), WireError::Truncated);
    // A length byte that runs past the payload.
    let mut q = p.clone();
    q[49] = 200;
    assert_eq!(walk(&q).unwrap_err(), WireError::BadExtHeader);
    // Exactly to the end is fine (no upper layer left).
    let r = &p[..64];
    let e = walk(r).unwrap();
    assert_eq!((e.proto, usize::from(e.proto_offset)), (nh::TCP, 64));
}

#[test]
fn option_structure() {
    assert!(options_well_formed(&[0, 0, 0, 0, 0, 0, 0, 0]));
    assert!(options_well_formed(&[0, 0, 1, 4, 0, 0, 0, 0]));
    assert!(options_well_formed(&[0, 0, 5, 2, 0, 0, 1, 0]));
    assert!(!options_well_formed(&[0, 0, 1, 5, 0, 0, 0, 0]));
    assert!(!options_well_formed(&[0, 0, 0, 0, 0, 0, 0, 1]));
}
