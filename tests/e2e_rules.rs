//! End-to-end tests of the rule pipeline and the control socket: tungate
//! between network namespaces with real rulesets, checked with real traffic
//! and with the iptables/conntrack front ends. Need root, TUN, iperf3 and
//! python3; without them they print why and return (under CI they fail).

#[path = "harness/mod.rs"]
mod harness;

use harness::*;
use std::time::Duration;

/// A TCP connect from `ns` to `addr:port`, returning "ok", "refused",
/// "timeout" or the error text; `n` connects, one result per line.
fn connect(ns: &Ns, addr: &str, port: u16, n: usize) -> Vec<String> {
    let script = format!(
        r#"
import socket
for i in range({n}):
    s = socket.socket(); s.settimeout(1.5)
    try:
        s.connect(("{addr}", {port})); print("ok")
    except ConnectionRefusedError: print("refused")
    except socket.timeout: print("timeout")
    except OSError as e: print("error", e)
    finally: s.close()
"#
    );
    let out = ns.exec_timeout(
        &["python3", "-c", &script],
        Duration::from_secs(5 + 2 * n as u64),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A listener in `ns` on `addr:port` that accepts and closes connections.
fn listen(ns: &Ns, addr: &str, port: u16) -> ChildGuard {
    let script = format!(
        r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{addr}", {port})); s.listen(128)
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.close()
"#
    );
    let mut g = ns.spawn(&["python3", "-c", &script]);
    // Wait for "listening".
    use std::io::{BufRead, BufReader};
    let out = g.child().stdout.take().unwrap();
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    assert!(
        line.contains("listening"),
        "listener in {} did not start",
        ns.name
    );
    g
}

const NAT_HEAD: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";

#[test]
fn dnat_port_forward_and_masquerade() {
    let Some(topo) = Topology::client_gw_server("dnat") else {
        return;
    };
    let rules = format!(
        "{NAT_HEAD}-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.2.0.2:5201\n\
         -A POSTROUTING -o {p}-ts -j MASQUERADE\nCOMMIT\n",
        p = topo.prefix
    );
    let gw = Gateway::start(&topo, Some(&rules));
    let json = iperf3(
        &topo.server(),
        &topo.client(),
        "10.96.0.10",
        &["-p", "80", "-t", "2", "--get-server-output"],
    );
    assert_masqueraded_transfer(&json, "MASQUERADE: the server sees the gateway's address");
    // The rule counters moved.
    let (st, save, err) = gw.tool("iptables-save", &["-c", "-t", "nat"], None);
    assert_eq!(st, 0, "{err}");
    let dnat = save
        .lines()
        .find(|l| l.contains("-j DNAT"))
        .unwrap_or_else(|| panic!("{save}"));
    assert!(
        !dnat.starts_with("[0:"),
        "the DNAT rule counted the connection: {dnat}"
    );
}

#[test]
fn kube_service_spreads_over_four_backends() {
    let Some(topo) = Topology::client_gw_backends("kube", 4) else {
        return;
    };
    let mut rules = String::from(NAT_HEAD);
    rules += ":KUBE-SERVICES - [0:0]\n:KUBE-SVC-T - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n";
    for i in 1..=4 {
        rules += &format!(":KUBE-SEP-{i} - [0:0]\n");
    }
    rules += "-A PREROUTING -j KUBE-SERVICES\n-A POSTROUTING -j KUBE-POSTROUTING\n\
              -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
              -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
              -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
              -A KUBE-POSTROUTING -j MASQUERADE --random-fully\n\
              -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-T\n\
              -A KUBE-SVC-T ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n\
              -A KUBE-SVC-T -m statistic --mode random --probability 0.25000000000 -j KUBE-SEP-1\n\
              -A KUBE-SVC-T -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-2\n\
              -A KUBE-SVC-T -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-3\n\
              -A KUBE-SVC-T -j KUBE-SEP-4\n";
    for i in 1..=4 {
        rules += &format!(
            "-A KUBE-SEP-{i} -s 10.2.{i}.2/32 -j KUBE-MARK-MASQ\n-A KUBE-SEP-{i} -p tcp -m tcp -j DNAT --to-destination 10.2.{i}.2:8080\n"
        );
    }
    rules += "COMMIT\n";
    let gw = Gateway::start(&topo, Some(&rules));
    let _l: Vec<_> = (1..=4)
        .map(|i| listen(&topo.backend(i), &format!("10.2.{i}.2"), 8080))
        .collect();
    let res = connect(&topo.client(), "10.96.0.10", 80, 80);
    assert_eq!(res.iter().filter(|r| *r == "ok").count(), 80, "{res:?}");
    // Which backend got each connection: from the live conntrack table.
    let (st, list, err) = gw.tool("conntrack", &["-L"], None);
    assert_eq!(st, 0, "{err}");
    let mut per = [0usize; 4];
    for l in list.lines().filter(|l| l.contains("dst=10.96.0.10")) {
        for i in 1..=4 {
            if l.contains(&format!("src=10.2.{i}.2 ")) {
                per[i - 1] += 1;
            }
        }
    }
    assert_eq!(per.iter().sum::<usize>(), 80, "{list}");
    // 80 draws at 1/4 each: every backend gets some (P(miss) ~ 4 * 1e-10).
    assert!(per.iter().all(|&n| n > 0), "spread {per:?}\n{list}");
    // Entries are MASQUERADEd (the client is off-cluster): reply dst is the gateway.
    assert!(
        list.contains("dst=10.2.1.1 ")
            || list.contains("dst=10.2.2.1 ")
            || list.contains("dst=10.2.3.1 ")
            || list.contains("dst=10.2.4.1 "),
        "{list}"
    );
}

#[test]
fn reject_refuses_and_drop_policy_blocks() {
    let Some(topo) = Topology::client_gw_server("filter") else {
        return;
    };
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A FORWARD -p tcp -m tcp --dport 3000 -j REJECT --reject-with tcp-reset\n\
                 -A FORWARD -p tcp -m tcp --dport 8080 -j ACCEPT\nCOMMIT\n";
    let gw = Gateway::start(&topo, Some(rules));
    let _l1 = listen(&topo.server(), "10.2.0.2", 8080);
    let _l2 = listen(&topo.server(), "10.2.0.2", 9090);
    let _l3 = listen(&topo.server(), "10.2.0.2", 3000);
    assert_eq!(connect(&topo.client(), "10.2.0.2", 8080, 1), ["ok"]);
    assert_eq!(
        connect(&topo.client(), "10.2.0.2", 3000, 1),
        ["refused"],
        "REJECT --reject-with tcp-reset gives connection refused"
    );
    assert_eq!(
        connect(&topo.client(), "10.2.0.2", 9090, 1),
        ["timeout"],
        "the FORWARD DROP policy blocks"
    );
    let (_, list, _) = gw.tool("iptables", &["-L", "FORWARD", "-n", "-v", "-x"], None);
    assert!(list.contains("Chain FORWARD (policy DROP"), "{list}");
    let reject = list.lines().find(|l| l.contains("REJECT")).unwrap();
    assert!(
        reject.trim_start().starts_with('1'),
        "one packet rejected: {list}"
    );
}

#[test]
fn live_rule_changes_and_conntrack_delete() {
    let Some((topo, gw)) = Gateway::over_client_gw_server("live") else {
        return;
    };
    let _l = listen(&topo.server(), "10.2.0.2", 8080);
    assert_eq!(connect(&topo.client(), "10.2.0.2", 8080, 1), ["ok"]);
    // Block it live; -C finds the rule; a typo changes nothing.
    let (st, _, err) = gw.tool(
        "iptables",
        &[
            "-I", "FORWARD", "-p", "tcp", "--dport", "8080", "-j", "DROP",
        ],
        None,
    );
    assert_eq!(st, 0, "{err}");
    assert_eq!(
        gw.tool(
            "iptables",
            &["-C", "FORWARD", "-p", "tcp", "--dport", "8080", "-j", "DROP"],
            None
        )
        .0,
        0
    );
    assert_eq!(
        gw.tool(
            "iptables",
            &["-C", "FORWARD", "-p", "tcp", "--dport", "8081", "-j", "DROP"],
            None
        )
        .0,
        1
    );
    let (st, _, err) = gw.tool(
        "iptables",
        &["-A", "FORWARD", "-p", "tcp", "--dprot", "1", "-j", "DROP"],
        None,
    );
    assert_eq!(st, 2);
    assert!(err.contains("--dprot"), "{err}");
    assert_eq!(connect(&topo.client(), "10.2.0.2", 8080, 1), ["timeout"]);
    // Restore replaces it atomically; a broken restore changes nothing.
    let bad = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j NOSUCHCHAIN\nCOMMIT\n";
    let (st, _, err) = gw.tool("iptables-restore", &[], Some(bad));
    assert_ne!(st, 0);
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(connect(&topo.client(), "10.2.0.2", 8080, 1), ["timeout"]);
    let good =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    assert_eq!(gw.tool("iptables-restore", &[], Some(good)).0, 0);
    assert_eq!(connect(&topo.client(), "10.2.0.2", 8080, 1), ["ok"]);
    // Conntrack shows the flows; the stats front end answers.
    let (st, list, _) = gw.tool("conntrack", &["-L"], None);
    assert_eq!(st, 0);
    assert!(list.contains("dport=8080"), "{list}");
    let (st, stats, _) = gw.tool("stats", &[], None);
    assert_eq!(st, 0);
    assert!(stats.contains("conntrack_entries"), "{stats}");
}
