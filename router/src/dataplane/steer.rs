//! Queue steering for multi-queue TUN devices: an eBPF program attached
//! with `TUNSETSTEERINGEBPF`.
//!
//! Why: without a program the kernel's `tun_automq_select_queue` sends a
//! flow to the queue userspace last *wrote* that flow on (it learns in
//! `tun_get_user`, after delivering the written packet). A forwarder defeats
//! that learning: the server's SYN-ACK is generated while our SYN is being
//! delivered, before the kernel has learnt the SYN's queue, so it takes the
//! hash-spread queue of another worker; from then on the flow's queue flips
//! each time the other direction is written from the other worker, and a
//! packet emitted during a flip overtakes or trails its neighbours. The
//! differential test `tcp-exchanges-in-order` showed server ACKs arriving
//! after the reply and FIN they preceded (reordering, then RSTs), in about
//! one run in three with two workers and in every run with pinned workers.
//!
//! With this program the queue is a pure function of the packet: the XOR of
//! the addresses, and for TCP and UDP of the ports, multiplied by 2^32/phi
//! (Fibonacci hashing) and bits 32-47 of the product taken; the kernel uses
//! it modulo the number of queues. The multiplication matters: Linux gives
//! connect() even ephemeral ports first, so one client's flows differ only
//! above bit 0, and the plain XOR folded to 16 bits sent all four streams of
//! `iperf3 -P 4` to one queue of two (one worker busy, the other idle; test
//! `flows_from_even_ports_spread_over_two_queues`). Every
//! packet of one flow direction goes to one queue, hence one worker, hence
//! out in order; the kernel stops learning from writes (`rxhash` is not
//! computed when a steering program is attached).
//!
//! A hash spreads many flows evenly, a few flows badly: four flows land 2-2
//! on two queues only 3 times in 8, and a 3-1 split cost 9 % of
//! `iperf3 -P 4` here (21.3-21.8 against 23.1-23.9 Gbit/s, ports chosen with
//! `--cport` for either split, four runs each). So the program first looks
//! the folded tuple up in an LRU hash map of the flows it has seen: a new
//! flow takes the next queue of a shared counter (round robin: four flows
//! are 2-2) and keeps it while it is in the map. Measured alternating with
//! the hash-only program, a fresh gateway per run, six runs each: 25.8-26.5
//! Gbit/s (mean 26.2) against 22.6-26.6 (mean 25.0). The map holds
//! [`FLOW_SLOTS`] flows; when it is full the LRU evicts a flow that has been
//! idle while thousands of new flows arrived, and an evicted flow that
//! comes back is a new flow: none of its packets is still queued, so a new
//! queue cannot reorder it. If the map cannot be made (a kernel without LRU
//! maps or atomic fetch-add, or memory limits) the hash alone steers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::bpf::{self, Insn};

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_LRU_HASH: u32 = 9;

/// Flows the balancing map remembers per device (~1 MiB of kernel memory).
pub const FLOW_SLOTS: u32 = 16_384;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcode parts (include/uapi/linux/bpf_common.h, bpf.h).
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const DW: u8 = 0x18;
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
const ATOMIC: u8 = 0xc0;
const ADD: u8 = 0x00;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
/// `BPF_ADD | BPF_FETCH`: the source register receives the old value.
const FETCH_ADD: i32 = 0x01;
/// `src_reg` of a 64-bit immediate load that names a map by its fd.
const PSEUDO_MAP_FD: u8 = 1;
const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_MAP_UPDATE: i32 = 2;
/// `BPF_NOEXIST`: insert only.
const NOEXIST: i32 = 1;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const W: u8 = 0x00;
const B: u8 = 0x10;
const ABS: u8 = 0x20;
const IND: u8 = 0x40;
const K: u8 = 0x00;
const X: u8 = 0x08;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const MUL: u8 = 0x20;
const XOR: u8 = 0xa0;
const MOV: u8 = 0xb0;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const EXIT: u8 = 0x90;

/// Fibonacci hashing's multiplier (2^32 / golden ratio, odd), as the i32
/// immediate the instruction sign-extends to 64 bits.
const GOLDEN: i32 = 0x9E37_79B1_u32 as i32;

