//! Normalisation of the fields that legitimately differ, and the kernel
//! versus tungate comparison with a readable diff.

use super::case::Case;
use super::run::Obs;

/// Header fields chosen by an end host's kernel (IP ID, TCP ISN and the
/// sequence numbers after it): kept only when the case wrote the value
/// itself (a crafted packet), or it is one more than such a value (the ACK
/// of a crafted SYN). Otherwise two runs differ even through the same router.
const HOST_CHOSEN: &[&str] = &["id", "iid", "seq", "iseq", "ack"];

/// Applies the fixed rules and the case's `mask:` headers to one line of a
/// section; `host` is the section's host (`c`, `s`, ...) or its name.
pub fn normalise(case: &Case, host: &str, line: &str) -> String {
    // Real sockets set DF on everything they send; crafted packets (df=0
    // by default) do not. An IP ID is kept only on packets without DF whose
    // ID the case wrote exactly: a socket's random ID that happens to equal
    // a crafted one (CI saw a DNS reply with ID 0x2502) is still masked.
    // An ICMP packet's ID must also have been crafted on that ICMP type
    // ([`Case::own_icmp_ids`]), since echo replies and errors carry the
    // generating host's ID and no DF.
    // `inner`: the packet quoted in an ICMP error, if any.
    let (outer, inner) = line.split_once(" | ").unwrap_or((line, ""));
    let df = outer.split_whitespace().any(|t| t == "DF");
    let inner_df = inner.split_whitespace().any(|t| t == "iDF");
    // An ICMP packet's type, from its outer header.
    let icmp_type = if outer.split_whitespace().any(|t| t == "icmp") {
        outer
            .split_whitespace()
            .find_map(|t| t.strip_prefix("type="))
            .and_then(|v| v.parse::<u64>().ok())
    } else {
        None
    };
    line.split_whitespace()
        .map(|t| {
            let Some((k, v)) = t.split_once('=') else {
                return t.to_string();
            };
            let masked = case
                .masks
                .iter()
                .any(|m| m.field == k && (m.host == host || (m.host == "*" && is_end_host(host))));
            if masked {
                return format!("{k}=*");
            }
            if is_end_host(host) && HOST_CHOSEN.contains(&k) {
                if let Ok(n) = v.parse::<u64>() {
                    let own = match k {
                        "id" => match icmp_type {
                            Some(t) => !df && case.own_icmp_ids.contains(&(t, n)),
                            None => !df && case.own_numbers.contains(&n),
                        },
                        "iid" => !inner_df && case.own_numbers.contains(&n),
                        _ => {
                            case.own_numbers.contains(&n)
                                || (n > 0 && case.own_numbers.contains(&(n - 1)))
                        }
                    };
                    if !own {
                        return format!("{k}=*");
                    }
                }
            }
            t.to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The flow (one direction) a captured packet belongs to: protocol,
/// addresses, ports or ICMP type. Arrivals are grouped by it with a stable
/// sort, so the order inside a flow is compared but not how different flows
/// interleave, which depends on timing in the end hosts.
pub fn flow_key(line: &str) -> String {
    let outer = line.split(" | ").next().unwrap_or(line);
    let mut k = vec![];
    for t in outer.split_whitespace() {
        let keep = ["tcp", "udp", "icmp"].contains(&t)
            || [
                "src=", "dst=", "sport=", "dport=", "type=", "code=", "proto=",
            ]
            .iter()
            .any(|p| t.starts_with(p));
        if keep {
            k.push(t);
        }
    }
    k.join(" ")
}

/// Segments of real TCP sockets (their sequence numbers masked): pure ACKs
/// and FINs are dropped and a FIN riding on data is not shown, because how
/// many there are depends on delayed-ACK timers and the close race in the end
/// hosts, not on the router. SYN, RST and data segments stay. Crafted
/// segments (sequence number written in the case) are kept as they are.
pub fn socket_segment(line: &str) -> Option<String> {
    if !line.contains(" tcp ") || !line.contains(" seq=*") {
        return Some(line.to_string());
    }
    let flags = line
        .split_whitespace()
        .find_map(|t| t.strip_prefix("flags="))
        .unwrap_or("");
    let data = line.contains(" data=");
    if !data && !flags.contains('S') && !flags.contains('R') {
        return None;
    }
    if data && flags.contains('F') {
        let nf: String = flags.chars().filter(|&c| c != 'F').collect();
        return Some(line.replace(&format!("flags={flags}"), &format!("flags={nf}")));
    }
    Some(line.to_string())
}

fn is_end_host(h: &str) -> bool {
    h == "c" || h == "s" || h.starts_with('b')
}

/// Result of comparing one case.
pub struct Outcome {
    pub diffs: Vec<String>,
    pub notes: Vec<String>,
}

/// Share tolerance for `distribution:` hosts: each host's share of the
/// arrivals may differ by this much (absolute) between kernel and tungate.
/// With 200 flows over 4 equal endpoints the share's standard deviation is
/// 0.03 per run, 0.043 for the difference: 0.15 is 3.5 sigma.
pub const SHARE_TOLERANCE: f64 = 0.15;

pub fn compare(case: &Case, k: &Obs, t: &Obs) -> Outcome {
    let mut out = Outcome {
        diffs: vec![],
        notes: vec![],
    };
    let mut keys: Vec<&String> = k.sections.keys().chain(t.sections.keys()).collect();
    keys.sort();
    keys.dedup();
    let dist = !case.distribution.is_empty();
    for m in &case.masks {
        out.notes
            .push(format!("masked {}@{}: {}", m.field, m.host, m.reason));
    }
    for key in keys {
        if let Some(why) = t.unavailable.get(key.as_str()) {
            out.notes.push(format!("{key}: NOT COMPARED: {why}"));
            continue;
        }
        let host = key.split_whitespace().nth(1).unwrap_or(key.as_str());
        let norm = |o: &Obs| -> Vec<String> {
            let mut v: Vec<String> = o
                .sections
                .get(key.as_str())
                .map(|v| {
                    v.iter()
                        .map(|l| normalise(case, host, l))
                        .filter_map(|l| socket_segment(&l))
                        .collect()
                })
                .unwrap_or_default();
            if dist && key != "counters" {
                v.sort();
            } else if key.starts_with("arrivals ") {
                v.sort_by_key(|l| flow_key(l));
            }
            v
        };
        let (a, b) = (norm(k), norm(t));
        if dist && key.starts_with("arrivals ") && case.distribution.iter().any(|h| h == host) {
            continue; // compared below, as shares
        }
        if dist && (key == "conntrack" || key == "counters" || key.starts_with("listen ")) {
            if let Some(d) = dist_lines(key, &a, &b) {
                out.diffs.push(d);
            }
            continue;
        }
        if key == "counters" && a != b {
            let (mut dk, mut dt) = (socket_only(case, k), socket_only(case, t));
            // A retransmitted segment the hosts never received (a SYN to a
            // dropped destination, retransmitted when the sender's timer
            // fired before the step closed it) is counted as up to one
            // MTU-sized packet.
            dk = (dk.0 + k.retransmits, dk.1 + k.retransmits * 1500);
            dt = (dt.0 + t.retransmits, dt.1 + t.retransmits * 1500);
            if let Some(note) = counters_explained(&a, &b, dk, dt) {
                out.notes.push(note);
                continue;
            }
        }
        if a != b {
            out.diffs.push(format!(
                "--- {key} (kernel -, tungate +)\n{}",
                line_diff(&a, &b)
            ));
        }
    }
    if dist {
        let count = |o: &Obs, h: &str| {
            o.sections
                .get(&format!("arrivals {h}"))
                .map(|v| v.len())
                .unwrap_or(0) as f64
        };
        let tk: f64 = case.distribution.iter().map(|h| count(k, h)).sum();
        let tt: f64 = case.distribution.iter().map(|h| count(t, h)).sum();
        let mut rows = vec![];
        let mut bad = tk == 0.0 || tt == 0.0;
        for h in &case.distribution {
            let sk = count(k, h) / tk.max(1.0);
            let st = count(t, h) / tt.max(1.0);
            bad |= (sk - st).abs() > SHARE_TOLERANCE;
            rows.push(format!(
                "  {h}: kernel {:>4} ({sk:.2})  tungate {:>4} ({st:.2})",
                count(k, h),
                count(t, h)
            ));
        }
        let table = rows.join("\n");
        if bad {
            out.diffs.push(format!(
                "--- distribution (shares differ by more than {SHARE_TOLERANCE})\n{table}"
            ));
        } else {
            out.notes
                .push(format!("distribution within {SHARE_TOLERANCE}:\n{table}"));
        }
    }
    out
}

/// Packets and bytes of the real-socket segments that `socket_segment`
/// drops from a run's arrivals (pure ACKs and FINs, retransmitted ones
/// included): how many there are depends on the end hosts' timers.
fn socket_only(case: &Case, o: &Obs) -> (u64, u64) {
    let mut n = (0, 0);
    for (key, lines) in &o.sections {
        let Some(host) = key.strip_prefix("arrivals ") else {
            continue;
        };
        for l in lines {
            if socket_segment(&normalise(case, host, l)).is_none() {
                let len = l
                    .split_whitespace()
                    .find_map(|t| t.strip_prefix("len="))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                n = (n.0 + 1, n.1 + len);
            }
        }
    }
    n
}

/// Counters that differ only by what the two runs' real sockets did
/// differently: the same rules in the same order, and every counter's
/// packet and byte difference no larger than the difference in pure
/// ACK/FIN segments the hosts received (a delayed ACK, or a FIN
/// retransmitted by a host whose timer fired under load, is counted by the
/// rules it passes but is no netfilter difference). `dk`/`dt`: those
/// segments' (packets, bytes) in the kernel's and tungate's run.
pub fn counters_explained(
    a: &[String],
    b: &[String],
    dk: (u64, u64),
    dt: (u64, u64),
) -> Option<String> {
    let (dp, db) = (dk.0.abs_diff(dt.0), dk.1.abs_diff(dt.1));
    if dp == 0 || a.len() != b.len() {
        return None;
    }
    let split = |l: &str| -> Option<(String, u64, u64)> {
        let open = l.find('[')?;
        let close = open + l[open..].find(']')?;
        let (p, by) = l[open + 1..close].split_once(':')?;
        let rest = format!("{}{}", &l[..open], &l[close + 1..]);
        Some((rest, p.parse().ok()?, by.parse().ok()?))
    };
    for (x, y) in a.iter().zip(b) {
        if x == y {
            continue;
        }
        let ((rx, px, bx), (ry, py, by)) = (split(x)?, split(y)?);
        if rx != ry || px.abs_diff(py) > dp || bx.abs_diff(by) > db {
            return None;
        }
    }
    Some(format!(
        "counters differ only by real-socket ACK/FIN segments and retransmissions (kernel run {}:{}, tungate run {}:{}):\n{}",
        dk.0,
        dk.1,
        dt.0,
        dt.1,
        line_diff(a, b)
    ))
}

/// Two counts of random outcomes (lines a random rule let through in each
/// run) agree when they differ by at most the share tolerance of the
/// kernel's count, or by four standard deviations of the difference of two
/// independent binomial counts (each variance at most its mean, so the
/// difference's deviation is at most sqrt(a + b)). The share tolerance
/// alone is too tight for small counts: 200 datagrams dropped with
/// probability 0.5 leave 100 +- 7 per run, and 0.15 * 100 is only 1.5
/// deviations of the difference (CI saw 111 against 84).
pub fn counts_agree(a: usize, b: usize) -> bool {
    let d = a.abs_diff(b) as f64;
    d <= SHARE_TOLERANCE * a.max(1) as f64 || d <= 4.0 * ((a + b) as f64).sqrt()
}

/// Counters, conntrack and listeners of a random case: the number of lines
/// must agree; numbers inside them may differ by the share tolerance of the
/// largest number of the section.
fn dist_lines(key: &str, a: &[String], b: &[String]) -> Option<String> {
    // every run of digits becomes one '#'
    let strip = |l: &str| -> String {
        let mut out = String::new();
        for c in l.chars() {
            if !c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('#') {
                out.push('#');
            }
        }
        out
    };
    if key == "conntrack" || key.starts_with("listen ") {
        // entries name random endpoints and ports: compare the count
        if !counts_agree(a.len(), b.len()) {
            return Some(format!(
                "--- {key}: kernel has {} lines, tungate {}",
                a.len(),
                b.len()
            ));
        }
        return None;
    }
    // counters: same rules; packet counts within tolerance
    let nums = |l: &str| -> Option<u64> {
        let s = l
            .strip_prefix('[')
            .or_else(|| l.split_once('[').map(|(_, r)| r))?;
        s.split(':').next()?.parse().ok()
    };
    let max = a.iter().chain(b).filter_map(|l| nums(l)).max().unwrap_or(0) as f64;
    let sa: Vec<String> = a.iter().map(|l| strip(l)).collect();
    let sb: Vec<String> = b.iter().map(|l| strip(l)).collect();
    let mut bad = sa != sb;
    for (x, y) in a.iter().zip(b) {
        if let (Some(p), Some(q)) = (nums(x), nums(y)) {
            bad |= p.abs_diff(q) as f64 > SHARE_TOLERANCE * max;
        }
    }
    bad.then(|| {
        format!(
            "--- {key} (kernel -, tungate +; packet counts within {SHARE_TOLERANCE} of {max})\n{}",
            line_diff(a, b)
        )
    })
}

/// A unified-style line diff (LCS), `-` kernel only, `+` tungate only.
pub fn line_diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("   {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || l[i][j + 1] >= l[i + 1][j]) {
            out.push_str(&format!(" + {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!(" - {}\n", a[i]));
            i += 1;
        }
    }
    out
}
