//! Option values of the iptables command line: numbers as strtoul reads
//! them, IPv4 and IPv6 addresses and masks (of the rule's family), ports and ranges (with service names),
//! marks, interface and other names, and the word lists of single options
//! (ctstates, TCP flags, address types, conntrack events, rates, NAT
//! ranges). Each parser names the option in its error and says what it
//! expected. Tokens are borrowed; nothing here allocates on success.

use super::names::service_port;
use super::SyntaxError;
use crate::ruleset::*;

pub(super) type R<T> = Result<T, SyntaxError>;

pub(super) fn err_val(option: &str, value: &str, expected: &'static str) -> SyntaxError {
    SyntaxError::BadValue {
        option: option.to_string(),
        value: value.to_string(),
        expected,
    }
}

pub(super) fn invalid(msg: impl Into<String>) -> SyntaxError {
    SyntaxError::Invalid(msg.into())
}

/// Parses a u32 the way strtoul(…, 0) does (decimal, 0x hex, 0 octal),
/// rejecting signs and overflow.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.starts_with('-') || s.starts_with('+') {
        return None;
    }
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

pub(super) fn parse_u32_dec(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `a.b.c.d` (1 to 4 parts, as xtables' numeric parser).
pub(crate) fn parse_ip(s: &str) -> Option<u32> {
    // One to four dot-separated parts of 1-3 digits, each at most 255
    // ("10.1" is 10.1.0.0). A byte loop: a restore parses ~200,000 of these.
    let (mut v, mut n, mut part, mut digits) = (0u32, 0u32, 0u32, 0u32);
    for &b in s.as_bytes() {
        match b {
            b'0'..=b'9' if digits < 3 => {
                part = part * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && part <= 255 && n < 3 => {
                v |= part << (24 - 8 * n);
                (n, part, digits) = (n + 1, 0, 0);
            }
            _ => return None,
        }
    }
    (digits > 0 && part <= 255).then(|| v | part << (24 - 8 * n))
}

/// `s.split_once(c)` for an ASCII `c`, as a byte loop (`split_once(char)`
/// sets up a searcher per call; these run several times per rule).
pub(super) fn split_byte(s: &str, c: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == c)?;
    Some((&s[..i], &s[i + 1..]))
}

/// An IPv6 address as inet_pton reads it (`2001:db8::1`, `::ffff:1.2.3.4`),
/// host order.
pub(crate) fn parse_ip6(s: &str) -> Option<u128> {
    s.parse::<std::net::Ipv6Addr>().ok().map(u128::from)
}

/// An address of `family`, host order (IPv4 zero-extended).
pub(crate) fn parse_addr(family: Family, s: &str) -> Option<u128> {
    match family {
        Family::V4 => parse_ip(s).map(u128::from),
        Family::V6 => parse_ip6(s),
    }
}

/// `addr[/len|/mask]` of `family` with host names rejected; the address
/// comes back masked.
pub(super) fn parse_addr_mask(family: Family, option: &str, s: &str) -> R<(u128, u128)> {
    let (a, m) = match split_byte(s, b'/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr = match parse_addr(family, a) {
        Some(v) => v,
        None => {
            // An IPv6 address has hex letters; a host name has a letter
            // outside them or no colon.
            let host = a.bytes().any(|b| b.is_ascii_alphabetic())
                && (family == Family::V4 || !a.contains(':'));
            if host {
                return Err(SyntaxError::HostName {
                    option: option.to_string(),
                    value: s.to_string(),
                    family: family_word(family),
                });
            }
            return Err(err_val(
                option,
                s,
                match family {
                    Family::V4 => "an IPv4 address, address/len or address/mask",
                    Family::V6 => "an IPv6 address, address/len or address/mask",
                },
            ));
        }
    };
    let mask = match m {
        None => family.host_mask(),
        Some(m) if family == Family::V4 && m.contains('.') => parse_ip(m)
            .map(u128::from)
            .ok_or_else(|| err_val(option, s, "a mask such as /24 or /255.255.255.0"))?,
        Some(m) if family == Family::V6 && m.contains(':') => {
            parse_ip6(m).ok_or_else(|| err_val(option, s, "a mask such as /64 or /ffff:ffff::"))?
        }
        Some(m) => match parse_u32_dec(m) {
            Some(l) if l <= family.bits() => family.prefix_mask(l),
            _ => {
                return Err(err_val(
                    option,
                    s,
                    match family {
                        Family::V4 => "a prefix length 0-32",
                        Family::V6 => "a prefix length 0-128",
                    },
                ))
            }
        },
    };
    Ok((addr & mask, mask))
}

/// "IPv4" or "IPv6", for messages.
pub(super) fn family_word(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

pub(super) fn parse_port(option: &str, s: &str, proto: Option<&str>) -> R<u16> {
    if let Some(v) = parse_u32_dec(s) {
        return u16::try_from(v).map_err(|_| err_val(option, s, "a port 0-65535"));
    }
    if !s.is_empty() && !s.starts_with('-') {
        if let Some(p) = service_port(s, proto) {
            return Ok(p);
        }
    }
    Err(err_val(option, s, "a port number or service name"))
}

/// `lo[:hi]`, `:hi`, `lo:`, `:`; lo > hi rejected.
pub(super) fn parse_range(option: &str, s: &str, proto: Option<&str>) -> R<(u16, u16)> {
    let (lo, hi) = match split_byte(s, b':') {
        None => {
            let p = parse_port(option, s, proto)?;
            (p, p)
        }
        Some((a, b)) => {
            let lo = if a.is_empty() {
                0
            } else {
                parse_port(option, a, proto)?
            };
            let hi = if b.is_empty() {
                65535
            } else {
                parse_port(option, b, proto)?
            };
            (lo, hi)
        }
    };
    if lo > hi {
        return Err(invalid(format!(
            "invalid range \"{s}\" for {option}: start greater than end"
        )));
    }
    Ok((lo, hi))
}

pub(super) fn parse_num_range_u32(option: &str, s: &str) -> R<(u32, u32)> {
    let p = |x: &str| parse_u32_dec(x).ok_or_else(|| err_val(option, s, "a number or range"));
    let (lo, hi) = match split_byte(s, b':') {
        None => {
            let v = p(s)?;
            (v, v)
        }
        Some((a, b)) => (
            if a.is_empty() { 0 } else { p(a)? },
            if b.is_empty() { u32::MAX } else { p(b)? },
        ),
    };
    if lo > hi {
        return Err(invalid(format!(
            "invalid range \"{s}\" for {option}: start greater than end"
        )));
    }
    Ok((lo, hi))
}

pub(super) fn parse_mark(option: &str, s: &str) -> R<(u32, Option<u32>)> {
    let bad = || err_val(option, s, "value[/mask] (32-bit numbers)");
    match s.split_once('/') {
        Some((v, m)) => Ok((
            parse_u32(v).ok_or_else(bad)?,
            Some(parse_u32(m).ok_or_else(bad)?),
        )),
        None => Ok((parse_u32(s).ok_or_else(bad)?, None)),
    }
}

pub(super) fn parse_ctstates(option: &str, s: &str) -> R<CtStateSet> {
    let mut st = CtStateSet(0);
    for w in s.split(',') {
        match CtStateSet::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(w))
        {
            Some((b, _)) => st.0 |= b.0,
            None => {
                return Err(err_val(
                    option,
                    w,
                    "INVALID, NEW, RELATED, ESTABLISHED, UNTRACKED, SNAT or DNAT",
                ))
            }
        }
    }
    Ok(st)
}

pub(super) fn proto_name_for_ports(p: u8) -> Option<&'static str> {
    match p {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        33 => Some("dccp"),
        _ => None,
    }
}

pub(super) fn nat_ports_ok(p: u8, inv: bool) -> bool {
    !inv && matches!(p, 6 | 17 | 132 | 33 | 136)
}

/// Characters that cannot appear in names printed unquoted (interfaces,
/// chains, recent lists, helpers): the kernel's `dev_valid_name` set plus
/// quotes and backslashes, so that saved text always reads back.
pub(crate) fn bad_name_char(c: char) -> bool {
    c.is_whitespace() || matches!(c, '/' | ':' | '"' | '\'' | '\\')
}

/// A simple name argument (no white space or quotes).
pub(super) fn simple_name<'a>(option: &str, v: &'a str) -> R<&'a str> {
    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\')) {
        return Err(err_val(option, v, "a name without white space or quotes"));
    }
    Ok(v)
}

