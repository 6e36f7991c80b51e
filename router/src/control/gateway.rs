//! The control requests a running gateway answers: `iptables`,
//! `iptables-save`, `iptables-restore` (and their `ip6tables` twins, run
//! against the IPv6 ruleset the pipeline holds but does not evaluate yet),
//! `conntrack` and `stats`, run against the live ruleset and connection
//! table.
//!
//! Every change is made on a copy of the model, checked, compiled off the
//! packet path and swapped in one step ([`Pipeline::replace_ruleset`]); a
//! failed change drops the copy and leaves everything as it was. Copies are
//! cheap: tables and rules are shared (`Arc`) and copied on write, so a
//! restore builds only the tables it names, and the ruleset it replaces is
//! freed on a thread of its own, not by the worker that lets go of it last.
//! Counters of what a restore keeps carry over
//! ([`CompiledRuleset::carry_counters`]). Writers are serialized by one lock;
//! readers (listings) never block packets. Conntrack entries, and so
//! established flows' NAT bindings, survive every swap, as in the kernel.

use super::proto::{Request, Response, Tool};
use super::server::Handler;
use crate::clock::Timestamp;
use crate::conntrack_cli;
use crate::pipeline::compile::CompiledRuleset;
use crate::pipeline::engine::Pipeline;
use crate::ruleset::{Family, Ruleset, TableKind};
use crate::syntax::{self, Op, RestoreOptions};
use std::sync::{Arc, Mutex};

/// Extra counters the dataplane contributes to `tungate stats`.
pub type StatsFn = super::metrics::DataplaneStatsFn;

pub struct GatewayHandler {
    pipeline: Arc<Pipeline>,
    /// Serializes ruleset changes.
    writer: Mutex<()>,
    dataplane_stats: Option<StatsFn>,
    /// Nice value of the threads a request starts that need not run at the
    /// control threads' priority: restore parse helpers, the retire thread.
    background_nice: Option<i32>,
}

impl GatewayHandler {
    pub fn new(pipeline: Arc<Pipeline>, dataplane_stats: Option<StatsFn>) -> Self {
        GatewayHandler {
            pipeline,
            writer: Mutex::new(()),
            dataplane_stats,
            background_nice: None,
        }
    }

    /// The threads a request starts (restore parse helpers, the thread that
    /// frees a replaced ruleset) set this nice value first. The control
    /// threads run at a raised priority (`control_nice`) and those threads
    /// would inherit it: a parse helper at that priority beside the control
    /// thread left the workers of a 2-core machine without CPU for up to
    /// 103 ms (bench/restore.sh max_gap_ms); at the workers' priority it
    /// still parses what it gets to, and the control thread takes the rest.
    pub fn with_background_nice(mut self, nice: Option<i32>) -> Self {
        self.background_nice = nice;
        self
    }

    /// Compiles `rs` and installs it. The ruleset it replaces is freed here,
    /// off the packet path: workers move to the new one at their next
    /// packet, and the last one to let go of a large ruleset would otherwise
    /// pay for freeing it (tens of milliseconds for 140,000 rules).
    fn swap(&self, rs: Ruleset) {
        let compiled = CompiledRuleset::compile(rs, self.pipeline.workers());
        let old = self.pipeline.ruleset();
        self.pipeline.replace_ruleset(compiled);
        retire(old, self.background_nice);
    }

    /// The model of `family` a command starts from: IPv4's with the live
    /// counters, IPv6's as held.
    fn model(&self, family: Family) -> Ruleset {
        match family {
            Family::V4 => self.pipeline.ruleset().snapshot(),
            Family::V6 => (*self.pipeline.ruleset6()).clone(),
        }
    }

    /// Whether table `kind` of the `family` ruleset exists.
    fn is_present(&self, family: Family, kind: TableKind) -> bool {
        match family {
            Family::V4 => self.pipeline.ruleset().source.is_present(kind),
            Family::V6 => self.pipeline.ruleset6().is_present(kind),
        }
    }

    /// Installs a changed model of its family.
    fn install(&self, rs: Ruleset) {
        match rs.family() {
            Family::V4 => self.swap(rs),
            Family::V6 => self.pipeline.replace_ruleset6(rs),
        }
    }

