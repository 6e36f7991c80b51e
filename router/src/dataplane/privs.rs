//! Least privilege and crash recovery for `tungate run`.
//!
//! The gateway needs root for a short moment at start: to create the TUN
//! devices, move them into namespaces, bind the control socket and take the
//! device locks. After that nothing it does needs a privilege: the workers
//! read and write already-open TUN queues through io_uring, the control
//! server accepts on an already-bound socket, and at shutdown closing the last
//! queue of a (non-persistent) TUN device removes it. So, once everything is
//! open, [`drop_privileges`] gives up every capability (bounding, permitted,
//! effective, inheritable and ambient sets all emptied), sets
//! `no_new_privs`, and switches to the configured user and group when there
//! is one; [`install_seccomp`] then confines the process to the system calls
//! of [`ALLOWED_SYSCALLS`]. What seccomp cannot see, the operations submitted
//! through the workers' io_uring rings, is confined by io_uring restrictions
//! registered on each ring (read and write of its TUN queues only).
//!
//! Both act on the calling thread; the uid/gid switch, `no_new_privs` and the
//! seccomp filter (`SECCOMP_FILTER_FLAG_TSYNC`) reach every thread, but
//! capabilities are per thread: call them before any thread is spawned.
//!
//! Shutdown without privileges: closing the last queue removes a device;
//! [`LinkWatch`] (netlink sockets opened in the devices' namespaces before
//! the drop) lets the gateway wait until the kernel has done so.
//!
//! Crash recovery: [`DeviceLock`] is an `flock` held for the life of the
//! process on `/run/tungate/DEV.lock` for every device. The kernel releases
//! it when the process dies, even by SIGKILL, so a device whose lock can be
//! taken is a leftover of a dead gateway (and may be replaced), while a
//! device whose lock is held belongs to a live one (and must not be touched).
//!
//! A seccomp violation is trapped (`SECCOMP_RET_TRAP`): a `SIGSYS` handler
//! writes `tungate: seccomp: system call N is not allowed` to stderr and exits
//! with status 159 (128 + SIGSYS), so the log and an init system both see it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid};

/// Where the per-device locks live (created 0755 by root).
pub const LOCK_DIR: &str = "/run/tungate";

/// Exit status after a seccomp violation: 128 + SIGSYS.
pub const SECCOMP_EXIT_STATUS: i32 = 128 + libc::SIGSYS;

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

/// Who to become after start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Identity {
    /// `None`: stay uid 0 (still without any capability).
    pub uid: Option<u32>,
    /// `None`: the user's primary group, or stay gid 0.
    pub gid: Option<u32>,
}

/// The capability sets, uids and seccomp mode of a process, from
/// `/proc/PID/status` (what the tests and the log show).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcStatus {
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    pub groups: Vec<u32>,
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub no_new_privs: bool,
    pub seccomp: u8,
}

impl ProcStatus {
    /// Parses the text of a `/proc/PID/status` file.
    pub fn parse(text: &str) -> ProcStatus {
        let mut s = ProcStatus::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            let ids = |v: &str| -> [u32; 4] {
                let mut out = [0; 4];
                for (o, x) in out.iter_mut().zip(v.split_whitespace()) {
                    *o = x.parse().unwrap_or(u32::MAX);
                }
                out
            };
            let hex = |v: &str| u64::from_str_radix(v, 16).unwrap_or(u64::MAX);
            match k {
                "Uid" => s.uid = ids(v),
                "Gid" => s.gid = ids(v),
                "Groups" => {
                    s.groups = v
                        .split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                }
                "CapInh" => s.cap_inh = hex(v),
                "CapPrm" => s.cap_prm = hex(v),
                "CapEff" => s.cap_eff = hex(v),
                "CapBnd" => s.cap_bnd = hex(v),
                "CapAmb" => s.cap_amb = hex(v),
                "NoNewPrivs" => s.no_new_privs = v == "1",
                "Seccomp" => s.seccomp = v.parse().unwrap_or(u8::MAX),
                _ => {}
            }
        }
        s
    }

    /// `/proc/PID/status` (`None`: this thread's own, `/proc/thread-self`).
    pub fn read(pid: Option<i32>) -> io::Result<ProcStatus> {
        let p = match pid {
            Some(p) => format!("/proc/{p}/status"),
            None => "/proc/thread-self/status".to_string(),
        };
        Ok(ProcStatus::parse(&std::fs::read_to_string(p)?))
    }
}

