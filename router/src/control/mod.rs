//! The control plane: a Unix stream socket through which the multi-call front
//! ends (`tungate iptables ...`, `iptables-save`, `iptables-restore`,
//! `conntrack`, `tungate stats`) reach a running gateway.
//!
//! The design keeps every tool's behaviour in the server: a client sends its
//! argv and standard input, the server runs the tool against the live state and
//! returns what the real tool would print and its exit status. So `iptables -L`
//! through the socket and `tungate ruleset list` offline share one printer.
//!
//! See [`proto`] for the wire format, [`server`] for the listener (peer
//! credentials, size and time bounds) and [`client`] for the caller side.

pub mod client;
pub mod gateway;
pub mod metrics;
pub mod proto;
pub mod server;

/// Where the socket lives when neither `--ctl`, `TUNGATE_CTL` nor the config
/// says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/tungate/control.sock";
