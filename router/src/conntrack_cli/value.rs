//! Option values read the way conntrack reads them: the C library's
//! `strtoul`, `atoi` and `inet_aton`, addresses with masks, protocol names,
//! and the comma-separated name lists of `-u`, `-e` and `-o`.

use super::error::CtError;
use super::request::{AddrFilter, EV_DESTROY, EV_NEW, EV_UPDATE};
use crate::conntrack::{Status, TcpState};
use std::net::Ipv4Addr;

/// Leading white space and an optional sign, as `strtoul` and `atoi` skip
/// them: whether the number is negative, and the rest.
fn skip_sign(s: &str) -> (bool, &str) {
    let t = s.trim_start();
    match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    }
}

/// `strtoul(s, &end, 0)`: the value of the longest numeric prefix (0 when
/// none) and the rest of the string.
pub(super) fn strtoul(s: &str) -> (u64, &str) {
    let (neg, t) = skip_sign(s);
    let (radix, body) = if (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].chars().next().is_some_and(|c| c.is_ascii_hexdigit())
    {
        (16, &t[2..])
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !c.is_digit(radix))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return (0, s);
    }
    let mut v: u64 = 0;
    for c in body[..end].chars() {
        v = v
            .saturating_mul(radix as u64)
            .saturating_add(c.to_digit(radix).unwrap_or(0) as u64);
    }
    let v = if neg { v.wrapping_neg() } else { v };
    (v, &body[end..])
}

/// `atoi` truncated to 16 bits, as conntrack stores ports.
pub(super) fn atoi_u16(s: &str) -> u16 {
    let (neg, t) = skip_sign(s);
    let mut v: i64 = 0;
    for c in t.chars() {
        match c.to_digit(10) {
            Some(d) => v = v.wrapping_mul(10).wrapping_add(d as i64),
            None => break,
        }
    }
    (if neg { -v } else { v }) as u16
}

/// `inet_aton`: one to four parts, each decimal, octal (`0`) or hex (`0x`).
pub(super) fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        let (radix, body) = if p.starts_with("0x") || p.starts_with("0X") {
            (16, &p[2..])
        } else if p.len() > 1 && p.starts_with('0') {
            (8, &p[1..])
        } else {
            (10, *p)
        };
        if p.is_empty() || (radix != 16 && body.is_empty() && radix != 8) {
            return None;
        }
        let v = if body.is_empty() {
            0
        } else {
            u64::from_str_radix(body, radix).ok()?
        };
        vals.push(v);
    }
    let n = vals.len();
    let last_max: u64 = [0xffff_ffff, 0xff_ffff, 0xffff, 0xff][n - 1];
    if vals[..n - 1].iter().any(|&v| v > 0xff) || vals[n - 1] > last_max {
        return None;
    }
    let mut a: u32 = vals[n - 1] as u32;
    for (i, v) in vals[..n - 1].iter().enumerate() {
        a |= (*v as u32) << (24 - 8 * i);
    }
    Some(Ipv4Addr::from(a))
}

/// Parses an address option value: IPv4 (with an optional `/len`), or an
/// IPv6 address (accepted, sets the family). Errors name the token.
pub(super) fn parse_addr(
    token: &str,
    ipv6: &mut Option<bool>,
) -> Result<Option<AddrFilter>, CtError> {
    let (a, len) = match token.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (token, None),
    };
    let bad = || CtError::BadAddress {
        token: token.to_string(),
    };
    if let Some(addr) = inet_aton(a) {
        set_family(ipv6, false)?;
        let mask = match len {
            None => u32::MAX,
            Some(l) => match l.parse::<u8>() {
                Ok(0) => 0,
                Ok(p) if p <= 32 => u32::MAX << (32 - p as u32),
                _ => return Err(CtError::BadNetmask),
            },
        };
        return Ok(Some(AddrFilter {
            addr: addr.to_bits() as u128,
            mask: mask as u128,
        }));
    }
    if let Ok(addr) = a.parse::<std::net::Ipv6Addr>() {
        let mask = match len {
            None => u128::MAX,
            Some(l) => match l.parse::<u8>() {
                Ok(0) => 0,
                Ok(p) if p <= 128 => u128::MAX << (128 - p as u32),
                _ => return Err(CtError::BadNetmask),
            },
        };
        set_family(ipv6, true)?;
        return Ok(Some(AddrFilter {
            addr: addr.to_bits(),
            mask,
        }));
    }
    Err(bad())
}

pub(super) fn set_family(cur: &mut Option<bool>, v6: bool) -> Result<(), CtError> {
    match *cur {
        None => {
            *cur = Some(v6);
            Ok(())
        }
        Some(c) if c == v6 => Ok(()),
        Some(_) => Err(CtError::FamilyMismatch),
    }
}

