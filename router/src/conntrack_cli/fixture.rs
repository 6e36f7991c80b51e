//! Expected lines are in the exact form conntrack 1.4.7 printed for the
//! same flows created in a kernel (scratch network namespace).

use super::run;
use crate::clock::Timestamp;
use crate::conntrack::{classify, ConnTable, ConntrackConfig, Tracked};
use crate::nat::{self, Manip, NatRange, Rng};
use crate::syntax::Output;
use crate::wire::tcp::flags::{ACK, SYN};
use crate::wire::testutil::{self, a};

pub(super) const T0: Timestamp = Timestamp::from_secs(100);
pub(super) const T1: Timestamp = Timestamp::from_secs(101);

pub(super) fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

pub(super) fn ct(t: &ConnTable, s: &str) -> Output {
    run(t, &args(s), T1)
}

/// Feeds one packet through conntrack; a new flow is confirmed after
/// `prep` (NAT, mark) has had its say.
pub(super) fn feed(
    t: &ConnTable,
    pkt: &[u8],
    now: Timestamp,
    prep: impl FnOnce(&mut crate::conntrack::NewConn),
) {
    let key = classify(pkt).unwrap();
    match t.track(&key, pkt.len() as u32, now) {
        Tracked::New(mut nc) => {
            prep(&mut nc);
            t.confirm(&nc, now).unwrap();
        }
        Tracked::Known { .. } | Tracked::Related(_) => {}
        Tracked::Invalid | Tracked::Untracked => panic!("untrackable packet in fixture"),
    }
}

/// Feeds packets through conntrack in order, new flows confirmed as they
/// are (no NAT, no mark).
pub(super) fn feed_all(t: &ConnTable, pkts: &[Vec<u8>], now: Timestamp) {
    for pkt in pkts {
        feed(t, pkt, now, |_| {});
    }
}

/// The five flows of the kernel run: a DNATed, assured TCP connection,
/// an unreplied UDP flow with mark 42, a replied UDP flow, an answered
/// ping and a TCP SYN without answer.
pub(super) fn fixture() -> ConnTable {
    let t = ConnTable::new(ConntrackConfig {
        event_queue: 256,
        ..Default::default()
    });
    // 1. 10.9.0.1:50236 -> 10.9.0.99:80, DNAT to 127.0.0.1:8080.
    feed(
        &t,
        &testutil::tcp("10.9.0.1", "10.9.0.99", 50236, 80, SYN, b""),
        T0,
        |nc| {
            let r = NatRange::addr(a("127.0.0.1")).with_ports(8080, 8080);
            nat::setup(&t, nc, &r, Manip::Dst, &mut Rng::new(1), T0).unwrap();
        },
    );
    feed_all(
        &t,
        &[
            testutil::tcp("127.0.0.1", "10.9.0.1", 8080, 50236, SYN | ACK, b""),
            testutil::tcp("10.9.0.1", "10.9.0.99", 50236, 80, ACK, b""),
        ],
        T0,
    );
    // 2. UDP without answer, connmark 42.
    feed(
        &t,
        &testutil::udp("10.9.0.1", "10.9.0.1", 56211, 4444, b"z"),
        T0,
        |nc| nc.mark = 42,
    );
    feed_all(
        &t,
        &[
            // 3. UDP with an answer.
            testutil::udp("10.9.0.1", "10.9.0.1", 7778, 7777, b"a"),
            testutil::udp("10.9.0.1", "10.9.0.1", 7777, 7778, b"b"),
            // 4. ping 127.0.0.1, id 4660, answered.
            testutil::echo_request("127.0.0.1", "127.0.0.1", 4660, 1),
            testutil::echo_reply("127.0.0.1", "127.0.0.1", 4660, 1),
            // 5. a SYN nobody answers.
            testutil::tcp("10.9.0.1", "10.9.0.1", 54746, 9999, SYN, b""),
        ],
        T0,
    );
    t
}

pub(super) const L_TCP: &str = "tcp      6 431999 ESTABLISHED src=10.9.0.1 dst=10.9.0.99 sport=50236 dport=80 src=127.0.0.1 dst=10.9.0.1 sport=8080 dport=50236 [ASSURED] mark=0 use=1";
pub(super) const L_UDP42: &str = "udp      17 29 src=10.9.0.1 dst=10.9.0.1 sport=56211 dport=4444 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=4444 dport=56211 mark=42 use=1";
pub(super) const L_UDP: &str = "udp      17 29 src=10.9.0.1 dst=10.9.0.1 sport=7778 dport=7777 src=10.9.0.1 dst=10.9.0.1 sport=7777 dport=7778 mark=0 use=1";
pub(super) const L_ICMP: &str = "icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=4660 src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=4660 mark=0 use=1";
pub(super) const L_SYN: &str = "tcp      6 119 SYN_SENT src=10.9.0.1 dst=10.9.0.1 sport=54746 dport=9999 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=9999 dport=54746 mark=0 use=1";

pub(super) fn lines(ls: &[&str]) -> String {
    ls.iter().map(|l| format!("{l}\n")).collect()
}

pub(super) fn shown(n: usize) -> String {
    format!("conntrack v1.4.7 (conntrack-tools): {n} flow entries have been shown.\n")
}

pub(super) fn err(msg: &str) -> String {
    format!(
        "conntrack v1.4.7 (conntrack-tools): {msg}\nTry `conntrack -h' or 'conntrack --help' for more information.\n"
    )
}
