#!/usr/bin/env bash
# Launch the real app under Xvfb on a folder of real music, play a track, and take a
# screenshot of each view into docs/. Usage: scripts/screenshots.sh [MUSIC_DIR] [RUN_DIR]
# MUSIC_DIR defaults to ../shared/data/gtzan (read in place, never copied); RUN_DIR is a
# finished `genretag train` run shown in the training view (default: one is trained).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --gui
export PATH="$HOME/.cargo/bin:$PATH"
MUSIC=${1:-../shared/data/gtzan}
RUN=${2:-}
cargo build --release --locked
BIN=target/release/genretag
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
if [ -z "$RUN" ]; then
  RUN=$TMP/run
  "$BIN" train --model transfer --data "$MUSIC" --val 0 --out "$RUN" > /dev/null
fi
export DISPLAY=:97
Xvfb :97 -screen 0 1280x860x24 >/dev/null 2>&1 &
sleep 2
mkdir -p docs
shot() { # view, seconds to wait, file
  "$BIN" app "$MUSIC" --db "$TMP/library.sqlite3" --view "$1" --play-first --run "$RUN" &
  local pid=$!
  sleep "$2"
  import -window root "$3"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# The first launch analyses the whole folder (cached in the library for the others).
shot library 90 docs/screenshot-library.png
shot track 25 docs/screenshot-track.png
shot training 15 docs/screenshot-training.png
echo "wrote docs/screenshot-{library,track,training}.png"
