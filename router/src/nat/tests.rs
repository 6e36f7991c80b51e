//! NAT scenario tests: allocation, rewriting with checksums checked by an
//! independent implementation (etherparse), ICMP errors, the confirm race.

use super::*;
use crate::conntrack::{classify, ConnTable, ConntrackConfig, CtState, PacketKey, Tracked};
use crate::ruleset::IntoAddr;
use crate::wire::tcp::flags::*;
use crate::wire::testutil::{self, a, assert_checksums};
use std::time::Duration;

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn table() -> ConnTable {
    ConnTable::new(ConntrackConfig {
        max_entries: 1 << 16,
        ..Default::default()
    })
}

/// A minimal pipeline for one packet: conntrack, NAT decision for NEW
/// packets (`dnat`/`snat` ranges), rewrite, confirm. Returns the ctstate.
fn pass(
    t: &ConnTable,
    pkt: &mut [u8],
    partial: bool,
    dnat: Option<NatRange>,
    snat: Option<NatRange>,
    rng: &mut Rng,
    now: Timestamp,
) -> CtState {
    let key = classify(pkt).unwrap();
    match t.track(&key, pkt.len() as u32, now) {
        Tracked::Known { conn, state } => {
            let target = conn.nat_target();
            translate(pkt, partial, &target, Manip::Dst).unwrap();
            translate(pkt, partial, &target, Manip::Src).unwrap();
            state
        }
        Tracked::Related(conn) => {
            let target = conn.nat_target();
            translate(pkt, partial, &target, Manip::Dst).unwrap();
            translate(pkt, partial, &target, Manip::Src).unwrap();
            CtState::Related
        }
        Tracked::New(mut nc) => {
            if let Some(r) = dnat {
                setup(t, &mut nc, &r, Manip::Dst, rng, now).unwrap();
            }
            translate(pkt, partial, &nc.nat_target(), Manip::Dst).unwrap();
            if let Some(r) = snat {
                setup(t, &mut nc, &r, Manip::Src, rng, now).unwrap();
            }
            translate(pkt, partial, &nc.nat_target(), Manip::Src).unwrap();
            let c = t.confirm(&nc, now).unwrap();
            if c.clash == Some(crate::conntrack::ClashKind::Retranslate) {
                translate_both(pkt, partial, &c.conn.nat_target()).unwrap();
            }
            CtState::New
        }
        Tracked::Invalid => CtState::Invalid,
        Tracked::Untracked => CtState::Untracked,
    }
}

fn tuple_of(p: &[u8]) -> Tuple {
    match classify(p).unwrap() {
        PacketKey::Flow { tuple, .. } => tuple,
        k => panic!("{k:?}"),
    }
}

#[test]
fn dnat_tcp_scenario_translates_both_ways_and_expires() {
    let t = table();
    let mut rng = Rng::new(1);
    let vip = NatRange::addr(a("10.96.0.10"))
        .with_ports(8080, 8080)
        .with_addr(a("172.16.0.5"));
    // Client 10.0.0.1:40000 -> service 10.96.0.10:80, DNAT to 172.16.0.5:8080.
    let mut syn = testutil::tcp("10.0.0.1", "10.96.0.10", 40000, 80, SYN, b"");
    assert_eq!(
        pass(&t, &mut syn, false, Some(vip), None, &mut rng, secs(1)),
        CtState::New
    );
    assert_eq!(
        tuple_of(&syn),
        Tuple::new(a("10.0.0.1"), a("172.16.0.5"), 6, 40000, 8080)
    );
    assert_checksums(&syn);
    let c = t.list(secs(1))[0];
    assert!(c.status.dst_nat() && !c.status.src_nat());

    let mut synack = testutil::tcp("172.16.0.5", "10.0.0.1", 8080, 40000, SYN | ACK, b"");
    assert_eq!(
        pass(&t, &mut synack, false, None, None, &mut rng, secs(1)),
        CtState::Established
    );
    assert_eq!(
        tuple_of(&synack),
        Tuple::new(a("10.96.0.10"), a("10.0.0.1"), 6, 80, 40000)
    );
    assert_checksums(&synack);

    let mut ack = testutil::tcp(
        "10.0.0.1",
        "10.96.0.10",
        40000,
        80,
        ACK,
        b"GET / HTTP/1.1\r\n\r\n",
    );
    assert_eq!(
        pass(&t, &mut ack, false, None, None, &mut rng, secs(2)),
        CtState::Established
    );
    assert_eq!(tuple_of(&ack).dst_v4(), a("172.16.0.5"));
    assert_checksums(&ack);
    assert!(t.list(secs(2))[0].status.assured());

    let mut now = secs(3);
    for (client, fl) in [
        (true, FIN | ACK),
        (false, ACK),
        (false, FIN | ACK),
        (true, ACK),
    ] {
        let mut p = if client {
            testutil::tcp("10.0.0.1", "10.96.0.10", 40000, 80, fl, b"")
        } else {
            testutil::tcp("172.16.0.5", "10.0.0.1", 8080, 40000, fl, b"")
        };
        assert_eq!(
            pass(&t, &mut p, false, None, None, &mut rng, now),
            CtState::Established
        );
        assert_checksums(&p);
        now = now + Duration::from_millis(100);
    }
    let tw = t.list(now)[0];
    assert_eq!(tw.tcp_state, Some(crate::conntrack::TcpState::TimeWait));
    assert_eq!(t.list(tw.deadline - Duration::from_nanos(1)).len(), 1);
    let key = Tuple::new(a("10.0.0.1"), a("10.96.0.10"), 6, 40000, 80);
    assert!(t.lookup(&key, now + Duration::from_secs(120)).is_none());
    assert!(t.is_empty());
}

