//! A worker's io_uring, with every buffer its requests point at.
//!
//! [`WorkerRing`] owns the ring, one provided-buffer ring per device
//! (`IORING_REGISTER_PBUF_RING`: the buffers a multishot read fills, chosen
//! by the kernel) and a small pool for the packets the gateway originates.
//! Requests are built only here, from buffers the `WorkerRing` owns, so no
//! caller can hand the kernel a pointer that dies before its completion;
//! dropping the `WorkerRing` cancels what is in flight and closes the ring
//! before any buffer is freed (fields drop in declaration order).
//!
//! Ownership invariant ("BufRing invariant", cited at each use): a buffer
//! whose id is published in a ring belongs to the kernel until a completion
//! carrying that id arrives; from then on it belongs to the worker, which may
//! read and write it in place and then either give it back or hand it to a
//! write request, after which it belongs to that write until the write's
//! completion. Each buffer's state is tracked ([`Frames`]), and the tokens
//! that move a buffer between states ([`Received`], [`Frame`], [`Written`])
//! have private fields and no `Clone`: only a real completion makes one, and
//! each is used up once. So safe code cannot reach a buffer the kernel owns.
//!
//! Each ring is confined with io_uring restrictions, since the seccomp filter
//! (see [`super::seccomp`]) cannot see operations submitted through a ring: it
//! is created disabled (`IORING_SETUP_R_DISABLED`), its files (this worker's
//! queue of every device) and provided-buffer rings are registered, then
//! `IORING_REGISTER_RESTRICTIONS` allows only [`WORKER_SQE_OPS`] (multishot
//! read, write), on registered files only (`IOSQE_FIXED_FILE` required,
//! `IOSQE_BUFFER_SELECT` allowed), and only the register operations of the
//! teardown ([`WORKER_REGISTER_OPS`]); only then is the ring enabled
//! (`IORING_REGISTER_ENABLE_RINGS`). Anything else, e.g. an `OPENAT`,
//! `SOCKET` or a write to a plain descriptor, completes with `-EACCES`, and a
//! disallowed `io_uring_register` call fails with `EACCES`: a worker ring can
//! only read and write the TUN queues it was given.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::register::Restriction;
use io_uring::types::BufRingEntry;
use io_uring::{cqueue, opcode, squeue, types, CompletionQueue, IoUring};
use io_uring::{SubmissionQueue, Submitter};

const RING_ENTRIES: u32 = 1024;

/// Bytes per read buffer: a 64 KiB GSO frame plus the vnet header, with
/// slack. A smaller buffer silently truncates GSO frames and TCP stalls.
pub const BUF_SIZE: usize = 65_536 + 512;

/// Slots for packets the gateway originates (echo replies, ICMP errors).
const EMIT_SLOTS: usize = 64;
/// An originated packet of up to 2048 bytes and a vnet header (10 or 12).
pub const EMIT_SLOT_SIZE: usize = 2048 + 12;

const KIND_READ: u64 = 1;
const KIND_WRITE_FWD: u64 = 2;
const KIND_WRITE_EMIT: u64 = 3;

fn ud(kind: u64, dev: u16, id: u16) -> u64 {
    (kind << 32) | (u64::from(dev) << 16) | u64::from(id)
}

fn ud_parts(u: u64) -> (u64, u16, u16) {
    (u >> 32, (u >> 16) as u16, u as u16)
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

/// Buffer states (BufRing invariant).
const KERNEL: u8 = 0;
const WORKER: u8 = 1;
const WRITING: u8 = 2;

/// One provided-buffer ring: `entries` buffers of [`BUF_SIZE`] bytes.
struct BufRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    bufs: *mut u8,
    bufs_layout: Layout,
    entries: u16,
    mask: u16,
    /// Our copy of the tail; published with a release store.
    tail: u16,
    /// Per buffer: KERNEL, WORKER or WRITING.
    state: Box<[u8]>,
}

