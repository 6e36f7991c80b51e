//! Scenario tests for the whole pipeline on a simulated clock, written from
//! netfilter's documented behaviour. Topology:
//!
//! ```text
//! clients 10.0.1.0/24 -- tg0 [10.0.1.1  tungate  10.0.2.1] tg1 -- servers 10.0.2.0/24
//! ```

use super::engine::{Interface, Pipeline, PipelineConfig, Worker};
use super::{DropReason, EmitVec, IfIndex, PacketCtx, Processor, Verdict};
use crate::clock::Timestamp;
use crate::conntrack::ConntrackConfig;
use crate::ruleset::Ruleset;
use crate::syntax::{restore, RestoreOptions};
use crate::wire::checksum;
use crate::wire::vnet::VnetHdr;
use std::net::Ipv4Addr;
use std::time::Duration;

const TG0: IfIndex = IfIndex(0);
const TG1: IfIndex = IfIndex(1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A pipeline and the states of its workers, as the worker threads hold
/// them (here behind a lock, so that a test can share the gateway).
struct Gw {
    p: Pipeline,
    workers: Vec<std::sync::Mutex<Worker>>,
}

impl std::ops::Deref for Gw {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        &self.p
    }
}

fn gateway_with(rules: &str, ct: ConntrackConfig, workers: usize) -> Gw {
    let mut rs = Ruleset::new();
    restore(&mut rs, rules, RestoreOptions::default()).expect("test ruleset parses");
    let ifaces = vec![
        Interface {
            name: "tg0".into(),
            addr: ip("10.0.1.1"),
            prefix_len: 24,
            mtu: 1500,
        },
        Interface {
            name: "tg1".into(),
            addr: ip("10.0.2.1"),
            prefix_len: 24,
            mtu: 1500,
        },
    ];
    let routes = Interface::connected_routes(&ifaces);
    let p = Pipeline::new(
        PipelineConfig {
            interfaces: ifaces,
            routes,
            conntrack: ct,
            workers,
            seed: 12345,
        },
        rs,
    );
    let workers = (0..workers)
        .map(|i| std::sync::Mutex::new(p.worker(i)))
        .collect();
    Gw { p, workers }
}

fn gateway(rules: &str) -> Gw {
    gateway_with(rules, ConntrackConfig::default(), 1)
}

/// A packet under test.
#[derive(Clone, Debug)]
struct Pkt(Vec<u8>);

fn ipv4(src: &str, dst: &str, proto: u8, l4: &[u8], ttl: u8) -> Pkt {
    let total = 20 + l4.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40;
    p[8] = ttl;
    p[9] = proto;
    p[12..16].copy_from_slice(&ip(src).octets());
    p[16..20].copy_from_slice(&ip(dst).octets());
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..].copy_from_slice(l4);
    let mut pk = Pkt(p);
    pk.fix_l4();
    pk
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8, seq: u32, ack: u32) -> Pkt {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    ipv4(src, dst, 6, &t, 64)
}

fn udp(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Pkt {
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u[8..].copy_from_slice(payload);
    ipv4(src, dst, 17, &u, 64)
}

fn ping(src: &str, dst: &str, id: u16, seq: u16) -> Pkt {
    let mut i = vec![8u8, 0, 0, 0, 0, 0, 0, 0, b'p', b'i', b'n', b'g'];
    i[4..6].copy_from_slice(&id.to_be_bytes());
    i[6..8].copy_from_slice(&seq.to_be_bytes());
    ipv4(src, dst, 1, &i, 64)
}

impl Pkt {
    fn ihl(&self) -> usize {
        ((self.0[0] & 0x0f) as usize) * 4
    }
    fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.0[12], self.0[13], self.0[14], self.0[15])
    }
    fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.0[16], self.0[17], self.0[18], self.0[19])
    }
    fn sport(&self) -> u16 {
        let h = self.ihl();
        u16::from_be_bytes([self.0[h], self.0[h + 1]])
    }
    fn dport(&self) -> u16 {
        let h = self.ihl();
        u16::from_be_bytes([self.0[h + 2], self.0[h + 3]])
    }
    fn ttl(&self) -> u8 {
        self.0[8]
    }
    fn l4(&self) -> &[u8] {
        &self.0[self.ihl()..]
    }
    fn l4_csum_at(&self) -> Option<usize> {
        match self.0[9] {
            6 => Some(16),
            17 => Some(6),
            1 => Some(2),
            _ => None,
        }
    }
    fn fix_l4(&mut self) {
        let h = self.ihl();
        let Some(at) = self.l4_csum_at() else { return };
        self.0[h + at..h + at + 2].fill(0);
        let c = self.l4_sum_complement();
        self.0[h + at..h + at + 2].copy_from_slice(&c.to_be_bytes());
    }
    fn l4_sum_complement(&self) -> u16 {
        let l4 = self.l4();
        let init = if self.0[9] == 1 {
            0
        } else {
            checksum::pseudo_header_sum(self.src(), self.dst(), self.0[9], l4.len() as u16)
        };
        !checksum::fold(checksum::sum(l4, init))
    }
    /// Both checksums verify.
    fn assert_checksums(&self) {
        assert_eq!(
            checksum::checksum(&self.0[..self.ihl()]),
            0,
            "IP checksum of {self:?}"
        );
        if self.l4_csum_at().is_some() {
            assert_eq!(self.l4_sum_complement(), 0, "L4 checksum of {self:?}");
        }
    }
}

