//! The table with both families: IPv6 entries beside IPv4 ones, their
//! addresses kept outside the slot, lookups in both directions through the
//! index and the hint table, ICMPv6 queries, memory per family.

use super::*;
use crate::clock::Timestamp;
use std::time::Duration;

fn secs(s: u64) -> Timestamp {
    Timestamp(s * 1_000_000_000)
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn add(t: &ConnTable, tu: &Tuple, now: Timestamp) {
    let nc = t
        .new_conn(tu, &tcp::Segment::default(), 100, now)
        .expect("a new connection");
    t.confirm(&nc, now).expect("confirmed");
}

#[test]
fn ipv6_tuples_pack_apart_from_ipv4_and_invert() {
    let t6 = Tuple::new6(v6("2001:db8::1"), v6("2001:db8::2"), PROTO_UDP, 5000, 53);
    let t4 = Tuple::new(
        "10.0.0.1".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
        17,
        5000,
        53,
    );
    assert_ne!(t6.pack(), t4.pack());
    assert_eq!(t6.pack().1 & PACK_V6, PACK_V6);
    assert_eq!(t4.pack().1 & PACK_V6, 0);
    let r = t6.inverse();
    assert_eq!(
        (r.src_ip(), r.sport, r.family),
        (t6.dst_ip(), 53, Family::V6)
    );
    let (a, b) = t6.pack();
    // A fold is not the tuple: unpack6 needs the addresses from beside.
    assert_eq!(Tuple::unpack6(b, t6.src, t6.dst), t6);
    assert_ne!(Tuple::unpack(a, b), t6);
    // ICMPv6 echo 128 <-> 129, node information 139 <-> 140; an error has
    // no inverse type.
    let e = Tuple::icmp6(v6("::1"), v6("::2"), 128, 0, 7);
    assert_eq!(e.invert().unwrap().icmp_type(), 129);
    assert_eq!(
        Tuple::icmp6(v6("::1"), v6("::2"), 139, 0, 7)
            .invert()
            .unwrap()
            .icmp_type(),
        140
    );
    assert!(Tuple::icmp6(v6("::1"), v6("::2"), 1, 0, 0)
        .invert()
        .is_none());
    assert_eq!(
        e.to_string(),
        "src=::1 dst=::2 type=128 code=0 id=7",
        "conntrack -L form"
    );
}

#[test]
fn ipv6_entries_are_found_both_ways_and_deleted() {
    let t = ConnTable::new(ConntrackConfig::default());
    let now = secs(1);
    let mut tuples = Vec::new();
    for i in 0..200u16 {
        let src = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | i as u128);
        let tu = Tuple::new6(src, v6("2001:db8:ffff::53"), PROTO_UDP, 40000 + i, 53);
        add(&t, &tu, now);
        tuples.push(tu);
    }
    // An IPv4 flow whose packed words would equal a fold is still apart.
    let t4 = Tuple::new(
        "10.0.0.1".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
        17,
        1,
        2,
    );
    add(&t, &t4, now);
    for tu in &tuples {
        // Twice: the first lookup goes through the index and hints the
        // entry, the second is served by the hint table.
        for _ in 0..2 {
            let c = t.lookup(tu, now).expect("original direction");
            assert_eq!((c.dir(), c.orig()), (Dir::Original, *tu));
            let r = t.lookup(&tu.inverse(), now).expect("reply direction");
            assert_eq!((r.dir(), r.reply()), (Dir::Reply, tu.inverse()));
        }
    }
    // Same fold, different addresses: swap the high and low halves of the
    // source (the fold xors them) - not the entry.
    let tu = tuples[5];
    let swapped = Tuple {
        src: tu.src.rotate_left(64),
        ..tu
    };
    assert_eq!(swapped.pack(), tu.pack());
    assert!(t.lookup(&swapped, now).is_none());
    assert_eq!(t.lookup(&t4, now).unwrap().orig(), t4);
    t.check_invariants();
    let snap = t.list(now);
    assert_eq!(
        snap.iter().filter(|s| s.orig.family == Family::V6).count(),
        200
    );
    assert_eq!(t.delete_where(|s| s.orig.family == Family::V6), 200);
    assert!(t.lookup(&tuples[0], now).is_none());
    assert_eq!(t.len(), 1);
    t.check_invariants();
}

#[test]
fn icmpv6_queries_start_connections_and_errors_do_not() {
    let t = ConnTable::new(ConntrackConfig::default());
    let now = secs(1);
    let echo = Tuple::icmp6(v6("2001:db8::1"), v6("2001:db8::2"), 128, 0, 9);
    let nc = t
        .new_conn(&echo, &tcp::Segment::default(), 64, now)
        .unwrap();
    let c = t.confirm(&nc, now).unwrap().conn;
    assert_eq!(c.deadline(), now + Duration::from_secs(30));
    let reply = Tuple::icmp6(v6("2001:db8::2"), v6("2001:db8::1"), 129, 0, 9);
    assert_eq!(t.lookup(&reply, now).unwrap().dir(), Dir::Reply);
    // An echo reply or an error type cannot open a connection.
    for ty in [129, 1, 135] {
        let tu = Tuple::icmp6(v6("2001:db8::1"), v6("2001:db8::2"), ty, 0, 9);
        assert!(t.new_conn(&tu, &tcp::Segment::default(), 64, now).is_none());
    }
}

