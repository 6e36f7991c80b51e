//! Differential conformance: every case in `tests/diff-cases/` runs through a
//! kernel router namespace (the real iptables-restore) and through tungate
//! (the same ruleset, the same addresses); what the hosts receive, what the
//! senders get back, rule counters and conntrack entries must agree.
//!
//! `DIFF_CASES=name,name` runs a subset; `DIFF_JOBS=N` cases in parallel
//! (default 2). Cases with an `expect-mismatch:` header are reported apart:
//! they fail the test only when they unexpectedly agree (then the header
//! must go). Needs root, TUN, namespaces and python3; skips (or, with `$CI`
//! set, fails) without them. See tests/diff-cases/README.md.

mod harness;

#[path = "diff/case.rs"]
mod case;
#[path = "diff/compare.rs"]
mod compare;
#[path = "diff/run.rs"]
mod run;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use case::Case;
use run::Mode;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/diff-cases")
}

fn load_cases() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/diff-cases")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    let only: Option<Vec<String>> = std::env::var("DIFF_CASES")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    files
        .iter()
        .map(|p| Case::parse_file(p).unwrap_or_else(|e| panic!("{e}")))
        .filter(|c| only.as_ref().is_none_or(|o| o.contains(&c.name)))
        .collect()
}

#[test]
fn corpus_files_parse() {
    let cases = load_cases();
    for c in &cases {
        assert!(!c.steps.is_empty(), "{}: no traffic steps", c.name);
        assert!(!c.description.is_empty(), "{}: no description", c.name);
    }
    if std::env::var_os("DIFF_CASES").is_none() {
        assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    }
}

#[test]
fn case_parser_names_line_and_token() {
    let e = Case::parse("x", "x.case", "topology: ring\n%traffic\nc tcp 1.2.3.4:5\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.case:1") && e.contains("`ring`"), "{e}");
    let e = Case::parse("x", "x.case", "description: d\n%traffic\nc fly 1.2.3.4\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.case:3") && e.contains("`fly`"), "{e}");
    let e = Case::parse("x", "x.case", "mask: sport@s\n%traffic\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("reason"), "{e}");
}

/// Each `(host, line, normalised)` of `lines`: `line`, as `host` captured
/// it in case `c`, normalises to `normalised`.
fn assert_normalised(c: &Case, lines: &[(&str, &str, &str)]) {
    for (host, line, want) in lines {
        assert_eq!(compare::normalise(c, host, line), *want, "{host}: {line}");
    }
}

#[test]
fn normalisation_keeps_crafted_numbers_only() {
    let c = Case::parse(
        "x",
        "x.case",
        "description: d\nmask: sport@s random port\n%traffic\nc send tcp dst=10.2.0.2 dport=80 seq=5000 id=0x1234\n",
    )
    .unwrap();
    assert_normalised(
        &c,
        &[
            (
                "s",
                "src=1.1.1.1 id=4660 sport=777 seq=5000 ack=99",
                "src=1.1.1.1 id=4660 sport=* seq=5000 ack=*",
            ),
            ("c", "id=7 ack=5001 sport=777", "id=* ack=5001 sport=777"),
            // a real socket's packet (DF) whose random ID equals a crafted one
            (
                "c",
                "src=2.2.2.2 id=4660 len=34 DF udp sport=53",
                "src=2.2.2.2 id=* len=34 DF udp sport=53",
            ),
            // IDs are matched exactly (no "plus one" as for an ACK of a crafted seq)
            (
                "s",
                "src=1.1.1.1 id=4661 seq=5001",
                "src=1.1.1.1 id=* seq=5001",
            ),
        ],
    );
}