struct Run {
    verdict: Verdict,
    pkt: Pkt,
    emitted: Vec<(IfIndex, Pkt)>,
    logs: Vec<(u8, String)>,
}

fn send_on(gw: &Gw, worker: usize, ingress: IfIndex, now: Timestamp, mut p: Pkt) -> Run {
    let mut out = EmitVec::default();
    let mut vnet = VnetHdr::default();
    let ctx = PacketCtx { ingress, now };
    let mut w = gw.workers[worker].lock().unwrap();
    let verdict = gw.p.process(&mut w, &ctx, &mut p.0, &mut vnet, &mut out);
    let emitted = out.0.into_iter().map(|(i, b)| (i, Pkt(b))).collect();
    Run {
        verdict,
        pkt: p,
        emitted,
        logs: out.1,
    }
}

fn send(gw: &Gw, ingress: IfIndex, secs: u64, p: Pkt) -> Run {
    send_on(gw, 0, ingress, Timestamp::from_secs(secs), p)
}

fn forwarded(r: &Run, out: IfIndex) -> &Pkt {
    assert_eq!(
        r.verdict,
        Verdict::Forward(out),
        "expected forward, emitted {:?}",
        r.emitted
    );
    r.pkt.assert_checksums();
    &r.pkt
}

/// Sends `p` in on `ingress` at `secs` and expects it dropped for `why`;
/// returns the run (what the gateway emitted instead).
fn dropped(gw: &Gw, ingress: IfIndex, secs: u64, p: Pkt, why: DropReason) -> Run {
    let r = send(gw, ingress, secs, p);
    assert_eq!(r.verdict, Verdict::Drop(why), "emitted {:?}", r.emitted);
    r
}

/// Sends `p` in on `ingress` at `secs` and returns it as forwarded out of
/// `out` (see [`forwarded`]).
fn forward(gw: &Gw, ingress: IfIndex, secs: u64, p: Pkt, out: IfIndex) -> Pkt {
    let r = send(gw, ingress, secs, p);
    forwarded(&r, out);
    r.pkt
}

const DNAT_RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.0.2.100/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.2.2:8080
-A PREROUTING -d 10.0.2.100/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.2.2
COMMIT
";

/// LOG writes nothing itself: its line leaves through `Emit::log`, at the
/// rule's level, once per logged packet, and only for matching packets.
#[test]
fn log_lines_leave_as_events() {
    let gw = gateway(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -p udp -j LOG --log-prefix \"fw: \" --log-level 6\nCOMMIT\n",
    );
    let r = send(&gw, TG0, 1, udp("10.0.1.2", 4000, "10.0.2.2", 53, b"q"));
    forwarded(&r, TG1);
    assert_eq!(r.logs.len(), 1, "{:?}", r.logs);
    let (level, line) = &r.logs[0];
    assert_eq!(*level, 6);
    assert!(
        line.starts_with("fw: IN=tg0 OUT=tg1 ") && line.contains(" SRC=10.0.1.2 DST=10.0.2.2 "),
        "{line}"
    );
    let r = send(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 4000, "10.0.2.2", 80, 0x02, 1, 0),
    );
    assert!(
        r.logs.is_empty(),
        "a TCP packet matches no LOG rule: {:?}",
        r.logs
    );
}

