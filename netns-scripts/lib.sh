# Shared helpers for demo.sh and bench/iperf3.sh (sourced).
# Needs: ROOT (repository root), P (topology prefix).

TUNGATE_PID=
TUNGATE_LOG=

# start_tungate RULES [WORKERS]: tungate over the cgs topology $P.
# TUNGATE_EXTRA_CONFIG: top-level config lines to add (e.g. "pin_workers = true").
start_tungate() {
    local rules=$1 workers=${2:-$(nproc)}
    local dir
    dir=$(mktemp -d /tmp/tungate-$P.XXXXXX)
    {
        [ -z "${TUNGATE_EXTRA_CONFIG:-}" ] || printf '%s\n' "$TUNGATE_EXTRA_CONFIG"
        "$ROOT/netns-scripts/topo.sh" config "$P" cgs "$rules" "$workers"
    } > "$dir/tungate.toml"
    TUNGATE_LOG=$dir/tungate.log
    NO_COLOR=1 "$ROOT/target/release/tungate" run --config "$dir/tungate.toml" 2> "$TUNGATE_LOG" &
    TUNGATE_PID=$!
    for _ in $(seq 100); do
        grep -q "tungate running" "$TUNGATE_LOG" && return 0
        kill -0 "$TUNGATE_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "tungate did not start:" >&2
    cat "$TUNGATE_LOG" >&2
    return 1
}

stop_tungate() {
    if [ -n "$TUNGATE_PID" ]; then
        kill -TERM "$TUNGATE_PID" 2>/dev/null || true
        wait "$TUNGATE_PID" 2>/dev/null || true
        TUNGATE_PID=
    fi
}

# iperf_target: 10.1.0.1 (the DNAT port forward) if it answers, else the
# server's own address (a gateway that does not apply the DNAT rule).
iperf_target() {
    if ip netns exec "$P-c" timeout 5 iperf3 -c 10.1.0.1 -t 1 >/dev/null 2>&1; then
        echo 10.1.0.1
    else
        echo 10.2.0.2
    fi
}

# tcp_gbps TARGET STREAMS SECS [IPERF3_OPTIONS]: receiver Gbit/s.
tcp_gbps() {
    # shellcheck disable=SC2086 # $4: extra iperf3 options, split on purpose
    ip netns exec "$P-c" iperf3 -c "$1" -P "$2" -t "$3" -f g ${4:-} 2>&1 |
        awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) == "Gbits/sec") v = $i } END { print (v == "" ? 0 : v) }'
}

# udp_pps TARGET SECS: "delivered_pps loss_percent" for 64-byte payloads, unlimited rate.
udp_pps() {
    ip netns exec "$P-c" iperf3 -c "$1" -u -l 64 -b 0 -t "$2" 2>&1 |
        awk -v secs="$2" '/receiver/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\/[0-9]+$/) { split($i, a, "/"); lost = a[1]; total = a[2] } }
            END { if (total > 0) printf "%d %.1f\n", (total - lost) / secs, 100 * lost / total; else print "0 100" }'
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
