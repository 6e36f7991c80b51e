//! End-to-end tests: tungate between network namespaces (need root and TUN).
//!
//! Each test builds its own namespaces with unique names (so tests run in
//! parallel), starts the real binary, checks with real traffic and tears
//! everything down through Drop guards, also on panic. Without root, TUN or
//! the tools they print why and return; under CI (`$CI` set) they fail.

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::*;

#[test]
fn ping_to_and_through_the_gateway() {
    let Some((topo, gw)) = Gateway::over_client_gw_server("ping") else {
        return;
    };
    let (n, out) = topo.client().ping("10.1.0.1", 3, &[]);
    assert!(n > 0, "ping to the gateway's near address:\n{out}");
    let (n, out) = topo.client().ping("10.2.0.1", 3, &[]);
    assert!(n > 0, "ping to the gateway's far address:\n{out}");
    let (n, out) = topo.client().ping("10.2.0.2", 3, &[]);
    assert!(n > 0, "ping through the gateway:\n{out}");
    assert!(
        out.contains("ttl=63"),
        "the gateway decrements the TTL once:\n{out}"
    );
    let (n, out) = topo.server().ping("10.1.0.2", 3, &[]);
    assert!(n > 0, "ping back through the gateway:\n{out}");
    let stats = gw.stats();
    assert!(
        stats.contains(&format!("interface {}-ts", topo.prefix)),
        "{stats}"
    );
}

#[test]
fn ttl_expiry_and_no_route_get_icmp_errors() {
    let Some((topo, _gw)) = Gateway::over_client_gw_server("icmp") else {
        return;
    };
    let (_, out) = topo.client().ping("10.2.0.2", 1, &["-t", "1"]);
    assert!(
        out.contains("TTL 0 during transit from ip=10.1.0.1"),
        "{out}"
    );
    let (_, out) = topo.client().ping("10.77.0.1", 1, &[]);
    assert!(out.contains("Unreachable from ip=10.1.0.1"), "{out}");
}

#[test]
fn df_packet_above_egress_mtu_gets_frag_needed() {
    let Some(topo) = Topology::client_gw_server("mtu") else {
        return;
    };
    let server_dev = format!("name = \"{}\"", topo.devices()[1]);
    let cfg = topo
        .config(None, 2)
        .replace(&server_dev, &format!("{server_dev}\nmtu = 1280"));
    let _gw = Gateway::start_config(&topo, &cfg);
    let (_, out) = topo.client().ping("10.2.0.2", 1, &["-y", "-d", "1300"]);
    assert!(
        out.contains("Fragmentation Needed/DF set from ip=10.1.0.1"),
        "expected ICMP frag needed:\n{out}"
    );
    let (n, out) = topo.client().ping("10.2.0.2", 2, &["-d", "1200"]);
    assert!(n > 0, "below the MTU it passes:\n{out}");
}

/// Traffic for the gateway itself with nothing listening: as the kernel,
/// a RST for TCP and a port unreachable for UDP, from the addressed IP.
#[test]
fn local_ports_without_listener_are_refused() {
    let Some((topo, _gw)) = Gateway::over_client_gw_server("refuse") else {
        return;
    };
    let out = topo.client().exec_timeout(
        &["hping3", "-S", "-p", "80", "-c", "1", "10.2.0.1"],
        Duration::from_secs(5),
    );
    let text = out.text();
    assert!(
        text.contains("ip=10.2.0.1") && text.contains("flags=RA"),
        "{text}"
    );
    let out = topo.client().exec_timeout(
        &["hping3", "--udp", "-p", "9", "-c", "1", "10.1.0.1"],
        Duration::from_secs(5),
    );
    let text = out.text();
    assert!(text.contains("Port Unreachable from ip=10.1.0.1"), "{text}");
}

#[test]
fn tcp_iperf3_through_the_gateway() {
    let Some((topo, gw)) = Gateway::over_client_gw_server("tcp") else {
        return;
    };
    let json = iperf3(&topo.server(), &topo.client(), "10.2.0.2", &["-t", "2"]);
    let bytes = iperf3_end(&json, "sum_received", "bytes");
    assert!(bytes > 0.0, "{json}");
    assert!(!json.contains("\"error\""), "{json}");
    // And the reverse direction (server sends), through the other queue pair.
    let json = iperf3(
        &topo.server(),
        &topo.client(),
        "10.2.0.2",
        &["-t", "2", "-R"],
    );
    let bytes = iperf3_end(&json, "sum_received", "bytes");
    assert!(bytes > 0.0, "{json}");
    let stats = gw.stats();
    assert!(!stats.contains("drop malformed"), "{stats}");
    // TSO offload: the kernel hands over super-frames larger than the MTU.
    let (_, _, txp, txb) = iface_counters(&stats, &topo.devices()[1]);
    assert!(
        txp > 0 && txb / txp > 1500,
        "no GSO frames forwarded (offload off?):\n{stats}"
    );
}

