//! End-to-end tests of live control (issue 5): kube-proxy's update cycle
//! through `iptables-save`/`iptables-restore --noflush --counters` while
//! traffic flows, `conntrack -D` semantics, and requests the gateway must
//! refuse. Need root, TUN, iperf3 and python3; they print why and return
//! without them (under CI they fail).

#[path = "harness/mod.rs"]
mod harness;

use harness::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A kube-proxy `iptables-restore --noflush` payload for the nat table, two
/// services: 10.96.0.10:80 -> endpoints `eps` (backend N at 10.2.N.2:8080)
/// and 10.96.0.11:5201 -> backend 1 alone (iperf3 opens two connections, which
/// must meet the same server). Chains of endpoints in `stale` are declared
/// (flushed) and deleted with -X, as kube-proxy does.
fn kube_nat(eps: &[usize], stale: &[usize]) -> String {
    let mut s = String::from(
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n\
         :KUBE-SVC-WEB - [0:0]\n:KUBE-SVC-PERF - [0:0]\n:KUBE-SEP-PERF - [0:0]\n",
    );
    for e in eps.iter().chain(stale) {
        s += &format!(":KUBE-SEP-WEB{e} - [0:0]\n");
    }
    s += "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
          -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
          -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
          -A KUBE-POSTROUTING -j MASQUERADE --random-fully\n\
          -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-WEB\n\
          -A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 5201 -j KUBE-SVC-PERF\n\
          -A KUBE-SVC-PERF ! -s 10.244.0.0/16 -d 10.96.0.11/32 -p tcp -m tcp --dport 5201 -j KUBE-MARK-MASQ\n\
          -A KUBE-SVC-PERF -j KUBE-SEP-PERF\n\
          -A KUBE-SEP-PERF -p tcp -m tcp -j DNAT --to-destination 10.2.1.2:5201\n\
          -A KUBE-SVC-WEB ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n";
    for (i, e) in eps.iter().enumerate() {
        let left = eps.len() - i;
        if left > 1 {
            s += &format!(
                "-A KUBE-SVC-WEB -m statistic --mode random --probability {:.11} -j KUBE-SEP-WEB{e}\n",
                1.0 / left as f64
            );
        } else {
            s += &format!("-A KUBE-SVC-WEB -j KUBE-SEP-WEB{e}\n");
        }
    }
    for e in eps {
        s += &format!(
            "-A KUBE-SEP-WEB{e} -s 10.2.{e}.2/32 -j KUBE-MARK-MASQ\n\
             -A KUBE-SEP-WEB{e} -p tcp -m tcp -j DNAT --to-destination 10.2.{e}.2:8080\n"
        );
    }
    for e in stale {
        s += &format!("-X KUBE-SEP-WEB{e}\n");
    }
    s + "COMMIT\n"
}

const NAT_BASE: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
:KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n\
-A PREROUTING -j KUBE-SERVICES\n-A POSTROUTING -j KUBE-POSTROUTING\nCOMMIT\n";

/// A listener that accepts and closes, as in e2e_rules.
fn listen(ns: &Ns, addr: &str, port: u16) -> ChildGuard {
    let script = format!(
        "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('{addr}',{port}));s.listen(128);print('listening',flush=True)\n\
         while True:\n    c,_=s.accept();c.close()\n"
    );
    spawn_ready(ns, &script)
}

/// Starts a Python script in `ns` and waits for its first line, which must
/// be "listening" (else panics with what it printed on stderr).
fn spawn_ready(ns: &Ns, script: &str) -> ChildGuard {
    let mut g = ns.spawn(&["python3", "-c", script]);
    let mut line = String::new();
    read_line(g.child(), &mut line);
    if line.trim() != "listening" {
        let mut e = String::new();
        let _ = g.child().stderr.take().unwrap().read_to_string(&mut e);
        panic!("listener in {} did not start: {line:?} {e}", ns.name);
    }
    g
}

