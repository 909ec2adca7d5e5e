#!/usr/bin/env bash
# Rebuild models/musicnn_msd.bpk from the ISC-licensed PyPI wheel musicnn==0.1.0.
# Needs pip (network access to PyPI) and cargo; no TensorFlow: the checkpoint is read natively.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download -q --no-deps musicnn==0.1.0 -d "$WORK"
WHEEL="$WORK/musicnn-0.1.0-py3-none-any.whl"
echo "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa  $WHEEL" | sha256sum -c -
(cd "$WORK" && python3 -m zipfile -e "$WHEEL" .)
CHECK=()
if [ -f ../shared/reference/musicnn/msd_musicnn_weights.npz ]; then
  CHECK=(--check-npz ../shared/reference/musicnn/msd_musicnn_weights.npz)
fi
cargo run --release --no-default-features -- convert-musicnn \
  --checkpoint "$WORK/musicnn/MSD_musicnn/" --out models/musicnn_msd.bpk "${CHECK[@]}"
cp "$WORK/musicnn-0.1.0.dist-info/LICENSE.md" models/LICENSE-musicnn.md
