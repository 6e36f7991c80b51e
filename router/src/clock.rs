//! Time as the sans-IO core sees it.
//!
//! The pipeline, conntrack and NAT never read a clock: every entry point takes a
//! [`Timestamp`] argument. The dataplane reads `CLOCK_MONOTONIC` once per batch of
//! packets; tests construct timestamps directly and can jump past any timeout.

use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds since an arbitrary, fixed epoch (monotonic; never wall time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs * 1_000_000_000)
    }

    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms * 1_000_000)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// The monotonic clock, for the I/O edge only (dataplane, control).
    pub fn now_monotonic() -> Self {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(std::time::Instant::now);
        // Offset by one second so that a real timestamp is never ZERO.
        Timestamp(start.elapsed().as_nanos() as u64 + 1_000_000_000)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(5);
        assert_eq!((t + Duration::from_secs(2)).as_secs(), 7);
        assert_eq!((t - Duration::from_secs(9)), Timestamp::ZERO);
        assert_eq!(t.saturating_since(Timestamp::from_secs(9)), Duration::ZERO);
    }
}
