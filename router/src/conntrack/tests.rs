//! Scenario tests on a simulated clock, written from netfilter's documented
//! behaviour (default timeouts, state table, early drop).

use super::*;
use crate::clock::Timestamp;
use crate::wire::tcp::flags::*;
use crate::wire::testutil::{self, a};
use std::time::Duration;

fn secs(s: f64) -> Timestamp {
    Timestamp((s * 1e9) as u64)
}

fn table(max: usize) -> ConnTable {
    ConnTable::new(ConntrackConfig {
        max_entries: max,
        event_queue: 64,
        ..Default::default()
    })
}

/// The conntrack hook for a test: track, and confirm a NEW packet at once.
fn hook<'a>(t: &'a ConnTable, pkt: &[u8], now: Timestamp) -> (CtState, Option<ConnRef<'a>>) {
    let key = classify(pkt).unwrap();
    match t.track(&key, pkt.len() as u32, now) {
        Tracked::Known { conn, state } => (state, Some(conn)),
        Tracked::Related(c) => (CtState::Related, Some(c)),
        Tracked::New(nc) => match t.confirm(&nc, now) {
            Ok(c) => (CtState::New, Some(c.conn)),
            Err(_) => (CtState::Invalid, None),
        },
        Tracked::Invalid => (CtState::Invalid, None),
        Tracked::Untracked => (CtState::Untracked, None),
    }
}

fn tcp(from_client: bool, fl: u8) -> Vec<u8> {
    if from_client {
        testutil::tcp("10.0.0.1", "10.0.0.2", 40000, 80, fl, b"")
    } else {
        testutil::tcp("10.0.0.2", "10.0.0.1", 80, 40000, fl, b"")
    }
}

#[test]
fn tuple_inversion_and_icmp_types() {
    let t = Tuple::new(a("1.1.1.1"), a("2.2.2.2"), PROTO_TCP, 1234, 80);
    assert_eq!(
        t.inverse(),
        Tuple::new(a("2.2.2.2"), a("1.1.1.1"), PROTO_TCP, 80, 1234)
    );
    let e = Tuple::icmp(a("1.1.1.1"), a("2.2.2.2"), 8, 0, 77);
    let r = e.invert().unwrap();
    assert_eq!(
        (r.icmp_type(), r.icmp_id(), r.src_v4()),
        (0, 77, a("2.2.2.2"))
    );
    assert!(Tuple::icmp(a("1.1.1.1"), a("2.2.2.2"), 3, 3, 0)
        .invert()
        .is_none());
    let (x, y) = t.pack();
    assert_eq!(Tuple::unpack(x, y), t);
}

#[test]
fn tcp_lifecycle_to_time_wait_expiry() {
    let t = table(1024);
    let mut now = secs(100.0);
    let (st, c) = hook(&t, &tcp(true, SYN), now);
    assert_eq!(st, CtState::New);
    let c = c.unwrap();
    assert_eq!(c.tcp_state(), Some(TcpState::SynSent));
    assert_eq!(c.deadline(), now + Duration::from_secs(120));
    assert!(!c.status().seen_reply());

    now = secs(100.5);
    let (st, c2) = hook(&t, &tcp(false, SYN | ACK), now);
    assert_eq!(st, CtState::Established);
    let c2 = c2.unwrap();
    assert_eq!(c2.dir(), Dir::Reply);
    assert_eq!(c2.id(), c.id(), "both directions find the same entry");
    assert_eq!(c.tcp_state(), Some(TcpState::SynRecv));
    assert!(c.status().seen_reply() && !c.status().assured());

    let (st, _) = hook(&t, &tcp(true, ACK), now);
    assert_eq!(st, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    assert!(c.status().assured());
    assert_eq!(c.deadline(), now + Duration::from_secs(432_000));

    let steps = [
        (true, FIN | ACK, TcpState::FinWait),
        (false, ACK, TcpState::CloseWait),
        (false, FIN | ACK, TcpState::LastAck),
        (true, ACK, TcpState::TimeWait),
    ];
    for (client, fl, want) in steps {
        now = now + Duration::from_millis(10);
        assert_eq!(hook(&t, &tcp(client, fl), now).0, CtState::Established);
        assert_eq!(c.tcp_state(), Some(want));
    }
    assert_eq!(c.counters(Dir::Original).0, 4);
    assert_eq!(c.counters(Dir::Reply).0, 3);
    let tw = now;
    let tuple = classify(&tcp(true, ACK)).unwrap();
    let PacketKey::Flow { tuple, .. } = tuple else {
        panic!()
    };
    assert!(t
        .lookup(&tuple, tw + Duration::from_millis(119_999))
        .is_some());
    assert!(t.lookup(&tuple, tw + Duration::from_secs(120)).is_none());
    assert_eq!(t.len(), 0);
    assert_eq!(t.stats().expired, 1);
    let mut ev = Vec::new();
    t.drain_events(&mut ev);
    // As the kernel + conntrack -E print them (checked on this machine).
    assert_eq!(
        ev[0].display(secs(100.0)).to_string(),
        "    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 \
         [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000"
    );
    assert_eq!(
        ev[1].display(secs(100.5)).to_string(),
        " [UPDATE] tcp      6 60 SYN_RECV src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 \
         src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000"
    );
    let states: Vec<_> = ev
        .iter()
        .map(|e| (e.kind, e.conn.tcp_state.unwrap()))
        .collect();
    use EventKind::*;
    use TcpState::*;
    assert_eq!(
        states,
        [
            (New, SynSent),
            (Update, SynRecv),
            (Update, Established),
            (Update, FinWait),
            (Update, CloseWait),
            (Update, LastAck),
            (Update, TimeWait),
            (Destroy, TimeWait)
        ]
    );
    assert_eq!(ev.first().unwrap().kind, EventKind::New);
    assert_eq!(ev.last().unwrap().kind, EventKind::Destroy);
    assert!(ev
        .iter()
        .any(|e| e.kind == EventKind::Update && e.conn.status.assured()));
}

#[test]
fn tcp_invalid_packets_do_not_touch_the_entry() {
    let t = table(64);
    let now = secs(1.0);
    assert_eq!(hook(&t, &tcp(true, SYN | FIN), now).0, CtState::Invalid);
    assert_eq!(hook(&t, &tcp(true, SYN | ACK), now).0, CtState::Invalid);
    assert_eq!(t.len(), 0);
    let c = hook(&t, &tcp(true, SYN), now).1.unwrap();
    let before = c.snapshot();
    // ORIGINAL SYN-ACK in SYN_SENT is sIV.
    assert_eq!(
        hook(&t, &tcp(true, SYN | ACK), secs(2.0)).0,
        CtState::Invalid
    );
    assert_eq!(c.snapshot(), before);
    assert!(t.stats().invalid >= 3);
    // RST from the server before any other reply (port closed): the kernel
    // deletes the entry at once.
    assert_eq!(
        hook(&t, &tcp(false, RST | ACK), secs(3.0)).0,
        CtState::Established
    );
    assert_eq!(c.tcp_state(), Some(TcpState::Close));
    assert!(t.list(secs(3.0)).is_empty());
    assert_eq!(hook(&t, &tcp(true, SYN), secs(3.0)).0, CtState::New);
    // An RST in an established flow: CLOSE, 10 s.
    let c = hook(&t, &tcp(false, SYN | ACK), secs(4.0)).1.unwrap();
    hook(&t, &tcp(true, ACK), secs(4.0));
    assert_eq!(hook(&t, &tcp(true, RST), secs(5.0)).0, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::Close));
    assert_eq!(c.deadline(), secs(15.0));
}

