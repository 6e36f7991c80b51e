#!/usr/bin/env bash
# tungate vs the kernel, same topology (client - gateway - server), same
# DNAT + MASQUERADE ruleset (netns-scripts/demo-rules.v4; loaded into the
# kernel router namespace by the real iptables-restore).
#   TCP: iperf3 1 stream and 4 streams, REPS repetitions of SECS seconds each.
#   UDP: 64-byte payloads at unlimited rate: packets/s delivered and loss.
# Both topologies are up at once and the runs alternate (tungate, kernel,
# tungate, ...) so that a change in machine load hits both paths alike.
# Prints the medians, the machine's busy CPU-seconds per GB moved during the
# 4-stream runs (both paths saturate the machine there, so this is the cost
# of a byte, steadier than Gbit/s when the host's speed drifts), and, as the
# last line, `ratio_1stream=X ratio_4streams=Y` (tungate / kernel).
# The ratios use the client's default congestion control (sysctl
# net.ipv4.tcp_congestion_control, printed as cc=). The 4-stream runs are
# also made with the other one of bbr and cubic (ALT_CC) and reported on
# their own line: the kernel router does not care which, a gateway that
# adds latency under load does (BBR widens its window to cover the bursts
# in which ACKs come back through a busy gateway, and the bytes waiting in
# that window go cold; see bench/notes/history-2026-11.md, "Session 6").
# Usage: sudo bench/iperf3.sh [REPS=3] [SECS=5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${1:-3}
SECS=${2:-5}
PT=dpt$$; PT=${PT:0:10}     # tungate topology prefix
PK=dpk$$; PK=${PK:0:10}     # kernel router topology prefix
RULES=$ROOT/netns-scripts/demo-rules.v4
. "$ROOT/netns-scripts/lib.sh"
cleanup() {
    stop_tungate
    "$ROOT/netns-scripts/topo.sh" down "$PT"
    "$ROOT/netns-scripts/topo.sh" down "$PK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -p tungate) >&2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

P=$PT
"$ROOT/netns-scripts/topo.sh" up "$PT" cgs tungate
start_tungate "$RULES"
ip netns exec "$PT-s" iperf3 -s -D
"$ROOT/netns-scripts/topo.sh" up "$PK" cgs kernel "$RULES"
ip netns exec "$PK-s" iperf3 -s -D
sleep 0.5
P=$PT TG_TARGET=$(iperf_target)
if [ "$TG_TARGET" != 10.1.0.1 ]; then
    echo "NOTE: tungate did not answer the DNAT port 10.1.0.1:5201; tungate runs are direct to 10.2.0.2 (the comparison is then not like for like)" >&2
fi

# Busy ticks (user, nice, system, irq, softirq) of the whole machine. The
# window around a run also holds iperf3's start and connection set-up, and
# the GB are receiver Gbit/s x SECS: a slight overestimate, alike for both.
busy_ticks() { head -1 /proc/stat | awk '{ print $2 + $3 + $4 + $7 + $8 }'; }
HZ=$(getconf CLK_TCK)
# The client namespace's default (a new namespace inherits the host's).
CC=$(ip netns exec "$PT-c" sysctl -n net.ipv4.tcp_congestion_control)
if [ "$CC" = cubic ]; then ALT_CC=bbr; else ALT_CC=cubic; fi
has_cc() { ip netns exec "$PT-c" sysctl -n net.ipv4.tcp_available_congestion_control | grep -qw "$1"; }
has_cc "$ALT_CC" || modprobe "tcp_$ALT_CC" 2>/dev/null || true
if ! has_cc "$ALT_CC"; then
    echo "NOTE: congestion control $ALT_CC unavailable; no runs with it" >&2
    ALT_CC=
fi

# use_side tungate|kernel: P (the topology prefix) and target for its runs.
use_side() {
    if [ "$1" = tungate ]; then P=$PT target=$TG_TARGET; else P=$PK target=10.1.0.1; fi
}
# ratio A B: A / B with two decimals (0 when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

declare -A T1 T4 TA PPS LOSS CPG
for r in $(seq "$REPS"); do
    for side in tungate kernel; do
        use_side "$side"
        v=$(tcp_gbps "$target" 1 "$SECS"); T1[$side]="${T1[$side]:-} $v"
        echo "$side tcp 1 stream  rep $r: $v Gbit/s" >&2
    done
    for side in tungate kernel; do
        use_side "$side"
        b0=$(busy_ticks)
        v=$(tcp_gbps "$target" 4 "$SECS"); T4[$side]="${T4[$side]:-} $v"
        c=$(awk -v t=$(( $(busy_ticks) - b0 )) -v hz="$HZ" -v g="$v" -v s="$SECS" 'BEGIN { gb = g * s / 8; printf "%.3f", (gb > 0 ? t / hz / gb : 0) }')
        CPG[$side]="${CPG[$side]:-} $c"
        echo "$side tcp 4 streams rep $r: $v Gbit/s, $c CPU-s/GB" >&2
    done
    for side in ${ALT_CC:+tungate kernel}; do
        use_side "$side"
        v=$(tcp_gbps "$target" 4 "$SECS" "-C $ALT_CC"); TA[$side]="${TA[$side]:-} $v"
        echo "$side tcp 4 streams -C $ALT_CC rep $r: $v Gbit/s" >&2
    done
    for side in tungate kernel; do
        use_side "$side"
        read -r p l <<<"$(udp_pps "$target" "$SECS")"
        PPS[$side]="${PPS[$side]:-} $p"; LOSS[$side]="${LOSS[$side]:-} $l"
        echo "$side udp 64 B      rep $r: $p pkt/s delivered, loss $l%" >&2
    done
done

med() { echo "$1" | median; }
TG1=$(med "${T1[tungate]}") K1=$(med "${T1[kernel]}")
TG4=$(med "${T4[tungate]}") K4=$(med "${T4[kernel]}")
TGA=$(med "${TA[tungate]}") KA=$(med "${TA[kernel]}")
echo "reps=$REPS secs=$SECS workers=$(nproc) cc=$CC tungate_target=$TG_TARGET loadavg_before=\"$LOAD_BEFORE\" loadavg_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
echo "median tcp 1 stream : tungate $TG1 Gbit/s, kernel $K1 Gbit/s"
echo "median tcp 4 streams: tungate $TG4 Gbit/s, kernel $K4 Gbit/s"
[ -z "$ALT_CC" ] || echo "median tcp 4 streams, -C $ALT_CC: tungate $TGA Gbit/s, kernel $KA Gbit/s ($(ratio "$TGA" "$KA") of the kernel; not in the ratios below)"
echo "median CPU-s per GB, 4 streams (whole machine): tungate $(med "${CPG[tungate]}"), kernel $(med "${CPG[kernel]}")"
echo "median udp 64 B     : tungate $(med "${PPS[tungate]}") pkt/s (loss $(med "${LOSS[tungate]}")%), kernel $(med "${PPS[kernel]}") pkt/s (loss $(med "${LOSS[kernel]}")%)"
echo "ratio_1stream=$(ratio "$TG1" "$K1") ratio_4streams=$(ratio "$TG4" "$K4")"