#[test]
fn forwarding_decrements_ttl_and_keeps_checksums() {
    let gw = gateway("");
    assert_eq!(
        forward(
            &gw,
            TG0,
            1,
            tcp("10.0.1.2", 40000, "10.0.2.2", 80, SYN, 1, 0),
            TG1
        )
        .ttl(),
        63
    );
}

#[test]
fn tcp_through_dnat_lifecycle_to_expiry() {
    let gw = gateway(DNAT_RULES);
    let ct = gw.conntrack();
    // The flow as the client sees it.
    let flow = r_tuple("10.0.1.2", 40000, "10.0.2.100", 80);
    // SYN to the service address is rewritten to the backend.
    let p = forward(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 40000, "10.0.2.100", 80, SYN, 100, 0),
        TG1,
    );
    assert_eq!((p.dst(), p.dport()), (ip("10.0.2.2"), 8080));
    assert_eq!((p.src(), p.sport()), (ip("10.0.1.2"), 40000));
    assert_eq!(ct.len(), 1);
    // SYN-ACK from the backend goes back as from the service address.
    let p = forward(
        &gw,
        TG1,
        1,
        tcp("10.0.2.2", 8080, "10.0.1.2", 40000, SYN | ACK, 500, 101),
        TG0,
    );
    assert_eq!((p.src(), p.sport()), (ip("10.0.2.100"), 80));
    // ACK: ESTABLISHED and ASSURED.
    forward(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 40000, "10.0.2.100", 80, ACK, 101, 501),
        TG1,
    );
    let snap = ct.lookup(&flow, Timestamp::from_secs(1)).unwrap();
    assert!(snap.status().assured());
    assert_eq!(format!("{:?}", snap.tcp_state().unwrap()), "Established");
    // Close: FIN from client, ACK+FIN from server, last ACK.
    forward(
        &gw,
        TG0,
        2,
        tcp("10.0.1.2", 40000, "10.0.2.100", 80, FIN | ACK, 101, 501),
        TG1,
    );
    forward(
        &gw,
        TG1,
        2,
        tcp("10.0.2.2", 8080, "10.0.1.2", 40000, FIN | ACK, 501, 102),
        TG0,
    );
    forward(
        &gw,
        TG0,
        2,
        tcp("10.0.1.2", 40000, "10.0.2.100", 80, ACK, 102, 502),
        TG1,
    );
    let c = ct.lookup(&flow, Timestamp::from_secs(2)).unwrap();
    assert_eq!(format!("{:?}", c.tcp_state().unwrap()), "TimeWait");
    // Still there just before 120 s of TIME_WAIT, gone after.
    assert!(ct.lookup(&flow, Timestamp::from_secs(121)).is_some());
    assert!(ct.lookup(&flow, Timestamp::from_secs(123)).is_none());
}

fn r_tuple(src: &str, sport: u16, dst: &str, dport: u16) -> crate::conntrack::Tuple {
    crate::conntrack::Tuple::new(ip(src), ip(dst), 6, sport, dport)
}

fn u_tuple(src: &str, sport: u16, dst: &str, dport: u16) -> crate::conntrack::Tuple {
    crate::conntrack::Tuple::new(ip(src), ip(dst), 17, sport, dport)
}

#[test]
fn udp_unreplied_expires_at_30s_replied_stream_at_120s() {
    let gw = gateway(DNAT_RULES);
    let ct = gw.conntrack();
    forward(
        &gw,
        TG0,
        10,
        udp("10.0.1.2", 5000, "10.0.2.9", 53, b"q"),
        TG1,
    );
    let t = u_tuple("10.0.1.2", 5000, "10.0.2.9", 53);
    assert!(ct.lookup(&t, Timestamp::from_secs(39)).is_some());
    assert!(ct.lookup(&t, Timestamp::from_secs(41)).is_none());

    // A replied flow seen again later becomes a stream: 120 s.
    let t = u_tuple("10.0.1.2", 5001, "10.0.2.9", 53);
    forward(
        &gw,
        TG0,
        100,
        udp("10.0.1.2", 5001, "10.0.2.9", 53, b"q"),
        TG1,
    );
    forward(
        &gw,
        TG1,
        100,
        udp("10.0.2.9", 53, "10.0.1.2", 5001, b"a"),
        TG0,
    );
    forward(
        &gw,
        TG0,
        105,
        udp("10.0.1.2", 5001, "10.0.2.9", 53, b"q"),
        TG1,
    );
    assert!(ct.lookup(&t, Timestamp::from_secs(105 + 119)).is_some());
    assert!(ct.lookup(&t, Timestamp::from_secs(105 + 121)).is_none());
}

