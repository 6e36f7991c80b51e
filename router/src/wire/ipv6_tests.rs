use super::*;
use crate::wire::testutil::{self, a6};

#[test]
fn fields_against_etherparse() {
    let mut p = testutil::udp6("2001:db8::1", "fd00::ff", 5353, 53, b"hello");
    p.extend_from_slice(&[0xee; 3]); // link padding past the payload length
    let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
    let (h, _) = etherparse::Ipv6Header::from_slice(&p).unwrap();
    assert_eq!(ip.version(), 6);
    assert_eq!(ip.payload_len(), h.payload_length);
    assert_eq!(ip.total_len(), 40 + 13);
    assert_eq!(ip.next_header(), nexthdr::UDP);
    assert_eq!(ip.hop_limit(), 64);
    assert_eq!(ip.src_addr(), a6("2001:db8::1"));
    assert_eq!(ip.dst_addr(), u128::from(h.destination_addr()));
    assert_eq!(ip.payload().len(), 13, "stops at the payload length");
    assert_eq!(ip.header(), &p[..40]);

    let mut ip = Ipv6Packet::new_checked(&mut p[..]).unwrap();
    ip.set_traffic_class(0xb8);
    ip.set_flow_label(0x1_2345);
    ip.set_hop_limit(2);
    ip.set_src_addr(a6("2001:db8:1::7"));
    ip.set_dst_addr(a6("2001:db8:2::8"));
    assert_eq!(ip.decrement_hop_limit(), 1);
    assert_eq!((ip.traffic_class(), ip.flow_label()), (0xb8, 0x1_2345));
    ip.set_flow_label(0xfff_ffff); // only 20 bits are kept
    assert_eq!((ip.traffic_class(), ip.flow_label()), (0xb8, 0xf_ffff));
    ip.set_flow_label(0x1_2345);
    ip.set_version();
    let (h, _) = etherparse::Ipv6Header::from_slice(&p).unwrap();
    assert_eq!(h.traffic_class, 0xb8);
    assert_eq!(h.flow_label.value(), 0x1_2345);
    assert_eq!(h.hop_limit, 1);
    assert_eq!(u128::from(h.source_addr()), a6("2001:db8:1::7"));
    assert_eq!(u128::from(h.destination_addr()), a6("2001:db8:2::8"));
    let mut ip = Ipv6Packet::new_checked(&mut p[..]).unwrap();
    ip.set_hop_limit(0);
    assert_eq!(ip.decrement_hop_limit(), 0);
    ip.set_next_header(nexthdr::NONE);
    ip.set_payload_len(0);
    assert!(ip.payload_mut().is_empty());
}

#[test]
fn checks_as_ip6_rcv_core() {
    let p = testutil::tcp6("2001:db8::1", "2001:db8::2", 40000, 80, 0x02, b"");
    assert_eq!(
        Ipv6Packet::new_checked(&p[..39]).unwrap_err(),
        WireError::Truncated
    );
    // The payload length runs past the buffer.
    assert_eq!(
        Ipv6Packet::new_checked(&p[..p.len() - 1]).unwrap_err(),
        WireError::BadLength
    );
    let mut v4 = p.clone();
    v4[0] = 0x45;
    assert_eq!(
        Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
        WireError::BadVersion
    );
    assert!(Ipv6Packet::new_checked(&p[..]).is_ok());
}

#[test]
fn address_classes() {
    assert!(is_multicast(a6("ff02::1")) && !is_multicast(a6("fe80::1")));
    assert_eq!(multicast_scope(a6("ff02::1")), 2);
    assert_eq!(multicast_scope(a6("ff01::1")), 1);
    assert_eq!(multicast_scope(a6("ff1e::1")), 0xe);
    assert!(is_v4_mapped(a6("::ffff:10.0.0.1")) && !is_v4_mapped(a6("::10.0.0.1")));
    assert_eq!(a6("::1"), LOOPBACK);
}