fn backend_of(conntrack: &str, dport: u16) -> Vec<usize> {
    conntrack
        .lines()
        .filter(|l| l.contains(&format!("dport={dport} ")) && l.contains("dst=10.96.0.10"))
        .filter_map(|l| (1..=4).find(|e| l.contains(&format!("src=10.2.{e}.2 "))))
        .collect()
}

#[test]
fn kube_proxy_update_cycle_keeps_flows_and_moves_new_ones() {
    let Some(topo) = Topology::client_gw_backends("kcyc", 4) else {
        return;
    };
    let gw = Gateway::start(&topo, Some(NAT_BASE));
    let _listeners: Vec<_> = (1..=4)
        .map(|e| listen(&topo.backend(e), &format!("10.2.{e}.2"), 8080))
        .collect();
    let _iperf = topo.backend(1).spawn(&["iperf3", "-s", "-1"]);
    std::thread::sleep(Duration::from_millis(300));

    // kube-proxy: save the nat table, then restore its full view.
    let (st, saved, err) = gw.tool("iptables-save", &["-t", "nat"], None);
    assert_eq!(st, 0, "{err}");
    assert!(saved.contains(":KUBE-SERVICES - [0:0]"), "{saved}");
    let (st, _, err) = gw.tool(
        "iptables-restore",
        &["--noflush", "--counters"],
        Some(&kube_nat(&[1, 2, 3, 4], &[])),
    );
    assert_eq!(st, 0, "{err}");

    // A long TCP flow through the second service.
    let client = topo.client();
    let flow = client.spawn(&["iperf3", "-c", "10.96.0.11", "-p", "5201", "-t", "5", "-J"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, ct, _) = gw.tool("conntrack", &["-L", "-p", "tcp", "--dport", "5201"], None);
    assert!(
        ct.contains("src=10.2.1.2 "),
        "the iperf3 flow is tracked:\n{ct}"
    );

    // An endpoint of the first service goes away while the flow runs.
    let gone = 3;
    let (st, _, err) = gw.tool(
        "iptables-restore",
        &["--noflush", "--counters"],
        Some(&kube_nat(&[1, 2, 4], &[gone])),
    );
    assert_eq!(st, 0, "{err}");
    let (_, saved, _) = gw.tool("iptables-save", &["-t", "nat"], None);
    assert!(!saved.contains(&format!("10.2.{gone}.2:")), "{saved}");
    assert!(!saved.contains(&format!("KUBE-SEP-WEB{gone}")), "{saved}");

    // The running flow finishes without error (its NAT binding survived
    // both swaps)...
    let out = {
        let mut flow = flow;
        let c = flow.0.take().unwrap();
        c.wait_with_output().unwrap()
    };
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(!json.contains("\"error\""), "{json}");
    assert!(iperf3_end(&json, "sum_received", "bytes") > 0.0, "{json}");

    // ...and new connections never reach the removed endpoint.
    let script = "import socket\nfor i in range(40):\n    s=socket.socket();s.settimeout(2)\n    s.connect(('10.96.0.10',80));print('ok');s.close()\n";
    let res = client.exec_timeout(&["python3", "-c", script], Duration::from_secs(30));
    let oks = String::from_utf8_lossy(&res.stdout).matches("ok").count();
    assert_eq!(oks, 40, "{}", String::from_utf8_lossy(&res.stderr));
    let (_, ct, _) = gw.tool("conntrack", &["-L", "-p", "tcp", "--dport", "80"], None);
    let used = backend_of(&ct, 80);
    assert!(used.iter().filter(|&&e| e != gone).count() == 40);
    assert_eq!(used.len(), 40, "{ct}");
    assert!(!used.contains(&gone), "endpoint {gone} was removed:\n{ct}");
}

#[test]
fn conntrack_delete_makes_the_next_packet_new() {
    let Some(topo) = Topology::client_gw_server("ctdel") else {
        return;
    };
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                 -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n\
                 -A FORWARD -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n";
    let gw = Gateway::start(&topo, Some(rules));
    // An echo server; the client sends a line, waits, sends another.
    let srv = "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
               s.bind(('10.2.0.2',7000));s.listen(1);print('listening',flush=True)\nc,_=s.accept()\n\
               while True:\n    d=c.recv(100)\n    if not d: break\n    c.sendall(d)\n";
    let _server = spawn_ready(&topo.server(), srv);
    let cli =
        "import socket,sys,time\ns=socket.socket();s.settimeout(3);s.connect(('10.2.0.2',7000))\n\
               s.sendall(b'one');print(s.recv(10),flush=True)\nsys.stdin.readline()\n\
               s.sendall(b'two');print(s.recv(10),flush=True)\n";
    let mut client = topo.client().spawn_stdin(&["python3", "-c", cli]);
    let mut line = String::new();
    read_line(client.child(), &mut line);
    if !line.contains("one") {
        let mut e = String::new();
        let _ = client.child().stderr.take().unwrap().read_to_string(&mut e);
        let (_, l, _) = gw.tool("iptables", &["-L", "-n", "-v"], None);
        let (_, st, _) = gw.tool("stats", &[], None);
        let (_, ct, _) = gw.tool("conntrack", &["-L"], None);
        panic!("client: {line:?} {e}\n{}\n{l}\n{st}\n{ct}", gw.log_text());
    }
    let new_count = |gw: &Gateway| -> u64 {
        let (_, l, _) = gw.tool("iptables", &["-L", "FORWARD", "-n", "-v", "-x"], None);
        l.lines()
            .find(|l| l.contains("ctstate NEW"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(new_count(&gw), 1, "the SYN was NEW");
    let (st, out, err) = gw.tool("conntrack", &["-D", "-d", "10.2.0.2"], None);
    assert_eq!(st, 0, "{out}{err}");
    assert!(err.contains("1 flow entries have been deleted"), "{err}");
    let (_, ct, _) = gw.tool("conntrack", &["-L"], None);
    assert!(!ct.contains("dport=7000"), "{ct}");
    // The next segment of the same connection is evaluated as NEW (and
    // picked up again, as the kernel's nf_conntrack_tcp_loose does).
    client
        .child()
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"\n")
        .unwrap();
    let mut line = String::new();
    read_line(client.child(), &mut line);
    assert!(line.contains("two"), "{line}");
    assert_eq!(new_count(&gw), 2, "the next packet after -D was NEW");
}

fn read_line(c: &mut std::process::Child, out: &mut String) {
    let mut b = [0u8; 1];
    let so = c.stdout.as_mut().unwrap();
    while so.read(&mut b).unwrap_or(0) == 1 {
        if b[0] == b'\n' {
            break;
        }
        out.push(b[0] as char);
    }
}

#[test]
fn bad_requests_change_nothing_and_strangers_are_refused() {
    let Some((_topo, gw)) = Gateway::over_client_gw_server("ctlbad") else {
        return;
    };
    let (_, before, _) = gw.tool("iptables-save", &[], None);
    // Unknown command and malformed rule: clear errors.
    let (st, _, err) = gw.tool("iptables", &["--frobnicate"], None);
    assert_eq!(st, 2, "{err}");
    let (st, _, err) = gw.tool(
        "iptables",
        &["-A", "FORWARD", "-s", "300.1.1.1", "-j", "DROP"],
        None,
    );
    assert_ne!(st, 0);
    assert!(err.contains("300.1.1.1"), "{err}");
    // Oversized, truncated, garbage, stalled and vanishing clients.
    let send = |bytes: &[u8], wait_answer: bool| -> String {
        let mut s = UnixStream::connect(&gw.ctl).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        if !wait_answer {
            return String::new();
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(send(&u32::MAX.to_be_bytes(), true).contains("outside"));
    assert!(send(&[0, 0, 0, 9, b'{', b'"'], false).is_empty());
    assert!(send(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'], true).contains("bad request"));
    let full = {
        let body = br#"{"version":1,"tool":"iptables","args":["-F"]}"#;
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    // Disconnect in the middle of a valid flush request: nothing runs.
    send(&full[..full.len() - 4], false);
    // Stalled for longer than the server waits: answered with an error.
    let stalled = send(&full[..10], true);
    assert!(stalled.contains("bad request"), "{stalled}");
    let (st, after, _) = gw.tool("iptables-save", &[], None);
    assert_eq!(st, 0, "the gateway still answers");
    assert_eq!(
        without_comments(&before),
        without_comments(&after),
        "no request changed the ruleset"
    );

    // The socket is root's, mode 0600; a user who is neither root nor in
    // the control group gets nothing, even with the file mode opened.
    let meta = std::fs::metadata(&gw.ctl).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&gw.ctl, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tungate"))
        .args(["iptables", "--ctl"])
        .arg(&gw.ctl)
        .args(["-F"])
        .env_remove("TUNGATE_CTL")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied"), "{err}");
    let (_, after, _) = gw.tool("iptables-save", &[], None);
    assert_eq!(without_comments(&before), without_comments(&after));
}

use std::os::unix::process::CommandExt;

/// A free loopback port (bound and released; the gateway binds it again).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP exchange with the metrics endpoint: the status line and the body.
fn http(port: u16, request: &[u8]) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The sum of a metric family's samples whose labels contain `filter`.
fn metric_sum(text: &str, name: &str, filter: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn metrics_endpoint_serves_prometheus_text_on_loopback() {
    let Some(topo) = Topology::client_gw_server("metr") else {
        return;
    };
    let port = free_port();
    let gw = Gateway::start_with(
        &topo,
        Some("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p udp --dport 9 -j DROP\nCOMMIT\n"),
        2,
        &format!("metrics = \"127.0.0.1:{port}\""),
    );
    // Ten datagrams from the client, dropped by the rule.
    let send = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                for i in range(10): s.sendto(b'x',('10.2.0.2',9))\n";
    let out = topo.client().exec(&["python3", "-c", send]);
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_millis(300));

    // A client that connects and says nothing holds the endpoint for one
    // timeout at most.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (status, body) = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK", "{}", gw.log_text());
    for family in [
        "tungate_ruleset_generation",
        "tungate_conntrack_entries",
        "tungate_conntrack_inserted_total",
        "tungate_packets_dropped_total",
        "tungate_interface_rx_packets_total",
        "tungate_workers",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{body}"
        );
    }
    let tc = format!("interface=\"{}-tc\"", topo.prefix);
    let rx = metric_sum(&body, "tungate_interface_rx_packets_total", &tc);
    assert!(rx >= 10, "rx on {tc}: {rx}\n{body}");
    let dropped = metric_sum(
        &body,
        "tungate_packets_dropped_total",
        "reason=\"rule_drop\"",
    );
    assert!(dropped >= 10, "rule drops: {dropped}\n{body}");
    // Both workers are listed for each interface.
    assert!(body.contains(&format!("{{{tc},worker=\"1\"}}")), "{body}");

    // The same families through the control socket.
    let (st, prom, err) = gw.tool("stats", &["--prometheus"], None);
    assert_eq!(st, 0, "{err}");
    assert!(prom.contains("# TYPE tungate_interface_rx_packets_total counter"));
    let (st, _, err) = gw.tool("stats", &["--bogus"], None);
    assert_eq!(st, 2);
    assert!(err.contains("--bogus"), "{err}");

    // Anything but GET /metrics is refused, and the endpoint keeps serving.
    assert_eq!(
        http(port, b"GET / HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        http(port, b"POST /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(http(port, b"hello\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(
        http(port, huge.as_bytes()).0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(
        http(port, b"GET /metrics HTTP/1.0\r\n\r\n").0,
        "HTTP/1.1 200 OK"
    );
}
