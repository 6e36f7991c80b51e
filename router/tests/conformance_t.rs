//! Conformance with iptables' own single-rule tests (`iptables-t/*.t`, from
//! iptables 1.8.11), read at run time from the shared conformance data.
//! Every OK/FAIL/NOMATCH line is checked; `@`/`%` shell lines are skipped
//! with the reason printed. Prints a per-file pass count. As upstream's
//! runner does, `libipt_` files go through iptables, `libip6t_` files
//! through ip6tables, and `libxt_` files through both.

mod common;
use common::shared;

use tungate::ruleset::{Family, Ruleset, TableKind};
use tungate::syntax::{exec, list_rules, parse_command_for, tokenize};

/// Files run through iptables (IPv4).
const FILES: &[&str] = &[
    "libxt_tcp",
    "libxt_udp",
    "libipt_icmp",
    "libxt_conntrack",
    "libipt_conntrack",
    "libxt_state",
    "libxt_comment",
    "libxt_mark",
    "libxt_MARK",
    "libxt_connmark",
    "libxt_CONNMARK",
    "libxt_statistic",
    "libxt_addrtype",
    "libxt_multiport",
    "libipt_DNAT",
    "libipt_SNAT",
    "libipt_MASQUERADE",
    "libxt_REDIRECT",
    "libipt_REJECT",
    "libipt_LOG",
    "libxt_CT",
    "libxt_NOTRACK",
    "libxt_standard",
    "libipt_standard",
    "libipt_iprange",
    "libxt_iprange",
    "libxt_limit",
    "libxt_length",
    "libipt_ttl",
    "libxt_tcpmss",
    "libxt_TCPMSS",
    "libxt_recent",
];

/// Files run through ip6tables (IPv6): the `libip6t_` files of what
/// tungate implements, and every `libxt_` file of [`FILES`].
const FILES6: &[&str] = &[
    "libip6t_standard",
    "libip6t_DNAT",
    "libip6t_SNAT",
    "libip6t_HL",
    "libip6t_LOG",
    "libip6t_MASQUERADE",
    "libip6t_REJECT",
    "libip6t_conntrack",
    "libip6t_dst",
    "libip6t_eui64",
    "libip6t_frag",
    "libip6t_hbh",
    "libip6t_hl",
    "libip6t_icmp6",
    "libip6t_iprange",
    "libip6t_ipv6header",
    "libip6t_recent",
    "libip6t_rt",
];

/// `libip6t_` files not run, and why: extensions the kernel has and
/// tungate does not implement (README.md's extension table lists them),
/// or whose model is not there yet. A new `.t` file must land in
/// [`FILES6`] or here.
const SKIPPED6: &[(&str, &str)] = &[
    (
        "libip6t_NETMAP",
        "NETMAP is not implemented (neither family)",
    ),
    (
        "libip6t_DNPT",
        "DNPT (prefix translation) is not implemented",
    ),
    (
        "libip6t_SNPT",
        "SNPT (prefix translation) is not implemented",
    ),
    ("libip6t_TEE", "TEE (packet duplication) is not implemented"),
    ("libip6t_TPROXY", "TPROXY is not implemented"),
    ("libip6t_ah", "-m ah is not implemented"),
    ("libip6t_connlimit", "-m connlimit is not implemented"),
    ("libip6t_ipvs", "-m ipvs (IPVS) is not implemented"),
    ("libip6t_mh", "-m mh (mobility header) is not implemented"),
    ("libip6t_policy", "-m policy (IPsec) is not implemented"),
    (
        "libip6t_srh",
        "-m srh (segment routing header) is not implemented",
    ),
];

