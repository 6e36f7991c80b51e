//! Rule-engine semantics not covered by the conformance data: jump loops,
//! target placement per table and reachable hook, references, counters API.

mod common;
use common::rule_count;

use tungate::ruleset::{Counters, Ruleset, TableKind, Target};
use tungate::syntax::{apply_command, restore, tokenize, Output, RestoreOptions};

fn run(rs: &mut Ruleset, cmdline: &str) -> Output {
    let toks = tokenize(cmdline).unwrap();
    let args: Vec<&str> = toks.iter().map(|t| t.as_ref()).collect();
    apply_command(rs, &args)
}

#[test]
fn jump_loops_are_rejected() {
    let mut rs = Ruleset::new();
    for c in ["-N a", "-N b", "-N c", "-A a -j b", "-A b -j c"] {
        assert_eq!(run(&mut rs, c).status, 0, "{c}");
    }
    let o = run(&mut rs, "-A c -j a");
    assert_ne!(o.status, 0, "loop a->b->c->a accepted");
    assert!(o.stderr.contains("loop"), "{}", o.stderr);
    assert_eq!(rule_count(&rs, TableKind::Filter, "c"), 0);
    // self-loop, and in a restore (whole table rejected)
    assert_ne!(run(&mut rs, "-A a -j a").status, 0);
    let text = "*filter\n:x - [0:0]\n:y - [0:0]\n-A x -j y\n-A y -g x\nCOMMIT\n";
    let e = restore(&mut rs, text, RestoreOptions::default()).unwrap_err();
    assert_eq!(e.line, 6);
    assert!(rs.table(TableKind::Filter).chain("x").is_none());
}

/// Accept/reject decisions checked against the real iptables 1.8.9.
#[test]
fn targets_only_where_iptables_allows_them() {
    let mut rs = Ruleset::new();
    let bad = [
        "-A INPUT -j DNAT --to-destination 1.1.1.1",
        "-t nat -A POSTROUTING -j DNAT --to-destination 1.1.1.1",
        "-t nat -A PREROUTING -j SNAT --to-source 1.1.1.1",
        "-t nat -A PREROUTING -j MASQUERADE",
        "-t nat -A POSTROUTING -p tcp -j REDIRECT --to-ports 80",
        "-A INPUT -j NOTRACK",
        "-t mangle -A PREROUTING -j CT --notrack",
        "-t nat -A PREROUTING -j REJECT",
        "-t nat -A INPUT -j DNAT --to 1.1.1.1",
        "-t nat -A OUTPUT -j SNAT --to 1.1.1.1",
        "-t mangle -A PREROUTING -j NOTRACK",
        "-t nat -A PREROUTING -j CHECKSUM --checksum-fill",
        "-t mangle -A INPUT -p tcp -j TCPMSS --clamp-mss-to-pmtu",
        "-t mangle -A INPUT -j REJECT",
        "-t nat -A OUTPUT -j REJECT",
        "-t security -A FORWARD -j REJECT",
        "-t mangle -A PREROUTING -p tcp -j TCPMSS --clamp-mss-to-pmtu",
    ];
    let good = [
        "-t nat -A PREROUTING -j DNAT --to-destination 1.1.1.1",
        "-t nat -A OUTPUT -j DNAT --to-destination 1.1.1.1",
        "-t nat -A POSTROUTING -j SNAT --to-source 1.1.1.1",
        "-t nat -A INPUT -j SNAT --to-source 1.1.1.1",
        "-t nat -A POSTROUTING -j MASQUERADE",
        "-t raw -A PREROUTING -j NOTRACK",
        "-t raw -A OUTPUT -j CT --notrack",
        "-A FORWARD -j REJECT --reject-with icmp-admin-prohibited",
        "-t mangle -A POSTROUTING -p tcp -j TCPMSS --clamp-mss-to-pmtu",
        "-t mangle -A PREROUTING -j MARK --set-mark 1",
        "-t nat -A POSTROUTING -p tcp -j TCPMSS --set-mss 5",
        "-t mangle -A POSTROUTING -p udp -j CHECKSUM --checksum-fill",
        "-t nat -A PREROUTING -j NFLOG",
        "-t raw -A OUTPUT -p tcp -j TCPMSS --clamp-mss-to-pmtu",
        "-t nat -A PREROUTING -j MARK --set-mark 1",
        "-t raw -A PREROUTING -j LOG",
    ];
    for (cmds, accepted) in [(&bad[..], false), (&good[..], true)] {
        for c in cmds {
            let o = run(&mut rs, c);
            assert_eq!(o.status == 0, accepted, "iptables {c}: {}", o.stderr);
        }
    }
}

