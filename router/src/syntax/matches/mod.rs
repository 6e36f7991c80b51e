//! Match extensions (`-m NAME`): for each one, the match as `-m` loads it,
//! its options and the check of the complete rule, in one [`MatchExt`]
//! next to its option parser ([`header`]: what the packet's headers say;
//! [`state`]: conntrack, marks, lists and counters). [`MATCHES`] lists
//! them all; `-m`, the implicit `-p tcp/udp/icmp` match and the name
//! suggestions find them there. Adding a match is adding one block and one
//! line to the list.

mod header;
mod state;

use self::header::{ADDRTYPE, ICMP, IPRANGE, LENGTH, MAC, MULTIPORT, TCP, TCPMSS, TTL, UDP};
use self::state::{COMMENT, CONNMARK, CONNTRACK, LIMIT, MARK, RECENT, STATE, STATISTIC};
use super::names;
use super::rule::Arg;
use super::values::{invalid, R};
use super::SyntaxError;
use crate::ruleset::Match;

/// Parses one option if it is this extension's (`Ok(false)`: not ours),
/// recording it in the `S*` bits.
type OptionFn = fn(&mut Match, &mut u32, &mut Arg<'_, '_, '_>) -> R<bool>;

/// Checks the match once the whole rule is read: the options seen (`S*`
/// bits), the rule's protocol number and its inversion.
type CheckFn = fn(&Match, u32, u8, bool) -> R<()>;

/// One match extension.
pub(super) struct MatchExt {
    pub(super) name: &'static str,
    /// The match as `-m NAME` loads it, before any of its options.
    pub(super) new: fn() -> Match,
    pub(super) option: OptionFn,
    pub(super) check: CheckFn,
}

/// Match modules tungate knows, in the order names are suggested.
static MATCHES: [MatchExt; 18] = [
    TCP, UDP, ICMP, MULTIPORT, CONNTRACK, STATE, COMMENT, MARK, CONNMARK, STATISTIC, ADDRTYPE,
    IPRANGE, LIMIT, LENGTH, TTL, TCPMSS, RECENT, MAC,
];

/// The extension `-m name` loads.
pub(super) fn find(name: &str) -> R<&'static MatchExt> {
    MATCHES
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| SyntaxError::UnknownMatch {
            name: name.to_string(),
            suggest: names::suggest(name, MATCHES.iter().map(|e| e.name)),
        })
}

fn no_check(_: &Match, _: u32, _: u8, _: bool) -> R<()> {
    Ok(())
}

/// The error `msg` when `unmet`.
fn require(unmet: bool, msg: &str) -> R<()> {
    if unmet {
        return Err(invalid(msg));
    }
    Ok(())
}
