# Setup shared by the bench scripts (sourced; needs ROOT, the repository root).

# topo_prefix PFX [LEN=10]: PFX and this script's PID, cut to LEN characters
# (a topology prefix must leave room for its interface names' suffixes).
topo_prefix() {
    local p=$1$$
    echo "${p:0:${2:-10}}"
}

# tungate_bin: BIN = $TUNGATE_BIN, else this tree's release build (built
# first, cargo's output on stderr).
tungate_bin() {
    if [ -n "${TUNGATE_BIN:-}" ]; then
        BIN=$TUNGATE_BIN
    else
        (cd "$ROOT" && cargo build --release -p tungate) >&2
        BIN=$ROOT/target/release/tungate
    fi
}

# build_flowgen: this tree's tungate and the flowgen example, release builds
# (cargo's output on stderr), named by TG and GEN.
build_flowgen() {
    TG=$ROOT/target/release/tungate
    GEN=$ROOT/target/release/examples/flowgen
    (cd "$ROOT" && cargo build --release -p tungate --bin tungate --example flowgen) >&2
}

# gateway_scratch PFX: P (topo_prefix PFX), TMP (a scratch directory), CTL
# (the control socket in it), TG_PID (set when the script starts tungate),
# and an EXIT trap that stops tungate and the background jobs, takes the
# topology $P down and removes TMP.
gateway_scratch() {
    P=$(topo_prefix "$1")
    TMP=$(mktemp -d)
    CTL=$TMP/ctl.sock
    TG_PID=
    trap gateway_scratch_cleanup EXIT
}
gateway_scratch_cleanup() {
    [ -n "$TG_PID" ] && kill -TERM "$TG_PID" 2>/dev/null && wait "$TG_PID" 2>/dev/null || true
    for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
    "$ROOT/netns-scripts/topo.sh" down "$P" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}

# work_scratch PFX NAME: P (topo_prefix PFX), WORK (/tmp/NAME-$P.XXXXXX),
# TUNGATE_PID (set when the script starts tungate), and an EXIT trap that
# stops tungate, takes the topology $P down and removes WORK.
work_scratch() {
    P=$(topo_prefix "$1")
    WORK=$(mktemp -d "/tmp/$2-$P.XXXXXX")
    TUNGATE_PID=
    trap work_scratch_cleanup EXIT
}
work_scratch_cleanup() {
    if [ -n "$TUNGATE_PID" ]; then kill -TERM "$TUNGATE_PID" 2>/dev/null || true; wait "$TUNGATE_PID" 2>/dev/null || true; fi
    "$ROOT/netns-scripts/topo.sh" down "$P" || true
    rm -rf "$WORK"
}