#[test]
fn snat_keeps_port_when_free_and_moves_within_class_on_clash() {
    let t = table();
    let mut rng = Rng::new(7);
    let masq = NatRange::masquerade(a("203.0.113.1"), None);
    let mut out = Vec::new();
    for (client, sport) in [
        ("10.0.0.1", 40000u16),
        ("10.0.0.2", 40000),
        ("10.0.0.3", 700),
        ("10.0.0.4", 700),
        ("10.0.0.5", 100),
        ("10.0.0.6", 100),
    ] {
        let mut p = testutil::udp(client, "198.51.100.7", sport, 53, b"q");
        pass(&t, &mut p, false, None, Some(masq), &mut rng, secs(1));
        assert_checksums(&p);
        let tt = tuple_of(&p);
        assert_eq!(tt.src_v4(), a("203.0.113.1"));
        out.push(tt.sport);
    }
    assert_eq!(
        out[0], 40000,
        "source port kept when the reply tuple is free"
    );
    assert!(out[1] != 40000 && out[1] >= 1024);
    assert_eq!(out[2], 700);
    assert!(out[3] != 700 && (600..=1023).contains(&out[3]));
    assert_eq!(out[4], 100);
    assert!(out[5] != 100 && (1..=511).contains(&out[5]));
    // Replies reach the right clients.
    for (i, client) in ["10.0.0.1", "10.0.0.2"].iter().enumerate() {
        let mut r = testutil::udp("198.51.100.7", "203.0.113.1", 53, out[i], b"r");
        assert_eq!(
            pass(&t, &mut r, false, None, None, &mut rng, secs(2)),
            CtState::Established
        );
        assert_eq!(
            tuple_of(&r),
            Tuple::new(a("198.51.100.7"), a(client), 17, 53, 40000)
        );
        assert_checksums(&r);
    }
}

#[test]
fn port_range_exhaustion_and_persistent_addresses() {
    let t = table();
    let mut rng = Rng::new(3);
    let r = NatRange::addr(a("203.0.113.9")).with_ports(5000, 5001);
    for (i, want_ok) in [(1, true), (2, true), (3, false)] {
        let p = testutil::udp(&format!("10.0.0.{i}"), "198.51.100.7", 40000, 53, b"");
        let Tracked::New(mut nc) = t.track(&classify(&p).unwrap(), 0, secs(1)) else {
            panic!()
        };
        let res = setup(&t, &mut nc, &r, Manip::Src, &mut rng, secs(1));
        assert_eq!(res.is_ok(), want_ok);
        if res.is_ok() {
            assert!((5000..=5001).contains(&nc.reply.dport));
            t.confirm(&nc, secs(1)).unwrap();
        }
    }
    // Address ranges: PERSISTENT maps a source to one address whatever the
    // destination; without it the destination takes part in the hash.
    let range = NatRange::addrs(a("203.0.113.0"), a("203.0.113.255"));
    let pick = |dst: &str, rr: &NatRange| {
        let p = testutil::udp("10.0.0.77", dst, 1, 2, b"");
        let Tracked::New(mut nc) = t.track(&classify(&p).unwrap(), 0, secs(1)) else {
            panic!()
        };
        setup(&t, &mut nc, rr, Manip::Src, &mut Rng::new(1), secs(1)).unwrap();
        nc.reply.dst
    };
    let pers = range.with_flags(flags::PERSISTENT);
    let dsts: Vec<String> = (1..40).map(|i| format!("198.51.{i}.1")).collect();
    let p: std::collections::HashSet<_> = dsts.iter().map(|d| pick(d, &pers)).collect();
    let n: std::collections::HashSet<_> = dsts.iter().map(|d| pick(d, &range)).collect();
    assert_eq!(p.len(), 1);
    assert!(n.len() > 10, "hash over src and dst spreads: {}", n.len());
}

