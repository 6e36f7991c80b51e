//! `tungate run --config FILE`: load the configuration, create and place the
//! TUN devices, start the workers, and run until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

use crate::config::Config;
use crate::conntrack::{ConntrackConfig as CtConfig, Timeouts};
use crate::control::gateway::GatewayHandler;
use crate::control::server::{Server, ServerConfig};
use crate::dataplane::housekeeping::Housekeeping;
use crate::dataplane::{netns, Dataplane, Options, TunDevice};
use crate::pipeline::engine::{Interface, Pipeline, PipelineConfig};
use crate::route::RouteTable;
use crate::ruleset::{Family, Ruleset};
use crate::syntax::{self, RestoreOptions};
use crate::sys::caps::{drop_privileges, Identity};
use crate::sys::lock::{DeviceLock, LockState, LOCK_DIR};
use crate::sys::netlink::{link_is_tun, wait_until_gone, LinkWatch};
use crate::sys::sched::{set_thread_nice, thread_nice};
use crate::sys::seccomp::{install_seccomp, ALLOWED_SYSCALLS};

pub const HELP: &str = "\
usage: tungate run --config FILE

Runs the gateway: creates one TUN device per [[interface]] (one queue per
worker, vnet header + TSO offload), moves its kernel side into the interface's
network namespace, sets the namespace-side address and routes, loads the
ruleset and forwards until SIGINT or SIGTERM, which remove the devices.
SIGUSR1 logs the counters.

The config file is TOML:

  workers = 2                    # worker threads (default: number of cores)
  ruleset = \"rules.v4\"           # iptables-restore file (relative to the config)
  ruleset6 = \"rules.v6\"          # ip6tables-restore file (held for ip6tables; IPv6
                                  # packets are not filtered yet)
  control_socket = \"/run/tungate.sock\"
  log_level = \"info\"             # error|warn|info|debug|trace (RUST_LOG overrides)
  offload = true                 # false: plain frames, no vnet header / TSO
  pin_workers = false            # pin worker N to CPU N
  worker_batch = false           # workers under SCHED_BATCH (larger batches)
  control_nice = -10             # nice of the control threads (-20..=0; 0: off)
  user = \"nobody\"                # become this user once devices and the
  group = \"nogroup\"              #   control socket are open (default: stay
                                 #   root, but without any capability)
  control_group = \"tungate\"      # this group may use the control socket (0660)
  seccomp = true                 # allow only the system calls tungate uses
  metrics = \"127.0.0.1:9469\"     # Prometheus text on GET /metrics (loopback only)

  [conntrack]                    # limits and timeouts (seconds), kernel defaults
  max = 262144
  tcp_established_timeout = 432000
  udp_timeout = 30
  tcp_loose = true               # pick up established TCP flows (nf_conntrack_tcp_loose)
  tcp_be_liberal = false         # true: no TCP window checks (nf_conntrack_tcp_be_liberal)

  [[interface]]
  name = \"tg-client\"             # device name, at most 15 bytes
  netns = \"client\"               # existing namespace for the kernel side (optional)
  address = \"10.1.0.1/24\"        # the gateway's address; its prefix is a connected route
  peer_address = \"10.1.0.2/24\"   # set on the namespace side (optional)
  peer_routes = [\"default\"]      # namespace-side routes into the device (optional)
  mtu = 1500

  [[route]]                      # static routes, longest prefix wins
  destination = \"10.9.0.0/16\"
  interface = \"tg-server\"

A bad config is reported with the file, the key and the reason before any
device is touched.

Once its devices and the control socket are open, tungate gives up every
capability (and switches to `user`), then installs the seccomp filter. Each
device is locked (flock on /run/tungate/DEV.lock) while a gateway runs: after
a crash, even SIGKILL, a restart with the same config replaces the dead
gateway's leftover devices; a live gateway's devices are never touched.
";

/// The ruleset of `family` an (ip6)tables-restore file holds (empty without
/// one), checked whole: a bad line is reported with the file and line.
fn load_ruleset(family: Family, path: Option<&std::path::Path>) -> anyhow::Result<Ruleset> {
    let mut rs = Ruleset::new_family(family);
    let key = match family {
        Family::V4 => "ruleset",
        Family::V6 => "ruleset6",
    };
    if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))?;
        syntax::restore(&mut rs, &text, RestoreOptions::default())
            .map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))?;
    }
    Ok(rs)
}

