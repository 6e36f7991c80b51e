//! TUN device ioctls: attach a queue (`TUNSETIFF`), ask for checksum and
//! segmentation offload (`TUNSETOFFLOAD`), attach a steering program
//! (`TUNSETSTEERINGEBPF`). The device model (queues, vnet header) is
//! `dataplane::tun`'s.
//!
//! Why not the `tun-tap` crate: it opens a single queue with no
//! `IFF_VNET_HDR` and no `TUNSETOFFLOAD`, so every TCP segment crosses the
//! user/kernel boundary on its own: 2.2-2.4 Gbit/s on one stream on this
//! machine, against 12-14 Gbit/s with the vnet header and TSO (DESIGN.md).
//! The ioctls are done here with the `libc` definitions through `nix`'s
//! ioctl macros.

use std::ffi::c_short;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

nix::ioctl_write_ptr_bad!(tun_set_iff, libc::TUNSETIFF, libc::ifreq);
nix::ioctl_write_int_bad!(tun_set_offload, libc::TUNSETOFFLOAD);

/// `_IOR('T', 224, int)`.
const TUNSETSTEERINGEBPF: libc::c_ulong = 0x8004_54e0;

fn ifreq_with_flags(name: &str, flags: libc::c_int) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "device name {name:?} must have 1..{} bytes",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    // SAFETY: ifreq is a plain C struct (a name array and a union of
    // integers/plain structs/pointers) for which all-zero bytes are valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = flags as c_short;
    Ok(ifr)
}

/// Opens `/dev/net/tun` and attaches it as a queue of device `name` with
/// `IFF_*` `flags` (creating the device if it does not exist).
pub fn open_queue(name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let fd = OwnedFd::from(file);
    let ifr = ifreq_with_flags(name, flags)?;
    // SAFETY: `fd` is an open /dev/net/tun descriptor and `ifr` a valid,
    // initialised ifreq that outlives the call; TUNSETIFF only reads it (and
    // may write the chosen name back into it).
    unsafe { tun_set_iff(fd.as_raw_fd(), &ifr) }.map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("TUNSETIFF {name:?}: {e} (a device of that name exists or no CAP_NET_ADMIN)"),
        )
    })?;
    Ok(fd)
}

/// `TUNSETOFFLOAD` with `TUN_F_*` `flags` on an attached queue.
pub fn set_offload(queue: &OwnedFd, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: `queue` is an open descriptor; TUNSETOFFLOAD takes its
    // argument by value and touches no user memory (a descriptor that is not
    // a TUN queue answers with an error).
    unsafe { tun_set_offload(queue.as_raw_fd(), flags as libc::c_int) }
        .map(|_| ())
        .map_err(|e| io::Error::other(format!("TUNSETOFFLOAD: {e}")))
}

/// Attaches steering program `prog` to the device `queue` belongs to; the
/// device keeps its own reference to the program.
pub fn set_steering_ebpf(queue: &OwnedFd, prog: &OwnedFd) -> io::Result<()> {
    let prog_fd: libc::c_int = prog.as_raw_fd();
    // SAFETY: TUNSETSTEERINGEBPF reads one int (the program fd) from the
    // pointer, which is live for the call; on a descriptor that is not a TUN
    // queue the ioctl fails without touching memory.
    let r = unsafe { libc::ioctl(queue.as_raw_fd(), TUNSETSTEERINGEBPF, &prog_fd) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("TUNSETSTEERINGEBPF: {e}")));
    }
    Ok(())
}