#[test]
fn port_unreachable_from_backend_reaches_client_with_original_addresses() {
    let gw = gateway(DNAT_RULES);
    let q = udp("10.0.1.2", 5353, "10.0.2.100", 53, b"query");
    let r = send(&gw, TG0, 1, q.clone());
    let sent = forwarded(&r, TG1).clone();
    assert_eq!(sent.dst(), ip("10.0.2.2"));
    // The backend answers with port unreachable quoting what it got.
    let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&sent.0);
    let err = ipv4("10.0.2.2", "10.0.1.2", 1, &icmp, 64);
    let p = forward(&gw, TG1, 1, err, TG0);
    assert_eq!(
        p.src(),
        ip("10.0.2.100"),
        "outer source is the service address"
    );
    let inner = Pkt(p.l4()[8..].to_vec());
    assert_eq!(inner.src(), ip("10.0.1.2"));
    assert_eq!(
        inner.dst(),
        ip("10.0.2.100"),
        "embedded header shows what the client sent"
    );
    assert_eq!(inner.dport(), 53);
    assert_eq!(
        checksum::checksum(&inner.0[..20]),
        0,
        "embedded IP checksum"
    );
}

const MASQ_RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -s 10.0.1.0/24 -j KUBE-MARK-MASQ
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
COMMIT
";

#[test]
fn kube_mark_masq_masquerade_uses_egress_address() {
    let gw = gateway(MASQ_RULES);
    let p = forward(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 40000, "10.0.2.2", 80, SYN, 1, 0),
        TG1,
    );
    assert_eq!(
        p.src(),
        ip("10.0.2.1"),
        "MASQUERADE picks the egress interface address"
    );
    let masq_port = p.sport();
    // The reply is translated back to the client.
    let back = forward(
        &gw,
        TG1,
        1,
        tcp("10.0.2.2", 80, "10.0.2.1", masq_port, SYN | ACK, 9, 2),
        TG0,
    );
    assert_eq!((back.dst(), back.dport()), (ip("10.0.1.2"), 40000));
    // Unmarked traffic from elsewhere is not masqueraded.
    assert_eq!(
        forward(
            &gw,
            TG1,
            1,
            tcp("10.0.2.2", 1234, "10.0.1.2", 22, SYN, 1, 0),
            TG0
        )
        .src(),
        ip("10.0.2.2")
    );
}

#[test]
fn random_fully_spreads_source_ports() {
    let gw = gateway(MASQ_RULES);
    let mut ports = std::collections::HashSet::new();
    for i in 0..200u16 {
        let r = send(
            &gw,
            TG0,
            1,
            tcp("10.0.1.2", 40000 + i, "10.0.2.2", 80, SYN, 1, 0),
        );
        ports.insert(forwarded(&r, TG1).sport());
    }
    // 200 draws from ~64k ports: a spread allocator gives (almost) all
    // distinct values; one that keeps or increments ports would give a
    // contiguous range.
    assert!(ports.len() >= 195, "{} distinct ports", ports.len());
    let lo = *ports.iter().min().unwrap();
    let hi = *ports.iter().max().unwrap();
    assert!(hi - lo > 20_000, "ports spread over {lo}..{hi}");
    assert!(!ports.contains(&40000) || ports.len() > 1);
}

