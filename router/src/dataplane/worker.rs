//! One worker thread: its own io_uring ([`WorkerRing`]), one queue of every
//! device, a multishot read per queue into a provided-buffer ring, the
//! processor called in place on each frame, writes pushed to the submission
//! queue and submitted in one batch per loop turn. No allocation and no lock
//! per packet. A quiet worker (at most a few completions in 5 s) asks the
//! allocator to return freed memory ([`crate::sys::mem::collect`]): blocks it
//! allocated and another thread freed, e.g. conntrack index tables shrunk
//! after a mass expiry. The ring, its buffers and their ownership rules, and
//! the io_uring restrictions each ring is confined by, are `sys::uring`'s.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::stats::WorkerStats;
use super::tun::TunDevice;
use crate::clock::Timestamp;
use crate::pipeline::{DropReason, Emit, IfIndex, PacketCtx, Processor, Verdict};
use crate::sys::uring::{Emits, Event, Submit, WorkerRing};
use crate::wire::vnet::VnetHdr;

/// Buffers per device queue.
pub const BUFS_PER_QUEUE: u16 = 64;

/// How often a quiet worker returns freed memory ([`crate::sys::mem::collect`]).
const COLLECT_EVERY_NS: u64 = 5_000_000_000;
/// At most this many completions in that time count as quiet (a stray
/// packet, e.g. an IPv6 router solicitation, must not keep memory held).
const QUIET_COMPLETIONS: u32 = 256;

/// The [`Emit`] sink handed to the processor for one packet.
struct Emitter<'a, 'r> {
    sub: &'a mut Submit<'r>,
    emits: &'a mut Emits<'r>,
    ndev: usize,
    hdr_len: usize,
    stats: &'a WorkerStats,
    error: Option<io::Error>,
}

impl Emit for Emitter<'_, '_> {
    fn emit(&mut self, egress: IfIndex, packet: &[u8]) {
        if usize::from(egress.0) >= self.ndev {
            self.stats.dropped(DropReason::TxError);
            return;
        }
        let Some(slot) = self.emits.stage(self.hdr_len, packet) else {
            self.stats.dropped(DropReason::TxError);
            return;
        };
        if let Err(err) = self.sub.emit(self.emits, slot, egress.0) {
            self.error = Some(err);
        }
        self.stats.tx(egress, packet.len());
    }

    /// The kernel's syslog level picks the tracing level.
    fn log(&mut self, level: u8, line: &str) {
        match level {
            0..=3 => tracing::error!(target: "tungate::log", "{line}"),
            4 => tracing::warn!(target: "tungate::log", "{line}"),
            5 | 6 => tracing::info!(target: "tungate::log", "{line}"),
            _ => tracing::debug!(target: "tungate::log", "{line}"),
        }
    }
}

pub struct WorkerArgs<P> {
    pub index: usize,
    pub devices: Arc<Vec<TunDevice>>,
    pub processor: Arc<P>,
    pub stats: Arc<WorkerStats>,
    pub stop: Arc<AtomicBool>,
    /// Pin this thread to CPU `n % cores`.
    pub pin_cpu: Option<usize>,
    /// Run under SCHED_BATCH ([`crate::sys::sched::set_thread_batch`]).
    pub batch: bool,
    /// Set this nice value first ([`super::Options::nice`]).
    pub nice: Option<i32>,
}

/// Runs until `stop` is set. Errors are fatal for the process.
pub fn run<P: Processor>(args: WorkerArgs<P>) -> io::Result<()> {
    if let Some(n) = args.pin_cpu {
        crate::sys::sched::pin_to_cpu(n)?;
    }
    if let Some(n) = args.nice {
        crate::sys::sched::set_thread_nice(n)?;
    }
    if args.batch {
        if let Err(e) = crate::sys::sched::set_thread_batch() {
            tracing::warn!(worker = args.index, "SCHED_BATCH refused: {e}");
        }
    }
    let fds: Vec<_> = args
        .devices
        .iter()
        .map(|d| d.queues[args.index].as_raw_fd())
        .collect();
    // Dropping the ring (also when unwinding) cancels its reads, drops its
    // files and closes it before its buffers are freed (sys::uring).
    let mut ring = WorkerRing::new(&fds, BUFS_PER_QUEUE)?;
    event_loop(&mut ring, fds.len(), &args)
}

