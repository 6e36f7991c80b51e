//! Runs one case through one topology (kernel router or tungate) and records
//! what was observed, already normalised (see README: "What is compared").

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::case::Case;
use super::harness::{ChildGuard, Gateway, Ns, OutputText, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Kernel,
    Tungate,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Kernel => "kernel",
            Mode::Tungate => "tungate",
        }
    }
}

/// Observations by section ("arrivals c", "steps", "listen s", "counters",
/// "conntrack", "log"); each a list of normalised lines.
#[derive(Debug, Default, Clone)]
pub struct Obs {
    pub sections: BTreeMap<String, Vec<String>>,
    /// TCP segments the end hosts retransmitted (`RetransSegs` of each
    /// host namespace's /proc/net/snmp, summed): timer effects that the
    /// counters may show and the arrivals comparison cannot explain.
    pub retransmits: u64,
    /// Sections this run could not observe, with why (not compared).
    pub unavailable: BTreeMap<String, String>,
}

/// The real python3 (not a pyenv shim, which costs ~0.2 s per start).
fn python() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "python3".into())
    })
}

fn agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/diff/agent.py")
}

/// A background agent (capture or listener) whose stdout lines are collected.
struct Bg {
    _guard: ChildGuard,
    lines: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<String>>,
}

impl Bg {
    fn start(ns: &Ns, args: &[&str]) -> Bg {
        let a = agent();
        let mut full = vec![python(), "-u", a.to_str().unwrap()];
        full.extend_from_slice(args);
        let mut guard = ns.spawn(&full);
        let stdout = guard.child().stdout.take().unwrap();
        let mut stderr = guard.child().stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let l2 = lines.clone();
        thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(l);
            }
        });
        let e2 = err.clone();
        thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            e2.lock().unwrap().push_str(&s);
        });
        let bg = Bg {
            _guard: guard,
            lines,
            err,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while bg.lines.lock().unwrap().first().map(String::as_str) != Some("READY") {
            assert!(
                Instant::now() < deadline,
                "agent {args:?} in {} not ready: {}",
                ns.name,
                bg.err.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
        bg
    }

    fn take(self) -> Vec<String> {
        let v = self.lines.lock().unwrap().clone();
        v.into_iter().skip(1).collect()
    }
}

fn dev_suffix(host: &str) -> String {
    match host {
        "c" => "tc".into(),
        "s" => "ts".into(),
        b => format!("t{}", &b[1..]),
    }
}

/// Runs `case` in a fresh topology of `mode`.
pub fn run(case: &Case, mode: Mode) -> Result<Obs, String> {
    let label = format!("diff-{}-{}", mode.name(), case.name);
    let mut gw = None;
    let topo = match mode {
        Mode::Kernel => {
            let t = Topology::kernel_router(&label, case.shape, None);
            if let Some(t) = &t {
                // tungate always tracks connections; the kernel registers
                // conntrack in a namespace only once a rule needs it. An nft
                // table outside iptables' tables (iptables-save does not show
                // it) turns it on, so both sides track every case.
                let out = t.router().exec(&[
                    "nft",
                    "add table ip diffct; add chain ip diffct pre { type filter hook prerouting priority -150; ct state new; }; add chain ip diffct out { type filter hook output priority -150; ct state new; }",
                ]);
                if !out.status.success() {
                    return Err(format!("nft (conntrack on) failed: {}", out.text()));
                }
                let rules = t.dir.join("rules.v4");
                std::fs::write(
                    &rules,
                    case.rules.replace("PFX-", &format!("{}-", t.prefix)),
                )
                .unwrap();
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &t.router().name, "iptables-restore"])
                    .arg(&rules)
                    .output()
                    .unwrap();
                if !out.status.success() {
                    return Err(format!("kernel iptables-restore failed: {}", out.text()));
                }
            }
            t
        }
        Mode::Tungate => {
            let t = match case.shape {
                super::harness::Shape::ClientGwServer => Topology::client_gw_server(&label),
                super::harness::Shape::ClientGwBackends => Topology::client_gw_backends(&label, 4),
            };
            if let Some(t) = &t {
                let rules = case.rules.replace("PFX-", &format!("{}-", t.prefix));
                let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Gateway::start_with(
                        t,
                        Some(&rules),
                        diff_workers(),
                        &std::env::var("DIFF_EXTRA").unwrap_or_default(),
                    )
                }));
                match started {
                    Ok(g) => gw = Some(g),
                    Err(e) => {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        return Err(format!("tungate did not start: {msg}"));
                    }
                }
            }
            t
        }
    };
    let Some(topo) = topo else {
        return Err("skipped".into());
    };
    if case.compare_log && mode == Mode::Kernel {
        // LOG in a namespace other than the initial one is silent without it.
        let _ = std::process::Command::new("sysctl")
            .args(["-qw", "net.netfilter.nf_log_all_netns=1"])
            .status();
    }
    let log_mark = if case.compare_log {
        kernel_uptime()
    } else {
        0.0
    };
    let gw_log_mark = gw.as_ref().map(|g| g.log_text().len()).unwrap_or(0);

    let mut obs = Obs::default();
    let hosts = case.hosts();
    let mut captures = Vec::new();
    for h in hosts {
        let dev = format!("{}-{}", topo.prefix, dev_suffix(h));
        captures.push((h, Bg::start(&topo.ns(h), &["capture", &dev])));
    }
    let mut listeners = Vec::new();
    let mut steps = Vec::new();
    for s in &case.steps {
        let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
        match s.verb.as_str() {
            "listen" => {
                let mut a = vec!["listen"];
                a.extend_from_slice(&args);
                listeners.push((s.host.clone(), Bg::start(&topo.ns(&s.host), &a)));
            }
            "sleep" => thread::sleep(Duration::from_secs_f64(s.args[0].parse().unwrap())),
            verb => {
                let a = agent();
                let mut full = vec![python(), a.to_str().unwrap(), "step", verb];
                full.extend_from_slice(&args);
                let out = topo
                    .ns(&s.host)
                    .exec_timeout(&full, Duration::from_secs(30));
                if !out.status.success() {
                    return Err(format!("step at line {} failed: {}", s.line, out.text()));
                }
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                steps.push(format!("line {}: {} {} => {text}", s.line, s.host, s.verb));
            }
        }
    }
    // Let the last replies and ICMP errors arrive.
    thread::sleep(Duration::from_millis(400));
    obs.sections.insert("steps".into(), steps);
    for h in case.hosts() {
        let out = topo.ns(h).exec(&["cat", "/proc/net/snmp"]);
        obs.retransmits += retrans_segs(&String::from_utf8_lossy(&out.stdout));
    }

    // Counters and conntrack, before anything is torn down.
    match mode {
        Mode::Kernel => {
            let r = topo.router();
            let out = r.exec(&["iptables-save", "-c"]);
            obs.sections.insert(
                "counters".into(),
                counters(&String::from_utf8_lossy(&out.stdout)),
            );
            let out = r.exec(&["conntrack", "-L"]);
            obs.sections.insert(
                "conntrack".into(),
                conntrack(&String::from_utf8_lossy(&out.stdout)),
            );
        }
        Mode::Tungate => {
            let g = gw.as_ref().unwrap();
            for (sec, tool, arg) in [
                ("counters", "iptables-save", "-c"),
                ("conntrack", "conntrack", "-L"),
            ] {
                if !g.ctl.exists() {
                    obs.unavailable
                        .insert(sec.into(), "tungate run opened no control socket".into());
                    continue;
                }
                let (st, text, err) = g.tool(tool, &[arg], None);
                if st != 0 {
                    // A front end that fails is a difference, not a gap.
                    let msg = format!("`tungate {tool} {arg}` failed ({st}): {}", err.trim());
                    obs.sections.insert(sec.into(), vec![msg]);
                    continue;
                }
                let lines = if sec == "counters" {
                    counters(&text)
                } else {
                    conntrack(&text)
                };
                obs.sections.insert(sec.into(), lines);
            }
        }
    }

    for (h, bg) in listeners {
        obs.sections
            .entry(format!("listen {h}"))
            .or_default()
            .extend(bg.take());
    }
    for (h, bg) in captures {
        obs.sections.insert(format!("arrivals {h}"), bg.take());
    }
    if case.compare_log {
        let lines = match mode {
            Mode::Kernel => dmesg_since(log_mark, &topo.prefix),
            Mode::Tungate => {
                let g = gw.as_ref().unwrap();
                let t = g.log_text();
                t[gw_log_mark.min(t.len())..]
                    .lines()
                    .filter(|l| l.contains("tungate::log"))
                    .map(|l| l.to_string())
                    .collect()
            }
        };
        obs.sections.insert(
            "log".into(),
            lines.iter().map(|l| log_fields(l, &topo.prefix)).collect(),
        );
    }
    let pfx = format!("{}-", topo.prefix);
    for lines in obs.sections.values_mut() {
        for l in lines.iter_mut() {
            *l = l.replace(&pfx, "PFX-");
        }
    }
    if let Some(dir) = std::env::var_os("DIFF_DUMP") {
        // Raw (unmasked) observations, for looking into a mismatch.
        let mut text = String::new();
        for (k, v) in &obs.sections {
            text.push_str(&format!("--- {k}\n{}\n", v.join("\n")));
        }
        let _ = std::fs::create_dir_all(&dir);
        let f = Path::new(&dir).join(format!("{}.{}.txt", case.name, mode.name()));
        let _ = std::fs::write(f, text);
    }
    drop(gw);
    drop(topo);
    Ok(obs)
}

