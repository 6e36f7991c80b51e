//! The control requests a running gateway answers: `iptables`,
//! `iptables-save`, `iptables-restore`, `conntrack` and `stats`, run against
//! the live ruleset and connection table.
//!
//! Every change is made on a copy of the model (with live counters), checked,
//! compiled off the packet path and swapped in one step
//! ([`Pipeline::replace_ruleset`]); a failed change leaves everything as it
//! was. Writers are serialized by one lock; readers (listings) never block
//! packets. Conntrack entries, and so established flows' NAT bindings,
//! survive every swap, as in the kernel.
#![forbid(unsafe_code)]

use super::conntrack_cli;
use super::proto::{Request, Response, Tool};
use super::server::Handler;
use crate::clock::Timestamp;
use crate::pipeline::compile::CompiledRuleset;
use crate::pipeline::engine::Pipeline;
use crate::ruleset::{Ruleset, TableKind};
use crate::syntax::{self, Op, RestoreOptions};
use std::sync::{Arc, Mutex};

/// Extra counters the dataplane contributes to `tungate stats`.
pub type StatsFn = super::metrics::DataplaneStatsFn;

pub struct GatewayHandler {
    pipeline: Arc<Pipeline>,
    /// Serializes ruleset changes.
    writer: Mutex<()>,
    dataplane_stats: Option<StatsFn>,
}

impl GatewayHandler {
    pub fn new(pipeline: Arc<Pipeline>, dataplane_stats: Option<StatsFn>) -> Self {
        GatewayHandler {
            pipeline,
            writer: Mutex::new(()),
            dataplane_stats,
        }
    }

    fn swap(&self, rs: Ruleset) {
        let compiled = CompiledRuleset::compile(rs, self.pipeline.workers());
        self.pipeline.replace_ruleset(compiled);
    }

    fn iptables(&self, args: &[String]) -> Response {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let parsed = syntax::parse_command(&argv);
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut rs = self.pipeline.ruleset().snapshot();
        let out = syntax::apply_command(&mut rs, &argv);
        if let Ok(cmd) = &parsed {
            // As with nft, naming a table creates it (also for -L/-S/-C).
            let created = !self.pipeline.ruleset().source.is_present(cmd.table);
            let mutates = !matches!(cmd.op, Op::Check | Op::List | Op::ListRules) || cmd.zero_too;
            if out.status == 0 && (mutates || created) {
                self.swap(rs);
            }
        }
        Response {
            version: super::proto::VERSION,
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
            more: false,
        }
    }