/// `-p` value: a protocol name conntrack knows or a number.
pub(super) fn parse_proto(s: &str) -> Result<u8, CtError> {
    let n = match s.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "udplite" => 136,
        "sctp" => 132,
        "dccp" => 33,
        "gre" => 47,
        "icmpv6" | "ipv6-icmp" => 58,
        "esp" => 50,
        "ah" => 51,
        "ip" => 0,
        "igmp" => 2,
        "ipip" => 4,
        "ipv6" => 41,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        other => match other.parse::<u32>() {
            Ok(n) if n <= 255 => n as u8,
            _ => {
                return Err(CtError::BadProtocol {
                    token: s.to_string(),
                })
            }
        },
    };
    Ok(n)
}

/// conntrack's comma-separated parameter lists: every item may be a
/// case-insensitive prefix of a known name (`strncasecmp`).
pub(super) fn parse_list(
    arg: &str,
    names: &[(&str, u32)],
    mut special: impl FnMut(&str) -> Option<Result<(), CtError>>,
) -> Result<u32, CtError> {
    let mut v = 0;
    let items: Vec<&str> = arg.split(',').collect();
    for (i, item) in items.iter().enumerate() {
        // The real tool names the rest of the list from the bad item on.
        let rest = items[i..].join(",");
        let bad = || CtError::BadParameter {
            token: if i + 1 == items.len() {
                item.to_string()
            } else {
                rest.clone()
            },
        };
        // A leading '!' (negation, meaningless here) is dropped first.
        let item = item.strip_prefix('!').unwrap_or(item);
        if item.is_empty() {
            return Err(CtError::BadParameter {
                token: items[i..].join(",").trim_start_matches('!').to_string(),
            });
        }
        if let Some(r) = special(item) {
            r?;
            continue;
        }
        let up = item.to_ascii_uppercase();
        match names.iter().find(|(n, _)| n.starts_with(&up)) {
            Some((_, bit)) => v |= bit,
            None => return Err(bad()),
        }
    }
    Ok(v)
}

pub(super) const UNREPLIED_BIT: u32 = 1 << 31;
pub(super) const STATUS_NAMES: &[(&str, u32)] = &[
    ("ASSURED", Status::ASSURED),
    ("SEEN_REPLY", Status::SEEN_REPLY),
    ("UNSET", 0),
    ("FIXED_TIMEOUT", 1 << 10),
    ("EXPECTED", Status::EXPECTED),
    ("OFFLOAD", 1 << 14),
    ("HW_OFFLOAD", 1 << 15),
    ("UNREPLIED", UNREPLIED_BIT),
];

pub(super) const EVENT_NAMES: &[(&str, u32)] = &[
    ("ALL", EV_NEW | EV_UPDATE | EV_DESTROY),
    ("NEW", EV_NEW),
    ("UPDATES", EV_UPDATE),
    ("DESTROY", EV_DESTROY),
];

pub(super) const O_XML: u32 = 1;
pub(super) const O_EXT: u32 = 2;
pub(super) const O_ID: u32 = 4;
pub(super) const OUTPUT_NAMES: &[(&str, u32)] = &[
    ("XML", O_XML),
    ("EXTENDED", O_EXT),
    ("TIMESTAMP", 0),
    ("ID", O_ID),
    ("KTIMESTAMP", 0),
    ("LABELS", 0),
    ("USERSPACE", 0),
];

pub(super) fn tcp_state(s: &str) -> Result<TcpState, CtError> {
    use TcpState::*;
    let all = [
        None,
        SynSent,
        SynRecv,
        Established,
        FinWait,
        CloseWait,
        LastAck,
        TimeWait,
        Close,
        SynSent2,
    ];
    if s == "LISTEN" {
        return Ok(SynSent2);
    }
    all.into_iter()
        .find(|st| st.name() == s)
        .ok_or_else(|| CtError::BadTcpState {
            token: s.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::a;

    #[test]
    fn address_parsing_is_inet_aton() {
        assert_eq!(inet_aton("1.2.3"), Some(a("1.2.0.3")));
        assert_eq!(inet_aton("10"), Some(a("0.0.0.10")));
        assert_eq!(inet_aton("0x7f.1"), Some(a("127.0.0.1")));
        assert_eq!(inet_aton("010.0.0.1"), Some(a("8.0.0.1")));
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("1..2"), None);
        assert_eq!(inet_aton("foo"), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(strtoul("0x2a/0xf8"), (42, "/0xf8"));
        assert_eq!(strtoul("foo"), (0, "foo"));
        assert_eq!(atoi_u16("99999"), 34463);
    }
}
