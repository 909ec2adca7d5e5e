#!/usr/bin/env bash
# UI frame time while analysis runs over a large folder: launches the app under Xvfb on
# a folder of N links to real clips (default 5000 links to ../shared/data/gtzan; the
# links are made in a temporary folder, no audio is copied), lets it analyse for
# SECONDS, and prints the p50/p99/max time spent in the UI code per frame.
# Usage: scripts/frame_times.sh [N] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --gui
export PATH="$HOME/.cargo/bin:$PATH"
N=${1:-5000}
SECS=${2:-60}
SRC=$(realpath ../shared/data/gtzan)
cargo build --release --locked
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
mapfile -t clips < <(find "$SRC" -name '*.flac' | sort)
mkdir -p "$TMP/music"
for ((i = 0; i < N; i++)); do
  ln -s "${clips[$((i % ${#clips[@]}))]}" "$TMP/music/$(printf 'track%05d' "$i").flac"
done
export DISPLAY=:96
Xvfb :96 -screen 0 1280x860x24 >/dev/null 2>&1 &
sleep 2
# --exercise: the app scrolls the table, selects tracks (decoding them for the track
# view) and switches views continuously while the analysis runs.
target/release/genretag app "$TMP/music" --db "$TMP/library.sqlite3" --frame-log "$TMP/frames.json" --exercise &
pid=$!
sleep "$SECS"
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
cat "$TMP/frames.json"