#[test]
fn tcp_reopen_from_time_wait() {
    let t = table(64);
    let mut now = secs(1.0);
    for (client, fl) in [
        (true, SYN),
        (false, SYN | ACK),
        (true, ACK),
        (true, FIN | ACK),
        (false, FIN | ACK),
        (true, ACK),
    ] {
        hook(&t, &tcp(client, fl), now);
        now = now + Duration::from_millis(1);
    }
    let old = t.list(now)[0];
    assert_eq!(old.tcp_state, Some(TcpState::TimeWait));
    let (st, c) = hook(&t, &tcp(true, SYN), now);
    assert_eq!(st, CtState::New);
    let c = c.unwrap();
    assert_ne!(c.id(), old.id);
    assert_eq!(c.tcp_state(), Some(TcpState::SynSent));
    assert_eq!(t.len(), 1);
}

#[test]
fn udp_unreplied_30s_stream_120s() {
    let t = table(64);
    let req = testutil::udp("10.0.0.1", "10.0.0.53", 5353, 53, b"q");
    let rsp = testutil::udp("10.0.0.53", "10.0.0.1", 53, 5353, b"r");
    let PacketKey::Flow { tuple, .. } = classify(&req).unwrap() else {
        panic!()
    };
    assert_eq!(hook(&t, &req, secs(10.0)).0, CtState::New);
    assert_eq!(
        hook(&t, &req, secs(11.0)).0,
        CtState::New,
        "NEW until a reply is seen"
    );
    assert!(t.lookup(&tuple, secs(40.9)).is_some());
    assert!(
        t.lookup(&tuple, secs(41.0)).is_none(),
        "unreplied UDP gone at 30 s"
    );

    // Replied: still 30 s for the first 2 s, then a stream (120 s, ASSURED).
    let c = hook(&t, &req, secs(100.0)).1.unwrap();
    assert_eq!(hook(&t, &rsp, secs(100.1)).0, CtState::Established);
    assert!(c.status().seen_reply() && !c.status().assured());
    assert_eq!(c.deadline(), secs(130.1));
    assert_eq!(hook(&t, &req, secs(103.0)).0, CtState::Established);
    assert!(c.status().assured());
    assert_eq!(c.deadline(), secs(223.0));
    assert!(t.lookup(&tuple, secs(222.9)).is_some());
    assert!(
        t.lookup(&tuple, secs(223.0)).is_none(),
        "stream gone at 120 s"
    );

    // The 2 s are measured from creation to the millisecond (stream_ts).
    let c = hook(&t, &req, secs(300.9)).1.unwrap();
    hook(&t, &rsp, secs(301.0));
    assert_eq!(hook(&t, &req, secs(302.8)).0, CtState::Established);
    assert!(
        !c.status().assured(),
        "1.9 s after creation: not a stream yet"
    );
    assert_eq!(c.deadline(), secs(332.8));
    hook(&t, &req, secs(302.95));
    assert!(c.status().assured());
    assert_eq!(c.deadline(), secs(422.95));
}

