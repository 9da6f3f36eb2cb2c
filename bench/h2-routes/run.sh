#!/usr/bin/env bash
# Alternated h2load runs against the three servers (see README.md).
#
#   bench/h2-routes/run.sh [OUT]      # OUT: raw log, default /tmp/h2-routes-raw.txt
#
# ROUNDS (5), N (200000 requests a run), SERVER_CPU (1), LOAD_CPU (0), SCENARIOS and ROUTES
# may be set in the environment. Each round starts every server afresh, pinned to SERVER_CPU,
# and runs every scenario against every route, the routes' order rotated each round; h2load
# runs pinned to LOAD_CPU. The server's CPU time per run is read from /proc/PID/schedstat
# (nanoseconds on CPU) and /proc/PID/stat (utime+stime, clock ticks) before and after.
# H2_ROUTES_STREAMS=1 (passed on to the servers) runs ringgate's connection shape instead of the
# inline accept loop.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/h2-routes-raw.txt}
: "${CARGO_TARGET_DIR:=/work/target-h2-routes}"
bin=$CARGO_TARGET_DIR/release
ROUNDS=${ROUNDS:-5}
N=${N:-200000}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
shape=inline
[ -n "${H2_ROUTES_STREAMS:-}" ] && shape=streams
read -r -a routes <<<"${ROUTES:-poll native compat}"
read -r -a scenarios <<<"${SCENARIOS:-h2c-m10 h2c-m1 tls-m10 tls-m1}"

port_of() { # route tls
    local base=18000
    [ "$2" = tls ] && base=18100
    case $1 in poll) echo $((base + 1)) ;; native) echo $((base + 2)) ;; compat) echo $((base + 3)) ;; esac
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

declare -A pid
start_servers() {
    cleanup
    pids=()
    for r in "${routes[@]}"; do
        for t in plain tls; do
            local flag=""
            [ $t = tls ] && flag=--tls
            taskset -c "$SERVER_CPU" "$bin/h2-$r" $flag "$(port_of "$r" $t)" >/dev/null &
            pid[$r-$t]=$!
            pids+=($!)
        done
    done
    sleep 0.5
}

cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

{
    echo "# h2-routes raw runs: $(date -u +%FT%TZ) host $(hostname) $(nproc) CPUs"
    echo "# rounds=$ROUNDS n=$N server_cpu=$SERVER_CPU load_cpu=$LOAD_CPU routes=${routes[*]} scenarios=${scenarios[*]} shape=$shape"
    echo "# clock ticks/s: $(getconf CLK_TCK)"
} >>"$out"

for ((round = 1; round <= ROUNDS; round++)); do
    start_servers
    echo "# round $round start $(date -u +%T) load:$(cut -d" " -f1-3 /proc/loadavg)" >>"$out"
    # Rotate the routes' order: round 1 A B C, round 2 B C A, ...
    k=$(((round - 1) % ${#routes[@]}))
    order=("${routes[@]:k}" "${routes[@]:0:k}")
    for s in "${scenarios[@]}"; do
        case $s in
            h2c-m10) scheme=http t=plain m=10 ;;
            h2c-m1) scheme=http t=plain m=1 ;;
            tls-m10) scheme=https t=tls m=10 ;;
            tls-m1) scheme=https t=tls m=1 ;;
            *) echo "unknown scenario $s" >&2; exit 2 ;;
        esac
        for r in "${order[@]}"; do
            p=${pid[$r-$t]}
            url="$scheme://127.0.0.1:$(port_of "$r" $t)/"
            # Warm-up (connections, allocator), not counted.
            taskset -c "$LOAD_CPU" h2load -n 20000 -c 32 -m "$m" "$url" >/dev/null 2>&1 || true
            c0=$(cpu_ns "$p") k0=$(ticks "$p")
            log=$(taskset -c "$LOAD_CPU" h2load -n "$N" -c 32 -m "$m" "$url" 2>&1) || true
            c1=$(cpu_ns "$p") k1=$(ticks "$p")
            req_s=$(sed -n 's/^finished in [0-9.]*m\{0,1\}s, \([0-9.]*\) req\/s.*/\1/p' <<<"$log")
            # h2load prints "finished in 1.31s" or "finished in 964.24ms".
            secs=$(sed -n 's/^finished in \([0-9.]*\)\(m\{0,1\}\)s, .*/\1 \2/p' <<<"$log" |
                awk '{ print ($2 == "m") ? $1 / 1000 : $1 }')
            ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$log")
            line=$(awk -v r="$round" -v s="$s" -v route="$r" -v q="$req_s" -v ok="$ok" -v secs="$secs" \
                -v shape="$shape" -v c="$((c1 - c0))" -v kt="$((k1 - k0))" -v hz="$(getconf CLK_TCK)" 'BEGIN {
                printf "RUN round=%d shape=%s scenario=%s route=%s req_s=%.0f succeeded=%d wall_s=%.3f server_cpu_ms=%.1f server_cpu_ticks_ms=%.0f us_per_req=%.3f server_util=%.2f\n",
                    r, shape, s, route, q, ok, secs, c / 1e6, kt * 1000 / hz, (ok ? c / 1e3 / ok : 0), (secs > 0 ? c / 1e9 / secs : 0) }')
            echo "$line"
            { echo "$line"; sed 's/^/    /' <<<"$log" | grep -E 'finished in|requests:|status codes:|traffic:|time for request:|TLS Protocol|Cipher|Application protocol'; } >>"$out"
        done
    done
done
echo "raw log: $out"
