//! One worker thread: its own io_uring, one queue of every device, a
//! multishot read per queue into a provided-buffer ring, the processor called
//! in place on each frame, writes pushed to the submission queue and submitted
//! in one batch per loop turn. No allocation and no lock per packet. A quiet
//! worker (at most a few completions in 5 s) asks the allocator to return
//! freed memory ([`super::mem::collect`]): blocks it allocated and another
//! thread freed, e.g. conntrack index tables shrunk after a mass expiry.
//!
//! Each ring is confined with io_uring restrictions, since the seccomp filter
//! (see `privs`) cannot see operations submitted through a ring: it is created
//! disabled (`IORING_SETUP_R_DISABLED`), its files (this worker's queue of
//! every device) and provided-buffer rings are registered, then
//! `IORING_REGISTER_RESTRICTIONS` allows only [`WORKER_SQE_OPS`] (multishot
//! read, write), on registered files only (`IOSQE_FIXED_FILE` required,
//! `IOSQE_BUFFER_SELECT` allowed), and only the register operations of the
//! teardown ([`WORKER_REGISTER_OPS`]); only then is the ring enabled
//! (`IORING_REGISTER_ENABLE_RINGS`). Anything else, e.g. an `OPENAT`,
//! `SOCKET` or a write to a plain descriptor, completes with `-EACCES`, and a
//! disallowed `io_uring_register` call fails with `EACCES`: a worker ring can
//! only read and write the TUN queues it was given.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::register::Restriction;
use io_uring::{cqueue, opcode, squeue, types, IoUring, SubmissionQueue, Submitter};

use super::bufring::BufRing;
use super::stats::WorkerStats;
use super::tun::TunDevice;
use crate::clock::Timestamp;
use crate::pipeline::{DropReason, Emit, IfIndex, PacketCtx, Processor, Verdict};
use crate::wire::vnet::VnetHdr;

const RING_ENTRIES: u32 = 1024;
/// Buffers per device queue.
pub const BUFS_PER_QUEUE: u16 = 64;
/// Slots for packets the gateway originates (echo replies, ICMP errors).
const EMIT_SLOTS: usize = 64;
const EMIT_SLOT_SIZE: usize = 2048 + VnetHdr::LEN;

/// How often a quiet worker returns freed memory ([`super::mem::collect`]).
const COLLECT_EVERY_NS: u64 = 5_000_000_000;
/// At most this many completions in that time count as quiet (a stray
/// packet, e.g. an IPv6 router solicitation, must not keep memory held).
const QUIET_COMPLETIONS: u32 = 256;

const KIND_READ: u64 = 1;
const KIND_WRITE_FWD: u64 = 2;
const KIND_WRITE_EMIT: u64 = 3;

fn ud(kind: u64, dev: u16, id: u16) -> u64 {
    (kind << 32) | (u64::from(dev) << 16) | u64::from(id)
}

fn ud_parts(u: u64) -> (u64, u16, u16) {
    (u >> 32, (u >> 16) as u16, u as u16)
}

/// Pushes `e`, submitting first if the submission queue is full.
fn push(
    sq: &mut SubmissionQueue<'_>,
    submitter: &Submitter<'_>,
    e: &squeue::Entry,
) -> io::Result<()> {
    loop {
        // SAFETY: every entry pushed here refers to memory that stays valid
        // until its completion: read SQEs use registered buffer rings
        // (BufRing invariant), write SQEs point at a buffer taken out of a
        // ring or the emit pool, which is not reused before the completion.
        if unsafe { sq.push(e) }.is_ok() {
            return Ok(());
        }
        sq.sync();
        submitter.submit()?;
        sq.sync();
    }
}

/// Fixed pool of buffers for originated packets; same ownership rule as the
/// BufRing invariant: a slot in flight in a write belongs to the kernel.
struct EmitPool {
    mem: Box<[u8]>,
    free: [u16; EMIT_SLOTS],
    nfree: usize,
}

