#!/usr/bin/env bash
# Install what genretag needs on a fresh Debian/Ubuntu machine.
#   scripts/setup.sh          build dependencies (ALSA headers, a C toolchain, Rust)
#   scripts/setup.sh --test   plus the tools the test suite uses (ffmpeg, sox, Mesa's
#                             software Vulkan to render the app's snapshot images, and
#                             beets from PyPI in target/venv-beets for the plugin test)
#   scripts/setup.sh --gui    plus what the screenshot and frame-time scripts use
#                             (Xvfb, xauth, ImageMagick, Mesa's software Vulkan)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(build-essential pkg-config curl ca-certificates libasound2-dev)
if [ "${1:-}" = "--test" ]; then PKGS+=(ffmpeg sox mesa-vulkan-drivers python3-venv); fi
if [ "${1:-}" = "--gui" ]; then PKGS+=(xvfb xauth imagemagick mesa-vulkan-drivers); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    :
  else
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
fi
if [ "${1:-}" = "--test" ] && [ ! -x target/venv-beets/bin/beet ]; then
  python3 -m venv target/venv-beets
  target/venv-beets/bin/pip install -q "beets>=2,<3"
fi
