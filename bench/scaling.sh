#!/usr/bin/env bash
# bench/scaling.sh: how ringgate's thread-per-core design scales with workers, on a machine
# with many cores. ringgate alone (no nginx or upstream needed): mTLS termination, client
# certificate verification and a `return 200` answer, so what is measured is the TLS and HTTP
# path per core. For each worker count, ringgate runs pinned to CPUs 0..W-1 and ringgate-load
# on the CPUs from LOAD_CPUS; keep-alive requests/s and full mTLS handshakes/s are printed per
# worker count with the speed-up over one worker.
#
#   bench/scaling.sh                                  # builds, WORKERS="1 2 4 8"
#   WORKERS="1 2 4" LOAD_CPUS=8-15 LOAD_THREADS=8 DURATION=5s bench/scaling.sh
#   RINGGATE=path/ringgate LOAD=path/ringgate-load bench/scaling.sh   # prebuilt binaries
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKERS=${WORKERS:-1 2 4 8}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-400}
NCPU=$(nproc)
LOAD_CPUS=${LOAD_CPUS:-$((NCPU / 2))-$((NCPU - 1))}
LOAD_THREADS=${LOAD_THREADS:-$((NCPU / 2))}
log() { printf '[scaling] %s\n' "$*" >&2; }

if [ -z "${RINGGATE:-}" ] || [ -z "${LOAD:-}" ]; then
    log "building ringgate and ringgate-load (release)"
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --workspace
    RINGGATE=${RINGGATE:-$ROOT/target/release/ringgate}
    LOAD=${LOAD:-$ROOT/target/release/ringgate-load}
fi
RINGGATE=$(realpath "$RINGGATE")
LOAD=$(realpath "$LOAD")
ulimit -n 65536 2>/dev/null || true

W=$(mktemp -d /tmp/ringgate-scaling.XXXXXX)
PID=
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
(
    cd "$W"
    "$RINGGATE" ca init ca --cn "Scaling CA" >/dev/null
    "$RINGGATE" ca -d ca issue server --cn localhost --san DNS:localhost,IP:127.0.0.1 >/dev/null
    "$RINGGATE" ca -d ca issue client --cn load --ou Client >/dev/null
)

# A free port, asked of the kernel.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
json_num() { grep -o "\"$2\":[0-9.eE+-]*" "$1" | head -n1 | cut -d: -f2; }
# CPU ticks (utime + stime) of a process, all threads.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
secs=${DURATION%s}

printf '%s\n' "ringgate scaling, $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
printf '%s\n' "load: ringgate-load -t $LOAD_THREADS on CPUs $LOAD_CPUS, -c $CONNS, -d $DURATION; ringgate on CPUs 0..W-1; mTLS (ECDSA P-256), return 200"
# busy: ringgate's CPU time over W CPUs for the run; near 100% means ringgate is the limit,
# well below it means the load generator is.
printf '%-8s %14s %8s %6s %12s %8s %6s\n' workers "keepalive r/s" speedup busy "full hs/s" speedup busy
base_ka=
base_hs=
for w in $WORKERS; do
    cpus=$(seq -s, 0 $((w - 1)))
    cat >"$W/ringgate.toml" <<EOF
[runtime]
workers = $w
cpus = [$cpus]

[[listener]]
name = "main"
listen = "127.0.0.1:$port"

[listener.tls]
certificates = [{ cert = "$W/ca/certs/localhost.crt", key = "$W/ca/private/localhost.key" }]
client_certificate = "$W/ca/ca.crt"
verify_client = "on"

[[listener.location]]
path = "/"
return = { status = 200, body = "ok\n" }
EOF
    "$RINGGATE" run -c "$W/ringgate.toml" >"$W/out" 2>"$W/err" &
    PID=$!
    for _ in $(seq 100); do
        grep -q '^ringgate ready' "$W/out" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '^ringgate ready' "$W/out" || { cat "$W/err" >&2; exit 1; }
    common=(--cert "$W/ca/certs/load.crt" --key "$W/ca/private/load.key" --cacert "$W/ca/ca.crt"
        --sni localhost -t "$LOAD_THREADS" -c "$CONNS" -d "$DURATION" --json -q)
    t0=$(ticks "$PID")
    taskset -c "$LOAD_CPUS" "$LOAD" "https://127.0.0.1:$port/" "${common[@]}" --mode keepalive >"$W/ka.json" 2>"$W/ka.err" || true
    t1=$(ticks "$PID")
    taskset -c "$LOAD_CPUS" "$LOAD" "https://127.0.0.1:$port/" "${common[@]}" --mode handshake >"$W/hs.json" 2>"$W/hs.err" || true
    t2=$(ticks "$PID")
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
    ka=$(json_num "$W/ka.json" rps); ka=${ka:-0}
    hs=$(json_num "$W/hs.json" rps); hs=${hs:-0}
    base_ka=${base_ka:-$ka}
    base_hs=${base_hs:-$hs}
    awk -v w="$w" -v ka="$ka" -v hs="$hs" -v bk="$base_ka" -v bh="$base_hs" \
        -v c1=$((t1 - t0)) -v c2=$((t2 - t1)) -v hz="$HZ" -v d="$secs" 'BEGIN {
        printf "%-8s %14.0f %7.2fx %5.0f%% %12.0f %7.2fx %5.0f%%\n", w, ka, (bk > 0 ? ka / bk : 0),
            100 * c1 / (hz * d * w), hs, (bh > 0 ? hs / bh : 0), 100 * c2 / (hz * d * w) }'
    for f in ka hs; do
        e=$(json_num "$W/$f.json" errors_total)
        [ "${e:-0}" = 0 ] || log "workers=$w $f: ${e} errors: $(tail -n2 "$W/$f.err")"
    done
done
