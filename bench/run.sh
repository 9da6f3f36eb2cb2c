#!/usr/bin/env bash
# bench/run.sh: ringgate against nginx and HAProxy, one run, same certificates, same upstream,
# same load. Installs what is missing (nginx, haproxy, openssl, taskset) from Debian's
# packages, builds ringgate and ringgate-load, makes the certificates, runs every scenario
# against every proxy in turn and writes bench/results/run-<UTC>.{txt,json,jsonl,svg}.
#
#   bench/run.sh                              # everything, 3 alternated rounds (~25 min)
#   REPEAT=1 bench/run.sh                     # one round (~8 min): a first look, not evidence
#   DURATION=3s IDLE_COUNTS=1000 bench/run.sh # a quick pass
#   PROXIES="nginx ringgate" bench/run.sh     # a subset (nginx first: it sets the fixed rate)
#   SKIP_BUILD=1 KEEP_TMP=1 bench/run.sh
#   SCENARIOS="ka-small ka-64k" PROXIES=ringgate PROFILE=ringgate bench/run.sh  # perf profiles
#   SCENARIOS=ws-echo PROXIES="nginx ringgate" bench/run.sh    # WebSocket echo messages/s
#   SCENARIOS="h2-small h2-small-10 h2-64k" PROXIES="nginx ringgate" H2LOAD=1 bench/run.sh
#   SCENARIOS="grpc-unary grpc-unary-10" PROXIES="nginx ringgate" bench/run.sh  # gRPC unary
#   SCENARIOS="up-mtls-pool up-mtls-close" bench/run.sh   # mTLS to a TLS upstream too (mesh)
#   SCENARIOS="idle-memory idle-memory-64k" IDLE_COUNTS="1000 10000 50000" bench/run.sh
#   SKIP_BUILD=1 DURATION=2s REPEAT=1 IDLE_COUNTS="300 1000" \
#     SCENARIOS="up-mtls-pool up-mtls-close idle-memory idle-memory-64k" bench/run.sh  # smoke
#
# up-mtls-pool / up-mtls-close: ka-small's load to a location that proxies, with a client
# certificate, to an nginx upstream on UPSTREAM_CPU that requires one (ssl_verify_client on),
# through a pool of upstream TLS connections (UP_MTLS_KEEPALIVE, 32) or one upstream connection
# (and resumed handshake) per request; the upstream's access log gives handshakes per request
# and the fraction resumed. idle-memory / idle-memory-64k: RSS per idle mTLS connection after
# one small or one 64 KiB response, at each of IDLE_COUNTS (default "1000 10000 50000"; IDLE_CONNS
# alone, the older knob, is one count), each capped at what the open-file limit allows, on a
# freshly started proxy each time.
#
# The proxy under test runs on CPU 0 (PROXY_CPU, one worker/thread), ringgate-load and the
# upstreams (nginx; the TLS upstream; the WebSocket and gRPC echoes) on CPU 1 (LOAD_CPU,
# UPSTREAM_CPU). See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2s}
# Idle-memory counts: IDLE_COUNTS, else IDLE_CONNS (the older knob: one count), else three.
if [ -n "${IDLE_COUNTS:-}" ]; then
    :
elif [ -n "${IDLE_CONNS:-}" ]; then
    IDLE_COUNTS=$IDLE_CONNS
else
    IDLE_COUNTS="1000 10000 50000"
fi
# up-mtls-pool: the idle TLS connections each proxy keeps to the TLS upstream (nginx
# `keepalive`, HAProxy `pool-max-conn`).
UP_MTLS_KEEPALIVE=${UP_MTLS_KEEPALIVE:-32}
IDLE_HOLD=${IDLE_HOLD:-5s}
IDLE_KEEPALIVE_TIMEOUT=${IDLE_KEEPALIVE_TIMEOUT:-600s}
RATE_FRACTION=${RATE_FRACTION:-0.5}
LOAD_THREADS=${LOAD_THREADS:-1}
PROXIES=${PROXIES:-nginx haproxy ringgate}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UPSTREAM_CPU=${UPSTREAM_CPU:-1}
RESULTS=${RESULTS:-$ROOT/bench/results}
# A subset of the scenarios (names as in the table), and the proxies to profile with
# `perf record -g` while each scenario runs (profiles land beside the results).
SCENARIOS=${SCENARIOS:-}
PROFILE=${PROFILE:-}
# ws-echo: the echo upstream (`rust`: ringgate-ws-echo from loadtest/; `python`:
# scripts/ws-echo-upstream.py, which tops out near 13k messages/s on one core and would be
# the bottleneck) and the size of each text message.
WS_UPSTREAM=${WS_UPSTREAM:-rust}
WS_MESSAGE_SIZE=${WS_MESSAGE_SIZE:-32}
# Rounds: every proxy in turn, REPEAT times (nginx, ringgate, nginx, ringgate, ...); the report
# gives each figure's median over the rounds and its spread. One run on this kind of shared VM
# proves nothing either way, so three by default; ROUNDS is the older name.
ROUNDS=${REPEAT:-${ROUNDS:-3}}
# h2-small-10: streams per connection, over CONNS / H2_STREAMS connections (as many requests
# in flight as h2-small's CONNS connections of one stream).
H2_STREAMS=${H2_STREAMS:-10}
H2_CONNS=$((CONNS / H2_STREAMS))
[ "$H2_CONNS" -ge 1 ] || H2_CONNS=1
# grpc-unary, grpc-unary-10 (the latter over H2_CONNS connections of H2_STREAMS streams): the
# payload of each call's message, and the idle connections nginx keeps to the gRPC echo
# (`upstream grpc_echo { keepalive N; }`; 0: a bare `grpc_pass grpc://127.0.0.1:PORT`, with
# which nginx opens a connection per call). nginx carries one call per upstream connection, so
# the default is one for every call in flight (CONNS): with fewer (32, as `upstream app` has),
# the connections above it are closed as soon as they fall idle and reopened, about one call
# in two in a first try (7,593 upstream connections for 16,623 calls in 3 s), none with CONNS.
GRPC_MESSAGE_SIZE=${GRPC_MESSAGE_SIZE:-32}
GRPC_NGINX_KEEPALIVE=${GRPC_NGINX_KEEPALIVE:-$CONNS}
GRPC_PATH=/bench.Echo/Unary
# H2LOAD=1: in the first round, after each h2 scenario, the same load from h2load (nghttp2) and
# from ringgate-load without a client certificate, both on a second listener of the same proxy
# without client verification (h2load cannot send a certificate): a cross-check of
# ringgate-load's figures.
H2LOAD=${H2LOAD:-0}
# Every process of the run (the three proxies, the upstream, the load) runs with the glibc
# tunable that tuning/README.md recommends and deploy/ sets; empty runs with glibc's default.
BENCH_GLIBC_TUNABLES=${BENCH_GLIBC_TUNABLES-glibc.cpu.x86_rep_movsb_threshold=4194304}
if [ -n "$BENCH_GLIBC_TUNABLES" ]; then
    export GLIBC_TUNABLES=$BENCH_GLIBC_TUNABLES
