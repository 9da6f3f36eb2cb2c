#!/usr/bin/env bash
# bench/instructions.sh: user-space instructions per request of ringgate and nginx, counted by
# valgrind's callgrind: a figure that, unlike requests/s and CPU time, does not move with the
# machine's load (this 2-core VM's figures move by a third between runs). Kernel work (the
# syscalls, TCP) is not in it: pair it with bench/run.sh's CPU per request.
#
#   bench/instructions.sh                      # h1, h2 and grpc through both proxies
#   MODES="h2 grpc" PROXIES=ringgate SECONDS_=5 bench/instructions.sh
#   KEEP=1 bench/instructions.sh               # keep the callgrind files (callgrind_annotate)
#   MODES=hs bench/instructions.sh             # per connection: full handshake + one request
#
# Each proxy runs alone under callgrind (ringgate with the epoll driver: valgrind does not
# follow io_uring; nginx with master_process off), behind the same nginx.conf (one mTLS
# listener, `/` to an nginx upstream with `keepalive 32`, `/bench.Echo/` by `grpc_pass` to
# ringgate-grpc-echo; ringgate through `ringgate import-nginx`). ringgate-load warms the proxy
# up for 3 s, then counting is switched on (`callgrind_control -i on`) for SECONDS_ of load with
# 10 connections (one stream each: h1 = HTTP/1.1 keep-alive, h2 = HTTP/2, grpc = gRPC unary
# calls of 32 bytes), then off. The figure is the instructions counted, less those of the ten
# handshakes (ringgate: tls::stream's handshake reads; nginx: ngx_ssl_handshake), over the
# requests ringgate-load completed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
MODES=${MODES:-h1 h2 grpc}
PROXIES=${PROXIES:-nginx ringgate}
SECONDS_=${SECONDS_:-5}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
log() { printf '[instructions] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
[ -x "$NGINX" ] || die "nginx is not installed"
[ "${SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR \
    cargo build --release -q -p ringgate -p ringgate-load) || die "build failed"
B=$TARGET_DIR/release
W=$(mktemp -d /tmp/ringgate-instructions.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -f "callgrind-out-file=$W" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- certificates (as run.sh)
mkdir -p "$W/pki" && cd "$W/pki"
printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ringgate bench CA\n[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n' >ca.cnf
printf 'basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n' >server.ext
printf 'basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n' >client.ext
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec_key ca.key
openssl req -x509 -new -key ca.key -config ca.cnf -extensions v3_ca -days 7 -sha256 -out ca.crt
for leaf in "server localhost server.ext" "client bench-client client.ext"; do
    set -- $leaf
    ec_key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -sha256 \
        -extfile "$3" -out "$1.crt" 2>/dev/null
done
P=$W/pki
cd "$ROOT"

# ---------------------------------------------------------------- upstreams
UPORT=$(free_port)
mkdir -p "$W/up/logs"
cat >"$W/up.conf" <<EOF
daemon off; master_process off; pid $W/up/nginx.pid; error_log $W/up/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
       server { listen 127.0.0.1:$UPORT; location / { return 200 "ok\n"; } } }
EOF
"$NGINX" -p "$W/up" -c "$W/up.conf" -e "$W/up/logs/error.log" &
PIDS+=($!)
"$B/ringgate-grpc-echo" 127.0.0.1:0 --threads 1 >"$W/echo.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/echo.out" ] && break; sleep 0.1; done
GPORT=$(head -n1 "$W/echo.out")

# ---------------------------------------------------------------- the proxies' configuration
PPORT=$(free_port)
mkdir -p "$W/px/logs" "$W/px/tmp"
cat >"$W/nginx.conf" <<EOF
daemon off;
master_process off;
pid $W/px/nginx.pid;
error_log $W/px/logs/error.log warn;
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $W/px/tmp/body;
    proxy_temp_path $W/px/tmp/proxy;
    keepalive_requests 1000000;
    upstream grpc_echo { server 127.0.0.1:$GPORT; keepalive 50; }
    upstream app { server 127.0.0.1:$UPORT; keepalive 32; }
    server {
        listen 127.0.0.1:$PPORT ssl http2;
        ssl_certificate $P/server.crt;
        ssl_certificate_key $P/server.key;
        ssl_client_certificate $P/ca.crt;
        ssl_verify_client on;
        location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location /bench.Echo/ { grpc_pass grpc://grpc_echo; }
    }
}
EOF
"$B/ringgate" import-nginx "$W/nginx.conf" 2>/dev/null \
    | sed 's/^\[runtime\]$/[runtime]\ndriver = "legacy"/' >"$W/ringgate.toml"
grep -q '^driver = "legacy"' "$W/ringgate.toml" || die "the imported configuration has no [runtime]"

# ---------------------------------------------------------------- one measurement
# (awk reads the whole report: a grep that stopped early would end callgrind_annotate with
# SIGPIPE, which pipefail counts as a failure.)
total_of() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n {gsub(",","",$1); print $1; n=1}'; }
inclusive_of() { # file symbol-pattern
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null \
        | awk -v pat="$2" 'index($0, pat) && !n {gsub(",","",$1); print $1+0; n=1}'
}

measure() { # proxy mode
    local proxy=$1 mode=$2 out="$W/$1-$2.cg" url args pid
    case $mode in
        h1) url=https://127.0.0.1:$PPORT/; args="--mode keepalive" ;;
        h2) url=https://127.0.0.1:$PPORT/; args="--mode h2 --streams 1" ;;
        grpc) url=https://127.0.0.1:$PPORT/bench.Echo/Unary; args="--mode grpc --streams 1 --message-size 32" ;;
        hs) url=https://127.0.0.1:$PPORT/; args="--mode handshake" ;;
        *) die "unknown mode $mode" ;;
    esac
    local cmd
    if [ "$proxy" = nginx ]; then
        cmd=("$NGINX" -p "$W/px" -c "$W/nginx.conf" -e "$W/px/logs/error.log")
    else
        cmd=("$B/ringgate" run --config "$W/ringgate.toml")
    fi
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "${cmd[@]}" \
        >"$W/$proxy.out" 2>"$W/$proxy.err" &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null && break
        sleep 0.2
    done
    local load=("$B/ringgate-load" "$url" --cert "$P/client.crt" --key "$P/client.key"
        --cacert "$P/ca.crt" --sni localhost -H "Host: localhost:$PPORT" --json -c 10)
    # shellcheck disable=SC2086
    "${load[@]}" $args -d 3s -q >/dev/null 2>&1 || true
    callgrind_control -i on "$pid" >/dev/null
    # shellcheck disable=SC2086
    "${load[@]}" $args -d "${SECONDS_}s" >"$W/$proxy-$mode.json" 2>/dev/null || true
    callgrind_control -i off "$pid" >/dev/null
    callgrind_control -d "$pid" >/dev/null
    sleep 1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # The worker thread's file (ringgate's threads and nginx's single process alike: the last
    # part written holds the counted interval).
    local file n t h
    file=$(ls -S "$out"* | head -n1)
    n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests'])" "$W/$proxy-$mode.json")
    t=$(total_of "$file")
    [ "${n:-0}" -gt 0 ] || die "$proxy $mode: no request completed"
    if [ "$mode" = hs ]; then
        # Every request is a new connection: the figure is per connection (full handshake,
        # one request, close), with where the instructions went.
        printf '%-9s %-5s %8d connections %10d instructions/connection\n' "$proxy" "$mode" "$n" $((t / n))
        breakdown "$file" "$t"
        return
    fi
    # The ten connections' handshakes are not requests: their instructions are left out (the
    # whole handshake phase, ClientHello to verified client certificate).
    if [ "$proxy" = nginx ]; then
        h=$(inclusive_of "$file" 'ngx_ssl_handshake [')
    else
        h=$(inclusive_of "$file" 'ringgate::edge::handshake::handshake::{{closure}} [')
    fi
    printf '%-9s %-5s %8d requests  %10d instructions/request\n' "$proxy" "$mode" "$n" \
        $(((t - ${h:-0}) / n))
}

