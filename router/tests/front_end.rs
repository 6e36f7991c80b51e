//! What kube-proxy relies on from `iptables` and `ip6tables` beyond rules:
//! `--version`, the wait options, the chain before the table, and the
//! exit status and message of each command on what is missing. The
//! expectations were taken from the real iptables/ip6tables 1.8.9
//! (nf_tables) in a fresh network namespace, except `-L`/`-S` of a
//! missing chain, where 1.8.9 says "chain `X' in table `filter' is
//! incompatible, use 'nft' tool." and 1.8.11 (the conformance data,
//! shell/iptables_0004-return-codes_0) the ENOENT message kept here, and
//! `-Z CHAIN N` past the last rule (1.8.9 succeeds, 1.8.11 fails).

use tungate::ruleset::{Family, Ruleset};
use tungate::syntax::{apply_command, tokenize, Output};

fn run(rs: &mut Ruleset, cmdline: &str) -> Output {
    let toks = tokenize(cmdline).unwrap();
    let args: Vec<&str> = toks.iter().map(|t| t.as_ref()).collect();
    apply_command(rs, &args)
}

const ENOENT: &str = ": No chain/target/match by that name.\n";
const BADRULE: &str = ": Bad rule (does a matching rule exist in that chain?).\n";

/// (command, status, stderr after the tool's name; `*` = stderr ignored).
const CASES: &[(&str, i32, &str)] = &[
    ("-C NOPE -j ACCEPT", 1, BADRULE),
    ("-C INPUT -j ACCEPT", 1, BADRULE),
    ("-C INPUT -j NOPE", 2, " v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nTry `TOOL -h' or 'TOOL --help' for more information.\n"),
    ("-S NOPE", 1, ENOENT),
    ("-L NOPE", 1, ENOENT),
    ("-D NOPE -j ACCEPT", 1, BADRULE),
    ("-D INPUT -j ACCEPT", 1, BADRULE),
    ("-D INPUT 1", 1, ENOENT),
    ("-X NOPE", 1, ENOENT),
    ("-F NOPE", 1, ENOENT),
    ("-Z NOPE", 1, ENOENT),
    ("-Z INPUT 3", 1, BADRULE),
    ("-Z NOPE 1", 1, BADRULE),
    ("-E NOPE X", 1, ENOENT),
    ("-P NOPE DROP", 1, ": Bad built-in chain name.\n"),
    ("-A NOPE -j ACCEPT", 1, ENOENT),
    ("-I NOPE -j ACCEPT", 1, ENOENT),
    ("-R NOPE 1 -j ACCEPT", 1, ENOENT),
    ("-t nat -S NOPE", 1, ENOENT),
    ("-t nat -X NOPE", 1, ENOENT),
    ("-C INPUT -m foobar", 2, " v1.8.9 (nf_tables): Couldn't load match `foobar':No such file or directory\n\nTry `TOOL -h' or 'TOOL --help' for more information.\n"),
    ("-N KUBE-PROXY-CANARY -t mangle", 0, ""),
    ("-w 5 -W 100000 -S KUBE-PROXY-CANARY -t mangle", 0, "Ignoring deprecated --wait-interval option.\n"),
    ("-w -L -n", 0, ""),
    ("--wait -L INPUT -n", 0, ""),
    ("-w 5 -C INPUT -j ACCEPT", 1, BADRULE),
    ("-L INPUT 3", 0, ""),
    ("-S INPUT 3", 0, ""),
    ("-A INPUT -j ACCEPT", 0, ""),
    ("-D INPUT 2", 1, ": Index of deletion too big.\n"),
    // 1.8.9 answers 0 and zeroes nothing; 1.8.11 fails (rulenum_0011).
    ("-Z INPUT 2", 1, BADRULE),
    ("-R INPUT 2 -j DROP", 1, ": Index of replacement too big.\n"),
    ("-I INPUT 3 -j DROP", 1, ": Index of insertion too big.\n"),
];

#[test]
fn missing_things_answer_as_the_real_tools_do() {
    for family in [Family::V4, Family::V6] {
        let tool = family.tool();
        let mut rs = Ruleset::new_family(family);
        for (cmd, status, stderr) in CASES {
            let o = run(&mut rs, cmd);
            assert_eq!(o.status, *status, "{tool} {cmd}: {o:?}");
            let want = if stderr.is_empty() || !stderr.starts_with([':', ' ']) {
                stderr.to_string()
            } else {
                format!("{tool}{}", stderr.replace("TOOL", tool))
            };
            assert_eq!(o.stderr, want, "{tool} {cmd}");
        }
        // The mangle table's canary was created with the chain first.
        let o = run(&mut rs, "-t mangle -S KUBE-PROXY-CANARY");
        assert_eq!(o.stdout, "-N KUBE-PROXY-CANARY\n");
    }
}

#[test]
fn version_is_what_1_8_9_prints() {
    for family in [Family::V4, Family::V6] {
        for v in ["--version", "-V", "-A INPUT -j ACCEPT -V"] {
            let mut rs = Ruleset::new_family(family);
            let o = run(&mut rs, v);
            assert_eq!(o.status, 0);
            assert_eq!(o.stdout, format!("{} v1.8.9 (nf_tables)\n", family.tool()));
            assert!(rs.table(tungate::ruleset::TableKind::Filter).chains[0]
                .rules
                .is_empty());
        }
    }
}

#[test]
fn each_tool_refuses_the_other_familys_extensions() {
    let v4 = Ruleset::new_family(Family::V4);
    let v6 = Ruleset::new_family(Family::V6);
    for (rs, cmd, msg) in [
        (
            &v6,
            "-A INPUT -p icmp -m icmp --icmp-type 8",
            "Couldn't load match `icmp'",
        ),
        (
            &v6,
            "-A INPUT -m ttl --ttl-eq 3",
            "Couldn't load match `ttl'",
        ),
        (
            &v6,
            "-A INPUT -f",
            "`-f' is not supported in IPv6, use -m frag instead",
        ),
        (&v6, "-A INPUT -s 10.0.0.1", "10.0.0.1"),
        (
            &v6,
            "-A INPUT -j REJECT --reject-with icmp-port-unreachable",
            "unknown reject type \"icmp-port-unreachable\"",
        ),
        (
            &v6,
            "-t mangle -A INPUT -j TTL --ttl-set 3",
            "unknown option \"--ttl-set\"",
        ),
        (&v4, "-A INPUT -m hl --hl-eq 3", "Couldn't load match `hl'"),
        (
            &v4,
            "-A INPUT -m frag --fragid 3",
            "Couldn't load match `frag'",
        ),
        (&v4, "-A INPUT -m eui64", "Couldn't load match `eui64'"),
        (
            &v4,
            "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1",
            "Couldn't load match `icmp6'",
        ),
        (
            &v4,
            "-t mangle -A INPUT -j HL --hl-set 3",
            "unknown option \"--hl-set\"",
        ),
        (&v4, "-A INPUT -s 2001:db8::1", "2001:db8::1"),
        (
            &v4,
            "-A INPUT -j REJECT --reject-with icmp6-port-unreachable",
            "unknown reject type \"icmp6-port-unreachable\"",
        ),
    ] {
        let o = run(&mut rs.clone(), cmd);
        assert_eq!(o.status, 2, "{cmd}: {o:?}");
        assert!(
            o.stderr.contains(msg),
            "{cmd}: {:?} lacks {msg:?}",
            o.stderr
        );
    }
}
