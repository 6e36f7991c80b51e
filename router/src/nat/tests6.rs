//! NAT66: the same setup and rewrites for IPv6 packets, checksums checked
//! by etherparse, extension headers in front, ICMPv6 errors about a NATed
//! flow.

use super::*;
use crate::conntrack::{classify_repr, ConnTable, ConntrackConfig, PacketKey, Tracked};
use crate::wire::tcp::flags::{ACK, SYN};
use crate::wire::testutil::{self, a6, assert_checksums6};

fn now() -> Timestamp {
    Timestamp(1_000_000_000)
}

fn tuple6(p: &[u8]) -> Tuple {
    let repr = PacketRepr::parse_checked(p).unwrap();
    match classify_repr(&repr, p) {
        PacketKey::Flow { tuple, .. } => tuple,
        k => panic!("{k:?}"),
    }
}

/// Conntrack + NAT for one packet: a new flow gets `dnat`/`snat` set up,
/// every packet is rewritten towards the connection's target.
fn pass(t: &ConnTable, p: &mut [u8], dnat: Option<NatRange>, snat: Option<NatRange>) {
    let repr = PacketRepr::parse_checked(p).unwrap();
    let key = classify_repr(&repr, p);
    let mut rng = Rng::new(1);
    match t.track(&key, p.len() as u32, now()) {
        Tracked::New(mut nc) => {
            if let Some(r) = dnat {
                setup(t, &mut nc, &r, Manip::Dst, &mut rng, now()).unwrap();
            }
            translate(p, false, &nc.nat_target(), Manip::Dst).unwrap();
            if let Some(r) = snat {
                setup(t, &mut nc, &r, Manip::Src, &mut rng, now()).unwrap();
            }
            translate(p, false, &nc.nat_target(), Manip::Src).unwrap();
            t.confirm(&nc, now()).unwrap();
        }
        Tracked::Known { conn, .. } | Tracked::Related(conn) => {
            translate(p, false, &conn.nat_target(), Manip::Dst).unwrap();
            translate(p, false, &conn.nat_target(), Manip::Src).unwrap();
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dnat66_and_masquerade66_rewrite_both_ways_with_valid_checksums() {
    let t = ConnTable::new(ConntrackConfig::default());
    // Client -> service [2001:db8:96::10]:80, DNAT to [2001:db8:b::5]:8080,
    // MASQUERADE to the gateway's 2001:db8:ff::1; a hop-by-hop header in
    // front of TCP.
    let dnat = NatRange::addr(a6("2001:db8:b::5")).with_ports(8080, 8080);
    let masq = NatRange::masquerade(a6("2001:db8:ff::1"), None);
    let syn = testutil::tcp6("2001:db8:c::1", "2001:db8:96::10", 40000, 80, SYN, b"");
    let mut syn = testutil::with_exts(&syn, &[(0, 8)]);
    pass(&t, &mut syn, Some(dnat), Some(masq));
    assert_checksums6(&syn);
    let out = tuple6(&syn);
    assert_eq!(
        (out.src, out.dst, out.dport),
        (a6("2001:db8:ff::1"), a6("2001:db8:b::5"), 8080)
    );
    // The answer comes back to the masqueraded address and leaves with the
    // service's address and port, towards the client's own.
    let mut synack = testutil::tcp6(
        "2001:db8:b::5",
        "2001:db8:ff::1",
        8080,
        out.sport,
        SYN | ACK,
        b"",
    );
    pass(&t, &mut synack, None, None);
    assert_checksums6(&synack);
    let back = tuple6(&synack);
    assert_eq!(
        (back.src, back.sport, back.dst, back.dport),
        (a6("2001:db8:96::10"), 80, a6("2001:db8:c::1"), 40000)
    );
}

#[test]
fn icmpv6_error_about_a_natted_flow_reaches_the_client_with_its_own_addresses() {
    let t = ConnTable::new(ConntrackConfig::default());
    let dnat = NatRange::addr(a6("2001:db8:b::5")).with_ports(5353, 5353);
    let mut q = testutil::udp6("2001:db8:c::1", "2001:db8:96::10", 40001, 53, b"query");
    pass(&t, &mut q, Some(dnat), None);
    assert_eq!(tuple6(&q).dst, a6("2001:db8:b::5"));
    // The backend answers with port unreachable, quoting the DNATed datagram.
    let mut err = testutil::icmp6_error("2001:db8:b::5", "2001:db8:c::1", 1, 4, &q);
    pass(&t, &mut err, None, None);
    assert_checksums6(&err);
    let ip = Ipv6Packet::new_checked(&err[..]).unwrap();
    assert_eq!(
        ip.src_addr(),
        a6("2001:db8:96::10"),
        "outer source un-DNATed"
    );
    let quoted = Icmpv6Packet::new_checked(&err[40..]).unwrap();
    let inner = quoted.embedded().unwrap();
    let iip = Ipv6Packet::new_unchecked(inner);
    assert_eq!(iip.dst_addr(), a6("2001:db8:96::10"), "quoted destination");
    assert_eq!(get_u16(inner, 40 + 2), 53, "quoted destination port");
    assert!(quoted.verify_checksum(ip.src_addr(), ip.dst_addr()));
}

#[test]
fn icmpv6_echo_id_is_remapped_by_snat66() {
    let t = ConnTable::new(ConntrackConfig::default());
    let snat = NatRange::addr(a6("2001:db8:ff::1"));
    // Two clients with the same echo id behind one address: the second
    // gets another id.
    let mut ids = Vec::new();
    for c in ["2001:db8:c::1", "2001:db8:c::2"] {
        let mut p = testutil::echo_request6(c, "2001:db8:d::9", 7, 1);
        pass(&t, &mut p, None, Some(snat));
        assert_checksums6(&p);
        let tu = tuple6(&p);
        assert_eq!(tu.src, a6("2001:db8:ff::1"));
        ids.push(tu.icmp_id());
    }
    assert_eq!(ids[0], 7);
    assert_ne!(ids[1], 7);
}
