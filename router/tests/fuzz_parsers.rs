//! Fuzz harness for the restore parser and the iptables command-line parser,
//! runnable with stable Rust (no cargo-fuzz): mutation-based, seeded from the
//! shared conformance data (dumps and .t rules), deterministic per seed.
//!
//! Properties checked on every input:
//! * `restore`, `tokenize`, `apply_command`, the printers never panic;
//! * an accepted ruleset saves to text that restores again and saves
//!   byte-identically (`save ∘ restore` is a fixed point), and `-S` lines
//!   re-apply as commands to the same ruleset.
//!
//! In `cargo test` it runs briefly (2 s). The long run:
//!
//! ```text
//! TUNGATE_FUZZ_SECS=600 cargo test --release -p tungate --test fuzz_parsers -- --nocapture
//! ```
//!
//! `TUNGATE_FUZZ_SEED` picks the seed (default: a fixed one, printed). A
//! failing input is written to `target/fuzz-failure-<seed>.txt`.

mod common;
mod fuzz_common;
use common::shared;
use fuzz_common::Rng;

use std::sync::LazyLock;

use tungate::ruleset::{Family, Ruleset, TableKind};
use tungate::syntax::{
    apply_command, list, list_rules, restore, save, tokenize, ListFormat, RestoreOptions,
};

/// The mutation dictionary: "!", the commands, then options, values and
/// restore-file tokens.
static DICT: LazyLock<Vec<&str>> =
    LazyLock::new(|| [&["!"][..], fuzz_common::COMMAND_FLAGS, MORE_WORDS].concat());

const MORE_WORDS: &[&str] = &[
    "-p",
    "-s",
    "-d",
    "-i",
    "-o",
    "-f",
    "-j",
    "-g",
    "-m",
    "-c",
    "-v",
    "-n",
    "-x",
    "tcp",
    "udp",
    "icmp",
    "all",
    "0",
    "1",
    "65535",
    "65536",
    "-1",
    ":",
    "1:2",
    "2:1",
    "0x10/0xff",
    "1.2.3.4",
    "1.2.3.4/33",
    "0.0.0.0/0",
    "255.255.255.255",
    "eth+",
    "+",
    "ACCEPT",
    "DROP",
    "RETURN",
    "REJECT",
    "LOG",
    "MARK",
    "CONNMARK",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "CT",
    "NOTRACK",
    "TCPMSS",
    "NFLOG",
    "foo",
    "INPUT",
    "FORWARD",
    "OUTPUT",
    "PREROUTING",
    "POSTROUTING",
    "--dport",
    "--sport",
    "--tcp-flags",
    "SYN,ACK",
    "SYN",
    "--syn",
    "--ctstate",
    "NEW,ESTABLISHED",
    "--state",
    "--comment",
    "\"a b\"",
    "'x'",
    "\"",
    "--mark",
    "--mode",
    "random",
    "nth",
    "--probability",
    "0.5",
    "--every",
    "--packet",
    "--src-type",
    "LOCAL",
    "--limit",
    "5/min",
    "--limit-burst",
    "--length",
    "--ttl-eq",
    "--mss",
    "--set",
    "--rcheck",
    "--seconds",
    "--reap",
    "--name",
    "--to-destination",
    "1.1.1.1-1.1.1.9:80-90/5",
    "--to-source",
    "--to-ports",
    "--random",
    "--random-fully",
    "--persistent",
    "--reject-with",
    "tcp-reset",
    "--log-prefix",
    "--log-level",
    "--set-xmark",
    "--save-mark",
    "--restore-mark",
    "--nfmask",
    "--ctmask",
    "--set-mss",
    "--clamp-mss-to-pmtu",
    "--notrack",
    "--zone",
    "--icmp-type",
    "any",
    "3/4",
    "--dports",
    "1,2,3:4",
    "--src-range",
    "1.1.1.1-2.2.2.2",
    "[1:2]",
    "[x:y]",
    "*filter",
    "*nat",
    "*raw",
    "*mangle",
    "*security",
    "COMMIT",
    ":foo - [0:0]",
    ":INPUT DROP [1:2]",
    "-m tcp",
    "-m conntrack",
    "-m multiport",
    "-m statistic",
    "-m recent",
    "--protocol=tcp",
    "-ptcp",
    "-jACCEPT",
    "\\",
    "#",
];

fn corpus() -> Vec<String> {
    let mut v = Vec::new();
    for dir in ["conformance/dumps", "conformance/dumps6"] {
        if let Ok(rd) = std::fs::read_dir(shared().join(dir)) {
            for e in rd.flatten() {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    v.push(t);
                }
            }
        }
    }
    let tdir = shared().join("conformance/iptables-t");
    let mut rules = String::from("*filter\n:foo - [0:0]\n");
    if let Ok(rd) = std::fs::read_dir(&tdir) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                for l in t.lines() {
                    if let Some(r) = l.split(';').next().filter(|r| r.starts_with('-')) {
                        rules.push_str("-A INPUT ");
                        rules.push_str(r);
                        rules.push('\n');
                    }
                }
            }
        }
    }
    rules.push_str("COMMIT\n");
    v.push(rules);
    v.push("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n".to_string());
    v
}

fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        let li = rng.below(lines.len());
        match rng.below(8) {
            0 => {
                // replace a token with a dictionary word
                let mut toks: Vec<String> = lines[li].split(' ').map(str::to_string).collect();
                let ti = rng.below(toks.len());
                toks[ti] = DICT[rng.below(DICT.len())].to_string();
                lines[li] = toks.join(" ");
            }
            1 => {
                // insert a dictionary word
                let mut toks: Vec<String> = lines[li].split(' ').map(str::to_string).collect();
                let ti = rng.below(toks.len() + 1);
                toks.insert(ti, DICT[rng.below(DICT.len())].to_string());
                lines[li] = toks.join(" ");
            }
            2 => {
                // delete a token
                let mut toks: Vec<String> = lines[li].split(' ').map(str::to_string).collect();
                if toks.len() > 1 {
                    let ti = rng.below(toks.len());
                    toks.remove(ti);
                }
                lines[li] = toks.join(" ");
            }
            3 => {
                // flip a byte
                let mut b = lines[li].clone().into_bytes();
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] = (rng.next() & 0x7f) as u8;
                }
                lines[li] = String::from_utf8_lossy(&b).into_owned();
            }
            4 => {
                let l = lines[li].clone();
                lines.insert(rng.below(lines.len() + 1), l);
            }
            5 => {
                if lines.len() > 1 {
                    lines.remove(li);
                }
            }
            6 => {
                // splice a line from elsewhere in the corpus
                let l = lines[rng.below(lines.len())].clone();
                lines[li] = l;
            }
            _ => {
                // digits: push numbers to edges
                let edges = [
                    "0",
                    "4294967295",
                    "4294967296",
                    "255",
                    "256",
                    "65535",
                    "99999999999999999999",
                ];
                lines[li] = lines[li]
                    .split(' ')
                    .map(|t| {
                        if t.bytes().all(|c| c.is_ascii_digit())
                            && !t.is_empty()
                            && rng.below(3) == 0
                        {
                            edges[rng.below(edges.len())].to_string()
                        } else {
                            t.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        }
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// One input through every entry point, as iptables and as ip6tables
/// input; Err describes a property failure.
fn check(input: &str) -> Result<(), String> {
    for family in [Family::V4, Family::V6] {
        check_family(input, family).map_err(|e| format!("{}: {e}", family.tool()))?;
    }
    Ok(())
}

fn check_family(input: &str, family: Family) -> Result<(), String> {
    let opts = RestoreOptions {
        counters: true,
        ..Default::default()
    };
    let mut rs = Ruleset::new_family(family);
    if restore(&mut rs, input, opts).is_ok() {
        let s1 = save(&rs, true);
        let mut rs2 = Ruleset::new_family(family);
        restore(&mut rs2, &s1, opts)
            .map_err(|e| format!("saved text does not restore: {e}\n{s1}"))?;
        let s2 = save(&rs2, true);
        if s1 != s2 {
            return Err(format!("save not a fixed point:\n{s1}\n---\n{s2}"));
        }
        for k in TableKind::ALL {
            let mut out = String::new();
            for f in [
                ListFormat::default(),
                ListFormat {
                    numeric: true,
                    verbose: true,
                    exact: true,
                    line_numbers: true,
                },
            ] {
                list(&mut out, rs.table(k), None, f);
            }
            // `-S` lines re-applied as commands rebuild the same table.
            let mut rules = String::new();
            list_rules(&mut rules, rs.table(k), None, None, true);
            let mut rs3 = Ruleset::new_family(family);
            for line in rules.lines() {
                let toks = tokenize(line)
                    .map_err(|e| format!("-S line does not tokenize: {e}: {line}"))?;
                let mut args: Vec<&str> = vec!["-t", k.name()];
                args.extend(toks.iter().map(|t| t.as_ref()));
                let o = apply_command(&mut rs3, &args);
                if o.status != 0 {
                    return Err(format!("-S line rejected: {line}: {}", o.stderr));
                }
            }
            if rs.is_present(k) {
                let (a, b) = (
                    tungate::syntax::save_table_text(&rs, k, true),
                    tungate::syntax::save_table_text(&rs3, k, true),
                );
                if a != b {
                    return Err(format!(
                        "-S lines rebuild a different table:\n{a}\n---\n{b}"
                    ));
                }
            }
        }
    }
    // Every line also as a command line.
    for line in input.lines().take(50) {
        if let Ok(toks) = tokenize(line) {
            let args: Vec<&str> = toks.iter().map(|t| t.as_ref()).collect();
            let mut r = Ruleset::new_family(family);
            let _ = apply_command(&mut r, &["-N", "foo"]);
            let _ = apply_command(&mut r, &args);
        }
    }
    Ok(())
}

#[test]
fn fuzz_restore_and_command_parsers() {
    let (secs, seed, mut rng) = fuzz_common::settings("fuzz");
    let corpus = corpus();
    assert!(!corpus.is_empty());
    let mut accepted = 0u64;
    let failure = fuzz_common::run_for("fuzz", secs, |_| {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base);
        match fuzz_common::check(|| check(&input)) {
            Ok(()) => {
                let mut rs = Ruleset::new();
                if restore(&mut rs, &input, RestoreOptions::default()).is_ok() {
                    accepted += 1;
                }
                None
            }
            Err(msg) => Some((input, msg)),
        }
    });
    println!("fuzz: {accepted} accepted by restore");
    if let Some((input, msg)) = failure {
        let path = fuzz_common::save_failure("fuzz-failure", seed, &input);
        panic!("fuzz failure ({msg}); input saved to {}", path.display());
    }
}