/// Capability header/data of `capget(2)`/`capset(2)`, version 3 (64-bit sets
/// in two 32-bit halves). Not in the `libc` crate.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3` (linux/capability.h).
const CAP_VERSION_3: u32 = 0x2008_0522;

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

fn prctl(op: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl operations used here (PR_CAPBSET_DROP, PR_CAP_AMBIENT,
    // PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS) take integer arguments only and
    // touch no user memory.
    let r = unsafe {
        libc::prctl(
            op,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Gives up root: empties the bounding and ambient sets, switches group and
/// user (`who`), empties the permitted/effective/inheritable sets and sets
/// `no_new_privs`. Checks the result in `/proc/thread-self/status` and
/// returns it. Call on the main thread before spawning any other.
pub fn drop_privileges(who: Identity) -> io::Result<ProcStatus> {
    let ctx =
        |what: &'static str| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    // While we still have CAP_SETPCAP: nothing can ever be gained back, not
    // even by an execve of a setuid or file-capability binary.
    for cap in 0..=last_cap() {
        match prctl(libc::PR_CAPBSET_DROP, cap.into()) {
            // A capability newer than this kernel: nothing to drop.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            r => r.map_err(ctx("PR_CAPBSET_DROP"))?,
        }
    }
    // PR_CAP_AMBIENT_CLEAR_ALL takes a second argument: pass it through the
    // raw call (our helper passes 0 for the rest).
    // SAFETY: integer arguments only, no user memory.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        // EINVAL: a kernel without ambient capabilities (< 4.3).
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(ctx("PR_CAP_AMBIENT_CLEAR_ALL")(e));
        }
    }
    prctl(libc::PR_SET_KEEPCAPS, 0).map_err(ctx("PR_SET_KEEPCAPS"))?;
    let gid = who.gid.or_else(|| {
        who.uid
            .and_then(|u| nix::unistd::User::from_uid(Uid::from_raw(u)).ok().flatten())
            .map(|u| u.gid.as_raw())
    });
    if let Some(g) = gid {
        let g = Gid::from_raw(g);
        nix::unistd::setgroups(&[g]).map_err(|e| ctx("setgroups")(e.into()))?;
        nix::unistd::setresgid(g, g, g).map_err(|e| ctx("setresgid")(e.into()))?;
    } else if who.uid.is_some() {
        nix::unistd::setgroups(&[]).map_err(|e| ctx("setgroups")(e.into()))?;
    }
    if let Some(u) = who.uid {
        let u = Uid::from_raw(u);
        // Glibc applies this to every thread; with all uids non-zero and
        // KEEPCAPS off the kernel also empties the permitted set.
        nix::unistd::setresuid(u, u, u).map_err(|e| ctx("setresuid")(e.into()))?;
    }
    // Staying uid 0 (or a uid that was 0 before): empty the sets explicitly.
    let hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads one header and two data structs (version 3), both
    // valid for the duration of the call, laid out as linux/capability.h.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    if r < 0 {
        return Err(ctx("capset")(io::Error::last_os_error()));
    }
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(ctx("PR_SET_NO_NEW_PRIVS"))?;

    let st = ProcStatus::read(None)?;
    let want_uid = who.uid.unwrap_or(st.uid[0]);
    if st.cap_eff != 0
        || st.cap_prm != 0
        || st.cap_bnd != 0
        || st.cap_amb != 0
        || st.cap_inh != 0
        || st.uid.iter().any(|&u| u != want_uid)
        || !st.no_new_privs
    {
        return Err(io::Error::other(format!(
            "privileges still held after the drop: {st:?}"
        )));
    }
    Ok(st)
}

/// Whether device `dev` in namespace `netns` (`None`: ours) is a TUN device
/// (`ip -d link show` says `tun type tun`).
pub fn link_is_tun(netns: Option<&str>, dev: &str) -> bool {
    let mut c = std::process::Command::new("ip");
    if let Some(ns) = netns {
        c.args(["-n", ns]);
    }
    c.args(["-d", "link", "show", "dev", dev])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("tun type tun")
        })
}

/// Watches devices through netlink sockets opened in their namespaces
/// before the drop, so that an unprivileged gateway can still tell when the
/// kernel has removed its devices at shutdown (RTM_GETLINK needs no
/// capability; entering a namespace does, hence opening them early).
#[derive(Debug)]
pub struct LinkWatch {
    links: Vec<(String, OwnedFd)>,
}

