#!/usr/bin/env bash
# Full-length songs: 20 four-minute MP3s (44.1 kHz stereo, 192 kbit/s), each eight dev
# clips of one genre joined end to end, made with ffmpeg under target/bench-songs (local
# only: audio derived from the dev clips is never committed), then
# `genretag bench --songs`: songs per second end to end with adaptive listening and
# seeking (the default), with 10 patches and seeking, and with 10 patches decoded whole;
# the decisions compared; a first scan of 50 000 tracks estimated.
# Usage: scripts/bench_songs.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/gtzan}
OUT=target/bench-songs
mkdir -p "$OUT"
for dir in "$DATA"/*/; do
  genre=$(basename "$dir")
  mapfile -t clips < <(find "$dir" -maxdepth 1 -type f | sort)
  n=${#clips[@]}
  [ "$n" -gt 0 ] || continue
  for song in 0 1; do
    dst="$OUT/$genre-$song.mp3"
    [ -s "$dst" ] && continue
    list=$(mktemp)
    for k in 0 1 2 3 4 5 6 7; do
      printf "file '%s'\n" "$(realpath "${clips[$(((8 * song + k) % n))]}")" >>"$list"
    done
    ffmpeg -hide_banner -loglevel error -y -f concat -safe 0 -i "$list" \
      -ar 44100 -ac 2 -c:a libmp3lame -b:a 192k "$dst"
    rm -f "$list"
  done
done
cargo build --release --locked
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/genretag bench --songs "$OUT" --json target/bench-songs.json
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