/// The seed article's kube-proxy shape: one service, four endpoints.
fn kube_rules() -> String {
    let mut s = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SVC-TEST - [0:0]\n",
    );
    for e in 1..=4 {
        s += &format!(":KUBE-SEP-E{e} - [0:0]\n");
    }
    s += "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
          -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
          -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
          -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
          -A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n\
          -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n\
          -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/test cluster IP\" -m tcp --dport 80 -j KUBE-SVC-TEST\n";
    s += "-A KUBE-SVC-TEST ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n";
    let probs = ["0.25000000000", "0.33333333349", "0.50000000000"];
    for (i, p) in probs.iter().enumerate() {
        s += &format!(
            "-A KUBE-SVC-TEST -m statistic --mode random --probability {p} -j KUBE-SEP-E{}\n",
            i + 1
        );
    }
    s += "-A KUBE-SVC-TEST -j KUBE-SEP-E4\n";
    for e in 1..=4 {
        s += &format!(
            "-A KUBE-SEP-E{e} -s 10.0.2.{} /32 -j KUBE-MARK-MASQ\n-A KUBE-SEP-E{e} -p tcp -m tcp -j DNAT --to-destination 10.0.2.{}:8080\n",
            10 + e,
            10 + e
        )
        .replace(" /32", "/32");
    }
    s += "COMMIT\n";
    s
}

#[test]
fn kube_service_spreads_over_four_endpoints_and_translates_replies() {
    let gw = gateway_with(
        &kube_rules(),
        ConntrackConfig {
            max_entries: 200_000,
            ..ConntrackConfig::default()
        },
        1,
    );
    let mut hits = [0u32; 4];
    let n = 100_000u32;
    for i in 0..n {
        let client = format!("10.0.1.{}", 2 + (i / 60000));
        let sport = 1024 + (i % 60000) as u16;
        let r = send(
            &gw,
            TG0,
            1,
            tcp(&client, sport, "10.96.0.10", 80, SYN, 1, 0),
        );
        let Verdict::Forward(TG1) = r.verdict else {
            panic!("flow {i}: {:?}", r.verdict)
        };
        let d = r.pkt.dst().octets()[3];
        assert_eq!(r.pkt.dport(), 8080);
        hits[(d - 11) as usize] += 1;
        if i % 10_000 == 0 {
            // The reply comes back from the service address, to the client
            // (MASQUERADE was applied: the backend answers the gateway).
            r.pkt.assert_checksums();
            let reply = tcp(
                &r.pkt.dst().to_string(),
                8080,
                &r.pkt.src().to_string(),
                r.pkt.sport(),
                SYN | ACK,
                7,
                2,
            );
            let back = send(&gw, TG1, 1, reply);
            let b = forwarded(&back, TG0);
            assert_eq!((b.src(), b.sport()), (ip("10.96.0.10"), 80));
            assert_eq!((b.dst().to_string(), b.dport()), (client.clone(), sport));
        }
    }
    for (e, h) in hits.iter().enumerate() {
        let share = *h as f64 / n as f64;
        assert!(
            (share - 0.25).abs() <= 0.01,
            "endpoint {} got {share:.4} ({hits:?})",
            e + 1
        );
    }
}

#[test]
fn reject_with_tcp_reset_answers_client_from_the_address_it_used() {
    let rules = format!(
        "{DNAT_RULES}*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset\n\
         -A FORWARD -p tcp -m tcp --dport 3000 -j REJECT\nCOMMIT\n"
    );
    let gw = gateway(&rules);
    let r = dropped(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 40000, "10.0.2.100", 80, SYN, 100, 0),
        DropReason::RuleReject,
    );
    assert_eq!(r.emitted.len(), 1);
    let (out, rst) = &r.emitted[0];
    assert_eq!(*out, TG0);
    rst.assert_checksums();
    assert_eq!(
        (rst.src(), rst.sport()),
        (ip("10.0.2.100"), 80),
        "RST from the service address"
    );
    assert_eq!((rst.dst(), rst.dport()), (ip("10.0.1.2"), 40000));
    assert_eq!(rst.l4()[13], RST | ACK);
    // Default REJECT: ICMP port unreachable from the ingress address.
    let r = dropped(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 40001, "10.0.2.2", 3000, SYN, 100, 0),
        DropReason::RuleReject,
    );
    let (_, icmp) = &r.emitted[0];
    icmp.assert_checksums();
    assert_eq!(icmp.src(), ip("10.0.1.1"));
    assert_eq!(&icmp.l4()[..2], &[3, 3]);
}

