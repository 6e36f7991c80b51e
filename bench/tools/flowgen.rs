//! flowgen: a raw-socket packet generator for the scale benchmarks
//! (`bench/newflows.sh`, `bench/conntrack-soak.sh`). A benchmark tool, not a test.
//!
//! ```text
//! flowgen syn  SRC_NET DST DPORT SECS [FIRST [MAX]]  TCP SYNs, every one a new flow
//!                                              (at most MAX of them, default unlimited):
//!                                              source = SRC_NET.(2..=254) x ports 1024..65535
//! flowgen udp  SRC DST NFLOWS [FIRST]           NFLOWS distinct UDP flows, one packet each:
//!                                              flow i = sport 1024 + i % 64000, dport 1 + i / 64000
//! flowgen udprepeat SRC DST NFLOWS SECS         the first NFLOWS of those flows again and again
//! ```
//! SRC_NET is the first three octets (`10.1.0`). Packets are built once and
//! patched per send (addresses, ports, checksums), sent with `sendmmsg` in
//! batches of 64 on an `IPPROTO_RAW` socket (the kernel fills the IP checksum).
//! Prints `sent=N secs=S pps=R` on stdout. Run it inside the client namespace.
use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    sendmmsg, setsockopt, socket, sockopt, AddressFamily, MsgFlags, MultiHeaders, SockFlag,
    SockProtocol, SockType, SockaddrIn,
};
use std::time::{Duration, Instant};

const BATCH: usize = 64;

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut i = 0;
    while i + 1 < data.len() {
        sum += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
        i += 2;
    }
    if i < data.len() {
        sum += u32::from(data[i]) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Fills the L4 checksum of an IPv4 packet with a 20-byte header.
fn l4_checksum(pkt: &mut [u8], proto: u8, csum_off: usize) {
    pkt[20 + csum_off] = 0;
    pkt[20 + csum_off + 1] = 0;
    let l4len = pkt.len() - 20;
    let mut sum = csum_add(0, &pkt[12..20]);
    sum += u32::from(proto) + l4len as u32;
    sum = csum_add(sum, &pkt[20..]);
    let mut c = csum_fold(sum);
    if c == 0 && proto == 17 {
        c = 0xffff;
    }
    pkt[20 + csum_off..20 + csum_off + 2].copy_from_slice(&c.to_be_bytes());
}

fn ipv4_header(pkt: &mut [u8], proto: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    let len = pkt.len() as u16;
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&len.to_be_bytes());
    pkt[6] = 0x40; // DF
    pkt[8] = 64;
    pkt[9] = proto;
    pkt[12..16].copy_from_slice(&src.octets());
    pkt[16..20].copy_from_slice(&dst.octets());
}

/// A raw IPv4 socket sending prepared packets in `sendmmsg` batches
/// (through nix's safe wrappers: this tool, like the gateway, writes no
/// `unsafe`).
struct Sender {
    fd: OwnedFd,
    dst: SockaddrIn,
    headers: MultiHeaders<SockaddrIn>,
    sent: u64,
    errors: u64,
}

impl Sender {
    fn new(dst: Ipv4Addr) -> Sender {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::Raw,
        )
        .unwrap_or_else(|e| {
            eprintln!("flowgen: raw socket: {e}");
            std::process::exit(1);
        });
        let _ = setsockopt(&fd, sockopt::SndBuf, &(4 << 20));
        Sender {
            fd,
            dst: SockaddrIn::from(SocketAddrV4::new(dst, 0)),
            headers: MultiHeaders::preallocate(BATCH, None),
            sent: 0,
            errors: 0,
        }
    }

    /// Sends every packet of `pkts` (retrying the rest of a batch after a
    /// partial send; an error, e.g. ENOBUFS, counts and drops the batch).
    fn send(&mut self, pkts: &mut [Vec<u8>]) {
        for chunk in pkts.chunks(BATCH) {
            let mut off = 0;
            while off < chunk.len() {
                let iovs: Vec<[IoSlice<'_>; 1]> =
                    chunk[off..].iter().map(|p| [IoSlice::new(p)]).collect();
                let addrs = vec![Some(self.dst); iovs.len()];
                let r = sendmmsg(
                    self.fd.as_raw_fd(),
                    &mut self.headers,
                    &iovs,
                    &addrs,
                    [],
                    MsgFlags::empty(),
                );
                match r.map(|res| res.count()) {
                    Ok(n) if n > 0 => {
                        off += n;
                        self.sent += n as u64;
                    }
                    _ => {
                        self.errors += 1;
                        return;
                    }
                }
            }
        }
    }
}

fn parse<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("flowgen: missing or bad {what} (argument {i}); see the header of bench/tools/flowgen.rs");
            std::process::exit(2)
        })
}