/// RTM_GETLINK, IFLA_IFNAME, NLMSG_ERROR (linux/rtnetlink.h, if_link.h, netlink.h).
const RTM_GETLINK: u16 = 18;
const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;

impl LinkWatch {
    /// One NETLINK_ROUTE socket per device, created inside the device's
    /// namespace (`None`: ours). Enters namespaces with setns(2): call on
    /// the main thread while still privileged; returns to our namespace.
    pub fn open(devices: &[(Option<&str>, &str)]) -> io::Result<LinkWatch> {
        use nix::sched::{setns, CloneFlags};
        let home = File::open("/proc/thread-self/ns/net")?;
        let mut links = Vec::new();
        let mut result = Ok(());
        for &(ns, dev) in devices {
            if let Some(ns) = ns {
                let f = File::open(Path::new("/run/netns").join(ns))?;
                if let Err(e) = setns(&f, CloneFlags::CLONE_NEWNET) {
                    result = Err(io::Error::other(format!("setns {ns}: {e}")));
                    break;
                }
            }
            let sock = netlink_socket();
            if ns.is_some() {
                setns(&home, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io::Error::other(format!("setns back home: {e}")))?;
            }
            match sock {
                Ok(s) => links.push((dev.to_string(), s)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        result.map(|()| LinkWatch { links })
    }

    /// Names of the watched devices that still exist.
    pub fn present(&self) -> Vec<String> {
        self.links
            .iter()
            .filter(|(dev, fd)| link_exists_nl(fd, dev).unwrap_or(true))
            .map(|(dev, _)| dev.clone())
            .collect()
    }

    /// Waits up to `limit` for every watched device to be gone; returns the
    /// ones still there.
    pub fn wait_gone(&self, limit: Duration) -> Vec<String> {
        let mut left = self.present();
        wait_until_gone(limit, || {
            left = self.present();
            !left.is_empty()
        });
        left
    }
}

fn netlink_socket() -> io::Result<OwnedFd> {
    use nix::sys::socket::{
        setsockopt, socket, sockopt, AddressFamily, SockFlag, SockProtocol, SockType,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| io::Error::other(format!("netlink socket: {e}")))?;
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 200_000),
    )
    .map_err(|e| io::Error::other(format!("netlink SO_RCVTIMEO: {e}")))?;
    Ok(fd)
}

/// RTM_GETLINK by name: Ok(true) = exists, Ok(false) = ENODEV.
fn link_exists_nl(fd: &OwnedFd, dev: &str) -> io::Result<bool> {
    use nix::sys::socket::{recv, send, MsgFlags};
    let name = dev.as_bytes();
    let attr_len = 4 + name.len() + 1;
    let total = 16 + 16 + attr_len.next_multiple_of(4);
    let mut m = vec![0u8; total];
    m[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    m[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes()); // seq
                                                   // ifinfomsg: family AF_UNSPEC, index 0 (look up by name): all zero.
    m[32..34].copy_from_slice(&(attr_len as u16).to_ne_bytes());
    m[34..36].copy_from_slice(&IFLA_IFNAME.to_ne_bytes());
    m[36..36 + name.len()].copy_from_slice(name);
    send(fd.as_raw_fd(), &m, MsgFlags::empty()).map_err(io::Error::from)?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(io::Error::from)?;
    if n < 16 {
        return Err(io::Error::other("short netlink reply"));
    }
    match u16::from_ne_bytes([buf[4], buf[5]]) {
        RTM_NEWLINK => Ok(true),
        NLMSG_ERROR if n >= 20 => {
            let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            if err == -libc::ENODEV {
                Ok(false)
            } else {
                Err(io::Error::from_raw_os_error(-err))
            }
        }
        t => Err(io::Error::other(format!("netlink reply type {t}"))),
    }
}

/// The calling thread's nice value (0 if it cannot be read).
pub fn thread_nice() -> i32 {
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    // getpriority returns the nice value, and -1 both as a value and as an
    // error: clear errno first to tell them apart.
    nix::errno::Errno::clear();
    // SAFETY: getpriority takes plain integers and touches no memory of ours.
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    if v == -1 && nix::errno::Errno::last_raw() != 0 {
        return 0;
    }
    v
}

/// Sets the calling thread's nice value (Linux keeps one per thread; new
/// threads inherit their creator's). Lowering it needs CAP_SYS_NICE.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts the calling thread under SCHED_BATCH (allowed without privileges):
/// the scheduler then never preempts a running thread to run this one when
/// it wakes up, and treats it as CPU-bound.
pub fn set_thread_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0
    // is the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `limit` for `check` to return false (a device to vanish).
pub fn wait_until_gone(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every system call the running gateway makes after the drop: the io_uring
/// workers, the control server and its connection threads, the main loop
/// (signals, timers, logging), the allocator (mimalloc), thread creation and
/// exit, and the Rust runtime's panic path. Measured with `strace -f` on a
/// gateway under ping, iperf3 and every control tool
/// (`netns-scripts/seccomp-trace.sh` prints what is made after the drop and
/// what this list lacks), plus calls of paths the trace may not reach
/// (error paths, fallbacks: clone, poll, readv/writev...).
///
/// Operations submitted through an io_uring ring are not seen by any seccomp
/// filter (the kernel runs them without a system call per operation): each
/// worker confines its own ring instead, with `IORING_REGISTER_RESTRICTIONS`
/// before enabling it, to multishot reads and writes on its registered TUN
/// queues and to the two register operations of its teardown (see the
/// `dataplane::worker` module docs; its tests show that `OPENAT`, `SOCKET`, a
/// write to an unregistered descriptor and other register operations are
/// refused with `EACCES`).
#[cfg(target_arch = "x86_64")]
pub const ALLOWED_SYSCALLS: &[libc::c_long] = &[
    // I/O on open descriptors
    libc::SYS_access, // mimalloc probes /sys/devices/system/node in new threads
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    // io_uring workers
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    // control socket: accept, peer credentials, /proc/PID/status of peers
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_socket, // AF_UNIX only, see seccomp_program
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_openat,
    libc::SYS_open,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_getdents64,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    // memory (mimalloc, thread stacks)
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_mlock,
    libc::SYS_munlock,
    // threads
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setscheduler, // worker_batch
    libc::SYS_setpriority,        // control_nice
    libc::SYS_getcpu,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_prctl,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_tgkill,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    // time
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_getrandom,
    libc::SYS_restart_syscall,
    libc::SYS_flock, // the device locks are released at exit
    libc::SYS_pause,
    libc::SYS_sysinfo,
    libc::SYS_getrusage, // mimalloc's statistics at exit (MIMALLOC_SHOW_STATS=1)
    libc::SYS_prlimit64,
    libc::SYS_set_tid_address,
];

/// `AUDIT_ARCH_X86_64` (linux/audit.h): the only ABI the filter allows.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
/// x32 system calls carry this bit; they are refused.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The classic BPF program: wrong architecture or x32 -> kill the process;
/// a listed system call -> allow; anything else -> trap (SIGSYS).
#[cfg(target_arch = "x86_64")]
pub fn seccomp_program(allowed: &[libc::c_long]) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    // offsetof(struct seccomp_data, nr) = 0, arch = 4.
    let mut p = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, 4),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    // socket(2) only for AF_UNIX (the control server's wake-up connect): a
    // compromised gateway cannot open a network socket. args[0] is a u64 at
    // offset 16 (x86_64 is little-endian: low half at 16, high at 20).
    if allowed.contains(&libc::SYS_socket) {
        p.extend([
            jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_socket as u32, 0, 6),
            stmt(BPF_LD | BPF_W | BPF_ABS, 20),
            jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
            stmt(BPF_LD | BPF_W | BPF_ABS, 16),
            jump(BPF_JMP | BPF_JEQ | BPF_K, libc::AF_UNIX as u32, 0, 1),
            stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
            stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_TRAP),
        ]);
    }
    let allowed: Vec<libc::c_long> = allowed
        .iter()
        .copied()
        .filter(|&nr| nr != libc::SYS_socket)
        .collect();
    // Each allowed number: "jeq nr -> the ALLOW at the end", counting the
    // instructions still between here and there.
    let n = allowed.len();
    assert!(
        n < 255,
        "a BPF conditional jump reaches at most 255 instructions"
    );
    for (i, &nr) in allowed.iter().enumerate() {
        let to_allow = (n - i) as u8; // the rest of the checks + the TRAP
        p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, to_allow, 0));
    }
    p.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_TRAP));
    p.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
    p
}

