//! The one-shot commands (`-L`, `-G`, `-D`, `-U`, `-F`, `-C`, `-S`, `-h`,
//! `-V`) executed against the connection table, with the tool's summaries
//! and exit statuses.

use super::error::{CtError, EXIT_FAILURE, PROG};
use super::format::{format_entry, format_stats, CliOptions, XML_FOOTER, XML_HEADER};
use super::option::{Cmd, CtTable};
use super::parse::parse_warn;
use super::request::Request;
use crate::clock::Timestamp;
use crate::conntrack::{ConnSnapshot, ConnTable};
use crate::syntax::Output;
use std::fmt::Write as _;

const USAGE: &str = "Command line interface for the connection tracking system. Version 1.4.7
Usage: conntrack [commands] [options]

Commands:
  -L [table] [options]\t\tList conntrack or expectation table
  -G [table] parameters\t\tGet conntrack or expectation
  -D [table] parameters\t\tDelete conntrack or expectation
  -I [table] parameters\t\tCreate a conntrack or expectation
  -U [table] parameters\t\tUpdate a conntrack
  -E [table] [options]\t\tShow events
  -F [table]\t\t\tFlush table
  -C [table]\t\t\tShow counter
  -S\t\t\t\tShow statistics

Tables: conntrack, expect, dying, unconfirmed

Conntrack parameters and options:
  -n, --src-nat ip\t\t\tsource NAT ip
  -g, --dst-nat ip\t\t\tdestination NAT ip
  -j, --any-nat ip\t\t\tsource or destination NAT ip
  -m, --mark mark\t\t\tSet mark
  -c, --secmark secmark\t\t\tSet selinux secmark
  -e, --event-mask eventmask\t\tEvent mask, eg. NEW,DESTROY
  -z, --zero \t\t\t\tZero counters while listing
  -o, --output type[,...]\t\tOutput format, eg. xml
  -l, --label label[,...]\t\tconntrack labels

Expectation parameters and options:
  --tuple-src ip\tSource address in expect tuple
  --tuple-dst ip\tDestination address in expect tuple

Updating parameters and options:
  --label-add label\tAdd label
  --label-del label\tDelete label

Common parameters and options:
  -s, --src, --orig-src ip\t\tSource address from original direction
  -d, --dst, --orig-dst ip\t\tDestination address from original direction
  -r, --reply-src ip\t\tSource addres from reply direction
  -q, --reply-dst ip\t\tDestination address from reply direction
  -p, --protonum proto\t\tLayer 4 Protocol, eg. 'tcp'
  -f, --family proto\t\tLayer 3 Protocol, eg. 'ipv6'
  -t, --timeout timeout\t\tSet timeout
  -u, --status status\t\tSet status, eg. ASSURED
  -w, --zone value\t\tSet conntrack zone
  --orig-zone value\t\tSet zone for original direction
  --reply-zone value\t\tSet zone for reply direction
  -b, --buffer-size\t\tNetlink socket buffer size
  --mask-src ip\t\t\tSource mask address
  --mask-dst ip\t\t\tDestination mask address

";

fn summary(s: &mut String, what: &str) {
    let _ = writeln!(s, "{PROG}: {what}");
}

pub(super) fn ok(stdout: String, stderr: String, status: i32) -> Output {
    Output {
        stdout,
        stderr,
        status,
    }
}

/// Runs `conntrack` with `args` (without the program name) against
/// `table`, returning what conntrack-tools 1.4.7 would print and its exit
/// status. `-E` is not a one-shot command: use
/// [`EventStream`](super::EventStream).
pub fn run(table: &ConnTable, args: &[String], now: Timestamp) -> Output {
    run_with(table, args, now, CliOptions::default())
}

/// [`run`] with explicit print options.
pub fn run_with(table: &ConnTable, args: &[String], now: Timestamp, opts: CliOptions) -> Output {
    let req = match parse_warn(args) {
        (_, Ok(r)) => r,
        (w, Err(e)) => return ok(String::new(), w.concat() + &e.to_stderr(), e.status()),
    };
    execute(table, &req, now, opts)
}