else
    unset GLIBC_TUNABLES
fi

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
wanted() { [ -z "$SCENARIOS" ] || [[ " $SCENARIOS " == *" $1 "* ]]; }
any_wanted() { local sc; for sc in "$@"; do wanted "$sc" && return 0; done; return 1; }
# Measured on a proxy started afresh for each count (see the run below).
IDLE_SCENARIOS=(idle-memory idle-memory-64k)
UP_MTLS_SCENARIOS=(up-mtls-pool up-mtls-close)

# ---------------------------------------------------------------- dependencies
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "$H2LOAD" = 1 ]; then command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client); fi
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Keep the distribution's nginx and haproxy services from starting (they would take ports
    # and a CPU); the system configurations are never used.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    [ "$policy_added" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
    for svc in nginx haproxy; do
        as_root systemctl stop "$svc" >/dev/null 2>&1 || as_root service "$svc" stop >/dev/null 2>&1 || true
    done
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)
command -v cargo >/dev/null 2>&1 || [ "${SKIP_BUILD:-0}" = 1 ] || die "cargo not found (install Rust: https://rustup.rs)"
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || log "warning: only $ncpu CPU; proxy and load generator share it"
[ "$PROXY_CPU" -lt "$ncpu" ] || die "PROXY_CPU=$PROXY_CPU but only $ncpu CPUs"
[ "${LOAD_CPU%%[-,]*}" -lt "$ncpu" ] || LOAD_CPU=0
[ "$UPSTREAM_CPU" -lt "$ncpu" ] || UPSTREAM_CPU=0

# N idle connections: the load generator needs one descriptor each, the proxy one each plus
# its upstream connections: up to 256 while the idle connections open (256 at a time, each
# with a request) and a few more (400 spare). Raise the soft limit (and, as root, the hard
# one); see tuning/. Where the hard limit is lower and cannot be raised (no CAP_SYS_RESOURCE,
# as in some containers), the proxies get what there is: nginx's worker_rlimit_nofile and
# HAProxy's ulimit-n are set to it, and each of IDLE_COUNTS above it is capped at the limit
# less 400 (this container: 20000, so 50000 becomes 19600), which the log and the report say.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
[ "$FDS" != unlimited ] || FDS=65536
IDLE_CAP=$((FDS - 400))
[ "$IDLE_CAP" -ge 1 ] || die "open-file limit $FDS leaves no descriptors for idle connections"
IDLE_LIST=() IDLE_CAPPED=
for n in $IDLE_COUNTS; do
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "IDLE_COUNTS: $n is not a positive count"
    if [ "$n" -gt "$IDLE_CAP" ]; then
        IDLE_CAPPED="${IDLE_CAPPED:+$IDLE_CAPPED, }$n capped at $IDLE_CAP"
        n=$IDLE_CAP
    fi
    [[ " ${IDLE_LIST[*]-} " == *" $n "* ]] || IDLE_LIST+=("$n")
done
IDLE_TOP=10000
if any_wanted "${IDLE_SCENARIOS[@]}"; then
    IDLE_TOP=0
    for n in "${IDLE_LIST[@]}"; do [ "$n" -le "$IDLE_TOP" ] || IDLE_TOP=$n; done
    [ -z "$IDLE_CAPPED" ] || log "idle counts: $IDLE_CAPPED (open-file limit $FDS, hard limit $(ulimit -Hn); ulimit -n, see tuning/README.md)"
    log "idle counts: ${IDLE_LIST[*]}"
fi
[ "$FDS" -ge 65536 ] || log "open-file limit $FDS (hard limit $(ulimit -Hn)); proxies get that"
# The proxies' connection limits: at least the largest idle count; without idle scenarios,
# what they always were. nginx's worker_connections (which ringgate's importer reads as
# max_connections_per_worker) counts upstream connections too, and once fewer than 1/16 of
# them are free nginx closes idle keep-alive connections to make room ("worker_connections
# are not enough, reusing connections": 1,120 of 19,900 idle connections closed in a first
# try with worker_connections 20100), so it gets the count and the spare, times 16/15. Above
# the open-file limit nginx warns, and the descriptors, not worker_connections, are the bound.
HAPROXY_MAXCONN=$((IDLE_TOP + 100))
NGINX_WORKER_CONNS=16384
need_wc=$(((IDLE_TOP + 400) * 16 / 15 + 1))
[ "$NGINX_WORKER_CONNS" -ge "$need_wc" ] || NGINX_WORKER_CONNS=$need_wc

# ---------------------------------------------------------------- build
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building ringgate and ringgate-load, with its echo upstreams (release, target dir $TARGET_DIR)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p ringgate -p ringgate-load)
fi
RINGGATE=$TARGET_DIR/release/ringgate
LOAD=$TARGET_DIR/release/ringgate-load
WS_ECHO=$TARGET_DIR/release/ringgate-ws-echo
GRPC_ECHO=$TARGET_DIR/release/ringgate-grpc-echo
# ringgate's own binary only when it is among the proxies (an nginx-only run needs no build of it).
[[ " $PROXIES " != *" ringgate "* ]] || [ -x "$RINGGATE" ] || die "$RINGGATE missing"
[ -x "$LOAD" ] || die "$LOAD missing"

# ---------------------------------------------------------------- processes and cleanup
W=$(mktemp -d /tmp/ringgate-bench.XXXXXX)
# nginx workers run as an unprivileged user: they must reach the upstream's files.
chmod 755 "$W"
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: TERM, wait up to 5 s, then KILL; removes it from PIDS.
stop() {
    local p=$1 q keep=()
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for q in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

USED_PORTS=" "
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports below the kernel's ephemeral range, so that no client socket of the load generator (or
# one in TIME_WAIT) holds the port we bind.
EPH_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPH_LOW" -gt 12000 ] || EPH_LOW=32768
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % (EPH_LOW - 10000)))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if command -v ss >/dev/null 2>&1; then
            ss -Htan "sport = :$p" 2>/dev/null | grep -q . && continue
        fi
        port_busy "$p" && continue
        USED_PORTS="$USED_PORTS$p "
        echo "$p"
        return 0
    done
    die "no free port found"
}

wait_port() { # port pid what
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || die "$3 exited at startup (see logs under $W)"
        port_busy "$1" && return 0
        sleep 0.1
    done
    die "$3 not listening on $1 after 10 s"
}

# ---------------------------------------------------------------- certificates
log "certificates in $W/pki"
mkdir -p "$W/pki" && cd "$W/pki"
cat >ca.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ringgate bench CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
cat >server.ext <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
cat >client.ext <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
ec_key ca.key
openssl req -x509 -new -key ca.key -config ca.cnf -extensions v3_ca -days 7 -sha256 -out ca.crt
issue() { # name keygen cn ext
    "$2" "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -sha256 \
        -extfile "$4" -out "$1.crt" 2>/dev/null
}
issue server-ecdsa ec_key localhost server.ext
issue server-rsa rsa_key localhost server.ext
issue client ec_key bench-client client.ext
# up-mtls-*: the TLS upstream's server certificate (localhost, 127.0.0.1) and the client
# certificate the proxies present to it, from the same CA.
issue upstream-server ec_key localhost server.ext
issue proxy-client ec_key bench-proxy client.ext
openssl verify -CAfile ca.crt server-ecdsa.crt server-rsa.crt client.crt upstream-server.crt \
    proxy-client.crt >/dev/null || die "certificate chain does not verify"