#[test]
fn random_fully_spreads_source_ports() {
    let t = table();
    let mut rng = Rng::new(0xfeed);
    let r = NatRange::addr(a("203.0.113.1")).with_flags(flags::PROTO_RANDOM_FULLY);
    const N: usize = 16_000;
    const BINS: usize = 16;
    let mut bins = [0usize; BINS];
    let mut same = 0;
    for i in 0..N {
        let src = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        let p = testutil::udp(&src, "198.51.100.7", 40000, 53, b"");
        let Tracked::New(mut nc) = t.track(&classify(&p).unwrap(), 0, secs(1)) else {
            panic!()
        };
        setup(&t, &mut nc, &r, Manip::Src, &mut rng, secs(1)).unwrap();
        let port = nc.reply.dport;
        assert!(port >= 1024);
        same += (port == 40000) as usize;
        bins[(port as usize - 1024) * BINS / (65536 - 1024)] += 1;
        t.confirm(&nc, secs(1)).unwrap();
    }
    let e = N as f64 / BINS as f64;
    let chi2: f64 = bins.iter().map(|&o| (o as f64 - e).powi(2) / e).sum();
    // 15 degrees of freedom: P(chi2 > 37.7) = 0.001.
    assert!(chi2 < 37.7, "chi2 = {chi2}, bins = {bins:?}");
    assert!(
        same < 10,
        "random-fully must not prefer the original port: {same}"
    );
    assert_eq!(t.len(), N);
}

#[test]
fn partial_checksums_follow_addresses_not_ports() {
    for proto in ["tcp", "udp"] {
        let t = table();
        let mut rng = Rng::new(5);
        let mk = |s: &str, d: &str, sp, dp| {
            if proto == "tcp" {
                testutil::tcp(s, d, sp, dp, SYN, b"payload bytes")
            } else {
                testutil::udp(s, d, sp, dp, b"payload bytes")
            }
        };
        // Occupy 40000 so the SNAT must change the port too.
        let mut first = mk("10.0.0.9", "198.51.100.7", 40000, 443);
        let masq = NatRange::masquerade(a("203.0.113.1"), None);
        let dnat = NatRange::addr(a("172.16.0.5")).with_ports(8443, 8443);
        pass(
            &t,
            &mut first,
            false,
            Some(dnat),
            Some(masq),
            &mut rng,
            secs(1),
        );
        let mut p = mk("10.0.0.1", "198.51.100.7", 40000, 443);
        testutil::to_partial(&mut p);
        let before = p.clone();
        pass(&t, &mut p, true, Some(dnat), Some(masq), &mut rng, secs(1));
        let tt = tuple_of(&p);
        assert_eq!(
            (tt.src_v4(), tt.dst_v4(), tt.dport),
            (a("203.0.113.1"), a("172.16.0.5"), 8443)
        );
        assert_ne!(tt.sport, 40000);
        // Still a valid partial: equals the new pseudo-header sum...
        let mut expect = p.clone();
        testutil::to_partial(&mut expect);
        assert_eq!(p, expect, "{proto}: partial field = new pseudo-header sum");
        assert_ne!(p, before);
        // ...and the receiver completes it into a correct checksum.
        testutil::finish_partial(&mut p);
        assert_checksums(&p);
    }
}

#[test]
fn udp_zero_checksum_stays_zero_and_computed_zero_becomes_ffff() {
    let mut p = testutil::udp("10.0.0.1", "10.0.0.2", 1000, 53, b"abc");
    p[26] = 0;
    p[27] = 0;
    let target = Tuple::new(a("192.0.2.1"), a("10.0.0.2"), 17, 2000, 53);
    assert!(translate(&mut p, false, &target, Manip::Src).unwrap());
    assert_eq!(&p[26..28], &[0, 0]);
    assert_checksums(&p);
    // Find a rewrite whose correct checksum is 0 and check it is sent as 0xffff.
    let base = testutil::udp("10.0.0.1", "10.0.0.2", 1000, 53, b"abc");
    let mut hit = false;
    for port in 1..=65535u16 {
        let mut q = base.clone();
        let tgt = Tuple::new(a("10.0.0.1"), a("10.0.0.2"), 17, port, 53);
        translate(&mut q, false, &tgt, Manip::Src).unwrap();
        let mut full = q.clone();
        full[26] = 0;
        full[27] = 0;
        let s = crate::wire::checksum::sum(&full[20..], 0)
            + crate::wire::checksum::pseudo_header_sum(a("10.0.0.1"), a("10.0.0.2"), 17, 11);
        if !crate::wire::checksum::fold(s) == 0 {
            assert_eq!(&q[26..28], &[0xff, 0xff], "port {port}");
            hit = true;
            break;
        }
    }
    assert!(hit);
}