#[test]
fn drop_policy_and_established_accept() {
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A FORWARD -i tg0 -o tg1 -j ACCEPT\nCOMMIT\n";
    let gw = gateway(rules);
    // Server-initiated traffic is dropped by the policy.
    dropped(
        &gw,
        TG1,
        1,
        tcp("10.0.2.2", 5555, "10.0.1.2", 22, SYN, 1, 0),
        DropReason::PolicyDrop,
    );
    // Client-initiated flow and its replies pass.
    forward(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 40000, "10.0.2.2", 22, SYN, 1, 0),
        TG1,
    );
    forward(
        &gw,
        TG1,
        1,
        tcp("10.0.2.2", 22, "10.0.1.2", 40000, SYN | ACK, 5, 2),
        TG0,
    );
    let snap = crate::syntax::save(&gw.ruleset().snapshot(), true);
    assert!(snap.contains(":FORWARD DROP [1:40]"), "{snap}");
    assert!(
        snap.contains("[1:40] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        "{snap}"
    );
}

#[test]
fn gateway_answers_ping_and_ttl_expiry() {
    let gw = gateway("");
    let r = send(&gw, TG0, 1, ping("10.0.1.2", "10.0.1.1", 7, 1));
    assert_eq!(r.verdict, Verdict::Consumed);
    let (out, reply) = &r.emitted[0];
    assert_eq!(*out, TG0);
    reply.assert_checksums();
    assert_eq!((reply.src(), reply.dst()), (ip("10.0.1.1"), ip("10.0.1.2")));
    assert_eq!(reply.l4()[0], 0);
    // The far address of the gateway answers too.
    let r = send(&gw, TG0, 1, ping("10.0.1.2", "10.0.2.1", 7, 2));
    assert_eq!(r.emitted[0].1.src(), ip("10.0.2.1"));
    // TTL 1 through the gateway: time exceeded from the ingress address.
    let mut p = tcp("10.0.1.2", 40000, "10.0.2.2", 80, SYN, 1, 0);
    p.0[8] = 1;
    p.0[10..12].fill(0);
    let c = checksum::checksum(&p.0[..20]);
    p.0[10..12].copy_from_slice(&c.to_be_bytes());
    let r = dropped(&gw, TG0, 1, p, DropReason::TtlExceeded);
    let (_, te) = &r.emitted[0];
    assert_eq!(te.l4()[0], 11);
    assert_eq!(te.src(), ip("10.0.1.1"));
    // No route: net unreachable.
    let r = dropped(
        &gw,
        TG0,
        1,
        tcp("10.0.1.2", 40000, "192.0.2.1", 80, SYN, 1, 0),
        DropReason::NoRoute,
    );
    assert_eq!(&r.emitted[0].1.l4()[..2], &[3, 0]);
}

#[test]
fn full_table_drops_only_new_flows() {
    let gw = gateway_with(
        "",
        ConntrackConfig {
            max_entries: 8,
            ..ConntrackConfig::default()
        },
        1,
    );
    // Eight assured flows fill the table.
    for i in 0..8u16 {
        forward(
            &gw,
            TG0,
            1,
            tcp("10.0.1.2", 1000 + i, "10.0.2.2", 80, SYN, 1, 0),
            TG1,
        );
        forward(
            &gw,
            TG1,
            1,
            tcp("10.0.2.2", 80, "10.0.1.2", 1000 + i, SYN | ACK, 1, 2),
            TG0,
        );
        forward(
            &gw,
            TG0,
            1,
            tcp("10.0.1.2", 1000 + i, "10.0.2.2", 80, ACK, 2, 2),
            TG1,
        );
    }
    dropped(
        &gw,
        TG0,
        2,
        tcp("10.0.1.2", 2000, "10.0.2.2", 80, SYN, 1, 0),
        DropReason::ConntrackFull,
    );
    // Established flows keep going.
    forward(
        &gw,
        TG0,
        2,
        tcp("10.0.1.2", 1003, "10.0.2.2", 80, ACK, 2, 2),
        TG1,
    );
}

