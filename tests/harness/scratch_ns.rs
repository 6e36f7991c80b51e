//! A bare scratch network namespace: added by a test, deleted on drop. No
//! other harness code, so `router/tests/` can include this file too.

use std::process::Command;

/// The network namespace `<prefix>_<pid>`, deleted (best effort) on drop.
pub struct ScratchNs(pub String);

impl ScratchNs {
    /// `ip netns add <prefix>_<pid>`; `None` when that fails.
    pub fn add(prefix: &str) -> Option<ScratchNs> {
        let name = format!("{prefix}_{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(ScratchNs(name))
    }
}

impl Drop for ScratchNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