#[test]
fn icmp_echo_30s_and_reply_without_request_invalid() {
    let t = table(64);
    let rq = testutil::echo_request("10.0.0.1", "10.0.0.9", 4242, 1);
    let rp = testutil::echo_reply("10.0.0.9", "10.0.0.1", 4242, 1);
    assert_eq!(hook(&t, &rp, secs(1.0)).0, CtState::Invalid);
    assert_eq!(hook(&t, &rq, secs(1.0)).0, CtState::New);
    assert_eq!(hook(&t, &rp, secs(2.0)).0, CtState::Established);
    let PacketKey::Flow { tuple, .. } = classify(&rq).unwrap() else {
        panic!()
    };
    assert_eq!(tuple.icmp_type(), 8);
    assert!(t.lookup(&tuple, secs(31.9)).is_some());
    assert!(t.lookup(&tuple, secs(32.0)).is_none());
}

#[test]
fn generic_protocol_600s() {
    let t = table(64);
    let mut gre = testutil::udp("10.0.0.1", "10.0.0.2", 1, 2, b"xx");
    gre[9] = 47;
    let PacketKey::Flow { tuple, .. } = classify(&gre).unwrap() else {
        panic!()
    };
    assert_eq!((tuple.sport, tuple.dport, tuple.proto), (0, 0, 47));
    assert_eq!(hook(&t, &gre, secs(0.0)).0, CtState::New);
    assert!(t.lookup(&tuple, secs(599.0)).is_some());
    assert!(t.lookup(&tuple, secs(600.0)).is_none());
}

#[test]
fn related_icmp_error_found_from_embedded_header() {
    let t = table(64);
    let syn = tcp(true, SYN);
    let c = hook(&t, &syn, secs(1.0)).1.unwrap();
    // A router on the way reports the SYN.
    let err = testutil::icmp_error("192.0.2.1", "10.0.0.1", 11, 0, &syn, false);
    let key = classify(&err).unwrap();
    assert!(matches!(key, PacketKey::IcmpError { .. }));
    let (st, r) = hook(&t, &err, secs(1.1));
    assert_eq!(st, CtState::Related);
    let r = r.unwrap();
    assert_eq!((r.id(), r.dir()), (c.id(), Dir::Reply));
    // An error about an unknown flow, or an unrelated type, is INVALID.
    let other = testutil::tcp("10.0.0.1", "10.0.0.3", 1, 2, SYN, b"");
    let err2 = testutil::icmp_error("10.0.0.3", "10.0.0.1", 3, 3, &other, false);
    assert_eq!(hook(&t, &err2, secs(1.2)).0, CtState::Invalid);
    let mut short = testutil::icmp_error("10.0.0.3", "10.0.0.1", 3, 3, &syn, false);
    short.truncate(40); // quotes less than IP header + 8 bytes
    short[2..4].copy_from_slice(&40u16.to_be_bytes());
    assert_eq!(classify(&short).unwrap(), PacketKey::Untrackable);
}

#[test]
fn full_table_evicts_unassured_then_refuses_new_flows() {
    let t = table(4);
    let now = secs(5.0);
    // Four unassured UDP flows.
    for p in 0..4u16 {
        hook(
            &t,
            &testutil::udp("10.0.0.1", "10.0.0.2", 1000 + p, 53, b""),
            now,
        );
    }
    assert_eq!(t.len(), 4);
    // A fifth evicts one of them (early drop).
    assert_eq!(
        hook(
            &t,
            &testutil::udp("10.0.0.1", "10.0.0.2", 2000, 53, b""),
            now
        )
        .0,
        CtState::New
    );
    assert_eq!((t.len(), t.stats().early_drop), (4, 1));
    t.check_invariants();
    t.flush();
    t.check_invariants();
    // Four assured TCP flows: nothing can be evicted, new flows are refused.
    let mut ids = Vec::new();
    for p in 0..4u16 {
        let (c, s) = (
            testutil::tcp("10.0.0.1", "10.0.0.2", 3000 + p, 80, SYN, b""),
            testutil::tcp("10.0.0.2", "10.0.0.1", 80, 3000 + p, SYN | ACK, b""),
        );
        ids.push(hook(&t, &c, now).1.unwrap().id());
        hook(&t, &s, now);
        hook(
            &t,
            &testutil::tcp("10.0.0.1", "10.0.0.2", 3000 + p, 80, ACK, b""),
            now,
        );
    }
    assert!(t.list(now).iter().all(|s| s.status.assured()));
    let (st, c) = hook(&t, &testutil::udp("10.0.0.1", "10.0.0.2", 9, 9, b""), now);
    assert_eq!((st, c.is_none()), (CtState::Invalid, true));
    assert_eq!(t.stats().insert_failed, 1);
    // Established flows keep working.
    let (st, c) = hook(
        &t,
        &testutil::tcp("10.0.0.2", "10.0.0.1", 80, 3001, ACK, b"x"),
        now,
    );
    assert_eq!((st, c.unwrap().id()), (CtState::Established, ids[1]));
    // Once entries expire, a new flow gets in again.
    let later = now + Duration::from_secs(432_001);
    assert_eq!(
        hook(&t, &testutil::udp("10.0.0.1", "10.0.0.2", 9, 9, b""), later).0,
        CtState::New
    );
}