#[test]
fn plain_frames_without_offload_still_forward() {
    let Some(topo) = Topology::client_gw_server("plain") else {
        return;
    };
    let gw = Gateway::start_with(&topo, None, 2, "offload = false");
    assert!(gw.log_text().contains("plain frames"), "{}", gw.log_text());
    let (n, out) = topo.client().ping("10.2.0.2", 2, &[]);
    assert!(n > 0, "{out}");
    let json = iperf3(&topo.server(), &topo.client(), "10.2.0.2", &["-t", "1"]);
    assert!(iperf3_end(&json, "sum_received", "bytes") > 0.0, "{json}");
    let stats = gw.stats();
    let (_, _, txp, txb) = iface_counters(&stats, &topo.devices()[1]);
    assert!(
        txp > 0 && txb / txp <= 1500,
        "frames above the MTU without offload:\n{stats}"
    );
}

#[test]
fn udp_iperf3_through_the_gateway() {
    let Some((topo, _gw)) = Gateway::over_client_gw_server("udp") else {
        return;
    };
    let json = iperf3(
        &topo.server(),
        &topo.client(),
        "10.2.0.2",
        &["-u", "-b", "20M", "-t", "2"],
    );
    let packets = iperf3_end(&json, "sum", "packets");
    let lost = iperf3_end(&json, "sum", "lost_packets");
    assert!(packets > 0.0, "{json}");
    assert!(lost < packets, "every datagram was lost:\n{json}");
    let bytes = iperf3_end(&json, "sum", "bytes");
    assert!(bytes > 0.0, "{json}");
}

/// Four backends behind the gateway, each reached by TCP: the pattern for a
/// kube-style test (a VIP DNAT spreading connections; count per backend).
#[test]
fn four_backends_are_reachable() {
    let Some(topo) = Topology::client_gw_backends("bk", 4) else {
        return;
    };
    let _gw = Gateway::start(&topo, None);
    let servers: Vec<ChildGuard> = (1..=4).map(|i| topo.backend(i).iperf3_server()).collect();
    for i in 1..=4 {
        let (n, out) = topo.client().ping(&format!("10.2.{i}.2"), 2, &[]);
        assert!(n > 0, "backend {i}:\n{out}");
        let out = topo.client().exec_timeout(
            &["iperf3", "-c", &format!("10.2.{i}.2"), "-t", "1", "-J"],
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "backend {i}: {}", out.text());
    }
    for (i, s) in servers.into_iter().enumerate() {
        let text = s.finish();
        assert_eq!(
            accepted_from(&text),
            vec!["10.1.0.2".to_string()],
            "backend {}:\n{text}",
            i + 1
        );
    }
}

#[test]
fn sigterm_removes_devices_and_keeps_namespaces() {
    let Some((topo, gw)) = Gateway::over_client_gw_server("term") else {
        return;
    };
    let devs = topo.devices();
    assert!(topo.client().has_link(&devs[0]));
    assert!(topo.server().has_link(&devs[1]));
    let log = gw.log.clone();
    let status = gw.stop();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "exit {status}:\n{text}");
    assert!(text.contains("devices removed"), "{text}");
    assert!(
        !topo.client().has_link(&devs[0]),
        "device left in the client namespace"
    );
    assert!(
        !topo.server().has_link(&devs[1]),
        "device left in the server namespace"
    );
    assert!(
        topo.client().exists() && topo.server().exists(),
        "namespaces must be left as found"
    );
}

#[test]
fn sigint_shuts_down_cleanly_too() {
    let Some((topo, gw)) = Gateway::over_client_gw_server("int") else {
        return;
    };
    let status = gw.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(status.success(), "exit {status}");
    for (ns, dev) in [topo.client(), topo.server()].iter().zip(topo.devices()) {
        assert!(!ns.has_link(&dev), "{dev} left in {}", ns.name);
    }
}