/// `iptables-save -c` without comments, its counters kept, the tables in
/// name order (the order iptables-save prints tables in follows their
/// creation in the kernel, not anything a rule means).
pub fn counters(text: &str) -> Vec<String> {
    let mut tables: Vec<Vec<String>> = vec![];
    for l in text.lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        if l.starts_with('*') || tables.is_empty() {
            tables.push(vec![]);
        }
        tables.last_mut().unwrap().push(l.trim_end().to_string());
    }
    tables.sort();
    tables.concat()
}

/// `conntrack -L` entries without the timeout, `use=` and `id=` (kernel
/// bookkeeping), sorted (the table has no order).
pub fn conntrack(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| l.contains("src="))
        .map(|l| {
            let toks: Vec<&str> = l.split_whitespace().collect();
            let mut out = Vec::new();
            for (i, t) in toks.iter().enumerate() {
                // "tcp 6 117 SYN_SENT ..." : the third token is the timeout.
                if i == 2 && t.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                if t.starts_with("use=") || t.starts_with("id=") {
                    continue;
                }
                out.push(*t);
            }
            out.join(" ")
        })
        .collect();
    v.sort();
    v
}

/// Seconds since boot, the clock of the kernel log's `[   12.345678]` stamps.
fn kernel_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Kernel log lines written by netfilter LOG in this topology (its device
/// prefix, unique per process and run) since `mark` (seconds since boot,
/// with a second of slack for the two clocks). Not a byte offset into the
/// `dmesg` text: once the ring buffer is full, old lines drop out as new
/// ones come and the text's length stops growing (a long-running machine
/// lost every kernel LOG line that way).
fn dmesg_since(mark: f64, prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("dmesg")
        .arg("-x")
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    t.lines()
        .filter(|l| l.contains(&format!("{prefix}-")))
        .filter(|l| log_stamp(l).is_none_or(|ts| ts >= mark - 1.0))
        .map(|l| l.to_string())
        .collect()
}

/// The `[   12.345678]` stamp of a `dmesg` line.
pub fn log_stamp(line: &str) -> Option<f64> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    line[open + 1..close].trim().parse().ok()
}

