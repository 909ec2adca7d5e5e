#!/usr/bin/env bash
# Speed benchmark: TensorFlow musicnn (reference) and genretag, same clips, same run, for
# fp32 and the reduced-precision path `auto` picks (int16 on AVX-512 VNNI), with the
# precision agreement over every clip. Usage: scripts/bench.sh [DATA_DIR] [N_CLIPS]
# Builds a Python virtualenv with tensorflow-cpu, librosa and the musicnn wheel on first use
# (VENV, default target/musicnn-venv). The load average is printed first: two cores are
# shared, so compare figures taken when it is low.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/gtzan}
CLIPS=${2:-20}
VENV=${VENV:-target/musicnn-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import musicnn, librosa' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'tensorflow-cpu==2.21.*' 'tf_keras==2.21.*' 'librosa==0.11.*'
  "$VENV/bin/pip" install -q --no-deps musicnn==0.1.0
fi
mkdir -p target
cargo build --release --locked
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$VENV/bin/python" scripts/musicnn_reference.py "$DATA" "$CLIPS" target/musicnn-reference.json
target/release/genretag bench --data "$DATA" --clips "$CLIPS" --profile \
  --reference target/musicnn-reference.json --json target/bench.json
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
