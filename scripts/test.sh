#!/usr/bin/env bash
# Set up (apt packages, Rust) and run the whole test suite. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --all-targets --locked
