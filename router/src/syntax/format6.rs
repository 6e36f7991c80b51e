//! The IPv6-only matches as both printers write them: `ip6tables-save`
//! / `-S` ([`match_save6`]) and `-L` ([`match_list6`]), byte for byte as
//! libip6t_icmp6, frag, ipv6header, hbh, dst, rt, hl and eui64 print them.

use std::fmt::Write;

use super::format::{addr_text, icmp_list, inv, range, ttl_list, ttl_save};
use super::names;
use crate::ruleset::*;

/// The word after `--hl-` for an HL target mode.
pub(super) fn hl_mode_word(m: HlMode) -> &'static str {
    match m {
        HlMode::Set => "set",
        HlMode::Inc => "inc",
        HlMode::Dec => "dec",
    }
}

/// `!` when `i`, for -L's `name:!value` forms.
fn bang(i: bool) -> &'static str {
    if i {
        "!"
    } else {
        ""
    }
}

/// A 32-bit range option unless it is everything and not inverted
/// (` --fragid 1:42`, ` ! --rt-segsleft 3`).
fn range_save(out: &mut String, opt: &str, r: Option<(u32, u32, bool)>) {
    if let Some((lo, hi, i)) = r {
        if lo != 0 || hi != u32::MAX || i {
            inv(out, i);
            let _ = write!(out, " {opt} ");
            range(out, lo, hi, ':');
        }
    }
}

/// A 32-bit range as -L prints it (`id:!1`, `segslefts:1:23`); `space`
/// before the name (rt has one, frag not).
fn range_list(out: &mut String, name: &str, r: Option<(u32, u32, bool)>, space: bool) {
    if let Some((lo, hi, i)) = r {
        if lo != 0 || hi != u32::MAX || i {
            let sp = if space { " " } else { "" };
            if lo == hi {
                let _ = write!(out, "{sp}{name}:{}{lo}", bang(i));
            } else {
                let _ = write!(out, "{sp}{name}s:{}{lo}:{hi}", bang(i));
            }
        }
    }
}

/// A value option with inversion (` ! --fraglen 42`).
fn value_save(out: &mut String, opt: &str, v: Option<(u32, bool)>) {
    if let Some((n, i)) = v {
        inv(out, i);
        let _ = write!(out, " {opt} {n}");
    }
}

/// A length as -L prints it (` length:!42`).
fn length_list(out: &mut String, v: Option<(u32, bool)>) {
    if let Some((n, i)) = v {
        let _ = write!(out, " length:{}{n}", bang(i));
    }
}

/// hbh's and dst's option list: `type[:len]`, comma-separated, after a
/// blank.
fn opts_list(out: &mut String, opts: &[(u8, Option<u8>)]) {
    for (k, (t, l)) in opts.iter().enumerate() {
        out.push(if k == 0 { ' ' } else { ',' });
        let _ = write!(out, "{t}");
        if let Some(l) = l {
            let _ = write!(out, ":{l}");
        }
    }
}

/// ipv6header's header names, comma-separated.
fn header_names(out: &mut String, bits: u8) {
    let names: Vec<&str> = names::IPV6_HEADERS
        .iter()
        .filter(|(_, b, _)| bits & b != 0)
        .map(|(.., n)| *n)
        .collect();
    out.push_str(&names.join(","));
}

/// frag's flags in save's words (`words` 0) or -L's (1).
fn frag_flags(out: &mut String, f: &FragMatch, words: usize) {
    let flags = [
        (f.res, [" --fragres", " reserved"]),
        (f.first, [" --fragfirst", " first"]),
        (f.more, [" --fragmore", " more"]),
        (f.last, [" --fraglast", " last"]),
    ];
    for (on, w) in flags {
        if on {
            out.push_str(w[words]);
        }
    }
}

/// rt's type-0 options in one printer's `words` (reserved, addresses,
/// not strict).
fn rt_type0(out: &mut String, r: &RtMatch, words: [&str; 3]) {
    if r.res {
        out.push_str(words[0]);
    }
    if !r.addrs.is_empty() {
        out.push_str(words[1]);
        let v: Vec<String> = r.addrs.iter().map(|a| addr_text(Family::V6, *a)).collect();
        out.push_str(&v.join(","));
    }
    if r.not_strict {
        out.push_str(words[2]);
    }
}

