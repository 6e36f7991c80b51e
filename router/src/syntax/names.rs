//! Name tables: protocols, services, ICMP types, log levels, the option list
//! used for "did you mean" hints.
//!
//! The system's databases (/etc/protocols, /etc/services, /etc/hosts,
//! /etc/networks) are read by the edge, not here: `cli` reads them at start
//! and hands their text to [`install`]. Without that, built-in tables serve
//! (protocols: netbase's first entries; no services, hosts or networks).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::ruleset::Family;

/// The text of the system's name databases (`None`: not readable).
#[derive(Debug, Clone, Default)]
pub struct SystemFiles {
    pub protocols: Option<String>,
    pub services: Option<String>,
    pub hosts: Option<String>,
    pub networks: Option<String>,
}

static FILES: OnceLock<SystemFiles> = OnceLock::new();

/// Installs the system's databases for every later lookup. Call once, at
/// start, before anything parses or prints a rule: each table is built on
/// its first use. Returns false if they were installed already.
pub fn install(files: SystemFiles) -> bool {
    FILES.set(files).is_ok()
}

fn system_file(which: fn(&SystemFiles) -> &Option<String>) -> Option<&'static str> {
    FILES.get().and_then(|f| which(f).as_deref())
}

/// Protocols iptables knows without a lookup (`xtables_chain_protos`);
/// the first name of a number is the one printed (1.8.11 prints
/// `ipv6-icmp` for 58, as the shell tests' listings show; `icmpv6` still
/// reads).
const CHAIN_PROTOS: [(&str, u8); 11] = [
    ("tcp", 6),
    ("sctp", 132),
    ("udp", 17),
    ("udplite", 136),
    ("icmp", 1),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("esp", 50),
    ("ah", 51),
    ("mh", 135),
    ("all", 0),
];

/// Fallback when /etc/protocols is missing (netbase's first entries).
const FALLBACK_PROTOS: [(&str, u8); 12] = [
    ("ip", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("sctp", 132),
    ("udplite", 136),
    ("ipv6-mh", 135),
];

struct Protos {
    by_name: HashMap<String, u8>,
    by_num: HashMap<u8, String>,
}

fn protos() -> &'static Protos {
    static P: OnceLock<Protos> = OnceLock::new();
    P.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut by_num = HashMap::new();
        match system_file(|f| &f.protocols) {
            Some(text) => {
                for line in text.lines() {
                    let line = line.split('#').next().unwrap_or("");
                    let mut it = line.split_whitespace();
                    let (Some(name), Some(num)) = (it.next(), it.next()) else {
                        continue;
                    };
                    let Ok(num) = num.parse::<u8>() else { continue };
                    by_num.entry(num).or_insert_with(|| name.to_string());
                    by_name.entry(name.to_string()).or_insert(num);
                    for alias in it {
                        by_name.entry(alias.to_string()).or_insert(num);
                    }
                }
            }
            None => {
                for (n, v) in FALLBACK_PROTOS {
                    by_num.entry(v).or_insert_with(|| n.to_string());
                    by_name.insert(n.to_string(), v);
                }
            }
        }
        Protos { by_name, by_num }
    })
}

/// Parses `-p` values as `xtables_parse_protocol` does.
pub fn parse_proto(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u16>() {
        return u8::try_from(n).ok();
    }
    let l = s.to_ascii_lowercase();
    if l == "all" {
        return Some(0);
    }
    if let Some(v) = protos().by_name.get(&l) {
        return Some(*v);
    }
    CHAIN_PROTOS.iter().find(|(n, _)| *n == l).map(|(_, v)| *v)
}

/// Name for saving (`proto_to_name(p, 0)`): /etc/protocols first.
pub fn proto_save_name(p: u8) -> Option<&'static str> {
    if let Some(n) = protos().by_num.get(&p) {
        return Some(n.as_str());
    }
    CHAIN_PROTOS.iter().find(|(_, v)| *v == p).map(|(n, _)| *n)
}

/// Name for `-L` with `-n` (no lookup: iptables' built-in list only).
pub fn proto_numeric_name(p: u8) -> Option<&'static str> {
    CHAIN_PROTOS.iter().find(|(_, v)| *v == p).map(|(n, _)| *n)
}