/// Applies `-t table -A chain RULE` to a fresh ruleset of `family`;
/// returns the saved rule line or the error text.
fn try_rule(family: Family, table: TableKind, chain: &str, rule: &str) -> Result<String, String> {
    let toks = tokenize(rule).map_err(|e| e.to_string())?;
    let mut args: Vec<&str> = vec!["-t", table.name(), "-A", chain];
    args.extend(toks.iter().map(|t| t.as_ref()));
    let cmd = parse_command_for(family, &args).map_err(|e| e.to_string())?;
    let mut rs = Ruleset::new_family(family);
    let mut sink = String::new();
    exec(&mut rs, &cmd, &mut sink).map_err(|e| e.to_string())?;
    let mut out = String::new();
    list_rules(&mut out, rs.table(table), Some(chain), None, false);
    let line = out
        .lines()
        .find(|l| l.starts_with("-A "))
        .ok_or("no rule listed")?
        .to_string();
    Ok(line)
}

#[test]
fn iptables_t_files() {
    run_files(Family::V4, FILES);
}

#[test]
fn ip6tables_t_files() {
    // Every libip6t_ file is run or skipped with its reason.
    let dir = shared().join("conformance/iptables-t");
    for e in std::fs::read_dir(&dir).expect("conformance data") {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_prefix("libip6t_")
            .and_then(|n| n.strip_suffix(".t"))
        else {
            continue;
        };
        let stem = format!("libip6t_{stem}");
        if let Some((_, why)) = SKIPPED6.iter().find(|(f, _)| *f == stem) {
            println!("{stem}: skipped: {why}");
        } else {
            assert!(
                FILES6.contains(&stem.as_str()),
                "{stem} is neither run nor skipped"
            );
        }
    }
    let both: Vec<&str> = FILES6
        .iter()
        .chain(FILES.iter().filter(|f| f.starts_with("libxt_")))
        .copied()
        .collect();
    run_files(Family::V6, &both);
}

fn run_files(family: Family, files: &[&str]) {
    // The parser reads no file: the system's name databases come from the edge.
    tungate::cli::install_system_names();
    let dir = shared().join("conformance/iptables-t");
    if !dir.is_dir() {
        panic!("conformance data not found at {}", dir.display());
    }
    let mut total_fail = Vec::new();
    let mut total = 0;
    for f in files {
        let path = dir.join(format!("{f}.t"));
        let text = std::fs::read_to_string(&path).expect("read .t file");
        let mut table = TableKind::Filter;
        let mut chains: Vec<String> = Vec::new();
        let (mut pass, mut count, mut skipped) = (0, 0, 0);
        for (ln, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('@') || line.starts_with('%') {
                println!("  {f}:{}: skipped: shell setup line ({line}); tungate has no nfct/ipset helpers", ln + 1);
                skipped += 1;
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                table = TableKind::from_name(t).expect("table");
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                chains = c.split(',').map(str::to_string).collect();
                continue;
            }
            let parts: Vec<&str> = line.split(';').collect();
            let (rule, expected, mut result) = (parts[0], parts[1], parts[2]);
            let variant = parts.get(3).copied();
            let alt = parts.get(4).copied();
            if variant == Some("LEGACY") {
                result = match (alt, result) {
                    (Some(a), _) => a,
                    (None, "OK") => "FAIL",
                    (None, _) => "OK",
                };
            }
            let expected = if expected == "=" { rule } else { expected };
            for chain in &chains {
                count += 1;
                let got = try_rule(family, table, chain, rule);
                let ok = match (result, &got) {
                    ("OK", Ok(l)) => *l == format!("-A {chain} {expected}"),
                    ("NOMATCH", Ok(l)) => *l != format!("-A {chain} {expected}"),
                    ("FAIL", Err(_)) => true,
                    _ => false,
                };
                if ok {
                    pass += 1;
                } else {
                    total_fail.push(format!(
                        "{f}:{} [{chain}] {rule:?} expected {result} {expected:?}, got {got:?}",
                        ln + 1
                    ));
                }
            }
        }
        total += count;
        println!("{f}: {pass}/{count} passed, {skipped} skipped");
    }
    for l in &total_fail {
        println!("FAIL {l}");
    }
    println!("total: {}/{total}", total - total_fail.len());
    assert!(
        total_fail.is_empty(),
        "{} conformance lines failed",
        total_fail.len()
    );
}