#[test]
fn icmp_error_about_dnat_flow_is_translated_inside_and_outside() {
    let t = table();
    let mut rng = Rng::new(9);
    let dnat = NatRange::addr(a("172.16.0.5")).with_ports(5353, 5353);
    let mut q = testutil::udp("10.0.0.1", "10.96.0.10", 33000, 53, b"query");
    pass(&t, &mut q, false, Some(dnat), None, &mut rng, secs(1));
    assert_eq!(
        tuple_of(&q),
        Tuple::new(a("10.0.0.1"), a("172.16.0.5"), 17, 33000, 5353)
    );
    // The server answers port unreachable, quoting the whole datagram it got.
    for full in [true, false] {
        let mut err = testutil::icmp_error("172.16.0.5", "10.0.0.1", 3, 3, &q, full);
        assert_eq!(
            pass(&t, &mut err, false, None, None, &mut rng, secs(2)),
            CtState::Related
        );
        assert_checksums(&err);
        let ip = crate::wire::Ipv4Packet::new_checked(&err[..]).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (a("10.96.0.10"), a("10.0.0.1"))
        );
        let inner = &err[28..];
        let iip = crate::wire::Ipv4Packet::new_unchecked(inner);
        assert!(iip.verify_checksum(), "embedded IP header checksum");
        assert_eq!(
            (iip.src_addr(), iip.dst_addr()),
            (a("10.0.0.1"), a("10.96.0.10"))
        );
        assert_eq!(crate::wire::get_u16(inner, 20), 33000);
        assert_eq!(crate::wire::get_u16(inner, 22), 53);
        if full {
            // The whole datagram is quoted: its UDP checksum must be right too.
            assert_checksums(inner);
        }
    }
}

#[test]
fn icmp_error_about_masqueraded_flow_reaches_the_client() {
    let t = table();
    let mut rng = Rng::new(9);
    let masq = NatRange::masquerade(a("203.0.113.1"), None);
    let mut syn = testutil::tcp("10.0.0.1", "198.51.100.7", 40000, 80, SYN, b"");
    pass(&t, &mut syn, false, None, Some(masq), &mut rng, secs(1));
    let mut err = testutil::icmp_error("198.51.100.7", "203.0.113.1", 3, 10, &syn, false);
    assert_eq!(
        pass(&t, &mut err, false, None, None, &mut rng, secs(1)),
        CtState::Related
    );
    assert_checksums(&err);
    let ip = crate::wire::Ipv4Packet::new_checked(&err[..]).unwrap();
    assert_eq!(ip.dst_addr(), a("10.0.0.1"));
    let inner = crate::wire::Ipv4Packet::new_unchecked(&err[28..]);
    assert_eq!(inner.src_addr(), a("10.0.0.1"));
    assert!(inner.verify_checksum());
    assert_eq!(crate::wire::get_u16(&err[28..], 20), 40000);
}

#[test]
fn icmp_echo_snat_changes_id_on_clash_and_translates_reply() {
    let t = table();
    let mut rng = Rng::new(11);
    let masq = NatRange::masquerade(a("203.0.113.1"), None);
    let mut p1 = testutil::echo_request("10.0.0.1", "8.8.8.8", 7, 1);
    let mut p2 = testutil::echo_request("10.0.0.2", "8.8.8.8", 7, 1);
    pass(&t, &mut p1, false, None, Some(masq), &mut rng, secs(1));
    pass(&t, &mut p2, false, None, Some(masq), &mut rng, secs(1));
    assert_checksums(&p1);
    assert_checksums(&p2);
    let (t1, t2) = (tuple_of(&p1), tuple_of(&p2));
    assert_eq!(t1.icmp_id(), 7);
    assert_ne!(t2.icmp_id(), 7);
    let mut r2 = testutil::echo_reply("8.8.8.8", "203.0.113.1", t2.icmp_id(), 1);
    assert_eq!(
        pass(&t, &mut r2, false, None, None, &mut rng, secs(1)),
        CtState::Established
    );
    assert_checksums(&r2);
    let rt = tuple_of(&r2);
    assert_eq!((rt.dst_v4(), rt.icmp_id()), (a("10.0.0.2"), 7));
}

#[test]
fn redirect_to_ingress_address() {
    let t = table();
    let mut rng = Rng::new(1);
    let r = NatRange::redirect(a("10.0.0.254"), Some((3128, 3128)));
    let mut p = testutil::tcp("10.0.0.1", "93.184.216.34", 40000, 80, SYN, b"");
    pass(&t, &mut p, false, Some(r), None, &mut rng, secs(1));
    assert_eq!(
        tuple_of(&p),
        Tuple::new(a("10.0.0.1"), a("10.0.0.254"), 6, 40000, 3128)
    );
    assert_checksums(&p);
}

