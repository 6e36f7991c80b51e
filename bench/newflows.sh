#!/usr/bin/env bash
# New TCP flows/s admitted to the LAST service of a kube-proxy ruleset with
# N = 10, 1,000 and 10,000 services (bench/kube-gen N 4), through tungate and
# through a kernel router namespace loaded with the same file by the real
# iptables-restore, in one run (issue 6).
#
#   Usage (root, from anywhere):  bench/newflows.sh [ROUNDS=5] [ROUND_SECS=1] [SERVICES="10 1000 10000"]
#
# Load: bench/tools/flowgen.rs (`flowgen syn`, a cargo example) sends TCP SYNs
# from the client namespace at its maximum rate to the last service's cluster
# IP, port 80; every SYN is a new flow (sources 10.1.0.2-254 x ports
# 1024-65535, never repeated within a run). The server namespace owns the last
# service's four endpoint addresses (on lo) and counts the SYNs that reach
# 10.128.x.y:8080 with its own iptables rule (-A INPUT -p tcp --syn --dport
# 8080 -j DROP; the DROP keeps the reply path out of the measurement).
# Rate = SYNs counted at the server / seconds of sending; ROUNDS rounds of
# ROUND_SECS each (or ROUND_MAX SYNs, whichever comes first), the median is
# reported. All six gateways (tungate and kernel, per N) are set up first, each
# on its own topology, and the rounds are interleaved (tungate N=10, kernel
# N=10, tungate N=1000, ...) so that the other load on the shared machine
# falls on all of them alike. For tungate the table also shows flows per
# CPU-second of the tungate process (/proc/PID/stat), which does not depend on
# how much CPU the generator got. Before every round the gateway's conntrack table is flushed
# (`conntrack -F`), and a round sends at most ROUND_MAX (200,000) SYNs, for
# two limits: the kernel's nf_conntrack_max (262144 here) is global and not
# settable from a namespace; and the ruleset MASQUERADEs the client to the
# gateway's one address, so at most 4 endpoints x 64,512 ports = 258,048
# flows can be translated at a time (beyond that both gateways drop new flows
# as NAT-exhausted). tungate runs with [conntrack] max = 2097152.
# Then p50/p99 of a full TCP connect() (SYN, SYN-ACK through the NAT) to the
# cluster IP: CONNECTS sequential connects, a listener on the endpoints.
#
# Output: a table; bench/results/newflows.png (matplotlib, installed with pip
# if missing; the plot is skipped with a note if that fails); last line
#   tungate_10k=A kernel_10k=B ratio_vs_kernel=A/B flatness=A/tungate_10
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-5}
ROUND_SECS=${2:-1}
SERVICES=${3:-"10 1000 10000"}
CONNECTS=${CONNECTS:-200}
ROUND_MAX=${ROUND_MAX:-200000}
. "$ROOT/bench/lib.sh"
B=$(topo_prefix n 7)
WORK=$(mktemp -d /tmp/newflows-$B.XXXXXX)
declare -A TPID
LISTEN_PID=