#[test]
fn gc_sweeps_incrementally() {
    let t = ConnTable::new(ConntrackConfig {
        max_entries: 1000,
        gc_budget: 0,
        ..Default::default()
    });
    for p in 0..500u16 {
        hook(
            &t,
            &testutil::udp("10.0.0.1", "10.0.0.2", 1000 + p, 53, b""),
            secs(0.0),
        );
    }
    assert_eq!(t.len(), 500);
    let late = secs(31.0);
    let mut calls = 0;
    while !t.is_empty() {
        let n = t.gc(late, 64);
        assert!(n <= 64);
        calls += 1;
        assert!(calls < 100);
    }
    assert_eq!(t.stats().expired, 500);
    assert!(calls >= 500 / 64);
}

#[test]
fn listing_delete_and_mark() {
    let t = table(64);
    let now = secs(1.0);
    for (c, s) in [(true, SYN), (false, SYN | ACK), (true, ACK)] {
        hook(&t, &tcp(c, s), now);
    }
    let c = hook(
        &t,
        &testutil::udp("10.0.0.1", "10.0.0.9", 5000, 53, b""),
        now,
    )
    .1
    .unwrap();
    c.set_mark(0x42);
    let list = t.list(now);
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].display(now, false).to_string(),
        "tcp      6 432000 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 \
         src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1"
    );
    assert_eq!(
        list[1]
            .display(now + Duration::from_secs(1), false)
            .to_string(),
        "udp      17 29 src=10.0.0.1 dst=10.0.0.9 sport=5000 dport=53 [UNREPLIED] \
         src=10.0.0.9 dst=10.0.0.1 sport=53 dport=5000 mark=66 use=1"
    );
    assert_eq!(
        t.set_mark_where(0x100, 0xff00, |s| s.orig.proto == PROTO_UDP),
        1
    );
    assert_eq!(t.list(now)[1].mark, 0x142);
    assert_eq!(t.delete_where(|s| s.orig.proto == PROTO_UDP), 1);
    assert_eq!(t.len(), 1);
    assert_eq!(t.flush(), 1);
    assert!(t.is_empty());
    assert_eq!(t.stats().deleted, 2);
}

/// The table's own accounting of its memory at 1,000,000 entries stays
/// within the 200 bytes/entry budget (the RSS figure is printed by
/// `examples/ct_bench.rs`), and a lookup still finds every flow.
#[test]
fn memory_per_entry_at_one_million() {
    const N: u32 = 1_000_000;
    let t = ConnTable::new(ConntrackConfig {
        max_entries: N as usize,
        ..Default::default()
    });
    let now = secs(1.0);
    let tuple = |i: u32| {
        Tuple::new(
            std::net::Ipv4Addr::from(0x0a00_0000 | (i >> 4)),
            std::net::Ipv4Addr::from(0xac10_0000 | (i & 15)),
            PROTO_UDP,
            1024 + (i % 60000) as u16,
            53,
        )
    };
    for i in 0..N {
        let nc = t
            .new_conn(&tuple(i), &tcp::Segment::default(), 60, now)
            .unwrap();
        t.confirm(&nc, now).unwrap();
    }
    assert_eq!(t.len(), N as usize);
    let per_entry = t.memory_usage() as f64 / N as f64;
    println!("conntrack: {per_entry:.1} bytes/entry accounted at {N} entries");
    assert!(per_entry <= 200.0, "{per_entry} bytes per entry");
    for i in (0..N).step_by(997) {
        let c = t.lookup(&tuple(i), now).unwrap();
        assert_eq!(c.orig(), tuple(i));
        assert_eq!(
            t.lookup(&tuple(i).inverse(), now).unwrap().dir(),
            Dir::Reply
        );
    }
}

/// Four threads create, update, delete and sweep flows in a small table that
/// is constantly full (early drop and refusals racing with confirms); the
/// table stays consistent and never exceeds its size.
#[test]
fn concurrent_churn_keeps_the_table_consistent() {
    let t = std::sync::Arc::new(ConnTable::new(ConntrackConfig {
        max_entries: 256,
        gc_budget: 4,
        ..Default::default()
    }));
    let threads: Vec<_> = (0..4u32)
        .map(|w| {
            let t = t.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let now = Timestamp::from_millis(1000 + i as u64);
                    let port = ((i * 7 + w * 13) % 2000) as u16;
                    let tu = Tuple::new(a("10.0.0.1"), a("10.0.0.2"), PROTO_UDP, 1000 + port, 53);
                    let key = PacketKey::Flow {
                        tuple: tu,
                        tcp_flags: 0,
                        tcp: tcp::Segment::default(),
                    };
                    match t.track(&key, 60, now) {
                        Tracked::New(nc) => {
                            let _ = t.confirm(&nc, now);
                        }
                        Tracked::Known { conn, .. } => {
                            if i % 5 == 0 {
                                // A reply: makes it a stream candidate (ASSURED later).
                                if let Some(r) = t.lookup(&tu.inverse(), now) {
                                    r.update(&tcp::Segment::default(), 60, now);
                                }
                            }
                            if i % 17 == 0 {
                                conn.delete();
                            }
                        }
                        _ => {}
                    }
                    if i % 100 == 0 {
                        t.gc(now, 32);
                    }
                    assert!(t.len() <= 256 + 4);
                }
            })
        })
        .collect();
    for h in threads {
        h.join().unwrap();
    }
    t.check_invariants();
    let s = t.stats();
    assert!(s.inserted > 0 && s.early_drop > 0, "{s:?}");
    assert_eq!(
        s.inserted,
        t.len() as u64 + s.expired + s.early_drop + s.deleted,
        "every inserted entry is live or was removed exactly once: {s:?}"
    );
}