# HAProxy reads the certificate and its key from one file.
cat server-ecdsa.crt server-ecdsa.key >server-ecdsa.pem
cat server-rsa.crt server-rsa.key >server-rsa.pem
cat proxy-client.crt proxy-client.key >proxy-client.pem
PKI=$W/pki
cd "$ROOT"

# ---------------------------------------------------------------- upstream
# One nginx, fixed bodies: "ok\n" at / and 64 KiB at /64k.
UPORT=$(free_port)
U=$W/upstream
mkdir -p "$U/logs" "$U/tmp" "$U/www"
head -c 65536 /dev/zero | tr '\0' 'x' >"$U/www/64k"
cat >"$W/upstream.conf" <<EOF
daemon off;
master_process on;
pid $U/nginx.pid;
error_log $U/logs/error.log warn;
worker_processes 1;
worker_rlimit_nofile $FDS;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $U/tmp/body;
    proxy_temp_path $U/tmp/proxy;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UPORT reuseport backlog=4096;
        default_type text/plain;
        location = /64k { root $U/www; }
        location / { return 200 "ok\n"; }
    }
}
EOF
taskset -c "$UPSTREAM_CPU" "$NGINX" -p "$U" -c "$W/upstream.conf" -e "$U/logs/error.log" &
UPID=$!
PIDS+=("$UPID")
wait_port "$UPORT" "$UPID" "upstream nginx"
log "upstream nginx pid $UPID on 127.0.0.1:$UPORT (cpu $UPSTREAM_CPU)"


# ---------------------------------------------------------------- TLS upstream (up-mtls-*)
# up-mtls-* only: a second nginx on the upstream's CPU that serves TLS and requires a client
# certificate from the bench CA (the service-mesh case: mTLS on both sides of the proxy), with
# "ok\n" at every path. Its access log, one line per request with the connection's serial
# number, its request count, whether its TLS session was resumed, the protocol and the SNI,
# gives the upstream handshakes per request and the share resumed (see upstream_tls_stats).
# The proxies get the two locations only when an up-mtls scenario runs, so the other
# scenarios run the configuration they always did:
#   /up-mtls-pool/  -> upstream app_tls (keepalive UP_MTLS_KEEPALIVE), HTTP/1.1, Connection "";
#   /up-mtls-close/ -> upstream app_tls_close (no keepalive), nginx's default HTTP/1.0 with
#                      Connection: close: one upstream connection, one handshake, per request.
UPTLS_HTTP= UPTLS_LOCATION= UPTLS_HAPROXY_USE= UPTLS_HAPROXY_BACKEND= UPTLS_LOG=
if any_wanted "${UP_MTLS_SCENARIOS[@]}"; then
    UTPORT=$(free_port)
    UT=$W/upstream-tls
    mkdir -p "$UT/logs" "$UT/tmp"
    UPTLS_LOG=$UT/logs/access.log
    : >"$UPTLS_LOG"
    cat >"$W/upstream-tls.conf" <<EOF
daemon off;
master_process on;
pid $UT/nginx.pid;
error_log $UT/logs/error.log warn;
worker_processes 1;
worker_rlimit_nofile $FDS;
events { worker_connections 16384; }
http {
    log_format mtls '\$connection \$connection_requests \$ssl_session_reused \$ssl_protocol '
                    '\$status sni=\$ssl_server_name';
    # Buffered (one write per 256 KiB or per second): run.sh waits out the flush before it
    # counts the lines of a scenario.
    access_log $UPTLS_LOG mtls buffer=256k flush=1s;
    client_body_temp_path $UT/tmp/body;
    proxy_temp_path $UT/tmp/proxy;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UTPORT ssl reuseport backlog=4096;
        ssl_certificate $PKI/upstream-server.crt;
        ssl_certificate_key $PKI/upstream-server.key;
        ssl_client_certificate $PKI/ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 1;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:UPSSL:10m;
        ssl_session_timeout 5m;
        default_type text/plain;
        location / { return 200 "ok\n"; }
    }
}
EOF
    taskset -c "$UPSTREAM_CPU" "$NGINX" -p "$UT" -c "$W/upstream-tls.conf" -e "$UT/logs/error.log" &
    UTPID=$!
    PIDS+=("$UTPID")
    wait_port "$UTPORT" "$UTPID" "TLS upstream nginx"
    log "TLS upstream nginx (client certificate required) pid $UTPID on 127.0.0.1:$UTPORT (cpu $UPSTREAM_CPU)"
    # The TLS settings towards it, the same in both locations. nginx verifies the name in
    # proxy_ssl_name (default: the upstream block's name, app_tls) and sends no SNI
    # (proxy_ssl_server_name off, the default). nginx 1.22's default proxy_ssl_protocols is
    # TLSv1 TLSv1.1 TLSv1.2: TLSv1.3 is named so that every proxy talks TLS 1.3 to it.
    up_ssl="            proxy_ssl_certificate $PKI/proxy-client.crt;
            proxy_ssl_certificate_key $PKI/proxy-client.key;
            proxy_ssl_trusted_certificate $PKI/ca.crt;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
            proxy_ssl_session_reuse on;"
    UPTLS_HTTP="    upstream app_tls {
        server 127.0.0.1:$UTPORT;
        keepalive $UP_MTLS_KEEPALIVE;
    }
    upstream app_tls_close {
        server 127.0.0.1:$UTPORT;
    }"
    UPTLS_LOCATION="        location /up-mtls-pool/ {
            proxy_pass https://app_tls;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
$up_ssl
        }
        location /up-mtls-close/ {
            proxy_pass https://app_tls_close;
$up_ssl
        }"
    # HAProxy: the same client certificate, CA and name check (verifyhost; no SNI sent). The
    # pool: its default reuse (http-reuse safe, set here over the defaults' always) with
    # pool-max-conn as nginx's keepalive; close: no reuse, and the server side closed after
    # each response (http-server-close: "Connection: close" to the upstream).
    up_srv="ssl crt $PKI/proxy-client.pem ca-file $PKI/ca.crt verify required verifyhost localhost ssl-min-ver TLSv1.2"
    UPTLS_HAPROXY_USE="    use_backend app_tls if { path_beg /up-mtls-pool/ }
    use_backend app_tls_close if { path_beg /up-mtls-close/ }"
    UPTLS_HAPROXY_BACKEND="backend app_tls
    http-reuse safe
    server up 127.0.0.1:$UTPORT $up_srv pool-max-conn $UP_MTLS_KEEPALIVE
backend app_tls_close
    http-reuse never
    option http-server-close
    server up 127.0.0.1:$UTPORT $up_srv"
fi

