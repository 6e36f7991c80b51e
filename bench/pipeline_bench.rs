//! Pipeline-only benchmark (no I/O): the cost of `Pipeline::process` on one
//! core. Run through `bench/pipeline.sh`, which generates the rulesets.
//!
//! usage: pipeline_bench RULES_10 RULES_10K
//!
//! `PIPELINE_BENCH_ONLY=established|newflows10|newflows10k|memory` runs one
//! figure alone (bench/pipeline.sh runs each in a fresh process, so that no
//! figure inherits another's heap: memory freed by one run and reused by the
//! next made later runs look faster than a fresh one).
//!
//! Prints a table and, as its last line,
//! `established_mpps=A newflows_10=B newflows_10k=C bytes_per_entry=D`:
//! (a) packets/s (millions) of one established TCP flow through
//!     DNAT + MASQUERADE (the kube ruleset's service), (b) new flows/s to the
//!     last service of the 10- and 10,000-service kube rulesets, (c) RSS bytes
//!     per conntrack entry with 1,000,000 entries.

mod rss;

use rss::rss_bytes;
use std::net::Ipv4Addr;
use std::time::Instant;
use tungate::clock::Timestamp;
use tungate::conntrack::ConntrackConfig;
use tungate::pipeline::engine::{Interface, Pipeline, PipelineConfig, Worker};
use tungate::pipeline::{EmitVec, IfIndex, PacketCtx, Processor, Verdict};
use tungate::ruleset::Ruleset;
use tungate::syntax::{restore, RestoreOptions};
use tungate::wire::checksum;
use tungate::wire::vnet::VnetHdr;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TG0: IfIndex = IfIndex(0);
const TG1: IfIndex = IfIndex(1);

fn gateway(rules: &str, max_entries: usize) -> Gw {
    let mut rs = Ruleset::new();
    restore(&mut rs, rules, RestoreOptions::default()).expect("ruleset parses");
    // Clients on 10.192.0.0/10 (pods in 10.244.0.0/16 among them) behind tg0, endpoints (10.128.0.0/10) behind tg1;
    // cluster IPs (10.96.0.0/12) are routed towards tg1 too.
    let ifaces = vec![
        Interface {
            name: "tg0".into(),
            addr: "10.192.0.1".parse().unwrap(),
            prefix_len: 10,
            mtu: 1500,
        },
        Interface {
            name: "tg1".into(),
            addr: "10.128.0.1".parse().unwrap(),
            prefix_len: 10,
            mtu: 1500,
        },
    ];
    let mut routes = Interface::connected_routes(&ifaces);
    routes.add("10.96.0.0/11".parse().unwrap(), TG1);
    let p = Pipeline::new(
        PipelineConfig {
            interfaces: ifaces,
            routes,
            conntrack: ConntrackConfig {
                max_entries,
                ..ConntrackConfig::default()
            },
            workers: 1,
            seed: 7,
        },
        rs,
    );
    let w = p.worker(0);
    Gw { p, w }
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let total = 40 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..28].copy_from_slice(&1u32.to_be_bytes());
    p[28..32].copy_from_slice(&1u32.to_be_bytes());
    p[32] = 0x50;
    p[33] = flags;
    p[34..36].copy_from_slice(&64240u16.to_be_bytes());
    let ps = checksum::pseudo_header_sum(src, dst, 6, (20 + payload) as u16);
    let c = !checksum::fold(checksum::sum(&p[20..], ps));
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

/// The pipeline and the state of its one worker, as a worker thread holds them.
struct Gw {
    p: Pipeline,
    w: Worker,
}

fn run(
    gw: &mut Gw,
    ingress: IfIndex,
    now: Timestamp,
    pkt: &mut [u8],
    out: &mut EmitVec,
) -> Verdict {
    let ctx = PacketCtx { ingress, now };
    gw.p.process(&mut gw.w, &ctx, pkt, &mut VnetHdr::default(), out)
}

/// The cluster IP and port of service `i` as bench/kube-gen numbers them.
fn service(i: usize) -> (Ipv4Addr, u16) {
    let ip = if i < 65536 {
        Ipv4Addr::new(10, 96, ((i >> 8) & 255) as u8, (i & 255) as u8)
    } else {
        Ipv4Addr::new(
            10,
            (97 + (i >> 16)) as u8,
            ((i >> 8) & 255) as u8,
            (i & 255) as u8,
        )
    };
    (ip, 80)
}

fn established(rules: &str) -> f64 {
    let mut gw = gateway(rules, 1 << 16);
    let mut out = EmitVec::default();
    // An off-cluster client: KUBE-MARK-MASQ applies, so DNAT + MASQUERADE.
    let client = Ipv4Addr::new(10, 200, 0, 2);
    let (vip, port) = service(0);
    let now = Timestamp::from_secs(10);
    let mut syn = tcp(client, 40000, vip, port, 0x02, 0);
    let Verdict::Forward(_) = run(&mut gw, TG0, now, &mut syn, &mut out) else {
        panic!("SYN not forwarded")
    };
    let (ep, masq_port) = (
        Ipv4Addr::new(syn[16], syn[17], syn[18], syn[19]),
        u16::from_be_bytes([syn[20], syn[21]]),
    );
    let masq = Ipv4Addr::new(syn[12], syn[13], syn[14], syn[15]);
    let ep_port = u16::from_be_bytes([syn[22], syn[23]]);
    let mut synack = tcp(ep, ep_port, masq, masq_port, 0x12, 0);
    let _ = run(&mut gw, TG1, now, &mut synack, &mut out);
    let template = tcp(client, 40000, vip, port, 0x10, 0);
    let mut pkt = template.clone();
    let n = 5_000_000u64;
    let t = Instant::now();
    for _ in 0..n {
        pkt.copy_from_slice(&template);
        let v = run(&mut gw, TG0, now, &mut pkt, &mut out);
        debug_assert!(matches!(v, Verdict::Forward(_)));
        let _ = std::hint::black_box(v);
    }
    let dt = t.elapsed().as_secs_f64();
    assert_eq!(&pkt[16..20], &ep.octets(), "packets are DNATed");
    n as f64 / dt / 1e6
}

