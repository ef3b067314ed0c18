#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite headless: napari's canvas needs OpenGL, so
# pytest runs inside a virtual X server with Mesa. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
export NAPARI_IMSEQ_CACHE_DIR="${NAPARI_IMSEQ_CACHE_DIR:-$(mktemp -d)}"
set +e
xvfb-run -a -s "-screen 0 1280x1024x24" $PY -m pytest "$@"
status=$?
set -e
# pytest's 5 means "no tests ran": that is a failure for us, not a pass
exit $status
