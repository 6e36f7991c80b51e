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
    /// Sections this run could not observe, with why (not compared).
    pub unavailable: BTreeMap<String, String>,
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
        let mut full = vec!["python3", "-u", a.to_str().unwrap()];
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
                let ctl = t.dir.join("control.sock");
                let extra = format!("control_socket = \"{}\"\n", ctl.display());
                let rules = case.rules.replace("PFX-", &format!("{}-", t.prefix));
                let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Gateway::start_with(t, Some(&rules), 2, &extra)
                }));
                match started {
                    Ok(g) => gw = Some((g, ctl)),
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
    let log_mark = if case.compare_log { dmesg_len() } else { 0 };
    let gw_log_mark = gw.as_ref().map(|(g, _)| g.log_text().len()).unwrap_or(0);

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
                let mut full = vec!["python3", a.to_str().unwrap(), "step", verb];
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
            let (_, ctl) = gw.as_ref().unwrap();
            let ctl_s = ctl.to_string_lossy().to_string();
            for (sec, args) in [
                ("counters", vec!["iptables-save", "--ctl", &ctl_s, "-c"]),
                ("conntrack", vec!["conntrack", "--ctl", &ctl_s, "-L"]),
            ] {
                if !ctl.exists() {
                    obs.unavailable.insert(
                        sec.into(),
                        "tungate run opened no control socket (not wired yet)".into(),
                    );
                    continue;
                }
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_tungate"))
                    .args(&args)
                    .output()
                    .expect("run tungate client");
                if !out.status.success() {
                    obs.unavailable.insert(
                        sec.into(),
                        format!("`tungate {}` failed: {}", args[0], out.text()),
                    );
                    continue;
                }
                let text = String::from_utf8_lossy(&out.stdout);
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
                let (g, _) = gw.as_ref().unwrap();
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
    drop(gw);
    drop(topo);
    Ok(obs)
}

/// `iptables-save -c` without comments, its counters kept.
pub fn counters(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim_end().to_string())
        .collect()
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

fn dmesg_len() -> usize {
    std::process::Command::new("dmesg")
        .output()
        .map(|o| o.stdout.len())
        .unwrap_or(0)
}

/// Kernel log lines written since `mark` by netfilter LOG in this topology.
fn dmesg_since(mark: usize, prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("dmesg").output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    t[mark.min(t.len())..]
        .lines()
        .filter(|l| l.contains(&format!("{prefix}-")))
        .map(|l| l.to_string())
        .collect()
}

/// The LOG fields of a line (kernel or tungate), interface names without the
/// topology prefix; the kernel's timestamp and MAC= are dropped.
pub fn log_fields(line: &str, prefix: &str) -> String {
    let mut out = Vec::new();
    let mut in_fields = false;
    for t in line.split_whitespace() {
        if t.starts_with("IN=") {
            in_fields = true;
        }
        if !in_fields {
            // the log prefix (text before IN=) is kept as one token
            continue;
        }
        if t.starts_with("MAC=") || t.starts_with("ID=") || t.starts_with("WINDOW=") {
            continue;
        }
        out.push(t.replace(&format!("{prefix}-"), "P-"));
    }
    let pfx = line
        .split("IN=")
        .next()
        .unwrap_or("")
        .rsplit(']')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    format!("prefix={pfx:?} {}", out.join(" "))
}
