#!/usr/bin/env bash
# Train every model kind on the shared GTZAN clips with one grouped split, then write the
# comparison table (OUT/results.md, OUT/results.csv) with `genretag compare`.
# Usage: scripts/results.sh [OUT_DIR]
# Environment: GENRETAG (binary; default: cargo run --release), DATA (default
# ../shared/data/gtzan), EPOCHS_CNN (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/results}
DATA=${DATA:-../shared/data/gtzan}
EPOCHS_CNN=${EPOCHS_CNN:-8}
if [ -z "${GENRETAG:-}" ]; then
  cargo build --release --no-default-features
  GENRETAG=target/release/genretag
fi
# One split for every row: GTZAN blocks of 5 consecutive clips never span train and
# test; no validation part (the minor genres have only two blocks each), so every
# model trains a fixed schedule and keeps its last epoch.
SPLIT=(--data "$DATA" --split grouped --group gtzan --test 0.25 --val 0 --split-seed 1)
mkdir -p "$OUT"
run() {
  local name=$1
  shift
  echo "== $name: genretag train $* ${SPLIT[*]} --out $OUT/$name"
  local t0=$SECONDS
  "$GENRETAG" train "$@" "${SPLIT[@]}" --out "$OUT/$name" | tail -n 16
  echo "== $name took $((SECONDS - t0)) s"
}
run transfer-logreg --model transfer
run transfer-mlp --model transfer --hidden 128 --dropout 0.3
run logreg --model logreg
run sgd --model sgd
run forest --model forest
run rnn-lstm --model rnn --cell lstm --augment
run rnn-gru --model rnn --cell gru
run cnn1d --model cnn1d --epochs "$EPOCHS_CNN" --augment
run cnn-naive --model cnn-naive --epochs "$EPOCHS_CNN"
run cnn5-mfcc --model cnn5 --input mfcc --epochs "$EPOCHS_CNN" --augment
run crnn-mfcc --model crnn --input mfcc --cell lstm --epochs "$EPOCHS_CNN" --augment
run rescnn-mfcc --model rescnn --width 0.5 --epochs "$EPOCHS_CNN" --augment
run mixnet --model mixnet --width 0.5 --epochs "$EPOCHS_CNN" --augment
run hybrid --model hybrid --width 0.5 --epochs "$EPOCHS_CNN" --augment
run crnn-logmel --model crnn --width 0.5 --epochs "$EPOCHS_CNN" --augment
run cnn5-logmel --model cnn5 --width 0.5 --epochs "$EPOCHS_CNN" --augment
for rule in sum product agree; do
  echo "== ensemble-$rule"
  "$GENRETAG" ensemble "$OUT/transfer-logreg" "$OUT/rnn-lstm" "$OUT/cnn5-mfcc" --rule "$rule" --out "$OUT/ensemble-$rule" | tail -n 3
  echo "== ensemble-best-$rule"
  "$GENRETAG" ensemble "$OUT/transfer-logreg" "$OUT/cnn5-logmel" "$OUT/crnn-logmel" --rule "$rule" --out "$OUT/ensemble-best-$rule" | tail -n 3
done
runs=()
for d in "$OUT"/*/; do
  [ -f "$d/report.json" ] && runs+=("${d%/}")
done
"$GENRETAG" compare "${runs[@]}" --csv "$OUT/results.csv" --markdown "$OUT/results.md"
