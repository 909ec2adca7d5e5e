#!/usr/bin/env bash
# Peak memory of a streaming batch against the number of inputs (issue 13):
# `classify --jsonl --files-from` over N generated tiny WAV files (0.25 s tones), for
# each N given, printing peak RSS (GNU time) and the wall time.
# Usage: scripts/batch_rss.sh [N...]   (default: 1000 10000)
#   SHARD=K/M scripts/batch_rss.sh 100000   lists all N inputs but analyses one shard of
#                                           them (to measure a long input list quickly)
# Needs target/release/genretag. Files go to target/batch-rss (N * 4.4 KB).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(pwd)/target/release/genretag"
WORK="$(pwd)/target/batch-rss"
mkdir -p "$WORK"
[ $# -gt 0 ] || set -- 1000 10000
for n in "$@"; do
  dir="$WORK/files-$n"
  if [ ! -f "$dir/.done" ]; then
    rm -rf "$dir"
    python3 - "$dir" "$n" <<'PY'
import math, os, struct, sys
d, n = sys.argv[1], int(sys.argv[2])
rate, secs = 8000, 0.25
for i in range(n):
    sub = os.path.join(d, f"{i // 1000:03d}")
    os.makedirs(sub, exist_ok=True)
    f = 200 + (i % 97) * 7
    pcm = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * f * t / rate)))
                   for t in range(int(rate * secs)))
    hdr = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(pcm))
    with open(os.path.join(sub, f"tone {i}.wav"), "wb") as fh:
        fh.write(hdr + pcm)
PY
    touch "$dir/.done"
  fi
  find "$dir" -name '*.wav' -print0 >"$WORK/list-$n"
  /usr/bin/time -f "%M %e" -o "$WORK/time-$n" \
    "$BIN" classify --jsonl --no-cache --files-from "$WORK/list-$n" -0 ${SHARD:+--shard "$SHARD"} \
    >"$WORK/out-$n.jsonl" 2>/dev/null || true
  # GNU time puts "Command exited with non-zero status" first when genretag exits 1.
  read -r rss secs < <(tail -n 1 "$WORK/time-$n")
  lines=$(grep -c '"type":"track"' "$WORK/out-$n.jsonl" || true)
  printf 'inputs %7d %s  track lines %7d   peak RSS %6.1f MiB   %7.1f s   load %s\n' \
    "$n" "${SHARD:+(shard $SHARD)}" "$lines" "$(awk "BEGIN{print $rss / 1024}")" "$secs" "$(cut -d' ' -f1-3 /proc/loadavg)"
done