/// Builds the packet pipeline from the configuration: the ruleset file
/// (iptables-restore text, checked whole: a bad line is reported with the
/// file and line before any device is touched), conntrack limits and
/// timeouts, interfaces and routes.
pub fn build_pipeline(cfg: &Config, routes: RouteTable) -> anyhow::Result<Arc<Pipeline>> {
    let rs = load_ruleset(Family::V4, cfg.ruleset.as_deref())?;
    // Held for ip6tables; the pipeline sees no IPv6 packet yet.
    let rs6 = load_ruleset(Family::V6, cfg.ruleset6.as_deref())?;
    let interfaces = cfg
        .interfaces
        .iter()
        .map(|i| Interface {
            name: i.name.clone(),
            addr: i.address.addr,
            prefix_len: i.address.len,
            mtu: i.mtu,
        })
        .collect();
    let c = &cfg.conntrack;
    let s = Duration::from_secs;
    let timeouts = Timeouts {
        tcp_established: s(c.tcp_established_timeout),
        tcp_syn_sent: s(c.tcp_syn_sent_timeout),
        tcp_time_wait: s(c.tcp_time_wait_timeout),
        tcp_close: s(c.tcp_close_timeout),
        udp_unreplied: s(c.udp_timeout),
        udp_stream: s(c.udp_stream_timeout),
        icmp: s(c.icmp_timeout),
        generic: s(c.generic_timeout),
        ..Timeouts::default()
    };
    let pipeline = Pipeline::new(
        PipelineConfig {
            interfaces,
            routes,
            conntrack: CtConfig {
                max_entries: c.max,
                timeouts,
                tcp_loose: c.tcp_loose,
                tcp_be_liberal: c.tcp_be_liberal,
                // Events are built only while a `conntrack -E` client listens.
                event_queue: 65_536,
                ..CtConfig::default()
            },
            workers: cfg.workers,
            seed: random_seed(),
        },
        rs,
    );
    pipeline.replace_ruleset6(rs6);
    pipeline.conntrack().events_on_demand();
    // Free slab chunks go back to the kernel (the core makes no system call).
    pipeline.conntrack().set_release(crate::sys::mem::discard);
    Ok(Arc::new(pipeline))
}

