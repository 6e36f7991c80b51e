//! Hostile input against a running gateway (issue 7, points 1, 3, 4).
//!
//! * `hostile_packets_*`: malformed, abusive and odd packets injected from
//!   the client namespace with an `AF_PACKET` socket on the client's side of
//!   the TUN device, so the bytes reach tungate exactly as written (no
//!   kernel fix-ups of length, checksum or id). Each kind names the drop
//!   reason it must be counted under (what the kernel does with it: see the
//!   comment on each kind), and after each kind a ping through the gateway
//!   must still get its answer. One gateway serves all kinds of a table.
//! * `vnet_*`: vnet headers that disagree with the frame cannot be sent
//!   from a namespace (the kernel writes them); they go to the
//!   `Processor` directly.
//! * `fragment_flood_*`, `conntrack_full_*`, `syn_flood_*`: resources
//!   under pressure.
//! * `soak_60s`: `bench/soak.sh 60`, only with `TUNGATE_SOAK=1`.
//!
//! Needs root, /dev/net/tun, ip, hping3, iperf3 and python3; skips (saying
//! why) otherwise, except under CI.

#[path = "harness/mod.rs"]
mod harness;
#[path = "hostile/packets.rs"]
mod packets;

use harness::{iperf3_end, Gateway, Ns, Topology};
use packets::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const GW_C: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

/// NAT ruleset with the usual INVALID drop in FORWARD (which is what makes
/// conntrack's verdict on a bad packet visible, in the kernel as here).
/// Floods and the soak measure loss and memory: each runs alone, never
/// beside another test's flood on this binary's parallel test threads (CI
/// once lost 101 of the soak's 60,000 datagrams while a SYN flood ran next
/// to it; alone, the same soak under a load average of 8 lost none).
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

fn ruleset(topo: &Topology) -> String {
    let ts = &topo.devices()[1];
    format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A POSTROUTING -o {ts} -j MASQUERADE\nCOMMIT\n\
         *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n"
    )
}

const SEND_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
for h in sys.argv[2:]:
    s.sendto(bytes.fromhex(h), (sys.argv[1], 0x0800))
"#;

fn have_python() -> bool {
    std::process::Command::new("python3")
        .arg("-c")
        .arg("import socket; socket.AF_PACKET")
        .status()
        .is_ok_and(|s| s.success())
}

/// The start of a test that floods the gateway with python3's packets: it
/// runs alone ([`heavy`]; the guard comes first), on a new
/// [`Topology::client_gw_server`] named `label`, through tungate with
/// [`ruleset`], 2 workers and `extra` atop its config. `None` (after saying
/// why) when python3 with AF_PACKET is missing or the machine cannot run it.
fn flood_setup(
    test: &str,
    label: &str,
    extra: &str,
) -> Option<(std::sync::MutexGuard<'static, ()>, Topology, Gateway)> {
    let alone = heavy();
    if !have_python() {
        eprintln!("SKIP {test}: python3 with AF_PACKET is missing");
        return None;
    }
    let topo = Topology::client_gw_server(label)?;
    let gw = Gateway::start_with(&topo, Some(&ruleset(&topo)), 2, extra);
    Some((alone, topo, gw))
}