/// Name for `-L` without `-n`.
pub fn proto_list_name(p: u8, numeric: bool) -> Option<&'static str> {
    if p == 0 {
        return Some("all");
    }
    if numeric {
        proto_numeric_name(p)
    } else {
        proto_save_name(p)
    }
}

/// Protocols /etc/services lists ports for, in `Services::by_name` order.
const SERVICE_PROTOS: [&str; 4] = ["tcp", "udp", "sctp", "dccp"];

struct Services {
    /// Name or alias -> port per protocol ([`SERVICE_PROTOS`] order): a
    /// lookup by `&str` allocates nothing.
    by_name: HashMap<String, [Option<u16>; 4]>,
    by_port: HashMap<(u16, &'static str), String>,
}

fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut by_port = HashMap::new();
        if let Some(text) = system_file(|f| &f.services) {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut it = line.split_whitespace();
                let (Some(name), Some(pp)) = (it.next(), it.next()) else {
                    continue;
                };
                let Some((port, proto)) = pp.split_once('/') else {
                    continue;
                };
                let Ok(port) = port.parse::<u16>() else {
                    continue;
                };
                let proto: &'static str = match proto {
                    "tcp" => "tcp",
                    "udp" => "udp",
                    "sctp" => "sctp",
                    "dccp" => "dccp",
                    _ => continue,
                };
                by_port
                    .entry((port, proto))
                    .or_insert_with(|| name.to_string());
                let k = SERVICE_PROTOS.iter().position(|p| *p == proto).unwrap_or(0);
                for n in std::iter::once(name).chain(it) {
                    by_name.entry(n.to_string()).or_insert([None; 4])[k].get_or_insert(port);
                }
            }
        }
        Services { by_name, by_port }
    })
}

/// Service name to port (`proto` "tcp"/"udp"/...; None = any protocol).
pub fn service_port(name: &str, proto: Option<&str>) -> Option<u16> {
    let ports = services().by_name.get(name)?;
    match proto {
        Some(p) => ports[SERVICE_PROTOS.iter().position(|x| *x == p)?],
        None => ports.iter().find_map(|p| *p),
    }
}

fn proto_static(p: &str) -> Option<&'static str> {
    Some(match p {
        "tcp" => "tcp",
        "udp" => "udp",
        "sctp" => "sctp",
        "dccp" => "dccp",
        _ => return None,
    })
}

/// Port to service name for `-L` without `-n`.
pub fn port_name(port: u16, proto: &str) -> Option<&'static str> {
    services()
        .by_port
        .get(&(port, proto_static(proto)?))
        .map(|s| s.as_str())
}

/// ICMP type names: (name, type, code_lo, code_hi).
pub const ICMP_NAMES: [(&str, u8, u8, u8); 39] = [
    ("any", 0xFF, 0, 0xFF),
    ("echo-reply", 0, 0, 0xFF),
    ("destination-unreachable", 3, 0, 0xFF),
    ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1),
    ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3),
    ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5),
    ("network-unknown", 3, 6, 6),
    ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9),
    ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11),
    ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13),
    ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15),
    ("source-quench", 4, 0, 0xFF),
    ("redirect", 5, 0, 0xFF),
    ("network-redirect", 5, 0, 0),
    ("host-redirect", 5, 1, 1),
    ("TOS-network-redirect", 5, 2, 2),
    ("TOS-host-redirect", 5, 3, 3),
    ("echo-request", 8, 0, 0xFF),
    ("router-advertisement", 9, 0, 0xFF),
    ("router-solicitation", 10, 0, 0xFF),
    ("time-exceeded", 11, 0, 0xFF),
    ("ttl-zero-during-transit", 11, 0, 0),
    ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 0xFF),
    ("ip-header-bad", 12, 0, 0),
    ("required-option-missing", 12, 1, 1),
    ("timestamp-request", 13, 0, 0xFF),
    ("timestamp-reply", 14, 0, 0xFF),
    ("address-mask-request", 17, 0, 0xFF),
    ("address-mask-reply", 18, 0, 0xFF),
    ("ping", 8, 0, 0xFF),
    ("pong", 0, 0, 0xFF),
];