/// The tuple index stores no keys: it compares and rehashes by reading the
/// slots. One thread grows the table through many rehashes while another
/// keeps finding the entries confirmed before it started, in both
/// directions; afterwards every entry is found, deletes leave no stale index
/// entry, and the freed slots' reuse does not resurrect old tuples.
#[test]
fn index_finds_entries_while_it_grows_and_after_slot_reuse() {
    const EARLY: u32 = 2_000;
    const TOTAL: u32 = 120_000;
    let t = std::sync::Arc::new(ConnTable::new(ConntrackConfig {
        max_entries: TOTAL as usize,
        gc_budget: 0,
        ..Default::default()
    }));
    let tuple = |i: u32| {
        Tuple::new(
            std::net::Ipv4Addr::from(0x0a01_0000 | (i >> 8)),
            a("10.2.0.2"),
            PROTO_UDP,
            1024 + (i & 255) as u16,
            53,
        )
    };
    let now = secs(1.0);
    for i in 0..EARLY {
        let nc = t
            .new_conn(&tuple(i), &tcp::Segment::default(), 60, now)
            .unwrap();
        t.confirm(&nc, now).unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (t, stop) = (t.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                for i in (0..EARLY).step_by(7) {
                    let c = t
                        .lookup(&tuple(i), now)
                        .expect("early entry lost during growth");
                    assert_eq!((c.orig(), c.dir()), (tuple(i), Dir::Original));
                    let r = t
                        .lookup(&tuple(i).inverse(), now)
                        .expect("reply tuple lost");
                    assert_eq!(r.dir(), Dir::Reply);
                }
                rounds += 1;
            }
            rounds
        })
    };
    for i in EARLY..TOTAL {
        let nc = t
            .new_conn(&tuple(i), &tcp::Segment::default(), 60, now)
            .unwrap();
        t.confirm(&nc, now).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(t.len(), TOTAL as usize);
    t.check_invariants();
    // Delete every other entry, then insert new tuples into the freed slots.
    for i in (0..TOTAL).step_by(2) {
        assert!(t.lookup(&tuple(i), now).unwrap().delete());
    }
    for i in (0..TOTAL).step_by(2) {
        assert!(
            t.lookup(&tuple(i), now).is_none(),
            "deleted tuple {i} still indexed"
        );
        let nc = t
            .new_conn(&tuple(TOTAL + i), &tcp::Segment::default(), 60, now)
            .unwrap();
        t.confirm(&nc, now).unwrap();
    }
    t.check_invariants();
    for i in 0..TOTAL {
        assert_eq!(t.lookup(&tuple(i), now).is_some(), i % 2 == 1, "tuple {i}");
        if i % 2 == 0 {
            assert_eq!(
                t.lookup(&tuple(TOTAL + i), now).unwrap().orig(),
                tuple(TOTAL + i)
            );
        }
    }
}

/// sIG transitions (a late SYN-ACK in ESTABLISHED) pass without touching
/// state, timeout or counters, as the kernel returns before refreshing.
#[test]
fn tcp_ignored_packets_do_not_refresh() {
    let t = table(64);
    let c = hook(&t, &tcp(true, SYN), secs(1.0)).1.unwrap();
    hook(&t, &tcp(false, SYN | ACK), secs(1.0));
    hook(&t, &tcp(true, ACK), secs(1.0));
    let before = c.snapshot();
    assert_eq!(
        hook(&t, &tcp(false, SYN | ACK), secs(50.0)).0,
        CtState::Established
    );
    let after = c.snapshot();
    assert_eq!(
        (after.deadline, after.packets),
        (before.deadline, before.packets)
    );
    assert_eq!(after.tcp_state, Some(TcpState::Established));
}

#[test]
fn timeouts_are_configurable_by_sysctl_name() {
    let mut to = Timeouts::default();
    to.set("net.netfilter.nf_conntrack_udp_timeout", 5).unwrap();
    to.set("tcp_timeout_time_wait", 7).unwrap();
    let e = to.set("udp_timeout_streem", 1).unwrap_err();
    assert!(
        e.to_string().contains("`udp_timeout_streem`")
            && e.to_string().contains("udp_timeout_stream")
    );
    for n in Timeouts::NAMES {
        Timeouts::default().set(n, 1).unwrap();
    }
    let t = ConnTable::new(ConntrackConfig {
        timeouts: to,
        ..Default::default()
    });
    let c = hook(
        &t,
        &testutil::udp("10.0.0.1", "10.0.0.2", 1, 2, b""),
        secs(10.0),
    )
    .1
    .unwrap();
    assert_eq!(c.deadline(), secs(15.0));
}

