//! Faults and least privilege (issue 7, points 5 and 6), against the real
//! binary between namespaces: recovery after SIGKILL, the privilege drop
//! (uid/gid, capability sets, no_new_privs, seccomp mode read from
//! /proc/PID/status for every thread), a full exercise under the filter, the
//! control group on the socket, and the seccomp reporter. Without root, TUN
//! or the tools the tests print why and return (under `$CI` they fail).

mod harness;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use tungate::sys::caps::{self, ProcStatus};
use tungate::sys::seccomp;

const MASQ: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.1.0.0/24 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -j ACCEPT
COMMIT
";

/// Status of the process and of every one of its threads (capabilities are
/// per thread: a thread spawned before the drop would still hold them).
fn all_thread_status(pid: i32) -> Vec<(String, ProcStatus)> {
    let mut out = vec![(
        "process".to_string(),
        ProcStatus::read(Some(pid)).expect("read /proc/PID/status"),
    )];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let name = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
        if let Ok(text) = std::fs::read_to_string(t.join("status")) {
            out.push((name.trim().to_string(), ProcStatus::parse(&text)));
        }
    }
    assert!(
        out.len() >= 4,
        "main, signals, control and workers: {out:?}"
    );
    out
}

/// (thread name, nice value, scheduling policy) of every thread, from
/// /proc/PID/task/TID/stat (fields 19 and 41).
fn thread_sched(pid: i32) -> Vec<(String, i32, u32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(t.unwrap().path().join("stat")) else {
            continue;
        };
        let (head, rest) = stat.rsplit_once(')').expect("stat has (comm)");
        let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] is field 3 (state).
        out.push((name, f[16].parse().unwrap(), f[38].parse().unwrap()));
    }
    out
}

fn assert_no_privileges(pid: i32, uid: u32, gid: u32) {
    for (who, s) in all_thread_status(pid) {
        assert_eq!(s.uid, [uid; 4], "{who}: Uid {s:?}");
        assert_eq!(s.gid, [gid; 4], "{who}: Gid {s:?}");
        assert_eq!(
            (s.cap_inh, s.cap_prm, s.cap_eff, s.cap_bnd, s.cap_amb),
            (0, 0, 0, 0, 0),
            "{who}: capability sets must all be empty: {s:?}"
        );
        assert!(s.no_new_privs, "{who}: NoNewPrivs must be 1: {s:?}");
        assert_eq!(s.seccomp, 2, "{who}: Seccomp must be 2 (filter): {s:?}");
    }
}

/// The gateway exits only once the kernel has removed its devices (it
/// watches them over netlink: without CAP_NET_ADMIN it cannot delete them,
/// and io_uring releases the queues asynchronously), so they are gone now.
fn assert_devices_gone(topo: &Topology, log: &str) {
    for (ns, dev) in [topo.client(), topo.server()].iter().zip(topo.devices()) {
        assert!(!ns.has_link(&dev), "{dev} left in {}:\n{log}", ns.name);
    }
    assert!(!log.contains("still present"), "{log}");
}

