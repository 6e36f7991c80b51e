//! Formatting that the `iptables-save`/`-S` printer ([`super::save`]) and
//! the `iptables -L` printer ([`super::list`]) share: addresses and masks,
//! ranges, the names of ctstates, conntrack statuses, TCP flags, address
//! types and conntrack events, limit rates, NAT ranges and MAC addresses.
#![forbid(unsafe_code)]

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::ruleset::*;

pub(super) fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// `/N` when the mask is a prefix, else `/a.b.c.d`.
pub(super) fn mask_suffix(mask: u32) -> String {
    if mask == u32::MAX {
        return "/32".to_string();
    }
    let l = mask.leading_ones();
    if mask == 0 || (l < 32 && mask << l == 0) {
        format!("/{l}")
    } else {
        format!("/{}", ip(mask))
    }
}

pub(super) fn inv(out: &mut String, i: bool) {
    if i {
        out.push_str(" !");
    }
}

pub(super) fn range<T: std::fmt::Display + PartialEq>(out: &mut String, lo: T, hi: T, sep: char) {
    if lo == hi {
        let _ = write!(out, "{lo}");
    } else {
        let _ = write!(out, "{lo}{sep}{hi}");
    }
}

pub(super) fn states(s: CtState) -> String {
    let v: Vec<&str> = CtState::NAMES
        .iter()
        .filter(|(b, _)| s.contains(*b))
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

pub(super) fn statuses(s: CtStatus) -> String {
    if s.0 == 0 {
        return "NONE".to_string();
    }
    let v: Vec<&str> = CtStatus::NAMES
        .iter()
        .filter(|(b, _)| s.0 & b.0 != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

pub(super) fn tcp_flag_names(f: u8) -> String {
    if f == 0 {
        return "NONE".to_string();
    }
    let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"];
    let v: Vec<&str> = (0..6)
        .filter(|i| f & (1 << i) != 0)
        .map(|i| names[i])
        .collect();
    v.join(",")
}

pub(super) fn addrtypes(t: AddrTypes) -> String {
    let v: Vec<&str> = (0..12)
        .filter(|i| t.0 & (1 << i) != 0)
        .map(|i| AddrTypes::NAMES[i])
        .collect();
    v.join(",")
}

pub(super) fn events(e: u32) -> String {
    let v: Vec<&str> = (0..8)
        .filter(|i| e & (1 << i) != 0)
        .map(|i| CT_EVENT_NAMES[i])
        .collect();
    v.join(",")
}

const RATES: [(&str, u32); 4] = [
    ("day", 10000 * 86400),
    ("hour", 10000 * 3600),
    ("min", 10000 * 60),
    ("sec", 10000),
];

pub(super) fn rate(avg: u32) -> String {
    if avg == 0 {
        return "inf".to_string();
    }
    let mut i = 1;
    while i < RATES.len() {
        let m = RATES[i].1;
        if avg > m || m / avg < m % avg {
            break;
        }
        i += 1;
    }
    format!("{}/{}", RATES[i - 1].1 / avg, RATES[i - 1].0)
}

pub(super) fn nat_range(out: &mut String, r: &NatRange) {
    if let Some((a, b)) = r.addrs {
        let _ = write!(out, "{}", ip(a));
        if a != b {
            let _ = write!(out, "-{}", ip(b));
        }
    }
    if let Some((lo, hi)) = r.ports {
        out.push(':');
        range(out, lo, hi, '-');
        if let Some(b) = r.base_port {
            let _ = write!(out, "/{b}");
        }
    }
}

pub(super) fn mac(a: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        a[0], a[1], a[2], a[3], a[4], a[5]
    )
}