/// Listing lines for ICMP and for a UDP flow that became a stream, as the
/// kernel + conntrack-tools print them on this machine (loopback oracle:
/// request, reply 0.2 s later, the next request > 2 s after creation).
#[test]
fn icmp_and_udp_stream_listing_match_the_kernel() {
    let t = table(64);
    let rq = testutil::echo_request("127.0.0.1", "127.0.0.1", 4660, 1);
    let rp = testutil::echo_reply("127.0.0.1", "127.0.0.1", 4660, 1);
    hook(&t, &rq, secs(1.0));
    hook(&t, &rp, secs(1.0));
    assert_eq!(
        t.list(secs(1.5))[0].display(secs(1.5), false).to_string(),
        "icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=4660 \
         src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=4660 mark=0 use=1"
    );
    t.flush();
    let q = testutil::udp("127.0.0.1", "127.0.0.1", 5000, 53, b"q");
    let r = testutil::udp("127.0.0.1", "127.0.0.1", 53, 5000, b"r");
    let line = |now: f64| t.list(secs(now))[0].display(secs(now), false).to_string();
    hook(&t, &q, secs(10.0));
    hook(&t, &r, secs(10.2));
    hook(&t, &q, secs(10.5));
    assert_eq!(
        line(10.6),
        "udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=5000 dport=53 \
         src=127.0.0.1 dst=127.0.0.1 sport=53 dport=5000 mark=0 use=1"
    );
    hook(&t, &q, secs(12.6));
    assert_eq!(
        line(12.7),
        "udp      17 119 src=127.0.0.1 dst=127.0.0.1 sport=5000 dport=53 \
         src=127.0.0.1 dst=127.0.0.1 sport=53 dport=5000 [ASSURED] mark=0 use=1"
    );
}

// ---- TCP window tracking (tcp_in_window) ----

/// A client (10.0.0.1:40000) or server (10.0.0.2:80) segment with chosen
/// sequence data; `opts` is raw option bytes (a multiple of 4).
fn seg(client: bool, fl: u8, seq: u32, ack: u32, win: u16, opts: &[u8], data: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if client {
        ("10.0.0.1", "10.0.0.2", 40000, 80)
    } else {
        ("10.0.0.2", "10.0.0.1", 80, 40000)
    };
    let mut b =
        etherparse::PacketBuilder::ipv4(a(src).octets(), a(dst).octets(), 64).tcp(sp, dp, seq, win);
    if fl & SYN != 0 {
        b = b.syn();
    }
    if fl & ACK != 0 {
        b = b.ack(ack);
    }
    if fl & FIN != 0 {
        b = b.fin();
    }
    if fl & RST != 0 {
        b = b.rst();
    }
    if !opts.is_empty() {
        b = b.options_raw(opts).unwrap();
    }
    let mut v = Vec::new();
    b.write(&mut v, data).unwrap();
    v
}

/// NOP + window scale option.
fn wscale(s: u8) -> [u8; 4] {
    [1, 3, 3, s]
}

