#!/usr/bin/env bash
# Ruleset replacement in a running gateway (issue 5): time to
# `iptables-restore` the 10,000-service, 4-endpoint kube ruleset into tungate
# while iperf3 runs through it, and the longest gap in a 5,000 packet/s UDP
# probe stream across the swap. The kernel's iptables-restore of the same
# file into a scratch namespace is timed in the same run.
# Last line: restore_ms=X max_gap_ms=Y        Usage: sudo bench/restore.sh [SERVICES=10000]
# TUNGATE_BIN=/path/to/tungate runs that binary instead of building this tree
# (to compare two builds, run them interleaved).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-10000}
. "$ROOT/bench/lib.sh"
P=$(topo_prefix tgr)
TMP=$(mktemp -d)
. "$ROOT/netns-scripts/lib.sh"
cleanup() {
    stop_tungate
    "$ROOT/netns-scripts/topo.sh" down "$P"
    ip netns del "$P-k" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

tungate_bin
python3 "$ROOT/bench/kube-gen" 10 4 > "$TMP/kube-10.v4"
python3 "$ROOT/bench/kube-gen" "$N" 4 > "$TMP/kube-big.v4"
echo "ruleset: $N services x 4 endpoints, $(grep -c '^-A' "$TMP/kube-big.v4") rules, $(wc -c < "$TMP/kube-big.v4") bytes" >&2

"$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate
CTL=$TMP/ctl.sock
# start_tungate writes the config; put the control socket first.
start_tungate_ctl() {
    "$ROOT/netns-scripts/topo.sh" config "$P" cgs "$TMP/kube-10.v4" "$(nproc)" > "$TMP/body.toml"
    { echo "control_socket = \"$CTL\""; cat "$TMP/body.toml"; } > "$TMP/tungate.toml"
    TUNGATE_LOG=$TMP/tungate.log
    NO_COLOR=1 "$BIN" run --config "$TMP/tungate.toml" 2> "$TUNGATE_LOG" &
    TUNGATE_PID=$!
    for _ in $(seq 100); do
        grep -q "tungate running" "$TUNGATE_LOG" && return 0
        sleep 0.1
    done
    cat "$TUNGATE_LOG" >&2
    return 1
}
start_tungate_ctl

ip netns exec "$P-s" iperf3 -s -D
sleep 0.3
ip netns exec "$P-s" python3 "$ROOT/bench/tools/udpgap.py" recv 9999 12 > "$TMP/gap.txt" &
RECV=$!
sleep 0.3
ip netns exec "$P-c" iperf3 -c 10.2.0.2 -t 8 > "$TMP/iperf.txt" 2>&1 &
IPERF=$!
ip netns exec "$P-c" python3 "$ROOT/bench/tools/udpgap.py" send 10.2.0.2 9999 5000 7 &
SEND=$!
sleep 2
# Times are read from bash's $EPOCHREALTIME: `$(date +%s%N)` after the
# command forks a process first, which on this loaded 2-core machine added
# 3-7 ms to every figure (the kernel's too). Its decimal separator follows
# the locale, hence [.,].
t0=${EPOCHREALTIME/[.,]/}
"$BIN" iptables-restore --ctl "$CTL" < "$TMP/kube-big.v4"
t1=${EPOCHREALTIME/[.,]/}
RESTORE_MS=$(( (t1 - t0) / 1000 ))
# A second swap: one endpoint removed from the first service.
sed '0,/-j DNAT --to-destination/{/-j DNAT --to-destination/d}' "$TMP/kube-big.v4" > "$TMP/kube-big-2.v4"
t0=${EPOCHREALTIME/[.,]/}
"$BIN" iptables-restore --ctl "$CTL" < "$TMP/kube-big-2.v4" || true
t1=${EPOCHREALTIME/[.,]/}
RESTORE2_MS=$(( (t1 - t0) / 1000 ))
wait "$SEND" "$IPERF" || true
wait "$RECV" || true
GAP=$(sed -n 's/.*max_gap_ms=\([0-9.]*\).*/\1/p' "$TMP/gap.txt")
echo "probe stream: $(cat "$TMP/gap.txt")" >&2
echo "iperf3 during the swaps: $(grep receiver "$TMP/iperf.txt" | tail -1)" >&2
RULES_LIVE=$("$BIN" iptables-save --ctl "$CTL" | grep -c '^-A' || true)

# The kernel, same file, scratch namespace.
ip netns add "$P-k"
k0=${EPOCHREALTIME/[.,]/}
ip netns exec "$P-k" iptables-restore < "$TMP/kube-big.v4"
k1=${EPOCHREALTIME/[.,]/}
KERNEL_MS=$(( (k1 - k0) / 1000 ))

echo "tungate iptables-restore of $N services: ${RESTORE_MS} ms (second, changed ruleset: ${RESTORE2_MS} ms); rules live after: $RULES_LIVE"
echo "kernel iptables-restore of the same file: ${KERNEL_MS} ms"
echo "restore_ms=$RESTORE_MS max_gap_ms=${GAP:-NaN}"
