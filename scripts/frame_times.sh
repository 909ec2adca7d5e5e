#!/usr/bin/env bash
# UI frame times and memory of the real app (release build) under Xvfb, in three runs:
#
#  1. browse: a folder of N links to real clips (default 5000 links to
#     ../shared/data/gtzan; no audio is copied) analysed for SECONDS while the app
#     scrolls the table, selects and decodes tracks and switches views (--exercise).
#  2. tag: TAG_N tiny generated FLAC files (default 10 000; real copies, since tags are
#     written), analysed with a small model trained here, then all selected, previewed,
#     written and undone (--exercise tag): the frames while tagging.
#  3. big: a BIG_N-row library (default 50 000 links) scrolled and re-sorted by every
#     column for BIG_SECONDS (--exercise sort): frame times and peak memory.
#
# Each run prints the app's frame log (JSON): ui_* = time in the app's code per frame
# (events, layout, drawing commands; wall time), ui_cpu_* = the UI thread's CPU time in it,
# ui_ran_* = wall time less the UI thread's wait for a CPU (run-queue delay), interval_* =
# time between frame starts, tag_* / sort_* = the frames that wrote tags / re-sorted,
# slowest / longest = the costliest frames by CPU and the one with the most wall time
# (each with its CPU time before drawing, logic_cpu_ms, and the cell
# texts it laid out and left for the next frame), rss_peak_mb = peak resident memory,
# cell_texts = the table's cell texts drawn from its cache, laid out anew, left for the
# next frame (a frame's layout time was spent: deferred), and kept (count, kept_mb).
# A count of 0 skips a run. Usage:
#   scripts/frame_times.sh [N] [SECONDS] [TAG_N] [BIG_N] [BIG_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --gui
bash scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
N=${1:-5000}
SECS=${2:-60}
TAG_N=${3:-10000}
BIG_N=${4:-50000}
BIG_SECS=${5:-240}
SRC=$(realpath ../shared/data/gtzan)
# GENRETAG_BIN: an already built binary (e.g. target/debug/genretag) instead of a release build.
if [ -n "${GENRETAG_BIN:-}" ]; then
  BIN=$(realpath "$GENRETAG_BIN")
else
  cargo build --release --locked
  BIN=$(realpath target/release/genretag)
fi
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
# The app's settings go to a scratch folder, not the user's.
export XDG_DATA_HOME=$TMP/xdg-data XDG_CONFIG_HOME=$TMP/xdg-config
export DISPLAY=:96
Xvfb :96 -screen 0 1280x860x24 >/dev/null 2>&1 &
sleep 2
echo "load before: $(uptime)"

# A small model trained here on generated tones and noise: the tag run's files are such
# tones and noise, which the shipped model rightly calls "unsure" (nothing would be written),
# and it stands in for the shipped model where that is absent.
train_small_model() {
  mkdir -p "$TMP/train/tones" "$TMP/train/noise"
  for k in $(seq 0 9); do
    ffmpeg -loglevel error -f lavfi -i "sine=frequency=$((200 + 40 * k)):duration=4" -ar 16000 "$TMP/train/tones/t$k.wav"
    ffmpeg -loglevel error -f lavfi -i "anoisesrc=seed=$k:amplitude=0.3:duration=4" -ar 16000 "$TMP/train/noise/n$k.wav"
  done
  "$BIN" train --model logreg --data "$TMP/train" --split stratified --test 0.3 --val 0.2 \
    --out "$TMP/run" > /dev/null
}
if [ ! -d models/default ] || [ "$TAG_N" -gt 0 ]; then
  train_small_model
fi
# The browse and big runs: the shipped model when it is there.
LIBRARY_MODEL=()
[ -d models/default ] || LIBRARY_MODEL=(--model "$TMP/run")
MODEL=("${LIBRARY_MODEL[@]}")

links() { # count folder
  mapfile -t clips < <(find "$SRC" -name '*.flac' | sort)
  mkdir -p "$2"
  for ((i = 0; i < $1; i++)); do
    ln -s "${clips[$((i % ${#clips[@]}))]}" "$2/$(printf 'track%05d' "$i").flac"
  done
}

run_app() { # name seconds folder exercise [until-file]
  local log=$TMP/$1.json
  "$BIN" app "$3" --db "$TMP/$1.sqlite3" --frame-log "$log" --exercise "$4" "${MODEL[@]}" &
  local pid=$!
  local waited=0
  while [ "$waited" -lt "$2" ]; do
    sleep 5
    waited=$((waited + 5))
    # The tag run ends once it tagged and undid everything.
    if [ "$4" = tag ] && [ -f "$log" ] && grep -q '"exercise_done": true' "$log"; then break; fi
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "== $1 ($5 rows, $waited s; load $(cut -d' ' -f1-3 /proc/loadavg))"
  cat "$log"
}

if [ "$N" -gt 0 ]; then
  links "$N" "$TMP/browse"
  run_app browse "$SECS" "$TMP/browse" browse "$N"
fi

if [ "$TAG_N" -gt 0 ]; then
  # Two tiny FLACs (1.5 s: enough sound for a decision), copied TAG_N times.
  ffmpeg -loglevel error -f lavfi -i "sine=frequency=330:duration=1.5" -ar 16000 "$TMP/a.flac"
  ffmpeg -loglevel error -f lavfi -i "anoisesrc=seed=3:amplitude=0.3:duration=1.5" -ar 16000 "$TMP/b.flac"
  mkdir -p "$TMP/tag"
  for ((i = 0; i < TAG_N; i++)); do
    if ((i % 2)); then f=a; else f=b; fi
    cp "$TMP/$f.flac" "$TMP/tag/$(printf 'clip%05d' "$i").flac"
  done
  MODEL=(--model "$TMP/run")
  run_app tag 1800 "$TMP/tag" tag "$TAG_N"
  MODEL=("${LIBRARY_MODEL[@]}")
fi

if [ "$BIG_N" -gt 0 ]; then
  links "$BIG_N" "$TMP/big"
  run_app big "$BIG_SECS" "$TMP/big" sort "$BIG_N"
fi
