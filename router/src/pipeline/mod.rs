//! The packet pipeline: netfilter's hook traversal over one IPv4 packet.
//!
//! Sans-IO: [`Processor::process`] takes the packet, where it came from and the
//! time, and returns a [`Verdict`] the dataplane acts on. Packets the gateway
//! itself originates (ICMP errors, REJECT replies, echo replies) are handed to
//! an [`Emit`] sink together with the interface they leave through.

pub mod compile;
pub mod engine;
pub mod eval;
pub mod log;

use crate::clock::Timestamp;
use crate::wire::vnet::VnetHdr;

pub use crate::route::IfIndex;

/// Why a packet was dropped. Every drop is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the headers it claims, or truncated.
    Malformed,
    /// IP version nibble is neither 4 nor 6.
    BadVersion,
    /// IPv6: not forwarded yet.
    Ipv6Unsupported,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// TTL reached zero on forward (an ICMP time-exceeded was emitted).
    TtlExceeded,
    /// No route to the destination (an ICMP net-unreachable was emitted).
    NoRoute,
    /// DF set and larger than the egress MTU (ICMP frag-needed emitted).
    FragNeeded,
    /// A rule's DROP target.
    RuleDrop,
    /// A rule's REJECT target (the reply was emitted).
    RuleReject,
    /// A built-in chain's DROP policy.
    PolicyDrop,
    /// Conntrack classed the packet INVALID and nothing accepted it.
    Invalid,
    /// Conntrack table full and no entry could be evicted.
    ConntrackFull,
    /// NAT could not find a free tuple.
    NatExhausted,
    /// Fragment dropped (reassembly limits, overlap, timeout).
    Fragment,
    /// Addressed to the gateway, nothing listening (the kernel answers with
    /// port unreachable / RST; counted here).
    LocalNoListener,
    /// The vnet header disagrees with the frame.
    BadVnetHdr,
    /// The egress device could not take the packet.
    TxError,
}

impl DropReason {
    pub const ALL: [DropReason; 17] = [
        DropReason::Malformed,
        DropReason::BadVersion,
        DropReason::Ipv6Unsupported,
        DropReason::BadIpChecksum,
        DropReason::TtlExceeded,
        DropReason::NoRoute,
        DropReason::FragNeeded,
        DropReason::RuleDrop,
        DropReason::RuleReject,
        DropReason::PolicyDrop,
        DropReason::Invalid,
        DropReason::ConntrackFull,
        DropReason::NatExhausted,
        DropReason::Fragment,
        DropReason::LocalNoListener,
        DropReason::BadVnetHdr,
        DropReason::TxError,
    ];

    /// Stable snake_case name, used in `tungate stats` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadVersion => "bad_version",
            DropReason::Ipv6Unsupported => "ipv6_unsupported",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoRoute => "no_route",
            DropReason::FragNeeded => "frag_needed",
            DropReason::RuleDrop => "rule_drop",
            DropReason::RuleReject => "rule_reject",
            DropReason::PolicyDrop => "policy_drop",
            DropReason::Invalid => "invalid",
            DropReason::ConntrackFull => "conntrack_full",
            DropReason::NatExhausted => "nat_exhausted",
            DropReason::Fragment => "fragment",
            DropReason::LocalNoListener => "local_no_listener",
            DropReason::BadVnetHdr => "bad_vnet_hdr",
            DropReason::TxError => "tx_error",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the dataplane does with a packet after [`Processor::process`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write the (possibly rewritten) packet, with its vnet header, to `out`.
    Forward(IfIndex),
    /// Drop it and count the reason.
    Drop(DropReason),
    /// The gateway consumed it (delivered locally, or held for reassembly);
    /// anything to send in answer went through [`Emit`].
    Consumed,
}

/// Where the packet came from and when.
#[derive(Debug, Clone, Copy)]
pub struct PacketCtx {
    pub ingress: IfIndex,
    pub now: Timestamp,
}

/// Sink for what the pipeline produces besides its verdict: packets the
/// gateway originates (a full IPv4 packet, no vnet header: the dataplane
/// writes a zero one; checksums complete), and the LOG target's lines.
pub trait Emit {
    fn emit(&mut self, egress: IfIndex, packet: &[u8]);
    /// A LOG target's line (the kernel's format, without the syslog
    /// prefix) at syslog `level` 0..=7, for the edge to write.
    fn log(&mut self, level: u8, line: &str);
}

/// Collects emitted packets and LOG lines; for tests and for callers
/// without a device.
#[derive(Debug, Default)]
pub struct EmitVec(pub Vec<(IfIndex, Vec<u8>)>, pub Vec<(u8, String)>);

impl Emit for EmitVec {
    fn emit(&mut self, egress: IfIndex, packet: &[u8]) {
        self.0.push((egress, packet.to_vec()));
    }
    fn log(&mut self, level: u8, line: &str) {
        self.1.push((level, line.to_string()));
    }
}

/// The pipeline as the dataplane sees it. `packet` is the IP packet (no vnet
/// header); `vnet` is its offload header, to be kept consistent with any
/// rewrite (a partial checksum stays partial, see `wire`). Each worker
/// thread owns a [`Processor::Worker`] and passes it to every call: per
/// worker state (RNG, scratch buffers, the ruleset it last used) needs no
/// lock.
pub trait Processor: Send + Sync {
    type Worker: Send;

    /// The state of worker `index`.
    fn worker(&self, index: usize) -> Self::Worker;

    fn process(
        &self,
        worker: &mut Self::Worker,
        ctx: &PacketCtx,
        packet: &mut [u8],
        vnet: &mut VnetHdr,
        out: &mut dyn Emit,
    ) -> Verdict;
}

#[cfg(test)]
mod tests;
