#!/usr/bin/env bash
# Speed benchmark: TensorFlow musicnn (reference) and genretag, same clips, same run.
# Usage: scripts/bench.sh [DATA_DIR] [N_CLIPS]
# Builds a Python virtualenv with tensorflow-cpu, librosa and the musicnn wheel on first use
# (VENV, default target/musicnn-venv), then prints genretag's timings with ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/gtzan}
CLIPS=${2:-20}
VENV=${VENV:-target/musicnn-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'tensorflow-cpu==2.21.*' 'tf_keras==2.21.*' 'librosa==0.11.*'
  "$VENV/bin/pip" install -q --no-deps musicnn==0.1.0
fi
mkdir -p target
"$VENV/bin/python" scripts/musicnn_reference.py "$DATA" "$CLIPS" target/musicnn-reference.json
cargo run --release --no-default-features -- bench --data "$DATA" --clips "$CLIPS" --reference target/musicnn-reference.json
