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
# reported. Before every round the gateway's conntrack table is flushed
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
P=tgn$$
P=${P:0:10}
WORK=$(mktemp -d /tmp/newflows-$P.XXXXXX)
TG=$ROOT/target/release/tungate
GEN=$ROOT/target/release/examples/flowgen
TUNGATE_PID=
LISTEN_PID=

cleanup() {
    [ -n "$LISTEN_PID" ] && kill "$LISTEN_PID" 2>/dev/null || true
    if [ -n "$TUNGATE_PID" ]; then kill -TERM "$TUNGATE_PID" 2>/dev/null || true; wait "$TUNGATE_PID" 2>/dev/null || true; fi
    "$ROOT/netns-scripts/topo.sh" down "$P" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -p tungate --bin tungate --example flowgen) >&2
. "$ROOT/netns-scripts/lib.sh"   # median
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

last_ip() { local i=$(($1 - 1)); echo "10.96.$(((i >> 8) & 255)).$((i & 255))"; }
last_eps() {
    local i=$(($1 - 1)) j k
    for j in 0 1 2 3; do k=$((i * 4 + j)); echo "10.$((128 + ((k >> 16) & 63))).$(((k >> 8) & 255)).$((k & 255))"; done
}

server_setup() { # N: endpoints on the server's lo, the SYN counter
    local ep
    for ep in $(last_eps "$1"); do ip -n "$P-s" addr add "$ep/32" dev lo; done
    ip netns exec "$P-s" iptables -F INPUT
    ip netns exec "$P-s" iptables -A INPUT -p tcp --syn --dport 8080 -j DROP
}

syn_count() { ip netns exec "$P-s" iptables -L INPUT -n -v -x | awk '$3 == "DROP" && /dpt:8080/ { print $1; exit }'; }

NEXT=0
flood() { # FLUSH_CMD...: ROUNDS rounds; prints the median rate; per-round lines on stderr
    local rates="" r before after out secs rate
    for r in $(seq "$ROUNDS"); do
        "$@" >/dev/null 2>&1 || true
        sleep 0.3
        before=$(syn_count)
        out=$(ip netns exec "$P-c" "$GEN" syn 10.1.0 "$DST" 80 "$ROUND_SECS" "$NEXT" "$ROUND_MAX" 2>"$WORK/gen.err")
        NEXT=$(sed -n 's/^next=//p' "$WORK/gen.err")
        sleep 0.5 # let queues drain before reading the counter
        after=$(syn_count)
        secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")
        rate=$(awk -v a="$before" -v b="$after" -v s="$secs" 'BEGIN { printf "%d", (b - a) / s }')
        echo "  round $r: generator $out; admitted $((after - before)) -> $rate flows/s" >&2
        rates="$rates $rate"
    done
    echo "$rates" | median
}

connect_times() { # FLUSH_CMD... -> "p50_ms p99_ms failures"
    "$@" >/dev/null 2>&1 || true  # the flood's entries hold the NAT ports
    ip netns exec "$P-s" iptables -F INPUT
    ip netns exec "$P-s" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(1024)
while True:
    c, _ = s.accept(); c.close()
' &
    LISTEN_PID=$!
    sleep 0.5
    ip netns exec "$P-c" python3 - "$DST" "$CONNECTS" <<'PY'
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

declare -A RATE P50 P99 FAIL
for N in $SERVICES; do
    RULES=$WORK/kube-$N.v4
    "$ROOT/bench/kube-gen" "$N" 4 > "$RULES"
    DST=$(last_ip "$N")
    echo "== N=$N services: last service $DST -> $(last_eps "$N" | tr '\n' ' ')" >&2

    # tungate
    "$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate
    SOCK=$WORK/ctl.sock
    {
        echo "control_socket = \"$SOCK\""
        "$ROOT/netns-scripts/topo.sh" config "$P" cgs "$RULES"
        printf '\n[conntrack]\nmax = 2097152\n\n[[route]]\ndestination = "10.128.0.0/10"\ninterface = "%s-ts"\n' "$P"
    } > "$WORK/tungate.toml"
    sed -i 's/^log_level = .*/log_level = "warn"/' "$WORK/tungate.toml"
    NO_COLOR=1 "$TG" run --config "$WORK/tungate.toml" 2> "$WORK/tungate.log" &
    TUNGATE_PID=$!
    for _ in $(seq 300); do [ -S "$SOCK" ] && ip -n "$P-s" link show "$P-ts" >/dev/null 2>&1 && break; kill -0 "$TUNGATE_PID" || break; sleep 0.1; done
    [ -S "$SOCK" ] || { echo "tungate did not start:" >&2; cat "$WORK/tungate.log" >&2; exit 1; }
    sleep 0.5
    server_setup "$N"
    echo " tungate:" >&2
    RATE[tg$N]=$(flood "$TG" conntrack --ctl "$SOCK" -F)
    read -r P50[tg$N] P99[tg$N] FAIL[tg$N] <<<"$(connect_times "$TG" conntrack --ctl "$SOCK" -F)"
    echo "  tungate conntrack -S: $("$TG" conntrack --ctl "$SOCK" -S 2>&1 | head -3 | tr '\n' ' ')" >&2
    kill -TERM "$TUNGATE_PID"; wait "$TUNGATE_PID" 2>/dev/null || true; TUNGATE_PID=
    "$ROOT/netns-scripts/topo.sh" down "$P"

    # kernel router namespace, same file
    t0=$(date +%s.%N)
    "$ROOT/netns-scripts/topo.sh" up "$P" cgs kernel "$RULES"
    echo " kernel: topology + iptables-restore $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s" >&2
    ip -n "$P-r" route add 10.128.0.0/10 via 10.2.0.2
    server_setup "$N"
    RATE[k$N]=$(flood ip netns exec "$P-r" conntrack -F)
    read -r P50[k$N] P99[k$N] FAIL[k$N] <<<"$(connect_times ip netns exec "$P-r" conntrack -F)"
    echo "  kernel conntrack -S (cpu0): $(ip netns exec "$P-r" conntrack -S 2>&1 | head -1)" >&2
    "$ROOT/netns-scripts/topo.sh" down "$P"
done

echo "rounds=$ROUNDS round_secs=$ROUND_SECS round_max=$ROUND_MAX connects=$CONNECTS nproc=$(nproc) loadavg_before=\"$LOAD_BEFORE\" loadavg_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\" date=$(date -u +%FT%TZ)"
printf '%-9s | %-8s | %14s | %13s | %13s | %s\n' services gateway "new flows/s" "connect p50" "connect p99" "failed connects"
for N in $SERVICES; do
    printf '%-9s | %-8s | %14s | %10s ms | %10s ms | %s\n' "$N" tungate "${RATE[tg$N]}" "${P50[tg$N]}" "${P99[tg$N]}" "${FAIL[tg$N]}"
    printf '%-9s | %-8s | %14s | %10s ms | %10s ms | %s\n' "$N" kernel "${RATE[k$N]}" "${P50[k$N]}" "${P99[k$N]}" "${FAIL[k$N]}"
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
