#!/usr/bin/env python3
"""A gRPC upstream for the gRPC proxy tests (tests/integration/grpc.rs).

python's grpcio with generic handlers over raw bytes (no protoc, no generated code): every
method of the service `test.Echo` takes and returns bytes as they are.

  Unary         echoes the request; initial metadata echoes every request key starting with
                `x-echo-`; trailing metadata `x-trailer: done`.
  ServerStream  the request is an ASCII integer N: replies N messages `msg-0` .. `msg-(N-1)`.
  ClientStream  replies the concatenation of every request message; trailing metadata
                `x-count` (messages) and `x-total-len` (bytes).
  Bidi          echoes each message as soon as it arrives (a client that waits for each echo
                before sending the next message needs a full-duplex relay).
  Fail          the request is JSON {"code": NAME or number, "message": str}: aborts with that
                status, with `grpc-status-details-bin` (a serialized google.rpc.Status carrying
                an ErrorInfo when grpcio-status is installed, else fixed arbitrary bytes) and
                the custom trailers `x-fail-trailer: kept` and `x-fail-blob-bin` (binary).
  Slow          the request is an ASCII number of milliseconds: sleeps that long, then replies
                `slept N`.
  Headers       replies JSON {"metadata": [[key, value], ...], "peer": ..., "auth": {...}}:
                every request metadata entry as received (values of `-bin` keys in base64),
                and the TLS peer identity (the client certificate's CN) when there is one.
  Peers         replies JSON {"peers": [...]}: the distinct `context.peer()` values of every
                RPC so far (one per TCP connection), in order first seen.

Options: --port N (0: any free port; the first line on stdout is `PORT <n>`), --tls CERT KEY
(serve TLS; ALPN h2 as gRPC does), --client-ca CA (require a client certificate from CA),
--max-concurrent-streams N (SETTINGS_MAX_CONCURRENT_STREAMS), --max-connection-age-ms N (GOAWAY
once a connection is that old, give or take grpc's 10% jitter), --log FILE (one JSON line per
RPC: {"event": "rpc", "method", "peer", "metadata"}).

Exits 77 with a message on stderr when the `grpc` module is missing.
"""

import argparse
import base64
import json
import sys
import threading
import time
from concurrent import futures

try:
    import grpc
except ImportError:
    print("python's grpc module is missing (python3 -m pip install grpcio)", file=sys.stderr)
    sys.exit(77)

try:
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2

    HAVE_STATUS_PROTO = True
except ImportError:
    HAVE_STATUS_PROTO = False

SERVICE = "test.Echo"
# What Fail sends as grpc-status-details-bin when google.rpc's protos are missing: arbitrary
# bytes (every byte value), so a relay that touches them is seen.
RAW_DETAILS = bytes(range(256))
FAIL_BLOB = b"\x00\x01\xfe\xffbinary trailer\r\n"