/// ICMPv6 type names (`xtables_icmpv6_codes`): (name, type, code_lo,
/// code_hi). Listings print the first name of a type and code range.
pub const ICMP6_NAMES: [(&str, u8, u8, u8); 31] = [
    ("destination-unreachable", 1, 0, 0xFF),
    ("no-route", 1, 0, 0),
    ("communication-prohibited", 1, 1, 1),
    ("beyond-scope", 1, 2, 2),
    ("address-unreachable", 1, 3, 3),
    ("port-unreachable", 1, 4, 4),
    ("failed-policy", 1, 5, 5),
    ("reject-route", 1, 6, 6),
    ("packet-too-big", 2, 0, 0xFF),
    ("time-exceeded", 3, 0, 0xFF),
    ("ttl-zero-during-transit", 3, 0, 0),
    ("ttl-zero-during-reassembly", 3, 1, 1),
    ("parameter-problem", 4, 0, 0xFF),
    ("bad-header", 4, 0, 0),
    ("unknown-header-type", 4, 1, 1),
    ("unknown-option", 4, 2, 2),
    ("echo-request", 128, 0, 0xFF),
    ("ping", 128, 0, 0xFF),
    ("echo-reply", 129, 0, 0xFF),
    ("pong", 129, 0, 0xFF),
    ("mld-listener-query", 130, 0, 0xFF),
    ("mld-listener-report", 131, 0, 0xFF),
    ("mld-listener-done", 132, 0, 0xFF),
    ("mld-listener-reduction", 132, 0, 0xFF),
    ("router-solicitation", 133, 0, 0xFF),
    ("router-advertisement", 134, 0, 0xFF),
    ("neighbour-solicitation", 135, 0, 0xFF),
    ("neighbor-solicitation", 135, 0, 0xFF),
    ("neighbour-advertisement", 136, 0, 0xFF),
    ("neighbor-advertisement", 136, 0, 0xFF),
    ("redirect", 137, 0, 0xFF),
];

/// The IPv6 extension headers `-m ipv6header` knows: (protocol number,
/// the kernel's `MASK_*` bit, the name printed), in printing order.
pub const IPV6_HEADERS: [(u8, u8, &str); 8] = [
    (0, 0x80, "hop-by-hop"),
    (60, 0x40, "ipv6-opts"),
    (43, 0x20, "ipv6-route"),
    (44, 0x10, "ipv6-frag"),
    (51, 0x08, "ah"),
    (50, 0x04, "esp"),
    (59, 0x02, "ipv6-nonxt"),
    (255, 0x01, "protocol"),
];

