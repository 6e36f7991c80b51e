//! Devices seen through netlink: shutdown without privileges. Closing the
//! last queue removes a TUN device; [`LinkWatch`] (netlink sockets opened in
//! the devices' namespaces before the privilege drop) lets the gateway wait
//! until the kernel has done so.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

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
