//! One differential case: a file in `tests/diff-cases/` (format in the
//! README there): header lines, an iptables-restore ruleset, `%traffic`, steps.

use std::collections::BTreeSet;
use std::path::Path;

use super::harness::Shape;

/// A field masked at one host (or every host: `*`), with the reason.
#[derive(Debug, Clone)]
pub struct Mask {
    pub field: String,
    pub host: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line in the case file.
    pub line: usize,
    /// `c`, `s`, `b1`..`b4`, or empty for `sleep`.
    pub host: String,
    pub verb: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub shape: Shape,
    pub rules: String,
    pub steps: Vec<Step>,
    pub masks: Vec<Mask>,
    /// Hosts whose arrivals are compared by count share, not packet by packet.
    pub distribution: Vec<String>,
    pub expect_mismatch: Option<String>,
    /// Numbers written in the case (id=, seq=, ack=, icmpid=...): header
    /// fields equal to one of them (or one more) are the case's own and kept.
    pub own_numbers: BTreeSet<u64>,
    /// (ICMP type, IP ID) of every crafted ICMP packet: an ICMP packet's IP
    /// ID is the case's own only if the case sent one of that type with that
    /// ID. An echo reply or error that an end host or the gateway generates
    /// carries an ID of the host's choosing, which can equal a crafted one
    /// (CI saw a port unreachable from the server with ID 24834, the ID of
    /// the case's echo request 0x6102).
    pub own_icmp_ids: BTreeSet<(u64, u64)>,
    /// Compare kernel LOG lines with tungate's `tungate::log` lines.
    pub compare_log: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{file}:{line}: {msg}: `{token}`")]
    Bad {
        file: String,
        line: usize,
        token: String,
        msg: String,
    },
    #[error("{file}: no `%traffic` line (the ruleset ends there and the steps begin)")]
    NoTraffic { file: String },
}

pub const HOSTS_CGS: &[&str] = &["c", "s"];
pub const HOSTS_BACKENDS: &[&str] = &["c", "b1", "b2", "b3", "b4"];
const VERBS: &[&str] = &["send", "tcp", "udp", "listen"];

