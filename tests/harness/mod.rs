//! Harness for end-to-end tests: namespaces built by `netns-scripts/topo.sh`,
//! the real `tungate` binary between them, and helpers to run tools inside.
//!
//! Adding a ruleset test takes a few lines:
//!
//! ```ignore
//! let Some(topo) = Topology::client_gw_server("dnat") else { return };
//! let gw = Gateway::start(&topo, Some(RULES));
//! let out = topo.client().exec(&["iperf3", "-c", "10.1.0.1", "-t", "1"]);
//! assert!(out.status.success(), "{}", out.text());
//! ```
//!
//! Everything is torn down by `Drop` guards, also when a test panics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod scratch_ns;

/// The repository root (the crate lives in `router/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` beside the repository, or `$TUNGATE_SHARED`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("TUNGATE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

fn topo_script() -> PathBuf {
    repo_root().join("netns-scripts/topo.sh")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why end-to-end tests cannot run here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces and TUN need CAP_NET_ADMIN)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    for t in ["ip", "iperf3", "hping3", "iptables-restore"] {
        if !have(t) {
            return Some(format!(
                "`{t}` is not installed (apt-get install iproute2 iperf3 hping3 iptables)"
            ));
        }
    }
    None
}

/// Returns true (and prints why) when the test must skip. Under CI (`$CI`
/// set) a missing prerequisite is a failure, not a skip.
pub fn skip(test: &str) -> bool {
    skip_because(test, missing_prerequisite())
}

/// The one way a test that needs the machine (root, TUN, namespaces, the
/// real tools) skips: with `Some(why)` it prints `SKIP test: why` and
/// returns true, or, under CI (`$CI` set), fails the test instead.
pub fn skip_because(test: &str, why: Option<String>) -> bool {
    match why {
        None => false,
        Some(why) if std::env::var_os("CI").is_some() => panic!("{test}: cannot run in CI: {why}"),
        Some(why) => {
            // Straight to the descriptor: the test harness captures `eprintln!`
            // of a passing test, and a skip must be seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIP {test}: {why}\n").as_bytes(),
            );
            true
        }
    }
}

/// Why a test needing root and `tools` cannot run here, if it cannot.
pub fn missing_root_or(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces need CAP_NET_ADMIN)".into());
    }
    tools
        .iter()
        .find(|t| !have(t))
        .map(|t| format!("`{t}` is not installed"))
}

/// Output of a command, with a readable rendering for assertion messages.
pub trait OutputText {
    fn text(&self) -> String;
}

