#!/usr/bin/env python3
"""A WebSocket test client (python `websockets`, 13+) for ringgate's tests: wss with a client
certificate, a list of scenarios, one JSON object on stdout.

    scripts/ws-client.py wss://localhost:8443/ws --ca ca.crt --cert client.crt --key client.key
    scripts/ws-client.py URL --ca ... --connect 127.0.0.1 --scenario text,binary,big,ping
    scripts/ws-client.py URL --ca ... --scenario idle --idle-max 10

Scenarios (default: all but idle, in this order; run against scripts/ws-echo-upstream.py):

    text          two text messages (ASCII and non-ASCII), each echoed identically
    binary        a 1 KiB binary message with every byte value, echoed identically
    big           a 1 MiB binary message (deterministic pseudo-random bytes), echoed identically
    ping          a ping with a payload; its pong must come back
    close-client  the client closes with 4000 "bye from client"; the server's close frame
                  must carry the same code and reason back
    close-server  asks the server to close with 4001 "bye from server"; the client must
                  receive that code and reason
    idle          opens, sends nothing, and reports when (and how) the connection was closed
                  by the other side, up to --idle-max seconds

The first scenarios share one connection; close-client ends it, close-server and idle each
open their own. `results` holds only what was received (types, lengths, SHA-256, codes), never
timings, so two runs through two proxies can be compared for equality; timings are in `timing`.

Output: {"ok": true, "status": 101, "headers": {...}, "results": {...}, "timing": {...}}.
A refused handshake prints {"ok": false, "status": 403, ...} and exits 2; any other failure
prints {"ok": false, "error": "..."}, says why on stderr and exits 1.
"""

import argparse
import asyncio
import hashlib
import json
import random
import ssl
import sys
import time
from urllib.parse import urlsplit

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
except ImportError as e:  # the tests skip on this message
    print(f"ws-client: python websockets (13 or later) is missing: {e}", file=sys.stderr)
    sys.exit(3)

ALL = ["text", "binary", "big", "ping", "close-client", "close-server"]
KNOWN = ALL + ["idle"]
SHARED = {"text", "binary", "big", "ping", "close-client"}


class Failure(Exception):
    """A scenario did not get what it expected."""


def digest(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def describe(msg):
    kind = "text" if isinstance(msg, str) else "binary"
    raw = msg.encode() if isinstance(msg, str) else msg
    return {"type": kind, "len": len(raw), "sha256": digest(raw)}


async def echo(ws, msg, timeout):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), timeout)
    if type(got) is not type(msg) or got != msg:
        raise Failure(f"echo differs: sent {describe(msg)}, received {describe(got)}")
    return describe(got)


async def scenario(name, ws, a, timing):
    t0 = time.monotonic()
    if name == "text":
        out = [await echo(ws, m, a.timeout) for m in ["hello ringgate", "grüße, 世界 ✓"]]
    elif name == "binary":
        out = await echo(ws, bytes(range(256)) * 4, a.timeout)
    elif name == "big":
        out = await echo(ws, random.Random(6455).randbytes(1 << 20), a.timeout)
    elif name == "ping":
        waiter = await ws.ping(b"ringgate-ping")
        await asyncio.wait_for(waiter, a.timeout)
        out = {"pong": True}
    elif name == "close-client":
        await asyncio.wait_for(ws.close(4000, "bye from client"), a.timeout)
        rcvd = ws.protocol.close_rcvd
        if rcvd is None:
            raise Failure("the connection ended without the server's close frame")
        out = {"sent": [4000, "bye from client"], "received": [rcvd.code, rcvd.reason]}
        if out["sent"] != out["received"]:
            raise Failure(f"close code came back as {out['received']}")
    elif name == "close-server":
        await ws.send("!close 4001 bye from server")
        try:
            got = await asyncio.wait_for(ws.recv(), a.timeout)
            raise Failure(f"a message instead of the close: {describe(got)}")
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        if rcvd is None:
            raise Failure("the connection ended without the server's close frame")
        out = {"received": [rcvd.code, rcvd.reason]}
        if out["received"] != [4001, "bye from server"]:
            raise Failure(f"the server's close arrived as {out['received']}")
    elif name == "idle":
        try:
            got = await asyncio.wait_for(ws.recv(), a.idle_max)
            raise Failure(f"a message on an idle connection: {describe(got)}")
        except asyncio.TimeoutError:
            out = {"closed": False}
        except ConnectionClosed:
            rcvd = ws.protocol.close_rcvd
            out = {"closed": True,
                   "close_frame": [rcvd.code, rcvd.reason] if rcvd else None}
    else:
        raise Failure(f"unknown scenario {name}")
    timing[name] = round(time.monotonic() - t0, 4)
    return out


