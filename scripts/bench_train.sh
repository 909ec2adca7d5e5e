#!/usr/bin/env bash
# Training-speed benchmark: TensorFlow CPU (reference) and genretag on the same CNNs and
# input, in the same run: the issue's 4-block benchmark CNN, then the results table's
# 5-block CNN (32-64-128-256-512). Usage: scripts/bench_train.sh [STEPS]
# Builds a Python virtualenv with tensorflow-cpu on first use (VENV, default
# target/musicnn-venv, shared with scripts/bench.sh). The load average is printed first:
# two cores are shared, so compare figures taken when it is low.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
VENV=${VENV:-target/musicnn-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'tensorflow-cpu==2.21.*'
fi
mkdir -p target
cargo build --release --locked
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for widths in 16,32,64,128 32,64,128,256,512; do
  tag=${widths//,/-}
  "$VENV/bin/python" scripts/train_reference.py "target/train-reference-$tag.json" "$STEPS" "$widths"
  target/release/genretag bench-train --steps "$STEPS" --widths "$widths" --profile \
    --reference "target/train-reference-$tag.json" --json "target/train-bench-$tag.json"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