fn parse_args(args: &[String]) -> Result<Option<PathBuf>, String> {
    let mut config = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "-c" | "--config" => {
                config = Some(PathBuf::from(
                    it.next().ok_or("--config needs a FILE argument")?,
                ));
            }
            s if s.starts_with("--config=") => config = Some(PathBuf::from(&s[9..])),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    config
        .map(Some)
        .ok_or_else(|| "missing --config FILE".to_string())
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `tungate run ...` (args after `run`).
pub fn main(args: &[String]) -> ExitCode {
    let path = match parse_args(args) {
        Ok(Some(p)) => p,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tungate run: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tungate: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&cfg.log_level);
    install_panic_hook();
    match run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tungate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: &Config) -> anyhow::Result<()> {
    // No transparent huge pages for this process. mimalloc asks for them
    // (MADV_HUGEPAGE), and a fault on such a range may stall in direct
    // compaction and zeroes 2 MiB at once: the first restore of the 10,000-
    // service kube ruleset into an idle gateway took 261-313 ms with them
    // and 139-167 ms without (bench/notes/history-2026-11.md). The packet path allocates
    // nothing per packet; bench/conntrack-soak.sh measured the same lookup
    // rates at a million entries either way, and less memory without.
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::warn!("PR_SET_THP_DISABLE: {e}");
    }
    for (i, ifc) in cfg.interfaces.iter().enumerate() {
        if let Some(ns) = &ifc.netns {
            anyhow::ensure!(
                netns::netns_exists(ns),
                "{}: key `interface[{i}].netns`: namespace {ns:?} does not exist (create it with `ip netns add {ns}`)",
                cfg.file.display()
            );
        }
    }
    // Held until exit: the kernel drops them when the process dies.
    let _locks = take_devices(cfg)?;
    let routes = cfg.route_table();
    let pipeline = build_pipeline(cfg, routes)?;

    // Signals are taken by one thread through sigwait: block them before any
    // thread exists so that every thread inherits the mask.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    sigs.add(Signal::SIGUSR1);
    sigs.thread_block()?;

    let mut devices = Vec::with_capacity(cfg.interfaces.len());
    for ifc in &cfg.interfaces {
        let d = TunDevice::create(&ifc.name, cfg.workers, cfg.offload)?;
        tracing::info!(
            device = %ifc.name,
            queues = d.queues.len(),
            vnet_hdr = d.vnet_hdr,
            offload = d.offload,
            "device created"
        );
        devices.push(d);
    }
    let vnet = devices.iter().all(|d| d.vnet_hdr);
    if !vnet && devices.iter().any(|d| d.vnet_hdr) {
        anyhow::bail!("devices disagree on the vnet header; restart with offload = false");
    }
    // All queues are open: now move and configure (a TUNSETIFF after the move
    // would create a new device in the wrong namespace).
    for ifc in &cfg.interfaces {
        netns::configure(ifc)?;
        tracing::info!(device = %ifc.name, netns = ifc.netns.as_deref().unwrap_or("-"), "device configured");
    }
    // The control socket is bound now (as root: its directory, the stale
    // socket of a crash, the chown to the control group); its accept thread
    // starts after the drop.
    let ctl_path = cfg
        .control_socket
        .clone()
        .unwrap_or_else(|| crate::control::DEFAULT_SOCKET.into());
    let mut scfg = ServerConfig::new(&ctl_path);
    scfg.group = cfg.control_group;
    let bound = Server::bind(scfg)
        .map_err(|e| anyhow::anyhow!("control socket {}: {e}", ctl_path.display()))?;
    if let Some(uid) = cfg.user {
        // The socket stays 0600 (0660 with a control group) and every client
        // is still checked by its peer credentials; owned by the service
        // user, the gateway can still reach it to stop its accept thread.
        nix::unistd::chown(&ctl_path, Some(nix::unistd::Uid::from_raw(uid)), None)
            .map_err(|e| anyhow::anyhow!("control socket {}: chown: {e}", ctl_path.display()))?;
    }

    // The metrics endpoint is bound now, while a privileged port would
    // still be allowed; the seccomp filter lets no new socket be made later.
    let metrics = match cfg.metrics {
        Some(a) => Some(
            std::net::TcpListener::bind(a)
                .map_err(|e| anyhow::anyhow!("metrics endpoint {a}: {e}"))?,
        ),
        None => None,
    };

    // Netlink sockets in the devices' namespaces, to see them go at
    // shutdown without the privilege `ip link del` would need.
    let watch = LinkWatch::open(
        &cfg.interfaces
            .iter()
            .map(|i| (i.netns.as_deref(), i.name.as_str()))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| anyhow::anyhow!("watching the devices: {e}"))?;

    // The control threads' priority. Lowering a nice value needs
    // CAP_SYS_NICE, gone after the drop, and a thread can only set its own:
    // this thread takes `control_nice` now, the control server's accept
    // thread inherits it (and its connection threads from it), and every
    // other thread goes back to `base_nice` (raising a nice value needs no
    // privilege): the workers at their start, this thread once the accept
    // thread exists, and the threads spawned after that inherit it.
    let base_nice = thread_nice();
    let control_niced = cfg.control_nice < base_nice
        && match set_thread_nice(cfg.control_nice) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    "control_nice = {}: {e}; left at {base_nice}",
                    cfg.control_nice
                );
                false
            }
        };

    // Everything is open: give up root before any thread exists (capability
    // sets are per thread; every thread spawned later inherits empty ones).
    let st = drop_privileges(Identity {
        uid: cfg.user,
        gid: cfg.group,
    })
    .map_err(|e| anyhow::anyhow!("dropping privileges: {e}"))?;
    if cfg.seccomp {
        install_seccomp(ALLOWED_SYSCALLS)
            .map_err(|e| anyhow::anyhow!("installing the seccomp filter: {e}"))?;
    }
    tracing::info!(
        uid = st.uid[0],
        gid = st.gid[0],
        seccomp = cfg.seccomp,
        "privileges dropped: no capabilities left"
    );

    let mut dp = Dataplane::start_with(
        devices,
        pipeline.clone(),
        Options {
            pin_workers: cfg.pin_workers,
            batch: cfg.worker_batch,
            nice: control_niced.then_some(base_nice),
        },
    )?;

    // The control socket: iptables, iptables-save, iptables-restore,
    // conntrack and stats against the live gateway.
    let stats = dp.stats_handle();
    let dp_stats: crate::control::metrics::DataplaneStatsFn = Arc::new(move || stats.snapshot());
    let handler = GatewayHandler::new(pipeline.clone(), Some(dp_stats.clone()))
        .with_background_nice(control_niced.then_some(base_nice));
    let _ctl = bound
        .serve(Arc::new(handler))
        .map_err(|e| anyhow::anyhow!("control socket {}: {e}", ctl_path.display()))?;
    tracing::info!(socket = %ctl_path.display(), "control socket listening");
    if control_niced {
        set_thread_nice(base_nice)?;
        tracing::debug!(
            control_nice = cfg.control_nice,
            base_nice,
            "control threads reniced"
        );
    }
    if let Some(l) = metrics {
        let addr = l.local_addr()?;
        crate::control::metrics::serve(l, pipeline.clone(), Some(dp_stats))?;
        tracing::info!(%addr, "metrics: GET /metrics (Prometheus text format)");
    }
    let mut housekeeping = Housekeeping::new(pipeline.clone(), cfg.conntrack.max);

    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("tg-signals".into())
        .spawn(move || loop {
            match sigs.wait() {
                Ok(s) => {
                    if tx.send(s).is_err() || s != Signal::SIGUSR1 {
                        return;
                    }
                }
                Err(_) => return,
            }
        })?;
    tracing::info!("tungate running");
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Signal::SIGUSR1) => tracing::info!("counters\n{}", dp.stats()),
            Ok(s) => {
                tracing::info!("{s}: shutting down");
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => housekeeping.tick(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Err(f) = dp.check() {
            // Closing the queues removes the devices (no privilege needed).
            drop(dp);
            watch.wait_gone(Duration::from_secs(2));
            return Err(anyhow::anyhow!("{f}"));
        }
    }
    let stats = dp.stats();
    // Joins the workers and closes every queue: the kernel removes each
    // (non-persistent) device with its last queue.
    let stopped = dp.shutdown();
    // The io_uring rings release their file references asynchronously:
    // wait (bounded) until the kernel has really removed the devices.
    let left = watch.wait_gone(Duration::from_secs(2));
    if !left.is_empty() {
        tracing::warn!(devices = ?left, "still present 2 s after closing their queues");
    }
    stopped.map_err(|f| anyhow::anyhow!("{f}"))?;
    tracing::info!("stopped; devices removed\n{stats}");
    Ok(())
}