cleanup() {
    [ -n "$LISTEN_PID" ] && kill "$LISTEN_PID" 2>/dev/null || true
    for pid in "${TPID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for n in $(seq 0 9); do
        "$ROOT/netns-scripts/topo.sh" down "${B}t$n" 2>/dev/null || true
        "$ROOT/netns-scripts/topo.sh" down "${B}k$n" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

build_flowgen
. "$ROOT/netns-scripts/lib.sh"   # median
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

last_ip() { local i=$(($1 - 1)); echo "10.96.$(((i >> 8) & 255)).$((i & 255))"; }
last_eps() {
    local i=$(($1 - 1)) j k
    for j in 0 1 2 3; do k=$((i * 4 + j)); echo "10.$((128 + ((k >> 16) & 63))).$(((k >> 8) & 255)).$((k & 255))"; done
}

server_setup() { # PREFIX N: endpoints on the server's lo, the SYN counter
    local ep
    for ep in $(last_eps "$2"); do ip -n "$1-s" addr add "$ep/32" dev lo; done
    ip netns exec "$1-s" iptables -F INPUT
    ip netns exec "$1-s" iptables -A INPUT -p tcp --syn --dport 8080 -j DROP
}

syn_count() { ip netns exec "$1-s" iptables -L INPUT -n -v -x | awk '$3 == "DROP" && /dpt:8080/ { print $1; exit }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

flush() { # gw N
    if [ "$1" = tg ]; then "$TG" conntrack --ctl "$WORK/ctl-$2.sock" -F; else ip netns exec "${PFX[k$2]}-r" conntrack -F; fi >/dev/null 2>&1 || true
}

NEXT=0
round() { # gw N -> appends to RATES[gw N] (and CPUR for tungate)
    local gw=$1 n=$2 pfx=${PFX[$1$2]} before after out secs rate c0=0 c1=0
    flush "$gw" "$n"
    sleep 0.3
    before=$(syn_count "$pfx")
    [ "$gw" = tg ] && c0=$(cpu_ticks "${TPID[$n]}")
    out=$(ip netns exec "$pfx-c" "$GEN" syn 10.1.0 "$(last_ip "$n")" 80 "$ROUND_SECS" "$NEXT" "$ROUND_MAX" 2>"$WORK/gen.err")
    NEXT=$(sed -n 's/^next=//p' "$WORK/gen.err")
    sleep 0.5 # let queues drain before reading the counter
    after=$(syn_count "$pfx")
    secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")
    rate=$(awk -v a="$before" -v b="$after" -v s="$secs" 'BEGIN { printf "%d", (b - a) / s }')
    RATES[$gw$n]="${RATES[$gw$n]:-} $rate"
    local extra=""
    if [ "$gw" = tg ]; then
        c1=$(cpu_ticks "${TPID[$n]}")
        local cr
        cr=$(awk -v a="$before" -v b="$after" -v c="$((c1 - c0))" -v t="$TICK" 'BEGIN { printf "%d", (c > 0 ? (b - a) * t / c : 0) }')
        CPUR[$n]="${CPUR[$n]:-} $cr"
        extra="; $cr flows per tungate cpu-second"
    fi
    echo "  N=$n $gw round: generator $out; admitted $((after - before)) -> $rate flows/s$extra" >&2
}

connect_times() { # gw N -> "p50_ms p99_ms failures"
    local pfx=${PFX[$1$2]}
    flush "$1" "$2"   # the flood's entries hold the NAT ports
    ip netns exec "$pfx-s" iptables -F INPUT
    ip netns exec "$pfx-s" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(1024)
while True:
    c, _ = s.accept(); c.close()
' &
    LISTEN_PID=$!
    sleep 0.5
    ip netns exec "$pfx-c" python3 - "$(last_ip "$2")" "$CONNECTS" <<'PY'
import socket, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
ts, fails = [], 0
for _ in range(n):
    s = socket.socket(); s.settimeout(3)
    t = time.perf_counter()
    try:
        s.connect((dst, 80)); ts.append((time.perf_counter() - t) * 1e3)
    except OSError:
        fails += 1
    s.close()
ts.sort()
if not ts:
    print("nan nan", n); sys.exit()
q = lambda p: ts[min(len(ts) - 1, int(p * len(ts)))]
print(f"{q(0.50):.3f} {q(0.99):.3f} {fails}")
PY
    kill "$LISTEN_PID" 2>/dev/null || true; wait "$LISTEN_PID" 2>/dev/null || true; LISTEN_PID=
}

# Set up every gateway first (one tungate and one kernel router namespace per
# N, each on its own topology), then measure in interleaved rounds, so that
# the load of the shared machine falls on all of them alike.
declare -A PFX RATES CPUR RATE P50 P99 FAIL
i=0
for N in $SERVICES; do
    RULES=$WORK/kube-$N.v4
    "$ROOT/bench/kube-gen" "$N" 4 > "$RULES"
    PFX[tg$N]=${B}t$i
    PFX[k$N]=${B}k$i
    i=$((i + 1))
    echo "== N=$N services: last service $(last_ip "$N") -> $(last_eps "$N" | tr '\n' ' ')" >&2

    p=${PFX[tg$N]}
    "$ROOT/netns-scripts/topo.sh" up "$p" cgs tungate
    SOCK=$WORK/ctl-$N.sock
    {
        echo "control_socket = \"$SOCK\""
        "$ROOT/netns-scripts/topo.sh" config "$p" cgs "$RULES"
        printf '\n[conntrack]\nmax = 2097152\n\n[[route]]\ndestination = "10.128.0.0/10"\ninterface = "%s-ts"\n' "$p"
    } > "$WORK/tungate-$N.toml"
    sed -i 's/^log_level = .*/log_level = "warn"/' "$WORK/tungate-$N.toml"
    NO_COLOR=1 "$TG" run --config "$WORK/tungate-$N.toml" 2> "$WORK/tungate-$N.log" &
    TPID[$N]=$!
    for _ in $(seq 300); do [ -S "$SOCK" ] && ip -n "$p-s" link show "$p-ts" >/dev/null 2>&1 && break; kill -0 "${TPID[$N]}" || break; sleep 0.1; done
    [ -S "$SOCK" ] || { echo "tungate did not start:" >&2; cat "$WORK/tungate-$N.log" >&2; exit 1; }
    sleep 0.5
    server_setup "$p" "$N"

    p=${PFX[k$N]}
    t0=$(date +%s.%N)
    "$ROOT/netns-scripts/topo.sh" up "$p" cgs kernel "$RULES"
    echo " kernel: topology + iptables-restore $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s" >&2
    ip -n "$p-r" route add 10.128.0.0/10 via 10.2.0.2
    server_setup "$p" "$N"
done

for r in $(seq "$ROUNDS"); do
    echo "-- round $r" >&2
    for N in $SERVICES; do
        round tg "$N"
        round k "$N"
    done
done
for N in $SERVICES; do
    for gw in tg k; do
        RATE[$gw$N]=$(echo "${RATES[$gw$N]}" | median)
        read -r P50[$gw$N] P99[$gw$N] FAIL[$gw$N] <<<"$(connect_times "$gw" "$N")"
    done
    echo "  N=$N tungate conntrack -S: $("$TG" conntrack --ctl "$WORK/ctl-$N.sock" -S 2>&1 | head -1)" >&2
done

echo "rounds=$ROUNDS round_secs=$ROUND_SECS round_max=$ROUND_MAX connects=$CONNECTS nproc=$(nproc) loadavg_before=\"$LOAD_BEFORE\" loadavg_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\" date=$(date -u +%FT%TZ)"
printf '%-9s | %-8s | %14s | %19s | %13s | %13s | %s\n' services gateway "new flows/s" "flows/tungate-cpu-s" "connect p50" "connect p99" "failed connects"
for N in $SERVICES; do
    printf '%-9s | %-8s | %14s | %19s | %10s ms | %10s ms | %s\n' "$N" tungate "${RATE[tg$N]}" "$(echo "${CPUR[$N]}" | median)" "${P50[tg$N]}" "${P99[tg$N]}" "${FAIL[tg$N]}"
    printf '%-9s | %-8s | %14s | %19s | %10s ms | %10s ms | %s\n' "$N" kernel "${RATE[k$N]}" "-" "${P50[k$N]}" "${P99[k$N]}" "${FAIL[k$N]}"
done

# Plot (matplotlib; pip-installed on first use).
FIRST=${SERVICES%% *}
LAST=${SERVICES##* }
PTS_TG="" PTS_K=""
for N in $SERVICES; do PTS_TG="$PTS_TG $N:${RATE[tg$N]}"; PTS_K="$PTS_K $N:${RATE[k$N]}"; done
mkdir -p "$ROOT/bench/results"
if python3 -c 'import matplotlib' 2>/dev/null || pip install -q matplotlib >&2; then
    python3 - "$ROOT/bench/results/newflows.png" "$PTS_TG" "$PTS_K" "$LOAD_BEFORE" <<'PY' || echo "plot failed" >&2
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out, tg, k, load = sys.argv[1:5]
pts = lambda s: [tuple(map(float, p.split(":"))) for p in s.split()]
fig, ax = plt.subplots(figsize=(7, 4.5))
for name, s, m in (("tungate", tg, "o-"), ("kernel (iptables nf_tables)", k, "s-")):
    xs, ys = zip(*pts(s))
    ax.plot(xs, ys, m, label=name)
ax.set_xscale("log"); ax.set_xlabel("services in the ruleset (kube-proxy style, 4 endpoints)")
ax.set_ylabel("new TCP flows/s to the last service"); ax.set_ylim(bottom=0)
ax.set_title(f"bench/newflows.sh (2 cores, load avg {load})", fontsize=10)
ax.grid(True, which="both", alpha=0.3); ax.legend()
fig.tight_layout(); fig.savefig(out, dpi=100)
print("plot:", out, file=sys.stderr)
PY
else
    echo "matplotlib not available: no plot" >&2
fi

awk -v a="${RATE[tg$LAST]}" -v b="${RATE[k$LAST]}" -v t="${RATE[tg$FIRST]}" 'BEGIN { printf "tungate_10k=%d kernel_10k=%d ratio_vs_kernel=%.2f flatness=%.2f\n", a, b, (b > 0 ? a / b : 0), (t > 0 ? a / t : 0) }'