/// Writes `pkts` as they are into the client's TUN-side interface.
fn inject(client: &Ns, dev: &str, pkts: &[Vec<u8>]) {
    for chunk in pkts.chunks(200) {
        let mut args: Vec<String> = vec!["python3".into(), "-c".into(), SEND_PY.into(), dev.into()];
        args.extend(chunk.iter().map(|p| hex(p)));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = client.exec(&a);
        assert!(
            out.status.success(),
            "inject failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Drop counters by reason name, pipeline and dataplane added up.
fn drops(gw: &Gateway) -> BTreeMap<String, u64> {
    let (st, out, err) = gw.tool("stats", &[], None);
    assert_eq!(st, 0, "tungate stats failed: {err}");
    let mut m = BTreeMap::new();
    for l in out.lines() {
        if let Some(rest) = l.strip_prefix("pipeline_drop{reason=\"") {
            if let Some((name, n)) = rest.split_once("\"} ") {
                *m.entry(name.to_string()).or_insert(0) += n.trim().parse::<u64>().unwrap_or(0);
            }
        } else if let Some(rest) = l.strip_prefix("drop ") {
            if let Some((name, n)) = rest.split_once(' ') {
                *m.entry(name.to_string()).or_insert(0) += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    m
}

fn stats_text(gw: &Gateway) -> String {
    gw.tool("stats", &[], None).1
}

/// (tx_packets, tx_bytes) of interface `dev` from `tungate stats`.
fn tx(gw: &Gateway, dev: &str) -> (u64, u64) {
    let s = stats_text(gw);
    let (_, _, p, b) = harness::iface_counters(&s, dev);
    (p, b)
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Dropped and counted under this reason.
    Drop(&'static str),
    /// Forwarded to the server side: `n` packets of `bytes` bytes in all.
    Forward { packets: u64, bytes: u64 },
    /// Held (a fragment queue waiting for the rest): neither forwarded
    /// nor counted yet.
    Held,
}

struct Kind {
    name: &'static str,
    packets: Vec<Vec<u8>>,
    expect: Expect,
}

fn k(name: &'static str, packets: Vec<Vec<u8>>, expect: Expect) -> Kind {
    Kind {
        name,
        packets,
        expect,
    }
}

/// `p` with `edit` applied: a field broken on purpose.
fn edited(mut p: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edit(&mut p);
    p
}

fn with_ip_csum(mut p: Vec<u8>) -> Vec<u8> {
    fix_ip_csum(&mut p);
    p
}

/// The table of kinds injected from the client. Ports are distinct per
/// kind so no kind meets another's conntrack entry.
fn kinds() -> Vec<Kind> {
    use Expect::*;
    let syn = |sport| tcp(CLIENT, SERVER, sport, 9, 0x02);
    // --- ip_rcv_core: version, IHL, lengths, header checksum (InHdrErrors /
    // InTruncatedPkts in the kernel: silently dropped).
    let mut v = vec![
        k(
            "truncated_ip_header",
            vec![syn(1001)[..12].to_vec()],
            Drop("malformed"),
        ),
        k("one_byte_frame", vec![vec![0x45]], Drop("malformed")),
        k(
            "ihl_below_5",
            vec![with_ip_csum(edited(syn(1002), |p| p[0] = 0x44))],
            Drop("malformed"),
        ),
        k(
            "ihl_beyond_packet",
            // A 60-byte header in a 40-byte packet.
            vec![edited(syn(1003), |p| p[0] = 0x4f)],
            Drop("malformed"),
        ),
    ];
    for (name, sport, total_length) in [
        ("total_length_above_frame", 1004, 100u16),
        ("total_length_below_ihl", 1005, 12),
    ] {
        v.push(k(
            name,
            vec![with_ip_csum(edited(syn(sport), |p| {
                p[2..4].copy_from_slice(&total_length.to_be_bytes())
            }))],
            Drop("malformed"),
        ));
    }
    v.push(k(
        "bad_ip_checksum",
        vec![edited(syn(1006), |p| p[10] ^= 0x55)],
        Drop("bad_ip_checksum"),
    ));
    for (name, nib) in [("version_0", 0u8), ("version_5", 5), ("version_15", 15)] {
        v.push(k(
            name,
            vec![with_ip_csum(edited(syn(1007), |p| p[0] = nib << 4 | 5))],
            Drop("bad_version"),
        ));
    }
    v.push(k(
        "version_6_not_ipv6",
        vec![edited(syn(1008), |p| p[0] = 0x65)],
        Drop("ipv6_unsupported"),
    ));
    // Trailing bytes past the total length: the kernel trims them
    // (pskb_trim_rcsum) and forwards the 40-byte SYN.
    v.push(k(
        "total_length_below_frame",
        vec![edited(syn(1009), |p| p.extend_from_slice(&[0xee; 23]))],
        Forward {
            packets: 1,
            bytes: 40,
        },
    ));

    // --- ip_forward: TTL (ICMP time exceeded sent back, InHdrErrors).
    for (name, sport, ttl) in [("ttl_0", 1010, 0), ("ttl_1", 1011, 1)] {
        v.push(k(
            name,
            vec![with_ip_csum(edited(syn(sport), |p| p[8] = ttl))],
            Drop("ttl_exceeded"),
        ));
    }
    // --- IP options: a well-formed NOP/EOL list is forwarded as is.
    v.push(k(
        "ip_options_nop",
        vec![ipv4_opts(
            CLIENT,
            SERVER,
            17,
            &[1, 1, 1, 0],
            &udp_l4(1012, 9, b"opt"),
        )],
        Forward {
            packets: 1,
            bytes: 24 + 11,
        },
    ));

    // A malformed option list (an option length running past the header):
    // ip_options_compile fails, the kernel drops it (InHdrErrors).
    for (name, opts, sport) in [
        ("ip_options_bad_length", [7, 39, 4, 0], 1030),
        ("ip_options_zero_length", [0x44, 0, 5, 0], 1031),
    ] {
        v.push(k(
            name,
            vec![ipv4_opts(
                CLIENT,
                SERVER,
                17,
                &opts,
                &udp_l4(sport, 9, b"opt"),
            )],
            Drop("malformed"),
        ));
    }
    // --- conntrack's verdicts (nf_conntrack_proto_*: -NF_ACCEPT = INVALID,
    // dropped by the ruleset's INVALID rule; nf_conntrack_checksum=1).
    for (name, packet) in [
        ("bad_tcp_checksum", edited(syn(1013), |p| p[36] ^= 0x11)),
        (
            "bad_udp_checksum",
            edited(udp(CLIENT, SERVER, 1014, 9, b"x"), |p| p[26] ^= 0x11),
        ),
        (
            "bad_icmp_checksum",
            edited(echo(CLIENT, SERVER, 1015, 1), |p| p[22] ^= 0x11),
        ),
        // TCP flag combinations no stack sends, and a RST for no flow.
        ("tcp_syn_fin", tcp(CLIENT, SERVER, 1016, 9, 0x03)),
        ("tcp_no_flags", tcp(CLIENT, SERVER, 1017, 9, 0x00)),
        ("tcp_syn_rst", tcp(CLIENT, SERVER, 1018, 9, 0x06)),
        ("tcp_rst_unknown_flow", tcp(CLIENT, SERVER, 1019, 9, 0x04)),
        (
            "tcp_data_offset_beyond_packet",
            edited(syn(1020), |p| {
                p[32] = 0xf0;
                fix_l4_csum(p);
            }),
        ),
        (
            "tcp_data_offset_below_5",
            edited(syn(1021), |p| {
                p[32] = 0x30;
                fix_l4_csum(p);
            }),
        ),
        (
            "tcp_truncated_header",
            ipv4(CLIENT, SERVER, 6, &tcp_l4(1022, 9, 0x02, &[])[..10]),
        ),
        (
            "udp_length_beyond_packet",
            edited(udp(CLIENT, SERVER, 1023, 9, b"abc"), |p| {
                p[24..26].copy_from_slice(&200u16.to_be_bytes());
                fix_l4_csum(p);
            }),
        ),
        ("icmp_truncated_header", ipv4(CLIENT, SERVER, 1, &[8, 0])),
    ] {
        v.push(k(name, vec![packet], Drop("rule_drop")));
    }
    // ICMP errors (nf_conntrack_inet_error): quoting garbage, quoting a
    // flow conntrack does not know, and about another ICMP error.
    v.push(k(
        "icmp_error_quoting_garbage",
        vec![icmp(
            CLIENT,
            SERVER,
            3,
            3,
            &[0u8, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4],
        )],
        Drop("rule_drop"),
    ));
    v.push(k(
        "icmp_error_quoting_unknown_flow",
        vec![icmp_error(
            CLIENT,
            SERVER,
            3,
            3,
            &udp(SERVER, CLIENT, 7, 1024, b"?"),
        )],
        Drop("rule_drop"),
    ));
    v.push(k(
        "icmp_error_about_icmp_error",
        vec![icmp_error(
            CLIENT,
            SERVER,
            3,
            1,
            &icmp_error(SERVER, CLIENT, 3, 3, &udp(CLIENT, SERVER, 1025, 9, b"")),
        )],
        Drop("rule_drop"),
    ));

    // --- fragments (nf_defrag_ipv4 / ip_defrag).
    let whole = udp(CLIENT, SERVER, 1026, 9, &[0x5a; 64]);
    // Reassembled for conntrack and NAT, then refragmented no larger than
    // the largest fragment received (IPCB frag_max_size): the same nine
    // 28-byte fragments leave.
    v.push(k(
        "tiny_fragments_complete",
        (0..9)
            .map(|i| fragment(&whole, i * 8, (i + 1) * 8, i < 8))
            .collect(),
        Forward {
            packets: 9,
            bytes: 9 * 28,
        },
    ));
    let whole = udp(CLIENT, SERVER, 1027, 9, &[0x5b; 64]);
    v.push(k(
        "duplicate_fragments",
        vec![
            fragment(&whole, 0, 32, true),
            fragment(&whole, 0, 32, true),
            fragment(&whole, 32, 72, false),
        ],
        Forward {
            packets: 2,
            bytes: (20 + 32) + (20 + 40),
        },
    ));
    let mut whole = udp(CLIENT, SERVER, 1028, 9, &[0x5c; 64]);
    whole[5] = 0x43; // its own IP id
    fix_ip_csum(&mut whole);
    v.push(k(
        "overlapping_fragments",
        vec![
            fragment(&whole, 0, 40, true),
            fragment(&whole, 32, 72, false),
        ],
        Drop("fragment"),
    ));
    let mut whole = udp(CLIENT, SERVER, 1029, 9, &[0x5d; 64]);
    whole[5] = 0x44;
    fix_ip_csum(&mut whole);
    v.push(k(
        "never_completed_fragment",
        vec![fragment(&whole, 0, 32, true)],
        Held,
    ));
    v
}

/// Waits until `cond` holds (the dataplane counts asynchronously).
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn forwards(client: &Ns) -> bool {
    // Two tries: the first ping of a kind may meet a just-rate-limited path.
    (0..2).any(|_| client.ping(&SERVER.to_string(), 1, &[]).0 >= 1)
}

#[test]
fn hostile_packets_each_kind_counted_and_gateway_keeps_forwarding() {
    let Some((_alone, topo, gw)) = flood_setup("hostile_packets", "hostile", "") else {
        return;
    };
    let client = topo.client();
    let devs = topo.devices();
    let (tc, ts) = (&devs[0], &devs[1]);
    assert!(forwards(&client), "no ping through a fresh gateway");
    let kinds = kinds();
    assert!(kinds.len() >= 30, "only {} kinds", kinds.len());
    let mut failures = Vec::new();
    for kind in &kinds {
        let d0 = drops(&gw);
        let t0 = tx(&gw, ts);
        inject(&client, tc, &kind.packets);
        let ok = match kind.expect {
            Expect::Drop(reason) => {
                let before = d0.get(reason).copied().unwrap_or(0);
                let counted = wait_for(Duration::from_secs(2), || {
                    drops(&gw).get(reason).copied().unwrap_or(0) > before
                });
                let t1 = tx(&gw, ts);
                if !counted {
                    Err(format!(
                        "not counted as {reason}; drops now {:?}, before {d0:?}",
                        drops(&gw)
                    ))
                } else if t1.0 != t0.0 {
                    // Nothing of it may reach the server side (the only
                    // traffic there is ours).
                    Err(format!("{} packet(s) reached the server side", t1.0 - t0.0))
                } else {
                    Ok(())
                }
            }
            Expect::Forward { packets, bytes } => {
                let got = wait_for(Duration::from_secs(2), || tx(&gw, ts).0 >= t0.0 + packets);
                let t1 = tx(&gw, ts);
                if !got {
                    Err(format!(
                        "not forwarded; drops {:?} (before {d0:?})",
                        drops(&gw)
                    ))
                } else if t1.1 - t0.1 != bytes {
                    Err(format!("forwarded {} bytes, want {bytes}", t1.1 - t0.1))
                } else {
                    Ok(())
                }
            }
            Expect::Held => {
                std::thread::sleep(Duration::from_millis(200));
                let (d1, t1) = (drops(&gw), tx(&gw, ts));
                if t1.0 != t0.0 {
                    Err("forwarded, should be held".to_string())
                } else if d1 != d0 {
                    Err(format!("counted as a drop already: {d1:?} (before {d0:?})"))
                } else {
                    Ok(())
                }
            }
        };
        let alive = forwards(&client);
        match (ok, alive) {
            (Ok(()), true) => eprintln!("ok   {}", kind.name),
            (r, alive) => {
                let why = r.err().unwrap_or_default();
                let msg = format!(
                    "{}: {why}{}",
                    kind.name,
                    if alive {
                        ""
                    } else {
                        "; AND the gateway stopped forwarding"
                    }
                );
                eprintln!("FAIL {msg}");
                failures.push(msg);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} kinds failed:\n{}\n--- gateway log tail:\n{}",
        failures.len(),
        kinds.len(),
        failures.join("\n"),
        gw.log_text()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(gw.stop().success(), "gateway did not exit cleanly");
}

// ---------------------------------------------------------------------
// vnet headers inconsistent with the frame: straight into the Processor.

mod vnet {
    use super::*;
    use tungate::pipeline::engine::{Interface, Pipeline, PipelineConfig};
    use tungate::pipeline::{DropReason, EmitVec, IfIndex, PacketCtx, Processor, Verdict};
    use tungate::ruleset::Ruleset;
    use tungate::wire::vnet::VnetHdr;

    fn pipeline() -> Pipeline {
        let ifaces = vec![
            Interface {
                name: "tc".into(),
                addr: GW_C,
                prefix_len: 24,
                mtu: 1500,
            },
            Interface {
                name: "ts".into(),
                addr: Ipv4Addr::new(10, 2, 0, 1),
                prefix_len: 24,
                mtu: 1500,
            },
        ];
        let routes = Interface::connected_routes(&ifaces);
        Pipeline::new(
            PipelineConfig {
                interfaces: ifaces,
                routes,
                conntrack: Default::default(),
                workers: 1,
                seed: 7,
            },
            Ruleset::new(),
        )
    }

    #[test]
    fn vnet_headers_inconsistent_with_frame_are_bad_vnet_hdr() {
        let p = pipeline();
        // A TSO super-packet as the TUN hands it over: 3000 bytes of data.
        let (good, seg) = tso(CLIENT, SERVER, 40000, 5201, 0x18, &[7u8; 3000]);
        let len = seg.len() as u16;
        let cases: &[(&str, VnetHdr)] = &[
            (
                "gso_size_0",
                VnetHdr {
                    gso_size: 0,
                    ..good
                },
            ),
            (
                "hdr_len_beyond_frame",
                VnetHdr {
                    hdr_len: len + 1,
                    ..good
                },
            ),
            (
                "csum_start_beyond_frame",
                VnetHdr {
                    csum_start: len,
                    ..good
                },
            ),
            (
                "csum_offset_beyond_frame",
                VnetHdr {
                    csum_offset: len,
                    ..good
                },
            ),
            (
                "csum_start_in_ip_header",
                VnetHdr {
                    csum_start: 4,
                    ..good
                },
            ),
            (
                "unknown_gso_type",
                VnetHdr {
                    gso_type: 9,
                    ..good
                },
            ),
            (
                "udp_gso_on_tcp",
                VnetHdr {
                    gso_type: 5,
                    ..good
                },
            ),
        ];
        let ctx = |n| PacketCtx {
            ingress: IfIndex(0),
            now: tungate::clock::Timestamp::from_secs(n),
        };
        let mut w = p.worker(0);
        let mut failures = Vec::new();
        for (i, (name, h)) in cases.iter().enumerate() {
            let mut pkt = seg.clone();
            let mut h = *h;
            let v = p.process(
                &mut w,
                &ctx(i as u64 + 1),
                &mut pkt,
                &mut h,
                &mut EmitVec::default(),
            );
            if v != Verdict::Drop(DropReason::BadVnetHdr) {
                failures.push(format!("{name}: {v:?}"));
            } else {
                eprintln!("ok   {name}");
            }
        }
        // The consistent header still goes through, and so does the
        // pipeline after all the bad ones.
        let mut pkt = seg.clone();
        let mut h = good;
        let v = p.process(&mut w, &ctx(99), &mut pkt, &mut h, &mut EmitVec::default());
        assert_eq!(v, Verdict::Forward(IfIndex(1)), "the good TSO frame");
        assert!(
            failures.is_empty(),
            "kinds not dropped as bad_vnet_hdr:\n{}",
            failures.join("\n")
        );
    }
}

// ---------------------------------------------------------------------
// Resources under pressure.

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// 20,000 first fragments of distinct datagrams (about 20 MB offered),
/// none ever completed: the reassembly limits (4 MiB, 4096 queues, as
/// ipfrag_high_thresh) hold, the excess is counted as `fragment`, memory
/// stays bounded and the gateway keeps forwarding.
const FRAG_FLOOD_PY: &str = r#"
import socket, struct, sys
dev, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
payload = b'\x66' * 976
for i in range(n):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), i & 0xffff, 0x2000, 64, 17, 0,
                    bytes([10, 1, 0, 2]), bytes([10, 2, 0, 2 + (i >> 16)]))
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    s.sendto(h + payload, (dev, 0x0800))
"#;

#[test]
fn fragment_flood_is_bounded_and_gateway_keeps_forwarding() {
    let Some((_alone, topo, gw)) = flood_setup("fragment_flood", "fragflood", "") else {
        return;
    };
    let client = topo.client();
    let tc = topo.devices()[0].clone();
    assert!(forwards(&client), "no ping through a fresh gateway");
    let rss0 = rss_kib(gw.pid());
    let d0 = drops(&gw).get("fragment").copied().unwrap_or(0);
    let flood = || {
        let out = client.exec(&["python3", "-c", FRAG_FLOOD_PY, &tc, "20000"]);
        assert!(
            out.status.success(),
            "flood: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            forwards(&client),
            "gateway stopped forwarding after the fragment flood"
        );
        rss_kib(gw.pid())
    };
    let rss1 = flood();
    let rss2 = flood();
    let d1 = drops(&gw).get("fragment").copied().unwrap_or(0);
    eprintln!("fragment flood: rss {rss0} -> {rss1} -> {rss2} KiB, fragment drops {d0} -> {d1}");
    // 4 MiB of queues plus bookkeeping and allocator slack; 20 MB offered
    // each time. A second flood must not add to it (bounded, not leaking).
    assert!(
        rss1.saturating_sub(rss0) < 32 * 1024,
        "RSS grew by {} KiB under a fragment flood",
        rss1 - rss0
    );
    assert!(
        rss2.saturating_sub(rss1) < 4 * 1024,
        "RSS grew again by {} KiB under a second flood",
        rss2 - rss1
    );
    assert!(
        d1 > d0,
        "the excess fragments were not counted as `fragment`"
    );
    assert!(gw.stop().success());
}

/// A small TCP echo server and a client that sends one byte every 50 ms
/// for `secs` seconds and reports how many round trips failed.
const ECHO_SERVER_PY: &str = r#"
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', int(sys.argv[1]))); l.listen(4)
c, _ = l.accept()
while True:
    b = c.recv(4096)
    if not b: break
    c.sendall(b)
"#;

const ECHO_CLIENT_PY: &str = r#"
import socket, sys, time
dst, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
for _ in range(50):
    try:
        c = socket.create_connection((dst, port), timeout=1); break
    except OSError:
        time.sleep(0.1)
c.settimeout(2)
print('connected', flush=True)
ok = bad = 0
end = time.time() + secs
while time.time() < end:
    try:
        c.sendall(b'x')
        if c.recv(1) == b'x': ok += 1
        else: bad += 1
    except OSError as e:
        bad += 1
        print('error', e, flush=True)
        break
    time.sleep(0.05)
print('ok', ok, 'bad', bad, flush=True)
"#;

/// `key=N` from `conntrack -S`-like or Debug output (`key: N`).
fn field(text: &str, key: &str) -> u64 {
    text.split(|c: char| c == ',' || c == '{' || c == '}' || c.is_whitespace())
        .collect::<Vec<_>>()
        .windows(2)
        .find_map(|w| {
            if w[0] == format!("{key}:") {
                w[1].parse().ok()
            } else {
                w[0].strip_prefix(&format!("{key}="))
                    .and_then(|v| v.parse().ok())
            }
        })
        .unwrap_or(0)
}

/// UDP echo on the server; the client opens `n` flows and makes each an
/// assured stream (a reply, then more traffic after conntrack's stream
/// threshold of 2 s), so the table fills with entries nothing may evict.
const UDP_ECHO_SERVER_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', int(sys.argv[1])))
while True:
    b, a = s.recvfrom(2048)
    s.sendto(b, a)
"#;

const UDP_ASSURE_PY: &str = r#"
import socket, sys, time
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
    s.bind(('0.0.0.0', 30000 + i)); socks.append(s)
got = 0
for rnd in range(3):
    for s in socks:
        s.sendto(b'u', (dst, port))
        try:
            s.recvfrom(16); got += 1
        except OSError:
            pass
    time.sleep(1.2)
print('udp replies', got, flush=True)
"#;

#[test]
fn conntrack_full_drops_new_flows_keeps_established_and_evicts_unassured() {
    let Some((_alone, topo, gw)) =
        flood_setup("conntrack_full", "ctfull", "conntrack = { max = 64 }")
    else {
        return;
    };
    let (client, server) = (topo.client(), topo.server());
    let target = SERVER.to_string();
    let _srv = server.spawn(&["python3", "-c", ECHO_SERVER_PY, "7777"]);
    let _usrv = server.spawn(&["python3", "-c", UDP_ECHO_SERVER_PY, "7778"]);
    let mut cli = client.spawn(&["python3", "-c", ECHO_CLIENT_PY, &target, "7777", "14"]);
    std::thread::sleep(Duration::from_secs(1));
    // 1. A burst of SYNs from many source ports to a host behind the
    // server link that never answers: unassured SYN_SENT entries, evicted
    // one for another (early_drop); the established flow stays.
    let syns = |n: &str| {
        client.exec_timeout(
            &[
                "hping3",
                "-S",
                "-p",
                "81",
                "-i",
                "u1000",
                "-c",
                n,
                "10.2.0.99",
            ],
            Duration::from_secs(20),
        )
    };
    syns("300");
    let (_, s1, _) = gw.tool("conntrack", &["-S"], None);
    let early = field(&s1, "early_drop");
    // Clear them (conntrack -D by filter) for the next step.
    let (st, _, err) = gw.tool("conntrack", &["-D", "-p", "tcp", "--dport", "81"], None);
    assert_eq!(st, 0, "conntrack -D: {err}");
    // 2. 63 assured UDP streams: with the TCP flow, 64 entries nothing may
    // evict.
    let u = client.exec_timeout(
        &["python3", "-c", UDP_ASSURE_PY, &target, "7778", "63"],
        Duration::from_secs(30),
    );
    let u = String::from_utf8_lossy(&u.stdout).to_string();
    let (_, mid, _) = gw.tool("conntrack", &["-L"], None);
    let assured_udp = mid
        .lines()
        .filter(|l| l.starts_with("udp") && l.contains("ASSURED"))
        .count();
    assert_eq!(assured_udp, 63, "UDP streams not all assured ({u}):\n{mid}");
    let full0 = drops(&gw).get("conntrack_full").copied().unwrap_or(0);
    // 3. Now a new flow finds nothing to evict: dropped, counted.
    syns("200");
    let full1 = drops(&gw).get("conntrack_full").copied().unwrap_or(0);
    let (_, listing, _) = gw.tool("conntrack", &["-L"], None);
    let (_, s2, _) = gw.tool("conntrack", &["-S"], None);
    let out = cli.child().wait_with_output_timeout();
    eprintln!(
        "echo client: {out}\n{u}\nafter SYN burst: {s1}\nat the end: {s2}\nconntrack_full drops {full0} -> {full1}"
    );
    let entries = listing.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(entries <= 64, "{entries} entries with max 64:\n{listing}");
    assert!(early > 0, "300 SYNs into 64 slots evicted nothing: {s1}");
    assert!(
        listing.contains("dport=7777") && listing.contains("ASSURED"),
        "the established flow was evicted:\n{listing}"
    );
    assert!(out.contains(" bad 0"), "established flow broke: {out}");
    assert!(
        full1 > full0,
        "new flows into a table full of assured entries were not dropped as conntrack_full ({u}):\n{listing}"
    );
    assert!(gw.stop().success());
}

trait WaitOutput {
    fn wait_with_output_timeout(&mut self) -> String;
}

impl WaitOutput for std::process::Child {
    fn wait_with_output_timeout(&mut self) -> String {
        use std::io::Read;
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.kill();
        let mut s = String::new();
        if let Some(o) = self.stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        if let Some(e) = self.stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

#[test]
fn syn_flood_does_not_break_established_iperf3_flow() {
    let _alone = heavy();
    let Some(topo) = Topology::client_gw_server("synflood") else {
        return;
    };
    let gw = Gateway::start(&topo, Some(&ruleset(&topo)));
    let (client, server) = (topo.client(), topo.server());
    let target = SERVER.to_string();
    let base = harness::iperf3(&server, &client, &target, &["-t", "3"]);
    let base_bps = iperf3_end(&base, "sum_received", "bits_per_second");
    // The flood runs from the client too, for the length of the second run.
    let flood = client.spawn(&[
        "timeout",
        "5",
        "hping3",
        "--flood",
        "-S",
        "-p",
        "80",
        "--rand-source",
        &target,
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let loaded = harness::iperf3(&server, &client, &target, &["-t", "3"]);
    drop(flood);
    let loaded_bps = iperf3_end(&loaded, "sum_received", "bits_per_second");
    let (_, ct_stats, _) = gw.tool("conntrack", &["-S"], None);
    eprintln!(
        "iperf3: {:.2} Gbit/s alone, {:.2} Gbit/s under a SYN flood ({:.0}%)\nconntrack -S: {ct_stats}",
        base_bps / 1e9,
        loaded_bps / 1e9,
        100.0 * loaded_bps / base_bps
    );
    assert!(
        loaded_bps > 0.0,
        "the iperf3 flow moved nothing under the flood"
    );
    assert!(forwards(&client), "no ping after the flood");
    assert!(gw.stop().success());
}

/// `bench/soak.sh 60`: only when `TUNGATE_SOAK=1` (it takes over a minute
/// and loads the machine).
#[test]
fn soak_60s() {
    if std::env::var("TUNGATE_SOAK").as_deref() != Ok("1") {
        eprintln!("SKIP soak_60s: set TUNGATE_SOAK=1 to run bench/soak.sh 60");
        return;
    }
    if harness::skip("soak_60s") {
        return;
    }
    let _alone = heavy();
    let script = harness::repo_root().join("bench/soak.sh");
    let out = std::process::Command::new(&script)
        .arg("60")
        .env("TUNGATE_BIN", env!("CARGO_BIN_EXE_tungate"))
        .output()
        .expect("run bench/soak.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_string();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "soak.sh failed: {last}");
    let get = |k: &str| -> f64 {
        last.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}= in the last line: {last}"))
    };
    assert_eq!(get("broken"), 0.0, "{last}");
    assert_eq!(get("udp_loss"), 0.0, "{last}");
    assert_eq!(get("ct_leftover"), 0.0, "{last}");
    assert!(
        get("rss_growth_pct") < 10.0,
        "RSS grew after warm-up: {last}"
    );
}

/// `conntrack -E` clients that go away while nothing happens: each held a
/// server thread and one of the 16 client slots forever, until the control
/// socket refused everyone. Now an idle stream notices within a second.
#[test]
fn abandoned_idle_event_streams_do_not_exhaust_the_control_socket() {
    let Some((_topo, gw)) = Gateway::over_client_gw_server("ctlevents") else {
        return;
    };
    for _ in 0..20 {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tungate"))
            .arg("conntrack")
            .arg("--ctl")
            .arg(&gw.ctl)
            .arg("-E")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start conntrack -E");
        std::thread::sleep(Duration::from_millis(150));
        let _ = c.kill();
        let _ = c.wait();
    }
    // The streams notice within a second of their next idle keepalive.
    let ok = wait_for(Duration::from_secs(5), || {
        gw.tool("stats", &[], None).0 == 0
    });
    assert!(
        ok,
        "control socket refuses requests after 20 abandoned conntrack -E clients"
    );
    let (st, out, err) = gw.tool("iptables", &["-S"], None);
    assert_eq!(st, 0, "{out}{err}");
    assert!(gw.stop().success());
}