// SAFETY: the ring owns its allocations; it is created and used by one worker
// thread and only moved (never shared) between threads.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates `entries` (a power of two) buffers, registers the ring as
    /// group `bgid` on `submitter`'s io_uring and publishes every buffer.
    fn new(submitter: &Submitter<'_>, bgid: u16, entries: u16) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let ring_layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        let bufs_layout = Layout::from_size_align(usize::from(entries) * BUF_SIZE, 4096)
            .map_err(io::Error::other)?;
        // SAFETY: both layouts have non-zero size.
        let ring = unsafe { alloc_zeroed(ring_layout) } as *mut BufRingEntry;
        // SAFETY: as above.
        let bufs = unsafe { alloc_zeroed(bufs_layout) };
        if ring.is_null() || bufs.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut r = BufRing {
            ring,
            ring_layout,
            bufs,
            bufs_layout,
            entries,
            mask: entries - 1,
            tail: 0,
            state: vec![WORKER; usize::from(entries)].into_boxed_slice(),
        };
        // SAFETY: `ring` is page aligned, zeroed and holds `entries` entries;
        // it stays allocated until Drop, and the owning WorkerRing closes
        // the io_uring before dropping this BufRing.
        unsafe { submitter.register_buf_ring_with_flags(ring as u64, entries, bgid, 0)? };
        for bid in 0..entries {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    /// Hands buffer `bid` (ours) to the kernel, visible after `publish`.
    fn push(&mut self, bid: u16) {
        assert!(bid < self.entries, "buffer id {bid} out of range");
        debug_assert_ne!(self.state[usize::from(bid)], KERNEL);
        self.state[usize::from(bid)] = KERNEL;
        let idx = usize::from(self.tail & self.mask);
        // SAFETY: idx < entries; the entry at the tail is not visible to the
        // kernel until `publish` moves the tail past it. Entry 0's `resv`
        // doubles as the ring tail, which the kernel reads; the setters below
        // write only addr/len/bid, never `resv`, so there is no racing write.
        let e = unsafe { &mut *self.ring.add(idx) };
        e.set_addr(self.buf_ptr(bid) as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    fn publish(&mut self) {
        // SAFETY: `ring` points at the first entry of a registered ring; the
        // tail field overlays entry 0's `resv` and is only ever accessed
        // atomically by us (store) and the kernel (load).
        let tail = unsafe { &*(BufRingEntry::tail(self.ring) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    /// Start of buffer `bid`; panics on an id outside the ring, so the
    /// pointer is always inside the allocation.
    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        assert!(bid < self.entries, "buffer id {bid} out of range");
        // SAFETY: bid < entries, so the offset stays inside the allocation.
        unsafe { self.bufs.add(usize::from(bid) * BUF_SIZE) }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts; the kernel no longer
        // uses them (the owning WorkerRing closed its io_uring first).
        unsafe {
            dealloc(self.ring as *mut u8, self.ring_layout);
            dealloc(self.bufs, self.bufs_layout);
        }
    }
}

/// Fixed pool of buffers for originated packets; same ownership rule as the
/// BufRing invariant: a slot in flight in a write belongs to the kernel.
struct EmitPool {
    mem: Box<[u8]>,
    free: [u16; EMIT_SLOTS],
    nfree: usize,
}

/// A worker's ring, ready to run: file `d` is `fds[d]`, buffer group `d` a
/// ring of `bufs_per_queue` buffers, restrictions in force, ring enabled.
///
/// Fields drop in declaration order: the io_uring is closed before the
/// buffers it may still write into are freed (BufRing invariant).
pub struct WorkerRing {
    ring: IoUring,
    bufs: Vec<BufRing>,
    emit: EmitPool,
}

impl WorkerRing {
    /// Sets the ring up; fails (closed) if the kernel refuses a restriction.
    pub fn new(fds: &[RawFd], bufs_per_queue: u16) -> io::Result<WorkerRing> {
        if fds.len() > usize::from(u16::MAX) {
            return Err(io::Error::other("too many devices for one ring"));
        }
        // Declared before the io_uring, so dropped after it on an early return.
        let mut bufs = Vec::with_capacity(fds.len());
        let ring = build_disabled_ring()?;
        // Registered files: index d is this worker's queue of device d (saves
        // the fd table lookup and refcount on every read and write, and lets
        // the restrictions require registered files).
        ring.submitter().register_files(fds)?;
        for d in 0..fds.len() {
            bufs.push(BufRing::new(&ring.submitter(), d as u16, bufs_per_queue)?);
        }
        ring.submitter()
            .register_restrictions(&mut restrictions())
            .map_err(|e| io::Error::new(e.kind(), format!("io_uring restrictions: {e}")))?;
        ring.submitter().register_enable_rings()?;
        let mut free = [0u16; EMIT_SLOTS];
        for (i, f) in free.iter_mut().enumerate() {
            *f = i as u16;
        }
        let emit = EmitPool {
            mem: vec![0u8; EMIT_SLOTS * EMIT_SLOT_SIZE].into_boxed_slice(),
            free,
            nfree: EMIT_SLOTS,
        };
        Ok(WorkerRing { ring, bufs, emit })
    }

    /// The ring's four parts, used side by side in the event loop.
    pub fn split(&mut self) -> (Submit<'_>, Completions<'_>, Frames<'_>, Emits<'_>) {
        let (submitter, sq, cq) = self.ring.split();
        (
            Submit { submitter, sq },
            Completions { cq },
            Frames {
                rings: &mut self.bufs,
            },
            Emits {
                pool: &mut self.emit,
            },
        )
    }

    /// Submits one arbitrary entry and waits for its completion (tests of
    /// the restrictions only).
    #[cfg(test)]
    fn one(&mut self, e: squeue::Entry) -> i32 {
        // SAFETY: the tests pass entries whose buffers (statics, their
        // locals, or this ring's provided buffers) outlive this call, and we
        // wait for the completion.
        unsafe { self.ring.submission().push(&e.user_data(7)) }.expect("sq full");
        self.ring.submit_and_wait(1).expect("submit");
        let cqe = self.ring.completion().next().expect("a completion");
        assert_eq!(cqe.user_data(), 7);
        cqe.result()
    }
}

impl Drop for WorkerRing {
    fn drop(&mut self) {
        // Cancel the multishot reads and drop the registered files now: ring
        // teardown is asynchronous in the kernel, and while a request or the
        // file table holds a queue, the device outlives our close().
        let _ = self.ring.submitter().register_sync_cancel(
            Some(types::Timespec::from(Duration::from_secs(1))),
            types::CancelBuilder::any(),
        );
        let _ = self.ring.submitter().unregister_files();
        // Then the fields drop in order: the ring, then the buffers.
    }
}

/// The submission side: requests are built here from this ring's buffers.
pub struct Submit<'a> {
    submitter: Submitter<'a>,
    sq: SubmissionQueue<'a>,
}

impl Submit<'_> {
    /// Pushes `e`, submitting first if the submission queue is full.
    ///
    /// Private: every entry pushed refers only to memory the `WorkerRing`
    /// owns and frees after closing the ring (BufRing invariant).
    fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: read entries use registered buffer rings; write
            // entries point at a buffer in state WRITING or an emit slot off
            // the free list, both owned by the WorkerRing and not reused
            // before the completion.
            if unsafe { self.sq.push(e) }.is_ok() {
                return Ok(());
            }
            self.sq.sync();
            self.submitter.submit()?;
            self.sq.sync();
        }
    }

    /// Arms the multishot read of device `dev` into buffer group `dev`.
    pub fn arm_read(&mut self, dev: u16) -> io::Result<()> {
        let e = opcode::ReadMulti::new(types::Fixed(u32::from(dev)), 0, dev)
            .build()
            .user_data(ud(KIND_READ, dev, 0));
        self.push(&e)
    }

    /// Writes the first `len` bytes of `frame` to device `out`; the buffer
    /// belongs to the write until its [`Event::Forwarded`].
    pub fn forward(
        &mut self,
        frames: &mut Frames<'_>,
        frame: Frame,
        out: u16,
        len: usize,
    ) -> io::Result<()> {
        let r = &mut frames.rings[usize::from(frame.dev)];
        assert_eq!(r.state[usize::from(frame.bid)], WORKER);
        assert!(len <= BUF_SIZE);
        r.state[usize::from(frame.bid)] = WRITING;
        let e = opcode::Write::new(
            types::Fixed(u32::from(out)),
            r.buf_ptr(frame.bid),
            len as u32,
        )
        .build()
        .user_data(ud(KIND_WRITE_FWD, frame.dev, frame.bid));
        self.push(&e)
    }

    /// Writes a staged originated packet to device `out`; the slot returns
    /// to the pool at its [`Event::Emitted`].
    pub fn emit(&mut self, emits: &mut Emits<'_>, slot: EmitSlot, out: u16) -> io::Result<()> {
        let off = usize::from(slot.slot) * EMIT_SLOT_SIZE;
        let buf = &emits.pool.mem[off..off + slot.len];
        let e = opcode::Write::new(types::Fixed(u32::from(out)), buf.as_ptr(), buf.len() as u32)
            .build()
            .user_data(ud(KIND_WRITE_EMIT, out, slot.slot));
        self.push(&e)
    }

    /// Submits what is queued and waits for at least one completion or the
    /// timeout; a timeout or an interruption is not an error.
    pub fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.sq.sync();
        let ts = types::Timespec::from(timeout);
        let wait = types::SubmitArgs::new().timespec(&ts);
        match self.submitter.submit_with_args(1, &wait) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// A completion, decoded.
#[derive(Debug)]
pub enum Event {
    /// A read of device `dev`: `result` is the kernel's (bytes or -errno);
    /// `buf` the filled buffer, to be taken with [`Frames::take`]; `!more`
    /// means the multishot read ended and must be armed again.
    Read {
        dev: u16,
        result: i32,
        more: bool,
        buf: Option<Received>,
    },
    /// A forwarded frame's write ended (`result`: bytes or -errno); give
    /// the buffer back with [`Frames::recycle`].
    Forwarded { result: i32, done: Written },
    /// An originated packet's write ended; its slot is free again.
    Emitted { result: i32, done: EmitDone },
}

/// A filled read buffer, as its completion announced it.
#[derive(Debug)]
pub struct Received {
    dev: u16,
    bid: u16,
    len: usize,
}

/// A read buffer the worker owns (BufRing invariant).
#[derive(Debug)]
pub struct Frame {
    dev: u16,
    bid: u16,
    len: usize,
}

impl Frame {
    /// Bytes the kernel read into it.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A forwarded buffer whose write completed.
#[derive(Debug)]
pub struct Written {
    dev: u16,
    bid: u16,
}

/// An emit slot whose write completed.
#[derive(Debug)]
pub struct EmitDone {
    slot: u16,
}

/// The completion side.
pub struct Completions<'a> {
    cq: CompletionQueue<'a>,
}

impl Completions<'_> {
    /// Sees what the kernel completed since the last call.
    pub fn sync(&mut self) {
        self.cq.sync();
    }
    pub fn len(&self) -> usize {
        self.cq.len()
    }
    pub fn is_empty(&self) -> bool {
        self.cq.is_empty()
    }
}

impl Iterator for Completions<'_> {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        loop {
            let cqe = self.cq.next()?;
            let (kind, dev, id) = ud_parts(cqe.user_data());
            let result = cqe.result();
            return Some(match kind {
                KIND_READ => Event::Read {
                    dev,
                    result,
                    more: cqueue::more(cqe.flags()),
                    buf: match cqueue::buffer_select(cqe.flags()) {
                        Some(bid) if result >= 0 => Some(Received {
                            dev,
                            bid,
                            len: result as usize,
                        }),
                        _ => None,
                    },
                },
                KIND_WRITE_FWD => Event::Forwarded {
                    result,
                    done: Written { dev, bid: id },
                },
                KIND_WRITE_EMIT => Event::Emitted {
                    result,
                    done: EmitDone { slot: id },
                },
                _ => continue,
            });
        }
    }
}