    fn save(&self, args: &[String]) -> Response {
        let mut counters = false;
        let mut only = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-c" | "--counters" => counters = true,
                "-t" | "--table" => match it.next().and_then(|t| TableKind::from_name(t)) {
                    Some(t) => only = Some(t),
                    None => {
                        return Response::error(
                            1,
                            "iptables-save v1.8.9 (nf_tables): Cannot initialize: table does not exist\n",
                        )
                    }
                },
                "-M" | "--modprobe" => {
                    it.next();
                }
                "-f" | "--file" => {
                    return Response::error(2, "iptables-save: --file is not supported through the gateway; redirect stdout\n")
                }
                other => {
                    return Response::error(
                        2,
                        format!("iptables-save v1.8.9 (nf_tables): unknown option \"{other}\"\n"),
                    )
                }
            }
        }
        let mut rs = self.pipeline.ruleset().snapshot();
        if let Some(t) = only {
            // `-t TABLE`: that table alone (nft creates it if need be).
            let keep = std::mem::take(&mut rs);
            rs.replace_table(keep.table(t).clone());
        }
        let stamp = ctime(std::time::SystemTime::now());
        let out = syntax::print::save_with_comments(
            &rs,
            counters,
            "iptables-save v1.8.9 (nf_tables)",
            &stamp,
        );
        Response::ok(out)
    }

    fn restore(&self, args: &[String], stdin: Option<&str>) -> Response {
        let mut opts = RestoreOptions::default();
        let mut only: Option<TableKind> = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-n" | "--noflush" => opts.noflush = true,
                "-c" | "--counters" => opts.counters = true,
                "-t" | "--test" => opts.test = true,
                "-v" | "--verbose" => {}
                "-w" | "--wait" | "-W" | "--wait-interval" => {
                    if it.clone().next().is_some_and(|n| n.parse::<f64>().is_ok()) {
                        it.next();
                    }
                }
                "-T" | "--table" => only = it.next().and_then(|t| TableKind::from_name(t)),
                "-M" | "--modprobe" => {
                    it.next();
                }
                other => {
                    return Response::error(
                        2,
                        format!(
                            "iptables-restore v1.8.9 (nf_tables): unknown option \"{other}\"\n"
                        ),
                    )
                }
            }
        }
        let text = stdin.unwrap_or("");
        let text = match only {
            Some(t) => only_table(text, t),
            None => text.to_string(),
        };
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // All or nothing: the restore works on the snapshot, a copy; a
        // failure anywhere leaves the gateway's ruleset untouched.
        let mut rs = self.pipeline.ruleset().snapshot();
        match syntax::restore(&mut rs, &text, opts) {
            Ok(()) => {
                if opts.test {
                    return Response::ok("");
                }
                self.swap(rs);
                Response::ok("")
            }
            Err(e) => Response::error(
                e.status(),
                format!("iptables-restore v1.8.9 (nf_tables): {e}\nError occurred at line: {}\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n", e.line),
            ),
        }
    }

    /// `tungate stats [--prometheus]`.
    fn stats(&self, args: &[String]) -> Response {
        let dp = self.dataplane_stats.as_ref().map(|f| f());
        match args {
            [] => Response::ok(super::metrics::text(&self.pipeline, dp.as_ref())),
            [a] if a == "--prometheus" => {
                Response::ok(super::metrics::prometheus(&self.pipeline, dp.as_ref()))
            }
            _ => {
                Response::error(
                    2,
                    format!(
                    "tungate stats: unknown argument {:?} (usage: tungate stats [--prometheus])\n",
                    args.iter().find(|a| *a != "--prometheus").unwrap_or(&args[0])
                ),
                )
            }
        }
    }

    fn conntrack(&self, args: &[String], stream: &mut dyn FnMut(&Response) -> bool) -> Response {
        let table = self.pipeline.conntrack();
        let is_event = args.iter().any(|a| a == "-E" || a == "--event");
        let out = if is_event {
            // Streams until the client goes away (the front end stops it
            // with ^C). An idle stream writes an empty response every
            // second: the only way to notice a client that left, which
            // would otherwise hold this thread and a client slot forever.
            let mut st = match conntrack_cli::EventStream::new(args, Default::default()) {
                Ok(s) => s,
                Err(o) => return Response::error(o.status, o.stderr),
            };
            let mut idle = 0u32;
            loop {
                let mut sent = false;
                let mut emit = |line: &str| {
                    sent = true;
                    stream(&Response::ok(format!("{line}\n")))
                };
                if !st.pump(table, Timestamp::now_monotonic(), &mut emit) {
                    break;
                }
                idle = if sent { 0 } else { idle + 1 };
                if idle >= 10 {
                    idle = 0;
                    if !stream(&Response::ok(String::new())) {
                        break;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            return Response {
                version: super::proto::VERSION,
                status: 0,
                stdout: String::new(),
                stderr: st.summary(),
                more: false,
            };
        } else {
            conntrack_cli::run(table, args, Timestamp::now_monotonic())
        };
        Response {
            version: super::proto::VERSION,
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
            more: false,
        }
    }
}

impl Handler for GatewayHandler {
    fn handle(&self, req: &Request, stream: &mut dyn FnMut(&Response) -> bool) -> Response {
        match req.tool {
            Tool::Iptables => self.iptables(&req.args),
            Tool::IptablesSave => self.save(&req.args),
            Tool::IptablesRestore => self.restore(&req.args, req.stdin.as_deref()),
            Tool::Conntrack => self.conntrack(&req.args, stream),
            Tool::Stats => self.stats(&req.args),
        }
    }
}

/// The part of a restore text that belongs to table `t` (`-T`).
fn only_table(text: &str, t: TableKind) -> String {
    let mut out = String::new();
    let mut on = false;
    for line in text.lines() {
        if let Some(name) = line.trim().strip_prefix('*') {
            on = TableKind::from_name(name.trim()) == Some(t);
        }
        if on {
            out.push_str(line);
            out.push('\n');
        }
        if line.trim() == "COMMIT" {
            on = false;
        }
    }
    out
}

/// C's `ctime` form (UTC): `Thu Nov 26 00:40:00 2026`.
pub fn ctime(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WD[days.rem_euclid(7) as usize],
        MO[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        y
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::VERSION;
    use crate::pipeline::engine::PipelineConfig;

    fn handler() -> GatewayHandler {
        let p = Pipeline::new(
            PipelineConfig {
                interfaces: vec![],
                routes: crate::route::RouteTable::new(),
                conntrack: Default::default(),
                workers: 2,
                seed: Some(1),
            },
            Ruleset::new(),
        );
        let mut rs = Ruleset::new();
        rs.table_mut(TableKind::Filter);
        let p = Arc::new(p);
        p.replace_ruleset(CompiledRuleset::compile(rs, 2));
        GatewayHandler::new(p, None)
    }

    fn call(h: &GatewayHandler, tool: Tool, args: &[&str], stdin: Option<&str>) -> Response {
        let req = Request {
            version: VERSION,
            tool,
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(str::to_string),
        };
        h.handle(&req, &mut |_| true)
    }

    #[test]
    fn iptables_changes_are_live_and_bad_ones_change_nothing() {
        let h = handler();
        let g0 = h.pipeline.generation();
        let r = call(
            &h,
            Tool::Iptables,
            &["-t", "nat", "-N", "KUBE-SERVICES"],
            None,
        );
        assert_eq!(r.status, 0, "{r:?}");
        let r = call(
            &h,
            Tool::Iptables,
            &["-A", "FORWARD", "-p", "tcp", "--dport", "22", "-j", "DROP"],
            None,
        );
        assert_eq!(r.status, 0, "{r:?}");
        assert_eq!(h.pipeline.generation(), g0 + 2);
        // -C finds it (exit 0), and a missing rule exits 1.
        assert_eq!(
            call(
                &h,
                Tool::Iptables,
                &["-C", "FORWARD", "-p", "tcp", "--dport", "22", "-j", "DROP"],
                None
            )
            .status,
            0
        );
        assert_eq!(
            call(
                &h,
                Tool::Iptables,
                &["-C", "FORWARD", "-p", "tcp", "--dport", "23", "-j", "DROP"],
                None
            )
            .status,
            1
        );
        // A typo is an error naming the token; nothing changes.
        let r = call(
            &h,
            Tool::Iptables,
            &["-A", "FORWARD", "-p", "tcp", "--dprot", "22", "-j", "DROP"],
            None,
        );
        assert_eq!(r.status, 2);
        assert!(r.stderr.contains("--dprot"), "{r:?}");
        assert_eq!(h.pipeline.generation(), g0 + 2);
        let save = call(&h, Tool::IptablesSave, &[], None).stdout;
        assert!(save.contains("*nat\n"), "{save}");
        assert!(save.contains(":KUBE-SERVICES - [0:0]"), "{save}");
        assert!(
            save.contains("-A FORWARD -p tcp -m tcp --dport 22 -j DROP"),
            "{save}"
        );
        assert!(
            save.starts_with("# Generated by iptables-save v1.8.9 (nf_tables) on "),
            "{save}"
        );
        assert!(
            !save.contains("*mangle"),
            "untouched tables are not listed: {save}"
        );
    }

    #[test]
    fn restore_is_all_or_nothing_and_noflush_keeps_rules() {
        let h = handler();
        call(
            &h,
            Tool::Iptables,
            &["-A", "INPUT", "-s", "10.0.0.1", "-j", "DROP"],
            None,
        );
        let before = call(&h, Tool::IptablesSave, &["-t", "filter"], None).stdout;
        let gen = h.pipeline.generation();
        let bad =
            "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DNAT\nCOMMIT\n*filter\n-F\nCOMMIT\n";
        let r = call(&h, Tool::IptablesRestore, &[], Some(bad));
        assert_ne!(r.status, 0);
        assert!(r.stderr.contains("line 3"), "{r:?}");
        assert_eq!(h.pipeline.generation(), gen);
        assert_eq!(
            call(&h, Tool::IptablesSave, &["-t", "filter"], None)
                .stdout
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            before
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
        );
        let add = "*filter\n-A INPUT -s 10.0.0.2/32 -j DROP\nCOMMIT\n";
        assert_eq!(
            call(&h, Tool::IptablesRestore, &["--noflush"], Some(add)).status,
            0
        );
        let after = call(&h, Tool::IptablesSave, &["-t", "filter"], None).stdout;
        assert!(
            after.contains("10.0.0.1/32") && after.contains("10.0.0.2/32"),
            "{after}"
        );
        // --test changes nothing.
        let flush = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(
            call(&h, Tool::IptablesRestore, &["--test"], Some(flush)).status,
            0
        );
        assert!(call(&h, Tool::IptablesSave, &[], None)
            .stdout
            .contains("10.0.0.2/32"));
    }

    #[test]
    fn ctime_matches_c() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_653_600);
        // date -u -d @1795653600 '+%a %b %e %H:%M:%S %Y'
        assert_eq!(ctime(t), "Thu Nov 26 00:40:00 2026");
        assert_eq!(ctime(std::time::UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
    }
}
