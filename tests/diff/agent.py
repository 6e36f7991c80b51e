#!/usr/bin/env python3
"""Traffic agent of the differential harness (tests/differential.rs).

Runs inside one end namespace (`ip netns exec NS python3 agent.py ...`):

  agent.py capture IFACE          print one line per IPv4 packet ARRIVING on IFACE
  agent.py listen tcp|udp PORT [reply=TEXT]
                                  serve until killed; print one line per peer
  agent.py step VERB ARGS...      run one traffic step; print its outcome

Only the standard library: raw AF_PACKET capture (SOCK_DGRAM, so the veth's
Ethernet header and the TUN's missing one look the same) and raw IPv4 sends
with every header field under the case's control (IPPROTO_RAW = IP_HDRINCL).

Output lines are space-separated key=value tokens; the Rust side masks the
fields that legitimately differ between two runs (see tests/diff-cases/README.md).
"""
import errno
import os
import select
import signal
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- parsing

TCP_FLAGS = "FSRPAUEC"


def tcp_flags(b):
    s = "".join(TCP_FLAGS[i] for i in range(8) if b & (1 << i))
    return s or "none"


def l4_summary(proto, l4, inner=False):
    """Tokens of a transport header (the first 8 bytes only when inner)."""
    p = "i" if inner else ""
    if proto == 6 and len(l4) >= 4:
        sport, dport = struct.unpack("!HH", l4[:4])
        t = [f"{p}tcp", f"{p}sport={sport}", f"{p}dport={dport}"]
        if len(l4) >= 8:
            t.append(f"{p}seq={struct.unpack('!I', l4[4:8])[0]}")
        if not inner and len(l4) >= 20:
            ack, off, fl = struct.unpack("!IBB", l4[8:14])
            t.append(f"ack={ack}")
            t.append(f"flags={tcp_flags(fl)}")
            hl = (off >> 4) * 4
            data = l4[hl:]
            if data:
                t.append(f"data={data[:32].hex()}")
        return t
    if proto == 17 and len(l4) >= 4:
        sport, dport = struct.unpack("!HH", l4[:4])
        t = [f"{p}udp", f"{p}sport={sport}", f"{p}dport={dport}"]
        if not inner and len(l4) > 8:
            t.append(f"data={l4[8:40].hex()}")
        return t
    if proto == 1 and len(l4) >= 4:
        typ, code = l4[0], l4[1]
        t = [f"{p}icmp", f"{p}type={typ}", f"{p}code={code}"]
        if typ in (0, 8, 13, 14) and len(l4) >= 8:
            ident, seq = struct.unpack("!HH", l4[4:8])
            t += [f"{p}icmpid={ident}", f"{p}icmpseq={seq}"]
        elif not inner and typ in (3, 4, 5, 11, 12) and len(l4) >= 8 + 20:
            if typ == 3 and code == 4:
                t.append(f"mtu={struct.unpack('!H', l4[6:8])[0]}")
            t.append("|")
            t += ip_summary(l4[8:], inner=True)
        return t
    return [f"{p}proto={proto}"]


def ip_summary(pkt, inner=False):
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return ["not-ipv4", f"len={len(pkt)}"]
    ihl = (pkt[0] & 15) * 4
    tos = pkt[1]
    tot, ident, frag, ttl, proto = struct.unpack("!HHHBB", pkt[2:10])
    src = socket.inet_ntoa(pkt[12:16])
    dst = socket.inet_ntoa(pkt[16:20])
    p = "i" if inner else ""
    t = [f"{p}src={src}", f"{p}dst={dst}", f"{p}ttl={ttl}", f"{p}id={ident}"]
    if tos:
        t.append(f"{p}tos={tos:#x}")
    if not inner:
        t.append(f"len={tot}")
    if frag & 0x4000:
        t.append(f"{p}DF")
    if frag & 0x2000:
        t.append(f"{p}MF")
    off = (frag & 0x1FFF) * 8
    if off:
        t.append(f"{p}fragoff={off}")
        t.append(f"{p}proto={proto}")
        return t
    t += l4_summary(proto, pkt[ihl:], inner)
    return t