/// The read buffers of every device.
pub struct Frames<'a> {
    rings: &'a mut Vec<BufRing>,
}

impl Frames<'_> {
    /// Takes ownership of a filled buffer (BufRing invariant: its
    /// completion arrived). `None` if the completion is inconsistent with
    /// the buffer's state (never seen; the buffer stays where it is).
    pub fn take(&mut self, r: Received) -> Option<Frame> {
        let ring = self.rings.get_mut(usize::from(r.dev))?;
        let st = ring.state.get_mut(usize::from(r.bid))?;
        if *st != KERNEL || r.len > BUF_SIZE {
            return None;
        }
        *st = WORKER;
        Some(Frame {
            dev: r.dev,
            bid: r.bid,
            len: r.len,
        })
    }

    /// The bytes of a buffer the worker owns.
    pub fn bytes(&mut self, f: &Frame) -> &mut [u8] {
        let ring = &mut self.rings[usize::from(f.dev)];
        assert_eq!(ring.state[usize::from(f.bid)], WORKER);
        let p = ring.buf_ptr(f.bid);
        // SAFETY: the buffer is the worker's (state WORKER: its read
        // completed and it is neither published nor in a write), `len <=
        // BUF_SIZE` (checked in `take`), its bytes are initialised (zeroed at
        // allocation or written by the kernel), and the returned slice
        // borrows `self` mutably, so no other slice of it is alive.
        unsafe { std::slice::from_raw_parts_mut(p, f.len) }
    }

    /// Gives a buffer the worker owns back to the kernel (after the next
    /// [`Frames::publish`]).
    pub fn give_back(&mut self, f: Frame) {
        let ring = &mut self.rings[usize::from(f.dev)];
        assert_eq!(ring.state[usize::from(f.bid)], WORKER);
        ring.push(f.bid);
    }

    /// Gives a forwarded buffer back once its write completed.
    pub fn recycle(&mut self, w: Written) {
        let Some(ring) = self.rings.get_mut(usize::from(w.dev)) else {
            return;
        };
        if ring.state.get(usize::from(w.bid)) == Some(&WRITING) {
            ring.push(w.bid);
        }
    }

    /// Makes every buffer given back visible to the kernel.
    pub fn publish(&mut self) {
        for r in self.rings.iter_mut() {
            r.publish();
        }
    }
}

