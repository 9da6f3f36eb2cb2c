#!/usr/bin/env python3
"""An HTTP/2 upstream (h2c, prior knowledge) that answers each stream with what it received.

The answer is `200`, a JSON body `{"headers": [[name, value], ...], "body_len": N,
"trailers": [[name, value], ...]}` and the trailers `x-upstream-trailer: sent` and
`x-got-trailers: N`. It lets a test see exactly which fields and trailers an HTTP/2 upstream
gets from ringgate (grpcio's server hides request trailers).

    scripts/h2-upstream.py [--port 0]     prints "PORT <n>" once listening
    scripts/h2-upstream.py --refuse 2     resets the first 2 streams with REFUSED_STREAM

The report also says how many streams were refused before this one (`"refused"`).
"""
import argparse
import json
import socket
import sys
import threading

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
except ImportError:
    print("h2-upstream.py: python's h2 is not installed", file=sys.stderr)
    sys.exit(77)


REFUSE = {"left": 0, "done": 0}
REFUSE_LOCK = threading.Lock()


def refuse_this_one():
    with REFUSE_LOCK:
        if REFUSE["left"] > 0:
            REFUSE["left"] -= 1
            REFUSE["done"] += 1
            return True
        return False


def serve(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                if refuse_this_one():
                    conn.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                    continue
                streams[ev.stream_id] = {
                    "headers": [[k.decode(), v.decode()] for k, v in ev.headers],
                    "body_len": 0, "trailers": []}
            elif isinstance(ev, h2.events.DataReceived):
                try:
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                except h2.exceptions.StreamClosedError:
                    # A refused stream's DATA still counts against the connection's window.
                    conn.increment_flow_control_window(ev.flow_controlled_length)
                if ev.stream_id in streams:
                    streams[ev.stream_id]["body_len"] += len(ev.data)
            elif isinstance(ev, h2.events.TrailersReceived):
                if ev.stream_id in streams:
                    streams[ev.stream_id]["trailers"] = [[k.decode(), v.decode()] for k, v in ev.headers]
            elif isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id not in streams:
                    continue
                got = streams.pop(ev.stream_id)
                with REFUSE_LOCK:
                    got["refused"] = REFUSE["done"]
                body = json.dumps(got).encode()
                conn.send_headers(ev.stream_id, [(":status", "200"),
                                                 ("content-type", "application/json")])
                conn.send_data(ev.stream_id, body)
                conn.send_headers(ev.stream_id, [("x-upstream-trailer", "sent"),
                                                 ("x-got-trailers", str(len(got["trailers"])))],
                                  end_stream=True)
        sock.sendall(conn.data_to_send())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--refuse", type=int, default=0)
    a = p.parse_args()
    REFUSE["left"] = a.refuse
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))
    srv.listen(64)
    print("PORT %d" % srv.getsockname()[1], flush=True)
    while True:
        s, _ = srv.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


if __name__ == "__main__":
    main()