#[test]
fn an_icmp_id_is_own_only_for_the_crafted_type() {
    let c = Case::parse(
        "x",
        "x.case",
        "description: d\n%traffic\nc send icmp dst=10.2.0.1 id=0x6102 icmpid=0x61\ns send icmp dst=10.1.0.2 type=3 code=3 id=0x1302 hex=00\n",
    )
    .unwrap();
    assert_normalised(
        &c,
        &[
            // the crafted echo request, forwarded: its ID is kept
            (
                "s",
                "src=10.1.0.2 id=24834 len=28 icmp type=8 code=0",
                "src=10.1.0.2 id=24834 len=28 icmp type=8 code=0",
            ),
            // a port unreachable the server generated, whose ID happens to be
            // the echo request's (CI saw this): masked; the inner ID is still
            // the offending packet's
            (
                "c",
                "src=10.2.0.2 id=24834 len=60 icmp type=3 code=3 | iid=24834 iudp",
                "src=10.2.0.2 id=* len=60 icmp type=3 code=3 | iid=24834 iudp",
            ),
            // an echo reply with that ID: masked too
            (
                "c",
                "src=10.2.0.1 id=24834 icmp type=0 code=0",
                "src=10.2.0.1 id=* icmp type=0 code=0",
            ),
            // the crafted error keeps its ID
            (
                "c",
                "src=10.2.0.2 id=4866 icmp type=3 code=3 | iid=7",
                "src=10.2.0.2 id=4866 icmp type=3 code=3 | iid=*",
            ),
            // a socket's packet (DF) quoted in an error: its random ID is masked
            (
                "c",
                "src=10.2.0.2 id=9 icmp type=3 code=3 | iid=24834 iDF",
                "src=10.2.0.2 id=* icmp type=3 code=3 | iid=* iDF",
            ),
            // non-ICMP packets as before
            (
                "s",
                "src=10.1.0.2 id=24834 udp sport=1",
                "src=10.1.0.2 id=24834 udp sport=1",
            ),
        ],
    );
}

#[test]
fn line_diff_marks_both_sides() {
    let a = vec!["x".to_string(), "y".to_string()];
    let b = vec!["x".to_string(), "z".to_string()];
    let d = compare::line_diff(&a, &b);
    assert!(
        d.contains(" - y") && d.contains(" + z") && d.contains("   x"),
        "{d}"
    );
}

enum Verdict {
    Pass,
    Mismatch(String),
    ExpectedMismatch(String),
    UnexpectedPass(String),
    Error(String),
}

fn run_case(c: &Case) -> Option<(Verdict, Vec<String>)> {
    let k = match run::run(c, Mode::Kernel) {
        Ok(o) => o,
        Err(e) if e == "skipped" => return None,
        Err(e) => return Some((Verdict::Error(format!("kernel run: {e}")), vec![])),
    };
    let t = match run::run(c, Mode::Tungate) {
        Ok(o) => o,
        Err(e) => {
            let v = match &c.expect_mismatch {
                Some(r) => Verdict::ExpectedMismatch(format!("{r}\n  tungate run: {e}")),
                None => Verdict::Error(format!("tungate run: {e}")),
            };
            return Some((v, vec![]));
        }
    };
    let o = compare::compare(c, &k, &t);
    let v = match (&c.expect_mismatch, o.diffs.is_empty()) {
        (None, true) => Verdict::Pass,
        (None, false) => Verdict::Mismatch(o.diffs.join("\n")),
        (Some(r), false) => Verdict::ExpectedMismatch(format!("{r}\n{}", o.diffs.join("\n"))),
        (Some(r), true) => Verdict::UnexpectedPass(r.clone()),
    };
    Some((v, o.notes))
}