/// The program. `LD_ABS`/`LD_IND` read the packet (from the IP header: TUN
/// devices have no link header) in network order into r0; an out-of-range
/// read ends the program with 0 (queue 0). The result is masked to 16 bits
/// so it can never be `TUN_STEERINGEBPF_FALLBACK` (-1). The product's high
/// half depends on every bit of the folded tuple, so its low bits (the
/// kernel takes the result modulo the queue count) do too.
const PROG: [Insn; 20] = [
    insn(ALU64 | MOV | X, 6, 1, 0, 0), // 0: r6 = ctx (LD_ABS needs it there)
    insn(LD | ABS | W, 0, 0, 0, 12),   // 1: r0 = saddr
    insn(ALU64 | MOV | X, 7, 0, 0, 0), // 2: r7 = r0
    insn(LD | ABS | W, 0, 0, 0, 16),   // 3: r0 = daddr
    insn(ALU64 | XOR | X, 7, 0, 0, 0), // 4: r7 ^= r0
    insn(LD | ABS | B, 0, 0, 0, 9),    // 5: r0 = protocol
    insn(JMP | JEQ | K, 0, 0, 2, 6),   // 6: TCP -> 9
    insn(JMP | JEQ | K, 0, 0, 1, 17),  // 7: UDP -> 9
    insn(JMP | JA, 0, 0, 6, 0),        // 8: -> 15
    insn(LD | ABS | B, 0, 0, 0, 0),    // 9: r0 = version/IHL
    insn(ALU64 | AND | K, 0, 0, 0, 15), // 10: r0 &= 15
    insn(ALU64 | LSH | K, 0, 0, 0, 2), // 11: r0 <<= 2 (header bytes)
    insn(ALU64 | MOV | X, 8, 0, 0, 0), // 12: r8 = r0
    insn(LD | IND | W, 0, 8, 0, 0),    // 13: r0 = sport << 16 | dport
    insn(ALU64 | XOR | X, 7, 0, 0, 0), // 14: r7 ^= r0
    insn(ALU64 | MOV | X, 0, 7, 0, 0), // 15: r0 = r7
    insn(ALU64 | MUL | K, 0, 0, 0, GOLDEN), // 16: r0 *= GOLDEN (sign-extended)
    insn(ALU64 | RSH | K, 0, 0, 0, 32), // 17: r0 >>= 32
    insn(ALU64 | AND | K, 0, 0, 0, 0xffff), // 18: r0 &= 0xffff
    insn(JMP | EXIT, 0, 0, 0, 0),      // 19: return r0
];

