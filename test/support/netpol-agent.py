#!/usr/bin/env python3
"""One process per pod of the NetworkPolicy conformance model (test/support/netpol-e2e.ts):
the pod's server AND its prober, so a 9x9 matrix costs no process start.

  netpol-agent.py NAME PORT...

serves every PORT on TCP, UDP and SCTP, answering with NAME so a prober knows
WHICH pod answered (an answer from the wrong pod is a failure, not a pass);
prints "ready" once every socket listens, then reads probe commands from stdin,
one JSON object per line:

  {"id": 1, "timeoutMs": 1000, "concurrency": 9,
   "targets": [{"ip": "10.244.0.5", "port": 80, "proto": "TCP"}, ...]}

and answers each with one line {"id": 1, "results": [{"ok": true, "server": "x/a"}
| {"ok": false, "error": "timeout"}, ...]} in the targets' order. A probe is
"ok" only when the far end answered with this probe's own token; denied means
no answer within the timeout (a drop), or an error (a refusal) named as such.

SCTP: the kernels here have no SCTP (CONFIG_IP_SCTP off: socket() gives
EPROTONOSUPPORT, and there are no modules), so both ends speak it themselves over
raw IP sockets (protocol 132): the prober sends INIT, the server answers INIT-ACK
with a state cookie naming it, the prober echoes the cookie (COOKIE-ECHO) and the
server acknowledges (COOKIE-ACK): a real association set-up on the wire, both
directions after the first packet, with verification tags and CRC32c checked
by both ends. The kernel delivers protocol 132 to the raw sockets and answers
nothing itself (a raw socket for the protocol exists, so no ICMP unreachable).
"""
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

IPPROTO_SCTP = 132
NAME = sys.argv[1]
PORTS = [int(p) for p in sys.argv[2:]]
out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


# --- CRC32c (Castagnoli), as SCTP's checksum (RFC 9260 appendix A) ---------------------
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def sctp_packet(sport, dport, vtag, chunks):
    body = b"".join(chunks)
    hdr = struct.pack("!HHII", sport, dport, vtag, 0)
    # Linux stores the CRC little-endian (cpu_to_le32 of the result): so do we.
    csum = crc32c(hdr + body)
    return hdr[:8] + struct.pack("<I", csum) + body


def chunk(ctype, value, flags=0):
    length = 4 + len(value)
    pad = (4 - length % 4) % 4
    return struct.pack("!BBH", ctype, flags, length) + value + b"\0" * pad


def parse_sctp(datagram):
    """An IPv4 datagram from a raw socket -> (src, dst, sport, dport, vtag, [(type, value)]) or None."""
    if len(datagram) < 20:
        return None
    ihl = (datagram[0] & 0x0F) * 4
    src = socket.inet_ntoa(datagram[12:16])
    dst = socket.inet_ntoa(datagram[16:20])
    pkt = datagram[ihl:]
    if len(pkt) < 12:
        return None
    sport, dport, vtag = struct.unpack("!HHI", pkt[:8])
    (csum,) = struct.unpack("<I", pkt[8:12])
    if crc32c(pkt[:8] + b"\0\0\0\0" + pkt[12:]) != csum:
        return None  # a bad checksum is a lost packet, as for a real stack
    chunks = []
    off = 12
    while off + 4 <= len(pkt):
        ctype, _flags, length = struct.unpack("!BBH", pkt[off : off + 4])
        if length < 4 or off + length > len(pkt):
            break
        chunks.append((ctype, pkt[off + 4 : off + length]))
        off += length + (4 - length % 4) % 4
    return src, dst, sport, dport, vtag, chunks


INIT, INIT_ACK, COOKIE_ECHO, COOKIE_ACK = 1, 2, 10, 11
STATE_COOKIE = 7
COOKIE_MAGIC = b"bvcni-netpol:"