#[test]
fn kernel_and_tungate_agree_on_the_corpus() {
    if harness::skip("differential") {
        return;
    }
    for tool in ["python3", "nft", "conntrack", "iptables-save", "dmesg"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            let why = format!("`{tool}` is not installed (the differential harness needs it)");
            assert!(
                std::env::var_os("CI").is_none(),
                "differential: cannot run in CI: {why}"
            );
            eprintln!("SKIP differential: {why}");
            return;
        }
    }
    let cases = load_cases();
    let jobs: usize = std::env::var("DIFF_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let queue = Arc::new(Mutex::new(cases.clone().into_iter().enumerate()));
    let results = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            let q = queue.clone();
            let r = results.clone();
            s.spawn(move || loop {
                let next = q.lock().unwrap().next();
                let Some((i, c)) = next else { break };
                let started = std::time::Instant::now();
                let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&c)))
                    .unwrap_or_else(|e| {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Some((Verdict::Error(format!("panic: {msg}")), vec![]))
                    });
                eprintln!(
                    "  {} done in {:.1}s",
                    c.name,
                    started.elapsed().as_secs_f64()
                );
                r.lock().unwrap().push((i, c.name.clone(), res));
            });
        }
    });
    let mut results = Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap();
    results.sort_by_key(|r| r.0);

    let mut report = String::new();
    let (mut pass, mut total, mut failing, mut expected) = (0, 0, vec![], vec![]);
    for (_, name, res) in &results {
        let Some((v, notes)) = res else {
            eprintln!("SKIP differential/{name}");
            continue;
        };
        total += 1;
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("\n  note: {}", notes.join("\n  note: "))
        };
        // The report's line, and the list the case goes on (none: a pass).
        let (line, list) = match v {
            Verdict::Pass => (format!("PASS      {name}{notes}\n"), None),
            Verdict::Mismatch(d) => (
                format!("MISMATCH  {name}\n{d}{notes}\n"),
                Some(&mut failing),
            ),
            Verdict::Error(e) => (format!("ERROR     {name}: {e}\n"), Some(&mut failing)),
            Verdict::ExpectedMismatch(d) => (
                format!("EXPECTED-MISMATCH {name}: {d}{notes}\n"),
                Some(&mut expected),
            ),
            Verdict::UnexpectedPass(r) => (
                format!(
                    "UNEXPECTED-PASS {name}: marked `expect-mismatch: {r}` but kernel and tungate agree; remove the header\n"
                ),
                Some(&mut failing),
            ),
        };
        report.push_str(&line);
        match list {
            Some(list) => list.push(name.clone()),
            None => pass += 1,
        }
    }
    report.push_str(&format!(
        "\ndifferential: {pass}/{total} cases agree; {} expected mismatches {:?}; {} failing {:?}\n",
        expected.len(),
        expected,
        failing.len(),
        failing
    ));
    eprintln!("{report}");
    let _ = std::fs::write(
        std::env::temp_dir().join("tungate-differential-report.txt"),
        &report,
    );
    assert!(
        failing.is_empty(),
        "differential cases failing: {failing:?}"
    );
}

#[test]
fn counters_sort_tables_and_drop_comments() {
    let text = "# Generated by x\n*nat\n:PREROUTING ACCEPT [1:2]\nCOMMIT\n# c\n*filter\n[3:4] -A FORWARD -j DROP\nCOMMIT\n";
    assert_eq!(
        run::counters(text),
        vec![
            "*filter",
            "[3:4] -A FORWARD -j DROP",
            "COMMIT",
            "*nat",
            ":PREROUTING ACCEPT [1:2]",
            "COMMIT"
        ]
    );
}

#[test]
fn conntrack_lines_lose_timeout_and_bookkeeping() {
    let text = "udp      17 29 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1\nconntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.\n";
    assert_eq!(
        run::conntrack(text),
        vec!["udp 17 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0"]
    );
}

#[test]
fn log_lines_of_kernel_and_tungate_normalise_alike() {
    let k = "kern  :warn  : [ 2513.786231] nat-pre: IN=t1-tc OUT= MAC=d2:32 SRC=10.1.0.2 DST=10.2.0.2 LEN=31 TTL=64 ID=3815 DF PROTO=ICMP TYPE=8 CODE=0 ID=83 SEQ=1 ";
    let t = "2026-11-26T00:57:48.285503Z  WARN tungate::log: nat-pre: IN=t2-tc OUT= SRC=10.1.0.2 DST=10.2.0.2 LEN=31 TTL=64 ID=1 DF PROTO=ICMP TYPE=8 CODE=0 ID=83 SEQ=1";
    let (a, b) = (run::log_fields(k, "t1"), run::log_fields(t, "t2"));
    assert_eq!(a, b);
    assert!(
        a.starts_with("level=warn prefix=\"nat-pre:\" IN=P-tc"),
        "{a}"
    );
    assert!(a.contains("ID=83") && !a.contains("ID=3815"), "{a}");
}