/// The LOG fields of a line (kernel `dmesg -x` or tungate's log): level,
/// prefix, and the fields from `IN=` on, interface names without the
/// topology prefix; timestamps, `MAC=`, the IP `ID=` and `WINDOW=` are dropped.
pub fn log_fields(line: &str, prefix: &str) -> String {
    let (head, fields) = match line.find(" IN=") {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let (level, pfx) = if let Some(i) = head.find("tungate::log:") {
        // "2026-...Z  WARN tungate::log: PREFIX"
        let level = head[..i]
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_lowercase();
        (level, head[i + "tungate::log:".len()..].trim().to_string())
    } else {
        // "kern  :warn  : [  12.34] PREFIX"
        let level = head.split(':').nth(1).unwrap_or("").trim().to_string();
        let pfx = head
            .split_once(']')
            .map(|(_, r)| r)
            .unwrap_or("")
            .trim()
            .to_string();
        (level, pfx)
    };
    let mut out = vec![format!("level={level}"), format!("prefix={pfx:?}")];
    let mut ip_id_seen = false;
    for t in fields.split_whitespace() {
        // The first ID= is the IP ID (host-chosen); a later one is the ICMP
        // echo identifier, which the case sets.
        if t.starts_with("ID=") && !ip_id_seen {
            ip_id_seen = true;
            continue;
        }
        if t.starts_with("MAC=") || t.starts_with("WINDOW=") {
            continue;
        }
        out.push(t.replace(&format!("{prefix}-"), "P-"));
    }
    out.join(" ")
}

/// Worker threads of the tungate under test (`DIFF_WORKERS`, default 2).
fn diff_workers() -> usize {
    std::env::var("DIFF_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// `RetransSegs` from the text of /proc/net/snmp (a `Tcp:` header line of
/// names, then a `Tcp:` line of values); 0 if absent.
pub fn retrans_segs(snmp: &str) -> u64 {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RetransSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