fn event_loop<P: Processor>(
    ring: &mut WorkerRing,
    ndev: usize,
    args: &WorkerArgs<P>,
) -> io::Result<()> {
    let hdr_len = args.devices.first().map_or(0, |d| d.hdr_len());
    let stats = &*args.stats;
    let processor = &*args.processor;
    let mut state = processor.worker(args.index);
    let mut rearm = vec![false; ndev];
    let (mut sub, mut cq, mut frames, mut emits) = ring.split();
    for d in 0..ndev {
        sub.arm_read(d as u16)?;
    }
    let mut logged_read_err = false;
    let mut last_collect = Timestamp::now_monotonic();
    let mut completions = 0u32;

    while !args.stop.load(Ordering::Relaxed) {
        sub.submit_and_wait(Duration::from_millis(100))?;
        cq.sync();
        let now = Timestamp::now_monotonic();
        // Quiet for a while (at most QUIET_COMPLETIONS in COLLECT_EVERY_NS):
        // what this thread allocated and another freed (conntrack index
        // tables shrunk by the housekeeping sweep) goes back to the kernel.
        completions = completions.saturating_add(cq.len() as u32);
        if now.0.saturating_sub(last_collect.0) >= COLLECT_EVERY_NS {
            if completions <= QUIET_COMPLETIONS {
                crate::sys::mem::collect(true);
            }
            last_collect = now;
            completions = 0;
        }
        for ev in &mut cq {
            match ev {
                Event::Read {
                    dev,
                    result,
                    more,
                    buf,
                } => {
                    if !more {
                        rearm[usize::from(dev)] = true;
                    }
                    if result < 0 {
                        if result != -libc::ENOBUFS && !logged_read_err {
                            tracing::warn!(
                                worker = args.index,
                                "read error: {}",
                                io::Error::from_raw_os_error(-result)
                            );
                            logged_read_err = true;
                        }
                        continue;
                    }
                    // BufRing invariant: the completion hands us the buffer.
                    let Some(frame) = buf.and_then(|b| frames.take(b)) else {
                        continue;
                    };
                    let len = frame.len();
                    let bytes = frames.bytes(&frame);
                    let ingress = IfIndex(dev);
                    let mut vnet = if hdr_len > 0 {
                        match VnetHdr::parse(bytes) {
                            Some(h) => h,
                            None => {
                                stats.dropped(DropReason::BadVnetHdr);
                                frames.give_back(frame);
                                continue;
                            }
                        }
                    } else {
                        VnetHdr::default()
                    };
                    stats.rx(ingress, len - hdr_len);
                    let ctx = PacketCtx { ingress, now };
                    let mut em = Emitter {
                        sub: &mut sub,
                        emits: &mut emits,
                        ndev,
                        hdr_len,
                        stats,
                        error: None,
                    };
                    let verdict = processor.process(
                        &mut state,
                        &ctx,
                        &mut bytes[hdr_len..],
                        &mut vnet,
                        &mut em,
                    );
                    if let Some(e) = em.error.take() {
                        return Err(e);
                    }
                    match verdict {
                        Verdict::Forward(out) if usize::from(out.0) < ndev => {
                            if hdr_len > 0 {
                                vnet.write(bytes);
                            }
                            // The buffer now belongs to the write until its
                            // completion (BufRing invariant).
                            sub.forward(&mut frames, frame, out.0, len)?;
                            stats.tx(out, len - hdr_len);
                        }
                        Verdict::Forward(_) => {
                            stats.dropped(DropReason::TxError);
                            frames.give_back(frame);
                        }
                        Verdict::Drop(r) => {
                            stats.dropped(r);
                            frames.give_back(frame);
                        }
                        Verdict::Consumed => frames.give_back(frame),
                    }
                }
                Event::Forwarded { result, done } => {
                    if result < 0 {
                        stats.tx_error();
                    }
                    frames.recycle(done);
                }
                Event::Emitted { result, done } => {
                    if result < 0 {
                        stats.tx_error();
                    }
                    emits.recycle(done);
                }
            }
        }
        frames.publish();
        for (d, flag) in rearm.iter_mut().enumerate() {
            if *flag {
                *flag = false;
                sub.arm_read(d as u16)?;
            }
        }
    }
    Ok(())
}
