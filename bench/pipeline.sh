#!/usr/bin/env bash
# Pipeline-only benchmark (no I/O, one core): established flow through
# DNAT+MASQUERADE, new flows/s with the 10- and 10,000-service kube ruleset,
# RSS per conntrack entry at 1,000,000 entries.
# Last line: established_mpps=A newflows_10=B newflows_10k=C bytes_per_entry=D
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 bench/kube-gen 10 4 >"$tmp/kube-10.v4"
python3 bench/kube-gen 10000 4 >"$tmp/kube-10k.v4"
cargo build --release -q -p tungate --example pipeline_bench
exec taskset -c 0 target/release/examples/pipeline_bench "$tmp/kube-10.v4" "$tmp/kube-10k.v4"