def meta_value(key, value):
    """A metadata value as JSON can carry it: base64 for `-bin` keys (bytes)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


class Recorder:
    """The distinct peers seen, and the optional JSON-lines log of every RPC."""

    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.peers = []
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def rpc(self, method, context):
        peer = context.peer()
        metadata = [[k, meta_value(k, v)] for k, v in context.invocation_metadata()]
        with self.lock:
            if peer not in self.peers:
                self.peers.append(peer)
            if self.log:
                self.log.write(
                    json.dumps(
                        {"event": "rpc", "method": method, "peer": peer, "metadata": metadata}
                    )
                    + "\n"
                )

    def peer_list(self):
        with self.lock:
            return list(self.peers)


def status_code(value):
    """A grpc.StatusCode from its name (`NOT_FOUND`) or number (5)."""
    for code in grpc.StatusCode:
        if code.name == str(value).upper() or str(code.value[0]) == str(value):
            return code
    raise ValueError(f"no status code {value!r}")


def details_bin(code, message):
    """grpc-status-details-bin for a Fail: a google.rpc.Status when the protos are here."""
    if not HAVE_STATUS_PROTO:
        return RAW_DETAILS
    info = error_details_pb2.ErrorInfo(
        reason="TEST_FAILURE", domain="ringgate.test", metadata={"k": "v"}
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(
        code=code.value[0], message=message, details=[detail]
    ).SerializeToString()


def make_handler(rec):
    def unary(request, context):
        rec.rpc("Unary", context)
        echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo-")]
        context.send_initial_metadata(echoed)
        context.set_trailing_metadata([("x-trailer", "done")])
        return request

    def server_stream(request, context):
        rec.rpc("ServerStream", context)
        n = int(request.decode("ascii"))
        context.set_trailing_metadata([("x-trailer", "done")])
        for i in range(n):
            yield f"msg-{i}".encode("ascii")

    def client_stream(request_iterator, context):
        rec.rpc("ClientStream", context)
        parts = [m for m in request_iterator]
        body = b"".join(parts)
        context.set_trailing_metadata(
            [("x-count", str(len(parts))), ("x-total-len", str(len(body)))]
        )
        return body

    def bidi(request_iterator, context):
        rec.rpc("Bidi", context)
        context.set_trailing_metadata([("x-trailer", "done")])
        for m in request_iterator:
            yield m

    def fail(request, context):
        rec.rpc("Fail", context)
        spec = json.loads(request.decode("utf-8"))
        code = status_code(spec["code"])
        message = spec.get("message", "")
        context.set_trailing_metadata(
            [
                ("grpc-status-details-bin", details_bin(code, message)),
                ("x-fail-trailer", "kept"),
                ("x-fail-blob-bin", FAIL_BLOB),
            ]
        )
        context.abort(code, message)

    def slow(request, context):
        rec.rpc("Slow", context)
        ms = int(request.decode("ascii"))
        deadline = time.monotonic() + ms / 1000.0
        # Wake up early when the RPC is cancelled (the proxy gave up on it).
        while context.is_active():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.02))
        return f"slept {ms}".encode("ascii")

    def headers(request, context):
        rec.rpc("Headers", context)
        auth = {}
        for k, vs in (context.auth_context() or {}).items():
            auth[k] = [v.decode("utf-8", "replace") for v in vs]
        out = {
            "metadata": [[k, meta_value(k, v)] for k, v in context.invocation_metadata()],
            "peer": context.peer(),
            "auth": auth,
        }
        return json.dumps(out).encode("utf-8")

    def peers(request, context):
        rec.rpc("Peers", context)
        return json.dumps({"peers": rec.peer_list()}).encode("utf-8")

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
            "Headers": grpc.unary_unary_rpc_method_handler(headers),
            "Peers": grpc.unary_unary_rpc_method_handler(peers),
        },
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--client-ca", metavar="CA")
    ap.add_argument("--max-concurrent-streams", type=int)
    ap.add_argument("--max-connection-age-ms", type=int)
    ap.add_argument("--log", metavar="FILE")
    ap.add_argument("--threads", type=int, default=64)
    args = ap.parse_args()
    if args.client_ca and not args.tls:
        ap.error("--client-ca needs --tls")

    # No SO_REUSEPORT: a second server on the same port would share the connections.
    options = [("grpc.so_reuseport", 0)]
    if args.max_concurrent_streams is not None:
        options.append(("grpc.max_concurrent_streams", args.max_concurrent_streams))
    if args.max_connection_age_ms is not None:
        options.append(("grpc.max_connection_age_ms", args.max_connection_age_ms))
        # Streams open at the GOAWAY get this long to finish.
        options.append(("grpc.max_connection_age_grace_ms", 10_000))

    rec = Recorder(args.log)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.threads), options=options
    )
    server.add_generic_rpc_handlers((make_handler(rec),))
    addr = f"{args.host}:{args.port}"
    if args.tls:
        with open(args.tls[0], "rb") as f:
            chain = f.read()
        with open(args.tls[1], "rb") as f:
            key = f.read()
        ca = None
        if args.client_ca:
            with open(args.client_ca, "rb") as f:
                ca = f.read()
        creds = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=ca, require_client_auth=ca is not None
        )
        port = server.add_secure_port(addr, creds)
    else:
        port = server.add_insecure_port(addr)
    if port == 0:
        print(f"could not listen on {addr}", file=sys.stderr)
        sys.exit(1)
    server.start()
    print(f"PORT {port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
