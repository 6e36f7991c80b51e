//! Routing: longest-prefix match over connected and static IPv4 routes, and
//! the gateway's own (local) addresses.
//!
//! Built once at start (from the configuration: `config::Config::route_table`)
//! and then read-only, so workers share it without locks. A lookup costs at most one
//! hash probe per distinct prefix length present in the table.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::hash::AddrHasher;

mod prefix;
pub use prefix::Cidr;

/// Index of a gateway interface (a TUN device) in the configuration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfIndex(pub u16);

/// Where a destination address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteResult {
    /// One of the gateway's own addresses (INPUT path); the interface holding it.
    Local(IfIndex),
    /// Forward out of this interface.
    Forward(IfIndex),
    /// No route.
    Unreachable,
}

type AddrMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<AddrHasher>>;

/// Longest-prefix-match table plus the set of local addresses.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// `by_len[l]`: network (masked, host order) -> interface, for prefixes of length `l`.
    by_len: Vec<AddrMap<IfIndex>>,
    /// Prefix lengths present, longest first.
    lens: Vec<u8>,
    local: AddrMap<IfIndex>,
    /// Gateway address of each interface, by `IfIndex`.
    if_addr: Vec<Ipv4Addr>,
}

impl RouteTable {
    pub fn new() -> Self {
        RouteTable {
            by_len: vec![AddrMap::default(); 33],
            ..Default::default()
        }
    }

    /// Adds (or replaces) the route for `prefix`.
    pub fn add(&mut self, prefix: Cidr, out: IfIndex) {
        let net = u32::from(prefix.network());
        self.by_len[prefix.len as usize].insert(net, out);
        if !self.lens.contains(&prefix.len) {
            self.lens.push(prefix.len);
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    /// Declares `addr` one of the gateway's own addresses, on interface `on`.
    pub fn add_local(&mut self, addr: Ipv4Addr, on: IfIndex) {
        self.local.insert(u32::from(addr), on);
        let i = on.0 as usize;
        if self.if_addr.len() <= i {
            self.if_addr.resize(i + 1, Ipv4Addr::UNSPECIFIED);
        }
        if self.if_addr[i].is_unspecified() {
            self.if_addr[i] = addr;
        }
    }

    /// The gateway's address on interface `on` (source of ICMP errors sent there).
    pub fn interface_address(&self, on: IfIndex) -> Option<Ipv4Addr> {
        self.if_addr
            .get(on.0 as usize)
            .copied()
            .filter(|a| !a.is_unspecified())
    }

    pub fn is_local(&self, addr: Ipv4Addr) -> bool {
        self.local.contains_key(&u32::from(addr))
    }

    /// Longest-prefix match; local addresses win over any route.
    pub fn lookup(&self, dst: Ipv4Addr) -> RouteResult {
        let d = u32::from(dst);
        if let Some(&i) = self.local.get(&d) {
            return RouteResult::Local(i);
        }
        for &len in &self.lens {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            if let Some(&i) = self.by_len[len as usize].get(&(d & mask)) {
                return RouteResult::Forward(i);
            }
        }
        RouteResult::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_locals_first() {
        let mut t = RouteTable::new();
        t.add(c("10.0.0.0/8"), IfIndex(0));
        t.add(c("10.2.0.0/16"), IfIndex(1));
        t.add(c("10.2.3.0/24"), IfIndex(2));
        t.add_local(Ipv4Addr::new(10, 2, 3, 1), IfIndex(2));
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(t.lookup(ip("10.9.9.9")), RouteResult::Forward(IfIndex(0)));
        assert_eq!(t.lookup(ip("10.2.9.9")), RouteResult::Forward(IfIndex(1)));
        assert_eq!(t.lookup(ip("10.2.3.7")), RouteResult::Forward(IfIndex(2)));
        assert_eq!(t.lookup(ip("10.2.3.1")), RouteResult::Local(IfIndex(2)));
        assert_eq!(t.lookup(ip("11.0.0.1")), RouteResult::Unreachable);
        t.add(c("0.0.0.0/0"), IfIndex(3));
        assert_eq!(t.lookup(ip("11.0.0.1")), RouteResult::Forward(IfIndex(3)));
        assert_eq!(t.interface_address(IfIndex(2)), Some(ip("10.2.3.1")));
        assert_eq!(t.interface_address(IfIndex(0)), None);
    }
}
