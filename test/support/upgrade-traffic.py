#!/usr/bin/env python3
"""Long-lived flows for the upgrade tests (test/integration/upgrade.test.ts).

Each mode runs until SIGTERM, then prints one JSON line with what it saw, so
the test can assert on the whole life of the flow across the rolls:

  tcp-sink PORT              accepts one connection, counts bytes until EOF
  tcp-source HOST PORT RATE  sends RATE bytes/s; on SIGTERM closes cleanly
  udp-sink PORT              records every gap in a 1 ms sequence stream (kernel arrival times)
  udp-source HOST PORT       one datagram per millisecond (seq, send time)
  echo-peer PORT             answers each line with the peer address it sees
  masq-client HOST PORT      one line every 100 ms; records each answer

Errors (a reset above all) are reported, never raised: the test decides.
Times are CLOCK_MONOTONIC seconds, the clock Node's process.hrtime uses.
"""
import json
import signal
import socket
import struct
import sys
import time

stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def report(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def ready(**kw):
    report({"ready": True, **kw})


def accept_one(port):
    """Listens on port, says ready, and waits for one connection (or SIGTERM: (None, None))."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(0.2)
    ready()
    while not stop:
        try:
            return srv.accept()
        except socket.timeout:
            pass
    return None, None


def tcp_sink(port):
    conn, _ = accept_one(port)
    total, error = 0, None
    if conn is not None:
        conn.settimeout(0.2)
        idle_since = None
        while True:
            try:
                b = conn.recv(65536)
            except socket.timeout:
                if stop:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 5:
                        error = "no EOF from the source"
                        break
                continue
            except OSError as e:
                error = f"{type(e).__name__}: {e}"
                break
            if not b:
                break
            total += len(b)
        conn.close()
    report({"received": total, "error": error, "connected": conn is not None})


def tcp_source(host, port, rate):
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(5)
    ready(local=s.getsockname()[1])
    chunk = b"x" * 4096
    sent, error, t0 = 0, None, time.monotonic()
    while not stop:
        if sent > (time.monotonic() - t0) * rate:
            time.sleep(0.002)
            continue
        try:
            s.sendall(chunk)
            sent += len(chunk)
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
            break
    if error is None:
        try:
            s.shutdown(socket.SHUT_WR)
            # Wait for the sink's close: every byte was delivered.
            while s.recv(4096):
                pass
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
    report({"sent": sent, "error": error})


# Python 3.11's socket module lacks the name; 35 on every Linux architecture but a few (not x86_64/arm64).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def udp_sink(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.2)
    # The kernel's arrival time (SO_TIMESTAMPNS, CLOCK_REALTIME) rather than when this process got
    # round to recv(): a sink descheduled for 10 ms must not read as a 10 ms hole in the dataplane.
    # Converted to CLOCK_MONOTONIC, the clock of the send times and of the test's roll windows.
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    to_monotonic = time.monotonic() - time.time()
    ready()
    gaps, count, last = [], 0, None
    while not stop:
        try:
            b, anc, _, _ = s.recvmsg(64, socket.CMSG_SPACE(16))
        except socket.timeout:
            continue
        now = time.monotonic()
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack("qq", data[:16])
                now = sec + nsec / 1e9 + to_monotonic
        seq, sent = struct.unpack("!Qd", b[:16])
        count += 1
        if last is not None:
            lseq, lsent, lnow = last
            if seq != lseq + 1 or now - lnow > 0.003:
                gaps.append([lnow, now, max(0, seq - lseq - 1), lsent, sent])
        last = (seq, sent, now)
    report({"count": count, "gaps": gaps, "last": last[2] if last else None})


def udp_source(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    ready()
    seq, nxt, errors = 0, time.monotonic(), 0
    while not stop:
        try:
            s.send(struct.pack("!Qd", seq, time.monotonic()))
        except OSError:
            errors += 1
        seq += 1
        nxt = max(nxt + 0.001, time.monotonic() - 0.001)
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
    report({"sent": seq, "errors": errors})


def echo_peer(port):
    conn, peer = accept_one(port)
    error = None
    if conn is not None:
        # Blocking: a file over a socket is unusable after a timeout ("cannot read from timed
        # out object"), and a loaded machine can pause the client longer than any short one.
        # The client's close ends it.
        conn.settimeout(None)
        f = conn.makefile("rwb")
        while True:
            try:
                line = f.readline()
            except OSError as e:
                error = f"{type(e).__name__}: {e}"
                break
            if not line:
                break
            try:
                f.write(f"{peer[0]}:{peer[1]}\n".encode())
                f.flush()
            except OSError as e:
                error = f"{type(e).__name__}: {e}"
                break
    report({"error": error, "connected": conn is not None})


def masq_client(host, port):
    s = socket.create_connection((host, port), timeout=5)
    # A liveness bound only: a lost mapping shows as a reset or as no answer at all.
    s.settimeout(30)
    ready(local=s.getsockname()[1])
    f = s.makefile("rwb")
    seen, answers, error = {}, 0, None
    while not stop:
        try:
            f.write(b"who\n")
            f.flush()
            peer = f.readline().decode().strip()
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
            break
        if not peer:
            error = "closed by the server"
            break
        answers += 1
        seen[peer] = seen.get(peer, 0) + 1
        time.sleep(0.1)
    try:
        s.close()
    except OSError:
        pass
    report({"answers": answers, "peers": seen, "error": error})


MODES = {
    "tcp-sink": lambda a: tcp_sink(int(a[0])),
    "tcp-source": lambda a: tcp_source(a[0], int(a[1]), int(a[2])),
    "udp-sink": lambda a: udp_sink(int(a[0])),
    "udp-source": lambda a: udp_source(a[0], int(a[1])),
    "echo-peer": lambda a: echo_peer(int(a[0])),
    "masq-client": lambda a: masq_client(a[0], int(a[1])),
}

if __name__ == "__main__":
    MODES[sys.argv[1]](sys.argv[2:])