# Where a profile's instructions went, by the code that ran them (self cost): the TLS
# library's cryptography (aws-lc for ringgate, libcrypto for nginx), the TLS protocol (rustls,
# libssl), certificate parsing and verification (webpki, x509-parser, ringgate's x509/),
# the allocator, libc's copies, and the rest.
breakdown() { # file total
    callgrind_annotate --threshold=100 --auto=no "$1" 2>/dev/null | awk -v total="$2" '
        /^ *[0-9,]+ \([ 0-9.]+%\)  [^ ]+:[^ ]/ && !/PROGRAM TOTALS/ {
            n = $1; gsub(",", "", n); line = $0
            if (line ~ /aws-lc|libcrypto/) c = "crypto (aws-lc / libcrypto)"
            else if (line ~ /rustls-0|libssl/) c = "TLS protocol (rustls / libssl)"
            else if (line ~ /webpki|x509-parser|der-parser|asn1-rs|src\/x509\/|tls\/client_auth/) c = "certificate parse and verification"
            else if (line ~ /mimalloc|malloc|free/) c = "allocator"
            else if (line ~ /libc\.so|memmove|memcpy|memset/) c = "libc copies"
            else if (line ~ /monoio|ngx_event|epoll/) c = "event loop"
            else c = "the rest (HTTP, proxying, logging)"
            sum[c] += n
        }
        END { for (c in sum) printf "    %-40s %5.1f%%\n", c, 100 * sum[c] / total }' | sort -t'%' -k1 -r
}

printf 'user-space instructions per request (callgrind), %s s of load at -c 10 after 3 s of warm-up\n' "$SECONDS_"
printf 'ringgate %s, %s\n' "$(git -C "$ROOT" rev-parse --short HEAD)" "$("$NGINX" -v 2>&1)"
for mode in $MODES; do
    for proxy in $PROXIES; do
        measure "$proxy" "$mode"
    done
done
