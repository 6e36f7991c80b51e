use super::*;
use crate::wire::icmpv6::{unreach, Icmpv6Packet};
use crate::wire::testutil::{self, a6, assert_checksums6, with_exts};

const GW: &str = "2001:db8::fe";

#[test]
fn icmp_errors_quote_within_the_minimum_mtu() {
    let big = testutil::udp6("2001:db8::1", "2001:db8:9::2", 1000, 53, &[7u8; 2000]);
    let mut out = Vec::new();
    assert!(time_exceeded(&big, a6(GW), &mut out));
    assert_eq!(out.len(), 1280);
    assert_checksums6(&out);
    assert_eq!(&out[48..], &big[..1280 - 48]);
    let ip = Ipv6Packet::new_checked(&out[..]).unwrap();
    assert_eq!(
        (
            ip.src_addr(),
            ip.dst_addr(),
            ip.hop_limit(),
            ip.next_header()
        ),
        (a6(GW), a6("2001:db8::1"), 64, 58)
    );
    let m = Icmpv6Packet::new_checked(&out[40..]).unwrap();
    assert_eq!((m.msg_type(), m.code(), m.info()), (3, 0, 0));
    assert_eq!(m.embedded().unwrap(), &big[..1232]);

    assert!(packet_too_big(&big, a6(GW), 1400, &mut out));
    assert_eq!(Icmpv6Packet::new_checked(&out[40..]).unwrap().info(), 1400);
    assert_checksums6(&out);
    for code in [
        unreach::NO_ROUTE,
        unreach::ADMIN_PROHIBITED,
        unreach::ADDR,
        unreach::PORT,
        unreach::POLICY_FAIL,
        unreach::REJECT_ROUTE,
    ] {
        assert!(dest_unreach(&big, a6(GW), code, &mut out));
        assert_eq!((out[40], out[41]), (1, code));
    }
    assert!(param_problem(&big, a6(GW), 0, 6, &mut out));
    assert_eq!(Icmpv6Packet::new_checked(&out[40..]).unwrap().info(), 6);

    // A small packet is quoted whole, without its link padding.
    let mut small = testutil::tcp6("2001:db8::1", "2001:db8:9::2", 40000, 25, 0x02, b"");
    let n = small.len();
    small.extend_from_slice(&[0xee; 4]);
    assert!(dest_unreach(&small, a6(GW), unreach::PORT, &mut out));
    assert_eq!(out.len(), 48 + n);
    assert_eq!(&out[48..], &small[..n]);
}

#[test]
fn icmp_errors_refused_as_rfc4443() {
    let mut out = Vec::new();
    let src = a6(GW);
    let u = testutil::udp6("2001:db8::1", "2001:db8::2", 1, 2, b"x");
    // Never about an ICMPv6 error or a redirect; about a query, yes.
    let err = testutil::icmp6_error("2001:db8::2", "2001:db8::1", 1, 4, &u);
    assert!(!dest_unreach(&err, src, unreach::PORT, &mut out));
    let mut redirect = err.clone();
    redirect[40] = types::REDIRECT;
    assert!(!dest_unreach(&redirect, src, unreach::PORT, &mut out));
    let echo = testutil::echo_request6("2001:db8::1", "2001:db8::2", 1, 1);
    assert!(dest_unreach(
        &echo,
        src,
        unreach::ADMIN_PROHIBITED,
        &mut out
    ));
    // Behind extension headers, still recognised as an error.
    let hidden = with_exts(&err, &[(0, 8), (60, 8)]);
    assert!(!dest_unreach(&hidden, src, unreach::PORT, &mut out));
    // A later fragment of an error is eligible (nothing says it is one).
    let mut later = with_exts(&err, &[(44, 8)]);
    later[42..44].copy_from_slice(&(8u16 << 3).to_be_bytes());
    assert!(time_exceeded(&later, src, &mut out));
    // The source must name one node.
    let mut q = u.clone();
    q[8..24].copy_from_slice(&[0; 16]);
    assert!(!dest_unreach(&q, src, unreach::PORT, &mut out));
    q[8] = 0xff;
    assert!(!packet_too_big(&q, src, 1280, &mut out));
    // To a multicast group: only Packet Too Big, and Parameter Problem
    // code 2 about an option whose type asks for a report.
    let mut m = with_exts(&u, &[(0, 8)]);
    m[24..40].copy_from_slice(&a6("ff0e::1").to_be_bytes());
    assert!(!dest_unreach(&m, src, unreach::PORT, &mut out));
    assert!(!time_exceeded(&m, src, &mut out));
    assert!(packet_too_big(&m, src, 1280, &mut out));
    m[42] = 0x85; // option type 10xxxxxx at offset 42
    m[43] = 0;
    assert!(param_problem(&m, src, param_problem::OPTION, 42, &mut out));
    assert!(!param_problem(&m, src, param_problem::OPTION, 40, &mut out));
    assert!(!param_problem(
        &m,
        src,
        param_problem::HEADER_FIELD,
        42,
        &mut out
    ));
    // Not IPv6 at all.
    assert!(!dest_unreach(&u[..30], src, unreach::PORT, &mut out));
    assert!(out.is_empty());
}

