//! What the stable-Rust fuzz harnesses (`fuzz_parsers`, `fuzz_pipeline`,
//! `fuzz_control`) share: the run length and seed from the environment and
//! the mutation RNG, the gateway under test, catching a failing check and saving its input.

use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use tungate::conntrack::ConntrackConfig;
use tungate::pipeline::engine::{Interface, Pipeline, PipelineConfig};
use tungate::ruleset::Ruleset;
use tungate::syntax::{restore, RestoreOptions};

/// The seed of `cargo test`'s runs ("tungate" in ASCII, odd).
pub const DEFAULT_SEED: u64 = 0x0074_756e_6761_7465;

/// `TUNGATE_FUZZ_SECS` (default 2: the short run under `cargo test`) and
/// `TUNGATE_FUZZ_SEED` (default: a fixed seed, so a failure under `cargo
/// test` reproduces; printed either way; long runs pass their own).
pub fn settings() -> (u64, u64) {
    let secs: u64 = std::env::var("TUNGATE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let seed: u64 = std::env::var("TUNGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    (secs, seed)
}

/// Both gateway interfaces' MTU.
#[allow(dead_code)] // fuzz_parsers drives no gateway
pub const MTU: u16 = 1500;

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
pub fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f();
    std::panic::set_hook(prev);
    r
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