impl EmitPool {
    fn new() -> Self {
        let mut free = [0u16; EMIT_SLOTS];
        for (i, f) in free.iter_mut().enumerate() {
            *f = i as u16;
        }
        EmitPool {
            mem: vec![0u8; EMIT_SLOTS * EMIT_SLOT_SIZE].into_boxed_slice(),
            free,
            nfree: EMIT_SLOTS,
        }
    }
}

/// The [`Emit`] sink handed to the processor for one packet.
struct Emitter<'a, 'r> {
    sq: &'a mut SubmissionQueue<'r>,
    submitter: &'a Submitter<'r>,
    pool: &'a mut EmitPool,
    fds: &'a [RawFd],
    hdr_len: usize,
    stats: &'a WorkerStats,
    error: Option<io::Error>,
}

impl Emit for Emitter<'_, '_> {
    fn emit(&mut self, egress: IfIndex, packet: &[u8]) {
        let n = self.hdr_len + packet.len();
        if usize::from(egress.0) >= self.fds.len() {
            self.stats.dropped(DropReason::TxError);
            return;
        }
        if n > EMIT_SLOT_SIZE || self.pool.nfree == 0 {
            self.stats.dropped(DropReason::TxError);
            return;
        }
        self.pool.nfree -= 1;
        let slot = self.pool.free[self.pool.nfree];
        let off = usize::from(slot) * EMIT_SLOT_SIZE;
        let buf = &mut self.pool.mem[off..off + n];
        buf[..self.hdr_len].fill(0);
        buf[self.hdr_len..].copy_from_slice(packet);
        let e = opcode::Write::new(types::Fixed(u32::from(egress.0)), buf.as_ptr(), n as u32)
            .build()
            .user_data(ud(KIND_WRITE_EMIT, egress.0, slot));
        if let Err(err) = push(self.sq, self.submitter, &e) {
            self.error = Some(err);
        }
        self.stats.tx(egress, n - self.hdr_len);
    }
}

pub struct WorkerArgs {
    pub index: usize,
    pub devices: Arc<Vec<TunDevice>>,
    pub processor: Arc<dyn Processor>,
    pub stats: Arc<WorkerStats>,
    pub stop: Arc<AtomicBool>,
    /// Pin this thread to CPU `n % cores`.
    pub pin_cpu: Option<usize>,
    /// Run under SCHED_BATCH ([`super::privs::set_thread_batch`]).
    pub batch: bool,
    /// Set this nice value first ([`super::Options::nice`]).
    pub nice: Option<i32>,
}

/// Submission opcodes a worker ring may use once enabled: the multishot
/// read of each queue and the writes (forwarded and originated packets).
pub const WORKER_SQE_OPS: [u8; 2] = [opcode::ReadMulti::CODE, opcode::Write::CODE];

/// `io_uring_register` opcodes (include/uapi/linux/io_uring.h, enum
/// io_uring_register_op) the worker makes after enabling its ring: both at
/// teardown, cancelling the multishot reads and dropping the registered files.
/// Everything else is registered before the ring is enabled.
pub const WORKER_REGISTER_OPS: [u8; 2] = [
    24, // IORING_REGISTER_SYNC_CANCEL
    3,  // IORING_UNREGISTER_FILES
];

/// The restrictions registered on every worker ring (see the module docs).
fn restrictions() -> Vec<Restriction> {
    let mut r: Vec<Restriction> = WORKER_SQE_OPS
        .iter()
        .map(|&op| Restriction::sqe_op(op))
        .collect();
    r.extend(
        WORKER_REGISTER_OPS
            .iter()
            .map(|&op| Restriction::register_op(op)),
    );
    r.push(Restriction::sqe_flags_required(
        squeue::Flags::FIXED_FILE.bits(),
    ));
    r.push(Restriction::sqe_flags_allowed(
        squeue::Flags::BUFFER_SELECT.bits(),
    ));
    r
}

fn build_disabled_ring() -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_single_issuer()
        .setup_coop_taskrun()
        .setup_defer_taskrun()
        .setup_r_disabled();
    match b.build(RING_ENTRIES) {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::debug!("io_uring with DEFER_TASKRUN unavailable ({e}); plain ring");
            IoUring::builder().setup_r_disabled().build(RING_ENTRIES)
        }
    }
}