# ---------------------------------------------------------------- WebSocket echo upstream
# ws-echo only: an echo server behind /ws, on the upstream's CPU. The proxies' configurations
# get the WebSocket location only when the scenario runs, so the other scenarios run the
# configuration they always did.
WS_HTTP= WS_LOCATION= WS_HAPROXY_USE= WS_HAPROXY_BACKEND=
if wanted ws-echo; then
    WSPORT=$(free_port)
    case $WS_UPSTREAM in
    rust)
        [ -x "$WS_ECHO" ] || die "$WS_ECHO missing"
        taskset -c "$UPSTREAM_CPU" "$WS_ECHO" "127.0.0.1:$WSPORT" >"$W/ws-echo.out" 2>&1 &
        ;;
    python)
        python3 -c 'import websockets.asyncio.server' 2>/dev/null \
            || die "WS_UPSTREAM=python needs python websockets 13+ (python3 -m pip install websockets)"
        taskset -c "$UPSTREAM_CPU" python3 "$ROOT/scripts/ws-echo-upstream.py" "$WSPORT" \
            >"$W/ws-echo.out" 2>&1 &
        ;;
    *) die "WS_UPSTREAM must be rust or python, not $WS_UPSTREAM" ;;
    esac
    WSPID=$!
    PIDS+=("$WSPID")
    wait_port "$WSPORT" "$WSPID" "WebSocket echo upstream ($WS_UPSTREAM)"
    log "WebSocket echo upstream ($WS_UPSTREAM) pid $WSPID on 127.0.0.1:$WSPORT (cpu $UPSTREAM_CPU)"
    # nginx's WebSocket idiom; ringgate's importer reads it as `upgrade = ["websocket"]`.
    WS_HTTP="    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }"
    WS_LOCATION="        location /ws {
            proxy_pass http://127.0.0.1:$WSPORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_read_timeout 300s;
        }"
    WS_HAPROXY_USE="    use_backend wsecho if { path_beg /ws }"
    WS_HAPROXY_BACKEND="backend wsecho
    timeout tunnel 300s
    server ws 127.0.0.1:$WSPORT"
fi

# ---------------------------------------------------------------- gRPC echo upstream
# grpc-* only: ringgate-grpc-echo (loadtest/src/grpc_echo.rs: HTTP/2 cleartext, prior
# knowledge; every call's message echoed with grpc-status 0) on the upstream's CPU, one thread.
# The proxies get, only when a gRPC scenario runs, a location /bench.Echo/ that forwards to it:
# nginx `grpc_pass grpc://grpc_echo` (an upstream block with GRPC_NGINX_KEEPALIVE), ringgate
# `proxy_pass = "grpc://127.0.0.1:PORT"` (see start_proxy), HAProxy a backend with `proto h2`.
GRPC_SCENARIOS=(grpc-unary grpc-unary-10)
GRPC_HTTP= GRPC_LOCATION= GRPC_TOML= GRPC_HAPROXY_USE= GRPC_HAPROXY_BACKEND= GRPC_PID=
RINGGATE_GRPC_CONFIG=
if any_wanted "${GRPC_SCENARIOS[@]}"; then
    [ -x "$GRPC_ECHO" ] || die "$GRPC_ECHO missing"
    GPORT=$(free_port)
    taskset -c "$UPSTREAM_CPU" "$GRPC_ECHO" "127.0.0.1:$GPORT" --threads 1 >"$W/grpc-echo.out" 2>&1 &
    GRPC_PID=$!
    PIDS+=("$GRPC_PID")
    wait_port "$GPORT" "$GRPC_PID" "gRPC echo upstream"
    log "gRPC echo upstream pid $GRPC_PID on 127.0.0.1:$GPORT (cpu $UPSTREAM_CPU)"
    if [ "$GRPC_NGINX_KEEPALIVE" -gt 0 ]; then
        GRPC_HTTP="    upstream grpc_echo {
        server 127.0.0.1:$GPORT;
        keepalive $GRPC_NGINX_KEEPALIVE;
    }"
        GRPC_TARGET=grpc_echo
    else
        GRPC_TARGET=127.0.0.1:$GPORT
    fi
    GRPC_LOCATION="        location /bench.Echo/ {
            grpc_pass grpc://$GRPC_TARGET;
        }"
    # ringgate's location when its importer does not translate grpc_pass (yet): added to the
    # first listener of the TOML that the same nginx.conf without it translates to.
    GRPC_TOML="# gRPC echo: written by bench/run.sh (the importer did not translate grpc_pass)
[[listener.location]]
path = \"/bench.Echo/\"
proxy_pass = \"grpc://127.0.0.1:$GPORT\""
    GRPC_HAPROXY_USE="    use_backend grpcecho if { path_beg /bench.Echo/ }"
    GRPC_HAPROXY_BACKEND="backend grpcecho
    server grpc 127.0.0.1:$GPORT proto h2"
fi

# ---------------------------------------------------------------- proxy configurations
# The same nginx.conf for nginx and ringgate (`ringgate run --nginx-config`): upstream
# keepalive needs proxy_http_version 1.1 and Connection "" (ringgate's importer keeps the
# pool only then, as nginx reuses connections only then).
nginx_conf() { # dir port kind(ecdsa|rsa) [h2 [port2]]
    mkdir -p "$1/logs" "$1/tmp"
    # h2: HTTP/2 offered in ALPN (nginx 1.22's `listen ... http2`; ringgate's importer reads it
    # as `http2 = true`); with a second port, a listener without client verification for the
    # h2load cross-check.
    local opts=ssl extra=
    if [ "${4:-}" = h2 ]; then
        opts="ssl http2"
        [ -z "${5:-}" ] || extra="    server {
        listen 127.0.0.1:$5 ssl http2 backlog=4096;
        ssl_certificate $PKI/server-$3.crt;
        ssl_certificate_key $PKI/server-$3.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 5m;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
    fi
    cat <<EOF
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
worker_processes 1;
worker_rlimit_nofile $FDS;
events { worker_connections $NGINX_WORKER_CONNS; }
http {
    access_log off;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    keepalive_requests 100000;
    keepalive_timeout $KA_TIMEOUT;
$WS_HTTP
$GRPC_HTTP
$UPTLS_HTTP
    upstream app {
        server 127.0.0.1:$UPORT;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$2 $opts backlog=4096;
        ssl_certificate $PKI/server-$3.crt;
        ssl_certificate_key $PKI/server-$3.key;
        ssl_client_certificate $PKI/ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 1;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 5m;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
$WS_LOCATION
$GRPC_LOCATION
$UPTLS_LOCATION
    }
$extra
}
EOF
}