/// kube DNS race: two UDP packets of one socket (A and AAAA) processed by two
/// workers at the same moment must both be delivered, with one translation.
#[test]
fn dns_race_two_workers_both_delivered() {
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
                 :SVC - [0:0]\n\
                 -A PREROUTING -d 10.96.0.10/32 -p udp -m udp --dport 53 -j SVC\n\
                 -A SVC -p udp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 10.0.2.11:53\n\
                 -A SVC -p udp -j DNAT --to-destination 10.0.2.12:53\n\
                 -A POSTROUTING -o tg1 -j MASQUERADE\nCOMMIT\n";
    let gw = std::sync::Arc::new(gateway_with(rules, ConntrackConfig::default(), 2));
    for round in 0..300u16 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|w| {
                let gw = gw.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    let q = udp(
                        "10.0.1.2",
                        10_000 + round,
                        "10.96.0.10",
                        53,
                        if w == 0 { b"A" } else { b"AAAA" },
                    );
                    b.wait();
                    let r = send_on(&gw, w, TG0, Timestamp::from_secs(1), q);
                    (r.verdict, r.pkt.dst(), r.pkt.src(), r.pkt.sport())
                })
            })
            .collect();
        let res: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for r in &res {
            assert_eq!(r.0, Verdict::Forward(TG1), "round {round}: {res:?}");
        }
        assert_eq!(
            (res[0].1, res[0].2, res[0].3),
            (res[1].1, res[1].2, res[1].3),
            "round {round}: one translation"
        );
    }
}

#[test]
fn bad_packets_are_dropped_with_a_reason_never_a_panic() {
    let gw = gateway(DNAT_RULES);
    let good = tcp("10.0.1.2", 40000, "10.0.2.100", 80, SYN, 1, 0);
    for n in 0..good.0.len() {
        let r = send(&gw, TG0, 1, Pkt(good.0[..n].to_vec()));
        assert!(
            matches!(r.verdict, Verdict::Drop(_)),
            "truncated to {n}: {:?}",
            r.verdict
        );
    }
    let mut bad = good.clone();
    bad.0[10] ^= 0xff;
    assert_eq!(
        send(&gw, TG0, 1, bad).verdict,
        Verdict::Drop(DropReason::BadIpChecksum)
    );
    let mut v6 = good.clone();
    v6.0[0] = 0x65;
    assert_eq!(
        send(&gw, TG0, 1, v6).verdict,
        Verdict::Drop(DropReason::Ipv6Unsupported)
    );
    let mut v5 = good;
    v5.0[0] = 0x55;
    assert_eq!(
        send(&gw, TG0, 1, v5).verdict,
        Verdict::Drop(DropReason::BadVersion)
    );
    let _ = Duration::ZERO;
}

#[test]
fn fragments_are_reassembled_natted_and_refragmented() {
    let gw = gateway(DNAT_RULES);
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let mut dgram = udp("10.0.1.2", 5353, "10.0.2.100", 53, &payload);
    dgram.0[6] = 0; // no DF
    dgram.0[10..12].fill(0);
    let c = checksum::checksum(&dgram.0[..20]);
    dgram.0[10..12].copy_from_slice(&c.to_be_bytes());
    let mut frags = Vec::new();
    crate::conntrack::defrag::fragment(&dgram.0, 1200, |f| frags.push(f.to_vec())).unwrap();
    assert_eq!(frags.len(), 3);
    // Out of order: last, first, middle.
    let r = send(&gw, TG0, 1, Pkt(frags[2].clone()));
    assert_eq!(r.verdict, Verdict::Consumed);
    let r = send(&gw, TG0, 1, Pkt(frags[0].clone()));
    assert_eq!(r.verdict, Verdict::Consumed);
    let r = send(&gw, TG0, 1, Pkt(frags[1].clone()));
    assert_eq!(r.verdict, Verdict::Consumed);
    assert!(r.emitted.len() >= 3, "{} fragments out", r.emitted.len());
    let d = crate::conntrack::defrag::Defrag::new(Default::default());
    let mut whole = None;
    for (out, f) in &r.emitted {
        assert_eq!(*out, TG1);
        assert!(
            f.0.len() <= 1200,
            "no larger than the fragments that came in"
        );
        assert_eq!(checksum::checksum(&f.0[..20]), 0);
        if let crate::conntrack::defrag::DefragOutcome::Complete { packet, .. } =
            d.process(&f.0, Timestamp::from_secs(1))
        {
            whole = Some(Pkt(packet));
        }
    }
    let whole = whole.expect("the fragments reassemble");
    assert_eq!(
        whole.dst(),
        ip("10.0.2.2"),
        "DNAT applied to the whole datagram"
    );
    assert_eq!(&whole.l4()[8..], &payload[..]);
    whole.assert_checksums();
    // A never-completed datagram stays held, then its queue expires.
    let r = send(&gw, TG0, 2, Pkt(frags[0].clone()));
    assert_eq!(r.verdict, Verdict::Consumed);
    gw.maintain(Timestamp::from_secs(40), 1024);
}

