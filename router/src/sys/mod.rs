//! The operating-system floor: every system call wrapper of the crate, and
//! the only module allowed `unsafe` (the crate denies `unsafe_code`, this
//! module alone allows it; every block carries a `// SAFETY:` comment and
//! every `unsafe fn` a `# Safety` section, checked by clippy's
//! `undocumented_unsafe_blocks`).
//!
//! What each part wraps:
//!
//! - [`tun`]: TUN ioctls (attach a queue, offload, steering program);
//! - [`bpf`]: `bpf(2)`: maps, socket filter load, test runs;
//! - [`uring`]: a worker's io_uring with its provided-buffer rings, and the
//!   ownership rule for buffers handed to the kernel;
//! - [`caps`]: capability drop, user switch, `no_new_privs`, `/proc` status;
//! - [`seccomp`]: the system call filter and its `SIGSYS` reporter;
//! - [`lock`]: per-device `flock`s for crash recovery;
//! - [`netlink`]: device presence through rtnetlink, across namespaces;
//! - [`sched`]: nice value, SCHED_BATCH, CPU pinning;
//! - [`fdpass`]: receiving descriptors over a Unix socket;
//! - [`mem`]: giving memory back to the kernel (allocator, `madvise`).
//!
//! Nothing here knows packets, rules or connections: the layers above call
//! down into it, never the other way (see ARCHITECTURE.md).
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bpf;
pub mod caps;
pub mod fdpass;
pub mod lock;
pub mod mem;
pub mod netlink;
pub mod sched;
pub mod seccomp;
pub mod tun;
pub mod uring;