def tls_context(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    return ctx


async def session(a, names, report, timing):
    """One connection running `names` in turn; fills `report` with the handshake's answer."""
    kwargs = {}
    if a.url.startswith("wss://"):
        kwargs["ssl"] = tls_context(a)
    if a.connect:
        kwargs["host"] = a.connect
    headers = []
    for h in a.header:
        name, _, value = h.partition(":")
        headers.append((name.strip(), value.strip()))
    t0 = time.monotonic()
    async with connect(a.url, additional_headers=headers, open_timeout=a.timeout,
                       close_timeout=a.timeout, ping_interval=None, max_size=16 << 20,
                       proxy=None, **kwargs) as ws:
        timing.setdefault("handshake", round(time.monotonic() - t0, 4))
        r = ws.response
        report["status"] = r.status_code
        report["headers"] = {k.lower(): v for k, v in r.headers.raw_items()}
        for name in names:
            report["results"][name] = await scenario(name, ws, a, timing)


async def run(a):
    names = [n for n in a.scenario.split(",") if n] if a.scenario else ALL
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise SystemExit(f"ws-client: unknown scenario {', '.join(unknown)}; known: "
                         + ", ".join(KNOWN))
    report = {"ok": False, "url": a.url, "results": {}}
    timing = {}
    shared = [n for n in names if n in SHARED]
    alone = [n for n in names if n not in SHARED]
    try:
        if shared:
            await session(a, shared, report, timing)
        for n in alone:
            await session(a, [n], report, timing)
        report["ok"] = True
        rc = 0
    except InvalidStatus as e:
        report["status"] = e.response.status_code
        report["error"] = f"handshake refused: HTTP {e.response.status_code}"
        report["body"] = e.response.body.decode("utf-8", "replace") if e.response.body else ""
        rc = 2
    except (Failure, ConnectionClosed, OSError, asyncio.TimeoutError, ssl.SSLError,
            ValueError) as e:
        report["error"] = f"{type(e).__name__}: {e}"
        rc = 1
    except Exception as e:  # noqa: BLE001 - any websockets error is a failure to report
        report["error"] = f"{type(e).__name__}: {e}"
        rc = 1
    report["timing"] = timing
    print(json.dumps(report), flush=True)
    if rc:
        print(f"ws-client: {a.url}: {report['error']}", file=sys.stderr)
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="ws://HOST:PORT/PATH or wss://HOST:PORT/PATH")
    ap.add_argument("--ca", help="CA bundle to verify the server with (wss)")
    ap.add_argument("--cert", help="client certificate (PEM)")
    ap.add_argument("--key", help="client private key (PEM)")
    ap.add_argument("--connect", help="connect to this address instead of the URL's host "
                    "(the URL's host stays the SNI and Host)")
    ap.add_argument("--scenario", help="comma-separated scenarios (default: "
                    + ",".join(ALL) + ")")
    ap.add_argument("-H", "--header", action="append", default=[],
                    help="extra handshake header 'Name: value' (repeatable)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds for the handshake and for each answer (default 10)")
    ap.add_argument("--idle-max", type=float, default=10.0,
                    help="idle: seconds to wait for the other side to close (default 10)")
    a = ap.parse_args()
    if bool(a.cert) != bool(a.key):
        ap.error("--cert and --key go together")
    if urlsplit(a.url).scheme not in ("ws", "wss"):
        ap.error("the URL must start with ws:// or wss://")
    sys.exit(asyncio.run(run(a)))


if __name__ == "__main__":
    main()
