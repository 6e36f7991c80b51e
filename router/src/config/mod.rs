//! The gateway's configuration file (`tungate run --config FILE`), in TOML.
//!
//! [`Config::load`] reads and validates the whole file before anything touches
//! a device: every error names the file, the key and the reason. The parsed
//! form is plain data; the dataplane and the CLI act on it.
//!
//! ```toml
//! workers = 2                      # worker threads, default: number of cores
//! ruleset = "rules.v4"             # iptables-restore file, relative to this file
//! ruleset6 = "rules.v6"            # ip6tables-restore file (held, not yet applied to packets)
//! control_socket = "/run/tungate.sock"
//! log_level = "info"               # error | warn | info | debug | trace
//! offload = true                   # vnet header + TSO (false: plain frames)
//! pin_workers = false              # pin worker N to CPU N
//! worker_batch = false             # workers run SCHED_BATCH (no wakeup preemption)
//! control_nice = -10               # nice of the control server's threads (-20..=0)
//! user = "nobody"                  # run as this user once devices are open
//! group = "nogroup"                # and this group (default: the user's)
//! control_group = "tungate"        # members may use the control socket (0660)
//! seccomp = true                   # confine to the system calls it uses
//! metrics = "127.0.0.1:9469"       # Prometheus text on GET /metrics (loopback only)
//!
//! [conntrack]
//! max = 262144
//! tcp_established_timeout = 432000 # seconds
//!
//! [[interface]]
//! name = "tg-client"               # TUN device name (<= 15 bytes)
//! netns = "client"                 # move the kernel side there (optional)
//! address = "10.1.0.1/24"          # the gateway's own address on this link
//! peer_address = "10.1.0.2/24"     # set on the namespace side (optional)
//! peer_routes = ["0.0.0.0/0"]      # routed into the device on the namespace side
//! mtu = 1500
//!
//! [[route]]
//! destination = "10.9.0.0/16"
//! interface = "tg-server"
//! ```

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::route::Cidr;
use crate::route::{IfIndex, RouteTable};

/// Errors in the configuration file, each naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: PathBuf,
        key: String,
        reason: String,
    },
}

/// One gateway interface: a TUN device whose kernel side may live in a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceConfig {
    pub name: String,
    pub netns: Option<String>,
    /// The gateway's own address on this link; its prefix is a connected route.
    pub address: Cidr,
    /// Address set on the kernel side of the device (in `netns`).
    pub peer_address: Option<Cidr>,
    /// Prefixes the namespace side routes into this device.
    pub peer_routes: Vec<Cidr>,
    pub mtu: u16,
    /// TUN queues; always equal to the worker count (one queue per worker).
    pub queues: usize,
}

/// A static route: destination prefix out of a named interface.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub destination: Cidr,
    pub interface: String,
}

