//! Command-line front ends: `tungate run`, `tungate ruleset ...`, and (later)
//! the multi-call iptables/conntrack personalities.

pub mod multicall;
pub mod ruleset;
pub mod run;

use crate::control::proto::Tool;
use std::process::ExitCode;

const USAGE: &str = "\
usage: tungate <command> [args]

commands:
  run --config FILE            run the gateway
  ruleset check [-6] [FILE|-]  validate an iptables-restore file
                               (-6: ip6tables-restore)
  ruleset save [-6] [FILE|-]   print its iptables-save form
  ruleset list [-6] [FILE|-] [-t TABLE] [-n] [-v] [-x] [--line-numbers]
                               print its iptables -L form
  iptables ARGS...             iptables against the running gateway
  iptables-save [-t TABLE] [-c]
  iptables-restore [--noflush] [--counters] [--test] < FILE
  ip6tables, ip6tables-save, ip6tables-restore
                               the same for the IPv6 ruleset (held by the
                               gateway; IPv6 packets are not filtered yet)
  conntrack -L|-D|-F|-C|-S|-E [filters]
  stats                        counters of the running gateway
  install-links DIR            links named iptables, iptables-save,
                               iptables-restore, ip6tables, ip6tables-save,
                               ip6tables-restore, conntrack -> tungate

The control socket is --ctl PATH (first argument of a front end), else
$TUNGATE_CTL, else /run/tungate/control.sock.
";

/// Reads the system's name databases (/etc/protocols, services, hosts,
/// networks) and hands them to the parser and printers, which read no
/// file themselves (`syntax::names`).
pub fn install_system_names() {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    crate::syntax::names::install(crate::syntax::names::SystemFiles {
        protocols: read("/etc/protocols"),
        services: read("/etc/services"),
        hosts: read("/etc/hosts"),
        networks: read("/etc/networks"),
    });
}

/// Entry point: dispatches on argv[0] (multi-call links) then on the subcommand.
pub fn main(args: Vec<String>) -> ExitCode {
    install_system_names();
    let argv0 = args.first().map(String::as_str).unwrap_or("tungate");
    if let Some(tool) = Tool::from_program_name(argv0) {
        return multicall::run(tool, args[1..].to_vec());
    }
    let rest: Vec<String> = args.iter().skip(1).cloned().collect();
    let cmd = rest.first().map(String::as_str);
    if let Some(tool) = cmd.and_then(Tool::from_program_name) {
        return multicall::run(tool, rest[1..].to_vec());
    }
    match cmd {
        Some("install-links") => match rest.get(1) {
            Some(dir) => multicall::install_links(dir),
            None => {
                eprintln!("usage: tungate install-links DIR");
                ExitCode::from(2)
            }
        },
        Some("-h") | Some("--help") | None => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("run") => run::main(&rest[1..]),
        Some("ruleset") => ruleset::main(&rest[1..]),
        Some(other) => {
            eprintln!("tungate: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