/// A worker's ring, ready to run: `fds[d]` registered as file `d`, buffer
/// group `d` a [`BufRing`] of `bufs_per_queue` buffers, restrictions in
/// force, ring enabled. Fails (closed) if the kernel refuses a restriction.
///
/// Returned ring first: dropping the pair in field order closes the io_uring
/// before the buffers are freed (BufRing invariant).
pub fn setup_ring(fds: &[RawFd], bufs_per_queue: u16) -> io::Result<(IoUring, Vec<BufRing>)> {
    // Declared before the io_uring, so dropped after it on an early return.
    let mut rings = Vec::with_capacity(fds.len());
    let ring = build_disabled_ring()?;
    // Registered files: index d is this worker's queue of device d (saves
    // the fd table lookup and refcount on every read and write, and lets the
    // restrictions require registered files).
    ring.submitter().register_files(fds)?;
    for d in 0..fds.len() {
        rings.push(BufRing::new(&ring.submitter(), d as u16, bufs_per_queue)?);
    }
    ring.submitter()
        .register_restrictions(&mut restrictions())
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring restrictions: {e}")))?;
    ring.submitter().register_enable_rings()?;
    Ok((ring, rings))
}

/// Runs until `stop` is set. Errors are fatal for the process.
pub fn run(args: WorkerArgs) -> io::Result<()> {
    if let Some(n) = args.pin_cpu {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let mut set = nix::sched::CpuSet::new();
        set.set(n % cores).map_err(io::Error::from)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .map_err(io::Error::from)?;
    }
    if let Some(n) = args.nice {
        super::privs::set_thread_nice(n)?;
    }
    if args.batch {
        if let Err(e) = super::privs::set_thread_batch() {
            tracing::warn!(worker = args.index, "SCHED_BATCH refused: {e}");
        }
    }
    // Declared before the io_uring so that, also when unwinding from a
    // panic, the ring is dropped first and the kernel is done with every
    // buffer before it is freed (BufRing invariant).
    let mut pool = EmitPool::new();
    let fds: Vec<RawFd> = args
        .devices
        .iter()
        .map(|d| d.queues[args.index].as_raw_fd())
        .collect();
    let (ring, rings) = setup_ring(&fds, BUFS_PER_QUEUE)?;
    // Rebound in this order so that an unwind drops the ring before the
    // buffers (locals drop in reverse order of declaration).
    let mut rings = rings;
    let mut ring = ring;
    let res = event_loop(&mut ring, &mut rings, &mut pool, &fds, &args);
    // Cancel the multishot reads and drop the registered files now: ring
    // teardown is asynchronous in the kernel, and while a request or the file
    // table holds a queue, the device outlives our close().
    let _ = ring.submitter().register_sync_cancel(
        Some(types::Timespec::from(Duration::from_secs(1))),
        types::CancelBuilder::any(),
    );
    let _ = ring.submitter().unregister_files();
    // The kernel may still fill ring buffers until the io_uring is gone:
    // close it before the buffers are freed (BufRing invariant).
    drop(ring);
    drop(rings);
    drop(pool);
    res
}

/// Arms the multishot read of device `dev` (registered file index `dev`).
fn arm_read(sq: &mut SubmissionQueue<'_>, submitter: &Submitter<'_>, dev: u16) -> io::Result<()> {
    let e = opcode::ReadMulti::new(types::Fixed(u32::from(dev)), 0, dev)
        .build()
        .user_data(ud(KIND_READ, dev, 0));
    push(sq, submitter, &e)
}