/// The pool for originated packets.
pub struct Emits<'a> {
    pool: &'a mut EmitPool,
}

/// A staged originated packet.
#[derive(Debug)]
pub struct EmitSlot {
    slot: u16,
    len: usize,
}

impl Emits<'_> {
    /// Copies `hdr_len` zero bytes (an empty vnet header) and `packet` into
    /// a free slot. `None` if none is free or it does not fit.
    pub fn stage(&mut self, hdr_len: usize, packet: &[u8]) -> Option<EmitSlot> {
        let n = hdr_len + packet.len();
        if n > EMIT_SLOT_SIZE || self.pool.nfree == 0 {
            return None;
        }
        self.pool.nfree -= 1;
        let slot = self.pool.free[self.pool.nfree];
        let off = usize::from(slot) * EMIT_SLOT_SIZE;
        let buf = &mut self.pool.mem[off..off + n];
        buf[..hdr_len].fill(0);
        buf[hdr_len..].copy_from_slice(packet);
        Some(EmitSlot { slot, len: n })
    }

    /// Returns a slot whose write completed to the pool.
    pub fn recycle(&mut self, d: EmitDone) {
        if usize::from(d.slot) < EMIT_SLOTS && self.pool.nfree < EMIT_SLOTS {
            self.pool.free[self.pool.nfree] = d.slot;
            self.pool.nfree += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, OwnedFd};

    /// A pipe stands in for a TUN queue: file 0 its write end, file 1 its
    /// read end. `None` without io_uring (`crate::skip_because`: said on
    /// stderr, a failure under $CI).
    fn pipe_ring() -> Option<(WorkerRing, OwnedFd, OwnedFd)> {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        match WorkerRing::new(&[w.as_raw_fd(), r.as_raw_fd()], 4) {
            Ok(ring) => Some((ring, r, w)),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                crate::skip_because("uring", &format!("io_uring unavailable here ({e})"));
                None
            }
            Err(e) => panic!("WorkerRing::new: {e}"),
        }
    }

    #[test]
    fn worker_ring_reads_and_writes_registered_files() {
        let Some((mut ring, _r, _w)) = pipe_ring() else {
            return;
        };
        // Through the safe API: stage, write to file 0, read from file 1.
        let (mut sub, mut cq, mut frames, mut emits) = ring.split();
        let slot = emits.stage(0, b"a packet").expect("a free slot");
        sub.emit(&mut emits, slot, 0).unwrap();
        sub.arm_read(1).unwrap();
        let mut got = None;
        for _ in 0..20 {
            sub.submit_and_wait(Duration::from_millis(50)).unwrap();
            cq.sync();
            for ev in &mut cq {
                match ev {
                    Event::Emitted { result, done } => {
                        assert_eq!(result, 8);
                        emits.recycle(done);
                    }
                    Event::Read {
                        dev: 1,
                        buf: Some(b),
                        ..
                    } => {
                        let f = frames.take(b).expect("the buffer is the kernel's");
                        got = Some(frames.bytes(&f).to_vec());
                        frames.give_back(f);
                    }
                    e => panic!("unexpected {e:?}"),
                }
            }
            if got.is_some() {
                break;
            }
        }
        assert_eq!(
            got.as_deref(),
            Some(&b"a packet"[..]),
            "multishot read from group 1"
        );
    }

    #[test]
    fn worker_ring_refuses_other_opcodes_and_plain_descriptors() {
        let Some((mut ring, _r, w)) = pipe_ring() else {
            return;
        };
        let path = c"/etc/passwd";
        let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(libc::O_RDONLY)
            .build();
        assert_eq!(ring.one(open), -libc::EACCES, "OPENAT");
        let sock = opcode::Socket::new(libc::AF_INET, libc::SOCK_DGRAM, 0).build();
        assert_eq!(ring.one(sock), -libc::EACCES, "SOCKET");
        // Even an allowed opcode on a descriptor that is not registered.
        static MSG: [u8; 1] = *b"x";
        let plain = opcode::Write::new(types::Fd(w.as_raw_fd()), MSG.as_ptr(), 1).build();
        assert_eq!(ring.one(plain), -libc::EACCES, "WRITE to a plain fd");
        let fixed = opcode::Write::new(types::Fixed(0), MSG.as_ptr(), 1).build();
        assert_eq!(ring.one(fixed), 1, "WRITE to a registered file");
    }

    #[test]
    fn worker_ring_refuses_other_register_operations() {
        let Some((ring, r, _w)) = pipe_ring() else {
            return;
        };
        let e = ring
            .ring
            .submitter()
            .register_files_update(0, &[r.as_raw_fd()])
            .expect_err("files update must be refused");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        let mut probe = io_uring::Probe::new();
        let e = ring
            .ring
            .submitter()
            .register_probe(&mut probe)
            .expect_err("probe must be refused");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        // The teardown's operations stay allowed.
        ring.ring
            .submitter()
            .register_sync_cancel(
                Some(types::Timespec::from(Duration::from_millis(10))),
                types::CancelBuilder::any(),
            )
            .or_else(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(()),
                _ => Err(e),
            })
            .expect("sync cancel allowed");
        ring.ring
            .submitter()
            .unregister_files()
            .expect("unregister files allowed");
    }

    #[test]
    fn a_buffer_is_taken_once_and_only_from_the_kernel() {
        let Some((mut ring, _r, _w)) = pipe_ring() else {
            return;
        };
        let (_, _, mut frames, _) = ring.split();
        let f = frames
            .take(Received {
                dev: 1,
                bid: 2,
                len: 3,
            })
            .expect("published buffers are the kernel's");
        assert!(
            frames
                .take(Received {
                    dev: 1,
                    bid: 2,
                    len: 3
                })
                .is_none(),
            "a second completion for a buffer the worker holds is refused"
        );
        assert!(frames
            .take(Received {
                dev: 1,
                bid: 9,
                len: 3
            })
            .is_none());
        assert!(frames
            .take(Received {
                dev: 5,
                bid: 0,
                len: 3
            })
            .is_none());
        assert_eq!(frames.bytes(&f).len(), 3);
        frames.give_back(f);
    }
}
