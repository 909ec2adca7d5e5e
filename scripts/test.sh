#!/usr/bin/env bash
# Set up (apt packages, Rust) and run the whole test suite. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
# Tests that skip (missing ../shared data or a tool, outside CI) append to this file.
SKIPS=target/tmp/test-skips.txt
mkdir -p target/tmp && rm -f "$SKIPS"
status=0
cargo test --all-targets --locked || status=$?
if [ -s "$SKIPS" ]; then
  echo "skipped: $(wc -l <"$SKIPS") test(s) or parts of tests (under CI=true a missing ../shared or test tool fails instead):"
  sed 's/^/  /' "$SKIPS"
else
  echo "skipped: none"
fi
exit $status