pub(super) fn parse_iface(option: &str, s: &str) -> R<Option<Iface>> {
    if s.len() > 15 {
        return Err(err_val(
            option,
            s,
            "an interface name of at most 15 characters",
        ));
    }
    if s.is_empty() || s == "." || s == ".." || s.contains(bad_name_char) {
        return Err(err_val(
            option,
            s,
            "an interface name (no '/', ':', quotes or white space)",
        ));
    }
    let (name, wildcard) = match s.strip_suffix('+') {
        Some(n) => (n, true),
        None => (s, false),
    };
    Ok(Some(Iface {
        name: name.to_string(),
        wildcard,
        invert: false,
    }))
}

pub(super) fn range16(opt: &str, s: &str, proto: Option<&str>, inv: bool) -> R<Range16> {
    let (lo, hi) = parse_range(opt, s, proto)?;
    Ok(Range16 {
        lo,
        hi,
        invert: inv,
    })
}

pub(super) fn tcp_flags(opt: &str, s: &str) -> R<u8> {
    let mut v = 0u8;
    for w in s.split(',') {
        v |= match w.to_ascii_uppercase().as_str() {
            "FIN" => 0x01,
            "SYN" => 0x02,
            "RST" => 0x04,
            "PSH" => 0x08,
            "ACK" => 0x10,
            "URG" => 0x20,
            "ALL" => 0x3F,
            "NONE" => 0,
            _ => return Err(err_val(opt, w, "FIN, SYN, RST, PSH, ACK, URG, ALL or NONE")),
        };
    }
    Ok(v)
}