/// Instructions 0-14 of [`PROG`] fold the tuple into r7; this program
/// then steers by the flow map (see the module documentation). Stack:
/// key at fp-4, counter index at fp-8, new value at fp-12.
fn balanced_prog(flows: i32, counter: i32) -> Vec<Insn> {
    let map = |fd: i32| {
        [
            insn(LD | DW | IMM, 1, PSEUDO_MAP_FD, 0, fd),
            insn(0, 0, 0, 0, 0),
        ]
    };
    let mut p = PROG[..15].to_vec();
    // 15 (TCP/UDP-less packets jump here from 8, as to PROG's 15).
    p.push(insn(STX | MEM | W, 10, 7, -4, 0)); // 15: key = r7
    p.extend(map(flows)); // 16-17: r1 = flows
    p.push(insn(ALU64 | MOV | X, 2, 10, 0, 0)); // 18: r2 = fp
    p.push(insn(ALU64 | ADD | K, 2, 0, 0, -4)); // 19: r2 = &key
    p.push(insn(JMP | CALL, 0, 0, 0, HELPER_MAP_LOOKUP)); // 20
    p.push(insn(JMP | JNE | K, 0, 0, 27, 0)); // 21: seen -> 49
    p.push(insn(ST | MEM | W, 10, 0, -8, 0)); // 22: index 0
    p.extend(map(counter)); // 23-24: r1 = counter
    p.push(insn(ALU64 | MOV | X, 2, 10, 0, 0)); // 25
    p.push(insn(ALU64 | ADD | K, 2, 0, 0, -8)); // 26: r2 = &index
    p.push(insn(JMP | CALL, 0, 0, 0, HELPER_MAP_LOOKUP)); // 27
    p.push(insn(JMP | JEQ | K, 0, 0, 22, 0)); // 28: none -> 51 (hash)
    p.push(insn(ALU64 | MOV | K, 1, 0, 0, 1)); // 29: r1 = 1
    p.push(insn(STX | ATOMIC | W, 0, 1, 0, FETCH_ADD)); // 30: r1 = counter++
    p.push(insn(STX | MEM | W, 10, 1, -12, 0)); // 31: value = r1
    p.extend(map(flows)); // 32-33
    p.push(insn(ALU64 | MOV | X, 2, 10, 0, 0)); // 34
    p.push(insn(ALU64 | ADD | K, 2, 0, 0, -4)); // 35: r2 = &key
    p.push(insn(ALU64 | MOV | X, 3, 10, 0, 0)); // 36
    p.push(insn(ALU64 | ADD | K, 3, 0, 0, -12)); // 37: r3 = &value
    p.push(insn(ALU64 | MOV | K, 4, 0, 0, NOEXIST)); // 38
    p.push(insn(JMP | CALL, 0, 0, 0, HELPER_MAP_UPDATE)); // 39
    p.push(insn(JMP | JNE | K, 0, 0, 2, 0)); // 40: lost a race -> 43
    p.push(insn(LDX | MEM | W, 0, 10, -12, 0)); // 41: r0 = value
    p.push(insn(JMP | JA, 0, 0, 11, 0)); // 42: -> 54 (mask)
    p.extend(map(flows)); // 43-44: another packet inserted the flow: its queue
    p.push(insn(ALU64 | MOV | X, 2, 10, 0, 0)); // 45
    p.push(insn(ALU64 | ADD | K, 2, 0, 0, -4)); // 46
    p.push(insn(JMP | CALL, 0, 0, 0, HELPER_MAP_LOOKUP)); // 47
    p.push(insn(JMP | JEQ | K, 0, 0, 2, 0)); // 48: gone -> 51 (hash)
    p.push(insn(LDX | MEM | W, 0, 0, 0, 0)); // 49: r0 = the flow's queue
    p.push(insn(JMP | JA, 0, 0, 3, 0)); // 50: -> 54 (mask)
    p.extend_from_slice(&PROG[15..]); // 51-55: the hash of r7, masked
    debug_assert_eq!(p.len(), 56);
    p
}

/// The balancing program with its two maps, which it keeps alive (the
/// map fds may be closed once it is loaded).
fn load_balanced() -> io::Result<OwnedFd> {
    let flows = bpf::map_create(BPF_MAP_TYPE_LRU_HASH, 4, 4, FLOW_SLOTS)?;
    let counter = bpf::map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 1)?;
    bpf::load_socket_filter(&balanced_prog(flows.as_raw_fd(), counter.as_raw_fd()))
}

/// Loads the hash-only program (needs CAP_BPF or CAP_SYS_ADMIN).
fn load() -> io::Result<OwnedFd> {
    bpf::load_socket_filter(&PROG)
}

