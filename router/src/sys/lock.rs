//! Crash recovery: [`DeviceLock`] is an `flock` held for the life of the
//! process on `/run/tungate/DEV.lock` for every device. The kernel releases
//! it when the process dies, even by SIGKILL, so a device whose lock can be
//! taken is a leftover of a dead gateway (and may be replaced), while a
//! device whose lock is held belongs to a live one (and must not be touched).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the per-device locks live (created 0755 by root).
pub const LOCK_DIR: &str = "/run/tungate";

/// An exclusive `flock` on `LOCK_DIR/DEV.lock`, held while this value lives
/// (and released by the kernel when the process dies, however it dies).
#[derive(Debug)]
pub struct DeviceLock {
    pub path: PathBuf,
    _lock: Flock<File>,
}

/// Result of [`DeviceLock::acquire`].
#[derive(Debug)]
pub enum LockState {
    /// Ours now: any device of that name is a dead gateway's leftover.
    Acquired(DeviceLock),
    /// A live process holds it (the pid it wrote, if readable).
    Held { path: PathBuf, pid: Option<u32> },
}

impl DeviceLock {
    /// Takes the lock of device `dev` without blocking, in `dir`
    /// ([`LOCK_DIR`] normally), and writes our pid into it.
    pub fn acquire(dir: &Path, dev: &str) -> io::Result<LockState> {
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("lock dir {}: {e}", dir.display())))?;
        let path = dir.join(format!("{dev}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // The previous owner unlinked the file between our open and our
            // lock (see Drop): this inode guards nothing any more; retry.
            Ok(lock) if !same_file(&path, &lock) => {
                drop(lock);
                DeviceLock::acquire(dir, dev)
            }
            Ok(mut lock) => {
                lock.set_len(0)?;
                writeln!(&mut *lock, "{}", std::process::id())?;
                Ok(LockState::Acquired(DeviceLock { path, _lock: lock }))
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                Ok(LockState::Held { path, pid })
            }
            Err((_, e)) => Err(io::Error::other(format!("flock {}: {e}", path.display()))),
        }
    }
}

fn same_file(path: &Path, f: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), f.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Drop for DeviceLock {
    /// Removes the lock file while still holding the lock (a gateway that
    /// opened it meanwhile sees the inode change and retries). After a
    /// switch to an unprivileged user the unlink fails and the empty file
    /// stays: harmless, the next start reuses it.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_while_held_and_free_after() {
        let dir = std::env::temp_dir().join(format!("tungate-lock-{}", std::process::id()));
        let first = DeviceLock::acquire(&dir, "tg-x").unwrap();
        let LockState::Acquired(held) = first else {
            panic!("first lock must succeed")
        };
        // flock is per open file description: a second open conflicts even
        // in the same process, like another gateway would.
        match DeviceLock::acquire(&dir, "tg-x").unwrap() {
            LockState::Held { pid, .. } => assert_eq!(pid, Some(std::process::id())),
            LockState::Acquired(_) => panic!("a held lock was taken twice"),
        }
        drop(held);
        assert!(!dir.join("tg-x.lock").exists(), "removed on release");
        assert!(matches!(
            DeviceLock::acquire(&dir, "tg-x").unwrap(),
            LockState::Acquired(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
