#!/usr/bin/env bash
# bench/quick.sh: ringgate against nginx, same certificates, same upstream, same load.
#
#   bench/quick.sh                      # everything: install, build, certificates, run, table
#   DURATION=5s CONNS=20 bench/quick.sh # shorter / smaller
#   SKIP_BUILD=1 bench/quick.sh         # use binaries already in $CARGO_TARGET_DIR/release
#
# Proxy pinned to CPU 0, ringgate-load to CPU 1, upstream nginx to CPU 1 as well (it answers
# `return 200 "ok\n"` and costs little). Results: bench/results/quick-<date>.{txt,jsonl}.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2s}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UPSTREAM_CPU=${UPSTREAM_CPU:-1}
RESULTS=${RESULTS:-$ROOT/bench/results}

log() { printf '[quick] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- dependencies
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Keep the distribution's nginx service from starting (it would take port 80 and a CPU).
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    [ "$policy_added" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
    # In case a service manager started it anyway.
    as_root systemctl stop nginx >/dev/null 2>&1 || as_root service nginx stop >/dev/null 2>&1 || true
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || log "warning: only $ncpu CPU; proxy and load generator share it"
[ "$PROXY_CPU" -lt "$ncpu" ] || die "PROXY_CPU=$PROXY_CPU but only $ncpu CPUs"
[ "$LOAD_CPU" -lt "$ncpu" ] || LOAD_CPU=0
[ "$UPSTREAM_CPU" -lt "$ncpu" ] || UPSTREAM_CPU=0

# ---------------------------------------------------------------- build
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building ringgate and ringgate-load (release, target dir $TARGET_DIR)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p ringgate -p ringgate-load)
fi
RINGGATE=$TARGET_DIR/release/ringgate
LOAD=$TARGET_DIR/release/ringgate-load
[ -x "$RINGGATE" ] || die "$RINGGATE missing"
[ -x "$LOAD" ] || die "$LOAD missing"

# ---------------------------------------------------------------- processes and cleanup
W=$(mktemp -d /tmp/ringgate-quick.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
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
    for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
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
keyUsage = critical,digitalSignature
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
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
gen_key ca.key
openssl req -x509 -new -key ca.key -config ca.cnf -extensions v3_ca -days 7 -sha256 -out ca.crt
for who in server client; do
    gen_key "$who.key"
    cn=localhost; [ "$who" = client ] && cn=bench-client
    openssl req -new -key "$who.key" -subj "/CN=$cn" -out "$who.csr"
    openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -sha256 \
        -extfile "$who.ext" -out "$who.crt" 2>/dev/null
done
openssl verify -CAfile ca.crt server.crt client.crt >/dev/null || die "certificate chain does not verify"
PKI=$W/pki
cd "$ROOT"

# ---------------------------------------------------------------- upstream
nginx_common() { # dir
    mkdir -p "$1/logs" "$1/tmp"
    cat <<EOF
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
EOF
}
nginx_http_common() { # dir
    cat <<EOF
    access_log off;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
EOF
}

UPORT=$(free_port)
U=$W/upstream
{
    nginx_common "$U"
    echo "worker_processes 1;"
    echo "http {"
    nginx_http_common "$U"
    cat <<EOF
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UPORT reuseport backlog=4096;
        location / { default_type text/plain; return 200 "ok\n"; }
    }
}
EOF
} >"$W/upstream.conf"
mkdir -p "$U"
taskset -c "$UPSTREAM_CPU" "$NGINX" -p "$U" -c "$W/upstream.conf" -e "$U/logs/error.log" &
UPID=$!
PIDS+=("$UPID")
wait_port "$UPORT" "$UPID" "upstream nginx"
log "upstream nginx pid $UPID on 127.0.0.1:$UPORT (cpu $UPSTREAM_CPU)"

# ---------------------------------------------------------------- measurement helpers
# CPU ticks (utime+stime) of a process and its children still alive (nginx master + worker).
cpu_ticks() {
    local total=0 p s
    for p in "$@" $(for q in "$@"; do cat "/proc/$q/task/$q/children" 2>/dev/null; done); do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }
        # after "comm) ": field 3 is state; utime, stime are fields 14, 15 => index 11, 12 here
        set -- $s
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# json_num FILE KEY: first numeric value of "KEY": in a one-line JSON object.
json_num() { grep -o "\"$2\":[-0-9.eE+]*" "$1" | head -n1 | cut -d: -f2; }

mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%d-%H%M%S)
JSONL=$RESULTS/quick-$STAMP.jsonl
TABLE=$RESULTS/quick-$STAMP.txt
: >"$JSONL"

SCENARIOS=(keepalive handshake-full handshake-resumed-tls13)
scenario_args() {
    case $1 in
    keepalive) echo "--mode keepalive -c $CONNS -d $DURATION" ;;
    handshake-full) echo "--mode handshake -c $CONNS -d $DURATION" ;;
    handshake-resumed-tls13) echo "--mode handshake --resume --tls 1.3 -c $CONNS -d $DURATION" ;;
    esac
}

declare -A RPS P99 CPU ERR
run_scenarios() { # proxy-name port pid
    local name=$1 port=$2 pid=$3 sc out before after req ticks errs non200
    # Host must match the SNI name: ringgate answers 421 when the verified server name and the
    # Host header differ.
    local common=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$PKI/ca.crt"
        --sni localhost -H "Host: localhost:$port" --json -q)
    log "$name: warm-up $WARMUP"
    taskset -c "$LOAD_CPU" "$LOAD" "https://127.0.0.1:$port/" "${common[@]}" -c "$CONNS" \
        -d "$WARMUP" >/dev/null || true
    for sc in "${SCENARIOS[@]}"; do
        out=$W/$name-$sc.json
        log "$name: $sc: ringgate-load $(scenario_args "$sc")"
        before=$(cpu_ticks "$pid")
        # shellcheck disable=SC2046
        if ! taskset -c "$LOAD_CPU" "$LOAD" "https://127.0.0.1:$port/" "${common[@]}" \
            $(scenario_args "$sc") >"$out" 2>"$out.err"; then
            log "$name: $sc: ringgate-load failed: $(tail -n3 "$out.err")"
            echo '{}' >"$out"
        fi
        after=$(cpu_ticks "$pid")
        kill -0 "$pid" 2>/dev/null || log "$name: PROXY EXITED during $sc"
        req=$(json_num "$out" requests); req=${req:-0}
        errs=$(json_num "$out" errors_total); errs=${errs:-0}
        ticks=$((after - before))
        RPS[$name/$sc]=$(json_num "$out" rps)
        P99[$name/$sc]=$(json_num "$out" p99)
        ERR[$name/$sc]=$errs
        if [ "$req" -gt 0 ]; then
            CPU[$name/$sc]=$(awk -v t="$ticks" -v hz="$HZ" -v n="$req" 'BEGIN{printf "%.1f", t*1e6/hz/n}')
        else
            CPU[$name/$sc]=-
        fi
        printf '{"proxy":"%s","scenario":"%s","args":"%s","cpu_ticks":%d,"clk_tck":%d,"cpu_us_per_req":"%s","result":%s}\n' \
            "$name" "$sc" "$(scenario_args "$sc")" "$ticks" "$HZ" "${CPU[$name/$sc]}" "$(cat "$out")" >>"$JSONL"
        log "$name: $sc: $(printf '%.0f' "${RPS[$name/$sc]:-0}") req/s, p99 ${P99[$name/$sc]:-?} us, errors $errs, cpu ${CPU[$name/$sc]} us/req"
        non200=$(grep -o '"statuses":{[^}]*}' "$out" | grep -o '"[0-9]*":[0-9]*' | grep -v '^"200"' || true)
        [ -z "$non200" ] || log "$name: $sc: WARNING non-200 responses: $(echo $non200)"
        if [ "$errs" != 0 ]; then
            grep -o '"errors":{[^}]*}' "$out" | sed "s/^/[quick] $name: $sc: /" >&2 || true
        fi
    done
}

