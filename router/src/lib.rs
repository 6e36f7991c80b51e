//! tungate: a userspace firewall/NAT gateway with iptables semantics.
//!
//! Layers, top to bottom (arrows only point down, see `../shared/DESIGN.md`):
//!
//! ```text
//! cli            argument parsing, multi-call dispatch (tungate, iptables, ...)
//! control        control socket server + client
//! dataplane      the only module with `unsafe`: TUN devices, io_uring, workers
//! pipeline       hook traversal: PREROUTING -> routing -> INPUT/FORWARD -> OUTPUT -> POSTROUTING
//!   ruleset      tables, chains, rules, matches, targets, counters; compiled form
//!   conntrack    tuples, entries, protocol state, sharded table, expiry
//!   nat          bindings, unique-tuple allocation, header rewriting
//!   route        longest-prefix-match routes and local addresses
//! syntax         iptables / iptables-restore parser, iptables-save / -L printers
//! wire           zero-copy packet views, checksums
//! clock          the one time type the sans-IO core takes as an argument
//! hash           the hashers of the crate's maps (tuples, addresses, names)
//! ```

pub mod cli;
pub mod clock;
pub mod config;
pub mod conntrack;
pub mod control;
pub mod dataplane;
pub mod hash;
pub mod nat;
pub mod pipeline;
pub mod route;
pub mod ruleset;
pub mod syntax;
pub mod wire;