/// Connection tracking limits, handed to the pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConntrackConfig {
    /// Maximum number of entries (nf_conntrack_max).
    pub max: usize,
    /// Seconds; the kernel's nf_conntrack_*_timeout defaults.
    pub tcp_established_timeout: u64,
    pub tcp_syn_sent_timeout: u64,
    pub tcp_time_wait_timeout: u64,
    pub tcp_close_timeout: u64,
    pub udp_timeout: u64,
    pub udp_stream_timeout: u64,
    pub icmp_timeout: u64,
    pub generic_timeout: u64,
    /// nf_conntrack_tcp_loose: pick up established TCP connections.
    pub tcp_loose: bool,
    /// nf_conntrack_tcp_be_liberal: do not class out-of-window TCP
    /// segments INVALID (out-of-window RSTs still are).
    pub tcp_be_liberal: bool,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max: 262_144,
            tcp_established_timeout: 432_000,
            tcp_syn_sent_timeout: 120,
            tcp_time_wait_timeout: 120,
            tcp_close_timeout: 10,
            udp_timeout: 30,
            udp_stream_timeout: 120,
            icmp_timeout: 30,
            generic_timeout: 600,
            tcp_loose: true,
            tcp_be_liberal: false,
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (relative paths inside resolve against its folder).
    pub file: PathBuf,
    pub workers: usize,
    /// iptables-restore file, resolved; `None` = empty ruleset (ACCEPT policies).
    pub ruleset: Option<PathBuf>,
    /// ip6tables-restore file, resolved; `None` = empty IPv6 ruleset. The
    /// gateway holds it for `ip6tables`; no IPv6 packet is evaluated yet.
    pub ruleset6: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
    pub log_level: String,
    pub conntrack: ConntrackConfig,
    pub interfaces: Vec<InterfaceConfig>,
    pub routes: Vec<RouteConfig>,
    /// Disable IFF_VNET_HDR/TSO (plain frames); for measurement and old kernels.
    pub offload: bool,
    /// Pin worker `w` to CPU `w % cores` (sched_setaffinity).
    pub pin_workers: bool,
    /// Workers run under SCHED_BATCH: a worker woken by a packet does not
    /// preempt the thread running on its CPU, so each wakeup drains a
    /// larger batch. Off by default: no gain measured on the standard
    /// machine (`bench/notes/history-2026-11.md`, four A/B runs of 1 and 4 iperf3 streams).
    pub worker_batch: bool,
    /// Nice value of the control server's threads (`0`: no change). A
    /// restore of a large ruleset then gets its CPU while the workers keep
    /// the cores busy (`bench/restore.sh`).
    pub control_nice: i32,
    /// Switch to this uid once devices and sockets are open (`None`: stay
    /// uid 0, still without any capability).
    pub user: Option<u32>,
    /// Switch to this gid (`None`: the user's primary group, or stay 0).
    pub group: Option<u32>,
    /// Group allowed on the control socket besides root (socket 0660).
    pub control_group: Option<u32>,
    /// Install the seccomp filter after the privilege drop.
    pub seccomp: bool,
    /// Serve the Prometheus text format on this loopback address.
    pub metrics: Option<std::net::SocketAddrV4>,
}

/// Default `control_nice`: a restore's thread weighs about nine plain
/// threads (the kernel's nice-to-weight table: 9548 against 1024).
pub const DEFAULT_CONTROL_NICE: i32 = -10;

/// The optional setting `key` (a user or group name or number) resolved by
/// `resolve`, its error as `invalid` words it for `key`.
fn resolve_opt<T>(
    key: &str,
    value: Option<&str>,
    resolve: fn(&str) -> Result<T, String>,
    invalid: &impl Fn(String, String) -> ConfigError,
) -> Result<Option<T>, ConfigError> {
    value
        .map(resolve)
        .transpose()
        .map_err(|e| invalid(key.into(), e))
}

/// A user name or a numeric uid, resolved through the password database.
fn resolve_user(v: &str) -> Result<(u32, u32), String> {
    if let Ok(n) = v.parse::<u32>() {
        let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(n))
            .ok()
            .flatten()
            .map_or(n, |u| u.gid.as_raw());
        return Ok((n, gid));
    }
    match nix::unistd::User::from_name(v) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        Ok(None) => Err(format!(
            "no user {v:?} on this system (create it, e.g. `useradd --system --no-create-home {v}`, or give a numeric uid)"
        )),
        Err(e) => Err(format!("cannot look up user {v:?}: {e}")),
    }
}