fn compiled(rules: &str) -> super::compile::CompiledRuleset {
    let mut rs = Ruleset::new();
    restore(&mut rs, rules, RestoreOptions::default()).expect("test ruleset parses");
    super::compile::CompiledRuleset::compile(rs, 1)
}

/// Each thread caches the ruleset it last used (by pipeline and
/// generation): two pipelines served alternately by one thread must each
/// apply their own rules, and a swap must take effect on the next packet,
/// for established flows as for new ones.
#[test]
fn ruleset_swaps_and_two_pipelines_on_one_thread() {
    let drop_fwd =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    let accept_fwd =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    let a = gateway(accept_fwd);
    let b = gateway(drop_fwd);
    let syn = || tcp("10.0.1.2", 40000, "10.0.2.2", 80, SYN, 1, 0);
    let synack = || tcp("10.0.2.2", 80, "10.0.1.2", 40000, SYN | ACK, 7, 2);
    let ack = || tcp("10.0.1.2", 40000, "10.0.2.2", 80, ACK, 2, 8);
    for _ in 0..2 {
        forward(&a, TG0, 1, syn(), TG1);
        assert_eq!(
            send(&b, TG0, 1, syn()).verdict,
            Verdict::Drop(DropReason::PolicyDrop)
        );
    }
    forward(&a, TG1, 1, synack(), TG0);
    forward(&a, TG0, 1, ack(), TG1);
    // Swap `a` to DROP: its established flow is dropped from the next packet.
    let g = a.replace_ruleset(compiled(drop_fwd));
    assert_eq!(a.generation(), g);
    assert_eq!(
        send(&a, TG0, 1, ack()).verdict,
        Verdict::Drop(DropReason::PolicyDrop)
    );
    // ... and back, while `b` (same generation number now) keeps its own.
    a.replace_ruleset(compiled(accept_fwd));
    b.replace_ruleset(compiled(drop_fwd));
    assert_eq!(a.generation(), b.generation() + 1);
    b.replace_ruleset(compiled(drop_fwd));
    assert_eq!(a.generation(), b.generation());
    forward(&a, TG0, 1, ack(), TG1);
    assert_eq!(
        send(&b, TG0, 1, syn()).verdict,
        Verdict::Drop(DropReason::PolicyDrop)
    );
    forward(&a, TG0, 1, ack(), TG1);
    // Another thread sees the same rules.
    std::thread::scope(|s| {
        s.spawn(|| forward(&a, TG0, 1, ack(), TG1).clone());
    });
    // Empty built-in chains still count their policy, per packet and byte:
    // three ACKs since the last swap on `a`.
    let snap = crate::syntax::save(&a.ruleset().snapshot(), true);
    assert!(snap.contains(":FORWARD ACCEPT [3:120]"), "{snap}");
    let snap = crate::syntax::save(&b.ruleset().snapshot(), true);
    assert!(snap.contains(":FORWARD DROP [1:40]"), "{snap}");
}

/// `--every 3 --packet 0` drops the 1st, 4th and 7th new UDP flow, as the
/// kernel does (differential case statistic-nth), from either worker.
#[test]
fn statistic_nth_drops_first_of_every_three() {
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 -A FORWARD -p udp -m statistic --mode nth --every 3 --packet 0 -j DROP\nCOMMIT\n";
    let gw = gateway_with(rules, ConntrackConfig::default(), 2);
    let dropped: Vec<u16> = (0..9u16)
        .filter(|&i| {
            let p = udp("10.0.1.2", 41000 + i, "10.0.2.2", 53, b"n");
            let r = send_on(&gw, (i % 2) as usize, TG0, Timestamp::from_secs(1), p);
            r.verdict == Verdict::Drop(DropReason::RuleDrop)
        })
        .collect();
    assert_eq!(dropped, [0, 3, 6]);
}
