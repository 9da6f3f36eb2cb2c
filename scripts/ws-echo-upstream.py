#!/usr/bin/env python3
"""A WebSocket echo upstream for ringgate's tests and benchmarks (python `websockets`, 13+).

    scripts/ws-echo-upstream.py PORT [--host 127.0.0.1] [--log FILE]

Listens on HOST:PORT (PORT 0 picks a free one) and prints the port on stdout's first line,
then serves until SIGTERM or SIGINT:

- every text and binary message is echoed as it came (same type, same bytes);
- pings are answered by websockets itself (pong with the same data);
- a close from the client is answered with the same code and reason (websockets echoes the
  close frame), so a client sees its own close code come back;
- a text message `!close CODE REASON` makes the server close with CODE and REASON (the
  other direction of close codes), `!send-after SECONDS TEXT` sends TEXT after SECONDS
  without being asked (a server-initiated message through an idle tunnel), and `!silence`
  is not echoed (the tunnel then moves no byte);
- a request without `Upgrade: websocket` gets `200 ok` (plain HTTP, then the connection
  closes), so warm-ups and health checks need no WebSocket client.

`--log FILE` is the side channel the tests read: one JSON object per line, flushed at once:

    {"event": "tcp", "conn": 1, "peer": "127.0.0.1:40000"}
    {"event": "request", "conn": 1, "path": "/ws", "headers": [["Host", ...], ...]}
    {"event": "open", "conn": 1, "path": "/ws", "subprotocol": null}
    {"event": "closed", "conn": 1, "messages": 3, "bytes": 42, "close_code": 1000, "close_reason": ""}

`tcp` is logged for every accepted connection (before any byte is read), so a test can tell
that a refused client never reached the upstream at all; `request` holds the request head's
headers exactly as received (name spelling and order kept, repeats kept), so a test can assert
which identity headers the proxy set and that a client-forged one never arrived; `closed`
gives the close code and reason the upstream received from the client (None when the
connection ended without a close frame).
"""

import argparse
import asyncio
import itertools
import json
import signal
import sys

try:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed
except ImportError as e:  # the tests skip on this message
    print(f"ws-echo-upstream: python websockets (13 or later) is missing: {e}", file=sys.stderr)
    sys.exit(3)


class Log:
    """One JSON object per line, flushed at once (tests read the file while we run)."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8") if path else None

    def write(self, **event):
        if self.f is not None:
            self.f.write(json.dumps(event) + "\n")
            self.f.flush()


LOG = Log(None)
CONNS = itertools.count(1)


def peer_of(transport):
    p = transport.get_extra_info("peername")
    return f"{p[0]}:{p[1]}" if p else None


class Connection(ServerConnection):
    """websockets' server connection, numbered and logged the moment TCP accepts it."""

    def connection_made(self, transport):
        self.conn_id = next(CONNS)
        LOG.write(event="tcp", conn=self.conn_id, peer=peer_of(transport))
        super().connection_made(transport)


def process_request(connection, request):
    LOG.write(event="request", conn=connection.conn_id, path=request.path,
              headers=[[k, v] for k, v in request.headers.raw_items()])
    upgrade = request.headers.get("Upgrade", "")
    if "websocket" not in upgrade.lower():
        return connection.respond(200, "ok\n")
    return None


async def handler(ws):
    n = nbytes = 0
    LOG.write(event="open", conn=ws.conn_id, path=ws.request.path, subprotocol=ws.subprotocol)
    try:
        async for msg in ws:
            n += 1
            nbytes += len(msg)
            if isinstance(msg, str) and msg.startswith("!"):
                words = msg.split(" ", 2)
                if words[0] == "!close" and len(words) >= 2:
                    await ws.close(int(words[1]), words[2] if len(words) > 2 else "")
                    break
                if words[0] == "!silence":
                    continue
                if words[0] == "!send-after" and len(words) == 3:
                    await asyncio.sleep(float(words[1]))
                    await ws.send(words[2])
                    continue
            await ws.send(msg)
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    LOG.write(event="closed", conn=ws.conn_id, messages=n, bytes=nbytes,
              close_code=rcvd.code if rcvd else None,
              close_reason=rcvd.reason if rcvd else None)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int, help="port to listen on; 0 picks one (printed)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", help="append one JSON line per connection event to this file")
    ap.add_argument("--max-size", type=int, default=16 << 20,
                    help="largest message accepted, bytes (default 16 MiB)")
    a = ap.parse_args()
    global LOG
    LOG = Log(a.log)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    # No keep-alive pings of our own: a test of an idle tunnel needs silence on both sides.
    async with serve(handler, a.host, a.port, process_request=process_request,
                     create_connection=Connection, ping_interval=None,
                     max_size=a.max_size, max_queue=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
