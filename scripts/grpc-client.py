#!/usr/bin/env python3
"""A gRPC client for the gRPC proxy tests (tests/integration/grpc.rs): runs one scenario
against scripts/grpc-upstream.py's `test.Echo` service (directly or through a proxy) and
prints one JSON object on stdout.

  grpc-client.py --addr 127.0.0.1:8443 --ca ca.crt --cert client.crt --key client.key \\
      [--server-name localhost] [--timeout 10] [-m key=value ...] SCENARIO [ARGS...]
  grpc-client.py --addr 127.0.0.1:50051 --plain SCENARIO [ARGS...]

Scenarios (each RPC's result is {"code": "OK" or another grpc.StatusCode name, "details",
"initial_metadata": [[k, v], ...], "trailing_metadata": [[k, v], ...], "elapsed_ms", ...}, with
the values of `-bin` keys in base64):

  unary [SIZE]              one Unary with SIZE bytes (default 70000, every byte value):
                            adds "request_sha256", "response_sha256", "response_len"
  server-stream N           adds "messages": the N replies as text
  client-stream N SIZE      N messages of SIZE bytes (message i filled with byte i % 256):
                            adds "request_sha256", "response_sha256", "response_len"
  bidi N                    N ping-pong rounds: message i is sent only after echo i-1 came
                            back, so a relay that waits for the request's end never answers;
                            adds "messages" (the echoes) and "round_ms"
  fail CODE MESSAGE         Fail; adds "status_details": the decoded google.rpc.Status
                            (grpcio-status checks it matches grpc-status and grpc-message)
  slow MS                   Slow; adds "response"
  headers                   Headers; adds "response": the upstream's JSON
  peers                     Peers; adds "response": the upstream's JSON
  concurrent N MS           N Slow(MS) at once on one channel (one connection): prints
                            {"calls": [result, ...], "elapsed_ms"}
  sequence N GAP_MS         N Unary one after another, GAP_MS apart, on one channel: prints
                            {"calls": [result, ...], "elapsed_ms"}

Several scenarios separated by `+` (`unary 10 + bidi 5`) run one after another on one channel
and print a JSON list of their results.

Request metadata from -m/--metadata applies to every RPC (a key ending in -bin takes a value in
base64). Transparent retries are off (grpc.enable_retries 0): a stream the proxy refused shows.
Exits 0 whenever the scenario ran, whatever the RPCs' statuses; 77 when the `grpc` module is
missing; 2 on bad arguments.
"""

import argparse
import base64
import hashlib
import json
import sys
import threading
import time

try:
    import grpc
except ImportError:
    print("python's grpc module is missing (python3 -m pip install grpcio)", file=sys.stderr)
    sys.exit(77)

try:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    HAVE_STATUS = True
except ImportError:
    HAVE_STATUS = False

SERVICE = "/test.Echo/"


def meta_list(md):
    if md is None:
        return None
    out = []
    for k, v in md:
        if isinstance(v, bytes):
            v = base64.b64encode(v).decode("ascii")
        out.append([k, v])
    return out


def sha(b):
    return hashlib.sha256(b).hexdigest()


def pattern(size):
    return bytes(i % 256 for i in range(size))


class Client:
    def __init__(self, args):
        self.args = args
        options = [("grpc.enable_retries", 0)]
        if args.plain:
            self.channel = grpc.insecure_channel(args.addr, options=options)
        else:
            root = open(args.ca, "rb").read() if args.ca else None
            key = open(args.key, "rb").read() if args.key else None
            chain = open(args.cert, "rb").read() if args.cert else None
            creds = grpc.ssl_channel_credentials(root, key, chain)
            if args.server_name:
                options.append(("grpc.ssl_target_name_override", args.server_name))
            self.channel = grpc.secure_channel(args.addr, creds, options=options)
        self.metadata = []
        for m in args.metadata:
            k, _, v = m.partition("=")
            if k.endswith("-bin"):
                v = base64.b64decode(v)
            self.metadata.append((k, v))

    def method(self, kind, name):
        make = getattr(self.channel, kind)
        return make(SERVICE + name, request_serializer=None, response_deserializer=None)

    def finish(self, call, start, out):
        """Adds the call's status and metadata to `out` (call: a Call or an RpcError)."""
        out["elapsed_ms"] = round((time.monotonic() - start) * 1000, 1)
        out["code"] = call.code().name
        out["details"] = call.details()
        out["initial_metadata"] = meta_list(call.initial_metadata())
        out["trailing_metadata"] = meta_list(call.trailing_metadata())
        return out

    def unary(self, name, request, extra=None):
        """One unary RPC; `extra(response, out)` adds scenario fields on success."""
        start = time.monotonic()
        out = {}
        try:
            response, call = self.method("unary_unary", name).with_call(
                request, metadata=self.metadata, timeout=self.args.timeout
            )
        except grpc.RpcError as e:
            return self.finish(e, start, out)
        self.finish(call, start, out)
        if extra:
            extra(response, out)
        else:
            out["response"] = response.decode("utf-8", "replace")
        return out

    def streamed(self, call, start, out):
        """Reads every message of a response stream into out["messages"]."""
        msgs = []
        try:
            for m in call:
                msgs.append(m.decode("utf-8", "replace"))
        except grpc.RpcError:
            pass
        out["messages"] = msgs
        return self.finish(call, start, out)


