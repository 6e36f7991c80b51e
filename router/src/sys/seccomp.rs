//! The seccomp filter of the running gateway, installed after the privilege
//! drop ([`super::caps::drop_privileges`]).
//!
//! A seccomp violation is trapped (`SECCOMP_RET_TRAP`): a `SIGSYS` handler
//! writes `tungate: seccomp: system call N is not allowed` to stderr and exits
//! with status 159 (128 + SIGSYS), so the log and an init system both see it.

use std::io;

/// Exit status after a seccomp violation: 128 + SIGSYS.
pub const SECCOMP_EXIT_STATUS: i32 = 128 + libc::SIGSYS;

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
/// `sys::uring` module docs; its tests show that `OPENAT`, `SOCKET`, a
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
    let suffix = b" is not allowed (see ALLOWED_SYSCALLS in sys/seccomp.rs); exiting\n";
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
}