/// The kube DNS race: one UDP socket sends A and AAAA queries (same 5-tuple)
/// that two workers process at the same moment. Both build an unconfirmed
/// entry, both NAT, both confirm: the loser must still deliver its packet,
/// with the same translation as the winner. `forced`: a barrier between the
/// NAT decision and confirm makes every round a clash (deterministic); else
/// the threads race freely.
#[test]
fn confirm_race_delivers_both_packets_with_one_translation() {
    use crate::conntrack::ClashKind;
    use std::sync::{Arc, Barrier};
    const ROUNDS: u16 = 1000;
    let mut net = 0u8;
    for forced in [true, false] {
        for random_fully in [false, true] {
            net += 1;
            let t = Arc::new(table());
            let mut snat = NatRange::masquerade(a("203.0.113.1"), None);
            if random_fully {
                snat.flags |= flags::PROTO_RANDOM_FULLY;
            }
            let dnat = NatRange::addrs(a("172.16.0.10"), a("172.16.0.13")).with_ports(53, 53);
            let barrier = Arc::new(Barrier::new(2));
            let workers: Vec<_> = (0..2u64)
                .map(|w| {
                    let (t, barrier) = (t.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let mut rng = Rng::new(w * 1000 + random_fully as u64);
                        let mut out = Vec::new();
                        let now = Timestamp::from_secs(1);
                        for i in 0..ROUNDS {
                            let src = format!("10.{net}.{}.{}", i >> 8, i & 255);
                            let qname: &[u8] = if w == 0 {
                                b"A example"
                            } else {
                                b"AAAA example"
                            };
                            let mut p = testutil::udp(&src, "10.96.0.10", 10000 + i, 53, qname);
                            barrier.wait();
                            let key = classify(&p).unwrap();
                            let (delivered, clash) = match t.track(&key, p.len() as u32, now) {
                                Tracked::New(mut nc) => {
                                    setup(&t, &mut nc, &dnat, Manip::Dst, &mut rng, now).unwrap();
                                    translate(&mut p, false, &nc.nat_target(), Manip::Dst).unwrap();
                                    setup(&t, &mut nc, &snat, Manip::Src, &mut rng, now).unwrap();
                                    translate(&mut p, false, &nc.nat_target(), Manip::Src).unwrap();
                                    if forced {
                                        barrier.wait();
                                    }
                                    match t.confirm(&nc, now) {
                                        Ok(c) => {
                                            if c.clash == Some(ClashKind::Retranslate) {
                                                translate_both(&mut p, false, &c.conn.nat_target())
                                                    .unwrap();
                                            }
                                            (true, c.clash)
                                        }
                                        Err(_) => (false, None),
                                    }
                                }
                                Tracked::Known { conn, .. } => {
                                    if forced {
                                        barrier.wait();
                                    }
                                    translate_both(&mut p, false, &conn.nat_target()).unwrap();
                                    (true, None)
                                }
                                other => panic!("{other:?}"),
                            };
                            assert_checksums(&p);
                            out.push((delivered, clash, tuple_of(&p)));
                        }
                        out
                    })
                })
                .collect();
            let res: Vec<Vec<_>> = workers.into_iter().map(|h| h.join().unwrap()).collect();
            let mut clashes = 0;
            for (i, (&a0, &a1)) in res[0].iter().zip(res[1].iter()).enumerate() {
                assert!(a0.0 && a1.0, "round {i}: both packets delivered");
                assert_eq!(
                    a0.2, a1.2,
                    "round {i}: both packets leave with the same translation"
                );
                clashes += a0.1.is_some() as usize + a1.1.is_some() as usize;
                if forced && !random_fully {
                    // Same deterministic NAT on both sides: the clash is compatible.
                    assert!(
                        a0.1 != Some(ClashKind::Retranslate)
                            && a1.1 != Some(ClashKind::Retranslate),
                        "round {i}: {a0:?} {a1:?}"
                    );
                }
            }
            if forced {
                assert_eq!(
                    clashes, ROUNDS as usize,
                    "every forced round is exactly one clash"
                );
            }
            println!(
                "forced={forced} random_fully={random_fully}: {clashes} clashes in {ROUNDS} rounds"
            );
            assert_eq!(t.len(), ROUNDS as usize);
            t.check_invariants();
            assert_eq!(t.stats().clash_resolved as usize, clashes);
            assert_eq!(t.stats().insert_failed, 0);
        }
    }
}

