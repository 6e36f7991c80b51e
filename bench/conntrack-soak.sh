#!/usr/bin/env bash
# Conntrack soak (issue 6): fill tungate with a million concurrent UDP flows
# and measure memory per entry, insert rate, lookup rate for established
# flows at 1k and at 1M entries, and expiry once traffic stops.
#
#   Usage (root, from anywhere):  bench/conntrack-soak.sh [FLOWS=1000000] [UDP_TIMEOUT=60] [LOOKUP_SECS=3]
#   (env LOOKUP_REPS=3)
#
# Topology: client - tungate - server (netns-scripts/topo.sh cgs), empty
# ruleset (ACCEPT policies; every packet still goes through conntrack),
# [conntrack] max = FLOWS + 25 %, udp_timeout = UDP_TIMEOUT.
# Load: bench/tools/flowgen.rs from the client namespace: flow i = 10.1.0.2:
# (1024 + i % 64000) -> 10.2.0.2:(1 + i / 64000), one packet each
# (`flowgen udp`), or the first 1000 flows round-robin at full speed
# (`flowgen udprepeat`). The server namespace counts and drops them with its
# own iptables (-A INPUT -p udp -j DROP), so no reply traffic exists.
#
# Steps and definitions:
#   1. lookup at 1k: udprepeat of 1000 flows for LOOKUP_SECS: packets counted at
#      the server / seconds (all after the first 1000 are conntrack hits).
#   2. RSS0 = VmRSS of tungate (/proc/PID/status), entries0 = `tungate conntrack -C`
#      (1000), taken after step 1 so buffer pools are already touched.
#   3. fill: `flowgen udp` FLOWS flows; insert rate = new entries / seconds of
#      sending (passes are repeated, at most 6, for flows lost in the TUN
#      queue; only the first pass's rate is reported).
#      RSS1, entries1; bytes_per_entry = (RSS1 - RSS0) / (entries1 - entries0).
#   4. lookup at 1M: the same udprepeat with the full table present.
#      Each lookup figure is the median of LOOKUP_REPS (3) runs, as packets/s
#      at the server (wall) and as packets per CPU-second of tungate (utime +
#      stime of all its threads, /proc/PID/stat). The generator shares the
#      two cores with tungate and with whatever else runs, so the wall rate
#      mostly measures the sender; the per-CPU-second rate is the gateway's
#      own cost per packet, and the ratio uses it:
#      lookup_ratio_1M_vs_1k = (pkt per cpu-s at 1k) / (pkt per cpu-s at 1M)
#      (1.0 = no slowdown; the wall ratio is printed too).
#   5. traffic stops; entries are polled until 0 (at most UDP_TIMEOUT + 60 s);
#      leaked_entries = entries left then; RSS2 (24 s later: two housekeeping
#      passes, which give back the slab chunks and shrink the index) against
#      RSS0 is printed.
#   6. refill with FLOWS new flows (one pass): RSS against the first fill shows
#      whether the memory kept after expiry is reused.
# Last line: bytes_per_entry=X lookup_ratio_1M_vs_1k=Y leaked_entries=Z
#   rss_start_mib=RSS0 rss_full_mib=RSS1 rss_expired_mib=RSS2
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/netns-scripts/lib.sh"   # median
FLOWS=${1:-1000000}
UDP_TIMEOUT=${2:-60}
LOOKUP_SECS=${3:-3}
LOOKUP_REPS=${LOOKUP_REPS:-3}
. "$ROOT/bench/lib.sh"
work_scratch tgk ctsoak
SOCK=$WORK/ctl.sock

build_flowgen
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

