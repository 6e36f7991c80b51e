#!/usr/bin/env python3
"""UDP probe stream for measuring forwarding gaps.

  udpgap.py recv PORT SECONDS          prints: received=N lost=N max_gap_ms=X
  udpgap.py send ADDR PORT RATE SECONDS

The receiver records arrival times of sequence-numbered datagrams and reports
the longest interval between two consecutive arrivals (a forwarding stall
shows as a gap) and how many sequence numbers never arrived.
"""
import socket
import struct
import sys
import time


def recv(port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.5)
    end = time.monotonic() + secs
    last = None
    max_gap = 0.0
    seen = set()
    hi = -1
    while time.monotonic() < end:
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        now = time.monotonic()
        (seq,) = struct.unpack("!Q", data[:8])
        if seq == 2**64 - 1:
            break
        seen.add(seq)
        hi = max(hi, seq)
        if last is not None:
            max_gap = max(max_gap, now - last)
        last = now
    lost = (hi + 1) - len(seen) if hi >= 0 else 0
    print(f"received={len(seen)} lost={lost} max_gap_ms={max_gap * 1000:.1f}", flush=True)


def send(addr, port, rate, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    interval = 1.0 / rate
    start = time.monotonic()
    n = int(rate * secs)
    pad = b"\0" * 56
    for seq in range(n):
        target = start + seq * interval
        while True:
            d = target - time.monotonic()
            if d <= 0:
                break
            if d > 0.002:
                time.sleep(d - 0.001)
        s.sendto(struct.pack("!Q", seq) + pad, (addr, port))
    time.sleep(0.3)
    for _ in range(3):
        s.sendto(struct.pack("!Q", 2**64 - 1), (addr, port))


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]), float(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
