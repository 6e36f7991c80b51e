//! Namespace plumbing through the `ip` tool: move a device's kernel side into
//! a namespace, bring it up, set its address and routes. (Acceptable per the
//! issue; a netlink crate would save the fork, but this runs once at start.)

use std::path::Path;
use std::process::Command;

use crate::config::InterfaceConfig;

/// Whether `ip netns` knows the namespace (a bind mount in /run/netns).
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `ip`: {e} (install iproute2)"))?;
    if !out.status.success() {
        anyhow::bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Moves `ifc.name` into its namespace (if any), sets MTU and txqueuelen,
/// brings it up (a move takes a device down, and a write to a down TUN is
/// EIO), then adds the namespace-side address and routes.
pub fn configure(ifc: &InterfaceConfig) -> anyhow::Result<()> {
    let dev = ifc.name.as_str();
    let mut pre: Vec<&str> = Vec::new();
    if let Some(ns) = &ifc.netns {
        ip(&["link", "set", "dev", dev, "netns", ns])?;
        pre = vec!["-n", ns];
    }
    let run = |rest: &[&str]| -> anyhow::Result<()> {
        let mut a = pre.clone();
        a.extend_from_slice(rest);
        ip(&a)
    };
    let mtu = ifc.mtu.to_string();
    // The default txqueuelen (500) drops when the reader lags behind a burst.
    run(&[
        "link",
        "set",
        "dev",
        dev,
        "mtu",
        &mtu,
        "txqueuelen",
        "4096",
        "up",
    ])?;
    if let Some(a) = ifc.peer_address {
        run(&["addr", "replace", &a.to_string(), "dev", dev])?;
    }
    for r in &ifc.peer_routes {
        let dst = format!("{}/{}", r.network(), r.len);
        run(&["route", "replace", &dst, "dev", dev])?;
    }
    Ok(())
}

/// Deletes the device (wherever `ifc` put it). Closing every queue removes a
/// non-persistent TUN too, but asynchronously when io_uring held the files;
/// this makes the removal synchronous. A device already gone is not an error.
pub fn remove(ifc: &InterfaceConfig) -> anyhow::Result<()> {
    let mut a: Vec<&str> = Vec::new();
    if let Some(ns) = &ifc.netns {
        a.extend(["-n", ns.as_str()]);
    }
    a.extend(["link", "del", "dev", ifc.name.as_str()]);
    match ip(&a) {
        Err(e) if e.to_string().contains("Cannot find device") => Ok(()),
        r => r,
    }
}

/// Whether device `dev` exists in namespace `netns` (`None`: our own).
pub fn link_exists(netns: Option<&str>, dev: &str) -> bool {
    let mut c = Command::new("ip");
    if let Some(ns) = netns {
        c.args(["-n", ns]);
    }
    c.args(["link", "show", "dev", dev])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