#[test]
fn tcp_socket_segments_keep_syn_rst_and_data_only() {
    let ack = "src=a dst=b ttl=63 id=* len=52 DF tcp sport=1 dport=2 seq=* ack=* flags=A";
    assert_eq!(compare::socket_segment(ack), None);
    let fin_data = "src=a dst=b tcp sport=1 dport=2 seq=* ack=* flags=FPA data=6869";
    assert_eq!(
        compare::socket_segment(fin_data).unwrap(),
        "src=a dst=b tcp sport=1 dport=2 seq=* ack=* flags=PA data=6869"
    );
    let crafted = "src=a dst=b tcp sport=1 dport=2 seq=5000 ack=* flags=A";
    assert_eq!(compare::socket_segment(crafted).unwrap(), crafted);
}

#[test]
fn flow_key_ignores_ids_and_inner_headers() {
    let a = "src=1 dst=2 ttl=63 id=5 len=33 udp sport=1 dport=2 data=aa";
    let b = "src=1 dst=2 ttl=63 id=6 len=40 udp sport=1 dport=2 data=bb";
    assert_eq!(compare::flow_key(a), compare::flow_key(b));
    let e = "src=9 dst=1 ttl=64 id=* icmp type=3 code=3 | isrc=1 idst=2 iudp isport=1 idport=2";
    assert_eq!(compare::flow_key(e), "src=9 dst=1 icmp type=3 code=3");
}

#[test]
fn counters_may_differ_only_by_the_socket_segments_the_hosts_saw() {
    let l = |s: &str| s.split('\n').map(String::from).collect::<Vec<_>>();
    // CI once saw this: the tungate run had a FIN retransmitted and its
    // D-SACK ACK (52 + 64 bytes) that the kernel run did not.
    let k = l(":FORWARD ACCEPT [12:620]\n[2:100] -A FORWARD -p tcp -j DROP");
    let t = l(":FORWARD ACCEPT [14:736]\n[2:100] -A FORWARD -p tcp -j DROP");
    assert!(compare::counters_explained(&k, &t, (6, 312), (8, 428)).is_some());
    // same number of such segments in both runs: nothing to explain it
    assert!(compare::counters_explained(&k, &t, (6, 312), (6, 312)).is_none());
    // a difference larger than those segments
    assert!(compare::counters_explained(&k, &t, (6, 312), (7, 364)).is_none());
    // a drop rule's counter that differs: explained only within the bound
    let t2 = l(":FORWARD ACCEPT [12:620]\n[5:250] -A FORWARD -p tcp -j DROP");
    assert!(compare::counters_explained(&k, &t2, (6, 312), (8, 428)).is_none());
    // a different rule is never explained
    let t3 = l(":FORWARD ACCEPT [14:736]\n[2:100] -A FORWARD -p udp -j DROP");
    assert!(compare::counters_explained(&k, &t3, (6, 312), (8, 428)).is_none());
}

#[test]
fn random_counts_agree_within_four_deviations() {
    assert!(compare::counts_agree(111, 84)); // 27 apart, sd of the difference ~14
    assert!(compare::counts_agree(100, 100));
    assert!(!compare::counts_agree(100, 0)); // a rule that never fires
    assert!(!compare::counts_agree(100, 200)); // ... or always
    assert!(compare::counts_agree(2000, 1900)); // within the share tolerance
    assert!(!compare::counts_agree(2000, 1500));
}

#[test]
fn retransmissions_are_read_from_snmp() {
    let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                Tcp: RtoAlgorithm RtoMin ActiveOpens RetransSegs InErrs\n\
                Tcp: 1 200 3 2 0\nUdp: InDatagrams\nUdp: 5\n";
    assert_eq!(run::retrans_segs(snmp), 2);
    assert_eq!(run::retrans_segs("Udp: InDatagrams\nUdp: 5\n"), 0);
}

#[test]
fn kernel_log_stamps_are_read() {
    assert_eq!(
        run::log_stamp("kern  :warn  : [  12.345678] diff-udp: IN=a OUT=b"),
        Some(12.345678)
    );
    assert_eq!(run::log_stamp("no stamp here"), None);
}