/// Real kernel packets (see `wire::testutil`): a SYN and a UDP datagram with
/// CHECKSUM_PARTIAL fields, a kernel RST and a kernel ICMP port unreachable.
#[test]
fn real_captures_partial_rewrite_and_icmp_error() {
    use crate::wire::testutil::{
        finish_partial, to_partial, LO_ICMP_PORT_UNREACH, LO_TCP_RST_ACK, LO_TCP_SYN_PARTIAL,
        LO_UDP_PARTIAL,
    };
    // The kernel-made packets verify as they are.
    assert_checksums(&LO_TCP_RST_ACK);
    assert_checksums(&LO_ICMP_PORT_UNREACH);
    // The partial ones hold exactly the pseudo-header sum.
    for p in [&LO_TCP_SYN_PARTIAL[..], &LO_UDP_PARTIAL[..]] {
        let mut q = p.to_vec();
        to_partial(&mut q);
        assert_eq!(q, p);
    }
    // Rewrite both with partial=true: still the (new) pseudo-header sum,
    // and completing it gives a checksum etherparse accepts.
    for p in [&LO_TCP_SYN_PARTIAL[..], &LO_UDP_PARTIAL[..]] {
        let mut q = p.to_vec();
        let tu = tuple_of(&q);
        let target = Tuple {
            src: a("192.0.2.7").into_addr(),
            sport: 61000,
            dst: a("10.9.8.7").into_addr(),
            dport: 8080,
            ..tu
        };
        assert!(translate_both(&mut q, true, &target).unwrap());
        assert_eq!(tuple_of(&q), target);
        let mut expect = q.clone();
        to_partial(&mut expect);
        assert_eq!(q, expect);
        finish_partial(&mut q);
        assert_checksums(&q);
    }
    // The kernel's port unreachable is RELATED to the UDP flow and is
    // translated back inside and out once the flow was DNATed.
    let t = table();
    let mut rng = Rng::new(1);
    let udp = LO_UDP_PARTIAL.to_vec();
    let key = classify(&udp).unwrap();
    let Tracked::New(mut nc) = t.track(&key, udp.len() as u32, secs(1)) else {
        panic!()
    };
    // Pretend the client sent to 10.96.0.10:53 and we DNATed to 127.0.0.1:9.
    nc.orig = Tuple {
        dst: a("10.96.0.10").into_addr(),
        dport: 53,
        ..nc.orig
    };
    let r = NatRange::addr(a("127.0.0.1")).with_ports(9, 9);
    setup(&t, &mut nc, &r, Manip::Dst, &mut rng, secs(1)).unwrap();
    t.confirm(&nc, secs(1)).unwrap();
    let mut err = LO_ICMP_PORT_UNREACH.to_vec();
    assert_eq!(
        pass(&t, &mut err, false, None, None, &mut rng, secs(1)),
        CtState::Related
    );
    assert_checksums(&err);
    let inner = crate::wire::Ipv4Packet::new_unchecked(&err[28..]);
    assert!(inner.verify_checksum());
    assert_eq!(inner.dst_addr(), a("10.96.0.10"));
    assert_eq!(crate::wire::get_u16(&err[28..], 22), 53);
}

/// find_appropriate_src: a client whose port had to be changed keeps the
/// same mapped port towards other destinations (endpoint-independent
/// mapping), while a fresh client keeps its own port.
#[test]
fn snat_reuses_the_existing_mapping_of_a_source() {
    let t = table();
    let mut rng = Rng::new(21);
    let masq = NatRange::masquerade(a("203.0.113.1"), None);
    let mut go = |src: &str, dst: &str, sport: u16| {
        let mut p = testutil::udp(src, dst, sport, 3478, b"stun");
        pass(&t, &mut p, false, None, Some(masq), &mut rng, secs(1));
        tuple_of(&p).sport
    };
    assert_eq!(go("10.0.0.1", "198.51.100.1", 5000), 5000);
    let mapped = go("10.0.0.2", "198.51.100.1", 5000);
    assert_ne!(mapped, 5000);
    // Same client, another server: 5000 would be free there, but the
    // existing mapping wins.
    assert_eq!(go("10.0.0.2", "198.51.100.2", 5000), mapped);
    assert_eq!(go("10.0.0.2", "198.51.100.3", 5000), mapped);
    // A new client to that server keeps its port.
    assert_eq!(go("10.0.0.3", "198.51.100.2", 5000), 5000);
    t.check_invariants();
    // Once the mapping's connections are gone, nothing is reused.
    t.flush();
    t.check_invariants();
    assert_eq!(go("10.0.0.2", "198.51.100.2", 5000), 5000);
}

