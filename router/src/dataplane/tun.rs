//! TUN devices: create a multi-queue device with the vnet header and TSO
//! offload, one file descriptor per queue. The ioctls are `sys::tun`'s
//! (which says why the `tun-tap` crate cannot do this).

use std::io;
use std::os::fd::OwnedFd;

use crate::sys::tun::{open_queue, set_offload};

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
                set_offload(&fd, OFFLOADS)?;
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