impl OutputText for Output {
    fn text(&self) -> String {
        format!(
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

/// `s` without its `#` lines (the comments `iptables-save` stamps with the
/// time), joined with newlines: two saves compare equal when the rules do.
pub fn without_comments(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `tungate run --config <config>`, waited for: a start that must fail.
pub fn run_until_exit(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tungate"))
        .args(["run", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

/// A network namespace.
#[derive(Debug, Clone)]
pub struct Ns {
    pub name: String,
}

impl Ns {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs `args` inside the namespace and waits.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.name))
    }

    /// Like `exec`, killed after `limit`.
    pub fn exec_timeout(&self, args: &[&str], limit: Duration) -> Output {
        let secs = format!("{}", limit.as_secs().max(1));
        let mut a = vec!["timeout", "-s", "KILL", secs.as_str()];
        a.extend_from_slice(args);
        self.exec(&a)
    }

    /// Starts `args` inside the namespace; killed when the guard drops.
    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", self.name));
        ChildGuard(Some(child))
    }

    /// Like `spawn`, with standard input piped too.
    pub fn spawn_stdin(&self, args: &[&str]) -> ChildGuard {
        let child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", self.name));
        ChildGuard(Some(child))
    }

    /// A long-running `iperf3 -s` (flushing every line); `finish()` it and
    /// count [`accepted_from`] to see which connections reached this namespace.
    pub fn iperf3_server(&self) -> ChildGuard {
        let g = self.spawn(&["iperf3", "-s", "--forceflush"]);
        // Wait until it listens on 5201.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let out = self.exec(&["ss", "-Hltn", "sport = :5201"]);
            if !out.stdout.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }

    /// `hping3 --icmp` echo requests; returns (replies received, output).
    pub fn ping(&self, dst: &str, count: u32, extra: &[&str]) -> (u32, String) {
        let c = count.to_string();
        let mut a = vec!["hping3", "--icmp", "-c", &c, "-i", "u100000"];
        a.extend_from_slice(extra);
        a.push(dst);
        let out = self.exec_timeout(&a, Duration::from_secs(u64::from(count) + 5));
        let text = out.text();
        let received = text
            .lines()
            .find_map(|l| {
                let (_, rest) = l.split_once("packets transmitted, ")?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0);
        (received, text)
    }

    pub fn has_link(&self, dev: &str) -> bool {
        Command::new("ip")
            .args(["-n", &self.name, "link", "show", "dev", dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn exists(&self) -> bool {
        Path::new("/run/netns").join(&self.name).exists()
    }
}

/// Kills the child on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    /// SIGTERM (SIGKILL after 3 s), then everything it printed.
    pub fn finish(mut self) -> String {
        let Some(c) = self.0.take() else {
            return String::new();
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        });
        let out = c.wait_with_output().expect("wait");
        drop(killer);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// client - gateway - server
    ClientGwServer,
    /// client - gateway - four backends
    ClientGwBackends,
}

/// Namespaces of one test; removed on drop.
pub struct Topology {
    pub prefix: String,
    pub shape: Shape,
    pub label: String,
    pub dir: PathBuf,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn base36(mut n: usize) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

fn run_script(args: &[&str]) -> Output {
    let out = Command::new(topo_script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run topo.sh {args:?}: {e}"));
    assert!(
        out.status.success(),
        "topo.sh {args:?} failed: {}",
        out.text()
    );
    out
}

impl Topology {
    fn build(label: &str, shape: Shape, mode: &str, rules: Option<&Path>) -> Option<Topology> {
        if skip(label) {
            return None;
        }
        // Unique across processes (pid) and tests (sequence), in base 36 to
        // keep device names ("PREFIX-tc") within 15 bytes.
        let prefix = format!(
            "t{}x{}",
            base36(std::process::id() as usize),
            base36(SEQ.fetch_add(1, Ordering::Relaxed))
        );
        let dir = std::env::temp_dir().join(format!("tungate-e2e-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let topo = Topology {
            prefix: prefix.clone(),
            shape,
            label: label.to_string(),
            dir,
        };
        let s = topo.shape_arg();
        let mut args = vec!["up", prefix.as_str(), s, mode];
        let r;
        if let Some(p) = rules {
            r = p.to_string_lossy().to_string();
            args.push(&r);
        }
        run_script(&args);
        Some(topo)
    }

    fn shape_arg(&self) -> &'static str {
        match self.shape {
            Shape::ClientGwServer => "cgs",
            Shape::ClientGwBackends => "backends",
        }
    }

    /// client (10.1.0.2) - tungate (10.1.0.1 | 10.2.0.1) - server (10.2.0.2).
    /// `None` (after printing why) when the machine cannot run it.
    pub fn client_gw_server(label: &str) -> Option<Topology> {
        Topology::build(label, Shape::ClientGwServer, "tungate", None)
    }

    /// client (10.1.0.2) - tungate - backend N at 10.2.N.2 (N = 1..=4).
    pub fn client_gw_backends(label: &str, n: usize) -> Option<Topology> {
        assert_eq!(n, 4, "topo.sh builds exactly four backends");
        Topology::build(label, Shape::ClientGwBackends, "tungate", None)
    }

    /// The same shape with a kernel router namespace and `rules` loaded by
    /// the real iptables-restore (the oracle).
    pub fn kernel_router(label: &str, shape: Shape, rules: Option<&str>) -> Option<Topology> {
        let tmp =
            std::env::temp_dir().join(format!("tungate-e2e-kr-{}-{label}.v4", std::process::id()));
        if let Some(r) = rules {
            std::fs::write(&tmp, r).unwrap();
        }
        Topology::build(label, shape, "kernel", rules.map(|_| tmp.as_path()))
    }

    pub fn ns(&self, suffix: &str) -> Ns {
        Ns {
            name: format!("{}-{suffix}", self.prefix),
        }
    }

    pub fn client(&self) -> Ns {
        self.ns("c")
    }

    pub fn server(&self) -> Ns {
        assert_eq!(self.shape, Shape::ClientGwServer);
        self.ns("s")
    }

    /// Backend `i` in 1..=4.
    pub fn backend(&self, i: usize) -> Ns {
        self.ns(&format!("b{i}"))
    }

    /// The kernel router namespace (kernel mode only).
    pub fn router(&self) -> Ns {
        self.ns("r")
    }

    /// The gateway's TUN device names, in config order.
    pub fn devices(&self) -> Vec<String> {
        let sufs: &[&str] = match self.shape {
            Shape::ClientGwServer => &["tc", "ts"],
            Shape::ClientGwBackends => &["tc", "t1", "t2", "t3", "t4"],
        };
        sufs.iter()
            .map(|s| format!("{}-{s}", self.prefix))
            .collect()
    }

    /// The tungate config for this topology (from `topo.sh config`).
    pub fn config(&self, ruleset: Option<&Path>, workers: usize) -> String {
        let w = workers.to_string();
        let r = ruleset
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        let out = run_script(&["config", &self.prefix, self.shape_arg(), &r, &w]);
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new(topo_script())
            .args(["down", &self.prefix])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `tungate run`; stopped with SIGTERM on drop.
pub struct Gateway {
    child: Option<Child>,
    pub log: PathBuf,
    pub config: PathBuf,
    /// The control socket (`tungate --ctl`).
    pub ctl: PathBuf,
}

impl Gateway {
    /// Starts tungate over `topo` with `ruleset` (iptables-restore text, or
    /// none) and 2 workers; returns once every device is up in its namespace.
    pub fn start(topo: &Topology, ruleset: Option<&str>) -> Gateway {
        Gateway::start_with(topo, ruleset, 2, "")
    }

    /// What most tests start with: tungate as [`Gateway::start`] runs it, with
    /// no ruleset, over a new [`Topology::client_gw_server`] named `label`;
    /// `None` when the machine cannot run it.
    pub fn over_client_gw_server(label: &str) -> Option<(Topology, Gateway)> {
        let topo = Topology::client_gw_server(label)?;
        let gw = Gateway::start(&topo, None);
        Some((topo, gw))
    }

    /// Like `start`; `extra` is appended to the top of the generated config.
    pub fn start_with(
        topo: &Topology,
        ruleset: Option<&str>,
        workers: usize,
        extra: &str,
    ) -> Gateway {
        let rules = ruleset.map(|text| {
            let p = topo.dir.join("rules.v4");
            std::fs::write(&p, text).unwrap();
            p
        });
        let cfg_text = format!("{extra}\n{}", topo.config(rules.as_deref(), workers));
        Gateway::start_config(topo, &cfg_text)
    }

    /// Starts tungate with this exact config text (see [`Topology::config`]).
    /// Each gateway gets its own control socket (so tests run in parallel):
    /// one is put first in the config unless the text names one.
    pub fn start_config(topo: &Topology, cfg_text: &str) -> Gateway {
        let ctl = topo.dir.join("ctl.sock");
        let cfg_text = if cfg_text.contains("control_socket") {
            cfg_text.to_string()
        } else {
            format!("control_socket = {:?}\n{cfg_text}", ctl.to_string_lossy())
        };
        let config = topo.dir.join("tungate.toml");
        std::fs::write(&config, cfg_text).unwrap();
        let log = topo.dir.join("tungate.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tungate"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start tungate");
        let mut gw = Gateway {
            child: Some(child),
            log,
            config,
            ctl,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = gw.child.as_mut().unwrap().try_wait() {
                panic!("tungate exited during start ({st}):\n{}", gw.log_text());
            }
            if gw.log_text().contains("tungate running") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tungate did not start in 15 s:\n{}",
                gw.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    /// Runs a front end (`iptables`, `iptables-save`, `iptables-restore`,
    /// `conntrack`, `stats`) against this gateway: (exit status, stdout,
    /// stderr).
    pub fn tool(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        use std::io::Write;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tungate"));
        cmd.arg(tool).arg("--ctl").arg(&self.ctl).args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run tungate front end");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Sends SIGUSR1 and returns the counters block the gateway logs.
    pub fn stats(&self) -> String {
        let before = self.log_text().len();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGUSR1,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let t = self.log_text();
            if let Some(i) = t[before.min(t.len())..].find("counters") {
                std::thread::sleep(Duration::from_millis(100));
                let t = self.log_text();
                return t[before + i..].to_string();
            }
            assert!(Instant::now() < deadline, "no counters in log:\n{t}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits (at most 10 s) for the exit status.
    pub fn stop(self) -> ExitStatus {
        self.stop_with(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends `sig`, then waits (at most 10 s) for the exit status.
    pub fn stop_with(mut self, sig: nix::sys::signal::Signal) -> ExitStatus {
        self.signal_and_wait(sig)
            .unwrap_or_else(|| panic!("tungate did not exit within 10 s of {sig}"))
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal_and_wait(nix::sys::signal::Signal::SIGTERM)
    }

    fn signal_and_wait(&mut self, sig: nix::sys::signal::Signal) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// Value of the first number after `"key":` following `after` in iperf3 -J
/// output (enough JSON for the few fields the tests read).
pub fn json_number(json: &str, after: &str, key: &str) -> Option<f64> {
    let start = json.find(after)?;
    let rest = &json[start..];
    let k = format!("\"{key}\":");
    let i = rest.find(&k)? + k.len();
    let num: String = rest[i..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-' || *c == 'e' || *c == '+')
        .collect();
    num.parse().ok()
}

/// Runs an iperf3 server in `server` and a client in `client` against
/// `target`; returns the client's JSON output. `args` go to the client.
pub fn iperf3(server: &Ns, client: &Ns, target: &str, args: &[&str]) -> String {
    let _srv = server.spawn(&["iperf3", "-s", "-1"]);
    let mut last = String::new();
    for _ in 0..25 {
        let mut a = vec!["iperf3", "-c", target, "-J"];
        a.extend_from_slice(args);
        let out = client.exec_timeout(&a, Duration::from_secs(30));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && !text.contains("\"error\"") {
            return text;
        }
        // The server may not listen yet (iperf3 -J may exit 0 with an error).
        last = out.text();
        if !last.contains("Connection refused") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("iperf3 {args:?} to {target} failed:\n{last}");
}

/// iperf3 -J output `json` (run with `--get-server-output`) of a transfer
/// that arrived, from the gateway's server-side address 10.2.0.1: a
/// MASQUERADE applied (`what` says which).
pub fn assert_masqueraded_transfer(json: &str, what: &str) {
    assert!(iperf3_end(json, "sum_received", "bytes") > 0.0, "{json}");
    assert_eq!(
        server_saw_peer(json).as_deref(),
        Some("10.2.0.1"),
        "{what}\n{json}"
    );
}

/// `end.<section>.<key>` of iperf3 -J output; panics with the output if absent.
pub fn iperf3_end(json: &str, section: &str, key: &str) -> f64 {
    let end = json.find("\"end\"").map(|i| &json[i..]).unwrap_or("");
    json_number(end, &format!("\"{section}\""), key)
        .unwrap_or_else(|| panic!("no end.{section}.{key} in iperf3 output:\n{json}"))
}

/// The client address the iperf3 server saw (needs `--get-server-output`;
/// the server runs without -J, so this reads "Accepted connection from X,"):
/// the gateway's address when MASQUERADE applied, the client's otherwise.
pub fn server_saw_peer(json: &str) -> Option<String> {
    let key = "Accepted connection from ";
    let rest = &json[json.find(key)? + key.len()..];
    Some(rest[..rest.find(',')?].to_string())
}

/// Counters of interface `dev` from a [`Gateway::stats`] dump:
/// (rx_packets, rx_bytes, tx_packets, tx_bytes).
pub fn iface_counters(stats: &str, dev: &str) -> (u64, u64, u64, u64) {
    let line = stats
        .lines()
        .find(|l| l.contains(&format!("interface {dev} ")))
        .unwrap_or_else(|| panic!("no counters for {dev}:\n{stats}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    let get = |k: &str| -> u64 {
        let i = f
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("{k} missing: {line}"));
        f[i + 1].parse().unwrap()
    };
    (
        get("rx_packets"),
        get("rx_bytes"),
        get("tx_packets"),
        get("tx_bytes"),
    )
}

/// Peer addresses of the connections an `iperf3 -s` output accepted
/// ("Accepted connection from X, port P"), one entry per test run.
pub fn accepted_from(server_output: &str) -> Vec<String> {
    server_output
        .lines()
        .filter_map(|l| {
            l.split_once("Accepted connection from ")?
                .1
                .split(',')
                .next()
        })
        .map(str::to_string)
        .collect()
}
