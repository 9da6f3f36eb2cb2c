#!/usr/bin/env bash
# Quick same-run comparison: nginx vs ringgate terminating mTLS in front of one nginx upstream.
# Usage: bench/quick.sh            (from the repository root or anywhere)
# Env: DURATION=10s CONNS=50 PROXY_CPU=0 LOAD_CPU=1 UPSTREAM_CPU=1
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-50}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
UPSTREAM_CPU="${UPSTREAM_CPU:-1}"
RINGGATE="$ROOT/target/release/ringgate"
LOAD="${LOAD:-}"

log() { echo "quick.sh: $*" >&2; }

# --- tools -------------------------------------------------------------------------------
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v nginx >/dev/null || ! command -v openssl >/dev/null; then
    log "installing nginx and openssl"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light openssl \
        || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl
    # Do not leave the distribution's nginx service running.
    $SUDO systemctl stop nginx 2>/dev/null || $SUDO service nginx stop 2>/dev/null || true
    $SUDO systemctl disable nginx 2>/dev/null || true
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

if [ -z "$LOAD" ]; then
    if [ -x "$ROOT/target/release/ringgate-load" ]; then
        LOAD="$ROOT/target/release/ringgate-load"
    else
        log "building ringgate-load"
        (cd "$ROOT" && cargo build --release -q -p ringgate-load)
        LOAD="$ROOT/target/release/ringgate-load"
    fi
fi