/// New TCP flows per second to the last service, and the RSS per entry after.
fn new_flows(rules: &str, services: usize, flows: u32) -> (f64, f64) {
    // RSS is taken before the gateway exists: the table's up-front
    // allocations count against its entries.
    let rss0 = rss_bytes();
    let mut gw = gateway(rules, flows as usize + 1024);
    let mut out = EmitVec::default();
    let (vip, port) = service(services - 1);
    let now = Timestamp::from_secs(10);
    // Warm up the allocator and one flow.
    let mut p = tcp(Ipv4Addr::new(10, 244, 255, 255), 1, vip, port, 0x02, 0);
    let _ = run(&mut gw, TG0, now, &mut p, &mut out);
    let template = tcp(Ipv4Addr::new(10, 1, 0, 0), 0, vip, port, 0x02, 0);
    let mut pkt = template.clone();
    let t = Instant::now();
    let mut forwarded = 0u32;
    for i in 0..flows {
        pkt.copy_from_slice(&template);
        // Distinct pod source address/port per flow (pod-to-service
        // traffic: DNAT, no MASQUERADE, so NAT ports do not run out).
        let src = Ipv4Addr::new(10, 244, (i >> 8) as u8, i as u8);
        let sport = 1024 + (i >> 16) as u16;
        set_src(&mut pkt, src, sport);
        if let Verdict::Forward(_) = run(&mut gw, TG0, now, &mut pkt, &mut out) {
            forwarded += 1;
        }
    }
    let dt = t.elapsed().as_secs_f64();
    assert_eq!(forwarded, flows, "every SYN is admitted");
    let entries = gw.p.conntrack().len();
    let per_entry = (rss_bytes().saturating_sub(rss0)) as f64 / entries.max(1) as f64;
    (flows as f64 / dt, per_entry)
}

fn set_src(p: &mut [u8], src: Ipv4Addr, sport: u16) {
    let old_src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let old_port = u16::from_be_bytes([p[20], p[21]]);
    p[12..16].copy_from_slice(&src.octets());
    let c = u16::from_be_bytes([p[10], p[11]]);
    let c = checksum::update_addr(c, old_src, src, false);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    let c = u16::from_be_bytes([p[36], p[37]]);
    let c = checksum::update_addr(c, old_src, src, false);
    let c = checksum::update_port(c, old_port, sport, false);
    p[36..38].copy_from_slice(&c.to_be_bytes());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: pipeline_bench RULES_10 RULES_10K");
        std::process::exit(2);
    }
    let r10 = std::fs::read_to_string(&args[1]).expect("read RULES_10");
    let r10k = std::fs::read_to_string(&args[2]).expect("read RULES_10K");

    if std::env::var("PIPELINE_BENCH_ONLY").as_deref() == Ok("established") {
        // For profiling: the established path alone.
        let est = (0..3).map(|_| established(&r10)).fold(0.0, f64::max);
        println!("established_mpps={est:.2}");
        return;
    }
    if let Ok(n) = std::env::var("PIPELINE_BENCH_ONLY")
        .as_deref()
        .map(str::to_string)
    {
        if n == "memory" {
            let (nf1m, bpe) = new_flows(&r10, 10, 1_000_000);
            println!("RSS per conntrack entry at 1,000,000 entries: {bpe:.0} bytes (filled at {nf1m:.0} flows/s)");
            println!("bytes_per_entry={bpe:.0}");
            return;
        }
        if let Some(which) = n.strip_prefix("newflows") {
            // For profiling: new flows alone (newflows10 or newflows10k).
            let (rules, svcs) = if which == "10k" {
                (&r10k, 10_000)
            } else {
                (&r10, 10)
            };
            let (nf, _) = new_flows(rules, svcs, 300_000);
            println!("newflows_{which}={nf:.0}");
            return;
        }
    }
    // Memory first, in a fresh heap: freed memory of later runs would stay
    // resident and hide the growth.
    let (nf1m, bpe) = new_flows(&r10, 10, 1_000_000);
    let est = (0..3).map(|_| established(&r10)).fold(0.0, f64::max);
    println!("established flow, DNAT+MASQUERADE, 64-byte packets: {est:.2} Mpps (best of 3)");
    let (nf10, _) = new_flows(&r10, 10, 300_000);
    println!("new flows, 10 services:     {nf10:>10.0} /s");
    let (nf10k, _) = new_flows(&r10k, 10_000, 300_000);
    println!("new flows, 10,000 services: {nf10k:>10.0} /s");
    println!("RSS per conntrack entry at 1,000,000 entries: {bpe:.0} bytes (filled at {nf1m:.0} flows/s)");
    println!(
        "established_mpps={est:.2} newflows_10={nf10:.0} newflows_10k={nf10k:.0} bytes_per_entry={bpe:.0}"
    );
}
