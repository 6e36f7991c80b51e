#!/usr/bin/env bash
# An established iperf3 TCP flow through tungate (NAT ruleset with the usual
# INVALID drop), SECS seconds alone, then SECS seconds while hping3 --flood
# sends SYNs from random sources through the gateway. Prints both rates,
# the conntrack statistics and the gateway's CPU time during each run.
# Last line: alone_gbps=X flood_gbps=Y ratio=Z      Usage: sudo bench/synflood.sh [SECS=5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-5}
. "$ROOT/bench/lib.sh"
gateway_scratch sf
tungate_bin
"$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate
cat > "$TMP/rules.v4" <<EOT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o $P-ts -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
COMMIT
EOT
{ echo "control_socket = \"$CTL\""; "$ROOT/netns-scripts/topo.sh" config "$P" cgs "$TMP/rules.v4" 2; } > "$TMP/tungate.toml"
NO_COLOR=1 "$BIN" run --config "$TMP/tungate.toml" 2> "$TMP/tungate.log" &
TG_PID=$!
for _ in $(seq 150); do grep -q "tungate running" "$TMP/tungate.log" && break; sleep 0.1; done
ip netns exec "$P-s" iperf3 -s -D
sleep 0.3
cpu() { awk '{ print $14 + $15 }' "/proc/$TG_PID/stat"; }
gbps() { ip netns exec "$P-c" iperf3 -c 10.2.0.2 -t "$SECS" -f g 2>&1 |
    awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) == "Gbits/sec") v = $i } END { print (v == "" ? 0 : v) }'; }
HZ=$(getconf CLK_TCK)
c0=$(cpu); A=$(gbps); c1=$(cpu)
ip netns exec "$P-c" timeout "$((SECS + 2))" hping3 --flood -S -p 80 --rand-source 10.2.0.2 >/dev/null 2>&1 &
FLOOD=$!
sleep 0.5
c2=$(cpu); F=$(gbps); c3=$(cpu)
wait "$FLOOD" || true
echo "alone:      $A Gbit/s, tungate CPU $(( (c1 - c0) * 100 / HZ / SECS ))% of one core"
echo "SYN flood:  $F Gbit/s, tungate CPU $(( (c3 - c2) * 100 / HZ / SECS ))% of one core"
"$BIN" conntrack --ctl "$CTL" -S
"$BIN" stats --ctl "$CTL" | grep -E '^(conntrack_entries|drop )' || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "alone_gbps=$A flood_gbps=$F ratio=$(awk -v a="$A" -v f="$F" 'BEGIN { printf "%.2f", (a > 0 ? f / a : 0) }')"