fn nobody() -> Option<(u32, u32)> {
    let u = nix::unistd::User::from_name("nobody").ok().flatten()?;
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

#[test]
fn restart_after_sigkill_forwards_within_a_second() {
    let Some(topo) = Topology::client_gw_server("kill9") else {
        return;
    };
    let gw = Gateway::start(&topo, Some(MASQ));
    let (n, out) = topo.client().ping("10.2.0.2", 2, &[]);
    assert!(n > 0, "before the crash:\n{out}");
    let cfg_text = std::fs::read_to_string(&gw.config).unwrap();
    let status = gw.stop_with(nix::sys::signal::Signal::SIGKILL);
    assert!(!status.success());
    assert!(
        topo.dir.join("ctl.sock").exists(),
        "SIGKILL leaves the socket"
    );

    let _srv = topo.server().iperf3_server();
    let gw = Gateway::start_config(&topo, &cfg_text);
    let ready = Instant::now();
    // A TCP connect through the gateway (SYN, SYN-ACK, ACK, with NAT),
    // retried until it works; it must work within a second of "running".
    let mut last = String::new();
    let mut ok = false;
    while ready.elapsed() < Duration::from_secs(1) {
        let out = topo.client().exec(&[
            "timeout",
            "1",
            "bash",
            "-c",
            "exec 3<>/dev/tcp/10.2.0.2/5201",
        ]);
        if out.status.success() {
            ok = true;
            break;
        }
        last = out.text();
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = ready.elapsed();
    assert!(
        ok && took < Duration::from_secs(1),
        "no TCP connect within 1 s of the restart ({took:?}): {last}\n{}",
        gw.log_text()
    );
    // The namespace side is back: address and route.
    let dev = &topo.devices()[0];
    let addr = topo
        .client()
        .exec(&["ip", "-4", "addr", "show", "dev", dev]);
    assert!(addr.text().contains("10.1.0.2/24"), "{}", addr.text());
    let route = topo.client().exec(&["ip", "route", "show", "default"]);
    assert!(route.text().contains(dev.as_str()), "{}", route.text());
    // The stale control socket was replaced, the ruleset reloaded.
    let (st, save, err) = gw.tool("iptables-save", &[], None);
    assert_eq!(st, 0, "{err}");
    assert!(
        save.contains("-A POSTROUTING -s 10.1.0.0/24 -j MASQUERADE"),
        "{save}"
    );
    let (n, out) = topo.client().ping("10.2.0.2", 2, &[]);
    assert!(n > 0, "after the restart:\n{out}");
    let log = gw.log.clone();
    let status = gw.stop();
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn running_gateway_is_unprivileged_and_survives_a_full_exercise() {
    let Some(topo) = Topology::client_gw_server("nobody") else {
        return;
    };
    let Some((uid, gid)) = nobody() else {
        println!("skipped: no user `nobody` on this machine");
        return;
    };
    let gw = Gateway::start_with(
        &topo,
        None,
        2,
        "user = \"nobody\"\nseccomp = true\nworker_batch = true\ncontrol_nice = 0\n",
    );
    assert!(
        gw.log_text().contains("privileges dropped"),
        "{}",
        gw.log_text()
    );
    assert_no_privileges(gw.pid(), uid, gid);
    // worker_batch = true, control_nice = 0: the workers under SCHED_BATCH
    // (3), every thread at nice 0 (the seccomp filter allows both calls).
    let threads = thread_sched(gw.pid());
    for (name, nice, policy) in &threads {
        let batch = if name.starts_with("tg-worker") { 3 } else { 0 };
        assert_eq!((*nice, *policy), (0, batch), "{name}: {threads:?}");
    }

    let (n, out) = topo.client().ping("10.2.0.2", 3, &[]);
    assert!(n > 0, "ping through the unprivileged gateway:\n{out}");
    let (st, _, err) = gw.tool("iptables-restore", &[], Some(MASQ));
    assert_eq!(st, 0, "iptables-restore: {err}");
    let json = iperf3(
        &topo.server(),
        &topo.client(),
        "10.2.0.2",
        &["-t", "2", "--get-server-output"],
    );
    assert_masqueraded_transfer(&json, "MASQUERADE loaded after the drop applies");
    let (st, ct, err) = gw.tool("conntrack", &["-L"], None);
    assert_eq!(st, 0, "conntrack -L: {err}");
    assert!(ct.contains("dport=5201"), "{ct}");
    let (st, listing, err) = gw.tool("iptables", &["-t", "nat", "-L", "-n", "-v"], None);
    assert_eq!(st, 0, "{err}");
    assert!(listing.contains("MASQUERADE"), "{listing}");
    // Without -n: names from /etc/hosts, /etc/services (files, no DNS socket).
    let (st, _, err) = gw.tool("iptables", &["-L", "-v"], None);
    assert_eq!(st, 0, "{err}");
    let (st, _, err) = gw.tool("conntrack", &["-F"], None);
    assert_eq!(st, 0, "{err}");
    let stats = gw.stats();
    assert!(stats.contains("interface"), "{stats}");
    // Still as unprivileged after all that.
    assert_no_privileges(gw.pid(), uid, gid);

    let log = gw.log.clone();
    let status = gw.stop();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "exit {status}:\n{text}");
    assert!(!text.contains("seccomp:"), "{text}");
    assert_devices_gone(&topo, &text);
}

#[test]
fn default_stays_root_but_holds_no_capability() {
    let Some((topo, gw)) = Gateway::over_client_gw_server("rootnocap") else {
        return;
    };
    assert_no_privileges(gw.pid(), 0, 0);
    // The defaults: the control threads at nice -10 (set before the drop,
    // inherited), the workers back at 0, the rest at 0; all SCHED_OTHER.
    let threads = thread_sched(gw.pid());
    let workers = threads
        .iter()
        .filter(|t| t.0.starts_with("tg-worker"))
        .count();
    assert!(workers >= 1, "{threads:?}");
    for (name, nice, policy) in &threads {
        let want = match name.as_str() {
            "tungate-ctl" => (-10, 0),
            _ => (0, 0),
        };
        assert_eq!((*nice, *policy), want, "{name}: {threads:?}");
    }
    let (n, out) = topo.client().ping("10.2.0.2", 2, &[]);
    assert!(n > 0, "{out}");
    let (st, _, err) = gw.tool("iptables", &["-A", "FORWARD", "-j", "ACCEPT"], None);
    assert_eq!(st, 0, "{err}");
    let log = gw.log.clone();
    let status = gw.stop_with(nix::sys::signal::Signal::SIGINT);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "{status}: {text}");
    assert_devices_gone(&topo, &text);
}

#[test]
fn control_group_member_can_change_the_ruleset_others_cannot() {
    let Some(topo) = Topology::client_gw_server("ctlgroup") else {
        return;
    };
    // A gid with no name is enough: the check is on the peer's credentials.
    let group: u32 = 42_420 + std::process::id() % 1000;
    let gw = Gateway::start_with(
        &topo,
        None,
        2,
        &format!("user = \"nobody\"\ncontrol_group = \"{group}\"\n"),
    );
    let meta = std::fs::metadata(&gw.ctl).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), group);
    let run_as = |gid: u32, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tungate"))
            .arg("iptables")
            .arg("--ctl")
            .arg(&gw.ctl)
            .args(args)
            .env_remove("TUNGATE_CTL")
            .uid(65534)
            .gid(gid)
            .output()
            .unwrap()
    };
    // Outside the group: refused (the socket mode alone already denies it;
    // open the mode so that the peer-credential check is what refuses).
    let (_, before, _) = gw.tool("iptables-save", &[], None);
    std::fs::set_permissions(&gw.ctl, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_as(65534, &["-A", "FORWARD", "-j", "DROP"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("permission denied"), "{}", out.text());
    let (_, after, _) = gw.tool("iptables-save", &[], None);
    assert_eq!(without_comments(&before), without_comments(&after));
    std::fs::set_permissions(&gw.ctl, std::fs::Permissions::from_mode(0o660)).unwrap();
    // In the group: allowed.
    let out = run_as(group, &["-A", "FORWARD", "-s", "10.9.9.9", "-j", "DROP"]);
    assert!(out.status.success(), "{}", out.text());
    let (_, after, _) = gw.tool("iptables-save", &[], None);
    assert!(
        after.contains("-A FORWARD -s 10.9.9.9/32 -j DROP"),
        "{after}"
    );
}

/// The child half of the seccomp tests: runs only when one of them starts
/// this binary with `TUNGATE_SECCOMP_CHILD` set to what to try.
#[test]
fn seccomp_child() {
    let Some(what) = std::env::var_os("TUNGATE_SECCOMP_CHILD") else {
        return;
    };
    caps::drop_privileges(caps::Identity::default()).expect("drop");
    seccomp::install_seccomp(seccomp::ALLOWED_SYSCALLS).expect("seccomp");
    match what.to_str().unwrap() {
        // getppid(2) is not something the gateway does.
        "getppid" => println!(
            "still alive after getppid = {}",
            std::os::unix::process::parent_id()
        ),
        // A unix socket is fine (the control server uses one) ...
        "unix" => {
            let s = std::os::unix::net::UnixDatagram::unbound();
            println!("unix socket: {}", if s.is_ok() { "ok" } else { "failed" });
        }
        // ... a network socket is not.
        "inet" => println!(
            "still alive: {:?}",
            std::net::UdpSocket::bind("127.0.0.1:0")
        ),
        other => panic!("unknown child mode {other}"),
    }
    std::process::exit(0);
}

/// The child half of `panic_outside_workers_ends_the_process`.
#[test]
fn panic_child() {
    let Some(what) = std::env::var_os("TUNGATE_PANIC_CHILD") else {
        return;
    };
    tungate::cli::run::install_panic_hook();
    let name = what.to_str().unwrap().to_string();
    let t = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || panic!("injected panic in {name}"))
        .unwrap();
    let joined = t.join().is_err();
    // Reached only when the hook let the process live (worker threads:
    // the main loop reports them through Dataplane::check).
    println!("process survived; join saw the panic: {joined}");
    std::process::exit(0);
}