/// Executes a parsed request (everything but `-E`).
pub fn execute(table: &ConnTable, req: &Request, now: Timestamp, opts: CliOptions) -> Output {
    let mut out = execute_inner(table, req, now, opts);
    if !req.warnings.is_empty() {
        out.stderr.insert_str(0, &req.warnings.concat());
    }
    out
}

fn execute_inner(table: &ConnTable, req: &Request, now: Timestamp, opts: CliOptions) -> Output {
    let mut out = String::new();
    let mut err = String::new();
    if req.status_invalid && req.cmd == Cmd::List {
        let e = CtError::OperationFailed("invalid parameters");
        return ok(out, e.to_stderr(), e.status());
    }
    let (head, foot) = if req.xml {
        (XML_HEADER, XML_FOOTER)
    } else {
        ("", "")
    };
    match req.cmd {
        Cmd::Help => {
            out.push_str(USAGE);
            ok(out, err, 0)
        }
        Cmd::Version => {
            let _ = writeln!(out, "{PROG}");
            ok(out, err, 0)
        }
        Cmd::List | Cmd::Get if req.table == CtTable::Expect => {
            summary(&mut err, "0 expectations have been shown.");
            ok(out, err, 0)
        }
        Cmd::List => {
            let mut n = 0;
            if req.table == CtTable::Conntrack {
                for c in table.list(now).iter().filter(|c| req.matches(c)) {
                    if n == 0 {
                        out.push_str(head);
                    }
                    out.push_str(&format_entry(c, now, req, opts));
                    out.push('\n');
                    n += 1;
                }
            }
            if n > 0 {
                out.push_str(foot);
            }
            summary(&mut err, &format!("{n} flow entries have been shown."));
            ok(out, err, 0)
        }
        Cmd::Get => {
            // An exact lookup (either direction), as the kernel's GET; the
            // kernel holds a reference while answering, hence `use=2`.
            let found = req
                .get_tuple()
                .filter(|_| !req.ipv6)
                .and_then(|t| table.lookup(&t, now))
                .map(|c| c.snapshot());
            match found {
                Some(c) => {
                    let line = format_held_entry(&c, now, req, opts);
                    out.push_str(head);
                    out.push_str(&line);
                    out.push('\n');
                    summary(&mut err, "1 flow entries have been shown.");
                    ok(out, err, 0)
                }
                None => {
                    let e = CtError::OperationFailed("such conntrack doesn't exist");
                    ok(out, e.to_stderr(), e.status())
                }
            }
        }
        Cmd::Delete if req.table == CtTable::Expect => {
            summary(&mut err, "0 expectations have been deleted.");
            ok(out, err, EXIT_FAILURE)
        }
        Cmd::Delete => {
            let mut lines = Vec::new();
            let n = if req.table == CtTable::Conntrack {
                table.delete_where(|c| {
                    // An expired entry awaiting collection is not listed, so
                    // it is not "deleted" either (the sweep removes it).
                    let m = c.deadline > now && req.matches(c);
                    if m {
                        lines.push((c.id, format_entry(c, now, req, opts)));
                    }
                    m
                })
            } else {
                0
            };
            lines.sort_by_key(|l| l.0);
            // Deleted entries are printed without the XML header/footer.
            for (_, l) in lines.iter().take(n) {
                out.push_str(l);
                out.push('\n');
            }
            summary(&mut err, &format!("{n} flow entries have been deleted."));
            ok(out, err, if n == 0 { EXIT_FAILURE } else { 0 })
        }
        Cmd::Flush => {
            if req.table == CtTable::Expect {
                summary(&mut err, "expectation table has been emptied.");
            } else {
                if req.table == CtTable::Conntrack {
                    table.flush();
                }
                summary(&mut err, "connection tracking table has been emptied.");
            }
            ok(out, err, 0)
        }
        Cmd::Count => {
            let mut n = 0usize;
            if req.table == CtTable::Conntrack {
                table.for_each(now, |_| n += 1);
            }
            let _ = writeln!(out, "{n}");
            ok(out, err, 0)
        }
        Cmd::Stats if req.table == CtTable::Expect => {
            out.push_str("cpu=0   \texpect_new=0 expect_create=0 expect_delete=0 \n");
            ok(out, err, 0)
        }
        Cmd::Stats => {
            out.push_str(&format_stats(table));
            ok(out, err, 0)
        }
        Cmd::Update if req.table == CtTable::Conntrack => update(table, req, now, opts),
        Cmd::Create | Cmd::Update => {
            let e = CtError::OperationFailed("Operation not supported");
            ok(out, e.to_stderr(), e.status())
        }
        Cmd::Event => {
            let e = CtError::OperationFailed(
                "Operation not supported (events stream through the control socket)",
            );
            ok(out, e.to_stderr(), e.status())
        }
    }
}

