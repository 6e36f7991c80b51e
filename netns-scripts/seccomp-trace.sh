#!/usr/bin/env bash
# List the system calls a running tungate makes after its privilege drop,
# to review ALLOWED_SYSCALLS in router/src/sys/seccomp.rs.
#
#   sudo netns-scripts/seccomp-trace.sh [path/to/tungate]
#
# Builds a client - tungate - server topology (prefix tgsc), runs the gateway
# under `strace -f` with seccomp = false and user = nobody, drives ping,
# iperf3 (2 s), iptables-restore, iptables-save, iptables -L (with and
# without -n), conntrack -L/-F, stats, SIGUSR1 and SIGTERM, then prints each
# system call seen after the drop (the capset(2) call) with its count, and
# those among them that ALLOWED_SYSCALLS lacks. Needs strace, hping3, iperf3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${1:-$ROOT/target/debug/tungate}
P=tgsc
D=$(mktemp -d /tmp/tungate-sctrace.XXXXXX)
chmod 755 "$D"
cleanup() {
    [ -n "${GW:-}" ] && kill "$GW" 2>/dev/null || true
    "$ROOT/netns-scripts/topo.sh" down "$P" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for tool in strace hping3 iperf3; do
    command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

"$ROOT/netns-scripts/topo.sh" up "$P" cgs tungate >/dev/null
{
    echo "control_socket = \"$D/ctl.sock\""
    echo 'user = "nobody"'
    echo 'seccomp = false'
    "$ROOT/netns-scripts/topo.sh" config "$P" cgs "" 2
} > "$D/tungate.toml"

strace -f -qq -o "$D/strace.txt" "$T" run --config "$D/tungate.toml" 2> "$D/log" &
GW=$!
for _ in $(seq 100); do grep -q "tungate running" "$D/log" && break; sleep 0.1; done
ctl() { local tool=$1; shift; timeout 20 "$T" "$tool" --ctl "$D/ctl.sock" "$@"; }

ip netns exec $P-c hping3 --icmp -c 3 -i u100000 10.2.0.2 >/dev/null 2>&1 || true
ip netns exec $P-s iperf3 -s -1 -D
sleep 0.3
timeout 20 ip netns exec $P-c iperf3 -c 10.2.0.2 -t 2 >/dev/null
printf '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 10.1.0.0/24 -j MASQUERADE\nCOMMIT\n' \
    | ctl iptables-restore
ctl iptables-save >/dev/null
ctl iptables -L -n -v >/dev/null
ctl iptables -L >/dev/null
ctl conntrack -L >/dev/null 2>&1
ctl conntrack -F >/dev/null 2>&1
ctl stats >/dev/null
TG=$(pgrep -P "$GW" -x tungate || true)
[ -n "$TG" ] && kill -USR1 "$TG" && sleep 0.3 && kill -TERM "$TG"
wait "$GW" || true
GW=

awk '/capset\(/ {f=1} f' "$D/strace.txt" \
    | sed -E 's/^[0-9]+ +//' | grep -oE '^[a-z0-9_]+\(' | tr -d '(' \
    | grep -v '^capset$' | sort | uniq -c | sort -rn > "$D/after-drop.txt"
echo "system calls after the drop (count name):"
cat "$D/after-drop.txt"
allowed=$(grep -oE 'libc::SYS_[a-z0-9_]+' "$ROOT/router/src/sys/seccomp.rs" | sed 's/libc::SYS_//' | sort -u)
missing=$(awk '{print $2}' "$D/after-drop.txt" | while read -r s; do
    grep -qx "$s" <<<"$allowed" || echo "$s"; done)
echo "not in ALLOWED_SYSCALLS: ${missing:-none}"
echo "(trace and log kept in $D)"
