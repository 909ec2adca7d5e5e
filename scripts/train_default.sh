#!/usr/bin/env bash
# Train the shipped default model (models/default/) exactly as shipped: a transfer head on
# the musicnn embedding fused with the backbone's tag evidence, with its temperature and
# "unsure" threshold, all chosen by grouped 5-fold cross-validation (GTZAN blocks of 5
# consecutive clips never span two folds) on ../shared/data/gtzan.
# Windows are the backbone's own 3 s patches, without overlap, as the model hears tracks.
# Features are cached (~/.cache/genretag/features); the first run decodes every clip
# clean and through 9 simulated recording differences (needs ffmpeg).
# Usage: scripts/train_default.sh [RUN_DIR]   (then copy RUN_DIR/model to models/default)
# Environment: GENRETAG (binary; default: cargo run --release), DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/default-run}
DATA=${DATA:-../shared/data/gtzan}
if [ -z "${GENRETAG:-}" ]; then
  cargo build --release
  GENRETAG=target/release/genretag
fi
"$GENRETAG" train --model fused --data "$DATA" --split grouped --group gtzan \
  --folds 5 --split-seed 7 --overlap 0 --out "$OUT"
echo "model: $OUT/model (install with: rm -rf models/default && cp -r $OUT/model models/default)"