fn udp_flow(pkt: &mut [u8], i: u64) {
    let sport = 1024 + (i % 64000) as u16;
    let dport = 1 + (i / 64000) as u16;
    pkt[20..22].copy_from_slice(&sport.to_be_bytes());
    pkt[22..24].copy_from_slice(&dport.to_be_bytes());
    l4_checksum(pkt, 17, 6);
}

fn udp_template(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0u8; 20 + 8 + 18];
    ipv4_header(&mut p, 17, src, dst);
    p[24..26].copy_from_slice(&26u16.to_be_bytes());
    p
}

fn report(sent: u64, errors: u64, t: Duration) {
    let s = t.as_secs_f64();
    println!(
        "sent={sent} errors={errors} secs={s:.3} pps={:.0}",
        sent as f64 / s
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("syn") => {
            let net: String = parse(&args, 2, "SRC_NET");
            let dst: Ipv4Addr = parse(&args, 3, "DST");
            let dport: u16 = parse(&args, 4, "DPORT");
            let secs: f64 = parse(&args, 5, "SECS");
            let first: u64 = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(0);
            let max: u64 = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
            let base: Vec<u8> = net.split('.').filter_map(|x| x.parse().ok()).collect();
            if base.len() != 3 {
                eprintln!("flowgen: SRC_NET must be three octets, like 10.1.0");
                std::process::exit(2);
            }
            let mut tmpl = vec![0u8; 40];
            ipv4_header(&mut tmpl, 6, Ipv4Addr::UNSPECIFIED, dst);
            tmpl[22..24].copy_from_slice(&dport.to_be_bytes());
            tmpl[24..28].copy_from_slice(&0x1000_0000u32.to_be_bytes());
            tmpl[32] = 5 << 4;
            tmpl[33] = 0x02; // SYN
            tmpl[34..36].copy_from_slice(&64240u16.to_be_bytes());
            let mut pkts = vec![tmpl; BATCH];
            let mut snd = Sender::new(dst);
            let start = Instant::now();
            let end = Duration::from_secs_f64(secs);
            let mut i = first;
            const PORTS: u64 = 65536 - 1024;
            while start.elapsed() < end && i - first < max {
                for p in pkts.iter_mut() {
                    let host = 2 + ((i / PORTS) % 253) as u8;
                    let sport = 1024 + (i % PORTS) as u16;
                    p[12..16].copy_from_slice(&[base[0], base[1], base[2], host]);
                    p[20..22].copy_from_slice(&sport.to_be_bytes());
                    p[24..28].copy_from_slice(&(i as u32).to_be_bytes());
                    l4_checksum(p, 6, 16);
                    i += 1;
                }
                snd.send(&mut pkts);
            }
            report(snd.sent, snd.errors, start.elapsed());
            eprintln!("next={i}");
        }
        Some("udp") => {
            let src: Ipv4Addr = parse(&args, 2, "SRC");
            let dst: Ipv4Addr = parse(&args, 3, "DST");
            let n: u64 = parse(&args, 4, "NFLOWS");
            let first: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(0);
            let mut pkts = vec![udp_template(src, dst); BATCH];
            let mut snd = Sender::new(dst);
            let start = Instant::now();
            let mut i = first;
            while i < first + n {
                let k = ((first + n - i) as usize).min(BATCH);
                for p in pkts[..k].iter_mut() {
                    udp_flow(p, i);
                    i += 1;
                }
                snd.send(&mut pkts[..k]);
            }
            report(snd.sent, snd.errors, start.elapsed());
        }
        Some("udprepeat") => {
            let src: Ipv4Addr = parse(&args, 2, "SRC");
            let dst: Ipv4Addr = parse(&args, 3, "DST");
            let n: u64 = parse(&args, 4, "NFLOWS");
            let secs: f64 = parse(&args, 5, "SECS");
            // One prebuilt packet per flow, sent round-robin.
            let mut all: Vec<Vec<u8>> = (0..n.max(1))
                .map(|i| {
                    let mut p = udp_template(src, dst);
                    udp_flow(&mut p, i);
                    p
                })
                .collect();
            let mut snd = Sender::new(dst);
            let start = Instant::now();
            let end = Duration::from_secs_f64(secs);
            let mut off = 0;
            while start.elapsed() < end {
                let k = (all.len() - off).min(BATCH);
                snd.send(&mut all[off..off + k]);
                off = (off + k) % all.len();
            }
            report(snd.sent, snd.errors, start.elapsed());
        }
        _ => {
            eprintln!("usage: flowgen syn SRC_NET DST DPORT SECS [FIRST] | udp SRC DST NFLOWS [FIRST] | udprepeat SRC DST NFLOWS SECS");
            std::process::exit(2);
        }
    }
}
