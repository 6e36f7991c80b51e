//! The `conntrack` tool (conntrack-tools 1.4.7) emulated against tungate's
//! connection table: `-L`, `-D`, `-F`, `-C`, `-S`, `-G`, `-U` (mark),
//! `-E`, `-V`, `-h`, plain, `-o extended`, `-o id` and `-o xml` output,
//! with the real tool's option parser (getopt_long: bundled short options,
//! attached arguments, unique prefixes of long options, protocol options
//! that exist only after `-p`), its command/option legality table, its
//! filters (including the NAT filters of libnetfilter_conntrack), its line
//! formats and its error texts and exit statuses (2 for a parameter problem,
//! 1 for an operation that failed or deleted nothing).
//!
//! The formats and messages were taken from the real 1.4.7 binary run
//! against kernel entries in a scratch network namespace, quirks included
//! (an attached `-n`/`-g`/`-j` argument is ignored, `-U` prints only the
//! first updated entry, `-D` of nothing exits 1); `tests/conntrack_cli.rs`
//! keeps comparing with that binary when it is available.
//!
//! Not emulated: `-I` (tungate creates entries from packets only), `-U` of
//! the status or timeout, `-z` (accepted, counters are not zeroed), zones
//! and labels (nothing matches `-w N`, N != 0; `-l` is an unknown label),
//! the `[USERSPACE] portid=` suffix of events, one `-S` line per CPU.
//!
//! Entry points: [`run`] for the one-shot commands and [`EventStream`] /
//! [`events`] for `-E`. Nothing here reads a clock: time is an argument.
//!
//! One concept per file: `option.rs` (conntrack's option table),
//! `value.rs` (option values read as the C library reads them) and
//! `parse.rs` (the getopt_long loop and the legality checks) turn argv into
//! a [`Request`] (`request.rs`, with its filters); `format.rs` prints
//! entries, events and statistics; `exec.rs` runs the one-shot commands
//! against the table and `event.rs` streams `-E`; `error.rs` holds the
//! messages and exit statuses. This layer sits beside `syntax` and below
//! `control`, which serves it through the control socket; it opens no
//! socket or file itself.

mod error;
mod event;
mod exec;
#[cfg(test)]
mod fixture;
mod format;
mod option;
mod parse;
mod request;
mod value;

pub use error::{CtError, EXIT_FAILURE, EXIT_PARAMETER, PROG};
pub use event::{events, is_event_stream, EventStream};
pub use exec::{execute, run, run_with};
pub use format::{
    format_entry, format_event, format_stats, format_xml, CliOptions, XML_FOOTER, XML_HEADER,
};
pub use option::{Cmd, CtTable};
pub use parse::{parse, parse_warn};
pub use request::{AddrFilter, NatArg, Request};