/// Takes the lock of every device and replaces the leftovers of a dead
/// gateway: a device of ours whose lock is free belongs to nobody alive.
/// A device whose lock is held belongs to a running gateway: refuse.
fn take_devices(cfg: &Config) -> anyhow::Result<Vec<DeviceLock>> {
    let mut locks = Vec::with_capacity(cfg.interfaces.len());
    for ifc in &cfg.interfaces {
        match DeviceLock::acquire(std::path::Path::new(LOCK_DIR), &ifc.name)? {
            LockState::Acquired(l) => locks.push(l),
            LockState::Held { path, pid } => anyhow::bail!(
                "device {:?} already exists: it belongs to a running tungate (pid {}, lock {})",
                ifc.name,
                pid.map_or("?".to_string(), |p| p.to_string()),
                path.display()
            ),
        }
        let mut places = vec![None];
        if let Some(ns) = ifc.netns.as_deref() {
            places.push(Some(ns));
        }
        for ns in places {
            if !netns::link_exists(ns, &ifc.name) {
                continue;
            }
            let place = ns.map_or("the gateway's namespace".to_string(), |n| {
                format!("namespace {n:?}")
            });
            // TUNSETIFF on an existing multi-queue TUN would attach to it,
            // and a move onto an existing name fails half-way.
            // (A dead gateway's device may vanish between the two checks.)
            anyhow::ensure!(
                link_is_tun(ns, &ifc.name) || !netns::link_exists(ns, &ifc.name),
                "device {:?} already exists in {place} and is not a TUN device: rename one of them",
                ifc.name
            );
            // The kernel removes a dead gateway's (non-persistent) device
            // once its io_uring rings are torn down, asynchronously after the
            // exit (30-50 ms measured). One still there after that is held
            // by some other live process, or persistent: not ours to delete.
            let gone =
                wait_until_gone(Duration::from_secs(2), || netns::link_exists(ns, &ifc.name));
            anyhow::ensure!(
                gone,
                "device {:?} already exists in {place}: a TUN device that no running tungate holds (its lock {} is free) but that stays: persistent, or held by another program; remove it (`ip{} link del {}`) or rename the interface",
                ifc.name,
                locks.last().map_or(String::new(), |l: &DeviceLock| l.path.display().to_string()),
                ns.map_or(String::new(), |n| format!(" -n {n}")),
                ifc.name
            );
            tracing::warn!(device = %ifc.name, "a dead gateway's device in {place} is gone; replacing it");
        }
    }
    Ok(locks)
}

/// A panic outside the workers (main loop, control server threads) ends the
/// process non-zero with the message; a worker's panic is reported by the
/// main loop through `Dataplane::check`, which also exits non-zero.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        if name.starts_with("tg-worker-") {
            return;
        }
        tracing::error!(thread = %name, "{info}; exiting");
        std::process::exit(101);
    }));
}

/// A seed for the pipeline's per-worker RNGs (NAT port choice, `statistic
/// --mode random`): the OS's random source, through the keys std draws for
/// a `RandomState`, mixed with the clock.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    std::collections::hash_map::RandomState::new().hash_one(t)
}