#[test]
fn missing_namespace_is_reported_before_any_device() {
    let Some(topo) = Topology::client_gw_server("nons") else {
        return;
    };
    let cfg = topo
        .config(None, 1)
        .replace(&format!("\"{}-s\"", topo.prefix), "\"tg-no-such-ns\"");
    let path = topo.dir.join("bad.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = run_until_exit(&path);
    assert!(!out.status.success());
    assert!(out.text().contains("tg-no-such-ns"), "{}", out.text());
    assert!(out.text().contains("interface[1].netns"), "{}", out.text());
    assert!(!topo.client().has_link(&topo.devices()[0]));
}

#[test]
fn second_gateway_on_the_same_devices_is_refused() {
    let Some((topo, gw)) = Gateway::over_client_gw_server("dup") else {
        return;
    };
    let out = run_until_exit(&gw.config);
    assert!(!out.status.success(), "{}", out.text());
    assert!(out.text().contains("already exists"), "{}", out.text());
    // The first gateway is unharmed.
    let (n, text) = topo.client().ping("10.2.0.2", 2, &[]);
    assert!(n > 0, "{text}");
}

/// Needs nothing: the binary rejects a bad config with file, key and reason.
#[test]
fn bad_config_is_rejected_with_file_key_and_reason() {
    let dir = std::env::temp_dir().join(format!("tungate-e2e-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "workers = 1\n[[interface]]\nname = \"tgbad0\"\naddress = \"10.1.0.300/24\"\n",
    )
    .unwrap();
    let out = run_until_exit(&path);
    let text = out.text();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("bad.toml")
            && text.contains("interface[0].address")
            && text.contains("10.1.0.300"),
        "{text}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_tungate"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("[[interface]]"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Processor that panics on the first packet: the dataplane must report
/// it (the binary turns that into a non-zero exit with the message).
struct Boom;

impl tungate::pipeline::Processor for Boom {
    type Worker = ();

    fn worker(&self, _: usize) {}

    fn process(
        &self,
        _: &mut (),
        _: &tungate::pipeline::PacketCtx,
        _: &mut [u8],
        _: &mut tungate::wire::vnet::VnetHdr,
        _: &mut dyn tungate::pipeline::Emit,
    ) -> tungate::pipeline::Verdict {
        panic!("boom from the processor")
    }
}

#[test]
fn worker_panic_is_reported_not_silent() {
    use tungate::config::InterfaceConfig;
    use tungate::dataplane::{netns, Dataplane, TunDevice, WorkerFailure};
    let Some(topo) = Topology::client_gw_server("boom") else {
        return;
    };
    let dev = topo.devices()[0].clone();
    let d = TunDevice::create(&dev, 1, true).expect("create TUN");
    netns::configure(&InterfaceConfig {
        name: dev.clone(),
        netns: Some(topo.client().name.clone()),
        address: "10.1.0.1/24".parse().unwrap(),
        peer_address: Some("10.1.0.2/24".parse().unwrap()),
        peer_routes: vec!["0.0.0.0/0".parse().unwrap()],
        mtu: 1500,
        queues: 1,
    })
    .expect("configure");
    let mut dp = Dataplane::start(vec![d], std::sync::Arc::new(Boom)).expect("start");
    let _ = topo.client().ping("10.1.0.1", 1, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let failure = loop {
        match dp.check() {
            Err(f) => break f,
            Ok(()) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "worker panic not reported"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    match &failure {
        WorkerFailure::Panicked { message, .. } => {
            assert!(message.contains("boom from the processor"), "{failure}")
        }
        other => panic!("expected a panic report, got {other}"),
    }
    drop(dp);
    // The kernel tears an io_uring down asynchronously; the device goes when
    // its last file reference does (the binary also deletes it explicitly).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while topo.client().has_link(&dev) {
        assert!(
            std::time::Instant::now() < deadline,
            "device must go with the dataplane"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The oracle side of the harness: the kernel router namespace with the
/// demo ruleset forwards the DNAT port to the server (what tungate must match).
#[test]
fn kernel_router_oracle_forwards_dnat_port() {
    let rules = std::fs::read_to_string(repo_root().join("netns-scripts/demo-rules.v4")).unwrap();
    let Some(topo) = Topology::kernel_router("kdnat", Shape::ClientGwServer, Some(&rules)) else {
        return;
    };
    let json = iperf3(
        &topo.server(),
        &topo.client(),
        "10.1.0.1",
        &["-t", "1", "--get-server-output"],
    );
    assert_masqueraded_transfer(
        &json,
        "MASQUERADE: the server saw the router's server-side address as its peer",
    );
    let save = topo.router().exec(&["iptables-save", "-t", "nat"]);
    assert!(String::from_utf8_lossy(&save.stdout).contains("--to-destination 10.2.0.2:5201"));
}