haproxy_conf() { # dir port kind [h2 [port2]]
    mkdir -p "$1"
    local alpn=http/1.1 extra=
    if [ "${4:-}" = h2 ]; then
        alpn=h2,http/1.1
        [ -z "${5:-}" ] || extra="    bind 127.0.0.1:$5 ssl crt $PKI/server-$3.pem alpn $alpn"
    fi
    cat <<EOF
global
    nbthread 1
    cpu-map 1/1 $PROXY_CPU
    ulimit-n $FDS
    # HAProxy wants 2 x maxconn descriptors; idle client connections use one each, so a
    # lower hard limit (20000 here) is enough: warn instead of refusing to start.
    no strict-limits
    maxconn $HAPROXY_MAXCONN
    ssl-default-bind-options ssl-min-ver TLSv1.2
    tune.ssl.cachesize 100000
defaults
    mode http
    maxconn $HAPROXY_MAXCONN
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client $KA_TIMEOUT
    timeout server 60s
    timeout http-request 60s
    timeout http-keep-alive $KA_TIMEOUT
frontend bench
    bind 127.0.0.1:$2 ssl crt $PKI/server-$3.pem ca-file $PKI/ca.crt verify required alpn $alpn
$extra
$WS_HAPROXY_USE
$GRPC_HAPROXY_USE
$UPTLS_HAPROXY_USE
    default_backend app
backend app
    server app 127.0.0.1:$UPORT pool-max-conn 32
$WS_HAPROXY_BACKEND
$GRPC_HAPROXY_BACKEND
$UPTLS_HAPROXY_BACKEND
EOF
}

# ringgate's TOML for the nginx.conf in DIR when it has the gRPC location: what `ringgate
# import-nginx` makes of that nginx.conf where it translates grpc_pass (its lines already forward
# /bench.Echo/ with grpc://); where it refuses it, what it makes of the same nginx.conf without
# the gRPC location and upstream, with GRPC_TOML added to the first listener. Either way the rest
# of the configuration is the one `run --nginx-config` would serve. RINGGATE_GRPC_CONFIG says
# which (for the report).
ringgate_grpc_toml() { # dir port kind variant port2
    local d=$1
    if "$RINGGATE" import-nginx "$d/nginx.conf" >"$d/ringgate.toml" 2>"$d/import.err" \
        && grep -q 'grpc://' "$d/ringgate.toml"; then
        RINGGATE_GRPC_CONFIG="ringgate import-nginx (grpc_pass translated)"
        return
    fi
    local how
    how=$(grep -m1 'grpc' "$d/import.err" || echo "no grpc:// in its output")
    GRPC_LOCATION= GRPC_HTTP= nginx_conf "$@" >"$d/nginx-nogrpc.conf"
    "$RINGGATE" import-nginx "$d/nginx-nogrpc.conf" >"$d/ringgate-base.toml" 2>"$d/import.err" \
        || die "ringgate import-nginx failed: $(tail -n3 "$d/import.err")"
    # Before the second [[listener]] (H2LOAD's listener without client verification), or at
    # the end.
    awk -v loc="$GRPC_TOML" '
        /^\[\[listener\]\]/ && ++n == 2 && !done { print loc; print ""; done = 1 }
        { print }
        END { if (!done) { print ""; print loc } }' "$d/ringgate-base.toml" >"$d/ringgate.toml"
    RINGGATE_GRPC_CONFIG="import-nginx of the rest, gRPC location written by run.sh (importer: ${how#*: })"
}

# Start PROXY with certificate KIND on a new port; sets PPID_ (pid) and PPORT. With VARIANT h2,
# HTTP/2 is offered in ALPN, and with H2LOAD=1 (first round) a listener without client
# verification is added on PPORT2.
start_proxy() { # proxy kind [variant]
    local name=$1 kind=$2 variant=${3:-} d=$W/$1-$2${3:+-$3}-r$round
    PDIR=$d
    # The idle scenarios' proxies keep idle connections IDLE_KEEPALIVE_TIMEOUT: 19,600 full
    # handshakes took 70 to 85 s on this shared 2-core VM, and with 75 s the first connections
    # timed out (nginx keepalive_timeout, HAProxy timeout http-keep-alive and client) before
    # the last had opened. Every other proxy keeps the 75 s it always had.
    KA_TIMEOUT=75s
    [[ $variant != idle-* ]] || KA_TIMEOUT=$IDLE_KEEPALIVE_TIMEOUT
    PPORT=$(free_port)
    PPORT2=
    if [ "$variant" = h2 ] && [ "$H2LOAD" = 1 ] && [ "$round" = 1 ]; then PPORT2=$(free_port); fi
    mkdir -p "$d"
    case $name in
    nginx)
        nginx_conf "$d" "$PPORT" "$kind" "$variant" "$PPORT2" >"$d/nginx.conf"
        taskset -c "$PROXY_CPU" "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" \
            >"$d/out" 2>"$d/err" &
        PPID_=$!
        PIDS+=("$PPID_")
        wait_port "$PPORT" "$PPID_" "nginx"
        ;;
    haproxy)
        haproxy_conf "$d" "$PPORT" "$kind" "$variant" "$PPORT2" >"$d/haproxy.cfg"
        taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$d/haproxy.cfg" >"$d/out" 2>"$d/err" &
        PPID_=$!
        PIDS+=("$PPID_")
        wait_port "$PPORT" "$PPID_" "haproxy"
        ;;
    ringgate)
        nginx_conf "$d" "$PPORT" "$kind" "$variant" "$PPORT2" >"$d/nginx.conf"
        local conf=(--nginx-config "$d/nginx.conf")
        [ -z "$GRPC_LOCATION" ] || { ringgate_grpc_toml "$d" "$PPORT" "$kind" "$variant" "$PPORT2"; conf=(--config "$d/ringgate.toml"); }
        taskset -c "$PROXY_CPU" "$RINGGATE" run "${conf[@]}" --workers 1 \
            >"$d/out" 2>"$d/err" &
        PPID_=$!
        PIDS+=("$PPID_")
        for _ in $(seq 100); do
            grep -q '^ringgate ready' "$d/out" 2>/dev/null && break
            kill -0 "$PPID_" 2>/dev/null || break
            sleep 0.1
        done
        grep -q '^ringgate ready' "$d/out" || die "ringgate did not start: $(tail -n5 "$d/err")"
        ;;
    esac
    log "$name ($kind${variant:+, $variant}) pid $PPID_ on 127.0.0.1:$PPORT${PPORT2:+ and $PPORT2 (no client verification)} (cpu $PROXY_CPU)"
}

