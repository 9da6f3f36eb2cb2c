#!/usr/bin/env python3
"""An HTTP/2 client for ringgate's integration tests (tests/integration/http2.rs): well-behaved
requests through python's `h2` package, and the hostile shapes curl and nghttp never send
(rapid reset, CONTINUATION / SETTINGS / PING floods, zero windows, invalid headers, SNI and
:authority naming different servers).

    h2-client.py [--addr 127.0.0.1:PORT] [--sni NAME | --plain] [--ca F] [--cert F --key F]
                 ACTION [options]

Prints one JSON object on stdout (what came back, with times in seconds from the start).
Exit 0 when the exchange ran (whatever the server answered), 1 on a usage or connection
error, 77 when python's `h2` package is missing (pip install h2), so nothing was tried.
"""
import argparse
import hashlib
import json
import socket
import select
import ssl
import struct
import sys
import time

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings
    import hpack
except ImportError:
    print("python's h2 package is not installed (pip install h2)", file=sys.stderr)
    sys.exit(77)

START = time.monotonic()

# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def now():
    return round(time.monotonic() - START, 4)


def fnv64(h, data):
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


FNV_INIT = 0xCBF29CE484222325


def connect(a):
    host, port = a.addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.plain:
        return sock, None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if a.ca:
        ctx.load_verify_locations(a.ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(a.alpn.split(","))
    tls = ctx.wrap_socket(sock, server_hostname=a.sni)
    return tls, tls.selected_alpn_protocol()


def frame(kind, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


class Raw:
    """A connection for the hostile actions, whose frames the h2 state machine would refuse
    to send: one thread, one select loop, writing what is queued while reading (an SSL
    socket must never be read and written from two threads at once)."""

    def __init__(self, sock, ack=False):
        self.sock, self.ack = sock, ack
        sock.setblocking(False)
        self.inbuf, self.out, self.eof = b"", b"", False
        self.sent, self.send_error = 0, None
        self.seen = {"goaway": [], "rst": [], "settings": 0, "settings_acks": 0, "pings": 0,
                     "ping_acks": 0, "headers": [], "closed": False, "closed_t": None}

    def step(self, timeout, read=True):
        """Waits up to `timeout` for the socket, then reads and writes what it can."""
        want_write = bool(self.out) and self.send_error is None
        pending = read and isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if pending:
            r, w = [self.sock], []
        else:
            r, w, _ = select.select([self.sock] if read else [],
                                    [self.sock] if want_write else [], [], max(0, timeout))
        if r:
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                data = None
            except (OSError, ssl.SSLError):
                data = b""
            if data == b"":
                self.eof = True
                self.seen["closed"], self.seen["closed_t"] = True, now()
            elif data:
                self.inbuf += data
                self.frames()
        if w and self.out:
            try:
                n = self.sock.send(self.out[:65536])
                self.out = self.out[n:]
                self.sent += n
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            except (OSError, ssl.SSLError) as e:
                self.send_error = repr(e)

    def frames(self):
        while len(self.inbuf) >= 9:
            n = int.from_bytes(self.inbuf[:3], "big")
            if len(self.inbuf) < 9 + n:
                return
            kind, flags = self.inbuf[3], self.inbuf[4]
            sid = int.from_bytes(self.inbuf[5:9], "big") & 0x7FFFFFFF
            payload = self.inbuf[9:9 + n]
            self.inbuf = self.inbuf[9 + n:]
            seen = self.seen
            if kind == GOAWAY:
                seen["goaway"].append(goaway_of(payload))
            elif kind == RST_STREAM:
                seen["rst"].append({"stream": sid, "code": struct.unpack(">I", payload[:4])[0],
                                    "t": now()})
            elif kind == SETTINGS:
                if flags & ACK:
                    seen["settings_acks"] += 1
                else:
                    seen["settings"] += 1
                    if self.ack:
                        self.out += frame(SETTINGS, ACK, 0)
            elif kind == PING:
                if flags & ACK:
                    seen["ping_acks"] += 1
                else:
                    seen["pings"] += 1
                    if self.ack:
                        self.out += frame(PING, ACK, 0, payload)
            elif kind == HEADERS:
                seen["headers"].append({"stream": sid, "t": now()})

    def drive(self, chunks, deadline, after, read=True):
        """Sends every chunk (reading meanwhile unless `read` is false) until done, a send
        error, the close or the deadline; then reads for `after` seconds more."""
        chunks = iter(chunks)
        more = True
        while not self.eof and self.send_error is None:
            while more and len(self.out) < 65536:
                try:
                    self.out += next(chunks)
                except StopIteration:
                    more = False
            if not more and not self.out:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                self.send_error = "deadline (the server stopped reading)"
                break
            self.step(min(0.05, left), read=read)
        send_t = now()
        end = time.monotonic() + after
        while not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.step(min(0.05, left))
        out = dict(self.seen)
        out.update({"sent_bytes": self.sent, "send_error": self.send_error, "send_t": send_t})
        return out


def goaway_of(payload):
    last, code = struct.unpack(">II", payload[:8])
    return {"last_stream_id": last & 0x7FFFFFFF, "code": code, "t": now()}


class Client:
    """An h2 connection driven by hand: streams sent, events collected."""

    def __init__(self, a, validate=True, window=None):
        self.a = a
        self.sock, self.alpn = connect(a)
        cfg = h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=validate,
            normalize_outbound_headers=validate, validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.streams, self.goaway, self.closed, self.closed_t = {}, [], False, None
        self.ack_data = True
        # Only `request` has --keep-body; the other actions report digests alone.
        self.keep_body = getattr(a, "keep_body", False)
        self.server_settings = {}
        self.rbuf, self.terminated = b"", False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def stream(self, sid):
        return self.streams.setdefault(sid, {
            "id": sid, "status": None, "headers": [], "body_len": 0, "fnv": FNV_INIT,
            "sha": hashlib.sha256(), "ended": False, "reset": None, "first_byte_t": None,
            "end_t": None, "interim": [], "raw": bytearray()})

    def pump(self, deadline, done=lambda: False):
        """Reads and handles events until `done()`, the deadline or the close."""
        while not done() and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            except (ConnectionError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed, self.closed_t = True, now()
                return
            self.rbuf += data
            # One frame at a time: python's h2 closes its state machine at the first GOAWAY,
            # even a graceful one, so what follows is read frame by frame here.
            while len(self.rbuf) >= 9:
                n = int.from_bytes(self.rbuf[:3], "big")
                if len(self.rbuf) < 9 + n:
                    break
                f, self.rbuf = self.rbuf[:9 + n], self.rbuf[9 + n:]
                if self.terminated:
                    self.raw_frame(f)
                    continue
                try:
                    events = self.conn.receive_data(f)
                except h2.exceptions.ProtocolError as e:
                    self.goaway.append({"client_error": repr(e), "t": now()})
                    self.terminated = True
                    events = []
                for ev in events:
                    self.handle(ev)
                try:
                    self.flush()
                except OSError:
                    pass

    def raw_frame(self, f):
        """A frame after the connection's GOAWAY: the streams still in flight go on."""
        kind, flags = f[3], f[4]
        sid = int.from_bytes(f[5:9], "big") & 0x7FFFFFFF
        payload = f[9:]
        if kind in (HEADERS, DATA) and flags & 0x8:
            pad = payload[0]
            payload = payload[1:len(payload) - pad]
        try:
            if kind == HEADERS:
                if flags & 0x20:
                    payload = payload[5:]
                fields = self.conn.decoder.decode(payload, raw=True)
                s = self.stream(sid)
                s["headers"] = [(k.decode(), v.decode()) for k, v in fields]
                s["status"] = int(dict(s["headers"]).get(":status", 0))
                s["first_byte_t"] = now()
            elif kind == DATA:
                s = self.stream(sid)
                s["body_len"] += len(payload)
                s["fnv"] = fnv64(s["fnv"], payload)
                s["sha"].update(payload)
                n = len(f) - 9
                if n and self.ack_data:
                    upd = struct.pack(">I", n)
                    self.sock.sendall(frame(WINDOW_UPDATE, 0, sid, upd) + frame(WINDOW_UPDATE, 0, 0, upd))
            elif kind == RST_STREAM:
                s = self.stream(sid)
                s["reset"], s["end_t"] = struct.unpack(">I", payload[:4])[0], now()
            elif kind == GOAWAY:
                self.goaway.append(goaway_of(payload))
            elif kind == PING and not flags & ACK:
                self.sock.sendall(frame(PING, ACK, 0, payload))
            if kind in (HEADERS, DATA) and flags & END_STREAM:
                s = self.stream(sid)
                s["ended"], s["end_t"] = True, now()
        except OSError:
            pass

    def handle(self, ev):
        if isinstance(ev, h2.events.InformationalResponseReceived):
            s = self.stream(ev.stream_id)
            s["interim"].append(int(dict((k.decode(), v.decode()) for k, v in ev.headers)[":status"]))
        elif isinstance(ev, h2.events.ResponseReceived):
            s = self.stream(ev.stream_id)
            s["headers"] = [(k.decode(), v.decode()) for k, v in ev.headers]
            s["status"] = int(dict(s["headers"]).get(":status", 0))
            s["first_byte_t"] = now()
        elif isinstance(ev, h2.events.TrailersReceived):
            s = self.stream(ev.stream_id)
            s["trailers"] = [(k.decode(), v.decode()) for k, v in ev.headers]
        elif isinstance(ev, h2.events.DataReceived):
            s = self.stream(ev.stream_id)
            if self.keep_body:
                s["raw"] += ev.data
            s["body_len"] += len(ev.data)
            s["fnv"] = fnv64(s["fnv"], ev.data)
            s["sha"].update(ev.data)
            if self.ack_data and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            s = self.stream(ev.stream_id)
            s["ended"], s["end_t"] = True, now()
        elif isinstance(ev, h2.events.StreamReset):
            s = self.stream(ev.stream_id)
            s["reset"], s["end_t"] = int(ev.error_code), now()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway.append({"code": int(ev.error_code), "last_stream_id": ev.last_stream_id,
                                "t": now()})
            self.terminated = True
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for code, ch in ev.changed_settings.items():
                self.server_settings[str(getattr(code, "name", code))] = ch.new_value

    def send_body(self, sid, data, end, deadline, pieces=1):
        size = max(1, -(-len(data) // max(1, pieces)))
        st = self.stream(sid)
        while data:
            if st["reset"] is not None:
                # The server answered and reset the stream (NO_ERROR after a complete response,
                # RFC 9113 §8.1): the rest of the body is not wanted.
                st["body_unsent"] = len(data)
                return
            window = self.conn.local_flow_control_window(sid)
            if window <= 0:
                self.pump(deadline, lambda: self.conn.local_flow_control_window(sid) > 0
                          or st["reset"] is not None)
                if time.monotonic() >= deadline or self.closed:
                    raise TimeoutError("no window to send the body")
                continue
            n = min(window, self.conn.max_outbound_frame_size, size, len(data))
            chunk, data = data[:n], data[n:]
            self.conn.send_data(sid, chunk, end_stream=end and not data)
            self.flush()
            if pieces > 1:
                time.sleep(0.01)

    def report(self):
        streams = []
        for s in sorted(self.streams.values(), key=lambda s: s["id"]):
            s = dict(s)
            if self.keep_body:
                s["body_text"] = bytes(s.pop("raw")).decode("utf-8", "replace")
            else:
                s.pop("raw")
            s["body_fnv"] = "%016x" % s.pop("fnv")
            s["body_sha256"] = s.pop("sha").hexdigest()
            streams.append(s)
        return {"alpn": self.alpn, "streams": streams, "goaway": self.goaway,
                "closed": self.closed, "closed_t": self.closed_t,
                "server_settings": self.server_settings, "elapsed": now()}


def parse_trailers(a):
    """`--trailer "name: value"`: trailers sent after the body (which then does not end the
    stream)."""
    out = []
    for t in a.trailer:
        name, _, value = t.partition(":")
        out.append((name.strip(), value.strip()))
    return out


def parse_headers(a):
    """`-H "name: value"` (a pseudo-header as `-H ":path: /x"`) in the order given."""
    out = []
    for h in a.header:
        lead = ":" if h.startswith(":") else ""
        name, _, value = h[len(lead):].partition(":")
        out.append((lead + name.strip(), value.strip()))
    return out


def request_headers(a, body):
    authority = a.authority or a.sni
    extra = parse_headers(a)
    if a.raw_headers:
        return extra
    hs = [(":method", a.method), (":scheme", "http" if a.plain else "https"),
          (":authority", authority), (":path", a.path)]
    if body is not None and not a.no_length:
        hs.append(("content-length", str(len(body))))
    return hs + extra


def body_of(a):
    if a.body_file:
        with open(a.body_file, "rb") as f:
            return f.read()
    if a.body_size is not None:
        return bytes(i % 251 for i in range(a.body_size))
    return None


def act_request(a):
    body = body_of(a)
    c = Client(a, validate=not a.raw_headers, window=a.window)
    c.ack_data = not a.no_window_updates
    deadline = time.monotonic() + a.timeout
    if not a.before_settings:
        # The server's SETTINGS first (its stream limit), as a client normally waits for.
        c.pump(time.monotonic() + 2, lambda: bool(c.server_settings) or c.closed)
    sids = []

    def done(sid):
        st = c.streams[sid]
        return st["ended"] or st["reset"] is not None or "cancelled_t" in st

    def room():
        # Eager clients open every stream at once; others keep to the server's limit.
        return a.before_settings or (
            c.conn.open_outbound_streams < c.conn.remote_settings.max_concurrent_streams)

    todo = a.count
    while todo and not c.closed and not c.terminated and time.monotonic() < deadline:
        batch = []
        while todo and room():
            sid = c.conn.get_next_available_stream_id()
            end = body is None and not a.hold_body
            c.conn.send_headers(sid, request_headers(a, body), end_stream=end)
            c.stream(sid)["sent_t"] = now()
            batch.append(sid)
            todo -= 1
        c.flush()
        if body is not None or a.hold_body:
            for sid in batch:
                part = body or b""
                if a.hold_body:
                    # Part of the body, never the end: the stream waits on the client.
                    part = part[: max(1, len(part) // 2)] if part else b"x"
                    c.conn.send_data(sid, part, end_stream=False)
                    c.flush()
                    continue
                try:
                    trailers = parse_trailers(a)
                    c.send_body(sid, part, not trailers, deadline, a.pieces)
                    if trailers:
                        c.conn.send_headers(sid, trailers, end_stream=True)
                        c.flush()
                except (TimeoutError, h2.exceptions.ProtocolError,
                        h2.exceptions.StreamClosedError) as e:
                    c.stream(sid)["send_error"] = repr(e)
        sids += batch
        if todo:
            finished = sum(done(x) for x in sids)
            c.pump(deadline, lambda: sum(done(x) for x in sids) > finished)
    if a.reset_after is not None:
        c.pump(time.monotonic() + a.reset_after)
        for sid in sids:
            try:
                c.conn.reset_stream(sid, 8)
                c.stream(sid)["cancelled_t"] = now()
            except h2.exceptions.StreamClosedError:
                pass
        c.flush()

    c.pump(deadline, lambda: all(done(x) for x in sids))
    if a.read_for:
        c.pump(min(deadline, time.monotonic() + a.read_for), lambda: False)
    return c.report()


def act_rapid_reset(a):
    """Opens `count` streams, each reset (CANCEL) right after its HEADERS, in one burst."""
    c = Client(a)
    c.pump(time.monotonic() + 2, lambda: bool(c.server_settings) or c.closed)
    sent, error = 0, None
    authority = a.authority or a.sni
    burst = b""
    for _ in range(a.count):
        sid = c.conn.get_next_available_stream_id()
        try:
            c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                      (":authority", authority), (":path", a.path)])
            c.conn.reset_stream(sid, 8)
        except h2.exceptions.ProtocolError as e:
            error = repr(e)
            break
        burst += c.conn.data_to_send()
        sent += 1
    try:
        c.sock.settimeout(a.timeout)
        c.sock.sendall(burst)
    except OSError as e:
        error = repr(e)
    c.pump(time.monotonic() + a.timeout, lambda: False)
    out = c.report()
    out.update({"sent": sent, "send_error": error, "responses": len(c.streams)})
    out.pop("streams")
    return out


def hpack_literal(name, value):
    """A literal header field without indexing, new name (RFC 7541 §6.2.2), no Huffman."""
    def length(n):
        # 7-bit prefix integer.
        if n < 127:
            return bytes([n])
        out, n = [127], n - 127
        while n >= 128:
            out.append((n % 128) + 128)
            n //= 128
        out.append(n)
        return bytes(out)
    return b"\x00" + length(len(name)) + name + length(len(value)) + value


def raw_start(a, ack=False):
    """The connection preface and SETTINGS (INITIAL_WINDOW_SIZE with --window), raw."""
    sock, alpn = connect(a)
    settings = frame(SETTINGS, 0, 0)
    if a.window is not None:
        settings = frame(SETTINGS, 0, 0, struct.pack(">HI", 0x4, a.window))
    raw = Raw(sock, ack=ack)
    raw.out = PREFACE + settings
    return raw, alpn


def act_continuation_flood(a):
    """HEADERS without END_HEADERS, then CONTINUATION frames of header fields, never ending,
    `bytes` in all: the header block grows without bound unless the server stops it."""
    raw, alpn = raw_start(a)
    enc = hpack.Encoder()
    authority = a.authority or a.sni
    first = enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", authority),
                        (":path", a.path)])
    value = b"v" * (a.frame_size - 64)

    def chunks():
        yield frame(HEADERS, 0, 1, first)
        total, i = 0, 0
        while total < a.bytes:
            f = frame(CONTINUATION, 0, 1, hpack_literal(b"x-flood-%d" % i, value))
            i += 1
            total += len(f)
            yield f

    out = raw.drive(chunks(), time.monotonic() + a.timeout, after=2)
    out.update({"alpn": alpn, "elapsed": now()})
    return out


def act_flood(a):
    """`count` SETTINGS or PING frames back to back, the answers read meanwhile (or, with
    --no-read, only once the flood has gone or stalled)."""
    raw, alpn = raw_start(a)
    if a.kind == "settings":
        one = frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100))
    else:
        one = frame(PING, 0, 0, b"12345678")
    batch = 100
    chunks = (one * batch for _ in range(a.count // batch))
    start = len(raw.out)
    out = raw.drive(chunks, time.monotonic() + a.timeout, after=a.settle, read=not a.no_read)
    out.update({"alpn": alpn, "sent_frames": max(0, raw.sent - start) // len(one),
                "elapsed": now()})
    return out


def act_idle(a):
    """The preface and SETTINGS, then nothing: what the server does with an idle connection,
    acknowledging its SETTINGS and PINGs (`--ack`) or never (a client that went silent)."""
    raw, alpn = raw_start(a, ack=a.ack)
    out = raw.drive([], time.monotonic() + a.timeout, after=a.timeout)
    out.update({"alpn": alpn, "elapsed": now()})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", required=True)
    p.add_argument("--sni", default="localhost")
    p.add_argument("--authority", help=":authority (default: the SNI name)")
    p.add_argument("--plain", action="store_true", help="h2c with prior knowledge")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--alpn", default="h2")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--path", default="/")
    p.add_argument("--window", type=int, help="SETTINGS_INITIAL_WINDOW_SIZE to announce")
    sub = p.add_subparsers(dest="action", required=True)
    r = sub.add_parser("request")
    r.add_argument("--method", default="GET")
    r.add_argument("-H", "--header", action="append", default=[])
    r.add_argument("--raw-headers", action="store_true",
                   help="send exactly the -H fields (pseudo-headers included), unchecked")
    r.add_argument("--count", type=int, default=1, help="identical streams, all at once")
    r.add_argument("--keep-body", action="store_true",
                   help="report each response body as text (body_text)")
    r.add_argument("--trailer", action="append", default=[],
                   help="a trailer field sent after the body, as \"name: value\"")
    r.add_argument("--body-file")
    r.add_argument("--body-size", type=int)
    r.add_argument("--no-length", action="store_true", help="no content-length")
    r.add_argument("--pieces", type=int, default=1, help="DATA frames per body, 10 ms apart")
    r.add_argument("--hold-body", action="store_true", help="send part of the body, never END_STREAM")
    r.add_argument("--no-window-updates", action="store_true")
    r.add_argument("--before-settings", action="store_true",
                   help="send the streams before the server's SETTINGS arrive")
    r.add_argument("--reset-after", type=float, help="reset every stream after this many seconds")
    r.add_argument("--read-for", type=float, default=0,
                   help="keep reading this long after the streams end (GOAWAY, close)")
    rr = sub.add_parser("rapid-reset")
    rr.add_argument("--count", type=int, default=1000)
    cf = sub.add_parser("continuation-flood")
    cf.add_argument("--bytes", type=int, default=16 << 20)
    cf.add_argument("--frame-size", type=int, default=16000)
    fl = sub.add_parser("flood")
    fl.add_argument("--kind", choices=["settings", "ping"], required=True)
    fl.add_argument("--count", type=int, default=10000)
    fl.add_argument("--settle", type=float, default=0.5)
    fl.add_argument("--no-read", action="store_true",
                    help="never read while flooding (the answers pile up on the server's side)")
    idle = sub.add_parser("idle")
    idle.add_argument("--ack", action="store_true", help="acknowledge SETTINGS and PINGs")
    a = p.parse_args()
    actions = {"request": act_request, "rapid-reset": act_rapid_reset,
               "continuation-flood": act_continuation_flood, "flood": act_flood,
               "idle": act_idle}
    try:
        out = actions[a.action](a)
    except (OSError, ssl.SSLError) as e:
        print(json.dumps({"connect_error": repr(e), "elapsed": now()}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
