#!/usr/bin/env bash
# Pipeline benchmark of two commits side by side, in the same minutes: the
# pipeline_bench of BASE (built in a scratch worktree) and of the working
# tree, run alternately on core 0, best of ROUNDS per figure. For "no speed
# lost" checks of a change; bench/pipeline.sh is the benchmark itself.
#
# usage: bench/pipeline-ab.sh BASE [ROUNDS]     (BASE: any commit; ROUNDS default 5)
# Last line: base_established_mpps=A established_mpps=B ratio_established=B/A
#            base_newflows_10k=C newflows_10k=D ratio_newflows_10k=D/C
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/pipeline-ab.sh BASE [ROUNDS]}
rounds=${2:-5}
rev=$(git rev-parse --short "$base")
tmp=$(mktemp -d)
wt="$tmp/base"
cleanup() { git worktree remove --force "$wt" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
python3 bench/kube-gen 10 4 >"$tmp/kube-10.v4"
python3 bench/kube-gen 10000 4 >"$tmp/kube-10k.v4"
git worktree add -q --detach "$wt" "$rev"
# The base's build keeps its own target directory between runs.
base_target=${AB_TARGET:-target/ab-base}
mkdir -p "$base_target"
base_target=$(cd "$base_target" && pwd)
(cd "$wt" && CARGO_TARGET_DIR="$base_target" cargo build --release -q -p tungate --example pipeline_bench)
cargo build --release -q -p tungate --example pipeline_bench
declare -A bin=([base]="$base_target/release/examples/pipeline_bench" [head]="target/release/examples/pipeline_bench")
run() { # side mode key
    PIPELINE_BENCH_ONLY=$2 taskset -c 0 "${bin[$1]}" "$tmp/kube-10.v4" "$tmp/kube-10k.v4" | sed -n "s/^$3=//p"
}
declare -A best
for mode in established:established_mpps newflows10k:newflows_10k; do
    m=${mode%%:*} k=${mode##*:}
    for side in base head; do best[$side.$k]=0; done
    for i in $(seq "$rounds"); do
        # Alternate which side goes first, so drift in the machine's state
        # does not favour one of them.
        if [ $((i % 2)) = 1 ]; then order="base head"; else order="head base"; fi
        for side in $order; do
            v=$(run "$side" "$m" "$k")
            echo "round $i $side $k=$v"
            best[$side.$k]=$(python3 -c "print(max($v, ${best[$side.$k]}))")
        done
    done
done
ratio() { python3 -c "print(f'{$2 / $1:.3f}')"; }
echo "base $rev vs working tree $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes), best of $rounds, core 0"
echo "base_established_mpps=${best[base.established_mpps]} established_mpps=${best[head.established_mpps]} ratio_established=$(ratio "${best[base.established_mpps]}" "${best[head.established_mpps]}") base_newflows_10k=${best[base.newflows_10k]} newflows_10k=${best[head.newflows_10k]} ratio_newflows_10k=$(ratio "${best[base.newflows_10k]}" "${best[head.newflows_10k]}")"