# --- temp dir, cleanup ---------------------------------------------------------------------
WORK="$(mktemp -d /tmp/ringgate-quick.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in "$WORK"/*/nginx.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port, seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}
cpu_ticks() { # utime+stime of a pid, in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
CLK_TCK="$(getconf CLK_TCK)"

# --- certificates --------------------------------------------------------------------------
C="$WORK/certs"; mkdir -p "$C"
(
    cd "$C"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 7 -subj "/CN=ringgate bench CA" -out ca.crt
    openssl ecparam -name prime256v1 -genkey -noout -out server.key
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -sha256 -extfile server.ext -out server.crt
    openssl ecparam -name prime256v1 -genkey -noout -out client.key
    openssl req -new -key client.key -subj "/CN=bench-client/OU=bench" -out client.csr
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -sha256 -extfile client.ext -out client.crt
    chmod 600 ./*.key
) 2>/dev/null

UPORT="$(free_port)"
NPORT="$(free_port)"
RPORT="$(free_port)"

nginx_conf() { # dir, server blocks...
    local d="$1"; shift
    mkdir -p "$d/logs" "$d/tmp"
    cat > "$d/nginx.conf" <<NGX
worker_processes 1;
daemon on;
error_log $d/logs/error.log warn;
pid $d/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
    keepalive_requests 10000000;
    $*
}
NGX
}
start_nginx() { # dir, cpu -> prints master pid
    taskset -c "$2" "$NGINX" -p "$1" -c "$1/nginx.conf" -e "$1/logs/error.log"
    local i
    for ((i = 0; i < 50; i++)); do [ -s "$1/nginx.pid" ] && break; sleep 0.1; done
    cat "$1/nginx.pid"
}
worker_of() { # nginx master pid -> worker pid
    local w; w="$(pgrep -P "$1" | head -1)"; echo "${w:-$1}"
}

# --- upstream ------------------------------------------------------------------------------
nginx_conf "$WORK/upstream" "server { listen 127.0.0.1:$UPORT; location / { return 200 \"ok\n\"; } }"
start_nginx "$WORK/upstream" "$UPSTREAM_CPU" >/dev/null
wait_port "$UPORT" 5 || { log "upstream nginx did not start"; exit 1; }

# --- scenarios -----------------------------------------------------------------------------
SCENARIOS=(keepalive handshake)
scenario_args() {
    case "$1" in
        keepalive) echo "--mode keepalive -c $CONNS -d $DURATION" ;;
        handshake) echo "--mode handshake -c $CONNS -d $DURATION" ;;
    esac
}
RESULTS="$WORK/results.jsonl"; : > "$RESULTS"

run_scenarios() { # proxy-name, port, pid
    local name="$1" port="$2" pid="$3" sc out before after cpu_us
    for sc in "${SCENARIOS[@]}"; do
        log "$name: $sc ($(scenario_args "$sc"))"
        before="$(cpu_ticks "$pid")"
        # shellcheck disable=SC2046
        out="$(taskset -c "$LOAD_CPU" "$LOAD" "https://127.0.0.1:$port/" \
            --cacert "$C/ca.crt" --cert "$C/client.crt" --key "$C/client.key" \
            $(scenario_args "$sc") --json -q)" || { log "$name $sc: load generator failed"; continue; }
        after="$(cpu_ticks "$pid")"
        cpu_us=$(( (after - before) * 1000000 / CLK_TCK ))
        python3 - "$name" "$sc" "$cpu_us" "$out" >> "$RESULTS" <<'PY'
import json, sys
name, sc, cpu_us, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
out.update(proxy=name, scenario=sc, proxy_cpu_us=cpu_us,
           cpu_us_per_req=(cpu_us / out["requests"]) if out["requests"] else None)
print(json.dumps(out))
PY
    done
}

# nginx under test
nginx_conf "$WORK/nginx" "
    upstream app { server 127.0.0.1:$UPORT; keepalive 32; }
    server {
        listen 127.0.0.1:$NPORT ssl;
        ssl_certificate $C/server.crt; ssl_certificate_key $C/server.key;
        ssl_client_certificate $C/ca.crt; ssl_verify_client on; ssl_verify_depth 1;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m; ssl_session_tickets on;
        location / {
            proxy_pass http://app/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
NMASTER="$(start_nginx "$WORK/nginx" "$PROXY_CPU")"
wait_port "$NPORT" 5 || { log "nginx under test did not start"; exit 1; }
NWORKER="$(worker_of "$NMASTER")"
run_scenarios nginx "$NPORT" "$NWORKER"
kill "$NMASTER" 2>/dev/null || true

# ringgate under test
RINGGATE_NOTE=""
if [ ! -x "$RINGGATE" ]; then
    RINGGATE_NOTE="ringgate skipped: $RINGGATE not found (cargo build --release)"
else
    mkdir -p "$WORK/ringgate"
    cat > "$WORK/ringgate/ringgate.toml" <<TOML
[runtime]
workers = 1
cpus = [$PROXY_CPU]

[[listener]]
name = "bench"
listen = "127.0.0.1:$RPORT"

[listener.tls]
certificates = [{ cert = "$C/server.crt", key = "$C/server.key" }]
client_certificate = "$C/ca.crt"
verify_client = "on"
verify_depth = 1

[[listener.location]]
path = "/"
proxy_pass = "http://app/"

[[upstream]]
name = "app"
servers = ["127.0.0.1:$UPORT"]
keepalive = 32
TOML
    taskset -c "$PROXY_CPU" "$RINGGATE" run -c "$WORK/ringgate/ringgate.toml" \
        > "$WORK/ringgate/stdout.log" 2> "$WORK/ringgate/stderr.log" &
    RPID=$!
    PIDS+=("$RPID")
    if wait_port "$RPORT" 10 && kill -0 "$RPID" 2>/dev/null; then
        run_scenarios ringgate "$RPORT" "$RPID"
    else
        if kill -0 "$RPID" 2>/dev/null; then why="port $RPORT did not open in 10 s"; else
            wait "$RPID" && rc=0 || rc=$?; why="it exited with status $rc"; fi
        RINGGATE_NOTE="ringgate skipped: $why; stderr: $(tail -3 "$WORK/ringgate/stderr.log" | tr '\n' ' ')"
    fi
    kill "$RPID" 2>/dev/null || true
fi
[ -n "$RINGGATE_NOTE" ] && log "$RINGGATE_NOTE"

# --- report --------------------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
OUTFILE="$ROOT/bench/results/quick-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$RESULTS" "$OUTFILE" "$RINGGATE_NOTE" "$DURATION" "$CONNS" <<'PY'
import json, sys, platform, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
note, duration, conns = sys.argv[3], sys.argv[4], sys.argv[5]
json.dump({"host": platform.node(), "cpus": os.cpu_count(), "duration": duration,
           "connections": int(conns), "note": note or None, "runs": rows},
          open(sys.argv[2], "w"), indent=2)
by = {(r["proxy"], r["scenario"]): r for r in rows}
def f(v, spec):
    return "-" if v is None else format(v, spec)
hdr = f'{"scenario":<11} {"nginx rps":>10} {"ringgate rps":>12} {"ratio":>6} {"nginx p99us":>11} {"rg p99us":>9} {"nginx cpu/req us":>16} {"rg cpu/req us":>13} {"errors n/r":>10}'
print(hdr); print("-" * len(hdr))
for sc in ["keepalive", "handshake"]:
    n, r = by.get(("nginx", sc)), by.get(("ringgate", sc))
    g = lambda x, k: x.get(k) if x else None
    ratio = (r["rps"] / n["rps"]) if n and r and n["rps"] else None
    print(f'{sc:<11} {f(g(n,"rps"),".0f"):>10} {f(g(r,"rps"),".0f"):>12} {f(ratio,".2f"):>6} '
          f'{f(n and n["latency_us"]["p99"],"d"):>11} {f(r and r["latency_us"]["p99"],"d"):>9} '
          f'{f(g(n,"cpu_us_per_req"),".1f"):>16} {f(g(r,"cpu_us_per_req"),".1f"):>13} '
          f'{f(g(n,"errors_total"),"d")+"/"+f(g(r,"errors_total"),"d"):>10}')
if note: print("note:", note)
print("raw results:", sys.argv[2])
PY