/// SIGSYS handler: says which system call was refused, then exits.
extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Several threads may trip at once: one message is enough.
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if REPORTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: pause(2) is async-signal-safe; the reporting thread is
        // about to end the process.
        unsafe { libc::pause() };
    }
    // struct siginfo for SIGSYS (asm-generic/siginfo.h, 64-bit): three ints
    // and padding (16 bytes), then void *_call_addr, int _syscall.
    // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO handler;
    // for SIGSYS from seccomp the _sigsys member is the one filled in, and
    // offset 24 lies inside the 128-byte structure.
    let nr = unsafe { std::ptr::read_unaligned((info as *const u8).add(24) as *const libc::c_int) };
    let mut buf = [0u8; 96];
    let prefix = b"tungate: seccomp: system call ";
    let suffix = b" is not allowed (see ALLOWED_SYSCALLS in dataplane/privs.rs); exiting\n";
    let mut len = 0;
    for &b in prefix {
        buf[len] = b;
        len += 1;
    }
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut v = nr.unsigned_abs();
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[len] = digits[d];
        len += 1;
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe and allowed by the
    // filter; the buffers are valid for the lengths given.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::write(2, suffix.as_ptr().cast(), suffix.len());
        libc::_exit(SECCOMP_EXIT_STATUS);
    }
}