# ---------------------------------------------------------------- measurement helpers
# The pid and its descendants (nginx: master + worker).
proc_tree() {
    local p c
    for p in "$@"; do
        echo "$p"
        for c in $(cat "/proc/$p/task/"*/children 2>/dev/null); do proc_tree "$c"; done
    done
}
# utime+stime in clock ticks of all the proxy's processes.
cpu_ticks() {
    local total=0 p s
    for p in $(proc_tree "$1"); do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }
        # after "comm) ": state is field 1; utime, stime are fields 12, 13 here
        # shellcheck disable=SC2086
        set -- $s
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
# Resident memory (kB) of all the proxy's processes.
rss_kb() {
    local total=0 p v
    for p in $(proc_tree "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)
json_num() { grep -o "\"$2\":[-0-9.eE+]*" "$1" | head -n1 | cut -d: -f2; }

mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%d-%H%M%S)
JSONL=$W/run.jsonl
: >"$JSONL"

# scenario -> certificate kind, URL path, ringgate-load arguments
scenario_kind() { case $1 in hs-full-rsa) echo rsa ;; *) echo ecdsa ;; esac; }
scenario_path() {
    case $1 in
    ka-64k | h2-64k | idle-memory-64k) echo /64k ;;
    ws-echo) echo /ws ;;
    grpc-*) echo "$GRPC_PATH" ;;
    up-mtls-*) echo "/$1/" ;;
    *) echo / ;;
    esac
}
# h2 and gRPC scenarios: connections and streams per connection (h2load's -c and -m).
scenario_h2() { case $1 in h2-small-10 | grpc-unary-10) echo "$H2_CONNS $H2_STREAMS" ;; *) echo "$CONNS 1" ;; esac; }
scenario_args() {
    case $1 in
    ka-small | ka-64k | up-mtls-pool | up-mtls-close) echo "--mode keepalive -c $CONNS -d $DURATION" ;;
    hs-full-ecdsa | hs-full-rsa) echo "--mode handshake -c $CONNS -d $DURATION" ;;
    hs-resumed-tls13) echo "--mode handshake --resume --tls 1.3 -c $CONNS -d $DURATION" ;;
    hs-resumed-tls12) echo "--mode handshake --resume --tls 1.2 -c $CONNS -d $DURATION" ;;
    rate-latency) echo "--mode keepalive --rate $RATE -c $CONNS -d $DURATION" ;;
    idle-memory | idle-memory-64k) echo "--idle $IDLE_N --idle-request -d $IDLE_HOLD" ;;
    ws-echo) echo "--mode websocket --message-size $WS_MESSAGE_SIZE -c $CONNS -d $DURATION" ;;
    h2-small | h2-small-10 | h2-64k)
        # shellcheck disable=SC2046
        set -- $(scenario_h2 "$1")
        echo "--mode h2 --streams $2 -c $1 -d $DURATION"
        ;;
    grpc-unary | grpc-unary-10)
        # shellcheck disable=SC2046
        set -- $(scenario_h2 "$1")
        echo "--mode grpc --streams $2 -c $1 --message-size $GRPC_MESSAGE_SIZE -d $DURATION"
        ;;
    esac
}
ECDSA_SCENARIOS=(ka-small ka-64k hs-full-ecdsa hs-resumed-tls13 hs-resumed-tls12 rate-latency ws-echo
    up-mtls-pool up-mtls-close)
# IDLE_SCENARIOS (above) run on a proxy started for each count and scenario, after these.
IDLE_N=
# Run on a proxy started with HTTP/2 in ALPN (the scenarios above keep the configuration they
# always had).
H2_SCENARIOS=(h2-small h2-small-10 h2-64k)
# The gRPC scenarios (GRPC_SCENARIOS, above) run on that proxy too, after the h2 ones.
RATE=${RATE:-}

# The TLS upstream's access log (up-mtls-*): its lines so far, once the buffer has been
# written out (flush=1s), and a range of lines summed up as JSON: requests, handshakes (a
# connection's first request: every upstream connection is a TLS handshake), those resumed
# ($ssl_session_reused "r"), non-200 statuses, handshakes with SNI, and the protocols.
uptls_lines() {
    sleep 1.5
    if [ -s "$UPTLS_LOG" ]; then wc -l <"$UPTLS_LOG"; else echo 0; fi
}
upstream_tls_stats() { # first last (line numbers, inclusive)
    awk -v a="$1" -v b="$2" '
        NR >= a && NR <= b {
            req++
            if ($5 != 200) bad++
            if ($2 == 1) {
                hs++
                if ($3 == "r") res++
                if ($6 != "sni=-") sni++
                proto[$4]++
            }
        }
        END {
            p = ""
            for (k in proto) p = p (p == "" ? "" : ",") "\"" k "\":" proto[k]
            printf "{\"requests\":%d,\"handshakes\":%d,\"resumed\":%d,\"non200\":%d,\"with_sni\":%d,\"protocols\":{%s}}", req, hs, res, bad, sni, p
        }' "$UPTLS_LOG"
}