    fn iptables(&self, family: Family, args: &[String]) -> Response {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let parsed = syntax::parse_command_for(family, &argv);
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut rs = self.model(family);
        let out = syntax::apply_command(&mut rs, &argv);
        if let Ok(cmd) = &parsed {
            // As with nft, naming a table creates it (also for -L/-S/-C).
            let created = !self.is_present(family, cmd.table);
            let mutates = !matches!(cmd.op, Op::Check | Op::List | Op::ListRules | Op::Version)
                || cmd.zero_too;
            if out.status == 0 && (mutates || created) && cmd.op != Op::Version {
                self.install(rs);
            }
        }
        Response::from(out)
    }

    fn save(&self, family: Family, args: &[String]) -> Response {
        let tool = format!("{}-save", family.tool());
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
                            format!(
                            "{tool} v1.8.9 (nf_tables): Cannot initialize: table does not exist\n"
                        ),
                        )
                    }
                },
                "-M" | "--modprobe" => {
                    it.next();
                }
                "-f" | "--file" => {
                    return Response::error(
                        2,
                        format!(
                        "{tool}: --file is not supported through the gateway; redirect stdout\n"
                    ),
                    )
                }
                other => {
                    return Response::error(
                        2,
                        format!("{tool} v1.8.9 (nf_tables): unknown option \"{other}\"\n"),
                    )
                }
            }
        }
        let mut rs = self.model(family);
        if let Some(t) = only {
            // `-t TABLE`: that table alone (nft creates it if need be).
            let keep = std::mem::replace(&mut rs, Ruleset::new_family(family));
            rs.replace_table(keep.table(t).clone());
        }
        let stamp = ctime(std::time::SystemTime::now());
        let out = syntax::save_with_comments(
            &rs,
            counters,
            &format!("{tool} v1.8.9 (nf_tables)"),
            &stamp,
        );
        Response::ok(out)
    }

    fn restore(&self, family: Family, args: &[String], stdin: Option<&str>) -> Response {
        let tool = format!("{}-restore", family.tool());
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
                        format!("{tool} v1.8.9 (nf_tables): unknown option \"{other}\"\n"),
                    )
                }
            }
        }
        let text = stdin.unwrap_or("");
        // (No copy of the whole input unless -T cuts a table out of it.)
        let text: std::borrow::Cow<'_, str> = match only {
            Some(t) => only_table(text, t).into(),
            None => text.into(),
        };
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // All or nothing: the restore works on the snapshot, a copy; a
        // failure anywhere leaves the gateway's ruleset untouched.
        // All or nothing: the restore works on a copy of the model (five
        // shared tables: a table is copied only when the restore changes
        // it); a failure drops the copy and leaves the gateway untouched.
        if family == Family::V6 {
            // The IPv6 model has no live counters to carry.
            let mut rs = (*self.pipeline.ruleset6()).clone();
            return match syntax::restore(&mut rs, &text, opts) {
                Ok(()) => {
                    if !opts.test {
                        self.install(rs);
                    }
                    Response::ok("")
                }
                Err(e) => restore_error(&tool, &e),
            };
        }
        let t0 = std::time::Instant::now();
        let c0 = thread_cpu();
        let live = self.pipeline.ruleset();
        let mut rs = live.source.clone();
        let nice = self.background_nice;
        match syntax::restore_with(&mut rs, &text, opts, &move || background(nice)) {
            Ok(()) => {
                if opts.test {
                    return Response::ok("");
                }
                let t1 = std::time::Instant::now();
                live.carry_counters(&mut rs, opts.noflush);
                drop(live);
                let t2 = std::time::Instant::now();
                self.swap(rs);
                tracing::debug!(
                    parse_ms = (t1 - t0).as_secs_f64() * 1e3,
                    carry_ms = (t2 - t1).as_secs_f64() * 1e3,
                    compile_swap_ms = t2.elapsed().as_secs_f64() * 1e3,
                    cpu_ms = (thread_cpu() - c0) * 1e3,
                    "iptables-restore applied"
                );
                Response::ok("")
            }
            Err(e) => restore_error(&tool, &e),
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
            return Response::new(0, String::new(), st.summary());
        } else {
            conntrack_cli::run(table, args, Timestamp::now_monotonic())
        };
        Response::from(out)
    }
}

