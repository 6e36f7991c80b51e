//! One worker thread: its own io_uring, one queue of every device, a
//! multishot read per queue into a provided-buffer ring, the processor called
//! in place on each frame, writes pushed to the submission queue and submitted
//! in one batch per loop turn. No allocation and no lock per packet.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
}

fn build_ring() -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_single_issuer()
        .setup_coop_taskrun()
        .setup_defer_taskrun();
    match b.build(RING_ENTRIES) {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::debug!("io_uring with DEFER_TASKRUN unavailable ({e}); plain ring");
            IoUring::new(RING_ENTRIES)
        }
    }
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
    // Declared before the io_uring so that, also when unwinding from a
    // panic, the ring is dropped first and the kernel is done with every
    // buffer before it is freed (BufRing invariant).
    let mut pool = EmitPool::new();
    let mut rings = Vec::new();
    let mut ring = build_ring()?;
    let fds: Vec<RawFd> = args
        .devices
        .iter()
        .map(|d| d.queues[args.index].as_raw_fd())
        .collect();
    // Registered files: index d is this worker's queue of device d (saves
    // the fd table lookup and refcount on every read and write).
    ring.submitter().register_files(&fds)?;
    for d in 0..fds.len() {
        rings.push(BufRing::new(&ring.submitter(), d as u16, BUFS_PER_QUEUE)?);
    }
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
                                types::Fd(fds[usize::from(out.0)]),
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