#[test]
fn panic_outside_workers_ends_the_process() {
    let run = |thread: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "panic_child", "--nocapture", "--test-threads=1"])
            .env("TUNGATE_PANIC_CHILD", thread)
            .output()
            .unwrap()
    };
    for thread in ["tungate-ctl-conn", "tungate-ctl", "tg-signals"] {
        let out = run(thread);
        let text = out.text();
        assert_eq!(out.status.code(), Some(101), "{thread}:\n{text}");
        assert!(
            text.contains(&format!("injected panic in {thread}")),
            "{text}"
        );
        assert!(!text.contains("process survived"), "{text}");
    }
    // A worker's panic is left to the main loop (exit non-zero with the
    // message, tested in e2e.rs worker_panic_is_reported_not_silent).
    let out = run("tg-worker-0");
    let text = out.text();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("join saw the panic: true"), "{text}");
}

fn seccomp_child_run(what: &str) -> Option<std::process::Output> {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root (to drop privileges first)");
        return None;
    }
    Some(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "seccomp_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TUNGATE_SECCOMP_CHILD", what)
            .output()
            .unwrap(),
    )
}

/// The seccomp child was killed for `syscall`: a refused system call ends
/// the process with 128+SIGSYS, names the call, and nothing after it runs.
fn assert_killed_for(out: &std::process::Output, syscall: libc::c_long) {
    let text = out.text();
    assert_eq!(
        out.status.code(),
        Some(seccomp::SECCOMP_EXIT_STATUS),
        "a refused system call ends the process with 128+SIGSYS:\n{text}"
    );
    assert!(
        text.contains(&format!("seccomp: system call {syscall} is not allowed")),
        "{text}"
    );
    assert!(!text.contains("still alive"), "{text}");
}