"$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate
{
    echo "control_socket = \"$SOCK\""
    "$ROOT/netns-scripts/topo.sh" config "$P" cgs
    printf '\n[conntrack]\nmax = %d\nudp_timeout = %d\nudp_stream_timeout = %d\n' $((FLOWS + FLOWS / 4)) "$UDP_TIMEOUT" "$UDP_TIMEOUT"
} > "$WORK/tungate.toml"
sed -i 's/^log_level = .*/log_level = "warn"/' "$WORK/tungate.toml"
NO_COLOR=1 "$TG" run --config "$WORK/tungate.toml" 2> "$WORK/tungate.log" &
TUNGATE_PID=$!
for _ in $(seq 300); do [ -S "$SOCK" ] && ip -n "$P-s" link show "$P-ts" >/dev/null 2>&1 && break; kill -0 "$TUNGATE_PID" || break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "tungate did not start:" >&2; cat "$WORK/tungate.log" >&2; exit 1; }
sleep 0.5
# A longer queue on the client's side of the TUN, so bursts are not lost there.
ip -n "$P-c" link set "$P-tc" txqueuelen 10000
ip netns exec "$P-s" iptables -A INPUT -p udp -j DROP

rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$TUNGATE_PID/status"; }
entries() { "$TG" conntrack --ctl "$SOCK" -C; }
udp_count() { ip netns exec "$P-s" iptables -L INPUT -n -v -x | awk '$3 == "DROP" && $4 == "17" { print $1; exit }'; }
gen() { ip netns exec "$P-c" "$GEN" "$@"; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$TUNGATE_PID/stat"; } # utime + stime, all threads
TICK=$(getconf CLK_TCK)

lookup_rate() { # -> "packets/s_wall packets_per_tungate_cpu_second", median of LOOKUP_REPS
    local before after out secs c0 c1 r walls="" cpus=""
    for r in $(seq "$LOOKUP_REPS"); do
        before=$(udp_count); c0=$(cpu_ticks)
        out=$(gen udprepeat 10.1.0.2 10.2.0.2 1000 "$LOOKUP_SECS")
        sleep 0.5
        after=$(udp_count); c1=$(cpu_ticks)
        secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")
        walls="$walls $(awk -v a="$before" -v b="$after" -v s="$secs" 'BEGIN { printf "%d", (b - a) / s }')"
        cpus="$cpus $(awk -v a="$before" -v b="$after" -v c="$((c1 - c0))" -v t="$TICK" 'BEGIN { printf "%d", (c > 0 ? (b - a) * t / c : 0) }')"
        echo "  lookup rep $r: generator $out; server got $((after - before)); tungate cpu $(awk -v c="$((c1 - c0))" -v t="$TICK" 'BEGIN { printf "%.2f", c / t }') s" >&2
    done
    echo "$(echo "$walls" | median) $(echo "$cpus" | median)"
}

sleep 1
echo "idle: rss=$(rss) entries=$(entries)" >&2
read -r LOOK_1K CPU_1K <<<"$(lookup_rate)"
# The start point comes after the 1k-flow phase, so that the buffer pools and
# rings are warm and the delta below is the table's.
RSS0=$(rss)
E0=$(entries)
echo "lookup at $E0 entries: $LOOK_1K pkt/s, $CPU_1K pkt per tungate cpu-s; start: rss=$RSS0" >&2

INS_RATE=0
INS_CPU=0
for pass in 1 2 3 4 5 6; do
    before=$(entries); c0=$(cpu_ticks)
    out=$(gen udp 10.1.0.2 10.2.0.2 "$FLOWS")
    sleep 0.5
    after=$(entries); c1=$(cpu_ticks)
    secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")
    echo "fill pass $pass: generator $out; entries $before -> $after" >&2
    if [ "$pass" = 1 ]; then
        INS_RATE=$(awk -v a="$before" -v b="$after" -v s="$secs" 'BEGIN { printf "%d", (b - a) / s }')
        INS_CPU=$(awk -v a="$before" -v b="$after" -v c="$((c1 - c0))" -v t="$TICK" 'BEGIN { printf "%d", (c > 0 ? (b - a) * t / c : 0) }')
    fi
    [ "$after" -ge "$FLOWS" ] && break
done
sleep 1
RSS1=$(rss)
E1=$(entries)
echo "full: rss=$RSS1 entries=$E1" >&2
read -r LOOK_1M CPU_1M <<<"$(lookup_rate)"
E1B=$(entries)
echo "lookup at $E1B entries: $LOOK_1M pkt/s, $CPU_1M pkt per tungate cpu-s" >&2
STOP=$(date +%s)

LEFT=$E1B
while [ $(($(date +%s) - STOP)) -lt $((UDP_TIMEOUT + 60)) ]; do
    sleep 2
    LEFT=$(entries)
    echo "  $(($(date +%s) - STOP)) s after traffic stopped: $LEFT entries, rss $(rss)" >&2
    [ "$LEFT" = 0 ] && break
done
EMPTY_AFTER=$(($(date +%s) - STOP))
# The housekeeping sweep visits the whole table every ~10 s; the pass after
# the last expiry gives back the slab chunks and shrinks the index, and the
# allocator returns the pages (workers every 5 s when quiet): two passes.
for t in 4 8 12 16 20 24; do
    sleep 4
    echo "  $t s after the table emptied: rss $(rss)" >&2
done
RSS2=$(rss)
# Refill: the memory kept after expiry (slab chunks, index capacity) is
# reused, not leaked: a second million flows must not grow RSS much.
out=$(gen udp 10.1.0.2 10.2.0.2 "$FLOWS" "$FLOWS")
sleep 1
E3=$(entries)
RSS3=$(rss)
echo "refill: generator $out; entries $E3 rss $RSS3" >&2
"$TG" conntrack --ctl "$SOCK" -S >&2 || true

echo "flows=$FLOWS udp_timeout=$UDP_TIMEOUT lookup_secs=$LOOKUP_SECS nproc=$(nproc) loadavg_before=\"$LOAD_BEFORE\" loadavg_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\" date=$(date -u +%FT%TZ)"
awk -v r0="$RSS0" -v r1="$RSS1" -v r2="$RSS2" -v e0="$E0" -v e1="$E1" -v ins="$INS_RATE" -v insc="$INS_CPU" -v l1="$LOOK_1K" -v lm="$LOOK_1M" -v c1="$CPU_1K" -v cm="$CPU_1M" -v left="$LEFT" -v r3="$RSS3" -v e3="$E3" -v t="$EMPTY_AFTER" -v to="$UDP_TIMEOUT" 'BEGIN {
    printf "entries             : %d -> %d\n", e0, e1
    printf "RSS                 : start %.1f MiB, full %.1f MiB, after expiry %.1f MiB (%+.1f MiB vs start)\n", r0 / 1048576, r1 / 1048576, r2 / 1048576, (r2 - r0) / 1048576
    printf "refill              : %d entries, RSS %.1f MiB (%+.1f MiB vs full): memory kept after expiry is reused\n", e3, r3 / 1048576, (r3 - r1) / 1048576
    printf "insert rate         : %d entries/s (first fill pass, sender-bound if the table kept up), %d entries per tungate cpu-second\n", ins, insc
    printf "lookup, 1k entries  : %d pkt/s (wall), %d pkt per tungate cpu-second\n", l1, c1
    printf "lookup, %d entries: %d pkt/s (wall), %d pkt per tungate cpu-second\n", e1, lm, cm
    printf "wall-clock ratio 1k/1M: %.2f (sender shares the 2 cores: noisy)\n", (lm > 0 ? l1 / lm : 0)
    printf "expiry              : %d entries left %d s after traffic stopped (udp_timeout %d s)\n", left, t, to
    printf "bytes_per_entry=%d lookup_ratio_1M_vs_1k=%.2f leaked_entries=%d rss_start_mib=%.1f rss_full_mib=%.1f rss_expired_mib=%.1f\n", (e1 > e0 ? (r1 - r0) / (e1 - e0) : 0), (cm > 0 ? c1 / cm : 0), left, r0 / 1048576, r1 / 1048576, r2 / 1048576
}'
