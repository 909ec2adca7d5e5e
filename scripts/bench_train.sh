#!/usr/bin/env bash
# Training-speed benchmark: TensorFlow CPU (reference) and genretag on the same CNN and
# input, in the same run. Usage: scripts/bench_train.sh [STEPS]
# Builds a Python virtualenv with tensorflow-cpu on first use (VENV, default
# target/musicnn-venv, shared with scripts/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
VENV=${VENV:-target/musicnn-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'tensorflow-cpu==2.21.*'
fi
mkdir -p target
"$VENV/bin/python" scripts/train_reference.py target/train-reference.json "$STEPS"
cargo run --release --locked -- bench-train --steps "$STEPS" \
  --reference target/train-reference.json --json target/train-bench.json