# ---------------------------------------------------------------- nginx proxy
PORT=$(free_port)
N=$W/nginx
{
    nginx_common "$N"
    echo "worker_processes 1;"
    echo "http {"
    nginx_http_common "$N"
    cat <<EOF
    upstream app {
        server 127.0.0.1:$UPORT;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$PORT ssl backlog=4096;
        ssl_certificate $PKI/server.crt;
        ssl_certificate_key $PKI/server.key;
        ssl_client_certificate $PKI/ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 1;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:SSL:10m;
        location / {
            proxy_pass http://app/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$W/nginx.conf"
mkdir -p "$N"
taskset -c "$PROXY_CPU" "$NGINX" -p "$N" -c "$W/nginx.conf" -e "$N/logs/error.log" &
NPID=$!
PIDS+=("$NPID")
wait_port "$PORT" "$NPID" "nginx proxy"
log "nginx proxy pid $NPID on 127.0.0.1:$PORT (cpu $PROXY_CPU)"
run_scenarios nginx "$PORT" "$NPID"
stop "$NPID"

# ---------------------------------------------------------------- ringgate
PORT=$(free_port)
cat >"$W/ringgate.toml" <<EOF
[runtime]
workers = 1
cpus = [$PROXY_CPU]
log_level = "warn"

[[listener]]
name = "bench"
listen = "127.0.0.1:$PORT"

[listener.tls]
certificates = [{ cert = "$PKI/server.crt", key = "$PKI/server.key" }]
client_certificate = "$PKI/ca.crt"
verify_client = "on"
verify_depth = 1

[[listener.location]]
path = "/"
proxy_pass = "http://app/"

[[upstream]]
name = "app"
servers = ["127.0.0.1:$UPORT"]
keepalive = 32
EOF
taskset -c "$PROXY_CPU" "$RINGGATE" run -c "$W/ringgate.toml" >"$W/ringgate.out" 2>"$W/ringgate.err" &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 100); do
    grep -q '^ringgate ready' "$W/ringgate.out" 2>/dev/null && break
    kill -0 "$RPID" 2>/dev/null || break
    sleep 0.1
done
RINGGATE_NOTE=""
if grep -q '^ringgate ready' "$W/ringgate.out"; then
    log "$(head -n1 "$W/ringgate.out") (cpu $PROXY_CPU)"
    run_scenarios ringgate "$PORT" "$RPID"
else
    RINGGATE_NOTE="ringgate did not become ready: $(tail -n3 "$W/ringgate.err" | tr '\n' ' ')"
    log "$RINGGATE_NOTE"
fi
stop "$RPID"
if [ -s "$W/ringgate.err" ]; then
    cp "$W/ringgate.err" "$RESULTS/quick-$STAMP-ringgate.log"
    log "ringgate wrote $(wc -l <"$W/ringgate.err") log lines: $RESULTS/quick-$STAMP-ringgate.log"
fi
[ -s "$N/logs/error.log" ] && cp "$N/logs/error.log" "$RESULTS/quick-$STAMP-nginx.log"

# ---------------------------------------------------------------- table
{
    echo "ringgate vs nginx, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $ncpu CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
    echo "proxy on CPU $PROXY_CPU (1 worker), ringgate-load on CPU $LOAD_CPU, upstream nginx on CPU $UPSTREAM_CPU; -c $CONNS -d $DURATION; mTLS ECDSA P-256"
    echo "ringgate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty'), nginx $("$NGINX" -v 2>&1 | cut -d/ -f2), $(openssl version | cut -d' ' -f1-2)"
    echo
    printf '%-25s %11s %11s %7s %10s %10s %8s %8s %7s %7s\n' scenario "nginx rps" "ringgate" ratio \
        "nginx p99" "rg p99" "nginx" "ringgate" "nginx" "rg"
    printf '%-25s %11s %11s %7s %10s %10s %8s %8s %7s %7s\n' "" "" "rps" "rg/ngx" "us" "us" \
        "cpu us/r" "cpu us/r" "errors" "errors"
    for sc in "${SCENARIOS[@]}"; do
        n=${RPS[nginx/$sc]:-0}; r=${RPS[ringgate/$sc]:-0}
        ratio=$(awk -v n="$n" -v r="$r" 'BEGIN{ if (n > 0) printf "%.2f", r/n; else print "-" }')
        printf '%-25s %11.0f %11.0f %7s %10s %10s %8s %8s %7s %7s\n' "$sc" "$n" "$r" "$ratio" \
            "${P99[nginx/$sc]:--}" "${P99[ringgate/$sc]:--}" "${CPU[nginx/$sc]:--}" \
            "${CPU[ringgate/$sc]:--}" "${ERR[nginx/$sc]:--}" "${ERR[ringgate/$sc]:--}"
    done
    [ -z "$RINGGATE_NOTE" ] || echo "note: $RINGGATE_NOTE"
    echo
    echo "raw: $JSONL"
} | tee "$TABLE"
