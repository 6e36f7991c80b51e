#!/usr/bin/env bash
# Pipeline-only benchmark (no I/O, one core): established flow through
# DNAT+MASQUERADE, new flows/s with the 10- and 10,000-service kube ruleset,
# RSS per conntrack entry at 1,000,000 entries. Each figure runs in a fresh
# process (best of 3 runs for the rates).
# Last line: established_mpps=A newflows_10=B newflows_10k=C bytes_per_entry=D
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 bench/kube-gen 10 4 >"$tmp/kube-10.v4"
python3 bench/kube-gen 10000 4 >"$tmp/kube-10k.v4"
cargo build --release -q -p tungate --example pipeline_bench
run() { PIPELINE_BENCH_ONLY=$1 taskset -c 0 target/release/examples/pipeline_bench "$tmp/kube-10.v4" "$tmp/kube-10k.v4"; }
best() { # mode key -> best of 3
    for _ in 1 2 3; do run "$1" | sed -n "s/^$2=//p"; done | sort -g | tail -1
}
est=$(best established established_mpps)
nf10=$(best newflows10 newflows_10)
nf10k=$(best newflows10k newflows_10k)
# Not `| tee | head -1`: under pipefail a SIGPIPE to tee failed the script.
run memory >"$tmp/mem"
head -1 "$tmp/mem"
bpe=$(sed -n 's/^bytes_per_entry=//p' "$tmp/mem")
echo "established flow, DNAT+MASQUERADE, 64-byte packets: $est Mpps"
echo "new flows to the last service: $nf10 /s (10 services), $nf10k /s (10,000 services)"
echo "established_mpps=$est newflows_10=$nf10 newflows_10k=$nf10k bytes_per_entry=$bpe"
