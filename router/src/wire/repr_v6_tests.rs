//! IPv6 descriptions, both-family accessors, and a mutation run of the IPv6
//! parse, walk and builders (never a panic; the description stays inside
//! the packet).

use super::*;
use crate::wire::exthdr::mask;
use crate::wire::ipv4::tests::TCP_SYN;
use crate::wire::testutil::{self, a6, with_exts};

const S: &str = "2001:db8::1";
const D: &str = "2001:db8::2";

#[test]
fn describes_a_tcp_syn() {
    let mut p = testutil::tcp6(S, D, 40000, 80, 0x02, b"");
    p.extend_from_slice(&[0; 6]); // padding past the payload length
    let r = PacketRepr::parse_checked(&p).unwrap();
    assert_eq!(r, PacketRepr::parse_checked_v6(&p).unwrap());
    assert_eq!(r.family(), Family::V6);
    assert_eq!((r.src_addr(), r.dst_addr()), (a6(S), a6(D)));
    assert_eq!((r.proto(), r.ttl_or_hop_limit()), (6, 64));
    assert_eq!(r.total_len(), p.len() - 6, "where the pipeline trims");
    let v6 = r.v6().unwrap();
    assert_eq!(
        (v6.next_header, v6.header_len(), v6.payload_len),
        (6, 40, 20)
    );
    assert_eq!(v6.ext.mask, mask::PROTO);
    assert!(!r.is_fragment() && !r.later_fragment());
    assert!(r.l4.present);
    assert_eq!((r.l4.sport, r.l4.dport, r.l4.tcp_flags), (40000, 80, 0x02));
    assert_eq!((r.l4.offset, r.l4.len), (40, 20));
    assert_eq!(r.l4_bytes(&p).len(), 20);
    assert_eq!(r.v4(), &Ipv4Repr::UNSPECIFIED);
    assert_eq!(PacketRepr::parse_checked_v4_only(&p), Err(ParseError::Ipv6));
}

#[test]
fn udp_icmpv6_and_extension_headers() {
    let u = testutil::udp6(S, D, 5353, 53, b"q");
    let r = PacketRepr::parse_checked(&with_exts(&u, &[(0, 8), (60, 16)])).unwrap();
    assert_eq!((r.proto(), r.l4.offset, r.l4.len), (17, 64, 9));
    assert_eq!((r.l4.sport, r.l4.dport), (5353, 53));
    let v6 = r.v6().unwrap();
    assert_eq!((v6.next_header, v6.ext.hbh, v6.ext.dst), (0, 40, 48));
    assert_eq!(v6.ext.mask, mask::HOPOPTS | mask::DSTOPTS | mask::PROTO);

    let e = testutil::echo_request6(S, D, 0x4242, 1);
    let r = PacketRepr::parse_checked(&e).unwrap();
    assert_eq!((r.proto(), r.l4.icmp_type, r.l4.icmp_id), (58, 128, 0x4242));
    let err = testutil::icmp6_error(D, S, 1, 4, &u);
    let r = PacketRepr::parse_checked(&err).unwrap();
    assert_eq!((r.l4.icmp_type, r.l4.icmp_code, r.l4.icmp_id), (1, 4, 0));
    assert!(r.l4.present);

    // First fragment: the header is there; a later one has none.
    let mut f = with_exts(&testutil::tcp6(S, D, 1, 2, 0x10, &[9; 64]), &[(44, 8)]);
    f[42..44].copy_from_slice(&1u16.to_be_bytes());
    f[44..48].copy_from_slice(&77u32.to_be_bytes());
    let r = PacketRepr::parse_checked(&f).unwrap();
    assert!(r.is_fragment() && !r.later_fragment() && r.l4.present);
    let v6 = r.v6().unwrap();
    assert_eq!(
        (v6.ext.frag, v6.ext.frag_ident, v6.frag_offset_units()),
        (40, 77, 0)
    );
    f[42..44].copy_from_slice(&(3u16 << 3).to_be_bytes());
    let r = PacketRepr::parse_checked(&f).unwrap();
    assert!(r.later_fragment() && !r.l4.present);
    assert_eq!((r.proto(), r.l4.offset, r.l4.sport), (6, 48, 0));
}