def capture(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    s.bind((iface, ETH_P_IP))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out("READY")
    while True:
        data, addr = s.recvfrom(70000)
        if addr[2] == PACKET_OUTGOING:
            continue
        out(" ".join(ip_summary(data)))


# ---------------------------------------------------------------- crafting


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def num(v):
    return int(v, 0)


def payload_of(kv):
    if "hex" in kv:
        return bytes.fromhex(kv["hex"])
    p = kv.get("payload", "")
    # "400x" = 400 bytes of 'x'
    if p[:-1].isdigit() and len(p) > 1:
        return p[-1].encode() * int(p[:-1])
    return p.encode()


TCP_BITS = {c: 1 << i for i, c in enumerate(TCP_FLAGS)}


def craft(proto, kv):
    src = kv.get("src")
    dst = kv["dst"]
    if src is None:
        # the address the kernel would pick towards dst
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect((dst, 9))
        src = u.getsockname()[0]
        u.close()
    data = payload_of(kv)
    s4, d4 = socket.inet_aton(src), socket.inet_aton(dst)
    if proto == "tcp":
        pnum = 6
        fl = sum(TCP_BITS[c] for c in kv.get("flags", "S"))
        # tcpopts=HEX: option bytes after the fixed header (padded with
        # EOL to a multiple of 4), e.g. 01030307 = NOP, window scale 7
        opts = bytes.fromhex(kv.get("tcpopts", ""))
        opts += b"\0" * (-len(opts) % 4)
        hdr = struct.pack(
            "!HHIIBBHHH",
            num(kv.get("sport", "40000")),
            num(kv["dport"]),
            num(kv.get("seq", "1000")),
            num(kv.get("ack", "0")),
            (5 + len(opts) // 4) << 4,
            fl,
            num(kv.get("win", "64240")),
            0,
            0,
        )
        l4 = hdr + opts + data
        c = csum(s4 + d4 + struct.pack("!BBH", 0, 6, len(l4)) + l4)
        l4 = l4[:16] + struct.pack("!H", c) + l4[18:]
    elif proto == "udp":
        pnum = 17
        l4 = struct.pack("!HHHH", num(kv.get("sport", "40000")), num(kv["dport"]), 8 + len(data), 0) + data
        c = csum(s4 + d4 + struct.pack("!BBH", 0, 17, len(l4)) + l4) or 0xFFFF
        l4 = l4[:6] + struct.pack("!H", c) + l4[8:]
    elif proto == "icmp":
        pnum = 1
        l4 = struct.pack(
            "!BBHHH",
            num(kv.get("type", "8")),
            num(kv.get("code", "0")),
            0,
            num(kv.get("icmpid", "0x4242")),
            num(kv.get("icmpseq", "1")),
        ) + data
        l4 = l4[:2] + struct.pack("!H", csum(l4)) + l4[4:]
    else:
        pnum = num(kv.get("proto", "253"))
        l4 = data
    return src, dst, pnum, l4


def ip_packet(kv, pnum, s4, d4, body, off=0, mf=False):
    flags = (0x4000 if kv.get("df", "0") == "1" else 0) | (0x2000 if mf else 0) | (off // 8)
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        num(kv.get("tos", "0")),
        20 + len(body),
        num(kv.get("id", "0x1111")),
        flags,
        num(kv.get("ttl", "64")),
        pnum,
        0,
        s4,
        d4,
    )
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + body


def send(proto, kv):
    src, dst, pnum, l4 = craft(proto, kv)
    s4, d4 = socket.inet_aton(src), socket.inet_aton(dst)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    count = num(kv.get("count", "1"))
    base_sport = num(kv.get("sport", "40000"))
    pkts = []
    for i in range(count):
        if count > 1 and proto in ("tcp", "udp"):
            kv2 = dict(kv, sport=str(base_sport + i))
            _, _, _, l4 = craft(proto, dict(kv2, src=src))
        frag = num(kv.get("frag", "0"))
        if frag:
            # fragments of `frag` bytes (multiple of 8), in order, or in
            # reverse with fragorder=reverse
            parts = [(o, l4[o : o + frag]) for o in range(0, len(l4), frag)]
            fr = [ip_packet(kv, pnum, s4, d4, b, o, o + frag < len(l4)) for o, b in parts]
            if kv.get("fragorder") == "reverse":
                fr.reverse()
            pkts += fr
        else:
            pkts.append(ip_packet(kv, pnum, s4, d4, l4))
    # repeat=N: the same packets N times, the IP ID counting up, so the
    # receiver's capture shows whether their order survived
    repeat = num(kv.get("repeat", "1"))
    if repeat > 1:
        base_id = num(kv.get("id", "0x1111"))
        many = []
        for r in range(repeat):
            for p in pkts:
                p = bytearray(p)
                p[4:6] = struct.pack("!H", (base_id + r) & 0xFFFF)
                p[10:12] = b"\0\0"
                p[10:12] = struct.pack("!H", csum(bytes(p[:20])))
                many.append(bytes(p))
        pkts = many
    gap = float(kv.get("gap", "0.002"))
    for p in pkts:
        s.sendto(p, (dst, 0))
        if gap:
            time.sleep(gap)
    return [f"sent={len(pkts)}"]


# ---------------------------------------------------------------- real sockets


def hostport(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def client_socket(kind, kv, timeout):
    """A socket of `kind` from source port kv["sport"] (if given), with
    kv["timeout"] (default `timeout`)."""
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if "sport" in kv:
        s.bind(("0.0.0.0", num(kv["sport"])))
    s.settimeout(float(kv.get("timeout", timeout)))
    return s


def tcp_connect(target, kv):
    s = client_socket(socket.SOCK_STREAM, kv, "0.6")
    try:
        s.connect(hostport(target))
    except socket.timeout:
        return ["result=timeout"]
    except OSError as e:
        return [f"result={err_name(e)}"]
    t = ["result=connected"]
    if "send" in kv:
        s.sendall(kv["send"].encode())
        try:
            t.append(f"recv={s.recv(200).decode(errors='replace')!r}".replace(" ", "_"))
            # Close only after the server's FIN: a fixed order of FINs keeps
            # the number of segments (and so the rule counters) the same
            # from run to run.
            while s.recv(200):
                pass
        except socket.timeout:
            t.append("recv=timeout")
        except OSError as e:
            t.append(f"recv={err_name(e)}")
    s.close()
    return t


def udp_exchange(target, kv):
    s = client_socket(socket.SOCK_DGRAM, kv, "0.5")
    s.connect(hostport(target))
    try:
        s.send(kv.get("send", "ping").encode())
        data = s.recv(2000)
        return [f"result=reply recv={data.decode(errors='replace')!r}".replace(" ", "_")]
    except socket.timeout:
        return ["result=timeout"]
    except OSError as e:
        return [f"result={err_name(e)}"]


def listen(proto, port, kv):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    reply = kv.get("reply")
    if proto == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        out("READY")
        while True:
            c, peer = s.accept()
            c.settimeout(0.5)
            data = b""
            try:
                data = c.recv(200)
            except OSError:
                pass
            d = repr(data.decode(errors="replace")).replace(" ", "_")
            me = c.getsockname()
            out(f"accepted from={peer[0]} sport={peer[1]} to={me[0]}:{me[1]} data={d}")
            if data:
                c.sendall((reply or data.decode(errors="replace")).encode())
            # FIN first, then wait for the client's (see tcp_connect).
            try:
                c.shutdown(socket.SHUT_WR)
                c.settimeout(1.0)
                while c.recv(200):
                    pass
            except OSError:
                pass
            c.close()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        out("READY")
        while True:
            data, peer = s.recvfrom(2000)
            d = repr(data.decode(errors="replace")).replace(" ", "_")
            out(f"datagram from={peer[0]} sport={peer[1]} data={d}")
            s.sendto((reply or data.decode(errors="replace")).encode(), peer)


def parse_kv(args):
    kv, pos = {}, []
    for a in args:
        if "=" in a:
            k, v = a.split("=", 1)
            kv[k] = v
        else:
            pos.append(a)
    return pos, kv


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "capture":
        capture(args[0])
    elif cmd == "listen":
        pos, kv = parse_kv(args[1:])
        listen(args[0], int(pos[0]), kv)
    elif cmd == "step":
        verb = args[0]
        pos, kv = parse_kv(args[1:])
        if verb == "send":
            t = send(pos[0], kv)
        elif verb == "tcp":
            t = tcp_connect(pos[0], kv)
        elif verb == "udp":
            t = udp_exchange(pos[0], kv)
        else:
            print(f"unknown step verb {verb!r}", file=sys.stderr)
            sys.exit(2)
        out(" ".join(t))
    else:
        print(f"unknown command {cmd!r}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
