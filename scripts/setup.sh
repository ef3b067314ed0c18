#!/usr/bin/env bash
# Installs everything napari-imseq needs on a fresh Debian machine: the system libraries for
# a headless OpenGL napari (Xvfb + Mesa) and the package with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0
  libdbus-1-3 libfontconfig1 ${EXTRA_APT_PACKAGES:-})

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
echo "setup: installing napari-imseq with extras [${EXTRAS:-testing}]"
$PY -m pip install -q --disable-pip-version-check --upgrade pip
$PY -m pip install -q --disable-pip-version-check -e ".[${EXTRAS:-testing}]"
