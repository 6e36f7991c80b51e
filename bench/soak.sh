#!/usr/bin/env bash
# Soak test (issue 7, point 4): tungate between a client and a server
# namespace with a NAT ruleset (DNAT port forwards on 10.1.0.1 + MASQUERADE),
# for DURATION seconds:
#   - one iperf3 TCP flow through the DNAT, rate-limited (SOAK_TCP_RATE,
#     default 300M) so the other traffic is not starved on a small machine;
#   - many short TCP connections (bench/tools/shortconn.py, SOAK_CONN_RATE/s);
#   - a UDP stream below saturation (SOAK_UDP_PPS packets/s, udpgap.py);
#   - a full ruleset restore every 3 s (`tungate iptables-restore --ctl`,
#     alternating two rulesets that differ in one counting rule);
#   - `tungate conntrack -D` every 5 s of the finished short connections'
#     entries (TIME_WAIT) and of the live UDP stream's entry.
# Conntrack timeouts are short (config below), so after the traffic stops
# the table must drain back to its baseline.
# Reports established connections broken (iperf3 failure + broken short
# connections), UDP datagrams lost, RSS (KiB) at start, after warm-up
# (max(30 s, DURATION/5)) and at the end (and every 30 s, to tell a leak
# from allocator steps), and the conntrack entries left
# once traffic stopped and the timeouts passed. Last line:
#   broken=N udp_loss=N rss_growth_pct=X ct_leftover=N
# (growth is end vs after warm-up). RSS is sampled every second; "after
# warm-up" and "end" are the medians of the 10 s that follow the warm-up and
# of the last 10 s: each restore's transient copy of the ruleset moves RSS by
# 2-4 MiB for a moment (measured: 41-44.6 MiB within one minute), so two
# single samples measured that noise rather than growth.
# Usage: sudo bench/soak.sh DURATION
# TUNGATE_BIN picks the binary (default: target/release/tungate, built).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${1:?usage: bench/soak.sh DURATION_SECONDS}
TCP_RATE=${SOAK_TCP_RATE:-300M}
CONN_RATE=${SOAK_CONN_RATE:-40}
UDP_PPS=${SOAK_UDP_PPS:-1000}
. "$ROOT/bench/lib.sh"
gateway_scratch sk
tungate_bin

rules() { # $1 = variant (0/1)
    cat <<EOT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.1.0.1/32 -p tcp -m tcp --dport 5201 -j DNAT --to-destination 10.2.0.2:5201
-A PREROUTING -d 10.1.0.1/32 -p tcp -m tcp --dport 8000 -j DNAT --to-destination 10.2.0.2:8000
-A PREROUTING -d 10.1.0.1/32 -p udp -m udp --dport 9999 -j DNAT --to-destination 10.2.0.2:9999
-A POSTROUTING -s 10.1.0.0/24 -o $P-ts -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -d 10.2.0.2/32 -p tcp -m multiport --dports 5201,8000 -j ACCEPT
-A FORWARD -d 10.2.0.2/32 -p udp -m udp --dport 9999 -j ACCEPT
$([ "$1" = 1 ] && echo "-A FORWARD -p icmp -j ACCEPT")
COMMIT
EOT
}

"$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate
rules 0 > "$TMP/rules0.v4"
rules 1 > "$TMP/rules1.v4"
{
    echo "control_socket = \"$CTL\""
    # Short timeouts so the table drains within seconds of the traffic
    # stopping (established stays long: the iperf3 flow is idle-free).
    echo "conntrack = { tcp_syn_sent_timeout = 5, tcp_time_wait_timeout = 2, tcp_close_timeout = 2, udp_timeout = 3, udp_stream_timeout = 5, icmp_timeout = 3, tcp_established_timeout = 600 }"
    "$ROOT/netns-scripts/topo.sh" config "$P" cgs "$TMP/rules0.v4" 2
} > "$TMP/tungate.toml"
NO_COLOR=1 "$BIN" run --config "$TMP/tungate.toml" 2> "$TMP/tungate.log" &
TG_PID=$!
for _ in $(seq 150); do
    grep -q "tungate running" "$TMP/tungate.log" && break
    kill -0 "$TG_PID" 2>/dev/null || { cat "$TMP/tungate.log" >&2; exit 1; }
    sleep 0.1