impl Case {
    pub fn hosts(&self) -> &'static [&'static str] {
        match self.shape {
            Shape::ClientGwServer => HOSTS_CGS,
            Shape::ClientGwBackends => HOSTS_BACKENDS,
        }
    }

    pub fn parse_file(path: &Path) -> Result<Case, CaseError> {
        let text = std::fs::read_to_string(path).map_err(|e| CaseError::Bad {
            file: path.display().to_string(),
            line: 0,
            token: String::new(),
            msg: e.to_string(),
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        Case::parse(&name, &path.display().to_string(), &text)
    }

    pub fn parse(name: &str, file: &str, text: &str) -> Result<Case, CaseError> {
        let bad = |line: usize, token: &str, msg: &str| CaseError::Bad {
            file: file.to_string(),
            line,
            token: token.to_string(),
            msg: msg.to_string(),
        };
        let mut case = Case {
            name: name.to_string(),
            description: String::new(),
            shape: Shape::ClientGwServer,
            rules: String::new(),
            steps: vec![],
            masks: vec![],
            distribution: vec![],
            expect_mismatch: None,
            own_numbers: BTreeSet::new(),
            own_icmp_ids: BTreeSet::new(),
            compare_log: false,
        };
        #[derive(PartialEq)]
        enum Part {
            Header,
            Rules,
            Traffic,
        }
        let mut part = Part::Header;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.trim() == "%traffic" {
                if part == Part::Traffic {
                    return Err(bad(n, line, "second `%traffic`"));
                }
                part = Part::Traffic;
                continue;
            }
            match part {
                Part::Header => {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    if line.starts_with('*') {
                        part = Part::Rules;
                        case.rules.push_str(raw);
                        case.rules.push('\n');
                        continue;
                    }
                    let Some((k, v)) = line.split_once(':') else {
                        return Err(bad(
                            n,
                            line,
                            "expected `key: value`, a `*table` line or `%traffic`",
                        ));
                    };
                    let v = v.trim();
                    match k.trim() {
                        "description" => case.description = v.to_string(),
                        "topology" => {
                            case.shape = match v {
                                "cgs" => Shape::ClientGwServer,
                                "backends" => Shape::ClientGwBackends,
                                _ => return Err(bad(n, v, "topology is `cgs` or `backends`")),
                            }
                        }
                        "expect-mismatch" => case.expect_mismatch = Some(v.to_string()),
                        "mask" => {
                            let mut it = v.splitn(2, char::is_whitespace);
                            let spec = it.next().unwrap_or("");
                            let reason = it.next().unwrap_or("").trim();
                            let Some((field, host)) = spec.split_once('@') else {
                                return Err(bad(n, spec, "mask is `FIELD@HOST reason`"));
                            };
                            if reason.is_empty() {
                                return Err(bad(n, spec, "a mask needs its reason after it"));
                            }
                            case.masks.push(Mask {
                                field: field.into(),
                                host: host.into(),
                                reason: reason.into(),
                            });
                        }
                        "distribution" => {
                            case.distribution = v.split_whitespace().map(String::from).collect()
                        }
                        "log" => case.compare_log = v == "compare",
                        other => return Err(bad(n, other, "unknown header key")),
                    }
                }
                Part::Rules => {
                    case.rules.push_str(raw);
                    case.rules.push('\n');
                }
                Part::Traffic => {
                    let line = line.split(" #").next().unwrap_or("").trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let toks: Vec<&str> = line.split_whitespace().collect();
                    let step = if toks[0] == "sleep" {
                        if toks.len() != 2 || toks[1].parse::<f64>().is_err() {
                            return Err(bad(n, line, "`sleep SECONDS`"));
                        }
                        Step {
                            line: n,
                            host: String::new(),
                            verb: "sleep".into(),
                            args: vec![toks[1].into()],
                        }
                    } else {
                        if toks.len() < 3 {
                            return Err(bad(n, line, "expected `HOST VERB ARGS...`"));
                        }
                        if !VERBS.contains(&toks[1]) {
                            return Err(bad(n, toks[1], "verb is send, tcp, udp or listen"));
                        }
                        Step {
                            line: n,
                            host: toks[0].into(),
                            verb: toks[1].into(),
                            args: toks[2..].iter().map(|s| s.to_string()).collect(),
                        }
                    };
                    let repeat: u64 = step
                        .args
                        .iter()
                        .find_map(|a| a.strip_prefix("repeat="))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    let number = |v: &str| {
                        if let Some(h) = v.strip_prefix("0x") {
                            u64::from_str_radix(h, 16).ok()
                        } else {
                            v.parse().ok()
                        }
                    };
                    // The agent's default ICMP type is 8 (echo request).
                    let mut icmp_type = 8;
                    let mut ids = 0..0;
                    for a in &step.args {
                        if let Some((k, v)) = a.split_once('=') {
                            if ["id", "seq", "ack", "icmpid", "icmpseq", "type"].contains(&k) {
                                match number(v) {
                                    Some(x) if k == "type" => icmp_type = x,
                                    // repeat=N sends IDs x..x+N
                                    Some(x) if k == "id" => {
                                        ids = x..x + repeat.max(1);
                                        case.own_numbers.extend(ids.clone());
                                    }
                                    Some(x) => {
                                        case.own_numbers.insert(x);
                                    }
                                    None => return Err(bad(n, a, "not a number")),
                                }
                            }
                        }
                    }
                    if step.verb == "send" && step.args.first().is_some_and(|p| p == "icmp") {
                        case.own_icmp_ids.extend(ids.map(|id| (icmp_type, id)));
                    }
                    case.steps.push(step);
                }
            }
        }
        if part != Part::Traffic {
            return Err(CaseError::NoTraffic {
                file: file.to_string(),
            });
        }
        let hosts = case.hosts();
        for s in &case.steps {
            if !s.host.is_empty() && !hosts.contains(&s.host.as_str()) {
                return Err(bad(s.line, &s.host, &format!("host is one of {hosts:?}")));
            }
        }
        for m in &case.masks {
            let special = ["*", "conntrack", "steps", "log"];
            if !special.contains(&m.host.as_str()) && !hosts.contains(&m.host.as_str()) {
                return Err(bad(
                    0,
                    &m.host,
                    &format!("mask host is one of {special:?} or {hosts:?}"),
                ));
            }
        }
        Ok(case)
    }
}
