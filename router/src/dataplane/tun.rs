//! TUN devices: create a multi-queue device with the vnet header and TSO
//! offload, one file descriptor per queue.
//!
//! Why not the `tun-tap` crate: it opens a single queue with no
//! `IFF_VNET_HDR` and no `TUNSETOFFLOAD`, so every TCP segment crosses the
//! user/kernel boundary on its own: 2.2-2.4 Gbit/s on one stream on this
//! machine, against 12-14 Gbit/s with the vnet header and TSO (DESIGN.md). The
//! ioctls are done here with the `libc` definitions (`ifreq`, `TUNSETIFF`,
//! `TUNSETOFFLOAD`) through `nix`'s ioctl macros.

use std::ffi::c_short;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

nix::ioctl_write_ptr_bad!(tun_set_iff, libc::TUNSETIFF, libc::ifreq);
nix::ioctl_write_int_bad!(tun_set_offload, libc::TUNSETOFFLOAD);

/// TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 (TSO without CSUM is EINVAL).
pub const OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// A TUN device: all its queues. The device is not persistent, so the kernel
/// removes it (in whatever namespace it sits) when the last queue is closed.
#[derive(Debug)]
pub struct TunDevice {
    pub name: String,
    pub queues: Vec<OwnedFd>,
    /// Frames carry a 10-byte virtio_net_hdr.
    pub vnet_hdr: bool,
    /// TUNSETOFFLOAD (CSUM + TSO4/6) succeeded: expect GSO super-frames.
    pub offload: bool,
}

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

fn open_queue(name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
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

impl TunDevice {
    /// Creates device `name` in the current namespace with `queues` queues.
    /// With `offload`, asks for the vnet header and CSUM+TSO; when the kernel
    /// refuses the offload, falls back to plain frames and logs it.
    pub fn create(name: &str, queues: usize, offload: bool) -> io::Result<TunDevice> {
        let base = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;
        if offload {
            match Self::open_all(name, queues, base | libc::IFF_VNET_HDR, true) {
                Ok(d) => return Ok(d),
                Err(e) => tracing::warn!(
                    device = name,
                    "vnet header / TSO offload unavailable ({e}); falling back to plain frames"
                ),
            }
        } else {
            tracing::info!(device = name, "offload disabled by config: plain frames");
        }
        Self::open_all(name, queues, base, false)
    }

    fn open_all(
        name: &str,
        queues: usize,
        flags: libc::c_int,
        offload: bool,
    ) -> io::Result<TunDevice> {
        let mut fds = Vec::with_capacity(queues);
        for _ in 0..queues.max(1) {
            let fd = open_queue(name, flags)?;
            if offload {
                // SAFETY: `fd` is an attached TUN queue; TUNSETOFFLOAD takes
                // its argument by value and touches no user memory.
                unsafe { tun_set_offload(fd.as_raw_fd(), OFFLOADS as libc::c_int) }
                    .map_err(|e| io::Error::other(format!("TUNSETOFFLOAD: {e}")))?;
            }
            fds.push(fd);
        }
        if fds.len() > 1 {
            // Flow-stable queue choice (see steer.rs); without it packets
            // of a forwarded flow can be reordered between workers.
            match super::steer::attach(&fds[0]) {
                Ok(balanced) => tracing::debug!(device = name, balanced, "steering program attached"),
                Err(e) => tracing::warn!(
                    device = name,
                    "no steering program ({e}): the kernel's queue learning may reorder forwarded flows"
                ),
            }
        }
        Ok(TunDevice {
            name: name.to_string(),
            queues: fds,
            vnet_hdr: flags & libc::IFF_VNET_HDR != 0,
            offload,
        })
    }

    /// Bytes in front of every frame: 10 with the vnet header, else 0.
    pub fn hdr_len(&self) -> usize {
        if self.vnet_hdr {
            crate::wire::vnet::VnetHdr::LEN
        } else {
            0
        }
    }
}
