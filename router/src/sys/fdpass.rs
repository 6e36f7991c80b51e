//! Receiving file descriptors over a Unix socket (`SCM_RIGHTS`), for the
//! control server's restore input (`control::proto::read_request_unix`).
//! Here because it is the one step that needs `unsafe`: taking ownership of
//! the descriptors the kernel installed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Receives at most `buf.len()` bytes and every descriptor sent with them
/// (close-on-exec; at most 4 are taken per call, the kernel closes any
/// beyond). Returns the byte count and the descriptors, owned: dropping
/// them closes them.
pub fn recv_with_fds(s: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: SCM_RIGHTS installed these descriptors in this process
            // during this call; nothing else knows or owns them.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok((msg.bytes, fds))
}
