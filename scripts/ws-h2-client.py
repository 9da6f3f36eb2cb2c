#!/usr/bin/env python3
"""WebSocket over HTTP/2 (RFC 8441) by hand, with python `h2`: connects with TLS (ALPN h2,
client certificate), waits for SETTINGS_ENABLE_CONNECT_PROTOCOL, sends an extended CONNECT
(:protocol websocket) for PATH, and when it is answered 200 sends a masked text frame, reads
the echo, then a close frame (1000) and reads the close back. Prints one JSON line:
{"enabled", "status", "echo", "close_code", "ended"}; exits 0 when it got that far.

usage: ws-h2-client.py PORT PATH --ca CA [--cert CERT --key KEY] [--text TEXT]
"""
import argparse, json, os, socket, ssl, struct, sys, time

import h2.config, h2.connection, h2.events, h2.settings

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("path")
p.add_argument("--ca", required=True)
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--text", default="hello over h2")
a = p.parse_args()

ctx = ssl.create_default_context(cafile=a.ca)
if a.cert:
    ctx.load_cert_chain(a.cert, a.key)
ctx.set_alpn_protocols(["h2"])
sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", a.port), timeout=5), server_hostname="localhost")
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
out = {"enabled": False, "status": None, "echo": None, "close_code": None, "ended": False}
deadline = time.time() + 10


def events():
    data = sock.recv(65536)
    if not data:
        raise EOFError("connection closed")
    evs = conn.receive_data(data)
    sock.sendall(conn.data_to_send())
    return evs


def frame(payload, opcode):
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def done():
    print(json.dumps(out))
    sys.exit(0 if out["status"] == 200 and out["ended"] else 1)


try:
    while not out["enabled"] and time.time() < deadline:
        for e in events():
            if isinstance(e, h2.events.RemoteSettingsChanged):
                if e.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL):
                    out["enabled"] = True
    conn.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                          (":path", a.path), (":authority", "localhost"), ("sec-websocket-version", "13")])
    sock.sendall(conn.data_to_send())
    while out["status"] is None and time.time() < deadline:
        for e in events():
            if isinstance(e, h2.events.ResponseReceived):
                out["status"] = int(dict(e.headers)[":status"])
            if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                out["ended"] = True
    if out["status"] != 200:
        done()
    conn.send_data(1, frame(a.text.encode(), 0x1))
    sock.sendall(conn.data_to_send())
    got = b""
    want = 2 + len(a.text.encode())
    while len(got) < want and time.time() < deadline:
        for e in events():
            if isinstance(e, h2.events.DataReceived):
                got += e.data
                conn.acknowledge_received_data(e.flow_controlled_length, 1)
    out["echo"] = got[2:want].decode(errors="replace")
    conn.send_data(1, frame(struct.pack(">H", 1000), 0x8))
    sock.sendall(conn.data_to_send())
    got = b""
    while not out["ended"] and time.time() < deadline:
        for e in events():
            if isinstance(e, h2.events.DataReceived):
                got += e.data
                conn.acknowledge_received_data(e.flow_controlled_length, 1)
            if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                out["ended"] = True
    if len(got) >= 4:
        out["close_code"] = struct.unpack(">H", got[2:4])[0]
except (EOFError, OSError) as e:
    out["error"] = str(e)
done()