/// `--to-destination` / `--to-source`: `addr[-addr][:port[-port][/base]]`
/// for IPv4; for IPv6 `addr[-addr]`, `[addr[-addr]]:port[-port][/base]`
/// or `:port...` (an IPv6 address takes its colons: ports need the
/// brackets).
pub(super) fn parse_nat_range(family: Family, opt: &str, s: &str, with_base: bool) -> R<NatRange> {
    let mut r = NatRange::default();
    let form = match family {
        Family::V4 => "addr[-addr][:port[-port]]",
        Family::V6 => "addr[-addr] or [addr[-addr]]:port[-port]",
    };
    let (addrs, ports) = match family {
        Family::V4 => match split_byte(s, b':') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        },
        Family::V6 => match s.strip_prefix('[') {
            Some(rest) => {
                let (a, after) = split_byte(rest, b']').ok_or_else(|| err_val(opt, s, form))?;
                match after {
                    "" => (a, None),
                    p => (
                        a,
                        Some(p.strip_prefix(':').ok_or_else(|| err_val(opt, s, form))?),
                    ),
                }
            }
            None => match s.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => (s, None),
            },
        },
    };
    if !addrs.is_empty() {
        let (a, b) = match split_byte(addrs, b'-') {
            Some((a, b)) => (a, b),
            None => (addrs, addrs),
        };
        let pa = |x: &str| parse_addr(family, x).ok_or_else(|| err_val(opt, s, form));
        let (a, b) = (pa(a)?, pa(b)?);
        if a > b {
            return Err(invalid(format!("bad IP range \"{addrs}\" for {opt}")));
        }
        r = NatRange::addrs(a, b);
    }
    if let Some(p) = ports {
        let (range, base) = match split_byte(p, b'/') {
            Some((rg, bs)) if with_base => (rg, Some(bs)),
            _ => (p, None),
        };
        let num = |x: &str| {
            parse_u32_dec(x)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| {
                    err_val(opt, s, "addr[-addr][:port[-port]] with numeric port ranges")
                })
        };
        let (lo, hi) = match split_byte(range, b'-') {
            // A service name may hold '-' ("ms-sql-s").
            Some((a, b)) => match service_port(range, None) {
                Some(v) => (v, v),
                None => (num(a)?, num(b)?),
            },
            None => {
                let v = parse_port(opt, range, None)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(invalid(format!("bad port range \"{range}\" for {opt}")));
        }
        r = r.with_ports(lo, hi);
        if let Some(bs) = base {
            let b = parse_port(opt, bs, None)?;
            if b == 0 {
                return Err(err_val(opt, bs, "a base port 1-65535"));
            }
            r.flags |= nat_flags::PROTO_OFFSET;
            r.base_port = b;
        }
    }
    Ok(r)
}

