#!/usr/bin/env bash
# Set up (if needed) and run the demo: write a synthetic 12-bit SEQ recording, open it lazily
# in napari with this plugin. With a display the viewer window opens; without one the same
# steps run on a virtual screen and a screenshot plus a summary land in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -z "${CI:-}" ]; then
  exec $PY -m napari_imseq.demo "$@"
fi
exec xvfb-run -a -s "-screen 0 1280x1024x24" $PY -m napari_imseq.demo --offscreen "$@"