/// An entry as the kernel answers `-G` and `-U`: it holds a reference
/// while answering, so the entry says `use=2`.
fn format_held_entry(c: &ConnSnapshot, now: Timestamp, req: &Request, opts: CliOptions) -> String {
    let line = format_entry(c, now, req, opts);
    if req.xml {
        line.replace("<use>1</use>", "<use>2</use>")
    } else {
        line.replacen(" use=1", " use=2", 1)
    }
}

/// `conntrack -U`: sets the mark of every entry passing the other filters
/// (`-m` is the new mark here, not a filter). Like 1.4.7, it prints only
/// the first updated entry (with `use=2`) and counts them all; nothing to
/// change is "0 flow entries have been updated." and exit 1. Changing the
/// status or the timeout is refused: the table has no API for either.
fn update(table: &ConnTable, req: &Request, now: Timestamp, opts: CliOptions) -> Output {
    let unsupported = || {
        let e = CtError::OperationFailed("Operation not supported");
        let msg = "Operation failed: Operation not supported\n";
        ok(String::new(), format!("{msg}{}", e.to_stderr()), e.status())
    };
    let mut filter = req.clone();
    filter.mark = None;
    let targets: Vec<ConnSnapshot> = table
        .list(now)
        .into_iter()
        .filter(|c| filter.matches(c))
        .collect();
    // The kernel refuses an update without an address in the request,
    // and tungate cannot change the status or the timeout.
    let no_addr = req.src.is_none()
        && req.dst.is_none()
        && req.reply_src.is_none()
        && req.reply_dst.is_none();
    let refused =
        no_addr || req.status != 0 || req.unreplied || req.status_invalid || req.timeout.is_some();
    if refused && !targets.is_empty() {
        return unsupported();
    }
    let mut n = 0;
    let mut first = None;
    if let Some((value, mask)) = req.mark.filter(|_| !refused) {
        for c in &targets {
            let Some(conn) = table.lookup(&c.orig, now) else {
                continue;
            };
            if conn.id() != c.id {
                continue;
            }
            conn.set_mark((conn.mark() & !mask) ^ value);
            n += 1;
            if first.is_none() {
                first = Some(conn.snapshot());
            }
        }
    }
    let mut out = String::new();
    if let Some(c) = first {
        out.push_str(&format_held_entry(&c, now, req, opts));
        out.push('\n');
    }
    let mut err = String::new();
    summary(&mut err, &format!("{n} flow entries have been updated."));
    ok(out, err, if n == 0 { EXIT_FAILURE } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{Tuple, PROTO_TCP};
    use crate::conntrack_cli::fixture::*;
    use crate::wire::testutil::a;

    #[test]
    fn list_prints_the_real_tools_lines_and_summary() {
        let t = fixture();
        let o = ct(&t, "-L");
        assert_eq!(o.stdout, lines(&[L_TCP, L_UDP42, L_UDP, L_ICMP, L_SYN]));
        assert_eq!(o.stderr, shown(5));
        assert_eq!(o.status, 0);
        // Long form, and the table name as operand.
        assert_eq!(ct(&t, "--dump conntrack").stdout, o.stdout);
        // Time passes: the timeout column counts down, expired entries go.
        let later = run(&t, &args("-L -p udp"), Timestamp::from_secs(125));
        assert_eq!(
            later.stdout,
            lines(&[
                &L_UDP42.replace(" 29 ", " 5 "),
                &L_UDP.replace(" 29 ", " 5 ")
            ])
        );
        let gone = run(&t, &args("-L -p udp"), Timestamp::from_secs(131));
        assert_eq!((gone.stdout.as_str(), gone.stderr), ("", shown(0)));
    }

    #[test]
    fn delete_prints_removes_and_fails_when_nothing_matched() {
        let t = fixture();
        let o = ct(&t, "-D -d 10.9.0.99");
        assert_eq!(o.stdout, lines(&[L_TCP]));
        assert_eq!(
            o.stderr,
            "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n"
        );
        assert_eq!(o.status, 0);
        // Both tuples of the connection are gone from the table.
        let orig = Tuple::new(a("10.9.0.1"), a("10.9.0.99"), PROTO_TCP, 50236, 80);
        let reply = Tuple::new(a("127.0.0.1"), a("10.9.0.1"), PROTO_TCP, 8080, 50236);
        assert!(t.lookup(&orig, T1).is_none());
        assert!(t.lookup(&reply, T1).is_none());
        assert_eq!(ct(&t, "-C").stdout, "4\n");
        // Nothing left to match: the tool exits 1.
        let again = ct(&t, "-D -d 10.9.0.99");
        assert_eq!(again.stdout, "");
        assert_eq!(
            again.stderr,
            "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"
        );
        assert_eq!(again.status, 1);
        // Filters and output options work as for -L.
        let o = ct(&t, "-D -p udp --dport 4444 -o extended");
        assert_eq!(o.stdout, format!("ipv4     2 {L_UDP42}\n"));
        let o = ct(&t, "-D -m 0");
        assert_eq!(o.stdout, lines(&[L_UDP, L_ICMP, L_SYN]));
        assert_eq!(o.status, 0);
        assert!(t.list(T1).is_empty());
        assert_eq!(t.stats().deleted, 5);
    }

    #[test]
    fn delete_with_a_status_naming_no_bit_deletes_everything() {
        let t = fixture();
        let o = ct(&t, "-D -u SRC_NAT");
        assert_eq!(o.stdout, lines(&[L_TCP, L_UDP42, L_UDP, L_ICMP, L_SYN]));
        assert_eq!(
            o.stderr,
            "WARNING: ignoring SRC_NAT, use --src-nat instead\nconntrack v1.4.7 (conntrack-tools): 5 flow entries have been deleted.\n"
        );
        assert!(t.is_empty());
    }

    #[test]
    fn flush_count_and_stats() {
        let t = fixture();
        assert_eq!(
            ct(&t, "-C"),
            Output {
                stdout: "5\n".into(),
                stderr: String::new(),
                status: 0
            }
        );
        assert_eq!(ct(&t, "--count conntrack").stdout, "5\n");
        let s = ct(&t, "-S");
        assert_eq!(
            s.stdout,
            "cpu=0   \tfound=0 invalid=0 insert=5 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n"
        );
        let f = ct(&t, "-F");
        assert_eq!(
            (f.stdout.as_str(), f.stderr.as_str(), f.status),
            (
                "",
                "conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied.\n",
                0
            )
        );
        assert!(t.is_empty());
        assert_eq!(ct(&t, "-C").stdout, "0\n");
        assert_eq!(ct(&t, "-L").stderr, shown(0));
        // The expectation table is always empty.
        assert_eq!(
            ct(&t, "-L expect").stderr,
            "conntrack v1.4.7 (conntrack-tools): 0 expectations have been shown.\n"
        );
        assert_eq!(
            ct(&t, "-F expect").stderr,
            "conntrack v1.4.7 (conntrack-tools): expectation table has been emptied.\n"
        );
    }

    #[test]
    fn update_sets_the_mark_of_matching_entries() {
        let t = fixture();
        let o = ct(&t, "-U -s 10.9.0.1 -p udp --dport 4444 -m 0x10/0xf0");
        // 42 = 0x2a: (0x2a & !0xf0) ^ 0x10 = 0x1a.
        assert_eq!(
            o.stdout,
            lines(&[&L_UDP42.replace("mark=42 use=1", "mark=26 use=2")])
        );
        assert_eq!(
            o.stderr,
            "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been updated.\n"
        );
        assert_eq!(
            ct(&t, "-L -m 26").stdout,
            lines(&[L_UDP42.replace("mark=42", "mark=26").as_str()])
        );
        // -m is the new value, not a filter: all four 10.9.0.1 flows change,
        // the first one is printed.
        let o = ct(&t, "-U -s 10.9.0.1 -m 7");
        assert_eq!(
            o.stdout,
            lines(&[&L_TCP.replace("mark=0 use=1", "mark=7 use=2")])
        );
        assert!(o.stderr.contains(" 4 flow entries have been updated."));
        assert_eq!(ct(&t, "-L -m 7").stderr, shown(4));
        // Nothing matched or nothing to set: exit 1.
        for cmd in ["-U -s 10.9.0.5 -m 1", "-U -s 10.9.0.1"] {
            let o = ct(&t, cmd);
            assert_eq!(o.status, 1, "{cmd}");
            assert!(
                o.stderr.contains(" 0 flow entries have been updated."),
                "{cmd}"
            );
        }
        // No address in the request, status or timeout changes: refused
        // (when something matched).
        for cmd in [
            "-U -p udp -m 3/0x1",
            "-U -m 5",
            "-U -s 10.9.0.1 -m 5 -u ASSURED",
            "-U -s 10.9.0.1 -t 100",
        ] {
            let o = ct(&t, cmd);
            assert_eq!(
                (o.stdout.as_str(), o.stderr.as_str(), o.status),
                ("", "Operation failed: Operation not supported\nconntrack v1.4.7 (conntrack-tools): Operation failed: Operation not supported\n", 1),
                "{cmd}"
            );
        }
        assert_eq!(
            ct(&t, "-U -p 47 -m 5").stderr,
            "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been updated.\n"
        );
        assert_eq!(ct(&t, "-L -m 7").stderr, shown(4));
    }

    #[test]
    fn help_version_and_get() {
        let t = fixture();
        let h = ct(&t, "-h");
        assert!(h.stdout.starts_with(
            "Command line interface for the connection tracking system. Version 1.4.7\nUsage: conntrack [commands] [options]\n"
        ));
        assert_eq!(h.status, 0);
        assert_eq!(run(&t, &[], T1).stdout, h.stdout);
        assert_eq!(ct(&t, "-V").stdout, "conntrack v1.4.7 (conntrack-tools)\n");
        // -G looks the tuple up (either direction); the kernel holds a
        // reference while answering, so it says use=2.
        let g = ct(
            &t,
            "-G -p udp -s 10.9.0.1 -d 10.9.0.1 --sport 7778 --dport 7777",
        );
        assert_eq!(
            (g.stdout, g.stderr),
            (lines(&[&L_UDP.replace("use=1", "use=2")]), shown(1))
        );
        let g = ct(
            &t,
            "-G -p tcp -s 127.0.0.1 -d 10.9.0.1 --sport 8080 --dport 50236",
        );
        assert_eq!(g.stdout, lines(&[&L_TCP.replace("use=1", "use=2")]));
        for (cmd, msg) in [
            (
                "-G -p udp -s 10.9.0.1",
                "you have to specify `--src' and `--dst'",
            ),
            (
                "-G -p udp -r 10.9.0.1",
                "you have to specify `--reply-src' and `--reply-dst'",
            ),
            (
                "-G -p udp -s 10.9.0.1 -d 10.9.0.1 --dport 7777",
                "you have to specify `--sport' and `--dport'",
            ),
            (
                "-G -p udp -s 10.9.0.1 -d 10.9.0.1 -m 5",
                "Illegal option `--mark' with this command",
            ),
        ] {
            assert_eq!(ct(&t, cmd).stderr, err(msg), "{cmd}");
        }
        let g = ct(
            &t,
            "-G -p udp -s 10.9.0.2 -d 10.9.0.1 --sport 7778 --dport 7777",
        );
        assert_eq!(g.status, 1);
        assert_eq!(
            g.stderr,
            "conntrack v1.4.7 (conntrack-tools): Operation failed: such conntrack doesn't exist\n"
        );
    }
}
