//! Command-line front ends: `tungate run`, `tungate ruleset ...`, and (later)
//! the multi-call iptables/conntrack personalities.
#![forbid(unsafe_code)]

pub mod ruleset;

use std::process::ExitCode;

const USAGE: &str = "\
usage: tungate <command> [args]

commands:
  run --config FILE            run the gateway
  ruleset check [FILE|-]       validate an iptables-restore file
  ruleset save [FILE|-]        print its iptables-save form
  ruleset list [FILE|-] [-t TABLE] [-n] [-v] [-x] [--line-numbers]
                               print its iptables -L form
";

/// Entry point: dispatches on argv[0] (multi-call links) then on the subcommand.
pub fn main(args: Vec<String>) -> ExitCode {
    let rest: Vec<String> = args.iter().skip(1).cloned().collect();
    match rest.first().map(String::as_str) {
        Some("-h") | Some("--help") | None => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("ruleset") => ruleset::main(&rest[1..]),
        Some(other) => {
            eprintln!("tungate: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
