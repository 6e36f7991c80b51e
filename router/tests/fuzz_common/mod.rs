//! What the stable-Rust fuzz harnesses (`fuzz_parsers`, `fuzz_pipeline`,
//! `fuzz_control`) share: the run length and seed from the environment and
//! the mutation RNG, the loop that runs them, the command words of the two
//! text fuzzers, the gateway under test and its nat table, catching a
//! failing check and saving its input.

use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tungate::conntrack::ConntrackConfig;
use tungate::pipeline::engine::{Interface, Pipeline, PipelineConfig};
use tungate::ruleset::Ruleset;
use tungate::syntax::{restore, RestoreOptions};

/// The seed of `cargo test`'s runs ("tungate" in ASCII, odd).
pub const DEFAULT_SEED: u64 = 0x0074_756e_6761_7465;

/// `TUNGATE_FUZZ_SECS` (default 2: the short run under `cargo test`) and
/// `TUNGATE_FUZZ_SEED` (default: a fixed seed, so a failure under `cargo
/// test` reproduces; long runs pass their own), printed under the fuzzer's
/// `name`; with the mutation RNG seeded from the seed.
pub fn settings(name: &str) -> (u64, u64, Rng) {
    let secs: u64 = std::env::var("TUNGATE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let seed: u64 = std::env::var("TUNGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    println!("{name}: seed {seed}, {secs} s");
    (secs, seed, Rng(seed))
}

/// The iptables commands (and `-t`) that the dictionaries of both text
/// fuzzers (`fuzz_parsers`, `fuzz_control`) hold, in their order there.
#[allow(dead_code)] // fuzz_pipeline mutates bytes, not words
pub const COMMAND_FLAGS: &[&str] = &[
    "-A", "-I", "-D", "-R", "-N", "-X", "-F", "-Z", "-P", "-E", "-C", "-L", "-S", "-t",
];

/// Both gateway interfaces' MTU.
#[allow(dead_code)] // fuzz_parsers drives no gateway
pub const MTU: u16 = 1500;

/// The nat table of the gateways the control and pipeline fuzzers drive
/// (their filter tables follow it): 10.0.1.1:80/tcp and :53/udp DNATed to
/// the servers, MASQUERADE out of `tg1`.
#[allow(dead_code)] // fuzz_parsers drives no gateway
pub const NAT_TABLE: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.2.2:8080
-A PREROUTING -d 10.0.1.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.2.3
-A POSTROUTING -o tg1 -j MASQUERADE
COMMIT
";

/// The gateway the control and pipeline fuzzers drive: `tg0` 10.0.1.1/24
/// and `tg1` 10.0.2.1/24, two workers, the ruleset `rules` (it must parse).
#[allow(dead_code)] // fuzz_parsers drives no gateway
pub fn gateway(rules: &str, conntrack: ConntrackConfig, seed: u64) -> Pipeline {
    let mut rs = Ruleset::new();
    restore(&mut rs, rules, RestoreOptions::default()).expect("fuzz ruleset parses");
    let ifaces = vec![
        Interface {
            name: "tg0".into(),
            addr: Ipv4Addr::new(10, 0, 1, 1),
            prefix_len: 24,
            mtu: MTU,
        },
        Interface {
            name: "tg1".into(),
            addr: Ipv4Addr::new(10, 0, 2, 1),
            prefix_len: 24,
            mtu: MTU,
        },
    ];
    let routes = Interface::connected_routes(&ifaces);
    Pipeline::new(
        PipelineConfig {
            interfaces: ifaces,
            routes,
            conntrack,
            workers: 2,
            seed,
        },
        rs,
    )
}

/// xorshift64*: seedable, so a run is replayable from its printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Runs the fuzz loop `f` with the panic hook silenced (every caught panic
/// would print otherwise) and restores the hook before returning `f`'s
/// result, so that the failure reported after it prints.
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f();
    std::panic::set_hook(prev);
    r
}

/// The fuzz loop: calls `step` with each input's number (from 1) until
/// `secs` have passed or a step returns a failure, with the panic hook
/// silenced ([`quietly`]); prints under the fuzzer's `name` how many inputs
/// ran and how fast. Returns the failure.
pub fn run_for<F>(name: &str, secs: u64, mut step: impl FnMut(u64) -> Option<F>) -> Option<F> {
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut n = 0;
    let failure = quietly(|| {
        while Instant::now() < end {
            n += 1;
            if let Some(f) = step(n) {
                return Some(f);
            }
        }
        None
    });
    let el = start.elapsed().as_secs_f64();
    println!(
        "{name}: {n} inputs in {el:.1} s ({:.0} execs/s)",
        n as f64 / el
    );
    failure
}

/// Runs one check on one input, a panic included (the caller silences the
/// panic hook for the run: [`quietly`]): `Err` carries the check's own
/// message, or `panic: <payload>`.
pub fn check<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("panic: {msg}"))
    })
}

/// Writes a failing input to `target/<name>-<seed>.txt` (best effort, so
/// the run still reports when it cannot) and returns that path.
pub fn save_failure(name: &str, seed: u64, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
        .join(format!("{name}-{seed}.txt"));
    let _ = std::fs::write(&path, contents);
    path
}