pub const LOG_LEVELS: [(&str, u8); 10] = [
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("error", 3),
    ("warning", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
    ("panic", 0),
    ("err", 3),
];

/// Every option tungate knows, for "did you mean" hints.
pub const ALL_OPTIONS: &[&str] = &[
    "--append",
    "--insert",
    "--delete",
    "--replace",
    "--new-chain",
    "--delete-chain",
    "--flush",
    "--zero",
    "--policy",
    "--rename-chain",
    "--check",
    "--list",
    "--list-rules",
    "--table",
    "--numeric",
    "--verbose",
    "--exact",
    "--line-numbers",
    "--set-counters",
    "--protocol",
    "--source",
    "--destination",
    "--in-interface",
    "--out-interface",
    "--fragment",
    "--jump",
    "--goto",
    "--match",
    "--sport",
    "--dport",
    "--source-port",
    "--destination-port",
    "--tcp-flags",
    "--syn",
    "--tcp-option",
    "--icmp-type",
    "--sports",
    "--dports",
    "--ports",
    "--ctstate",
    "--ctproto",
    "--ctorigsrc",
    "--ctorigdst",
    "--ctreplsrc",
    "--ctrepldst",
    "--ctorigsrcport",
    "--ctorigdstport",
    "--ctreplsrcport",
    "--ctrepldstport",
    "--ctstatus",
    "--ctexpire",
    "--ctdir",
    "--state",
    "--comment",
    "--mark",
    "--mode",
    "--probability",
    "--every",
    "--packet",
    "--src-type",
    "--dst-type",
    "--limit-iface-in",
    "--limit-iface-out",
    "--src-range",
    "--dst-range",
    "--limit",
    "--limit-burst",
    "--length",
    "--ttl-eq",
    "--ttl-lt",
    "--ttl-gt",
    "--hl-eq",
    "--hl-lt",
    "--hl-gt",
    "--hl-set",
    "--hl-inc",
    "--hl-dec",
    "--icmpv6-type",
    "--fragid",
    "--fraglen",
    "--fragres",
    "--fragfirst",
    "--fragmore",
    "--fraglast",
    "--header",
    "--soft",
    "--hbh-len",
    "--hbh-opts",
    "--dst-len",
    "--dst-opts",
    "--rt-type",
    "--rt-segsleft",
    "--rt-len",
    "--rt-0-res",
    "--rt-0-addrs",
    "--rt-0-not-strict",
    "--mss",
    "--set",
    "--rcheck",
    "--update",
    "--remove",
    "--seconds",
    "--reap",
    "--hitcount",
    "--rttl",
    "--name",
    "--rsource",
    "--rdest",
    "--mask",
    "--reject-with",
    "--log-prefix",
    "--log-level",
    "--log-tcp-sequence",
    "--log-tcp-options",
    "--log-ip-options",
    "--log-uid",
    "--set-mark",
    "--set-xmark",
    "--or-mark",
    "--and-mark",
    "--xor-mark",
    "--save-mark",
    "--restore-mark",
    "--nfmask",
    "--ctmask",
    "--to-destination",
    "--to-source",
    "--to-ports",
    "--random",
    "--random-fully",
    "--persistent",
    "--notrack",
    "--zone",
    "--ctevents",
    "--expevents",
    "--set-mss",
    "--clamp-mss-to-pmtu",
    "--mac-source",
    "--helper",
    "--timeout",
    "--nflog-group",
    "--nflog-prefix",
    "--nflog-range",
    "--nflog-size",
    "--nflog-threshold",
    "--checksum-fill",
];

fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.as_bytes();
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            // transposition
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev[j - 1]);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest name within a small edit distance.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if d <= 2 && best.map(|(bd, _)| d < bd).unwrap_or(true) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Reverse lookup in /etc/hosts for `-L` without `-n` (first name of the
/// first line naming the address, as the resolver answers from files).
/// DNS is not consulted: without an answer the address prints as is.
/// `addr` is of `family` (IPv4 in the low 32 bits).
pub fn host_name(family: Family, addr: u128) -> Option<&'static str> {
    static H: OnceLock<HashMap<(Family, u128), String>> = OnceLock::new();
    H.get_or_init(|| {
        let mut m = HashMap::new();
        if let Some(text) = system_file(|f| &f.hosts) {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut it = line.split_whitespace();
                let (Some(a), Some(n)) = (it.next(), it.next()) else {
                    continue;
                };
                let key = match a.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(ip)) => (Family::V4, u128::from(u32::from(ip))),
                    Ok(std::net::IpAddr::V6(ip)) => (Family::V6, u128::from(ip)),
                    Err(_) => continue,
                };
                m.entry(key).or_insert_with(|| n.to_string());
            }
        }
        m
    })
    .get(&(family, addr))
    .map(|s| s.as_str())
}

/// Network name from /etc/networks (`getnetbyaddr` from files), used by
/// `-L` without `-n` when no host name matches.
pub fn net_name(addr: u32) -> Option<&'static str> {
    static N: OnceLock<HashMap<u32, String>> = OnceLock::new();
    N.get_or_init(|| {
        let mut m = HashMap::new();
        if let Some(text) = system_file(|f| &f.networks) {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut it = line.split_whitespace();
                let (Some(n), Some(a)) = (it.next(), it.next()) else {
                    continue;
                };
                // inet_network(): 1 to 4 parts, the last ones low-order.
                let parts: Vec<&str> = a.split('.').collect();
                if parts.is_empty() || parts.len() > 4 {
                    continue;
                }
                let mut v: u32 = 0;
                let mut ok = true;
                for p in &parts {
                    match p.parse::<u8>() {
                        Ok(b) => v = (v << 8) | u32::from(b),
                        Err(_) => ok = false,
                    }
                }
                if ok {
                    m.entry(v).or_insert_with(|| n.to_string());
                }
            }
        }
        m
    })
    .get(&addr)
    .map(|s| s.as_str())
}
