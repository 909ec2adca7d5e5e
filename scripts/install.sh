#!/usr/bin/env bash
# Install genretag for the current user, like a desktop app:
#   the binary          ~/.local/bin/genretag           (the models are built into it)
#   the menu entry      ~/.local/share/applications/io.github.genretag.genretag.desktop
#   the icon            ~/.local/share/icons/hicolor/{16..512}x../apps/, scalable/apps/
#   the AppStream data  ~/.local/share/metainfo/io.github.genretag.genretag.metainfo.xml
# Usage: scripts/install.sh [--prefix DIR] [--no-build] [--uninstall]
#   --prefix DIR   install under DIR/bin and DIR/share instead of ~/.local/bin and
#                  $XDG_DATA_HOME (default ~/.local/share)
#   --no-build     use the existing target/release/genretag
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="$HOME/.local"
GIVEN_PREFIX=0
BUILD=1
UNINSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix)
      [ $# -ge 2 ] || { echo "--prefix needs a folder" >&2; exit 2; }
      PREFIX="$2"; GIVEN_PREFIX=1; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
ID=io.github.genretag.genretag
BIN="$PREFIX/bin"
# Data goes where the desktop looks: $XDG_DATA_HOME (default ~/.local/share), unless a
# prefix was given.
if [ "$GIVEN_PREFIX" = 1 ]; then SHARE="$PREFIX/share"; else SHARE="${XDG_DATA_HOME:-$HOME/.local/share}"; fi
SIZES=(16 32 48 64 128 256 512)

if [ "$UNINSTALL" = 1 ]; then
  rm -f "$BIN/genretag" "$SHARE/applications/$ID.desktop" "$SHARE/metainfo/$ID.metainfo.xml" \
    "$SHARE/icons/hicolor/scalable/apps/$ID.svg"
  for s in "${SIZES[@]}"; do rm -f "$SHARE/icons/hicolor/${s}x${s}/apps/$ID.png"; done
  echo "removed genretag from $PREFIX"
  exit 0
fi

if [ "$BUILD" = 1 ]; then
  bash scripts/setup.sh
  export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release --locked
fi
install -Dm755 target/release/genretag "$BIN/genretag"
# The entry runs the installed binary by its full path (~/.local/bin may not be on PATH).
mkdir -p "$SHARE/applications"
# Quoted for the desktop entry spec, should the path hold spaces.
sed "s|^Exec=genretag |Exec=\"$BIN/genretag\" |" "assets/$ID.desktop" >"$SHARE/applications/$ID.desktop"
install -Dm644 assets/$ID.metainfo.xml "$SHARE/metainfo/$ID.metainfo.xml"
install -Dm644 assets/genretag.svg "$SHARE/icons/hicolor/scalable/apps/$ID.svg"
for s in "${SIZES[@]}"; do
  install -Dm644 "assets/icons/genretag-$s.png" "$SHARE/icons/hicolor/${s}x${s}/apps/$ID.png"
done
command -v update-desktop-database >/dev/null && update-desktop-database -q "$SHARE/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$SHARE/icons/hicolor" || true
echo "installed: $BIN/genretag, menu entry $SHARE/applications/$ID.desktop"
case ":$PATH:" in *":$BIN:"*) ;; *) echo "note: $BIN is not on PATH; add it to run \`genretag\` from a terminal" ;; esac