/// Real captured packets (TCP SYN and RST, UDP, an ICMP port unreachable)
/// and an echo request, then `more`: the seeds the mutation tests start from.
fn seed_packets<const N: usize>(more: [Vec<u8>; N]) -> Vec<Vec<u8>> {
    use crate::wire::testutil::{
        LO_ICMP_PORT_UNREACH, LO_TCP_RST_ACK, LO_TCP_SYN_PARTIAL, LO_UDP_PARTIAL,
    };
    let mut v = vec![
        LO_TCP_SYN_PARTIAL.to_vec(),
        LO_TCP_RST_ACK.to_vec(),
        LO_UDP_PARTIAL.to_vec(),
        LO_ICMP_PORT_UNREACH.to_vec(),
        testutil::echo_request("10.0.0.1", "10.0.0.2", 1, 1),
    ];
    v.extend(more);
    v
}

/// "A bad packet never panics": mutated and truncated versions of real and
/// built packets go through every entry point that reads packet bytes.
#[test]
fn mutated_packets_never_panic() {
    use crate::conntrack::defrag::{fragment, Defrag};
    use crate::wire::testutil::LO_TCP_SYN_PARTIAL;
    let seeds = seed_packets([
        testutil::icmp_error("10.0.0.9", "10.0.0.1", 11, 0, &LO_TCP_SYN_PARTIAL, true),
        testutil::udp("10.0.0.1", "10.0.0.2", 1, 2, &[0u8; 3000]),
    ]);
    let t = table();
    let d = Defrag::default();
    let mut rng = Rng::new(0xbad);
    let target = Tuple::new(a("1.2.3.4"), a("5.6.7.8"), 6, 1, 2);
    let mut out = Vec::new();
    for round in 0..40_000u32 {
        let mut p = seeds[round as usize % seeds.len()].clone();
        let flips = 1 + rng.next_u32() % 4;
        for _ in 0..flips {
            let i = rng.next_u32() as usize % p.len();
            p[i] ^= 1 << (rng.next_u32() % 8);
        }
        if rng.next_u32().is_multiple_of(3) {
            let n = rng.next_u32() as usize % (p.len() + 1);
            p.truncate(n);
        }
        let now = Timestamp::from_millis(round as u64);
        let _ = crate::conntrack::classify(&p);
        if let Ok(key) = crate::conntrack::classify(&p) {
            if let Tracked::New(nc) = t.track(&key, p.len() as u32, now) {
                let _ = t.confirm(&nc, now);
            }
        }
        for partial in [false, true] {
            let mut q = p.clone();
            let _ = translate(&mut q, partial, &target, Manip::Src);
            let _ = translate_both(&mut q, partial, &target);
            let _ = crate::wire::tcp::clamp_mss(&mut q, 536, partial);
        }
        let _ = d.process(&p, now);
        let _ = fragment(&p, 68 + (rng.next_u32() % 1500) as usize, |_| {});
        let _ = crate::wire::build::icmp_error(&p, a("10.0.0.254"), (3, 3), 0, 1, &mut out);
        let _ = crate::wire::build::tcp_reset(&p, &mut out);
        let _ = crate::wire::build::echo_reply(&p, 1, &mut out);
        if let Ok(ip) = crate::wire::Ipv4Packet::new_checked(&p[..]) {
            let _ = ip.payload();
            if let Ok(ic) = crate::wire::IcmpPacket::new_checked(ip.payload()) {
                let _ = ic.embedded();
            }
        }
    }
    t.check_invariants();
    let st = t.stats();
    println!(
        "mutated packets: {} inserted, {} invalid, defrag {:?}",
        st.inserted,
        st.invalid,
        d.stats()
    );
    assert!(st.inserted > 100 && st.invalid > 100, "{st:?}");
}

/// UDP-Lite is tracked like UDP (ports, timeouts) and its checksum, never
/// optional, follows the rewrite.
#[test]
fn udplite_is_natted_with_its_checksum() {
    use crate::wire::checksum::{fold, pseudo_header_sum, sum};
    let lite = |src: &str, dst: &str, sp: u16, dp: u16| {
        let mut p = testutil::udp(src, dst, sp, dp, b"lite payload");
        p[9] = 136;
        p[24..26].copy_from_slice(&0u16.to_be_bytes()); // coverage 0 = whole datagram
        p[26..28].copy_from_slice(&[0, 0]);
        crate::wire::Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    };
    let verify = |p: &[u8]| {
        let ip = crate::wire::Ipv4Packet::new_checked(p).unwrap();
        assert!(ip.verify_checksum());
        let ps = pseudo_header_sum(ip.src_addr(), ip.dst_addr(), 136, ip.payload().len() as u16);
        assert_eq!(fold(sum(ip.payload(), ps)), 0xffff, "UDP-Lite checksum");
    };
    let mut p = lite("10.0.0.1", "198.51.100.7", 5000, 6000);
    let c = !fold(sum(
        &p[20..],
        pseudo_header_sum(a("10.0.0.1"), a("198.51.100.7"), 136, 20),
    ));
    p[26..28].copy_from_slice(&c.to_be_bytes());
    verify(&p);
    let t = table();
    let mut rng = Rng::new(2);
    let masq = NatRange::masquerade(a("203.0.113.1"), None);
    // Occupy the port so the SNAT changes it too.
    let mut first = lite("10.0.0.2", "198.51.100.7", 5000, 6000);
    pass(&t, &mut first, false, None, Some(masq), &mut rng, secs(1));
    pass(&t, &mut p, false, None, Some(masq), &mut rng, secs(1));
    let tu = tuple_of(&p);
    assert_eq!((tu.src_v4(), tu.proto), (a("203.0.113.1"), 136));
    assert_ne!(tu.sport, 5000);
    verify(&p);
    let s = t.list(secs(1));
    assert!(s[1]
        .display(secs(1), false)
        .to_string()
        .starts_with("udplite  136 30 "));
}

