//! `tungate ruleset check|save|list [-6]`: offline lint and conversion of
//! an iptables-restore (or, with `-6`, ip6tables-restore) file, without a
//! running gateway.

use std::io::Read;
use std::process::ExitCode;

use crate::ruleset::{Family, Ruleset, TableKind};
use crate::syntax::{list, restore, save, ListFormat, RestoreOptions};

const USAGE: &str = "usage: tungate ruleset check [-6] [FILE|-] [--timing]
       tungate ruleset save [-6] [FILE|-] [-c]
       tungate ruleset list [-6] [FILE|-] [-t TABLE] [-n] [-v] [-x] [--line-numbers] [-c]

-6 reads an ip6tables-restore file (IPv6), as ip6tables-restore would;
without it the file is iptables-restore's (IPv4). -4 says so explicitly.

-c keeps the [packets:bytes] counters of the input (iptables-restore --counters);
without it counters read as zero, as after a plain iptables-restore.
";

fn read_input(path: Option<&str>) -> Result<String, String> {
    match path {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("stdin: {e}"))?;
            Ok(s)
        }
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")),
    }
}

/// Runs `tungate ruleset ARGS...` (args after "ruleset").
pub fn main(args: &[String]) -> ExitCode {
    let Some(sub) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut file: Option<&str> = None;
    let mut table: Option<TableKind> = None;
    let mut f = ListFormat::default();
    let mut counters = false;
    let mut timing = false;
    let mut family = Family::V4;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "-t" | "--table" if sub == "list" => {
                i += 1;
                match args.get(i).and_then(|t| TableKind::from_name(t)) {
                    Some(t) => table = Some(t),
                    None => {
                        eprintln!(
                            "tungate ruleset: -t needs one of raw, mangle, nat, filter, security"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            "-c" | "--counters" => counters = true,
            "-6" | "--ipv6" => family = Family::V6,
            "-4" | "--ipv4" => family = Family::V4,
            "--timing" if sub == "check" => timing = true,
            "-n" | "--numeric" if sub == "list" => f.numeric = true,
            "-v" | "--verbose" if sub == "list" => f.verbose = true,
            "-x" | "--exact" if sub == "list" => f.exact = true,
            "--line-numbers" if sub == "list" => f.line_numbers = true,
            a if file.is_none() && (a == "-" || !a.starts_with('-')) => file = Some(a),
            a => {
                eprintln!("tungate ruleset {sub}: unexpected argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let t0 = std::time::Instant::now();
    let text = match read_input(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let t1 = std::time::Instant::now();
    let mut rs = Ruleset::new_family(family);
    let opts = RestoreOptions {
        counters,
        ..Default::default()
    };
    if let Err(e) = restore(&mut rs, &text, opts) {
        eprintln!("{}: {e}", file.unwrap_or("-"));
        return ExitCode::from(1);
    }
    let t2 = std::time::Instant::now();
    if timing {
        let (mut chains, mut rules) = (0, 0);
        for t in rs.tables() {
            chains += t.chains.len();
            rules += t.chains.iter().map(|c| c.rules.len()).sum::<usize>();
        }
        eprintln!(
            "read {:.1} ms, parse+validate {:.1} ms ({rules} rules, {chains} chains)",
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3
        );
    }
    match sub.as_str() {
        "check" => ExitCode::SUCCESS,
        "save" => {
            print!("{}", save(&rs, counters));
            ExitCode::SUCCESS
        }
        "list" => {
            let t = table.unwrap_or(TableKind::Filter);
            let mut out = String::new();
            list(&mut out, rs.table(t), None, f);
            print!("{out}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("tungate ruleset: unknown subcommand {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
