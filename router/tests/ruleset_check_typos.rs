//! `tungate ruleset check` names each mistake: a good ruleset with one typo
//! put in five (here six) different places; each run must fail with exit
//! status 1 and a message naming the line, the token and what was expected.

mod common;
use common::rule_count;

use std::io::Write;
use std::process::{Command, Stdio};

const GOOD: &str = "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:LOGDROP - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -j LOGDROP
-A LOGDROP -j LOG --log-prefix \"drop: \"
-A LOGDROP -j DROP
COMMIT
";

fn check(text: &str) -> (i32, String) {
    check_with(text, &[])
}

/// `tungate ruleset check [extra] -` on `text`: exit status and stderr.
fn check_with(text: &str, extra: &[&str]) -> (i32, String) {
    let mut ch = Command::new(env!("CARGO_BIN_EXE_tungate"))
        .args(["ruleset", "check"])
        .args(extra)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tungate");
    ch.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = ch.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn good_file_passes() {
    let (rc, err) = check(GOOD);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(err, "");
}

#[test]
fn each_typo_is_named() {
    // (wrong, right, expected pieces of the message)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "--dprot 22",
            "--dport 22",
            &[
                "line 8:",
                "unknown option \"--dprot\"",
                "did you mean \"--dport\"",
            ],
        ),
        (
            "-m conntrak",
            "-m conntrack",
            &["line 7:", "`conntrak'", "did you mean \"conntrack\""],
        ),
        (
            "RELATED,ESTABLISHD",
            "RELATED,ESTABLISHED",
            &["line 7:", "\"ESTABLISHD\"", "--ctstate", "ESTABLISHED"],
        ),
        (
            "-j LOGDRP",
            "-j LOGDROP",
            &[
                "line 9:",
                "'LOGDRP' does not exist",
                "did you mean \"LOGDROP\"",
            ],
        ),
        (
            ":INPUT DORP",
            ":INPUT DROP",
            &["line 2:", "\"DORP\"", "ACCEPT or DROP"],
        ),
        (
            "10.0.0.0/88",
            "10.0.0.0/8",
            &["line 8:", "\"10.0.0.0/88\"", "-s", "prefix length 0-32"],
        ),
    ];
    for (wrong, right, pieces) in cases {
        assert!(GOOD.contains(right), "fixture lacks {right:?}");
        let bad = GOOD.replacen(right, wrong, 1);
        let (rc, err) = check(&bad);
        assert_eq!(rc, 1, "typo {wrong:?} accepted: {err}");
        for p in *pieces {
            assert!(
                err.contains(p),
                "typo {wrong:?}: message {err:?} lacks {p:?}"
            );
        }
    }
}

/// An ip6tables-restore file for `ruleset check -6`.
const GOOD6: &str = "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:LOGDROP - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT
-A INPUT -s 2001:db8::/32 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -m hl --hl-lt 2 -m frag --fragfirst -j LOGDROP
-A LOGDROP -j LOG --log-prefix \"drop: \"
-A LOGDROP -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
";

#[test]
fn good_ipv6_file_passes_with_dash_6_only() {
    let (rc, err) = check_with(GOOD6, &["-6"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(err, "");
    // Read as an iptables-restore file, its IPv6 addresses are refused.
    let (rc, err) = check(GOOD6);
    assert_eq!(rc, 1);
    assert!(err.contains("line 7:"), "{err}");
}

#[test]
fn each_ipv6_typo_is_named() {
    // (wrong, right, expected pieces of the message)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "--icmpv6-tpye echo",
            "--icmpv6-type echo",
            &[
                "line 7:",
                "unknown option \"--icmpv6-tpye\"",
                "did you mean \"--icmpv6-type\"",
            ],
        ),
        (
            "echo-requets",
            "echo-request",
            &[
                "line 7:",
                "\"echo-requets\"",
                "--icmpv6-type",
                "ICMPv6 type",
            ],
        ),
        (
            "2001:db8::/320",
            "2001:db8::/32",
            &["line 8:", "\"2001:db8::/320\"", "-s", "prefix length 0-128"],
        ),
        (
            "2001:dbg::/32",
            "2001:db8::/32",
            &["line 8:", "\"2001:dbg::/32\"", "-s", "an IPv6 address"],
        ),
        (
            "-m hll",
            "-m hl",
            &["line 9:", "`hll'", "did you mean \"hl\""],
        ),
        (
            "--fragfrist",
            "--fragfirst",
            &[
                "line 9:",
                "unknown option \"--fragfrist\"",
                "did you mean \"--fragfirst\"",
            ],
        ),
        (
            "icmp6-adm-prohibitted",
            "icmp6-adm-prohibited",
            &[
                "line 11:",
                "\"icmp6-adm-prohibitted\"",
                "--reject-with",
                "icmp6-adm-prohibited",
            ],
        ),
        (
            "-j LOGDRP",
            "-j LOGDROP",
            &[
                "line 9:",
                "'LOGDRP' does not exist",
                "did you mean \"LOGDROP\"",
            ],
        ),
    ];
    for (wrong, right, pieces) in cases {
        assert!(GOOD6.contains(right), "fixture lacks {right:?}");
        let bad = GOOD6.replacen(right, wrong, 1);
        let (rc, err) = check_with(&bad, &["-6"]);
        assert_eq!(rc, 1, "typo {wrong:?} accepted: {err}");
        for p in *pieces {
            assert!(
                err.contains(p),
                "typo {wrong:?}: message {err:?} lacks {p:?}"
            );
        }
    }
    // An IPv4-only match in an IPv6 file is as unknown as a typo.
    let bad = GOOD6.replacen("-m hl --hl-lt 2", "-m ttl --ttl-lt 2", 1);
    let (rc, err) = check_with(&bad, &["-6"]);
    assert_eq!(rc, 1);
    assert!(err.contains("line 9:") && err.contains("`ttl'"), "{err}");
}

#[test]
fn nothing_applied_after_error_in_table() {
    // restore is all-or-nothing per COMMIT: the filter table of a failing
    // file is not applied, an earlier committed table is.
    use tungate::ruleset::{Ruleset, TableKind};
    use tungate::syntax::{restore, RestoreOptions};
    let text = "*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n*filter\n-A INPUT -j ACCEPT\n-A INPUT --bogus\nCOMMIT\n";
    let mut rs = Ruleset::new();
    let e = restore(&mut rs, text, RestoreOptions::default()).unwrap_err();
    assert_eq!(e.line, 6);
    assert_eq!(rule_count(&rs, TableKind::Nat, "POSTROUTING"), 1);
    assert_eq!(rule_count(&rs, TableKind::Filter, "INPUT"), 0);
}