/// A group name or a numeric gid, resolved through the group database.
fn resolve_group(v: &str) -> Result<u32, String> {
    if let Ok(n) = v.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(v) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!(
            "no group {v:?} on this system (create it with `groupadd {v}`, or give a numeric gid)"
        )),
        Err(e) => Err(format!("cannot look up group {v:?}: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    workers: Option<usize>,
    ruleset: Option<String>,
    ruleset6: Option<String>,
    control_socket: Option<String>,
    log_level: Option<String>,
    offload: Option<bool>,
    pin_workers: Option<bool>,
    worker_batch: Option<bool>,
    control_nice: Option<i32>,
    user: Option<String>,
    group: Option<String>,
    control_group: Option<String>,
    seccomp: Option<bool>,
    metrics: Option<String>,
    #[serde(default)]
    conntrack: ConntrackConfig,
    #[serde(default, rename = "interface")]
    interfaces: Vec<RawInterface>,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: String,
    netns: Option<String>,
    address: String,
    peer_address: Option<String>,
    #[serde(default)]
    peer_routes: Vec<String>,
    mtu: Option<u16>,
    queues: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    destination: String,
    interface: String,
}

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Config {
    /// The route table of this configuration: connected routes from every
    /// interface address, then the static routes. Interfaces are numbered
    /// in configuration order (`IfIndex(i)`).
    pub fn route_table(&self) -> RouteTable {
        let mut t = RouteTable::new();
        for (i, ifc) in self.interfaces.iter().enumerate() {
            let idx = IfIndex(i as u16);
            t.add_local(ifc.address.addr, idx);
            t.add(ifc.address, idx);
        }
        for r in &self.routes {
            if let Some(i) = self.interfaces.iter().position(|x| x.name == r.interface) {
                t.add(r.destination, IfIndex(i as u16));
            }
        }
        t
    }

    /// Reads and validates `file`. Touches nothing but the file system.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
        Config::parse(&text, file)
    }

    /// Parses `text` as if read from `file` (used for messages and relative paths).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            file: file.to_owned(),
            key,
            reason,
        };
        let base = file.parent().unwrap_or(Path::new("."));

        let workers = raw.workers.unwrap_or_else(default_workers);
        if workers == 0 || workers > 64 {
            return Err(invalid(
                "workers".into(),
                format!("{workers} is not in 1..=64"),
            ));
        }
        let control_nice = raw.control_nice.unwrap_or(DEFAULT_CONTROL_NICE);
        if !(-20..=0).contains(&control_nice) {
            return Err(invalid(
                "control_nice".into(),
                format!("{control_nice} is not in -20..=0"),
            ));
        }
        let log_level = raw.log_level.unwrap_or_else(|| "info".into());
        if !LOG_LEVELS.contains(&log_level.as_str()) {
            return Err(invalid(
                "log_level".into(),
                format!("{log_level:?} is not one of {}", LOG_LEVELS.join(", ")),
            ));
        }
        let ruleset = raw.ruleset.map(|r| base.join(r));
        let ruleset6 = raw.ruleset6.map(|r| base.join(r));
        for (key, r) in [("ruleset", &ruleset), ("ruleset6", &ruleset6)] {
            if let Some(r) = r {
                if !r.is_file() {
                    return Err(invalid(
                        key.into(),
                        format!("{} does not exist or is not a file", r.display()),
                    ));
                }
            }
        }
        let metrics = match raw.metrics.as_deref() {
            None => None,
            Some(m) => {
                let a: std::net::SocketAddrV4 = m.parse().map_err(|_| {
                    invalid(
                        "metrics".into(),
                        format!("{m:?} is not an IPv4 address and port, like \"127.0.0.1:9469\""),
                    )
                })?;
                if !a.ip().is_loopback() {
                    return Err(invalid(
                        "metrics".into(),
                        format!(
                            "{m:?} is not a loopback address: the endpoint has no authentication; use 127.0.0.1 (and a reverse proxy or SSH tunnel to reach it from elsewhere)"
                        ),
                    ));
                }
                Some(a)
            }
        };
        if raw.conntrack.max == 0 {
            return Err(invalid("conntrack.max".into(), "must be at least 1".into()));
        }
        // No [[interface]] is allowed: a gateway without devices still
        // serves its control socket (ruleset management, tests, benchmarks).

        let mut names = HashSet::new();
        let mut interfaces = Vec::new();
        for (i, ri) in raw.interfaces.into_iter().enumerate() {
            let key = |k: &str| format!("interface[{i}].{k}");
            if ri.name.is_empty()
                || ri.name.len() > 15
                || !ri
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(invalid(
                    key("name"),
                    format!(
                        "{:?} is not a device name (1-15 of [A-Za-z0-9._-])",
                        ri.name
                    ),
                ));
            }
            if !names.insert(ri.name.clone()) {
                return Err(invalid(key("name"), format!("{:?} appears twice", ri.name)));
            }
            if let Some(ns) = &ri.netns {
                if ns.is_empty() || ns.contains('/') || ns.starts_with('.') {
                    return Err(invalid(
                        key("netns"),
                        format!("{ns:?} is not a namespace name"),
                    ));
                }
            }
            let address: Cidr = ri.address.parse().map_err(|e| invalid(key("address"), e))?;
            let peer_address = ri
                .peer_address
                .as_deref()
                .map(str::parse::<Cidr>)
                .transpose()
                .map_err(|e| invalid(key("peer_address"), e))?;
            let mut peer_routes = Vec::new();
            for (j, r) in ri.peer_routes.iter().enumerate() {
                let c: Cidr = if r == "default" {
                    Ok(Cidr {
                        addr: Ipv4Addr::UNSPECIFIED,
                        len: 0,
                    })
                } else {
                    r.parse()
                }
                .map_err(|e| invalid(key(&format!("peer_routes[{j}]")), e))?;
                peer_routes.push(c);
            }
            let mtu = ri.mtu.unwrap_or(1500);
            if !(576..=65_000).contains(&mtu) {
                return Err(invalid(key("mtu"), format!("{mtu} is not in 576..=65000")));
            }
            let queues = ri.queues.unwrap_or(workers);
            if queues != workers {
                return Err(invalid(
                    key("queues"),
                    format!(
                        "{queues} differs from workers = {workers}: each worker owns one queue of every device"
                    ),
                ));
            }
            interfaces.push(InterfaceConfig {
                name: ri.name,
                netns: ri.netns,
                address,
                peer_address,
                peer_routes,
                mtu,
                queues,
            });
        }

        let mut routes = Vec::new();
        for (i, rr) in raw.routes.into_iter().enumerate() {
            let destination: Cidr = rr
                .destination
                .parse()
                .map_err(|e| invalid(format!("route[{i}].destination"), e))?;
            if !names.contains(&rr.interface) {
                return Err(invalid(
                    format!("route[{i}].interface"),
                    format!("{:?} is not the name of an [[interface]]", rr.interface),
                ));
            }
            routes.push(RouteConfig {
                destination,
                interface: rr.interface,
            });
        }

        let user = resolve_opt("user", raw.user.as_deref(), resolve_user, &invalid)?;
        let group = resolve_opt("group", raw.group.as_deref(), resolve_group, &invalid)?;
        let control_group = resolve_opt(
            "control_group",
            raw.control_group.as_deref(),
            resolve_group,
            &invalid,
        )?;

        Ok(Config {
            file: file.to_owned(),
            workers,
            ruleset,
            ruleset6,
            control_socket: raw.control_socket.map(|s| base.join(s)),
            log_level,
            conntrack: raw.conntrack,
            interfaces,
            routes,
            offload: raw.offload.unwrap_or(true),
            pin_workers: raw.pin_workers.unwrap_or(false),
            worker_batch: raw.worker_batch.unwrap_or(false),
            control_nice,
            user: user.map(|(u, _)| u),
            group: group.or(user.map(|(_, g)| g)),
            control_group,
            seccomp: raw.seccomp.unwrap_or(true),
            metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
workers = 2
log_level = "debug"
[conntrack]
max = 1000
[[interface]]
name = "tg-c"
netns = "client"
address = "10.1.0.1/24"
peer_address = "10.1.0.2/24"
peer_routes = ["default"]
[[interface]]
name = "tg-s"
address = "10.2.0.1/24"
mtu = 9000
[[route]]
destination = "10.9.0.0/16"
interface = "tg-s"
"#;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, Path::new("/etc/tungate.toml"))
    }

    #[test]
    fn parses_a_full_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.workers, 2);
        assert_eq!(c.interfaces.len(), 2);
        assert_eq!(c.interfaces[0].address.to_string(), "10.1.0.1/24");
        assert_eq!(c.interfaces[0].peer_routes[0].len, 0);
        assert_eq!(c.interfaces[1].mtu, 9000);
        assert_eq!(c.interfaces[1].queues, 2);
        assert_eq!(
            c.routes[0].destination.network(),
            Ipv4Addr::new(10, 9, 0, 0)
        );
        assert_eq!(c.conntrack.max, 1000);
        assert_eq!(c.conntrack.udp_timeout, 30);
        assert!(c.offload);
        assert!(!c.pin_workers);
        assert_eq!((c.user, c.group, c.control_group), (None, None, None));
        assert!(c.seccomp);
    }

    #[test]
    fn user_group_and_seccomp_keys() {
        let c = parse(&GOOD.replace(
            "workers = 2",
            "workers = 2\nuser = \"root\"\ncontrol_group = \"4242\"\nseccomp = false",
        ))
        .unwrap();
        assert_eq!(
            (c.user, c.group, c.control_group),
            (Some(0), Some(0), Some(4242))
        );
        assert!(!c.seccomp);
        let c = parse(&GOOD.replace(
            "workers = 2",
            "workers = 2\nuser = \"65534\"\ngroup = \"7\"",
        ))
        .unwrap();
        assert_eq!((c.user, c.group), (Some(65534), Some(7)));

        let e = parse(&GOOD.replace("workers = 2", "workers = 2\nuser = \"no-such-user-tg\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/tungate.toml")
                && e.contains("key `user`")
                && e.contains("no-such-user-tg"),
            "{e}"
        );
        let e = parse(&GOOD.replace(
            "workers = 2",
            "workers = 2\ncontrol_group = \"no-such-group-tg\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("key `control_group`") && e.contains("groupadd"),
            "{e}"
        );
        let e = parse(&GOOD.replace("workers = 2", "workers = 2\nseccomp = \"yes\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("seccomp"), "{e}");
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let bad = GOOD.replace("10.2.0.1/24", "10.2.0.300/24");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("/etc/tungate.toml"), "{e}");
        assert!(e.contains("interface[1].address"), "{e}");
        assert!(e.contains("10.2.0.300"), "{e}");

        let bad = GOOD.replace("interface = \"tg-s\"", "interface = \"nope\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains("route[0].interface") && e.contains("nope"),
            "{e}"
        );

        let bad = GOOD.replace("mtu = 9000", "mtu = 9000\nqueues = 3");
        assert!(parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("interface[1].queues"));

        let bad = GOOD.replace("workers = 2", "workers = 2\nbogus = 1");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");

        let bad = GOOD.replace("name = \"tg-c\"", "name = \"a-name-far-too-long\"");
        assert!(parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("interface[0].name"));

        let bad = GOOD.replace(
            "log_level = \"debug\"",
            "ruleset = \"/nonexistent/rules.v4\"",
        );
        assert!(parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("key `ruleset`"));
        let bad = GOOD.replace(
            "log_level = \"debug\"",
            "ruleset6 = \"/nonexistent/rules.v6\"",
        );
        assert!(parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("key `ruleset6`"));
    }

    #[test]
    fn metrics_must_be_a_loopback_address() {
        let ok = GOOD.replace("workers = 2", "workers = 2\nmetrics = \"127.0.0.1:9469\"");
        assert_eq!(
            parse(&ok).unwrap().metrics,
            Some("127.0.0.1:9469".parse().unwrap())
        );
        assert_eq!(parse(GOOD).unwrap().metrics, None);
        let open = GOOD.replace("workers = 2", "workers = 2\nmetrics = \"0.0.0.0:9469\"");
        let e = parse(&open).unwrap_err().to_string();
        assert!(e.contains("metrics") && e.contains("loopback"), "{e}");
        let junk = GOOD.replace("workers = 2", "workers = 2\nmetrics = \"localhost\"");
        let e = parse(&junk).unwrap_err().to_string();
        assert!(e.contains("metrics") && e.contains("\"localhost\""), "{e}");
    }

    #[test]
    fn cidr_parsing_and_masks() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(10, 0, 0, 0));
        assert!(c.contains(Ipv4Addr::new(10, 200, 0, 1)));
        assert!(!c.contains(Ipv4Addr::new(11, 0, 0, 1)));
        let h: Cidr = "1.2.3.4".parse().unwrap();
        assert_eq!(h.len, 32);
        let z: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(z.contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert!("1.2.3.4/33".parse::<Cidr>().is_err());
        assert!("1.2.3/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn from_config_builds_connected_and_static_routes() {
        use crate::route::RouteResult;
        let cfg = Config::parse(
            r#"
workers = 1
[[interface]]
name = "a"
address = "10.1.0.1/24"
[[interface]]
name = "b"
address = "10.2.0.1/24"
[[route]]
destination = "192.168.0.0/16"
interface = "b"
"#,
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let t = cfg.route_table();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(t.lookup(ip("10.1.0.9")), RouteResult::Forward(IfIndex(0)));
        assert_eq!(
            t.lookup(ip("192.168.4.4")),
            RouteResult::Forward(IfIndex(1))
        );
        assert_eq!(t.lookup(ip("10.2.0.1")), RouteResult::Local(IfIndex(1)));
        assert_eq!(t.lookup(ip("8.8.8.8")), RouteResult::Unreachable);
    }
}