#[test]
fn ipv4_entries_hold_no_ipv6_words() {
    let t = ConnTable::new(ConntrackConfig::default());
    let now = secs(1);
    let base = t.memory_usage();
    for i in 0..1000u32 {
        let tu = Tuple::new(
            (0x0a00_0000 + i).into(),
            "10.1.0.1".parse().unwrap(),
            17,
            1,
            2,
        );
        add(&t, &tu, now);
    }
    let v4 = t.memory_usage() - base;
    let tu = Tuple::new6(v6("2001:db8::1"), v6("2001:db8::2"), PROTO_UDP, 1, 2);
    add(&t, &tu, now);
    // The first IPv6 entry in a chunk brings that chunk's address words.
    let grown = t.memory_usage() - base - v4;
    assert!(
        grown >= slab::CHUNK * std::mem::size_of::<slab::V6Words>(),
        "IPv6 words allocated: {grown}"
    );
    // One chunk of slots (and the index) for the IPv4 entries, no words.
    let with_words = slab::CHUNK * (ConnTable::SLOT_BYTES + std::mem::size_of::<slab::V6Words>());
    assert!(v4 < with_words, "IPv4 only: {v4} bytes");
}

fn key6(p: &[u8]) -> PacketKey {
    let repr = PacketRepr::parse_checked(p).expect("a valid IPv6 packet");
    classify_repr(&repr, p)
}

#[test]
fn ipv6_packets_classify_past_extension_headers() {
    use crate::wire::testutil::{self, a6};
    let udp = testutil::udp6("2001:db8::1", "2001:db8::2", 5000, 53, b"q");
    // Hop-by-hop, destination options and an atomic fragment in front.
    let p = testutil::with_exts(&udp, &[(0, 8), (60, 16), (44, 8)]);
    let PacketKey::Flow { tuple, .. } = key6(&p) else {
        panic!("{:?}", key6(&p))
    };
    let want = Tuple::of(
        Family::V6,
        a6("2001:db8::1"),
        a6("2001:db8::2"),
        17,
        5000,
        53,
    );
    assert_eq!(tuple, want);
    // An echo request: id in the tuple; a neighbour solicitation: left
    // untracked, as the kernel's noct_valid_new.
    let echo = testutil::echo_request6("2001:db8::1", "2001:db8::2", 77, 1);
    let PacketKey::Flow { tuple, .. } = key6(&echo) else {
        panic!()
    };
    assert_eq!(
        (tuple.proto, tuple.icmp_type(), tuple.icmp_id()),
        (58, 128, 77)
    );
    let ns = testutil::icmp6_error("2001:db8::1", "2001:db8::2", 135, 0, &[0; 20]);
    assert_eq!(key6(&ns), PacketKey::NoTrack);
    // An error quoting the UDP datagram (sent the other way): RELATED to it.
    let unreach = testutil::icmp6_error("2001:db8::2", "2001:db8::1", 1, 4, &udp);
    assert_eq!(key6(&unreach), PacketKey::IcmpError { embedded: want });
    // A quote cut inside its extension headers is not trackable.
    let cut = testutil::icmp6_error("2001:db8::2", "2001:db8::1", 1, 4, &p[..44]);
    assert_eq!(key6(&cut), PacketKey::Untrackable);
}

#[test]
fn ipv6_tcp_connection_tracks_to_established() {
    use crate::wire::tcp::flags::{ACK, SYN};
    use crate::wire::testutil;
    let t = ConnTable::new(ConntrackConfig::default());
    let now = secs(1);
    let step = |p: &[u8]| -> CtState {
        match t.track(&key6(p), p.len() as u32, now) {
            Tracked::New(nc) => {
                t.confirm(&nc, now).unwrap();
                CtState::New
            }
            Tracked::Known { state, .. } => state,
            other => panic!("{other:?}"),
        }
    };
    let c = ("2001:db8::1", "2001:db8::2");
    assert_eq!(
        step(&testutil::tcp6(c.0, c.1, 40000, 80, SYN, b"")),
        CtState::New
    );
    assert_eq!(
        step(&testutil::tcp6(c.1, c.0, 80, 40000, SYN | ACK, b"")),
        CtState::Established
    );
    let conn = t.lookup(&t.list(now)[0].orig, now).unwrap();
    assert_eq!(conn.tcp_state(), Some(TcpState::SynRecv));
    assert_eq!(t.list(now)[0].orig.family, Family::V6);
}
