#!/usr/bin/env bash
# Parse + validate benchmark of a kube-proxy-style ruleset, next to the
# kernel's iptables-restore on the same file (in a scratch netns).
#
#   bench/parse.sh [SERVICES] [ENDPOINTS]     (defaults 10000 4, ~140,000 rules)
#
# Needs python3 (generator); the iptables-restore comparison needs root and is
# skipped, with a message, otherwise. Release build: run it when measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
E=${2:-4}
cargo build --release -p tungate >/dev/null 2>&1 || cargo build --release -p tungate
BIN=target/release/tungate
FILE=$(mktemp /tmp/kube-gen.XXXXXX)
NS=""
cleanup() { rm -f "$FILE"; [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
bench/kube-gen "$N" "$E" > "$FILE"
echo "ruleset: $N services x $E endpoints: $(grep -c '^-A' "$FILE") rules, $(grep -c '^:' "$FILE") chains, $(wc -c < "$FILE") bytes"
echo "tungate ruleset check (parse + validate), 5 runs:"
for i in 1 2 3 4 5; do
    "$BIN" ruleset check --timing "$FILE"
done
s=$(date +%s.%N); "$BIN" ruleset check "$FILE"; e=$(date +%s.%N)
echo "tungate ruleset check, whole process: $(echo "$e - $s" | bc) s"
if [ "$(id -u)" = 0 ] && command -v iptables-restore >/dev/null; then
    NS=bench_parse_$$
    ip netns add "$NS"
    s=$(date +%s.%N); ip netns exec "$NS" iptables-restore < "$FILE"; e=$(date +%s.%N)
    echo "kernel iptables-restore ($(iptables-restore --version 2>&1 | head -1)): $(echo "$e - $s" | bc) s"
else
    echo "SKIP kernel iptables-restore: needs root and iptables-restore"
fi