fn event_loop(
    ring: &mut IoUring,
    rings: &mut [BufRing],
    pool: &mut EmitPool,
    fds: &[RawFd],
    args: &WorkerArgs,
) -> io::Result<()> {
    let hdr_len = args.devices.first().map_or(0, |d| d.hdr_len());
    let stats = &*args.stats;
    let processor = &*args.processor;
    let mut rearm = vec![false; fds.len()];
    let (submitter, mut sq, mut cq) = ring.split();
    for d in 0..fds.len() {
        arm_read(&mut sq, &submitter, d as u16)?;
    }
    let ts = types::Timespec::from(Duration::from_millis(100));
    let wait = types::SubmitArgs::new().timespec(&ts);
    let mut logged_read_err = false;
    let mut last_collect = Timestamp::now_monotonic();
    let mut completions = 0u32;

    while !args.stop.load(Ordering::Relaxed) {
        sq.sync();
        match submitter.submit_with_args(1, &wait) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        cq.sync();
        let now = Timestamp::now_monotonic();
        // Quiet for a while (at most QUIET_COMPLETIONS in COLLECT_EVERY_NS):
        // what this thread allocated and another freed (conntrack index
        // tables shrunk by the housekeeping sweep) goes back to the kernel.
        completions = completions.saturating_add(cq.len() as u32);
        if now.0.saturating_sub(last_collect.0) >= COLLECT_EVERY_NS {
            if completions <= QUIET_COMPLETIONS {
                super::mem::collect(true);
            }
            last_collect = now;
            completions = 0;
        }
        for cqe in &mut cq {
            let (kind, dev, id) = ud_parts(cqe.user_data());
            let res = cqe.result();
            match kind {
                KIND_READ => {
                    let di = usize::from(dev);
                    if !cqueue::more(cqe.flags()) {
                        rearm[di] = true;
                    }
                    if res < 0 {
                        if res != -libc::ENOBUFS && !logged_read_err {
                            tracing::warn!(
                                worker = args.index,
                                "read error: {}",
                                io::Error::from_raw_os_error(-res)
                            );
                            logged_read_err = true;
                        }
                        continue;
                    }
                    let Some(bid) = cqueue::buffer_select(cqe.flags()) else {
                        continue;
                    };
                    let len = res as usize;
                    // SAFETY: the completion carries `bid`, so the buffer is
                    // ours (BufRing invariant); `len` is what the kernel wrote,
                    // at most BUF_SIZE; no other slice of it is alive.
                    let frame = unsafe { rings[di].buf_mut(bid, len) };
                    let ingress = IfIndex(dev);
                    let mut vnet = if hdr_len > 0 {
                        match VnetHdr::parse(frame) {
                            Some(h) => h,
                            None => {
                                stats.dropped(DropReason::BadVnetHdr);
                                rings[di].give_back(bid);
                                continue;
                            }
                        }
                    } else {
                        VnetHdr::default()
                    };
                    stats.rx(ingress, len - hdr_len);
                    let ctx = PacketCtx {
                        ingress,
                        worker: args.index,
                        now,
                    };
                    let mut em = Emitter {
                        sq: &mut sq,
                        submitter: &submitter,
                        pool: &mut *pool,
                        fds,
                        hdr_len,
                        stats,
                        error: None,
                    };
                    let verdict =
                        processor.process(&ctx, &mut frame[hdr_len..], &mut vnet, &mut em);
                    if let Some(e) = em.error.take() {
                        return Err(e);
                    }
                    match verdict {
                        Verdict::Forward(out) if usize::from(out.0) < fds.len() => {
                            if hdr_len > 0 {
                                vnet.write(frame);
                            }
                            let e = opcode::Write::new(
                                types::Fixed(u32::from(out.0)),
                                frame.as_ptr(),
                                len as u32,
                            )
                            .build()
                            .user_data(ud(KIND_WRITE_FWD, dev, bid));
                            // The buffer now belongs to the write until its
                            // completion (BufRing invariant).
                            push(&mut sq, &submitter, &e)?;
                            stats.tx(out, len - hdr_len);
                        }
                        Verdict::Forward(_) => {
                            stats.dropped(DropReason::TxError);
                            rings[di].give_back(bid);
                        }
                        Verdict::Drop(r) => {
                            stats.dropped(r);
                            rings[di].give_back(bid);
                        }
                        Verdict::Consumed => rings[di].give_back(bid),
                    }
                }
                KIND_WRITE_FWD => {
                    if res < 0 {
                        stats.tx_error();
                    }
                    rings[usize::from(dev)].give_back(id);
                }
                KIND_WRITE_EMIT => {
                    if res < 0 {
                        stats.tx_error();
                    }
                    pool.free[pool.nfree] = id;
                    pool.nfree += 1;
                }
                _ => {}
            }
        }
        for r in rings.iter_mut() {
            r.publish();
        }
        for (d, flag) in rearm.iter_mut().enumerate() {
            if *flag {
                *flag = false;
                arm_read(&mut sq, &submitter, d as u16)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    /// A pipe stands in for a TUN queue: file 0 its write end, file 1 its
    /// read end. `None` (test skipped, said on stderr) without io_uring.
    fn pipe_ring() -> Option<(IoUring, Vec<BufRing>, OwnedFd, OwnedFd)> {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        match setup_ring(&[w.as_raw_fd(), r.as_raw_fd()], 4) {
            Ok((ring, bufs)) => Some((ring, bufs, r, w)),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                eprintln!("skipped: io_uring unavailable here ({e})");
                None
            }
            Err(e) => panic!("setup_ring: {e}"),
        }
    }

    /// Submits `e` alone and returns its completion's result.
    fn one(ring: &mut IoUring, e: squeue::Entry) -> i32 {
        // SAFETY: the entry refers to buffers that outlive this call (the
        // caller's locals or a BufRing), and we wait for its completion.
        unsafe { ring.submission().push(&e.user_data(7)) }.expect("sq full");
        ring.submit_and_wait(1).expect("submit");
        let cqe = ring.completion().next().expect("a completion");
        assert_eq!(cqe.user_data(), 7);
        cqe.result()
    }

    #[test]
    fn worker_ring_reads_and_writes_registered_files() {
        let Some((mut ring, _bufs, _r, _w)) = pipe_ring() else {
            return;
        };
        let msg = b"a packet";
        let n = one(
            &mut ring,
            opcode::Write::new(types::Fixed(0), msg.as_ptr(), msg.len() as u32).build(),
        );
        assert_eq!(n, msg.len() as i32);
        let n = one(
            &mut ring,
            opcode::ReadMulti::new(types::Fixed(1), 0, 1).build(),
        );
        assert_eq!(n, msg.len() as i32, "multishot read from buffer group 1");
    }

    #[test]
    fn worker_ring_refuses_other_opcodes_and_plain_descriptors() {
        let Some((mut ring, _bufs, _r, w)) = pipe_ring() else {
            return;
        };
        let path = c"/etc/passwd";
        let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(libc::O_RDONLY)
            .build();
        assert_eq!(one(&mut ring, open), -libc::EACCES, "OPENAT");
        let sock = opcode::Socket::new(libc::AF_INET, libc::SOCK_DGRAM, 0).build();
        assert_eq!(one(&mut ring, sock), -libc::EACCES, "SOCKET");
        // Even an allowed opcode on a descriptor that is not registered.
        let msg = b"x";
        let plain = opcode::Write::new(types::Fd(w.as_raw_fd()), msg.as_ptr(), 1).build();
        assert_eq!(one(&mut ring, plain), -libc::EACCES, "WRITE to a plain fd");
        let fixed = opcode::Write::new(types::Fixed(0), msg.as_ptr(), 1).build();
        assert_eq!(one(&mut ring, fixed), 1, "WRITE to a registered file");
    }

    #[test]
    fn worker_ring_refuses_other_register_operations() {
        let Some((ring, _bufs, r, _w)) = pipe_ring() else {
            return;
        };
        let e = ring
            .submitter()
            .register_files_update(0, &[r.as_raw_fd()])
            .expect_err("files update must be refused");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        let mut probe = io_uring::Probe::new();
        let e = ring
            .submitter()
            .register_probe(&mut probe)
            .expect_err("probe must be refused");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        // The teardown's operations stay allowed.
        ring.submitter()
            .register_sync_cancel(
                Some(types::Timespec::from(Duration::from_millis(10))),
                types::CancelBuilder::any(),
            )
            .or_else(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(()),
                _ => Err(e),
            })
            .expect("sync cancel allowed");
        ring.submitter()
            .unregister_files()
            .expect("unregister files allowed");
    }
}
