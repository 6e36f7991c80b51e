//! Listing, counter and return-code expectations from iptables' shell tests
//! (`shared/conformance/shell/`). The scripts' steps are replayed against a
//! tungate `Ruleset` through the same entry points the control socket uses
//! ([`apply_command`], [`restore`]); the expected texts are read from the
//! scripts at run time (their `NAME='...'` / `NAME="..."` assignments).
//! Comparisons ignore trailing white space, as the scripts' `diff -Z` does.

mod common;
use common::shared;

use tungate::ruleset::{Family, Ruleset};
use tungate::syntax::{apply_command, restore, save, tokenize, Output, RestoreOptions};

/// Shell variable assignments `NAME='…'` / `NAME="…"` in file order
/// (single-quoted strings may continue with `\'`).
fn assignments(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(shared().join("conformance/shell").join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let line_start = i == 0 || b[i - 1] == '\n';
        if line_start && (b[i].is_ascii_uppercase()) {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            if j + 1 < b.len() && b[j] == '=' && (b[j + 1] == '\'' || b[j + 1] == '"') {
                let name: String = b[i..j].iter().collect();
                let q = b[j + 1];
                let mut k = j + 2;
                let mut val = String::new();
                loop {
                    if k >= b.len() {
                        break;
                    }
                    let ch = b[k];
                    if ch == q {
                        // `'…'\''` continuation
                        if q == '\'' && k + 2 < b.len() && b[k + 1] == '\\' && b[k + 2] == '\'' {
                            val.push('\'');
                            k += 3;
                            if k < b.len() && b[k] == '\'' {
                                k += 1;
                                continue;
                            }
                            break;
                        }
                        k += 1;
                        // bash concatenation: "…"$VAR"…"
                        if k < b.len() && b[k] == '$' {
                            let mut e = k + 1;
                            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == '_') {
                                e += 1;
                            }
                            val.extend(b[k..e].iter());
                            k = e;
                            if k < b.len() && b[k] == q {
                                k += 1;
                                continue;
                            }
                        }
                        break;
                    }
                    if q == '"' && ch == '\\' && k + 1 < b.len() {
                        val.push(b[k + 1]);
                        k += 2;
                        continue;
                    }
                    val.push(ch);
                    k += 1;
                }
                out.push((name, val));
                i = k;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn var(vars: &[(String, String)], name: &str, nth: usize) -> String {
    vars.iter()
        .filter(|(n, _)| n == name)
        .nth(nth)
        .unwrap_or_else(|| panic!("no {nth}th {name}"))
        .1
        .clone()
}

fn run(rs: &mut Ruleset, cmdline: &str) -> Output {
    let toks = tokenize(cmdline).unwrap();
    let args: Vec<&str> = toks.iter().map(|t| t.as_ref()).collect();
    apply_command(rs, &args)
}

fn ok(rs: &mut Ruleset, cmdline: &str) -> String {
    let o = run(rs, cmdline);
    assert_eq!(o.status, 0, "iptables {cmdline}: {}", o.stderr);
    o.stdout
}

fn trim(s: &str) -> String {
    let v: Vec<&str> = s.lines().map(str::trim_end).collect();
    v.join("\n").trim_end_matches('\n').to_string()
}

fn squash(s: &str) -> String {
    // diff -b: runs of blanks compare equal
    let v: Vec<String> = s
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let lead = if l.starts_with(' ') { " " } else { "" };
            format!("{lead}{}", w.join(" "))
        })
        .collect();
    v.join("\n")
}

#[test]
fn verbose_output_0002() {
    let v = assignments("iptables_0002-verbose-output_0");
    let (rule1, vout1) = (var(&v, "RULE1", 0), var(&v, "VOUT1", 0));
    let (rule2, vout2) = (var(&v, "RULE2", 0), var(&v, "VOUT2", 0));
    let mut rs = Ruleset::new();
    assert_eq!(trim(&ok(&mut rs, &format!("-v -A FORWARD {rule1}"))), vout1);
    assert_eq!(
        trim(&ok(&mut rs, &format!("-v -I FORWARD 2 {rule2}"))),
        vout2
    );
    assert_eq!(trim(&ok(&mut rs, &format!("-v -C FORWARD {rule1}"))), vout1);
    assert_eq!(trim(&ok(&mut rs, &format!("-v -C FORWARD {rule2}"))), vout2);
    assert_eq!(trim(&ok(&mut rs, "-v -n -L")), var(&v, "EXPECT", 0));
    assert_eq!(ok(&mut rs, "-v -N foobar"), "");
    assert_eq!(trim(&ok(&mut rs, &format!("-v -D FORWARD {rule1}"))), vout1);
    assert_eq!(trim(&ok(&mut rs, &format!("-v -D FORWARD {rule2}"))), vout2);
    assert_eq!(trim(&ok(&mut rs, "-v -F")), var(&v, "EXPECT", 1));
    assert_eq!(trim(&ok(&mut rs, "-v -Z")), var(&v, "EXPECT", 2));
    assert_eq!(
        trim(&ok(&mut rs, "-v -F OUTPUT")),
        "Flushing chain `OUTPUT'"
    );
    assert_eq!(trim(&ok(&mut rs, "-v -Z OUTPUT")), "Zeroing chain `OUTPUT'");
    assert_eq!(
        trim(&ok(&mut rs, "-v -F foobar")),
        "Flushing chain `foobar'"
    );
    assert_eq!(trim(&ok(&mut rs, "-v -Z foobar")), "Zeroing chain `foobar'");
    assert_eq!(
        trim(&ok(&mut rs, "-v -X foobar")),
        "Deleting chain `foobar'"
    );
    let mut quiet = String::new();
    for c in [
        "-N foobar".to_string(),
        format!("-A foobar {rule1}"),
        format!("-A foobar {rule2}"),
        format!("-C foobar {rule1}"),
        format!("-D foobar {rule2}"),
        "-F foobar".to_string(),
        "-X foobar".to_string(),
    ] {
        quiet.push_str(&ok(&mut rs, &c));
    }
    assert_eq!(quiet, "");
}

#[test]
fn list_rules_0003() {
    list_rules_0003_for(Family::V4, "iptables_0003-list-rules_0");
}

#[test]
fn ip6tables_list_rules_0003() {
    list_rules_0003_for(Family::V6, "ip6tables_0003-list-rules_0");
}

fn list_rules_0003_for(family: Family, file: &str) {
    let v = assignments(file);
    let mut rs = Ruleset::new_family(family);
    ok(&mut rs, "-N foo");
    ok(&mut rs, "-A FORWARD -i eth23 -o eth42 -j ACCEPT -c 23 42");
    ok(&mut rs, "-A FORWARD -i eth42 -o eth23 -g foo");
    ok(
        &mut rs,
        "-t nat -A OUTPUT -o eth123 -m mark --mark 0x42 -j ACCEPT",
    );
    for (i, cmd) in [
        "-S",
        "-v -S",
        "-S FORWARD",
        "-v -S FORWARD",
        "-t nat -S OUTPUT",
        "-v -t nat -S OUTPUT",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            trim(&ok(&mut rs, cmd)),
            var(&v, "EXPECT", i),
            "{} {cmd}",
            family.tool()
        );
    }
    assert_ne!(run(&mut rs, "-S nonexistent").status, 0);
    assert_ne!(run(&mut rs, "-S nonexistent 23").status, 0);
    assert_eq!(run(&mut rs, "-S FORWARD 234").status, 0);
}

