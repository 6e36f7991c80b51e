//! `tungate ruleset check|save|list`: offline lint and conversion of an
//! iptables-restore file, without a running gateway.
#![forbid(unsafe_code)]

use std::io::Read;
use std::process::ExitCode;

use crate::ruleset::{Ruleset, TableKind};
use crate::syntax::{list, restore, save, ListFormat, RestoreOptions};

const USAGE: &str = "usage: tungate ruleset check [FILE|-]
       tungate ruleset save [FILE|-] [-c]
       tungate ruleset list [FILE|-] [-t TABLE] [-n] [-v] [-x] [--line-numbers] [-c]

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

/// Loads a restore file into a fresh ruleset; the error is ready to print.
pub fn load(path: Option<&str>, counters: bool) -> Result<Ruleset, String> {
    let text = read_input(path)?;
    let mut rs = Ruleset::new();
    restore(
        &mut rs,
        &text,
        RestoreOptions {
            counters,
            ..Default::default()
        },
    )
    .map_err(|e| format!("{}: {e}", path.unwrap_or("-")))?;
    Ok(rs)
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
    let rs = match load(file, counters) {
        Ok(rs) => rs,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
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