# run_scenario proxy pid port scenario
run_scenario() {
    local name=$1 pid=$2 port=$3 sc=$4 out err before after req ticks errs rss0=0 rss1=0 args lpid
    local up_before=0 up_after=0 extra= log0=0 uptls
    out=$W/$name-$sc.json
    err=$W/$name-$sc.err
    args=$(scenario_args "$sc")
    local common=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$PKI/ca.crt"
        --sni localhost -H "Host: localhost:$port" --json -t "$LOAD_THREADS")
    local url="https://127.0.0.1:$port$(scenario_path "$sc")"
    log "$name: $sc: ringgate-load $url $args"
    local perf_pid=
    if [[ " $PROFILE " == *" $name "* ]] && command -v perf >/dev/null 2>&1; then
        perf record -q -F 999 -g -p "$pid" -o "$RESULTS/run-$STAMP-$name-$sc.perf.data" \
            >/dev/null 2>&1 &
        perf_pid=$!
        sleep 0.5
    fi
    if [[ $sc == up-mtls-* ]]; then
        # A warm-up on the scenario's own location (the pool filled, a session to resume),
        # then the upstream's log lines from here on are this scenario's.
        warm_up "$port" "$(scenario_path "$sc")"
        log0=$(uptls_lines)
    fi
    if [[ $sc == idle-memory* ]]; then
        out=$W/$name-$sc-$IDLE_N.json
        err=$W/$name-$sc-$IDLE_N.err
        extra=",\"idle_count\":$IDLE_N"
        sleep 1
        rss0=$(rss_kb "$pid")
        before=$(cpu_ticks "$pid")
        # shellcheck disable=SC2086
        taskset -c "$LOAD_CPU" "$LOAD" "$url" "${common[@]}" $args >"$out" 2>"$err" &
        lpid=$!
        PIDS+=("$lpid")
        # Up to 10 minutes for the connections to open (20,000 full handshakes on a busy
        # core take minutes).
        for _ in $(seq 6000); do
            grep -q 'idle: .* connections open' "$err" 2>/dev/null && break
            kill -0 "$lpid" 2>/dev/null || break
            sleep 0.1
        done
        grep -q 'idle: .* connections open' "$err" 2>/dev/null \
            || log "$name: $sc: WARNING the connections were not all open when RSS was read"
        sleep 1
        rss1=$(rss_kb "$pid")
        log "$name: $sc: $(grep -o 'idle: .*' "$err" | head -n1); RSS ${rss0} kB -> ${rss1} kB ($(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE_N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }') bytes per connection)"
        wait "$lpid" || log "$name: $sc: ringgate-load failed: $(tail -n3 "$err")"
        stop "$lpid"
        after=$(cpu_ticks "$pid")
    else
        [ -z "$GRPC_PID" ] || up_before=$(cpu_ticks "$GRPC_PID")
        before=$(cpu_ticks "$pid")
        # shellcheck disable=SC2086
        if ! taskset -c "$LOAD_CPU" "$LOAD" "$url" "${common[@]}" -q $args >"$out" 2>"$err"; then
            log "$name: $sc: ringgate-load failed: $(tail -n3 "$err")"
        fi
        after=$(cpu_ticks "$pid")
        [ -z "$GRPC_PID" ] || up_after=$(cpu_ticks "$GRPC_PID")
    fi
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        log "$name: $sc: profile: perf report -i $RESULTS/run-$STAMP-$name-$sc.perf.data"
    fi
    [ -s "$out" ] || echo '{}' >"$out"
    if ! kill -0 "$pid" 2>/dev/null; then
        local st=0
        wait "$pid" 2>/dev/null || st=$?
        log "$name: PROXY EXITED during $sc, status $st$([ "$st" -le 128 ] || echo " (signal $((st - 128)))"); its last lines: $(tail -n3 "$PDIR/err" "$PDIR/logs/error.log" 2>/dev/null | tr '\n' ' ')"
    fi
    if [[ $sc == up-mtls-* ]]; then
        uptls=$(upstream_tls_stats "$((log0 + 1))" "$(uptls_lines)")
        extra=",\"upstream_tls\":$uptls"
        log "$name: $sc: TLS upstream's log: $uptls"
    fi
    req=$(json_num "$out" requests); req=${req:-0}
    errs=$(json_num "$out" errors_total); errs=${errs:-0}
    ticks=$((after - before))
    # gRPC scenarios: the echo upstream's CPU as well (is it the limit?).
    local up_ticks=$((up_after - up_before)) up_note=
    [[ $sc != grpc-* ]] || up_note=", gRPC echo cpu $up_ticks ticks ($(awk -v t="$up_ticks" -v hz="$HZ" -v d="$(json_num "$out" duration_s)" 'BEGIN { printf "%.0f", (d > 0 ? 100 * t / hz / d : 0) }')% of a core)"
    printf '{"proxy":"%s","scenario":"%s","round":%d,"url":"%s","args":"%s","cpu_ticks":%d,"clk_tck":%d,"rss_before_kb":%d,"rss_after_kb":%d,"upstream_cpu_ticks":%d%s,"result":%s}\n' \
        "$name" "$sc" "$round" "$url" "$args" "$ticks" "$HZ" "$rss0" "$rss1" "$up_ticks" "$extra" "$(cat "$out")" >>"$JSONL"
    local unit=req/s what=requests
    [ "$sc" != ws-echo ] || { unit=msg/s; what=messages; }
    [[ $sc != grpc-* ]] || { unit=calls/s; what=calls; }
    log "$name: $sc: $(printf '%.0f' "$(json_num "$out" rps)") $unit, p99 $(json_num "$out" p99) us, errors $errs, cpu $ticks ticks for $req $what$up_note"
    if [ "$errs" != 0 ]; then
        grep -o '"errors":{[^}]*}' "$out" | sed "s/^/[bench] $name: $sc: /" >&2 || true
        grep -o '"grpc_statuses":{[^}]*}' "$out" | sed "s/^/[bench] $name: $sc: /" >&2 || true
        grep 'sample error' "$err" | head -n3 | sed "s/^/[bench] $name: $sc: /" >&2 || true
    fi
    # Every connection of ws-echo answers its upgrade with a 101 (its messages have no status).
    local non200 ok_status='"200"'
    [ "$sc" != ws-echo ] || ok_status='"101"'
    non200=$(grep -o '"statuses":{[^}]*}' "$out" | grep -o '"[0-9]*":[0-9]*' | grep -v "^$ok_status" || true)
    [ -z "$non200" ] || log "$name: $sc: WARNING non-200 responses: $(echo $non200)"
}

warm_up() { # port path [ringgate-load arguments]
    local port=$1 path=$2
    shift 2
    taskset -c "$LOAD_CPU" "$LOAD" "https://127.0.0.1:$port$path" --cert "$PKI/client.crt" \
        --key "$PKI/client.key" --cacert "$PKI/ca.crt" --sni localhost \
        -H "Host: localhost:$port" -q -c "$CONNS" -d "$WARMUP" "$@" >/dev/null 2>&1 || true
}

# H2LOAD=1: the same h2 load from ringgate-load without a client certificate and from h2load,
# on the proxy's listener without client verification; rows with "tool" in the JSONL.
cross_check() { # proxy pid port2 scenario
    local name=$1 pid=$2 port=$3 sc=$4 c m path url out before after res
    read -r c m <<<"$(scenario_h2 "$sc")"
    path=$(scenario_path "$sc")
    url="https://127.0.0.1:$port$path"
    out=$W/$name-$sc-noverify.json
    before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2046
    taskset -c "$LOAD_CPU" "$LOAD" "$url" --cacert "$PKI/ca.crt" --sni localhost \
        -H "Host: localhost:$port" --json -q -t "$LOAD_THREADS" $(scenario_args "$sc") \
        >"$out" 2>"$out.err" || log "$name: $sc: ringgate-load failed: $(tail -n3 "$out.err")"
    after=$(cpu_ticks "$pid")
    [ -s "$out" ] || echo '{}' >"$out"
    printf '{"proxy":"%s","scenario":"%s","round":%d,"tool":"ringgate-load","url":"%s","args":"%s","cpu_ticks":%d,"clk_tck":%d,"result":%s}\n' \
        "$name" "$sc" "$round" "$url" "$(scenario_args "$sc") (no client certificate)" \
        "$((after - before))" "$HZ" "$(cat "$out")" >>"$JSONL"
    log "$name: $sc: cross-check, ringgate-load without client certificate: $(printf '%.0f' "$(json_num "$out" rps)") req/s, errors $(json_num "$out" errors_total)"
    url="https://localhost:$port$path"
    out=$W/$name-$sc-h2load.txt
    before=$(cpu_ticks "$pid")
    taskset -c "$LOAD_CPU" h2load -c "$c" -m "$m" -t "$LOAD_THREADS" -D "$DURATION" \
        --connect-to "127.0.0.1:$port" "$url" >"$out" 2>&1 || log "$name: $sc: h2load failed: $(tail -n3 "$out")"
    after=$(cpu_ticks "$pid")
    res=$(python3 "$ROOT/bench/report.py" --parse-h2load "$out")
    printf '{"proxy":"%s","scenario":"%s","round":%d,"tool":"h2load","url":"%s","args":"%s","cpu_ticks":%d,"clk_tck":%d,"result":%s}\n' \
        "$name" "$sc" "$round" "$url" "-c $c -m $m -t $LOAD_THREADS -D $DURATION --connect-to 127.0.0.1:$port" \
        "$((after - before))" "$HZ" "$res" >>"$JSONL"
    log "$name: $sc: cross-check, h2load: $(grep -o 'finished in .*' "$out" | head -n1); $(grep -o '^requests: .*' "$out" | head -n1)"
}

save_logs() { # proxy kind [log name]; the translation's "directive ignored" warnings are left out
    local d=$W/$1-$2-r$round f dst=$RESULTS/run-$STAMP-$1-${3:-$2}.log n0=0
    [ ! -s "$dst" ] || n0=$(wc -l <"$dst")
    for f in "$d/err" "$d/logs/error.log"; do
        [ -s "$f" ] && grep -v ': warning: .*ignored' "$f" >>"$dst" || true
    done
    if [ -s "$dst" ]; then
        [ "$(wc -l <"$dst")" = "$n0" ] || log "$1 ($2) logged $(($(wc -l <"$dst") - n0)) lines: $dst"
    else
        rm -f "$dst"
    fi
}