#[test]
fn placement_follows_jumps_into_user_chains() {
    let mut rs = Ruleset::new();
    assert_eq!(run(&mut rs, "-t nat -N SVC").status, 0);
    assert_eq!(
        run(&mut rs, "-t nat -A SVC -j DNAT --to-destination 10.0.0.1").status,
        0
    );
    assert_eq!(run(&mut rs, "-t nat -A PREROUTING -j SVC").status, 0);
    // SVC's DNAT is not allowed from POSTROUTING: the jump is refused.
    let o = run(&mut rs, "-t nat -A POSTROUTING -j SVC");
    assert_ne!(o.status, 0);
    assert!(o.stderr.contains("DNAT"), "{}", o.stderr);
    assert_eq!(rs.table(TableKind::Nat).references("SVC"), 1);
}

#[test]
fn jumps_need_user_chains_and_chain_lifecycle() {
    let mut rs = Ruleset::new();
    assert_eq!(run(&mut rs, "-A INPUT -j nochain").status, 2);
    assert_eq!(run(&mut rs, "-A INPUT -j FORWARD").status, 2);
    assert_eq!(run(&mut rs, "-N web").status, 0);
    assert_eq!(run(&mut rs, "-A INPUT -p tcp --dport 80 -j web").status, 0);
    assert_ne!(run(&mut rs, "-X web").status, 0, "referenced chain deleted");
    assert_eq!(run(&mut rs, "-E web www").status, 0);
    let t = rs.table(TableKind::Filter);
    assert_eq!(
        t.chain("INPUT").unwrap().rules[0].target,
        Target::Jump("www".into())
    );
    assert_eq!(run(&mut rs, "-D INPUT -p tcp --dport 80 -j www").status, 0);
    assert_eq!(run(&mut rs, "-X www").status, 0);
    assert!(rs.table(TableKind::Filter).chain("www").is_none());
    assert_ne!(run(&mut rs, "-P foo DROP").status, 0);
    assert_eq!(run(&mut rs, "-P INPUT DROP").status, 0);
}

