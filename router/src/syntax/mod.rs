//! The iptables language: the `iptables` command line and the
//! `iptables-restore` format (parse), and the `iptables-save`, `iptables -S`
//! and `iptables -L` forms (print), byte-compatible with iptables 1.8.9
//! (nf_tables), following 1.8.11 where the conformance data says so.
//!
//! Parsing: `command` reads the command line (the command, table, chain
//! and listing flags) and hands rule options to `rule`, which takes the
//! generic ones (`-p -s -d -i -o -f -j -g -m`) and passes the rest to the
//! extensions in `matches` and `targets` (one block per extension, found
//! by name in their tables); `values` parses option values. Printing:
//! `save` (iptables-save, `-S`) and `list` (`-L`), with what both print
//! alike in `format`. `apply` runs commands and restores; `names` holds
//! the name tables.
//!
//! Entry points for the other layers:
//!
//! * [`apply_command`]`(&mut Ruleset, &[&str]) -> Output` runs one iptables
//!   command line (arguments after the program name: `-t nat -A X ...`,
//!   `-L -n -v`, `-S`, `-D X 3`, ...) and returns stdout, stderr and the exit
//!   status iptables would give; the ruleset is unchanged when it fails.
//!   [`parse_command`] + [`exec`] are the two halves.
//! * [`restore`]`(&mut Ruleset, text, RestoreOptions) -> Result<(), RestoreError>`
//!   applies iptables-restore input (`noflush`, `counters`, `test`), all or
//!   nothing per COMMIT; the error carries the line.
//! * [`save`]`(&Ruleset, counters) -> String` is iptables-save without the
//!   `#` lines; [`list`] / [`list_rules`] print one table like `-L` / `-S`.
//! * [`tokenize`] splits a line with iptables-restore's quoting rules.
//!
//! Parsing allocates only what the model keeps (names, comments); tokens are
//! borrowed. Name tables (/etc/protocols, /etc/services, /etc/hosts) are read
//! once, lazily, and only for printing names or parsing service names.

/// An option parser's first step: `ours!(let PATTERN = value)` is `let
/// PATTERN = value else { return Ok(false) }`, unpacking its own match or
/// target (anything else is not this extension's, nor is the option).
macro_rules! ours {
    (let $pat:pat = $e:expr) => {
        let $pat = $e else {
            return Ok(false);
        };
    };
}

pub mod apply;
mod command;
mod format;
mod format6;
mod list;
mod matches;
pub mod names;
mod rule;
mod save;
mod targets;
mod values;

pub use apply::{
    apply_command, exec, restore, restore_with, save_one as save_table_text, tokenize,
    verbose_rule, CmdError, Output, RestoreError, RestoreOptions,
};
pub use command::{parse_command, parse_command_for, Command, Op};
pub use list::{list, list_rule, ListFormat};
pub use save::{list_rules, rule_spec, save, save_table, save_with_comments};

/// A problem with one command or rule line. The message names the token and
/// says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("unknown option \"{token}\"{}", suggest.map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default())]
    UnknownOption {
        token: String,
        suggest: Option<&'static str>,
    },
    #[error("option \"{option}\" requires an argument")]
    MissingArgument { option: String },
    #[error("invalid value \"{value}\" for {option}: expected {expected}")]
    BadValue {
        option: String,
        value: String,
        expected: &'static str,
    },
    #[error(
        "host names are not supported: \"{value}\" for {option}: give a numeric {family} address"
    )]
    HostName {
        option: String,
        value: String,
        family: &'static str,
    },
    #[error("unknown protocol \"{value}\" specified")]
    UnknownProtocol { value: String },
    #[error("Couldn't load match `{name}':No such file or directory{}", suggest.map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default())]
    UnknownMatch {
        name: String,
        suggest: Option<&'static str>,
    },
    #[error("can't initialize iptables table `{table}': Table does not exist")]
    UnknownTable { table: String },
    #[error("Bad argument `{token}'")]
    UnexpectedArgument { token: String },
    #[error("{0}")]
    Invalid(String),
}

impl SyntaxError {
    /// iptables' exit status: 3 for a missing table, 2 for other
    /// parameter problems.
    pub fn status(&self) -> i32 {
        match self {
            SyntaxError::UnknownTable { .. } => 3,
            _ => 2,
        }
    }
}