# ---------------------------------------------------------------- the run
for round in $(seq "$ROUNDS"); do
[ "$ROUNDS" = 1 ] || log "round $round of $ROUNDS"
for proxy in $PROXIES; do
    if any_wanted "${H2_SCENARIOS[@]}" "${GRPC_SCENARIOS[@]}"; then
        start_proxy "$proxy" ecdsa h2
        [ "$proxy" != ringgate ] || [ -z "$RINGGATE_GRPC_CONFIG" ] \
            || log "ringgate: gRPC configuration: $RINGGATE_GRPC_CONFIG"
        ! any_wanted "${H2_SCENARIOS[@]}" || warm_up "$PPORT" / --mode h2
        ! any_wanted "${GRPC_SCENARIOS[@]}" || warm_up "$PPORT" "$GRPC_PATH" --mode grpc
        for sc in "${H2_SCENARIOS[@]}" "${GRPC_SCENARIOS[@]}"; do
            wanted "$sc" || continue
            run_scenario "$proxy" "$PPID_" "$PPORT" "$sc"
            # h2load cannot tell a gRPC call's grpc-status: no cross-check for those.
            [ -z "$PPORT2" ] || [[ $sc == grpc-* ]] || cross_check "$proxy" "$PPID_" "$PPORT2" "$sc"
        done
        stop "$PPID_"
        save_logs "$proxy" ecdsa-h2
    fi
    # Idle memory: a proxy started afresh for each count and scenario (a warm-up, then the idle
    # connections), so that no count reuses memory a previous one freed.
    for IDLE_N in "${IDLE_LIST[@]}"; do
        for sc in "${IDLE_SCENARIOS[@]}"; do
            wanted "$sc" || continue
            start_proxy "$proxy" ecdsa "$sc-$IDLE_N"
            warm_up "$PPORT" /
            run_scenario "$proxy" "$PPID_" "$PPORT" "$sc"
            stop "$PPID_"
            save_logs "$proxy" "ecdsa-$sc-$IDLE_N" ecdsa
        done
    done
    any_wanted "${ECDSA_SCENARIOS[@]}" hs-full-rsa || continue
    start_proxy "$proxy" ecdsa
    warm_up "$PPORT" /
    for sc in "${ECDSA_SCENARIOS[@]}"; do
        wanted "$sc" || continue
        if [ "$sc" = rate-latency ] && [ -z "$RATE" ]; then
            # 50% of nginx's measured maximum (keep-alive, small responses).
            src=$(grep '"proxy":"nginx","scenario":"ka-small"' "$JSONL" || true)
            [ -n "$src" ] || src=$(grep '"scenario":"ka-small"' "$JSONL" | head -n1)
            max=$(echo "$src" | grep -o '"rps":[0-9.eE+]*' | head -n1 | cut -d: -f2)
            RATE=$(awk -v m="${max:-0}" -v f="$RATE_FRACTION" 'BEGIN{ r = int(m * f); if (r < 100) r = 100; print r }')
            log "fixed rate: $RATE req/s ($RATE_FRACTION of $(printf '%.0f' "${max:-0}") req/s)"
        fi
        run_scenario "$proxy" "$PPID_" "$PPORT" "$sc"
    done
    stop "$PPID_"
    save_logs "$proxy" ecdsa
    wanted hs-full-rsa || continue
    start_proxy "$proxy" rsa
    warm_up "$PPORT" /
    run_scenario "$proxy" "$PPID_" "$PPORT" hs-full-rsa
    stop "$PPID_"
    save_logs "$proxy" rsa
done
done

# ---------------------------------------------------------------- report
cp "$JSONL" "$RESULTS/run-$STAMP.jsonl"
KNOBS=
[ "$ROUNDS" = 3 ] || KNOBS="$KNOBS REPEAT=$ROUNDS"
[ "$H2LOAD" != 1 ] || KNOBS="$KNOBS H2LOAD=1"
[ "$H2_STREAMS" = 10 ] || KNOBS="$KNOBS H2_STREAMS=$H2_STREAMS"
[ "$GRPC_MESSAGE_SIZE" = 32 ] || KNOBS="$KNOBS GRPC_MESSAGE_SIZE=$GRPC_MESSAGE_SIZE"
[ "$GRPC_NGINX_KEEPALIVE" = "$CONNS" ] || KNOBS="$KNOBS GRPC_NGINX_KEEPALIVE=$GRPC_NGINX_KEEPALIVE"
[ "$UP_MTLS_KEEPALIVE" = 32 ] || KNOBS="$KNOBS UP_MTLS_KEEPALIVE=$UP_MTLS_KEEPALIVE"
META=$(printf '{"stamp":"%s","date":"%s","kernel":"%s","cpus":%d,"cpu_model":"%s","proxy_cpu":"%s","load_cpu":"%s","upstream_cpu":"%s","duration":"%s","rounds":%d,"h2_streams":%d,"h2_connections":%d,"connections":%d,"idle_counts":"%s","idle_capped":"%s","up_mtls_keepalive":%d,"load_threads":%d,"rate":"%s","rate_fraction":"%s","grpc_message_size":%d,"grpc_nginx_keepalive":%d,"grpc_ringgate_config":"%s","ringgate":"%s","nginx":"%s","haproxy":"%s","openssl":"%s","command":"%s"}' \
    "$STAMP" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(uname -r)" "$ncpu" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //;s/"//g')" \
    "$PROXY_CPU" "$LOAD_CPU" "$UPSTREAM_CPU" "$DURATION" "$ROUNDS" "$H2_STREAMS" "$H2_CONNS" "$CONNS" "${IDLE_LIST[*]}" "$IDLE_CAPPED" "$UP_MTLS_KEEPALIVE" "$LOAD_THREADS" \
    "$RATE" "$RATE_FRACTION" "$GRPC_MESSAGE_SIZE" "$GRPC_NGINX_KEEPALIVE" "$(echo "$RINGGATE_GRPC_CONFIG" | sed 's/"/\\"/g')" \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')" \
    "$("$NGINX" -v 2>&1 | cut -d/ -f2)" "$("$HAPROXY" -v 2>/dev/null | head -n1 | awk '{print $3}')" \
    "$(openssl version | cut -d' ' -f1-2)" \
    "${BENCH_GLIBC_TUNABLES:+(all processes with GLIBC_TUNABLES=$BENCH_GLIBC_TUNABLES) }DURATION=$DURATION CONNS=$CONNS IDLE_COUNTS=\\\"$IDLE_COUNTS\\\" PROXIES=\\\"$PROXIES\\\"${SCENARIOS:+ SCENARIOS=\\\"$SCENARIOS\\\"}$KNOBS bench/run.sh")
python3 "$ROOT/bench/report.py" --meta "$META" --jsonl "$RESULTS/run-$STAMP.jsonl" \
    --out "$RESULTS/run-$STAMP"
