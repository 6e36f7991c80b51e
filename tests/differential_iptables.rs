//! Differential test against the machine's real `iptables` (1.8.9, nft):
//! rules built from the conformance .t files combined with extra options
//! (seeded, deterministic) are appended by both; acceptance and the saved
//! form (`-S`) must agree. Candidates touching the documented 1.8.9 bugs
//! (see shared/conformance/README.md: inverted ranges, `--ctproto 0`,
//! `! --sport :`, `255/255`) are skipped and counted. Needs root (scratch
//! netns); skips with a message otherwise.

use std::process::Command;

use tungate::ruleset::{Ruleset, TableKind};
use tungate::syntax::{apply_command, list_rules, tokenize};

mod harness;
use harness::scratch_ns::ScratchNs;

const FILES: &[&str] = &[
    "libxt_tcp",
    "libxt_udp",
    "libipt_icmp",
    "libxt_conntrack",
    "libxt_state",
    "libxt_mark",
    "libxt_MARK",
    "libxt_statistic",
    "libxt_addrtype",
    "libxt_multiport",
    "libipt_LOG",
    "libipt_REJECT",
    "libxt_limit",
    "libxt_length",
    "libipt_ttl",
    "libxt_tcpmss",
    "libxt_recent",
    "libipt_standard",
    "libxt_comment",
    "libipt_iprange",
];

const EXTRA: &[&str] = &[
    "-j ACCEPT",
    "-j DROP",
    "! -s 1.2.3.4",
    "-d 10.0.0.0/255.255.0.0",
    "-i eth0",
    "! -i eth+",
    "-f",
    "-p udp",
    "-p tcp",
    "! -p icmp",
    "-m comment --comment hi",
    "-m mark --mark 7",
    "--sport 5",
    "--dport 1:2",
    "! --syn",
    "-j LOG --log-level 3",
    "-j REJECT --reject-with icmp-net-prohibited",
    "-m state --state ESTABLISHED",
    "-m conntrack ! --ctstate NEW",
    "-p 17",
    "-p 255",
    "-p 0",
    "-m limit --limit 10/s",
    "-m length --length 10:",
    "-s 10.1.2.3/12",
    "-j MARK --or-mark 0x10",
    "-m multiport --dports 1,2",
    "-m iprange ! --dst-range 1.1.1.1-1.1.1.2",
];

const KNOWN_189_BUGS: &[&str] = &[
    "4:3",
    "--ctproto 0",
    "! --sport :",
    "! --dport :",
    "255/255",
];

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Installs the system's name databases (the parser reads no file: they
/// come from the edge); true when `test` must skip (not root, or no
/// iptables / ip), said as harness::skip_because says it.
fn skips(test: &str) -> bool {
    tungate::cli::install_system_names();
    harness::skip_because(test, harness::missing_root_or(&["iptables", "ip"]))
}