done
grep -q "tungate running" "$TMP/tungate.log" || { cat "$TMP/tungate.log" >&2; exit 1; }

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$TG_PID/status"; }
ct_count() { "$BIN" conntrack --ctl "$CTL" -L 2>/dev/null | grep -c . || true; }

CT_BASE=$(ct_count)
RSS_START=$(rss)
S=$P-s
C=$P-c
ip netns exec "$S" iperf3 -s -1 > "$TMP/iperf3-server.txt" 2>&1 &
ip netns exec "$S" python3 "$ROOT/bench/tools/shortconn.py" server 8000 &
ip netns exec "$S" python3 "$ROOT/bench/tools/udpgap.py" recv 9999 "$((DUR + 8))" > "$TMP/udp.txt" &
UDP_RECV=$!
sleep 0.5

ip netns exec "$C" iperf3 -c 10.1.0.1 -t "$DUR" -b "$TCP_RATE" > "$TMP/iperf3.txt" 2>&1 &
IPERF=$!
ip netns exec "$C" python3 "$ROOT/bench/tools/shortconn.py" client 10.1.0.1 8000 "$DUR" "$CONN_RATE" > "$TMP/conn.txt" &
CONN=$!
ip netns exec "$C" python3 "$ROOT/bench/tools/udpgap.py" send 10.1.0.1 9999 "$UDP_PPS" "$DUR" &
UDP_SEND=$!
UDP_SENT=$(awk -v r="$UDP_PPS" -v d="$DUR" 'BEGIN { printf "%d", r * d }')

# Warm-up: max(30 s, DURATION/5), at most half the run. The allocator's
# working set (rulesets built by restores on control threads and freed by
# workers, conntrack slab chunks, io_uring buffers) plateaus at ~44 MiB
# after 30-45 s here and stays there (the 30-minute run ended at 43.7 MiB);
# a 10 s warm-up measured that plateau being reached, not growth.
WARM=$(( DUR / 5 > 30 ? DUR / 5 : 30 ))
[ "$WARM" -le $(( DUR / 2 )) ] || WARM=$(( DUR / 2 ))
t0=$(date +%s)
RSS_WARM=
restores=0 restore_fail=0 deletes=0
while kill -0 "$IPERF" 2>/dev/null; do
    sleep 1
    el=$(( $(date +%s) - t0 ))
    echo "$el $(rss)" >> "$TMP/rss.txt"
    if [ $(( el % 3 )) -eq 0 ]; then
        if "$BIN" iptables-restore --ctl "$CTL" < "$TMP/rules$(( restores % 2 )).v4"; then
            restores=$(( restores + 1 ))
        else
            restore_fail=$(( restore_fail + 1 ))
        fi
    fi
    if [ $(( el % 5 )) -eq 0 ]; then
        # Finished short connections (TIME_WAIT) and the UDP stream's
        # entry (the next datagram makes a new one, same NAT). Deleting a
        # live NATed TCP entry would break that connection in the kernel
        # too (its reply reaches the gateway's own address: RST).
        d1=$("$BIN" conntrack --ctl "$CTL" -D -p tcp --orig-port-dst 8000 --state TIME_WAIT 2>&1 >/dev/null | grep -oE '[0-9]+ flow' | grep -oE '[0-9]+' || true)
        d2=$("$BIN" conntrack --ctl "$CTL" -D -p udp --orig-port-dst 9999 2>&1 >/dev/null | grep -oE '[0-9]+ flow' | grep -oE '[0-9]+' || true)
        deletes=$(( deletes + ${d1:-0} + ${d2:-0} ))
    fi
