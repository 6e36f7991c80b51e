#!/usr/bin/env bash
# Create / destroy the standard tungate topologies. Idempotent: `up` first
# removes whatever a crashed earlier run left behind under the same prefix.
#
#   topo.sh up     PREFIX cgs|backends tungate|kernel [RULES.v4]
#   topo.sh down   PREFIX
#   topo.sh config PREFIX cgs|backends [RULES.v4] [WORKERS]   # print a tungate config
#
# Topology cgs (client - gateway - server):
#   PREFIX-c  client   10.1.0.2/24, default via the gateway 10.1.0.1
#   PREFIX-s  server   10.2.0.2/24, default via the gateway 10.2.0.1
# Topology backends (client - gateway - four backends, a kube-style service):
#   PREFIX-c  client   10.1.0.2/24
#   PREFIX-bN backend  10.2.N.2/24, gateway 10.2.N.1  (N = 1..4)
#
# Mode tungate: only the end namespaces are created; `tungate run` creates the
# TUN devices (PREFIX-tc, PREFIX-ts / PREFIX-tN) and moves them in.
# Mode kernel: a router namespace PREFIX-r joins them with veth pairs, with
# ip_forward on and RULES.v4 (if given) loaded by the real iptables-restore.
set -euo pipefail

usage() { sed -n '2,20p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 P=$2
[ ${#P} -le 10 ] || { echo "prefix $P too long (max 10, device names are PREFIX-tN)" >&2; exit 2; }

ends() { # namespace:address:gateway:devsuffix of every end
    case $1 in
        cgs) echo "$P-c:10.1.0.2/24:10.1.0.1:tc $P-s:10.2.0.2/24:10.2.0.1:ts" ;;
        backends) echo "$P-c:10.1.0.2/24:10.1.0.1:tc $P-b1:10.2.1.2/24:10.2.1.1:t1 $P-b2:10.2.2.2/24:10.2.2.1:t2 $P-b3:10.2.3.2/24:10.2.3.1:t3 $P-b4:10.2.4.2/24:10.2.4.1:t4" ;;
        *) usage ;;
    esac
}

down() {
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$P-(c|s|r|b[1-4])$" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    # Devices of a tungate that died without cleanup are gone with its fds;
    # veth ends left in the root namespace are not expected, but remove them.
    for d in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$P-" || true); do
        ip link del "$d" 2>/dev/null || true
    done
}

up() {
    local topo=$1 mode=$2 rules=${3:-}
    down
    for e in $(ends "$topo"); do
        IFS=: read -r ns addr gw suf <<<"$e"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    if [ "$mode" = kernel ]; then
        local r=$P-r
        ip netns add "$r"
        ip -n "$r" link set lo up
        ip netns exec "$r" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
        for e in $(ends "$topo"); do
            IFS=: read -r ns addr gw suf <<<"$e"
            local len=${addr#*/}
            ip link add "$P-$suf" netns "$r" type veth peer name "$P-$suf" netns "$ns"
            ip -n "$r" addr add "$gw/$len" dev "$P-$suf"
            ip -n "$r" link set "$P-$suf" up
            ip -n "$ns" addr add "$addr" dev "$P-$suf"
            ip -n "$ns" link set "$P-$suf" up
            ip -n "$ns" route add default via "$gw"
        done
        if [ -n "$rules" ]; then
            ip netns exec "$r" iptables-restore < "$rules"
        fi
    elif [ "$mode" != tungate ]; then
        usage
    fi
}

config() {
    local topo=$1 rules=${2:-} workers=${3:-$(nproc)}
    echo "workers = $workers"
    [ -n "$rules" ] && echo "ruleset = \"$(realpath "$rules")\""
    echo 'log_level = "info"'
    for e in $(ends "$topo"); do
        IFS=: read -r ns addr gw suf <<<"$e"
        cat <<EOT

[[interface]]
name = "$P-$suf"
netns = "$ns"
address = "$gw/${addr#*/}"
peer_address = "$addr"
peer_routes = ["default"]
EOT
    done
}

case $cmd in
    up) [ $# -ge 4 ] || usage; up "$3" "$4" "${5:-}" ;;
    down) down ;;
    config) [ $# -ge 3 ] || usage; config "$3" "${4:-}" "${5:-}" ;;
    *) usage ;;
esac