def decoded_details(call):
    """google.rpc.Status from grpc-status-details-bin, as grpcio-status decodes it."""
    if not HAVE_STATUS:
        return None
    try:
        st = rpc_status.from_call(call)
    except ValueError as e:
        # from_call refuses a Status whose code or message differ from grpc-status/-message.
        return {"error": str(e)}
    if st is None:
        return None
    details = []
    for d in st.details:
        item = {"type_url": d.type_url}
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            item.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        details.append(item)
    return {"code": st.code, "message": st.message, "details": details}


def run(c, scenario, rest):
    if scenario == "unary":
        size = int(rest[0]) if rest else 70000
        req = pattern(size)

        def extra(resp, out):
            out.update(
                request_sha256=sha(req), response_sha256=sha(resp), response_len=len(resp)
            )

        return c.unary("Unary", req, extra)

    if scenario == "server-stream":
        start = time.monotonic()
        call = c.method("unary_stream", "ServerStream")(
            rest[0].encode("ascii"), metadata=c.metadata, timeout=c.args.timeout
        )
        return c.streamed(call, start, {})

    if scenario == "client-stream":
        n, size = int(rest[0]), int(rest[1])
        msgs = [bytes([i % 256]) * size for i in range(n)]
        start = time.monotonic()
        out = {"request_sha256": sha(b"".join(msgs))}
        try:
            resp, call = c.method("stream_unary", "ClientStream").with_call(
                iter(msgs), metadata=c.metadata, timeout=c.args.timeout
            )
        except grpc.RpcError as e:
            return c.finish(e, start, out)
        out.update(response_sha256=sha(resp), response_len=len(resp))
        return c.finish(call, start, out)

    if scenario == "bidi":
        n = int(rest[0])
        # The request iterator hands message i over only once echo i-1 has been read.
        turn = threading.Semaphore(1)
        done = threading.Event()

        def requests():
            for i in range(n):
                turn.acquire()
                if done.is_set():
                    return
                yield f"ping-{i}".encode("ascii")

        start = time.monotonic()
        call = c.method("stream_stream", "Bidi")(
            requests(), metadata=c.metadata, timeout=c.args.timeout
        )
        msgs, rounds = [], []
        last = start
        try:
            for m in call:
                msgs.append(m.decode("utf-8", "replace"))
                now = time.monotonic()
                rounds.append(round((now - last) * 1000, 1))
                last = now
                turn.release()
        except grpc.RpcError:
            pass
        done.set()
        turn.release()
        out = {"messages": msgs, "round_ms": rounds}
        return c.finish(call, start, out)

    if scenario == "fail":
        code, message = rest[0], rest[1]
        req = json.dumps({"code": code, "message": message}).encode("utf-8")
        start = time.monotonic()
        out = {}
        try:
            _, call = c.method("unary_unary", "Fail").with_call(
                req, metadata=c.metadata, timeout=c.args.timeout
            )
        except grpc.RpcError as e:
            call = e
        c.finish(call, start, out)
        out["status_details"] = decoded_details(call)
        return out

    if scenario == "slow":
        return c.unary("Slow", rest[0].encode("ascii"))

    if scenario in ("headers", "peers"):

        def parsed(resp, out):
            out["response"] = json.loads(resp)

        return c.unary(scenario.capitalize(), b"", parsed)

    if scenario == "concurrent":
        n, ms = int(rest[0]), rest[1].encode("ascii")
        slow = c.method("unary_unary", "Slow")
        start = time.monotonic()
        calls = [
            slow.future(ms, metadata=c.metadata, timeout=c.args.timeout) for _ in range(n)
        ]
        results = []
        for f in calls:
            out = {}
            try:
                out["response"] = f.result().decode("utf-8", "replace")
            except grpc.RpcError:
                pass
            results.append(c.finish(f, start, out))
        return {"calls": results, "elapsed_ms": round((time.monotonic() - start) * 1000, 1)}

    if scenario == "sequence":
        n, gap = int(rest[0]), int(rest[1]) / 1000.0
        start = time.monotonic()
        results = []
        for i in range(n):
            if i:
                time.sleep(gap)
            req = f"seq-{i}".encode("ascii")
            r = c.unary("Unary", req)
            r["echoed"] = r.get("response") == req.decode("ascii")
            results.append(r)
        return {"calls": results, "elapsed_ms": round((time.monotonic() - start) * 1000, 1)}

    raise SystemExit(f"unknown scenario {scenario!r}")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--addr", required=True, help="HOST:PORT")
    ap.add_argument("--plain", action="store_true", help="no TLS (h2c)")
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--server-name", help="the name to verify and send as SNI")
    ap.add_argument("--timeout", type=float, default=10.0, help="each RPC's deadline (s)")
    ap.add_argument("-m", "--metadata", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("scenario")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    # SCENARIO ARGS [+ SCENARIO ARGS ...]: several scenarios one after another on one channel
    # (one python start, one connection), printed as a JSON list.
    words = [args.scenario] + args.rest
    groups, group = [], []
    for w in words:
        if w == "+":
            groups.append(group)
            group = []
        else:
            group.append(w)
    groups.append(group)
    if any(not g for g in groups):
        ap.error("an empty scenario around `+`")
    c = Client(args)
    try:
        results = [run(c, g[0], g[1:]) for g in groups]
    finally:
        c.channel.close()
    print(json.dumps(results[0] if len(groups) == 1 else results))


if __name__ == "__main__":
    main()
