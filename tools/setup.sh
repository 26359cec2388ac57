#!/usr/bin/env bash
# Set up everything tinyc needs on a fresh Debian machine, then run the main job on the bundled example.
#   bash tools/setup.sh            # install + example
#   bash tools/setup.sh --no-example
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
APT_PACKAGES="gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
python3 -m pip install -q -e ".[test]"
if [ "${1:-}" != "--no-example" ]; then
  bash tools/example.sh
fi