#[test]
fn single_rules_agree_with_real_iptables() {
    if skips("single_rules_agree_with_real_iptables") {
        return;
    }
    let mut base = Vec::new();
    for f in FILES {
        let p = harness::shared_dir().join(format!("conformance/iptables-t/{f}.t"));
        for l in std::fs::read_to_string(&p).unwrap().lines() {
            if l.starts_with('-') || l.starts_with('!') {
                let r = l.split(';').next().unwrap();
                if r.len() < 200 {
                    base.push(r.to_string());
                }
            }
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut cands = Vec::new();
    for _ in 0..300 {
        let a = &base[rng.below(base.len())];
        let b = EXTRA[rng.below(EXTRA.len())];
        let c = EXTRA[rng.below(EXTRA.len())];
        let mut toks: Vec<&str> = format!("{a} {b} {c}").leak().split(' ').collect();
        if rng.below(3) == 0 {
            for i in (1..toks.len()).rev() {
                toks.swap(i, rng.below(i + 1));
            }
        }
        cands.push(if rng.below(2) == 0 {
            toks.join(" ")
        } else {
            format!("{a} {b}")
        });
    }
    let ns = ScratchNs::add("tg_rules_diff").expect("ip netns add");
    let (mut same, mut skipped, mut diffs) = (0, 0, Vec::new());
    for r in &cands {
        if KNOWN_189_BUGS.iter().any(|b| r.contains(b)) {
            skipped += 1;
            continue;
        }
        let Ok(toks) = tokenize(r) else { continue };
        let args: Vec<&str> = toks.iter().map(|t| t.as_ref()).collect();
        let _ = Command::new("ip")
            .args(["netns", "exec", &ns.0, "iptables", "-F", "INPUT"])
            .status();
        let real_ok = Command::new("ip")
            .args(["netns", "exec", &ns.0, "iptables", "-A", "INPUT"])
            .args(&args)
            .output()
            .unwrap()
            .status
            .success();
        let real = if real_ok {
            let o = Command::new("ip")
                .args(["netns", "exec", &ns.0, "iptables", "-S", "INPUT"])
                .output()
                .unwrap();
            Some(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)
                    .unwrap_or("")
                    .to_string(),
            )
        } else {
            None
        };
        let mut rs = Ruleset::new();
        let mut full = vec!["-A", "INPUT"];
        full.extend(&args);
        let o = apply_command(&mut rs, &full);
        let ours = if o.status == 0 {
            let mut s = String::new();
            list_rules(
                &mut s,
                rs.table(TableKind::Filter),
                Some("INPUT"),
                None,
                false,
            );
            Some(s.lines().nth(1).unwrap_or("").to_string())
        } else {
            None
        };
        if real == ours {
            same += 1;
        } else {
            diffs.push(format!(
                "{r}\n  real: {real:?}\n  ours: {ours:?} {}",
                o.stderr.trim()
            ));
        }
    }
    println!(
        "{same} agree, {skipped} skipped (documented 1.8.9 bugs), {} differ",
        diffs.len()
    );
    for d in &diffs {
        println!("{d}");
    }
    assert!(diffs.is_empty());
}

/// Every target of the model in every built-in chain of every table:
/// tungate accepts exactly where the real iptables accepts.
#[test]
fn target_placement_agrees_with_real_iptables() {
    if skips("target_placement_agrees_with_real_iptables") {
        return;
    }
    let targets = [
        "-j ACCEPT",
        "-j REJECT",
        "-p tcp -j REJECT --reject-with tcp-reset",
        "-j LOG",
        "-j MARK --set-mark 1",
        "-j CONNMARK --save-mark",
        "-j DNAT --to-destination 1.1.1.1",
        "-j SNAT --to-source 1.1.1.1",
        "-j MASQUERADE",
        "-p tcp -j REDIRECT --to-ports 80",
        "-j NOTRACK",
        "-j CT --notrack",
        "-p tcp -j TCPMSS --set-mss 1000",
        "-p tcp -j TCPMSS --clamp-mss-to-pmtu",
        "-j NFLOG --nflog-group 2",
        "-j CHECKSUM --checksum-fill",
        "-m addrtype --dst-type LOCAL --limit-iface-in",
        "-m addrtype --dst-type LOCAL --limit-iface-out",
    ];
    let ns = ScratchNs::add("tg_rules_place").expect("ip netns add");
    let (mut same, mut diffs) = (0, Vec::new());
    for k in TableKind::ALL {
        for h in k.hooks() {
            for t in targets {
                let args: Vec<&str> = t.split(' ').collect();
                let real_ok = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &ns.0,
                        "iptables",
                        "-t",
                        k.name(),
                        "-A",
                        h.name(),
                    ])
                    .args(&args)
                    .output()
                    .unwrap()
                    .status
                    .success();
                let mut rs = Ruleset::new();
                let mut full = vec!["-t", k.name(), "-A", h.name()];
                full.extend(&args);
                let ours_ok = apply_command(&mut rs, &full).status == 0;
                if real_ok == ours_ok {
                    same += 1;
                } else {
                    diffs.push(format!(
                        "-t {} -A {} {t}: real {real_ok}, ours {ours_ok}",
                        k.name(),
                        h.name()
                    ));
                }
            }
        }
    }
    println!("{same} placements agree, {} differ", diffs.len());
    for d in &diffs {
        println!("{d}");
    }
    assert!(diffs.is_empty());
}