#[test]
fn echo_reply_mirrors_the_request() {
    let mut out = Vec::new();
    let mut rq = testutil::echo_request6("2001:db8::1", "2001:db8::fe", 99, 5);
    Ipv6Packet::new_unchecked(&mut rq[..]).set_traffic_class(0x20);
    assert!(echo_reply(&rq, &mut out));
    assert_checksums6(&out);
    let ip = Ipv6Packet::new_checked(&out[..]).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.traffic_class()),
        (a6("2001:db8::fe"), a6("2001:db8::1"), 0x20)
    );
    let m = Icmpv6Packet::new_checked(&out[40..]).unwrap();
    assert_eq!(
        (m.msg_type(), m.ident(), m.seq()),
        (types::ECHO_REPLY, 99, 5)
    );
    assert_eq!(&out[44..], &rq[44..]);
    // Not to a reply, nor to a multicast request; extension headers skipped.
    assert!(!echo_reply(&out.clone(), &mut out));
    let mut mc = rq.clone();
    mc[24..40].copy_from_slice(&a6("ff02::1").to_be_bytes());
    assert!(!echo_reply(&mc, &mut out));
    let ext = with_exts(&rq, &[(0, 8)]);
    assert!(echo_reply(&ext, &mut out));
    assert_eq!(out.len(), rq.len());
    assert_checksums6(&out);
}

#[test]
fn tcp_reset_as_nf_send_reset6() {
    let mut out = Vec::new();
    let syn = testutil::tcp6("2001:db8::1", "2001:db8::fe", 40000, 22, tf::SYN, b"");
    assert!(tcp_reset(&syn, &mut out));
    assert_checksums6(&out);
    assert_eq!(out.len(), 60);
    let ip = Ipv6Packet::new_checked(&out[..]).unwrap();
    assert_eq!(
        (
            ip.src_addr(),
            ip.dst_addr(),
            ip.hop_limit(),
            ip.traffic_class()
        ),
        (a6("2001:db8::fe"), a6("2001:db8::1"), 64, 0)
    );
    let t = TcpPacket::new_checked(&out[40..]).unwrap();
    let s = TcpPacket::new_checked(&syn[40..]).unwrap();
    assert_eq!(
        (t.src_port(), t.dst_port(), t.flags()),
        (22, 40000, tf::RST | tf::ACK)
    );
    assert_eq!(t.ack_number(), s.seq_number().wrapping_add(1));
    let ack = testutil::tcp6("2001:db8::1", "2001:db8::fe", 40000, 22, tf::ACK, b"data");
    let ack = with_exts(&ack, &[(60, 8)]);
    assert!(tcp_reset(&ack, &mut out));
    assert_checksums6(&out);
    let t = TcpPacket::new_checked(&out[40..]).unwrap();
    let s = TcpPacket::new_checked(&ack[48..]).unwrap();
    assert_eq!((t.flags(), t.seq_number()), (tf::RST, s.ack_number()));
    let rst = testutil::tcp6("2001:db8::1", "2001:db8::fe", 40000, 22, tf::RST, b"");
    assert!(!tcp_reset(&rst, &mut out));
    let mut mc = syn.clone();
    mc[24..40].copy_from_slice(&a6("ff02::1").to_be_bytes());
    assert!(!tcp_reset(&mc, &mut out));
    let mut frag = with_exts(&syn, &[(44, 8)]);
    frag[43] = 1; // M set: a fragment
    assert!(!tcp_reset(&frag, &mut out));
    let u = testutil::udp6("2001:db8::1", "2001:db8::fe", 1, 2, b"");
    assert!(!tcp_reset(&u, &mut out));
}