#[test]
fn seccomp_violation_is_named_and_exits() {
    let Some(out) = seccomp_child_run("getppid") else {
        return;
    };
    assert_killed_for(&out, libc::SYS_getppid);
}

#[test]
fn seccomp_allows_unix_sockets_only() {
    let Some(out) = seccomp_child_run("unix") else {
        return;
    };
    let text = out.text();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("unix socket: ok"), "{text}");

    let out = seccomp_child_run("inet").unwrap();
    assert_killed_for(&out, libc::SYS_socket);
}

#[test]
fn foreign_persistent_tun_with_our_name_is_left_alone() {
    let Some(topo) = Topology::client_gw_server("foreign") else {
        return;
    };
    let dev = topo.devices()[0].clone();
    // Someone else's persistent TUN device, with no lock (not a tungate).
    let out = topo
        .client()
        .exec(&["ip", "tuntap", "add", "dev", &dev, "mode", "tun"]);
    assert!(out.status.success(), "{}", out.text());
    let cfg = topo.dir.join("foreign.toml");
    std::fs::write(
        &cfg,
        format!(
            "control_socket = {:?}\n{}",
            topo.dir.join("ctl.sock").to_string_lossy(),
            topo.config(None, 2)
        ),
    )
    .unwrap();
    let out = run_until_exit(&cfg);
    let text = out.text();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("already exists") && text.contains("persistent"),
        "{text}"
    );
    assert!(topo.client().has_link(&dev), "a foreign device must stay");
}