/// Attaches the steering program to the device that `queue` belongs to. The
/// device keeps a reference to the program; the fd may be dropped after.
/// Returns whether the balancing program went in (else the hash-only one).
pub fn attach(queue: &OwnedFd) -> io::Result<bool> {
    let (prog, balanced) = match load_balanced() {
        Ok(p) => (p, true),
        Err(e) => {
            tracing::debug!("no balancing steering program ({e}); hashing only");
            (load()?, false)
        }
    };
    crate::sys::tun::set_steering_ebpf(queue, &prog)?;
    Ok(balanced)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on `ip` (an IPv4 packet) through BPF_PROG_TEST_RUN,
    /// as the kernel runs it on a TUN packet: `LD_ABS` offsets from the IP
    /// header. Returns the queue selector it computes.
    fn run(prog: &OwnedFd, ip: &[u8]) -> u32 {
        // Socket filters are tested on an Ethernet frame whose header the
        // kernel pulls before running them.
        let mut frame = vec![0u8; 14];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(ip);
        bpf::test_run(prog, &frame).expect("BPF_PROG_TEST_RUN")
    }

    fn tcp(saddr: [u8; 4], daddr: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&saddr);
        p[16..20].copy_from_slice(&daddr);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    /// The program, or None where none can be loaded (`crate::skip_because`:
    /// said on stderr, a failure under $CI).
    fn loaded(prog: io::Result<OwnedFd>) -> Option<OwnedFd> {
        prog.map_err(|e| {
            crate::skip_because(
                "steer",
                &format!("cannot load an eBPF program here ({e}); needs root or CAP_BPF"),
            )
        })
        .ok()
    }

    /// Linux gives connect() even ephemeral ports first, so the flows of
    /// one client differ only above bit 0 of the source port: a selector
    /// that folds the tuple by XOR sent every such flow to one queue of two
    /// (four iperf3 streams on one worker). The multiplicative hash spreads
    /// them, and keeps one flow direction on one queue.
    #[test]
    fn flows_from_even_ports_spread_over_two_queues() {
        let Some(prog) = loaded(load()) else { return };
        let (c, g) = ([10, 1, 0, 2], [10, 1, 0, 1]);
        let mut per_queue = [0u32; 2];
        for i in 0..64u16 {
            let q = run(&prog, &tcp(c, g, 40_000 + 2 * i, 5201));
            assert_eq!(
                q,
                run(&prog, &tcp(c, g, 40_000 + 2 * i, 5201)),
                "one flow, one queue"
            );
            assert!(q <= 0xffff, "never TUN_STEERINGEBPF_FALLBACK");
            per_queue[(q % 2) as usize] += 1;
        }
        assert!(
            per_queue.iter().all(|&n| (16..=48).contains(&n)),
            "{per_queue:?}"
        );
        // Four queues: each gets some of them.
        let mut per4 = [0u32; 4];
        for i in 0..64u16 {
            per4[(run(&prog, &tcp(c, g, 40_000 + 2 * i, 5201)) % 4) as usize] += 1;
        }
        assert!(per4.iter().all(|&n| n >= 6), "{per4:?}");
        // A TCP header cut off before the ports: the read fails, queue 0.
        assert_eq!(run(&prog, &tcp(c, g, 40_000, 5201)[..20]), 0);
    }

    /// The balancing program gives new flows the queues in turn (four
    /// `iperf3 -P 4` streams 2-2 on two queues, where the hash often gives
    /// 3-1), keeps each flow on its queue, and keeps doing so when more flows
    /// than the map holds have come: the LRU makes room (a plain hash map
    /// would refuse the insert, and every later flow would fall back to the
    /// hash).
    #[test]
    fn the_balancing_program_deals_new_flows_round_robin_and_keeps_them() {
        let Some(prog) = loaded(load_balanced()) else {
            return;
        };
        let (c, g) = ([10, 1, 0, 2], [10, 1, 0, 1]);
        for i in 0..64u16 {
            let flow = tcp(c, g, 40_000 + 2 * i, 5201);
            assert_eq!(run(&prog, &flow), u32::from(i), "new flow {i}");
        }
        for i in (0..64u16).rev() {
            let flow = tcp(c, g, 40_000 + 2 * i, 5201);
            assert_eq!(run(&prog, &flow), u32::from(i), "known flow {i}");
        }
        // Short packets: the tuple cannot be read, queue 0, nothing counted.
        assert_eq!(run(&prog, &tcp(c, g, 40_000, 5201)[..20]), 0);
        // Twice as many flows as the map holds: each new one still counts on.
        let n = 2 * FLOW_SLOTS;
        for i in 64..n {
            let flow = tcp(c, g, 1024 + (i % 60_000) as u16, 80 + (i / 60_000) as u16);
            assert_eq!(run(&prog, &flow), i, "new flow {i} with the map full");
        }
        // The most recent flows are still in the map.
        let last = tcp(
            c,
            g,
            1024 + ((n - 1) % 60_000) as u16,
            80 + ((n - 1) / 60_000) as u16,
        );
        assert_eq!(run(&prog, &last), n - 1);
    }
}
