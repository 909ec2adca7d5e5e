#!/usr/bin/env bash
# One classification run three ways, checked to agree (docs/scale.md):
#   1. a single process;
#   2. GNU parallel: N local processes, process k runs `--shard k/N`;
#   3. Ray (installed from PyPI into target/venv-ray), local mode, N tasks.
# Usage: scripts/scale_demo.sh [FOLDER] [N]
#   FOLDER  music to classify (default: 48 generated test tones in target/scale-demo/music)
#   N       shards (default 4)
# Needs target/release/genretag (`cargo build --release`), GNU parallel, python3-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(pwd)/target/release/genretag"
WORK="$(pwd)/target/scale-demo"
N="${2:-4}"
mkdir -p "$WORK"
if [ -n "${1:-}" ]; then
  DIR="$(cd "$1" && pwd)"
else
  DIR="$WORK/music"
  if [ ! -d "$DIR" ]; then
    mkdir -p "$DIR"
    for i in $(seq 1 48); do
      sub="$DIR/artist $((i % 5))"
      mkdir -p "$sub"
      sox -n -r 22050 "$sub/tone $i.wav" synth 4 sine $((110 + 37 * i)) sine $((220 + 11 * i)) vol 0.4
    done
  fi
fi
command -v parallel >/dev/null || { echo "GNU parallel is needed: apt-get install parallel" >&2; exit 2; }
if [ ! -x target/venv-ray/bin/python ]; then
  python3 -m venv target/venv-ray
  target/venv-ray/bin/pip install -q "ray==2.*"
fi
# The decision of each track, sorted: what every way must agree on.
decisions() {
  python3 -c '
import json, sys
rows = []
for line in sys.stdin:
    o = json.loads(line)
    if o.get("type") == "track":
        rows.append((o["path"], json.dumps(o.get("decision"), sort_keys=True), o.get("ok")))
rows.sort()
for r in rows:
    print("\t".join(map(str, r)))
'
}
t0=$(date +%s.%N)
"$BIN" classify --jsonl --no-cache "$DIR" >"$WORK/single.jsonl" 2>/dev/null || true
t1=$(date +%s.%N)
# -q: parallel passes each word as it is (paths with spaces), no shell re-parsing.
seq 1 "$N" | parallel -q -j "$N" \
  "$BIN" classify --jsonl --no-cache --shard "{}/$N" --shard-root "$DIR" "$DIR" \
  >"$WORK/parallel.jsonl" 2>/dev/null || true
t2=$(date +%s.%N)
target/venv-ray/bin/python scripts/scale_ray.py "$BIN" "$DIR" "$N" >"$WORK/ray.jsonl" 2>"$WORK/ray.stderr"
t3=$(date +%s.%N)
decisions <"$WORK/single.jsonl" >"$WORK/single.tsv"
decisions <"$WORK/parallel.jsonl" >"$WORK/parallel.tsv"
decisions <"$WORK/ray.jsonl" >"$WORK/ray.tsv"
tracks=$(wc -l <"$WORK/single.tsv")
printf 'tracks: %s   single %.1f s   GNU parallel (%s shards) %.1f s   Ray (%s tasks) %.1f s   load %s\n' \
  "$tracks" "$(awk "BEGIN{print $t1 - $t0}")" "$N" "$(awk "BEGIN{print $t2 - $t1}")" "$N" "$(awk "BEGIN{print $t3 - $t2}")" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for way in parallel ray; do
  if cmp -s "$WORK/single.tsv" "$WORK/$way.tsv"; then
    echo "$way: same $tracks tracks and decisions as the single run"
  else
    echo "$way: DIFFERS from the single run:"; diff "$WORK/single.tsv" "$WORK/$way.tsv" | head; status=1
  fi
done
# Each track exactly once in the sharded outputs.
for way in parallel ray; do
  dup=$(cut -f1 "$WORK/$way.tsv" | sort | uniq -d | wc -l)
  [ "$dup" = 0 ] || { echo "$way: $dup tracks appear twice"; status=1; }
done
exit $status