/// Installs the `SIGSYS` reporter and the filter on every thread (TSYNC).
/// Needs `no_new_privs` (set by [`drop_privileges`]) or CAP_SYS_ADMIN.
#[cfg(target_arch = "x86_64")]
pub fn install_seccomp(allowed: &[libc::c_long]) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; we set a handler with the
    // SA_SIGINFO signature and an empty mask, and pass valid pointers.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut prog = seccomp_program(allowed);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, a valid filter array that outlives
    // the call (the kernel copies it); the flags are a plain integer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    match r {
        0 => Ok(()),
        r if r < 0 => Err(io::Error::new(
            io::Error::last_os_error().kind(),
            format!("seccomp: {}", io::Error::last_os_error()),
        )),
        tid => Err(io::Error::other(format!(
            "seccomp: thread {tid} could not be synchronised"
        ))),
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub const ALLOWED_SYSCALLS: &[libc::c_long] = &[];

#[cfg(not(target_arch = "x86_64"))]
pub fn install_seccomp(_allowed: &[libc::c_long]) -> io::Result<()> {
    Err(io::Error::other(
        "the seccomp filter is written for x86_64 only; set seccomp = false",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let t = "Name:\ttungate\nUid:\t65534\t65534\t65534\t65534\nGid:\t0\t1\t2\t3\n\
                 Groups:\t65534 4242\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                 CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n\
                 NoNewPrivs:\t1\nSeccomp:\t2\n";
        let s = ProcStatus::parse(t);
        assert_eq!(s.uid, [65534; 4]);
        assert_eq!(s.gid, [0, 1, 2, 3]);
        assert_eq!(s.groups, vec![65534, 4242]);
        assert_eq!(s.cap_bnd, 0x1ff_ffff_ffff);
        assert_eq!(s.cap_eff, 0);
        assert!(s.no_new_privs);
        assert_eq!(s.seccomp, 2);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn program_jumps_land_on_allow() {
        let allowed = [libc::SYS_read, libc::SYS_write, libc::SYS_exit_group];
        let p = seccomp_program(&allowed);
        assert_eq!(p.len(), 6 + 3 + 2, "no socket block without SYS_socket");
        let allow = p.len() - 1;
        assert_eq!(p[allow].k, libc::SECCOMP_RET_ALLOW);
        assert_eq!(p[allow - 1].k, libc::SECCOMP_RET_TRAP);
        for (i, ins) in p.iter().enumerate().skip(6).take(allowed.len()) {
            assert_eq!(i + 1 + ins.jt as usize, allow, "instruction {i}");
            assert_eq!(ins.jf, 0);
        }
        // With socket(2): its block of seven comes first, its jumps stay
        // inside it, and the list after it no longer has socket.
        let with = [libc::SYS_read, libc::SYS_socket];
        let p = seccomp_program(&with);
        assert_eq!(p.len(), 6 + 7 + 1 + 2);
        assert_eq!(p[6].k, libc::SYS_socket as u32);
        assert_eq!(6 + 1 + p[6].jf as usize, 13, "not socket: on to the list");
        assert_eq!(p[11].k, libc::SECCOMP_RET_ALLOW);
        assert_eq!(p[12].k, libc::SECCOMP_RET_TRAP);
        assert_eq!(8 + 1 + p[8].jf as usize, 12);
        assert_eq!(10 + 1 + p[10].jf as usize, 12);
        assert_eq!(p[13].k, libc::SYS_read as u32);
    }

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