impl Handler for GatewayHandler {
    fn handle(&self, req: &Request, stream: &mut dyn FnMut(&Response) -> bool) -> Response {
        match req.tool {
            Tool::Iptables => self.iptables(Family::V4, &req.args),
            Tool::IptablesSave => self.save(Family::V4, &req.args),
            Tool::IptablesRestore => self.restore(Family::V4, &req.args, req.stdin.as_deref()),
            Tool::Ip6tables => self.iptables(Family::V6, &req.args),
            Tool::Ip6tablesSave => self.save(Family::V6, &req.args),
            Tool::Ip6tablesRestore => self.restore(Family::V6, &req.args, req.stdin.as_deref()),
            Tool::Conntrack => self.conntrack(&req.args, stream),
            Tool::Stats => self.stats(&req.args),
        }
    }
}

/// A failed restore's answer, as `tool` (`iptables-restore`, ...) words it.
fn restore_error(tool: &str, e: &syntax::RestoreError) -> Response {
    Response::error(
        e.status(),
        format!("{tool} v1.8.9 (nf_tables): {e}\nError occurred at line: {}\nTry `{tool} -h' or '{tool} --help' for more information.\n", e.line),
    )
}

/// Frees a replaced ruleset once no worker holds it any more (workers drop
/// their reference at their next packet), on a thread of its own. A worker
/// that stays idle for a second keeps its reference and frees the ruleset
/// itself when it wakes up.
fn retire(old: Arc<CompiledRuleset>, nice: Option<i32>) {
    let spawned = std::thread::Builder::new()
        .name("tg-retire".into())
        .spawn(move || {
            // Not at the control threads' raised priority: freeing can wait.
            background(nice);
            for _ in 0..200 {
                if Arc::strong_count(&old) == 1 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(old);
        });
    if spawned.is_err() {
        tracing::warn!("control: no thread to free the old ruleset; freed in place");
    }
}

/// Moves the calling thread to `nice` ([`GatewayHandler::with_background_nice`]).
/// Raising a nice value needs no privilege; a failure leaves it as it was.
fn background(nice: Option<i32>) {
    if let Some(n) = nice {
        let _ = crate::sys::sched::set_thread_nice(n);
    }
}

fn thread_cpu() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
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
                seed: 1,
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
            stdin_raw: None,
            stdin_file: None,
        };
        h.handle(&req, &mut |_| true)
    }

    #[test]
    fn ip6tables_edits_the_ipv6_ruleset_beside_the_ipv4_one() {
        let h = handler();
        let g0 = h.pipeline.generation();
        let a = |args: &str| {
            let v: Vec<&str> = args.split(' ').collect();
            call(&h, Tool::Ip6tables, &v, None)
        };
        let rule = "INPUT -s 2001:db8::/32 -p tcp --dport 22 -j ACCEPT";
        let r = a(&format!("-A {rule}"));
        assert_eq!(r.status, 0, "{r:?}");
        assert_eq!(a(&format!("-C {rule}")).status, 0);
        // IPv4 syntax is refused, and the IPv4 ruleset is untouched.
        assert_eq!(a("-A INPUT -s 10.0.0.1 -j DROP").status, 2);
        assert_eq!(
            h.pipeline.generation(),
            g0,
            "the compiled (IPv4) ruleset was not swapped"
        );
        assert!(call(&h, Tool::IptablesSave, &[], None)
            .stdout
            .lines()
            .all(|l| !l.starts_with("-A")));
        let saved = call(&h, Tool::Ip6tablesSave, &[], None).stdout;
        assert!(
            saved.starts_with("# Generated by ip6tables-save v1.8.9 (nf_tables)"),
            "{saved}"
        );
        assert!(
            saved.contains("-A INPUT -s 2001:db8::/32 -p tcp -m tcp --dport 22 -j ACCEPT\n"),
            "{saved}"
        );
        let l = a("-L INPUT -n").stdout;
        assert!(
            l.contains("2001:db8::/32        ::/0                 tcp dpt:22"),
            "{l}"
        );
        // A restore replaces it; a bad one names the line and changes nothing.
        let text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\nCOMMIT\n";
        assert_eq!(call(&h, Tool::Ip6tablesRestore, &[], Some(text)).status, 0);
        let bad = "*filter\n-A INPUT -s 1.2.3.4 -j ACCEPT\nCOMMIT\n";
        let r = call(&h, Tool::Ip6tablesRestore, &[], Some(bad));
        assert_eq!(r.status, 1);
        assert!(
            r.stderr
                .starts_with("ip6tables-restore v1.8.9 (nf_tables): line 2:"),
            "{r:?}"
        );
        let s = a("-S").stdout;
        assert_eq!(s, "-P INPUT DROP\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\n");
        assert_eq!(h.pipeline.ruleset6().family(), Family::V6);
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

    /// Counts `packets` on rule `rule` (0-based) of `chain` in the live
    /// ruleset, as workers would.
    fn count(h: &GatewayHandler, kind: TableKind, chain: &str, rule: usize, packets: u64) {
        let live = h.pipeline.ruleset();
        let t = live.table(kind);
        let ch = t.chains.iter().find(|c| c.name == chain).unwrap();
        for _ in 0..packets {
            live.counters.bump(0, ch.rules[rule].slot, 100);
        }
    }

    fn saved_rule(h: &GatewayHandler, needle: &str) -> String {
        let save = call(h, Tool::IptablesSave, &["-c"], None).stdout;
        save.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no rule with {needle} in {save}"))
            .to_string()
    }

    #[test]
    fn restore_carries_live_counters_of_what_stays() {
        let h = handler();
        for args in [
            &["-A", "INPUT", "-s", "10.0.0.1", "-j", "DROP"][..],
            &[
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-d",
                "1.2.3.4",
                "-j",
                "ACCEPT",
            ][..],
        ] {
            assert_eq!(call(&h, Tool::Iptables, args, None).status, 0);
        }
        count(&h, TableKind::Filter, "INPUT", 0, 3);
        count(&h, TableKind::Nat, "PREROUTING", 0, 5);
        // A restore naming nat replaces it (new rules count from zero);
        // filter is not named and keeps its rule with its live counters.
        let nat = "*nat\n-A PREROUTING -d 1.2.3.4/32 -j ACCEPT\nCOMMIT\n";
        assert_eq!(call(&h, Tool::IptablesRestore, &[], Some(nat)).status, 0);
        assert!(saved_rule(&h, "10.0.0.1/32").starts_with("[3:300] "));
        assert!(saved_rule(&h, "1.2.3.4/32").starts_with("[0:0] "));
        // --noflush: the rule that stays keeps counting from where it was.
        count(&h, TableKind::Nat, "PREROUTING", 0, 2);
        count(&h, TableKind::Filter, "INPUT", 0, 1);
        let add = "*nat\n-A PREROUTING -d 5.6.7.8/32 -j ACCEPT\nCOMMIT\n";
        assert_eq!(
            call(&h, Tool::IptablesRestore, &["--noflush"], Some(add)).status,
            0
        );
        assert!(saved_rule(&h, "1.2.3.4/32").starts_with("[2:200] "));
        assert!(saved_rule(&h, "5.6.7.8/32").starts_with("[0:0] "));
        assert!(saved_rule(&h, "10.0.0.1/32").starts_with("[4:400] "));
        // A failed restore changes no counter either.
        count(&h, TableKind::Nat, "PREROUTING", 1, 1);
        let gen = h.pipeline.generation();
        let bad = "*nat\n-A PREROUTING -j NOPE\nCOMMIT\n";
        assert_ne!(
            call(&h, Tool::IptablesRestore, &["--noflush"], Some(bad)).status,
            0
        );
        assert_eq!(h.pipeline.generation(), gen);
        assert!(saved_rule(&h, "5.6.7.8/32").starts_with("[1:100] "));
        // --counters takes them from the input.
        let set = "*nat\n[7:8] -A PREROUTING -d 9.9.9.9/32 -j ACCEPT\nCOMMIT\n";
        assert_eq!(
            call(
                &h,
                Tool::IptablesRestore,
                &["--noflush", "--counters"],
                Some(set)
            )
            .status,
            0
        );
        assert!(saved_rule(&h, "9.9.9.9/32").starts_with("[7:8] "));
        assert!(saved_rule(&h, "1.2.3.4/32").starts_with("[2:200] "));
    }

    #[test]
    fn ctime_matches_c() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_653_600);
        // date -u -d @1795653600 '+%a %b %e %H:%M:%S %Y'
        assert_eq!(ctime(t), "Thu Nov 26 00:40:00 2026");
        assert_eq!(ctime(std::time::UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
    }
}