/// `--to-ports p[-q]`: numbers, or one service name (no names in ranges).
pub(super) fn parse_to_ports(opt: &str, s: &str) -> R<(u16, u16)> {
    if let Some(p) = service_port(s, None) {
        return Ok((p, p));
    }
    match s.split_once('-') {
        Some((a, b)) => {
            let n = |x: &str| {
                parse_u32_dec(x)
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| err_val(opt, s, "port[-port] with numeric ports 0-65535"))
            };
            let (lo, hi) = (n(a)?, n(b)?);
            if lo > hi {
                return Err(invalid(format!("bad port range \"{s}\" for {opt}")));
            }
            Ok((lo, hi))
        }
        None => {
            let p = parse_port(opt, s, None)?;
            Ok((p, p))
        }
    }
}

pub(super) fn parse_events(opt: &str, s: &str) -> R<u32> {
    let mut v = 0;
    for w in s.split(',') {
        match CT_EVENT_NAMES.iter().position(|n| *n == w) {
            Some(i) => v |= 1 << i,
            None => return Err(err_val(opt, w, "a list of conntrack event names")),
        }
    }
    Ok(v)
}

pub(super) fn parse_addrtypes(opt: &str, s: &str) -> R<AddrTypes> {
    let mut v = 0u16;
    for w in s.split(',') {
        match AddrTypes::NAMES.iter().position(|n| n.eq_ignore_ascii_case(w)) {
            Some(i) => v |= 1 << i,
            None => return Err(err_val(opt, w, "UNSPEC, UNICAST, LOCAL, BROADCAST, ANYCAST, MULTICAST, BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT or XRESOLVE")),
        }
    }
    Ok(AddrTypes(v))
}

pub(super) fn parse_iprange(family: Family, opt: &str, s: &str) -> R<(u128, u128)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| parse_addr(family, x).ok_or_else(|| err_val(opt, s, "addr[-addr]"));
    Ok((p(a)?, p(b)?))
}

pub(super) fn parse_limit_rate(opt: &str, s: &str) -> R<u32> {
    let (n, unit) = match s.split_once('/') {
        Some((n, u)) => (n, Some(u)),
        None => (s, None),
    };
    let mult: u64 = match unit {
        None => 1,
        Some(u) => {
            let l = u.to_ascii_lowercase();
            if !l.is_empty() && "second".starts_with(&l) {
                1
            } else if !l.is_empty() && "minute".starts_with(&l) {
                60
            } else if !l.is_empty() && "hour".starts_with(&l) {
                3600
            } else if !l.is_empty() && "day".starts_with(&l) {
                86400
            } else {
                return Err(err_val(opt, s, "N/sec, N/minute, N/hour or N/day"));
            }
        }
    };
    let r = parse_u32_dec(n).ok_or_else(|| err_val(opt, s, "N/sec, N/minute, N/hour or N/day"))?;
    if r == 0 {
        return Err(err_val(opt, s, "a non-zero rate"));
    }
    let v = 10000u64 * mult / u64::from(r);
    if v == 0 {
        return Err(invalid(format!("Rate too fast \"{s}\"")));
    }
    Ok(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-loop `parse_ip` against the split-based one it replaced.
    #[test]
    fn parse_ip_accepts_what_the_split_version_accepted() {
        fn reference(s: &str) -> Option<u32> {
            let mut v: u32 = 0;
            for (n, part) in s.split('.').enumerate() {
                if n == 4
                    || part.is_empty()
                    || part.len() > 3
                    || !part.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                let p: u32 = part.parse().ok()?;
                if p > 255 {
                    return None;
                }
                v |= p << (24 - 8 * n);
            }
            Some(v)
        }
        let fixed = [
            "",
            ".",
            "1",
            "1.",
            ".1",
            "1..2",
            "10.1",
            "10.1.2",
            "10.1.2.3",
            "1.2.3.4.5",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3.256",
            "0001.2.3.4",
            "001.002.003.004",
            "1.2.3.4/24",
            "+1.2.3.4",
            "1.2.3.4 ",
            "a.b.c.d",
            "999",
            "1.2.3.",
            "0",
        ];
        for s in fixed {
            assert_eq!(parse_ip(s), reference(s), "{s:?}");
        }
        // Random strings over the bytes that matter.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet = b"0123456789..25x";
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s: String = (0..x % 16)
                .map(|k| alphabet[((x >> (4 * k)) % alphabet.len() as u64) as usize] as char)
                .collect();
            assert_eq!(parse_ip(&s), reference(&s), "{s:?}");
        }
    }
}