/// The text of the script's first here-document (`<<EOF` to `EOF`).
fn heredoc(file: &str) -> String {
    let text = std::fs::read_to_string(shared().join("conformance/shell").join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let start = text.find("<<EOF\n").expect("a here-document") + 6;
    let end = start + text[start..].find("\nEOF\n").expect("its end");
    text[start..=end].to_string()
}

#[test]
fn ip6tables_verbose_output_0002() {
    let v = assignments("ip6tables_0002-verbose-output_0");
    let mut rs = Ruleset::new_family(Family::V6);
    let rules: Vec<(String, String)> = (1..=5)
        .map(|i| {
            (
                var(&v, &format!("RULE{i}"), 0),
                var(&v, &format!("VOUT{i}"), 0),
            )
        })
        .collect();
    for (i, (rule, vout)) in rules.iter().enumerate() {
        let cmd = if i == 1 {
            format!("-v -I FORWARD 2 {rule}")
        } else {
            format!("-v -A FORWARD {rule}")
        };
        assert_eq!(trim(&ok(&mut rs, &cmd)), *vout, "ip6tables {cmd}");
    }
    for (rule, vout) in &rules {
        assert_eq!(trim(&ok(&mut rs, &format!("-v -C FORWARD {rule}"))), *vout);
    }
    assert_eq!(trim(&ok(&mut rs, "-v -n -L")), var(&v, "EXPECT", 0));
    for (rule, vout) in &rules[..2] {
        assert_eq!(trim(&ok(&mut rs, &format!("-v -D FORWARD {rule}"))), *vout);
    }
    assert_eq!(trim(&ok(&mut rs, "-v -F")), var(&v, "EXPECT", 1));
    assert_eq!(trim(&ok(&mut rs, "-v -Z")), var(&v, "EXPECT", 2));
    assert_eq!(
        trim(&ok(&mut rs, "-v -F OUTPUT")),
        "Flushing chain `OUTPUT'"
    );
    assert_eq!(trim(&ok(&mut rs, "-v -Z OUTPUT")), "Zeroing chain `OUTPUT'");
    ok(&mut rs, "-N foo");
    assert_eq!(trim(&ok(&mut rs, "-v -X foo")), "Deleting chain `foo'");
}

#[test]
fn ip6tables_address_masks_0004() {
    let file = "ip6tables_0004-address-masks_0";
    let mut rs = Ruleset::new_family(Family::V6);
    restore_ok(&mut rs, &heredoc(file), false);
    let v = assignments(file);
    assert_eq!(trim(&ok(&mut rs, "-S FORWARD")), var(&v, "EXPECT", 0));
}

/// Each restore skips the rule lines flagged with the other family
/// (`-6` in iptables-restore, `-4` in ip6tables-restore) and keeps its
/// own family's.
#[test]
fn restores_skip_the_other_familys_lines_0005_0006() {
    for (family, file) in [
        (Family::V4, "ipt-restore_0005-ipt-6_0"),
        (Family::V6, "ipt-restore_0006-ip6t-4_0"),
    ] {
        let mut rs = Ruleset::new_family(family);
        restore_ok(&mut rs, &heredoc(file), false);
        let shown: Vec<String> = ok(&mut rs, "-S")
            .lines()
            .filter(|l| !l.starts_with("-P"))
            .map(str::to_string)
            .collect();
        let v = assignments(file);
        assert_eq!(shown.join("\n"), var(&v, "EXPECT", 0), "{file}");
    }
}

/// ip6tables_0005: `-C` finds an IPv6 DNAT rule with a bracketed address
/// and port, and not one that differs in the port.
#[test]
fn ip6tables_rule_check_0005() {
    let rule = "-p tcp --dport 81 -j DNAT --to-destination [::1]:81";
    let mut rs = Ruleset::new_family(Family::V6);
    ok(&mut rs, "-t nat -N testchain");
    ok(&mut rs, &format!("-t nat -A testchain {rule}"));
    ok(&mut rs, &format!("-t nat -C testchain {rule}"));
    let other = rule.replace("81", "82");
    assert_eq!(
        run(&mut rs, &format!("-t nat -C testchain {other}")).status,
        1
    );
}

#[test]
fn chain_refs_0001() {
    let mut rs = Ruleset::new();
    ok(&mut rs, "-N foo");
    assert!(ok(&mut rs, "-L").contains("Chain foo (0 references)"));
    ok(&mut rs, "-A foo -j ACCEPT");
    assert!(ok(&mut rs, "-L").contains("Chain foo (0 references)"));
    ok(&mut rs, "-A FORWARD -j foo");
    assert!(ok(&mut rs, "-L").contains("Chain foo (1 references)"));
}

#[test]
fn return_codes_0004() {
    // The script runs every command through iptables and ip6tables.
    for family in [Family::V4, Family::V6] {
        return_codes_0004_for(family);
    }
}

fn return_codes_0004_for(family: Family) {
    let v = assignments("iptables_0004-return-codes_0");
    let tool = family.tool();
    let m = |n: &str| format!("{tool}{}", var(&v, n, 0));
    let mut rs = Ruleset::new_family(family);
    let cases: Vec<(i32, Option<String>, &str)> = vec![
        (0, None, "-N foo"),
        (1, Some(m("EEXIST")), "-N foo"),
        (0, None, "-F foo"),
        (0, None, "-Z foo"),
        (1, Some(m("ENOENT")), "-F bar"),
        (1, Some(m("ENOENT")), "-Z bar"),
        (0, None, "-E foo bar"),
        (1, Some(m("EEXIST_F")), "-E foo bar"),
        (1, Some(m("ENOENT")), "-E foo bar2"),
        (1, Some(m("ENOENT")), "-L foo"),
        (0, None, "-N foo2"),
        (1, Some(m("EEXIST_F")), "-E foo2 bar"),
        (0, None, "-A INPUT -j ACCEPT"),
        (1, Some(m("ENOENT")), "-A noexist -j ACCEPT"),
        (2, None, "-I INPUT -j foobar"),
        (2, None, "-R INPUT 1 -j foobar"),
        (2, None, "-D INPUT -j foobar"),
        (
            1,
            Some(m("EBADRULE")),
            "-D INPUT -p tcp --dport 22 -j ACCEPT",
        ),
        (1, Some(m("E2BIG_I")), "-I INPUT 23 -j ACCEPT"),
        (1, Some(m("E2BIG_D")), "-D INPUT 23"),
        (1, Some(m("E2BIG_R")), "-R INPUT 23 -j ACCEPT"),
        (1, Some(m("ENOENT")), "-I nonexist 23 -j ACCEPT"),
        (1, Some(m("ENOENT")), "-D nonexist 23"),
        (1, Some(m("ENOENT")), "-R nonexist 23 -j ACCEPT"),
        (0, None, "-C INPUT -j ACCEPT"),
        (1, Some(m("EBADRULE")), "-C FORWARD -j ACCEPT"),
        (1, None, "-C nonexist -j ACCEPT"),
        (2, None, "-C INPUT -m foobar -j ACCEPT"),
        (2, None, "-C INPUT -j foobar"),
        (3, None, "-t foobar -C INPUT -j ACCEPT"),
    ];
    for (rc, msg, c) in cases {
        let o = run(&mut rs, c);
        assert_eq!(o.status, rc, "{tool} {c}: {}", o.stderr);
        if let Some(msg) = msg {
            assert!(
                o.stderr.contains(&msg),
                "{tool} {c}: {:?} lacks {msg:?}",
                o.stderr
            );
        }
    }
    // ENOMTH's pattern: "iptables v<version> <word>: Couldn't load match `foobar'"
    let o = run(&mut rs, "-C INPUT -m foobar -j ACCEPT");
    assert!(o.stderr.starts_with(&format!("{tool} v")), "{}", o.stderr);
    assert!(
        o.stderr.contains("Couldn't load match `foobar'"),
        "{}",
        o.stderr
    );
}

fn restore_ok(rs: &mut Ruleset, text: &str, counters: bool) {
    restore(
        rs,
        text,
        RestoreOptions {
            counters,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("restore: {e}"));
}

#[test]
fn zero_counters_0007() {
    let v = assignments("iptables_0007-zero-counters_0");
    let countr = "4242";
    let setup = "*filter\n:INPUT ACCEPT [1:23]\n:FOO - [0:0]\n[12:345] -A INPUT -i lo -p icmp -m comment --comment \"4242\"\n[22:123] -A FOO -m comment --comment one\n[44:123] -A FOO -m comment --comment two\n[66:123] -A FOO -m comment --comment three\nCOMMIT\n";
    let mut rs = Ruleset::new();
    restore_ok(&mut rs, setup, true);
    let counter = |rs: &Ruleset, pat: &str| -> String {
        save(rs, true)
            .lines()
            .find(|l| l.contains(pat))
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(counter(&rs, &format!("comment {countr}")), "[12:345]");
    ok(&mut rs, "-Z FOO 2");
    assert_eq!(counter(&rs, "comment two"), "[0:0]");
    assert_eq!(counter(&rs, "comment three"), "[66:123]");
    ok(&mut rs, "-Z FOO");
    assert_ne!(counter(&rs, &format!("comment {countr}")), "[0:0]");
    assert_eq!(counter(&rs, "comment one"), "[0:0]");
    ok(&mut rs, "-Z");
    assert_eq!(counter(&rs, &format!("comment {countr}")), "[0:0]");
    let expect = var(&v, "EXPECT", 0).replace("$COUNTR", countr);
    assert_eq!(trim(&save(&rs, true)), expect);
    ok(&mut rs, "-D INPUT -i lo -p icmp -m comment --comment 4242");
    ok(&mut rs, "-D FOO -m comment --comment one");
    ok(&mut rs, "-D FOO -m comment --comment two");
    ok(&mut rs, "-D FOO -m comment --comment three");
    ok(&mut rs, "-X FOO");
}

#[test]
fn chain_counters_0007() {
    let v = assignments("chain_0007counters_0");
    let mut rs = Ruleset::new();
    restore_ok(&mut rs, &var(&v, "SETUP", 0), true);
    ok(&mut rs, "-Z FORWARD 1");
    assert_eq!(trim(&ok(&mut rs, "-vS FORWARD")), var(&v, "EXPECT", 0));
    ok(&mut rs, "-Z FORWARD");
    assert_eq!(trim(&ok(&mut rs, "-vS FORWARD")), var(&v, "EXPECT", 1));
}

#[test]
fn rulenum_0011() {
    let v = assignments("iptables_0011-rulenum_0");
    let load = "*filter\n-A FORWARD -m mark --mark 0x1 -c 1 2\n-A FORWARD -m mark --mark 0x2 -c 2 3\nCOMMIT\n";
    let e = |i| var(&v, "EXPECT", i);
    let no_p = |s: String| -> String {
        s.lines()
            .filter(|l| !l.starts_with("-P"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut rs = Ruleset::new();
    restore_ok(&mut rs, load, false);
    assert_ne!(run(&mut rs, "-L 0").status, 0);
    assert_eq!(
        squash(&trim(&ok(&mut rs, "-v -L FORWARD 1"))),
        squash(&e(0))
    );
    assert_eq!(
        squash(&trim(&ok(&mut rs, "-v -L FORWARD 2"))),
        squash(&e(1))
    );
    assert_eq!(ok(&mut rs, "-L FORWARD 3"), "");
    assert_ne!(run(&mut rs, "-S FORWARD 0").status, 0);
    assert_eq!(trim(&ok(&mut rs, "-v -S FORWARD 1")), e(2));
    assert_eq!(trim(&ok(&mut rs, "-v -S FORWARD 2")), e(3));
    assert_eq!(ok(&mut rs, "-S FORWARD 3"), "");
    assert_ne!(run(&mut rs, "-v -Z FORWARD 0").status, 0);
    assert_eq!(ok(&mut rs, "-v -Z FORWARD 1"), "");
    assert_eq!(no_p(ok(&mut rs, "-v -S")), e(4));
    assert_eq!(ok(&mut rs, "-v -Z FORWARD 2"), "");
    assert_eq!(no_p(ok(&mut rs, "-v -S")), e(5));
    assert_ne!(run(&mut rs, "-v -Z FORWARD 3").status, 0);

    restore_ok(&mut rs, load, false);
    assert_eq!(ok(&mut rs, "-v -L -Z FORWARD 1"), "");
    assert_eq!(no_p(ok(&mut rs, "-v -S")), e(6));
    assert_eq!(ok(&mut rs, "-v -L -Z FORWARD 2"), "");
    assert_eq!(no_p(ok(&mut rs, "-v -S")), e(7));

    restore_ok(&mut rs, load, false);
    assert_ne!(run(&mut rs, "-v -Z -L FORWARD 0").status, 0);
    assert_eq!(
        squash(&trim(&ok(&mut rs, "-v -Z -L FORWARD 1"))),
        squash(&e(8))
    );
    assert_eq!(
        squash(&trim(&ok(&mut rs, "-v -Z -L FORWARD 2"))),
        squash(&e(9))
    );
    assert_ne!(run(&mut rs, "-v -Z -L FORWARD 0").status, 0);
    assert_eq!(
        squash(&trim(&ok(&mut rs, "-v -Z -L FORWARD 3"))),
        squash(&e(10))
    );

    restore_ok(&mut rs, load, false);
    assert_eq!(ok(&mut rs, "-v -D FORWARD 1"), "");
    assert_eq!(no_p(ok(&mut rs, "-v -S")), e(11));
    restore_ok(&mut rs, load, false);
    assert_eq!(ok(&mut rs, "-v -D FORWARD 2"), "");
    assert_eq!(no_p(ok(&mut rs, "-v -S")), e(12));
    assert_ne!(run(&mut rs, "-v -D FORWARD 3").status, 0);
}

#[test]
fn flush_noflush_0007() {
    let v = assignments("ipt-restore_0007-flush-noflush_0");
    let mut rs = Ruleset::new();
    restore_ok(&mut rs, "*nat\n-A POSTROUTING -j ACCEPT\nCOMMIT\n", false);
    assert_eq!(trim(&save(&rs, false)), var(&v, "EXPECT", 0));
    restore_ok(&mut rs, "*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n", false);
    assert_eq!(trim(&save(&rs, false)), var(&v, "EXPECT", 1));
}

#[test]
fn restore_counters_0008() {
    let v = assignments("ipt-restore_0008-restore-counters_0");
    let dump = var(&v, "DUMP", 0);
    let foo = |rs: &Ruleset| -> String {
        save(rs, true)
            .lines()
            .filter(|l| l.contains("foo"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut rs = Ruleset::new();
    restore_ok(&mut rs, &dump, false);
    assert_eq!(foo(&rs), var(&v, "EXPECT", 0));
    restore_ok(&mut rs, &dump, true);
    assert_eq!(foo(&rs), var(&v, "EXPECT", 1));
    let bad = "*filter\n:FORWARD ACCEPT bar\nCOMMIT\n";
    assert!(restore(&mut rs, bad, RestoreOptions::default()).is_err());
}
