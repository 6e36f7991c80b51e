#!/usr/bin/env bash
# tungate vs the kernel, same topology (client - gateway - server), same
# DNAT + MASQUERADE ruleset (netns-scripts/demo-rules.v4; loaded into the
# kernel router namespace by the real iptables-restore).
#   TCP: iperf3 1 stream and 4 streams, REPS repetitions of SECS seconds each.
#   UDP: 64-byte payloads at unlimited rate: packets/s delivered and loss.
# Prints the medians; the last line is `ratio_1stream=X ratio_4streams=Y`
# (tungate / kernel).   Usage: sudo bench/iperf3.sh [REPS=3] [SECS=5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${1:-3}
SECS=${2:-5}
P=tgb$$
P=${P:0:10}
RULES=$ROOT/netns-scripts/demo-rules.v4
. "$ROOT/netns-scripts/lib.sh"
cleanup() { stop_tungate; "$ROOT/netns-scripts/topo.sh" down "$P"; }
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -p tungate) >&2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

measure() { # label target -> sets T1 T4 UPPS ULOSS
    local label=$1 target=$2 t1="" t4="" pps="" loss=""
    ip netns exec "$P-s" iperf3 -s -D
    sleep 0.5
    for r in $(seq "$REPS"); do
        v=$(tcp_gbps "$target" 1 "$SECS"); t1="$t1 $v"; echo "$label tcp 1 stream  rep $r: $v Gbit/s" >&2
        v=$(tcp_gbps "$target" 4 "$SECS"); t4="$t4 $v"; echo "$label tcp 4 streams rep $r: $v Gbit/s" >&2
        read -r p l <<<"$(udp_pps "$target" "$SECS")"; pps="$pps $p"; loss="$loss $l"
        echo "$label udp 64 B      rep $r: $p pkt/s delivered, loss $l%" >&2
    done
    T1=$(echo "$t1" | median); T4=$(echo "$t4" | median)
    UPPS=$(echo "$pps" | median); ULOSS=$(echo "$loss" | median)
}

# tungate
"$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate
start_tungate "$RULES"
ip netns exec "$P-s" iperf3 -s -D; sleep 0.5
TG_TARGET=$(iperf_target)
for pid in $(ip netns pids "$P-s"); do kill "$pid"; done; sleep 0.3
if [ "$TG_TARGET" != 10.1.0.1 ]; then
    echo "NOTE: tungate did not answer the DNAT port 10.1.0.1:5201 (the rule pipeline is not wired in: passthrough); tungate runs are direct to 10.2.0.2" >&2
fi
measure tungate "$TG_TARGET"
TG1=$T1 TG4=$T4 TGPPS=$UPPS TGLOSS=$ULOSS
stop_tungate
"$ROOT/netns-scripts/topo.sh" down "$P"

# kernel router namespace, same ruleset
"$ROOT/netns-scripts/topo.sh" up "$P" cgs kernel "$RULES"
measure kernel 10.1.0.1
K1=$T1 K4=$T4 KPPS=$UPPS KLOSS=$ULOSS
"$ROOT/netns-scripts/topo.sh" down "$P"

echo "reps=$REPS secs=$SECS workers=$(nproc) tungate_target=$TG_TARGET loadavg_before=\"$LOAD_BEFORE\" loadavg_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
echo "median tcp 1 stream : tungate $TG1 Gbit/s, kernel $K1 Gbit/s"
echo "median tcp 4 streams: tungate $TG4 Gbit/s, kernel $K4 Gbit/s"
echo "median udp 64 B     : tungate $TGPPS pkt/s (loss $TGLOSS%), kernel $KPPS pkt/s (loss $KLOSS%)"
awk -v a="$TG1" -v b="$K1" -v c="$TG4" -v d="$K4" 'BEGIN { printf "ratio_1stream=%.2f ratio_4streams=%.2f\n", (b > 0 ? a / b : 0), (d > 0 ? c / d : 0) }'
