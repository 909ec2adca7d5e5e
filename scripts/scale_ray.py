"""Classify a folder with genretag on Ray: N tasks, task k runs `--shard k/N`.

    python scale_ray.py GENRETAG FOLDER N > results.jsonl

Ray starts in local mode here (`ray.init()` on one machine); on a cluster, start it
with `ray.init(address="auto")` and make FOLDER visible on every node at the same
path (or pass `--shard-root` with each node's mount point). The track lines of all
shards are written to standard output; each shard's summary line goes to stderr.
"""

import json
import subprocess
import sys

import ray


@ray.remote
def shard(binary, folder, k, n):
    proc = subprocess.run(
        [binary, "classify", "--jsonl", "--no-cache",
         "--shard", f"{k}/{n}", "--shard-root", folder, folder],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"shard {k}/{n}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def main():
    binary, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
    outputs = ray.get([shard.remote(binary, folder, k, n) for k in range(1, n + 1)])
    for out in outputs:
        for line in out.splitlines():
            if json.loads(line).get("type") == "track":
                print(line)
            else:
                print(line, file=sys.stderr)
    ray.shutdown()


if __name__ == "__main__":
    main()