done
# median RSS of the samples taken at elapsed seconds [$1, $2)
rss_median() {
    awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { print $2 }' "$TMP/rss.txt" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
WIN=$(( DUR / 6 < 10 ? DUR / 6 : 10 ))
[ "$WIN" -ge 1 ] || WIN=1
RSS_WARM=$(rss_median "$WARM" $(( WARM + WIN )))
RSS_END=$(rss_median $(( DUR - WIN )) 999999)
[ -n "$RSS_END" ] || RSS_END=$(rss)
[ -n "$RSS_WARM" ] || RSS_WARM=$RSS_END
IPERF_RC=0; wait "$IPERF" || IPERF_RC=$?
wait "$CONN" || true
wait "$UDP_SEND" || true
wait "$UDP_RECV" || true

# Traffic has stopped: wait out the short timeouts (+ the sweep).
CT_AFTER=
for _ in $(seq 30); do
    CT_AFTER=$(ct_count)
    [ "$CT_AFTER" -le "$CT_BASE" ] && break
    sleep 1
done

read -r CONN_OK CONN_BROKEN CONN_REFUSED <<<"$(sed -E 's/ok=([0-9]+) broken=([0-9]+) refused=([0-9]+)/\1 \2 \3/' "$TMP/conn.txt")"
UDP_RECEIVED=$(sed -nE 's/.*received=([0-9]+).*/\1/p' "$TMP/udp.txt")
UDP_RECEIVED=${UDP_RECEIVED:-0}
UDP_LOSS=$(( UDP_SENT > UDP_RECEIVED ? UDP_SENT - UDP_RECEIVED : 0 ))
IPERF_BROKEN=0
if [ "$IPERF_RC" -ne 0 ] || grep -q "error" "$TMP/iperf3.txt"; then IPERF_BROKEN=1; fi
BROKEN=$(( IPERF_BROKEN + ${CONN_BROKEN:-0} ))
GROWTH=$(awk -v w="$RSS_WARM" -v e="$RSS_END" 'BEGIN { printf "%.1f", (w > 0 ? 100 * (e - w) / w : 0) }')
LEFT=$(( CT_AFTER > CT_BASE ? CT_AFTER - CT_BASE : 0 ))
IPERF_RATE=$(awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /bits\/sec/) v = $i " " $(i+1) } END { print v }' "$TMP/iperf3.txt")

echo "duration ${DUR}s; iperf3 TCP (limit $TCP_RATE): ${IPERF_RATE:-?} exit $IPERF_RC"
echo "short connections: ok=${CONN_OK:-0} broken=${CONN_BROKEN:-0} refused=${CONN_REFUSED:-0} (${CONN_RATE}/s)"
echo "udp: sent=$UDP_SENT $(cat "$TMP/udp.txt")"
echo "ruleset restores: $restores ok, $restore_fail failed; conntrack -D: $deletes entries deleted"
echo "rss_kib start=$RSS_START warm=$RSS_WARM end=$RSS_END"
# The trajectory, to tell steady growth (a leak) from allocator steps.
RSS_SAMPLES=$(awk '$1 % 30 == 0 && $1 != last { printf " %d:%d", $1, $2; last = $1 }' "$TMP/rss.txt")
echo "rss_kib every 30 s (elapsed:kib):$RSS_SAMPLES"
echo "conntrack entries: baseline=$CT_BASE after=$CT_AFTER"
"$BIN" stats --ctl "$CTL" | grep -E '^(conntrack_stats|drop )' || true
kill -0 "$TG_PID" 2>/dev/null || { echo "tungate died:" >&2; tail -20 "$TMP/tungate.log" >&2; BROKEN=$(( BROKEN + 1 )); }
echo "broken=$BROKEN udp_loss=$UDP_LOSS rss_growth_pct=$GROWTH ct_leftover=$LEFT"