/// Client ISN 1000, server ISN 5000; both windows `win`, scaled by `ws` if given.
fn handshake(t: &ConnTable, win: u16, ws: Option<u8>, now: Timestamp) -> ConnRef<'_> {
    let o = ws.map(wscale);
    let o: &[u8] = o.as_ref().map_or(&[], |x| &x[..]);
    let (st, c) = hook(t, &seg(true, SYN, 1000, 0, win, o, b""), now);
    assert_eq!(st, CtState::New);
    let st = hook(t, &seg(false, SYN | ACK, 5000, 1001, win, o, b""), now).0;
    assert_eq!(st, CtState::Established);
    let st = hook(t, &seg(true, ACK, 1001, 5001, win, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    let c = c.unwrap();
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    assert!(c.status().assured());
    c
}

#[test]
fn window_in_window_data_and_its_ack_are_accepted() {
    let t = table(64);
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    let data = [b'x'; 200];
    let st = hook(&t, &seg(true, ACK | PSH, 1001, 5001, 1000, &[], &data), now).0;
    assert_eq!(st, CtState::Established);
    let st = hook(&t, &seg(false, ACK, 5001, 1201, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    // The answer, and the client acknowledging it.
    let st = hook(
        &t,
        &seg(false, ACK | PSH, 5001, 1201, 1000, &[], &data),
        now,
    )
    .0;
    assert_eq!(st, CtState::Established);
    let st = hook(&t, &seg(true, ACK, 1201, 5201, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.counters(Dir::Original).0, 4);
    assert_eq!(c.counters(Dir::Reply).0, 3);
    assert_eq!(t.stats().invalid, 0);
}

#[test]
fn window_data_beyond_the_window_is_invalid_and_changes_nothing() {
    let t = table(64);
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    let before = (c.counters(Dir::Original), c.deadline());
    let later = now + Duration::from_secs(5);
    // seq far beyond what the server allowed (5001 + 1000).
    let st = hook(
        &t,
        &seg(true, ACK, 1001 + 100_000, 5001, 1000, &[], b"x"),
        later,
    )
    .0;
    assert_eq!(st, CtState::Invalid);
    // Just past the right edge with more data than the window: invalid too.
    let st = hook(
        &t,
        &seg(true, ACK, 1001 + 1001, 5001, 1000, &[], &[0; 1500]),
        later,
    )
    .0;
    assert_eq!(st, CtState::Invalid);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    assert_eq!((c.counters(Dir::Original), c.deadline()), before);
    assert_eq!(t.stats().invalid, 2);
    // An out-of-window FIN or RST does not close the entry either.
    let st = hook(
        &t,
        &seg(true, FIN | ACK, 900_000, 5001, 1000, &[], b""),
        later,
    )
    .0;
    assert_eq!(st, CtState::Invalid);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    // In-window data still passes.
    let st = hook(&t, &seg(true, ACK, 1001, 5001, 1000, &[], b"ok"), later).0;
    assert_eq!(st, CtState::Established);
}

#[test]
fn window_ack_for_data_never_sent_is_invalid() {
    let t = table(64);
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    // The client sent nothing after its SYN: acking 5000 bytes of it is III.
    let st = hook(&t, &seg(false, ACK, 5001, 1001 + 5000, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Invalid);
    let st = hook(&t, &seg(true, ACK, 1001, 5001 + 1, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Invalid);
    assert_eq!(c.counters(Dir::Reply).0, 1);
    // Acking exactly what was sent is fine.
    let st = hook(&t, &seg(false, ACK, 5001, 1001, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
}

#[test]
fn window_rst_before_the_window_is_invalid_exact_rst_closes() {
    let t = table(64);
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    // The client has acked up to 5001 (td_maxack).
    let st = hook(
        &t,
        &seg(false, RST, 5001u32.wrapping_sub(70_000), 0, 0, &[], b""),
        now,
    )
    .0;
    assert_eq!(st, CtState::Invalid);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    // In the window but not the next expected byte: let through, state kept
    // (the peer answers with a challenge ACK, RFC 5961 section 3.2).
    let st = hook(&t, &seg(false, RST, 5001 + 10, 0, 0, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    // Exactly at the acked edge: closes.
    let st = hook(&t, &seg(false, RST, 5001, 0, 0, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::Close));
    assert_eq!(c.deadline(), now + Duration::from_secs(10));
}

#[test]
fn window_scaling_is_honoured() {
    // Window 512 << 7 = 65536: data 60000 bytes ahead is in the window.
    let far = |t: &ConnTable, now| {
        hook(
            t,
            &seg(false, ACK, 5001 + 60_000, 1001, 512, &[], &[1; 1000]),
            now,
        )
        .0
    };
    let t = table(64);
    let now = secs(1.0);
    handshake(&t, 512, Some(7), now);
    assert_eq!(far(&t, now), CtState::Established);
    // The same numbers without the option are far beyond a 512-byte window.
    let t = table(64);
    handshake(&t, 512, None, now);
    assert_eq!(far(&t, now), CtState::Invalid);
    // One side alone offering the option means no scaling (RFC 7323 1.3).
    let t = table(64);
    let ws = wscale(7);
    assert_eq!(
        hook(&t, &seg(true, SYN, 1000, 0, 512, &ws, b""), now).0,
        CtState::New
    );
    let st = hook(&t, &seg(false, SYN | ACK, 5000, 1001, 512, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(
        hook(&t, &seg(true, ACK, 1001, 5001, 512, &[], b""), now).0,
        CtState::Established
    );
    assert_eq!(far(&t, now), CtState::Invalid);
}

#[test]
fn window_retransmissions_are_accepted() {
    let t = table(64);
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    let data = seg(true, ACK | PSH, 1001, 5001, 1000, &[], &[7; 300]);
    for _ in 0..3 {
        assert_eq!(hook(&t, &data, now).0, CtState::Established);
    }
    // Acked, then retransmitted once more (a late duplicate): still fine.
    let st = hook(&t, &seg(false, ACK, 5001, 1301, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(hook(&t, &data, now).0, CtState::Established);
    // A retransmitted SYN-ACK in ESTABLISHED is ignored, not INVALID.
    let synack = seg(false, SYN | ACK, 5000, 1001, 1000, &[], b"");
    assert_eq!(hook(&t, &synack, now).0, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    assert_eq!(t.stats().invalid, 0);
}

#[test]
fn window_old_segments_behind_the_window_are_ignored_not_invalid() {
    let t = table(64);
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    // Move the client's edge 3000 bytes on (three full windows, each acked).
    for k in 0..3u32 {
        let seq = 1001 + k * 1000;
        let st = hook(&t, &seg(true, ACK, seq, 5001, 1000, &[], &[1; 1000]), now).0;
        assert_eq!(st, CtState::Established);
        let st = hook(&t, &seg(false, ACK, 5001, seq + 1000, 1000, &[], b""), now).0;
        assert_eq!(st, CtState::Established);
    }
    let n = c.counters(Dir::Original).0;
    // The first segment again: behind td_end - td_maxwin (II): let through
    // unrecorded, as the kernel's NFCT_TCP_IGNORE.
    let st = hook(&t, &seg(true, ACK, 1001, 5001, 1000, &[], &[1; 100]), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.counters(Dir::Original).0, n, "ignored: not counted");
    assert_eq!(t.stats().invalid, 0);
}

#[test]
fn window_mid_stream_pickup_is_liberal_with_loose() {
    let t = table(64);
    let now = secs(1.0);
    // No handshake: an ACK with data picks the connection up (tcp_loose=1).
    let (st, c) = hook(&t, &seg(true, ACK, 777_777, 123_456, 300, &[], b"mid"), now);
    assert_eq!(st, CtState::New);
    let c = c.unwrap();
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    let st = hook(&t, &seg(false, ACK, 123_456, 777_780, 300, &[], b"re"), now).0;
    assert_eq!(st, CtState::Established);
    assert!(c.status().assured());
    // Both directions are tracked liberally from then on.
    let st = hook(&t, &seg(false, ACK, 9_000_000, 1, 300, &[], b"x"), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(t.stats().invalid, 0);
    // Without loose pickup the same first packet is INVALID.
    let strict = ConnTable::new(ConntrackConfig {
        tcp_loose: false,
        ..Default::default()
    });
    let st = hook(
        &strict,
        &seg(true, ACK, 777_777, 123_456, 300, &[], b"mid"),
        now,
    )
    .0;
    assert_eq!(st, CtState::Invalid);
}

#[test]
fn window_be_liberal_accepts_what_the_window_check_refuses() {
    let t = ConnTable::new(ConntrackConfig {
        tcp_be_liberal: true,
        ..Default::default()
    });
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    let far = seg(true, ACK, 1001 + 100_000, 5001, 1000, &[], b"x");
    assert_eq!(hook(&t, &far, now).0, CtState::Established);
    let unsent = seg(false, ACK, 5001, 1001 + 5000, 1000, &[], b"");
    assert_eq!(hook(&t, &unsent, now).0, CtState::Established);
    let fin = seg(true, FIN | ACK, 900_000, 5001, 1000, &[], b"");
    assert_eq!(hook(&t, &fin, now).0, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::FinWait));
    assert_eq!(t.stats().invalid, 0);
}

#[test]
fn window_resyncs_on_a_syn_ack_answering_an_ignored_syn() {
    let t = table(64);
    let now = secs(1.0);
    let c = handshake(&t, 1000, None, now);
    // The client restarted with a new ISN; conntrack still holds the old
    // connection: the SYN is ignored, the server's SYN-ACK for it re-syncs.
    let st = hook(&t, &seg(true, SYN, 90_000, 0, 1000, &wscale(2), b""), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    let st = hook(
        &t,
        &seg(false, SYN | ACK, 70_000, 90_001, 1000, &wscale(2), b""),
        now,
    )
    .0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::SynRecv));
    let st = hook(&t, &seg(true, ACK, 90_001, 70_001, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.tcp_state(), Some(TcpState::Established));
    // The new numbers are tracked: data with the old ones lies far behind
    // the window (ignored, not counted), and acking the client's new data
    // before it was sent is INVALID.
    let st = hook(&t, &seg(true, ACK, 90_001, 70_001, 1000, &[], b"new"), now).0;
    assert_eq!(st, CtState::Established);
    let n = c.counters(Dir::Reply).0;
    let st = hook(&t, &seg(false, ACK, 5001, 1001, 1000, &[], b"old"), now).0;
    assert_eq!(st, CtState::Established);
    assert_eq!(c.counters(Dir::Reply).0, n);
    let st = hook(&t, &seg(false, ACK, 70_001, 90_100, 1000, &[], b""), now).0;
    assert_eq!(st, CtState::Invalid);
}

#[test]
fn window_updates_from_two_threads_are_serialized() {
    let t = std::sync::Arc::new(table(64));
    let now = secs(1.0);
    let c = handshake(&t, 65535, None, now);
    let id = c.id();
    let threads: Vec<_> = [true, false]
        .into_iter()
        .map(|client| {
            let t = t.clone();
            std::thread::spawn(move || {
                let (isn, peer) = if client { (1001, 5001) } else { (5001, 1001) };
                for k in 0..400u32 {
                    let p = seg(client, ACK, isn + k * 100, peer, 65535, &[], &[3; 100]);
                    assert_eq!(hook(&t, &p, now).0, CtState::Established);
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let c = t.lookup(&c.orig(), now).unwrap();
    assert_eq!(c.id(), id);
    assert_eq!(c.counters(Dir::Original).0, 2 + 400);
    assert_eq!(c.counters(Dir::Reply).0, 1 + 400);
    // Both ends moved by 40000 bytes: acking all of it is in window now.
    let st = hook(
        &t,
        &seg(false, ACK, 5001 + 40_000, 1001 + 40_000, 65535, &[], b""),
        now,
    )
    .0;
    assert_eq!(st, CtState::Established);
    assert_eq!(t.stats().invalid, 0);
}