def init_fields(tag):
    # initiate tag, a_rwnd, outbound streams, inbound streams, initial TSN
    return struct.pack("!IIHHI", tag, 65536, 1, 1, random.getrandbits(32))


# --- servers -----------------------------------------------------------------------------
def tcp_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)

    def handle(conn, peer):
        try:
            conn.settimeout(10)
            buf = b""
            while b"\n" not in buf:
                d = conn.recv(256)
                if not d:
                    return
                buf += d
            token = buf.split(b"\n", 1)[0].decode(errors="replace")
            conn.sendall(("%s %s peer=%s\n" % (NAME, token, peer[0])).encode())
        except OSError:
            pass
        finally:
            conn.close()

    def loop():
        while True:
            conn, peer = s.accept()
            threading.Thread(target=handle, args=(conn, peer), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def udp_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))

    def loop():
        while True:
            data, peer = s.recvfrom(512)
            s.sendto(("%s %s peer=%s" % (NAME, data.decode(errors="replace"), peer[0])).encode(), peer)

    threading.Thread(target=loop, daemon=True).start()


def sctp_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)

    def loop():
        while True:
            p = parse_sctp(s.recv(65535))
            if not p:
                continue
            src, _dst, sport, dport, vtag, chunks = p
            if dport not in PORTS or not chunks:
                continue
            ctype, value = chunks[0]
            if ctype == INIT and vtag == 0 and len(value) >= 16:
                (ctag,) = struct.unpack("!I", value[:4])
                stag = random.getrandbits(32) or 1
                cookie = COOKIE_MAGIC + json.dumps({"name": NAME, "ctag": ctag, "stag": stag}).encode()
                param = struct.pack("!HH", STATE_COOKIE, 4 + len(cookie)) + cookie
                param += b"\0" * ((4 - len(param) % 4) % 4)
                ack = sctp_packet(dport, sport, ctag, [chunk(INIT_ACK, init_fields(stag) + param)])
                s.sendto(ack, (src, 0))
            elif ctype == COOKIE_ECHO and value.startswith(COOKIE_MAGIC):
                try:
                    c = json.loads(value[len(COOKIE_MAGIC) :].rstrip(b"\0"))
                except ValueError:
                    continue
                if c.get("stag") != vtag:
                    continue
                s.sendto(sctp_packet(dport, sport, c["ctag"], [chunk(COOKIE_ACK, b"")]), (src, 0))

    threading.Thread(target=loop, daemon=True).start()


# --- probes ------------------------------------------------------------------------------
# Every probe of this agent's life gets a source port of its own, never reused: a probe
# must be a NEW flow, or a connection-tracking entry an earlier, allowed probe of the same
# pair left behind could let it through after the policy changed.
_port_lock = threading.Lock()
_next_port = random.randrange(28232)


def source_port():
    global _next_port
    with _port_lock:
        _next_port += 1
        return 32768 + _next_port % 28232