#[test]
fn counters_can_be_set_for_listing() {
    let mut rs = Ruleset::new();
    assert_eq!(run(&mut rs, "-A INPUT -j ACCEPT").status, 0);
    let c = Counters {
        packets: 123456,
        bytes: 987654321,
    };
    assert!(rs.set_rule_counters(TableKind::Filter, "INPUT", 0, c));
    assert!(!rs.set_rule_counters(TableKind::Filter, "INPUT", 1, c));
    assert!(rs.set_policy_counters(TableKind::Filter, "INPUT", c));
    let o = run(&mut rs, "-L INPUT -v");
    assert!(
        o.stdout
            .contains("(policy ACCEPT 123K packets, 988M bytes)"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains(" 123K  988M ACCEPT"), "{}", o.stdout);
    let o = run(&mut rs, "-L INPUT -v -x");
    assert!(
        o.stdout.contains("  123456 987654321 ACCEPT"),
        "{}",
        o.stdout
    );
}

#[test]
fn verbose_echo_matches_iptables_189() {
    // `iptables -v -A ...` echo lines taken from the real iptables 1.8.9
    // (trailing blanks trimmed).
    let mut rs = Ruleset::new();
    assert_eq!(run(&mut rs, "-N foo").status, 0);
    let cases = [
        (
            "-v -A INPUT -p tcp --dport 22 -j LOG --log-prefix x",
            "LOG  tcp opt -- in * out *  0.0.0.0/0  -> 0.0.0.0/0   tcp dpt:22 LOG flags 0 level 4 prefix \"x\"",
        ),
        (
            "-v -A INPUT ! -s 1.2.3.0/24 -i eth+ -p udp -m multiport --dports 1,2 -g foo",
            "foo  udp opt -- in eth+ out * !1.2.3.0/24  -> 0.0.0.0/0  [goto]  multiport dports 1,2",
        ),
        (
            "-v -A INPUT -f -m comment --comment 'a b' -j MARK --set-mark 1",
            "MARK  all opt -f in * out *  0.0.0.0/0  -> 0.0.0.0/0   /* a b */ MARK set 0x1",
        ),
        (
            "-v -A INPUT -d 10.0.0.0/255.0.255.0",
            "  all opt -- in * out *  0.0.0.0/0  -> 10.0.0.0/255.0.255.0",
        ),
        (
            "-v -A INPUT ! -p tcp -m conntrack --ctstate NEW",
            " !tcp opt -- in * out *  0.0.0.0/0  -> 0.0.0.0/0   ctstate NEW",
        ),
        (
            "-v -t nat -A POSTROUTING -o eth0 -j MASQUERADE",
            "MASQUERADE  all opt -- in * out eth0  0.0.0.0/0  -> 0.0.0.0/0",
        ),
    ];
    for (cmd, want) in cases {
        let o = run(&mut rs, cmd);
        assert_eq!(o.status, 0, "{cmd}: {}", o.stderr);
        assert_eq!(o.stdout.trim_end_matches('\n'), want, "iptables {cmd}");
    }
}

#[test]
fn host_names_are_rejected_clearly() {
    let mut rs = Ruleset::new();
    let o = run(&mut rs, "-A INPUT -s example.com -j DROP");
    assert_eq!(o.status, 2);
    assert!(
        o.stderr.contains("host names are not supported"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("example.com"), "{}", o.stderr);
}

#[test]
fn restore_test_and_noflush() {
    let mut rs = Ruleset::new();
    let base = "*filter\n:INPUT DROP [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n";
    let test = RestoreOptions {
        test: true,
        ..Default::default()
    };
    restore(&mut rs, base, test).unwrap();
    assert!(
        !rs.is_present(TableKind::Filter),
        "--test changed the ruleset"
    );
    restore(&mut rs, base, RestoreOptions::default()).unwrap();
    let more = "*filter\n-A INPUT -p tcp -j DROP\nCOMMIT\n";
    let noflush = RestoreOptions {
        noflush: true,
        ..Default::default()
    };
    restore(&mut rs, more, noflush).unwrap();
    assert_eq!(rule_count(&rs, TableKind::Filter, "INPUT"), 2);
    let input = rs.table(TableKind::Filter).chain("INPUT").unwrap();
    assert_eq!(input.policy, Some(tungate::ruleset::Policy::Drop));
    // Without --noflush the table is replaced.
    restore(&mut rs, more, RestoreOptions::default()).unwrap();
    assert_eq!(rule_count(&rs, TableKind::Filter, "INPUT"), 1);
}

#[test]
fn save_with_comments_frames_each_table() {
    let mut rs = Ruleset::new();
    restore(
        &mut rs,
        "*nat\nCOMMIT\n*filter\nCOMMIT\n",
        RestoreOptions::default(),
    )
    .unwrap();
    let s = tungate::syntax::save_with_comments(
        &rs,
        false,
        "iptables-save v1.8.9 (nf_tables)",
        "Thu Nov 26 00:21:28 2026",
    );
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines[0],
        "# Generated by iptables-save v1.8.9 (nf_tables) on Thu Nov 26 00:21:28 2026"
    );
    assert_eq!(lines[1], "*filter");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("# Completed on"))
            .count(),
        2
    );
    assert_eq!(
        lines.last().unwrap(),
        &"# Completed on Thu Nov 26 00:21:28 2026"
    );
}
