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
    let Some(topo) = Topology::client_gw_server("ping") else {
        return;
    };
    let gw = Gateway::start(&topo, None);
    let (n, out) = topo.client().ping("10.1.0.1", 3, &[]);
    assert_eq!(n, 3, "ping to the gateway's near address:\n{out}");
    let (n, out) = topo.client().ping("10.2.0.1", 3, &[]);
    assert_eq!(n, 3, "ping to the gateway's far address:\n{out}");
    let (n, out) = topo.client().ping("10.2.0.2", 3, &[]);
    assert_eq!(n, 3, "ping through the gateway:\n{out}");
    assert!(
        out.contains("ttl=63"),
        "the gateway decrements the TTL once:\n{out}"
    );
    let (n, out) = topo.server().ping("10.1.0.2", 3, &[]);
    assert_eq!(n, 3, "ping back through the gateway:\n{out}");
    let stats = gw.stats();
    assert!(
        stats.contains(&format!("interface {}-ts", topo.prefix)),
        "{stats}"
    );
}

#[test]
fn ttl_expiry_and_no_route_get_icmp_errors() {
    let Some(topo) = Topology::client_gw_server("icmp") else {
        return;
    };
    let _gw = Gateway::start(&topo, None);
    let (_, out) = topo.client().ping("10.2.0.2", 1, &["-t", "1"]);
    assert!(
        out.contains("TTL 0 during transit from ip=10.1.0.1"),
        "{out}"
    );
    let (_, out) = topo.client().ping("10.77.0.1", 1, &[]);
    assert!(out.contains("Unreachable from ip=10.1.0.1"), "{out}");
}

#[test]
fn tcp_iperf3_through_the_gateway() {
    let Some(topo) = Topology::client_gw_server("tcp") else {
        return;
    };
    let gw = Gateway::start(&topo, None);
    let json = iperf3(&topo.server(), &topo.client(), "10.2.0.2", &["-t", "2"]);
    let bytes = json_number(&json, "\"sum_received\"", "bytes").expect("sum_received.bytes");
    assert!(bytes > 0.0, "{json}");
    assert!(!json.contains("\"error\""), "{json}");
    // And the reverse direction (server sends), through the other queue pair.
    let json = iperf3(
        &topo.server(),
        &topo.client(),
        "10.2.0.2",
        &["-t", "2", "-R"],
    );
    let bytes = json_number(&json, "\"sum_received\"", "bytes").expect("sum_received.bytes");
    assert!(bytes > 0.0, "{json}");
    let stats = gw.stats();
    assert!(!stats.contains("drop malformed"), "{stats}");
}

#[test]
fn udp_iperf3_through_the_gateway() {
    let Some(topo) = Topology::client_gw_server("udp") else {
        return;
    };
    let _gw = Gateway::start(&topo, None);
    let json = iperf3(
        &topo.server(),
        &topo.client(),
        "10.2.0.2",
        &["-u", "-b", "20M", "-t", "2"],
    );
    let packets = json_number(&json, "\"sum\"", "packets").expect("sum.packets");
    let lost = json_number(&json, "\"sum\"", "lost_packets").expect("sum.lost_packets");
    assert!(packets > 0.0, "{json}");
    assert!(lost < packets, "every datagram was lost:\n{json}");
    let bytes = json_number(&json, "\"sum\"", "bytes").unwrap();
    assert!(bytes > 0.0, "{json}");
}

#[test]
fn four_backends_are_reachable() {
    let Some(topo) = Topology::client_gw_backends("bk", 4) else {
        return;
    };
    let _gw = Gateway::start(&topo, None);
    for i in 1..=4 {
        let (n, out) = topo.client().ping(&format!("10.2.{i}.2"), 2, &[]);
        assert_eq!(n, 2, "backend {i}:\n{out}");
    }
}

#[test]
fn sigterm_removes_devices_and_keeps_namespaces() {
    let Some(topo) = Topology::client_gw_server("term") else {
        return;
    };
    let gw = Gateway::start(&topo, None);
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
fn missing_namespace_is_reported_before_any_device() {
    let Some(topo) = Topology::client_gw_server("nons") else {
        return;
    };
    let cfg = topo
        .config(None, 1)
        .replace(&format!("\"{}-s\"", topo.prefix), "\"tg-no-such-ns\"");
    let path = topo.dir.join("bad.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tungate"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.text().contains("tg-no-such-ns"), "{}", out.text());
    assert!(out.text().contains("interface[1].netns"), "{}", out.text());
    assert!(!topo.client().has_link(&topo.devices()[0]));
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
    let out = Command::new(env!("CARGO_BIN_EXE_tungate"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
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
    let _ = Duration::ZERO;
}