/// `jhash2` against the kernel's (include/linux/jhash.h) on one-, two- and
/// multi-round keys.
#[test]
fn jhash2_matches_the_kernel() {
    assert_eq!(jhash2(&[0x0a00_0001, 0, 0, 0], 0), 0x5ae9_6bf9);
    assert_eq!(jhash2(&[0x0100_a8c0, 0, 0, 0], 0x0200_a8c0), 0x367d_d452);
    assert_eq!(jhash2(&[1, 2, 3, 4, 5, 6, 7], 7), 0xded7_1445);
    assert_eq!(jhash2(&[], 3), 0xdead_bef2);
}

/// The description the pipeline keeps in step with NAT (`translate_repr`)
/// equals a fresh parse of the rewritten packet, for real packets and
/// mutated ones (fragments, short L4 headers, ICMP errors and queries).
#[test]
fn translate_repr_matches_a_fresh_parse() {
    use crate::wire::testutil::LO_TCP_SYN_PARTIAL;
    use crate::wire::PacketRepr;
    let seeds = seed_packets([
        testutil::echo_reply("10.0.0.2", "10.0.0.1", 7, 1),
        testutil::icmp_error("10.0.0.9", "10.0.0.1", 11, 0, &LO_TCP_SYN_PARTIAL, true),
        testutil::udp("10.0.0.1", "10.0.0.2", 1, 2, &[0u8; 300]),
        testutil::tcp("10.0.0.1", "10.0.0.2", 5, 6, 0x10, &[1, 2, 3]),
    ]);
    let mut rng = Rng::new(0x5eed);
    let mut checked = 0;
    for round in 0..20_000u32 {
        let mut p = seeds[round as usize % seeds.len()].clone();
        if round >= seeds.len() as u32 {
            for _ in 0..1 + rng.next_u32() % 3 {
                let i = rng.next_u32() as usize % p.len();
                p[i] ^= 1 << (rng.next_u32() % 8);
            }
        }
        let Ok(mut repr) = PacketRepr::parse(&p) else {
            continue;
        };
        let r = |rng: &mut Rng| rng.next_u32();
        let target = Tuple::new(
            std::net::Ipv4Addr::from(r(&mut rng)),
            std::net::Ipv4Addr::from(r(&mut rng)),
            p[9],
            r(&mut rng) as u16,
            r(&mut rng) as u16,
        );
        for manip in [Manip::Dst, Manip::Src] {
            let partial = round % 2 == 0;
            if translate_repr(&mut p, &mut repr, partial, &target, manip).is_ok() {
                checked += 1;
            }
            assert_eq!(Ok(repr), PacketRepr::parse(&p), "round {round} {manip:?}");
        }
        if round % 5 == 0 && translate_both_repr(&mut p, &mut repr, false, &target).is_ok() {
            assert_eq!(Ok(repr), PacketRepr::parse(&p), "round {round} both");
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn dnat_port_offset_keeps_the_distance_from_the_base() {
    // --to-destination 172.16.0.5:1000-1006/500: port P maps to
    // 1000 + (P - 500) % 7, also when P already lies in the range.
    let t = table();
    let mut rng = Rng::new(5);
    let mut r = NatRange::addr(a("172.16.0.5")).with_ports(1000, 1006);
    r.flags |= flags::PROTO_OFFSET;
    r.base_port = 500;
    for (client, dport, want) in [(1, 505, 1005), (2, 1002, 1005), (3, 510, 1003)] {
        let mut p = testutil::udp(&format!("10.0.0.{client}"), "10.96.0.1", 40000, dport, b"");
        pass(&t, &mut p, false, Some(r), None, &mut rng, secs(1));
        assert_eq!(tuple_of(&p).dport, want, "dport {dport}");
    }
}