/// The options of an IPv6-only match as `ip6tables-save` writes them
/// (after ` -m NAME`).
pub(super) fn match_save6(out: &mut String, m: &Match) {
    match m {
        Match::Icmp6 {
            icmp_type,
            code_lo,
            code_hi,
            invert,
        } => {
            inv(out, *invert);
            let _ = write!(out, " --icmpv6-type {icmp_type}");
            // Only the first code, as libip6t_icmp6 saves it.
            if *code_lo != 0 || *code_hi != 0xFF {
                let _ = write!(out, "/{code_lo}");
            }
        }
        Match::Frag(f) => {
            range_save(out, "--fragid", f.ids);
            value_save(out, "--fraglen", f.len);
            frag_flags(out, f, 0);
        }
        Match::Ipv6Header {
            headers,
            soft,
            invert,
        } => {
            inv(out, *invert);
            out.push_str(" --header ");
            header_names(out, *headers);
            if *soft {
                out.push_str(" --soft");
            }
        }
        Match::Hbh(o) | Match::Dst(o) => {
            let pre = if matches!(m, Match::Hbh(_)) {
                "--hbh"
            } else {
                "--dst"
            };
            value_save(out, &format!("{pre}-len"), o.len);
            if !o.opts.is_empty() {
                let _ = write!(out, " {pre}-opts");
                opts_list(out, &o.opts);
            }
        }
        Match::Rt(r) => {
            if let Some((t, i)) = r.rt_type {
                value_save(out, "--rt-type", Some((u32::from(t), i)));
            }
            range_save(out, "--rt-segsleft", r.segsleft);
            value_save(out, "--rt-len", r.len);
            rt_type0(
                out,
                r,
                [" --rt-0-res", " --rt-0-addrs ", " --rt-0-not-strict"],
            );
        }
        Match::Hl { op, value } => ttl_save(out, *op, *value, "--hl"),
        _ => {}
    }
}

/// An IPv6-only match as `ip6tables -L` prints it.
pub(super) fn match_list6(out: &mut String, m: &Match, numeric: bool) {
    match m {
        Match::Icmp6 {
            icmp_type,
            code_lo,
            code_hi,
            invert,
        } => icmp_list(
            out,
            " ipv6-icmp",
            (*icmp_type, *code_lo, *code_hi, *invert),
            &names::ICMP6_NAMES,
            numeric,
        ),
        Match::Frag(f) => {
            out.push_str(" frag ");
            range_list(out, "id", f.ids, false);
            length_list(out, f.len);
            frag_flags(out, f, 1);
        }
        Match::Ipv6Header {
            headers,
            soft,
            invert,
        } => {
            out.push_str(" ipv6header");
            if *headers != 0 || *invert {
                let _ = write!(out, " flags:{}", bang(*invert));
                if numeric {
                    let _ = write!(out, "0x{headers:02X}");
                } else {
                    header_names(out, *headers);
                }
            }
            if *soft {
                out.push_str(" soft");
            }
        }
        Match::Hbh(o) | Match::Dst(o) => {
            out.push_str(if matches!(m, Match::Hbh(_)) {
                " hbh"
            } else {
                " dst"
            });
            length_list(out, o.len);
            if !o.opts.is_empty() {
                out.push_str(" opts");
                opts_list(out, &o.opts);
            }
        }
        Match::Rt(r) => {
            out.push_str(" rt");
            if let Some((t, i)) = r.rt_type {
                let _ = write!(out, " type:{}{t}", bang(i));
            }
            range_list(out, "segsleft", r.segsleft, true);
            length_list(out, r.len);
            rt_type0(out, r, [" reserved", " 0-addrs ", " 0-not-strict"]);
        }
        Match::Hl { op, value } => ttl_list(out, *op, *value, "HL"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{addr_text, mask_suffix};
    use crate::ruleset::Family;

    /// inet_ntop's forms (glibc), as ip6tables prints them.
    #[test]
    fn ipv6_text_is_inet_ntop() {
        for s in [
            "::",
            "::1",
            "2001:db8::",
            "2001:db8::1",
            "1::",
            "1:0:0:2::3",
            "1::2:0:0:3",
            "fe80::1:2:3:4",
            "1:2:3:4:5:6:7:8",
            "1:0:3:4:5:6:7:8",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "::0.1.0.2",
            "dead::beef",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let a = u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
            assert_eq!(addr_text(Family::V6, a), s);
        }
        let one_two = u128::from("::1:2".parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(addr_text(Family::V6, one_two), "::0.1.0.2");
        assert_eq!(mask_suffix(Family::V6, u128::MAX), "/128");
        assert_eq!(mask_suffix(Family::V6, 0), "/0");
        assert_eq!(mask_suffix(Family::V6, u128::MAX << 96), "/32");
        let odd = u128::from("ffff:ffff:0:ffff::".parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(mask_suffix(Family::V6, odd), "/ffff:ffff:0:ffff::");
        assert_eq!(mask_suffix(Family::V4, u128::from(u32::MAX)), "/32");
        assert_eq!(mask_suffix(Family::V4, 0xffff_ff00), "/24");
        assert_eq!(mask_suffix(Family::V4, 0xff00_ff00), "/255.0.255.0");
    }
}
