//! Per-worker counters: written by one worker only (plain load + store, no
//! locked instruction on the fast path), read by anyone through [`Stats`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::pipeline::{DropReason, IfIndex};

#[derive(Debug, Default)]
struct IfCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
}

/// One worker's counters. Only that worker writes them.
#[derive(Debug)]
pub struct WorkerStats {
    ifaces: Box<[IfCounters]>,
    drops: [AtomicU64; DropReason::ALL.len()],
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    // Single writer: a relaxed load + store is exact and needs no lock prefix.
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl WorkerStats {
    pub fn new(interfaces: usize) -> Self {
        WorkerStats {
            ifaces: (0..interfaces).map(|_| IfCounters::default()).collect(),
            drops: Default::default(),
        }
    }

    #[inline]
    pub fn rx(&self, on: IfIndex, bytes: usize) {
        if let Some(c) = self.ifaces.get(usize::from(on.0)) {
            bump(&c.rx_packets, 1);
            bump(&c.rx_bytes, bytes as u64);
        }
    }

    #[inline]
    pub fn tx(&self, on: IfIndex, bytes: usize) {
        if let Some(c) = self.ifaces.get(usize::from(on.0)) {
            bump(&c.tx_packets, 1);
            bump(&c.tx_bytes, bytes as u64);
        }
    }

    #[inline]
    pub fn dropped(&self, reason: DropReason) {
        bump(&self.drops[reason.index()], 1);
    }

    /// A write to the egress device failed after it was counted as sent.
    pub fn tx_error(&self) {
        self.dropped(DropReason::TxError);
    }
}

/// Counters of one interface, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfStats {
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// A snapshot of all counters, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub workers: usize,
    pub interfaces: Vec<IfStats>,
    /// The same counters per worker: `per_worker[w][i]` is worker `w`'s
    /// share of `interfaces[i]` (a skew shows flow steering at work).
    pub per_worker: Vec<Vec<IfStats>>,
    /// Every reason, in `DropReason::ALL` order.
    pub drops: Vec<(DropReason, u64)>,
}

impl Stats {
    pub fn collect(names: &[String], workers: &[std::sync::Arc<WorkerStats>]) -> Stats {
        let mut interfaces: Vec<IfStats> = names
            .iter()
            .map(|n| IfStats {
                name: n.clone(),
                ..Default::default()
            })
            .collect();
        let mut drops: Vec<(DropReason, u64)> = DropReason::ALL.iter().map(|&r| (r, 0)).collect();
        let mut per_worker = Vec::with_capacity(workers.len());
        for w in workers {
            let mine: Vec<IfStats> = names
                .iter()
                .zip(w.ifaces.iter())
                .map(|(n, c)| IfStats {
                    name: n.clone(),
                    rx_packets: c.rx_packets.load(Relaxed),
                    rx_bytes: c.rx_bytes.load(Relaxed),
                    tx_packets: c.tx_packets.load(Relaxed),
                    tx_bytes: c.tx_bytes.load(Relaxed),
                })
                .collect();
            for (s, c) in interfaces.iter_mut().zip(&mine) {
                s.rx_packets += c.rx_packets;
                s.rx_bytes += c.rx_bytes;
                s.tx_packets += c.tx_packets;
                s.tx_bytes += c.tx_bytes;
            }
            per_worker.push(mine);
            for (d, c) in drops.iter_mut().zip(w.drops.iter()) {
                d.1 += c.load(Relaxed);
            }
        }
        Stats {
            workers: workers.len(),
            interfaces,
            per_worker,
            drops,
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.iter().find(|d| d.0 == reason).map_or(0, |d| d.1)
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "workers {}", self.workers)?;
        for i in &self.interfaces {
            writeln!(
                f,
                "interface {} rx_packets {} rx_bytes {} tx_packets {} tx_bytes {}",
                i.name, i.rx_packets, i.rx_bytes, i.tx_packets, i.tx_bytes
            )?;
        }
        for (w, ifs) in self.per_worker.iter().enumerate() {
            for i in ifs {
                writeln!(
                    f,
                    "worker {w} interface {} rx_packets {} rx_bytes {} tx_packets {} tx_bytes {}",
                    i.name, i.rx_packets, i.rx_bytes, i.tx_packets, i.tx_bytes
                )?;
            }
        }
        for (r, n) in &self.drops {
            if *n > 0 {
                writeln!(f, "drop {} {}", r.name(), n)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_over_workers() {
        let a = Arc::new(WorkerStats::new(2));
        let b = Arc::new(WorkerStats::new(2));
        a.rx(IfIndex(0), 100);
        b.rx(IfIndex(0), 50);
        b.tx(IfIndex(1), 50);
        a.dropped(DropReason::NoRoute);
        a.rx(IfIndex(9), 1); // unknown interface: ignored, no panic
        let s = Stats::collect(&["c".into(), "s".into()], &[a, b]);
        assert_eq!(s.interfaces[0].rx_packets, 2);
        assert_eq!(s.interfaces[0].rx_bytes, 150);
        assert_eq!(s.interfaces[1].tx_bytes, 50);
        assert_eq!(s.dropped(DropReason::NoRoute), 1);
        assert_eq!(s.per_worker[0][0].rx_bytes, 100);
        assert_eq!(s.per_worker[1][0].rx_bytes, 50);
        assert_eq!(s.per_worker[1][1].tx_packets, 1);
        assert!(s
            .to_string()
            .contains("worker 1 interface c rx_packets 1 rx_bytes 50"));
        assert!(s.to_string().contains("drop no_route 1"));
    }
}