#[test]
fn refuses_as_ip6_rcv_core() {
    let p = testutil::tcp6(S, D, 40000, 80, 0x02, b"");
    let parse = PacketRepr::parse_checked;
    assert_eq!(parse(&p[..39]), Err(ParseError::Malformed));
    assert_eq!(parse(&p[..59]), Err(ParseError::Malformed));
    let with = |at: usize, a: &str| {
        let mut q = p.clone();
        q[at..at + 16].copy_from_slice(&a6(a).to_be_bytes());
        parse(&q)
    };
    for bad_src in ["ff02::1", "::1", "::ffff:10.0.0.1"] {
        assert_eq!(with(8, bad_src), Err(ParseError::BadAddress), "{bad_src}");
    }
    for bad_dst in ["::1", "::ffff:10.0.0.1", "ff00::1", "ff01::1"] {
        assert_eq!(with(24, bad_dst), Err(ParseError::BadAddress), "{bad_dst}");
    }
    assert!(with(24, "ff02::1").is_ok());
    assert!(with(8, "::").is_ok(), "DAD and friends come from ::");
    // Hop-by-hop: must fit and its options must parse.
    let mut h = with_exts(&p, &[(0, 8)]);
    assert!(parse(&h).is_ok());
    h[42] = 1;
    h[43] = 9; // PadN running past the header
    assert_eq!(parse(&h), Err(ParseError::BadOptions));
    let mut c = with_exts(&p, &[(0, 8), (43, 16)]);
    c[49] = 9; // the routing header runs past the payload
    assert_eq!(parse(&c), Err(ParseError::BadExtHeader));
    // Payload length 0 with hop-by-hop (a jumbogram): not supported.
    let mut j = with_exts(&p, &[(0, 8)]);
    j[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(parse(&j), Err(ParseError::BadExtHeader));
}

#[test]
fn both_family_accessors_and_setters() {
    let mut b = TCP_SYN;
    Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
    let mut r = PacketRepr::parse_checked(&b).unwrap();
    assert_eq!(r, PacketRepr::parse_checked_v4_only(&b).unwrap());
    assert_eq!(r.family(), Family::V4);
    assert_eq!((r.src_addr(), r.dst_addr()), (0x0a00_0001, 0x0a00_0002));
    assert_eq!(
        (r.proto(), r.ttl_or_hop_limit(), r.total_len()),
        (6, 64, 60)
    );
    assert!(r.v6().is_none() && r.v6_mut().is_none());
    r.set_src_addr(0xc0a8_0001);
    r.set_dst_addr(0xc0a8_0002);
    r.set_ttl_or_hop_limit(9);
    assert_eq!(
        (r.v4().src, r.v4().dst, r.v4().ttl),
        (0xc0a8_0001, 0xc0a8_0002, 9)
    );
    r.v4_mut().unwrap().tos = 4;
    assert_eq!(r.v4().tos, 4);

    let p = testutil::tcp6(S, D, 1, 2, 0x02, b"");
    let mut r = PacketRepr::parse_checked(&p).unwrap();
    assert!(r.v4_mut().is_none());
    r.set_src_addr(a6("2001:db8::77"));
    r.set_dst_addr(a6("2001:db8::78"));
    r.set_ttl_or_hop_limit(1);
    let v6 = r.v6().unwrap();
    assert_eq!(
        (v6.src, v6.dst, v6.hop_limit),
        (a6("2001:db8::77"), a6("2001:db8::78"), 1)
    );
    r.v6_mut().unwrap().flow_label = 5;
    assert_eq!(r.v6().unwrap().flow_label, 5);
    assert_eq!((Family::V4.name(), Family::V6.name()), ("ipv4", "ipv6"));
    assert_eq!((Family::V4.l3proto(), Family::V6.l3proto()), (2, 10));
    assert_eq!(Family::from_version(6), Some(Family::V6));
    assert_eq!(Family::from_version(5), None);
}

/// Random mutations of IPv6 packets through the parse, the walk and the
/// builders: nothing panics, and a description stays inside its packet.
#[test]
fn mutated_ipv6_never_panics() {
    use crate::wire::{build6, exthdr};
    let u = testutil::udp6(S, D, 1, 53, b"abc");
    let t = testutil::tcp6(S, D, 40000, 80, 0x02, b"xyz");
    let seeds = [
        u.clone(),
        t.clone(),
        testutil::echo_request6(S, D, 1, 2),
        testutil::icmp6_error(D, S, 1, 4, &u),
        with_exts(&t, &[(0, 8), (60, 8), (43, 16), (44, 8), (51, 12)]),
        with_exts(&u, &[(44, 8)]),
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for i in 0..40_000 {
        let mut p = seeds[i % seeds.len()].clone();
        for _ in 0..=(rnd() % 4) {
            let n = p.len();
            match rnd() % 5 {
                0 => p.truncate((rnd() as usize) % (n + 1)),
                1 => p.extend((0..rnd() % 24).map(|_| rnd() as u8)),
                _ if n > 0 => {
                    // Favour the header and the first extension headers.
                    let at = (rnd() as usize) % n.min(if rnd() % 2 == 0 { 80 } else { n });
                    p[at] = rnd() as u8;
                }
                _ => {}
            }
        }
        if let Ok(r) = PacketRepr::parse_checked(&p) {
            let end = usize::from(r.l4.offset) + usize::from(r.l4.len);
            assert_eq!(end, r.total_len());
            assert!(r.total_len() <= p.len());
        }
        let _ = exthdr::walk(&p);
        let src = a6("2001:db8::fe");
        if build6::icmp_error(&p, src, (1, 4), 0, &mut out) {
            assert!(out.len() <= 1280);
            testutil::assert_checksums6(&out);
        }
        let _ = build6::echo_reply(&p, &mut out);
        let _ = build6::tcp_reset(&p, &mut out);
    }
}
