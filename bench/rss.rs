//! The benchmarks' memory figure (`pipeline_bench`, `ct_bench` include
//! this file).

/// This process's resident set size in bytes (`/proc/self/statm`; 0 where
/// it cannot be read).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
