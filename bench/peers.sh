#!/usr/bin/env bash
# Runs the peer harness (../shared/bench/peers/run.sh) with interpose as
# targets X (with the benchmark plugin) and X0 (no plugin), and prints the
# ratio table. Every load loop in the harness is bounded by wrk -d.
#   bash bench/peers.sh                 # REPS=3 DURATION=10, shared mode
#   REPS=5 DURATION=15 bash bench/peers.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${SHARED:-$root/../shared/bench}"
# The deployment build (Cargo.toml's `production` profile); BIN= to measure another.
bin="${BIN:-$root/target/production/interpose}"
[[ -n ${BIN:-} ]] || cargo build --profile production --bin interpose --manifest-path "$root/Cargo.toml"
out="${OUT_DIR:-${TMPDIR:-/tmp}/interpose-peerbench}"
cd "$shared"
OUT_DIR="$out" \
X_CMD="$bin serve -c ../interpose-bench.toml" \
X0_CMD="$bin serve -c ../interpose-bench-noplugin.toml" \
X_DESC=interpose TARGETS="${TARGETS:-direct A B2 C X0 X}" BLOCKED_TARGETS="${BLOCKED_TARGETS:-B2 C X}" \
MODES="${MODES:-shared}" REPS="${REPS:-3}" DURATION="${DURATION:-10}" \
bash peers/run.sh
python3 - "$out/results/raw.tsv" <<'PY'
import sys, statistics as st
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])][1:]
med = {}
for mode, rep, t, kind, rps, p50, p99, reqs, non2xx, sockerr, gw, up, util, user in rows:
    med.setdefault((kind, t), []).append((float(rps), float(gw)))
def m(kind, t, i):
    v = med.get((kind, t))
    return st.median(x[i] for x in v) if v else float('nan')
print("\nratios (medians):")
for label, a, b, i in [
    ("X / B2 req/s (allowed)", ("allowed", "X"), ("allowed", "B2"), 0),
    ("X / C req/s (allowed)", ("allowed", "X"), ("allowed", "C"), 0),
    ("X / A req/s (allowed)", ("allowed", "X"), ("allowed", "A"), 0),
    ("X0 / A req/s", ("allowed", "X0"), ("allowed", "A"), 0),
    ("X / B2 req/s (blocked)", ("blocked", "X"), ("blocked", "B2"), 0),
    ("X0 CPU/req / A CPU/req", ("allowed", "X0"), ("allowed", "A"), 1),
    ("X CPU/req / A CPU/req", ("allowed", "X"), ("allowed", "A"), 1),
]:
    print(f"  {label:28s} {m(*a, i) / m(*b, i):.2f}")
PY
