//! Match extensions (`-m NAME`): for each one, the match as `-m` loads it,
//! its options and the check of the complete rule, in one [`MatchExt`]
//! next to its option parser ([`header`]: what the packet's headers say;
//! [`state`]: conntrack, marks, lists and counters). [`MATCHES`] lists
//! them all; `-m`, the implicit `-p tcp/udp/icmp` match and the name
//! suggestions find them there. Adding a match is adding one block and one
//! line to the list.

mod header;
mod ipv6;
mod state;

use self::header::{ADDRTYPE, ICMP, IPRANGE, LENGTH, MAC, MULTIPORT, TCP, TCPMSS, TTL, UDP};
use self::ipv6::{DST, EUI64, FRAG, HBH, HL, ICMP6, IPV6HEADER, RT};
use self::state::{COMMENT, CONNMARK, CONNTRACK, LIMIT, MARK, RECENT, STATE, STATISTIC};
use super::names;
use super::rule::Arg;
use super::values::{invalid, R};
use super::SyntaxError;
use crate::ruleset::{Family, Match};

/// Parses one option if it is this extension's (`Ok(false)`: not ours),
/// recording it in the `S*` bits.
type OptionFn = fn(&mut Match, &mut u32, &mut Arg<'_, '_, '_>) -> R<bool>;

/// Checks the match once the whole rule is read: the options seen (`S*`
/// bits), the rule's protocol number and its inversion.
type CheckFn = fn(&Match, u32, u8, bool) -> R<()>;

/// One match extension.
pub(super) struct MatchExt {
    pub(super) name: &'static str,
    /// The family it serves, as iptables' file prefixes say: None for both
    /// (libxt_), else IPv4 only (libipt_) or IPv6 only (libip6t_).
    pub(super) family: Option<Family>,
    /// The match as `-m NAME` loads it (for a rule of the given family),
    /// before any of its options.
    pub(super) new: fn(Family) -> Match,
    pub(super) option: OptionFn,
    pub(super) check: CheckFn,
}

/// Match modules tungate knows, in the order names are suggested.
static MATCHES: [MatchExt; 26] = [
    TCP, UDP, ICMP, MULTIPORT, CONNTRACK, STATE, COMMENT, MARK, CONNMARK, STATISTIC, ADDRTYPE,
    IPRANGE, LIMIT, LENGTH, TTL, TCPMSS, RECENT, MAC, ICMP6, FRAG, IPV6HEADER, HBH, DST, RT, HL,
    EUI64,
];

/// The extensions a tool of `family` loads.
fn of_family(family: Family) -> impl Iterator<Item = &'static MatchExt> {
    MATCHES
        .iter()
        .filter(move |e| e.family.is_none_or(|f| f == family))
}

/// The extension `-m name` loads in a rule of `family` (another family's
/// extension is as unknown as a misspelt one, as the real tools say).
pub(super) fn find(name: &str, family: Family) -> R<&'static MatchExt> {
    of_family(family)
        .find(|e| e.name == name)
        .ok_or_else(|| SyntaxError::UnknownMatch {
            name: name.to_string(),
            suggest: names::suggest(name, of_family(family).map(|e| e.name)),
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
