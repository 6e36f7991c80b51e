//! Conntrack micro-benchmark (a benchmark, not a test).
//!
//! ```text
//! cargo run --release -p tungate --example ct_bench [entries]
//! ```
//! Prints inserts/s (new_conn + confirm), lookups/s (lookup + update) at 1k
//! entries and at the full size, and bytes per entry at the full size, both
//! as RSS delta and as the table's own accounting.
#[path = "../../bench/rss.rs"]
mod rss;

use rss::rss_bytes;
use std::net::Ipv4Addr;
use std::time::Instant;
use tungate::clock::Timestamp;
use tungate::conntrack::{ConnTable, ConntrackConfig, Tuple, PROTO_UDP};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn tuple(i: u32) -> Tuple {
    // Distinct client address + port per flow, towards a few servers.
    Tuple::new(
        Ipv4Addr::from(0x0a00_0000 | (i >> 4)),
        Ipv4Addr::from(0xac10_0000 | (i & 15)),
        PROTO_UDP,
        1024 + (i % 60000) as u16,
        53,
    )
}

fn shuffled(n: u32, count: usize) -> Vec<Tuple> {
    let mut x: u64 = 0x1234_5678;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            tuple((x % n as u64) as u32)
        })
        .collect()
}

fn fill(n: u32) -> (ConnTable, f64) {
    let t = ConnTable::new(ConntrackConfig {
        max_entries: n as usize,
        ..Default::default()
    });
    let now = Timestamp::from_secs(1);
    let start = Instant::now();
    for i in 0..n {
        let nc = t
            .new_conn(
                &tuple(i),
                &tungate::conntrack::tcp::Segment::default(),
                100,
                now,
            )
            .expect("udp");
        t.confirm(&nc, now).expect("room");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    (t, rate)
}

fn lookups(t: &ConnTable, n: u32) -> f64 {
    lookups_of(t, &shuffled(n, 2_000_000))
}

fn lookups_of(t: &ConnTable, keys: &[Tuple]) -> f64 {
    let now = Timestamp::from_secs(2);
    let start = Instant::now();
    let mut hits = 0u64;
    for k in keys {
        if let Some(c) = t.lookup(k, now) {
            c.update(&tungate::conntrack::tcp::Segment::default(), 100, now);
            hits += 1;
        }
    }
    assert_eq!(hits, keys.len() as u64);
    keys.len() as f64 / start.elapsed().as_secs_f64()
}

/// A zeroed IPv4 packet of `len` bytes: version/IHL, total length, TTL 64
/// and `proto` set; addresses, L4 header and checksum left to the caller.
fn ipv4_packet(len: usize, proto: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p
}

/// One established TCP flow through DNAT + MASQUERADE, both directions:
/// classify + track + two translate calls per packet (the conntrack/NAT part
/// of the pipeline's per-packet cost).
fn established_nat_pps() -> f64 {
    use tungate::conntrack::{classify, Tracked};
    use tungate::nat::{self, Manip, NatRange, Rng};
    let t = ConnTable::new(ConntrackConfig::default());
    let mut rng = Rng::new(1);
    let now = Timestamp::from_secs(1);
    let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let mk = |src: Ipv4Addr, dst: Ipv4Addr, sp: u16, dp: u16, flags: u8| {
        let mut p = ipv4_packet(20 + 20 + 1400, 6);
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        p[20..22].copy_from_slice(&sp.to_be_bytes());
        p[22..24].copy_from_slice(&dp.to_be_bytes());
        p[32] = 0x50;
        p[33] = flags;
        tungate::wire::Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    };
    let dnat = NatRange::addr(a("172.16.0.5")).with_ports(8080, 8080);
    let masq = NatRange::masquerade(a("172.16.0.1"), None);
    let mut syn = mk(a("10.0.0.1"), a("10.96.0.10"), 40000, 80, 0x02);
    let key = classify(&syn).unwrap();
    let Tracked::New(mut nc) = t.track(&key, 60, now) else {
        panic!()
    };
    nat::setup(&t, &mut nc, &dnat, Manip::Dst, &mut rng, now).unwrap();
    nat::setup(&t, &mut nc, &masq, Manip::Src, &mut rng, now).unwrap();
    nat::translate_both(&mut syn, false, &nc.nat_target()).unwrap();
    t.confirm(&nc, now).unwrap();
    let mut pkts = [
        mk(a("172.16.0.5"), a("172.16.0.1"), 8080, 40000, 0x12),
        mk(a("10.0.0.1"), a("10.96.0.10"), 40000, 80, 0x10),
        mk(a("172.16.0.5"), a("172.16.0.1"), 8080, 40000, 0x10),
    ];
    // Handshake, then steady state: each packet is translated in place and
    // translated back by the next lookup in the same direction, so reset it.
    let originals = pkts.clone();
    const N: usize = 4_000_000;
    let start = Instant::now();
    for i in 0..N {
        let k = if i == 0 { 0 } else { 1 + (i & 1) };
        let p = &mut pkts[k];
        p.copy_from_slice(&originals[k][..]);
        let key = classify(p).unwrap();
        match t.track(&key, p.len() as u32, now) {
            Tracked::Known { conn, .. } => {
                let target = conn.nat_target();
                nat::translate(p, false, &target, Manip::Dst).unwrap();
                nat::translate(p, false, &target, Manip::Src).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    N as f64 / start.elapsed().as_secs_f64()
}

/// New UDP flows through DNAT (4-address range) + MASQUERADE, one core:
/// classify + track + 2 setup + 2 translate + confirm, into a table that
/// keeps up to `n` entries (so it fills and recycles as a busy gateway).
fn new_flows_per_s(n: usize) -> f64 {
    use tungate::conntrack::{classify, Tracked};
    use tungate::nat::{self, Manip, NatRange, Rng};
    let t = ConnTable::new(ConntrackConfig {
        max_entries: n,
        ..Default::default()
    });
    let mut rng = Rng::new(7);
    let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let dnat = NatRange::addrs(a("172.16.0.10"), a("172.16.0.13")).with_ports(53, 53);
    let masq = NatRange::masquerade(a("172.16.0.1"), None);
    let mut p = ipv4_packet(20 + 8 + 32, 17);
    p[24..26].copy_from_slice(&40u16.to_be_bytes());
    let template = p.clone();
    const N: u32 = 1_000_000;
    let start = Instant::now();
    for i in 0..N {
        p.copy_from_slice(&template);
        let now = Timestamp::from_secs(1 + (i / 100_000) as u64);
        p[12..16].copy_from_slice(&(0x0a00_0000 | (i >> 4)).to_be_bytes());
        p[16..20].copy_from_slice(&a("10.96.0.10").octets());
        p[20..22].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
        p[22..24].copy_from_slice(&53u16.to_be_bytes());
        let key = classify(&p).unwrap();
        let Tracked::New(mut nc) = t.track(&key, p.len() as u32, now) else {
            continue;
        };
        nat::setup(&t, &mut nc, &dnat, Manip::Dst, &mut rng, now).unwrap();
        nat::translate(&mut p, false, &nc.nat_target(), Manip::Dst).unwrap();
        nat::setup(&t, &mut nc, &masq, Manip::Src, &mut rng, now).unwrap();
        nat::translate(&mut p, false, &nc.nat_target(), Manip::Src).unwrap();
        let _ = t.confirm(&nc, now);
    }
    N as f64 / start.elapsed().as_secs_f64()
}

/// The hasher choice: the same dashmap lookups (1000 tuples) with std's
/// SipHash `RandomState` and with the table's `TupleHashBuilder`.
fn hasher_compare() -> (f64, f64) {
    use std::hash::BuildHasher;
    fn run<S: BuildHasher + Clone>(s: S) -> f64 {
        let m: dashmap::DashMap<Tuple, u32, S> = dashmap::DashMap::with_hasher(s);
        for i in 0..1000 {
            m.insert(tuple(i), i);
        }
        let keys = shuffled(1000, 4_000_000);
        let start = Instant::now();
        let mut sum = 0u64;
        for k in &keys {
            sum += *m.get(k).unwrap() as u64;
        }
        assert!(sum > 0);
        keys.len() as f64 / start.elapsed().as_secs_f64()
    }
    (
        run(std::collections::hash_map::RandomState::new()),
        run(tungate::hash::TupleHashBuilder::random()),
    )
}

fn main() {
    let (sip, ours) = hasher_compare();
    println!("map_get_per_s_siphash={sip:.0} map_get_per_s_tuplehash={ours:.0}");
    println!(
        "new_flows_dnat_masq_per_s_1core_table_64k={:.0}",
        new_flows_per_s(65_536)
    );
    println!(
        "established_dnat_masq_pps_1core={:.0}",
        established_nat_pps()
    );
    let big: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let (small, _) = fill(1000);
    let l1k = lookups(&small, 1000);
    drop(small);
    let before = rss_bytes();
    let (t, ins) = fill(big);
    let after = rss_bytes();
    let lbig = lookups(&t, big);
    // Same big table, but a hot set of 1000 flows (spread over the table):
    // shows whether the table size itself, not the cache footprint of the
    // working set, changes the cost.
    let hot: Vec<Tuple> = shuffled(big, 1000);
    let hot_keys: Vec<Tuple> = (0..2_000_000).map(|i| hot[(i * 7919) % 1000]).collect();
    let lhot = lookups_of(&t, &hot_keys);
    // Two threads, each on its own hot set of 1000 flows (a flow stays on
    // one worker with multi-queue TUN; the machine has 2 cores).
    let hot2: Vec<Vec<Tuple>> = (0..2)
        .map(|w| {
            let h: Vec<Tuple> = (0..1000)
                .map(|i| tuple((i * 2 + w) * (big / 2000)))
                .collect();
            (0..2_000_000).map(|i| h[(i * 7919) % 1000]).collect()
        })
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for keys in &hot2 {
            let t = &t;
            s.spawn(move || lookups_of(t, keys));
        }
    });
    let l2t = 2.0 * hot_keys.len() as f64 / start.elapsed().as_secs_f64();
    let per_entry_rss = (after - before) as f64 / big as f64;
    let per_entry_acct = t.memory_usage() as f64 / big as f64;
    println!("entries={big} slot_bytes={}", ConnTable::SLOT_BYTES);
    println!("inserts_per_s={ins:.0}");
    println!("lookups_per_s_1k={l1k:.0}");
    println!("lookups_per_s_{big}={lbig:.0}");
    println!("lookups_per_s_{big}_table_1k_hot={lhot:.0}");
    println!("lookups_per_s_{big}_table_1k_hot_2_threads_total={l2t:.0}");
    println!(
        "bytes_per_entry_rss={per_entry_rss:.1} bytes_per_entry_accounted={per_entry_acct:.1}"
    );
}
