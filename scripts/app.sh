#!/usr/bin/env bash
# Set up (apt packages, Rust) and build and start the desktop app (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
exec cargo run --release --locked -- "$@"
