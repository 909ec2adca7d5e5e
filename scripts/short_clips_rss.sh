#!/usr/bin/env bash
# Peak resident memory of `genretag classify` over N short clips (issue 14, item 6):
# it must stay flat with N. Usage: scripts/short_clips_rss.sh N [SECONDS] [BINARY]
# Needs ffmpeg and GNU time (/usr/bin/time; apt-get install time).
set -euo pipefail
n=${1:?number of clips}
secs=${2:-0.5}
bin=${3:-target/debug/genretag}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ffmpeg -v error -f lavfi -i "sine=frequency=440:duration=$secs" -ar 22050 -ac 1 "$dir/clip.wav"
mkdir "$dir/clips"
for i in $(seq -w 1 "$n"); do cp "$dir/clip.wav" "$dir/clips/c$i.wav"; done
echo "load before: $(uptime)"
/usr/bin/time -v "$bin" classify --json "$dir/clips" 2>"$dir/time.txt" >/dev/null || true
grep -E "Maximum resident|Elapsed" "$dir/time.txt"
echo "$n clips of $secs s: peak RSS $(awk '/Maximum resident/{printf "%.0f MB", $6/1024}' "$dir/time.txt")"
