#!/usr/bin/env bash
# Profile tungate's fast path with perf (issue 6, item 3).
#
#   Usage (root):  bench/tools/profile.sh iperf3|newflows [SECS=8] [SERVICES=10000]
#
# iperf3  : netns-scripts/demo-rules.v4 (DNAT 10.1.0.1:5201 -> server, MASQUERADE),
#           one TCP stream through tungate for SECS seconds.
# newflows: bench/kube-gen SERVICES 4, flowgen SYNs to the last service in
#           1 s rounds with conntrack flushed between (as bench/newflows.sh).
# `perf record -g` on the tungate process while the load runs; prints the
# top self-cost symbols (perf report --no-children) and leaves perf.data in
# /tmp/tungate-profile-MODE.data; then 3 s with DWARF call stacks drawn as
# bench/results/flame-MODE.svg if inferno is installed (cargo install inferno).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODE=${1:?iperf3 or newflows}
SECS=${2:-8}
N=${3:-10000}
. "$ROOT/bench/lib.sh"
work_scratch tgp profile
build_flowgen

case $MODE in
    iperf3) RULES=$ROOT/netns-scripts/demo-rules.v4 ;;
    newflows) RULES=$WORK/kube.v4; "$ROOT/bench/kube-gen" "$N" 4 > "$RULES" ;;
    *) echo "mode: iperf3 or newflows" >&2; exit 2 ;;
esac
"$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate
SOCK=$WORK/ctl.sock
{
    echo "control_socket = \"$SOCK\""
    "$ROOT/netns-scripts/topo.sh" config "$P" cgs "$RULES"
    printf '\n[conntrack]\nmax = 4194304\n\n[[route]]\ndestination = "10.128.0.0/10"\ninterface = "%s-ts"\n' "$P"
} > "$WORK/tungate.toml"
sed -i 's/^log_level = .*/log_level = "warn"/' "$WORK/tungate.toml"
NO_COLOR=1 "$TG" run --config "$WORK/tungate.toml" 2> "$WORK/tungate.log" &
TUNGATE_PID=$!
for _ in $(seq 300); do [ -S "$SOCK" ] && ip -n "$P-s" link show "$P-ts" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5
DATA=/tmp/tungate-profile-$MODE.data
if [ "$MODE" = iperf3 ]; then
    ip netns exec "$P-s" iperf3 -s -D; sleep 0.5
    ip netns exec "$P-c" iperf3 -c 10.1.0.1 -t $((SECS + 6)) -f g > "$WORK/load.out" 2>&1 &
else
    i=$((N - 1))
    DST="10.96.$(((i >> 8) & 255)).$((i & 255))"
    for j in 0 1 2 3; do k=$((i * 4 + j)); ip -n "$P-s" addr add "10.$((128 + ((k >> 16) & 63))).$(((k >> 8) & 255)).$((k & 255))/32" dev lo; done
    ip netns exec "$P-s" iptables -A INPUT -p tcp --syn --dport 8080 -j DROP
    # As bench/newflows.sh: rounds of 1 s / at most 200k SYNs, conntrack
    # flushed in between (one MASQUERADE address x 4 endpoints = 258k NAT
    # ports; past that every new flow pays 240 port probes and is dropped).
    ( next=0; end=$((SECONDS + SECS + 6))
      while [ $SECONDS -lt $end ]; do
          "$TG" conntrack --ctl "$SOCK" -F >/dev/null 2>&1 || true
          ip netns exec "$P-c" "$GEN" syn 10.1.0 "$DST" 80 1 "$next" 200000 2>"$WORK/gen.err"
          next=$(sed -n 's/^next=//p' "$WORK/gen.err")
      done ) > "$WORK/load.out" 2>&1 &
fi
LOAD=$!
sleep 1
perf record -q -g -p "$TUNGATE_PID" -o "$DATA" -- sleep "$SECS" 2>&1 | grep -v '^\[' >&2 || true
# Flame graph: DWARF call stacks (the release build has no frame pointers),
# folded and drawn with inferno (`cargo install inferno`) when it is there.
if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
    perf record -q --call-graph dwarf,16384 -F 499 -p "$TUNGATE_PID" -o "$DATA.dwarf" -- sleep 3 2>&1 | grep -v '^\[' >&2 || true
    mkdir -p "$ROOT/bench/results"
    perf script -i "$DATA.dwarf" 2>/dev/null | inferno-collapse-perf > "$WORK/folded" &&
        inferno-flamegraph --title "tungate under $MODE load ($(date -u +%F), load avg $(cut -d' ' -f1 /proc/loadavg))" < "$WORK/folded" > "$ROOT/bench/results/flame-$MODE.svg" &&
        echo "flame graph: bench/results/flame-$MODE.svg" >&2
    rm -f "$DATA.dwarf"
else
    echo "no flame graph: inferno-collapse-perf / inferno-flamegraph not installed (cargo install inferno)" >&2
fi
wait "$LOAD" || true
echo "load: $(grep -E 'receiver|sent=' "$WORK/load.out" | tr '\n' ' ')"
echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
perf report -i "$DATA" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25