def bound(kind):
    """A socket of the kind bound to a fresh source port."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("0.0.0.0", source_port()))
            return s
        except OSError:
            s.close()
    raise OSError("no free source port")


def token():
    return "tok%016x" % random.getrandbits(64)


def answered(reply, tok):
    """The server's name when the reply carries this probe's token."""
    parts = reply.split(" ")
    if len(parts) >= 2 and parts[1] == tok:
        return {"ok": True, "server": parts[0], "peer": parts[2][5:] if len(parts) > 2 else ""}
    return {"ok": False, "error": "foreign reply %r" % reply[:80]}


def probe_tcp(ip, port, timeout):
    tok = token()
    deadline = time.monotonic() + timeout
    s = bound(socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((ip, port))
        s.sendall((tok + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            d = s.recv(256)
            if not d:
                return {"ok": False, "error": "closed"}
            buf += d
        return answered(buf.split(b"\n", 1)[0].decode(errors="replace"), tok)
    except socket.timeout:
        return {"ok": False, "error": "timeout"}
    except ConnectionRefusedError:
        return {"ok": False, "error": "refused"}
    except OSError as e:
        return {"ok": False, "error": e.strerror or str(e)}
    finally:
        s.close()


def probe_udp(ip, port, timeout):
    tok = token()
    deadline = time.monotonic() + timeout
    s = bound(socket.SOCK_DGRAM)
    try:
        s.connect((ip, port))
        # Resent a few times: the first datagram of a flow may wait on ARP.
        interval = max(0.05, timeout / 4)
        while True:
            now = time.monotonic()
            if now >= deadline:
                return {"ok": False, "error": "timeout"}
            s.send(tok.encode())
            r, _, _ = select.select([s], [], [], min(interval, deadline - now))
            if r:
                return answered(s.recv(512).decode(errors="replace"), tok)
    except ConnectionRefusedError:
        return {"ok": False, "error": "refused"}
    except OSError as e:
        return {"ok": False, "error": e.strerror or str(e)}
    finally:
        s.close()


def probe_sctp(ip, port, timeout):
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)
    try:
        sport = source_port()
        tag = random.getrandbits(32) or 1
        init = sctp_packet(sport, port, 0, [chunk(INIT, init_fields(tag))])
        interval = max(0.05, timeout / 4)
        state, cookie, echo, server = "init", b"", b"", ""
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return {"ok": False, "error": "timeout in " + state}
            if now >= next_send:
                s.sendto(init if state == "init" else echo, (ip, 0))
                next_send = now + interval
            r, _, _ = select.select([s], [], [], max(0.001, min(next_send, deadline) - now))
            if not r:
                continue
            p = parse_sctp(s.recv(65535))
            if not p:
                continue
            src, _dst, psport, pdport, vtag, chunks = p
            if src != ip or psport != port or pdport != sport or vtag != tag or not chunks:
                continue
            ctype, value = chunks[0]
            if state == "init" and ctype == INIT_ACK and len(value) >= 16:
                (stag,) = struct.unpack("!I", value[:4])
                off = 16
                while off + 4 <= len(value):
                    ptype, plen = struct.unpack("!HH", value[off : off + 4])
                    if plen < 4:
                        break
                    if ptype == STATE_COOKIE:
                        cookie = value[off + 4 : off + plen]
                    off += plen + (4 - plen % 4) % 4
                if not cookie.startswith(COOKIE_MAGIC):
                    return {"ok": False, "error": "INIT-ACK without our cookie"}
                server = json.loads(cookie[len(COOKIE_MAGIC) :])["name"]
                echo = sctp_packet(sport, port, stag, [chunk(COOKIE_ECHO, cookie)])
                state, next_send = "cookie-echo", 0.0
            elif state == "cookie-echo" and ctype == COOKIE_ACK:
                return {"ok": True, "server": server}
    except OSError as e:
        return {"ok": False, "error": e.strerror or str(e)}
    finally:
        s.close()


PROBES = {"TCP": probe_tcp, "UDP": probe_udp, "SCTP": probe_sctp}


def run_command(cmd):
    timeout = cmd.get("timeoutMs", 1000) / 1000.0
    targets = cmd["targets"]
    with ThreadPoolExecutor(max_workers=max(1, min(cmd.get("concurrency", 9), len(targets) or 1))) as pool:
        results = list(pool.map(lambda t: PROBES[t["proto"]](t["ip"], t["port"], timeout), targets))
    emit({"id": cmd["id"], "results": results})


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    for port in PORTS:
        tcp_server(port)
        udp_server(port)
    sctp_server()
    emit({"ready": NAME})
    for line in sys.stdin:
        if line.strip():
            cmd = json.loads(line)
            # Each command on its own thread: the caller bounds how many run at once.
            threading.Thread(target=run_command, args=(cmd,), daemon=True).start()
    os._exit(0)


if __name__ == "__main__":
    main()
