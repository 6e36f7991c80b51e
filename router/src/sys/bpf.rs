//! The `bpf(2)` system call, for the TUN steering program
//! (`dataplane::steer`): create maps, load a socket filter, test-run one.
//! Every call builds its own `union bpf_attr` from safe arguments, so the
//! pointers it hands the kernel are always live for the call.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `src_reg << 4 | dst_reg`.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// `bpf(cmd, attr)`: the system call's non-negative result, or errno.
///
/// # Safety
/// `attr` is a zero-padded `union bpf_attr` for `cmd`; every pointer in it
/// refers to memory that is live, of the size the attribute states, and
/// writable where the kernel writes (a log buffer), for the call.
unsafe fn bpf(cmd: libc::c_int, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: the caller's contract; `attr` itself is live and its length
    // is what the kernel is told.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// `bpf(cmd, attr)` for a command that returns a new file descriptor.
///
/// # Safety
/// As for [`bpf`].
unsafe fn bpf_new_fd(cmd: libc::c_int, attr: &mut [u8]) -> io::Result<OwnedFd> {
    // SAFETY: the caller's contract.
    let fd = unsafe { bpf(cmd, attr) }?;
    // SAFETY: the syscall returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Creates a map (`union bpf_attr`, BPF_MAP_CREATE part: map_type,
/// key_size, value_size, max_entries; the rest zero).
pub fn map_create(kind: u32, key: u32, value: u32, entries: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 72];
    for (i, v) in [kind, key, value, entries].into_iter().enumerate() {
        attr[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: `attr` holds no pointers; the kernel only reads it.
    unsafe { bpf_new_fd(BPF_MAP_CREATE, &mut attr) }
        .map_err(|e| io::Error::new(e.kind(), format!("BPF_MAP_CREATE: {e}")))
}

/// Loads `prog` as a socket filter (GPL); on refusal the error carries the
/// verifier's log.
pub fn load_socket_filter(prog: &[Insn]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 16384];
    // union bpf_attr, BPF_PROG_LOAD part: prog_type u32 @0, insn_cnt u32 @4,
    // insns u64 @8, license u64 @16, log_level u32 @24, log_size u32 @28,
    // log_buf u64 @32; the rest zero.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SOCKET_FILTER.to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    // SAFETY: `attr`'s pointers (instructions, license, log buffer) point
    // to live memory of the stated sizes for the duration of the call; the
    // kernel writes only into `log`.
    unsafe { bpf_new_fd(BPF_PROG_LOAD, &mut attr) }.map_err(|err| {
        let msg = String::from_utf8_lossy(&log);
        let msg = msg.trim_end_matches('\0').trim();
        io::Error::new(err.kind(), format!("BPF_PROG_LOAD: {err}: {msg}"))
    })
}

/// Runs a loaded program once on `data` (BPF_PROG_TEST_RUN) and returns
/// its return value.
pub fn test_run(prog: &OwnedFd, data: &[u8]) -> io::Result<u32> {
    let mut attr = [0u8; 80];
    attr[0..4].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
    attr[16..24].copy_from_slice(&(data.as_ptr() as u64).to_ne_bytes());
    attr[32..36].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: `attr` is a zero-padded bpf_attr (test part: prog_fd,
    // data_size_in, data_in, repeat) whose data pointer refers to `data`,
    // live and of the stated size during the call; with no data_out the
    // kernel writes only into `attr` (retval, duration).
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    Ok(u32::from_ne_bytes([attr[4], attr[5], attr[6], attr[7]]))
}
