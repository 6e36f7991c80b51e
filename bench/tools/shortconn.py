#!/usr/bin/env python3
"""Many short TCP connections, for the soak test.

  shortconn.py server PORT                      echo server (one thread per connection)
  shortconn.py client ADDR PORT SECONDS RATE    prints: ok=N broken=N refused=N

Each client connection connects, sends 64 bytes, reads them back and closes.
`broken` counts connections that failed after connecting (reset, timeout,
short read): an established connection the gateway broke. `refused` counts
connection attempts that failed (reported apart; not a broken connection).
"""
import socket
import sys
import threading
import time


def recv_upto(c, n):
    """Up to `n` bytes from `c`: fewer only if the peer closes first."""
    buf = b""
    while len(buf) < n:
        b = c.recv(n - len(buf))
        if not b:
            break
        buf += b
    return buf


def serve(port):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", port))
    l.listen(128)

    def one(c):
        try:
            c.settimeout(10)
            c.sendall(recv_upto(c, 64))
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = l.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def client(addr, port, secs, rate):
    ok = broken = refused = 0
    interval = 1.0 / rate
    end = time.monotonic() + secs
    nxt = time.monotonic()
    msg = b"s" * 64
    while time.monotonic() < end:
        try:
            c = socket.create_connection((addr, port), timeout=3)
        except OSError:
            refused += 1
        else:
            try:
                c.settimeout(3)
                c.sendall(msg)
                if recv_upto(c, 64) == msg:
                    ok += 1
                else:
                    broken += 1
            except OSError:
                broken += 1
            finally:
                c.close()
        nxt += interval
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
    print(f"ok={ok} broken={broken} refused={refused}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
