#!/usr/bin/env bash
# Launch the real app (release build) under Xvfb on a folder of real music and capture
# every view — the first-start page, library, track (playing), training — at 900x600
# and 1600x1000, in the dark and the light theme, into docs/screenshot-*.png.
# Usage: scripts/screenshots.sh [MUSIC_DIR] [RUN_DIR]
# MUSIC_DIR defaults to ../shared/data/gtzan (read in place, never copied); RUN_DIR is a
# finished `genretag train` run shown in the training view (default: one is trained).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --gui
export PATH="$HOME/.cargo/bin:$PATH"
MUSIC=$(realpath "${1:-../shared/data/gtzan}")
RUN=${2:-}
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
if [ -z "$RUN" ]; then
  RUN=$TMP/run
  "$BIN" train --model transfer --data "$MUSIC" --val 0.15 --out "$RUN" > /dev/null
fi
# The library is analysed with the shipped model when it is there, else with the run's.
MODEL=()
[ -d models/default ] || MODEL=(--model "$RUN")
# A display nobody else uses (other checkouts may run this script at the same time).
d=97
while [ -e "/tmp/.X$d-lock" ] || [ -e "/tmp/.X11-unix/X$d" ]; do d=$((d + 1)); done
export DISPLAY=:$d
# Larger than the largest window, so the pointer can rest outside it (no stray tooltips).
Xvfb "$DISPLAY" -screen 0 1700x1100x24 >/dev/null 2>&1 &
sleep 2
mkdir -p docs

# Analyse the folder once (cached in the library database for every shot after).
"$BIN" app "$MUSIC" --db "$TMP/library.sqlite3" --frame-log "$TMP/first.json" "${MODEL[@]}" &
pid=$!
for _ in $(seq 1 360); do
  sleep 5
  if [ -f "$TMP/first.json" ] && python3 - "$TMP/first.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["tracks"] > 0 and d["analysed"] >= d["tracks"] else 1)
EOF
  then break; fi
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true

shot() { # file view theme size seconds [more args]
  local file=$1 view=$2 theme=$3 size=$4 secs=$5
  shift 5
  rm -rf "$XDG_DATA_HOME"
  "$BIN" app --db "$TMP/library.sqlite3" --view "$view" --theme "$theme" --window-size "$size" \
    --run "$RUN" "${MODEL[@]}" "$@" &
  local pid=$!
  xdotool mousemove 1690 1090 || true
  sleep "$secs"
  if ! kill -0 "$pid" 2>/dev/null; then
    # The app could not start (e.g. the X server refused a connection under load):
    # never capture an empty screen; try once more.
    echo "retrying $file"
    "$BIN" app --db "$TMP/library.sqlite3" --view "$view" --theme "$theme" \
      --window-size "$size" --run "$RUN" "${MODEL[@]}" "$@" &
    pid=$!
    sleep "$secs"
    kill -0 "$pid" 2>/dev/null || { echo "the app did not start for $file" >&2; exit 1; }
  fi
  # No window manager: the window sits at the top left corner, without decorations.
  import -window root -crop "$size+0+0" +repage "$file"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "wrote $file"
}
for theme in dark light; do
  shot "docs/screenshot-welcome-900x600-$theme.png" library "$theme" 900x600 6
  for size in 900x600 1600x1000; do
    shot "docs/screenshot-library-$size-$theme.png" library "$theme" "$size" 12 "$MUSIC"
    shot "docs/screenshot-track-$size-$theme.png" track "$theme" "$size" 16 "$MUSIC" --play-first
    shot "docs/screenshot-training-$size-$theme.png" training "$theme" "$size" 10 "$MUSIC"
  done
done
