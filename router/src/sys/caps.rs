//! Least privilege for `tungate run`.
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
//! is one; [`super::seccomp::install_seccomp`] then confines the process to
//! the system calls of [`super::seccomp::ALLOWED_SYSCALLS`]. What seccomp
//! cannot see, the operations submitted through the workers' io_uring rings,
//! is confined by io_uring restrictions registered on each ring (read and
//! write of its TUN queues only, see [`super::uring`]).
//!
//! Both act on the calling thread; the uid/gid switch, `no_new_privs` and the
//! seccomp filter (`SECCOMP_FILTER_FLAG_TSYNC`) reach every thread, but
//! capabilities are per thread: call them before any thread is spawned.

use std::io;

use nix::unistd::{Gid, Uid};

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
}
